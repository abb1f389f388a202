/*
 * Training on quantized bases: the tiny F32 llama (tests/golden/qwen/
 * llama.gguf) is rewritten with loft's quantizer as Q4_0, Q8_0, Q4_1, F16
 * and BF16, and SmolLM2 (whose 1536-wide ffn_down rows fit K-quant blocks)
 * as Q4_K_M; a short run on each lowers the training loss, through both the
 * 8-bit-activation kernels and the exact dequantizing path.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quant/quantize_model.h"
#include "model/model.h"
#include "test.h"
#include "train/train.h"

typedef struct losses {
    double first, last;
    int n;
} losses;

static void on_report(void *ud, const train_report *r)
{
    losses *l = ud;
    if (r->is_eval) return;
    if (l->n++ == 0) l->first = r->loss;
    l->last = r->loss;
}

static void make_data(train_dataset *d, int32_t vocab, int32_t len)
{
    memset(d, 0, sizeof *d);
    d->n = 2;
    d->ex = calloc(d->n, sizeof *d->ex);
    uint32_t r = 77;
    for (size_t i = 0; i < d->n; i++) {
        train_example *ex = &d->ex[i];
        ex->n = len;
        ex->tokens = malloc((size_t)len * sizeof *ex->tokens);
        ex->mask = malloc((size_t)len);
        for (int32_t j = 0; j < len; j++) {
            r = r * 1664525u + 1013904223u;
            ex->tokens[j] = (int32_t)((r >> 8) % (uint32_t)vocab);
            ex->mask[j] = j > 0;
            ex->n_loss += ex->mask[j];
        }
    }
}

/* Quantizes src to ftype (pure or mix) and trains a few steps on it. */
static bool run_type(const char *src, const char *ftype, bool pure, int32_t len, double lr,
                     bool exact, losses *out, const char **why)
{
    static char msg[1100];
    char path[128];
    snprintf(path, sizeof path, "/tmp/loft-ft-%s-%d.gguf", ftype, (int)getpid());
    quantize_params qp = {.ftype = quantize_ftype_from_name(ftype),
                          .pure = pure,
                          .allow_requantize = true,
                          .n_threads = 2};
    loft_status st;
    *why = msg;
    if (!qp.ftype) {
        snprintf(msg, sizeof msg, "no file type %s", ftype);
        return false;
    }
    if (quantize_model(src, path, &qp, NULL, &st) != LOFT_OK) {
        snprintf(msg, sizeof msg, "%s", st.msg);
        return false;
    }
    loft_model *m = NULL;
    if (model_load(&m, path, &st) != LOFT_OK) {
        snprintf(msg, sizeof msg, "%s", st.msg);
        unlink(path);
        return false;
    }
    train_dataset d;
    make_data(&d, model_get_hparams(m)->n_vocab, len);
    memset(out, 0, sizeof *out);
    train_opts o = {.n_ctx = len,
                    .n_batch = 2 * len,
                    .n_threads = 2,
                    .rank = 4,
                    .alpha = 8.0f,
                    .modules = 0x7f,
                    .lora_seed = 1,
                    .seed = 1,
                    .lr = lr,
                    .sched = LR_CONSTANT,
                    .warmup_steps = 0,
                    .n_epochs = 6,
                    .weight_decay = 0.0f,
                    .beta1 = 0.9f,
                    .beta2 = 0.999f,
                    .eps = 1e-8f,
                    .grad_clip = 1.0,
                    .shuffle = false,
                    .exact_matmul = exact,
                    .report = on_report,
                    .report_ud = out};
    train_result res;
    bool ok = train_run(m, &d, NULL, &o, &res, &st) == LOFT_OK;
    if (!ok) snprintf(msg, sizeof msg, "%s", st.msg);
    dataset_free(&d);
    model_free(m);
    unlink(path);
    return ok;
}

static void test_small_types(void)
{
    const char *types[] = {"Q4_0", "Q8_0", "Q4_1", "F16", "BF16"};
    for (int i = 0; i < 5; i++)
        for (int exact = 0; exact < 2; exact++) {
            losses l;
            const char *why = NULL;
            CHECKF(run_type(test_data_path("golden/qwen/llama.gguf"), types[i], true, 12, 1e-2,
                            exact, &l, &why),
                   "%s: %s", types[i], why);
            CHECKF(l.n == 6 && isfinite(l.last) && l.last < l.first * 0.9,
                   "%s (%s): loss %.4f -> %.4f over %d steps", types[i],
                   exact ? "exact" : "kernels", l.first, l.last, l.n);
            printf("  %-5s %-7s loss %.4f -> %.4f\n", types[i], exact ? "exact" : "kernels",
                   l.first, l.last);
        }
}

static void test_smollm2_q4_k_m(void)
{
    losses l;
    const char *why = NULL;
    CHECKF(run_type(test_model_path("smollm2-135m-instruct-q4_1.gguf"), "Q4_K_M", false, 10, 3e-3,
                    false, &l, &why),
           "Q4_K_M: %s", why);
    CHECKF(l.n == 6 && isfinite(l.last) && l.last < l.first * 0.9,
           "Q4_K_M: loss %.4f -> %.4f over %d steps", l.first, l.last, l.n);
    printf("  Q4_K_M SmolLM2 loss %.4f -> %.4f\n", l.first, l.last);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"small_types", test_small_types},
        {"smollm2_q4_k_m", test_smollm2_q4_k_m},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
