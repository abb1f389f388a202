/* layers_backward.c - backward passes of the layer functions (see
 * layers_backward.h for the conventions and shapes). */
#include "model/layers_backward.h"

#include <math.h>
#include <string.h>

#include "quant/quant.h"

/* ---- rmsnorm ----------------------------------------------------------- */

void rmsnorm_forward_save(float *out, float *inv_rms, const float *x, const float *w, int64_t T,
                          int64_t n, float eps)
{
    for (int64_t t = 0; t < T; t++) {
        const float *xr = x + t * n;
        double sum = 0.0;
        for (int64_t i = 0; i < n; i++)
            sum += (double)(xr[i] * xr[i]);
        const float mean = (float)(sum / (double)n);
        inv_rms[t] = 1.0f / sqrtf(mean + eps);
    }
    rmsnorm_forward(out, x, w, T, n, eps);
}

void rmsnorm_backward(float *dx, const float *dy, const float *x, const float *w,
                      const float *inv_rms, int64_t T, int64_t n)
{
    /* y_i = x_i s w_i with s = (mean(x^2) + eps)^-1/2, so
     * dx_i = s g_i - x_i s^3 / n * sum_j g_j x_j, where g = dy * w. */
    for (int64_t t = 0; t < T; t++) {
        const float *xr = x + t * n, *g = dy + t * n;
        float *d = dx + t * n;
        const double s = inv_rms[t];
        double dot = 0.0;
        for (int64_t i = 0; i < n; i++)
            dot += (double)(w ? g[i] * w[i] : g[i]) * (double)xr[i];
        const float a = (float)s;
        const float b = (float)(dot * s * s * s / (double)n);
        for (int64_t i = 0; i < n; i++)
            d[i] += a * (w ? g[i] * w[i] : g[i]) - b * xr[i];
    }
}

/* ---- rope -------------------------------------------------------------- */

void rope_backward(float *dx, int32_t n_heads, int32_t head_dim, const float *cs,
                   const rope_params *rp)
{
    const int32_t half = rp->n_rot / 2;
    for (int32_t h = 0; h < n_heads; h++) {
        float *xh = dx + (size_t)h * (size_t)head_dim;
        for (int32_t i0 = 0; i0 < rp->n_rot; i0 += 2) {
            const float c = cs[i0], s = cs[i0 + 1];
            const int32_t a = rp->neox ? i0 / 2 : i0;
            const int32_t b = rp->neox ? i0 / 2 + half : i0 + 1;
            const float g0 = xh[a], g1 = xh[b];
            xh[a] = g0 * c + g1 * s;
            xh[b] = -g0 * s + g1 * c;
        }
    }
}

/* ---- attention --------------------------------------------------------- */

static int32_t attn_first(int32_t i, int32_t window)
{
    return (window > 0 && i - window + 1 > 0) ? i - window + 1 : 0;
}

void attention_seq_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                           int32_t T, const attn_shape *as)
{
    const int32_t group = as->n_head / as->n_head_kv;
    const size_t qs = (size_t)as->n_head * (size_t)as->head_dim;
    const size_t ks = (size_t)as->n_head_kv * (size_t)as->head_dim;
    const size_t vs = (size_t)as->n_head_kv * (size_t)as->head_dim_v;
    const size_t os = (size_t)as->n_head * (size_t)as->head_dim_v;
    for (int32_t h = 0; h < as->n_head; h++) {
        const int32_t hk = h / group;
        for (int32_t i = 0; i < T; i++) {
            float *p = probs + ((size_t)h * (size_t)T + (size_t)i) * (size_t)T;
            const float *qi = q + (size_t)i * qs + (size_t)h * (size_t)as->head_dim;
            const int32_t first = attn_first(i, as->window);
            memset(p, 0, (size_t)T * sizeof *p);
            float mx = -INFINITY;
            for (int32_t j = first; j <= i; j++) {
                const float *kj = k + (size_t)j * ks + (size_t)hk * (size_t)as->head_dim;
                p[j] = dot_f32(qi, kj, as->head_dim) * as->scale;
                if (p[j] > mx) mx = p[j];
            }
            double sum = 0.0;
            for (int32_t j = first; j <= i; j++) {
                p[j] = expf(p[j] - mx);
                sum += (double)p[j];
            }
            const float inv = (float)(1.0 / sum);
            float *o = out + (size_t)i * os + (size_t)h * (size_t)as->head_dim_v;
            for (int32_t d = 0; d < as->head_dim_v; d++)
                o[d] = 0.0f;
            for (int32_t j = first; j <= i; j++) {
                p[j] *= inv;
                const float *vj = v + (size_t)j * vs + (size_t)hk * (size_t)as->head_dim_v;
                for (int32_t d = 0; d < as->head_dim_v; d++)
                    o[d] += p[j] * vj[d];
            }
        }
    }
}

void attention_seq_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                            const float *q, const float *k, const float *v, int32_t T,
                            const attn_shape *as, float *scratch)
{
    const int32_t group = as->n_head / as->n_head_kv;
    const size_t qs = (size_t)as->n_head * (size_t)as->head_dim;
    const size_t ks = (size_t)as->n_head_kv * (size_t)as->head_dim;
    const size_t vs = (size_t)as->n_head_kv * (size_t)as->head_dim_v;
    const size_t os = (size_t)as->n_head * (size_t)as->head_dim_v;
    const int32_t hd = as->head_dim, hdv = as->head_dim_v;
    for (int32_t h = 0; h < as->n_head; h++) {
        const int32_t hk = h / group;
        for (int32_t i = 0; i < T; i++) {
            const float *p = probs + ((size_t)h * (size_t)T + (size_t)i) * (size_t)T;
            const float *go = dout + (size_t)i * os + (size_t)h * (size_t)hdv;
            const float *qi = q + (size_t)i * qs + (size_t)h * (size_t)hd;
            float *dqi = dq + (size_t)i * qs + (size_t)h * (size_t)hd;
            const int32_t first = attn_first(i, as->window);
            /* dP_ij = dout_i . v_j; dS_ij = P_ij (dP_ij - sum_j P_ij dP_ij) */
            double pd = 0.0;
            for (int32_t j = first; j <= i; j++) {
                const float *vj = v + (size_t)j * vs + (size_t)hk * (size_t)hdv;
                float *dvj = dv + (size_t)j * vs + (size_t)hk * (size_t)hdv;
                scratch[j] = dot_f32(go, vj, hdv);
                pd += (double)p[j] * (double)scratch[j];
                for (int32_t d = 0; d < hdv; d++)
                    dvj[d] += p[j] * go[d];
            }
            for (int32_t j = first; j <= i; j++) {
                const float ds = p[j] * (scratch[j] - (float)pd) * as->scale;
                const float *kj = k + (size_t)j * ks + (size_t)hk * (size_t)hd;
                float *dkj = dk + (size_t)j * ks + (size_t)hk * (size_t)hd;
                for (int32_t d = 0; d < hd; d++) {
                    dqi[d] += ds * kj[d];
                    dkj[d] += ds * qi[d];
                }
            }
        }
    }
}

/* ---- gated activations ------------------------------------------------- */

void swiglu_backward(float *dgate, float *dup, const float *dh, const float *gate, const float *up,
                     int64_t T, int64_t n)
{
    const int64_t total = T * n;
    for (int64_t i = 0; i < total; i++) {
        const float g = gate[i];
        const float sg = 1.0f / (1.0f + expf(-g));
        const float silu = g * sg;
        dgate[i] += dh[i] * up[i] * sg * (1.0f + g * (1.0f - sg));
        dup[i] += dh[i] * silu;
    }
}

void geglu_backward(float *dgate, float *dup, const float *dh, const float *gate, const float *up,
                    int64_t T, int64_t n)
{
    const float c = 0.79788456080286535587989211986876f;
    const int64_t total = T * n;
    for (int64_t i = 0; i < total; i++) {
        const float x = gate[i];
        const float u = c * x * (1.0f + 0.044715f * x * x);
        const float th = tanhf(u);
        const float du_dx = c * (1.0f + 3.0f * 0.044715f * x * x);
        const float dgelu = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du_dx;
        dgate[i] += dh[i] * up[i] * dgelu;
        dup[i] += dh[i] * gelu_tanh(x);
    }
}

/* ---- frozen matmul ----------------------------------------------------- */

#define BWD_ROWS 16

/* d[0..n) += sum_r g[r] * rows[r][0..n) for nr <= BWD_ROWS rows n apart:
 * each slice of d is loaded once, updated by every row, stored once. */
static void axpy_rows_ref(float *d, const float *rows, const float *g, int64_t nr, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        float acc[16];
        for (int j = 0; j < 16; j++)
            acc[j] = d[i + j];
        for (int64_t r = 0; r < nr; r++) {
            const float gr = g[r];
            const float *row = rows + r * n + i;
            for (int j = 0; j < 16; j++)
                acc[j] += gr * row[j];
        }
        for (int j = 0; j < 16; j++)
            d[i + j] = acc[j];
    }
    for (; i < n; i++)
        for (int64_t r = 0; r < nr; r++)
            d[i] += g[r] * rows[r * n + i];
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(LOFT_NO_ISA_KERNELS)
#include <immintrin.h>
#define BWD_HAVE_AVX2 1

__attribute__((target("avx2,fma"))) static void
axpy_rows_avx2(float *d, const float *rows, const float *g, int64_t nr, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a0 = _mm256_loadu_ps(d + i), a1 = _mm256_loadu_ps(d + i + 8);
        for (int64_t r = 0; r < nr; r++) {
            const __m256 gr = _mm256_set1_ps(g[r]);
            const float *row = rows + r * n + i;
            a0 = _mm256_fmadd_ps(gr, _mm256_loadu_ps(row), a0);
            a1 = _mm256_fmadd_ps(gr, _mm256_loadu_ps(row + 8), a1);
        }
        _mm256_storeu_ps(d + i, a0);
        _mm256_storeu_ps(d + i + 8, a1);
    }
    for (; i < n; i++)
        for (int64_t r = 0; r < nr; r++)
            d[i] += g[r] * rows[r * n + i];
}
#endif

typedef void (*axpy_rows_fn)(float *, const float *, const float *, int64_t, int64_t);

static axpy_rows_fn pick_axpy(void)
{
#ifdef BWD_HAVE_AVX2
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return axpy_rows_avx2;
#endif
    return axpy_rows_ref;
}

void matmul_qw_backward_x(float *dx, const float *dy, const model_weight *w, int64_t T, int64_t t0,
                          int64_t t1, float *row_buf)
{
    const uint8_t *base = w->data;
    const int64_t n_in = w->n_in, n_out = w->n_out;
    const axpy_rows_fn axpy = pick_axpy();
    (void)T;
    for (int64_t r0 = 0; r0 < n_out; r0 += BWD_ROWS) {
        const int64_t nr = n_out - r0 < BWD_ROWS ? n_out - r0 : BWD_ROWS;
        for (int64_t r = 0; r < nr; r++) {
            const uint8_t *src = base + (size_t)(r0 + r) * w->row_bytes;
            float *dst = row_buf + (size_t)r * (size_t)n_in;
            if (w->type == LOFT_TYPE_F32)
                memcpy(dst, src, (size_t)n_in * sizeof(float));
            else
                loft_dequantize_row(w->type, src, dst, n_in);
        }
        for (int64_t t = t0; t < t1; t++)
            axpy(dx + t * n_in, row_buf, dy + t * n_out + r0, nr, n_in);
    }
}
