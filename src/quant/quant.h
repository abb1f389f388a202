/*
 * quant.h - the tensor type table and scalar reference (de)quantization.
 *
 * Type ids are ggml's (they are what GGUF files store). A row of n values of
 * type t occupies (n / block_size) * type_size bytes; n must be a multiple
 * of block_size. These reference routines are the oracle the SIMD kernels
 * are tested against; they are compiled with -ffp-contract=off so that their
 * rounding is the plain IEEE sequence of the reference implementations.
 */
#ifndef LOFT_QUANT_H
#define LOFT_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum loft_type {
    LOFT_TYPE_F32 = 0,
    LOFT_TYPE_F16 = 1,
    LOFT_TYPE_Q4_0 = 2,
    LOFT_TYPE_Q4_1 = 3,
    LOFT_TYPE_Q5_0 = 6,
    LOFT_TYPE_Q5_1 = 7,
    LOFT_TYPE_Q8_0 = 8,
    LOFT_TYPE_Q8_1 = 9,
    LOFT_TYPE_Q2_K = 10,
    LOFT_TYPE_Q3_K = 11,
    LOFT_TYPE_Q4_K = 12,
    LOFT_TYPE_Q5_K = 13,
    LOFT_TYPE_Q6_K = 14,
    LOFT_TYPE_Q8_K = 15,
    LOFT_TYPE_I8 = 24,
    LOFT_TYPE_I16 = 25,
    LOFT_TYPE_I32 = 26,
    LOFT_TYPE_I64 = 27,
    LOFT_TYPE_F64 = 28,
    LOFT_TYPE_BF16 = 30,
    LOFT_TYPE_COUNT = 40 /* upper bound on ids, not a type */
} loft_type;

#define QK_K 256 /* super-block size of the K-quants */

typedef struct loft_type_traits {
    const char *name;     /* "Q4_K", as llama.cpp spells it */
    uint32_t block_size;  /* values per block */
    uint32_t type_size;   /* bytes per block */
    bool can_dequantize;  /* a reference dequantize exists */
    bool can_quantize;    /* a reference quantize exists */
} loft_type_traits;

/* Traits of type id t, or NULL when loft does not know t. */
const loft_type_traits *loft_type_get(uint32_t t);

/* The type whose name is `name` (case-insensitive), or -1. */
int loft_type_from_name(const char *name);

/* Bytes of n values of type t; 0 when t is unknown, n is not a multiple of
 * the block size, or the size overflows. */
size_t loft_type_row_size(uint32_t t, int64_t n);

/* Converts n values of type t at src to float at dst. n must be a multiple
 * of the block size. Returns false when t has no dequantizer. */
bool loft_dequantize_row(uint32_t t, const void *src, float *dst, int64_t n);

/* Quantizes n floats to type t (reference rounding). n must be a multiple
 * of the block size. Returns false when t has no quantizer. */
bool loft_quantize_row(uint32_t t, const float *src, void *dst, int64_t n);

/* Scalar half/bfloat conversions (round to nearest even). */
float loft_f16_to_f32(uint16_t h);
uint16_t loft_f32_to_f16(float f);
float loft_bf16_to_f32(uint16_t h);
uint16_t loft_f32_to_bf16(float f);

#endif
