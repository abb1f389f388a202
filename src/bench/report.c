#include "bench/report.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "bench/svg.h"

/* ---- loading and grouping ------------------------------------------------ */

/* Copies src into dst[cap], truncating; dst is always terminated. */
static void copy_trunc(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* "AMD EPYC 7B13 64-Core Processor" -> "AMD EPYC 7B13": drops the vendor
 * noise that makes column headers wide. */
static void short_device(const char *cpu, char *out, size_t cap)
{
    static const char *const drop[] = {"(R)",      "(TM)",     "(tm)",     " CPU",   " Processor",
                                       " 64-Core", " 32-Core", " 16-Core", " 8-Core"};
    char buf[256];
    copy_trunc(buf, sizeof buf, cpu);
    char *at = strstr(buf, " @ ");
    if (at) *at = 0;
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++) {
        char *p;
        while ((p = strstr(buf, drop[i])))
            memmove(p, p + strlen(drop[i]), strlen(p + strlen(drop[i])) + 1);
    }
    /* Collapse double spaces left behind. */
    char *w = buf;
    for (char *p = buf; *p; p++)
        if (!(*p == ' ' && (w == buf || w[-1] == ' '))) *w++ = *p;
    *w = 0;
    copy_trunc(out, cap, buf[0] ? buf : "unknown CPU");
}

static report_table *find_table(report *r, const char *model)
{
    for (size_t i = 0; i < r->n_tables; i++)
        if (!strcmp(r->tables[i].model, model)) return &r->tables[i];
    return NULL;
}

static loft_code add_row(report *r, const report_file *file, const bench_result *row,
                         loft_status *st)
{
    /* A row that failed (not for memory) has no figures: it is listed under
     * the machines instead of making an empty table. */
    if (row->error[0] && !row->oom) return LOFT_OK;
    report_table *t = find_table(r, row->model_name);
    if (!t) {
        report_table *nt = realloc(r->tables, (r->n_tables + 1) * sizeof *nt);
        if (!nt) return loft_fail(st, LOFT_ERR_NOMEM, "report: out of memory");
        r->tables = nt;
        t = &r->tables[r->n_tables++];
        memset(t, 0, sizeof *t);
        copy_trunc(t->model, sizeof t->model, row->model_name);
    }
    char dev[160];
    short_device(file->si.cpu_model, dev, sizeof dev);
    report_column *c = NULL;
    for (size_t i = 0; i < t->n_cols; i++)
        if (!strcmp(t->cols[i].device, dev) && !strcmp(t->cols[i].quant, row->quant) &&
            t->cols[i].n_threads == row->n_threads && t->cols[i].file == file)
            c = &t->cols[i];
    if (!c) {
        report_column *nc = realloc(t->cols, (t->n_cols + 1) * sizeof *nc);
        if (!nc) return loft_fail(st, LOFT_ERR_NOMEM, "report: out of memory");
        t->cols = nc;
        c = &t->cols[t->n_cols++];
        memset(c, 0, sizeof *c);
        copy_trunc(c->device, sizeof c->device, dev);
        copy_trunc(c->quant, sizeof c->quant, row->quant);
        c->n_threads = row->n_threads;
        c->file = file;
    }
    if (row->oom) {
        if (!c->oom) c->oom = row;
    } else if (row->n_prompt == 0 && row->n_gen > 0) {
        if (!c->tg || row->n_gen > c->tg->n_gen) c->tg = row;
    } else if (row->n_gen == 0 && row->n_prompt > 0) {
        if (!c->pp || row->n_prompt > c->pp->n_prompt) c->pp = row;
    }
    return LOFT_OK;
}

void report_free(report *r)
{
    for (size_t i = 0; i < r->n_files; i++)
        free(r->files[i].rows);
    for (size_t i = 0; i < r->n_tables; i++)
        free(r->tables[i].cols);
    free(r->files);
    free(r->tables);
    memset(r, 0, sizeof *r);
}

loft_code report_load(report *r, const char *const *paths, size_t n, loft_status *st)
{
    memset(r, 0, sizeof *r);
    r->files = calloc(n ? n : 1, sizeof *r->files);
    if (!r->files) return loft_fail(st, LOFT_ERR_NOMEM, "report: out of memory");
    for (size_t i = 0; i < n; i++) {
        report_file *f = &r->files[i];
        copy_trunc(f->path, sizeof f->path, paths[i]);
        loft_code rc = bench_read_json(paths[i], &f->si, &f->rows, &f->n_rows, st);
        if (rc != LOFT_OK) {
            report_free(r);
            return rc;
        }
        r->n_files++;
    }
    /* Tables after all files are read: columns point into stable arrays. */
    for (size_t i = 0; i < r->n_files; i++)
        for (size_t k = 0; k < r->files[i].n_rows; k++) {
            loft_code rc = add_row(r, &r->files[i], &r->files[i].rows[k], st);
            if (rc != LOFT_OK) {
                report_free(r);
                return rc;
            }
        }
    return LOFT_OK;
}

/* ---- cells ----------------------------------------------------------------- */

const char *report_row_name(int row)
{
    static const char *const names[REPORT_N_ROWS] = {"Peak t/s", "Avg t/s", "Low t/s", "TTFT (ms)",
                                                     "Prompt t/s"};
    return row >= 0 && row < REPORT_N_ROWS ? names[row] : "?";
}

void report_cell(const report_column *c, int row, char *buf, size_t cap)
{
    const double gib = 1024.0 * 1024.0 * 1024.0;
    const bench_result *src = row <= 2 ? c->tg : c->pp;
    if (!src && c->oom) {
        snprintf(buf, cap, "OOM (needs %.2f GiB, has %.2f GiB)", (double)c->oom->oom_need / gib,
                 (double)c->oom->oom_have / gib);
        return;
    }
    if (!src || src->ts.n == 0) {
        snprintf(buf, cap, "—");
        return;
    }
    switch (row) {
    case 0:
        snprintf(buf, cap, "%.2f", src->ts.max);
        break;
    case 1:
        snprintf(buf, cap, "%.2f", src->ts.mean);
        break;
    case 2:
        snprintf(buf, cap, "%.2f", src->ts.min);
        break;
    case 3:
        snprintf(buf, cap, "%.0f", src->ttft.mean);
        break;
    default:
        snprintf(buf, cap, "%.2f", src->ts.mean);
        break;
    }
}

static void column_title(const report_column *c, char *buf, size_t cap, const char *sep)
{
    snprintf(buf, cap, "%s%s%s, %d thr", c->device, sep, c->quant, c->n_threads);
}

/* ---- markdown --------------------------------------------------------------- */

static void write_machines_md(FILE *f, const report *r)
{
    fprintf(f, "## Machines\n\n");
    for (size_t i = 0; i < r->n_files; i++) {
        fprintf(f, "### %s\n\n", r->files[i].path);
        sysinfo_write_markdown(f, &r->files[i].si);
        fputc('\n', f);
        for (size_t k = 0; k < r->files[i].n_rows; k++) {
            const bench_result *row = &r->files[i].rows[k];
            if (row->error[0] && !row->oom)
                fprintf(f, "- failed: %s %s, %d thr: %s\n", row->model_file, row->test,
                        row->n_threads, row->error);
        }
        fputc('\n', f);
    }
}

/* The prompt and generation sizes behind a table's cells, for its note. */
static void table_note(const report_table *t, char *buf, size_t cap)
{
    int pp = 0, tg = 0, reps = 0;
    bool mixed = false;
    for (size_t i = 0; i < t->n_cols; i++) {
        const report_column *c = &t->cols[i];
        if (c->pp) {
            if (pp && pp != c->pp->n_prompt) mixed = true;
            pp = c->pp->n_prompt;
        }
        if (c->tg) {
            if (tg && tg != c->tg->n_gen) mixed = true;
            tg = c->tg->n_gen;
            reps = c->tg->reps;
        }
    }
    int used = 0;
    if (tg)
        used += snprintf(buf + used, cap - (size_t)used,
                         "Peak / Avg / Low: max / mean / min generation tokens/s over %d runs of "
                         "tg%d. ",
                         reps, tg);
    if (pp && used >= 0 && (size_t)used < cap)
        used += snprintf(buf + used, cap - (size_t)used,
                         "TTFT: mean time to the first token after a %d-token prompt (pp%d); "
                         "Prompt t/s: pp%d mean. ",
                         pp, pp, pp);
    if (mixed && used >= 0 && (size_t)used < cap)
        snprintf(buf + used, cap - (size_t)used,
                 "Columns used different sizes; see the JSON files.");
}

void report_write_markdown(FILE *f, const report *r)
{
    fprintf(f, "# loft benchmark report\n\n");
    for (size_t ti = 0; ti < r->n_tables; ti++) {
        const report_table *t = &r->tables[ti];
        fprintf(f, "## %s\n\n|  |", t->model);
        char buf[256];
        for (size_t i = 0; i < t->n_cols; i++) {
            column_title(&t->cols[i], buf, sizeof buf, " / ");
            fprintf(f, " %s |", buf);
        }
        fprintf(f, "\n| --- |");
        for (size_t i = 0; i < t->n_cols; i++)
            fprintf(f, " ---: |");
        fputc('\n', f);
        for (int row = 0; row < REPORT_N_ROWS; row++) {
            fprintf(f, "| %s |", report_row_name(row));
            for (size_t i = 0; i < t->n_cols; i++) {
                report_cell(&t->cols[i], row, buf, sizeof buf);
                fprintf(f, " %s |", buf);
            }
            fputc('\n', f);
        }
        table_note(t, buf, sizeof buf);
        fprintf(f, "\n%s\n\n", buf);
    }
    write_machines_md(f, r);
}

/* ---- HTML ------------------------------------------------------------------- */

static const char *quant_color(const report *r, const char *quant)
{
    static const char *const palette[] = {"#4878d0", "#ee854a", "#6acc64", "#d65f5f",
                                          "#956cb4", "#8c613c", "#dc7ec0", "#797979"};
    /* The same quantization gets the same color in every chart. */
    const char *seen[64];
    size_t n = 0;
    for (size_t ti = 0; ti < r->n_tables; ti++)
        for (size_t i = 0; i < r->tables[ti].n_cols; i++) {
            const char *q = r->tables[ti].cols[i].quant;
            size_t k = 0;
            while (k < n && strcmp(seen[k], q))
                k++;
            if (k == n && n < 64) seen[n++] = q;
            if (!strcmp(q, quant)) return palette[k % 8];
        }
    return palette[0];
}

static void write_chart(FILE *f, const report *r, const report_table *t, bool ttft)
{
    svg_bar *bars = calloc(t->n_cols ? t->n_cols : 1, sizeof *bars);
    char(*subs)[64] = calloc(t->n_cols ? t->n_cols : 1, sizeof *subs);
    char(*notes)[96] = calloc(t->n_cols ? t->n_cols : 1, sizeof *notes);
    if (!bars || !subs || !notes) goto done;
    for (size_t i = 0; i < t->n_cols; i++) {
        const report_column *c = &t->cols[i];
        const bench_result *src = ttft ? c->pp : c->tg;
        svg_bar *b = &bars[i];
        b->label = c->device;
        snprintf(subs[i], sizeof subs[i], "%s, %d thread%s", c->quant, c->n_threads,
                 c->n_threads == 1 ? "" : "s");
        b->sublabel = subs[i];
        b->color = quant_color(r, c->quant);
        b->lo = NAN;
        b->hi = NAN;
        if (!src || src->ts.n == 0) {
            report_cell(c, ttft ? 3 : 1, notes[i], sizeof notes[i]);
            if (!strcmp(notes[i], "—")) snprintf(notes[i], sizeof notes[i], "no data");
            b->note = notes[i];
        } else if (ttft) {
            b->value = src->ttft.mean;
            b->lo = src->ttft.min;
            b->hi = src->ttft.max;
        } else {
            b->value = src->ts.mean;
            b->lo = src->ts.min;
            b->hi = src->ts.max;
        }
    }
    /* A chart of nothing but "no data" says less than its absence. */
    bool any = false;
    for (size_t i = 0; i < t->n_cols; i++)
        if (!bars[i].note || strcmp(bars[i].note, "no data")) any = true;
    if (!any) goto done;
    char title[256];
    snprintf(title, sizeof title, "%s — %s", t->model,
             ttft ? "time to first token (lower is better)"
                  : "generation speed, avg with low–peak range (higher is better)");
    svg_bar_chart(f, title, ttft ? "ms" : "tokens/s", ttft ? 0 : 2, bars, t->n_cols, 900);
done:
    free(bars);
    free(subs);
    free(notes);
}

static void write_table_html(FILE *f, const report_table *t)
{
    char buf[256];
    fputs("<table><thead><tr><th></th>", f);
    for (size_t i = 0; i < t->n_cols; i++) {
        const report_column *c = &t->cols[i];
        fputs("<th>", f);
        svg_escape(f, c->device);
        fputs("<br><span class=sub>", f);
        snprintf(buf, sizeof buf, "%s, %d thr", c->quant, c->n_threads);
        svg_escape(f, buf);
        fputs("</span></th>", f);
    }
    fputs("</tr></thead><tbody>\n", f);
    for (int row = 0; row < REPORT_N_ROWS; row++) {
        fputs("<tr><th>", f);
        svg_escape(f, report_row_name(row));
        fputs("</th>", f);
        for (size_t i = 0; i < t->n_cols; i++) {
            report_cell(&t->cols[i], row, buf, sizeof buf);
            fprintf(f, "<td%s>", !strncmp(buf, "OOM", 3) ? " class=oom" : "");
            svg_escape(f, buf);
            fputs("</td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("</tbody></table>\n", f);
    table_note(t, buf, sizeof buf);
    fputs("<p class=note>", f);
    svg_escape(f, buf);
    fputs("</p>\n", f);
}

static void write_machines_html(FILE *f, const report *r)
{
    fputs("<h2>Machines and builds</h2>\n<table class=sys><thead><tr><th>file</th><th>CPU</th>"
          "<th>cores / threads</th><th>ISA used</th><th>RAM</th><th>OS / kernel</th>"
          "<th>build</th><th>date</th></tr></thead><tbody>\n",
          f);
    for (size_t i = 0; i < r->n_files; i++) {
        const sysinfo *s = &r->files[i].si;
        char buf[640];
        fputs("<tr><td>", f);
        svg_escape(f, r->files[i].path);
        fputs("</td><td>", f);
        svg_escape(f, s->cpu_model);
        fprintf(f, "</td><td>%d / %d</td><td>", s->cores, s->threads);
        svg_escape(f, s->isa_used);
        fprintf(f, "</td><td>%.1f GiB</td><td>", (double)s->ram_total / (1024.0 * 1024 * 1024));
        snprintf(buf, sizeof buf, "%s, %s", s->os, s->kernel);
        svg_escape(f, buf);
        fputs("</td><td>", f);
        snprintf(buf, sizeof buf, "loft %s (%s), %s", s->version, s->git_commit, s->compiler);
        svg_escape(f, buf);
        fputs("</td><td>", f);
        svg_escape(f, s->date);
        fputs("</td></tr>\n", f);
    }
    fputs("</tbody></table>\n", f);
}

void report_write_html(FILE *f, const report *r)
{
    fputs("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>\n"
          "<title>loft benchmark report</title>\n<style>\n"
          "body{font-family:system-ui,sans-serif;margin:32px auto;max-width:1100px;color:#222;"
          "padding:0 16px}\n"
          "h1{font-size:26px;margin-bottom:4px}h2{font-size:20px;margin-top:36px;"
          "border-bottom:1px solid #ddd;padding-bottom:4px}\n"
          "table{border-collapse:collapse;margin:12px 0;font-size:14px}\n"
          "th,td{border:1px solid #ddd;padding:6px 10px}td{text-align:right;"
          "font-variant-numeric:tabular-nums}\n"
          "thead th{background:#f4f6fa;vertical-align:bottom}tbody th{text-align:left;"
          "background:#fafafa}\n"
          ".sub{font-weight:normal;color:#666;font-size:12px}.oom{color:#b22;background:#fdf0f0;"
          "text-align:center}\n"
          ".note{color:#555;font-size:13px}.sys td{text-align:left;font-size:12px}\n"
          ".charts svg{display:block;margin:18px 0}\n</style></head><body>\n"
          "<h1>loft benchmark report</h1>\n",
          f);
    fprintf(f,
            "<p class=note>%zu result file%s, %zu model%s. Generated by <code>loft "
            "report</code>.</p>\n",
            r->n_files, r->n_files == 1 ? "" : "s", r->n_tables, r->n_tables == 1 ? "" : "s");
    for (size_t ti = 0; ti < r->n_tables; ti++) {
        const report_table *t = &r->tables[ti];
        fputs("<h2>", f);
        svg_escape(f, t->model);
        fputs("</h2>\n", f);
        write_table_html(f, t);
        fputs("<div class=charts>\n", f);
        write_chart(f, r, t, false);
        write_chart(f, r, t, true);
        fputs("</div>\n", f);
    }
    write_machines_html(f, r);
    fputs("</body></html>\n", f);
}
