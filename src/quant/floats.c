/*
 * floats.c - the one-value-per-block types: F32, F16, BF16, F64 and the
 * integer types. Widening F16/BF16 is exact; F64, I32 and I64 round to the
 * nearest float (C's conversion), which is what any consumer of a float
 * view of them gets. Values are little-endian and possibly unaligned; F32
 * is copied as is, which assumes a little-endian host (as loft does).
 */
#include <string.h>

#include "quant/quant_impl.h"

void quant_dequantize_f32(const void *src, float *dst, int64_t n)
{
    memmove(dst, src, (size_t)n * sizeof(float));
}

void quant_dequantize_f16(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = loft_f16_to_f32(quant_rd16(p + 2 * i));
}

void quant_dequantize_bf16(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = loft_bf16_to_f32(quant_rd16(p + 2 * i));
}

static uint64_t floats_rd64(const uint8_t *p)
{
    return (uint64_t)quant_rd32(p) | ((uint64_t)quant_rd32(p + 4) << 32);
}

void quant_dequantize_f64(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) {
        uint64_t bits = floats_rd64(p + 8 * i);
        double d;
        memcpy(&d, &bits, sizeof d);
        dst[i] = (float)d;
    }
}

void quant_dequantize_i8(const void *src, float *dst, int64_t n)
{
    const int8_t *p = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = (float)p[i];
}

void quant_dequantize_i16(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = (float)(int16_t)quant_rd16(p + 2 * i);
}

void quant_dequantize_i32(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = (float)(int32_t)quant_rd32(p + 4 * i);
}

void quant_dequantize_i64(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = (float)(int64_t)floats_rd64(p + 8 * i);
}

void quant_quantize_f32(const float *src, void *dst, int64_t n)
{
    memmove(dst, src, (size_t)n * sizeof(float));
}

void quant_quantize_f16(const float *src, void *dst, int64_t n)
{
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++)
        quant_wr16(p + 2 * i, loft_f32_to_f16(src[i]));
}

void quant_quantize_bf16(const float *src, void *dst, int64_t n)
{
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++)
        quant_wr16(p + 2 * i, loft_f32_to_bf16(src[i]));
}
