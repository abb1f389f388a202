/*
 * LoRA dropout in the trainer (src/train/lora_mm.c, trainer_set_dropout):
 *   - the mask: the dropped fraction of 2^17 entries is within 0.01 of p
 *     (about 7 standard deviations of a fair draw at p = 0.3), kept entries
 *     are exactly x / (1 - p), the thread count changes no bit, and two
 *     modules or two seeds draw different masks;
 *   - p = 0 gives loss and gradients bit-identical to never arming dropout;
 *   - with p = 0.3 and a fixed seed (the same mask in every evaluation) the
 *     backward matches finite differences of the loss on the tiny F32
 *     llama, with test_trainer.c's step and tolerance;
 *   - the same seed gives the same loss twice, another seed another loss,
 *     and an armed call does not leak into the next one;
 *   - validation never drops: a train_run at lr 0 ends with the same
 *     validation loss at p = 0 and p = 0.3 while its training loss differs;
 *   - exact resume holds with dropout (and checkpointing): a run stopped at
 *     a random step and resumed ends with a byte-identical adapter;
 *   - rates outside [0, 1) are refused by the trainer, train_run and
 *     `loft finetune`.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/threadpool.h"
#include "model/model.h"
#include "test.h"
#include "train/adapter.h"
#include "train/dataset.h"
#include "train/lora.h"
#include "train/lora_mm.h"
#include "train/train.h"
#include "train/trainer.h"

static const int32_t toks[12] = {1, 17, 42, 99, 200, 5, 7, 250, 128, 64, 32, 16};
static const uint8_t mask[12] = {0, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1};

static void test_mask_fraction(void)
{
    const int64_t T = 128, n = 1024;
    float *x = malloc((size_t)(T * n) * sizeof(float));
    float *y = malloc((size_t)(T * n) * sizeof(float));
    float *z = malloc((size_t)(T * n) * sizeof(float));
    CHECK(x && y && z);
    for (int64_t i = 0; i < T * n; i++)
        x[i] = 1.0f + (float)(i % 7);
    const float p = 0.3f;
    lora_dropout d, e;
    lora_dropout_init(&d, p, 1234, 3, LORA_FFN_UP);
    lora_dropout_apply(NULL, y, x, T, n, &d);
    int64_t dropped = 0, wrong = 0;
    const float s = (float)(1.0 / (1.0 - (double)p));
    for (int64_t t = 0; t < T; t++)
        for (int64_t c = 0; c < n; c++) {
            const int64_t i = t * n + c;
            const bool keep = lora_dropout_keeps(&d, t, c) != 0;
            dropped += !keep;
            if (keep ? y[i] != s * x[i] : y[i] != 0.0f) wrong++;
        }
    const double frac = (double)dropped / (double)(T * n);
    CHECKF(fabs(frac - p) <= 0.01, "dropped fraction %.4f for p %.2f", frac, (double)p);
    CHECK(wrong == 0);
    /* The pool's split of rows changes nothing; in place is the same. */
    threadpool *pool = NULL;
    loft_status st;
    CHECK(threadpool_init(&pool, 3, &st) == LOFT_OK);
    lora_dropout_apply(pool, z, x, T, n, &d);
    CHECK(memcmp(y, z, (size_t)(T * n) * sizeof(float)) == 0);
    memcpy(z, x, (size_t)(T * n) * sizeof(float));
    lora_dropout_apply(pool, z, z, T, n, &d);
    CHECK(memcmp(y, z, (size_t)(T * n) * sizeof(float)) == 0);
    /* Another module, or another seed, draws another mask. */
    lora_dropout_init(&e, p, 1234, 3, LORA_FFN_GATE);
    lora_dropout_apply(pool, z, x, T, n, &e);
    CHECK(memcmp(y, z, (size_t)(T * n) * sizeof(float)) != 0);
    lora_dropout_init(&e, p, 1235, 3, LORA_FFN_UP);
    lora_dropout_apply(pool, z, x, T, n, &e);
    CHECK(memcmp(y, z, (size_t)(T * n) * sizeof(float)) != 0);
    /* p = 0 keeps everything unscaled. */
    lora_dropout_init(&e, 0.0f, 1234, 3, LORA_FFN_UP);
    lora_dropout_apply(pool, z, x, T, n, &e);
    CHECK(memcmp(x, z, (size_t)(T * n) * sizeof(float)) == 0);
    threadpool_free(pool);
    free(x);
    free(y);
    free(z);
}

/* The tiny llama with LoRA on everything, B random too (B = 0 would make
 * dA vanish). */
typedef struct fixture {
    loft_model *m;
    lora_set s;
    trainer *tr;
} fixture;

static bool fixture_open(fixture *f, int threads, bool exact, bool ckpt)
{
    loft_status st;
    memset(f, 0, sizeof *f);
    if (model_load(&f->m, test_data_path("golden/qwen/llama.gguf"), &st) != LOFT_OK) return false;
    lora_dims dims;
    trainer_lora_dims(f->m, &dims);
    if (lora_set_init(&f->s, &dims, 0xff, 2, 4.0f, &st) != LOFT_OK) return false;
    lora_set_init_peft(&f->s, 7);
    uint32_t r = 99;
    for (size_t i = 0; i < f->s.n_mods; i++)
        for (int64_t j = 0; j < f->s.mods[i].n_out * 2; j++) {
            r = r * 1664525u + 1013904223u;
            f->s.mods[i].B[j] = ((float)(r >> 8) / 16777216.0f - 0.5f) * 0.2f;
        }
    trainer_config cfg = {.max_tokens = 16,
                          .n_threads = threads,
                          .exact_matmul = exact,
                          .checkpoint_activations = ckpt};
    return trainer_init(&f->tr, f->m, &f->s, &cfg, &st) == LOFT_OK;
}

static void fixture_close(fixture *f)
{
    trainer_free(f->tr);
    lora_set_free(&f->s);
    model_free(f->m);
}

/* Loss (and, when backward, gradients from zero) of the fixed sequence,
 * with dropout p under seed armed first (p < 0: not armed at all). */
static double run_seq(fixture *f, float p, uint64_t seed, bool backward)
{
    loft_status st;
    if (p >= 0.0f && trainer_set_dropout(f->tr, p, seed, &st) != LOFT_OK) return NAN;
    if (backward) lora_set_zero_grads(&f->s);
    double l = 0;
    int32_t n = 0;
    if (trainer_sequence(f->tr, toks, mask, 12, backward, 1.0f, &l, &n, &st) != LOFT_OK) return NAN;
    return l;
}

static void test_p0_bit_identical(void)
{
    fixture f;
    CHECK(fixture_open(&f, 2, false, false));
    const double l0 = run_seq(&f, -1.0f, 0, true);
    float *g = malloc(f.s.n_params * sizeof(float));
    CHECK(g);
    memcpy(g, f.s.grads, f.s.n_params * sizeof(float));
    const double l1 = run_seq(&f, 0.0f, 77, true);
    CHECK(isfinite(l0) && memcmp(&l0, &l1, sizeof l0) == 0);
    CHECK(memcmp(g, f.s.grads, f.s.n_params * sizeof(float)) == 0);
    free(g);
    fixture_close(&f);
}

static void test_same_seed_same_loss(void)
{
    fixture f;
    CHECK(fixture_open(&f, 2, false, false));
    const double base = run_seq(&f, -1.0f, 0, false);
    const double a = run_seq(&f, 0.3f, 5, false), b = run_seq(&f, 0.3f, 5, false);
    const double c = run_seq(&f, 0.3f, 6, false);
    /* Not armed again: the next call runs without dropout. */
    const double after = run_seq(&f, -1.0f, 0, false);
    CHECK(isfinite(a) && memcmp(&a, &b, sizeof a) == 0);
    CHECKF(a != c && a != base, "seed 5 %.9g, seed 6 %.9g, no dropout %.9g", a, c, base);
    CHECK(memcmp(&base, &after, sizeof base) == 0);
    /* trainer_last_logits never drops. */
    const int64_t V = model_get_hparams(f.m)->n_vocab;
    float *la = malloc((size_t)V * sizeof(float)), *lb = malloc((size_t)V * sizeof(float));
    CHECK(la && lb);
    loft_status st;
    CHECK(trainer_last_logits(f.tr, toks, 10, la, &st) == LOFT_OK);
    CHECK(trainer_set_dropout(f.tr, 0.5f, 9, &st) == LOFT_OK);
    CHECK(trainer_last_logits(f.tr, toks, 10, lb, &st) == LOFT_OK);
    CHECK(memcmp(la, lb, (size_t)V * sizeof(float)) == 0);
    free(la);
    free(lb);
    fixture_close(&f);
}

/* Finite differences under one fixed mask (test_trainer.c's h and
 * tolerance: |fd - an| <= 2e-3 (1 + |an|) + 2e-3 max|an|). */
static void fd_check(int threads, bool exact, bool ckpt)
{
    fixture f;
    CHECK(fixture_open(&f, threads, exact, ckpt));
    const float p = 0.3f;
    const uint64_t seed = 4242;
    const double l = run_seq(&f, p, seed, true);
    CHECK(isfinite(l) && l > 0);
    double gmax = 0;
    for (size_t i = 0; i < f.s.n_params; i++)
        gmax = fmax(gmax, fabs(f.s.grads[i]));
    CHECK(gmax > 0);
    int checked = 0;
    for (size_t mi = 0; mi < f.s.n_mods; mi++) {
        lora_module *md = &f.s.mods[mi];
        float *ps[2] = {md->A, md->B};
        float *gs[2] = {md->dA, md->dB};
        for (int w = 0; w < 2; w++)
            for (int j = 0; j < 3; j++) {
                float *q = ps[w] + j * 5;
                const float keep = *q, h = 1e-2f;
                *q = keep + h;
                const double lp = run_seq(&f, p, seed, false);
                *q = keep - h;
                const double lm = run_seq(&f, p, seed, false);
                *q = keep;
                const double fd = (lp - lm) / (2.0 * h), an = gs[w][j * 5];
                CHECKF(fabs(fd - an) <= 2e-3 * (1 + fabs(an)) + 2e-3 * gmax,
                       "%s blk %d %s[%d]: fd %.6g backward %.6g", lora_kind_tensor_name(md->kind),
                       md->layer, w ? "B" : "A", j * 5, fd, an);
                checked++;
            }
    }
    CHECK(checked == (int)f.s.n_mods * 6);
    fixture_close(&f);
}

static void test_fd_exact_1thread(void)
{
    fd_check(1, true, false);
}
static void test_fd_kernels_2threads_ckpt(void)
{
    fd_check(2, false, true);
}

static train_opts base_opts(void)
{
    return test_small_train_opts();
}

static void test_validation_ignores_p(void)
{
    loft_status st;
    loft_model *m = NULL;
    CHECK(model_load(&m, test_data_path("golden/qwen/llama.gguf"), &st) == LOFT_OK);
    train_dataset d, v;
    test_make_train_data(&d, 5, 4);
    test_make_train_data(&v, 6, 3);
    /* Start from an adapter whose B is not zero (PEFT's B = 0 would make
     * the LoRA path, dropped or not, vanish), at lr 0 (so weight decay does
     * nothing either): the adapter stays as it is, and so does the
     * validation loss, whatever p. */
    fixture f;
    CHECK(fixture_open(&f, 1, false, false));
    char path[128];
    snprintf(path, sizeof path, "/tmp/loft-dropout-init-%d.gguf", (int)getpid());
    lora_set s7;
    lora_dims dims;
    trainer_lora_dims(m, &dims);
    CHECK(lora_set_init(&s7, &dims, 0x7f, 2, 4.0f, &st) == LOFT_OK);
    for (size_t i = 0; i < s7.n_mods; i++) {
        const lora_module *src = lora_set_find(&f.s, s7.mods[i].layer, s7.mods[i].kind);
        CHECK(src);
        memcpy(s7.mods[i].A, src->A, (size_t)(2 * src->n_in) * sizeof(float));
        memcpy(s7.mods[i].B, src->B, (size_t)(2 * src->n_out) * sizeof(float));
    }
    CHECKF(adapter_save(&s7, model_get_hparams(m)->arch_name, path, &st) == LOFT_OK, "%s", st.msg);
    lora_set_free(&s7);
    fixture_close(&f);
    train_opts o = base_opts();
    o.init_adapter = path;
    o.lr = 0.0;
    o.lr_min = 0.0;
    o.max_steps = 2;
    o.eval_steps = 1;
    train_result r0, r3;
    CHECKF(train_run(m, &d, &v, &o, &r0, &st) == LOFT_OK, "%s", st.msg);
    o.lora_dropout = 0.3f;
    CHECKF(train_run(m, &d, &v, &o, &r3, &st) == LOFT_OK, "%s", st.msg);
    CHECK(isfinite(r0.last_val_loss) && isfinite(r0.last_loss));
    CHECKF(memcmp(&r0.last_val_loss, &r3.last_val_loss, sizeof(double)) == 0,
           "validation loss %.9g at p 0, %.9g at p 0.3", r0.last_val_loss, r3.last_val_loss);
    CHECKF(r0.last_loss != r3.last_loss, "training loss %.9g at both rates", r0.last_loss);
    remove(path);
    dataset_free(&d);
    dataset_free(&v);
    model_free(m);
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

static void test_resume_with_dropout(void)
{
    loft_status st;
    loft_model *m = NULL;
    CHECK(model_load(&m, test_data_path("golden/qwen/llama.gguf"), &st) == LOFT_OK);
    train_dataset d;
    test_make_train_data(&d, 5, 4);
    char dir[128], full[160], part[160], cmd[300];
    snprintf(dir, sizeof dir, "/tmp/loft-dropout-resume-%d", (int)getpid());
    snprintf(full, sizeof full, "%s-full.gguf", dir);
    snprintf(part, sizeof part, "%s-part.gguf", dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    test_stopper sp = {.flag = 0, .at = -1};
    train_opts o = base_opts();
    o.n_epochs = 3;
    o.lora_dropout = 0.2f;
    o.checkpoint_activations = true;
    o.output_adapter = full;
    o.stop = &sp.flag;
    o.report = test_stop_at;
    o.report_ud = &sp;
    train_result res;
    CHECKF(train_run(m, &d, NULL, &o, &res, &st) == LOFT_OK, "%s", st.msg);
    const int64_t total = res.steps;
    CHECK(total > 4 && !res.stopped);
    srand((unsigned)time(NULL));
    sp.at = 1 + rand() % (int)(total - 2);
    o.output_adapter = part;
    o.ckpt_dir = dir;
    CHECK(train_run(m, &d, NULL, &o, &res, &st) == LOFT_OK);
    CHECK(res.stopped && res.steps == sp.at);
    sp.at = -1;
    sp.flag = 0;
    o.auto_resume = true;
    CHECKF(train_run(m, &d, NULL, &o, &res, &st) == LOFT_OK, "%s", st.msg);
    CHECK(res.resumed && !res.stopped && res.steps == total);
    CHECKF(same_file(full, part), "resumed adapter differs (stopped after step %lld of %lld)",
           (long long)res.resumed_step, (long long)total);
    CHECK(system(cmd) == 0);
    remove(full);
    remove(part);
    dataset_free(&d);
    model_free(m);
}

static void test_range(void)
{
    fixture f;
    CHECK(fixture_open(&f, 1, true, false));
    loft_status st;
    const float bad[4] = {-0.1f, 1.0f, 1.5f, NAN};
    for (int i = 0; i < 4; i++)
        CHECKF(trainer_set_dropout(f.tr, bad[i], 1, &st) == LOFT_ERR_RANGE, "p = %g accepted",
               (double)bad[i]);
    CHECK(strstr(st.msg, "[0, 1)") != NULL);
    fixture_close(&f);
    train_dataset d;
    test_make_train_data(&d, 5, 4);
    loft_model *m = NULL;
    CHECK(model_load(&m, test_data_path("golden/qwen/llama.gguf"), &st) == LOFT_OK);
    train_opts o = base_opts();
    o.lora_dropout = 1.0f;
    train_result res;
    CHECK(train_run(m, &d, NULL, &o, &res, &st) == LOFT_ERR_ARG);
    model_free(m);
    dataset_free(&d);
    /* The program: exit 2 and a one-line reason, before loading anything. */
    const char *vals[4] = {"1", "-0.5", "x", "0.99999999"};
    for (int i = 0; i < 4; i++) {
        char cmd[512];
        char *out = NULL;
        snprintf(cmd, sizeof cmd,
                 "%s finetune -m /nonexistent.gguf -f /nonexistent.jsonl "
                 "--lora-dropout %s 2>&1",
                 test_loft_bin(), vals[i]);
        const int rc = test_run(cmd, &out);
        CHECKF(rc == 2 && out && strstr(out, "--lora-dropout"), "--lora-dropout %s: rc %d, %s",
               vals[i], rc, out ? out : "");
        free(out);
    }
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"mask_fraction", test_mask_fraction},
        {"p0_bit_identical", test_p0_bit_identical},
        {"same_seed_same_loss", test_same_seed_same_loss},
        {"fd_exact_1thread", test_fd_exact_1thread},
        {"fd_kernels_2threads_ckpt", test_fd_kernels_2threads_ckpt},
        {"validation_ignores_p", test_validation_ignores_p},
        {"resume_with_dropout", test_resume_with_dropout},
        {"range", test_range},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
