/*
 * attn_ggml_tokens.c - ggml's attention over an F16 cache (attn_ggml.c)
 * for several consecutive query tokens of one kv-head group at once, the
 * prompt's case. The results are those of one kernels_attn_group_ggml call
 * per token, bit for bit: every score, exponential and value sum is the
 * same chain of operations in the same order; only the loads and
 * conversions are shared. In ggml's prompt order (GGML_BATCH, head_dim a
 * multiple of 16) the AVX-512 body
 *  - converts each block of 16 key rows to floats once for all tokens and
 *    heads and multiplies it by query rows in register tiles of 2 rows x 8
 *    keys (10 loads per 16 multiply-adds, where one row at a time needs 5
 *    per 4), folding each row's 8 sums in registers (reduce8_v) so that
 *    no accumulator goes through memory,
 *  - scales the scores, masks them to each token's cells and takes the
 *    row maxima 16 cells at a time,
 *  - converts each value row once per pass of up to 6 query rows, whose
 *    sums stay in registers.
 * Other modes and shapes, and CPUs without the avx512 set, run the one-token
 * function token by token.
 */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernels/attn_ggml.h"
#include "kernels/attn_ggml_v.h"
#include "kernels/kernels.h"

#define MAX_ROWS (KERNELS_ATTN_GGML_MAX_TOKENS * KERNELS_MAX_NX)

size_t kernels_attn_tokens_scratch(int nt, int ng, int32_t n_cells)
{
    if (nt < 1 || ng < 1 || n_cells < 1) return 0;
    const size_t padded = ((size_t)n_cells + LANES - 1) / LANES * LANES;
    const size_t rows = (size_t)nt * (size_t)ng; /* both small: no overflow */
    if (padded > SIZE_MAX / rows) return SIZE_MAX;
    return rows * padded;
}

#if AG_HAVE_AVX512

#define QK_ROWS 2 /* query rows of a q.k register tile (times 8 keys) */
#define PV_ROWS 6 /* query rows of a P.V pass (times 64 value dimensions) */

/* q.k of the query rows qh[0..R) (R <= 2; KERNELS_ATTN_GGML_MAX_HD floats
 * apart, 64-byte aligned) with the 8 key rows k (hd floats apart,
 * aligned): row r's and key c's 16-lane accumulator of ggml's gemm, fed 16
 * elements at a time in increasing order (qk_ggml's BATCH sum before its
 * reduce16), then each row's 8 accumulators folded by reduce8_v into z[r],
 * all in registers. */
AG_512_INLINE void qk_tile_v(const int R, int32_t hd, const float *qh, const float *k,
                             __m512 z[QK_ROWS])
{
    __m512 a[QK_ROWS][8];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < 8; c++)
            a[r][c] = _mm512_setzero_ps();
    for (int32_t l = 0; l < hd; l += LANES) {
        __m512 qv[QK_ROWS];
        for (int r = 0; r < R; r++)
            qv[r] = _mm512_load_ps(qh + (size_t)r * KERNELS_ATTN_GGML_MAX_HD + (size_t)l);
        for (int c = 0; c < 8; c++) {
            const __m512 kv = _mm512_load_ps(k + (size_t)c * (size_t)hd + (size_t)l);
            for (int r = 0; r < R; r++)
                a[r][c] = _mm512_fmadd_ps(kv, qv[r], a[r][c]);
        }
    }
    for (int r = 0; r < R; r++)
        z[r] = reduce8_v(a[r]);
}

/* The lanes i of cells p + i that lie in first..last. */
static inline __mmask16 cells_mask(int32_t p, int32_t first, int32_t last)
{
    const int64_t lo = (int64_t)first - p, hi = (int64_t)last - p;
    if (hi < 0 || lo > LANES - 1) return 0;
    uint32_t m = 0xffffu;
    if (lo > 0) m &= 0xffffu << lo;
    if (hi < LANES - 1) m &= (1u << (hi + 1)) - 1u;
    return (__mmask16)m;
}

/* One cell p of P.V for R rows: the value row's 64 dimensions (masked by
 * mk) converted once, then added to the sums s[r] of the rows whose
 * range holds p (all of them when `all`). */
AG_512_INLINE void pv_cell_v(const int R, bool all, __m512 s[][4], const float *const *pr,
                             const int32_t *rf, const int32_t *rl, const uint16_t *vp,
                             const __mmask16 mk[4], int32_t p)
{
    __m512 v[4];
    for (int j = 0; j < 4; j++)
        v[j] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk[j], vp + j * LANES));
    for (int r = 0; r < R; r++) {
        if (!all && (p < rf[r] || p > rl[r])) continue;
        const __m512 w = _mm512_set1_ps(pr[r][p]);
        for (int j = 0; j < 4; j++)
            s[r][j] = _mm512_fmadd_ps(w, v[j], s[r][j]);
    }
}

/* Lane l of ggml's P.V gemm (BATCH: one accumulator, cell p in lane
 * p % 16) for R rows: row r sums w_p * V[p] over its cells p = l (mod 16)
 * in rf[r]..rl[r], in increasing order, from zero, into acc[r][l] (64
 * dimensions from V; those outside mk sum zeros). The cells every row
 * sees run without per-row tests. */
AG_512_INLINE void pv_lane_v(const int R, float (*acc)[LANES][V_TILE], int l,
                             const float *const *pr, const int32_t *rf, const int32_t *rl,
                             const uint16_t *V, size_t v_stride, const __mmask16 mk[4])
{
    int32_t f_min = rf[0], f_max = rf[0], l_min = rl[0], l_max = rl[0];
    for (int r = 1; r < R; r++) {
        f_min = rf[r] < f_min ? rf[r] : f_min;
        f_max = rf[r] > f_max ? rf[r] : f_max;
        l_min = rl[r] < l_min ? rl[r] : l_min;
        l_max = rl[r] > l_max ? rl[r] : l_max;
    }
    __m512 s[PV_ROWS][4];
    for (int r = 0; r < R; r++)
        for (int j = 0; j < 4; j++)
            s[r][j] = _mm512_setzero_ps();
    int32_t p = f_min / LANES * LANES + l;
    if (p < f_min) p += LANES;
    /* f_max..l_min is every row's; with none, every cell is tested */
    const bool common = f_max <= l_min;
    const int32_t head_end = common ? f_max - 1 : l_max;
    for (; p <= head_end; p += LANES)
        pv_cell_v(R, false, s, pr, rf, rl, V + (size_t)p * v_stride, mk, p);
    if (common) {
        for (; p <= l_min; p += LANES)
            pv_cell_v(R, true, s, pr, rf, rl, V + (size_t)p * v_stride, mk, p);
        for (; p <= l_max; p += LANES)
            pv_cell_v(R, false, s, pr, rf, rl, V + (size_t)p * v_stride, mk, p);
    }
    for (int r = 0; r < R; r++)
        for (int j = 0; j < 4; j++)
            _mm512_store_ps(acc[r][l] + j * LANES, s[r][j]);
}

/* out rows of R query rows from 64 value dimensions at V (d0 applied):
 * the 16 lanes of each sum folded in reduce16's order. */
AG_512_INLINE void pv_rows_v(const int R, float *const *orow, const float *const *pr,
                             const int32_t *rf, const int32_t *rl, const uint16_t *V,
                             size_t v_stride, int32_t nd)
{
    _Alignas(64) float acc[PV_ROWS][LANES][V_TILE];
    __mmask16 mk[4];
    int nv[4];
    for (int j = 0; j < 4; j++) {
        const int32_t left = nd - j * LANES;
        nv[j] = left <= 0 ? 0 : left >= LANES ? LANES : (int)left;
        mk[j] = (__mmask16)(nv[j] >= 16 ? 0xffffu : (1u << nv[j]) - 1u);
    }
    for (int l = 0; l < LANES; l++)
        pv_lane_v(R, acc, l, pr, rf, rl, V, v_stride, mk);
    for (int r = 0; r < R; r++)
        for (int j = 0; j < 4 && nv[j]; j++) {
            __m512 lane[LANES];
            for (int l = 0; l < LANES; l++)
                lane[l] = _mm512_load_ps(acc[r][l] + j * LANES);
            _mm512_mask_storeu_ps(orow[r] + j * LANES, mk[j], reduce16_lanes_v(lane));
        }
}

/* The several-token body (BATCH, hd % 16 == 0, hd <= MAX_HD): rows
 * r = t * ng + h; row r's scores at scores + r * n_pad by absolute cell
 * index. The rounded queries and one block of keys live on the stack
 * (about 150 KiB with the P.V sums; pool threads have the default stack). */
AG_512_TARGET static void attn_tokens_avx512(float *out, size_t out_stride, const float *q,
                                             size_t q_stride, int nt, int ng, const uint16_t *K,
                                             size_t k_stride, const uint16_t *V, size_t v_stride,
                                             const int32_t *first, const int32_t *last,
                                             const kernels_attn *as, float *scores)
{
    const int32_t hd = as->head_dim, hdv = as->head_dim_v;
    const int nr = nt * ng;
    int32_t rf[MAX_ROWS], rl[MAX_ROWS];
    int32_t lo = first[0], hi = last[0];
    for (int t = 1; t < nt; t++) {
        lo = first[t] < lo ? first[t] : lo;
        hi = last[t] > hi ? last[t] : hi;
    }
    const size_t n_pad = ((size_t)hi + LANES) / LANES * LANES;
    _Alignas(64) float qh[MAX_ROWS][KERNELS_ATTN_GGML_MAX_HD];
    _Alignas(64) float kr[LANES * KERNELS_ATTN_GGML_MAX_HD];
    __m512 mx[MAX_ROWS];
    for (int r = 0; r < nr; r++) {
        const int t = r / ng, h = r % ng;
        rf[r] = first[t];
        rl[r] = last[t];
        const float *qr = q + (size_t)t * q_stride + (size_t)h * (size_t)hd;
        for (int32_t i = 0; i < hd; i += LANES)
            _mm512_store_ps(qh[r] + i, round_f16_v(_mm512_loadu_ps(qr + i)));
        mx[r] = _mm512_set1_ps(-INFINITY);
    }
    const __m512 vscale = _mm512_set1_ps(as->scale);
    for (int32_t p = lo; p <= hi; p += LANES) {
        const int nb = hi - p + 1 < LANES ? (int)(hi - p + 1) : LANES;
        /* the block's key rows as floats, hd apart; rows past hi are
         * zeros (no row keeps their scores) */
        for (int i = 0; i < LANES; i++) {
            const uint16_t *kp = K + (size_t)(p + i) * k_stride;
            for (int32_t l = 0; l < hd; l += LANES)
                _mm512_store_ps(kr + (size_t)i * (size_t)hd + l,
                                i < nb ? load_h16(kp + l, LANES) : _mm512_setzero_ps());
        }
        for (int r0 = 0; r0 < nr; r0 += QK_ROWS) {
            const int R = nr - r0 < QK_ROWS ? nr - r0 : QK_ROWS;
            __mmask16 m[QK_ROWS] = {0};
            for (int i = 0; i < R; i++)
                m[i] = cells_mask(p, rf[r0 + i], rl[r0 + i]);
            if (!(m[0] | m[R - 1])) continue; /* no row sees the block */
            /* keys 0..8 and 8..16 of the block, each half only where a row
             * keeps one of its scores (the other's lanes are dropped) */
            __m512 z0[QK_ROWS], z1[QK_ROWS];
            for (int i = 0; i < QK_ROWS; i++)
                z0[i] = z1[i] = _mm512_setzero_ps();
            const unsigned seen = (unsigned)(m[0] | m[R - 1]);
            const float *kr_hi = kr + (size_t)8 * (size_t)hd;
            if (R == 1) {
                if (seen & 0xffu) qk_tile_v(1, hd, qh[r0], kr, z0);
                if (seen >> 8) qk_tile_v(1, hd, qh[r0], kr_hi, z1);
            } else {
                if (seen & 0xffu) qk_tile_v(2, hd, qh[r0], kr, z0);
                if (seen >> 8) qk_tile_v(2, hd, qh[r0], kr_hi, z1);
            }
            for (int i = 0; i < R; i++) {
                const int r = r0 + i;
                if (!m[i]) continue;
                __m512 v = _mm512_mul_ps(reduce8_pair_v(z0[i], z1[i]), vscale);
                if (as->softcap > 0.0f) {
                    float c[LANES];
                    _mm512_storeu_ps(c, v);
                    for (int k = 0; k < LANES; k++)
                        c[k] = as->softcap * tanhf(c[k] / as->softcap);
                    v = _mm512_loadu_ps(c);
                }
                _mm512_mask_storeu_ps(scores + (size_t)r * n_pad + (size_t)p, m[i], v);
                /* v > mx ? v : mx per lane, as the scalar `if (v > mx)`
                 * (a NaN score is skipped); the lanes' largest is the same
                 * value, bar the sign of a zero maximum, which e^(s - mx)
                 * does not see */
                mx[r] = _mm512_mask_max_ps(mx[r], m[i], v, mx[r]);
            }
        }
    }
    for (int r = 0; r < nr; r++)
        softmax_row_v(scores + (size_t)r * n_pad, rf[r], rl[r], _mm512_reduce_max_ps(mx[r]));
    for (int32_t d0 = 0; d0 < hdv; d0 += V_TILE) {
        const int32_t nd = hdv - d0 < V_TILE ? hdv - d0 : V_TILE;
        for (int r0 = 0; r0 < nr; r0 += PV_ROWS) {
            const int R = nr - r0 < PV_ROWS ? nr - r0 : PV_ROWS;
            float *orow[PV_ROWS];
            const float *pr[PV_ROWS];
            for (int i = 0; i < R; i++) {
                const int r = r0 + i, t = r / ng, h = r % ng;
                orow[i] = out + (size_t)t * out_stride + (size_t)h * (size_t)hdv + (size_t)d0;
                pr[i] = scores + (size_t)r * n_pad;
            }
            const uint16_t *Vd = V + d0;
            switch (R) { /* constant row counts keep the sums in registers */
            case 1:
                pv_rows_v(1, orow, pr, rf + r0, rl + r0, Vd, v_stride, nd);
                break;
            case 2:
                pv_rows_v(2, orow, pr, rf + r0, rl + r0, Vd, v_stride, nd);
                break;
            case 3:
                pv_rows_v(3, orow, pr, rf + r0, rl + r0, Vd, v_stride, nd);
                break;
            case 4:
                pv_rows_v(4, orow, pr, rf + r0, rl + r0, Vd, v_stride, nd);
                break;
            case 5:
                pv_rows_v(5, orow, pr, rf + r0, rl + r0, Vd, v_stride, nd);
                break;
            default:
                pv_rows_v(6, orow, pr, rf + r0, rl + r0, Vd, v_stride, nd);
                break;
            }
        }
    }
}

static bool tokens_avx512; /* the kernel set in use is avx512 */
static pthread_once_t tokens_once = PTHREAD_ONCE_INIT;

static void tokens_init(void)
{
    tokens_avx512 = strcmp(kernels_get()->name, "avx512") == 0;
}

/* The shapes the several-token body takes; the others go token by token. */
static bool tokens_shape_ok(int nt, int ng, const kernels_attn *as)
{
    return nt >= 1 && nt <= KERNELS_ATTN_GGML_MAX_TOKENS && ng >= 1 && ng <= KERNELS_MAX_NX &&
           as->f16_products == KERNELS_ATTN_GGML_BATCH && as->head_dim % LANES == 0 &&
           as->head_dim > 0 && as->head_dim <= KERNELS_ATTN_GGML_MAX_HD && as->head_dim_v > 0;
}
#endif

void kernels_attn_tokens_ggml(float *out, size_t out_stride, const float *q, size_t q_stride,
                              int nt, int ng, const void *K, size_t k_stride, const void *V,
                              size_t v_stride, const int32_t *first, const int32_t *last,
                              const kernels_attn *as, float *scores)
{
#if AG_HAVE_AVX512
    pthread_once(&tokens_once, tokens_init);
    if (tokens_avx512 && tokens_shape_ok(nt, ng, as)) {
        attn_tokens_avx512(out, out_stride, q, q_stride, nt, ng, K, k_stride, V, v_stride, first,
                           last, as, scores);
        return;
    }
#endif
    for (int t = 0; t < nt; t++)
        kernels_attn_group_ggml(out + (size_t)t * out_stride, q + (size_t)t * q_stride, ng, K,
                                k_stride, V, v_stride, LOFT_TYPE_F16, first[t], last[t], as,
                                scores);
}

bool kernels_attn_tokens_ggml_isa(const char *isa, float *out, size_t out_stride, const float *q,
                                  size_t q_stride, int nt, int ng, const void *K, size_t k_stride,
                                  const void *V, size_t v_stride, const int32_t *first,
                                  const int32_t *last, const kernels_attn *as, float *scores)
{
#if AG_HAVE_AVX512
    if (strcmp(isa, "avx512") == 0 && kernels_get_isa("avx512") != NULL &&
        tokens_shape_ok(nt, ng, as)) {
        attn_tokens_avx512(out, out_stride, q, q_stride, nt, ng, K, k_stride, V, v_stride, first,
                           last, as, scores);
        return true;
    }
#endif
    for (int t = 0; t < nt; t++)
        if (!kernels_attn_group_ggml_isa(isa, out + (size_t)t * out_stride,
                                         q + (size_t)t * q_stride, ng, K, k_stride, V, v_stride,
                                         first[t], last[t], as, scores))
            return false;
    return true;
}
