/*
 * threadpool.c - persistent workers released by a generation counter.
 *
 * A run publishes (fn, ctx), bumps `generation` and wakes sleepers; each
 * worker that sees a new generation runs its part and decrements `pending`.
 * The caller runs part 0, then waits for `pending` to reach zero. Workers
 * spin for SPIN_ROUNDS checks before sleeping, so back-to-back runs (the
 * common case inside a forward pass) never touch the mutex.
 */
#include "base/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/status.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

#define SPIN_ROUNDS 200000

/* One round of a spin-wait: a pause, and every 64th round a yield, so that a
 * pool with more threads than free cores still makes progress. */
static void spin_round(int i)
{
    if ((i & 63) == 63)
        sched_yield();
    else
        cpu_relax();
}

typedef struct worker {
    threadpool *pool;
    int ith;
    pthread_t thread;
} worker;

struct threadpool {
    int n_threads;
    worker *workers; /* n_threads - 1 of them; the caller is thread 0 */

    threadpool_fn fn;
    void *ctx;
    atomic_uint generation;
    atomic_int pending;
    atomic_bool stop;

    pthread_mutex_t lock;
    pthread_cond_t wake;  /* workers sleep here between runs */
    atomic_int sleepers;
};

int threadpool_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > THREADPOOL_MAX_THREADS ? THREADPOOL_MAX_THREADS : (int)n);
}

int threadpool_size(const threadpool *pool)
{
    return pool ? pool->n_threads : 1;
}

/* Waits until the generation differs from seen (or stop), spinning first. */
static unsigned wait_for_work(threadpool *pool, unsigned seen)
{
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        unsigned g = atomic_load_explicit(&pool->generation, memory_order_acquire);
        if (g != seen || atomic_load_explicit(&pool->stop, memory_order_acquire)) return g;
        spin_round(i);
    }
    pthread_mutex_lock(&pool->lock);
    atomic_fetch_add(&pool->sleepers, 1);
    unsigned g;
    while ((g = atomic_load(&pool->generation)) == seen && !atomic_load(&pool->stop))
        pthread_cond_wait(&pool->wake, &pool->lock);
    atomic_fetch_sub(&pool->sleepers, 1);
    pthread_mutex_unlock(&pool->lock);
    return g;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    threadpool *pool = w->pool;
    /* Generation 0 is the pool's state at creation; reading the counter here
     * instead could skip a run that started before this thread did. */
    unsigned seen = 0;
    for (;;) {
        seen = wait_for_work(pool, seen);
        if (atomic_load_explicit(&pool->stop, memory_order_acquire)) break;
        pool->fn(pool->ctx, w->ith, pool->n_threads);
        atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel);
    }
    return NULL;
}

loft_code threadpool_init(threadpool **out, int n_threads, loft_status *st)
{
    *out = NULL;
    if (n_threads < 1 || n_threads > THREADPOOL_MAX_THREADS)
        return loft_fail(st, LOFT_ERR_ARG, "thread count %d is outside 1..%d", n_threads,
                         THREADPOOL_MAX_THREADS);
    threadpool *pool = calloc(1, sizeof *pool);
    if (!pool) return loft_fail(st, LOFT_ERR_NOMEM, "out of memory for the thread pool");
    pool->n_threads = n_threads;
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->pending, 0);
    atomic_init(&pool->stop, false);
    atomic_init(&pool->sleepers, 0);
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    if (n_threads > 1) {
        pool->workers = calloc((size_t)n_threads - 1, sizeof *pool->workers);
        if (!pool->workers) {
            threadpool_free(pool);
            return loft_fail(st, LOFT_ERR_NOMEM, "out of memory for the thread pool");
        }
        for (int i = 0; i < n_threads - 1; i++) {
            worker *w = &pool->workers[i];
            w->pool = pool;
            w->ith = i + 1;
            if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
                pool->n_threads = i + 1; /* join only the ones that started */
                threadpool_free(pool);
                return loft_fail(st, LOFT_ERR_IO, "could not start thread %d of %d", i + 2,
                                 n_threads);
            }
        }
    }
    *out = pool;
    return LOFT_OK;
}

void threadpool_run(threadpool *pool, threadpool_fn fn, void *ctx)
{
    if (!pool || pool->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->ctx = ctx;
    atomic_store_explicit(&pool->pending, pool->n_threads - 1, memory_order_relaxed);
    /* Sequentially consistent, so that either a worker about to sleep sees
     * the new generation or this thread sees it among the sleepers. */
    atomic_fetch_add(&pool->generation, 1);
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->lock);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
    }
    fn(ctx, 0, pool->n_threads);
    for (int i = 0; atomic_load_explicit(&pool->pending, memory_order_acquire) > 0; i++)
        spin_round(i);
}

void threadpool_free(threadpool *pool)
{
    if (!pool) return;
    if (pool->workers) {
        atomic_store(&pool->stop, true);
        pthread_mutex_lock(&pool->lock);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
        for (int i = 0; i < pool->n_threads - 1; i++) pthread_join(pool->workers[i].thread, NULL);
        free(pool->workers);
    }
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->wake);
    free(pool);
}
