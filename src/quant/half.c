/*
 * half.c - IEEE binary16 and bfloat16 <-> binary32, done on the bits so the
 * result does not depend on the compiler, the FPU mode or F16C.
 *
 * Widening is exact (subnormals included; NaN payloads move up unchanged,
 * signalling NaNs are not quieted - numpy's behaviour). Narrowing to f16
 * rounds to nearest, ties to even, overflowing to infinity; a NaN keeps its
 * sign and the top 10 payload bits, and never collapses into infinity
 * (numpy's rule: an all-zero payload becomes 1). Narrowing to bf16 is
 * ggml's: round to nearest even on the upper half, NaN forced quiet.
 */
#include <string.h>

#include "quant/quant.h"

static uint32_t half_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float half_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float loft_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) return half_bits_f32(sign | 0x7f800000u | (mant << 13));
    if (exp != 0) return half_bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
    if (mant == 0) return half_bits_f32(sign);
    /* Subnormal: shift the leading one up to the implicit bit position. */
    uint32_t e = 113;
    while (!(mant & 0x400u)) {
        mant <<= 1;
        e--;
    }
    return half_bits_f32(sign | (e << 23) | ((mant & 0x3ffu) << 13));
}

/* q rounded up when the dropped bits rem (out of 2^shift) exceed one half,
 * or equal it and q is odd. */
static uint32_t half_round_even(uint32_t q, uint32_t rem, uint32_t shift)
{
    uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (q & 1u))) q++;
    return q;
}

uint16_t loft_f32_to_f16(float f)
{
    uint32_t u = half_f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) {
        uint32_t nan = 0x7c00u | ((a & 0x7fffffu) >> 13);
        if (nan == 0x7c00u) nan++;
        return (uint16_t)(sign | nan);
    }
    /* 65520 = halfway between 65504 and 2^16; the tie goes to the even
     * neighbour, which is infinity. */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
    if (a >= 0x38800000u) {
        uint32_t q = ((((a >> 23) - 112u) << 10) | ((a & 0x7fffffu) >> 13));
        return (uint16_t)(sign | half_round_even(q, a & 0x1fffu, 13));
    }
    /* Below 2^-25 (and at it: a tie with zero) the result is zero. */
    if (a <= 0x33000000u) return (uint16_t)sign;
    /* Subnormal half: count units of 2^-24. value = mant * 2^(e - 150). */
    uint32_t e = a >> 23;
    uint32_t mant = (a & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - e; /* 14..24 here */
    uint32_t q = mant >> shift;
    return (uint16_t)(sign | half_round_even(q, mant & ((1u << shift) - 1u), shift));
}

float loft_bf16_to_f32(uint16_t h)
{
    return half_bits_f32((uint32_t)h << 16);
}

uint16_t loft_f32_to_bf16(float f)
{
    uint32_t u = half_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64u);
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}
