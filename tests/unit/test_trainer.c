/*
 * The whole training backward (src/train/trainer.c) against finite
 * differences of the training loss, on the tiny random F32 llama of
 * tests/golden/qwen/llama.gguf (2 layers, width 64, vocabulary 256) with
 * LoRA on every module and the output. A and B are both random (B = 0 would
 * make dA vanish). The loss is summed in double; the F32 forward of this
 * small model is smooth enough for h = 1e-2. Stated tolerance per checked
 * parameter: |fd - analytic| <= 2e-3 * (1 + |analytic|) + 2e-3 * max|analytic|
 * over the set (the second term bounds F32 rounding of the ~15-token loss).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "test.h"
#include "train/lora.h"
#include "train/trainer.h"

static const int32_t toks[12] = {1, 17, 42, 99, 200, 5, 7, 250, 128, 64, 32, 16};
static const uint8_t mask[12] = {0, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1};

static double loss_of(trainer *tr)
{
    double l = 0;
    int32_t n = 0;
    loft_status st;
    if (trainer_sequence(tr, toks, mask, 12, false, 1.0f, &l, &n, &st) != LOFT_OK) return NAN;
    return l;
}

static void run_check(int threads, bool exact)
{
    loft_status st;
    loft_model *m = NULL;
    CHECKF(model_load(&m, test_data_path("golden/qwen/llama.gguf"), &st) == LOFT_OK, "%s", st.msg);
    lora_dims dims;
    trainer_lora_dims(m, &dims);
    lora_set s;
    CHECK(lora_set_init(&s, &dims, 0xff, 2, 4.0f, &st) == LOFT_OK);
    lora_set_init_peft(&s, 7);
    uint32_t r = 99;
    for (size_t i = 0; i < s.n_mods; i++)
        for (int64_t j = 0; j < s.mods[i].n_out * 2; j++) {
            r = r * 1664525u + 1013904223u;
            s.mods[i].B[j] = ((float)(r >> 8) / 16777216.0f - 0.5f) * 0.2f;
        }
    trainer_config cfg = {.max_tokens = 16, .n_threads = threads, .exact_matmul = exact};
    trainer *tr = NULL;
    CHECKF(trainer_init(&tr, m, &s, &cfg, &st) == LOFT_OK, "%s", st.msg);
    lora_set_zero_grads(&s);
    double l = 0;
    int32_t n = 0;
    CHECK(trainer_sequence(tr, toks, mask, 12, true, 1.0f, &l, &n, &st) == LOFT_OK);
    CHECK(n == 8 && isfinite(l) && l > 0);
    double gmax = 0;
    for (size_t i = 0; i < s.n_params; i++)
        gmax = fmax(gmax, fabs(s.grads[i]));
    CHECK(gmax > 0);
    /* A few parameters of every module: first A values, first B values. */
    int checked = 0;
    for (size_t mi = 0; mi < s.n_mods; mi++) {
        lora_module *md = &s.mods[mi];
        float *ps[2] = {md->A, md->B};
        float *gs[2] = {md->dA, md->dB};
        for (int w = 0; w < 2; w++)
            for (int j = 0; j < 3; j++) {
                float *p = ps[w] + j * 5;
                const float keep = *p, h = 1e-2f;
                *p = keep + h;
                const double lp = loss_of(tr);
                *p = keep - h;
                const double lm = loss_of(tr);
                *p = keep;
                const double fd = (lp - lm) / (2.0 * h), an = gs[w][j * 5];
                CHECKF(fabs(fd - an) <= 2e-3 * (1 + fabs(an)) + 2e-3 * gmax,
                       "%s blk %d %s[%d]: fd %.6g backward %.6g", lora_kind_tensor_name(md->kind),
                       md->layer, w ? "B" : "A", j * 5, fd, an);
                checked++;
            }
    }
    CHECK(checked == (int)s.n_mods * 6);
    trainer_free(tr);
    lora_set_free(&s);
    model_free(m);
}

static void test_grad_exact_1thread(void)
{
    run_check(1, true);
}
static void test_grad_kernels_2threads(void)
{
    run_check(2, false);
}

/* The same sequence gives the same gradients with 1 and 3 threads. */
static void test_thread_count_invariant(void)
{
    loft_status st;
    loft_model *m = NULL;
    CHECK(model_load(&m, test_data_path("golden/qwen/llama.gguf"), &st) == LOFT_OK);
    lora_dims dims;
    trainer_lora_dims(m, &dims);
    float *g[2] = {NULL, NULL};
    size_t np = 0;
    for (int k = 0; k < 2; k++) {
        lora_set s;
        CHECK(lora_set_init(&s, &dims, 0x7f, 4, 8.0f, &st) == LOFT_OK);
        lora_set_init_peft(&s, 3);
        for (size_t i = 0; i < s.n_params; i++)
            s.params[i] += 0.01f;
        trainer_config cfg = {.max_tokens = 12, .n_threads = k ? 3 : 1, .exact_matmul = true};
        trainer *tr = NULL;
        CHECK(trainer_init(&tr, m, &s, &cfg, &st) == LOFT_OK);
        lora_set_zero_grads(&s);
        double l;
        int32_t n;
        CHECK(trainer_sequence(tr, toks, mask, 12, true, 0.125f, &l, &n, &st) == LOFT_OK);
        np = s.n_params;
        g[k] = malloc(np * sizeof(float));
        CHECK(g[k]);
        memcpy(g[k], s.grads, np * sizeof(float));
        trainer_free(tr);
        lora_set_free(&s);
    }
    CHECK(memcmp(g[0], g[1], np * sizeof(float)) == 0);
    free(g[0]);
    free(g[1]);
    model_free(m);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"grad_exact_1thread", test_grad_exact_1thread},
        {"grad_kernels_2threads", test_grad_kernels_2threads},
        {"thread_count_invariant", test_thread_count_invariant},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
