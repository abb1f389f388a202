/*
 * Several sequences in one forward/backward (trainer_batch, finetune
 * --pack):
 *   - packed vs separate: 4 examples of different lengths run as one
 *     micro-batch and one by one give the same loss (within 1e-5 relative)
 *     and the same LoRA gradients up to float summation order: per tensor,
 *     |packed - separate| <= 1e-4 * max |separate| of that tensor. On the
 *     tiny random F32 llama (tests/golden/qwen/llama.gguf) in exact and
 *     kernel mode, and on SmolLM2 (models/smollm2-135m-instruct-q4_1.gguf);
 *   - finite differences through a 2-segment batch (tolerance as in
 *     test_trainer.c);
 *   - isolation: changing a token of segment 1 leaves segment 2's loss and
 *     the gradients it produces bit-identical;
 *   - train_run with pack: steps grouped into the micro-batches -ub asks
 *     for (an example longer than -ub alone), each step's loss within 1e-5
 *     relative of the unpacked run's (the same parameters before step 1,
 *     then parameters that differ by summation order only), and exact
 *     resume after a stop;
 *   - bad -ub values are refused with one line, by the library and by
 *     `loft finetune`.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/model.h"
#include "test.h"
#include "train/lora.h"
#include "train/train.h"
#include "train/trainer.h"

#define MAX_SEG 8

/* Examples packed back to back: tokens, mask, segment lengths. */
typedef struct batch {
    int32_t tok[512];
    uint8_t mask[512];
    int32_t len[MAX_SEG];
    int32_t n_seg, T;
} batch;

static uint32_t lcg(uint32_t *r)
{
    *r = *r * 1664525u + 1013904223u;
    return *r >> 8;
}

/* Segments of the given lengths with tokens below vocab and about 3 in 4
 * tokens trained (never the first of a segment, as the dataset makes it). */
static void make_batch(batch *b, const int32_t *lens, int32_t n, int32_t vocab, uint32_t seed)
{
    memset(b, 0, sizeof *b);
    uint32_t r = seed;
    for (int32_t s = 0; s < n; s++) {
        for (int32_t k = 0; k < lens[s]; k++) {
            b->tok[b->T + k] = (int32_t)(lcg(&r) % (uint32_t)vocab);
            b->mask[b->T + k] = k > 0 && lcg(&r) % 4 != 0;
        }
        b->len[b->n_seg++] = lens[s];
        b->T += lens[s];
    }
}

/* A LoRA set on every block module (and the output when it is not tied)
 * with random A and B, so that every gradient is non-zero. */
static bool make_lora(lora_set *s, const loft_model *m, int32_t rank, uint32_t seed)
{
    loft_status st;
    lora_dims dims;
    trainer_lora_dims(m, &dims);
    const uint32_t mods = model_get_hparams(m)->tied_output ? 0x7f : 0xff;
    if (lora_set_init(s, &dims, mods, rank, 2.0f * (float)rank, &st) != LOFT_OK) return false;
    lora_set_init_peft(s, seed);
    uint32_t r = seed;
    for (size_t i = 0; i < s->n_mods; i++)
        for (int64_t j = 0; j < s->mods[i].n_out * rank; j++)
            s->mods[i].B[j] = ((float)(lcg(&r) % 65536u) / 65536.0f - 0.5f) * 0.05f;
    return true;
}

/* Packed vs one call per segment on model file path. */
static void packed_vs_separate(const char *path, bool exact, int threads, const int32_t *lens,
                               int32_t n_seg)
{
    loft_status st;
    loft_model *m = NULL;
    CHECKF(model_load(&m, path, &st) == LOFT_OK, "%s", st.msg);
    lora_set s;
    CHECK(make_lora(&s, m, 4, 5));
    batch b;
    make_batch(&b, lens, n_seg, model_get_hparams(m)->n_vocab, 77);
    int32_t longest = 0;
    for (int32_t i = 0; i < n_seg; i++)
        longest = lens[i] > longest ? lens[i] : longest;
    trainer_config cfg = {
        .max_tokens = b.T, .max_segment = longest, .n_threads = threads, .exact_matmul = exact};
    trainer *tr = NULL;
    CHECKF(trainer_init(&tr, m, &s, &cfg, &st) == LOFT_OK, "%s", st.msg);

    /* separate: gradients accumulate over the calls, as train_run does */
    lora_set_zero_grads(&s);
    double l_sep = 0.0;
    int32_t n_sep = 0;
    for (int32_t i = 0, t = 0; i < n_seg; t += lens[i], i++) {
        double l;
        int32_t n;
        CHECKF(trainer_sequence(tr, b.tok + t, b.mask + t, lens[i], true, 0.1f, &l, &n, &st) ==
                   LOFT_OK,
               "%s", st.msg);
        l_sep += l;
        n_sep += n;
    }
    float *g_sep = malloc(s.n_params * sizeof(float));
    CHECK(g_sep);
    memcpy(g_sep, s.grads, s.n_params * sizeof(float));

    lora_set_zero_grads(&s);
    double l_pack;
    int32_t n_pack;
    CHECKF(trainer_batch(tr, b.tok, b.mask, b.len, b.n_seg, true, 0.1f, &l_pack, &n_pack, &st) ==
               LOFT_OK,
           "%s", st.msg);
    CHECK(n_pack == n_sep && n_pack > 0);
    CHECKF(isfinite(l_pack) && fabs(l_pack - l_sep) <= 1e-5 * fabs(l_sep),
           "loss packed %.9g separate %.9g", l_pack, l_sep);
    double worst = 0.0;
    for (size_t mi = 0; mi < s.n_mods; mi++) {
        const lora_module *md = &s.mods[mi];
        const float *gs[2] = {md->dA, md->dB};
        const int64_t cnt[2] = {md->n_in * s.rank, md->n_out * s.rank};
        for (int w = 0; w < 2; w++) {
            const size_t off = (size_t)(gs[w] - s.grads);
            double gmax = 0.0, dmax = 0.0;
            for (int64_t j = 0; j < cnt[w]; j++) {
                gmax = fmax(gmax, fabs(g_sep[off + (size_t)j]));
                dmax = fmax(dmax, fabs((double)gs[w][j] - g_sep[off + (size_t)j]));
            }
            CHECKF(gmax > 0 && dmax <= 1e-4 * gmax,
                   "%s blk %d d%s: max |packed - separate| %.3g of max %.3g",
                   lora_kind_tensor_name(md->kind), md->layer, w ? "B" : "A", dmax, gmax);
            worst = fmax(worst, dmax / gmax);
        }
    }
    printf("  %d segments, %d tokens: loss rel diff %.2g, worst gradient diff %.2g of max\n", n_seg,
           b.T, fabs(l_pack - l_sep) / fabs(l_sep), worst);
    free(g_sep);
    trainer_free(tr);
    lora_set_free(&s);
    model_free(m);
}

static const int32_t tiny_lens[4] = {9, 3, 14, 6};

static void test_tiny_exact(void)
{
    packed_vs_separate(test_data_path("golden/qwen/llama.gguf"), true, 1, tiny_lens, 4);
}

static void test_tiny_kernels_3threads(void)
{
    packed_vs_separate(test_data_path("golden/qwen/llama.gguf"), false, 3, tiny_lens, 4);
}

static void test_smollm2(void)
{
    static const int32_t lens[4] = {41, 17, 64, 29};
    packed_vs_separate(test_model_path("smollm2-135m-instruct-q4_1.gguf"), false, 2, lens, 4);
}

/* ---- finite differences through two segments --------------------------- */

static double batch_loss(trainer *tr, const batch *b)
{
    double l = 0;
    int32_t n = 0;
    loft_status st;
    if (trainer_batch(tr, b->tok, b->mask, b->len, b->n_seg, false, 1.0f, &l, &n, &st) != LOFT_OK)
        return NAN;
    return l;
}

static void test_grad_two_segments(void)
{
    loft_status st;
    loft_model *m = NULL;
    CHECK(model_load(&m, test_data_path("golden/qwen/llama.gguf"), &st) == LOFT_OK);
    lora_set s;
    CHECK(make_lora(&s, m, 2, 11));
    static const int32_t lens[2] = {7, 6};
    batch b;
    make_batch(&b, lens, 2, 256, 3);
    trainer_config cfg = {.max_tokens = 16, .max_segment = 8, .n_threads = 2, .exact_matmul = true};
    trainer *tr = NULL;
    CHECKF(trainer_init(&tr, m, &s, &cfg, &st) == LOFT_OK, "%s", st.msg);
    lora_set_zero_grads(&s);
    double l;
    int32_t n;
    CHECK(trainer_batch(tr, b.tok, b.mask, b.len, 2, true, 1.0f, &l, &n, &st) == LOFT_OK);
    CHECK(isfinite(l) && l > 0 && n > 4);
    double gmax = 0;
    for (size_t i = 0; i < s.n_params; i++)
        gmax = fmax(gmax, fabs(s.grads[i]));
    CHECK(gmax > 0);
    int checked = 0;
    for (size_t mi = 0; mi < s.n_mods; mi++) {
        lora_module *md = &s.mods[mi];
        float *ps[2] = {md->A, md->B};
        float *gs[2] = {md->dA, md->dB};
        for (int w = 0; w < 2; w++)
            for (int j = 0; j < 3; j++) {
                float *p = ps[w] + j * 7;
                const float keep = *p, h = 1e-2f;
                *p = keep + h;
                const double lp = batch_loss(tr, &b);
                *p = keep - h;
                const double lm = batch_loss(tr, &b);
                *p = keep;
                const double fd = (lp - lm) / (2.0 * h), an = gs[w][j * 7];
                CHECKF(fabs(fd - an) <= 2e-3 * (1 + fabs(an)) + 2e-3 * gmax,
                       "%s blk %d %s[%d]: fd %.6g backward %.6g", lora_kind_tensor_name(md->kind),
                       md->layer, w ? "B" : "A", j * 7, fd, an);
                checked++;
            }
    }
    CHECK(checked == (int)s.n_mods * 6);
    trainer_free(tr);
    lora_set_free(&s);
    model_free(m);
}

/* ---- no attention across a boundary -------------------------------------- */

static void test_segments_isolated(void)
{
    loft_status st;
    loft_model *m = NULL;
    CHECK(model_load(&m, test_data_path("golden/qwen/llama.gguf"), &st) == LOFT_OK);
    lora_set s;
    CHECK(make_lora(&s, m, 2, 4));
    static const int32_t lens[3] = {6, 9, 5};
    batch b;
    make_batch(&b, lens, 3, 256, 21);
    /* targets in the second segment only */
    for (int32_t t = 0; t < b.T; t++)
        if (t < 6 || t >= 15) b.mask[t] = 0;
    trainer_config cfg = {.max_tokens = 20, .max_segment = 9, .n_threads = 2, .exact_matmul = true};
    trainer *tr = NULL;
    CHECKF(trainer_init(&tr, m, &s, &cfg, &st) == LOFT_OK, "%s", st.msg);
    double l[2];
    int32_t n[2];
    float *g[2] = {malloc(s.n_params * sizeof(float)), malloc(s.n_params * sizeof(float))};
    CHECK(g[0] && g[1]);
    for (int k = 0; k < 2; k++) {
        if (k == 1) {
            b.tok[2] = (b.tok[2] + 101) % 256;  /* segment 1 */
            b.tok[17] = (b.tok[17] + 55) % 256; /* segment 3, after the targets */
        }
        lora_set_zero_grads(&s);
        CHECK(trainer_batch(tr, b.tok, b.mask, b.len, 3, true, 1.0f, &l[k], &n[k], &st) == LOFT_OK);
        memcpy(g[k], s.grads, s.n_params * sizeof(float));
    }
    CHECK(n[0] == n[1] && n[0] > 0);
    CHECKF(memcmp(&l[0], &l[1], sizeof l[0]) == 0, "segment 2 loss %.17g became %.17g", l[0], l[1]);
    CHECK(memcmp(g[0], g[1], s.n_params * sizeof(float)) == 0);
    /* a mask bit on a segment's first token is no target: nothing in its
     * segment comes before it */
    b.mask[6] = 1;
    double l1;
    int32_t n1;
    CHECK(trainer_batch(tr, b.tok, b.mask, b.len, 3, false, 1.0f, &l1, &n1, &st) == LOFT_OK);
    CHECK(n1 == n[0] && l1 == l[0]);
    /* ... and it is not blind to its own tokens */
    b.tok[10] = (b.tok[10] + 7) % 256;
    double l2;
    int32_t n2;
    CHECK(trainer_batch(tr, b.tok, b.mask, b.len, 3, false, 1.0f, &l2, &n2, &st) == LOFT_OK);
    CHECK(l2 != l[0]);
    /* segment lengths are checked */
    static const int32_t too_long[2] = {10, 4}, empty[2] = {6, 0};
    CHECK(trainer_batch(tr, b.tok, b.mask, too_long, 2, false, 1.0f, &l2, &n2, &st) ==
          LOFT_ERR_RANGE);
    CHECK(trainer_batch(tr, b.tok, b.mask, empty, 2, false, 1.0f, &l2, &n2, &st) == LOFT_ERR_RANGE);
    free(g[0]);
    free(g[1]);
    trainer_free(tr);
    lora_set_free(&s);
    model_free(m);
}

/* ---- train_run with pack ----------------------------------------------- */

/* Examples of these lengths, tokens below 256, loss from the second on. */
static void make_data(train_dataset *d, const int32_t *lens, size_t n, uint32_t seed)
{
    memset(d, 0, sizeof *d);
    d->n = n;
    d->ex = calloc(n, sizeof *d->ex);
    uint32_t r = seed;
    for (size_t i = 0; i < n; i++) {
        train_example *ex = &d->ex[i];
        ex->n = lens[i];
        ex->tokens = malloc((size_t)ex->n * sizeof *ex->tokens);
        ex->mask = malloc((size_t)ex->n);
        for (int32_t j = 0; j < ex->n; j++) {
            ex->tokens[j] = (int32_t)(lcg(&r) % 256u);
            ex->mask[j] = j >= 1;
            ex->n_loss += ex->mask[j];
        }
    }
}

#define MAX_STEPS 16
typedef struct step_log {
    int n;
    double loss[MAX_STEPS];
    int32_t seqs[MAX_STEPS], passes[MAX_STEPS];
} step_log;

static void log_step(void *ud, const train_report *r)
{
    step_log *lg = ud;
    if (r->is_eval || lg->n >= MAX_STEPS) return;
    lg->loss[lg->n] = r->loss;
    lg->seqs[lg->n] = r->n_seqs;
    lg->passes[lg->n] = r->n_ubatches;
    lg->n++;
}

static train_opts run_opts(step_log *lg)
{
    train_opts o = test_small_train_opts();
    o.n_batch = 16;
    o.n_ubatch = 8;
    o.lora_seed = 3;
    o.seed = 5;
    o.lr = 1e-3;
    o.lr_min = 0.0;
    o.sched = LR_CONSTANT;
    o.warmup_steps = 0;
    o.shuffle = false;
    o.report = log_step;
    o.report_ud = lg;
    return o;
}

static void test_run_grouping(void)
{
    loft_status st;
    loft_model *m = NULL;
    CHECK(model_load(&m, test_data_path("golden/qwen/llama.gguf"), &st) == LOFT_OK);
    static const int32_t lens[6] = {3, 4, 5, 12, 4, 3};
    train_dataset d;
    make_data(&d, lens, 6, 8);
    step_log plain = {0}, packed = {0};
    train_opts o = run_opts(&plain);
    train_result res;
    CHECKF(train_run(m, &d, NULL, &o, &res, &st) == LOFT_OK, "%s", st.msg);
    o = run_opts(&packed);
    o.pack = true;
    CHECKF(train_run(m, &d, NULL, &o, &res, &st) == LOFT_OK, "%s", st.msg);
    /* -b 16, in order: {3,4,5} {12,4} {3}; -ub 8 packs them as
     * [3+4][5] | [12 (longer than -ub, alone)][4] | [3] */
    static const int32_t seqs[3] = {3, 2, 1}, passes[3] = {2, 2, 1};
    CHECK(plain.n == 6 && packed.n == 6);
    for (int i = 0; i < 6; i++) {
        CHECK(plain.seqs[i] == seqs[i % 3] && packed.seqs[i] == seqs[i % 3]);
        CHECKF(packed.passes[i] == passes[i % 3] && plain.passes[i] == seqs[i % 3],
               "step %d: %d passes packed, %d plain", i + 1, packed.passes[i], plain.passes[i]);
        CHECK(isfinite(packed.loss[i]));
    }
    /* the same parameters before the first step: the same loss; after it
     * the parameters differ by summation order only */
    for (int i = 0; i < 6; i++)
        CHECKF(fabs(packed.loss[i] - plain.loss[i]) <= 1e-5 * fabs(plain.loss[i]),
               "step %d loss packed %.9g plain %.9g", i + 1, packed.loss[i], plain.loss[i]);
    dataset_free(&d);
    model_free(m);
}

static void test_run_resume_packed(void)
{
    loft_status st;
    loft_model *m = NULL;
    CHECK(model_load(&m, test_data_path("golden/qwen/llama.gguf"), &st) == LOFT_OK);
    static const int32_t lens[7] = {5, 9, 3, 14, 6, 4, 7};
    train_dataset d;
    make_data(&d, lens, 7, 13);
    char dir[128], full[160], part[160], cmd[300];
    snprintf(dir, sizeof dir, "/tmp/loft-pack-resume-%d", (int)getpid());
    snprintf(full, sizeof full, "%s-full.gguf", dir);
    snprintf(part, sizeof part, "%s-part.gguf", dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    test_stopper sp = {.flag = 0, .at = -1};
    step_log lg = {0};
    train_opts o = run_opts(&lg);
    o.pack = true;
    o.n_batch = 24;
    o.n_ubatch = 12;
    o.shuffle = true;
    o.n_epochs = 3;
    o.output_adapter = full;
    o.report = test_stop_at;
    o.report_ud = &sp;
    o.stop = &sp.flag;
    train_result res;
    CHECKF(train_run(m, &d, NULL, &o, &res, &st) == LOFT_OK, "%s", st.msg);
    const int64_t total = res.steps;
    CHECK(total >= 6);
    sp.at = total / 2;
    o.output_adapter = part;
    o.ckpt_dir = dir;
    CHECK(train_run(m, &d, NULL, &o, &res, &st) == LOFT_OK && res.stopped);
    sp.at = -1;
    sp.flag = 0;
    o.auto_resume = true;
    CHECK(train_run(m, &d, NULL, &o, &res, &st) == LOFT_OK);
    CHECK(res.resumed && res.steps == total);
    FILE *a = fopen(full, "rb"), *b = fopen(part, "rb");
    CHECK(a && b);
    int ca, cb;
    do {
        ca = fgetc(a);
        cb = fgetc(b);
    } while (ca == cb && ca != EOF);
    fclose(a);
    fclose(b);
    CHECKF(ca == cb, "packed run resumed at step %lld ends with a different adapter",
           (long long)total / 2);
    CHECK(system(cmd) == 0);
    unlink(full);
    unlink(part);
    dataset_free(&d);
    model_free(m);
}

/* ---- bad -ub ------------------------------------------------------------ */

static void test_bad_ubatch(void)
{
    loft_status st;
    step_log lg = {0};
    train_opts o = run_opts(&lg);
    o.pack = true;
    const int32_t bad[3] = {-1, 17, 1 << 20};
    for (int i = 0; i < 3; i++) {
        o.n_ubatch = bad[i];
        CHECK(train_ubatch(&o, &st) == -1);
        CHECKF(strstr(st.msg, "-ub") != NULL, "message: %s", st.msg);
    }
    o.n_ubatch = 0;
    CHECK(train_ubatch(&o, &st) == 16);
    o.n_batch = 4096;
    CHECK(train_ubatch(&o, &st) == TRAIN_DEFAULT_UBATCH);
    o.n_ubatch = 4096;
    CHECK(train_ubatch(&o, &st) == 4096);

    /* The program refuses before it loads anything: one line on stderr. */
    static const char *args[4] = {"-ub 0", "-ub x12", "-ub -3", "-b 64 -ub 65"};
    for (int i = 0; i < 4; i++) {
        char cmd[512], *out = NULL;
        snprintf(cmd, sizeof cmd, "%s finetune -m /nonexistent.gguf -f /nonexistent.jsonl %s 2>&1",
                 test_loft_bin(), args[i]);
        const int rc = test_run(cmd, &out);
        CHECK(out);
        const char *nl = strchr(out, '\n');
        CHECKF(rc != 0 && strstr(out, "-ub") && nl && nl[1] == '\0', "%s: exit %d, said: %s",
               args[i], rc, out);
        free(out);
    }
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"tiny_exact", test_tiny_exact},
        {"tiny_kernels_3threads", test_tiny_kernels_3threads},
        {"smollm2", test_smollm2},
        {"grad_two_segments", test_grad_two_segments},
        {"segments_isolated", test_segments_isolated},
        {"run_grouping", test_run_grouping},
        {"run_resume_packed", test_run_resume_packed},
        {"bad_ubatch", test_bad_ubatch},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
