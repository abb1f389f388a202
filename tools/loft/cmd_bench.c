/*
 * cmd_bench.c - `loft bench`: llama-bench's command line. Every combination
 * of model x test (-p, -n, -pg) x threads x batch x ubatch is one row with
 * mean ± stddev tokens/s over -r repetitions; the output (-o md|json|jsonl|
 * csv) carries the machine and build record. Before loading a model its
 * memory need is estimated; one that does not fit (--mem-limit, else the
 * RAM available) is not loaded and its rows say "OOM (needs X, has Y)".
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "base/threadpool.h"
#include "bench/memfit.h"
#include "bench/sysinfo.h"
#include "commands.h"
#include "kernels/kernels.h"

#define MAX_LIST 64

typedef struct int_list {
    int v[MAX_LIST];
    int n;
} int_list;

typedef struct bench_opts {
    const char *models[MAX_LIST];
    int n_models;
    char *model_lists[MAX_LIST]; /* the -m arguments, split in place; freed at the end */
    int n_model_lists;
    int_list prompt, gen, threads, batch, ubatch;
    int pg[MAX_LIST][2];
    int n_pg;
    bool prompt_set, gen_set;
    int reps;
    double delay;
    bench_format fmt;
    uint64_t mem_limit;
    bool warmup, progress, hash;
} bench_opts;

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: loft bench [options]\n\n"
        "  -m, --model FILE      model (repeat, or a comma list)       (default: none)\n"
        "  -p, --n-prompt LIST   prompt sizes                          (default: 512)\n"
        "  -n, --n-gen LIST      generation sizes                      (default: 128)\n"
        "  -pg P,G               prompt P then G generated (repeat)\n"
        "  -t, --threads LIST    thread counts                         (default: %d)\n"
        "  -b, --batch-size LIST prompt tokens per forward call        (default: 2048)\n"
        "  -ub, --ubatch-size LIST  recorded (loft splits batches itself) (default: 512)\n"
        "  -r, --repetitions N   timed runs per row, after a warm-up   (default: 5)\n"
        "  --delay S             seconds to sleep between rows         (default: 0)\n"
        "  -o, --output FMT      md, json, jsonl or csv                (default: md)\n"
        "  --mem-limit SIZE      refuse rows needing more (512M, 8G)   (default: RAM available)\n"
        "  --no-warmup           skip the untimed warm-up run\n"
        "  --no-hash             skip the model file sha256\n"
        "  --progress / --no-progress  the stderr progress line        (default: on)\n"
        "LIST is a comma list of numbers or ranges first-last[+step].\n"
        "-ngl, -fa, -mmp, -sm, -mg, -nkvo, -ctk, -ctv mean nothing on a CPU and are ignored.\n",
        threadpool_cpu_count());
}

/* Parses "1,2,8-16+4" into l (appending). */
static bool parse_list(const char *s, int_list *l)
{
    while (*s) {
        char *end;
        long a = strtol(s, &end, 10), b = a, step = 1;
        if (end == s) return false;
        if (*end == '-') {
            const char *p = end + 1;
            b = strtol(p, &end, 10);
            if (end == p) return false;
            if (*end == '+') {
                p = end + 1;
                step = strtol(p, &end, 10);
                if (end == p || step < 1) return false;
            }
        }
        if (a < 0 || b < a || b > 1 << 24) return false;
        for (long v = a; v <= b; v += step) {
            if (l->n >= MAX_LIST) return false;
            l->v[l->n++] = (int)v;
        }
        if (*end == ',')
            end++;
        else if (*end)
            return false;
        s = end;
    }
    return l->n > 0;
}

static bool is_ignored_flag(const char *a, bool *takes_value)
{
    static const char *const with_value[] = {"-ngl",  "--n-gpu-layers", "-fa",   "--flash-attn",
                                             "-mmp",  "--mmap",         "-sm",   "--split-mode",
                                             "-mg",   "--main-gpu",     "-nkvo", "--no-kv-offload",
                                             "-ctk",  "--cache-type-k", "-ctv",  "--cache-type-v",
                                             "-embd", "--embeddings",   "-ts",   "--tensor-split"};
    for (size_t i = 0; i < sizeof with_value / sizeof with_value[0]; i++)
        if (!strcmp(a, with_value[i])) {
            *takes_value = true;
            return true;
        }
    return false;
}

/* Returns 0 to go on, or an exit status. */
static int parse_args(int argc, char **argv, bench_opts *o)
{
    memset(o, 0, sizeof *o);
    o->reps = 5;
    o->fmt = BENCH_FMT_MD;
    o->warmup = o->progress = o->hash = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true, takes = false;
#define IS(x, y) (!strcmp(a, x) || !strcmp(a, y))
        if (IS("-h", "--help")) {
            usage(stdout);
            return -1;
        } else if (!strcmp(a, "--no-warmup")) {
            o->warmup = false;
        } else if (!strcmp(a, "--no-hash")) {
            o->hash = false;
        } else if (!strcmp(a, "--progress")) {
            o->progress = true;
        } else if (!strcmp(a, "--no-progress")) {
            o->progress = false;
        } else if (is_ignored_flag(a, &takes)) {
            fprintf(stderr, "loft bench: %s means nothing on a CPU; ignored\n", a);
            if (takes) i++;
        } else if (!v) {
            fprintf(stderr, "loft bench: unknown option or missing value '%s' (see --help)\n", a);
            return 2;
        } else {
            i++;
            if (IS("-m", "--model")) {
                char *copy = o->n_model_lists < MAX_LIST ? strdup(v) : NULL;
                ok = copy != NULL;
                if (copy) o->model_lists[o->n_model_lists++] = copy;
                for (char *tok = copy ? strtok(copy, ",") : NULL; tok && ok;
                     tok = strtok(NULL, ","))
                    if ((ok = o->n_models < MAX_LIST)) o->models[o->n_models++] = tok;
            } else if (IS("-p", "--n-prompt")) {
                ok = parse_list(v, &o->prompt);
                o->prompt_set = true;
            } else if (IS("-n", "--n-gen")) {
                ok = parse_list(v, &o->gen);
                o->gen_set = true;
            } else if (!strcmp(a, "-pg")) {
                int_list l = {0};
                ok = parse_list(v, &l) && l.n == 2 && o->n_pg < MAX_LIST;
                if (ok) {
                    o->pg[o->n_pg][0] = l.v[0];
                    o->pg[o->n_pg][1] = l.v[1];
                    o->n_pg++;
                }
            } else if (IS("-t", "--threads")) {
                ok = parse_list(v, &o->threads);
            } else if (IS("-b", "--batch-size")) {
                ok = parse_list(v, &o->batch);
            } else if (IS("-ub", "--ubatch-size")) {
                ok = parse_list(v, &o->ubatch);
            } else if (IS("-r", "--repetitions")) {
                o->reps = atoi(v);
                ok = o->reps >= 1 && o->reps <= BENCH_MAX_REPS;
            } else if (!strcmp(a, "--delay")) {
                char *end;
                o->delay = strtod(v, &end);
                ok = *end == 0 && o->delay >= 0 && o->delay < 3600;
            } else if (IS("-o", "--output")) {
                ok = bench_format_from_name(v, &o->fmt);
            } else if (!strcmp(a, "--mem-limit")) {
                ok = memfit_parse_size(v, &o->mem_limit) && o->mem_limit > 0;
            } else {
                fprintf(stderr, "loft bench: unknown option '%s' (see --help)\n", a);
                return 2;
            }
        }
#undef IS
        if (!ok) {
            fprintf(stderr, "loft bench: bad value '%s' for %s\n", v ? v : "", a);
            return 2;
        }
    }
    if (!o->n_models) {
        fprintf(stderr, "loft bench: no model given (-m FILE)\n");
        return 2;
    }
    if (!o->prompt_set) o->prompt = (int_list){{512}, 1};
    if (!o->gen_set) o->gen = (int_list){{128}, 1};
    if (!o->threads.n) o->threads = (int_list){{threadpool_cpu_count()}, 1};
    if (!o->batch.n) o->batch = (int_list){{2048}, 1};
    if (!o->ubatch.n) o->ubatch = (int_list){{512}, 1};
    for (int i = 0; i < o->threads.n; i++)
        if (o->threads.v[i] < 1 || o->threads.v[i] > THREADPOOL_MAX_THREADS) {
            fprintf(stderr, "loft bench: thread count %d is outside 1..%d\n", o->threads.v[i],
                    THREADPOOL_MAX_THREADS);
            return 2;
        }
    return 0;
}

/* The tests of one model, in llama-bench's order: pp sizes, tg sizes, pg pairs. */
static int list_tests(const bench_opts *o, bench_test *out, int cap)
{
    int n = 0;
    int pairs[3 * MAX_LIST][2], np = 0;
    for (int i = 0; i < o->prompt.n; i++)
        if (o->prompt.v[i] > 0) pairs[np][0] = o->prompt.v[i], pairs[np++][1] = 0;
    for (int i = 0; i < o->gen.n; i++)
        if (o->gen.v[i] > 0) pairs[np][0] = 0, pairs[np++][1] = o->gen.v[i];
    for (int i = 0; i < o->n_pg; i++)
        if (o->pg[i][0] + o->pg[i][1] > 0) pairs[np][0] = o->pg[i][0], pairs[np++][1] = o->pg[i][1];
    for (int p = 0; p < np; p++)
        for (int t = 0; t < o->threads.n; t++)
            for (int b = 0; b < o->batch.n; b++)
                for (int u = 0; u < o->ubatch.n && n < cap; u++)
                    out[n++] = (bench_test){pairs[p][0], pairs[p][1], o->threads.v[t],
                                            o->batch.v[b], o->ubatch.v[u]};
    return n;
}

/* Progress on stderr: which row, which repetition, an ETA from the speeds
 * measured so far. */
typedef struct progress_state {
    bool on;
    int row, n_rows;
    double t_start;
    double done_pp, done_tg; /* tokens done so far */
    double left_pp, left_tg; /* tokens still to do (all rows, all reps) */
    double secs_pp, secs_tg; /* seconds spent on each kind */
} progress_state;

static void show_progress(void *ctx, const bench_test *t, int rep, int reps)
{
    progress_state *p = ctx;
    if (!p->on) return;
    double pp_rate = p->secs_pp > 0 ? p->done_pp / p->secs_pp : 0;
    double tg_rate = p->secs_tg > 0 ? p->done_tg / p->secs_tg : 0;
    if (!pp_rate) pp_rate = tg_rate * 4;
    if (!tg_rate) tg_rate = pp_rate / 4;
    char eta[32] = "?";
    if (pp_rate > 0) {
        double s = p->left_pp / pp_rate + p->left_tg / tg_rate;
        snprintf(eta, sizeof eta, "%dm%02ds", (int)(s / 60), (int)s % 60);
    }
    fprintf(stderr, "\rloft bench: row %d/%d  pp%d tg%d t=%d  %s %d/%d  ETA %s      ", p->row,
            p->n_rows, t->n_prompt, t->n_gen, t->n_threads, rep ? "rep" : "warm-up", rep, reps,
            eta);
    fflush(stderr);
}

static void emit_row(const bench_opts *o, const sysinfo *si, const bench_result *r)
{
    if (o->fmt == BENCH_FMT_JSONL) bench_write_jsonl_row(stdout, si, r);
    if (o->fmt == BENCH_FMT_CSV) bench_write_csv_row(stdout, si, r);
    fflush(stdout);
}

static void free_opts(bench_opts *o)
{
    for (int i = 0; i < o->n_model_lists; i++)
        free(o->model_lists[i]);
    o->n_model_lists = 0;
}

/* Runs every row of o and writes the output; returns the exit status. */
static int run_bench(const bench_opts *o);

int cmd_bench(int argc, char **argv)
{
    bench_opts o;
    int rc = parse_args(argc, argv, &o);
    if (!rc) rc = run_bench(&o);
    free_opts(&o);
    return rc < 0 ? 0 : rc;
}

static int run_bench(const bench_opts *op)
{
    const bench_opts o = *op;
    static bench_test tests[4096];
    int n_tests = list_tests(&o, tests, 4096);
    if (!n_tests) {
        fprintf(stderr, "loft bench: no tests (all sizes are 0)\n");
        return 2;
    }
    size_t n_rows = (size_t)n_tests * (size_t)o.n_models;
    bench_result *rows = calloc(n_rows, sizeof *rows);
    if (!rows) {
        fprintf(stderr, "loft bench: out of memory for %zu rows\n", n_rows);
        return 1;
    }
    sysinfo si;
    sysinfo_collect(&si);
    snprintf(si.isa_used, sizeof si.isa_used, "%s", kernels_get()->name);
    progress_state ps = {.on = o.progress, .n_rows = (int)n_rows, .t_start = bench_now()};
    for (int t = 0; t < n_tests; t++) {
        ps.left_pp += (double)o.n_models * o.reps * tests[t].n_prompt;
        ps.left_tg += (double)o.n_models * o.reps * tests[t].n_gen;
    }
    if (o.fmt == BENCH_FMT_CSV) bench_write_csv_header(stdout);
    int status = 0;
    size_t k = 0;
    for (int mi = 0; mi < o.n_models; mi++) {
        const char *path = o.models[mi];
        loft_status st = {0};
        gguf_file *g = NULL;
        bench_result proto = {0};
        if (gguf_open(&g, path, &st) != LOFT_OK ||
            bench_describe_model(g, path, o.hash, &proto, &st) != LOFT_OK) {
            fprintf(stderr, "%sloft bench: %s\n", o.progress ? "\n" : "", st.msg);
            gguf_close(g);
            status = 1;
            for (int t = 0; t < n_tests; t++, k++) {
                rows[k] = proto;
                snprintf(rows[k].model_file, sizeof rows[k].model_file, "%s", path);
                bench_set_test(&rows[k], &tests[t], 0);
                snprintf(rows[k].error, sizeof rows[k].error, "%.255s", st.msg);
                emit_row(&o, &si, &rows[k]);
            }
            continue;
        }
        /* The largest context any test of this model needs decides the fit. */
        int32_t max_ctx = 1, max_batch = 1;
        for (int t = 0; t < n_tests; t++) {
            if (tests[t].n_prompt + tests[t].n_gen > max_ctx)
                max_ctx = tests[t].n_prompt + tests[t].n_gen;
            if (tests[t].n_batch > max_batch) max_batch = tests[t].n_batch;
        }
        memfit_config mc = {.n_ctx = max_ctx, .n_batch = max_batch};
        memfit_estimate est;
        uint64_t have = 0;
        bool fits = true;
        if (memfit_estimate_model(g, &mc, &est, &st) == LOFT_OK)
            fits = memfit_fits(&est, o.mem_limit, &have);
        else
            est.total = 0;
        gguf_close(g);
        loft_model *m = NULL;
        if (fits && model_load(&m, path, &st) != LOFT_OK) {
            fprintf(stderr, "%sloft bench: %s\n", o.progress ? "\n" : "", st.msg);
            status = 1;
        }
        if (!fits) {
            char txt[96];
            memfit_oom_text(est.total, have, txt, sizeof txt);
            fprintf(stderr, "%sloft bench: %s: not loaded: %s\n", o.progress ? "\n" : "", path,
                    txt);
            status = 1; /* the rows say OOM; the exit status says not everything ran */
        }
        for (int t = 0; t < n_tests; t++, k++) {
            bench_result *r = &rows[k];
            *r = proto;
            r->mem_estimate = est.total;
            ps.row = (int)k + 1;
            bench_set_test(r, &tests[t], 0);
            if (!fits) {
                r->oom = true;
                r->oom_need = est.total;
                r->oom_have = have;
            } else if (!m) {
                snprintf(r->error, sizeof r->error, "%.255s", st.msg);
            } else {
                if (t > 0 && o.delay > 0) usleep((useconds_t)(o.delay * 1e6));
                double t0 = bench_now();
                if (bench_run_test(m, &tests[t], o.reps, o.warmup, show_progress, &ps, r, &st) !=
                    LOFT_OK) {
                    fprintf(stderr, "%sloft bench: %s\n", o.progress ? "\n" : "", st.msg);
                    snprintf(r->error, sizeof r->error, "%.255s", st.msg);
                    status = 1;
                }
                double secs = bench_now() - t0;
                double pp = (double)o.reps * tests[t].n_prompt,
                       tg = (double)o.reps * tests[t].n_gen;
                /* Split the row's time between prompt and generation by
                 * its own measured ttft (prompt part) where it has both. */
                double pp_secs = tests[t].n_gen ? r->ttft.mean * 1e-3 * o.reps : secs;
                if (!tests[t].n_prompt) pp_secs = 0;
                if (pp_secs > secs) pp_secs = secs;
                ps.done_pp += pp, ps.secs_pp += pp_secs;
                ps.done_tg += tg, ps.secs_tg += secs - pp_secs;
            }
            ps.left_pp -= (double)o.reps * tests[t].n_prompt;
            ps.left_tg -= (double)o.reps * tests[t].n_gen;
            emit_row(&o, &si, r);
        }
        model_free(m);
    }
    if (o.progress)
        fprintf(stderr, "\rloft bench: %zu rows in %.1f s%40s\n", n_rows, bench_now() - ps.t_start,
                "");
    if (o.fmt == BENCH_FMT_MD || o.fmt == BENCH_FMT_JSON)
        bench_write(stdout, o.fmt, &si, rows, n_rows);
    free(rows);
    return status;
}
