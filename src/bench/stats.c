#include "bench/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void bench_stats_compute(const double *x, size_t n, bench_stats *out)
{
    memset(out, 0, sizeof *out);
    size_t m = 0;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i])) continue;
        if (m == 0 || x[i] < out->min) out->min = x[i];
        if (m == 0 || x[i] > out->max) out->max = x[i];
        sum += x[i];
        m++;
    }
    out->n = m;
    if (m == 0) return;
    out->mean = sum / (double)m;
    /* Two passes: the squared deviations from the mean, not sum(x^2) - n*mean^2,
     * which cancels badly when the spread is small next to the mean. */
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(x[i])) ss += (x[i] - out->mean) * (x[i] - out->mean);
    out->stddev = m > 1 ? sqrt(ss / (double)(m - 1)) : 0.0;
    double *sorted = malloc(m * sizeof *sorted);
    if (!sorted) {
        out->median = out->mean;
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(x[i])) sorted[k++] = x[i];
    qsort(sorted, m, sizeof *sorted, cmp_double);
    out->median = m % 2 ? sorted[m / 2] : 0.5 * (sorted[m / 2 - 1] + sorted[m / 2]);
    free(sorted);
}

double bench_tokens_per_s(long long n_tokens, long long ns)
{
    return ns > 0 ? (double)n_tokens * 1e9 / (double)ns : 0.0;
}
