/*
 * Activation checkpointing in the trainer (trainer_config.checkpoint_activations):
 *   - loss and LoRA gradients bit-identical to the normal mode: on the tiny
 *     F32 llama (tests/golden/qwen/llama.gguf) at 1 and 2 threads, on both
 *     numeric paths, with and without LoRA dropout; on SmolLM2-135M Q4_1
 *     (models/, 32 tokens, LoRA on the seven block matrices, kernels path)
 *     at 2 threads with p = 0.3 (one case only: the test runs under
 *     sanitizers too);
 *   - the activation arena: trainer_activation_bytes equals
 *     trainer_activation_bytes_for, and checkpointing saves what n_layer - 1
 *     blocks' activations (all but their input) take, computed here from
 *     the shapes of what the backward reads: x_mid, xn1, xn2 (T x C each),
 *     q, att (T x n_head*head_dim), k, v (T x n_head_kv*head_dim), gate, up,
 *     h (T x n_ff), attention probabilities (n_head x T x T), two T-float
 *     norm factors and seven T x rank LoRA intermediates. On SmolLM2 at 128
 *     tokens that is a factor of more than 3 on the whole arena;
 *   - the program: `loft finetune` (SmolLM2, biomedical set, one step of
 *     64 tokens) with --checkpoint-activations writes the adapter a run
 *     without it writes, byte for byte, and reports a smaller activation
 *     memory; --lora-dropout 0.3 changes the adapter.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "test.h"
#include "train/lora.h"
#include "train/trainer.h"

/* Loss bits and gradients of one sequence, from zeroed gradients. */
static bool run_once(loft_model *m, lora_set *s, const trainer_config *cfg, const int32_t *tk,
                     const uint8_t *mk, int32_t T, float p, double *loss, float *grads)
{
    loft_status st;
    trainer *tr = NULL;
    if (trainer_init(&tr, m, s, cfg, &st) != LOFT_OK) return false;
    lora_set_zero_grads(s);
    int32_t n = 0;
    bool ok = trainer_set_dropout(tr, p, 31337, &st) == LOFT_OK &&
              trainer_sequence(tr, tk, mk, T, true, 0.25f, loss, &n, &st) == LOFT_OK && n > 0;
    trainer_free(tr);
    memcpy(grads, s->grads, s->n_params * sizeof(float));
    return ok;
}

/* Random A and B (B = 0 would hide most of the LoRA backward). */
static bool make_set(loft_model *m, lora_set *s, uint32_t kinds, int32_t rank)
{
    loft_status st;
    lora_dims dims;
    trainer_lora_dims(m, &dims);
    if (lora_set_init(s, &dims, kinds, rank, 2.0f * (float)rank, &st) != LOFT_OK) return false;
    lora_set_init_peft(s, 5);
    uint32_t r = 12345;
    for (size_t i = 0; i < s->n_mods; i++)
        for (int64_t j = 0; j < s->mods[i].n_out * rank; j++) {
            r = r * 1664525u + 1013904223u;
            s->mods[i].B[j] = ((float)(r >> 8) / 16777216.0f - 0.5f) * 0.05f;
        }
    return true;
}

/* Checkpointed == normal, bit for bit, for threads {1, 2} x path {exact,
 * kernels} x dropout {0, 0.3}; `all` false (the large model, for time):
 * 2 threads with dropout on the kernels path only. */
static void compare_modes(loft_model *m, uint32_t kinds, const int32_t *tk, const uint8_t *mk,
                          int32_t T, bool all)
{
    lora_set s;
    CHECK(make_set(m, &s, kinds, 4));
    float *g0 = malloc(s.n_params * sizeof(float)), *g1 = malloc(s.n_params * sizeof(float));
    CHECK(g0 && g1);
    for (int threads = 1; threads <= 2; threads++)
        for (int exact = 0; exact <= (all ? 1 : 0); exact++)
            for (int dp = 0; dp <= 1; dp++) {
                if (!all && (threads != 2 || dp != 1)) continue;
                trainer_config cfg = {
                    .max_tokens = T, .n_threads = threads, .exact_matmul = exact != 0};
                double l0 = NAN, l1 = NAN;
                const float p = dp ? 0.3f : 0.0f;
                CHECK(run_once(m, &s, &cfg, tk, mk, T, p, &l0, g0));
                cfg.checkpoint_activations = true;
                CHECK(run_once(m, &s, &cfg, tk, mk, T, p, &l1, g1));
                double gmax = 0;
                for (size_t i = 0; i < s.n_params; i++)
                    gmax = fmax(gmax, fabs(g0[i]));
                CHECKF(isfinite(l0) && gmax > 0 && memcmp(&l0, &l1, sizeof l0) == 0,
                       "threads %d exact %d p %.1f: loss %.17g normal, %.17g checkpointed", threads,
                       exact, (double)p, l0, l1);
                size_t diff = 0;
                for (size_t i = 0; i < s.n_params; i++)
                    diff += memcmp(&g0[i], &g1[i], sizeof(float)) != 0;
                CHECKF(diff == 0, "threads %d exact %d p %.1f: %zu of %zu gradients differ",
                       threads, exact, (double)p, diff, s.n_params);
            }
    free(g0);
    free(g1);
    lora_set_free(&s);
}

static void test_bit_identical_tiny(void)
{
    loft_status st;
    loft_model *m = NULL;
    CHECK(model_load(&m, test_data_path("golden/qwen/llama.gguf"), &st) == LOFT_OK);
    static const int32_t tk[12] = {1, 17, 42, 99, 200, 5, 7, 250, 128, 64, 32, 16};
    static const uint8_t mk[12] = {0, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1};
    compare_modes(m, 0xff, tk, mk, 12, true);
    model_free(m);
}

static void test_bit_identical_smollm2(void)
{
    loft_status st;
    loft_model *m = NULL;
    CHECKF(model_load(&m, test_model_path("smollm2-135m-instruct-q4_1.gguf"), &st) == LOFT_OK, "%s",
           st.msg);
    enum { T = 32 };
    int32_t tk[T];
    uint8_t mk[T];
    uint32_t r = 7;
    const int32_t V = model_get_hparams(m)->n_vocab;
    for (int t = 0; t < T; t++) {
        r = r * 1664525u + 1013904223u;
        tk[t] = (int32_t)((r >> 8) % (uint32_t)V);
        mk[t] = t >= 8;
    }
    compare_modes(m, 0x7f, tk, mk, T, false);
    model_free(m);
}

/* The saving computed from the shapes (see the top of the file). */
static void check_saving(loft_model *m, int32_t T, int32_t rank, uint32_t kinds, double min_factor)
{
    const model_hparams *hp = model_get_hparams(m);
    lora_set s;
    CHECK(make_set(m, &s, kinds, rank));
    size_t bytes[2];
    for (int k = 0; k < 2; k++) {
        trainer_config cfg = {.max_tokens = T, .n_threads = 2, .checkpoint_activations = k == 1};
        loft_status st;
        trainer *tr = NULL;
        CHECK(trainer_init(&tr, m, &s, &cfg, &st) == LOFT_OK);
        bytes[k] = trainer_activation_bytes(tr);
        CHECKF(bytes[k] == trainer_activation_bytes_for(m, rank, kinds, &cfg),
               "arena %zu bytes, predicted %zu", bytes[k],
               trainer_activation_bytes_for(m, rank, kinds, &cfg));
        trainer_free(tr);
    }
    const double Td = T, C = hp->n_embd, F = hp->n_ff, H = hp->n_head;
    const double qd = (double)hp->n_head * hp->head_dim, kd = (double)hp->n_head_kv * hp->head_dim;
    const double vd = (double)hp->n_head_kv * hp->head_dim_v;
    const double block = Td * (3 * C + 2 * qd + kd + vd + 3 * F + 2 + 7.0 * rank) + H * Td * Td;
    const double want = (hp->n_layer - 1) * block * sizeof(float);
    const double saved = (double)bytes[0] - (double)bytes[1];
    CHECKF(saved == want, "checkpointing saves %.0f bytes, expected %.0f", saved, want);
    const double factor = (double)bytes[0] / (double)bytes[1];
    CHECKF(factor >= min_factor, "arena %zu -> %zu bytes: factor %.2f < %.2f", bytes[0], bytes[1],
           factor, min_factor);
    lora_set_free(&s);
}

static void test_activation_bytes(void)
{
    loft_status st;
    loft_model *m = NULL;
    CHECK(model_load(&m, test_data_path("golden/qwen/llama.gguf"), &st) == LOFT_OK);
    check_saving(m, 16, 2, 0xff, 1.0);
    model_free(m);
    m = NULL;
    CHECKF(model_load(&m, test_model_path("smollm2-135m-instruct-q4_1.gguf"), &st) == LOFT_OK, "%s",
           st.msg);
    check_saving(m, 128, 8, 0x7f, 3.0);
    /* Without LoRA the arena still shrinks by the same blocks (rank 0). */
    trainer_config cfg = {.max_tokens = 128, .n_threads = 1};
    const size_t a = trainer_activation_bytes_for(m, 0, 0, &cfg);
    cfg.checkpoint_activations = true;
    const size_t b = trainer_activation_bytes_for(m, 0, 0, &cfg);
    CHECK(a > 3 * b && b > 0);
    cfg.max_tokens = 1;
    CHECK(trainer_activation_bytes_for(m, 8, 0x7f, &cfg) == 0);
    model_free(m);
}

/* Runs one step of `loft finetune` with extra flags into out; returns the
 * activation MiB of its start-up line (-1 on failure). */
static double finetune_once(const char *out, const char *extra)
{
    char cmd[1024], dir[160];
    char *text = NULL;
    snprintf(dir, sizeof dir, "%s.ckpt", out);
    snprintf(cmd, sizeof cmd,
             "%s finetune -m %s -f ../shared/data/biomedical_qa/train.jsonl --assistant-loss-only "
             "-c 64 -b 64 -t 2 --max-steps 1 --lora-modules all --checkpoint-save-dir %s "
             "--output-adapter %s %s 2>&1 && rm -rf %s",
             test_loft_bin(), test_model_path("smollm2-135m-instruct-q4_1.gguf"), dir, out, extra,
             dir);
    const int rc = test_run(cmd, &text);
    double mib = -1.0;
    const char *p = text ? strstr(text, "activation memory ") : NULL;
    if (rc == 0 && p) mib = strtod(p + strlen("activation memory "), NULL);
    if (rc != 0) fprintf(stderr, "%s\n%s\n", cmd, text ? text : "");
    free(text);
    return mib;
}

static bool same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa && fb;
    while (same) {
        const int ca = fgetc(fa), cb = fgetc(fb);
        same = ca == cb;
        if (ca == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

static void test_program(void)
{
    char a[96], b[96], c[96];
    snprintf(a, sizeof a, "/tmp/loft-ckpt-cli-%d-a.gguf", (int)getpid());
    snprintf(b, sizeof b, "/tmp/loft-ckpt-cli-%d-b.gguf", (int)getpid());
    snprintf(c, sizeof c, "/tmp/loft-ckpt-cli-%d-c.gguf", (int)getpid());
    const double ma = finetune_once(a, "");
    const double mb = finetune_once(b, "--checkpoint-activations --lora-dropout 0");
    const double mc = finetune_once(c, "--checkpoint-activations --lora-dropout 0.3");
    CHECKF(ma > 0 && mb > 0 && mc == mb && mb < ma, "activation MiB %.1f, %.1f, %.1f", ma, mb, mc);
    CHECK(same_file(a, b));
    CHECK(!same_file(b, c));
    remove(a);
    remove(b);
    remove(c);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"bit_identical_tiny", test_bit_identical_tiny},
        {"bit_identical_smollm2", test_bit_identical_smollm2},
        {"activation_bytes", test_activation_bytes},
        {"program", test_program},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
