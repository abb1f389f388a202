/* layers.c - reference layer functions (see layers.h for the shapes). */
#include "model/layers.h"

#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "quant/quant.h"

/* ---- matmul ------------------------------------------------------------ */

float dot_f32(const float *a, const float *b, int64_t n)
{
    /* Sixteen independent partial sums: a fixed summation order that the
     * compiler can still keep in vector registers without -ffast-math. */
    float acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += a[i + j] * b[i + j];
    for (; i < n; i++) acc[i & 15] += a[i] * b[i];
    for (int w = 8; w >= 1; w /= 2)
        for (int j = 0; j < w; j++) acc[j] += acc[j + w];
    return acc[0];
}

void matmul_qw(float *y, const float *x, const model_weight *w, int64_t T, float *row_buf)
{
    const uint8_t *base = w->data;
    const int64_t n_in = w->n_in, n_out = w->n_out;
    for (int64_t r = 0; r < n_out; r++) {
        const float *row;
        if (w->type == LOFT_TYPE_F32) {
            row = (const float *)(base + (size_t)r * w->row_bytes);
        } else {
            loft_dequantize_row(w->type, base + (size_t)r * w->row_bytes, row_buf, n_in);
            row = row_buf;
        }
        for (int64_t t = 0; t < T; t++) y[t * n_out + r] = dot_f32(row, x + t * n_in, n_in);
    }
}

void add_bias(float *x, const float *b, int64_t T, int64_t n)
{
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < n; i++) x[t * n + i] += b[i];
}

/* ---- normalization ----------------------------------------------------- */

/* Rows whose sums of squares run side by side. Each row's sum is still
 * one chain of double adds in index order (the bits do not change), but
 * one chain alone waits on every add's latency; eight keep the adder busy. */
#define RMSNORM_ROWS 8

/* o = xr * (1 / sqrt(sum / n + eps)) (* w), sum the row's sum of squares.
 * o may be xr. Four values are read before any is written, so the
 * compiler may do them as vector products (same roundings) without
 * proving that o and xr do not overlap. */
static void rmsnorm_scale_row(float *o, const float *xr, const float *w, int64_t n, double sum,
                              float eps)
{
    const float mean = (float)(sum / (double)n);
    const float s = 1.0f / sqrtf(mean + eps);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float v[4], g[4] = {1.0f, 1.0f, 1.0f, 1.0f};
        memcpy(v, xr + i, sizeof v);
        if (w) memcpy(g, w + i, sizeof g);
        _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) v[k] *= s;
        if (w) _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) v[k] *= g[k];
        memcpy(o + i, v, sizeof v);
    }
    for (; i < n; i++) o[i] = w ? (xr[i] * s) * w[i] : xr[i] * s;
}

void rmsnorm_forward(float *out, const float *x, const float *w, int64_t T, int64_t n, float eps)
{
    int64_t t = 0;
    /* Squares summed in double, as ggml does, so long rows lose nothing. */
    for (; t + RMSNORM_ROWS <= T; t += RMSNORM_ROWS) {
        const float *xr = x + t * n;
        double sum[RMSNORM_ROWS] = {0};
        for (int64_t i = 0; i < n; i++) {
            _Pragma("GCC unroll 8") for (int r = 0; r < RMSNORM_ROWS; r++)
            {
                const float v = xr[r * n + i];
                sum[r] += (double)(v * v);
            }
        }
        for (int r = 0; r < RMSNORM_ROWS; r++)
            rmsnorm_scale_row(out + (t + r) * n, xr + r * n, w, n, sum[r], eps);
    }
    for (; t < T; t++) {
        const float *xr = x + t * n;
        double sum = 0.0;
        for (int64_t i = 0; i < n; i++) sum += (double)(xr[i] * xr[i]);
        rmsnorm_scale_row(out + t * n, xr, w, n, sum, eps);
    }
}

/* ---- rope -------------------------------------------------------------- */

void rope_cache(float *cs, int32_t pos, const rope_params *rp)
{
    const float theta_scale = powf(rp->freq_base, -2.0f / (float)rp->n_rot);
    float theta = (float)pos;
    for (int32_t i0 = 0; i0 < rp->n_rot; i0 += 2) {
        const float ff = rp->freq_factors ? rp->freq_factors[i0 / 2] : 1.0f;
        const float angle = rp->freq_scale * (theta / ff);
        cs[i0] = cosf(angle);
        cs[i0 + 1] = sinf(angle);
        theta *= theta_scale;
    }
}

void rope_apply(float *x, int32_t n_heads, int32_t head_dim, const float *cs,
                const rope_params *rp)
{
    const int32_t half = rp->n_rot / 2;
    for (int32_t h = 0; h < n_heads; h++) {
        float *xh = x + (size_t)h * (size_t)head_dim;
        for (int32_t i0 = 0; i0 < rp->n_rot; i0 += 2) {
            const float c = cs[i0], s = cs[i0 + 1];
            const int32_t a = rp->neox ? i0 / 2 : i0;
            const int32_t b = rp->neox ? i0 / 2 + half : i0 + 1;
            const float x0 = xh[a], x1 = xh[b];
            /* one product rounded, the other fused: the roundings of
             * ggml's compiled rope, so q and k agree with llama.cpp's */
            xh[a] = fmaf(x0, c, -(x1 * s));
            xh[b] = fmaf(x0, s, x1 * c);
        }
    }
}

/* ---- attention --------------------------------------------------------- */

void attention_forward(float *out, const float *q, const float *K, const float *V, int32_t pos,
                       const attn_shape *as, float *scores)
{
    const int32_t group = as->n_head / as->n_head_kv;
    const size_t k_stride = (size_t)as->n_head_kv * (size_t)as->head_dim;
    const size_t v_stride = (size_t)as->n_head_kv * (size_t)as->head_dim_v;
    int32_t first = 0;
    if (as->window > 0 && pos - as->window + 1 > 0) first = pos - as->window + 1;

    for (int32_t h = 0; h < as->n_head; h++) {
        const int32_t hk = h / group;
        const float *qh = q + (size_t)h * (size_t)as->head_dim;
        float mx = -INFINITY;
        for (int32_t p = first; p <= pos; p++) {
            const float *kp = K + (size_t)p * k_stride + (size_t)hk * (size_t)as->head_dim;
            float s = dot_f32(qh, kp, as->head_dim) * as->scale;
            if (as->softcap > 0.0f) s = as->softcap * tanhf(s / as->softcap);
            scores[p] = s;
            if (s > mx) mx = s;
        }
        double sum = 0.0;
        for (int32_t p = first; p <= pos; p++) {
            const float e = expf(scores[p] - mx);
            scores[p] = e;
            sum += (double)e;
        }
        const float inv = (float)(1.0 / sum);
        float *oh = out + (size_t)h * (size_t)as->head_dim_v;
        for (int32_t d = 0; d < as->head_dim_v; d++) oh[d] = 0.0f;
        for (int32_t p = first; p <= pos; p++) {
            const float wgt = scores[p] * inv;
            const float *vp = V + (size_t)p * v_stride + (size_t)hk * (size_t)as->head_dim_v;
            for (int32_t d = 0; d < as->head_dim_v; d++) oh[d] += wgt * vp[d];
        }
    }
}

/* ---- feed-forward activations ------------------------------------------ */

void swiglu_forward(float *out, const float *gate, const float *up, int64_t T, int64_t n)
{
    const int64_t total = T * n;
    for (int64_t i = 0; i < total; i++) {
        const float g = gate[i];
        out[i] = (g / (1.0f + expf(-g))) * up[i];
    }
}

void swiglu_ggml_forward(float *out, const float *gate, const float *up, int64_t n)
{
    const int64_t n_vec = n / 16 * 16;
    kernels_silu_mul_ggml(out, gate, up, n_vec);
    for (int64_t i = n_vec; i < n; i++) {
        const float g = gate[i];
        out[i] = (g / (1.0f + expf(-g))) * up[i];
    }
}

float gelu_tanh(float x)
{
    const float sqrt_2_over_pi = 0.79788456080286535587989211986876f;
    return 0.5f * x * (1.0f + tanhf(sqrt_2_over_pi * x * (1.0f + 0.044715f * x * x)));
}

void geglu_forward(float *out, const float *gate, const float *up, int64_t T, int64_t n)
{
    const int64_t total = T * n;
    for (int64_t i = 0; i < total; i++) out[i] = gelu_tanh(gate[i]) * up[i];
}

void softcap_apply(float *x, int64_t n, float cap)
{
    for (int64_t i = 0; i < n; i++) x[i] = cap * tanhf(x[i] / cap);
}

/* ---- embedding --------------------------------------------------------- */

void embedding_lookup(float *dst, const model_weight *table, int32_t id, float scale)
{
    const uint8_t *row = (const uint8_t *)table->data + (size_t)id * table->row_bytes;
    if (table->type == LOFT_TYPE_F32)
        memcpy(dst, row, (size_t)table->n_in * sizeof(float));
    else
        loft_dequantize_row(table->type, row, dst, table->n_in);
    if (scale != 1.0f)
        for (int64_t i = 0; i < table->n_in; i++) dst[i] *= scale;
}
