/*
 * avx2_packed.c - AVX2 products over the packed weight layouts of repack.c
 * (compiled with the same flags as avx2.c; filled into the avx2 table only).
 *
 * Packed Q4_0: each 64-byte run of a block holds 4 nibble bytes of 16 rows;
 * a ymm takes its half (8 rows, one per 32-bit lane). vpmaddubsw multiplies
 * the unsigned nibbles (0..15) by 4 broadcast activation bytes into pair
 * sums of at most 2 * 15 * 128 = 3840, so the 8 products of a block add up
 * in int16 (at most 30720) before one vpmaddwd widens them. The -8 offset
 * enters once per block through the activation sum, as in avx512_packed.c.
 */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/kernels_impl.h"

#define KQ_INLINE static inline __attribute__((always_inline))
#define KQ_UNROLL _Pragma("GCC unroll 4")

/* Tokens one pass over a group's blocks takes (16 ymm registers). */
#define KQ_NX 4

KQ_INLINE __m256i kq_bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* Rows 8h..8h+7 of one group by NX tokens: y[j * ys + r]. */
KQ_INLINE void kq_q4_0_half(int64_t nb, const uint8_t *q, int h, const void *x, size_t xs, float *y,
                            size_t ys, const int NX)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    const kernels_q8 *xr[KQ_NX];
    __m256 acc[KQ_NX];
    KQ_UNROLL
    for (int j = 0; j < NX; j++) {
        xr[j] = (const kernels_q8 *)(const void *)((const char *)x + (size_t)j * xs);
        acc[j] = _mm256_setzero_ps();
    }
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *pair = q + (size_t)(b / 2) * 576;
        const uint8_t *qb = pair + 64 + (size_t)(b % 2) * 256 + 32 * h;
        __m256i p16[KQ_NX];
        KQ_UNROLL
        for (int j = 0; j < NX; j++)
            p16[j] = _mm256_setzero_si256();
        KQ_UNROLL
        for (int c = 0; c < 4; c++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(qb + 64 * c));
            const __m256i lo = _mm256_and_si256(v, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            KQ_UNROLL
            for (int j = 0; j < NX; j++) {
                const int8_t *xq = xr[j][b].qs;
                p16[j] = _mm256_add_epi16(p16[j], _mm256_maddubs_epi16(lo, kq_bcast4(xq + 4 * c)));
                p16[j] =
                    _mm256_add_epi16(p16[j], _mm256_maddubs_epi16(hi, kq_bcast4(xq + 16 + 4 * c)));
            }
        }
        const __m256 d = _mm256_cvtph_ps(
            _mm_loadu_si128((const __m128i *)(const void *)(pair + (b % 2) * 32 + 16 * h)));
        KQ_UNROLL
        for (int j = 0; j < NX; j++) {
            const kernels_q8 *xb = &xr[j][b];
            const __m256i s =
                _mm256_add_epi32(_mm256_madd_epi16(p16[j], ones), _mm256_set1_epi32(-8 * xb->sum));
            acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(d, _mm256_set1_ps(xb->d)),
                                     acc[j]);
        }
    }
    KQ_UNROLL
    for (int j = 0; j < NX; j++)
        _mm256_storeu_ps(y + (size_t)j * ys, acc[j]);
}

static void kq_q4_0_half_nx(int64_t nb, const uint8_t *q, int h, const void *x, size_t xs, float *y,
                            size_t ys, int nx)
{
    switch (nx) {
    case 1:
        kq_q4_0_half(nb, q, h, x, xs, y, ys, 1);
        break;
    case 2:
        kq_q4_0_half(nb, q, h, x, xs, y, ys, 2);
        break;
    case 3:
        kq_q4_0_half(nb, q, h, x, xs, y, ys, 3);
        break;
    default:
        kq_q4_0_half(nb, q, h, x, xs, y, ys, 4);
        break;
    }
}

static void kq_packed_q4_0(int64_t n, const void *wp, int64_t ngroups, const void *x, size_t xs,
                           int nx, float *y, size_t ys)
{
    const int64_t nb = n / 32;
    const size_t gb = kernels_pack_group_bytes(LOFT_TYPE_Q4_0, n);
    for (int64_t g = 0; g < ngroups; g++) {
        const uint8_t *q = (const uint8_t *)wp + (size_t)g * gb;
        for (int t0 = 0; t0 < nx; t0 += KQ_NX) {
            const int tx = nx - t0 < KQ_NX ? nx - t0 : KQ_NX;
            for (int h = 0; h < 2; h++)
                kq_q4_0_half_nx(nb, q, h, (const char *)x + (size_t)t0 * xs, xs,
                                y + (size_t)t0 * ys + (size_t)g * KERNELS_PACK_ROWS + 8 * h, ys,
                                tx);
        }
    }
}

void kernels_fill_avx2_packed(loft_kernels *kt)
{
    kt->packed[LOFT_TYPE_Q4_0] = kq_packed_q4_0;
}

#else
typedef int kernels_avx2_packed_unused; /* ISO C wants a non-empty unit */
#endif
