/*
 * bench.h - measuring a model's prompt processing and generation speed the
 * way llama-bench does: a "pp N" test evaluates N random tokens as one
 * prompt, a "tg N" test generates N tokens one at a time, "pp N + tg M"
 * does both; each repetition starts from an empty KV cache, after one
 * untimed warm-up run.
 */
#ifndef LOFT_BENCH_BENCH_H
#define LOFT_BENCH_BENCH_H

#include <stdbool.h>

#include "bench/results.h"
#include "gguf/gguf.h"
#include "loft.h"
#include "model/model.h"

typedef struct bench_test {
    int n_prompt; /* tokens evaluated as the prompt (0: none) */
    int n_gen;    /* tokens generated one by one after it (0: none) */
    int n_threads;
    int n_batch;  /* prompt tokens per forward call */
    int n_ubatch; /* recorded; loft's forward splits batches itself */
} bench_test;

/* Called before each repetition (rep = 0 is the warm-up when warmup). */
typedef void (*bench_progress_fn)(void *ctx, const bench_test *t, int rep, int reps);

/* Fills the model fields of r (file, name, type, quant, sizes, parameter
 * count; sha256 when hash) from the parsed file g at path. */
loft_code bench_describe_model(const gguf_file *g, const char *path, bool hash, bench_result *r,
                               loft_status *st);

/* Sets r's test fields from t ("pp512", "tg128", "pp512+tg128"). */
void bench_set_test(bench_result *r, const bench_test *t, int reps);

/* Runs t reps times (1..BENCH_MAX_REPS) on m after a warm-up when warmup,
 * filling r's samples and statistics. Token ids come from a fixed-seed
 * generator, so every run evaluates the same tokens. */
loft_code bench_run_test(loft_model *m, const bench_test *t, int reps, bool warmup,
                         bench_progress_fn progress, void *ctx, bench_result *r, loft_status *st);

/* Seconds on a monotonic clock. */
double bench_now(void);

#endif
