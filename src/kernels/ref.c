/*
 * ref.c - the scalar kernels: the oracle every SIMD set is tested against,
 * and the fallback for any entry a set does not implement.
 *
 * The integer dot products mirror what the SIMD sets compute (integer block
 * sums, one float scale per block or sub-block), so a SIMD result differs
 * from these only by the order of float additions. Weight types without a
 * dedicated routine (Q5_1, Q2_K, Q3_K, Q5_K) go through dot_generic: the
 * weight block is dequantized by the quant module and dotted in float.
 */
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/kernels_impl.h"

/* ---- activation quantization -------------------------------------------- */

/* Rounds to nearest, ties to even, as the SIMD conversions do under the
 * default MXCSR/FPCR rounding mode. */
static int8_t round_i8(float v)
{
    return (int8_t)lrintf(v);
}

static void ref_quantize_q8(const float *x, void *y, int64_t n)
{
    kernels_q8 *b = y;
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) {
            b[i].qs[j] = round_i8(x[j] * id);
            sum += b[i].qs[j];
        }
        /* ggml's Q8_0 / Q8_1: the scale and the scaled sum are stored as
         * F16, and the dot products use those roundings. */
        const float d = amax / 127.0f;
        b[i].d = loft_f16_to_f32(loft_f32_to_f16(d));
        b[i].sum = sum;
        b[i].s = loft_f16_to_f32(loft_f32_to_f16(d * (float)sum));
    }
}

static void ref_quantize_q8k(const float *x, void *y, int64_t n)
{
    kernels_q8k *b = y;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float amax = 0.0f;
        for (int j = 0; j < QK_K; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        for (int j = 0; j < QK_K; j++) b[i].qs[j] = round_i8(x[j] * id);
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++) s += b[i].qs[16 * g + j];
            b[i].bsums[g] = (int16_t)s;
        }
        /* ggml's Q8_K keeps 1 / iscale, not amax / 127 (they can differ by
         * an ulp). */
        b[i].d = amax > 0.0f ? 1.0f / id : 0.0f;
    }
}

/* ---- float weights ------------------------------------------------------- */

/* Sums in double: the oracle should carry no rounding of its own worth
 * mentioning next to the fast kernels'. */
static void ref_dot_f32(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    const float *wr = w;
    for (int j = 0; j < nx; j++) {
        const float *xr = (const float *)((const char *)x + (size_t)j * xs);
        double s = 0.0;
        for (int64_t i = 0; i < n; i++) s += (double)wr[i] * (double)xr[i];
        out[j] = (float)s;
    }
}

static void ref_dot_f16(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    const uint16_t *wr = w;
    for (int j = 0; j < nx; j++) {
        const float *xr = (const float *)((const char *)x + (size_t)j * xs);
        double s = 0.0;
        for (int64_t i = 0; i < n; i++) s += (double)loft_f16_to_f32(wr[i]) * (double)xr[i];
        out[j] = (float)s;
    }
}

static void ref_dot_bf16(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    const uint16_t *wr = w;
    for (int j = 0; j < nx; j++) {
        const float *xr = (const float *)((const char *)x + (size_t)j * xs);
        double s = 0.0;
        for (int64_t i = 0; i < n; i++) s += (double)loft_bf16_to_f32(wr[i]) * (double)xr[i];
        out[j] = (float)s;
    }
}

/* ---- 32-value block types --------------------------------------------- */

static const kernels_q8 *x_q8_row(const void *x, size_t xs, int j)
{
    return (const kernels_q8 *)((const char *)x + (size_t)j * xs);
}

static void ref_dot_q4_0(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    const kq_block_q4_0 *wb = w;
    for (int j = 0; j < nx; j++) {
        const kernels_q8 *xb = x_q8_row(x, xs, j);
        float acc = 0.0f;
        for (int64_t i = 0; i < n / 32; i++) {
            int32_t s = 0;
            for (int l = 0; l < 16; l++) {
                s += (wb[i].qs[l] & 0xF) * xb[i].qs[l];
                s += (wb[i].qs[l] >> 4) * xb[i].qs[l + 16];
            }
            s -= 8 * xb[i].sum;
            acc += loft_f16_to_f32(wb[i].d) * xb[i].d * (float)s;
        }
        out[j] = acc;
    }
}

/* Q4_1 in ggml's order (llama.cpp's greedy output depends on it): per block,
 * eight 4-element integer partial sums, each scaled into its own float lane
 * by a fused multiply-add with dw * dx; the min terms summed apart; the lanes
 * folded as (0+4, 1+5, 2+6, 3+7), then (0+2, 1+3), then the two. Elements
 * 0..15 of a block are the low nibbles, 16..31 the high ones. */
static void ref_dot_q4_1(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    const kq_block_q4_1 *wb = w;
    for (int j = 0; j < nx; j++) {
        const kernels_q8 *xb = x_q8_row(x, xs, j);
        float lane[8] = {0}, mins = 0.0f;
        for (int64_t i = 0; i < n / 32; i++) {
            const float dd = loft_f16_to_f32(wb[i].d) * xb[i].d;
            for (int l = 0; l < 8; l++) {
                int32_t p = 0;
                for (int k = 4 * l; k < 4 * l + 4; k++) {
                    const int u = k < 16 ? (wb[i].qs[k] & 0xF) : (wb[i].qs[k - 16] >> 4);
                    p += u * xb[i].qs[k];
                }
                lane[l] = fmaf(dd, (float)p, lane[l]);
            }
            mins += loft_f16_to_f32(wb[i].m) * xb[i].s;
        }
        float s[4];
        for (int l = 0; l < 4; l++) s[l] = lane[l] + lane[l + 4];
        out[j] = ((s[0] + s[2]) + (s[1] + s[3])) + mins;
    }
}

/* The 5-bit values of a Q5_0/Q5_1 block, 0..31, in element order. */
static void q5_unpack(const uint8_t *qs, const uint8_t qh_bytes[4], uint8_t v[32])
{
    uint32_t qh;
    memcpy(&qh, qh_bytes, 4);
    for (int l = 0; l < 16; l++) {
        v[l] = (uint8_t)((qs[l] & 0xF) | (((qh >> l) & 1u) << 4));
        v[l + 16] = (uint8_t)((qs[l] >> 4) | (((qh >> (l + 16)) & 1u) << 4));
    }
}

static void ref_dot_q5_0(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    const kq_block_q5_0 *wb = w;
    for (int j = 0; j < nx; j++) {
        const kernels_q8 *xb = x_q8_row(x, xs, j);
        float acc = 0.0f;
        for (int64_t i = 0; i < n / 32; i++) {
            uint8_t v[32];
            q5_unpack(wb[i].qs, wb[i].qh, v);
            int32_t s = 0;
            for (int l = 0; l < 32; l++) s += v[l] * xb[i].qs[l];
            s -= 16 * xb[i].sum;
            acc += loft_f16_to_f32(wb[i].d) * xb[i].d * (float)s;
        }
        out[j] = acc;
    }
}

static void ref_dot_q8_0(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    const kq_block_q8_0 *wb = w;
    for (int j = 0; j < nx; j++) {
        const kernels_q8 *xb = x_q8_row(x, xs, j);
        float acc = 0.0f;
        for (int64_t i = 0; i < n / 32; i++) {
            int32_t s = 0;
            for (int l = 0; l < 32; l++) s += wb[i].qs[l] * xb[i].qs[l];
            acc += loft_f16_to_f32(wb[i].d) * xb[i].d * (float)s;
        }
        out[j] = acc;
    }
}

/* ---- K-quants ------------------------------------------------------------ */

static void ref_dot_q4_k(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    const kq_block_q4_k *wb = w;
    for (int j = 0; j < nx; j++) {
        const kernels_q8k *xb = (const kernels_q8k *)((const char *)x + (size_t)j * xs);
        float acc = 0.0f;
        for (int64_t i = 0; i < n / QK_K; i++) {
            uint8_t sc[8], mn[8];
            kq_q4k_scales(wb[i].scales, sc, mn);
            int32_t s = 0, smin = 0;
            for (int c = 0; c < 4; c++) {
                const uint8_t *q = wb[i].qs + 32 * c;
                const int8_t *xq = xb[i].qs + 64 * c;
                int32_t lo = 0, hi = 0;
                for (int l = 0; l < 32; l++) {
                    lo += (q[l] & 0xF) * xq[l];
                    hi += (q[l] >> 4) * xq[l + 32];
                }
                s += sc[2 * c] * lo + sc[2 * c + 1] * hi;
            }
            for (int k = 0; k < 8; k++)
                smin += mn[k] * (xb[i].bsums[2 * k] + xb[i].bsums[2 * k + 1]);
            acc += loft_f16_to_f32(wb[i].d) * xb[i].d * (float)s;
            acc -= loft_f16_to_f32(wb[i].dmin) * xb[i].d * (float)smin;
        }
        out[j] = acc;
    }
}

static void ref_dot_q6_k(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    const kq_block_q6_k *wb = w;
    for (int j = 0; j < nx; j++) {
        const kernels_q8k *xb = (const kernels_q8k *)((const char *)x + (size_t)j * xs);
        float acc = 0.0f;
        for (int64_t i = 0; i < n / QK_K; i++) {
            int32_t s = 0;
            for (int h = 0; h < 2; h++) {
                const uint8_t *ql = wb[i].ql + 64 * h, *qh = wb[i].qh + 32 * h;
                const int8_t *sc = wb[i].scales + 8 * h;
                const int8_t *xq = xb[i].qs + 128 * h;
                for (int l = 0; l < 32; l++) {
                    const int is = l / 16;
                    const int q1 = (ql[l] & 0xF) | ((qh[l] & 3) << 4);
                    const int q2 = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
                    const int q3 = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
                    const int q4 = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
                    s += sc[is] * q1 * xq[l] + sc[is + 2] * q2 * xq[l + 32] +
                         sc[is + 4] * q3 * xq[l + 64] + sc[is + 6] * q4 * xq[l + 96];
                }
            }
            int32_t corr = 0;
            for (int k = 0; k < 16; k++) corr += wb[i].scales[k] * xb[i].bsums[k];
            s -= 32 * corr;
            acc += loft_f16_to_f32(wb[i].d) * xb[i].d * (float)s;
        }
        out[j] = acc;
    }
}

/* ---- any other dequantizable block type ------------------------------- */

/* Dequantizes one weight block at a time (block size bs: 32 or QK_K) and
 * dots it in float with the dequantized activations. */
static void dot_generic(uint32_t t, int64_t n, const void *w, const void *x, size_t xs, int nx,
                        float *out)
{
    const loft_type_traits *tr = loft_type_get(t);
    const int64_t bs = tr->block_size;
    float wv[QK_K];
    for (int j = 0; j < nx; j++) {
        const char *xr = (const char *)x + (size_t)j * xs;
        double acc = 0.0;
        for (int64_t i = 0; i < n / bs; i++) {
            loft_dequantize_row(t, (const char *)w + (size_t)i * tr->type_size, wv, bs);
            if (bs == QK_K) {
                const kernels_q8k *xb = (const kernels_q8k *)xr + i;
                for (int l = 0; l < QK_K; l++) acc += (double)wv[l] * xb->qs[l] * xb->d;
            } else {
                const kernels_q8 *xb = (const kernels_q8 *)xr + i;
                for (int l = 0; l < 32; l++) acc += (double)wv[l] * xb->qs[l] * xb->d;
            }
        }
        out[j] = (float)acc;
    }
}

static void ref_dot_q5_1(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    dot_generic(LOFT_TYPE_Q5_1, n, w, x, xs, nx, out);
}

static void ref_dot_q2_k(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    dot_generic(LOFT_TYPE_Q2_K, n, w, x, xs, nx, out);
}

static void ref_dot_q3_k(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    dot_generic(LOFT_TYPE_Q3_K, n, w, x, xs, nx, out);
}

static void ref_dot_q5_k(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    dot_generic(LOFT_TYPE_Q5_K, n, w, x, xs, nx, out);
}

/* ---- attention ------------------------------------------------------------ */

/* The same sequence as layers.c's attention_forward: scaled scores, the
 * softcap, max-subtracted exponentials summed in double, weighted values. */
/* Element i of a kv row of type t (F32 or F16). */
static float kv_elem(const void *row, size_t i, uint32_t t)
{
    if (t == LOFT_TYPE_F16) return loft_f16_to_f32(((const uint16_t *)row)[i]);
    return ((const float *)row)[i];
}

static void ref_attn_group(float *out, const float *q, int ng, const void *K, size_t k_stride,
                           const void *V, size_t v_stride, uint32_t kv_type, int32_t first,
                           int32_t last, const kernels_attn *as, float *scores)
{
    const size_t esz = kv_type == LOFT_TYPE_F16 ? 2 : 4;
    const int32_t np = last - first + 1;
    for (int h = 0; h < ng; h++) {
        const float *qh = q + (size_t)h * (size_t)as->head_dim;
        float *s = scores + (size_t)h * (size_t)np;
        float mx = -INFINITY;
        for (int32_t p = first; p <= last; p++) {
            const char *kp = (const char *)K + (size_t)p * k_stride * esz;
            double d = 0.0;
            for (int32_t i = 0; i < as->head_dim; i++)
                d += (double)qh[i] * kv_elem(kp, (size_t)i, kv_type);
            float v = (float)d * as->scale;
            if (as->softcap > 0.0f) v = as->softcap * tanhf(v / as->softcap);
            s[p - first] = v;
            if (v > mx) mx = v;
        }
        double sum = 0.0;
        for (int32_t i = 0; i < np; i++) {
            s[i] = expf(s[i] - mx);
            sum += (double)s[i];
        }
        const float inv = (float)(1.0 / sum);
        float *oh = out + (size_t)h * (size_t)as->head_dim_v;
        for (int32_t d = 0; d < as->head_dim_v; d++) {
            double acc = 0.0;
            for (int32_t p = first; p <= last; p++)
                acc += (double)(s[p - first] * inv) *
                       kv_elem((const char *)V + (size_t)p * v_stride * esz, (size_t)d, kv_type);
            oh[d] = (float)acc;
        }
    }
}

/* ---- gated activations (the formulas of layers.c) ------------------------ */

static void ref_swiglu(float *out, const float *gate, const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float g = gate[i];
        out[i] = (g / (1.0f + expf(-g))) * up[i];
    }
}

static void ref_geglu(float *out, const float *gate, const float *up, int64_t n)
{
    const float c = 0.79788456080286535587989211986876f; /* sqrt(2/pi) */
    for (int64_t i = 0; i < n; i++) {
        const float x = gate[i];
        out[i] = (0.5f * x * (1.0f + tanhf(c * x * (1.0f + 0.044715f * x * x)))) * up[i];
    }
}

static void ref_geglu_f16(float *out, const float *gate, const float *up, int64_t n)
{
    const uint16_t *tab = kernels_gelu_f16_table();
    for (int64_t i = 0; i < n; i++) {
        const float g = gate[i];
        if (g <= -10.0f)
            out[i] = 0.0f;
        else if (g >= 10.0f)
            out[i] = g * up[i];
        else
            out[i] = loft_f16_to_f32(tab[loft_f32_to_f16(g)]) * up[i];
    }
}

/* ---- per-token steps of a forward pass ------------------------------------ */

static void ref_f32_to_f16(uint16_t *dst, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dst[i] = loft_f32_to_f16(x[i]);
}

/* rope_apply of layers.c, the oracle of every set's rope. */
static void ref_rope(float *x, int32_t n_heads, int32_t head_dim, int32_t n_rot, int neox,
                     const float *cs)
{
    const int32_t half = n_rot / 2;
    for (int32_t h = 0; h < n_heads; h++) {
        float *xh = x + (size_t)h * (size_t)head_dim;
        for (int32_t i0 = 0; i0 < n_rot; i0 += 2) {
            const float c = cs[i0], s = cs[i0 + 1];
            const int32_t a = neox ? i0 / 2 : i0;
            const int32_t b = neox ? i0 / 2 + half : i0 + 1;
            const float x0 = xh[a], x1 = xh[b];
            xh[a] = fmaf(x0, c, -(x1 * s));
            xh[b] = fmaf(x0, s, x1 * c);
        }
    }
}

void kernels_fill_ref(loft_kernels *kt)
{
    memset(kt, 0, sizeof *kt);
    kt->name = "ref";
    kt->quantize_q8 = ref_quantize_q8;
    kt->quantize_q8k = ref_quantize_q8k;
    kt->dot[LOFT_TYPE_F32] = ref_dot_f32;
    kt->dot[LOFT_TYPE_F16] = ref_dot_f16;
    kt->dot[LOFT_TYPE_BF16] = ref_dot_bf16;
    kt->dot[LOFT_TYPE_Q4_0] = ref_dot_q4_0;
    kt->dot[LOFT_TYPE_Q4_1] = ref_dot_q4_1;
    kt->dot[LOFT_TYPE_Q5_0] = ref_dot_q5_0;
    kt->dot[LOFT_TYPE_Q5_1] = ref_dot_q5_1;
    kt->dot[LOFT_TYPE_Q8_0] = ref_dot_q8_0;
    kt->dot[LOFT_TYPE_Q2_K] = ref_dot_q2_k;
    kt->dot[LOFT_TYPE_Q3_K] = ref_dot_q3_k;
    kt->dot[LOFT_TYPE_Q4_K] = ref_dot_q4_k;
    kt->dot[LOFT_TYPE_Q5_K] = ref_dot_q5_k;
    kt->dot[LOFT_TYPE_Q6_K] = ref_dot_q6_k;
    kt->attn_group = ref_attn_group;
    kt->swiglu = ref_swiglu;
    kt->geglu = ref_geglu;
    kt->geglu_f16 = ref_geglu_f16;
    kt->f32_to_f16 = ref_f32_to_f16;
    kt->rope = ref_rope;
}
