/* attn_mm.c - whole-sequence attention as per-head GEMMs (see attn_mm.h).
 * The products run over all T x T pairs; the causal zeros of the
 * probabilities make the masked pairs contribute nothing. */
#include "train/attn_mm.h"

#include <math.h>

#include "train/fgemm.h"

size_t attn_mm_scratch(int32_t T, const attn_shape *as)
{
    const uint64_t t = (uint64_t)(T > 0 ? T : 0);
    const uint64_t hd = (uint64_t)(as->head_dim > as->head_dim_v ? as->head_dim : as->head_dim_v);
    if (t > 0 && (3u * t + hd) > (SIZE_MAX / sizeof(float)) / t) return 0;
    return (size_t)(t * (3u * t + hd));
}

static int32_t first_of(int32_t i, int32_t window)
{
    return (window > 0 && i - window + 1 > 0) ? i - window + 1 : 0;
}

/* dst: (n, T) = the n columns at src (T rows, ld apart) transposed. */
static void gather_t(float *dst, const float *src, size_t ld, int32_t T, int32_t n)
{
    for (int32_t j = 0; j < T; j++)
        for (int32_t d = 0; d < n; d++)
            dst[(size_t)d * (size_t)T + (size_t)j] = src[(size_t)j * ld + (size_t)d];
}

/* dst: (T, T) = src transposed. */
static void transpose_sq(float *dst, const float *src, int32_t T)
{
    for (int32_t i = 0; i < T; i++)
        for (int32_t j = 0; j < T; j++)
            dst[(size_t)j * (size_t)T + (size_t)i] = src[(size_t)i * (size_t)T + (size_t)j];
}

void attn_mm_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                     int32_t T, const attn_shape *as, int32_t kv0, int32_t kv1, float *scratch)
{
    const int32_t group = as->n_head / as->n_head_kv;
    const size_t qs = (size_t)as->n_head * (size_t)as->head_dim;
    const size_t ks = (size_t)as->n_head_kv * (size_t)as->head_dim;
    const size_t vs = (size_t)as->n_head_kv * (size_t)as->head_dim_v;
    const size_t os = (size_t)as->n_head * (size_t)as->head_dim_v;
    const int32_t hd = as->head_dim, hdv = as->head_dim_v;
    float *kt = scratch; /* (hd, T) */
    for (int32_t hk = kv0; hk < kv1; hk++) {
        gather_t(kt, k + (size_t)hk * (size_t)hd, ks, T, hd);
        for (int32_t h = hk * group; h < (hk + 1) * group; h++) {
            float *P = probs + (size_t)h * (size_t)T * (size_t)T;
            fgemm(NULL, T, T, hd, q + (size_t)h * (size_t)hd, (int64_t)qs, kt, T, P, T, false);
            for (int32_t i = 0; i < T; i++) {
                float *p = P + (size_t)i * (size_t)T;
                const int32_t first = first_of(i, as->window);
                float mx = -INFINITY;
                for (int32_t j = first; j <= i; j++) {
                    p[j] *= as->scale;
                    if (p[j] > mx) mx = p[j];
                }
                double sum = 0.0;
                for (int32_t j = first; j <= i; j++) {
                    p[j] = expf(p[j] - mx);
                    sum += (double)p[j];
                }
                const float inv = (float)(1.0 / sum);
                for (int32_t j = 0; j < first; j++)
                    p[j] = 0.0f;
                for (int32_t j = first; j <= i; j++)
                    p[j] *= inv;
                for (int32_t j = i + 1; j < T; j++)
                    p[j] = 0.0f;
            }
            fgemm(NULL, T, hdv, T, P, T, v + (size_t)hk * (size_t)hdv, (int64_t)vs,
                  out + (size_t)h * (size_t)hdv, (int64_t)os, false);
        }
    }
}

void attn_mm_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                      const float *q, const float *k, const float *v, int32_t T,
                      const attn_shape *as, int32_t kv0, int32_t kv1, float *scratch)
{
    const int32_t group = as->n_head / as->n_head_kv;
    const size_t qs = (size_t)as->n_head * (size_t)as->head_dim;
    const size_t ks = (size_t)as->n_head_kv * (size_t)as->head_dim;
    const size_t vs = (size_t)as->n_head_kv * (size_t)as->head_dim_v;
    const size_t os = (size_t)as->n_head * (size_t)as->head_dim_v;
    const int32_t hd = as->head_dim, hdv = as->head_dim_v;
    const size_t TT = (size_t)T * (size_t)T;
    float *dP = scratch, *dS = dP + TT, *tr = dS + TT, *vt = tr + TT; /* vt: (hdv, T) */
    for (int32_t hk = kv0; hk < kv1; hk++) {
        gather_t(vt, v + (size_t)hk * (size_t)hdv, vs, T, hdv);
        for (int32_t h = hk * group; h < (hk + 1) * group; h++) {
            const float *P = probs + (size_t)h * TT;
            const float *go = dout + (size_t)h * (size_t)hdv;
            /* dP_ij = dout_i . v_j; dS_ij = P_ij (dP_ij - sum_j P_ij dP_ij) */
            fgemm(NULL, T, T, hdv, go, (int64_t)os, vt, T, dP, T, false);
            for (int32_t i = 0; i < T; i++) {
                const float *p = P + (size_t)i * (size_t)T, *g = dP + (size_t)i * (size_t)T;
                float *s = dS + (size_t)i * (size_t)T;
                const int32_t first = first_of(i, as->window);
                double pd = 0.0;
                for (int32_t j = first; j <= i; j++)
                    pd += (double)p[j] * (double)g[j];
                for (int32_t j = 0; j < T; j++)
                    s[j] = (j >= first && j <= i) ? p[j] * (g[j] - (float)pd) * as->scale : 0.0f;
            }
            fgemm(NULL, T, hd, T, dS, T, k + (size_t)hk * (size_t)hd, (int64_t)ks,
                  dq + (size_t)h * (size_t)hd, (int64_t)qs, true);
            transpose_sq(tr, dS, T);
            fgemm(NULL, T, hd, T, tr, T, q + (size_t)h * (size_t)hd, (int64_t)qs,
                  dk + (size_t)hk * (size_t)hd, (int64_t)ks, true);
            transpose_sq(tr, P, T);
            fgemm(NULL, T, hdv, T, tr, T, go, (int64_t)os, dv + (size_t)hk * (size_t)hdv,
                  (int64_t)vs, true);
        }
    }
}
