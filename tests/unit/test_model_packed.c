/*
 * Packed weights at model load: the tiny llama (tests/golden/qwen/
 * llama.gguf) rewritten as pure Q4_0 is loaded twice; in the second copy
 * every packed pointer is cleared, so its matrix products read the GGUF
 * rows. Both must give the same logits for a prompt (the batched prefill
 * path) and for a token decoded after it, up to the order of float sums:
 * |a - b| <= 1e-4 * max |b| over the row (the kernels agree within
 * 64 eps of Σ|w·x| per product; a few layers of float noise stay far
 * below this). Where the kernel set has no packed Q4_0 kernel, nothing may
 * be packed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quant/quantize_model.h"
#include "infer/kv.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "model/model_impl.h"
#include "test.h"

static void clear_packed(loft_model *m)
{
    for (int32_t il = 0; il < m->hp.n_layer; il++) {
        model_layer *l = &m->layers[il];
        model_weight *ws[] = {&l->wq,       &l->wk,     &l->wv,      &l->wo,
                              &l->ffn_gate, &l->ffn_up, &l->ffn_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
            ws[i]->packed = NULL;
    }
    m->output.packed = NULL;
}

/* Largest |b[i] - a[i]| over the row, relative to max |b[i]|. */
static double rel_diff(const float *a, const float *b, int64_t n)
{
    double d = 0.0, mx = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs((double)a[i] - b[i]);
        d = e > d || isnan(e) ? e : d;
        mx = fabs(b[i]) > mx ? fabs(b[i]) : mx;
    }
    return mx > 0.0 ? d / mx : d;
}

static void test_packed_q4_0_model(void)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/loft-test-packed-%d.gguf", (int)getpid());
    quantize_params qp = {.ftype = quantize_ftype_from_name("Q4_0"),
                          .pure = true,
                          .allow_requantize = true,
                          .n_threads = 1};
    loft_status st;
    CHECK(qp.ftype != NULL);
    CHECKF(quantize_model(test_data_path("golden/qwen/llama.gguf"), path, &qp, NULL, &st) ==
               LOFT_OK,
           "quantize: %s", st.msg);
    loft_model *a = NULL, *b = NULL;
    kv_cache *ka = NULL, *kb = NULL;
    float *la = NULL, *lb = NULL;
    bool ok = model_load(&a, path, &st) == LOFT_OK && model_load(&b, path, &st) == LOFT_OK;
    unlink(path);
    CHECKF(ok, "load: %s", st.msg);
    const bool has = kernels_get()->packed[LOFT_TYPE_Q4_0] != NULL;
    CHECKF((a->layers[0].ffn_up.packed != NULL) == has && (a->output.packed != NULL) == has,
           "%s: packed pointers set %d, kernel %d", kernels_get()->name,
           a->layers[0].ffn_up.packed != NULL, has);
    clear_packed(b);
    const int64_t nv = model_get_hparams(a)->n_vocab;
    enum { T = 11 };
    const int32_t prompt[T] = {1, 17, 3, 99, 250, 4, 8, 15, 16, 23, 42};
    const int32_t next = 77;
    la = malloc(sizeof(float) * (size_t)(T * nv));
    lb = malloc(sizeof(float) * (size_t)(T * nv));
    ok = la && lb && kv_cache_init(&ka, a, 32, &st) == LOFT_OK &&
         kv_cache_init(&kb, b, 32, &st) == LOFT_OK;
    if (ok) {
        ok = model_forward(a, ka, prompt, T, la, true, &st) == LOFT_OK &&
             model_forward(b, kb, prompt, T, lb, true, &st) == LOFT_OK;
        for (int t = 0; ok && t < T; t++) {
            const double d = rel_diff(la + t * nv, lb + t * nv, nv);
            CHECKF(d <= 1e-4, "prompt token %d: logits differ by %.3g of the largest", t, d);
        }
        ok = ok && model_forward(a, ka, &next, 1, la, false, &st) == LOFT_OK &&
             model_forward(b, kb, &next, 1, lb, false, &st) == LOFT_OK;
        const double d = rel_diff(la, lb, nv);
        CHECKF(d <= 1e-4, "decoded token: logits differ by %.3g of the largest", d);
    }
    kv_cache_free(ka);
    kv_cache_free(kb);
    free(la);
    free(lb);
    model_free(a);
    model_free(b);
    CHECKF(ok, "forward: %s", st.msg);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"packed_q4_0_model", test_packed_q4_0_model},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
