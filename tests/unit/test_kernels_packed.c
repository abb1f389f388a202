/*
 * The packed weight layouts (kernels_pack) and the kernels that read them,
 * against ref.c's dot products on the same GGUF rows.
 *
 * Shapes are odd on purpose: 1 and 3 blocks per row (an odd count leaves a
 * half-used last pair of blocks), 66 blocks; row counts below one group
 * (nothing packed), one group exactly, and groups plus 1 or 15 rows left
 * to the dot products; 1..9 tokens (every token-count specialisation), 19,
 * and 131 (past the 128 tokens one call takes). Outputs are poisoned with
 * NaN first; bytes of the packed buffer past kernels_pack_size are
 * poisoned too, so a read past the layout shows.
 *
 * Tolerance: |y - y_ref| <= 64 * FLT_EPSILON * Σ|w·x| (the integer block
 * sums are exact on both sides; only the order of the float additions of
 * block results differs). 1 thread vs 2 threads: identical bits.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "base/threadpool.h"
#include "kernels/kernels.h"
#include "quant/quant.h"
#include "test.h"

static const char *const sets[] = {"ref", "avx2", "avx512", "neon"};

/* {K, N, T} */
static const int64_t shapes[][3] = {
    {32, 16, 1},   {96, 17, 2},  {64, 31, 3},   {32, 48, 4}, {2112, 33, 5},
    {96, 5, 6},    {64, 1, 7},   {96, 16, 8},   {32, 47, 9}, {576, 32, 19},
    {64, 17, 131}, {160, 64, 1}, {2112, 16, 1},
};

typedef struct pk_problem {
    int64_t K, N, T;
    size_t row_bytes;
    uint8_t *w; /* N Q4_0 rows */
    float *wf;  /* N x K dequantized */
    float *x;   /* T x K */
    void *xq;   /* T rows of kernels_q8 */
    size_t xq_row;
} pk_problem;

static void pk_free(pk_problem *p)
{
    free(p->w);
    free(p->wf);
    free(p->x);
    free(p->xq);
}

static bool pk_make(pk_problem *p, int64_t K, int64_t N, int64_t T, uint64_t seed)
{
    memset(p, 0, sizeof *p);
    p->K = K;
    p->N = N;
    p->T = T;
    p->row_bytes = loft_type_row_size(LOFT_TYPE_Q4_0, K);
    p->xq_row = kernels_x_row_size(LOFT_TYPE_Q4_0, K);
    p->w = malloc(p->row_bytes * (size_t)N);
    p->wf = malloc(sizeof(float) * (size_t)(N * K));
    p->x = malloc(sizeof(float) * (size_t)(T * K));
    p->xq = malloc(p->xq_row * (size_t)T);
    if (!p->w || !p->wf || !p->x || !p->xq) return false;
    loft_rng r;
    loft_rng_seed(&r, seed);
    /* a scale per 32 values over three decades, so block scales matter */
    for (int64_t i = 0; i < N * K; i++)
        p->wf[i] =
            (float)((loft_rng_uniform(&r) * 2.0 - 1.0) * pow(10.0, (double)(i / 32 % 4) - 2.0));
    for (int64_t i = 0; i < T * K; i++)
        p->x[i] = (float)(loft_rng_uniform(&r) * 2.0 - 1.0);
    for (int64_t i = 0; i < N; i++) {
        if (!loft_quantize_row(LOFT_TYPE_Q4_0, p->wf + i * K, p->w + (size_t)i * p->row_bytes, K))
            return false;
        loft_dequantize_row(LOFT_TYPE_Q4_0, p->w + (size_t)i * p->row_bytes, p->wf + i * K, K);
    }
    return true;
}

static double pk_abs_dot(const pk_problem *p, int64_t t, int64_t n)
{
    double s = 0.0;
    for (int64_t k = 0; k < p->K; k++)
        s += fabs((double)p->wf[n * p->K + k] * p->x[t * p->K + k]);
    return s;
}

/* y (T x N) through kt with w.packed = packed, n_threads threads. */
static bool pk_run(const loft_kernels *kt, const pk_problem *p, const void *packed, int n_threads,
                   float *y)
{
    loft_status st;
    threadpool *pool = NULL;
    if (n_threads > 1 && threadpool_init(&pool, n_threads, &st) != LOFT_OK) return false;
    for (int64_t i = 0; i < p->T * p->N; i++)
        y[i] = NAN;
    kernels_quantize_x(kt, LOFT_TYPE_Q4_0, p->x, p->T, p->K, p->xq);
    const kernels_weight w = {p->w, LOFT_TYPE_Q4_0, p->K, p->N, p->row_bytes, packed};
    kernels_matmul_xq(kt, pool, y, p->xq, p->xq_row, p->T, &w);
    threadpool_free(pool);
    return true;
}

static bool pk_case(int64_t K, int64_t N, int64_t T, uint64_t seed)
{
    pk_problem p;
    bool ok = pk_make(&p, K, N, T, seed);
    float *yr = malloc(sizeof(float) * (size_t)(T * N));
    float *y1 = malloc(sizeof(float) * (size_t)(T * N));
    float *y2 = malloc(sizeof(float) * (size_t)(T * N));
    ok = ok && yr && y1 && y2 && pk_run(kernels_get_isa("ref"), &p, NULL, 1, yr);
    if (!ok) test_record_failure(__FILE__, __LINE__, "setup failed");
    for (size_t si = 0; ok && si < sizeof sets / sizeof sets[0]; si++) {
        const loft_kernels *kt = kernels_get_isa(sets[si]);
        if (!kt) continue;
        const size_t pb = kernels_pack_size(kt, LOFT_TYPE_Q4_0, K, N);
        char msg[256];
        if (!kt->packed[LOFT_TYPE_Q4_0] || N < KERNELS_PACK_ROWS) {
            if (pb != 0) {
                snprintf(msg, sizeof msg,
                         "%s N=%lld: pack size %zu without a packed kernel or a full group",
                         kt->name, (long long)N, pb);
                test_record_failure(__FILE__, __LINE__, msg);
                ok = false;
            }
            continue;
        }
        const size_t gb = kernels_pack_group_bytes(LOFT_TYPE_Q4_0, K);
        if (gb == 0 || pb != gb * (size_t)(N / KERNELS_PACK_ROWS)) {
            snprintf(msg, sizeof msg, "%s: pack size %zu, group %zu", kt->name, pb, gb);
            test_record_failure(__FILE__, __LINE__, msg);
            ok = false;
            break;
        }
        const size_t alloc = (pb + 256 + 63) / 64 * 64;
        uint8_t *packed = aligned_alloc(64, alloc);
        if (!packed) {
            test_record_failure(__FILE__, __LINE__, "out of memory");
            ok = false;
            break;
        }
        memset(packed, 0xFF, alloc); /* NaN scales, 15s everywhere: any stray read shows */
        kernels_pack(LOFT_TYPE_Q4_0, p.w, p.row_bytes, K, N, packed);
        ok = pk_run(kt, &p, packed, 1, y1) && pk_run(kt, &p, packed, 2, y2);
        for (int64_t t = 0; ok && t < T; t++)
            for (int64_t n = 0; ok && n < N; n++) {
                const int64_t i = t * N + n;
                const double tol = 64.0 * FLT_EPSILON * pk_abs_dot(&p, t, n) + 1e-30;
                if (!(fabs((double)y1[i] - yr[i]) <= tol) || memcmp(&y1[i], &y2[i], 4) != 0) {
                    snprintf(msg, sizeof msg,
                             "%s K=%lld N=%lld T=%lld: y[%lld][%lld] = %.9g (2 threads %.9g), ref "
                             "%.9g, tol %.3g",
                             kt->name, (long long)K, (long long)N, (long long)T, (long long)t,
                             (long long)n, y1[i], y2[i], yr[i], tol);
                    test_record_failure(__FILE__, __LINE__, msg);
                    ok = false;
                }
            }
        free(packed);
    }
    pk_free(&p);
    free(yr);
    free(y1);
    free(y2);
    return ok;
}

static void test_packed_q4_0_matches_ref(void)
{
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (!pk_case(shapes[i][0], shapes[i][1], shapes[i][2], 1000 + i)) return;
}

/* The layout itself, byte by byte, for one group of 3 blocks: what the
 * kernel comment and kernels.h promise. */
static void test_pack_layout_q4_0(void)
{
    enum { K = 96, NB = 3, N = 16 };
    const size_t rb = loft_type_row_size(LOFT_TYPE_Q4_0, K);
    uint8_t w[16 * 54];
    CHECK(rb == 54);
    for (size_t i = 0; i < sizeof w; i++)
        w[i] = (uint8_t)(i * 7 + 3);
    const size_t gb = kernels_pack_group_bytes(LOFT_TYPE_Q4_0, K);
    CHECK(gb == NB * 256 + 2 * 64);
    _Alignas(64) uint8_t dst[NB * 256 + 2 * 64];
    memset(dst, 0xAB, sizeof dst);
    kernels_pack(LOFT_TYPE_Q4_0, w, rb, K, N, dst);
    for (int r = 0; r < N; r++)
        for (int b = 0; b < NB; b++) {
            const uint8_t *blk = w + (size_t)r * rb + (size_t)b * 18;
            const uint8_t *pair = dst + (size_t)(b / 2) * 576;
            CHECKF(memcmp(pair + (b % 2) * 32 + r * 2, blk, 2) == 0, "scale of row %d block %d", r,
                   b);
            for (int c = 0; c < 4; c++)
                CHECKF(memcmp(pair + 64 + (b % 2) * 256 + c * 64 + r * 4, blk + 2 + 4 * c, 4) == 0,
                       "nibbles %d of row %d block %d", c, r, b);
        }
    for (int i = 0; i < 32; i++)
        CHECKF(dst[576 + 32 + i] == 0, "unused scale byte %d", i);
    CHECK(kernels_pack_group_bytes(LOFT_TYPE_Q4_1, K) == 0);
    CHECK(kernels_pack_group_bytes(LOFT_TYPE_Q4_0, 48) == 0);
    CHECK(kernels_pack_size(kernels_get_isa("ref"), LOFT_TYPE_Q4_0, K, 64) == 0);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"pack_layout_q4_0", test_pack_layout_q4_0},
        {"packed_q4_0_matches_ref", test_packed_q4_0_matches_ref},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
