/*
 * avx512.c - the AVX-512 kernel set (F, BW, VL, DQ, VNNI; compiled with the
 * flags in the Makefile's ISA_FLAGS). The integer dot products use the
 * 256-bit bodies of x86_body.h with vpdpbusd / vpdpwssd; the float-weight
 * products use 512-bit registers with masked tails.
 */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "kernels/kernels.h"

static void kx_extra_fill(loft_kernels *kt);

#define KX_VNNI 1
#define KX_FILL kernels_fill_avx512
#define KX_NAME "avx512"
#define KX_EXTRA_FILL 1
#include "kernels/x86_body.h"

/* 16 weights at w[i..i+16) (only the lanes set in m) as floats. */
static inline __attribute__((always_inline)) __m512 k5_load_w16(const void *w, int64_t i,
                                                                __mmask16 m, const int kind)
{
    if (kind == KX_W_F32) return _mm512_maskz_loadu_ps(m, (const float *)w + i);
    const __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)w + i);
    if (kind == KX_W_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

static inline __attribute__((always_inline)) void k5_dot_float(int64_t n, const void *w,
                                                               const void *x, size_t xs,
                                                               const int nx, float *out,
                                                               const int kind)
{
    const float *xr[KERNELS_MAX_NX];
    __m512 a0[KERNELS_MAX_NX], a1[KERNELS_MAX_NX];
    KX_UNROLL
    for (int j = 0; j < nx; j++) {
        xr[j] = (const float *)((const char *)x + (size_t)j * xs);
        a0[j] = a1[j] = _mm512_setzero_ps();
    }
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 w0 = k5_load_w16(w, i, 0xFFFF, kind);
        const __m512 w1 = k5_load_w16(w, i + 16, 0xFFFF, kind);
        KX_UNROLL
        for (int j = 0; j < nx; j++) {
            a0[j] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xr[j] + i), a0[j]);
            a1[j] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xr[j] + i + 16), a1[j]);
        }
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __m512 w0 = k5_load_w16(w, i, m, kind);
        KX_UNROLL
        for (int j = 0; j < nx; j++)
            a0[j] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m, xr[j] + i), a0[j]);
    }
    KX_UNROLL
    for (int j = 0; j < nx; j++) out[j] = _mm512_reduce_add_ps(_mm512_add_ps(a0[j], a1[j]));
}

#define K5_F32_BODY(n, w, x, xs, nx, out) k5_dot_float(n, w, x, xs, nx, out, KX_W_F32)
#define K5_F16_BODY(n, w, x, xs, nx, out) k5_dot_float(n, w, x, xs, nx, out, KX_W_F16)
#define K5_BF16_BODY(n, w, x, xs, nx, out) k5_dot_float(n, w, x, xs, nx, out, KX_W_BF16)

static void k5_dot_f32(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    KX_NX_SWITCH(K5_F32_BODY, n, w, x, xs, nx, out);
}

static void k5_dot_f16(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    KX_NX_SWITCH(K5_F16_BODY, n, w, x, xs, nx, out);
}

static void k5_dot_bf16(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    KX_NX_SWITCH(K5_BF16_BODY, n, w, x, xs, nx, out);
}

/* The 512-bit float-weight products replace the 256-bit ones. (A two-row
 * variant of these measured slower, about 8%, so they go row by row.) */
static void kx_extra_fill(loft_kernels *kt)
{
    kt->dot[LOFT_TYPE_F32] = k5_dot_f32;
    kt->dot[LOFT_TYPE_F16] = k5_dot_f16;
    kt->dot[LOFT_TYPE_BF16] = k5_dot_bf16;
}

#else
typedef int kernels_avx512_unused; /* ISO C wants a non-empty unit */
#endif
