/*
 * The SIMD bodies of kernels_attn_group_ggml against the scalar emulation
 * (the oracle): identical bits, required by memcmp, on random F16 caches
 * and queries of odd shapes - head dims 64..256 and a few with tails,
 * 1..600 cells, 1..4 query heads, both ggml modes, windows that start past
 * cell 0, softcap on and off, and queries large enough that some
 * exponentials saturate or leave the normal range of 2^n. Outputs and
 * score buffers are poisoned with NaN first. The same for several query
 * tokens at once (kernels_attn_tokens_ggml, 1..4 tokens, per-token windows,
 * prompts that start past cell 0) against the one-token scalar body token
 * by token, and for kernels_attention's runs of tokens over 1 and 2
 * threads (1..8 tokens, several kv heads, head groups split in parts).
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "base/threadpool.h"
#include "kernels/attn_ggml.h"
#include "kernels/kernels.h"
#include "quant/quant.h"
#include "test.h"

typedef struct shape {
    int32_t hd, hdv;
} shape;

static const shape shapes[] = {{64, 64},   {80, 80}, {96, 96},  {128, 128}, {256, 256},
                               {72, 40},   {48, 40}, {64, 200}, {8, 24}};
static const int32_t cell_counts[] = {1, 15, 16, 17, 100, 600};

static float frand(loft_rng *r, float mag)
{
    return (float)(loft_rng_uniform(r) * 2.0 - 1.0) * mag;
}

/* One comparison of body `isa` with "ref"; returns the number of checks
 * that failed (0 when isa is not available here). */
static int compare_one(const char *isa, loft_rng *r, shape sh, int32_t n_cells, int ng, int mode,
                       int32_t first, float softcap, float qmag)
{
    const size_t k_stride = (size_t)sh.hd + 8, v_stride = (size_t)sh.hdv + 3;
    const size_t nk = (size_t)n_cells * k_stride, nv = (size_t)n_cells * v_stride;
    uint16_t *K = malloc(nk * sizeof *K), *V = malloc(nv * sizeof *V);
    float *q = malloc((size_t)ng * (size_t)sh.hd * sizeof *q);
    const size_t no = (size_t)ng * (size_t)sh.hdv, ns = (size_t)ng * (size_t)n_cells;
    float *o_ref = malloc(no * sizeof(float)), *o_simd = malloc(no * sizeof(float));
    float *s_ref = malloc(ns * sizeof(float)), *s_simd = malloc(ns * sizeof(float));
    if (!K || !V || !q || !o_ref || !o_simd || !s_ref || !s_simd) {
        test_record_failure(__FILE__, __LINE__, "out of memory");
        free(K), free(V), free(q), free(o_ref), free(o_simd), free(s_ref), free(s_simd);
        return 1;
    }
    for (size_t i = 0; i < nk; i++)
        K[i] = loft_f32_to_f16(frand(r, 2.0f));
    for (size_t i = 0; i < nv; i++)
        V[i] = loft_f32_to_f16(frand(r, 3.0f));
    for (size_t i = 0; i < (size_t)ng * (size_t)sh.hd; i++)
        q[i] = frand(r, qmag);
    for (size_t i = 0; i < no; i++)
        o_ref[i] = o_simd[i] = NAN;
    for (size_t i = 0; i < ns; i++)
        s_ref[i] = s_simd[i] = NAN;
    const kernels_attn as = {.n_head = ng,
                             .n_head_kv = 1,
                             .head_dim = sh.hd,
                             .head_dim_v = sh.hdv,
                             .scale = 1.0f / sqrtf((float)sh.hd),
                             .softcap = softcap,
                             .f16_products = mode};
    int bad = 0;
    char msg[512];
    if (!kernels_attn_group_ggml_isa("ref", o_ref, q, ng, K, k_stride, V, v_stride, first,
                                     n_cells - 1, &as, s_ref)) {
        test_record_failure(__FILE__, __LINE__, "the ref body is always available");
        bad = 1;
    } else if (kernels_attn_group_ggml_isa(isa, o_simd, q, ng, K, k_stride, V, v_stride, first,
                                           n_cells - 1, &as, s_simd)) {
        if (memcmp(o_ref, o_simd, no * sizeof(float)) != 0) {
            size_t i = 0;
            while (i < no && memcmp(o_ref + i, o_simd + i, sizeof(float)) == 0)
                i++;
            snprintf(msg, sizeof msg,
                     "%s: hd %d hdv %d cells %d ng %d mode %d first %d softcap %g qmag %g: "
                     "out[%zu] %.9g vs ref %.9g",
                     isa, (int)sh.hd, (int)sh.hdv, (int)n_cells, ng, mode, (int)first,
                     (double)softcap, (double)qmag, i, (double)o_simd[i], (double)o_ref[i]);
            test_record_failure(__FILE__, __LINE__, msg);
            bad = 1;
        }
        size_t n_nan = 0; /* every output written (the inputs give finite ones) */
        for (size_t i = 0; i < no; i++)
            n_nan += isnan(o_ref[i]) != 0;
        if (n_nan) {
            snprintf(msg, sizeof msg, "ref left %zu of %zu outputs NaN", n_nan, no);
            test_record_failure(__FILE__, __LINE__, msg);
            bad = 1;
        }
    }
    free(K), free(V), free(q), free(o_ref), free(o_simd), free(s_ref), free(s_simd);
    return bad;
}

static void run_isa(const char *isa)
{
    loft_rng r;
    loft_rng_seed(&r, 0x5eed1234u);
    int n = 0, bad = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (size_t ci = 0; ci < sizeof cell_counts / sizeof cell_counts[0]; ci++)
            for (int ng = 1; ng <= 4; ng++)
                for (int mode = KERNELS_ATTN_GGML_DECODE; mode <= KERNELS_ATTN_GGML_BATCH; mode++)
                    for (int variant = 0; variant < 4; variant++) {
                        const int32_t nc = cell_counts[ci];
                        /* variants: full range, a window that starts past
                         * cell 0, softcap, and large queries (wide score
                         * spread: saturating exponentials) */
                        int32_t first = 0;
                        if (variant == 1 || variant == 3)
                            first = (int32_t)loft_rng_below(&r, (uint64_t)nc);
                        const float softcap = variant == 2 ? 30.0f : 0.0f;
                        const float qmag = variant == 3 ? 400.0f : 1.5f;
                        bad += compare_one(isa, &r, shapes[si], nc, ng, mode, first, softcap, qmag);
                        n++;
                        if (bad > 3) return;
                    }
    printf("  %s: %d shapes compared with ref\n", isa, n);
}

static void test_avx512_vs_ref(void)
{
    run_isa("avx512");
}

static void test_avx2_vs_ref(void)
{
    run_isa("avx2");
}

/* ---- several tokens at once ---------------------------------------------- */

typedef struct tok_case {
    shape sh;
    int32_t n_cells; /* the last token's last cell is n_cells - 1 */
    int nt, ng, mode;
    int32_t window; /* 0: every token sees cells 0.. */
    float softcap, qmag;
} tok_case;

/* Records a failure with a formatted message (without returning, so the
 * caller can free its buffers). */
static void record_failure(int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    test_record_failure(__FILE__, line, msg);
}

/* first[t]..last[t] of nt consecutive tokens ending at cell n_cells - 1. */
static void token_ranges(int32_t n_cells, int nt, int32_t window, int32_t *first, int32_t *last)
{
    for (int t = 0; t < nt; t++) {
        last[t] = n_cells - nt + t;
        first[t] = window > 0 && last[t] - window + 1 > 0 ? last[t] - window + 1 : 0;
    }
}

/* The first float (by bits) where a and b differ, or n. */
static size_t first_diff(const float *a, const float *b, size_t n)
{
    size_t i = 0;
    while (i < n && memcmp(a + i, b + i, sizeof(float)) == 0)
        i++;
    return i;
}

/* kernels_attn_tokens_ggml (the public entry and the body for `isa`)
 * against kernels_attn_group_ggml_isa("ref") token by token. Rows of q and
 * out have gaps between tokens; out's gaps must stay NaN. Returns the
 * number of checks that failed. */
static int compare_tokens(const char *isa, loft_rng *r, const tok_case *tc)
{
    const shape sh = tc->sh;
    const int nt = tc->nt, ng = tc->ng;
    const size_t k_stride = (size_t)sh.hd + 8, v_stride = (size_t)sh.hdv + 3;
    const size_t q_stride = (size_t)ng * (size_t)sh.hd + 5;
    const size_t o_stride = (size_t)ng * (size_t)sh.hdv + 7;
    const size_t nk = (size_t)tc->n_cells * k_stride, nv = (size_t)tc->n_cells * v_stride;
    const size_t nq = (size_t)nt * q_stride, no = (size_t)nt * o_stride;
    const size_t ns = kernels_attn_tokens_scratch(nt, ng, tc->n_cells);
    uint16_t *K = malloc(nk * sizeof *K), *V = malloc(nv * sizeof *V);
    float *q = malloc(nq * sizeof *q), *s = malloc(ns * sizeof *s);
    float *o_ref = malloc(no * sizeof(float)), *o_isa = malloc(no * sizeof(float));
    float *o_pub = malloc(no * sizeof(float));
    int bad = 0;
    if (!K || !V || !q || !s || !o_ref || !o_isa || !o_pub) {
        test_record_failure(__FILE__, __LINE__, "out of memory");
        bad = 1;
        goto done;
    }
    for (size_t i = 0; i < nk; i++)
        K[i] = loft_f32_to_f16(frand(r, 2.0f));
    for (size_t i = 0; i < nv; i++)
        V[i] = loft_f32_to_f16(frand(r, 3.0f));
    for (size_t i = 0; i < nq; i++)
        q[i] = frand(r, tc->qmag);
    for (size_t i = 0; i < no; i++)
        o_ref[i] = o_isa[i] = o_pub[i] = NAN;
    int32_t first[KERNELS_ATTN_GGML_MAX_TOKENS], last[KERNELS_ATTN_GGML_MAX_TOKENS];
    token_ranges(tc->n_cells, nt, tc->window, first, last);
    const kernels_attn as = {.n_head = ng,
                             .n_head_kv = 1,
                             .head_dim = sh.hd,
                             .head_dim_v = sh.hdv,
                             .window = tc->window,
                             .scale = 1.0f / sqrtf((float)sh.hd),
                             .softcap = tc->softcap,
                             .f16_products = tc->mode};
    for (int t = 0; t < nt; t++) {
        for (size_t i = 0; i < ns; i++)
            s[i] = NAN;
        if (!kernels_attn_group_ggml_isa("ref", o_ref + (size_t)t * o_stride,
                                         q + (size_t)t * q_stride, ng, K, k_stride, V, v_stride,
                                         first[t], last[t], &as, s)) {
            test_record_failure(__FILE__, __LINE__, "the ref body is always available");
            bad = 1;
            goto done;
        }
    }
    for (size_t i = 0; i < ns; i++)
        s[i] = NAN;
    kernels_attn_tokens_ggml(o_pub, o_stride, q, q_stride, nt, ng, K, k_stride, V, v_stride, first,
                             last, &as, s);
    for (size_t i = 0; i < ns; i++)
        s[i] = NAN;
    const bool have = kernels_attn_tokens_ggml_isa(isa, o_isa, o_stride, q, q_stride, nt, ng, K,
                                                   k_stride, V, v_stride, first, last, &as, s);
    const char *names[2] = {"public entry", isa};
    const float *outs[2] = {o_pub, o_isa};
    for (int k = 0; k < (have ? 2 : 1); k++) {
        const size_t i = first_diff(outs[k], o_ref, no);
        if (!(i == no))
            record_failure(
                __LINE__,
                "%s: hd %d hdv %d cells %d tokens %d ng %d mode %d window %d softcap %g qmag %g: "
                "out[%zu] (token %zu) %.9g vs ref %.9g",
                names[k], (int)sh.hd, (int)sh.hdv, (int)tc->n_cells, nt, ng, tc->mode,
                (int)tc->window, (double)tc->softcap, (double)tc->qmag, i, i / o_stride,
                i < no ? (double)outs[k][i] : 0.0, i < no ? (double)o_ref[i] : 0.0);
        bad += i != no;
    }
    size_t n_nan = 0; /* every output row written, no gap */
    for (int t = 0; t < nt; t++)
        for (size_t i = 0; i < (size_t)ng * (size_t)sh.hdv; i++)
            n_nan += isnan(o_ref[(size_t)t * o_stride + i]) != 0;
    if (n_nan != 0) record_failure(__LINE__, "ref left %zu outputs NaN", n_nan);
    bad += n_nan != 0;
done:
    free(K), free(V), free(q), free(s), free(o_ref), free(o_isa), free(o_pub);
    return bad;
}

static void test_tokens_vs_ref(void)
{
    static const int32_t cells[] = {1, 2, 5, 15, 16, 17, 33, 100, 600};
    static const int32_t windows[] = {1, 2, 7, 16, 50};
    loft_rng r;
    loft_rng_seed(&r, 0x70c5u);
    int n = 0, bad = 0, k = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (size_t ci = 0; ci < sizeof cells / sizeof cells[0]; ci++)
            for (int nt = 1; nt <= KERNELS_ATTN_GGML_MAX_TOKENS; nt++, k++) {
                if (cells[ci] < nt) continue;
                /* variants: full causal ranges, per-token windows (1: the
                 * tokens' ranges do not overlap), softcap, and large
                 * queries with a window; ggml's one-token order now and
                 * then (it goes token by token) */
                const int variant = k % 4;
                tok_case tc = {.sh = shapes[si],
                               .n_cells = cells[ci],
                               .nt = nt,
                               .ng = 1 + (int)loft_rng_below(&r, KERNELS_MAX_NX),
                               .mode =
                                   k % 7 == 3 ? KERNELS_ATTN_GGML_DECODE : KERNELS_ATTN_GGML_BATCH,
                               .softcap = variant == 2 ? 30.0f : 0.0f,
                               .qmag = variant == 3 ? 400.0f : 1.5f};
                if (variant == 1 || variant == 3)
                    tc.window = windows[loft_rng_below(&r, sizeof windows / sizeof windows[0])];
                bad += compare_tokens("avx512", &r, &tc);
                n++;
                if (bad > 3) return;
            }
    printf("  %d several-token shapes compared with ref\n", n);
}

/* kernels_attention (runs of tokens dealt to 1 and 2 threads) against the
 * one-token scalar body, head by head. */
static int compare_attention(loft_rng *r, threadpool *pool, int32_t n_head, int32_t n_kv, int32_t T,
                             int32_t pos0, int32_t window)
{
    const int32_t hd = 64, hdv = 64, n_pos = pos0 + T;
    const size_t kw = (size_t)n_kv * (size_t)hd, vw = (size_t)n_kv * (size_t)hdv;
    const size_t qw = (size_t)n_head * (size_t)hd, ow = (size_t)n_head * (size_t)hdv;
    const size_t nk = (size_t)n_pos * kw, nv = (size_t)n_pos * vw;
    const size_t ns = kernels_attention_scratch(pool, n_pos);
    uint16_t *K = malloc(nk * sizeof *K), *V = malloc(nv * sizeof *V);
    float *q = malloc((size_t)T * qw * sizeof *q), *s = malloc(ns * sizeof *s);
    float *o = malloc((size_t)T * ow * sizeof *o), *o_ref = malloc((size_t)T * ow * sizeof *o);
    int bad = 0;
    if (!K || !V || !q || !s || !o || !o_ref) {
        test_record_failure(__FILE__, __LINE__, "out of memory");
        bad = 1;
        goto done;
    }
    for (size_t i = 0; i < nk; i++)
        K[i] = loft_f32_to_f16(frand(r, 2.0f));
    for (size_t i = 0; i < nv; i++)
        V[i] = loft_f32_to_f16(frand(r, 3.0f));
    for (size_t i = 0; i < (size_t)T * qw; i++)
        q[i] = frand(r, 1.5f);
    for (size_t i = 0; i < (size_t)T * ow; i++)
        o[i] = o_ref[i] = NAN;
    for (size_t i = 0; i < ns; i++)
        s[i] = NAN;
    const kernels_attn as = {.n_head = n_head,
                             .n_head_kv = n_kv,
                             .head_dim = hd,
                             .head_dim_v = hdv,
                             .window = window,
                             .scale = 0.125f,
                             .f16_products =
                                 T > 1 ? KERNELS_ATTN_GGML_BATCH : KERNELS_ATTN_GGML_DECODE};
    kernels_attention(kernels_get(), pool, o, q, T, pos0, K, V, LOFT_TYPE_F16, &as, s);
    const int32_t group = n_head / n_kv;
    for (int32_t t = 0; t < T; t++)
        for (int32_t h = 0; h < n_head; h++) {
            const int32_t last = pos0 + t, hk = h / group;
            const int32_t first = window > 0 && last - window + 1 > 0 ? last - window + 1 : 0;
            kernels_attn_group_ggml_isa("ref", o_ref + (size_t)t * ow + (size_t)h * (size_t)hdv,
                                        q + (size_t)t * qw + (size_t)h * (size_t)hd, 1,
                                        K + (size_t)hk * (size_t)hd, kw,
                                        V + (size_t)hk * (size_t)hdv, vw, first, last, &as, s);
        }
    const size_t i = first_diff(o, o_ref, (size_t)T * ow);
    if (!(i == (size_t)T * ow))
        record_failure(
            __LINE__,
            "attention %d threads: heads %d/%d T %d pos0 %d window %d: out[%zu] %.9g vs ref %.9g",
            threadpool_size(pool), (int)n_head, (int)n_kv, (int)T, (int)pos0, (int)window, i,
            i < (size_t)T * ow ? (double)o[i] : 0.0, i < (size_t)T * ow ? (double)o_ref[i] : 0.0);
    bad = i != (size_t)T * ow;
done:
    free(K), free(V), free(q), free(s), free(o), free(o_ref);
    return bad;
}

static void test_attention_runs(void)
{
    static const int32_t heads[][2] = {{9, 3}, {6, 1}, {4, 4}};
    static const int32_t Ts[] = {1, 2, 5, 8};
    loft_rng r;
    loft_rng_seed(&r, 0xa77u);
    for (int nth = 1; nth <= 2; nth++) {
        threadpool *pool = NULL;
        loft_status st;
        if (threadpool_init(&pool, nth, &st) != LOFT_OK) {
            test_record_failure(__FILE__, __LINE__, "threadpool_init failed");
            return;
        }
        int bad = 0;
        for (size_t hi = 0; hi < sizeof heads / sizeof heads[0]; hi++)
            for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++)
                for (int32_t pos0 = 0; pos0 <= 37; pos0 += 37)
                    for (int32_t window = 0; window <= 5; window += 5)
                        if (bad < 3)
                            bad += compare_attention(&r, pool, heads[hi][0], heads[hi][1], Ts[ti],
                                                     pos0, window);
        threadpool_free(pool);
    }
}

/* kernels_silu_mul_ggml against its scalar definition, bit for bit, on
 * lengths around the 16-lane step, with values wide enough that e^-g
 * saturates or leaves the normal range, infinities and a NaN; the output
 * aliases the gate in one pass and is poisoned with NaN in the other. */
static void test_silu_mul(void)
{
    static const int64_t lens[] = {1, 15, 16, 17, 100, 1536};
    loft_rng r;
    loft_rng_seed(&r, 0x511u);
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
        for (int pass = 0; pass < 2; pass++) {
            const int64_t n = lens[li];
            float *g = malloc((size_t)n * sizeof *g), *u = malloc((size_t)n * sizeof *u);
            float *o = malloc((size_t)n * sizeof *o), *want = malloc((size_t)n * sizeof *want);
            if (!g || !u || !o || !want) {
                test_record_failure(__FILE__, __LINE__, "out of memory");
                free(g), free(u), free(o), free(want);
                return;
            }
            for (int64_t i = 0; i < n; i++) {
                const float mag = i % 5 == 0 ? 200.0f : i % 5 == 1 ? 90.0f : 8.0f;
                g[i] = frand(&r, mag);
                u[i] = frand(&r, 3.0f);
            }
            if (n > 3) g[1] = INFINITY, g[2] = -INFINITY, g[3] = NAN;
            for (int64_t i = 0; i < n; i++) {
                want[i] = (g[i] / (1.0f + kernels_expf_ggml(-g[i]))) * u[i];
                o[i] = NAN;
            }
            float *dst = pass ? g : o;
            kernels_silu_mul_ggml(dst, g, u, n);
            int bad = 0;
            for (int64_t i = 0; i < n; i++)
                if (memcmp(&dst[i], &want[i], sizeof(float)) != 0 &&
                    !(isnan(dst[i]) && isnan(want[i])))
                    bad++;
            CHECKF(bad == 0, "silu_mul n %lld pass %d: %d values differ from the scalar form",
                   (long long)n, pass, bad);
            free(g), free(u), free(o), free(want);
        }
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"silu_mul", test_silu_mul},
        {"avx512_vs_ref", test_avx512_vs_ref},
        {"avx2_vs_ref", test_avx2_vs_ref},
        {"tokens_vs_ref", test_tokens_vs_ref},
        {"attention_runs", test_attention_runs},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
