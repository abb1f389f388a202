/*
 * run_bench.c - `loft run ... --bench N`: the published measurement of one
 * prompt. A warm-up run shows the answer; then N runs, each from an empty
 * context with the sampler reset, print nothing and are timed. The table
 * gives Peak / Avg / Low generation tokens/s over the runs, time to first
 * token, prompt tokens/s and peak RSS (bench_write_run_table).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "bench/results.h"
#include "session.h"

/* Empties the cache, the sampler's history and the timings, then evaluates
 * the prompt and generates up to n_predict tokens. */
static int bench_one_run(session *s, const int32_t *toks, size_t n, int32_t n_predict,
                         volatile sig_atomic_t *stop)
{
    kv_cache_clear(s->kv);
    s->n_tokens = 0;
    loft_sampler_reset(s->sampler);
    for (size_t i = 0; i < n; i++) loft_sampler_accept(s->sampler, toks[i]);
    s->t_prompt_ms = s->t_gen_ms = s->t_first_token_ms = 0;
    s->n_prompt_eval = s->n_gen = 0;
    int rc = session_sync(s, toks, n);
    if (rc == 0) rc = session_generate(s, n_predict, stop, NULL, NULL);
    return rc;
}

int run_bench(session *s, const int32_t *toks, size_t n, int32_t n_predict, int reps,
              volatile sig_atomic_t *stop)
{
    double *gen_ts = calloc((size_t)reps, sizeof *gen_ts);
    double *ttft = calloc((size_t)reps, sizeof *ttft);
    double *prompt_ts = calloc((size_t)reps, sizeof *prompt_ts);
    int rc = 0;
    if (!gen_ts || !ttft || !prompt_ts) {
        fprintf(stderr, "loft run: out of memory\n");
        rc = 1;
        goto done;
    }
    /* Warm-up: the answer is shown once, and pages and caches are warm. */
    s->quiet = false;
    if ((rc = bench_one_run(s, toks, n, n_predict, stop)) != 0) goto done;
    fputc('\n', stdout);
    fflush(stdout);
    s->quiet = true;
    int done_reps = 0;
    for (int r = 0; r < reps && !(stop && *stop); r++) {
        fprintf(stderr, "\rloft run: bench run %d/%d", r + 1, reps);
        if ((rc = bench_one_run(s, toks, n, n_predict, stop)) != 0) goto done;
        gen_ts[r] = s->t_gen_ms > 0 ? 1e3 * (double)s->n_gen / s->t_gen_ms : 0.0;
        ttft[r] = s->t_first_token_ms;
        prompt_ts[r] = s->t_prompt_ms > 0 ? 1e3 * (double)s->n_prompt_eval / s->t_prompt_ms : 0;
        done_reps++;
    }
    fprintf(stderr, "\n");
    if (done_reps == 0) {
        fprintf(stderr, "loft run: interrupted before any bench run finished\n");
        rc = 1;
        goto done;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    bench_write_run_table(stdout, gen_ts, ttft, prompt_ts, (size_t)done_reps,
                          (uint64_t)ru.ru_maxrss * 1024u);
done:
    s->quiet = false;
    free(gen_ts);
    free(ttft);
    free(prompt_ts);
    return rc;
}
