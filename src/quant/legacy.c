/*
 * legacy.c - the 32-value block types Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1.
 *
 * Block layouts (bytes, little-endian):
 *   Q4_0  d:f16 | qs[16]            x = d * (q - 8)      q in 0..15
 *   Q4_1  d:f16 m:f16 | qs[16]      x = d * q + m        q in 0..15
 *   Q5_0  d:f16 | qh:u32 | qs[16]   x = d * (q - 16)     q in 0..31
 *   Q5_1  d:f16 m:f16 | qh | qs[16] x = d * q + m        q in 0..31
 *   Q8_0  d:f16 | qs:i8[32]         x = q * d
 *   Q8_1  d:f16 s:f16 | qs:i8[32]   x = q * d            s = d * sum(q)
 * Nibble j of qs (low half) is value j, the high half is value j + 16; bit j
 * of qh is the fifth bit of value j.
 *
 * Dequantization performs the same float32 operations in the same order as
 * the gguf Python package (and ggml), so results are bit-identical. The
 * quantizers follow ggml's quantize_row_*_ref: scale from the block's
 * (signed) absolute maximum or its range, reciprocal taken on the unrounded
 * float scale, truncation after adding the offset + 0.5.
 */
#include <float.h>
#include <math.h>

#include "quant/quant_impl.h"

#define QK 32

/* ---- dequantize ------------------------------------------------------ */

void quant_dequantize_q4_0(const void *src, float *dst, int64_t nb)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < nb; i++, b += 18, dst += QK) {
        float d = quant_rd_half(b);
        for (int j = 0; j < QK / 2; j++) {
            dst[j] = d * (float)((b[2 + j] & 0x0F) - 8);
            dst[j + QK / 2] = d * (float)((b[2 + j] >> 4) - 8);
        }
    }
}

void quant_dequantize_q4_1(const void *src, float *dst, int64_t nb)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < nb; i++, b += 20, dst += QK) {
        float d = quant_rd_half(b);
        float m = quant_rd_half(b + 2);
        for (int j = 0; j < QK / 2; j++) {
            dst[j] = d * (float)(b[4 + j] & 0x0F) + m;
            dst[j + QK / 2] = d * (float)(b[4 + j] >> 4) + m;
        }
    }
}

/* The 5-bit value j of a Q5 block from its nibbles qs and high bits qh. */
static int legacy_q5_value(const uint8_t *qs, uint32_t qh, int j)
{
    int lo = j < QK / 2 ? (qs[j] & 0x0F) : (qs[j - QK / 2] >> 4);
    return lo | (int)(((qh >> j) & 1u) << 4);
}

void quant_dequantize_q5_0(const void *src, float *dst, int64_t nb)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < nb; i++, b += 22, dst += QK) {
        float d = quant_rd_half(b);
        uint32_t qh = quant_rd32(b + 2);
        for (int j = 0; j < QK; j++)
            dst[j] = d * (float)(legacy_q5_value(b + 6, qh, j) - 16);
    }
}

void quant_dequantize_q5_1(const void *src, float *dst, int64_t nb)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < nb; i++, b += 24, dst += QK) {
        float d = quant_rd_half(b);
        float m = quant_rd_half(b + 2);
        uint32_t qh = quant_rd32(b + 4);
        for (int j = 0; j < QK; j++)
            dst[j] = d * (float)legacy_q5_value(b + 8, qh, j) + m;
    }
}

void quant_dequantize_q8_0(const void *src, float *dst, int64_t nb)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < nb; i++, b += 34, dst += QK) {
        float d = quant_rd_half(b);
        for (int j = 0; j < QK; j++)
            dst[j] = (float)(int8_t)b[2 + j] * d;
    }
}

void quant_dequantize_q8_1(const void *src, float *dst, int64_t nb)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < nb; i++, b += 36, dst += QK) {
        float d = quant_rd_half(b);
        for (int j = 0; j < QK; j++)
            dst[j] = (float)(int8_t)b[4 + j] * d;
    }
}

/* ---- quantize -------------------------------------------------------- */

/* Truncation toward zero of v, clamped to 0..hi (NaN gives 0): ggml's
 * `MIN(hi, (int)(v))` for the non-negative v its scales produce. */
static int legacy_trunc(float v, int hi)
{
    if (!(v > 0.0f)) return 0;
    if (v >= (float)hi) return hi;
    return (int)v;
}

/* The value of largest magnitude in x[0..QK), the first one on ties. */
static float legacy_signed_absmax(const float *x)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void legacy_min_max(const float *x, float *mn, float *mx)
{
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < QK; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

void quant_quantize_q4_0(const float *src, void *dst, int64_t nb)
{
    uint8_t *b = dst;
    for (int64_t i = 0; i < nb; i++, b += 18, src += QK) {
        float d = legacy_signed_absmax(src) / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        quant_wr16(b, loft_f32_to_f16(d));
        for (int j = 0; j < QK / 2; j++) {
            int q0 = legacy_trunc(src[j] * id + 8.5f, 15);
            int q1 = legacy_trunc(src[j + QK / 2] * id + 8.5f, 15);
            b[2 + j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void quant_quantize_q4_1(const float *src, void *dst, int64_t nb)
{
    uint8_t *b = dst;
    for (int64_t i = 0; i < nb; i++, b += 20, src += QK) {
        float mn, mx;
        legacy_min_max(src, &mn, &mx);
        float d = (mx - mn) / 15.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        quant_wr16(b, loft_f32_to_f16(d));
        quant_wr16(b + 2, loft_f32_to_f16(mn));
        for (int j = 0; j < QK / 2; j++) {
            int q0 = legacy_trunc((src[j] - mn) * id + 0.5f, 15);
            int q1 = legacy_trunc((src[j + QK / 2] - mn) * id + 0.5f, 15);
            b[4 + j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* Packs 32 five-bit values: low nibbles into qs, fifth bits into qh. */
static void legacy_pack_q5(const int *q, uint8_t *qh_out, uint8_t *qs)
{
    uint32_t qh = 0;
    for (int j = 0; j < QK / 2; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0F) | ((q[j + QK / 2] & 0x0F) << 4));
    }
    for (int j = 0; j < QK; j++)
        qh |= (uint32_t)((q[j] >> 4) & 1) << j;
    quant_wr32(qh_out, qh);
}

void quant_quantize_q5_0(const float *src, void *dst, int64_t nb)
{
    uint8_t *b = dst;
    int q[QK];
    for (int64_t i = 0; i < nb; i++, b += 22, src += QK) {
        float d = legacy_signed_absmax(src) / -16.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        quant_wr16(b, loft_f32_to_f16(d));
        for (int j = 0; j < QK; j++)
            q[j] = legacy_trunc(src[j] * id + 16.5f, 31);
        legacy_pack_q5(q, b + 2, b + 6);
    }
}

void quant_quantize_q5_1(const float *src, void *dst, int64_t nb)
{
    uint8_t *b = dst;
    int q[QK];
    for (int64_t i = 0; i < nb; i++, b += 24, src += QK) {
        float mn, mx;
        legacy_min_max(src, &mn, &mx);
        float d = (mx - mn) / 31.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        quant_wr16(b, loft_f32_to_f16(d));
        quant_wr16(b + 2, loft_f32_to_f16(mn));
        for (int j = 0; j < QK; j++)
            q[j] = legacy_trunc((src[j] - mn) * id + 0.5f, 31);
        legacy_pack_q5(q, b + 4, b + 8);
    }
}

/* roundf(v) (half away from zero) clamped to int8; NaN gives 0. */
static int8_t legacy_round_i8(float v)
{
    if (!(v == v)) return 0;
    float r = roundf(v);
    if (r > 127.0f) return 127;
    if (r < -128.0f) return -128;
    return (int8_t)r;
}

/* Q8_0 and Q8_1 share the scale and rounding: d = absmax / 127. */
static float legacy_q8_block(const float *x, int8_t *q)
{
    float amax = 0.0f;
    for (int j = 0; j < QK; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < QK; j++)
        q[j] = legacy_round_i8(x[j] * id);
    return d;
}

void quant_quantize_q8_0(const float *src, void *dst, int64_t nb)
{
    uint8_t *b = dst;
    int8_t q[QK];
    for (int64_t i = 0; i < nb; i++, b += 34, src += QK) {
        float d = legacy_q8_block(src, q);
        quant_wr16(b, loft_f32_to_f16(d));
        memcpy(b + 2, q, QK);
    }
}

void quant_quantize_q8_1(const float *src, void *dst, int64_t nb)
{
    uint8_t *b = dst;
    int8_t q[QK];
    for (int64_t i = 0; i < nb; i++, b += 36, src += QK) {
        float d = legacy_q8_block(src, q);
        int sum = 0;
        for (int j = 0; j < QK; j++)
            sum += q[j];
        quant_wr16(b, loft_f32_to_f16(d));
        quant_wr16(b + 2, loft_f32_to_f16((float)sum * d));
        memcpy(b + 4, q, QK);
    }
}
