/*
 * attn_ggml_v.h - what the one-token and the several-token attention
 * bodies share (internal to src/kernels/attn_ggml*.c): the lane count, the
 * target attributes, ggml's scalar e^x, and the AVX-512 forms of the
 * horizontal sums, F16 roundings, e^x and the softmax of one row. Every
 * helper performs the scalar oracle's operations in its order; see the top
 * of attn_ggml.c for the orders themselves.
 */
#ifndef LOFT_KERNELS_ATTN_GGML_V_H
#define LOFT_KERNELS_ATTN_GGML_V_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define LANES 16
#define V_TILE 64 /* value dimensions per pass: the accumulators stay small */

/* Inlined fused multiply-adds where the CPU has them (fmaf is otherwise a
 * library call); the arithmetic is the same either way. */
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define AG_HAVE_TARGET 1
#define AG_FMA_TARGET __attribute__((target("avx2,fma")))
#else
#define AG_HAVE_TARGET 0
#define AG_FMA_TARGET
#endif
#define AG_INLINE static inline __attribute__((always_inline))

/* ggml's vector e^x (AVX-512 form): x = n ln2 + b with n rounded by the
 * 1.5 * 2^23 trick and ln2 in two parts, e^b by a degree-5 polynomial
 * evaluated in a fixed fused order, scaled by 2^n; |n| > 192 saturates. */
AG_INLINE float expf_ggml_body(float x)
{
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    if (isnan(n)) return n; /* a NaN score stays NaN ((int)NaN is undefined) */
    if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
    const float u = b * b;
    const float hi =
        fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f));
    const float j = fmaf(hi, u, fmaf(0x1.ffffecp-1f, b, 1.0f));
    const int ni = (int)n;
    if (ni < -126 || ni > 127) return ldexpf(j, ni);
    /* 2^n is a normal float: one rounded product, as the scaling gives */
    const uint32_t bits = (uint32_t)(ni + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return j * scale;
}

/* ---- AVX-512 ------------------------------------------------------------
 * The same arithmetic, one 16-lane register for each emulated accumulator:
 * fmaf per lane is _mm512_fmadd_ps, the F16 conversions are the hardware's
 * (cvtph_ps is exact; cvtps_ph with round-to-nearest-even gives the bits of
 * loft_f32_to_f16 for every non-signalling input), and reduce16 is spelled
 * out in the same order. The scalar body in attn_ggml.c stays the oracle
 * (tests/unit/test_attn_ggml.c compares them bit for bit). */
#if AG_HAVE_TARGET && !defined(LOFT_NO_ISA_KERNELS)
#define AG_HAVE_AVX512 1
#include <immintrin.h>

#define AG_512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,f16c,fma,avx2")))
#define AG_512_INLINE AG_512_TARGET static inline __attribute__((always_inline))
#define AG_RNE (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

/* reduce16's order: v[i] + v[8 + i], then halves of 4, then (0+2)+(1+3). */
AG_512_INLINE float reduce16_v(__m512 v)
{
    const __m256 a = _mm256_add_ps(_mm512_extractf32x8_ps(v, 1), _mm512_castps512_ps256(v));
    const __m128 b = _mm_add_ps(_mm256_extractf128_ps(a, 1), _mm256_castps256_ps128(a));
    const __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b)); /* b0+b2, b1+b3 */
    return _mm_cvtss_f32(_mm_add_ss(c, _mm_shuffle_ps(c, c, 1)));
}

/* The lanes of n halves at h (n <= 16) as floats; the others 0. */
AG_512_INLINE __m512 load_h16(const uint16_t *h, int n)
{
    const __mmask16 m = (__mmask16)(n >= 16 ? 0xffffu : (1u << n) - 1u);
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, h));
}

AG_512_INLINE __m512 round_f16_v(__m512 v)
{
    return _mm512_cvtph_ps(_mm512_cvtps_ph(v, AG_RNE));
}

/* expf_ggml_body for 16 lanes; lanes whose n is NaN or outside the normal
 * range of 2^n take the scalar body (the same values, rarely needed). */
AG_512_INLINE __m512 expf_ggml_v(__m512 x)
{
    const __m512 r = _mm512_set1_ps(0x1.8p23f);
    const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r);
    const __m512 n = _mm512_sub_ps(z, r);
    const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f),
                                      _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
    const __m512 u = _mm512_mul_ps(b, b);
    const __m512 hi = _mm512_fmadd_ps(
        _mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f)), u,
        _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f)));
    const __m512 j = _mm512_fmadd_ps(
        hi, u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0f)));
    /* ok: -126 <= n <= 127 (false for NaN) */
    const __mmask16 ok = _mm512_cmp_ps_mask(n, _mm512_set1_ps(-126.0f), _CMP_GE_OQ) &
                         _mm512_cmp_ps_mask(n, _mm512_set1_ps(127.0f), _CMP_LE_OQ);
    const __m512i ni = _mm512_cvttps_epi32(n);
    const __m512 scale =
        _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(ni, _mm512_set1_epi32(127)), 23));
    __m512 e = _mm512_mul_ps(j, scale);
    if (ok != 0xffffu) {
        float xs[LANES], es[LANES];
        _mm512_storeu_ps(xs, x);
        _mm512_storeu_ps(es, e);
        for (int i = 0; i < LANES; i++)
            if (!((ok >> i) & 1u)) es[i] = expf_ggml_body(xs[i]);
        e = _mm512_loadu_ps(es);
    }
    return e;
}

/* The first steps of reduce16x16_v for 8 of its 16 vectors (its v[0..8)
 * or v[8..16)): each vector's reduce16 up to the sums b0 + b2 and b1 + b3,
 * spread over the lanes as reduce8_pair_v expects them. */
AG_512_INLINE __m512 reduce8_v(const __m512 v[8])
{
    __m512 x[4], y[2];
    for (int k = 0; k < 4; k++) /* a[i] = v[i] + v[8 + i]: cells 2k, 2k+1 */
        x[k] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0x44),
                             _mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0xEE));
    for (int m = 0; m < 2; m++) /* b[i] = a[i] + a[4 + i]: cell 4m + j in lane j */
        y[m] = _mm512_add_ps(_mm512_shuffle_f32x4(x[2 * m], x[2 * m + 1], 0x88),
                             _mm512_shuffle_f32x4(x[2 * m], x[2 * m + 1], 0xDD));
    /* b0 + b2 and b1 + b3 */
    return _mm512_add_ps(_mm512_shuffle_ps(y[0], y[1], 0x44), _mm512_shuffle_ps(y[0], y[1], 0xEE));
}

/* The last step of reduce16x16_v from reduce8_v of its first and last 8
 * vectors: (b0 + b2) + (b1 + b3), then the lanes put in cell order. */
AG_512_INLINE __m512 reduce8_pair_v(__m512 z0, __m512 z1)
{
    /* element e of lane j is cell 4e + j */
    const __m512 r =
        _mm512_add_ps(_mm512_shuffle_ps(z0, z1, 0x88), _mm512_shuffle_ps(z0, z1, 0xDD));
    const __m512i idx = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    return _mm512_permutexvar_ps(idx, r);
}

/* reduce16 of 16 vectors at once, each add the one reduce16 does, by
 * transposing as it goes: lane c of the result is reduce16(v[c]). */
AG_512_INLINE __m512 reduce16x16_v(const __m512 v[LANES])
{
    return reduce8_pair_v(reduce8_v(v), reduce8_v(v + 8));
}

/* The lane-wise reduce16 of 16 vectors: lane i of the result is the
 * reduce16 of lane i of lane[0..16), in reduce16's order. */
AG_512_INLINE __m512 reduce16_lanes_v(const __m512 lane[LANES])
{
    __m512 h8[8], h4[4];
    for (int i = 0; i < 8; i++)
        h8[i] = _mm512_add_ps(lane[8 + i], lane[i]);
    for (int i = 0; i < 4; i++)
        h4[i] = _mm512_add_ps(h8[4 + i], h8[i]);
    return _mm512_add_ps(_mm512_add_ps(h4[0], h4[2]), _mm512_add_ps(h4[1], h4[3]));
}

/* ggml's softmax of one row of scores in place: s[p] for cells
 * first..last (absolute cell indices; s[first..last] written, nothing
 * else touched), mx the largest of them. Groups of 16 cells from cell 0,
 * cells outside first..last masked (they give 0); e^(s - mx) summed per
 * group in float, then in double; each value times the float reciprocal of
 * the total and rounded to F16. */
AG_512_INLINE void softmax_row_v(float *s, int32_t first, int32_t last, float mx)
{
    const int64_t n_cells = (int64_t)last + 1;
    const int64_t n_pad = (n_cells + LANES - 1) / LANES * LANES;
    const __m512 vmx = _mm512_set1_ps(mx);
    double sum = 0.0;
    for (int64_t c = first / LANES * LANES; c < n_pad; c += LANES) {
        uint32_t m = 0xffffu;
        if (c < first) m &= 0xffffu << (first - c);
        if (c + LANES > n_cells) m &= (1u << (n_cells - c)) - 1u;
        const __mmask16 mk = (__mmask16)m;
        const __m512 x = _mm512_sub_ps(_mm512_mask_loadu_ps(vmx, mk, s + c), vmx);
        const __m512 e = _mm512_maskz_mov_ps(mk, expf_ggml_v(x));
        _mm512_mask_storeu_ps(s + c, mk, e);
        sum += (double)reduce16_v(e);
    }
    const float inv = (float)(1.0 / sum);
    const __m512 vinv = _mm512_set1_ps(inv);
    int32_t c = first;
    for (; c + LANES <= last + 1; c += LANES)
        _mm512_storeu_ps(s + c, round_f16_v(_mm512_mul_ps(_mm512_loadu_ps(s + c), vinv)));
    for (; c <= last; c++)
        s[c] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtps_ph(_mm_set_ss(s[c] * inv), AG_RNE)));
}

#else
#define AG_HAVE_AVX512 0
#endif

#endif
