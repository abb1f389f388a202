/*
 * stats.h - summary statistics of repeated measurements.
 *
 * For throughput samples (tokens/s per run) the published tables call the
 * maximum "peak", the mean "avg" and the minimum "low".
 */
#ifndef LOFT_BENCH_STATS_H
#define LOFT_BENCH_STATS_H

#include <stddef.h>

typedef struct bench_stats {
    size_t n;
    double mean;
    double stddev; /* sample standard deviation (n - 1), 0 when n < 2 */
    double min;    /* "low" */
    double max;    /* "peak" */
    double median;
} bench_stats;

/* Statistics of x[0..n). With n == 0 every field is 0. NaN samples are
 * skipped (and not counted in n). */
void bench_stats_compute(const double *x, size_t n, bench_stats *out);

/* Tokens per second of n_tokens processed in ns nanoseconds; 0 when ns is 0. */
double bench_tokens_per_s(long long n_tokens, long long ns);

#endif
