/*
 * kernels_impl.h - the weight block layouts the kernels read (ggml's byte
 * layouts, as stored in GGUF files; half floats as raw uint16_t) and helpers
 * shared by the instruction-set files. Internal to src/kernels/.
 */
#ifndef LOFT_KERNELS_IMPL_H
#define LOFT_KERNELS_IMPL_H

#include <stdint.h>

#include "quant/quant.h"

typedef struct kq_block_q4_0 {
    uint16_t d;
    uint8_t qs[16]; /* element l in the low nibble of qs[l], l + 16 in the high */
} kq_block_q4_0;

typedef struct kq_block_q4_1 {
    uint16_t d, m;
    uint8_t qs[16];
} kq_block_q4_1;

typedef struct kq_block_q5_0 {
    uint16_t d;
    uint8_t qh[4]; /* bit l: fifth bit of element l */
    uint8_t qs[16];
} kq_block_q5_0;

typedef struct kq_block_q8_0 {
    uint16_t d;
    int8_t qs[32];
} kq_block_q8_0;

typedef struct kq_block_q4_k {
    uint16_t d, dmin;
    uint8_t scales[12]; /* 8 six-bit scales and 8 six-bit mins, packed */
    uint8_t qs[QK_K / 2];
} kq_block_q4_k;

typedef struct kq_block_q6_k {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    uint16_t d;
} kq_block_q6_k;

_Static_assert(sizeof(kq_block_q4_0) == 18, "Q4_0 block is 18 bytes");
_Static_assert(sizeof(kq_block_q4_1) == 20, "Q4_1 block is 20 bytes");
_Static_assert(sizeof(kq_block_q5_0) == 22, "Q5_0 block is 22 bytes");
_Static_assert(sizeof(kq_block_q8_0) == 34, "Q8_0 block is 34 bytes");
_Static_assert(sizeof(kq_block_q4_k) == 144, "Q4_K block is 144 bytes");
_Static_assert(sizeof(kq_block_q6_k) == 210, "Q6_K block is 210 bytes");

/* The 6-bit scales sc[0..8) and mins mn[0..8) of a Q4_K (or Q5_K) block
 * from its 12 packed bytes. */
static inline void kq_q4k_scales(const uint8_t s[12], uint8_t sc[8], uint8_t mn[8])
{
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
    }
    for (int j = 4; j < 8; j++) {
        sc[j] = (uint8_t)((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
        mn[j] = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

#endif
