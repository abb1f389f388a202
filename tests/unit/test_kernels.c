/*
 * The kernels of src/kernels: every instruction set compiled in and
 * supported here (avx2, avx512, neon) against ref.c, and ref.c against the
 * plain float product of the dequantized weights.
 *
 * Shapes are odd on purpose: rows of 1 value (float types), 1 block, 3 and
 * 7 blocks, a row count of 1 and counts that do not divide by the thread
 * count, 1, 2, 3 and 7 tokens (so every tile width 1..4 runs), and 8 to 70
 * tokens with rows longer than one activation chunk (the gemm tiles).
 * Outputs are poisoned with NaN first.
 *
 * Tolerances (stated per comparison):
 *  - activation quantization: bit-exact with ref (same rounding);
 *  - SIMD vs ref dot products: |y - y_ref| <= 64 * FLT_EPSILON * Σ|w·x|
 *    (the integer block sums are exact on both sides; only the order of the
 *    float additions of block results differs);
 *  - ref vs float truth: |y - Σ w·x| <= Σ|w_i| * d_i / 2 * 1.001 + 64 eps Σ|w·x|
 *    where d_i is the step of x_i's 8-bit block: the error of rounding each
 *    activation to its block grid, nothing more;
 *  - 1 thread vs 2 threads: identical bits (rows are split, not sums).
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "base/threadpool.h"
#include "kernels/kernels.h"
#include "model/layers.h"
#include "quant/quant.h"
#include "test.h"

static const uint32_t dot_types[] = {
    LOFT_TYPE_F32,  LOFT_TYPE_F16,  LOFT_TYPE_BF16, LOFT_TYPE_Q4_0, LOFT_TYPE_Q4_1,
    LOFT_TYPE_Q5_0, LOFT_TYPE_Q5_1, LOFT_TYPE_Q8_0, LOFT_TYPE_Q2_K, LOFT_TYPE_Q3_K,
    LOFT_TYPE_Q4_K, LOFT_TYPE_Q5_K, LOFT_TYPE_Q6_K,
};

static const char *const simd_sets[] = {"avx2", "avx512", "neon"};

/* Values with a per-32 scale that varies over three decades and an offset,
 * so block scales, mins and signs all matter. */
static void fill_values(loft_rng *r, float *v, int64_t n)
{
    float scale = 1.0f, shift = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        if (i % 32 == 0) {
            scale = (float)pow(10.0, loft_rng_uniform(r) * 3.0 - 2.0);
            shift = (float)(loft_rng_uniform(r) - 0.5) * scale;
        }
        v[i] = (float)(loft_rng_uniform(r) * 2.0 - 1.0) * scale + shift;
    }
    if (n >= 64)
        for (int64_t i = 32; i < 64; i++) v[i] = 0.0f; /* an all-zero block */
}

typedef struct problem {
    uint32_t type;
    int64_t K, N, T;
    uint8_t *w;    /* N rows of type */
    size_t row_bytes;
    float *wf;     /* N x K dequantized */
    float *x;      /* T x K */
} problem;

static void problem_free(problem *p)
{
    free(p->w);
    free(p->wf);
    free(p->x);
}

static bool problem_make(problem *p, uint32_t type, int64_t K, int64_t N, int64_t T, uint64_t seed)
{
    memset(p, 0, sizeof *p);
    p->type = type;
    p->K = K;
    p->N = N;
    p->T = T;
    p->row_bytes = loft_type_row_size(type, K);
    p->w = malloc(p->row_bytes * (size_t)N);
    p->wf = malloc(sizeof(float) * (size_t)(N * K));
    p->x = malloc(sizeof(float) * (size_t)(T * K));
    if (!p->w || !p->wf || !p->x) return false;
    loft_rng r;
    loft_rng_seed(&r, seed);
    fill_values(&r, p->wf, N * K);
    fill_values(&r, p->x, T * K);
    for (int64_t i = 0; i < N; i++) {
        if (!loft_quantize_row(type, p->wf + i * K, p->w + (size_t)i * p->row_bytes, K)) return false;
        loft_dequantize_row(type, p->w + (size_t)i * p->row_bytes, p->wf + i * K, K);
    }
    return true;
}

/* y (T x N) through table kt with a pool of n_threads (1: no pool). */
static loft_code run_matmul(const loft_kernels *kt, const problem *p, int n_threads, float *y)
{
    loft_status st;
    threadpool *pool = NULL;
    if (n_threads > 1 && threadpool_init(&pool, n_threads, &st) != LOFT_OK) return LOFT_ERR_NOMEM;
    const size_t rs = kernels_x_row_size(p->type, p->K);
    void *scratch = malloc(rs * (size_t)p->T);
    for (int64_t i = 0; i < p->T * p->N; i++) y[i] = NAN;
    const kernels_weight w = {p->w, p->type, p->K, p->N, p->row_bytes, NULL};
    loft_code c = scratch ? kernels_matmul(kt, pool, y, p->x, p->T, &w, scratch, rs * (size_t)p->T, &st)
                          : LOFT_ERR_NOMEM;
    free(scratch);
    threadpool_free(pool);
    return c;
}

/* Σ|w·x| for output (t, n): the scale the errors are measured against. */
static double abs_dot(const problem *p, int64_t t, int64_t n)
{
    double s = 0.0;
    for (int64_t k = 0; k < p->K; k++) s += fabs((double)p->wf[n * p->K + k] * p->x[t * p->K + k]);
    return s;
}

/* {K, N, T}. T >= 8 reaches the gemm tiles where a set has them: 19, 70
 * and 131 tokens leave partial 16-token groups, 70 a partial 64-token pass,
 * 131 a dot-product tail past the 128 tokens one call takes; K = 2112 (66
 * blocks) and 600 span several activation chunks with a partial last one;
 * N = 11 and 13 leave rows past the last full row tile. */
static const int64_t shapes_q32[][3] = {{32, 1, 1},  {96, 5, 2},    {224, 17, 3}, {576, 33, 7},
                                        {64, 1, 7},  {2112, 11, 19}, {96, 9, 70}, {32, 1, 8},
                                        {64, 3, 131}};
static const int64_t shapes_qk[][3] = {{256, 1, 1}, {768, 5, 2}, {256, 17, 3}, {512, 9, 7},
                                       {512, 6, 19}, {256, 5, 70}};
/* Float weights: K = 1600 spans three activation chunks of the avx512
 * float tile (at most 768 values each), with a shorter last one. */
static const int64_t shapes_f[][3] = {{1, 1, 1},   {7, 5, 2},    {37, 17, 3}, {576, 33, 7},
                                      {33, 3, 1},  {600, 13, 21}, {17, 3, 70},
                                      {40, 9, 133}, {1600, 9, 19}};

/* Calls fn(type, K, N, T, seed) over the shapes of the type's family; stops
 * at the first failure (the test harness records it). */
typedef bool (*shape_fn)(uint32_t type, int64_t K, int64_t N, int64_t T, uint64_t seed);

static void for_all_shapes(shape_fn fn)
{
    for (size_t ti = 0; ti < sizeof dot_types / sizeof dot_types[0]; ti++) {
        const uint32_t t = dot_types[ti];
        const loft_type_traits *tr = loft_type_get(t);
        const int64_t(*sh)[3] = tr->block_size == 1 ? shapes_f
                                : tr->block_size == 32 ? shapes_q32
                                                       : shapes_qk;
        const size_t ns = tr->block_size == 1    ? sizeof shapes_f / sizeof shapes_f[0]
                          : tr->block_size == 32 ? sizeof shapes_q32 / sizeof shapes_q32[0]
                                                 : sizeof shapes_qk / sizeof shapes_qk[0];
        for (size_t si = 0; si < ns; si++)
            if (!fn(t, sh[si][0], sh[si][1], sh[si][2], 1000 + ti * 10 + si)) return;
    }
}

/* ---- ref against the float truth ------------------------------------- */

static bool ref_vs_truth(uint32_t type, int64_t K, int64_t N, int64_t T, uint64_t seed)
{
    const char *tn = loft_type_get(type)->name;
    problem p;
    bool ok = problem_make(&p, type, K, N, T, seed);
    float *y = malloc(sizeof(float) * (size_t)(T * N));
    if (!ok || !y) {
        test_record_failure(__FILE__, __LINE__, "allocation or quantization failed");
        problem_free(&p);
        free(y);
        return false;
    }
    ok = run_matmul(kernels_get_isa("ref"), &p, 1, y) == LOFT_OK;
    const kernels_xfmt xf = kernels_x_format(type);
    const int64_t xb = xf == KERNELS_X_Q8 ? 32 : xf == KERNELS_X_Q8K ? QK_K : 0;
    for (int64_t t = 0; ok && t < T; t++) {
        for (int64_t n = 0; ok && n < N; n++) {
            double truth = 0.0, bound = 0.0;
            for (int64_t k = 0; k < K; k++)
                truth += (double)p.wf[n * K + k] * p.x[t * K + k];
            if (xb) {
                for (int64_t b0 = 0; b0 < K; b0 += xb) {
                    double amax = 0.0, wsum = 0.0;
                    for (int64_t k = b0; k < b0 + xb; k++) {
                        amax = fmax(amax, fabs(p.x[t * K + k]));
                        wsum += fabs(p.wf[n * K + k]);
                    }
                    bound += wsum * (amax / 127.0) / 2.0 * 1.001;
                }
            }
            bound += 64.0 * FLT_EPSILON * abs_dot(&p, t, n) + 1e-30;
            const double got = y[t * N + n];
            if (!(fabs(got - truth) <= bound)) {
                char msg[256];
                snprintf(msg, sizeof msg, "%s K=%lld N=%lld T=%lld: y[%lld][%lld] = %.9g, truth %.9g, bound %.3g",
                         tn, (long long)K, (long long)N, (long long)T, (long long)t, (long long)n, got,
                         truth, bound);
                test_record_failure(__FILE__, __LINE__, msg);
                ok = false;
            }
        }
    }
    problem_free(&p);
    free(y);
    return ok;
}

static void test_ref_matches_float_truth(void)
{
    for_all_shapes(ref_vs_truth);
}

/* kernels_matmul_f32 (F32 activations, dequantized weight rows) against
 * the double-precision product of the same dequantized weights: within
 * 64 eps * Σ|w·x| on every set, 1 and 2 threads bit-identical. */
static bool f32_path_vs_truth(uint32_t type, int64_t K, int64_t N, int64_t T, uint64_t seed)
{
    problem p;
    bool ok = problem_make(&p, type, K, N, T, seed);
    float *y1 = malloc(sizeof(float) * (size_t)(T * N)), *y2 = malloc(sizeof(float) * (size_t)(T * N));
    float *rows = malloc(sizeof(float) * (size_t)K * 2);
    threadpool *pool = NULL;
    loft_status st;
    ok = ok && y1 && y2 && rows && threadpool_init(&pool, 2, &st) == LOFT_OK;
    if (!ok) test_record_failure(__FILE__, __LINE__, "setup failed");
    const char *sets[] = {"ref", "avx2", "avx512", "neon"};
    const kernels_weight w = {p.w, p.type, p.K, p.N, p.row_bytes, NULL};
    for (size_t si = 0; ok && si < 4; si++) {
        const loft_kernels *kt = kernels_get_isa(sets[si]);
        if (!kt) continue;
        for (int64_t i = 0; i < T * N; i++) y1[i] = y2[i] = NAN;
        kernels_matmul_f32(kt, NULL, y1, p.x, T, &w, rows);
        kernels_matmul_f32(kt, pool, y2, p.x, T, &w, rows);
        for (int64_t t = 0; ok && t < T; t++)
            for (int64_t n = 0; ok && n < N; n++) {
                double truth = 0.0;
                for (int64_t k = 0; k < K; k++) truth += (double)p.wf[n * K + k] * p.x[t * K + k];
                const double tol = 64.0 * FLT_EPSILON * abs_dot(&p, t, n) + 1e-30;
                const float a = y1[t * N + n], b = y2[t * N + n];
                if (!(fabs(a - truth) <= tol) || memcmp(&a, &b, 4) != 0) {
                    char msg[256];
                    snprintf(msg, sizeof msg, "%s %s K=%lld: y %.9g (2 threads %.9g), truth %.9g, tol %.3g",
                             kt->name, loft_type_get(type)->name, (long long)K, a, b, truth, tol);
                    test_record_failure(__FILE__, __LINE__, msg);
                    ok = false;
                }
            }
    }
    threadpool_free(pool);
    problem_free(&p);
    free(y1);
    free(y2);
    free(rows);
    return ok;
}

static void test_f32_path_matches_float_truth(void)
{
    for_all_shapes(f32_path_vs_truth);
}

/* ---- every SIMD set against ref ----------------------------------------- */

static bool simd_vs_ref(uint32_t type, int64_t K, int64_t N, int64_t T, uint64_t seed)
{
    const char *tn = loft_type_get(type)->name;
    problem p;
    bool ok = problem_make(&p, type, K, N, T, seed);
    float *yr = malloc(sizeof(float) * (size_t)(T * N));
    float *y1 = malloc(sizeof(float) * (size_t)(T * N));
    float *y2 = malloc(sizeof(float) * (size_t)(T * N));
    if (!ok || !yr || !y1 || !y2) {
        test_record_failure(__FILE__, __LINE__, "allocation or quantization failed");
        ok = false;
        goto done;
    }
    if (run_matmul(kernels_get_isa("ref"), &p, 1, yr) != LOFT_OK) {
        test_record_failure(__FILE__, __LINE__, "ref matmul failed");
        ok = false;
        goto done;
    }
    for (size_t si = 0; ok && si < sizeof simd_sets / sizeof simd_sets[0]; si++) {
        const loft_kernels *kt = kernels_get_isa(simd_sets[si]);
        if (!kt) continue;
        if (run_matmul(kt, &p, 1, y1) != LOFT_OK || run_matmul(kt, &p, 2, y2) != LOFT_OK) {
            test_record_failure(__FILE__, __LINE__, "matmul failed");
            ok = false;
            break;
        }
        for (int64_t t = 0; ok && t < T; t++) {
            for (int64_t n = 0; ok && n < N; n++) {
                const int64_t i = t * N + n;
                const double tol = 64.0 * FLT_EPSILON * abs_dot(&p, t, n) + 1e-30;
                char msg[256];
                if (!(fabs((double)y1[i] - yr[i]) <= tol)) {
                    snprintf(msg, sizeof msg, "%s %s K=%lld N=%lld T=%lld: y[%lld][%lld] = %.9g, ref %.9g, tol %.3g",
                             kt->name, tn, (long long)K, (long long)N, (long long)T, (long long)t,
                             (long long)n, y1[i], yr[i], tol);
                    test_record_failure(__FILE__, __LINE__, msg);
                    ok = false;
                } else if (memcmp(&y1[i], &y2[i], sizeof(float)) != 0) {
                    snprintf(msg, sizeof msg, "%s %s: 1 thread %.9g, 2 threads %.9g at [%lld][%lld]",
                             kt->name, tn, y1[i], y2[i], (long long)t, (long long)n);
                    test_record_failure(__FILE__, __LINE__, msg);
                    ok = false;
                }
            }
        }
    }
done:
    problem_free(&p);
    free(yr);
    free(y1);
    free(y2);
    return ok;
}

static void test_simd_matches_ref(void)
{
    for_all_shapes(simd_vs_ref);
}

/* ---- activation quantization ------------------------------------------- */

static void test_quantize_bit_exact(void)
{
    enum { N = 1024 };
    static float x[N];
    static kernels_q8 a[N / 32], b[N / 32];
    static kernels_q8k ak[N / QK_K], bk[N / QK_K];
    loft_rng r;
    loft_rng_seed(&r, 7);
    fill_values(&r, x, N);
    x[100] = 0.5f / 127.0f * 3.0f; /* a value that lands on a rounding tie in some blocks */
    const loft_kernels *ref = kernels_get_isa("ref");
    ref->quantize_q8(x, a, N);
    ref->quantize_q8k(x, ak, N);
    /* the ref blocks decode to within half a step of x, plus the F16
     * rounding of the stored scale (relative 2^-11, times |q| <= 127) */
    for (int i = 0; i < N; i++) {
        const kernels_q8 *q = &a[i / 32];
        CHECKF(fabsf(q->d * q->qs[i % 32] - x[i]) <= q->d * (0.5001f + 127.0f / 2047.0f) + 1e-30f,
               "q8 value %d", i);
    }
    for (int i = 0; i < N / 32; i++) {
        int s = 0;
        for (int j = 0; j < 32; j++) s += a[i].qs[j];
        CHECKF(s == a[i].sum, "q8 block %d sum %d, stored %d", i, s, (int)a[i].sum);
    }
    for (size_t si = 0; si < sizeof simd_sets / sizeof simd_sets[0]; si++) {
        const loft_kernels *kt = kernels_get_isa(simd_sets[si]);
        if (!kt) continue;
        memset(b, 0x55, sizeof b);
        memset(bk, 0x55, sizeof bk);
        kt->quantize_q8(x, b, N);
        kt->quantize_q8k(x, bk, N);
        for (int i = 0; i < N / 32; i++)
            CHECKF(memcmp(&a[i], &b[i], sizeof a[i]) == 0, "%s: q8 block %d differs from ref",
                   kt->name, i);
        for (int i = 0; i < N / QK_K; i++)
            CHECKF(memcmp(&ak[i], &bk[i], sizeof ak[i]) == 0, "%s: q8k block %d differs from ref",
                   kt->name, i);
    }
}

/* ---- attention ------------------------------------------------------------ */

/* ref's attention against layers.c's attention_forward (the model's
 * reference), and every SIMD set against ref, with 1 and 2 threads.
 * Outputs are convex combinations of value rows, so the tolerance is
 * relative to max|V|: 1e-5 (float vs double sums of at most ~20 terms). */
static void test_attention(void)
{
    static const int32_t shapes[][8] = {
        /* n_head, n_head_kv, head_dim, head_dim_v, window, softcap, T, pos0 */
        {9, 3, 64, 64, 0, 0, 3, 0}, {4, 1, 256, 256, 0, 0, 2, 5}, {6, 6, 7, 5, 0, 0, 1, 0},
        {8, 2, 37, 40, 4, 0, 7, 3}, {5, 1, 16, 16, 0, 30, 3, 2},  {1, 1, 1, 1, 0, 0, 1, 0},
    };
    loft_rng r;
    loft_rng_seed(&r, 99);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int32_t *sh = shapes[si];
        const kernels_attn as = {sh[0], sh[1], sh[2], sh[3], sh[4],
                                 1.0f / sqrtf((float)sh[2]), (float)sh[5], KERNELS_ATTN_OWN};
        const int32_t T = sh[6], pos0 = sh[7], n_pos = pos0 + T;
        const size_t qn = (size_t)T * (size_t)(as.n_head * as.head_dim);
        const size_t on = (size_t)T * (size_t)(as.n_head * as.head_dim_v);
        const size_t kn = (size_t)n_pos * (size_t)(as.n_head_kv * as.head_dim);
        const size_t vn = (size_t)n_pos * (size_t)(as.n_head_kv * as.head_dim_v);
        float *q = malloc(qn * 4), *K = malloc(kn * 4), *V = malloc(vn * 4);
        float *o_model = malloc(on * 4), *o_ref = malloc(on * 4), *o1 = malloc(on * 4),
              *o2 = malloc(on * 4);
        float *scores = malloc(kernels_attention_scratch(NULL, n_pos) * 2 * 4);
        CHECK(q && K && V && o_model && o_ref && o1 && o2 && scores);
        for (size_t i = 0; i < qn; i++) q[i] = (float)(loft_rng_uniform(&r) * 4.0 - 2.0);
        for (size_t i = 0; i < kn; i++) K[i] = (float)(loft_rng_uniform(&r) * 4.0 - 2.0);
        float vmax = 0.0f;
        for (size_t i = 0; i < vn; i++) {
            V[i] = (float)(loft_rng_uniform(&r) * 2.0 - 1.0);
            vmax = fmaxf(vmax, fabsf(V[i]));
        }
        const attn_shape ms = {as.n_head, as.n_head_kv, as.head_dim, as.head_dim_v,
                               as.window,  as.scale,     as.softcap};
        uint16_t *Kh = malloc(kn * 2), *Vh = malloc(vn * 2);
        threadpool *pool = NULL;
        loft_status st;
        CHECK(Kh && Vh && threadpool_init(&pool, 2, &st) == LOFT_OK);
        /* pass 0: an F32 cache; pass 1: the same values stored as F16 (the
         * model's reference then sees the rounded values) */
        for (int pass = 0; pass < 2; pass++) {
            const uint32_t kvt = pass ? LOFT_TYPE_F16 : LOFT_TYPE_F32;
            if (pass) {
                for (size_t i = 0; i < kn; i++) K[i] = loft_f16_to_f32(Kh[i] = loft_f32_to_f16(K[i]));
                for (size_t i = 0; i < vn; i++) V[i] = loft_f16_to_f32(Vh[i] = loft_f32_to_f16(V[i]));
            }
            const void *Kp = pass ? (const void *)Kh : (const void *)K;
            const void *Vp = pass ? (const void *)Vh : (const void *)V;
            for (int32_t t = 0; t < T; t++)
                attention_forward(o_model + (size_t)t * (size_t)(as.n_head * as.head_dim_v),
                                  q + (size_t)t * (size_t)(as.n_head * as.head_dim), K, V, pos0 + t,
                                  &ms, scores);
            for (size_t i = 0; i < on; i++) o_ref[i] = NAN;
            kernels_attention(kernels_get_isa("ref"), NULL, o_ref, q, T, pos0, Kp, Vp, kvt, &as,
                              scores);
            const float tol = 1e-5f * vmax;
            for (size_t i = 0; i < on; i++)
                CHECKF(fabsf(o_ref[i] - o_model[i]) <= tol,
                       "shape %zu pass %d: ref %.9g, attention_forward %.9g at %zu", si, pass,
                       o_ref[i], o_model[i], i);
            for (size_t k = 0; k < sizeof simd_sets / sizeof simd_sets[0]; k++) {
                const loft_kernels *kt = kernels_get_isa(simd_sets[k]);
                if (!kt) continue;
                for (size_t i = 0; i < on; i++) o1[i] = o2[i] = NAN;
                kernels_attention(kt, NULL, o1, q, T, pos0, Kp, Vp, kvt, &as, scores);
                kernels_attention(kt, pool, o2, q, T, pos0, Kp, Vp, kvt, &as, scores);
                for (size_t i = 0; i < on; i++) {
                    CHECKF(fabsf(o1[i] - o_ref[i]) <= tol, "%s shape %zu pass %d: %.9g, ref %.9g at %zu",
                           kt->name, si, pass, o1[i], o_ref[i], i);
                    CHECKF(memcmp(&o1[i], &o2[i], 4) == 0,
                           "%s shape %zu pass %d: 1 vs 2 threads differ at %zu", kt->name, si, pass, i);
                }
            }
        }
        free(Kh);
        free(Vh);
        threadpool_free(pool);
        free(q);
        free(K);
        free(V);
        free(o_model);
        free(o_ref);
        free(o1);
        free(o2);
        free(scores);
    }
}

/* ---- gated activations ---------------------------------------------------- */

/* ref against layers.c's swiglu_forward / geglu_forward (identical formulas:
 * bit-exact), every SIMD set against ref within 2e-6 * |gate * up| (their
 * exp-based form avoids the cancellation of 1 + tanh for negative gates, so
 * the error is measured against the size of the inputs), 1 vs 2 threads
 * bit-identical. Lengths are odd and the output aliases the gate. */
static void test_glu(void)
{
    static const int64_t lens[] = {1, 7, 8, 37, 5000};
    loft_rng r;
    loft_rng_seed(&r, 5);
    threadpool *pool = NULL;
    loft_status st;
    CHECK(threadpool_init(&pool, 2, &st) == LOFT_OK);
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int64_t n = lens[li];
        float *g = malloc((size_t)n * 4), *u = malloc((size_t)n * 4), *ref = malloc((size_t)n * 4),
              *lay = malloc((size_t)n * 4), *o1 = malloc((size_t)n * 4), *o2 = malloc((size_t)n * 4);
        CHECK(g && u && ref && lay && o1 && o2);
        for (int64_t i = 0; i < n; i++) {
            g[i] = (float)(loft_rng_uniform(&r) * 24.0 - 12.0);
            u[i] = (float)(loft_rng_uniform(&r) * 4.0 - 2.0);
        }
        g[0] = n > 1 ? 0.0f : g[0];
        if (n > 3) g[3] = 1e-20f;
        for (int kind = 0; kind < 2; kind++) {
            const loft_kernels *rk = kernels_get_isa("ref");
            (kind ? rk->geglu : rk->swiglu)(ref, g, u, n);
            if (kind)
                geglu_forward(lay, g, u, 1, n);
            else
                swiglu_forward(lay, g, u, 1, n);
            CHECKF(memcmp(ref, lay, (size_t)n * 4) == 0, "ref glu %d differs from layers.c", kind);
            for (size_t k = 0; k < sizeof simd_sets / sizeof simd_sets[0]; k++) {
                const loft_kernels *kt = kernels_get_isa(simd_sets[k]);
                if (!kt) continue;
                memcpy(o1, g, (size_t)n * 4); /* out aliases gate */
                memcpy(o2, g, (size_t)n * 4);
                kernels_glu(kt, NULL, kind ? KERNELS_GEGLU : KERNELS_SWIGLU, o1, o1, u, n);
                kernels_glu(kt, pool, kind ? KERNELS_GEGLU : KERNELS_SWIGLU, o2, o2, u, n);
                for (int64_t i = 0; i < n; i++) {
                    CHECKF(fabsf(o1[i] - ref[i]) <= 2e-6f * fabsf(g[i] * u[i]) + 1e-37f,
                           "%s glu %d n=%lld at %lld: g %.9g -> %.9g, ref %.9g", kt->name, kind,
                           (long long)n, (long long)i, g[i], o1[i], ref[i]);
                    CHECKF(memcmp(&o1[i], &o2[i], 4) == 0, "%s glu %d: threads differ at %lld",
                           kt->name, kind, (long long)i);
                }
            }
        }
        free(g);
        free(u);
        free(ref);
        free(lay);
        free(o1);
        free(o2);
    }
    threadpool_free(pool);
}

/* ---- the driver's contract ----------------------------------------------- */

static void test_matmul_errors(void)
{
    loft_status st;
    float x[64] = {0}, y[4];
    char scratch[64];
    const uint8_t w[64] = {0};
    const kernels_weight wi8 = {w, LOFT_TYPE_I8, 64, 1, 64, NULL};
    CHECK(kernels_matmul(kernels_get(), NULL, y, x, 1, &wi8, scratch, sizeof scratch, &st) ==
          LOFT_ERR_UNSUPPORTED);
    const kernels_weight wq = {w, LOFT_TYPE_Q8_0, 64, 1, 68, NULL};
    CHECK(kernels_x_row_size(LOFT_TYPE_Q8_0, 64) == 2 * sizeof(kernels_q8));
    CHECK(kernels_matmul(kernels_get(), NULL, y, x, 1, &wq, scratch, 10, &st) == LOFT_ERR_ARG);
    CHECK(kernels_x_row_size(LOFT_TYPE_Q4_K, 100) == 0);
    CHECK(kernels_x_row_size(LOFT_TYPE_F16, 7) == 7 * sizeof(float));
}

/* ---- llama.cpp's orders ------------------------------------------------- *
 *
 * Where a set follows ggml's summation order (loft_kernels.dotb and the
 * 32-value signed bodies), results are fixed to the bit by that order:
 * Q5_0 / Q8_0: a token's outputs do not depend on how many tokens share the
 * product (ggml's vec_dot and tinyBLAS agree), so the gemm tiles equal one
 * token at a time; Q4_K / Q6_K: every x86 set computes the same bits
 * (avx512's Q4_K tile against avx2's dotb). */
static bool same_bits(const float *a, const float *b, int64_t n, const char *what)
{
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], 4) != 0) {
            char msg[160];
            snprintf(msg, sizeof msg, "%s: differs at %lld (%.9g vs %.9g)", what, (long long)i,
                     a[i], b[i]);
            test_record_failure(__FILE__, __LINE__, msg);
            return false;
        }
    return true;
}

static void test_ggml_orders(void)
{
    static const struct { uint32_t type; int64_t K, N, T; } cases[] = {
        {LOFT_TYPE_Q5_0, 640, 11, 19}, {LOFT_TYPE_Q8_0, 640, 7, 21}, {LOFT_TYPE_Q5_0, 2112, 5, 9},
        {LOFT_TYPE_Q4_K, 2048, 9, 19}, {LOFT_TYPE_Q6_K, 2048, 5, 11}, {LOFT_TYPE_Q4_K, 1024, 6, 7},
        {LOFT_TYPE_Q6_K, 2560, 6, 19},
    };
    const loft_kernels *a2 = kernels_get_isa("avx2"), *a5 = kernels_get_isa("avx512");
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        problem p;
        const int64_t K = cases[ci].K, N = cases[ci].N, T = cases[ci].T;
        CHECK(problem_make(&p, cases[ci].type, K, N, T, 77 + ci));
        float *y = malloc(sizeof(float) * (size_t)(T * N)), *y1 = malloc(sizeof(float) * (size_t)(T * N));
        CHECK(y && y1);
        const bool b32 = cases[ci].type == LOFT_TYPE_Q5_0 || cases[ci].type == LOFT_TYPE_Q8_0;
        for (size_t si = 0; b32 && si < sizeof simd_sets / sizeof simd_sets[0]; si++) {
            const loft_kernels *kt = kernels_get_isa(simd_sets[si]);
            if (!kt || strcmp(kt->name, "neon") == 0) continue;
            CHECK(run_matmul(kt, &p, 2, y) == LOFT_OK);
            for (int64_t t = 0; t < T; t++) {
                problem one = p;
                one.T = 1;
                one.x = p.x + t * K;
                CHECK(run_matmul(kt, &one, 1, y1 + t * N) == LOFT_OK);
            }
            CHECK(same_bits(y, y1, T * N, kt->name));
        }
        if (!b32 && a2 && a5) {
            CHECK(run_matmul(a5, &p, 2, y) == LOFT_OK);
            CHECK(run_matmul(a2, &p, 1, y1) == LOFT_OK);
            CHECK(same_bits(y, y1, T * N, loft_type_get(cases[ci].type)->name));
        }
        free(y);
        free(y1);
        problem_free(&p);
    }
    /* the F16-table gelu: every set gives ref's bits, edges at +-10 included */
    enum { NG = 4099 };
    static float g[NG], u[NG], r[NG], o[NG];
    for (int i = 0; i < NG; i++) {
        g[i] = -12.0f + 24.0f * (float)i / (float)(NG - 1);
        u[i] = 1.0f + (float)(i % 7) * 0.25f;
    }
    g[5] = -10.0f;
    g[6] = 10.0f;
    g[7] = -1.99918556f; /* rounds to an F16 whose fused gelu differs */
    kernels_glu(kernels_get_isa("ref"), NULL, KERNELS_GEGLU_F16, r, g, u, NG);
    CHECK(r[5] == 0.0f && r[6] == 10.0f * u[6]);
    for (size_t si = 0; si < sizeof simd_sets / sizeof simd_sets[0]; si++) {
        const loft_kernels *kt = kernels_get_isa(simd_sets[si]);
        if (!kt) continue;
        kernels_glu(kt, NULL, KERNELS_GEGLU_F16, o, g, u, NG);
        CHECK(same_bits(o, r, NG, kt->name));
    }
}

static void test_table_names(void)
{
    const loft_kernels *best = kernels_get();
    CHECK(best && best->name);
    CHECK(kernels_get_isa("ref") != NULL);
    CHECK(kernels_get_isa("nonsense") == NULL);
    const char *isa = getenv("LOFT_ISA");
    if (isa && kernels_get_isa(isa)) CHECKF(strcmp(best->name, isa) == 0, "LOFT_ISA=%s gave %s", isa, best->name);
    printf("kernel sets here:");
    const char *all[] = {"ref", "avx2", "avx512", "neon"};
    for (int i = 0; i < 4; i++)
        if (kernels_get_isa(all[i])) printf(" %s", all[i]);
    printf("; in use: %s\n", best->name);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"table_names", test_table_names},
        {"quantize_bit_exact", test_quantize_bit_exact},
        {"ref_matches_float_truth", test_ref_matches_float_truth},
        {"simd_matches_ref", test_simd_matches_ref},
        {"f32_path_matches_float_truth", test_f32_path_matches_float_truth},
        {"matmul_errors", test_matmul_errors},
        {"attention", test_attention},
        {"glu", test_glu},
        {"ggml_orders", test_ggml_orders},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
