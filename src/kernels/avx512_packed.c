/*
 * avx512_packed.c - AVX-512 VNNI products over the packed weight layouts of
 * repack.c (compiled with the same flags as avx512.c; filled into the
 * avx512 table only).
 *
 * Packed Q4_0: a zmm holds 4 nibble bytes of each of 16 rows, one row per
 * 32-bit lane, so after the nibbles are split one vpdpbusd multiplies 4
 * values of 16 rows by the same 4 activation bytes broadcast. A token's
 * activations are loaded once per 16 rows instead of once per row, the
 * weights stream through memory in one sequential run, and no horizontal
 * sums remain: lane r ends as row r's result. The nibbles are used as
 * unsigned 0..15; the -8 offset enters once per block through the
 * activation sum (Σ(q - 8)·x = Σq·x - 8 Σx), which starts the integer sum.
 */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/kernels_impl.h"

#define KP_INLINE static inline __attribute__((always_inline))
#define KP_UNROLL _Pragma("GCC unroll 8")

/* Tokens one pass over a group's blocks takes. */
#define KP_NX 8

/* 4 activation bytes at p broadcast to every lane. */
KP_INLINE __m512i kp_bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* Rows of one group (16 lanes) by NX tokens: y[j * ys + r] for r < 16,
 * j < NX. With few tokens each token's integer sum is split over several
 * independent vpdpbusd chains, so one token is not bound by their latency;
 * the split is fixed per NX and exact (integer). */
KP_INLINE void kp_q4_0_group(int64_t nb, const uint8_t *q, const void *x, size_t xs, float *y,
                             size_t ys, const int NX)
{
    const int CH = NX == 1 ? 4 : NX == 2 ? 2 : 1;
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const kernels_q8 *xr[KP_NX];
    __m512 acc[KP_NX];
    KP_UNROLL
    for (int j = 0; j < NX; j++) {
        xr[j] = (const kernels_q8 *)(const void *)((const char *)x + (size_t)j * xs);
        acc[j] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *pair = q + (size_t)(b / 2) * 576;
        const uint8_t *qb = pair + 64 + (size_t)(b % 2) * 256;
        __m512i u[8];
        KP_UNROLL
        for (int c = 0; c < 4; c++) {
            const __m512i v = _mm512_loadu_si512((const void *)(qb + 64 * c));
            u[c] = _mm512_and_si512(v, m4);
            u[c + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        }
        const __m512 d = _mm512_cvtph_ps(
            _mm256_loadu_si256((const __m256i *)(const void *)(pair + (b % 2) * 32)));
        KP_UNROLL
        for (int j = 0; j < NX; j++) {
            const kernels_q8 *xb = xr[j] + b;
            __m512i s[4];
            s[0] = _mm512_set1_epi32(-8 * xb->sum);
            KP_UNROLL
            for (int k = 1; k < CH; k++)
                s[k] = _mm512_setzero_si512();
            KP_UNROLL
            for (int c = 0; c < 8; c++)
                s[c % CH] = _mm512_dpbusd_epi32(s[c % CH], u[c], kp_bcast4(xb->qs + 4 * c));
            if (CH == 4) {
                s[0] = _mm512_add_epi32(s[0], s[1]);
                s[2] = _mm512_add_epi32(s[2], s[3]);
                s[0] = _mm512_add_epi32(s[0], s[2]);
            }
            if (CH == 2) s[0] = _mm512_add_epi32(s[0], s[1]);
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[0]),
                                     _mm512_mul_ps(d, _mm512_set1_ps(xb->d)), acc[j]);
        }
    }
    KP_UNROLL
    for (int j = 0; j < NX; j++)
        _mm512_storeu_ps(y + (size_t)j * ys, acc[j]);
}

static void kp_q4_0_group_nx(int64_t nb, const uint8_t *q, const void *x, size_t xs, float *y,
                             size_t ys, int nx)
{
    switch (nx) {
    case 1:
        kp_q4_0_group(nb, q, x, xs, y, ys, 1);
        break;
    case 2:
        kp_q4_0_group(nb, q, x, xs, y, ys, 2);
        break;
    case 3:
        kp_q4_0_group(nb, q, x, xs, y, ys, 3);
        break;
    case 4:
        kp_q4_0_group(nb, q, x, xs, y, ys, 4);
        break;
    case 5:
        kp_q4_0_group(nb, q, x, xs, y, ys, 5);
        break;
    case 6:
        kp_q4_0_group(nb, q, x, xs, y, ys, 6);
        break;
    case 7:
        kp_q4_0_group(nb, q, x, xs, y, ys, 7);
        break;
    default:
        kp_q4_0_group(nb, q, x, xs, y, ys, 8);
        break;
    }
}

/* Group by group; within a group, the tokens KP_NX at a time, so the
 * group's weights (nb * 288 bytes) stay in L1 while every token passes. */
static void kp_packed_q4_0(int64_t n, const void *wp, int64_t ngroups, const void *x, size_t xs,
                           int nx, float *y, size_t ys)
{
    const int64_t nb = n / 32;
    const size_t gb = kernels_pack_group_bytes(LOFT_TYPE_Q4_0, n);
    for (int64_t g = 0; g < ngroups; g++) {
        const uint8_t *q = (const uint8_t *)wp + (size_t)g * gb;
        for (int t0 = 0; t0 < nx; t0 += KP_NX) {
            const int tx = nx - t0 < KP_NX ? nx - t0 : KP_NX;
            kp_q4_0_group_nx(nb, q, (const char *)x + (size_t)t0 * xs, xs,
                             y + (size_t)t0 * ys + (size_t)g * KERNELS_PACK_ROWS, ys, tx);
        }
    }
}

void kernels_fill_avx512_packed(loft_kernels *kt)
{
    kt->packed[LOFT_TYPE_Q4_0] = kp_packed_q4_0;
}

#else
typedef int kernels_avx512_packed_unused; /* ISO C wants a non-empty unit */
#endif
