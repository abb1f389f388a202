/*
 * Quantize -> dequantize error bounds of every reference quantizer on
 * deterministic random rows: Gaussian at several (odd) scales, rows whose
 * magnitude changes from block to block, rows with one large outlier, and
 * all-zero rows. Bounds are derived per family below, not fitted.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quant/quant.h"
#include "test.h"

#define ROW 4096 /* 16 super-blocks, 128 legacy blocks */

/* xorshift64* and Box-Muller: deterministic Gaussian values. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static double rng_uniform(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return ((double)((rng_state * 2685821657736338717ull) >> 11) + 0.5) * 0x1.0p-53;
}

static float rng_gauss(void)
{
    return (float)(sqrt(-2.0 * log(rng_uniform())) * cos(6.283185307179586 * rng_uniform()));
}

enum row_kind { ROW_GAUSS, ROW_VARYING, ROW_OUTLIER, ROW_KINDS };

/* Fills x[ROW] with a row of kind `kind` and overall scale sigma. */
static void make_row(float *x, int kind, float sigma)
{
    float block_scale = sigma;
    for (int i = 0; i < ROW; i++) {
        if (kind == ROW_VARYING && i % 32 == 0) {
            block_scale = sigma * (float)pow(10.0, 2.0 * rng_uniform() - 1.0);
        }
        x[i] = rng_gauss() * block_scale;
    }
    if (kind == ROW_OUTLIER) x[ROW / 3] = 50.0f * sigma;
}

static const float sigmas[] = {0.02f, 1.0f, 317.25f, 3.1e-6f, 7.7e3f};

static bool roundtrip(uint32_t t, const float *x, float *y)
{
    static uint8_t q[ROW * 4];
    size_t rs = loft_type_row_size(t, ROW);
    if (rs == 0 || rs > sizeof q) return false;
    memset(q, 0xA5, rs);
    for (int i = 0; i < ROW; i++)
        y[i] = NAN;
    return loft_quantize_row(t, x, q, ROW) && loft_dequantize_row(t, q, y, ROW);
}

/* ---- legacy: a per-value bound from each block ----------------------- */

/*
 * With block scale d (before rounding to f16), stored d' = f16(d), level q
 * and offset m (m' = f16(m)), the error of a value is
 *     |x - (q d' + m')| <= |x - (q d + m)| + |q| |d - d'| + |m - m'|.
 * The first term is d/2 for round-to-nearest (Q8_0/Q8_1: q = round(x/d)) and
 * for truncation of x/d + offset + 0.5 (Q4/Q5), except that Q4_0/Q5_0 put
 * the signed absmax at level -8/-16 (exact) so values of the other sign can
 * reach +8/+16 and clamp to +7/+15: error <= d there. A float-rounding
 * slack of 2^-20 of the block's absmax covers x * (1/d) and the additions.
 */
typedef struct legacy_spec {
    uint32_t type;
    int qmax;      /* largest |level| after the offset */
    bool has_min;  /* Q4_1/Q5_1: range scale and an offset m = min */
    float divisor; /* d = absmax / divisor (symmetric) or range / divisor */
    bool clamps;   /* Q4_0/Q5_0: one side may clamp */
} legacy_spec;

static float legacy_block_bound(const legacy_spec *s, const float *x, int i, float d16, float m16)
{
    float amax = 0, mx = -INFINITY, mn = INFINITY, smax = 0;
    for (int j = 0; j < 32; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            smax = x[j];
        }
        mx = fmaxf(mx, x[j]);
        mn = fminf(mn, x[j]);
    }
    float d = s->has_min ? (mx - mn) / s->divisor : amax / s->divisor;
    float slack = ldexpf(amax, -20);
    float rounding = 0.5f * d;
    /* Values whose sign differs from the absmax's, beyond qmax - 1/2. */
    if (s->clamps && d > 0 && x[i] * smax < 0 && fabsf(x[i]) / d > (float)s->qmax - 0.5f - 1e-3f)
        rounding = d;
    float bound = rounding + (float)s->qmax * fabsf(d - fabsf(d16)) + slack;
    if (s->has_min) bound += fabsf(mn - m16);
    return bound;
}

static void test_roundtrip_legacy(void)
{
    static const legacy_spec specs[] = {
        {LOFT_TYPE_Q8_0, 127, false, 127.0f, false}, {LOFT_TYPE_Q8_1, 127, false, 127.0f, false},
        {LOFT_TYPE_Q4_0, 8, false, 8.0f, true},      {LOFT_TYPE_Q5_0, 16, false, 16.0f, true},
        {LOFT_TYPE_Q4_1, 15, true, 15.0f, false},    {LOFT_TYPE_Q5_1, 31, true, 31.0f, false},
    };
    static float x[ROW], y[ROW];
    static uint8_t q[ROW * 2];
    for (int k = 0; k < TEST_COUNT(specs); k++) {
        const legacy_spec *s = &specs[k];
        const loft_type_traits *tr = loft_type_get(s->type);
        for (int kind = 0; kind < ROW_KINDS; kind++) {
            for (int si = 0; si < TEST_COUNT(sigmas); si++) {
                make_row(x, kind, sigmas[si]);
                CHECK(roundtrip(s->type, x, y));
                CHECK(loft_quantize_row(s->type, x, q, ROW));
                for (int b = 0; b < ROW / 32; b++) {
                    const uint8_t *blk = q + (size_t)b * tr->type_size;
                    float d16 = loft_f16_to_f32((uint16_t)(blk[0] | blk[1] << 8));
                    float m16 = s->has_min ? loft_f16_to_f32((uint16_t)(blk[2] | blk[3] << 8)) : 0;
                    for (int j = 0; j < 32; j++) {
                        int i = 32 * b + j;
                        float bound = legacy_block_bound(s, x + 32 * b, j, d16, m16);
                        float err = fabsf(x[i] - y[i]);
                        CHECKF(err <= bound, "%s kind %d sigma %g value %d: |%g - %g| = %g > %g",
                               tr->name, kind, sigmas[si], i, x[i], y[i], err, bound);
                    }
                }
            }
        }
    }
}

/* ---- K-quants: RMSE against a step derived from the row -------------- */

/*
 * Uniform quantization with step s leaves an error of RMS s / sqrt(12).
 * The reference searches start from the plain step of each sub-block of n
 * values - range / (2^b - 1) for the asymmetric types (range from min(x, 0)
 * to max, as they clip the min at zero), absmax / (levels on the long side)
 * for the symmetric ones - and move to another only when it lowers their
 * weighted error. The sub-block scales are then rounded on a grid of
 * (largest sub-block scale) / G (G = 15, 32, 63, 63, 128 for Q2..Q6_K), which
 * can coarsen a step by up to one grid spacing g, and the mins likewise
 * with spacing gm (an extra error of RMS gm / sqrt(12)). So per sub-block
 *     predicted MSE = ((step + g)^2 + gm^2) / 12
 * and a row passes when its RMSE is at most 1.25 times the RMS of the
 * prediction: the margin covers the searches minimising a weighted rather
 * than the plain error. Q8_K has one scale per super-block (n = 256, no g).
 */
typedef struct kq_spec {
    uint32_t type;
    int n;        /* values per sub-block */
    bool asym;    /* scale + min (Q2_K, Q4_K, Q5_K) */
    float levels; /* 2^b - 1 (asymmetric) or long-side levels (symmetric) */
    float grid;   /* G: sub-block scales per super-block scale; 0 = none */
} kq_spec;

static double kq_predicted_mse(const kq_spec *s, const float *x)
{
    float step[QK_K], mins[QK_K];
    int nsub = QK_K / s->n;
    float max_step = 0, max_min = 0;
    for (int j = 0; j < nsub; j++) {
        float lo = 0, hi = -INFINITY, amax = 0; /* lo = min(x, 0) */
        for (int l = 0; l < s->n; l++) {
            float v = x[j * s->n + l];
            lo = fminf(lo, v);
            hi = fmaxf(hi, v);
            amax = fmaxf(amax, fabsf(v));
        }
        step[j] = s->asym ? (hi - lo) / s->levels : amax / s->levels;
        mins[j] = -lo;
        max_step = fmaxf(max_step, step[j]);
        max_min = fmaxf(max_min, mins[j]);
    }
    double g = s->grid > 0 ? max_step / s->grid : 0;
    double gm = s->asym && s->grid > 0 ? max_min / s->grid : 0;
    double mse = 0;
    for (int j = 0; j < nsub; j++)
        mse += s->n * (((step[j] + g) * (step[j] + g) + gm * gm) / 12.0);
    return mse;
}

static void test_roundtrip_kquants(void)
{
    static const kq_spec specs[] = {
        {LOFT_TYPE_Q2_K, 16, true, 3, 15},    {LOFT_TYPE_Q3_K, 16, false, 4, 32},
        {LOFT_TYPE_Q4_K, 32, true, 15, 63},   {LOFT_TYPE_Q5_K, 32, true, 31, 63},
        {LOFT_TYPE_Q6_K, 16, false, 32, 128}, {LOFT_TYPE_Q8_K, 256, false, 127, 0},
    };
    static float x[ROW], y[ROW];
    const bool verbose = getenv("LOFT_TEST_VERBOSE") != NULL;
    for (int k = 0; k < TEST_COUNT(specs); k++) {
        const loft_type_traits *tr = loft_type_get(specs[k].type);
        double worst = 0;
        for (int kind = 0; kind < ROW_KINDS; kind++) {
            for (int si = 0; si < 3; si++) { /* 0.02, 1, 317.25 */
                for (int rep = 0; rep < 4; rep++) {
                    make_row(x, kind, sigmas[si]);
                    CHECK(roundtrip(specs[k].type, x, y));
                    double se = 0, pred = 0;
                    for (int i = 0; i < ROW; i++) {
                        double e = (double)x[i] - (double)y[i];
                        se += e * e;
                    }
                    for (int b = 0; b < ROW / QK_K; b++) {
                        pred += kq_predicted_mse(&specs[k], x + b * QK_K);
                    }
                    double ratio = sqrt(se / pred);
                    if (ratio > worst) worst = ratio;
                    CHECKF(ratio <= 1.25, "%s kind %d sigma %g: rmse = %.4f x predicted", tr->name,
                           kind, sigmas[si], ratio);
                }
            }
        }
        if (verbose) fprintf(stderr, "    %s worst rmse / predicted %.4f\n", tr->name, worst);
    }
}

/* All-zero rows decode to zeros for every quantizer; float types keep
 * every value they can represent exactly. */
static void test_roundtrip_zero_and_exact(void)
{
    static float x[ROW], y[ROW];
    for (uint32_t t = 0; t < LOFT_TYPE_COUNT; t++) {
        const loft_type_traits *tr = loft_type_get(t);
        if (!tr || !tr->can_quantize) continue;
        memset(x, 0, sizeof x);
        CHECKF(roundtrip(t, x, y), "%s", tr->name);
        for (int i = 0; i < ROW; i++)
            CHECKF(y[i] == 0.0f, "%s: zero row gave %g", tr->name, y[i]);
        /* One outlier in an otherwise zero row: the outlier is kept to 7%
         * (a 4-bit step is 1/15 of it; 2-bit types place it on an end
         * level), blocks without it stay exactly zero, and so do the zeros
         * beside it for the symmetric types. The types with a min store
         * both scale and min as f16, so their zeros land on
         * 15 * f16(d) + f16(m), off by f16 rounding: also within 7%. */
        x[100] = -1234.5f;
        CHECKF(roundtrip(t, x, y), "%s", tr->name);
        CHECKF(fabsf(y[100] - x[100]) <= 1234.5f * 0.07f, "%s: outlier -> %g", tr->name, y[100]);
        bool asym = t == LOFT_TYPE_Q4_1 || t == LOFT_TYPE_Q5_1 || t == LOFT_TYPE_Q2_K ||
                    t == LOFT_TYPE_Q4_K || t == LOFT_TYPE_Q5_K;
        for (int i = 0; i < ROW; i++) {
            bool same_block = i / (int)tr->block_size == 100 / (int)tr->block_size;
            if (i == 100) continue;
            if (asym && same_block) {
                CHECKF(fabsf(y[i]) <= 1234.5f * 0.07f, "%s: value %d became %g", tr->name, i, y[i]);
            } else {
                CHECKF(y[i] == 0.0f, "%s: value %d became %g", tr->name, i, y[i]);
            }
        }
    }
    /* F16 / BF16: values on their grids survive exactly. */
    for (int i = 0; i < ROW; i++) {
        x[i] = loft_f16_to_f32((uint16_t)(rng_uniform() * 65536.0));
        if (isnan(x[i]) || isinf(x[i])) x[i] = 1.0f;
    }
    CHECK(roundtrip(LOFT_TYPE_F16, x, y));
    CHECK(memcmp(x, y, sizeof x) == 0);
    for (int i = 0; i < ROW; i++)
        x[i] = loft_bf16_to_f32((uint16_t)(rng_uniform() * 65536.0));
    CHECK(roundtrip(LOFT_TYPE_BF16, x, y));
    for (int i = 0; i < ROW; i++) {
        CHECKF(memcmp(&x[i], &y[i], 4) == 0 || (isnan(x[i]) && isnan(y[i])), "bf16 value %d", i);
    }
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"quant_roundtrip_legacy_bounds", test_roundtrip_legacy},
        {"quant_roundtrip_kquant_rmse", test_roundtrip_kquants},
        {"quant_roundtrip_zero_and_exact", test_roundtrip_zero_and_exact},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
