/*
 * The trainer's F32 GEMMs (src/train/fgemm.c, lora_mm.c, attn_mm.c) against
 * their references: a double-precision naive product, matmul_qw /
 * matmul_qw_backward_x (model/layers*.h), lora_forward / lora_backward
 * (train/lora.h) and attention_seq_forward / attention_seq_backward.
 * Odd shapes (tails in every dimension); the padding around outputs is
 * poisoned with NaN and must stay NaN. Stated tolerance: |got - ref| <=
 * 1e-5 * sum_k |a_k b_k| + 1e-30 per element (F32 rounding of a K-term sum
 * is below K * 6e-8 of that bound for the K used here), i.e. reassociation
 * only. Thread counts 1 and 3 must give identical bits, and a quantized
 * weight must give the same bits as its dequantized F32 copy (the SIMD
 * dequantizers are exact). Run with LOFT_ISA=ref too for the portable body.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/threadpool.h"
#include "model/layers_backward.h"
#include "quant/quant.h"
#include "test.h"
#include "train/attn_mm.h"
#include "train/fgemm.h"
#include "train/lora.h"
#include "train/lora_mm.h"

static uint32_t rng_state = 12345u;
static float frand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return (float)((double)rng_state / 4294967296.0 * 2.0 - 1.0);
}

static float *rand_buf(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (p)
        for (size_t i = 0; i < n; i++)
            p[i] = frand();
    return p;
}

static float *nan_buf(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (p)
        for (size_t i = 0; i < n; i++)
            p[i] = NAN;
    return p;
}

static bool close_to(float got, double ref, double mag)
{
    return fabs((double)got - ref) <= 1e-5 * mag + 1e-30;
}

/* ---- fgemm against a naive product --------------------------------------- */

static void check_gemm_shape(threadpool *pool, int64_t M, int64_t N, int64_t K, bool acc)
{
    const int64_t lda = K + 2, ldb = N + 5, ldc = N + 3;
    float *A = rand_buf((size_t)(M * lda)), *B = rand_buf((size_t)(K * ldb));
    float *C = nan_buf((size_t)(M * ldc)), *C0 = rand_buf((size_t)(M * N));
    CHECK(A && B && C && C0);
    if (!A || !B || !C || !C0) goto done;
    if (acc)
        for (int64_t i = 0; i < M; i++)
            memcpy(C + i * ldc, C0 + i * N, (size_t)N * sizeof(float));
    fgemm(pool, M, N, K, A, lda, B, ldb, C, ldc, acc);
    int bad = 0;
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double ref = acc ? (double)C0[i * N + j] : 0.0, mag = fabs(ref);
            for (int64_t k = 0; k < K; k++) {
                ref += (double)A[i * lda + k] * (double)B[k * ldb + j];
                mag += fabs((double)A[i * lda + k] * (double)B[k * ldb + j]);
            }
            if (!close_to(C[i * ldc + j], ref, mag) && bad++ < 3)
                CHECKF(0, "M %lld N %lld K %lld acc %d: C[%lld][%lld] %.9g vs %.9g", (long long)M,
                       (long long)N, (long long)K, acc, (long long)i, (long long)j, C[i * ldc + j],
                       ref);
        }
        for (int64_t j = N; j < ldc; j++)
            if (!isnan(C[i * ldc + j]) && bad++ < 3)
                CHECKF(0, "padding written at %lld", (long long)j);
    }
done:
    free(A);
    free(B);
    free(C);
    free(C0);
}

static void test_gemm_vs_naive(void)
{
    static const int64_t shapes[][3] = {{1, 1, 1},     {3, 17, 5},   {8, 32, 128}, {9, 33, 129},
                                        {13, 47, 300}, {57, 70, 64}, {2, 8, 400},  {5, 16, 0}};
    threadpool *pool = NULL;
    loft_status st;
    CHECK(threadpool_init(&pool, 3, &st) == LOFT_OK);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int acc = 0; acc < 2; acc++)
            check_gemm_shape(s % 2 ? pool : NULL, shapes[s][0], shapes[s][1], shapes[s][2], acc);
    threadpool_free(pool);
}

/* Columns split (wide N) and rows split (N <= 16) alike; both shapes are
 * above the size fgemm threads at. */
static void check_threads_bitwise(int64_t M, int64_t N, int64_t K)
{
    float *A = rand_buf((size_t)(M * K)), *B = rand_buf((size_t)(K * N));
    float *C1 = rand_buf((size_t)(M * N)), *C3 = malloc((size_t)(M * N) * sizeof(float));
    threadpool *pool = NULL;
    loft_status st;
    CHECK(A && B && C1 && C3 && threadpool_init(&pool, 3, &st) == LOFT_OK);
    if (A && B && C1 && C3 && pool) {
        memcpy(C3, C1, (size_t)(M * N) * sizeof(float));
        fgemm(NULL, M, N, K, A, K, B, N, C1, N, true);
        fgemm(pool, M, N, K, A, K, B, N, C3, N, true);
        CHECK(memcmp(C1, C3, (size_t)(M * N) * sizeof(float)) == 0);
    }
    threadpool_free(pool);
    free(A);
    free(B);
    free(C1);
    free(C3);
}

static void test_gemm_threads_bitwise(void)
{
    check_threads_bitwise(21, 230, 301);
    check_threads_bitwise(601, 8, 300);
}

/* ---- products through quantized weights --------------------------------- */

static void check_weight_type(uint32_t t, int64_t n_in, int64_t n_out, int64_t T)
{
    const char *name = loft_type_get(t)->name;
    threadpool *pool = NULL;
    loft_status st;
    CHECK(threadpool_init(&pool, 3, &st) == LOFT_OK);
    const size_t rb = loft_type_row_size(t, n_in);
    float *wf = rand_buf((size_t)(n_out * n_in)), *deq = malloc((size_t)(n_out * n_in) * 4);
    uint8_t *wq = malloc(rb * (size_t)n_out);
    float *x = rand_buf((size_t)(T * n_in)), *dy = rand_buf((size_t)(T * n_out));
    float *y1 = nan_buf((size_t)(T * n_out)), *y3 = nan_buf((size_t)(T * n_out));
    float *yf = nan_buf((size_t)(T * n_out)), *yref = malloc((size_t)(T * n_out) * 4);
    float *dx1 = rand_buf((size_t)(T * n_in)), *dx3 = malloc((size_t)(T * n_in) * 4);
    float *dxf = malloc((size_t)(T * n_in) * 4), *dx0 = malloc((size_t)(T * n_in) * 4);
    const size_t scr = fgemm_w_scratch(n_in);
    float *scratch = malloc(3 * scr * sizeof(float)), *row = malloc((size_t)n_in * 16 * 4);
    CHECK(pool && wf && deq && wq && x && dy && y1 && y3 && yf && yref && dx1 && dx3 && dxf &&
          dx0 && scr && scratch && row);
    if (!(pool && wf && deq && wq && x && dy && y1 && y3 && yf && yref && dx1 && dx3 && dxf &&
          dx0 && scratch && row))
        goto done;
    for (int64_t r = 0; r < n_out; r++) {
        CHECK(loft_quantize_row(t, wf + r * n_in, wq + (size_t)r * rb, n_in));
        CHECK(loft_dequantize_row(t, wq + (size_t)r * rb, deq + r * n_in, n_in));
    }
    const model_weight wq_w = {wq, t, n_in, n_out, rb, NULL};
    const model_weight wf_w = {deq, LOFT_TYPE_F32, n_in, n_out, (size_t)n_in * 4, NULL};
    /* forward: threads, reference and the F32 copy */
    fgemm_w_forward(NULL, y1, x, T, &wq_w, scratch);
    fgemm_w_forward(pool, y3, x, T, &wq_w, scratch);
    fgemm_w_forward(pool, yf, x, T, &wf_w, scratch);
    matmul_qw(yref, x, &wq_w, T, row);
    CHECKF(memcmp(y1, y3, (size_t)(T * n_out) * 4) == 0, "%s forward: 1 vs 3 threads", name);
    CHECKF(memcmp(y1, yf, (size_t)(T * n_out) * 4) == 0, "%s forward: quantized vs F32 copy", name);
    int bad = 0;
    for (int64_t i = 0; i < T * n_out; i++) {
        const int64_t tt = i / n_out, o = i % n_out;
        double mag = 0;
        for (int64_t k = 0; k < n_in; k++)
            mag += fabs((double)x[tt * n_in + k] * (double)deq[o * n_in + k]);
        if (!close_to(y1[i], yref[i], mag) && bad++ < 3)
            CHECKF(0, "%s forward [%lld]: %.9g vs %.9g", name, (long long)i, y1[i], yref[i]);
    }
    /* backward: dx += dy W */
    memcpy(dx0, dx1, (size_t)(T * n_in) * 4);
    memcpy(dx3, dx1, (size_t)(T * n_in) * 4);
    memcpy(dxf, dx1, (size_t)(T * n_in) * 4);
    fgemm_w_backward(NULL, dx1, dy, T, &wq_w, scratch);
    fgemm_w_backward(pool, dx3, dy, T, &wq_w, scratch);
    fgemm_w_backward(pool, dxf, dy, T, &wf_w, scratch);
    CHECKF(memcmp(dx1, dx3, (size_t)(T * n_in) * 4) == 0, "%s backward: 1 vs 3 threads", name);
    CHECKF(memcmp(dx1, dxf, (size_t)(T * n_in) * 4) == 0, "%s backward: quantized vs F32 copy",
           name);
    bad = 0;
    for (int64_t tt = 0; tt < T; tt++)
        for (int64_t k = 0; k < n_in; k++) {
            double ref = dx0[tt * n_in + k], mag = fabs(ref);
            for (int64_t o = 0; o < n_out; o++) {
                ref += (double)dy[tt * n_out + o] * (double)deq[o * n_in + k];
                mag += fabs((double)dy[tt * n_out + o] * (double)deq[o * n_in + k]);
            }
            if (!close_to(dx1[tt * n_in + k], ref, mag) && bad++ < 3)
                CHECKF(0, "%s backward [%lld][%lld]: %.9g vs %.9g", name, (long long)tt,
                       (long long)k, dx1[tt * n_in + k], ref);
        }
done:
    threadpool_free(pool);
    free(wf), free(deq), free(wq), free(x), free(dy), free(y1), free(y3), free(yf), free(yref);
    free(dx1), free(dx3), free(dxf), free(dx0), free(scratch), free(row);
}

static void test_weight_products(void)
{
    static const uint32_t types[] = {LOFT_TYPE_F32,  LOFT_TYPE_F16,  LOFT_TYPE_BF16,
                                     LOFT_TYPE_Q8_0, LOFT_TYPE_Q4_0, LOFT_TYPE_Q4_1,
                                     LOFT_TYPE_Q5_0, LOFT_TYPE_Q4_K, LOFT_TYPE_Q6_K};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const bool k = loft_type_get(types[i])->block_size == QK_K;
        check_weight_type(types[i], k ? 512 : 160, 71, 11);
    }
}

/* Several weights of different block sizes in one pass over 3 threads give
 * the bits of one call per weight on the caller alone. */
static void test_weight_backward_multi(void)
{
    enum { NIN = 512, T = 9 };
    static const uint32_t types[3] = {LOFT_TYPE_Q4_K, LOFT_TYPE_Q8_0, LOFT_TYPE_F16};
    static const int64_t n_out[3] = {40, 24, 33};
    threadpool *pool = NULL;
    loft_status st;
    CHECK(threadpool_init(&pool, 3, &st) == LOFT_OK);
    model_weight w[3];
    const model_weight *ws[3];
    const float *dys[3];
    float *dy[3] = {NULL, NULL, NULL};
    uint8_t *q[3] = {NULL, NULL, NULL};
    float *dx1 = rand_buf(T * NIN), *dx2 = malloc(T * NIN * sizeof(float));
    float *scratch = malloc(3 * fgemm_w_scratch(NIN) * sizeof(float)), *row = rand_buf(NIN);
    bool ok = pool && dx1 && dx2 && scratch && row;
    for (int i = 0; i < 3 && ok; i++) {
        const size_t rb = loft_type_row_size(types[i], NIN);
        q[i] = malloc(rb * (size_t)n_out[i]);
        dy[i] = rand_buf((size_t)(T * n_out[i]));
        ok = q[i] && dy[i];
        for (int64_t r = 0; ok && r < n_out[i]; r++) {
            for (int k = 0; k < NIN; k++)
                row[k] = frand();
            ok = loft_quantize_row(types[i], row, q[i] + (size_t)r * rb, NIN);
        }
        w[i] = (model_weight){q[i], types[i], NIN, n_out[i], rb, NULL};
        ws[i] = &w[i];
        dys[i] = dy[i];
    }
    CHECK(ok);
    if (ok) {
        memcpy(dx2, dx1, T * NIN * sizeof(float));
        for (int i = 0; i < 3; i++)
            fgemm_w_backward(NULL, dx1, dy[i], T, &w[i], scratch);
        fgemm_w_backward_multi(pool, dx2, 3, dys, ws, T, scratch);
        CHECK(memcmp(dx1, dx2, T * NIN * sizeof(float)) == 0);
    }
    for (int i = 0; i < 3; i++)
        free(q[i]), free(dy[i]);
    free(dx1), free(dx2), free(scratch), free(row);
    threadpool_free(pool);
}

/* ---- LoRA ---------------------------------------------------------------- */

static void test_lora_mm(void)
{
    enum { T = 7, NIN = 40, NOUT = 37, R = 3 };
    lora_dims dims = {.n_layer = 1};
    dims.n_in[LORA_FFN_UP] = NIN;
    dims.n_out[LORA_FFN_UP] = NOUT;
    lora_set a, b;
    loft_status st;
    CHECK(lora_set_init(&a, &dims, 1u << LORA_FFN_UP, R, 6.0f, &st) == LOFT_OK);
    CHECK(lora_set_init(&b, &dims, 1u << LORA_FFN_UP, R, 6.0f, &st) == LOFT_OK);
    lora_module *ma = &a.mods[0], *mb = &b.mods[0];
    for (size_t i = 0; i < a.n_params; i++)
        a.params[i] = b.params[i] = frand();
    for (size_t i = 0; i < a.n_params; i++)
        a.grads[i] = b.grads[i] = frand();
    float x[T * NIN], dy[T * NOUT], y0[T * NOUT], ya[T * NOUT], yb[T * NOUT];
    float ua[T * R], ub[T * R], dxa[T * NIN], dxb[T * NIN], du[T * R];
    for (int i = 0; i < T * NIN; i++)
        x[i] = frand(), dxa[i] = dxb[i] = frand();
    for (int i = 0; i < T * NOUT; i++)
        dy[i] = frand(), y0[i] = ya[i] = yb[i] = frand();
    float *scr = malloc(lora_mm_scratch(mb, R, T) * sizeof(float));
    CHECK(scr && lora_mm_scratch(mb, R, T) > 0);
    if (!scr) return;
    lora_forward(ya, ua, x, ma, R, a.scale, T);
    lora_mm_forward(NULL, yb, ub, x, mb, R, b.scale, T, NULL, scr);
    lora_backward(dxa, dy, x, ua, ma, R, a.scale, T, du);
    lora_mm_backward(NULL, dxb, dy, x, ub, mb, R, b.scale, T, NULL, scr);
    /* magnitudes: upper bounds of the sums of |terms| (all inputs in
     * [-1, 1], so |u| <= NIN and |du| <= scale * NOUT) */
    int bad = 0;
    for (int i = 0; i < T * R; i++)
        if (!close_to(ub[i], ua[i], NIN) && bad++ < 3) CHECKF(0, "u[%d]", i);
    for (int i = 0; i < T * NOUT; i++)
        if (!close_to(yb[i], ya[i], fabs(y0[i]) + a.scale * R * NIN) && bad++ < 3)
            CHECKF(0, "y[%d] %.9g vs %.9g", i, yb[i], ya[i]);
    for (size_t i = 0; i < a.n_params; i++)
        if (!close_to(b.grads[i], a.grads[i], 1.0 + a.scale * T * (NIN + NOUT)) && bad++ < 3)
            CHECKF(0, "grad[%zu] %.9g vs %.9g", i, b.grads[i], a.grads[i]);
    for (int i = 0; i < T * NIN; i++)
        if (!close_to(dxb[i], dxa[i], 1.0 + a.scale * R * NOUT) && bad++ < 3)
            CHECKF(0, "dx[%d] %.9g vs %.9g", i, dxb[i], dxa[i]);
    free(scr);
    lora_set_free(&a);
    lora_set_free(&b);
}

/* ---- attention ----------------------------------------------------------- */

static void check_attention(int32_t window)
{
    enum { T = 13, NH = 4, NKV = 2, HD = 8 };
    const attn_shape as = {.n_head = NH,
                           .n_head_kv = NKV,
                           .head_dim = HD,
                           .head_dim_v = HD,
                           .window = window,
                           .scale = 0.35f};
    float q[T * NH * HD], k[T * NKV * HD], v[T * NKV * HD], go[T * NH * HD];
    float oa[T * NH * HD], ob[T * NH * HD], pa[NH * T * T], pb[NH * T * T], sc[T];
    float dqa[T * NH * HD], dqb[T * NH * HD], dka[T * NKV * HD], dkb[T * NKV * HD];
    float dva[T * NKV * HD], dvb[T * NKV * HD], dqc[T * NH * HD], dkc[T * NKV * HD],
        dvc[T * NKV * HD];
    for (int i = 0; i < T * NH * HD; i++)
        q[i] = 2 * frand(), go[i] = frand(), dqa[i] = dqb[i] = dqc[i] = frand();
    for (int i = 0; i < T * NKV * HD; i++)
        k[i] = 2 * frand(), v[i] = frand(), dka[i] = dkb[i] = dkc[i] = frand(),
        dva[i] = dvb[i] = dvc[i] = frand();
    float *scr = malloc(attn_mm_scratch(T, &as) * sizeof(float));
    CHECK(scr);
    if (!scr) return;
    attention_seq_forward(oa, pa, q, k, v, T, &as);
    attn_mm_forward(ob, pb, q, k, v, T, &as, 0, NKV, scr);
    attention_seq_backward(dqa, dka, dva, go, pa, q, k, v, T, &as, sc);
    attn_mm_backward(dqb, dkb, dvb, go, pb, q, k, v, T, &as, 0, NKV, scr);
    /* one kv head at a time gives the same bits as both at once */
    attn_mm_backward(dqc, dkc, dvc, go, pb, q, k, v, T, &as, 1, 2, scr);
    attn_mm_backward(dqc, dkc, dvc, go, pb, q, k, v, T, &as, 0, 1, scr);
    CHECK(!memcmp(dqb, dqc, sizeof dqb) && !memcmp(dkb, dkc, sizeof dkb) &&
          !memcmp(dvb, dvc, sizeof dvb));
    int bad = 0;
    for (int i = 0; i < NH * T * T; i++)
        if (!close_to(pb[i], pa[i], 1.0) && bad++ < 3)
            CHECKF(0, "window %d probs[%d] %.9g vs %.9g", window, i, pb[i], pa[i]);
    /* outputs and gradients here are O(1) sums of O(1) terms */
    const double mag = 10.0;
    for (int i = 0; i < T * NH * HD; i++) {
        if (!close_to(ob[i], oa[i], mag) && bad++ < 3) CHECKF(0, "out[%d]", i);
        if (!close_to(dqb[i], dqa[i], mag) && bad++ < 3)
            CHECKF(0, "window %d dq[%d] %.9g vs %.9g", window, i, dqb[i], dqa[i]);
    }
    for (int i = 0; i < T * NKV * HD; i++) {
        if (!close_to(dkb[i], dka[i], mag) && bad++ < 3) CHECKF(0, "dk[%d]", i);
        if (!close_to(dvb[i], dva[i], mag) && bad++ < 3) CHECKF(0, "dv[%d]", i);
    }
    free(scr);
}

static void test_attention_mm(void)
{
    check_attention(0);
    check_attention(5);
}

int main(int argc, char **argv)
{
    printf("  fgemm body: %s\n", fgemm_isa());
    static const test_case cases[] = {
        {"gemm_vs_naive", test_gemm_vs_naive},
        {"gemm_threads_bitwise", test_gemm_threads_bitwise},
        {"weight_products", test_weight_products},
        {"weight_backward_multi", test_weight_backward_multi},
        {"lora_mm", test_lora_mm},
        {"attention_mm", test_attention_mm},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
