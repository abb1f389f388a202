/*
 * loft merge (src/train/merge.c, tools/loft/cmd_merge.c): a merged model's
 * logits equal those of the base model with the adapter applied beside the
 * frozen weights (loft run --lora's path, lora_stack), on every position of
 * a short sequence, with F32 activations on both sides (the reference
 * matmul path, so the only differences are the merge's own rounding):
 *   - tiny random F32 llama + a rank-4 adapter on every module and the
 *     output (tests/golden/lora/init.gguf), merged at F32: max |diff| <=
 *     1e-4 * (1 + max |logit|), float rounding of W + B A vs W x + B (A x);
 *   - the same with two --lora-scaled adapters (scales 0.5 and -1.25);
 *   - SmolLM2-135M Q4_1 + the rank-2 adapter tests/golden/lora/
 *     smollm2-bio-r2.gguf at scale 2 (so the adapter moves the logits
 *     clearly), merged at F16 and at Q8_0 (through the loft program): the
 *     gap to base + adapter is the rounding of the output type, so it must
 *     stay within 1.5x (+1e-3) of the gap that converting the base alone to
 *     that type gives (a scale-0 merge run with the adapter beside it), and
 *     under a tenth of the adapter's own effect;
 *   - a mismatched adapter (the tiny model's, another architecture's) is
 *     refused with the adapter and tensor named, and nothing is written.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "infer/kv.h"
#include "model/model.h"
#include "quant/quant.h"
#include "test.h"
#include "train/adapter.h"
#include "train/merge.h"

#define N_TOK 12

static char tmp_path[128];

static const char *tmp_file(const char *tag)
{
    snprintf(tmp_path, sizeof tmp_path, "/tmp/loft-merge-%s-%d.gguf", tag, (int)getpid());
    return tmp_path;
}

/* Logits of every position of tokens (n_vocab floats each; malloc'd) of the
 * model at path, with the adapters (path, scale) applied at inference. */
static float *logits_of(const char *path, const merge_adapter *ads, size_t n_ads,
                        const int32_t *tokens, int32_t n, int32_t *n_vocab)
{
    loft_status st;
    loft_model *m = NULL;
    if (model_load(&m, path, &st) != LOFT_OK) {
        fprintf(stderr, "  %s\n", st.msg);
        return NULL;
    }
    model_set_f32_activations(m, true);
    model_set_threads(m, 2, &st);
    lora_stack stack = {0};
    bool ok = true;
    for (size_t i = 0; ok && i < n_ads; i++)
        ok = lora_stack_add(&stack, ads[i].path, ads[i].scale, m, &st) == LOFT_OK;
    if (ok && n_ads) ok = lora_stack_attach(&stack, m, &st) == LOFT_OK;
    kv_cache *kv = NULL;
    if (ok) ok = kv_cache_init_type(&kv, m, 64, LOFT_TYPE_F32, &st) == LOFT_OK;
    *n_vocab = model_get_hparams(m)->n_vocab;
    float *out = ok ? malloc((size_t)n * (size_t)*n_vocab * sizeof *out) : NULL;
    if (out && model_forward(m, kv, tokens, n, out, true, &st) != LOFT_OK) {
        free(out);
        out = NULL;
    }
    if (!out) fprintf(stderr, "  %s\n", st.msg);
    kv_cache_free(kv);
    lora_stack_free(&stack);
    model_free(m);
    return out;
}

static double max_abs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i]));
    return m;
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d; /* NaN propagates as a failure */
    }
    return m;
}

static const int32_t tiny_tokens[N_TOK] = {1, 17, 42, 99, 200, 5, 7, 250, 128, 64, 32, 16};

/* Merges ads into the tiny F32 llama at F32 and checks the logits. */
static void check_tiny(const merge_adapter *ads, size_t n_ads)
{
    const char *base = test_data_path("golden/qwen/llama.gguf");
    char base_copy[512];
    snprintf(base_copy, sizeof base_copy, "%s", base);
    char out[128];
    snprintf(out, sizeof out, "%s", tmp_file("tiny"));
    loft_status st;
    merge_params p = {.adapters = ads, .n_adapters = n_ads, .out_type = LOFT_TYPE_F32};
    merge_summary sum;
    CHECKF(merge_model(base_copy, &p, out, &sum, &st) == LOFT_OK, "%s", st.msg);
    CHECKF(sum.n_merged > 0 && sum.n_fallback == 0, "merged %d fallback %d", sum.n_merged,
           sum.n_fallback);
    int32_t nv = 0, nv2 = 0;
    float *want = logits_of(base_copy, ads, n_ads, tiny_tokens, N_TOK, &nv);
    float *got = logits_of(out, NULL, 0, tiny_tokens, N_TOK, &nv2);
    float *plain = logits_of(base_copy, NULL, 0, tiny_tokens, N_TOK, &nv2);
    unlink(out);
    CHECK(want && got && plain && nv == nv2);
    const size_t n = (size_t)N_TOK * (size_t)nv;
    const double d = max_diff(got, want, n), effect = max_diff(plain, want, n);
    const double tol = 1e-4 * (1.0 + max_abs(want, n));
    free(want);
    free(got);
    free(plain);
    CHECKF(d <= tol, "merged vs base+adapter: max |diff| %.3g > %.3g", d, tol);
    CHECKF(effect > 100 * tol, "the adapter barely moves the logits (%.3g)", effect);
}

static void test_tiny_f32(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s", test_data_path("golden/lora/init.gguf"));
    const merge_adapter a[1] = {{path, 1.0f}};
    check_tiny(a, 1);
}

static void test_tiny_two_scaled(void)
{
    char p1[512], p2[512];
    snprintf(p1, sizeof p1, "%s", test_data_path("golden/lora/init.gguf"));
    snprintf(p2, sizeof p2, "%s", test_data_path("golden/lora/grads.gguf"));
    const merge_adapter a[2] = {{p1, 0.5f}, {p2, -1.25f}};
    check_tiny(a, 2);
}

/* SmolLM2 + its adapter, merged to type_name (via the loft program when
 * use_cli). The reference for the rounding the output type brings is a
 * control: the same merge with scale 0 (the base matrices only converted to
 * type_name) run with the adapter beside it. */
static void check_smollm2(const char *type_name, double rel_tol, bool use_cli)
{
    char base[512], ad[512], out[128], ctrl[128];
    snprintf(base, sizeof base, "%s", test_model_path("smollm2-135m-instruct-q4_1.gguf"));
    snprintf(ad, sizeof ad, "%s", test_data_path("golden/lora/smollm2-bio-r2.gguf"));
    snprintf(out, sizeof out, "%s", tmp_file(type_name));
    snprintf(ctrl, sizeof ctrl, "%s", tmp_file("control"));
    const merge_adapter a[1] = {{ad, 2.0f}}, zero[1] = {{ad, 0.0f}};
    loft_status st;
    merge_params p = {.adapters = zero, .n_adapters = 1, .out_type = loft_type_from_name(type_name)};
    CHECKF(merge_model(base, &p, ctrl, NULL, &st) == LOFT_OK, "%s", st.msg);
    if (use_cli) {
        char cmd[2048], *txt = NULL;
        snprintf(cmd, sizeof cmd, "%s merge -m '%s' --lora-scaled '%s' 2 -o '%s' --type %s 2>&1",
                 test_loft_bin(), base, ad, out, type_name);
        int rc = test_run(cmd, &txt);
        const bool said = txt && strstr(txt, "60 matrices merged");
        CHECKF(rc == 0 && said, "loft merge exited %d: %s", rc, txt ? txt : "");
        free(txt);
    } else {
        p.adapters = a;
        CHECKF(merge_model(base, &p, out, NULL, &st) == LOFT_OK, "%s", st.msg);
    }
    /* Any in-vocabulary ids exercise the same arithmetic. */
    const int32_t toks[N_TOK] = {1, 504, 3575, 282, 4649, 314, 7042, 30, 657, 11040, 28, 253};
    int32_t nv = 0, nv2 = 0, nv3 = 0, nv4 = 0;
    float *want = logits_of(base, a, 1, toks, N_TOK, &nv);
    float *plain = logits_of(base, NULL, 0, toks, N_TOK, &nv2);
    float *got = logits_of(out, NULL, 0, toks, N_TOK, &nv3);
    float *conv = logits_of(ctrl, a, 1, toks, N_TOK, &nv4);
    unlink(out);
    unlink(ctrl);
    CHECK(want && got && plain && conv && nv == nv2 && nv == nv3 && nv == nv4);
    const size_t n = (size_t)N_TOK * (size_t)nv;
    const double d = max_diff(got, want, n), effect = max_diff(plain, want, n);
    const double d_conv = max_diff(conv, want, n);
    free(want);
    free(got);
    free(plain);
    free(conv);
    printf("  %s: merged vs base+adapter max |diff| %.4f; converted base + adapter %.4f; "
           "adapter effect %.4f\n",
           type_name, d, d_conv, effect);
    CHECKF(d <= rel_tol * d_conv + 1e-3 && d <= 0.1 * effect,
           "%s: merged vs base+adapter max |diff| %.4f; allowed %.2f x the conversion's %.4f "
           "and a tenth of the adapter's effect %.4f",
           type_name, d, rel_tol, d_conv, effect);
}

static void test_smollm2_f16(void)
{
    check_smollm2("F16", 1.5, false);
}

static void test_smollm2_q8_0_cli(void)
{
    check_smollm2("Q8_0", 1.5, true);
}

static void test_refuses_mismatch(void)
{
    char base[512], tiny_ad[512], smol_ad[512], gemma[512], out[128];
    snprintf(base, sizeof base, "%s", test_model_path("smollm2-135m-instruct-q4_1.gguf"));
    snprintf(gemma, sizeof gemma, "%s", test_model_path("gemma-3-270m-q4_k_m.gguf"));
    snprintf(tiny_ad, sizeof tiny_ad, "%s", test_data_path("golden/lora/init.gguf"));
    snprintf(smol_ad, sizeof smol_ad, "%s", test_data_path("golden/lora/smollm2-bio-r2.gguf"));
    snprintf(out, sizeof out, "%s", tmp_file("bad"));
    unlink(out);
    loft_status st;
    merge_adapter a = {tiny_ad, 1.0f};
    merge_params p = {.adapters = &a, .n_adapters = 1, .out_type = -1};
    CHECK(merge_model(base, &p, out, NULL, &st) == LOFT_ERR_FORMAT);
    CHECKF(strstr(st.msg, "init.gguf") && strstr(st.msg, "lora_"), "message: %s", st.msg);
    CHECK(access(out, F_OK) != 0);
    /* an adapter for llama refused by a gemma3 base */
    a.path = smol_ad;
    CHECK(merge_model(gemma, &p, out, NULL, &st) == LOFT_ERR_FORMAT);
    CHECKF(strstr(st.msg, "architecture"), "message: %s", st.msg);
    CHECK(access(out, F_OK) != 0);
    /* no adapter, an output type without a quantizer */
    p.n_adapters = 0;
    CHECK(merge_model(base, &p, out, NULL, &st) == LOFT_ERR_ARG);
    p.n_adapters = 1;
    a.path = smol_ad;
    p.out_type = LOFT_TYPE_Q8_K;
    CHECK(merge_model(base, &p, out, NULL, &st) == LOFT_ERR_ARG);
    CHECK(access(out, F_OK) != 0);
    /* the program: usage errors exit 2 */
    char cmd[1024], *txt = NULL;
    snprintf(cmd, sizeof cmd, "%s merge -m '%s' -o '%s' 2>&1", test_loft_bin(), base, out);
    CHECK(test_run(cmd, &txt) == 2);
    free(txt);
    txt = NULL;
    snprintf(cmd, sizeof cmd, "%s merge -m '%s' --lora '%s' -o '%s' --type Q9_9 2>&1",
             test_loft_bin(), base, smol_ad, out);
    CHECK(test_run(cmd, &txt) == 2);
    free(txt);
    CHECK(access(out, F_OK) != 0);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"tiny_f32", test_tiny_f32},
        {"tiny_two_scaled", test_tiny_two_scaled},
        {"smollm2_f16", test_smollm2_f16},
        {"smollm2_q8_0_cli", test_smollm2_q8_0_cli},
        {"refuses_mismatch", test_refuses_mismatch},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
