/*
 * Checks `loft suite` (src/suite/) end to end on a tiny plan: the tiny
 * llama with a byte-level tokenizer (tests/golden/suite/tiny-llama.gguf,
 * scripts/gen-suite-fixtures.py) and an 8 + 3 record biomedical-shaped
 * dataset, one thread, a few tokens and steps.
 *
 *   - interrupted after the prepare stage (the stop flag the SIGINT handler
 *     sets), then rerun: finished items are loaded, not redone (counters,
 *     and the stamps and quantized files keep their bytes and mtimes);
 *   - every figure of report.md's tables equals the one computed from
 *     results.json's samples, counts and loss curves;
 *   - `loft report`'s loader merges two suites' results.json into one table
 *     with the columns of both;
 *   - without data the inference stages run and the rest is reported as
 *     skipped with the reason; a second run with other settings is refused;
 *   - quick mode's validation subset is balanced across the labels.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/json.h"
#include "bench/report.h"
#include "eval/metrics.h"
#include "eval/records.h"
#include "suite/suite.h"
#include "suite/suite_impl.h"
#include "test.h"

static volatile sig_atomic_t stop_flag;

static char *make_tmp(void)
{
    char tmpl[] = "/tmp/loft-test-suite-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static void tiny_opts(suite_opts *o, const char *out, const char *data)
{
    suite_opts_default(o, false);
    static char models[512];
    snprintf(models, sizeof models, "%s", test_data_path("golden/suite"));
    o->models_dir = models;
    o->default_model = "tiny-llama.gguf";
    o->n_extra = 0;
    o->embed_model = NULL;
    o->data_dir = data;
    o->out_dir = out;
    o->threads[0] = 1;
    o->n_threads = 1;
    o->train_threads = 1;
    o->prompt_runs = 2;
    o->n_predict = 8;
    o->n_pp = 16;
    o->n_tg = 8;
    o->bench_reps = 2;
    o->max_steps = 3;
    o->eval_limit = 3;
    o->eval_n_predict = 8;
    o->command = "loft suite (test)";
    stop_flag = 0;
    o->stop = &stop_flag;
}

static void rm_tree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* One shared finished run (A) for the report checks. */
static char *run_a;

static const char *finished_run(void)
{
    if (run_a) return run_a;
    char *dir = make_tmp();
    if (!dir) return NULL;
    char data[512];
    snprintf(data, sizeof data, "%s", test_data_path("golden/suite"));
    suite_opts o;
    tiny_opts(&o, dir, data);
    suite_summary sum;
    loft_status st = {0};
    if (suite_run(&o, &sum, &st) != LOFT_OK || sum.stopped || sum.n_failed) {
        fprintf(stderr, "suite run failed: %s (failed items %d)\n", st.msg, sum.n_failed);
        rm_tree(dir);
        free(dir);
        return NULL;
    }
    run_a = dir;
    return run_a;
}

/* ---- resume ---------------------------------------------------------------------- */

typedef struct snap {
    char path[600];
    struct timespec mtime;
    char *bytes;
} snap;

static bool take(snap *s, const char *dir, const char *rel)
{
    snprintf(s->path, sizeof s->path, "%s/%s", dir, rel);
    struct stat sb;
    if (stat(s->path, &sb) != 0) return false;
    s->mtime = sb.st_mtim;
    s->bytes = test_read_file(s->path, NULL);
    return s->bytes != NULL;
}

static bool unchanged(const snap *s)
{
    struct stat sb;
    if (stat(s->path, &sb) != 0) return false;
    char *now = test_read_file(s->path, NULL);
    bool same = now && !strcmp(now, s->bytes) && sb.st_mtim.tv_sec == s->mtime.tv_sec &&
                sb.st_mtim.tv_nsec == s->mtime.tv_nsec;
    free(now);
    return same;
}

static void test_interrupt_and_resume(void)
{
    char *dir = make_tmp();
    CHECK(dir);
    char data[512];
    snprintf(data, sizeof data, "%s", test_data_path("golden/suite"));
    suite_opts o;
    tiny_opts(&o, dir, data);
    o.stop_after_items = 3; /* the three quantizations: the prepare stage */
    suite_summary sum;
    loft_status st = {0};
    CHECKF(suite_run(&o, &sum, &st) == LOFT_OK, "%s", st.msg);
    CHECK(sum.stopped);
    CHECK(sum.n_run == 3 && sum.n_loaded == 0);
    CHECK(sum.n_items > 3);
    snap s[5];
    CHECK(take(&s[0], dir, "state/prepare-f16.json"));
    CHECK(take(&s[1], dir, "state/prepare-q8_0.json"));
    CHECK(take(&s[2], dir, "state/stage-prepare.done"));
    CHECK(take(&s[3], dir, "models/tiny-llama-q4_0.gguf"));
    CHECK(take(&s[4], dir, "state/prepare-q4_0.json"));
    char p[600];
    snprintf(p, sizeof p, "%s/state/stage-inference.done", dir);
    CHECK(access(p, F_OK) != 0);
    snprintf(p, sizeof p, "%s/report.md", dir); /* a partial report is written on a stop */
    CHECK(access(p, F_OK) == 0);

    tiny_opts(&o, dir, data);
    CHECKF(suite_run(&o, &sum, &st) == LOFT_OK, "%s", st.msg);
    CHECK(!sum.stopped);
    CHECKF(sum.n_loaded == 3 && sum.n_run == sum.n_items - 3, "loaded %d run %d of %d",
           sum.n_loaded, sum.n_run, sum.n_items);
    for (int i = 0; i < 5; i++) {
        CHECKF(unchanged(&s[i]), "%s was rewritten", s[i].path);
        free(s[i].bytes);
    }
    /* A third run has nothing left to do. */
    int n_items = sum.n_items;
    CHECK(suite_run(&o, &sum, &st) == LOFT_OK);
    CHECK(sum.n_run == 0 && sum.n_loaded == n_items);
    snprintf(p, sizeof p, "%s/state/stage-report.done", dir);
    CHECK(access(p, F_OK) == 0);
    rm_tree(dir);
    free(dir);
}

/* ---- report.md against results.json ------------------------------------------------ */

/* The markdown line of a table row whose name is name (first match). */
static bool md_row(const char *md, const char *name, char *out, size_t cap)
{
    char key[128];
    snprintf(key, sizeof key, "\n| %s |", name);
    const char *p = strstr(md, key);
    if (!p) return false;
    p++;
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n >= cap) return false;
    memcpy(out, p, n);
    out[n] = 0;
    return true;
}

static double sample_stat(const json_value *a, int which)
{
    double lo = INFINITY, hi = -INFINITY, sum = 0;
    for (size_t i = 0; i < a->n; i++) {
        double v = a->items[i].number;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
        sum += v;
    }
    return which == 0 ? hi : which == 1 ? sum / (double)a->n : lo;
}

static const json_value *find_result(const json_value *res, const char *quant, const char *test)
{
    for (size_t i = 0; i < res->n; i++) {
        const json_value *r = &res->items[i];
        const char *q = json_get_str(r, "quant"), *t = json_get_str(r, "test");
        if (q && t && !strcmp(q, quant) && !strcmp(t, test)) return r;
    }
    return NULL;
}

static void test_report_matches_results(void)
{
    const char *dir = finished_run();
    CHECK(dir);
    char p[600];
    snprintf(p, sizeof p, "%s/results.json", dir);
    char *js = test_read_file(p, NULL);
    snprintf(p, sizeof p, "%s/report.md", dir);
    char *md = test_read_file(p, NULL);
    CHECK(js && md);
    json_doc *doc = NULL;
    loft_status st;
    CHECKF(json_parse(&doc, js, strlen(js), "results.json", &st) == LOFT_OK, "%s", st.msg);
    const json_value *root = json_doc_root(doc);
    const json_value *res = json_get(root, "results");
    const json_value *suite = json_get(root, "suite");
    CHECK(res && res->kind == JSON_ARRAY && suite);
    static const char *const quants[] = {"F16", "Q8_0", "Q4_0"};
    /* Inference: one column per quantization (1 thread), in the ladder's order. */
    static const char *const rows[] = {"Peak t/s",  "Avg t/s",  "Low t/s",
                                       "TTFT (ms)", "pp16 t/s", "tg8 t/s"};
    for (int k = 0; k < 6; k++) {
        char want[512], got[512];
        size_t n = (size_t)snprintf(want, sizeof want, "| %s |", rows[k]);
        for (int q = 0; q < 3; q++) {
            const json_value *r = find_result(res, quants[q],
                                              k < 4    ? "prompt"
                                              : k == 4 ? "pp16"
                                                       : "tg8");
            CHECK(r);
            const json_value *a = json_get(r, k == 3 ? "samples_ttft_ms" : "samples_ts");
            CHECK(a && a->kind == JSON_ARRAY && a->n == 2);
            double v = sample_stat(a, k < 3 ? k : 1);
            n += (size_t)snprintf(want + n, sizeof want - n, k == 3 ? " %.0f |" : " %.2f |", v);
        }
        CHECKF(md_row(md, rows[k], got, sizeof got), "no row %s", rows[k]);
        CHECKF(!strcmp(got, want), "report: %s\nresults: %s", got, want);
    }
    /* Accuracy and Jaccard from the counts. */
    const json_value *qual = json_get(suite, "quality");
    CHECK(qual && qual->kind == JSON_ARRAY && qual->n == 6);
    for (int tuned = 0; tuned < 2; tuned++) {
        char want[512], wantj[512], wanta[512], got[512];
        size_t n = (size_t)snprintf(want, sizeof want, "| accuracy, %s |",
                                    tuned ? "fine-tuned" : "untrained");
        size_t nj = (size_t)snprintf(wantj, sizeof wantj, "| Jaccard, %s |",
                                     tuned ? "fine-tuned" : "untrained");
        size_t na = (size_t)snprintf(wanta, sizeof wanta, "| answers Y/N/U/other, %s |",
                                     tuned ? "fine-tuned" : "untrained");
        for (int q = 0; q < 3; q++) {
            const json_value *e = NULL;
            for (size_t i = 0; i < qual->n; i++) {
                const json_value *c = &qual->items[i];
                const json_value *t = json_get(c, "tuned");
                if (!strcmp(json_get_str(c, "quant"), quants[q]) && t && t->boolean == tuned) e = c;
            }
            CHECK(e);
            double cn = json_get(e, "correct")->number, tot = json_get(e, "n")->number;
            CHECK(tot == 3);
            n += (size_t)snprintf(want + n, sizeof want - n, " %.1f%% (%.0f/%.0f) |",
                                  100.0 * cn / tot, cn, tot);
            nj += (size_t)snprintf(wantj + nj, sizeof wantj - nj, " %.4f |",
                                   json_get(e, "jaccard")->number);
            const json_value *pr = json_get(e, "predicted");
            CHECK(pr && pr->kind == JSON_ARRAY && pr->n == 4);
            CHECK(pr->items[0].number + pr->items[1].number + pr->items[2].number +
                      pr->items[3].number ==
                  tot);
            na += (size_t)snprintf(wanta + na, sizeof wanta - na, " %.0f/%.0f/%.0f/%.0f |",
                                   pr->items[0].number, pr->items[1].number, pr->items[2].number,
                                   pr->items[3].number);
        }
        CHECK(md_row(md, tuned ? "accuracy, fine-tuned" : "accuracy, untrained", got, sizeof got));
        CHECKF(!strcmp(got, want), "report: %s\nresults: %s", got, want);
        CHECK(md_row(md, tuned ? "Jaccard, fine-tuned" : "Jaccard, untrained", got, sizeof got));
        CHECKF(!strcmp(got, wantj), "report: %s\nresults: %s", got, wantj);
        CHECK(md_row(md,
                     tuned ? "answers Y/N/U/other, fine-tuned" : "answers Y/N/U/other, untrained",
                     got, sizeof got));
        CHECKF(!strcmp(got, wanta), "report: %s\nresults: %s", got, wanta);
    }
    /* Loss curve ends and step counts. */
    const json_value *tune = json_get(suite, "finetune");
    CHECK(tune && tune->kind == JSON_ARRAY && tune->n == 3);
    char want_first[512], want_last[512], want_steps[512], got[512];
    size_t nf = (size_t)snprintf(want_first, sizeof want_first, "| loss, first step |");
    size_t nl = (size_t)snprintf(want_last, sizeof want_last, "| loss, last step |");
    size_t ns = (size_t)snprintf(want_steps, sizeof want_steps, "| optimizer steps |");
    for (size_t i = 0; i < tune->n; i++) {
        const json_value *loss = json_get(&tune->items[i], "loss");
        CHECK(loss && loss->kind == JSON_ARRAY && loss->n == 3);
        CHECK(json_get(&tune->items[i], "steps")->number == 3);
        nf += (size_t)snprintf(want_first + nf, sizeof want_first - nf, " %.4f |",
                               loss->items[0].number);
        nl += (size_t)snprintf(want_last + nl, sizeof want_last - nl, " %.4f |",
                               loss->items[loss->n - 1].number);
        ns += (size_t)snprintf(want_steps + ns, sizeof want_steps - ns, " 3 |");
    }
    CHECK(md_row(md, "loss, first step", got, sizeof got) && !strcmp(got, want_first));
    CHECK(md_row(md, "loss, last step", got, sizeof got) && !strcmp(got, want_last));
    CHECK(md_row(md, "optimizer steps", got, sizeof got) && !strcmp(got, want_steps));
    /* The HTML page carries the same table cells and its charts. */
    snprintf(p, sizeof p, "%s/report.html", dir);
    char *html = test_read_file(p, NULL);
    CHECK(html);
    CHECK(strstr(html, "<polyline") && strstr(html, "<svg"));
    CHECK(strstr(html, "Validation accuracy"));
    free(html);
    json_doc_free(doc);
    free(js);
    free(md);
}

/* ---- merging two suites --------------------------------------------------------------- */

static void test_report_merges_two_suites(void)
{
    const char *dir = finished_run();
    CHECK(dir);
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/results.json", dir);
    snprintf(b, sizeof b, "%s/results-b.json", dir);
    char *text = test_read_file(a, NULL);
    CHECK(text);
    FILE *f = fopen(b, "wb");
    CHECK(f);
    fputs(text, f);
    fclose(f);
    free(text);
    const char *paths[2] = {a, b};
    report r;
    loft_status st;
    CHECKF(report_load(&r, paths, 2, &st) == LOFT_OK, "%s", st.msg);
    CHECK(r.n_files == 2 && r.n_tables == 1);
    CHECK(!strcmp(r.tables[0].model, "tiny-llama"));
    /* Three quantizations from each file, each column with its pp and tg row. */
    CHECKF(r.tables[0].n_cols == 6, "%zu columns", r.tables[0].n_cols);
    for (size_t i = 0; i < r.tables[0].n_cols; i++)
        CHECK(r.tables[0].cols[i].pp && r.tables[0].cols[i].tg);
    report_free(&r);
    /* And the program itself, when it is built. */
    const char *bin = test_loft_bin();
    if (access(bin, X_OK) == 0) {
        char cmd[2048], *out = NULL;
        snprintf(cmd, sizeof cmd, "%s report '%s' '%s' 2>&1", bin, a, b);
        int rc = test_run(cmd, &out);
        CHECKF(rc == 0 && out && strstr(out, "## tiny-llama\n"), "%s", out ? out : "");
        const char *hdr = strstr(out, "| --- |");
        CHECK(hdr);
        int n = 0;
        for (const char *q = hdr; *q && *q != '\n'; q++)
            n += *q == '|';
        CHECKF(n == 8, "table separator has %d bars", n); /* row name + 6 columns */
        free(out);
    }
}

/* ---- without data; other settings ---------------------------------------------------- */

static void test_no_data_and_settings(void)
{
    char *dir = make_tmp();
    CHECK(dir);
    suite_opts o;
    tiny_opts(&o, dir, "/nonexistent/loft-data");
    suite_summary sum;
    loft_status st = {0};
    CHECKF(suite_run(&o, &sum, &st) == LOFT_OK, "%s", st.msg);
    CHECK(!sum.stopped && sum.n_items == 6); /* 3 prepare + 3 inference */
    char p[600];
    snprintf(p, sizeof p, "%s/report.md", dir);
    char *md = test_read_file(p, NULL);
    CHECK(md);
    CHECK(
        strstr(md, "Skipped: finetune (no training data: /nonexistent/loft-data is not a folder)"));
    CHECK(strstr(md, "Skipped: quality (no training data"));
    CHECK(strstr(md, "| Peak t/s |"));
    free(md);
    snprintf(p, sizeof p, "%s/results.json", dir);
    char *js = test_read_file(p, NULL);
    CHECK(js && strstr(js, "\"skipped\": {\"finetune\": \"no training data"));
    free(js);
    /* The same folder with other settings is refused, naming the file. */
    o.prompt_runs = 3;
    CHECK(suite_run(&o, &sum, &st) == LOFT_ERR_ARG);
    CHECK(strstr(st.msg, "settings.json") && strstr(st.msg, "other settings"));
    rm_tree(dir);
    free(dir);
}

/* Quick mode's subset of a label-sorted split takes every label. */
static void test_balanced_subset(void)
{
    static char *labs[] = {"No", "No", "No", "Yes", "Yes", "Uncertain", "Uncertain"};
    eval_record r[7];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 7; i++)
        r[i].label = labs[i];
    eval_records rs = {r, 7};
    eval_labels l;
    eval_labels_default(&l);
    size_t pick[7];
    CHECK(suite_pick_records(&rs, &l, 3, pick) == 3);
    CHECK(pick[0] == 0 && pick[1] == 3 && pick[2] == 5);
    CHECK(suite_pick_records(&rs, &l, 5, pick) == 5);
    CHECK(pick[3] == 1 && pick[4] == 4);
    CHECK(suite_pick_records(&rs, &l, 0, pick) == 7 && pick[6] == 6);
    CHECK(suite_pick_records(&rs, &l, 7, pick) == 7);
}

static void test_cleanup(void)
{
    if (run_a) rm_tree(run_a);
    free(run_a);
    run_a = NULL;
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"interrupt_and_resume", test_interrupt_and_resume},
        {"report_matches_results", test_report_matches_results},
        {"report_merges_two_suites", test_report_merges_two_suites},
        {"no_data_and_settings", test_no_data_and_settings},
        {"balanced_subset", test_balanced_subset},
        {"zz_cleanup", test_cleanup},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
