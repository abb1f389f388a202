/*
 * loft's LoRA training against PyTorch + PEFT on the real SmolLM2-135M
 * (models/smollm2-135m-instruct-q4_1.gguf; fixtures from
 * scripts/gen-lora-smollm2-fixtures.py in tests/golden/lora/smollm2/):
 * transformers loads the same GGUF (dequantized to F32), PEFT puts LoRA rank
 * 2, alpha 4 on the 7 modules of the published command, with the same
 * initialisation (imported from PEFT: init.gguf) and the same batch (two
 * biomedical records, loss after "A:").
 *
 * loft runs its F32-activation reference path (trainer exact_matmul: weight
 * rows dequantized, dotted in F32), the arithmetic of the dequantized
 * PyTorch model; the default 8-bit activation path is llama.cpp's numerics
 * and is not what PyTorch computes.
 *   - the mean masked cross-entropy equals PEFT's within 1e-3 relative;
 *   - every LoRA gradient tensor (A and B of each of the 210 modules) has
 *     cosine >= 0.999 with PEFT's (stored normalised, in F16);
 *   - 20 AdamW steps from B = 0 (lr 1e-3, clipping, weight decay, the whole
 *     batch each step) give a loss curve within 2% of PEFT's at every step.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "eval/metrics.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "quant/quant.h"
#include "test.h"
#include "train/adapter.h"
#include "train/train.h"
#include "train/trainer.h"

#define N_STEPS 20
#define MODULES ((1u << LORA_OUTPUT) - 1u)

typedef struct fixture {
    train_dataset data;
    int32_t rank, max_len;
    float alpha;
    double loss;
    double curve[N_STEPS];
} fixture;

static bool fixture_load(fixture *fx)
{
    memset(fx, 0, sizeof *fx);
    size_t len;
    char *text = test_read_file(test_data_path("golden/lora/smollm2/fixture.json"), &len);
    if (!text) return false;
    loft_status st;
    json_doc *doc = NULL;
    bool ok = json_parse(&doc, text, len, "fixture.json", &st) == LOFT_OK;
    free(text);
    if (!ok) return false;
    const json_value *root = json_doc_root(doc);
    const json_value *toks = json_get(root, "tokens"), *masks = json_get(root, "masks");
    const json_value *loss = json_get(root, "loss"), *curve = json_get(root, "curve");
    const json_value *rank = json_get(root, "rank"), *alpha = json_get(root, "alpha");
    ok = toks && masks && loss && curve && rank && alpha && toks->n == masks->n &&
         curve->n == N_STEPS;
    if (ok) {
        fx->loss = loss->number;
        fx->rank = (int32_t)rank->number;
        fx->alpha = (float)alpha->number;
        for (int i = 0; i < N_STEPS; i++)
            fx->curve[i] = curve->items[i].number;
        fx->data.ex = calloc(toks->n, sizeof *fx->data.ex);
        ok = fx->data.ex != NULL;
    }
    for (size_t i = 0; ok && i < toks->n; i++) {
        train_example *ex = &fx->data.ex[i];
        const json_value *t = &toks->items[i], *m = &masks->items[i];
        fx->data.n++;
        ok = t->n == m->n && t->n >= 2;
        ex->tokens = malloc(t->n * sizeof *ex->tokens);
        ex->mask = malloc(t->n);
        ok = ok && ex->tokens && ex->mask;
        for (size_t j = 0; ok && j < t->n; j++) {
            ex->tokens[j] = (int32_t)t->items[j].number;
            ex->mask[j] = (uint8_t)m->items[j].number;
            ex->n_loss += ex->mask[j] && j > 0;
        }
        if (!ok) break;
        ex->n = (int32_t)t->n;
        if (ex->n > fx->max_len) fx->max_len = ex->n;
        fx->data.n_tokens += ex->n;
        fx->data.n_loss_tokens += ex->n_loss;
    }
    json_doc_free(doc);
    return ok;
}

/* Reads an F16 adapter of the fixture (llama.cpp's names and layout) into
 * a set made for dims; every module of the 7 kinds must be present. */
static bool load_f16_adapter(lora_set *s, const char *path, const lora_dims *dims, int32_t rank,
                             float alpha)
{
    loft_status st;
    if (lora_set_init(s, dims, MODULES, rank, alpha, &st) != LOFT_OK) return false;
    gguf_file *g = NULL;
    if (gguf_open(&g, path, &st) != LOFT_OK) {
        fprintf(stderr, "  %s\n", st.msg);
        lora_set_free(s);
        return false;
    }
    bool ok = true;
    char name[128];
    for (size_t i = 0; ok && i < s->n_mods; i++) {
        lora_module *m = &s->mods[i];
        for (int b = 0; ok && b < 2; b++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight.lora_%c", m->layer,
                     lora_kind_tensor_name(m->kind), b ? 'b' : 'a');
            const gguf_tensor_info *ti = gguf_find_tensor(g, name);
            const int64_t ne0 = b ? rank : m->n_in, ne1 = b ? m->n_out : rank;
            ok = ti && ti->type == LOFT_TYPE_F16 && ti->ne[0] == ne0 && ti->ne[1] == ne1 &&
                 loft_dequantize_row(LOFT_TYPE_F16, ti->data, b ? m->B : m->A, ne0 * ne1);
            if (!ok) fprintf(stderr, "  %s: tensor %s missing or of the wrong shape\n", path, name);
        }
    }
    gguf_close(g);
    if (!ok) lora_set_free(s);
    return ok;
}

static void test_loss_and_grads(void)
{
    fixture fx;
    CHECK(fixture_load(&fx));
    loft_status st;
    loft_model *m = NULL;
    CHECKF(model_load(&m, test_model_path("smollm2-135m-instruct-q4_1.gguf"), &st) == LOFT_OK,
           "%s", st.msg);
    lora_dims dims;
    trainer_lora_dims(m, &dims);
    lora_set s, ref;
    CHECK(load_f16_adapter(&s, test_data_path("golden/lora/smollm2/init.gguf"), &dims, fx.rank,
                           fx.alpha));
    CHECK(load_f16_adapter(&ref, test_data_path("golden/lora/smollm2/grads.gguf"), &dims, fx.rank,
                           fx.alpha));
    CHECK(s.n_mods == 7 * 30 && s.rank == 2 && s.scale == 2.0f);
    trainer_config cfg = {.max_tokens = fx.max_len, .n_threads = 2, .exact_matmul = true};
    trainer *tr = NULL;
    CHECKF(trainer_init(&tr, m, &s, &cfg, &st) == LOFT_OK, "%s", st.msg);
    lora_set_zero_grads(&s);
    double sum = 0;
    for (size_t i = 0; i < fx.data.n; i++) {
        double l;
        int32_t n;
        CHECKF(trainer_sequence(tr, fx.data.ex[i].tokens, fx.data.ex[i].mask, fx.data.ex[i].n,
                                true, (float)(1.0 / (double)fx.data.n_loss_tokens), &l, &n,
                                &st) == LOFT_OK,
               "%s", st.msg);
        sum += l;
    }
    const double loss = sum / (double)fx.data.n_loss_tokens;
    CHECKF(fabs(loss - fx.loss) <= 1e-3 * fabs(fx.loss), "loss %.6f, PEFT %.6f", loss, fx.loss);
    double worst = 1.0;
    for (size_t i = 0; i < s.n_mods; i++) {
        const lora_module *a = &s.mods[i];
        const lora_module *b = lora_set_find(&ref, a->layer, a->kind);
        CHECK(b);
        const double ca = eval_cosine(a->dA, b->A, (size_t)(a->n_in * s.rank));
        const double cb = eval_cosine(a->dB, b->B, (size_t)(a->n_out * s.rank));
        CHECKF(ca >= 0.999 && cb >= 0.999, "%s layer %d: cosine dA %.6f dB %.6f",
               lora_kind_tensor_name(a->kind), a->layer, ca, cb);
        worst = fmin(worst, fmin(ca, cb));
    }
    printf("  loss %.6f vs PEFT %.6f; worst gradient cosine %.6f over %zu modules\n", loss,
           fx.loss, worst, s.n_mods);
    trainer_free(tr);
    lora_set_free(&s);
    lora_set_free(&ref);
    model_free(m);
    dataset_free(&fx.data);
}

typedef struct curve_rec {
    double loss[N_STEPS];
    int n;
} curve_rec;

static void on_report(void *ud, const train_report *r)
{
    curve_rec *c = ud;
    if (!r->is_eval && c->n < N_STEPS) c->loss[c->n++] = r->loss;
}

static void test_twenty_steps(void)
{
    fixture fx;
    CHECK(fixture_load(&fx));
    loft_status st;
    loft_model *m = NULL;
    CHECKF(model_load(&m, test_model_path("smollm2-135m-instruct-q4_1.gguf"), &st) == LOFT_OK,
           "%s", st.msg);
    lora_dims dims;
    trainer_lora_dims(m, &dims);
    /* PEFT's start: init.gguf's A, B = 0, as an F32 adapter for --lora. */
    lora_set s;
    CHECK(load_f16_adapter(&s, test_data_path("golden/lora/smollm2/init.gguf"), &dims, fx.rank,
                           fx.alpha));
    for (size_t i = 0; i < s.n_mods; i++)
        memset(s.mods[i].B, 0, (size_t)s.mods[i].n_out * (size_t)s.rank * sizeof(float));
    char init_path[96];
    snprintf(init_path, sizeof init_path, "/tmp/loft-peft-smollm2-b0-%d.gguf", (int)getpid());
    const loft_code saved = adapter_save(&s, "llama", init_path, &st);
    lora_set_free(&s);
    CHECKF(saved == LOFT_OK, "%s", st.msg);
    curve_rec rec = {.n = 0};
    train_opts o = {.n_ctx = fx.max_len,
                    .n_batch = 100000,
                    .n_threads = 2,
                    .rank = fx.rank,
                    .alpha = fx.alpha,
                    .modules = MODULES,
                    .lr = 1e-3,
                    .lr_min = 0.0,
                    .sched = LR_CONSTANT,
                    .warmup_steps = 0,
                    .n_epochs = N_STEPS,
                    .weight_decay = 0.01f,
                    .beta1 = 0.9f,
                    .beta2 = 0.999f,
                    .eps = 1e-8f,
                    .grad_clip = 1.0,
                    .shuffle = false,
                    .exact_matmul = true,
                    .init_adapter = init_path,
                    .report = on_report,
                    .report_ud = &rec};
    train_result res;
    const loft_code rc = train_run(m, &fx.data, NULL, &o, &res, &st);
    unlink(init_path);
    CHECKF(rc == LOFT_OK, "%s", st.msg);
    CHECK(res.steps == N_STEPS && rec.n == N_STEPS);
    double worst = 0;
    for (int i = 0; i < N_STEPS; i++) {
        const double rel = fabs(rec.loss[i] - fx.curve[i]) / fx.curve[i];
        CHECKF(rel <= 0.02, "step %d: loss %.5f, PEFT %.5f", i + 1, rec.loss[i], fx.curve[i]);
        worst = fmax(worst, rel);
    }
    /* and training did something */
    CHECKF(rec.loss[N_STEPS - 1] < rec.loss[0] * 0.95, "loss %.4f -> %.4f", rec.loss[0],
           rec.loss[N_STEPS - 1]);
    printf("  20 steps: %.4f -> %.4f (PEFT %.4f -> %.4f), worst relative gap %.2e\n", rec.loss[0],
           rec.loss[N_STEPS - 1], fx.curve[0], fx.curve[N_STEPS - 1], worst);
    model_free(m);
    dataset_free(&fx.data);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"smollm2_loss_and_grads_vs_peft", test_loss_and_grads},
        {"smollm2_twenty_steps_vs_peft", test_twenty_steps},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
