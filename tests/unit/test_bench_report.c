/*
 * Checks the benchmark output formats and the report merge: rows written
 * as JSON / JSONL are parsed back with the JSON reader, CSV rows have the
 * header's column count, markdown has the table; bench_read_json round-trips
 * the rows; two hand-made result files (tests/golden/bench/) merge into the
 * expected table cells, OOM cell included; the HTML page carries one chart
 * per model and metric and escapes text.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "bench/report.h"
#include "bench/results.h"
#include "bench/svg.h"
#include "test.h"

/* ---- helpers ----------------------------------------------------------- */

typedef struct membuf {
    char *data;
    size_t len;
    FILE *f;
} membuf;

static bool mem_open(membuf *m)
{
    memset(m, 0, sizeof *m);
    m->f = open_memstream(&m->data, &m->len);
    return m->f != NULL;
}

static void mem_close(membuf *m)
{
    fclose(m->f);
    m->f = NULL;
}

static void sample_system(sysinfo *si)
{
    memset(si, 0, sizeof *si);
    snprintf(si->cpu_model, sizeof si->cpu_model, "Test CPU \"quoted\", with comma");
    snprintf(si->isa_used, sizeof si->isa_used, "avx2");
    snprintf(si->git_commit, sizeof si->git_commit, "0123abcd");
    snprintf(si->os, sizeof si->os, "TestOS 1");
    si->threads = 8;
    si->cores = 4;
    si->ram_total = 17179869184ull;
}

static void sample_rows(bench_result *r, size_t n)
{
    memset(r, 0, n * sizeof *r);
    for (size_t i = 0; i < n; i++) {
        snprintf(r[i].model_file, sizeof r[i].model_file, "models/m%zu.gguf", i);
        snprintf(r[i].model_name, sizeof r[i].model_name, "Model, number %zu", i);
        snprintf(r[i].model_type, sizeof r[i].model_type, "llama 1M Q4_0");
        snprintf(r[i].quant, sizeof r[i].quant, "Q4_0");
        snprintf(r[i].backend, sizeof r[i].backend, "CPU");
        r[i].model_size = 123456789ull + i;
        r[i].n_params = 1000000;
        r[i].n_threads = (int)i + 1;
        r[i].n_prompt = i % 2 ? 0 : 512;
        r[i].n_gen = i % 2 ? 128 : 0;
        snprintf(r[i].test, sizeof r[i].test, i % 2 ? "tg128" : "pp512");
        r[i].reps = 3;
        for (int k = 0; k < 3; k++) {
            r[i].samples_ts[k] = 10.0 * (double)(i + 1) + k;
            r[i].samples_ttft[k] = 100.0 + k;
        }
        bench_result_finish(&r[i]);
    }
    r[n - 1].oom = true;
    r[n - 1].oom_need = 3ull << 30;
    r[n - 1].oom_have = 1ull << 30;
}

/* ---- formats -------------------------------------------------------------- */

static void test_json_format(void)
{
    bench_result rows[3];
    sysinfo si;
    sample_rows(rows, 3);
    sample_system(&si);
    membuf m;
    CHECK(mem_open(&m));
    bench_write(m.f, BENCH_FMT_JSON, &si, rows, 3);
    mem_close(&m);
    json_doc *doc = NULL;
    loft_status st;
    loft_code rc = json_parse(&doc, m.data, m.len, "bench.json", &st);
    if (rc != LOFT_OK) fprintf(stderr, "    %s\n", st.msg);
    free(m.data);
    CHECK(rc == LOFT_OK);
    const json_value *root = json_doc_root(doc);
    const json_value *res = json_get(root, "results");
    const json_value *sys = json_get(root, "system");
    bool ok = res && res->kind == JSON_ARRAY && res->n == 3 && sys &&
              !strcmp(json_get_str(sys, "cpu_model"), si.cpu_model) &&
              !strcmp(json_get_str(sys, "git_commit"), "0123abcd");
    const json_value *r1 = ok ? &res->items[1] : NULL;
    ok = ok && !strcmp(json_get_str(r1, "test"), "tg128") &&
         !strcmp(json_get_str(r1, "model_name"), "Model, number 1") &&
         json_get(r1, "n_threads")->number == 2 && json_get(r1, "avg_ts")->number == 21.0 &&
         json_get(r1, "min_ts")->number == 20.0 && json_get(r1, "max_ts")->number == 22.0 &&
         json_get(r1, "stddev_ts")->number == 1.0 && json_get(r1, "samples_ts")->n == 3 &&
         json_get(r1, "model_size")->number == 123456790.0 &&
         json_get(&res->items[2], "oom")->boolean;
    json_doc_free(doc);
    CHECK(ok);
}

static void test_jsonl_format(void)
{
    bench_result rows[2];
    sysinfo si;
    sample_rows(rows, 2);
    sample_system(&si);
    membuf m;
    CHECK(mem_open(&m));
    bench_write(m.f, BENCH_FMT_JSONL, &si, rows, 2);
    mem_close(&m);
    int lines = 0;
    bool ok = true;
    for (char *p = m.data, *nl; ok && (nl = strchr(p, '\n')); p = nl + 1, lines++) {
        json_doc *doc = NULL;
        loft_status st;
        ok = json_parse(&doc, p, (size_t)(nl - p), "line", &st) == LOFT_OK;
        if (!ok) fprintf(stderr, "    line %d: %s\n", lines + 1, st.msg);
        ok = ok && json_get(json_doc_root(doc), "system") &&
             json_get(json_doc_root(doc), "n_threads")->number == lines + 1;
        json_doc_free(doc);
    }
    free(m.data);
    CHECK(ok);
    CHECK(lines == 2);
}

/* Fields of one CSV line, honouring quotes. */
static int csv_fields(const char *line, size_t len)
{
    int n = 1;
    bool q = false;
    for (size_t i = 0; i < len; i++) {
        if (line[i] == '"')
            q = !q;
        else if (line[i] == ',' && !q)
            n++;
    }
    return q ? -1 : n;
}

static void test_csv_format(void)
{
    bench_result rows[3];
    sysinfo si;
    sample_rows(rows, 3);
    sample_system(&si);
    membuf m;
    CHECK(mem_open(&m));
    bench_write(m.f, BENCH_FMT_CSV, &si, rows, 3);
    mem_close(&m);
    int lines = 0, header = -1;
    bool ok = true;
    for (char *p = m.data, *nl; (nl = strchr(p, '\n')); p = nl + 1, lines++) {
        int n = csv_fields(p, (size_t)(nl - p));
        if (header < 0) header = n;
        if (n != header) ok = false;
    }
    bool quoted = strstr(m.data, "\"Model, number 0\"") &&
                  strstr(m.data, "\"Test CPU \"\"quoted\"\", with comma\"");
    free(m.data);
    CHECKF(ok, "a CSV line has a different column count than the header (%d)", header);
    CHECK(lines == 4 && header > 20);
    CHECK(quoted);
}

static void test_markdown_format(void)
{
    bench_result rows[3];
    sysinfo si;
    sample_rows(rows, 3);
    sample_system(&si);
    membuf m;
    CHECK(mem_open(&m));
    bench_write(m.f, BENCH_FMT_MD, &si, rows, 3);
    mem_close(&m);
    bool ok = strstr(m.data, "| model | size | params | backend | threads |") &&
              strstr(m.data, "| pp512 | 10.00 ± 0.00 |") == NULL && /* stddev of 10,11,12 is 1 */
              strstr(m.data, "| pp512 | 11.00 ± 1.00 |") &&
              strstr(m.data, "OOM (needs 3.00 GiB, has 1.00 GiB)") &&
              strstr(m.data, "commit 0123abcd");
    if (!ok) fprintf(stderr, "%s", m.data);
    free(m.data);
    CHECK(ok);
}

static void test_json_round_trip(void)
{
    bench_result rows[3];
    sysinfo si;
    sample_rows(rows, 3);
    sample_system(&si);
    char path[] = "/tmp/loft-test-bench-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    CHECK(f);
    bench_write(f, BENCH_FMT_JSON, &si, rows, 3);
    fclose(f);
    sysinfo si2;
    bench_result *back = NULL;
    size_t n = 0;
    loft_status st;
    loft_code rc = bench_read_json(path, &si2, &back, &n, &st);
    remove(path);
    CHECKF(rc == LOFT_OK, "%s", st.msg);
    bool ok = n == 3 && !strcmp(si2.cpu_model, si.cpu_model) && si2.threads == 8 &&
              si2.ram_total == si.ram_total;
    for (size_t i = 0; ok && i < 3; i++)
        ok = !strcmp(back[i].model_name, rows[i].model_name) &&
             !strcmp(back[i].test, rows[i].test) && back[i].n_threads == rows[i].n_threads &&
             back[i].model_size == rows[i].model_size && back[i].reps == 3 &&
             back[i].oom == rows[i].oom && back[i].oom_need == rows[i].oom_need &&
             back[i].ts.mean == rows[i].ts.mean && back[i].ts.max == rows[i].ts.max &&
             back[i].ttft.mean == rows[i].ttft.mean;
    free(back);
    CHECK(ok);
}

static void test_read_rejects(void)
{
    char path[] = "/tmp/loft-test-bench-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("{\"loft_bench\": 1, \"results\": [{\"n_threads\": \"four\"}]}", f);
    fclose(f);
    sysinfo si;
    bench_result *rows = NULL;
    size_t n;
    loft_status st;
    loft_code rc = bench_read_json(path, &si, &rows, &n, &st);
    CHECK(rc == LOFT_ERR_FORMAT && strstr(st.msg, "n_threads") && strstr(st.msg, path));
    f = fopen(path, "w");
    fputs("{\"results\": []}", f);
    fclose(f);
    rc = bench_read_json(path, &si, &rows, &n, &st);
    remove(path);
    CHECK(rc == LOFT_ERR_FORMAT && strstr(st.msg, "not a loft bench"));
}

/* ---- report merge ---------------------------------------------------------- */

static loft_code load_fixtures(report *r, loft_status *st)
{
    char a[512], b[512];
    snprintf(a, sizeof a, "%s", test_data_path("golden/bench/report-a.json"));
    snprintf(b, sizeof b, "%s", test_data_path("golden/bench/report-b.json"));
    const char *paths[] = {a, b};
    return report_load(r, paths, 2, st);
}

static void test_report_merge(void)
{
    report r;
    loft_status st;
    loft_code rc = load_fixtures(&r, &st);
    CHECKF(rc == LOFT_OK, "%s", st.msg);
    bool ok = r.n_files == 2 && r.n_tables == 2 && !strcmp(r.tables[0].model, "Tiny Model") &&
              !strcmp(r.tables[1].model, "Other Model") && r.tables[0].n_cols == 3 &&
              r.tables[1].n_cols == 1;
    if (!ok) {
        report_free(&r);
        CHECK(ok);
    }
    const report_table *t = &r.tables[0];
    static const char *const want[3][REPORT_N_ROWS] = {
        {"14.00", "12.00", "10.00", "600", "110.00"},
        {"30.00", "25.00", "20.00", "300", "220.00"},
        {"OOM (needs 3.00 GiB, has 1.00 GiB)", "OOM (needs 3.00 GiB, has 1.00 GiB)",
         "OOM (needs 3.00 GiB, has 1.00 GiB)", "OOM (needs 3.00 GiB, has 1.00 GiB)",
         "OOM (needs 3.00 GiB, has 1.00 GiB)"},
    };
    static const char *const dev[3] = {"Intel Xeon Gold 6230", "AMD Ryzen 7 5800X",
                                       "AMD Ryzen 7 5800X"};
    static const char *const quant[3] = {"Q4_0", "Q8_0", "Q4_0"};
    char cell[128], msg[512] = "";
    for (int c = 0; c < 3 && !msg[0]; c++) {
        if (strcmp(t->cols[c].device, dev[c]) || strcmp(t->cols[c].quant, quant[c]))
            snprintf(msg, sizeof msg, "column %d is '%s' '%s'", c, t->cols[c].device,
                     t->cols[c].quant);
        for (int row = 0; row < REPORT_N_ROWS && !msg[0]; row++) {
            report_cell(&t->cols[c], row, cell, sizeof cell);
            if (strcmp(cell, want[c][row]))
                snprintf(msg, sizeof msg, "column %d row %s: '%s', expected '%s'", c,
                         report_row_name(row), cell, want[c][row]);
        }
    }
    /* The model measured only for generation has no prompt cells. */
    report_cell(&r.tables[1].cols[0], 3, cell, sizeof cell);
    if (!msg[0] && strcmp(cell, "—")) snprintf(msg, sizeof msg, "missing TTFT cell is '%s'", cell);
    report_free(&r);
    CHECKF(!msg[0], "%s", msg);
}

static void test_report_markdown_html(void)
{
    report r;
    loft_status st;
    CHECK(load_fixtures(&r, &st) == LOFT_OK);
    membuf md, html;
    CHECK(mem_open(&md) && mem_open(&html));
    report_write_markdown(md.f, &r);
    report_write_html(html.f, &r);
    mem_close(&md);
    mem_close(&html);
    report_free(&r);
    bool md_ok =
        strstr(md.data, "| Peak t/s | 14.00 | 30.00 | OOM (needs 3.00 GiB, has 1.00 GiB) |") &&
        strstr(md.data,
               "|  | Intel Xeon Gold 6230 / Q4_0, 4 thr | AMD Ryzen 7 5800X / Q8_0, 8 thr |") &&
        strstr(md.data, "| TTFT (ms) | 600 | 300 |");
    int svgs = 0, closes = 0;
    for (const char *p = html.data; (p = strstr(p, "<svg")); p++)
        svgs++;
    for (const char *p = html.data; (p = strstr(p, "</svg>")); p++)
        closes++;
    /* Two charts for Tiny Model; Other Model has no prompt test, so only its
     * generation chart. */
    bool html_ok = svgs == 3 && closes == 3 && !strstr(html.data, "<script") &&
                   strstr(html.data, "</html>") && strstr(html.data, "class=oom");
    if (!md_ok) fprintf(stderr, "%s", md.data);
    free(md.data);
    free(html.data);
    CHECK(md_ok);
    CHECKF(html_ok, "svg %d / %d", svgs, closes);
}

static void test_svg_pieces(void)
{
    CHECK(svg_nice_step(100, 5) == 20);
    CHECK(svg_nice_step(7, 5) == 2);
    CHECK(fabs(svg_nice_step(0.9, 5) - 0.2) < 1e-12);
    CHECK(svg_nice_step(0, 5) == 1);
    membuf m;
    CHECK(mem_open(&m));
    svg_bar bars[2] = {{"a<b & \"c\"", "q", "#123", 3.5, 3, 4, NULL},
                       {"d", NULL, NULL, 0, NAN, NAN, "OOM (needs 2 GiB)"}};
    svg_bar_chart(m.f, "T & T", "tokens/s", 1, bars, 2, 600);
    mem_close(&m);
    bool ok = strstr(m.data, "a&lt;b &amp; &quot;c&quot;") && strstr(m.data, "T &amp; T") &&
              strstr(m.data, ">3.5</text>") && strstr(m.data, "OOM (needs 2 GiB)") &&
              !strstr(m.data, "a<b");
    free(m.data);
    CHECK(ok);
}

/* The run --bench table: peak / avg / low are max / mean / min of the runs. */
static void test_run_table(void)
{
    const double gen[] = {10, 30, 20}, ttft[] = {100, 300, 200}, prompt[] = {50, 70, 60};
    membuf m;
    CHECK(mem_open(&m));
    bench_write_run_table(m.f, gen, ttft, prompt, 3, 100ull << 20);
    mem_close(&m);
    bool ok =
        strstr(m.data, "| Peak t/s | Avg t/s | Low t/s |") &&
        strstr(m.data,
               "| 3 | 30.00 | 20.00 | 10.00 | 200.0 (100.0–300.0) | 60.00 ± 10.00 | 100.0 MiB |");
    if (!ok) fprintf(stderr, "%s", m.data);
    free(m.data);
    CHECK(ok);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"json_format", test_json_format},
        {"jsonl_format", test_jsonl_format},
        {"csv_format", test_csv_format},
        {"markdown_format", test_markdown_format},
        {"json_round_trip", test_json_round_trip},
        {"read_rejects", test_read_rejects},
        {"report_merge", test_report_merge},
        {"report_markdown_html", test_report_markdown_html},
        {"svg_pieces", test_svg_pieces},
        {"run_table", test_run_table},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
