/*
 * The SIMD bodies of kernels_attn_group_ggml against the scalar emulation
 * (the oracle): identical bits, required by memcmp, on random F16 caches
 * and queries of odd shapes - head dims 64..256 and a few with tails,
 * 1..600 cells, 1..4 query heads, both ggml modes, windows that start past
 * cell 0, softcap on and off, and queries large enough that some
 * exponentials saturate or leave the normal range of 2^n. Outputs and
 * score buffers are poisoned with NaN first.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "kernels/attn_ggml.h"
#include "kernels/kernels.h"
#include "quant/quant.h"
#include "test.h"

typedef struct shape {
    int32_t hd, hdv;
} shape;

static const shape shapes[] = {{64, 64},   {80, 80}, {96, 96},  {128, 128},
                               {256, 256}, {72, 40}, {64, 200}, {8, 24}};
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
                if (memcmp(&dst[i], &want[i], sizeof(float)) != 0 && !(isnan(dst[i]) && isnan(want[i])))
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
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
