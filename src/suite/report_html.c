/*
 * report_html.c - OUT/report.html: the tables of report.md (from the same
 * grids) with inline SVG charts: generation tokens/s per quantization (bar
 * charts of src/bench/svg.c, whiskers from low to peak), the loss curves
 * (a line chart drawn here), and accuracy untrained vs fine-tuned (bars).
 * No scripts, no external files.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench/svg.h"
#include "suite/suite_impl.h"

static const char *const palette[] = {"#3b6fd4", "#e07b28", "#2e9e5b",
                                      "#b8436b", "#7a5cc9", "#8c8c2a"};

static void write_grid_html(FILE *f, const suite_grid *g)
{
    if (!g->n_cols) return;
    fputs("<table><thead><tr><th>", f);
    svg_escape(f, g->corner);
    fputs("</th>", f);
    for (int k = 0; k < g->n_cols; k++) {
        fputs("<th>", f);
        svg_escape(f, g->head[k]);
        fputs("</th>", f);
    }
    fputs("</tr></thead><tbody>\n", f);
    for (int i = 0; i < g->n_rows; i++) {
        fputs("<tr><th>", f);
        svg_escape(f, g->rowname[i]);
        fputs("</th>", f);
        for (int k = 0; k < g->n_cols; k++) {
            fputs("<td>", f);
            svg_escape(f, g->cell[i][k]);
            fputs("</td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("</tbody></table>\n", f);
    if (g->note[0]) {
        fputs("<p class=note>", f);
        svg_escape(f, g->note);
        fputs("</p>\n", f);
    }
}

/* Generation t/s of one model's prompt rows, one bar per quantization x threads. */
static void speed_chart(FILE *f, const suite_ctx *c, const char *model)
{
    const suite_results *r = c->res;
    svg_bar bars[GRID_MAX_COLS];
    char subs[GRID_MAX_COLS][48];
    size_t n = 0;
    for (size_t i = 0; i < r->n_rows && n < GRID_MAX_COLS; i++) {
        const bench_result *b = &r->rows[i];
        if (strcmp(suite_row_model(b), model) || strcmp(b->test, "prompt")) continue;
        snprintf(subs[n], sizeof subs[n], "%d thread%s", b->n_threads, b->n_threads > 1 ? "s" : "");
        bars[n] = (svg_bar){.label = b->quant,
                            .sublabel = subs[n],
                            .color = palette[n % 6],
                            .value = b->ts.mean,
                            .lo = b->ts.min,
                            .hi = b->ts.max,
                            .note = b->error[0] ? "failed"
                                    : b->oom    ? "OOM"
                                                : NULL};
        n++;
    }
    if (!n) return;
    char title[200];
    snprintf(title, sizeof title, "%s: generation tokens/s (avg, whisker low to peak)", model);
    svg_bar_chart(f, title, "tokens/s", 2, bars, n, 900);
}

/* The loss of every step of each run as a polyline. */
static void loss_chart(FILE *f, const suite_results *r)
{
    size_t max_n = 0;
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < r->n_tune; i++) {
        const suite_tune_result *t = &r->tune[i];
        if (t->n_loss > max_n) max_n = t->n_loss;
        for (size_t k = 0; k < t->n_loss; k++)
            if (isfinite(t->loss[k])) {
                if (t->loss[k] < lo) lo = t->loss[k];
                if (t->loss[k] > hi) hi = t->loss[k];
            }
    }
    if (max_n < 1 || !(hi >= lo)) return;
    const int W = 900, H = 360, L = 60, R = 150, T = 40, B = 40;
    const int pw = W - L - R, ph = H - T - B;
    double step = svg_nice_step(hi - lo > 0 ? hi - lo : 1, 5);
    double y0 = floor(lo / step) * step, y1 = ceil(hi / step) * step;
    if (y1 <= y0) y1 = y0 + step;
    double x_den = max_n > 1 ? (double)(max_n - 1) : 1;
    fprintf(f,
            "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' "
            "font-family='system-ui,sans-serif' font-size='12'>\n"
            "<text x='%d' y='22' font-size='15' font-weight='bold'>Training loss per "
            "optimizer step</text>\n",
            W, H, L);
    for (double v = y0; v <= y1 + step * 0.5; v += step) {
        double y = T + ph - (v - y0) / (y1 - y0) * ph;
        fprintf(f,
                "<line x1='%d' x2='%d' y1='%.1f' y2='%.1f' stroke='#e4e4e4'/>"
                "<text x='%d' y='%.1f' text-anchor='end' fill='#555'>%.2f</text>\n",
                L, L + pw, y, y, L - 6, y + 4, v);
    }
    fprintf(f, "<text x='%d' y='%d' text-anchor='middle' fill='#555'>step (1 to %zu)</text>\n",
            L + pw / 2, H - 10, max_n);
    for (int i = 0; i < r->n_tune; i++) {
        const suite_tune_result *t = &r->tune[i];
        if (!t->n_loss) continue;
        fprintf(f, "<polyline fill='none' stroke-width='2' stroke='%s' points='", palette[i % 6]);
        for (size_t k = 0; k < t->n_loss; k++)
            if (isfinite(t->loss[k]))
                fprintf(f, "%.1f,%.1f ", L + (double)k / x_den * pw,
                        T + ph - (t->loss[k] - y0) / (y1 - y0) * ph);
        fputs("'/>\n", f);
        fprintf(f, "<rect x='%d' y='%d' width='14' height='4' fill='%s'/><text x='%d' y='%d'>",
                L + pw + 16, T + 10 + 20 * i, palette[i % 6], L + pw + 36, T + 15 + 20 * i);
        svg_escape(f, t->quant);
        fputs(" base</text>\n", f);
    }
    fputs("</svg>\n", f);
}

static void accuracy_chart(FILE *f, const suite_results *r)
{
    svg_bar bars[2 * SUITE_MAX_QUANTS];
    size_t n = 0;
    for (int i = 0; i < r->n_qual; i++) {
        const suite_quality_result *q = &r->qual[i];
        bars[n++] = (svg_bar){.label = q->quant,
                              .sublabel = q->tuned ? "fine-tuned" : "untrained",
                              .color = q->tuned ? "#2e9e5b" : "#9aa5b8",
                              .value = 100.0 * q->accuracy,
                              .lo = NAN,
                              .hi = NAN,
                              .note = q->error[0] ? "failed" : NULL};
    }
    if (n) svg_bar_chart(f, "Validation accuracy, untrained vs fine-tuned", "%", 1, bars, n, 900);
}

static void section(FILE *f, const char *title)
{
    fputs("<h2>", f);
    svg_escape(f, title);
    fputs("</h2>\n", f);
}

static void skipped(FILE *f, const suite_results *r, suite_stage s)
{
    if (!r->skipped[s][0]) return;
    fputs("<p class=note>Skipped: ", f);
    svg_escape(f, r->skipped[s]);
    fputs(".</p>\n", f);
}

/* Writes markdown text as HTML text: escaped, without the code and bold
 * marks. */
static void md_text(FILE *f, const char *s)
{
    char buf[2];
    buf[1] = 0;
    for (; *s; s++) {
        if (*s == '`' || *s == '*') continue;
        buf[0] = *s;
        svg_escape(f, buf);
    }
}

/* Writes the lines a writer produces as a list: "- " lines are items,
 * indented lines continue the item before. */
static void list_html(FILE *f, const suite_ctx *c, void (*write)(FILE *, const suite_ctx *))
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m) return;
    write(m, c);
    fclose(m);
    fputs("<ul>", f);
    bool open = false;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        if (!strncmp(line, "- ", 2)) {
            fputs(open ? "</li>\n<li>" : "\n<li>", f);
            open = true;
            md_text(f, line + 2);
        } else {
            fputc(' ', f);
            md_text(f, line);
        }
        line = nl ? nl + 1 : NULL;
    }
    fputs(open ? "</li>\n</ul>\n" : "</ul>\n", f);
    free(text);
}

static void write_sysinfo(FILE *f, const suite_ctx *c)
{
    sysinfo_write_markdown(f, &c->res->si);
}

/* Writes the markdown-free text of a few lines through a memory stream. */
static void commands_html(FILE *f, const suite_ctx *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m) return;
    suite_write_commands(m, c, "", "\n");
    fclose(m);
    fputs("<pre>", f);
    if (text) svg_escape(f, text);
    fputs("</pre>\n", f);
    free(text);
}

void suite_write_report_html(FILE *f, const suite_ctx *c)
{
    const suite_results *r = c->res;
    const suite_opts *o = c->o;
    fputs("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>\n"
          "<title>loft benchmark report</title>\n<style>\n"
          "body{font-family:system-ui,sans-serif;margin:32px auto;max-width:1100px;color:#222;"
          "padding:0 16px}\nh1{font-size:26px;margin-bottom:4px}h2{font-size:20px;"
          "margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}\n"
          "table{border-collapse:collapse;margin:12px 0;font-size:14px}\n"
          "th,td{border:1px solid #ddd;padding:6px 10px}td{text-align:right;"
          "font-variant-numeric:tabular-nums}\nthead th{background:#f4f6fa}"
          "tbody th{text-align:left;background:#fafafa;font-weight:normal}\n"
          ".note{color:#555;font-size:13px}pre{background:#f6f6f6;padding:10px;font-size:12px;"
          "white-space:pre-wrap}\nsvg{display:block;margin:18px 0}\n</style></head><body>\n",
          f);
    fputs("<h1>loft benchmark report: ", f);
    svg_escape(f, r->si.cpu_model);
    fputs("</h1>\n<p class=note>Generated by <code>loft suite</code> (", f);
    svg_escape(f, o->full ? "full" : "quick");
    fputs(" mode) on ", f);
    svg_escape(f, r->si.date);
    fputs(". Figures are those of results.json.</p>\n", f);
    section(f, "Test configuration");
    list_html(f, c, suite_write_config);
    fputs("<p>Commands (the suite runs the library functions behind these):</p>\n", f);
    commands_html(f, c);

    section(f, "Inference performance");
    const char *names[SUITE_MAX_MODELS];
    int nm = suite_infer_models(r, names, SUITE_MAX_MODELS);
    suite_grid *g = calloc(1, sizeof *g);
    if (!g) return;
    for (int i = 0; i < nm; i++) {
        suite_grid_inference(c, names[i], g);
        fputs("<h3>", f);
        svg_escape(f, g->title);
        fputs("</h3>\n", f);
        write_grid_html(f, g);
        speed_chart(f, c, names[i]);
    }
    section(f, "Fine-tuning quality");
    skipped(f, r, SUITE_TUNE);
    suite_grid_tune(c, g);
    write_grid_html(f, g);
    loss_chart(f, r);
    section(f, "Accuracy");
    skipped(f, r, SUITE_QUALITY);
    suite_grid_quality(c, g);
    write_grid_html(f, g);
    accuracy_chart(f, r);
    section(f, "Fine-tuning completion time");
    suite_grid_time(c, g);
    write_grid_html(f, g);
    free(g);
    section(f, "Key findings");
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (m) {
        suite_findings(c, m, "", "\n");
        fclose(m);
        fputs("<ul>\n", f);
        for (char *line = text; line && *line;) {
            char *nl = strchr(line, '\n');
            if (nl) *nl = 0;
            fputs("<li>", f);
            svg_escape(f, line);
            fputs("</li>\n", f);
            line = nl ? nl + 1 : NULL;
        }
        fputs("</ul>\n", f);
        free(text);
    }
    section(f, "Hardware specification");
    list_html(f, c, write_sysinfo);
    fputs("</body></html>\n", f);
}
