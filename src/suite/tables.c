/*
 * tables.c - the report's tables and findings, computed once from the
 * results and written by both report_md.c and report_html.c, so the two
 * pages show the same figures (and the tests can compare them with
 * results.json).
 */
#include <math.h>
#include <string.h>

#include "bench/memfit.h"
#include "suite/suite_impl.h"

const char *suite_row_model(const bench_result *r)
{
    return r->model_name[0] ? r->model_name : r->model_file;
}

int suite_infer_models(const suite_results *r, const char **names, int cap)
{
    int n = 0;
    for (size_t i = 0; i < r->n_rows; i++) {
        const char *m = suite_row_model(&r->rows[i]);
        bool seen = false;
        for (int k = 0; k < n; k++)
            seen = seen || !strcmp(names[k], m);
        if (!seen && n < cap) names[n++] = m;
    }
    return n;
}

/* The row of a test kind (0 prompt, 1 pp, 2 tg) for a column. */
static const bench_result *find_row(const suite_results *r, const char *model, const char *quant,
                                    int threads, int kind)
{
    for (size_t i = 0; i < r->n_rows; i++) {
        const bench_result *b = &r->rows[i];
        if (strcmp(suite_row_model(b), model) || strcmp(b->quant, quant) || b->n_threads != threads)
            continue;
        bool is_prompt = !strcmp(b->test, "prompt");
        if ((kind == 0 && is_prompt) ||
            (kind == 1 && !is_prompt && b->n_prompt > 0 && b->n_gen == 0) ||
            (kind == 2 && !is_prompt && b->n_gen > 0 && b->n_prompt == 0))
            return b;
    }
    return NULL;
}

/* A cell's text when the row has no figures; NULL when it has. */
static const char *no_figures(const bench_result *b, char *buf, size_t cap)
{
    if (!b) return "—";
    if (b->oom) {
        memfit_oom_text(b->oom_need, b->oom_have, buf, cap);
        return buf;
    }
    if (b->error[0]) return "failed";
    if (b->ts.n == 0) return "—";
    return NULL;
}

void suite_grid_inference(const suite_ctx *c, const char *model, suite_grid *g)
{
    const suite_results *r = c->res;
    memset(g, 0, sizeof *g);
    snprintf(g->title, sizeof g->title, "%s", model);
    snprintf(g->corner, sizeof g->corner, "quantization, threads");
    static const char *const rows[] = {"Peak t/s", "Avg t/s", "Low t/s",        "TTFT (ms)",
                                       NULL,       NULL,      "Peak RSS (MiB)", "Model size (MiB)"};
    g->n_rows = 8;
    for (int k = 0; k < g->n_rows; k++)
        if (rows[k]) snprintf(g->rowname[k], sizeof g->rowname[k], "%s", rows[k]);
    snprintf(g->rowname[4], sizeof g->rowname[4], "pp%d t/s", c->o->n_pp);
    snprintf(g->rowname[5], sizeof g->rowname[5], "tg%d t/s", c->o->n_tg);
    for (size_t i = 0; i < r->n_rows && g->n_cols < GRID_MAX_COLS; i++) {
        const bench_result *b = &r->rows[i];
        if (strcmp(suite_row_model(b), model)) continue;
        char head[GRID_CELL];
        snprintf(head, sizeof head, "%s, %d thr", b->quant, b->n_threads);
        bool seen = false;
        for (int k = 0; k < g->n_cols; k++)
            seen = seen || !strcmp(g->head[k], head);
        if (seen) continue;
        int col = g->n_cols++;
        memcpy(g->head[col], head, sizeof head);
        const bench_result *pr = find_row(r, model, b->quant, b->n_threads, 0);
        const bench_result *pp = find_row(r, model, b->quant, b->n_threads, 1);
        const bench_result *tg = find_row(r, model, b->quant, b->n_threads, 2);
        char tmp[GRID_CELL];
        for (int k = 0; k < 6; k++) {
            const bench_result *src = k < 4 ? pr : k == 4 ? pp : tg;
            const char *none = no_figures(src, tmp, sizeof tmp);
            char *cell = g->cell[k][col];
            if (none)
                snprintf(cell, GRID_CELL, "%s", none);
            else if (k == 0)
                snprintf(cell, GRID_CELL, "%.2f", src->ts.max);
            else if (k == 1 || k >= 4)
                snprintf(cell, GRID_CELL, "%.2f", src->ts.mean);
            else if (k == 2)
                snprintf(cell, GRID_CELL, "%.2f", src->ts.min);
            else
                snprintf(cell, GRID_CELL, "%.0f", src->ttft.mean);
        }
        const bench_result *any = pr ? pr : b;
        if (any->peak_rss)
            snprintf(g->cell[6][col], GRID_CELL, "%.0f", (double)any->peak_rss / 1048576.0);
        else
            snprintf(g->cell[6][col], GRID_CELL, "—");
        snprintf(g->cell[7][col], GRID_CELL, "%.1f", (double)any->file_size / 1048576.0);
    }
    snprintf(g->note, sizeof g->note,
             "Peak / Avg / Low: max / mean / min generation tokens/s over %d runs of the prompt "
             "\"%s\" (greedy, up to %d tokens, after a warm-up run); TTFT: mean time to the "
             "first token of those runs. pp%d / tg%d: mean over %d repetitions of `loft bench`. "
             "Peak RSS: high-water mark of the process during the item.",
             c->o->prompt_runs, c->o->prompt, c->o->n_predict, c->o->n_pp, c->o->n_tg,
             c->o->bench_reps);
}

/* Mean of the finite values of x[a..b). */
static double mean_range(const double *x, size_t a, size_t b)
{
    double s = 0;
    size_t n = 0;
    for (size_t i = a; i < b; i++)
        if (isfinite(x[i])) s += x[i], n++;
    return n ? s / (double)n : NAN;
}

static void fmt_num(char *buf, size_t cap, const char *fmt, double v)
{
    if (isfinite(v))
        snprintf(buf, cap, fmt, v);
    else
        snprintf(buf, cap, "—");
}

void suite_grid_tune(const suite_ctx *c, suite_grid *g)
{
    const suite_results *r = c->res;
    memset(g, 0, sizeof *g);
    snprintf(g->title, sizeof g->title, "Training loss");
    snprintf(g->corner, sizeof g->corner, "base");
    static const char *const rows[] = {"optimizer steps",       "loss, first step",
                                       "loss, mean of first 5", "loss, mean of last 5",
                                       "loss, last step",       "validation loss"};
    g->n_rows = 6;
    for (int k = 0; k < g->n_rows; k++)
        snprintf(g->rowname[k], sizeof g->rowname[k], "%s", rows[k]);
    for (int i = 0; i < r->n_tune && g->n_cols < GRID_MAX_COLS; i++) {
        const suite_tune_result *t = &r->tune[i];
        int col = g->n_cols++;
        snprintf(g->head[col], GRID_CELL, "%s", t->quant);
        if (t->error[0]) {
            for (int k = 0; k < g->n_rows; k++)
                snprintf(g->cell[k][col], GRID_CELL, "failed");
            continue;
        }
        size_t n = t->n_loss, h = n < 5 ? n : 5;
        snprintf(g->cell[0][col], GRID_CELL, "%lld", (long long)t->steps);
        fmt_num(g->cell[1][col], GRID_CELL, "%.4f", n ? t->loss[0] : NAN);
        fmt_num(g->cell[2][col], GRID_CELL, "%.4f", n ? mean_range(t->loss, 0, h) : NAN);
        fmt_num(g->cell[3][col], GRID_CELL, "%.4f", n ? mean_range(t->loss, n - h, n) : NAN);
        fmt_num(g->cell[4][col], GRID_CELL, "%.4f", n ? t->loss[n - 1] : NAN);
        fmt_num(g->cell[5][col], GRID_CELL, "%.4f", t->val_loss);
    }
}

void suite_grid_quality(const suite_ctx *c, suite_grid *g)
{
    const suite_results *r = c->res;
    memset(g, 0, sizeof *g);
    snprintf(g->title, sizeof g->title, "Accuracy");
    snprintf(g->corner, sizeof g->corner, "base");
    static const char *const rows[] = {"accuracy, untrained",
                                       "accuracy, fine-tuned",
                                       "cosine, untrained",
                                       "cosine, fine-tuned",
                                       "Jaccard, untrained",
                                       "Jaccard, fine-tuned",
                                       "answers Y/N/U/other, untrained",
                                       "answers Y/N/U/other, fine-tuned"};
    g->n_rows = 8;
    for (int k = 0; k < g->n_rows; k++)
        snprintf(g->rowname[k], sizeof g->rowname[k], "%s", rows[k]);
    for (int i = 0; i < r->n_qual; i++) {
        const suite_quality_result *q = &r->qual[i];
        int col = -1;
        for (int k = 0; k < g->n_cols; k++)
            if (!strcmp(g->head[k], q->quant)) col = k;
        if (col < 0) {
            if (g->n_cols >= GRID_MAX_COLS) continue;
            col = g->n_cols++;
            snprintf(g->head[col], GRID_CELL, "%s", q->quant);
            for (int k = 0; k < g->n_rows; k++)
                snprintf(g->cell[k][col], GRID_CELL, "—");
        }
        int t = q->tuned ? 1 : 0;
        if (q->error[0]) {
            for (int k = t; k < g->n_rows; k += 2)
                snprintf(g->cell[k][col], GRID_CELL, "failed");
            continue;
        }
        snprintf(g->cell[t][col], GRID_CELL, "%.1f%% (%lld/%lld)", 100.0 * q->accuracy,
                 (long long)q->correct, (long long)q->n);
        fmt_num(g->cell[2 + t][col], GRID_CELL, "%.4f", q->cosine);
        fmt_num(g->cell[4 + t][col], GRID_CELL, "%.4f", q->jaccard);
        snprintf(g->cell[6 + t][col], GRID_CELL, "%lld/%lld/%lld/%lld", (long long)q->predicted[0],
                 (long long)q->predicted[1], (long long)q->predicted[2],
                 (long long)q->predicted[3]);
    }
    snprintf(g->note, sizeof g->note,
             "answers Y/N/U/other: how many answers were read as Yes / No / Uncertain / none "
             "of them. A model that gives one answer to everything scores that label's share "
             "of the records.");
}

static void fmt_duration(char *buf, size_t cap, double s)
{
    if (!isfinite(s) || s <= 0)
        snprintf(buf, cap, "—");
    else if (s < 120)
        snprintf(buf, cap, "%.1f s", s);
    else if (s < 7200)
        snprintf(buf, cap, "%.1f min", s / 60);
    else
        snprintf(buf, cap, "%.2f h", s / 3600);
}

void suite_grid_time(const suite_ctx *c, suite_grid *g)
{
    const suite_results *r = c->res;
    memset(g, 0, sizeof *g);
    snprintf(g->title, sizeof g->title, "Fine-tuning completion time");
    snprintf(g->corner, sizeof g->corner, "base");
    g->n_rows = 6;
    snprintf(g->rowname[0], sizeof g->rowname[0], "training tokens/s");
    snprintf(g->rowname[1], sizeof g->rowname[1], "time per step");
    snprintf(g->rowname[2], sizeof g->rowname[2], "time per epoch");
    snprintf(g->rowname[3], sizeof g->rowname[3], "epoch time is");
    snprintf(g->rowname[4], sizeof g->rowname[4], "8 epochs (published run)");
    snprintf(g->rowname[5], sizeof g->rowname[5], "wall time of this run");
    for (int i = 0; i < r->n_tune && g->n_cols < GRID_MAX_COLS; i++) {
        const suite_tune_result *t = &r->tune[i];
        int col = g->n_cols++;
        snprintf(g->head[col], GRID_CELL, "%s", t->quant);
        if (t->error[0]) {
            for (int k = 0; k < g->n_rows; k++)
                snprintf(g->cell[k][col], GRID_CELL, "failed");
            continue;
        }
        snprintf(g->cell[0][col], GRID_CELL, "%.1f", t->tokens_per_s);
        snprintf(g->cell[1][col], GRID_CELL, "%.2f s", t->s_per_step);
        fmt_duration(g->cell[2][col], GRID_CELL, t->s_per_epoch);
        snprintf(g->cell[3][col], GRID_CELL, "%s", t->epoch_measured ? "measured" : "extrapolated");
        fmt_duration(g->cell[4][col], GRID_CELL, 8 * t->s_per_epoch);
        fmt_duration(g->cell[5][col], GRID_CELL, t->seconds);
    }
    snprintf(g->note, sizeof g->note,
             "An extrapolated epoch is the training set's tokens (%lld) divided by the measured "
             "training tokens/s; a measured one is the run's wall time divided by its epochs.",
             r->n_tune ? (long long)r->tune[0].epoch_tokens : 0LL);
}

/* ---- key findings ------------------------------------------------------------- */

static const bench_result *best_prompt_row(const suite_results *r, const char *model,
                                           const char *quant, int threads)
{
    const bench_result *best = NULL;
    for (size_t i = 0; i < r->n_rows; i++) {
        const bench_result *b = &r->rows[i];
        if (strcmp(b->test, "prompt") || !b->ts.n || b->error[0]) continue;
        if (model && strcmp(suite_row_model(b), model)) continue;
        if (quant && strcmp(b->quant, quant)) continue;
        if (threads && b->n_threads != threads) continue;
        if (!best || b->ts.mean > best->ts.mean) best = b;
    }
    return best;
}

void suite_findings(const suite_ctx *c, FILE *f, const char *bullet, const char *end)
{
    const suite_results *r = c->res;
    const char *names[SUITE_MAX_MODELS];
    int nm = suite_infer_models(r, names, SUITE_MAX_MODELS);
    int n = 0;
    for (int i = 0; i < nm; i++) {
        const bench_result *best = best_prompt_row(r, names[i], NULL, 0);
        if (!best) continue;
        fprintf(f,
                "%s%s generates fastest as %s on %d thread%s: %.2f t/s on average (peak %.2f), "
                "first token after %.0f ms.%s",
                bullet, names[i], best->quant, best->n_threads, best->n_threads > 1 ? "s" : "",
                best->ts.mean, best->ts.max, best->ttft.mean, end);
        n++;
        /* The ladder against its largest rung, at the same thread count. */
        const bench_result *f16 = best_prompt_row(r, names[i], "F16", best->n_threads);
        if (f16 && f16 != best && f16->ts.mean > 0)
            fprintf(f,
                    "%s%s: %s generates %.2fx as fast as F16 (%.2f vs %.2f t/s) in %.0f%% of "
                    "its file size.%s",
                    bullet, names[i], best->quant, best->ts.mean / f16->ts.mean, best->ts.mean,
                    f16->ts.mean, f16->file_size ? 100.0 * best->file_size / f16->file_size : 0,
                    end);
        const bench_result *one = best_prompt_row(r, names[i], best->quant, 1);
        if (one && one != best && one->ts.mean > 0)
            fprintf(f, "%s%s %s: %d threads give %.2fx the speed of 1 thread.%s", bullet, names[i],
                    best->quant, best->n_threads, best->ts.mean / one->ts.mean, end);
    }
    const suite_tune_result *fast = NULL;
    for (int i = 0; i < r->n_tune; i++)
        if (!r->tune[i].error[0] && (!fast || r->tune[i].tokens_per_s > fast->tokens_per_s))
            fast = &r->tune[i];
    if (fast) {
        fprintf(f,
                "%sFine-tuning is fastest on the %s base: %.1f training tokens/s, %.2f s per "
                "step; the published 8 epochs would take about %.1f min here.%s",
                bullet, fast->quant, fast->tokens_per_s, fast->s_per_step,
                8 * fast->s_per_epoch / 60, end);
        n++;
    }
    for (int i = 0; i < r->n_qual; i++) {
        const suite_quality_result *t = &r->qual[i];
        if (!t->tuned || t->error[0]) continue;
        for (int k = 0; k < r->n_qual; k++) {
            const suite_quality_result *u = &r->qual[k];
            if (u->tuned || u->error[0] || strcmp(u->quant, t->quant)) continue;
            double d = 100.0 * (t->accuracy - u->accuracy);
            fprintf(f,
                    "%s%s base: accuracy %.1f%% untrained, %.1f%% fine-tuned (%+.1f points, "
                    "%lld records).%s",
                    bullet, t->quant, 100.0 * u->accuracy, 100.0 * t->accuracy, d, (long long)t->n,
                    end);
            n++;
            static const char *const label_names[3] = {"Yes", "No", "Uncertain"};
            for (int lb = 0; lb < 3; lb++)
                if (t->n > 0 && t->predicted[lb] * 10 >= t->n * 9)
                    fprintf(f,
                            "%sThe fine-tuned %s base answers \"%s\" to %lld of %lld records: "
                            "its accuracy is mostly that label's share, not understanding.%s",
                            bullet, t->quant, label_names[lb], (long long)t->predicted[lb],
                            (long long)t->n, end);
        }
    }
    if (!n) fprintf(f, "%sNo item has finished yet.%s", bullet, end);
}
