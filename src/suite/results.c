/*
 * results.c - the suite's results as JSON: one stamp file per finished item
 * (read back on a resumed run) and OUT/results.json, which is a `loft
 * bench -o json` document (so `loft report` merges it with other machines'
 * files) with one more member, "suite", for everything that is not a
 * bench row.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "suite/suite_impl.h"

#define ROWS_PER_INFER_ITEM 3

loft_code suite_add_row(suite_results *r, const bench_result *row, loft_status *st)
{
    bench_result *nr = realloc(r->rows, (r->n_rows + 1) * sizeof *nr);
    if (!nr) return loft_fail(st, LOFT_ERR_NOMEM, "suite: out of memory for the results");
    r->rows = nr;
    r->rows[r->n_rows++] = *row;
    return LOFT_OK;
}

void suite_results_free(suite_results *r)
{
    for (int i = 0; i < r->n_tune; i++)
        free(r->tune[i].loss);
    free(r->rows);
    r->rows = NULL;
    r->n_rows = 0;
    r->n_tune = 0;
}

/* ---- writing ---------------------------------------------------------------- */

static void kv_str(FILE *f, const char *k, const char *v, bool comma)
{
    fprintf(f, "%s\"%s\": ", comma ? ", " : "", k);
    if (v)
        json_write_str(f, v, strlen(v));
    else
        fputs("null", f);
}

static void kv_num(FILE *f, const char *k, double v)
{
    fprintf(f, ", \"%s\": ", k);
    json_write_num(f, v);
}

static void write_prep(FILE *f, const suite_prep_result *p)
{
    fputc('{', f);
    kv_str(f, "quant", p->quant, false);
    kv_str(f, "path", p->path, true);
    fprintf(f, ", \"made\": %s", p->made ? "true" : "false");
    kv_num(f, "seconds", p->seconds);
    kv_num(f, "bytes", (double)p->bytes);
    fputc('}', f);
}

static void write_tune(FILE *f, const suite_tune_result *t)
{
    fputc('{', f);
    kv_str(f, "quant", t->quant, false);
    kv_str(f, "model_file", t->model_file, true);
    kv_str(f, "adapter", t->adapter, true);
    kv_str(f, "error", t->error, true);
    kv_num(f, "steps", (double)t->steps);
    kv_num(f, "epoch_tokens", (double)t->epoch_tokens);
    kv_num(f, "n_examples", (double)t->n_examples);
    kv_num(f, "n_epochs", t->n_epochs);
    fprintf(f, ", \"complete_epochs\": %s", t->complete_epochs ? "true" : "false");
    kv_num(f, "tokens_per_s", t->tokens_per_s);
    kv_num(f, "s_per_step", t->s_per_step);
    kv_num(f, "s_per_epoch", t->s_per_epoch);
    fprintf(f, ", \"epoch_time\": \"%s\"", t->epoch_measured ? "measured" : "extrapolated");
    kv_num(f, "seconds", t->seconds);
    kv_num(f, "val_loss", t->val_loss);
    fputs(", \"loss\": [", f);
    for (size_t i = 0; i < t->n_loss; i++) {
        if (i) fputs(", ", f);
        json_write_num(f, t->loss[i]);
    }
    fputs("]}", f);
}

static void write_qual(FILE *f, const suite_quality_result *q)
{
    fputc('{', f);
    kv_str(f, "quant", q->quant, false);
    fprintf(f, ", \"tuned\": %s", q->tuned ? "true" : "false");
    kv_str(f, "error", q->error, true);
    kv_num(f, "n", (double)q->n);
    kv_num(f, "correct", (double)q->correct);
    kv_num(f, "accuracy", q->accuracy);
    kv_num(f, "cosine", q->cosine);
    kv_num(f, "jaccard", q->jaccard);
    kv_num(f, "seconds", q->seconds);
    fprintf(f, ", \"predicted\": [%lld, %lld, %lld, %lld]", (long long)q->predicted[0],
            (long long)q->predicted[1], (long long)q->predicted[2], (long long)q->predicted[3]);
    fputc('}', f);
}

/* Runs fn into a memory stream and writes the text to path atomically. */
static loft_code save_text(const char *path, char *text, size_t len, loft_status *st)
{
    loft_code rc = suite_write_atomic(path, text, len, st);
    free(text);
    return rc;
}

loft_code suite_item_save(suite_ctx *c, const suite_item *it, const char *path, loft_status *st)
{
    const suite_results *r = c->res;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return loft_fail(st, LOFT_ERR_NOMEM, "suite: out of memory");
    switch (it->stage) {
    case SUITE_PREPARE:
        if (r->n_prep) write_prep(f, &r->prep[r->n_prep - 1]);
        break;
    case SUITE_INFER: {
        size_t k = r->n_rows >= ROWS_PER_INFER_ITEM ? r->n_rows - ROWS_PER_INFER_ITEM : 0;
        bench_write(f, BENCH_FMT_JSON, &r->si, r->rows + k, r->n_rows - k);
        break;
    }
    case SUITE_TUNE:
        if (r->n_tune) write_tune(f, &r->tune[r->n_tune - 1]);
        break;
    case SUITE_QUALITY:
        if (r->n_qual) write_qual(f, &r->qual[r->n_qual - 1]);
        break;
    default:
        break;
    }
    fputc('\n', f);
    fclose(f);
    return save_text(path, text, len, st);
}

/* ---- reading ------------------------------------------------------------------ */

static double num(const json_value *o, const char *k)
{
    const json_value *v = json_get(o, k);
    return v && v->kind == JSON_NUMBER ? v->number : NAN;
}

static double num0(const json_value *o, const char *k)
{
    double v = num(o, k);
    return isnan(v) ? 0 : v;
}

static bool flag(const json_value *o, const char *k)
{
    const json_value *v = json_get(o, k);
    return v && v->kind == JSON_BOOL && v->boolean;
}

static void str(const json_value *o, const char *k, char *dst, size_t cap)
{
    const char *s = json_get_str(o, k);
    snprintf(dst, cap, "%s", s ? s : "");
}

loft_code suite_item_load(suite_ctx *c, const suite_item *it, const char *path, loft_status *st)
{
    suite_results *r = c->res;
    if (it->stage == SUITE_INFER) {
        sysinfo si;
        bench_result *rows = NULL;
        size_t n = 0;
        loft_code rc = bench_read_json(path, &si, &rows, &n, st);
        for (size_t i = 0; rc == LOFT_OK && i < n; i++)
            rc = suite_add_row(r, &rows[i], st);
        free(rows);
        return rc;
    }
    char *text = NULL;
    size_t len = 0;
    loft_code rc = suite_read_file(path, &text, &len, st);
    if (rc != LOFT_OK) return rc;
    json_doc *doc = NULL;
    rc = json_parse(&doc, text, len, path, st);
    free(text);
    if (rc != LOFT_OK) return rc;
    const json_value *o = json_doc_root(doc);
    if (o->kind != JSON_OBJECT) {
        json_doc_free(doc);
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: not a JSON object", path);
    }
    if (it->stage == SUITE_PREPARE && r->n_prep < SUITE_MAX_QUANTS) {
        suite_prep_result *p = &r->prep[r->n_prep++];
        str(o, "quant", p->quant, sizeof p->quant);
        str(o, "path", p->path, sizeof p->path);
        p->made = flag(o, "made");
        p->seconds = num0(o, "seconds");
        p->bytes = (uint64_t)num0(o, "bytes");
    } else if (it->stage == SUITE_TUNE && r->n_tune < SUITE_MAX_QUANTS) {
        suite_tune_result *t = &r->tune[r->n_tune++];
        memset(t, 0, sizeof *t);
        str(o, "quant", t->quant, sizeof t->quant);
        str(o, "model_file", t->model_file, sizeof t->model_file);
        str(o, "adapter", t->adapter, sizeof t->adapter);
        str(o, "error", t->error, sizeof t->error);
        t->steps = (int64_t)num0(o, "steps");
        t->epoch_tokens = (int64_t)num0(o, "epoch_tokens");
        t->n_examples = (int64_t)num0(o, "n_examples");
        t->n_epochs = (int32_t)num0(o, "n_epochs");
        t->complete_epochs = flag(o, "complete_epochs");
        t->tokens_per_s = num0(o, "tokens_per_s");
        t->s_per_step = num0(o, "s_per_step");
        t->s_per_epoch = num0(o, "s_per_epoch");
        const char *et = json_get_str(o, "epoch_time");
        t->epoch_measured = et && !strcmp(et, "measured");
        t->seconds = num0(o, "seconds");
        t->val_loss = num(o, "val_loss");
        const json_value *a = json_get(o, "loss");
        if (a && a->kind == JSON_ARRAY && a->n) {
            t->loss = malloc(a->n * sizeof *t->loss);
            if (!t->loss) {
                json_doc_free(doc);
                return loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory", path);
            }
            for (size_t i = 0; i < a->n; i++)
                t->loss[i] = a->items[i].kind == JSON_NUMBER ? a->items[i].number : NAN;
            t->n_loss = a->n;
        }
    } else if (it->stage == SUITE_QUALITY && r->n_qual < 2 * SUITE_MAX_QUANTS) {
        suite_quality_result *q = &r->qual[r->n_qual++];
        str(o, "quant", q->quant, sizeof q->quant);
        q->tuned = flag(o, "tuned");
        str(o, "error", q->error, sizeof q->error);
        q->n = (int64_t)num0(o, "n");
        q->correct = (int64_t)num0(o, "correct");
        q->accuracy = num0(o, "accuracy");
        q->cosine = num(o, "cosine");
        q->jaccard = num0(o, "jaccard");
        q->seconds = num0(o, "seconds");
        const json_value *a = json_get(o, "predicted");
        for (size_t k = 0; a && a->kind == JSON_ARRAY && k < a->n && k < 4; k++)
            q->predicted[k] = a->items[k].kind == JSON_NUMBER ? (int64_t)a->items[k].number : 0;
    }
    json_doc_free(doc);
    return LOFT_OK;
}

/* ---- results.json ----------------------------------------------------------------- */

loft_code suite_write_results(const suite_ctx *c, const char *path, loft_status *st)
{
    const suite_results *r = c->res;
    const suite_opts *o = c->o;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return loft_fail(st, LOFT_ERR_NOMEM, "suite: out of memory");
    bench_write(f, BENCH_FMT_JSON, &r->si, r->rows, r->n_rows);
    fflush(f);
    /* The bench document ends "]}\n": reopen it to add the suite member. */
    if (len < 3 || strcmp(text + len - 3, "]}\n") != 0) {
        fclose(f);
        free(text);
        return loft_fail(st, LOFT_ERR_FORMAT, "suite: unexpected end of the bench JSON");
    }
    fseek(f, (long)len - 2, SEEK_SET);
    fputs(",\n\"suite\": {\"version\": 1", f);
    kv_str(f, "mode", o->full ? "full" : "quick", true);
    kv_str(f, "command", o->command, true);
    kv_str(f, "default_model", r->default_name, true);
    kv_str(f, "prompt", o->prompt, true);
    fprintf(f, ", \"prompt_runs\": %d, \"n_predict\": %d, \"n_pp\": %d, \"n_tg\": %d, \"reps\": %d",
            o->prompt_runs, o->n_predict, o->n_pp, o->n_tg, o->bench_reps);
    fprintf(f, ", \"n_epochs\": %d, \"max_steps\": %lld", o->n_epochs, (long long)o->max_steps);
    kv_num(f, "lr", o->lr);
    fprintf(f, ", \"eval_limit\": %d, \"eval_n_predict\": %d", o->eval_limit, o->eval_n_predict);
    kv_str(f, "train_file", r->train_file[0] ? r->train_file : NULL, true);
    kv_str(f, "val_file", r->val_file[0] ? r->val_file : NULL, true);
    kv_str(f, "embed_model", r->embed_file[0] ? r->embed_file : NULL, true);
    kv_num(f, "n_val_records", (double)r->n_val_records);
    fputs(",\n \"prepare\": [", f);
    for (int i = 0; i < r->n_prep; i++) {
        fputs(i ? ",\n  " : "\n  ", f);
        write_prep(f, &r->prep[i]);
    }
    fputs("],\n \"finetune\": [", f);
    for (int i = 0; i < r->n_tune; i++) {
        fputs(i ? ",\n  " : "\n  ", f);
        write_tune(f, &r->tune[i]);
    }
    fputs("],\n \"quality\": [", f);
    for (int i = 0; i < r->n_qual; i++) {
        fputs(i ? ",\n  " : "\n  ", f);
        write_qual(f, &r->qual[i]);
    }
    fputs("],\n \"skipped\": {", f);
    bool first = true;
    for (int s = 0; s < SUITE_N_STAGES; s++)
        if (r->skipped[s][0]) {
            kv_str(f, suite_stage_name((suite_stage)s), r->skipped[s], !first);
            first = false;
        }
    fputs("}}}\n", f);
    fclose(f);
    return save_text(path, text, len, st);
}
