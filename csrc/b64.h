/* Base64 (RFC 4648, standard alphabet, padded) in plain portable C.
 *
 * The engine of smtpx._hot._base64_c: no Python.h here, the Cython twin owns the
 * objects, the sizes and the error messages. Sizes are in bytes; callers make sure that
 * the output sizes below fit in a Py_ssize_t before asking for them.
 */
#ifndef SMTPX_B64_H
#define SMTPX_B64_H

#include <stddef.h>

/* The size of the encoding of n bytes: 4 * ceil(n / 3). */
size_t smtpx_b64_encoded_size(size_t n);

/* The size of the MIME encoding of n bytes in lines of line_length characters, each
 * line ending with CRLF: 0 for n == 0. line_length is a positive multiple of 4. */
size_t smtpx_b64_mime_size(size_t n, size_t line_length);

/* Writes the padded encoding of src[0:n] to dst (smtpx_b64_encoded_size(n) bytes). */
void smtpx_b64_encode(const unsigned char *src, size_t n, unsigned char *dst);

/* Writes the MIME encoding of src[0:n] to dst (smtpx_b64_mime_size(n, line_length)
 * bytes): lines of line_length characters, the last one shorter, each ending with CRLF. */
void smtpx_b64_encode_mime(const unsigned char *src, size_t n, size_t line_length,
                           unsigned char *dst);

/* What smtpx_b64_check found; the checks run in this order and the first that fails
 * is reported, at the lowest offset where it fails. */
typedef enum {
    SMTPX_B64_OK = 0,
    SMTPX_B64_BAD_CHAR,    /* a byte outside the alphabet and '=' (at *where) */
    SMTPX_B64_BAD_LENGTH,  /* the length is not a multiple of 4 */
    SMTPX_B64_BAD_PADDING, /* an '=' (at *where) that is not part of the final padding */
    SMTPX_B64_BAD_BITS     /* the character at *where, before the padding, has set bits
                              that the padding discards (a non-canonical encoding) */
} smtpx_b64_status;

/* Validates src[0:n] strictly. On SMTPX_B64_OK, *out is the decoded size; otherwise
 * *out is the offset of the fault (0 for SMTPX_B64_BAD_LENGTH). */
smtpx_b64_status smtpx_b64_check(const unsigned char *src, size_t n, size_t *out);

/* Decodes src[0:n], which smtpx_b64_check accepted, into dst (the size it gave). */
void smtpx_b64_decode(const unsigned char *src, size_t n, unsigned char *dst);

#endif /* SMTPX_B64_H */
