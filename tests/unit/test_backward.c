/*
 * Finite-difference checks of every backward function (src/model/
 * layers_backward.c, src/train/lora.c). For each function a random scalar
 * loss L = sum_i c_i y_i is formed from its output y (c random, L summed in
 * double); the analytic gradient from the backward with dy = c is compared
 * with the central difference (L(x + h) - L(x - h)) / 2h of the F32
 * forward, h = 1e-2 on inputs of magnitude ~1. Stated tolerance, per
 * element: |fd - analytic| <= 2e-3 * (1 + |analytic|), which F32 rounding
 * (~1e-7 |L| / h) and the O(h^2) truncation stay well inside; a wrong term
 * in a backward gives errors of order |analytic|.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/layers_backward.h"
#include "quant/quant.h"
#include "test.h"
#include "train/lora.h"

static uint32_t rng_state = 777u;
static float frand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return (float)((double)rng_state / 4294967296.0 * 2.0 - 1.0);
}

static void fill(float *x, int64_t n, float scale)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = frand() * scale;
}

static double weighted(const float *y, const float *c, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)y[i] * (double)c[i];
    return s;
}

/* The forward under test: fills y from the current inputs (ctx). */
typedef void (*fwd_fn)(void *ctx, float *y);

#define FD_H 1e-2f
#define FD_TOL 2e-3

/* Compares grad (analytic) with central differences of sum(c * fwd()) over
 * the n values of x. Returns the index of the first mismatch or -1. */
static int64_t fd_compare(fwd_fn f, void *ctx, float *x, int64_t n, const float *grad,
                          const float *c, float *y, int64_t ny, double *got_fd)
{
    for (int64_t i = 0; i < n; i++) {
        const float keep = x[i];
        x[i] = keep + FD_H;
        f(ctx, y);
        const double lp = weighted(y, c, ny);
        x[i] = keep - FD_H;
        f(ctx, y);
        const double lm = weighted(y, c, ny);
        x[i] = keep;
        const double fd = (lp - lm) / (2.0 * (double)FD_H);
        if (fabs(fd - grad[i]) > FD_TOL * (1.0 + fabs(grad[i]))) {
            *got_fd = fd;
            return i;
        }
    }
    return -1;
}

#define FD_CHECK(f, ctx, x, n, grad, c, y, ny, what)                                               \
    do {                                                                                           \
        double fd_ = 0;                                                                            \
        int64_t bad_ = fd_compare(f, ctx, x, n, grad, c, y, ny, &fd_);                             \
        CHECKF(bad_ < 0, "%s[%lld]: finite difference %.6g, backward %.6g", what, (long long)bad_, \
               fd_, bad_ >= 0 ? (double)(grad)[bad_] : 0.0);                                       \
    } while (0)

/* ---- rmsnorm ----------------------------------------------------------- */

typedef struct rms_ctx {
    float *x, *w, *inv;
    int64_t T, n;
} rms_ctx;

static void rms_fwd(void *p, float *y)
{
    rms_ctx *c = p;
    rmsnorm_forward_save(y, c->inv, c->x, c->w, c->T, c->n, 1e-5f);
}

static void test_rmsnorm_backward(void)
{
    enum { T = 3, N = 37 };
    float x[T * N], w[N], inv[T], y[T * N], c[T * N], dx[T * N] = {0};
    fill(x, T * N, 2.0f);
    fill(w, N, 1.5f);
    fill(c, T * N, 1.0f);
    for (int pass = 0; pass < 2; pass++) {
        rms_ctx ctx = {x, pass ? NULL : w, inv, T, N};
        memset(dx, 0, sizeof dx);
        rms_fwd(&ctx, y);
        rmsnorm_backward(dx, c, x, ctx.w, inv, T, N);
        FD_CHECK(rms_fwd, &ctx, x, T * N, dx, c, y, T * N,
                 pass ? "rmsnorm(no gain) dx" : "rmsnorm dx");
    }
}

/* ---- rope -------------------------------------------------------------- */

typedef struct rope_ctx {
    float *x;
    const float *cs;
    const rope_params *rp;
    int32_t nh, hd;
} rope_ctx;

static void rope_fwd(void *p, float *y)
{
    rope_ctx *c = p;
    memcpy(y, c->x, (size_t)c->nh * (size_t)c->hd * sizeof *y);
    rope_apply(y, c->nh, c->hd, c->cs, c->rp);
}

static void test_rope_backward(void)
{
    enum { NH = 3, HD = 10 };
    for (int neox = 0; neox < 2; neox++) {
        rope_params rp = {.n_rot = neox ? 6 : 10,
                          .neox = neox,
                          .freq_base = 10000.0f,
                          .freq_scale = 1.0f,
                          .freq_factors = NULL};
        float cs[HD], x[NH * HD], y[NH * HD], c[NH * HD], g[NH * HD];
        rope_cache(cs, 7, &rp);
        fill(x, NH * HD, 1.0f);
        fill(c, NH * HD, 1.0f);
        memcpy(g, c, sizeof g);
        rope_backward(g, NH, HD, cs, &rp);
        rope_ctx ctx = {x, cs, &rp, NH, HD};
        FD_CHECK(rope_fwd, &ctx, x, NH * HD, g, c, y, NH * HD, neox ? "rope neox dx" : "rope dx");
    }
}

/* ---- attention --------------------------------------------------------- */

enum { AT = 6, NHQ = 4, NHK = 2, HDQ = 5, HDV = 3 };

typedef struct attn_ctx {
    float *q, *k, *v, *probs;
    attn_shape as;
} attn_ctx;

static void attn_fwd(void *p, float *y)
{
    attn_ctx *c = p;
    attention_seq_forward(y, c->probs, c->q, c->k, c->v, AT, &c->as);
}

static void test_attention_backward(void)
{
    float q[AT * NHQ * HDQ], k[AT * NHK * HDQ], v[AT * NHK * HDV];
    float dq[sizeof q / sizeof(float)], dk[sizeof k / sizeof(float)], dv[sizeof v / sizeof(float)];
    float y[AT * NHQ * HDV], c[AT * NHQ * HDV], probs[NHQ * AT * AT], scratch[AT];
    for (int window = 0; window <= 3; window += 3) {
        fill(q, sizeof q / sizeof(float), 1.0f);
        fill(k, sizeof k / sizeof(float), 1.0f);
        fill(v, sizeof v / sizeof(float), 1.0f);
        fill(c, sizeof c / sizeof(float), 1.0f);
        attn_ctx ctx = {q,
                        k,
                        v,
                        probs,
                        {.n_head = NHQ,
                         .n_head_kv = NHK,
                         .head_dim = HDQ,
                         .head_dim_v = HDV,
                         .window = window,
                         .scale = 0.7f,
                         .softcap = 0.0f}};
        attn_fwd(&ctx, y);
        /* the probabilities of each query sum to one */
        for (int r = 0; r < NHQ * AT; r++) {
            double s = 0;
            for (int j = 0; j < AT; j++)
                s += probs[r * AT + j];
            CHECKF(fabs(s - 1.0) < 1e-5, "row %d of probs sums to %g", r, s);
        }
        memset(dq, 0, sizeof dq);
        memset(dk, 0, sizeof dk);
        memset(dv, 0, sizeof dv);
        attention_seq_backward(dq, dk, dv, c, probs, q, k, v, AT, &ctx.as, scratch);
        FD_CHECK(attn_fwd, &ctx, q, (int64_t)(sizeof q / sizeof(float)), dq, c, y,
                 (int64_t)(sizeof y / sizeof(float)), "attention dq");
        FD_CHECK(attn_fwd, &ctx, k, (int64_t)(sizeof k / sizeof(float)), dk, c, y,
                 (int64_t)(sizeof y / sizeof(float)), "attention dk");
        FD_CHECK(attn_fwd, &ctx, v, (int64_t)(sizeof v / sizeof(float)), dv, c, y,
                 (int64_t)(sizeof y / sizeof(float)), "attention dv");
    }
}

/* ---- gated activations -------------------------------------------------- */

typedef struct glu_ctx {
    float *gate, *up;
    int64_t n;
    bool gelu;
} glu_ctx;

static void glu_fwd(void *p, float *y)
{
    glu_ctx *c = p;
    if (c->gelu)
        geglu_forward(y, c->gate, c->up, 1, c->n);
    else
        swiglu_forward(y, c->gate, c->up, 1, c->n);
}

static void test_glu_backward(void)
{
    enum { N = 41 };
    float g[N], u[N], y[N], c[N], dg[N], du[N];
    for (int gelu = 0; gelu < 2; gelu++) {
        fill(g, N, 3.0f);
        fill(u, N, 2.0f);
        fill(c, N, 1.0f);
        memset(dg, 0, sizeof dg);
        memset(du, 0, sizeof du);
        if (gelu)
            geglu_backward(dg, du, c, g, u, 1, N);
        else
            swiglu_backward(dg, du, c, g, u, 1, N);
        glu_ctx ctx = {g, u, N, gelu};
        FD_CHECK(glu_fwd, &ctx, g, N, dg, c, y, N, gelu ? "geglu dgate" : "swiglu dgate");
        FD_CHECK(glu_fwd, &ctx, u, N, du, c, y, N, gelu ? "geglu dup" : "swiglu dup");
    }
}

/* ---- frozen matmul ----------------------------------------------------- */

enum { MT = 3, MIN = 64, MOUT = 19 };

typedef struct mm_ctx {
    float *x;
    const model_weight *w;
    float *row;
} mm_ctx;

static void mm_fwd(void *p, float *y)
{
    mm_ctx *c = p;
    matmul_qw(y, c->x, c->w, MT, c->row);
}

static void test_matmul_backward(void)
{
    static float wf[MOUT * MIN];
    static uint8_t wq[MOUT * MIN * 2];
    float x[MT * MIN], y[MT * MOUT], c[MT * MOUT], dx[MT * MIN], row[MIN * 16];
    fill(wf, MOUT * MIN, 1.0f);
    const uint32_t types[3] = {LOFT_TYPE_F32, LOFT_TYPE_Q8_0, LOFT_TYPE_Q4_K};
    for (int ti = 0; ti < 3; ti++) {
        const uint32_t t = types[ti];
        const int64_t n_in = t == LOFT_TYPE_Q4_K ? 256 : MIN;
        static float wk[MOUT * 256], xk[MT * 256], dxk[MT * 256], rowk[256 * 16];
        fill(wk, MOUT * 256, 1.0f);
        model_weight w = {.type = t, .n_in = n_in, .n_out = MOUT};
        static uint8_t wq_k[MOUT * 256 * 2];
        if (t == LOFT_TYPE_F32) {
            w.data = wf;
            w.row_bytes = MIN * sizeof(float);
        } else {
            uint8_t *dst = t == LOFT_TYPE_Q4_K ? wq_k : wq;
            w.row_bytes = loft_type_row_size(t, n_in);
            CHECK(w.row_bytes > 0);
            const float *srcw = t == LOFT_TYPE_Q4_K ? wk : wf;
            for (int r = 0; r < MOUT; r++)
                CHECK(loft_quantize_row(t, srcw + r * n_in, dst + (size_t)r * w.row_bytes, n_in));
            w.data = dst;
        }
        float *xx = t == LOFT_TYPE_Q4_K ? xk : x;
        float *dd = t == LOFT_TYPE_Q4_K ? dxk : dx;
        float *rr = t == LOFT_TYPE_Q4_K ? rowk : row;
        fill(xx, MT * n_in, 1.0f);
        fill(c, MT * MOUT, 1.0f);
        memset(dd, 0, (size_t)(MT * n_in) * sizeof(float));
        /* two thread-style halves must give the same as one pass */
        matmul_qw_backward_x(dd, c, &w, MT, 0, 1, rr);
        matmul_qw_backward_x(dd, c, &w, MT, 1, MT, rr);
        mm_ctx ctx = {xx, &w, rr};
        FD_CHECK(mm_fwd, &ctx, xx, MT * n_in, dd, c, y, MT * MOUT, loft_type_get(t)->name);
    }
}

/* ---- LoRA -------------------------------------------------------------- */

enum { LT = 4, LIN = 13, LOUT = 11, LR = 3 };

typedef struct lora_ctx {
    float *x, *u;
    lora_module *m;
    float scale;
} lora_ctx;

static void lora_fwd(void *p, float *y)
{
    lora_ctx *c = p;
    memset(y, 0, LT * LOUT * sizeof *y);
    lora_forward(y, c->u, c->x, c->m, LR, c->scale, LT);
}

static void test_lora_backward(void)
{
    lora_dims dims = {.n_layer = 1};
    dims.n_in[LORA_ATTN_Q] = LIN;
    dims.n_out[LORA_ATTN_Q] = LOUT;
    lora_set s;
    loft_status st;
    CHECK(lora_set_init(&s, &dims, 1u << LORA_ATTN_Q, LR, 5.0f, &st) == LOFT_OK);
    lora_module *m = lora_set_find(&s, 0, LORA_ATTN_Q);
    CHECK(m && m->n_in == LIN && m->n_out == LOUT);
    CHECK(!lora_set_find(&s, 0, LORA_ATTN_K) && !lora_set_find(&s, -1, LORA_OUTPUT));
    fill(m->A, LR * LIN, 1.0f);
    fill(m->B, LOUT * LR, 1.0f); /* non-zero, so dA is not trivially zero */
    float x[LT * LIN], u[LT * LR], y[LT * LOUT], c[LT * LOUT], dx[LT * LIN] = {0}, du[LT * LR];
    fill(x, LT * LIN, 1.0f);
    fill(c, LT * LOUT, 1.0f);
    lora_ctx ctx = {x, u, m, s.scale};
    lora_fwd(&ctx, y);
    lora_set_zero_grads(&s);
    lora_backward(dx, c, x, u, m, LR, s.scale, LT, du);
    FD_CHECK(lora_fwd, &ctx, x, LT * LIN, dx, c, y, LT * LOUT, "lora dx");
    FD_CHECK(lora_fwd, &ctx, m->A, LR * LIN, m->dA, c, y, LT * LOUT, "lora dA");
    FD_CHECK(lora_fwd, &ctx, m->B, LOUT * LR, m->dB, c, y, LT * LOUT, "lora dB");
    lora_set_free(&s);
}

static void test_lora_init_and_modules(void)
{
    uint32_t mask = 0;
    loft_status st;
    CHECK(lora_parse_modules("attn_q,attn_o,ffn_down", &mask, &st) == LOFT_OK);
    CHECK(mask == ((1u << LORA_ATTN_Q) | (1u << LORA_ATTN_O) | (1u << LORA_FFN_DOWN)));
    /* names are exact: no substring matches */
    CHECK(lora_parse_modules("attn", &mask, &st) == LOFT_ERR_ARG);
    CHECK(lora_parse_modules("attn_q_norm", &mask, &st) == LOFT_ERR_ARG);
    CHECK(lora_parse_modules("outp", &mask, &st) == LOFT_ERR_ARG);
    CHECK(lora_parse_modules("all", &mask, &st) == LOFT_OK && mask == 0x7f);
    CHECK(lora_parse_modules("all,output", &mask, &st) == LOFT_OK && mask == 0xff);

    lora_dims dims = {.n_layer = 2};
    for (int k = 0; k < LORA_KIND_COUNT; k++)
        dims.n_in[k] = 100, dims.n_out[k] = 7;
    lora_set s;
    CHECK(lora_set_init(&s, &dims, 0xff, 4, 8.0f, &st) == LOFT_OK);
    CHECK(s.n_mods == 2 * 7 + 1 && s.scale == 2.0f);
    lora_set_init_peft(&s, 42);
    double mx = 0, mean = 0;
    size_t na = 0;
    for (size_t i = 0; i < s.n_mods; i++) {
        for (int j = 0; j < 4 * 100; j++) {
            mx = fmax(mx, fabs(s.mods[i].A[j]));
            mean += s.mods[i].A[j];
            na++;
        }
        for (int j = 0; j < 7 * 4; j++)
            CHECK(s.mods[i].B[j] == 0.0f);
    }
    /* kaiming_uniform(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
    CHECKF(mx <= 0.1 && mx > 0.099, "max |A| %g, bound 0.1", mx);
    CHECKF(fabs(mean / (double)na) < 0.005, "mean A %g", mean / (double)na);
    lora_set_free(&s);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"rmsnorm_backward", test_rmsnorm_backward},
        {"rope_backward", test_rope_backward},
        {"attention_backward", test_attention_backward},
        {"glu_backward", test_glu_backward},
        {"matmul_backward", test_matmul_backward},
        {"lora_backward", test_lora_backward},
        {"lora_init_and_modules", test_lora_init_and_modules},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
