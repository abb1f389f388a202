/*
 * x86_body.h - the 256-bit kernel bodies shared by avx2.c and avx512.c.
 *
 * Included once by each of those files, which compile with their own -m
 * flags. Before including, the file defines:
 *   KX_VNNI  1 to use AVX512-VNNI (vpdpbusd / vpdpwssd on 256-bit
 *            registers), 0 for the AVX2 sequences (vpmaddubsw + vpmaddwd);
 *   KX_FILL  the name of the table filler to define;
 *   KX_NAME  the set's name string;
 *   KX_EXTRA_FILL  1 when the file defines kx_extra_fill (run last).
 * Every function here is static; each dot body is written for a
 * compile-time token count (always inlined, then specialised by a switch).
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/kernels_impl.h"

#define KX_INLINE static inline __attribute__((always_inline))

/* Token loops run 1..KERNELS_MAX_NX times with a constant count; unrolled,
 * their accumulators live in registers instead of on the stack. */
#define KX_UNROLL _Pragma("GCC unroll 4")

/* acc += sum over groups of 4 of u8(u) * i8(s), per 32-bit lane. Pair sums
 * of the AVX2 path must fit int16: callers keep u <= 63 or use the sign
 * trick. */
KX_INLINE __m256i kx_dpbusd(__m256i acc, __m256i u, __m256i s)
{
#if KX_VNNI
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    const __m256i p16 = _mm256_maddubs_epi16(u, s);
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
#endif
}

/* acc += pairwise int16 products summed into 32-bit lanes. */
KX_INLINE __m256i kx_dpwssd(__m256i acc, __m256i a, __m256i b)
{
#if KX_VNNI
    return _mm256_dpwssd_epi32(acc, a, b);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
#endif
}

KX_INLINE float kx_hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Sum of the eight int32 lanes (exact while it fits). */
KX_INLINE int32_t kx_hsum_i32(__m256i v)
{
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xB1));
    return _mm_cvtsi128_si32(h);
}

KX_INLINE float kx_h2f(uint16_t h)
{
    return _cvtsh_ss(h);
}

KX_INLINE __m256i kx_load(const void *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

/* Dispatches a body written for a constant token count. */
#define KX_NX_SWITCH(body, n, w, x, xs, nx, out)                                                   \
    do {                                                                                           \
        switch (nx) {                                                                              \
        case 1: body(n, w, x, xs, 1, out); break;                                                  \
        case 2: body(n, w, x, xs, 2, out); break;                                                  \
        case 3: body(n, w, x, xs, 3, out); break;                                                  \
        default: body(n, w, x, xs, 4, out); break;                                                 \
        }                                                                                          \
    } while (0)

/* ---- float weights: 16 values per step, two accumulators per token ----- */

enum { KX_W_F32, KX_W_F16, KX_W_BF16 };

KX_INLINE __m256 kx_load_w8(const void *w, int64_t i, const int kind)
{
    if (kind == KX_W_F32) return _mm256_loadu_ps((const float *)w + i);
    const __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
    if (kind == KX_W_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

KX_INLINE float kx_w1(const void *w, int64_t i, const int kind)
{
    if (kind == KX_W_F32) return ((const float *)w)[i];
    const uint16_t h = ((const uint16_t *)w)[i];
    if (kind == KX_W_F16) return kx_h2f(h);
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

KX_INLINE void kx_dot_float(int64_t n, const void *w, const void *x, size_t xs, const int nx,
                            float *out, const int kind)
{
    const float *xr[KERNELS_MAX_NX];
    __m256 a0[KERNELS_MAX_NX], a1[KERNELS_MAX_NX];
    KX_UNROLL
    for (int j = 0; j < nx; j++) {
        xr[j] = (const float *)((const char *)x + (size_t)j * xs);
        a0[j] = _mm256_setzero_ps();
        a1[j] = _mm256_setzero_ps();
    }
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 w0 = kx_load_w8(w, i, kind), w1 = kx_load_w8(w, i + 8, kind);
        KX_UNROLL
        for (int j = 0; j < nx; j++) {
            a0[j] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xr[j] + i), a0[j]);
            a1[j] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xr[j] + i + 8), a1[j]);
        }
    }
    if (i + 8 <= n) {
        const __m256 w0 = kx_load_w8(w, i, kind);
        KX_UNROLL
        for (int j = 0; j < nx; j++) a0[j] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xr[j] + i), a0[j]);
        i += 8;
    }
    KX_UNROLL
    for (int j = 0; j < nx; j++) {
        float t = 0.0f;
        for (int64_t k = i; k < n; k++) t += kx_w1(w, k, kind) * xr[j][k];
        out[j] = kx_hsum(_mm256_add_ps(a0[j], a1[j])) + t;
    }
}

#define KX_F32_BODY(n, w, x, xs, nx, out) kx_dot_float(n, w, x, xs, nx, out, KX_W_F32)
#define KX_F16_BODY(n, w, x, xs, nx, out) kx_dot_float(n, w, x, xs, nx, out, KX_W_F16)
#define KX_BF16_BODY(n, w, x, xs, nx, out) kx_dot_float(n, w, x, xs, nx, out, KX_W_BF16)

static void kx_dot_f32(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    KX_NX_SWITCH(KX_F32_BODY, n, w, x, xs, nx, out);
}

static void kx_dot_f16(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    KX_NX_SWITCH(KX_F16_BODY, n, w, x, xs, nx, out);
}

static void kx_dot_bf16(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    KX_NX_SWITCH(KX_BF16_BODY, n, w, x, xs, nx, out);
}

/* ---- 32-value block types -------------------------------------------- */

/* A block's 32 four-bit values in element order (low nibbles, then high). */
KX_INLINE __m256i kx_nibbles32(const uint8_t *qs)
{
    const __m128i q = _mm_loadu_si128((const __m128i *)qs);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m4), _mm_and_si128(q, m4));
}

/* 0x10 in byte l where bit l of the 32-bit word at p is set. */
KX_INLINE __m256i kx_bit4_bytes(const uint8_t *p)
{
    uint32_t bits;
    memcpy(&bits, p, 4);
    const __m256i shuf = _mm256_setr_epi64x(0, 0x0101010101010101LL, 0x0202020202020202LL,
                                            0x0303030303030303LL);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), shuf);
    b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7FBFDFEFF7FBFDFELL));
    b = _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1));
    return _mm256_and_si256(b, _mm256_set1_epi8(0x10));
}

/* The token rows of one call, as block arrays. */
#define KX_ROWS(type, xr, x, xs, nx)                                                               \
    const type *xr[KERNELS_MAX_NX];                                                                \
    for (int j_ = 0; j_ < (nx); j_++) xr[j_] = (const type *)((const char *)(x) + (size_t)j_ * (xs))

/* One block of an unsigned-valued 32-block type (values u, offset `off`
 * subtracted: Σ(u - off)·x = Σu·x - off·Σx) into the float accumulators. */
KX_INLINE void kx_block_u(__m256i u, int off, float dw, const kernels_q8 *const *xr, int64_t i,
                          const int nx, __m256 *acc)
{
    const __m256 dwv = _mm256_set1_ps(dw);
    KX_UNROLL
    for (int j = 0; j < nx; j++) {
        const kernels_q8 *xb = &xr[j][i];
        __m256i p = _mm256_setr_epi32(-off * xb->sum, 0, 0, 0, 0, 0, 0, 0);
        p = kx_dpbusd(p, u, kx_load(xb->qs));
        const __m256 px = _mm256_mul_ps(_mm256_cvtepi32_ps(p), _mm256_broadcast_ss(&xb->d));
        acc[j] = _mm256_fmadd_ps(px, dwv, acc[j]);
    }
}

KX_INLINE void kx_q4_0_block(const kq_block_q4_0 *b, const kernels_q8 *const *xr, int64_t i,
                             const int nx, __m256 *acc, float *mins)
{
    (void)mins;
    kx_block_u(kx_nibbles32(b->qs), 8, kx_h2f(b->d), xr, i, nx, acc);
}

KX_INLINE void kx_q5_0_block(const kq_block_q5_0 *b, const kernels_q8 *const *xr, int64_t i,
                             const int nx, __m256 *acc, float *mins)
{
    (void)mins;
#if KX_VNNI
    /* AVX512BW: the fifth bits are a byte mask as they stand */
    uint32_t bits;
    memcpy(&bits, b->qh, 4);
    const __m256i nib = kx_nibbles32(b->qs);
    const __m256i u = _mm256_mask_add_epi8(nib, (__mmask32)bits, nib, _mm256_set1_epi8(0x10));
#else
    const __m256i u = _mm256_or_si256(kx_nibbles32(b->qs), kx_bit4_bytes(b->qh));
#endif
    kx_block_u(u, 16, kx_h2f(b->d), xr, i, nx, acc);
}

/* Q4_1: w = d q + m, so Σw·x = d Σq·x + m Σx; the m term is scalar. */
KX_INLINE void kx_q4_1_block(const kq_block_q4_1 *b, const kernels_q8 *const *xr, int64_t i,
                             const int nx, __m256 *acc, float *mins)
{
    const __m256i u = kx_nibbles32(b->qs);
    const float dw = kx_h2f(b->d), mw = kx_h2f(b->m);
    KX_UNROLL
    for (int j = 0; j < nx; j++) {
        const kernels_q8 *xb = &xr[j][i];
        const __m256i p = kx_dpbusd(_mm256_setzero_si256(), u, kx_load(xb->qs));
        acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(dw * xb->d), _mm256_cvtepi32_ps(p), acc[j]);
        mins[j] += mw * xb->s;
    }
}

KX_INLINE void kx_q8_0_block(const kq_block_q8_0 *b, const kernels_q8 *const *xr, int64_t i,
                             const int nx, __m256 *acc, float *mins)
{
    (void)mins;
    const __m256i wq = kx_load(b->qs);
    const float dw = kx_h2f(b->d);
#if KX_VNNI
    /* (w + 128) is unsigned; subtract 128 * Σx once per block. */
    kx_block_u(_mm256_xor_si256(wq, _mm256_set1_epi8((char)0x80)), 128, dw, xr, i, nx, acc);
#else
    /* |w| times x with w's sign: pair sums stay within int16. */
    const __m256i u = _mm256_sign_epi8(wq, wq);
    const __m256 dwv = _mm256_set1_ps(dw);
    KX_UNROLL
    for (int j = 0; j < nx; j++) {
        const kernels_q8 *xb = &xr[j][i];
        const __m256i s = _mm256_sign_epi8(kx_load(xb->qs), wq);
        const __m256i p = kx_dpbusd(_mm256_setzero_si256(), u, s);
        const __m256 px = _mm256_mul_ps(_mm256_cvtepi32_ps(p), _mm256_broadcast_ss(&xb->d));
        acc[j] = _mm256_fmadd_ps(px, dwv, acc[j]);
    }
#endif
}

enum { KX_Q4_0, KX_Q4_1, KX_Q5_0, KX_Q8_0 };

KX_INLINE void kx_block32(const void *w, int64_t i, const kernels_q8 *const *xr, const int nx,
                          __m256 *acc, float *mins, const int kind)
{
    if (kind == KX_Q4_0) kx_q4_0_block((const kq_block_q4_0 *)w + i, xr, i, nx, acc, mins);
    if (kind == KX_Q4_1) kx_q4_1_block((const kq_block_q4_1 *)w + i, xr, i, nx, acc, mins);
    if (kind == KX_Q5_0) kx_q5_0_block((const kq_block_q5_0 *)w + i, xr, i, nx, acc, mins);
    if (kind == KX_Q8_0) kx_q8_0_block((const kq_block_q8_0 *)w + i, xr, i, nx, acc, mins);
}

/* The loop over the blocks of one weight row for a 32-block type: two
 * accumulator sets (even and odd blocks) so a single token is not bound by
 * the latency of one chain of fused multiply-adds. */
KX_INLINE void kx_b32_body(int64_t n, const void *w, const void *x, size_t xs, const int nx,
                           float *out, const int kind)
{
    KX_ROWS(kernels_q8, xr, x, xs, nx);
    __m256 a0[KERNELS_MAX_NX], a1[KERNELS_MAX_NX];
    float m0[KERNELS_MAX_NX], m1[KERNELS_MAX_NX];
    KX_UNROLL
    for (int j = 0; j < nx; j++) {
        a0[j] = a1[j] = _mm256_setzero_ps();
        m0[j] = m1[j] = 0.0f;
    }
    const int64_t nb = n / 32;
    int64_t i = 0;
    for (; kind == KX_Q4_1 && i < nb; i++) kx_block32(w, i, xr, nx, a0, m0, kind);
    for (; i + 2 <= nb; i += 2) {
        kx_block32(w, i, xr, nx, a0, m0, kind);
        kx_block32(w, i + 1, xr, nx, a1, m1, kind);
    }
    if (i < nb) kx_block32(w, i, xr, nx, a0, m0, kind);
    KX_UNROLL
    for (int j = 0; j < nx; j++) out[j] = kx_hsum(_mm256_add_ps(a0[j], a1[j])) + (m0[j] + m1[j]);
}

/* ---- Q5_0 and Q8_0 in ggml's order -------------------------------------- *
 *
 * llama.cpp multiplies these types (vector dot product when decoding,
 * llamafile's tinyBLAS for prompts; both the same arithmetic) as: per block,
 * eight int32 lanes, lane l = sum of the signed products of values
 * 4l..4l+3; then acc = fma(d_w * d_x, float(lanes), acc) in one 8-lane
 * accumulator, block after block; the result is acc's horizontal sum
 * (kx_hsum). Each lane sum is an exact integer however it is formed, so
 * these bodies reproduce ggml's float roundings bit for bit. */

/* Block i's signed values (Q5_0: 16 subtracted) and scale. */
KX_INLINE __m256i kx_signed32(const void *w, int64_t i, const int kind, float *d)
{
    if (kind == KX_Q5_0) {
        const kq_block_q5_0 *b = (const kq_block_q5_0 *)w + i;
        *d = kx_h2f(b->d);
#if KX_VNNI
        uint32_t bits;
        memcpy(&bits, b->qh, 4);
        const __m256i nib = kx_nibbles32(b->qs);
        const __m256i u = _mm256_mask_add_epi8(nib, (__mmask32)bits, nib, _mm256_set1_epi8(0x10));
#else
        const __m256i u = _mm256_or_si256(kx_nibbles32(b->qs), kx_bit4_bytes(b->qh));
#endif
        return _mm256_sub_epi8(u, _mm256_set1_epi8(16));
    }
    const kq_block_q8_0 *b = (const kq_block_q8_0 *)w + i;
    *d = kx_h2f(b->d);
    return kx_load(b->qs);
}

/* Lane sums of signed w times signed x: |w| times x carrying w's sign. */
KX_INLINE __m256 kx_lanes_signed(__m256i aw, __m256i w, const int8_t *xq)
{
    const __m256i sx = _mm256_sign_epi8(kx_load(xq), w);
    return _mm256_cvtepi32_ps(kx_dpbusd(_mm256_setzero_si256(), aw, sx));
}

KX_INLINE void kx_b32s_body(int64_t n, const void *w, const void *x, size_t xs, const int nx,
                            float *out, const int kind)
{
    KX_ROWS(kernels_q8, xr, x, xs, nx);
    __m256 acc[KERNELS_MAX_NX];
    KX_UNROLL
    for (int j = 0; j < nx; j++) acc[j] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 32; i++) {
        float dw;
        const __m256i sw = kx_signed32(w, i, kind, &dw);
        const __m256i aw = _mm256_sign_epi8(sw, sw);
        KX_UNROLL
        for (int j = 0; j < nx; j++) {
            const kernels_q8 *xb = &xr[j][i];
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(dw * xb->d), kx_lanes_signed(aw, sw, xb->qs),
                                     acc[j]);
        }
    }
    KX_UNROLL
    for (int j = 0; j < nx; j++) out[j] = kx_hsum(acc[j]);
}

/* The same for two weight rows (w and w + w_stride bytes). */
KX_INLINE void kx_b32s_pair_body(int64_t n, const void *w, size_t w_stride, const void *x,
                                 size_t xs, const int nx, float *out, const int kind)
{
    const void *w1 = (const char *)w + w_stride;
    KX_ROWS(kernels_q8, xr, x, xs, nx);
    __m256 a0[KERNELS_MAX_NX], a1[KERNELS_MAX_NX];
    KX_UNROLL
    for (int j = 0; j < nx; j++) a0[j] = a1[j] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / 32; i++) {
        float d0, d1;
        const __m256i s0 = kx_signed32(w, i, kind, &d0), s1 = kx_signed32(w1, i, kind, &d1);
        const __m256i u0 = _mm256_sign_epi8(s0, s0), u1 = _mm256_sign_epi8(s1, s1);
        KX_UNROLL
        for (int j = 0; j < nx; j++) {
            const kernels_q8 *xb = &xr[j][i];
            a0[j] = _mm256_fmadd_ps(_mm256_set1_ps(d0 * xb->d), kx_lanes_signed(u0, s0, xb->qs),
                                    a0[j]);
            a1[j] = _mm256_fmadd_ps(_mm256_set1_ps(d1 * xb->d), kx_lanes_signed(u1, s1, xb->qs),
                                    a1[j]);
        }
    }
    KX_UNROLL
    for (int j = 0; j < nx; j++) {
        out[j] = kx_hsum(a0[j]);
        out[KERNELS_MAX_NX + j] = kx_hsum(a1[j]);
    }
}

#define KX_Q4_0_BODY(n, w, x, xs, nx, out) kx_b32_body(n, w, x, xs, nx, out, KX_Q4_0)
#define KX_Q4_1_BODY(n, w, x, xs, nx, out) kx_b32_body(n, w, x, xs, nx, out, KX_Q4_1)
#define KX_Q5_0_BODY(n, w, x, xs, nx, out) kx_b32s_body(n, w, x, xs, nx, out, KX_Q5_0)
#define KX_Q8_0_BODY(n, w, x, xs, nx, out) kx_b32s_body(n, w, x, xs, nx, out, KX_Q8_0)

/* ---- two weight rows at a time (32-value block types) --------------------- */

/* Block i of a row as unsigned values u, scale d, Q4_1's m and the offset
 * subtracted through the activation sum. */
KX_INLINE __m256i kx_unpack32(const void *w, int64_t i, const int kind, float *d, float *m)
{
    if (kind == KX_Q4_0) {
        const kq_block_q4_0 *b = (const kq_block_q4_0 *)w + i;
        *d = kx_h2f(b->d);
        return kx_nibbles32(b->qs);
    }
    if (kind == KX_Q4_1) {
        const kq_block_q4_1 *b = (const kq_block_q4_1 *)w + i;
        *d = kx_h2f(b->d);
        *m = kx_h2f(b->m);
        return kx_nibbles32(b->qs);
    }
    if (kind == KX_Q5_0) {
        const kq_block_q5_0 *b = (const kq_block_q5_0 *)w + i;
        *d = kx_h2f(b->d);
#if KX_VNNI
        uint32_t bits;
        memcpy(&bits, b->qh, 4);
        const __m256i nib = kx_nibbles32(b->qs);
        return _mm256_mask_add_epi8(nib, (__mmask32)bits, nib, _mm256_set1_epi8(0x10));
#else
        return _mm256_or_si256(kx_nibbles32(b->qs), kx_bit4_bytes(b->qh));
#endif
    }
    const kq_block_q8_0 *b = (const kq_block_q8_0 *)w + i;
    *d = kx_h2f(b->d);
    return _mm256_xor_si256(kx_load(b->qs), _mm256_set1_epi8((char)0x80));
}

KX_INLINE void kx_b32_pair_body(int64_t n, const void *w, size_t w_stride, const void *x,
                                size_t xs, const int nx, float *out, const int kind)
{
    const void *w1 = (const char *)w + w_stride;
    const int off = kind == KX_Q4_0 ? 8 : kind == KX_Q5_0 ? 16 : kind == KX_Q8_0 ? 128 : 0;
    KX_ROWS(kernels_q8, xr, x, xs, nx);
    __m256 a0[KERNELS_MAX_NX], a1[KERNELS_MAX_NX];
    float m0[KERNELS_MAX_NX], m1[KERNELS_MAX_NX];
    KX_UNROLL
    for (int j = 0; j < nx; j++) {
        a0[j] = a1[j] = _mm256_setzero_ps();
        m0[j] = m1[j] = 0.0f;
    }
    for (int64_t i = 0; i < n / 32; i++) {
        float d0, d1, mw0 = 0.0f, mw1 = 0.0f;
        const __m256i u0 = kx_unpack32(w, i, kind, &d0, &mw0);
        const __m256i u1 = kx_unpack32(w1, i, kind, &d1, &mw1);
        const __m256 dv0 = _mm256_set1_ps(d0), dv1 = _mm256_set1_ps(d1);
        KX_UNROLL
        for (int j = 0; j < nx; j++) {
            const kernels_q8 *xb = &xr[j][i];
            const __m256i init = _mm256_setr_epi32(-off * xb->sum, 0, 0, 0, 0, 0, 0, 0);
            const __m256i xq = kx_load(xb->qs);
            const __m256 xd = _mm256_broadcast_ss(&xb->d);
            const __m256i p0 = kx_dpbusd(init, u0, xq), p1 = kx_dpbusd(init, u1, xq);
            if (kind == KX_Q4_1) {
                a0[j] = _mm256_fmadd_ps(_mm256_set1_ps(d0 * xb->d), _mm256_cvtepi32_ps(p0), a0[j]);
                a1[j] = _mm256_fmadd_ps(_mm256_set1_ps(d1 * xb->d), _mm256_cvtepi32_ps(p1), a1[j]);
            } else {
                a0[j] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(p0), xd), dv0, a0[j]);
                a1[j] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(p1), xd), dv1, a1[j]);
            }
            if (kind == KX_Q4_1) {
                m0[j] += mw0 * xb->s;
                m1[j] += mw1 * xb->s;
            }
        }
    }
    KX_UNROLL
    for (int j = 0; j < nx; j++) {
        out[j] = kx_hsum(a0[j]) + m0[j];
        out[KERNELS_MAX_NX + j] = kx_hsum(a1[j]) + m1[j];
    }
}

#define KX_PAIR_SWITCH(kind, n, w, ws, x, xs, nx, out)                                             \
    do {                                                                                           \
        switch (nx) {                                                                              \
        case 1: kx_b32_pair_body(n, w, ws, x, xs, 1, out, kind); break;                            \
        case 2: kx_b32_pair_body(n, w, ws, x, xs, 2, out, kind); break;                            \
        case 3: kx_b32_pair_body(n, w, ws, x, xs, 3, out, kind); break;                            \
        default: kx_b32_pair_body(n, w, ws, x, xs, 4, out, kind); break;                           \
        }                                                                                          \
    } while (0)

#define KX_PAIRS_SWITCH(kind, n, w, ws, x, xs, nx, out)                                            \
    do {                                                                                           \
        switch (nx) {                                                                              \
        case 1: kx_b32s_pair_body(n, w, ws, x, xs, 1, out, kind); break;                           \
        case 2: kx_b32s_pair_body(n, w, ws, x, xs, 2, out, kind); break;                           \
        case 3: kx_b32s_pair_body(n, w, ws, x, xs, 3, out, kind); break;                           \
        default: kx_b32s_pair_body(n, w, ws, x, xs, 4, out, kind); break;                          \
        }                                                                                          \
    } while (0)

static void kx_dot2_q4_0(int64_t n, const void *w, size_t ws, const void *x, size_t xs, int nx,
                         float *out)
{
    KX_PAIR_SWITCH(KX_Q4_0, n, w, ws, x, xs, nx, out);
}

static void kx_dot2_q4_1(int64_t n, const void *w, size_t ws, const void *x, size_t xs, int nx,
                         float *out)
{
    KX_PAIR_SWITCH(KX_Q4_1, n, w, ws, x, xs, nx, out);
}

static void kx_dot2_q5_0(int64_t n, const void *w, size_t ws, const void *x, size_t xs, int nx,
                         float *out)
{
    KX_PAIRS_SWITCH(KX_Q5_0, n, w, ws, x, xs, nx, out);
}

static void kx_dot2_q8_0(int64_t n, const void *w, size_t ws, const void *x, size_t xs, int nx,
                         float *out)
{
    KX_PAIRS_SWITCH(KX_Q8_0, n, w, ws, x, xs, nx, out);
}

static void kx_dot_q4_0(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    KX_NX_SWITCH(KX_Q4_0_BODY, n, w, x, xs, nx, out);
}

static void kx_dot_q4_1(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    KX_NX_SWITCH(KX_Q4_1_BODY, n, w, x, xs, nx, out);
}

static void kx_dot_q5_0(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    KX_NX_SWITCH(KX_Q5_0_BODY, n, w, x, xs, nx, out);
}

static void kx_dot_q8_0(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    KX_NX_SWITCH(KX_Q8_0_BODY, n, w, x, xs, nx, out);
}

/* ---- K-quants ------------------------------------------------------------ */

/* Q4_K as llama.cpp's repacked 8-row kernels (its CPU "repack" buffer takes
 * every Q4_K matrix whose row count is a multiple of 8 on AVX2 machines)
 * compute each output: per super-block the exact integers
 * S = sum_j sc_j (q . x)_j and M = sum_j mn_j (32-value sum of x)_j, then
 * two float chains, acc += S (dw dx) and accm += M (dmin dx) by fused
 * multiply-adds, and acc - accm at the end. */

KX_INLINE void kx_q4_k_order(int64_t n, const void *w, const void *x, size_t xs, const int nx,
                             float *out, const int per64)
{
    const kq_block_q4_k *wb = w;
    KX_ROWS(kernels_q8k, xr, x, xs, nx);
    float acc[KERNELS_MAX_NX], accm[KERNELS_MAX_NX];
    KX_UNROLL
    for (int j = 0; j < nx; j++) acc[j] = accm[j] = 0.0f;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t sc[8], mn[8], mn2[16];
        kq_q4k_scales(wb[i].scales, sc, mn);
        for (int k = 0; k < 8; k++) mn2[2 * k] = mn2[2 * k + 1] = mn[k];
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)mn2));
        __m256i iacc[KERNELS_MAX_NX];
        KX_UNROLL
        for (int j = 0; j < nx; j++) iacc[j] = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            const __m256i q = kx_load(wb[i].qs + 32 * c);
            const __m256i lo = _mm256_and_si256(q, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            const __m256i slo = _mm256_set1_epi16(sc[2 * c]), shi = _mm256_set1_epi16(sc[2 * c + 1]);
            KX_UNROLL
            for (int j = 0; j < nx; j++) {
                const int8_t *xq = xr[j][i].qs + 64 * c;
                iacc[j] = kx_dpwssd(iacc[j], _mm256_maddubs_epi16(lo, kx_load(xq)), slo);
                iacc[j] = kx_dpwssd(iacc[j], _mm256_maddubs_epi16(hi, kx_load(xq + 32)), shi);
            }
            if (per64) {
                /* the batch order: round after each pair of sub-blocks */
                const float d = kx_h2f(wb[i].d), dmin = kx_h2f(wb[i].dmin);
                KX_UNROLL
                for (int j = 0; j < nx; j++) {
                    const int16_t *bs = xr[j][i].bsums + 4 * c;
                    const int32_t pm = mn[2 * c] * (bs[0] + bs[1]) + mn[2 * c + 1] * (bs[2] + bs[3]);
                    acc[j] = fmaf((float)kx_hsum_i32(iacc[j]), d * xr[j][i].d, acc[j]);
                    accm[j] = fmaf((float)pm, dmin * xr[j][i].d, accm[j]);
                    iacc[j] = _mm256_setzero_si256();
                }
            }
        }
        const float d = kx_h2f(wb[i].d), dmin = kx_h2f(wb[i].dmin);
        KX_UNROLL
        for (int j = 0; !per64 && j < nx; j++) {
            const kernels_q8k *xb = &xr[j][i];
            const int32_t pm = kx_hsum_i32(_mm256_madd_epi16(kx_load(xb->bsums), mins));
            acc[j] = fmaf((float)kx_hsum_i32(iacc[j]), d * xb->d, acc[j]);
            accm[j] = fmaf((float)pm, dmin * xb->d, accm[j]);
        }
    }
    KX_UNROLL
    for (int j = 0; j < nx; j++) out[j] = acc[j] - accm[j];
}

/* int16 scales for one 32-value group of Q6_K: a for the first 16, b for the rest. */
KX_INLINE __m256i kx_sc16_pair(int8_t a, int8_t b)
{
    return _mm256_set_m128i(_mm_set1_epi16(b), _mm_set1_epi16(a));
}

/* Q6_K: per super-block eight int32 lanes as ggml's vector dot product
 * forms them (lane l: values 4l..4l+3 of each 32, less 32 times bsums 2l
 * and 2l+1 by their scales). tiled = 0: ggml's vec_dot, one fused
 * multiply-add of the lanes by dx dw per super-block and a horizontal sum
 * at the end; tiled = 1: its tiled K-quant matmul (batches of 8 tokens or
 * more), y = fma(S dw, dx, y) per super-block with S the exact sum of the
 * lanes (its compiler fuses the multiply and add of that kernel's
 * epilogue). */
KX_INLINE void kx_q6_k_order(int64_t n, const void *w, const void *x, size_t xs, const int nx,
                             float *out, const int tiled)
{
    float accs[KERNELS_MAX_NX];
    KX_UNROLL
    for (int j = 0; j < nx; j++) accs[j] = 0.0f;
    const kq_block_q6_k *wb = w;
    KX_ROWS(kernels_q8k, xr, x, xs, nx);
    __m256 acc[KERNELS_MAX_NX];
    KX_UNROLL
    for (int j = 0; j < nx; j++) acc[j] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const kq_block_q6_k *b = &wb[i];
        __m256i iacc[KERNELS_MAX_NX];
        KX_UNROLL
        for (int j = 0; j < nx; j++) iacc[j] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i qa = kx_load(b->ql + 64 * h), qb = kx_load(b->ql + 64 * h + 32);
            const __m256i hb = kx_load(b->qh + 32 * h);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(qa, m4),
                                   _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30));
            q[1] = _mm256_or_si256(_mm256_and_si256(qb, m4),
                                   _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), m4),
                                   _mm256_and_si256(hb, m30));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), m4),
                                   _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30));
            const int8_t *sc = b->scales + 8 * h;
            for (int g = 0; g < 4; g++) {
                const __m256i s16 = kx_sc16_pair(sc[2 * g], sc[2 * g + 1]);
                KX_UNROLL
                for (int j = 0; j < nx; j++) {
                    const int8_t *xq = xr[j][i].qs + 128 * h + 32 * g;
                    iacc[j] = kx_dpwssd(iacc[j], _mm256_maddubs_epi16(q[g], kx_load(xq)), s16);
                }
            }
        }
        const __m256i scales = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
        const float d = kx_h2f(b->d);
        KX_UNROLL
        for (int j = 0; j < nx; j++) {
            const kernels_q8k *xb = &xr[j][i];
            /* ggml's order: lane l less 32 (bsums 2l, 2l+1 by their
             * scales) in integers, then one multiply-add by dx dw */
            const __m256i pc = _mm256_madd_epi16(kx_load(xb->bsums), scales);
            const __m256i lanes = _mm256_sub_epi32(iacc[j], _mm256_slli_epi32(pc, 5));
            if (tiled)
                accs[j] = fmaf((float)kx_hsum_i32(lanes) * d, xb->d, accs[j]);
            else
                acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(xb->d * d), _mm256_cvtepi32_ps(lanes),
                                         acc[j]);
        }
    }
    KX_UNROLL
    for (int j = 0; j < nx; j++) out[j] = tiled ? accs[j] : kx_hsum(acc[j]);
}

#define KX_Q4_K_BODY(n, w, x, xs, nx, out) kx_q4_k_order(n, w, x, xs, nx, out, 0)
#define KX_Q4_K_BATCH_BODY(n, w, x, xs, nx, out) kx_q4_k_order(n, w, x, xs, nx, out, 1)

static void kx_dot_q4_k(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    KX_NX_SWITCH(KX_Q4_K_BODY, n, w, x, xs, nx, out);
}

static void kx_dotb_q4_k(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    KX_NX_SWITCH(KX_Q4_K_BATCH_BODY, n, w, x, xs, nx, out);
}

#define KX_Q6_K_BODY(n, w, x, xs, nx, out) kx_q6_k_order(n, w, x, xs, nx, out, 0)
#define KX_Q6_K_TILED_BODY(n, w, x, xs, nx, out) kx_q6_k_order(n, w, x, xs, nx, out, 1)

static void kx_dot_q6_k(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    KX_NX_SWITCH(KX_Q6_K_BODY, n, w, x, xs, nx, out);
}

static void kx_dotb_q6_k(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    KX_NX_SWITCH(KX_Q6_K_TILED_BODY, n, w, x, xs, nx, out);
}

#include "kernels/x86_rows.h"
#include "kernels/x86_ops.h"

void KX_FILL(loft_kernels *kt)
{
    kt->name = KX_NAME;
    kt->quantize_q8 = kx_quantize_q8;
    kt->quantize_q8k = kx_quantize_q8k;
    kt->dot[LOFT_TYPE_F32] = kx_dot_f32;
    kt->dot[LOFT_TYPE_F16] = kx_dot_f16;
    kt->dot[LOFT_TYPE_BF16] = kx_dot_bf16;
    kt->dot[LOFT_TYPE_Q4_0] = kx_dot_q4_0;
    kt->dot[LOFT_TYPE_Q4_1] = kx_dot_q4_1;
    kt->dot[LOFT_TYPE_Q5_0] = kx_dot_q5_0;
    kt->dot[LOFT_TYPE_Q8_0] = kx_dot_q8_0;
    kt->dot[LOFT_TYPE_Q4_K] = kx_dot_q4_k;
    kt->dot[LOFT_TYPE_Q6_K] = kx_dot_q6_k;
    kt->dotb[LOFT_TYPE_Q4_K] = kx_dotb_q4_k;
    kt->dotb_rule[LOFT_TYPE_Q4_K] = KERNELS_DOTB_FOURS;
    kt->dotb[LOFT_TYPE_Q6_K] = kx_dotb_q6_k;
    kt->dotb_rule[LOFT_TYPE_Q6_K] = KERNELS_DOTB_FROM8;
    kt->dot2[LOFT_TYPE_Q4_0] = kx_dot2_q4_0;
    kt->dot2[LOFT_TYPE_Q4_1] = kx_dot2_q4_1;
    kt->dot2[LOFT_TYPE_Q5_0] = kx_dot2_q5_0;
    kt->dot2[LOFT_TYPE_Q8_0] = kx_dot2_q8_0;
    kt->attn_group = kx_attn_group;
    kt->swiglu = kx_swiglu;
    kt->geglu = kx_geglu;
    kt->geglu_f16 = kx_geglu_f16;
    kt->f32_to_f16 = kx_f32_to_f16;
    kt->rope = kx_rope;
#if KX_EXTRA_FILL
    kx_extra_fill(kt);
#endif
}
