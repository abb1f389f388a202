/*
 * The layer functions of src/model/layers.c against direct double-precision
 * evaluations of their definitions, on odd sizes.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/layers.h"
#include "quant/quant.h"
#include "test.h"

/* A fixed pseudo-random sequence in [-1, 1) (xorshift). */
static uint32_t rng_state = 12345u;
static float frand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return (float)((double)rng_state / 4294967296.0 * 2.0 - 1.0);
}

static void fill(float *x, int64_t n, float scale)
{
    for (int64_t i = 0; i < n; i++) x[i] = frand() * scale;
}

static void test_dot_odd_lengths(void)
{
    float a[67], b[67];
    fill(a, 67, 1.0f);
    fill(b, 67, 1.0f);
    for (int n = 0; n <= 67; n++) {
        double want = 0;
        for (int i = 0; i < n; i++) want += (double)a[i] * b[i];
        CHECKF(fabs(dot_f32(a, b, n) - want) < 1e-5, "n=%d: %g vs %g", n, dot_f32(a, b, n), want);
    }
}

static void test_rmsnorm_matches_definition(void)
{
    float x[3 * 7], w[7], out[3 * 7];
    fill(x, 21, 3.0f);
    fill(w, 7, 1.0f);
    rmsnorm_forward(out, x, w, 3, 7, 1e-5f);
    for (int t = 0; t < 3; t++) {
        double ss = 0;
        for (int i = 0; i < 7; i++) ss += (double)x[t * 7 + i] * x[t * 7 + i];
        const double s = 1.0 / sqrt(ss / 7 + 1e-5);
        for (int i = 0; i < 7; i++) CHECK(fabs(out[t * 7 + i] - x[t * 7 + i] * s * w[i]) < 1e-6);
    }
    /* In place and without a gain. */
    memcpy(out, x, sizeof x);
    rmsnorm_forward(out, out, NULL, 3, 7, 0.0f);
    double ss = 0;
    for (int i = 0; i < 7; i++) ss += (double)out[i] * out[i];
    CHECK(fabs(ss / 7 - 1.0) < 1e-5);
}

/* Expected rope of x (one head) at pos, straight from the definition. */
static void rope_reference(double *out, const float *x, int hd, int n_rot, bool neox, int pos,
                           double base, double scale, const float *ff)
{
    for (int i = 0; i < hd; i++) out[i] = x[i];
    for (int i = 0; i < n_rot / 2; i++) {
        double th = scale * pos * pow(base, -2.0 * i / n_rot) / (ff ? ff[i] : 1.0);
        int a = neox ? i : 2 * i, b = neox ? i + n_rot / 2 : 2 * i + 1;
        out[a] = x[a] * cos(th) - x[b] * sin(th);
        out[b] = x[a] * sin(th) + x[b] * cos(th);
    }
}

static void test_rope_norm_and_neox(void)
{
    enum { HD = 12, HEADS = 3 };
    float x[HEADS * HD], y[HEADS * HD], cs[HD];
    const float ff[4] = {1.0f, 2.0f, 4.0f, 8.0f};
    fill(x, HEADS * HD, 1.0f);
    for (int variant = 0; variant < 4; variant++) {
        rope_params rp = {
            .n_rot = variant == 3 ? 8 : HD, /* partial rotation leaves the tail */
            .neox = variant % 2 == 1,
            .freq_base = 10000.0f,
            .freq_scale = variant == 2 ? 0.25f : 1.0f,
            .freq_factors = variant == 3 ? ff : NULL,
        };
        for (int pos = 0; pos < 40; pos += 13) {
            memcpy(y, x, sizeof x);
            rope_cache(cs, pos, &rp);
            rope_apply(y, HEADS, HD, cs, &rp);
            for (int h = 0; h < HEADS; h++) {
                double want[HD];
                rope_reference(want, x + h * HD, HD, rp.n_rot, rp.neox, pos, 10000.0,
                               rp.freq_scale, rp.freq_factors);
                for (int i = 0; i < HD; i++)
                    CHECKF(fabs(y[h * HD + i] - want[i]) < 2e-5, "variant %d pos %d h %d i %d: %g vs %g",
                           variant, pos, h, i, y[h * HD + i], want[i]);
            }
        }
    }
}

/* Attention of one query straight from the definition, in double. */
static void attention_reference(double *out, const float *q, const float *K, const float *V,
                                int pos, const attn_shape *as)
{
    const int group = as->n_head / as->n_head_kv;
    const int kw = as->n_head_kv * as->head_dim, vw = as->n_head_kv * as->head_dim_v;
    for (int h = 0; h < as->n_head; h++) {
        const int hk = h / group;
        double s[64], mx = -1e300, sum = 0;
        for (int p = 0; p <= pos; p++) {
            s[p] = -INFINITY;
            if (as->window > 0 && pos - p >= as->window) continue;
            double d = 0;
            for (int i = 0; i < as->head_dim; i++)
                d += (double)q[h * as->head_dim + i] * K[p * kw + hk * as->head_dim + i];
            d *= as->scale;
            if (as->softcap > 0) d = as->softcap * tanh(d / as->softcap);
            s[p] = d;
            if (d > mx) mx = d;
        }
        for (int p = 0; p <= pos; p++) sum += s[p] == -INFINITY ? 0 : exp(s[p] - mx);
        for (int i = 0; i < as->head_dim_v; i++) {
            double o = 0;
            for (int p = 0; p <= pos; p++)
                if (s[p] != -INFINITY) o += exp(s[p] - mx) / sum * V[p * vw + hk * as->head_dim_v + i];
            out[h * as->head_dim_v + i] = o;
        }
    }
}

static void test_attention_causal_window_gqa_softcap(void)
{
    enum { NKV = 20 };
    const attn_shape shapes[] = {
        {.n_head = 4, .n_head_kv = 2, .head_dim = 8, .head_dim_v = 8, .window = 0, .scale = 0.35f},
        {.n_head = 6, .n_head_kv = 1, .head_dim = 6, .head_dim_v = 10, .window = 5, .scale = 0.4f},
        {.n_head = 2, .n_head_kv = 2, .head_dim = 4, .head_dim_v = 4, .window = 3, .scale = 1.0f,
         .softcap = 2.0f},
    };
    for (int si = 0; si < TEST_COUNT(shapes); si++) {
        const attn_shape *as = &shapes[si];
        float q[64], K[NKV * 16], V[NKV * 20], out[64], scores[NKV];
        double want[64];
        fill(q, as->n_head * as->head_dim, 2.0f);
        fill(K, NKV * as->n_head_kv * as->head_dim, 2.0f);
        fill(V, NKV * as->n_head_kv * as->head_dim_v, 1.0f);
        for (int pos = 0; pos < NKV; pos++) {
            for (int i = 0; i < 64; i++) out[i] = NAN;
            attention_forward(out, q, K, V, pos, as, scores);
            attention_reference(want, q, K, V, pos, as);
            for (int i = 0; i < as->n_head * as->head_dim_v; i++)
                CHECKF(fabs(out[i] - want[i]) < 1e-5, "shape %d pos %d i %d: %g vs %g", si, pos, i,
                       out[i], want[i]);
        }
    }
    /* A key outside the window (or in the future) cannot change the result. */
    const attn_shape *as = &shapes[1];
    float q[64], K[NKV * 16], V[NKV * 20], a[64], b[64], scores[NKV];
    fill(q, 64, 1.0f);
    fill(K, NKV * 16, 1.0f);
    fill(V, NKV * 20, 1.0f);
    attention_forward(a, q, K, V, 10, as, scores);
    for (int i = 0; i < 6; i++) K[5 * 6 + i] = 1e4f, K[11 * 6 + i] = 1e4f;
    for (int i = 0; i < 10; i++) V[5 * 10 + i] = 1e4f, V[11 * 10 + i] = 1e4f;
    attention_forward(b, q, K, V, 10, as, scores);
    CHECK(memcmp(a, b, sizeof(float) * 60) == 0);
}

static void test_activations(void)
{
    float g[9], u[9], out[9];
    fill(g, 9, 4.0f);
    fill(u, 9, 1.0f);
    swiglu_forward(out, g, u, 3, 3);
    for (int i = 0; i < 9; i++) CHECK(fabs(out[i] - g[i] / (1.0 + exp(-g[i])) * u[i]) < 1e-6);
    geglu_forward(out, g, u, 1, 9);
    for (int i = 0; i < 9; i++) {
        const double x = g[i];
        const double gl = 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
        CHECK(fabs(out[i] - gl * u[i]) < 1e-6);
    }
    CHECK(fabs(gelu_tanh(1.0f) - 0.8411920f) < 1e-6);
    float c[3] = {100.0f, -3.0f, 0.5f};
    softcap_apply(c, 3, 30.0f);
    CHECK(fabs(c[0] - 30.0 * tanh(100.0 / 30.0)) < 1e-5 && fabs(c[2] - 30.0 * tanh(0.5 / 30.0)) < 1e-6);
}

static void test_matmul_f32_and_quantized(void)
{
    enum { NIN = 64, NOUT = 5, T = 3 };
    float wf[NOUT * NIN], x[T * NIN], y[T * NOUT], row[NIN], deq[NIN];
    uint8_t wq[NOUT * 34 * 2];
    fill(wf, NOUT * NIN, 1.0f);
    fill(x, T * NIN, 1.0f);
    model_weight w = {.data = wf, .type = LOFT_TYPE_F32, .n_in = NIN, .n_out = NOUT,
                      .row_bytes = NIN * sizeof(float)};
    for (int i = 0; i < T * NOUT; i++) y[i] = NAN;
    matmul_qw(y, x, &w, T, row);
    for (int t = 0; t < T; t++)
        for (int r = 0; r < NOUT; r++) {
            double want = 0;
            for (int i = 0; i < NIN; i++) want += (double)wf[r * NIN + i] * x[t * NIN + i];
            CHECK(fabs(y[t * NOUT + r] - want) < 1e-5);
        }
    /* Q8_0 rows: the product must be that of the dequantized rows. */
    const size_t rb = loft_type_row_size(LOFT_TYPE_Q8_0, NIN);
    CHECK(rb == 68);
    for (int r = 0; r < NOUT; r++) CHECK(loft_quantize_row(LOFT_TYPE_Q8_0, wf + r * NIN, wq + r * rb, NIN));
    model_weight wq8 = {.data = wq, .type = LOFT_TYPE_Q8_0, .n_in = NIN, .n_out = NOUT, .row_bytes = rb};
    matmul_qw(y, x, &wq8, T, row);
    for (int r = 0; r < NOUT; r++) {
        CHECK(loft_dequantize_row(LOFT_TYPE_Q8_0, wq + r * rb, deq, NIN));
        for (int t = 0; t < T; t++) {
            double want = 0;
            for (int i = 0; i < NIN; i++) want += (double)deq[i] * x[t * NIN + i];
            CHECK(fabs(y[t * NOUT + r] - want) < 1e-5);
        }
    }
    /* Embedding rows of the same table, scaled. */
    float e[NIN];
    embedding_lookup(e, &wq8, 3, 2.0f);
    CHECK(loft_dequantize_row(LOFT_TYPE_Q8_0, wq + 3 * rb, deq, NIN));
    for (int i = 0; i < NIN; i++) CHECK(e[i] == deq[i] * 2.0f);
    float bias[NOUT] = {1, 2, 3, 4, 5};
    memset(y, 0, sizeof y);
    add_bias(y, bias, T, NOUT);
    CHECK(y[NOUT + 2] == 3.0f && y[2 * NOUT + 4] == 5.0f);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"layers_dot_odd_lengths", test_dot_odd_lengths},
        {"layers_rmsnorm_matches_definition", test_rmsnorm_matches_definition},
        {"layers_rope_norm_and_neox", test_rope_norm_and_neox},
        {"layers_attention_causal_window_gqa_softcap", test_attention_causal_window_gqa_softcap},
        {"layers_activations", test_activations},
        {"layers_matmul_f32_and_quantized", test_matmul_f32_and_quantized},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
