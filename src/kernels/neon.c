/*
 * neon.c - the AArch64 NEON kernel set: activation quantization to 8-bit
 * blocks, and dot products for F32, F16, Q4_0, Q4_1 and Q8_0 weights
 * (SDOT when the compiler targets the dot-product extension, widening
 * multiplies otherwise), the F16 row conversion and rope. Other entries
 * keep the ref ones. Compiles to nothing on other architectures.
 */
#if defined(__aarch64__)

#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/kernels_impl.h"

#define KN_INLINE static inline __attribute__((always_inline))

/* Token loops have a constant count of at most KERNELS_MAX_NX: unrolled,
 * their accumulators stay in registers. */
#define KN_UNROLL _Pragma("GCC unroll 4")

/* acc += per-lane sums of 4 products of int8 lanes of a and b. */
KN_INLINE int32x4_t kn_dot(int32x4_t acc, int8x16_t a, int8x16_t b)
{
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    const int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    const int16x8_t hi = vmull_high_s8(a, b);
    return vpadalq_s16(vpadalq_s16(acc, lo), hi);
#endif
}

KN_INLINE float kn_h2f(uint16_t h)
{
    __fp16 f;
    memcpy(&f, &h, sizeof f);
    return (float)f;
}

/* ---- activation quantization ------------------------------------------- */

/* Rounds 32 floats times id to int8 (nearest, ties to even) and returns
 * their sum. */
static int32_t kn_round32(const float *x, float id, int8_t *q)
{
    int32x4_t s = vdupq_n_s32(0);
    for (int k = 0; k < 32; k += 8) {
        const int32x4_t a = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + k), id));
        const int32x4_t b = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + k + 4), id));
        s = vaddq_s32(s, vaddq_s32(a, b));
        const int16x8_t h = vcombine_s16(vmovn_s32(a), vmovn_s32(b));
        vst1_s8(q + k, vmovn_s16(h));
    }
    return vaddvq_s32(s);
}

static float kn_absmax(const float *x, int n)
{
    float32x4_t m = vdupq_n_f32(0.0f);
    for (int k = 0; k < n; k += 4) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(x + k)));
    return vmaxvq_f32(m);
}

static void kn_quantize_q8(const float *x, void *y, int64_t n)
{
    kernels_q8 *b = y;
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        const float amax = kn_absmax(x, 32);
        const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        b[i].sum = kn_round32(x, id, b[i].qs);
        /* F16 scale and scaled sum, as ggml's Q8_0 / Q8_1 (see ref.c). */
        const float d = amax / 127.0f;
        b[i].d = loft_f16_to_f32(loft_f32_to_f16(d));
        b[i].s = loft_f16_to_f32(loft_f32_to_f16(d * (float)b[i].sum));
    }
}

static void kn_quantize_q8k(const float *x, void *y, int64_t n)
{
    kernels_q8k *b = y;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        const float amax = kn_absmax(x, QK_K);
        const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        for (int k = 0; k < QK_K; k += 32) kn_round32(x + k, id, b[i].qs + k);
        for (int g = 0; g < 16; g++)
            b[i].bsums[g] = (int16_t)vaddlvq_s8(vld1q_s8(b[i].qs + 16 * g));
        b[i].d = amax > 0.0f ? 1.0f / id : 0.0f; /* as ggml's Q8_K (see ref.c) */
    }
}

/* ---- float weights ------------------------------------------------------- */

#define KN_SWITCH(body, n, w, x, xs, nx, out)                                                      \
    do {                                                                                           \
        switch (nx) {                                                                              \
        case 1: body(n, w, x, xs, 1, out); break;                                                  \
        case 2: body(n, w, x, xs, 2, out); break;                                                  \
        case 3: body(n, w, x, xs, 3, out); break;                                                  \
        default: body(n, w, x, xs, 4, out); break;                                                 \
        }                                                                                          \
    } while (0)

KN_INLINE float32x4_t kn_load_w4(const void *w, int64_t i, const int f16)
{
    if (!f16) return vld1q_f32((const float *)w + i);
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)w + i)));
}

KN_INLINE void kn_dot_float(int64_t n, const void *w, const void *x, size_t xs, const int nx,
                            float *out, const int f16)
{
    const float *xr[KERNELS_MAX_NX];
    float32x4_t a0[KERNELS_MAX_NX], a1[KERNELS_MAX_NX];
    KN_UNROLL
    for (int j = 0; j < nx; j++) {
        xr[j] = (const float *)((const char *)x + (size_t)j * xs);
        a0[j] = a1[j] = vdupq_n_f32(0.0f);
    }
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float32x4_t w0 = kn_load_w4(w, i, f16), w1 = kn_load_w4(w, i + 4, f16);
        KN_UNROLL
        for (int j = 0; j < nx; j++) {
            a0[j] = vfmaq_f32(a0[j], w0, vld1q_f32(xr[j] + i));
            a1[j] = vfmaq_f32(a1[j], w1, vld1q_f32(xr[j] + i + 4));
        }
    }
    KN_UNROLL
    for (int j = 0; j < nx; j++) {
        float t = 0.0f;
        for (int64_t k = i; k < n; k++) {
            const float wk = f16 ? kn_h2f(((const uint16_t *)w)[k]) : ((const float *)w)[k];
            t += wk * xr[j][k];
        }
        out[j] = vaddvq_f32(vaddq_f32(a0[j], a1[j])) + t;
    }
}

#define KN_F32_BODY(n, w, x, xs, nx, out) kn_dot_float(n, w, x, xs, nx, out, 0)
#define KN_F16_BODY(n, w, x, xs, nx, out) kn_dot_float(n, w, x, xs, nx, out, 1)

static void kn_dot_f32(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    KN_SWITCH(KN_F32_BODY, n, w, x, xs, nx, out);
}

static void kn_dot_f16(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    KN_SWITCH(KN_F16_BODY, n, w, x, xs, nx, out);
}

/* ---- 32-value block types -------------------------------------------- */

/* One block given as two 16-lane int8 halves (elements 0..15, 16..31) with
 * offset `off` subtracted through the block sum; mins: Q4_1's m term. */
KN_INLINE void kn_block(int8x16_t lo, int8x16_t hi, int off, float dw, float mw,
                        const kernels_q8 *const *xr, int64_t i, const int nx, float32x4_t *acc,
                        float *mins)
{
    KN_UNROLL
    for (int j = 0; j < nx; j++) {
        const kernels_q8 *xb = &xr[j][i];
        int32x4_t p = vsetq_lane_s32(-off * xb->sum, vdupq_n_s32(0), 0);
        p = kn_dot(p, lo, vld1q_s8(xb->qs));
        p = kn_dot(p, hi, vld1q_s8(xb->qs + 16));
        acc[j] = vfmaq_n_f32(acc[j], vcvtq_f32_s32(p), dw * xb->d);
        if (mins) mins[j] += mw * xb->s;
    }
}

enum { KN_Q4_0, KN_Q4_1, KN_Q8_0 };

KN_INLINE void kn_q_body(int64_t n, const void *w, const void *x, size_t xs, const int nx,
                         float *out, const int kind)
{
    const kernels_q8 *xr[KERNELS_MAX_NX];
    float32x4_t acc[KERNELS_MAX_NX];
    float mins[KERNELS_MAX_NX];
    KN_UNROLL
    for (int j = 0; j < nx; j++) {
        xr[j] = (const kernels_q8 *)((const char *)x + (size_t)j * xs);
        acc[j] = vdupq_n_f32(0.0f);
        mins[j] = 0.0f;
    }
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    for (int64_t i = 0; i < n / 32; i++) {
        if (kind == KN_Q8_0) {
            const kq_block_q8_0 *b = (const kq_block_q8_0 *)w + i;
            kn_block(vld1q_s8(b->qs), vld1q_s8(b->qs + 16), 0, kn_h2f(b->d), 0.0f, xr, i, nx, acc,
                     NULL);
        } else if (kind == KN_Q4_0) {
            const kq_block_q4_0 *b = (const kq_block_q4_0 *)w + i;
            const uint8x16_t q = vld1q_u8(b->qs);
            kn_block(vreinterpretq_s8_u8(vandq_u8(q, m4)), vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), 8,
                     kn_h2f(b->d), 0.0f, xr, i, nx, acc, NULL);
        } else {
            const kq_block_q4_1 *b = (const kq_block_q4_1 *)w + i;
            const uint8x16_t q = vld1q_u8(b->qs);
            kn_block(vreinterpretq_s8_u8(vandq_u8(q, m4)), vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), 0,
                     kn_h2f(b->d), kn_h2f(b->m), xr, i, nx, acc, mins);
        }
    }
    KN_UNROLL
    for (int j = 0; j < nx; j++) out[j] = vaddvq_f32(acc[j]) + mins[j];
}

#define KN_Q4_0_BODY(n, w, x, xs, nx, out) kn_q_body(n, w, x, xs, nx, out, KN_Q4_0)
#define KN_Q4_1_BODY(n, w, x, xs, nx, out) kn_q_body(n, w, x, xs, nx, out, KN_Q4_1)
#define KN_Q8_0_BODY(n, w, x, xs, nx, out) kn_q_body(n, w, x, xs, nx, out, KN_Q8_0)

static void kn_dot_q4_0(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    KN_SWITCH(KN_Q4_0_BODY, n, w, x, xs, nx, out);
}

static void kn_dot_q4_1(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    KN_SWITCH(KN_Q4_1_BODY, n, w, x, xs, nx, out);
}

static void kn_dot_q8_0(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    KN_SWITCH(KN_Q8_0_BODY, n, w, x, xs, nx, out);
}

/* ---- per-token steps of a forward pass ------------------------------------ */

/* loft_kernels.f32_to_f16: the FCVTN conversion (nearest even under the
 * default FPCR, overflow to infinity, exact subnormals: loft_f32_to_f16's
 * bits) 4 lanes at a time; a group with a NaN lane is redone by
 * loft_f32_to_f16, since the hardware quiets a signalling NaN that loft
 * keeps as it is. */
static void kn_f32_to_f16(uint16_t *dst, const float *x, int64_t n)
{
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t v = vld1q_f32(x + i);
        vst1_u16(dst + i, vreinterpret_u16_f16(vcvt_f16_f32(v)));
        if (vmaxvq_u32(vmvnq_u32(vceqq_f32(v, v))))
            for (int k = 0; k < 4; k++) dst[i + k] = loft_f32_to_f16(x[i + k]);
    }
    for (; i < n; i++) dst[i] = loft_f32_to_f16(x[i]);
}

/* One pair (a, b) rotated by (c, s): (fma(a, c, -(b s)), fma(a, s, b c)). */
KN_INLINE void kn_rope4(float32x4_t *a, float32x4_t *b, float32x4_t c, float32x4_t s)
{
    const float32x4_t x0 = *a, x1 = *b;
    *a = vfmaq_f32(vnegq_f32(vmulq_f32(x1, s)), x0, c);
    *b = vfmaq_f32(vmulq_f32(x1, c), x0, s);
}

/* loft_kernels.rope, 4 pairs per step: LD2 splits adjacent pairs (and the
 * cosines from the sines), so both styles are the same lane arithmetic. */
static void kn_rope(float *x, int32_t n_heads, int32_t head_dim, int32_t n_rot, int neox,
                    const float *cs)
{
    const int32_t half = n_rot / 2;
    int32_t i = 0;
    for (; i + 4 <= half; i += 4) {
        const float32x4x2_t w = vld2q_f32(cs + 2 * i);
        for (int32_t h = 0; h < n_heads; h++) {
            float *xh = x + (size_t)h * (size_t)head_dim;
            if (neox) {
                float32x4_t a = vld1q_f32(xh + i), b = vld1q_f32(xh + i + half);
                kn_rope4(&a, &b, w.val[0], w.val[1]);
                vst1q_f32(xh + i, a);
                vst1q_f32(xh + i + half, b);
            } else {
                float32x4x2_t v = vld2q_f32(xh + 2 * i);
                kn_rope4(&v.val[0], &v.val[1], w.val[0], w.val[1]);
                vst2q_f32(xh + 2 * i, v);
            }
        }
    }
    for (int32_t h = 0; h < n_heads; h++)
        for (int32_t k = i; k < half; k++) {
            float *xh = x + (size_t)h * (size_t)head_dim;
            float *pa = neox ? xh + k : xh + 2 * k, *pb = neox ? xh + k + half : xh + 2 * k + 1;
            const float c = cs[2 * k], sn = cs[2 * k + 1], x0 = *pa, x1 = *pb;
            *pa = fmaf(x0, c, -(x1 * sn));
            *pb = fmaf(x0, sn, x1 * c);
        }
}

void kernels_fill_neon(loft_kernels *kt)
{
    kt->name = "neon";
    kt->quantize_q8 = kn_quantize_q8;
    kt->quantize_q8k = kn_quantize_q8k;
    kt->dot[LOFT_TYPE_F32] = kn_dot_f32;
    kt->dot[LOFT_TYPE_F16] = kn_dot_f16;
    kt->dot[LOFT_TYPE_Q4_0] = kn_dot_q4_0;
    kt->dot[LOFT_TYPE_Q4_1] = kn_dot_q4_1;
    kt->dot[LOFT_TYPE_Q8_0] = kn_dot_q8_0;
    kt->f32_to_f16 = kn_f32_to_f16;
    kt->rope = kn_rope;
}

#else
typedef int kernels_neon_unused; /* ISO C wants a non-empty unit */
#endif
