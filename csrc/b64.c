/* Base64 (RFC 4648, standard alphabet, padded) in plain portable C; see b64.h.
 *
 * The encoder turns 12 bits at a time into two characters with one lookup in a table
 * of the 4096 character pairs, reading the input 8 bytes at a time (6 consumed, so a
 * read never goes past the end of what it was given). The decoder is a plain table
 * decoder behind a strict validator: challenges are short, clarity wins there.
 */
#include "b64.h"

#include <stdint.h>
#include <string.h>

static const char ALPHABET[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The 4096 pairs of characters "AA" "AB" ... "//": read as one flat array of chars,
 * bytes 2v and 2v + 1 encode the 12 bits v. Built from string literals, so the table is
 * the same on every byte order; each row fills its 128 chars exactly (no NUL). */
#define ROW(h)                                                                           \
    h "A" h "B" h "C" h "D" h "E" h "F" h "G" h "H" h "I" h "J" h "K" h "L" h "M" h "N" \
    h "O" h "P" h "Q" h "R" h "S" h "T" h "U" h "V" h "W" h "X" h "Y" h "Z" h "a" h "b" \
    h "c" h "d" h "e" h "f" h "g" h "h" h "i" h "j" h "k" h "l" h "m" h "n" h "o" h "p" \
    h "q" h "r" h "s" h "t" h "u" h "v" h "w" h "x" h "y" h "z" h "0" h "1" h "2" h "3" \
    h "4" h "5" h "6" h "7" h "8" h "9" h "+" h "/"
static const char PAIRS[64][128] = {
    ROW("A"), ROW("B"), ROW("C"), ROW("D"), ROW("E"), ROW("F"), ROW("G"), ROW("H"),
    ROW("I"), ROW("J"), ROW("K"), ROW("L"), ROW("M"), ROW("N"), ROW("O"), ROW("P"),
    ROW("Q"), ROW("R"), ROW("S"), ROW("T"), ROW("U"), ROW("V"), ROW("W"), ROW("X"),
    ROW("Y"), ROW("Z"), ROW("a"), ROW("b"), ROW("c"), ROW("d"), ROW("e"), ROW("f"),
    ROW("g"), ROW("h"), ROW("i"), ROW("j"), ROW("k"), ROW("l"), ROW("m"), ROW("n"),
    ROW("o"), ROW("p"), ROW("q"), ROW("r"), ROW("s"), ROW("t"), ROW("u"), ROW("v"),
    ROW("w"), ROW("x"), ROW("y"), ROW("z"), ROW("0"), ROW("1"), ROW("2"), ROW("3"),
    ROW("4"), ROW("5"), ROW("6"), ROW("7"), ROW("8"), ROW("9"), ROW("+"), ROW("/"),
};
#undef ROW

/* The value of each byte: 0..63 for the alphabet, 64 for '=', BAD for the rest. */
enum { BAD = 255 };
static const unsigned char VALUES[256] = {
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,  62, 255, 255, 255,  63,
     52,  53,  54,  55,  56,  57,  58,  59,  60,  61, 255, 255, 255,  64, 255, 255,
    255,   0,   1,   2,   3,   4,   5,   6,   7,   8,   9,  10,  11,  12,  13,  14,
     15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25, 255, 255, 255, 255, 255,
    255,  26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,
     41,  42,  43,  44,  45,  46,  47,  48,  49,  50,  51, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
};

/* Big-endian 8-byte load; compilers turn it into one load and a byte swap. */
static inline uint64_t load_be64(const unsigned char *p)
{
    return (uint64_t)p[0] << 56 | (uint64_t)p[1] << 48 | (uint64_t)p[2] << 40 |
           (uint64_t)p[3] << 32 | (uint64_t)p[4] << 24 | (uint64_t)p[5] << 16 |
           (uint64_t)p[6] << 8 | (uint64_t)p[7];
}

static inline void put_pair(unsigned char *dst, uint64_t v12)
{
    memcpy(dst, (const char *)PAIRS + 2 * (size_t)(v12 & 0xFFF), 2);
}

/* Encodes src[0:n] with padding; reads nothing past src[n - 1]; returns the end. */
static inline unsigned char *encode_run(const unsigned char *src, size_t n, unsigned char *dst)
{
    while (n >= 8) {
        uint64_t w = load_be64(src);
        put_pair(dst, w >> 52);
        put_pair(dst + 2, w >> 40);
        put_pair(dst + 4, w >> 28);
        put_pair(dst + 6, w >> 16);
        src += 6;
        dst += 8;
        n -= 6;
    }
    while (n >= 3) {
        uint64_t v = (uint64_t)src[0] << 16 | (uint64_t)src[1] << 8 | src[2];
        put_pair(dst, v >> 12);
        put_pair(dst + 2, v);
        src += 3;
        dst += 4;
        n -= 3;
    }
    if (n) {
        unsigned v = (unsigned)src[0] << 16 | (n == 2 ? (unsigned)src[1] << 8 : 0u);
        dst[0] = (unsigned char)ALPHABET[v >> 18];
        dst[1] = (unsigned char)ALPHABET[(v >> 12) & 63];
        dst[2] = n == 2 ? (unsigned char)ALPHABET[(v >> 6) & 63] : '=';
        dst[3] = '=';
        dst += 4;
    }
    return dst;
}

size_t smtpx_b64_encoded_size(size_t n)
{
    return (n / 3 + (n % 3 != 0)) * 4;
}

size_t smtpx_b64_mime_size(size_t n, size_t line_length)
{
    size_t chars = smtpx_b64_encoded_size(n);
    return chars + 2 * (chars / line_length + (chars % line_length != 0));
}

void smtpx_b64_encode(const unsigned char *src, size_t n, unsigned char *dst)
{
    encode_run(src, n, dst);
}

void smtpx_b64_encode_mime(const unsigned char *src, size_t n, size_t line_length,
                           unsigned char *dst)
{
    size_t per_line = line_length / 4 * 3; /* input bytes per full line */

    while (n > 0) {
        size_t take = n < per_line ? n : per_line;
        dst = encode_run(src, take, dst);
        dst[0] = '\r';
        dst[1] = '\n';
        dst += 2;
        src += take;
        n -= take;
    }
}

smtpx_b64_status smtpx_b64_check(const unsigned char *src, size_t n, size_t *out)
{
    const unsigned char *pad;
    size_t i, first_pad, pads;

    for (i = 0; i < n; i++) {
        if (VALUES[src[i]] == BAD) {
            *out = i;
            return SMTPX_B64_BAD_CHAR;
        }
    }
    if (n % 4) {
        *out = 0;
        return SMTPX_B64_BAD_LENGTH;
    }
    pad = n ? memchr(src, '=', n) : NULL; /* src may be NULL when n is 0 */
    first_pad = pad ? (size_t)(pad - src) : n;
    pads = n - first_pad;
    if (pads > 2 || (pads == 2 && src[n - 1] != '=')) {
        *out = first_pad;
        return SMTPX_B64_BAD_PADDING;
    }
    if (pads == 1 && (VALUES[src[n - 2]] & 0x3)) {
        *out = n - 2;
        return SMTPX_B64_BAD_BITS;
    }
    if (pads == 2 && (VALUES[src[n - 3]] & 0xF)) {
        *out = n - 3;
        return SMTPX_B64_BAD_BITS;
    }
    *out = n / 4 * 3 - pads;
    return SMTPX_B64_OK;
}

void smtpx_b64_decode(const unsigned char *src, size_t n, unsigned char *dst)
{
    size_t i;

    for (i = 0; i < n; i += 4) {
        uint32_t v = (uint32_t)VALUES[src[i]] << 18 | (uint32_t)VALUES[src[i + 1]] << 12;
        *dst++ = (unsigned char)(v >> 16);
        if (src[i + 2] == '=')
            break;
        v |= (uint32_t)VALUES[src[i + 2]] << 6;
        *dst++ = (unsigned char)(v >> 8);
        if (src[i + 3] == '=')
            break;
        v |= VALUES[src[i + 3]];
        *dst++ = (unsigned char)v;
    }
}
