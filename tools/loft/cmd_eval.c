/*
 * cmd_eval.c - `loft eval -m MODEL -f TEST.jsonl --task qa|choice|perplexity`.
 *
 *   qa          greedy generation (-n tokens, the model's chat template, or
 *               --format qa for "Q: ...\nA:") for each record's question;
 *               label accuracy by the first word after normalisation
 *               (src/eval/metrics.h), per-class precision / recall, the
 *               confusion matrix, and the cosine (all-MiniLM-L6-v2
 *               embeddings, --embed-model) and Jaccard similarity of the
 *               answer against the reference answer;
 *   choice      each candidate answer scored by its log-likelihood after the
 *               prompt; the best is the prediction (candidates: the record's
 *               "choices", else the label names); accuracy;
 *   perplexity  a plain text file: as `loft perplexity`; a .jsonl file:
 *               perplexity of the reference answers given their prompts.
 *
 * Writes PREFIX.json (configuration with sha256 of model, adapter and test
 * file; per-record predictions and scores; totals) and PREFIX.md (the table),
 * and for qa PREFIX.answers.jsonl (one {"question", "answer"} per record, the
 * input `loft judge` takes). The table is also printed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "base/atomic_file.h"
#include "base/json.h"
#include "base/sha256.h"
#include "commands.h"
#include "eval/metrics.h"
#include "eval/perplexity.h"
#include "eval/records.h"
#include "evalgen.h"
#include "model/bert.h"
#include "session.h"

typedef enum eval_task { TASK_QA, TASK_CHOICE, TASK_PPL } eval_task;

typedef struct eval_opts {
    eval_task task;
    const char *task_name;
    const char *lora;
    const char *embed_model;
    const char *report; /* output prefix */
    const char *column; /* the model's column title */
    evalgen_format fmt;
    eval_labels labels;
    eval_fields fields;
    long limit;
} eval_opts;

typedef struct eval_row {
    char *prediction;
    int pred_label, true_label;
    double cosine, jaccard, ll_best;
    int32_t n_gen;
    double ms;
} eval_row;

static void eval_usage(FILE *f)
{
    fprintf(f, "usage: loft eval -m MODEL -f TEST.jsonl --task qa|choice|perplexity [options]\n"
               "  --task T           qa (generate and score), choice (log-likelihood of\n"
               "                     candidates), perplexity (text file or JSONL answers)\n"
               "  -n N               tokens to generate per answer (qa; default 64)\n"
               "  --format F         chat (the model's template, default) or qa (\"Q: ...\\nA:\")\n"
               "  -sys TEXT          system prompt (chat format)\n"
               "  --labels SPEC      label names and aliases [Yes,No,Uncertain,maybe=Uncertain]\n"
               "  --embed-model FILE bert model for the cosine [models/all-minilm-l6-v2.gguf];\n"
               "                     'none' skips the cosine\n"
               "  --question-field K, --answer-field K, --label-field K, --choices-field K\n"
               "  --limit N          only the first N records\n"
               "  --report PREFIX    write PREFIX.json, PREFIX.md (and PREFIX.answers.jsonl)\n"
               "                     [loft-eval-TASK]\n"
               "  --column NAME      the model's column title in the table [the model file]\n"
               "  --lora FILE        apply a LoRA adapter (llama models) for every task\n\n");
    args_print_usage(f);
}

/* Splits argv into eval's own options (into o) and the shared ones (into
 * rest, argv[0] kept). Returns 0 or 2. */
static int eval_split_args(int argc, char **argv, eval_opts *o, char **rest, int *n_rest)
{
    const char *labels = NULL, *task = NULL, *fmt = NULL;
    const evalgen_flag flags[] = {
        {"--task", &task},
        {"--lora", &o->lora},
        {"--embed-model", &o->embed_model},
        {"--report", &o->report},
        {"--column", &o->column},
        {"--format", &fmt},
        {"--labels", &labels},
        {"--question-field", &o->fields.question},
        {"--answer-field", &o->fields.answer},
        {"--label-field", &o->fields.label},
        {"--choices-field", &o->fields.choices},
    };
    int rc = evalgen_split_args("eval", argc, argv, flags, sizeof flags / sizeof flags[0],
                                &o->limit, rest, n_rest);
    if (rc) return rc;
    if (!task) {
        o->task_name = NULL;
    } else if (!strcmp(task, "qa")) {
        o->task = TASK_QA;
    } else if (!strcmp(task, "choice")) {
        o->task = TASK_CHOICE;
    } else if (!strcmp(task, "perplexity")) {
        o->task = TASK_PPL;
    } else {
        fprintf(stderr, "loft eval: --task %s is not one of qa, choice, perplexity\n", task);
        return 2;
    }
    o->task_name = task;
    if (fmt && strcmp(fmt, "chat") && strcmp(fmt, "qa")) {
        fprintf(stderr, "loft eval: --format %s is not chat or qa\n", fmt);
        return 2;
    }
    o->fmt = fmt && !strcmp(fmt, "qa") ? EVALGEN_QA : EVALGEN_CHAT;
    loft_status st;
    if (labels && eval_labels_parse(&o->labels, labels, &st)) {
        fprintf(stderr, "loft eval: %s\n", st.msg);
        return 2;
    }
    return 0;
}

static int label_index_exact(const eval_labels *l, const char *s)
{
    return s ? eval_label_of(l, s, strlen(s)) : -1;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* ---- reports ------------------------------------------------------------- */

static void json_kv_str(FILE *f, const char *key, const char *v, bool comma)
{
    fprintf(f, "    \"%s\": ", key);
    if (v)
        json_write_str(f, v, strlen(v));
    else
        fputs("null", f);
    fputs(comma ? ",\n" : "\n", f);
}

typedef struct eval_totals {
    eval_confusion conf;
    double cos_sum, jac_sum;
    int64_t n_cos;
    double ppl, nll;
    int64_t n_ppl_tokens;
} eval_totals;

static void write_table(FILE *f, const eval_opts *o, const eval_records *rs, const eval_totals *t,
                        const char *column)
{
    (void)rs;
    fprintf(f, "| Metric | %s |\n|---|---|\n", column);
    if (o->task == TASK_PPL) {
        fprintf(f, "| Perplexity | %.4f |\n| Tokens scored | %lld |\n", t->ppl,
                (long long)t->n_ppl_tokens);
        return;
    }
    fprintf(f, "| Accuracy | %.4f (%lld/%lld) |\n", eval_accuracy(&t->conf),
            (long long)t->conf.correct, (long long)t->conf.total);
    if (o->task == TASK_QA) {
        if (t->n_cos) fprintf(f, "| Cosine similarity | %.4f |\n", t->cos_sum / (double)t->n_cos);
        fprintf(f, "| Jaccard similarity | %.4f |\n",
                t->conf.total ? t->jac_sum / (double)t->conf.total : 0.0);
    }
    const eval_labels *l = &o->labels;
    fprintf(f, "\n| Label | Precision | Recall | Support |\n|---|---|---|---|\n");
    for (int k = 0; k < l->n; k++) {
        int64_t sup = 0;
        for (int p = 0; p <= l->n; p++)
            sup += t->conf.confusion[k][p];
        double p = eval_precision(&t->conf, k), r = eval_recall(&t->conf, k);
        fprintf(f, "| %s | ", l->names[k]);
        if (isnan(p))
            fputs("-", f);
        else
            fprintf(f, "%.4f", p);
        fputs(" | ", f);
        if (isnan(r))
            fputs("-", f);
        else
            fprintf(f, "%.4f", r);
        fprintf(f, " | %lld |\n", (long long)sup);
    }
    fprintf(f, "\nConfusion matrix (rows: reference, columns: prediction)\n\n| |");
    for (int k = 0; k < l->n; k++)
        fprintf(f, " %s |", l->names[k]);
    fprintf(f, " (none) |\n|---|");
    for (int k = 0; k <= l->n; k++)
        fputs("---|", f);
    fputc('\n', f);
    for (int k = 0; k < l->n; k++) {
        fprintf(f, "| %s |", l->names[k]);
        for (int p = 0; p <= l->n; p++)
            fprintf(f, " %lld |", (long long)t->conf.confusion[k][p]);
        fputc('\n', f);
    }
}

static int write_reports(const eval_opts *o, const loft_args *a, const eval_records *rs,
                         const eval_row *rows, const eval_totals *t, const char *model_sha,
                         const char *lora_sha, const char *test_sha, const char *column,
                         double seconds)
{
    /* Each file goes through a temporary, fsync and rename (atomic_file):
     * a failed write keeps the previous report and says why. */
    char final[4096];
    loft_status st;
    atomic_file af;
    snprintf(final, sizeof final, "%s.json", o->report);
    if (atomic_file_open(&af, final, &st) != LOFT_OK) {
        fprintf(stderr, "loft eval: %s\n", st.msg);
        return 1;
    }
    FILE *f = af.f;
    fprintf(f, "{\n  \"tool\": \"loft eval\",\n  \"version\": \"%s\",\n  \"config\": {\n",
            LOFT_VERSION);
    json_kv_str(f, "task", o->task_name, true);
    json_kv_str(f, "model", a->model, true);
    json_kv_str(f, "model_sha256", model_sha, true);
    json_kv_str(f, "lora", o->lora, true);
    json_kv_str(f, "lora_sha256", lora_sha, true);
    json_kv_str(f, "test_file", a->file, true);
    json_kv_str(f, "test_sha256", test_sha, true);
    json_kv_str(f, "format", o->fmt == EVALGEN_QA ? "qa" : "chat", true);
    json_kv_str(f, "system_prompt", a->system_prompt, true);
    json_kv_str(f, "embed_model", o->task == TASK_QA ? o->embed_model : NULL, true);
    json_kv_str(f, "column", column, true);
    fprintf(f, "    \"labels\": [");
    for (int k = 0; k < o->labels.n; k++) {
        if (k) fputs(", ", f);
        json_write_str(f, o->labels.names[k], strlen(o->labels.names[k]));
    }
    fprintf(f,
            "],\n    \"n_predict\": %d,\n    \"n_ctx\": %d,\n    \"n_threads\": %d,\n"
            "    \"limit\": %ld,\n    \"sampling\": \"greedy\"\n  },\n",
            a->n_predict, a->n_ctx, a->n_threads, o->limit);
    fprintf(f, "  \"totals\": {\n    \"records\": %zu,\n    \"seconds\": ", rs->n);
    json_write_num(f, seconds);
    if (o->task == TASK_PPL) {
        fprintf(f, ",\n    \"perplexity\": ");
        json_write_num(f, t->ppl);
        fprintf(f, ",\n    \"tokens_scored\": %lld\n  }\n}\n", (long long)t->n_ppl_tokens);
    } else {
        fprintf(f, ",\n    \"accuracy\": ");
        json_write_num(f, eval_accuracy(&t->conf));
        fprintf(f, ",\n    \"correct\": %lld,\n    \"cosine_mean\": ", (long long)t->conf.correct);
        json_write_num(f, t->n_cos ? t->cos_sum / (double)t->n_cos : NAN);
        fprintf(f, ",\n    \"jaccard_mean\": ");
        json_write_num(f, o->task == TASK_QA && t->conf.total ? t->jac_sum / (double)t->conf.total
                                                              : NAN);
        fprintf(f, ",\n    \"per_class\": [");
        for (int k = 0; k < o->labels.n; k++) {
            fprintf(f, "%s\n      {\"label\": ", k ? "," : "");
            json_write_str(f, o->labels.names[k], strlen(o->labels.names[k]));
            fprintf(f, ", \"precision\": ");
            json_write_num(f, eval_precision(&t->conf, k));
            fprintf(f, ", \"recall\": ");
            json_write_num(f, eval_recall(&t->conf, k));
            fputc('}', f);
        }
        fprintf(f, "\n    ],\n    \"confusion\": [");
        for (int k = 0; k < o->labels.n; k++) {
            fprintf(f, "%s[", k ? ", " : "");
            for (int p = 0; p <= o->labels.n; p++)
                fprintf(f, "%s%lld", p ? ", " : "", (long long)t->conf.confusion[k][p]);
            fputc(']', f);
        }
        fprintf(f, "],\n    \"confusion_columns\": \"labels in order, then (none)\"\n  },\n");
        fprintf(f, "  \"records\": [");
        for (size_t i = 0; i < rs->n; i++) {
            const eval_record *r = &rs->r[i];
            const eval_row *w = &rows[i];
            fprintf(f, "%s\n    {\"line\": %zu, \"question\": ", i ? "," : "", r->line);
            json_write_str(f, r->question, strlen(r->question));
            fprintf(f, ", \"reference\": ");
            if (r->answer)
                json_write_str(f, r->answer, strlen(r->answer));
            else
                fputs("null", f);
            fprintf(f, ", \"label\": ");
            if (w->true_label >= 0)
                json_write_str(f, o->labels.names[w->true_label],
                               strlen(o->labels.names[w->true_label]));
            else
                fputs("null", f);
            fprintf(f, ", \"prediction\": ");
            json_write_str(f, w->prediction ? w->prediction : "",
                           w->prediction ? strlen(w->prediction) : 0);
            fprintf(f, ", \"predicted_label\": ");
            if (w->pred_label >= 0)
                json_write_str(f, o->labels.names[w->pred_label],
                               strlen(o->labels.names[w->pred_label]));
            else
                fputs("null", f);
            fprintf(f, ", \"correct\": %s", w->pred_label == w->true_label ? "true" : "false");
            if (o->task == TASK_QA) {
                fprintf(f, ", \"cosine\": ");
                json_write_num(f, w->cosine);
                fprintf(f, ", \"jaccard\": ");
                json_write_num(f, w->jaccard);
                fprintf(f, ", \"tokens\": %d", w->n_gen);
            } else {
                fprintf(f, ", \"loglik\": ");
                json_write_num(f, w->ll_best);
            }
            fprintf(f, ", \"ms\": ");
            json_write_num(f, w->ms);
            fputc('}', f);
        }
        fprintf(f, "\n  ]\n}\n");
    }
    if (atomic_file_commit(&af, &st) != LOFT_OK) {
        fprintf(stderr, "loft eval: %s\n", st.msg);
        return 1;
    }
    snprintf(final, sizeof final, "%s.md", o->report);
    if (atomic_file_open(&af, final, &st) != LOFT_OK) {
        fprintf(stderr, "loft eval: %s\n", st.msg);
        return 1;
    }
    f = af.f;
    fprintf(f, "# loft eval: %s on %s\n\nModel `%s` (sha256 %.16s…)%s%s, %zu records, %.1f s.\n\n",
            o->task_name, base_name(a->file), base_name(a->model), model_sha,
            o->lora ? ", adapter " : "", o->lora ? base_name(o->lora) : "", rs->n, seconds);
    write_table(f, o, rs, t, column);
    if (atomic_file_commit(&af, &st) != LOFT_OK) {
        fprintf(stderr, "loft eval: %s\n", st.msg);
        return 1;
    }
    if (o->task == TASK_QA) {
        snprintf(final, sizeof final, "%s.answers.jsonl", o->report);
        if (atomic_file_open(&af, final, &st) != LOFT_OK) {
            fprintf(stderr, "loft eval: %s\n", st.msg);
            return 1;
        }
        f = af.f;
        for (size_t i = 0; i < rs->n; i++) {
            fputs("{\"question\": ", f);
            json_write_str(f, rs->r[i].question, strlen(rs->r[i].question));
            fputs(", \"answer\": ", f);
            json_write_str(f, rows[i].prediction ? rows[i].prediction : "",
                           rows[i].prediction ? strlen(rows[i].prediction) : 0);
            fputs("}\n", f);
        }
        if (atomic_file_commit(&af, &st) != LOFT_OK) {
            fprintf(stderr, "loft eval: %s\n", st.msg);
            return 1;
        }
    }
    return 0;
}

/* ---- tasks --------------------------------------------------------------- */

static int run_qa(session *s, const eval_opts *o, const eval_records *rs, eval_row *rows,
                  eval_totals *t, bert_model *emb, int32_t n_predict)
{
    const int32_t C = emb ? bert_get_hparams(emb)->n_embd : 0;
    float *va = emb ? malloc(2 * (size_t)C * sizeof *va) : NULL;
    if (emb && !va) {
        fprintf(stderr, "loft eval: out of memory\n");
        return 1;
    }
    int rc = 0;
    for (size_t i = 0; i < rs->n && !rc; i++) {
        const eval_record *r = &rs->r[i];
        eval_row *w = &rows[i];
        double t0 = session_now_ms();
        int32_t *toks = NULL;
        size_t n = 0;
        rc = evalgen_prompt(s, o->fmt, s->args->system_prompt, r->question, &toks, &n);
        if (!rc) rc = evalgen_greedy(s, toks, n, n_predict, &w->prediction, &w->n_gen);
        free(toks);
        if (rc) break;
        w->true_label = label_index_exact(&o->labels, r->label);
        w->pred_label = eval_label_of(&o->labels, w->prediction, strlen(w->prediction));
        if (w->true_label >= 0) eval_confusion_add(&t->conf, w->true_label, w->pred_label);
        w->jaccard =
            eval_jaccard(w->prediction, strlen(w->prediction), r->answer, strlen(r->answer));
        t->jac_sum += w->jaccard;
        w->cosine = NAN;
        if (emb) {
            loft_status st;
            if (bert_embed(emb, w->prediction, strlen(w->prediction), va, &st) ||
                bert_embed(emb, r->answer, strlen(r->answer), va + C, &st)) {
                fprintf(stderr, "loft eval: %s\n", st.msg);
                rc = 1;
                break;
            }
            w->cosine = eval_cosine(va, va + C, (size_t)C);
            t->cos_sum += w->cosine;
            t->n_cos++;
        }
        w->ms = session_now_ms() - t0;
        fprintf(stderr, "loft eval: [%zu/%zu] %s -> %s (%s)\n", i + 1, rs->n,
                w->true_label >= 0 ? o->labels.names[w->true_label] : "?",
                w->pred_label >= 0 ? o->labels.names[w->pred_label] : "(none)",
                w->pred_label == w->true_label ? "ok" : "wrong");
    }
    free(va);
    return rc;
}

static int run_choice(session *s, const eval_opts *o, const eval_records *rs,
                      eval_row *rows, eval_totals *t)
{
    int rc = 0;
    for (size_t i = 0; i < rs->n && !rc; i++) {
        const eval_record *r = &rs->r[i];
        eval_row *w = &rows[i];
        double t0 = session_now_ms();
        int32_t *toks = NULL;
        size_t n = 0;
        rc = evalgen_prompt(s, o->fmt, s->args->system_prompt, r->question, &toks, &n);
        size_t n_cand = r->choices ? r->n_choices : (size_t)o->labels.n;
        int best = -1;
        double best_ll = -INFINITY;
        for (size_t k = 0; !rc && k < n_cand; k++) {
            const char *cand = r->choices ? r->choices[k] : o->labels.names[k];
            char buf[1024];
            /* In the Q/A layout the answer follows "A:" after a space. */
            if (o->fmt == EVALGEN_QA) {
                snprintf(buf, sizeof buf, " %s", cand);
                cand = buf;
            }
            double ll;
            size_t m;
            rc = evalgen_loglik(s, toks, n, cand, &ll, &m);
            if (!rc && m > 0 && ll > best_ll) {
                best_ll = ll;
                best = (int)k;
            }
        }
        free(toks);
        if (rc) break;
        w->ll_best = best_ll;
        if (r->choices) {
            w->true_label = r->answer_index;
            w->pred_label = best;
            w->prediction = strdup(best >= 0 ? r->choices[best] : "");
            t->conf.total++;
            if (best == r->answer_index) t->conf.correct++;
        } else {
            w->true_label = label_index_exact(&o->labels, r->label);
            w->pred_label = best;
            w->prediction = strdup(best >= 0 ? o->labels.names[best] : "");
            if (w->true_label >= 0) eval_confusion_add(&t->conf, w->true_label, best);
        }
        w->ms = session_now_ms() - t0;
    }
    return rc;
}

static int run_ppl_jsonl(session *s, const eval_opts *o, const eval_records *rs,
                         eval_totals *t)
{
    double nll = 0;
    int64_t count = 0;
    int rc = 0;
    for (size_t i = 0; i < rs->n && !rc; i++) {
        int32_t *toks = NULL;
        size_t n = 0;
        rc = evalgen_prompt(s, o->fmt, s->args->system_prompt, rs->r[i].question, &toks, &n);
        double ll = 0;
        size_t m = 0;
        if (!rc) {
            char *cont = rs->r[i].answer;
            char *tmp = NULL;
            if (o->fmt == EVALGEN_QA && (tmp = malloc(strlen(cont) + 2))) {
                tmp[0] = ' ';
                strcpy(tmp + 1, cont);
                cont = tmp;
            }
            rc = evalgen_loglik(s, toks, n, cont, &ll, &m);
            free(tmp);
        }
        free(toks);
        nll -= ll;
        count += (int64_t)m;
    }
    t->nll = count ? nll / (double)count : NAN;
    t->ppl = exp(t->nll);
    t->n_ppl_tokens = count;
    return rc;
}

static bool ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

int cmd_eval(int argc, char **argv)
{
    eval_opts o;
    memset(&o, 0, sizeof o);
    eval_labels_default(&o.labels);
    eval_fields_default(&o.fields);
    o.embed_model = "models/all-minilm-l6-v2.gguf";
    char **rest = malloc(((size_t)argc + 1) * sizeof *rest);
    if (!rest) return 1;
    int n_rest = 0;
    int rc = eval_split_args(argc, argv, &o, rest, &n_rest);
    loft_args a;
    if (!rc) rc = args_parse(&a, "eval", n_rest, rest);
    free(rest);
    if (rc) return rc;
    if (a.help) {
        eval_usage(stdout);
        return 0;
    }
    if (!a.model || !a.file || !o.task_name) {
        fprintf(stderr, "loft eval: need -m MODEL, -f TEST and --task qa|choice|perplexity\n");
        return 2;
    }
    bool text_ppl = o.task == TASK_PPL && !ends_with(a.file, ".jsonl");
    bool greedy_n = false;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-n") || !strcmp(argv[i], "--n-predict")) greedy_n = true;
    int32_t n_predict = greedy_n ? a.n_predict : 64;
    char def_report[64];
    snprintf(def_report, sizeof def_report, "loft-eval-%s", o.task_name);
    if (!o.report) o.report = def_report;
    const char *column = o.column ? o.column : base_name(a.model);

    loft_status st;
    char model_sha[65] = "", test_sha[65] = "", lora_sha[65] = "";
    if (sha256_file_hex(a.model, model_sha, &st) || sha256_file_hex(a.file, test_sha, &st) ||
        (o.lora && sha256_file_hex(o.lora, lora_sha, &st))) {
        fprintf(stderr, "loft eval: %s\n", st.msg);
        return 1;
    }

    eval_totals t;
    memset(&t, 0, sizeof t);
    eval_confusion_init(&t.conf, o.labels.n);
    eval_records rs = {0};
    size_t n_all = 0;
    eval_row *rows = NULL;
    bert_model *emb = NULL;
    session s;
    memset(&s, 0, sizeof s);
    if (!text_ppl) {
        unsigned need = EVAL_NEED_QUESTION;
        if (o.task == TASK_QA) need |= EVAL_NEED_ANSWER | EVAL_NEED_LABEL;
        if (o.task == TASK_CHOICE) need |= EVAL_NEED_CHOICES;
        if (o.task == TASK_PPL) need |= EVAL_NEED_ANSWER;
        if (eval_records_load(&rs, a.file, &o.fields, need, &st)) {
            fprintf(stderr, "loft eval: %s\n", st.msg);
            return 2;
        }
        if (o.task == TASK_CHOICE)
            for (size_t i = 0; i < rs.n; i++)
                if (!rs.r[i].choices && !rs.r[i].label) {
                    fprintf(stderr, "loft eval: %s:%zu: no \"%s\" and no \"%s\" to score\n", a.file,
                            rs.r[i].line, o.fields.choices, o.fields.label);
                    eval_records_free(&rs);
                    return 2;
                }
        n_all = rs.n;
        if (o.limit > 0 && (size_t)o.limit < rs.n) rs.n = (size_t)o.limit;
        rows = calloc(rs.n, sizeof *rows);
        if (!rows) {
            eval_records_free(&rs);
            return 1;
        }
    }
    if (o.task == TASK_QA && strcmp(o.embed_model, "none")) {
        if (bert_load(&emb, o.embed_model, &st)) {
            fprintf(stderr, "loft eval: %s (--embed-model none skips the cosine)\n", st.msg);
            rc = 1;
            goto done;
        }
    }
    loft_args sa = a;
    if (text_ppl) sa.n_ctx = 1;
    /* The adapter rides on the same inference path as the base model, so
     * base and adapted scores differ only by the adapter. */
    if (o.lora) {
        if (sa.n_lora >= ARGS_MAX_LORA) {
            fprintf(stderr, "loft eval: too many adapters\n");
            rc = 2;
            goto done;
        }
        sa.lora[sa.n_lora] = o.lora;
        sa.lora_scale[sa.n_lora++] = 1.0f;
    }
    rc = session_open(&s, &sa, !text_ppl);
    if (rc) goto done;
    double t0 = session_now_ms();
    if (o.task == TASK_QA) {
        rc = run_qa(&s, &o, &rs, rows, &t, emb, n_predict);
    } else if (o.task == TASK_CHOICE) {
        rc = run_choice(&s, &o, &rs, rows, &t);
    } else if (!text_ppl) {
        rc = run_ppl_jsonl(&s, &o, &rs, &t);
    } else {
        size_t len = 0;
        char *text = args_read_file("eval", a.file, &len);
        if (!text) {
            rc = 1;
            goto done;
        }
        bool ctx_given = false;
        for (int i = 1; i < argc; i++)
            if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--ctx-size")) ctx_given = true;
        int32_t n_ctx = ctx_given ? a.n_ctx : 512;
        loft_ppl_params p = {n_ctx, a.n_batch < n_ctx ? a.n_batch : n_ctx, a.n_chunks};
        loft_ppl_result res;
        if ((rc = session_check_fit(&s, p.n_ctx, p.n_batch, true))) {
            free(text);
            goto done;
        }
        if (loft_perplexity_text(s.model, s.vocab, text, len, &p, NULL, NULL, &res, &st)) {
            fprintf(stderr, "loft eval: %s\n", st.msg);
            rc = 1;
        } else {
            t.ppl = res.ppl;
            t.nll = res.nll;
            t.n_ppl_tokens = res.n_scored;
        }
        free(text);
    }
    double seconds = (session_now_ms() - t0) / 1e3;
    if (!rc) {
        write_table(stdout, &o, &rs, &t, column);
        rc = write_reports(&o, &a, &rs, rows, &t, model_sha, lora_sha[0] ? lora_sha : NULL,
                           test_sha, column, seconds);
        if (!rc) fprintf(stderr, "loft eval: wrote %s.json and %s.md\n", o.report, o.report);
    }
done:
    session_close(&s);
    bert_free(emb);
    for (size_t i = 0; rows && i < rs.n; i++)
        free(rows[i].prediction);
    free(rows);
    if (n_all) rs.n = n_all;
    eval_records_free(&rs);
    return rc;
}
