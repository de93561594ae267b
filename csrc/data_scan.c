/* The core of smtpx's DATA encoder: see data_scan.h. */
#include "data_scan.h"

#if defined(SMTPX_DATA_SCAN_SCALAR)
/* the portable loops only */
#elif defined(__SSE2__) || defined(_M_X64) || defined(_M_AMD64) || \
    (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#define SMTPX_SSE2 1
#include <emmintrin.h>
#elif defined(__aarch64__) || defined(_M_ARM64)
#define SMTPX_NEON 1
#include <arm_neon.h>
#endif

/* lowest_bit(mask): the index of the lowest set bit of a non-zero hit mask (16 bits from
 * SSE2's movemask, 64 bits from the NEON narrowing below). */
#if defined(SMTPX_SSE2)
typedef unsigned hit_mask;
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
static unsigned lowest_bit(hit_mask mask) {
    unsigned long index;
    _BitScanForward(&index, mask);
    return (unsigned)index;
}
#else
static unsigned lowest_bit(hit_mask mask) { return (unsigned)__builtin_ctz(mask); }
#endif
#elif defined(SMTPX_NEON)
typedef unsigned long long hit_mask;
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
static unsigned lowest_bit(hit_mask mask) {
    unsigned long index;
    _BitScanForward64(&index, mask);
    return (unsigned)index;
}
#else
static unsigned lowest_bit(hit_mask mask) { return (unsigned)__builtin_ctzll(mask); }
#endif
#endif

/* ------------------------------------------------------------------ measuring
 * The encoding of a chunk is its length, plus one octet per CR (sent as CRLF), plus one
 * per LF that does not follow a CR (sent as CRLF), less one per LF that does (it was
 * sent with its CR), plus one per stuffed dot (a dot that follows a CR or an LF). */

/* What stands before src[0], as far as the count goes: a CR whose CRLF is already out,
 * a line end (at the start of a line), or any other octet. */
static unsigned char before_chunk(const smtpx_data_state *st) {
    if (st->pending_cr) {
        return '\r';
    }
    return st->line == 0 ? '\n' : 'a';
}

/* Add up the growth (*plus) and the shrinkage (*minus) over src[from..to), where `prev`
 * stands before src[from]. */
static void count_scalar(const unsigned char *src, size_t from, size_t to, unsigned char prev,
                         int dot_stuff, size_t *plus, size_t *minus) {
    size_t i;
    for (i = from; i < to; i++) {
        unsigned char c = src[i];
        if (c == '\r') {
            *plus += 1;
        } else if (c == '\n') {
            if (prev == '\r') {
                *minus += 1;
            } else {
                *plus += 1;
            }
        } else if (c == '.' && dot_stuff && (prev == '\r' || prev == '\n')) {
            *plus += 1;
        }
        prev = c;
    }
}

size_t smtpx_data_measure(const unsigned char *src, size_t n, int dot_stuff,
                          const smtpx_data_state *st) {
    size_t plus = 0;
    size_t minus = 0;
    size_t i = n > 0 ? 1 : 0;
    count_scalar(src, 0, i, before_chunk(st), dot_stuff, &plus, &minus);
#if defined(SMTPX_SSE2) || defined(SMTPX_NEON)
    /* 16 octets at a time, each compared with the octet before it (loaded one earlier):
     * per lane, `more` is 0xFF (-1) where the output grows by one, `less` where it
     * shrinks by one. Subtracting them counts per lane in 8 bits, summed across the
     * lanes every 255 blocks at most, before a count can wrap. */
    while (i + 16 <= n) {
        size_t rounds = 0;
#if defined(SMTPX_SSE2)
        const __m128i cr = _mm_set1_epi8('\r');
        const __m128i lf = _mm_set1_epi8('\n');
        const __m128i dot = _mm_set1_epi8('.');
        const __m128i stuffing = dot_stuff ? _mm_set1_epi8(-1) : _mm_setzero_si128();
        __m128i more_count = _mm_setzero_si128();
        __m128i less_count = _mm_setzero_si128();
        unsigned long long sums[2];
        for (; i + 16 <= n && rounds < 255; i += 16, rounds++) {
            __m128i v = _mm_loadu_si128((const __m128i *)(src + i));
            __m128i p = _mm_loadu_si128((const __m128i *)(src + i - 1));
            __m128i v_cr = _mm_cmpeq_epi8(v, cr);
            __m128i v_lf = _mm_cmpeq_epi8(v, lf);
            __m128i p_cr = _mm_cmpeq_epi8(p, cr);
            __m128i p_lf = _mm_cmpeq_epi8(p, lf);
            __m128i stuffed = _mm_and_si128(_mm_and_si128(_mm_cmpeq_epi8(v, dot), stuffing),
                                            _mm_or_si128(p_cr, p_lf));
            __m128i more =
                _mm_or_si128(_mm_or_si128(v_cr, _mm_andnot_si128(p_cr, v_lf)), stuffed);
            __m128i less = _mm_and_si128(v_lf, p_cr);
            more_count = _mm_sub_epi8(more_count, more);
            less_count = _mm_sub_epi8(less_count, less);
        }
        _mm_storeu_si128((__m128i *)sums, _mm_sad_epu8(more_count, _mm_setzero_si128()));
        plus += (size_t)(sums[0] + sums[1]);
        _mm_storeu_si128((__m128i *)sums, _mm_sad_epu8(less_count, _mm_setzero_si128()));
        minus += (size_t)(sums[0] + sums[1]);
#else
        const uint8x16_t cr = vdupq_n_u8('\r');
        const uint8x16_t lf = vdupq_n_u8('\n');
        const uint8x16_t dot = vdupq_n_u8('.');
        const uint8x16_t stuffing = vdupq_n_u8(dot_stuff ? 0xFF : 0);
        uint8x16_t more_count = vdupq_n_u8(0);
        uint8x16_t less_count = vdupq_n_u8(0);
        for (; i + 16 <= n && rounds < 255; i += 16, rounds++) {
            uint8x16_t v = vld1q_u8(src + i);
            uint8x16_t p = vld1q_u8(src + i - 1);
            uint8x16_t v_cr = vceqq_u8(v, cr);
            uint8x16_t v_lf = vceqq_u8(v, lf);
            uint8x16_t p_cr = vceqq_u8(p, cr);
            uint8x16_t p_lf = vceqq_u8(p, lf);
            uint8x16_t stuffed =
                vandq_u8(vandq_u8(vceqq_u8(v, dot), stuffing), vorrq_u8(p_cr, p_lf));
            uint8x16_t more = vorrq_u8(vorrq_u8(v_cr, vbicq_u8(v_lf, p_cr)), stuffed);
            uint8x16_t less = vandq_u8(v_lf, p_cr);
            more_count = vsubq_u8(more_count, more);
            less_count = vsubq_u8(less_count, less);
        }
        plus += vaddlvq_u8(more_count);
        minus += vaddlvq_u8(less_count);
#endif
    }
#endif
    if (i < n) {
        count_scalar(src, i, n, src[i - 1], dot_stuff, &plus, &minus);
    }
    return n + plus - minus;
}

/* ------------------------------------------------------------------ scanning
 * A body is in wire form when, at every index i > 0, src[i] is an LF exactly when
 * src[i - 1] is a CR, src[0] is no LF, the last octet is an LF, and no octet is NUL. */

int smtpx_data_scan(const unsigned char *src, size_t n) {
    unsigned char high = 0; /* the OR of every octet: its top bit is SMTPX_SCAN_8BIT */
    int bad;
    size_t i = 1;
    if (n == 0) {
        return 0;
    }
    bad = src[0] == '\n' || src[0] == 0 || src[n - 1] != '\n';
    high = src[0];
#if defined(SMTPX_SSE2) || defined(SMTPX_NEON)
    {
#if defined(SMTPX_SSE2)
        const __m128i cr = _mm_set1_epi8('\r');
        const __m128i lf = _mm_set1_epi8('\n');
        const __m128i zero = _mm_setzero_si128();
        __m128i wrong = zero; /* lanes where a rule was broken: 0xFF */
        __m128i all = zero;   /* the OR of every octet, per lane */
        for (; i + 16 <= n; i += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(src + i));
            __m128i p = _mm_loadu_si128((const __m128i *)(src + i - 1));
            __m128i pair = _mm_xor_si128(_mm_cmpeq_epi8(v, lf), _mm_cmpeq_epi8(p, cr));
            wrong = _mm_or_si128(wrong, _mm_or_si128(pair, _mm_cmpeq_epi8(v, zero)));
            all = _mm_or_si128(all, v);
        }
        bad |= _mm_movemask_epi8(wrong) != 0;
        high |= _mm_movemask_epi8(all) ? 0x80 : 0;
#else
        const uint8x16_t cr = vdupq_n_u8('\r');
        const uint8x16_t lf = vdupq_n_u8('\n');
        const uint8x16_t zero = vdupq_n_u8(0);
        uint8x16_t wrong = zero;
        uint8x16_t all = zero;
        for (; i + 16 <= n; i += 16) {
            uint8x16_t v = vld1q_u8(src + i);
            uint8x16_t p = vld1q_u8(src + i - 1);
            uint8x16_t pair = veorq_u8(vceqq_u8(v, lf), vceqq_u8(p, cr));
            wrong = vorrq_u8(wrong, vorrq_u8(pair, vceqq_u8(v, zero)));
            all = vorrq_u8(all, v);
        }
        bad |= vmaxvq_u8(wrong) != 0;
        high |= vmaxvq_u8(all) & 0x80;
#endif
    }
#endif
    for (; i < n; i++) {
        unsigned char c = src[i];
        bad |= (c == '\n') != (src[i - 1] == '\r') || c == 0;
        high |= c;
    }
    return (high & 0x80 ? SMTPX_SCAN_8BIT : 0) | (bad ? SMTPX_SCAN_ENCODE : 0);
}

/* ------------------------------------------------------------------ encoding */

/* Copy src[0..n) to dst up to the first CR, LF or `stop`, and return its index (n when
 * there is none). dst must have room for n octets: dst[ret..n) may be overwritten with
 * anything, as runs are copied 16 octets at a time. Each octet is read once, and what is
 * stored is what was checked. */
static size_t copy_plain(unsigned char *dst, const unsigned char *src, size_t n,
                         unsigned char stop) {
    size_t i = 0;
#if defined(SMTPX_SSE2)
    const __m128i cr = _mm_set1_epi8('\r');
    const __m128i lf = _mm_set1_epi8('\n');
    const __m128i st = _mm_set1_epi8((char)stop);
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(src + i));
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)),
                                   _mm_cmpeq_epi8(v, st));
        hit_mask mask = (hit_mask)_mm_movemask_epi8(hit);
        _mm_storeu_si128((__m128i *)(dst + i), v);
        if (mask) {
            return i + lowest_bit(mask);
        }
    }
#elif defined(SMTPX_NEON)
    const uint8x16_t cr = vdupq_n_u8('\r');
    const uint8x16_t lf = vdupq_n_u8('\n');
    const uint8x16_t st = vdupq_n_u8(stop);
    for (; i + 16 <= n; i += 16) {
        uint8x16_t v = vld1q_u8(src + i);
        uint8x16_t hit = vorrq_u8(vorrq_u8(vceqq_u8(v, cr), vceqq_u8(v, lf)), vceqq_u8(v, st));
        /* narrow each 0x00/0xFF octet to a nibble: a 64-bit mask, 4 bits per octet */
        hit_mask mask = vget_lane_u64(
            vreinterpret_u64_u8(vshrn_n_u16(vreinterpretq_u16_u8(hit), 4)), 0);
        vst1q_u8(dst + i, v);
        if (mask) {
            return i + (lowest_bit(mask) >> 2);
        }
    }
#endif
    for (; i < n; i++) {
        unsigned char c = src[i];
        if (c == '\r' || c == '\n' || c == stop) {
            return i;
        }
        dst[i] = c;
    }
    return n;
}

smtpx_data_status smtpx_data_encode(const unsigned char *src, size_t n, unsigned char *dst,
                                    size_t room, const smtpx_data_options *opt,
                                    smtpx_data_state *st, size_t *size, uint64_t *fault) {
    /* Copies of the options and the state stay in registers: stores to dst cannot
     * change them. */
    const int dot_stuff = opt->dot_stuff;
    const int allow_nul = opt->allow_nul;
    const uint64_t max_line = opt->max_line;
    const unsigned char stop = allow_nul ? '\r' : 0;
    smtpx_data_state s = *st;
    size_t i = 0;
    size_t o = 0;
    size_t line_begin = 0;      /* where the line in progress began in dst */
    uint64_t carried = s.line;  /* its octets from earlier chunks */
    if (s.pending_cr && n > 0) { /* an empty chunk changes nothing */
        s.pending_cr = 0;
        if (src[0] == '\n') {
            i = 1;
        }
    }
    while (i < n) {
        size_t run;
        uint64_t line;
        unsigned char c;
        if (carried == 0 && o == line_begin) {
            s.line_start = s.bytes_in + i;
            s.line_stuffed = 0;
            if (dot_stuff && src[i] == '.') {
                if (room - o < 2) {
                    return SMTPX_DATA_NO_ROOM;
                }
                dst[o] = '.';
                dst[o + 1] = '.';
                o += 2;
                i += 1;
                s.line_stuffed = 1;
            }
        }
        if (room - o < n - i) {
            return SMTPX_DATA_NO_ROOM;
        }
        run = copy_plain(dst + o, src + i, n - i, stop);
        i += run;
        o += run;
        line = carried + (o - line_begin);
        if (line > max_line) {
            /* a line's octets map one to one to the input, but for its stuffed dot */
            *fault = s.line_start + max_line - (uint64_t)s.line_stuffed;
            return SMTPX_DATA_LONG_LINE;
        }
        if (i == n) {
            break;
        }
        c = src[i];
        if (c == '\r' || c == '\n') {
            if (line > s.longest) {
                s.longest = line;
            }
            i++;
            if (c == '\r') {
                if (i == n) {
                    s.pending_cr = 1;
                } else if (src[i] == '\n') {
                    i++;
                }
            }
            if (room - o < 2) {
                return SMTPX_DATA_NO_ROOM;
            }
            dst[o] = '\r';
            dst[o + 1] = '\n';
            o += 2;
            line_begin = o;
            carried = 0;
        } else if (c == 0 && !allow_nul) {
            *fault = s.bytes_in + i;
            return SMTPX_DATA_NUL;
        } else {
            /* changed since copy_plain saw it: another thread writes the buffer */
            if (room - o < 1) {
                return SMTPX_DATA_NO_ROOM;
            }
            dst[o] = c;
            o++;
            i++;
        }
    }
    s.line = carried + (o - line_begin);
    if (s.line > s.longest) {
        s.longest = s.line;
    }
    *st = s;
    *size = o;
    return SMTPX_DATA_OK;
}
