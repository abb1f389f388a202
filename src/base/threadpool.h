/*
 * threadpool.h - a persistent pool of worker threads for data-parallel
 * kernels.
 *
 * threadpool_run(pool, fn, ctx) calls fn(ctx, ith, nth) once for every
 * ith in 0..nth-1, where nth is the pool's thread count; the calling thread
 * runs ith = 0 itself and the call returns when every part has finished.
 * Workers are created once (threadpool_init) and wait between runs by
 * spinning briefly, then sleeping on a condition variable, so a decode step
 * that dispatches hundreds of small products pays no thread creation and
 * little wake-up latency. Kernels split their work by ith/nth themselves.
 *
 * One thread at a time may call threadpool_run on a given pool.
 */
#ifndef LOFT_BASE_THREADPOOL_H
#define LOFT_BASE_THREADPOOL_H

#include "loft.h"

typedef struct threadpool threadpool;

/* The work of one run: called once per thread with its index and the count. */
typedef void (*threadpool_fn)(void *ctx, int ith, int nth);

/* Most threads a pool may have. */
#define THREADPOOL_MAX_THREADS 256

/* Starts a pool of n_threads (1..THREADPOOL_MAX_THREADS; 1 means the
 * caller alone, no workers). On failure *out is NULL and st says why. */
loft_code threadpool_init(threadpool **out, int n_threads, loft_status *st);

/* Stops and joins the workers; NULL is allowed. */
void threadpool_free(threadpool *pool);

/* Thread count of the pool (1 for NULL, so kernels may run without one). */
int threadpool_size(const threadpool *pool);

/* Runs fn on every thread of the pool and waits for all (see above). With
 * a NULL pool, runs fn(ctx, 0, 1) on the caller. */
void threadpool_run(threadpool *pool, threadpool_fn fn, void *ctx);

/* Number of online processors (at least 1). */
int threadpool_cpu_count(void);

#endif
