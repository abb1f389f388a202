/*
 * kquants.c - dequantization of the 256-value super-block types
 * Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and Q8_K.
 *
 * Block layouts (bytes, little-endian; value p = 0..255):
 *   Q2_K  scales[16] | qs[64] | d:f16 | dmin:f16               (84 bytes)
 *         q = 2 bits of qs[32*(p/128) + p%32] at shift 2*((p%128)/32);
 *         sc = scales[p/16]; x = (d * (sc & 15)) * q - dmin * (sc >> 4)
 *   Q3_K  hmask[32] | qs[64] | scales[12] | d:f16              (110 bytes)
 *         low 2 bits as Q2_K; bit (4*(p/128) + (p%128)/32) of hmask[p%32]
 *         set means +0, clear means -4; 16 six-bit scales s - 32:
 *         x = (d * s) * q
 *   Q4_K  d:f16 | dmin:f16 | scales[12] | qs[128]              (144 bytes)
 *         nibble (low for p%64 < 32) of qs[32*(p/64) + p%32]; 8 six-bit
 *         scale/min pairs: x = (d * sc) * q - dmin * m
 *   Q5_K  as Q4_K with qh[32] before qs; bit p/32 of qh[p%32] adds 16
 *   Q6_K  ql[128] | qh[64] | scales:i8[16] | d:f16              (210 bytes)
 *         x = (d * scales[p/16]) * (q - 32), q six bits
 *   Q8_K  d:f32 | qs:i8[256] | bsums:i16[16]                   (292 bytes)
 *         x = d * q
 * The float operations are those of the gguf Python package, in its order,
 * so results are bit-identical to it (and to ggml's scalar dequantizers).
 */
#include "quant/quant_impl.h"

void quant_dequantize_q2_k(const void *src, float *dst, int64_t nb)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < nb; i++, b += 84, dst += QK_K) {
        const uint8_t *scales = b, *qs = b + 16;
        float d = quant_rd_half(b + 80);
        float dmin = quant_rd_half(b + 82);
        for (int p = 0; p < QK_K; p++) {
            int q = (qs[32 * (p / 128) + p % 32] >> (2 * ((p % 128) / 32))) & 3;
            uint8_t sc = scales[p / 16];
            float dl = d * (float)(sc & 0xF);
            float ml = dmin * (float)(sc >> 4);
            dst[p] = dl * (float)q - ml;
        }
    }
}

/* The sixteen signed 6-bit scales of a Q3_K block: low nibbles in bytes
 * 0..7 (scales 0..7 in the low halves, 8..15 in the high halves), the top
 * two bits in bytes 8..11, scale s at shift 2*(s/4) of byte 8 + s%4. */
static void kquants_q3_scales(const uint8_t *packed, int *out)
{
    for (int s = 0; s < 16; s++) {
        int lo = s < 8 ? (packed[s] & 0xF) : (packed[s - 8] >> 4);
        int hi = (packed[8 + s % 4] >> (2 * (s / 4))) & 3;
        out[s] = (lo | (hi << 4)) - 32;
    }
}

void quant_dequantize_q3_k(const void *src, float *dst, int64_t nb)
{
    const uint8_t *b = src;
    int scales[16];
    for (int64_t i = 0; i < nb; i++, b += 110, dst += QK_K) {
        const uint8_t *hmask = b, *qs = b + 32;
        kquants_q3_scales(b + 96, scales);
        float d = quant_rd_half(b + 108);
        for (int p = 0; p < QK_K; p++) {
            int group = (p % 128) / 32;
            int lo = (qs[32 * (p / 128) + p % 32] >> (2 * group)) & 3;
            int high = (hmask[p % 32] >> (4 * (p / 128) + group)) & 1;
            float dl = d * (float)scales[p / 16];
            dst[p] = dl * (float)(lo - (high ? 0 : 4));
        }
    }
}

/* Q4_K and Q5_K: qh is NULL for Q4_K. */
static void kquants_q45(const uint8_t *b, const uint8_t *qh, const uint8_t *qs, float *dst)
{
    float d = quant_rd_half(b);
    float dmin = quant_rd_half(b + 2);
    for (int is = 0; is < 8; is++) {
        uint8_t sc, m;
        quant_k4_scale_min(is, b + 4, &sc, &m);
        float dl = d * (float)sc;
        float ml = dmin * (float)m;
        const uint8_t *q = qs + 32 * (is / 2);
        for (int l = 0; l < 32; l++) {
            int v = (is & 1) ? (q[l] >> 4) : (q[l] & 0xF);
            if (qh) v |= ((qh[l] >> is) & 1) << 4;
            dst[32 * is + l] = dl * (float)v - ml;
        }
    }
}

void quant_dequantize_q4_k(const void *src, float *dst, int64_t nb)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < nb; i++, b += 144, dst += QK_K)
        kquants_q45(b, NULL, b + 16, dst);
}

void quant_dequantize_q5_k(const void *src, float *dst, int64_t nb)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < nb; i++, b += 176, dst += QK_K)
        kquants_q45(b, b + 16, b + 48, dst);
}

void quant_dequantize_q6_k(const void *src, float *dst, int64_t nb)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < nb; i++, b += 210, dst += QK_K) {
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *scales = (const int8_t *)(b + 192);
        float d = quant_rd_half(b + 208);
        for (int p = 0; p < QK_K; p++) {
            int half = p / 128, k = (p % 128) / 32, l = p % 32;
            uint8_t lbyte = ql[64 * half + l + 32 * (k & 1)];
            int lo = k < 2 ? (lbyte & 0xF) : (lbyte >> 4);
            int hi = (qh[32 * half + l] >> (2 * k)) & 3;
            float dl = d * (float)scales[p / 16];
            dst[p] = dl * (float)((lo | (hi << 4)) - 32);
        }
    }
}

void quant_dequantize_q8_k(const void *src, float *dst, int64_t nb)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < nb; i++, b += 292, dst += QK_K) {
        uint32_t bits = quant_rd32(b);
        float d;
        memcpy(&d, &bits, sizeof d);
        for (int p = 0; p < QK_K; p++)
            dst[p] = d * (float)(int8_t)b[4 + p];
    }
}
