/*
 * attn_ggml.c - attention over an F16 cache computed the way ggml's CPU
 * backend computes it (llama.cpp without flash attention, AVX-512 build),
 * so that loft's 8-bit path and llama.cpp agree to the last bit and their
 * greedy continuations do not part on a rounding.
 *
 * What ggml does, step by step (facts read from its sources):
 *  - K.q is a matrix product of the F16 keys with the queries converted to
 *    F16 (round to nearest even). With one query token it runs ggml's F16
 *    dot product: four 16-lane F32 accumulators fed by fused multiply-adds
 *    over steps of 64 elements, folded as (a0 + a2) + (a1 + a3), then a
 *    16-lane horizontal sum, then the leftover elements added in double.
 *    With several tokens it runs llamafile's gemm: one 16-lane accumulator
 *    fed 16 elements at a time, then the same horizontal sum.
 *  - The softmax scales the scores by the float scale, takes the row max,
 *    and computes e^(s - max) with ggml's vector expf (a polynomial, not
 *    libm's expf) 16 cache cells at a time; each group of 16 is summed
 *    horizontally in float and added to a double total. Masked cells give
 *    0. The probabilities are multiplied by (float)(1 / total).
 *  - P.V is a matrix product of the transposed F16 values with the
 *    probabilities converted to F16: the same two orders as K.q, the cache
 *    cell index being the summed dimension.
 * fmaf is a correctly rounded fused multiply-add, so a scalar lane-by-lane
 * emulation gives the vector results exactly. That emulation is the
 * portable body and the oracle; where the avx512 kernel set is in use
 * (cpuid and LOFT_ISA, see kernels_get) an AVX-512 body performs the same
 * operations on real 16-lane registers (tests/unit/test_attn_ggml.c holds
 * it to the scalar body bit for bit). attn_ggml_tokens.c does the same for
 * several prompt tokens at once; attn_ggml_v.h holds the vector pieces
 * both use.
 */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernels/attn_ggml.h"
#include "kernels/attn_ggml_v.h"
#include "kernels/kernels.h"

/* F16 -> F32 of every half, built once (attn_init). */
static float f16_table[1 << 16];

static void f16_table_build(void)
{
    for (uint32_t h = 0; h < (1u << 16); h++)
        f16_table[h] = loft_f16_to_f32((uint16_t)h);
}

/* The horizontal sum of 16 lanes in the order GCC's _mm512_reduce_add_ps
 * uses: halves of 8, then of 4, then lanes (0 + 2) and (1 + 3). */
AG_INLINE float reduce16(const float v[LANES])
{
    float a[8], b[4];
    for (int i = 0; i < 8; i++)
        a[i] = v[8 + i] + v[i];
    for (int i = 0; i < 4; i++)
        b[i] = a[4 + i] + a[i];
    return (b[0] + b[2]) + (b[1] + b[3]);
}


AG_INLINE float to_f16(float v)
{
    return f16_table[loft_f32_to_f16(v)];
}

/* q.k for one key row k (floats that are F16 values) and a query row qh of
 * hd F16-rounded floats, in ggml's order for `mode` (see the top). */
AG_INLINE float qk_ggml(int mode, int32_t hd, const float *qh, const float *k)
{
    if (mode == KERNELS_ATTN_GGML_BATCH && hd % LANES == 0) {
        float acc[LANES] = {0};
        for (int32_t l = 0; l < hd; l += LANES)
            for (int i = 0; i < LANES; i++)
                acc[i] = fmaf(k[l + i], qh[l + i], acc[i]);
        return reduce16(acc);
    }
    float acc[4][LANES];
    memset(acc, 0, sizeof acc);
    const int32_t np = hd / (4 * LANES) * (4 * LANES);
    for (int32_t i = 0; i < np; i += 4 * LANES)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < LANES; l++)
                acc[j][l] = fmaf(qh[i + j * LANES + l], k[i + j * LANES + l], acc[j][l]);
    for (int l = 0; l < LANES; l++) {
        acc[0][l] = acc[0][l] + acc[2][l];
        acc[1][l] = acc[1][l] + acc[3][l];
        acc[0][l] = acc[0][l] + acc[1][l];
    }
    double sum = (double)reduce16(acc[0]);
    for (int32_t e = np; e < hd; e++)
        sum += (double)(qh[e] * k[e]);
    return (float)sum;
}

/* out[d0 .. d0 + nd) = P.V for one head: probabilities pr[first..last]
 * (F16-rounded floats), values of cell p at V + p * v_stride. The cell
 * index is ggml's summed dimension: lane p % 16 (and, decoding,
 * accumulator p / 16 % 4), so each output dimension is the ggml sum. */
AG_INLINE void pv_ggml(int mode, float *out, const float *pr, const uint16_t *V, size_t v_stride,
                       int32_t first, int32_t last, int32_t d0, int32_t nd)
{
    const int n_acc = mode == KERNELS_ATTN_GGML_BATCH ? 1 : 4;
    float acc[4][LANES][V_TILE];
    memset(acc, 0, sizeof(float) * (size_t)n_acc * LANES * V_TILE);
    float vr[V_TILE];
    for (int32_t p = first; p <= last; p++) {
        const uint16_t *vp = V + (size_t)p * v_stride + (size_t)d0;
        const float w = pr[p];
        float *a = acc[n_acc == 1 ? 0 : (p / LANES) % 4][p % LANES];
        for (int32_t d = 0; d < nd; d++)
            vr[d] = f16_table[vp[d]];
        for (int32_t d = 0; d < nd; d++)
            a[d] = fmaf(w, vr[d], a[d]);
    }
    for (int32_t d = 0; d < nd; d++) {
        float lane[LANES];
        for (int l = 0; l < LANES; l++) {
            float v = acc[0][l][d];
            if (n_acc == 4) {
                const float a02 = acc[0][l][d] + acc[2][l][d];
                const float a13 = acc[1][l][d] + acc[3][l][d];
                v = a02 + a13;
            }
            lane[l] = v;
        }
        out[d] = reduce16(lane);
    }
}

AG_INLINE void attn_body(float *out, const float *q, int ng, const void *K, size_t k_stride,
                         const void *V, size_t v_stride, int32_t first, int32_t last,
                         const kernels_attn *as, float *scores)
{
    const int mode = as->f16_products;
    const int32_t hd = as->head_dim, hdv = as->head_dim_v;
    const int64_t n_cells = (int64_t)last + 1;
    const int64_t n_pad = (n_cells + LANES - 1) / LANES * LANES;
    float qh[KERNELS_MAX_NX][KERNELS_ATTN_GGML_MAX_HD];
    float kr[KERNELS_ATTN_GGML_MAX_HD];
    float mx[KERNELS_MAX_NX];
    for (int h = 0; h < ng; h++) {
        for (int32_t i = 0; i < hd; i++)
            qh[h][i] = to_f16(q[(size_t)h * (size_t)hd + (size_t)i]);
        mx[h] = -INFINITY;
    }
    /* scores: one key row converted once for all ng heads */
    for (int32_t p = first; p <= last; p++) {
        const uint16_t *kp = (const uint16_t *)K + (size_t)p * k_stride;
        for (int32_t i = 0; i < hd; i++)
            kr[i] = f16_table[kp[i]];
        for (int h = 0; h < ng; h++) {
            float v = qk_ggml(mode, hd, qh[h], kr) * as->scale;
            if (as->softcap > 0.0f) v = as->softcap * tanhf(v / as->softcap);
            scores[(size_t)h * (size_t)n_cells + (size_t)p] = v;
            if (v > mx[h]) mx[h] = v;
        }
    }
    for (int h = 0; h < ng; h++) {
        float *s = scores + (size_t)h * (size_t)n_cells;
        /* groups of 16 cells from cell 0; cells outside first..last are
         * masked and give 0 */
        double sum = 0.0;
        for (int64_t c = first / LANES * LANES; c < n_pad; c += LANES) {
            float e[LANES];
            for (int i = 0; i < LANES; i++) {
                const int64_t p = c + i;
                e[i] = 0.0f;
                if (p >= first && p <= last) e[i] = s[p] = expf_ggml_body(s[p] - mx[h]);
            }
            sum += (double)reduce16(e);
        }
        const float inv = (float)(1.0 / sum);
        for (int32_t p = first; p <= last; p++)
            s[p] = to_f16(s[p] * inv);
        float *oh = out + (size_t)h * (size_t)hdv;
        for (int32_t d0 = 0; d0 < hdv; d0 += V_TILE)
            pv_ggml(mode, oh + d0, s, (const uint16_t *)V, v_stride, first, last, d0,
                    hdv - d0 < V_TILE ? hdv - d0 : V_TILE);
    }
}

static void attn_generic(float *out, const float *q, int ng, const void *K, size_t k_stride,
                         const void *V, size_t v_stride, int32_t first, int32_t last,
                         const kernels_attn *as, float *scores)
{
    attn_body(out, q, ng, K, k_stride, V, v_stride, first, last, as, scores);
}

#if AG_HAVE_TARGET
AG_FMA_TARGET static void attn_fma(float *out, const float *q, int ng, const void *K,
                                   size_t k_stride, const void *V, size_t v_stride, int32_t first,
                                   int32_t last, const kernels_attn *as, float *scores)
{
    attn_body(out, q, ng, K, k_stride, V, v_stride, first, last, as, scores);
}

AG_FMA_TARGET static float expf_fma(float x)
{
    return expf_ggml_body(x);
}
#endif

#if AG_HAVE_AVX512
/* qk_ggml with the key row as halves. */
AG_512_INLINE float qk_ggml_v(int mode, int32_t hd, const float *qh, const uint16_t *k)
{
    if (mode == KERNELS_ATTN_GGML_BATCH && hd % LANES == 0) {
        __m512 acc = _mm512_setzero_ps();
        for (int32_t l = 0; l < hd; l += LANES)
            acc = _mm512_fmadd_ps(load_h16(k + l, LANES), _mm512_loadu_ps(qh + l), acc);
        return reduce16_v(acc);
    }
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const int32_t np = hd / (4 * LANES) * (4 * LANES);
    for (int32_t i = 0; i < np; i += 4 * LANES) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(qh + i), load_h16(k + i, LANES), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(qh + i + 16), load_h16(k + i + 16, LANES), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(qh + i + 32), load_h16(k + i + 32, LANES), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(qh + i + 48), load_h16(k + i + 48, LANES), a3);
    }
    a0 = _mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3));
    double sum = (double)reduce16_v(a0);
    for (int32_t e = np; e < hd; e += LANES) {
        const int n = hd - e < LANES ? (int)(hd - e) : LANES;
        float pr[LANES];
        const __mmask16 m = (__mmask16)(n >= 16 ? 0xffffu : (1u << n) - 1u);
        _mm512_storeu_ps(pr, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, qh + e), load_h16(k + e, n)));
        for (int i = 0; i < n; i++)
            sum += (double)pr[i];
    }
    return (float)sum;
}

/* The vector whose reduce16 is qk_ggml, when no leftover is added in
 * double (BATCH with hd % 16 == 0, or hd % 64 == 0), for a key row
 * already converted to floats (exact: every half is a float). */
AG_512_INLINE __m512 qk_vec_v(int mode, int32_t hd, const float *qh, const float *k)
{
    if (mode == KERNELS_ATTN_GGML_BATCH && hd % LANES == 0) {
        __m512 acc = _mm512_setzero_ps();
        for (int32_t l = 0; l < hd; l += LANES)
            acc = _mm512_fmadd_ps(_mm512_loadu_ps(k + l), _mm512_loadu_ps(qh + l), acc);
        return acc;
    }
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int32_t i = 0; i < hd; i += 4 * LANES) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(qh + i), _mm512_loadu_ps(k + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(qh + i + 16), _mm512_loadu_ps(k + i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(qh + i + 32), _mm512_loadu_ps(k + i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(qh + i + 48), _mm512_loadu_ps(k + i + 48), a3);
    }
    return _mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3));
}

/* qk_vec_v for four key rows k[0..4) at once: four independent chains of
 * multiply-adds instead of one, each the same sum as qk_vec_v's. */
AG_512_INLINE void qk_vec4_v(int mode, int32_t hd, const float *qh, const float *k, size_t ks,
                             __m512 out[4])
{
    if (mode == KERNELS_ATTN_GGML_BATCH && hd % LANES == 0) {
        __m512 a[4];
        for (int c = 0; c < 4; c++)
            a[c] = _mm512_setzero_ps();
        for (int32_t l = 0; l < hd; l += LANES) {
            const __m512 q = _mm512_loadu_ps(qh + l);
            for (int c = 0; c < 4; c++)
                a[c] = _mm512_fmadd_ps(_mm512_load_ps(k + (size_t)c * ks + (size_t)l), q, a[c]);
        }
        for (int c = 0; c < 4; c++)
            out[c] = a[c];
        return;
    }
    for (int c = 0; c < 4; c++)
        out[c] = qk_vec_v(mode, hd, qh, k + (size_t)c * ks);
}


/* The sums of accumulator a, lane l of NG heads over cells p0, p0 + step,
 * .. <= last, into acc[h][a][l]: each value row converted once for all
 * heads; dimensions whose mask bit is clear sum zeros and are not read. */
AG_512_INLINE void pv_cells_v(float (*acc)[4][LANES][V_TILE], int a, int l, const int NG,
                              const float *pr, size_t pr_stride, const uint16_t *V,
                              size_t v_stride, int32_t p0, int32_t last, int32_t step, int32_t d0,
                              const __mmask16 mk[4])
{
    __m512 s[KERNELS_MAX_NX][4];
    for (int h = 0; h < NG; h++)
        for (int j = 0; j < 4; j++)
            s[h][j] = _mm512_setzero_ps();
    for (int32_t p = p0; p <= last; p += step) {
        const uint16_t *vp = V + (size_t)p * v_stride + (size_t)d0;
        __m512 v[4];
        for (int j = 0; j < 4; j++)
            v[j] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk[j], vp + j * LANES));
        for (int h = 0; h < NG; h++) {
            const __m512 w = _mm512_set1_ps(pr[(size_t)h * pr_stride + (size_t)p]);
            for (int j = 0; j < 4; j++)
                s[h][j] = _mm512_fmadd_ps(w, v[j], s[h][j]);
        }
    }
    for (int h = 0; h < NG; h++)
        for (int j = 0; j < 4; j++)
            _mm512_store_ps(acc[h][a][l] + j * LANES, s[h][j]);
}

/* pv_ggml over vectors of value dimensions, for the ng heads of a group
 * at once (each value row is converted once for all of them): head h's
 * probabilities at pr + h * pr_stride, its output at out + h * out_stride.
 * The accumulator of lane l (and accumulator a) of each head is summed over
 * its own cells in increasing order, held in registers, 64 dimensions (4
 * vectors, the last ones masked) at a time. */
AG_512_INLINE void pv_ggml_v(int mode, int ng, float *out, size_t out_stride, const float *pr,
                             size_t pr_stride, const uint16_t *V, size_t v_stride, int32_t first,
                             int32_t last, int32_t d0, int32_t nd)
{
    const int n_acc = mode == KERNELS_ATTN_GGML_BATCH ? 1 : 4;
    const int32_t step = LANES * n_acc;
    _Alignas(64) float acc[KERNELS_MAX_NX][4][LANES][V_TILE];
    int nv[4];
    for (int j = 0; j < 4; j++) {
        const int32_t left = nd - j * LANES;
        nv[j] = left <= 0 ? 0 : left >= LANES ? LANES : (int)left;
    }
    __mmask16 mk[4];
    for (int j = 0; j < 4; j++)
        mk[j] = (__mmask16)(nv[j] >= 16 ? 0xffffu : (1u << nv[j]) - 1u);
    const int32_t base = first / step * step;
    for (int a = 0; a < n_acc; a++)
        for (int l = 0; l < LANES; l++) {
            int32_t p0 = base + a * LANES + l;
            if (p0 < first) p0 += step;
            switch (ng) { /* a constant head count keeps the sums in registers */
            case 1: pv_cells_v(acc, a, l, 1, pr, pr_stride, V, v_stride, p0, last, step, d0, mk); break;
            case 2: pv_cells_v(acc, a, l, 2, pr, pr_stride, V, v_stride, p0, last, step, d0, mk); break;
            case 3: pv_cells_v(acc, a, l, 3, pr, pr_stride, V, v_stride, p0, last, step, d0, mk); break;
            default: pv_cells_v(acc, a, l, 4, pr, pr_stride, V, v_stride, p0, last, step, d0, mk); break;
            }
        }
    for (int h = 0; h < ng; h++)
        for (int j = 0; j < 4 && nv[j]; j++) {
            __m512 lane[LANES];
            for (int l = 0; l < LANES; l++) {
                __m512 v = _mm512_load_ps(acc[h][0][l] + j * LANES);
                if (n_acc == 4) {
                    const __m512 a02 = _mm512_add_ps(v, _mm512_load_ps(acc[h][2][l] + j * LANES));
                    const __m512 a13 = _mm512_add_ps(_mm512_load_ps(acc[h][1][l] + j * LANES),
                                                     _mm512_load_ps(acc[h][3][l] + j * LANES));
                    v = _mm512_add_ps(a02, a13);
                }
                lane[l] = v;
            }
            const __m512 o = reduce16_lanes_v(lane);
            const __mmask16 m = (__mmask16)(nv[j] >= 16 ? 0xffffu : (1u << nv[j]) - 1u);
            _mm512_mask_storeu_ps(out + (size_t)h * out_stride + j * LANES, m, o);
        }
}

AG_512_TARGET static void attn_avx512(float *out, const float *q, int ng, const void *K,
                                      size_t k_stride, const void *V, size_t v_stride,
                                      int32_t first, int32_t last, const kernels_attn *as,
                                      float *scores)
{
    const int mode = as->f16_products;
    const int32_t hd = as->head_dim, hdv = as->head_dim_v;
    const int64_t n_cells = (int64_t)last + 1;
    float qh[KERNELS_MAX_NX][KERNELS_ATTN_GGML_MAX_HD];
    _Alignas(64) float kr[LANES * KERNELS_ATTN_GGML_MAX_HD];
    float mx[KERNELS_MAX_NX];
    for (int h = 0; h < ng; h++) {
        const float *qr = q + (size_t)h * (size_t)hd;
        int32_t i = 0;
        for (; i + LANES <= hd; i += LANES)
            _mm512_storeu_ps(qh[h] + i, round_f16_v(_mm512_loadu_ps(qr + i)));
        for (; i < hd; i++)
            qh[h][i] = to_f16(qr[i]);
        mx[h] = -INFINITY;
    }
    /* 16 cells at a time, reduced together, where no leftover is summed */
    const bool by16 = hd % (4 * LANES) == 0 || (mode == KERNELS_ATTN_GGML_BATCH && hd % LANES == 0);
    int32_t p = first;
    for (; by16 && p <= last; p += LANES) {
        const int nb = last - p + 1 < LANES ? (int)(last - p + 1) : LANES;
        /* the 16 key rows as floats once for all heads of the group, hd
         * apart (hd is a multiple of 16 here); rows past last are zeros
         * (their lanes of the reduction are dropped) */
        for (int i = 0; i < LANES; i++) {
            const uint16_t *kp = (const uint16_t *)K + (size_t)(p + i) * k_stride;
            for (int32_t l = 0; l < hd; l += LANES)
                _mm512_store_ps(kr + (size_t)i * (size_t)hd + l,
                                i < nb ? load_h16(kp + l, LANES) : _mm512_setzero_ps());
        }
        for (int h = 0; h < ng; h++) {
            __m512 acc[LANES];
            for (int i = 0; i < LANES; i += 4)
                qk_vec4_v(mode, hd, qh[h], kr + (size_t)i * (size_t)hd, (size_t)hd, acc + i);
            float r[LANES];
            _mm512_storeu_ps(r, reduce16x16_v(acc));
            float *sh = scores + (size_t)h * (size_t)n_cells + (size_t)p;
            for (int i = 0; i < nb; i++) {
                float v = r[i] * as->scale;
                if (as->softcap > 0.0f) v = as->softcap * tanhf(v / as->softcap);
                sh[i] = v;
                if (v > mx[h]) mx[h] = v;
            }
        }
    }
    for (; p <= last; p++) {
        const uint16_t *kp = (const uint16_t *)K + (size_t)p * k_stride;
        for (int h = 0; h < ng; h++) {
            float v = qk_ggml_v(mode, hd, qh[h], kp) * as->scale;
            if (as->softcap > 0.0f) v = as->softcap * tanhf(v / as->softcap);
            scores[(size_t)h * (size_t)n_cells + (size_t)p] = v;
            if (v > mx[h]) mx[h] = v;
        }
    }
    for (int h = 0; h < ng; h++)
        softmax_row_v(scores + (size_t)h * (size_t)n_cells, first, last, mx[h]);
    for (int32_t d0 = 0; d0 < hdv; d0 += V_TILE)
        pv_ggml_v(mode, ng, out + d0, (size_t)hdv, scores, (size_t)n_cells, (const uint16_t *)V,
                  v_stride, first, last, d0, hdv - d0 < V_TILE ? hdv - d0 : V_TILE);
}

/* kernels_silu_mul_ggml, 16 values at a time; the same operations per
 * value (an exactly rounded divide, add and multiply, the vector e^x that
 * expf_ggml_v matches bit for bit with the scalar body). */
AG_512_TARGET static void silu_mul_avx512(float *out, const float *gate, const float *up, int64_t n)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        const __m512 g = _mm512_loadu_ps(gate + i);
        const __m512 neg = /* -g exactly: the sign bit flipped */
            _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(g), _mm512_set1_epi32(INT32_MIN)));
        const __m512 e = expf_ggml_v(neg);
        const __m512 v = _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)),
                                       _mm512_loadu_ps(up + i));
        _mm512_storeu_ps(out + i, v);
    }
    for (; i < n; i++)
        out[i] = (gate[i] / (1.0f + expf_ggml_body(-gate[i]))) * up[i];
}
#endif

#if AG_HAVE_TARGET
static bool have_fma;
#endif
#if AG_HAVE_AVX512
static bool have_avx512; /* and the kernel set in use is avx512 */
#endif

static void attn_init(void)
{
    f16_table_build();
#if AG_HAVE_TARGET
    __builtin_cpu_init();
    have_fma = __builtin_cpu_supports("fma") && __builtin_cpu_supports("avx2");
#endif
#if AG_HAVE_AVX512
    /* the avx512 set implies every feature used here (F/BW/VL/DQ, F16C,
     * FMA, OS support) and follows LOFT_ISA */
    have_avx512 = strcmp(kernels_get()->name, "avx512") == 0;
#endif
}

static pthread_once_t attn_once = PTHREAD_ONCE_INIT;

float kernels_expf_ggml(float x)
{
    pthread_once(&attn_once, attn_init);
#if AG_HAVE_TARGET
    if (have_fma) return expf_fma(x);
#endif
    return expf_ggml_body(x);
}

void kernels_silu_mul_ggml(float *out, const float *gate, const float *up, int64_t n)
{
    pthread_once(&attn_once, attn_init);
#if AG_HAVE_AVX512
    if (have_avx512) {
        silu_mul_avx512(out, gate, up, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++)
        out[i] = (gate[i] / (1.0f + kernels_expf_ggml(-gate[i]))) * up[i];
}

void kernels_attn_group_ggml(float *out, const float *q, int ng, const void *K, size_t k_stride,
                             const void *V, size_t v_stride, uint32_t kv_type, int32_t first,
                             int32_t last, const kernels_attn *as, float *scores)
{
    (void)kv_type;
    pthread_once(&attn_once, attn_init);
#if AG_HAVE_AVX512
    if (have_avx512) {
        attn_avx512(out, q, ng, K, k_stride, V, v_stride, first, last, as, scores);
        return;
    }
#endif
#if AG_HAVE_TARGET
    if (have_fma) {
        attn_fma(out, q, ng, K, k_stride, V, v_stride, first, last, as, scores);
        return;
    }
#endif
    attn_generic(out, q, ng, K, k_stride, V, v_stride, first, last, as, scores);
}

bool kernels_attn_group_ggml_isa(const char *isa, float *out, const float *q, int ng, const void *K,
                                 size_t k_stride, const void *V, size_t v_stride, int32_t first,
                                 int32_t last, const kernels_attn *as, float *scores)
{
    pthread_once(&attn_once, attn_init);
    if (strcmp(isa, "ref") == 0) {
        attn_generic(out, q, ng, K, k_stride, V, v_stride, first, last, as, scores);
        return true;
    }
#if AG_HAVE_TARGET
    if (strcmp(isa, "avx2") == 0 && have_fma) {
        attn_fma(out, q, ng, K, k_stride, V, v_stride, first, last, as, scores);
        return true;
    }
#endif
#if AG_HAVE_AVX512
    if (strcmp(isa, "avx512") == 0 && kernels_get_isa("avx512") != NULL) {
        attn_avx512(out, q, ng, K, k_stride, V, v_stride, first, last, as, scores);
        return true;
    }
#endif
    return false;
}
