/* The persistent thread pool: every part runs exactly once per run, runs do
 * not overlap, and bad sizes are refused. */
#include <stdatomic.h>
#include <string.h>

#include "base/threadpool.h"
#include "test.h"

typedef struct count_ctx {
    atomic_int calls[THREADPOOL_MAX_THREADS];
    atomic_int total;
    int nth_seen;
    atomic_int wrong_nth;
} count_ctx;

static void count_part(void *arg, int ith, int nth)
{
    count_ctx *c = arg;
    atomic_fetch_add(&c->calls[ith], 1);
    atomic_fetch_add(&c->total, 1);
    if (nth != c->nth_seen) atomic_fetch_add(&c->wrong_nth, 1);
}

static void check_pool(int n_threads, int runs)
{
    threadpool *pool = NULL;
    loft_status st;
    CHECK(threadpool_init(&pool, n_threads, &st) == LOFT_OK);
    CHECK(threadpool_size(pool) == n_threads);
    static count_ctx c;
    memset(&c, 0, sizeof c);
    c.nth_seen = n_threads;
    for (int r = 0; r < runs; r++) {
        threadpool_run(pool, count_part, &c);
        /* the run has returned: every part of it has finished */
        if (atomic_load(&c.total) != (r + 1) * n_threads) break;
    }
    threadpool_free(pool);
    CHECKF(atomic_load(&c.total) == runs * n_threads, "total %d, want %d", atomic_load(&c.total),
           runs * n_threads);
    for (int i = 0; i < n_threads; i++) CHECK(atomic_load(&c.calls[i]) == runs);
    CHECK(atomic_load(&c.wrong_nth) == 0);
}

static void test_single_thread(void)
{
    check_pool(1, 100);
}

static void test_two_threads_many_runs(void)
{
    check_pool(2, 20000);
}

static void test_more_threads_than_cores(void)
{
    check_pool(7, 300);
}

/* Parallel sum of a known series, split by ith/nth as kernels do. */
typedef struct sum_ctx {
    const double *x;
    int n;
    double partial[THREADPOOL_MAX_THREADS];
} sum_ctx;

static void sum_part(void *arg, int ith, int nth)
{
    sum_ctx *c = arg;
    int per = (c->n + nth - 1) / nth, lo = ith * per, hi = lo + per > c->n ? c->n : lo + per;
    double s = 0;
    for (int i = lo; i < hi; i++) s += c->x[i];
    c->partial[ith] = s;
}

static void test_split_sum(void)
{
    static double x[10007];
    for (int i = 0; i < 10007; i++) x[i] = i;
    threadpool *pool = NULL;
    loft_status st;
    CHECK(threadpool_init(&pool, 3, &st) == LOFT_OK);
    static sum_ctx c;
    c.x = x;
    c.n = 10007;
    threadpool_run(pool, sum_part, &c);
    threadpool_free(pool);
    double total = c.partial[0] + c.partial[1] + c.partial[2];
    CHECK(total == 10006.0 * 10007.0 / 2.0);
}

static void test_null_pool_runs_inline(void)
{
    static count_ctx c;
    memset(&c, 0, sizeof c);
    c.nth_seen = 1;
    threadpool_run(NULL, count_part, &c);
    CHECK(atomic_load(&c.total) == 1 && atomic_load(&c.calls[0]) == 1);
    CHECK(threadpool_size(NULL) == 1);
    CHECK(threadpool_cpu_count() >= 1);
}

static void test_bad_sizes(void)
{
    threadpool *pool = (threadpool *)&pool;
    loft_status st;
    CHECK(threadpool_init(&pool, 0, &st) == LOFT_ERR_ARG && pool == NULL);
    CHECK(strstr(st.msg, "thread count 0") != NULL);
    CHECK(threadpool_init(&pool, THREADPOOL_MAX_THREADS + 1, &st) == LOFT_ERR_ARG);
    threadpool_free(NULL);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"threadpool_single_thread", test_single_thread},
        {"threadpool_two_threads_many_runs", test_two_threads_many_runs},
        {"threadpool_more_threads_than_cores", test_more_threads_than_cores},
        {"threadpool_split_sum", test_split_sum},
        {"threadpool_null_pool_runs_inline", test_null_pool_runs_inline},
        {"threadpool_bad_sizes", test_bad_sizes},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
