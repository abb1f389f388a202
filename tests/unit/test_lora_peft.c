/*
 * loft's LoRA training against PyTorch + PEFT (fixtures from
 * scripts/gen-lora-fixtures.py in tests/golden/lora/): the tiny random F32
 * llama of tests/golden/qwen/llama.gguf with LoRA rank 4 on every linear
 * module and the output, the same initialisation (imported from PEFT), the
 * same batch of three sequences with loss masks.
 *   - the mean masked cross-entropy equals PEFT's within 1e-3 relative;
 *   - every LoRA gradient tensor has cosine >= 0.999 with PEFT's;
 *   - 20 AdamW steps (clipping, weight decay) give a loss curve within 2%
 *     of PEFT's at every step.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "eval/metrics.h"
#include "model/model.h"
#include "test.h"
#include "train/adapter.h"
#include "train/train.h"
#include "train/trainer.h"

typedef struct fixture {
    json_doc *doc;
    train_dataset data;
    double loss;
    double curve[20];
} fixture;

static bool fixture_load(fixture *fx)
{
    memset(fx, 0, sizeof *fx);
    size_t len;
    char *text = test_read_file(test_data_path("golden/lora/fixture.json"), &len);
    if (!text) return false;
    loft_status st;
    bool ok = json_parse(&fx->doc, text, len, "fixture.json", &st) == LOFT_OK;
    free(text);
    if (!ok) return false;
    const json_value *root = json_doc_root(fx->doc);
    const json_value *toks = json_get(root, "tokens"), *masks = json_get(root, "masks");
    const json_value *loss = json_get(root, "loss"), *curve = json_get(root, "curve");
    if (!toks || !masks || !loss || !curve || toks->n != masks->n || curve->n != 20) return false;
    fx->loss = loss->number;
    for (int i = 0; i < 20; i++)
        fx->curve[i] = curve->items[i].number;
    fx->data.ex = calloc(toks->n, sizeof *fx->data.ex);
    if (!fx->data.ex) return false;
    fx->data.n = toks->n;
    for (size_t i = 0; i < toks->n; i++) {
        train_example *ex = &fx->data.ex[i];
        const json_value *t = &toks->items[i], *m = &masks->items[i];
        if (t->n != m->n) return false;
        ex->n = (int32_t)t->n;
        ex->tokens = malloc(t->n * sizeof *ex->tokens);
        ex->mask = malloc(t->n);
        if (!ex->tokens || !ex->mask) return false;
        for (size_t j = 0; j < t->n; j++) {
            ex->tokens[j] = (int32_t)t->items[j].number;
            ex->mask[j] = (uint8_t)m->items[j].number;
            ex->n_loss += ex->mask[j];
        }
        fx->data.n_tokens += ex->n;
        fx->data.n_loss_tokens += ex->n_loss;
    }
    return true;
}

static void fixture_free(fixture *fx)
{
    dataset_free(&fx->data);
    json_doc_free(fx->doc);
}

static void test_loss_and_grads(void)
{
    fixture fx;
    CHECK(fixture_load(&fx));
    loft_status st;
    loft_model *m = NULL;
    CHECKF(model_load(&m, test_data_path("golden/qwen/llama.gguf"), &st) == LOFT_OK, "%s", st.msg);
    lora_dims dims;
    trainer_lora_dims(m, &dims);
    lora_set s, ref;
    CHECKF(adapter_load(&s, test_data_path("golden/lora/init.gguf"), &dims, "llama", &st) ==
               LOFT_OK,
           "%s", st.msg);
    CHECKF(adapter_load(&ref, test_data_path("golden/lora/grads.gguf"), &dims, "llama", &st) ==
               LOFT_OK,
           "%s", st.msg);
    CHECK(s.n_mods == 15 && s.rank == 4 && s.scale == 2.0f);
    trainer_config cfg = {.max_tokens = 16, .n_threads = 2, .exact_matmul = true};
    trainer *tr = NULL;
    CHECK(trainer_init(&tr, m, &s, &cfg, &st) == LOFT_OK);
    lora_set_zero_grads(&s);
    double sum = 0;
    for (size_t i = 0; i < fx.data.n; i++) {
        double l;
        int32_t n;
        CHECK(trainer_sequence(tr, fx.data.ex[i].tokens, fx.data.ex[i].mask, fx.data.ex[i].n, true,
                               (float)(1.0 / (double)fx.data.n_loss_tokens), &l, &n,
                               &st) == LOFT_OK);
        sum += l;
    }
    const double loss = sum / (double)fx.data.n_loss_tokens;
    CHECKF(fabs(loss - fx.loss) <= 1e-3 * fabs(fx.loss), "loss %.6f, PEFT %.6f", loss, fx.loss);
    double worst = 1.0;
    for (size_t i = 0; i < s.n_mods; i++) {
        const lora_module *a = &s.mods[i];
        const lora_module *b = lora_set_find(&ref, a->layer, a->kind);
        CHECK(b);
        const double ca = eval_cosine(a->dA, b->A, (size_t)(a->n_in * 4));
        const double cb = eval_cosine(a->dB, b->B, (size_t)(a->n_out * 4));
        CHECKF(ca >= 0.999 && cb >= 0.999, "%s layer %d: cosine dA %.6f dB %.6f",
               lora_kind_tensor_name(a->kind), a->layer, ca, cb);
        worst = fmin(worst, fmin(ca, cb));
    }
    printf("  loss %.6f vs PEFT %.6f; worst gradient cosine %.6f\n", loss, fx.loss, worst);
    trainer_free(tr);
    lora_set_free(&s);
    lora_set_free(&ref);
    model_free(m);
    fixture_free(&fx);
}

typedef struct curve_rec {
    double loss[20];
    int n;
} curve_rec;

static void on_report(void *ud, const train_report *r)
{
    curve_rec *c = ud;
    if (!r->is_eval && c->n < 20) c->loss[c->n++] = r->loss;
}

static void test_twenty_steps(void)
{
    fixture fx;
    CHECK(fixture_load(&fx));
    loft_status st;
    loft_model *m = NULL;
    CHECK(model_load(&m, test_data_path("golden/qwen/llama.gguf"), &st) == LOFT_OK);
    curve_rec rec = {.n = 0};
    train_opts o = {.n_ctx = 16,
                    .n_batch = 1000,
                    .n_threads = 2,
                    .rank = 4,
                    .alpha = 8.0f,
                    .modules = 0xff,
                    .lr = 1e-3,
                    .lr_min = 0.0,
                    .sched = LR_CONSTANT,
                    .warmup_steps = 0,
                    .n_epochs = 20,
                    .weight_decay = 0.01f,
                    .beta1 = 0.9f,
                    .beta2 = 0.999f,
                    .eps = 1e-8f,
                    .grad_clip = 1.0,
                    .shuffle = false,
                    .exact_matmul = true,
                    .init_adapter = test_data_path("golden/lora/init_b0.gguf"),
                    .report = on_report,
                    .report_ud = &rec};
    char init_path[4096];
    snprintf(init_path, sizeof init_path, "%s", o.init_adapter);
    o.init_adapter = init_path;
    train_result res;
    CHECKF(train_run(m, &fx.data, NULL, &o, &res, &st) == LOFT_OK, "%s", st.msg);
    CHECK(res.steps == 20 && rec.n == 20);
    double worst = 0;
    for (int i = 0; i < 20; i++) {
        const double rel = fabs(rec.loss[i] - fx.curve[i]) / fx.curve[i];
        CHECKF(rel <= 0.02, "step %d: loss %.5f, PEFT %.5f", i + 1, rec.loss[i], fx.curve[i]);
        worst = fmax(worst, rel);
    }
    /* and training did something */
    CHECK(rec.loss[19] < rec.loss[0] * 0.9);
    printf("  20 steps: %.4f -> %.4f (PEFT %.4f -> %.4f), worst relative gap %.2e\n", rec.loss[0],
           rec.loss[19], fx.curve[0], fx.curve[19], worst);
    model_free(m);
    fixture_free(&fx);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"loss_and_grads_vs_peft", test_loss_and_grads},
        {"twenty_steps_vs_peft", test_twenty_steps},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
