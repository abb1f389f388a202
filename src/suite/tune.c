/*
 * tune.c - the fine-tuning and quality stages: train_run on each rung of
 * the ladder (resumable through its own checkpoints), then label accuracy,
 * cosine and Jaccard similarity of greedy answers on the validation split,
 * without and with the adapter.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "eval/metrics.h"
#include "eval/records.h"
#include "model/bert.h"
#include "suite/gen.h"
#include "suite/suite_impl.h"
#include "train/dataset.h"
#include "train/train.h"

#define TUNE_MODULES "attn_q,attn_k,attn_v,attn_o,ffn_gate,ffn_up,ffn_down"

static void quant_lower(const char *q, char *out, size_t cap)
{
    snprintf(out, cap, "%s", q);
    for (char *p = out; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
}

static void adapter_path(const suite_ctx *c, const char *quant, char *out, size_t cap)
{
    char ql[16];
    quant_lower(quant, ql, sizeof ql);
    snprintf(out, cap, "%s/adapters/lora-%s.gguf", c->o->out_dir, ql);
}

typedef struct tune_cb {
    suite_ctx *c;
    double t0;
    int64_t steps_here; /* steps run by this process */
    int64_t tokens_here;
    double last_tps;
} tune_cb;

static void on_step(void *ud, const train_report *r)
{
    tune_cb *b = ud;
    if (r->is_eval) {
        suite_detail(b->c, b->c->item_frac, "validation loss %.4f", r->val_loss);
        return;
    }
    b->steps_here++;
    b->tokens_here += r->n_tokens;
    b->last_tps = r->tokens_per_s;
    double frac = r->total_steps > 0 ? (double)r->step / (double)r->total_steps : 0;
    suite_detail(b->c, frac, "epoch %d/%d step %lld/%lld loss %.4f %.1f tok/s", r->epoch,
                 r->n_epochs, (long long)r->step, (long long)r->total_steps, r->loss,
                 r->tokens_per_s);
}

/* The loss of every step from the checkpoint folder's train_log.jsonl (it
 * spans resumed runs; a step run twice keeps its last value). */
static loft_code read_loss_log(const char *dir, suite_tune_result *t, loft_status *st)
{
    char path[2 * SUITE_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/train_log.jsonl", dir);
    char *text = NULL;
    size_t len;
    if (suite_read_file(path, &text, &len, st) != LOFT_OK) return LOFT_OK; /* no log: no curve */
    size_t cap = 0;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        size_t ll = nl ? (size_t)(nl - line) : strlen(line);
        json_doc *doc = NULL;
        loft_status js;
        if (ll && json_parse(&doc, line, ll, path, &js) == LOFT_OK) {
            const json_value *root = json_doc_root(doc);
            const char *type = json_get_str(root, "type");
            const json_value *step = json_get(root, "step"), *loss = json_get(root, "loss");
            if (type && !strcmp(type, "train") && step && step->kind == JSON_NUMBER &&
                step->number >= 1 && step->number < 1e7 && loss && loss->kind == JSON_NUMBER) {
                size_t k = (size_t)step->number - 1;
                if (k >= cap) {
                    size_t nc = cap ? cap : 64;
                    while (nc <= k)
                        nc *= 2;
                    double *nl2 = realloc(t->loss, nc * sizeof *nl2);
                    if (!nl2) {
                        json_doc_free(doc);
                        free(text);
                        return loft_fail(st, LOFT_ERR_NOMEM, "out of memory for the loss curve");
                    }
                    for (size_t i = cap; i < nc; i++)
                        nl2[i] = NAN;
                    t->loss = nl2;
                    cap = nc;
                }
                t->loss[k] = loss->number;
                if (k + 1 > t->n_loss) t->n_loss = k + 1;
            }
            json_doc_free(doc);
        }
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    return LOFT_OK;
}

loft_code suite_tune_item(suite_ctx *c, const suite_item *it, bool *stopped, loft_status *st)
{
    *stopped = false;
    const suite_opts *o = c->o;
    const suite_model *mdl = &c->models[it->model];
    suite_results *r = c->res;
    if (r->n_tune >= SUITE_MAX_QUANTS)
        return loft_fail(st, LOFT_ERR_RANGE, "suite: too many fine-tuning items");
    suite_tune_result *t = &r->tune[r->n_tune];
    memset(t, 0, sizeof *t);
    t->val_loss = NAN;
    snprintf(t->quant, sizeof t->quant, "%s", mdl->quant);
    snprintf(t->model_file, sizeof t->model_file, "%s", mdl->path);
    adapter_path(c, mdl->quant, t->adapter, sizeof t->adapter);
    t->n_epochs = o->n_epochs;

    char dir[SUITE_PATH_MAX + 64], ql[16];
    loft_status es = {0};
    loft_model *m = NULL;
    loft_vocab *voc = NULL;
    train_dataset train = {0}, val = {0};
    loft_chat_template tmpl;
    loft_code rc = model_load(&m, mdl->path, &es);
    if (rc == LOFT_OK) rc = vocab_load(&voc, model_gguf(m), &es);
    if (rc == LOFT_OK) {
        gguf_str text = {0, NULL};
        gguf_get_str(model_gguf(m), "tokenizer.chat_template", &text);
        rc = loft_chat_template_detect(&tmpl, text.data, (size_t)text.len,
                                       model_get_hparams(m)->arch_name, &es);
    }
    dataset_opts dop = {.n_ctx = o->n_ctx, .assistant_loss_only = true};
    if (rc == LOFT_OK) rc = dataset_load(&train, r->train_file, voc, &tmpl, &dop, &es);
    if (rc == LOFT_OK && o->full) rc = dataset_load(&val, r->val_file, voc, &tmpl, &dop, &es);
    if (rc != LOFT_OK) goto fail;
    t->epoch_tokens = train.n_tokens;
    t->n_examples = (int64_t)train.n;
    quant_lower(mdl->quant, ql, sizeof ql);
    snprintf(dir, sizeof dir, "%s/work", o->out_dir);
    {
        /* Checkpoints of this run, so an interrupted run resumes. */
        char ck[SUITE_PATH_MAX + 160];
        snprintf(ck, sizeof ck, "%s/tune-%s", dir, ql);
        uint32_t modules = 0;
        if ((rc = lora_parse_modules(TUNE_MODULES, &modules, &es)) != LOFT_OK) goto fail;
        train_opts to = {.n_ctx = o->n_ctx,
                         .n_batch = o->n_ctx,
                         .n_threads = o->train_threads,
                         .rank = 8,
                         .alpha = 16.0f,
                         .modules = modules,
                         .lora_seed = 42,
                         .seed = 42,
                         .lr = o->lr,
                         .lr_min = o->lr_min,
                         .sched = LR_COSINE,
                         .warmup_ratio = 0.1,
                         .warmup_steps = -1,
                         .n_epochs = o->n_epochs,
                         .weight_decay = 0.01f,
                         .beta1 = 0.9f,
                         .beta2 = 0.999f,
                         .eps = 1e-8f,
                         .grad_clip = 1.0,
                         .shuffle = true,
                         .save_every = o->save_every,
                         .ckpt_dir = ck,
                         .output_adapter = t->adapter,
                         .auto_resume = true,
                         .max_steps = o->max_steps,
                         .stop = o->stop};
        tune_cb cb = {.c = c, .t0 = suite_now()};
        to.report = on_step;
        to.report_ud = &cb;
        train_result tr;
        if ((rc = train_run(m, &train, val.n ? &val : NULL, &to, &tr, &es)) != LOFT_OK) goto fail;
        if (tr.stopped) {
            *stopped = true;
            goto done;
        }
        t->seconds = suite_now() - cb.t0;
        t->steps = tr.steps;
        t->val_loss = tr.last_val_loss;
        t->tokens_per_s = cb.tokens_here > 0 && t->seconds > 0 ? (double)cb.tokens_here / t->seconds
                                                               : cb.last_tps;
        t->s_per_step = cb.steps_here > 0 ? t->seconds / (double)cb.steps_here : 0;
        t->complete_epochs = o->max_steps <= 0 || tr.steps < o->max_steps;
        /* A whole run of this process times its epochs; otherwise an epoch is
         * its tokens at the measured speed. */
        t->epoch_measured = t->complete_epochs && !tr.resumed && o->n_epochs > 0;
        if (t->epoch_measured)
            t->s_per_epoch = t->seconds / o->n_epochs;
        else
            t->s_per_epoch = t->tokens_per_s > 0 ? (double)t->epoch_tokens / t->tokens_per_s : 0;
        if ((rc = read_loss_log(ck, t, st)) != LOFT_OK) {
            model_free(m);
            vocab_free(voc);
            dataset_free(&train);
            dataset_free(&val);
            return rc;
        }
    }
    goto done;
fail:
    snprintf(t->error, sizeof t->error, "%.255s", es.msg);
done:
    if (!*stopped) r->n_tune++;
    dataset_free(&train);
    dataset_free(&val);
    vocab_free(voc);
    model_free(m);
    return LOFT_OK;
}

/* ---- quality ------------------------------------------------------------------ */

static const suite_tune_result *find_tune(const suite_results *r, const char *quant)
{
    for (int i = 0; i < r->n_tune; i++)
        if (!strcmp(r->tune[i].quant, quant)) return &r->tune[i];
    return NULL;
}

size_t suite_pick_records(const eval_records *rs, const eval_labels *l, int limit, size_t *pick)
{
    if (limit <= 0 || (size_t)limit >= rs->n) {
        for (size_t i = 0; i < rs->n; i++)
            pick[i] = i;
        return rs->n;
    }
    /* A label-balanced subset: the splits are sorted by label, so the first
     * N records could all share one answer. Take the records of each label
     * in file order, round-robin over the labels. */
    size_t n = 0;
    int per[EVAL_MAX_LABELS + 1] = {0};
    for (int round = 0; n < (size_t)limit; round++) {
        size_t before = n;
        for (size_t i = 0; i < rs->n && n < (size_t)limit; i++) {
            const char *lab = rs->r[i].label ? rs->r[i].label : "";
            int k = eval_label_of(l, lab, strlen(lab));
            int slot = k < 0 ? EVAL_MAX_LABELS : k;
            bool taken = false;
            for (size_t j = 0; j < n; j++)
                taken = taken || pick[j] == i;
            if (taken || per[slot] > round) continue;
            per[slot]++;
            pick[n++] = i;
        }
        if (n == before) break;
    }
    return n;
}

loft_code suite_quality_item(suite_ctx *c, const suite_item *it, bool *stopped, loft_status *st)
{
    (void)st;
    *stopped = false;
    const suite_opts *o = c->o;
    const suite_model *mdl = &c->models[it->model];
    suite_results *r = c->res;
    if (r->n_qual >= 2 * SUITE_MAX_QUANTS)
        return loft_fail(st, LOFT_ERR_RANGE, "suite: too many quality items");
    suite_quality_result *q = &r->qual[r->n_qual];
    memset(q, 0, sizeof *q);
    snprintf(q->quant, sizeof q->quant, "%s", mdl->quant);
    q->tuned = it->tuned;
    q->cosine = NAN;
    double t0 = suite_now();
    loft_status es = {0};
    const char *adapter = NULL;
    if (it->tuned) {
        const suite_tune_result *t = find_tune(r, mdl->quant);
        if (!t || t->error[0]) {
            snprintf(q->error, sizeof q->error, "no adapter: fine-tuning %s failed", mdl->quant);
            r->n_qual++;
            return LOFT_OK;
        }
        adapter = t->adapter;
    }
    eval_records recs = {0};
    eval_fields fields;
    eval_fields_default(&fields);
    eval_labels labels;
    eval_labels_default(&labels);
    suite_gen gen;
    bool gen_open = false;
    bert_model *emb = NULL;
    float *va = NULL;
    int32_t C = 0;
    loft_code rc = eval_records_load(&recs, r->val_file, &fields,
                                     EVAL_NEED_QUESTION | EVAL_NEED_ANSWER | EVAL_NEED_LABEL, &es);
    if (rc == LOFT_OK) r->n_val_records = (int64_t)recs.n;
    if (rc == LOFT_OK) rc = suite_gen_open(&gen, mdl->path, o->train_threads, 512, adapter, &es);
    gen_open = rc == LOFT_OK;
    if (rc == LOFT_OK && r->embed_file[0]) {
        rc = bert_load(&emb, r->embed_file, &es);
        if (rc == LOFT_OK) {
            C = bert_get_hparams(emb)->n_embd;
            if (!(va = malloc(2 * (size_t)C * sizeof *va)))
                rc = loft_fail(&es, LOFT_ERR_NOMEM, "out of memory for the embeddings");
        }
    }
    size_t n = 0, *pick = NULL;
    if (rc == LOFT_OK && !(pick = malloc((recs.n ? recs.n : 1) * sizeof *pick)))
        rc = loft_fail(&es, LOFT_ERR_NOMEM, "out of memory");
    if (rc == LOFT_OK) n = suite_pick_records(&recs, &labels, o->eval_limit, pick);
    double cos_sum = 0, jac_sum = 0;
    for (size_t i = 0; rc == LOFT_OK && i < n; i++) {
        const eval_record *rec = &recs.r[pick[i]];
        suite_detail(c, (double)i / (double)n, "record %zu/%zu", i + 1, n);
        size_t qlen = strlen(rec->question) + 8;
        char *prompt = malloc(qlen);
        if (!prompt) {
            rc = loft_fail(&es, LOFT_ERR_NOMEM, "out of memory");
            break;
        }
        /* The training text's own form, as `loft eval --format qa`. */
        snprintf(prompt, qlen, "Q: %s\nA:", rec->question);
        int32_t *toks = NULL;
        size_t nt = 0;
        rc = suite_gen_prompt(&gen, prompt, false, &toks, &nt, &es);
        free(prompt);
        char *answer = NULL;
        suite_gen_timing tm;
        if (rc == LOFT_OK)
            rc = suite_gen_run(&gen, toks, nt, o->eval_n_predict, o->stop, &answer, &tm, stopped,
                               &es);
        free(toks);
        if (rc != LOFT_OK || *stopped) {
            free(answer);
            break;
        }
        int truth = eval_label_of(&labels, rec->label, strlen(rec->label));
        int pred = eval_label_of(&labels, answer, strlen(answer));
        q->n++;
        if (truth >= 0 && pred == truth) q->correct++;
        q->predicted[pred >= 0 && pred < 3 ? pred : 3]++;
        jac_sum += eval_jaccard(answer, strlen(answer), rec->answer, strlen(rec->answer));
        if (emb) {
            if (bert_embed(emb, answer, strlen(answer), va, &es) != LOFT_OK ||
                bert_embed(emb, rec->answer, strlen(rec->answer), va + C, &es) != LOFT_OK)
                rc = es.code;
            else
                cos_sum += eval_cosine(va, va + C, (size_t)C);
        }
        free(answer);
    }
    if (rc != LOFT_OK) snprintf(q->error, sizeof q->error, "%.255s", es.msg);
    if (q->n > 0) {
        q->accuracy = (double)q->correct / (double)q->n;
        q->jaccard = jac_sum / (double)q->n;
        if (emb) q->cosine = cos_sum / (double)q->n;
    }
    q->seconds = suite_now() - t0;
    if (!*stopped) r->n_qual++;
    free(pick);
    free(va);
    bert_free(emb);
    if (gen_open) suite_gen_close(&gen);
    eval_records_free(&recs);
    return LOFT_OK;
}
