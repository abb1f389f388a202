/*
 * quant_impl.h - per-family reference routines behind loft_dequantize_row /
 * loft_quantize_row (types.c dispatches to them by type id).
 *
 * Every routine works on whole blocks: `nb` is the number of blocks, src/dst
 * hold nb blocks of the type (raw little-endian bytes, no alignment assumed)
 * and nb * block_size floats. Callers have already checked nb >= 0.
 */
#ifndef LOFT_QUANT_IMPL_H
#define LOFT_QUANT_IMPL_H

#include <stdint.h>
#include <string.h>

#include "quant/quant.h"

/* Little-endian field access on possibly unaligned block bytes. */
static inline uint16_t quant_rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t quant_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline void quant_wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static inline void quant_wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A half-precision scale stored at p, widened to float. */
static inline float quant_rd_half(const uint8_t *p)
{
    return loft_f16_to_f32(quant_rd16(p));
}

/* Round to nearest, ties to even, as ggml's nearest_int: valid for
 * |f| <= 4194303; adding 1.5 * 2^23 leaves the integer in the low mantissa
 * bits. Callers only pass values bounded by construction. */
static inline int quant_nearest_int(float f)
{
    float biased = f + 12582912.0f;
    int32_t bits;
    memcpy(&bits, &biased, sizeof bits);
    return (bits & 0x007fffff) - 0x00400000;
}

/* ---- float and integer types (floats.c) ------------------------------- */
void quant_dequantize_f32(const void *src, float *dst, int64_t n);
void quant_dequantize_f16(const void *src, float *dst, int64_t n);
void quant_dequantize_bf16(const void *src, float *dst, int64_t n);
void quant_dequantize_f64(const void *src, float *dst, int64_t n);
void quant_dequantize_i8(const void *src, float *dst, int64_t n);
void quant_dequantize_i16(const void *src, float *dst, int64_t n);
void quant_dequantize_i32(const void *src, float *dst, int64_t n);
void quant_dequantize_i64(const void *src, float *dst, int64_t n);
void quant_quantize_f32(const float *src, void *dst, int64_t n);
void quant_quantize_f16(const float *src, void *dst, int64_t n);
void quant_quantize_bf16(const float *src, void *dst, int64_t n);

/* ---- 32-value blocks (legacy.c) -------------------------------------- */
void quant_dequantize_q4_0(const void *src, float *dst, int64_t nb);
void quant_dequantize_q4_1(const void *src, float *dst, int64_t nb);
void quant_dequantize_q5_0(const void *src, float *dst, int64_t nb);
void quant_dequantize_q5_1(const void *src, float *dst, int64_t nb);
void quant_dequantize_q8_0(const void *src, float *dst, int64_t nb);
void quant_dequantize_q8_1(const void *src, float *dst, int64_t nb);
void quant_quantize_q4_0(const float *src, void *dst, int64_t nb);
void quant_quantize_q4_1(const float *src, void *dst, int64_t nb);
void quant_quantize_q5_0(const float *src, void *dst, int64_t nb);
void quant_quantize_q5_1(const float *src, void *dst, int64_t nb);
void quant_quantize_q8_0(const float *src, void *dst, int64_t nb);
void quant_quantize_q8_1(const float *src, void *dst, int64_t nb);

/* ---- 256-value super-blocks (kquants.c, kquants_quantize.c) ----------- */
void quant_dequantize_q2_k(const void *src, float *dst, int64_t nb);
void quant_dequantize_q3_k(const void *src, float *dst, int64_t nb);
void quant_dequantize_q4_k(const void *src, float *dst, int64_t nb);
void quant_dequantize_q5_k(const void *src, float *dst, int64_t nb);
void quant_dequantize_q6_k(const void *src, float *dst, int64_t nb);
void quant_dequantize_q8_k(const void *src, float *dst, int64_t nb);
void quant_quantize_q2_k(const float *src, void *dst, int64_t nb);
void quant_quantize_q3_k(const float *src, void *dst, int64_t nb);
void quant_quantize_q4_k(const float *src, void *dst, int64_t nb);
void quant_quantize_q5_k(const float *src, void *dst, int64_t nb);
void quant_quantize_q6_k(const float *src, void *dst, int64_t nb);
void quant_quantize_q8_k(const float *src, void *dst, int64_t nb);

/* Unpacks the 6-bit scale and min of sub-block j (0..7) from the 12-byte
 * packed array shared by Q4_K and Q5_K. */
static inline void quant_k4_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

#endif
