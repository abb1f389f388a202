/*
 * The per-token steps of a forward pass that the kernel sets vectorize,
 * each held bit for bit against its scalar oracle:
 *  - f32_to_f16 of every set against loft_f32_to_f16 (quant/half.c): a
 *    sweep of bit patterns over the whole f32 range, every F16 rounding
 *    boundary (the ties and one ulp either side of them, subnormal halves
 *    included), and rows of odd lengths mixing NaN (quiet, signalling,
 *    payloads that vanish in F16), infinities, zeros, f32 subnormals and
 *    values that overflow to infinity, with the output poisoned first and
 *    the words past the row checked untouched;
 *  - quantize_q8 of every set against ref on every block count up to 19,
 *    scales whose F16 rounding is subnormal or infinite;
 *  - rope of every set against ref and against layers.c's rope_apply, both
 *    pair styles, n_rot below head_dim, odd head counts, rotations at
 *    several positions;
 *  - rmsnorm_forward on many rows (several rows' sums run side by side)
 *    against the same rows one call each and against the plain formula,
 *    in place and not, with and without a gain.
 * No tolerance anywhere: every comparison is memcmp.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "kernels/kernels.h"
#include "model/layers.h"
#include "quant/quant.h"
#include "test.h"

static const char *const all_sets[] = {"ref", "avx2", "avx512", "neon"};
#define N_SETS ((int)(sizeof all_sets / sizeof all_sets[0]))

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- F32 -> F16 ------------------------------------------------------------ */

/* Converts x (n values) with kt into a poisoned buffer and compares every
 * word with loft_f32_to_f16, and the guard words past n with the poison. */
static bool f16_row_matches(const loft_kernels *kt, const float *x, int64_t n, const char *what)
{
    enum { GUARD = 16 };
    const uint16_t poison = 0x7e55; /* a NaN no input here converts to */
    uint16_t *y = malloc((size_t)(n + GUARD) * sizeof *y);
    if (!y) return false;
    for (int64_t i = 0; i < n + GUARD; i++)
        y[i] = poison;
    kt->f32_to_f16(y, x, n);
    bool ok = true;
    for (int64_t i = 0; i < n && ok; i++) {
        const uint16_t want = loft_f32_to_f16(x[i]);
        if (y[i] != want) {
            uint32_t u;
            memcpy(&u, &x[i], sizeof u);
            printf("  %s %s: n=%lld at %lld: f32 0x%08x gave 0x%04x, want 0x%04x\n", kt->name, what,
                   (long long)n, (long long)i, u, y[i], want);
            ok = false;
        }
    }
    for (int64_t i = n; i < n + GUARD && ok; i++)
        if (y[i] != poison) {
            printf("  %s %s: n=%lld wrote past the row at %lld\n", kt->name, what, (long long)n,
                   (long long)i);
            ok = false;
        }
    free(y);
    return ok;
}

/* Every 4099th bit pattern (a prime, so all residues of the low bits
 * come up): every exponent, both signs, NaN and subnormal patterns. */
static void test_f16_sweep(void)
{
    const int64_t step = 4099, n = (int64_t)(((uint64_t)1 << 32) / (uint64_t)step) + 1;
    float *x = malloc((size_t)n * sizeof *x);
    CHECK(x);
    for (int64_t i = 0; i < n; i++)
        x[i] = bits_f32((uint32_t)((uint64_t)i * (uint64_t)step));
    for (int s = 0; s < N_SETS; s++) {
        const loft_kernels *kt = kernels_get_isa(all_sets[s]);
        if (!kt) continue;
        CHECK(f16_row_matches(kt, x, n, "sweep"));
    }
    free(x);
}

/* The midpoint between every pair of neighbouring finite halves (exact in
 * f32: 12 significant bits), one f32 ulp below and above it, both signs;
 * then the largest finite half's neighbourhood up to and past 65520. */
static void test_f16_boundaries(void)
{
    const int64_t n_mid = 0x7c00 * 6, n = n_mid + 64;
    float *x = malloc((size_t)n * sizeof *x);
    CHECK(x);
    int64_t k = 0;
    for (uint32_t h = 0; h < 0x7c00; h++) {
        const float a = loft_f16_to_f32((uint16_t)h), b = loft_f16_to_f32((uint16_t)(h + 1));
        const float mid = a + (b - a) * 0.5f;
        uint32_t u;
        memcpy(&u, &mid, sizeof u);
        for (int d = -1; d <= 1; d++) {
            x[k++] = bits_f32(u + (uint32_t)d);
            x[k++] = bits_f32((u + (uint32_t)d) | 0x80000000u);
        }
    }
    for (int d = -32; d < 32; d++)
        x[k++] = bits_f32(0x477ff000u + (uint32_t)(d * 64));
    CHECK(k == n);
    for (int s = 0; s < N_SETS; s++) {
        const loft_kernels *kt = kernels_get_isa(all_sets[s]);
        if (!kt) continue;
        CHECK(f16_row_matches(kt, x, n, "boundaries"));
    }
    free(x);
}

/* Special values dropped at random places into rows of odd lengths, so a
 * NaN lands in some vector groups and not in others, and row ends fall at
 * every offset within a vector. */
static void test_f16_rows(void)
{
    static const uint32_t specials[] = {
        0x7fc00000u, 0xffc00000u, /* quiet NaN, both signs */
        0x7f800001u, 0xff800001u, /* signalling, payload gone in F16 */
        0x7fa00000u, 0x7f802000u, /* signalling, payload kept */
        0x7fffffffu, 0x7fc00001u, /* quiet, low payload bits only */
        0x7f800000u, 0xff800000u, /* infinities */
        0x00000000u, 0x80000000u, /* zeros */
        0x00000001u, 0x807fffffu, /* f32 subnormals */
        0x33000000u, 0x33000001u, /* 2^-25 (ties to zero), just above */
        0x387fe000u, 0x38800000u, /* around the smallest normal half */
        0x477fefffu, 0x477ff000u, /* just under 65520, 65520 (to infinity) */
        0x7f7fffffu, 0x3f801000u, /* FLT_MAX, 1 + 2^-11 (a tie, to even) */
        0x3f803000u, 0x3f802fffu, /* a tie that rounds up, just under one */
    };
    static const int64_t lens[] = {1,  2,  3,  4,  5,  7,  8,   9,   15, 16,
                                   17, 31, 33, 63, 64, 65, 191, 576, 577};
    loft_rng r;
    loft_rng_seed(&r, 7);
    float *x = malloc(577 * sizeof *x);
    CHECK(x);
    for (int rep = 0; rep < 8; rep++)
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            const int64_t n = lens[li];
            for (int64_t i = 0; i < n; i++) {
                const double u = loft_rng_uniform(&r);
                if (u < 0.1)
                    x[i] = bits_f32(
                        specials[loft_rng_below(&r, sizeof specials / sizeof specials[0])]);
                else /* magnitudes from 2^-30 to 2^20 */
                    x[i] = (float)((loft_rng_uniform(&r) * 2.0 - 1.0) *
                                   pow(2.0, loft_rng_uniform(&r) * 50.0 - 30.0));
            }
            for (int s = 0; s < N_SETS; s++) {
                const loft_kernels *kt = kernels_get_isa(all_sets[s]);
                if (!kt) continue;
                CHECK(f16_row_matches(kt, x, n, "rows"));
            }
        }
    free(x);
}

/* ---- activation quantization ------------------------------------------------ */

/* quantize_q8 of every set against ref on rows of 1 to 19 blocks (the x86
 * sets take eight blocks at a time), blocks scaled from 1e-9 to 1e9 so the
 * F16 scale is subnormal in some and overflows to infinity in others, an
 * all-zero block, and blocks whose values sit on rounding ties. */
static void test_quantize_q8_rows(void)
{
    enum { MAXB = 19 };
    loft_rng r;
    loft_rng_seed(&r, 17);
    float *x = malloc(MAXB * 32 * sizeof *x);
    kernels_q8 *want = malloc((MAXB + 1) * sizeof *want), *got = malloc((MAXB + 1) * sizeof *got);
    CHECK(x && want && got);
    for (int rep = 0; rep < 4; rep++)
        for (int nb = 1; nb <= MAXB; nb++) {
            for (int b = 0; b < nb; b++) {
                const double scale = pow(10.0, loft_rng_uniform(&r) * 18.0 - 9.0);
                const int kind = (int)loft_rng_below(&r, 8);
                for (int j = 0; j < 32; j++) {
                    float v = (float)((loft_rng_uniform(&r) * 2.0 - 1.0) * scale);
                    if (kind == 0) v = 0.0f;
                    if (kind == 1) /* multiples of amax / 254: products on .5 ties */
                        v = (float)((double)((int)loft_rng_below(&r, 255) - 127) / 254.0 * scale);
                    x[b * 32 + j] = v;
                }
                if (kind == 1) x[b * 32] = (float)scale;
            }
            kernels_get_isa("ref")->quantize_q8(x, want, (int64_t)nb * 32);
            for (int s = 1; s < N_SETS; s++) {
                const loft_kernels *kt = kernels_get_isa(all_sets[s]);
                if (!kt) continue;
                memset(got, 0xff, (MAXB + 1) * sizeof *got); /* NaN scales */
                kt->quantize_q8(x, got, (int64_t)nb * 32);
                for (int b = 0; b < nb; b++)
                    CHECKF(
                        memcmp(&got[b], &want[b], sizeof *got) == 0,
                        "%s quantize_q8 %d blocks: block %d d %.9g s %.9g sum %d, ref %.9g %.9g %d",
                        kt->name, nb, b, got[b].d, got[b].s, (int)got[b].sum, want[b].d, want[b].s,
                        (int)want[b].sum);
                const unsigned char *past = (const unsigned char *)&got[nb];
                for (size_t k = 0; k < sizeof *got; k++)
                    CHECKF(past[k] == 0xff, "%s quantize_q8 wrote past %d blocks", kt->name, nb);
            }
        }
    free(x);
    free(want);
    free(got);
}

/* ---- rope ------------------------------------------------------------------ */

/* Every set against ref and ref against rope_apply, on (n_heads, head_dim)
 * rows rotated at several positions, both styles. */
static void test_rope(void)
{
    static const int32_t shapes[][3] = {
        /* n_heads, head_dim, n_rot */
        {1, 2, 2},   {3, 6, 4},     {1, 16, 16}, {5, 64, 64}, {9, 64, 64}, {3, 128, 128},
        {7, 80, 48}, {3, 34, 34},   {2, 40, 24}, {3, 96, 72}, {1, 66, 66}, {15, 64, 32},
        {2, 18, 18}, {3, 256, 256}, {1, 32, 30}, {5, 48, 40},
    };
    static const int32_t positions[] = {0, 1, 17, 4095};
    loft_rng r;
    loft_rng_seed(&r, 11);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int32_t nh = shapes[si][0], hd = shapes[si][1], n_rot = shapes[si][2];
        const size_t n = (size_t)nh * (size_t)hd;
        float *x = malloc(n * sizeof *x), *want = malloc(n * sizeof *x),
              *lay = malloc(n * sizeof *x), *got = malloc(n * sizeof *x),
              *cs = malloc((size_t)n_rot * sizeof *cs);
        CHECK(x && want && lay && got && cs);
        for (size_t i = 0; i < n; i++)
            x[i] = (float)(loft_rng_uniform(&r) * 8.0 - 4.0);
        for (int neox = 0; neox < 2; neox++)
            for (size_t pi = 0; pi < sizeof positions / sizeof positions[0]; pi++) {
                const rope_params rp = {n_rot, neox != 0, 10000.0f, 1.0f, NULL};
                rope_cache(cs, positions[pi], &rp);
                memcpy(want, x, n * sizeof *x);
                kernels_get_isa("ref")->rope(want, nh, hd, n_rot, neox, cs);
                memcpy(lay, x, n * sizeof *x);
                rope_apply(lay, nh, hd, cs, &rp);
                CHECKF(memcmp(want, lay, n * sizeof *x) == 0,
                       "ref rope differs from rope_apply (%d, %d, %d) neox %d", nh, hd, n_rot,
                       neox);
                for (int32_t h = 0; h < nh; h++)
                    for (int32_t d = n_rot; d < hd; d++) {
                        const size_t o = (size_t)h * (size_t)hd + (size_t)d;
                        CHECK(memcmp(&want[o], &x[o], sizeof *x) == 0);
                    }
                for (int s = 1; s < N_SETS; s++) {
                    const loft_kernels *kt = kernels_get_isa(all_sets[s]);
                    if (!kt) continue;
                    memcpy(got, x, n * sizeof *x);
                    kt->rope(got, nh, hd, n_rot, neox, cs);
                    for (size_t i = 0; i < n; i++)
                        CHECKF(memcmp(&got[i], &want[i], sizeof *x) == 0,
                               "%s rope (%d, %d, %d) neox %d pos %d at %zu: %.9g, ref %.9g",
                               kt->name, nh, hd, n_rot, neox, positions[pi], i, got[i], want[i]);
                }
            }
        free(x);
        free(want);
        free(lay);
        free(got);
        free(cs);
    }
}

/* ---- rmsnorm --------------------------------------------------------------- */

/* The formula rmsnorm_forward keeps, one row at a time. */
static void rmsnorm_plain(float *o, const float *x, const float *w, int64_t n, float eps)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / (double)n);
    const float s = 1.0f / sqrtf(mean + eps);
    for (int64_t i = 0; i < n; i++)
        o[i] = w ? (x[i] * s) * w[i] : x[i] * s;
}

static void test_rmsnorm_rows(void)
{
    static const int64_t rows[] = {1, 2, 7, 8, 9, 15, 16, 17, 33};
    static const int64_t widths[] = {1, 7, 64, 576};
    loft_rng r;
    loft_rng_seed(&r, 13);
    for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++)
        for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
            const int64_t T = rows[ri], n = widths[wi];
            const size_t tot = (size_t)T * (size_t)n;
            float *x = malloc(tot * sizeof *x), *w = malloc((size_t)n * sizeof *w),
                  *want = malloc(tot * sizeof *x), *one = malloc(tot * sizeof *x),
                  *got = malloc(tot * sizeof *x);
            CHECK(x && w && want && one && got);
            for (size_t i = 0; i < tot; i++)
                x[i] = (float)((loft_rng_uniform(&r) * 2.0 - 1.0) *
                               pow(10.0, loft_rng_uniform(&r) * 6.0 - 3.0));
            for (int64_t i = 0; i < n; i++)
                w[i] = (float)(loft_rng_uniform(&r) * 2.0);
            for (int gain = 0; gain < 2; gain++) {
                const float *g = gain ? w : NULL;
                for (int64_t t = 0; t < T; t++)
                    rmsnorm_plain(want + t * n, x + t * n, g, n, 1e-6f);
                for (size_t i = 0; i < tot; i++)
                    one[i] = got[i] = NAN;
                for (int64_t t = 0; t < T; t++)
                    rmsnorm_forward(one + t * n, x + t * n, g, 1, n, 1e-6f);
                rmsnorm_forward(got, x, g, T, n, 1e-6f);
                CHECKF(memcmp(one, want, tot * sizeof *x) == 0,
                       "one row a call differs T=%lld n=%lld", (long long)T, (long long)n);
                CHECKF(memcmp(got, want, tot * sizeof *x) == 0, "T=%lld n=%lld gain %d differs",
                       (long long)T, (long long)n, gain);
                memcpy(got, x, tot * sizeof *x); /* in place */
                rmsnorm_forward(got, got, g, T, n, 1e-6f);
                CHECKF(memcmp(got, want, tot * sizeof *x) == 0, "in place T=%lld n=%lld gain %d",
                       (long long)T, (long long)n, gain);
            }
            free(x);
            free(w);
            free(want);
            free(one);
            free(got);
        }
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"f16_sweep", test_f16_sweep}, {"f16_boundaries", test_f16_boundaries},
        {"f16_rows", test_f16_rows},   {"quantize_q8_rows", test_quantize_q8_rows},
        {"rope", test_rope},           {"rmsnorm_rows", test_rmsnorm_rows},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
