/*
 * infer.c - the prepare and inference stages: the quantization ladder made
 * with quantize_model, and per model x threads the published prompt, ppN
 * and tgN, each as a bench_result row.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench/bench.h"
#include "bench/memfit.h"
#include "quant/quantize_model.h"
#include "suite/gen.h"
#include "suite/suite_impl.h"

loft_code suite_prepare_item(suite_ctx *c, const suite_item *it, bool *stopped, loft_status *st)
{
    *stopped = false;
    const suite_model *m = &c->models[it->model];
    suite_results *r = c->res;
    if (r->n_prep >= SUITE_MAX_QUANTS)
        return loft_fail(st, LOFT_ERR_RANGE, "suite: too many prepare items");
    suite_prep_result *p = &r->prep[r->n_prep];
    memset(p, 0, sizeof *p);
    snprintf(p->quant, sizeof p->quant, "%s", m->quant);
    snprintf(p->path, sizeof p->path, "%s", m->path);
    struct stat sb;
    double t0 = suite_now();
    if (stat(m->path, &sb) != 0) {
        char src[SUITE_PATH_MAX];
        snprintf(src, sizeof src, "%s/%s", c->o->models_dir, c->o->default_model);
        const quantize_ftype *ft = quantize_ftype_from_name(m->quant);
        if (!ft) return loft_fail(st, LOFT_ERR_ARG, "suite: unknown quantization '%s'", m->quant);
        /* The only file fetched is Q4_1: the other rungs are requantized from
         * it (the report says so). */
        quantize_params qp = {
            .ftype = ft, .allow_requantize = true, .n_threads = c->o->train_threads};
        suite_detail(c, 0.1, "writing %s", m->path);
        loft_code rc = quantize_model(src, m->path, &qp, NULL, st);
        if (rc != LOFT_OK) return rc;
        p->made = true;
        if (stat(m->path, &sb) != 0) sb.st_size = 0;
    }
    p->bytes = (uint64_t)sb.st_size;
    p->seconds = suite_now() - t0;
    r->n_prep++;
    return LOFT_OK;
}

/* Progress of bench_run_test inside the item. */
typedef struct bench_cb {
    suite_ctx *c;
    double base, span; /* fraction of the item before this test, and its share */
    const char *what;
} bench_cb;

static void on_bench(void *ud, const bench_test *t, int rep, int reps)
{
    (void)t;
    bench_cb *b = ud;
    suite_detail(b->c, b->base + b->span * rep / (reps + 1.0), "%s %s %d/%d", b->what,
                 rep ? "rep" : "warm-up", rep, reps);
}

/* Rows of an item that could not run: the reason in each. */
static loft_code add_failed(suite_results *r, const bench_result *proto, const char *tests[3],
                            const char *why, loft_status *st)
{
    for (int k = 0; k < 3; k++) {
        bench_result row = *proto;
        snprintf(row.test, sizeof row.test, "%s", tests[k]);
        snprintf(row.error, sizeof row.error, "%.255s", why);
        loft_code rc = suite_add_row(r, &row, st);
        if (rc != LOFT_OK) return rc;
    }
    return LOFT_OK;
}

loft_code suite_infer_item(suite_ctx *c, const suite_item *it, bool *stopped, loft_status *st)
{
    *stopped = false;
    const suite_opts *o = c->o;
    const suite_model *m = &c->models[it->model];
    suite_results *r = c->res;
    char pp_name[32], tg_name[32];
    snprintf(pp_name, sizeof pp_name, "pp%d", o->n_pp);
    snprintf(tg_name, sizeof tg_name, "tg%d", o->n_tg);
    const char *tests[3] = {"prompt", pp_name, tg_name};

    bench_result proto = {0};
    loft_status est = {0};
    gguf_file *g = NULL;
    if (gguf_open(&g, m->path, &est) != LOFT_OK ||
        bench_describe_model(g, m->path, false, &proto, &est) != LOFT_OK) {
        gguf_close(g);
        snprintf(proto.model_file, sizeof proto.model_file, "%.255s", m->path);
        snprintf(proto.quant, sizeof proto.quant, "%s", m->quant);
        proto.n_threads = it->threads;
        return add_failed(r, &proto, tests, est.msg, st);
    }
    proto.n_threads = it->threads;
    int32_t n_ctx = o->n_pp + o->n_tg;
    if (n_ctx < 512 + o->n_predict) n_ctx = 512 + o->n_predict;
    memfit_config mc = {.n_ctx = n_ctx, .n_batch = o->n_pp > 512 ? o->n_pp : 512};
    memfit_estimate me;
    uint64_t have = 0;
    bool fits = true;
    if (memfit_estimate_model(g, &mc, &me, &est) == LOFT_OK) {
        fits = memfit_fits(&me, 0, &have);
        proto.mem_estimate = me.total;
    }
    gguf_close(g);
    if (!fits) {
        for (int k = 0; k < 3; k++) {
            bench_result row = proto;
            snprintf(row.test, sizeof row.test, "%s", tests[k]);
            row.oom = true;
            row.oom_need = me.total;
            row.oom_have = have;
            loft_code rc = suite_add_row(r, &row, st);
            if (rc != LOFT_OK) return rc;
        }
        return LOFT_OK;
    }

    suite_rss_reset();
    suite_gen gen;
    if (suite_gen_open(&gen, m->path, it->threads, n_ctx, NULL, &est) != LOFT_OK)
        return add_failed(r, &proto, tests, est.msg, st);
    bench_result rows[3];
    for (int k = 0; k < 3; k++) {
        rows[k] = proto;
        snprintf(rows[k].test, sizeof rows[k].test, "%s", tests[k]);
    }
    /* The published prompt: a warm-up answer, then prompt_runs timed ones. */
    int32_t *toks = NULL;
    size_t n = 0;
    loft_code rc = suite_gen_prompt(&gen, o->prompt, true, &toks, &n, &est);
    bench_result *pr = &rows[0];
    pr->n_prompt = (int32_t)n;
    pr->n_gen = o->n_predict;
    pr->n_batch = (int)n;
    pr->n_ubatch = (int)n;
    double weight_prompt = 0.35;
    for (int run = 0; rc == LOFT_OK && run <= o->prompt_runs; run++) {
        suite_detail(c, weight_prompt * run / (o->prompt_runs + 1.0), "prompt %s %d/%d",
                     run ? "run" : "warm-up", run, o->prompt_runs);
        suite_gen_timing t;
        rc = suite_gen_run(&gen, toks, n, o->n_predict, o->stop, NULL, &t, stopped, &est);
        if (rc != LOFT_OK || *stopped) break;
        if (run == 0) continue;
        pr->samples_ts[run - 1] = t.gen_ms > 0 ? 1e3 * t.n_gen / t.gen_ms : 0;
        pr->samples_ttft[run - 1] = t.ttft_ms;
        pr->reps = run;
    }
    free(toks);
    if (rc != LOFT_OK) snprintf(pr->error, sizeof pr->error, "%.255s", est.msg);
    bench_result_finish(pr);
    /* ppN and tgN exactly as `loft bench` runs them. */
    for (int k = 1; k < 3 && !*stopped; k++) {
        if (suite_should_stop(c)) {
            *stopped = true;
            break;
        }
        bench_test bt = {.n_prompt = k == 1 ? o->n_pp : 0,
                         .n_gen = k == 2 ? o->n_tg : 0,
                         .n_threads = it->threads,
                         .n_batch = o->n_pp > 512 ? o->n_pp : 512,
                         .n_ubatch = 512};
        bench_cb cb = {c, weight_prompt + (1 - weight_prompt) * (k - 1) / 2.0,
                       (1 - weight_prompt) / 2, tests[k]};
        if (bench_run_test(gen.m, &bt, o->bench_reps, true, on_bench, &cb, &rows[k], &est) !=
            LOFT_OK)
            snprintf(rows[k].error, sizeof rows[k].error, "%.255s", est.msg);
        snprintf(rows[k].model_file, sizeof rows[k].model_file, "%s", proto.model_file);
    }
    uint64_t peak = suite_rss_peak();
    suite_gen_close(&gen);
    if (*stopped) return LOFT_OK;
    for (int k = 0; k < 3; k++) {
        rows[k].peak_rss = peak;
        rc = suite_add_row(r, &rows[k], st);
        if (rc != LOFT_OK) return rc;
    }
    return LOFT_OK;
}
