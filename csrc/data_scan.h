/* The core of smtpx's DATA encoder (src/smtpx/_hot/_data_c.pyx, whose pure-Python twin
 * _data_py.py is the specification): CRLF normalisation and dot-stuffing of one chunk of
 * message data, with the state that carries over to the next chunk.
 *
 * Plain C, no Python.h. The loops use SSE2 on x86/x86_64 and NEON on AArch64, chosen by
 * the compilers' predefined macros, with portable scalar fallbacks (also forced by
 * defining SMTPX_DATA_SCAN_SCALAR, which is how they are tested on a SIMD machine).
 */
#ifndef SMTPX_DATA_SCAN_H
#define SMTPX_DATA_SCAN_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int dot_stuff;     /* add a dot to every line that starts with one (DATA, not BDAT) */
    int allow_nul;     /* let NUL octets through instead of refusing them */
    uint64_t max_line; /* the longest output line allowed, CRLF excluded (UINT64_MAX: any) */
} smtpx_data_options;

/* What carries over from one chunk to the next. Start with all zero. */
typedef struct {
    uint64_t bytes_in;   /* input octets before the chunk (the caller adds the chunk's) */
    uint64_t longest;    /* the longest output line so far, the line in progress included */
    uint64_t line;       /* octets of the output line in progress (0: at a line start) */
    uint64_t line_start; /* while line > 0: the input offset of its first octet */
    int line_stuffed;    /* while line > 0: whether it was dot-stuffed */
    int pending_cr;      /* the last octet was a CR, already sent as CRLF: an LF next is
                            part of that line end */
} smtpx_data_state;

typedef enum {
    SMTPX_DATA_OK = 0,
    SMTPX_DATA_NUL,       /* a NUL octet (not allowed) at the input offset *fault */
    SMTPX_DATA_LONG_LINE, /* the octet at the input offset *fault takes a line past max_line */
    SMTPX_DATA_NO_ROOM    /* dst is too small: the input changed since it was measured */
} smtpx_data_status;

/* The length of the encoding of src[0..n) by smtpx_data_encode from the state *st: one
 * branch-free pass (16 octets at a time with SIMD), to allocate the output exactly. */
size_t smtpx_data_measure(const unsigned char *src, size_t n, int dot_stuff,
                          const smtpx_data_state *st);

/* What smtpx_data_scan finds in a whole message body. */
enum {
    SMTPX_SCAN_8BIT = 1,  /* an octet above 127 */
    SMTPX_SCAN_ENCODE = 2 /* the body is not in wire form for BDAT: it holds a NUL, a bare
                             CR or LF, or does not end with CRLF (an empty body is fine) */
};

/* The SMTPX_SCAN_* flags of a whole body src[0..n), in one branch-free pass (16 octets at
 * a time with SIMD). A body without SMTPX_SCAN_ENCODE is its own encoding without
 * dot-stuffing: every CR is followed by an LF, every LF follows a CR, and it ends with
 * one. */
int smtpx_data_scan(const unsigned char *src, size_t n);

/* Encode src[0..n) into dst, which has room for `room` octets (what smtpx_data_measure
 * gave), set *size to the length written and update *st. Or return the first octet that
 * cannot be encoded (*fault: its offset from the start of the data), or
 * SMTPX_DATA_NO_ROOM; *st is then left as it was, and nothing is ever written past
 * dst + room. Each input octet is read once, so a buffer that another thread writes
 * meanwhile gives odd data (and maybe SMTPX_DATA_NO_ROOM or a length other than the
 * measure), never a bare CR or LF, an unstuffed dot or an unchecked NUL in dst. */
smtpx_data_status smtpx_data_encode(const unsigned char *src, size_t n, unsigned char *dst,
                                    size_t room, const smtpx_data_options *opt,
                                    smtpx_data_state *st, size_t *size, uint64_t *fault);

#endif /* SMTPX_DATA_SCAN_H */
