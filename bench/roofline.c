/*
 * roofline.c - this machine's limits for bench/vs-llamacpp: memory read
 * bandwidth (GB/s) and peak fused multiply-add throughput (GFLOP/s), each
 * with 1..N threads. Built and run by the script at bench time:
 *
 *   cc -O2 -march=native -pthread bench/roofline.c -o build/roofline
 *   build/roofline N  -> lines "bw <threads> <GB/s> <wall GB/s>" and
 *                        "fma <threads> <GFLOP/s> <wall GFLOP/s>"
 *
 * Bandwidth: each thread sums its own slice of a 1 GiB buffer (far past
 * the caches) in 2 MiB pages where the kernel grants them (4 KiB pages
 * read measurably slower, and loft keeps its weights in 2 MiB pages), best
 * of 5 passes. FMA: each thread runs 12 independent
 * chains of vector FMAs (enough to cover the latency), best of 5.
 * Both are timed on each thread's CPU clock (the slowest thread counts),
 * so time the scheduler gives to other jobs on a shared machine is not
 * charged to the hardware; "wall" figures are printed beside them.
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define BUF_BYTES ((size_t)1 << 30)

typedef struct job {
    const float *p;
    size_t n;
    float out;
    double cpu; /* seconds of this thread's CPU time */
} job;

static double thread_cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void *read_part(void *arg)
{
    job *j = arg;
    const double c0 = thread_cpu();
#if defined(__AVX512F__)
    __m512 a = _mm512_setzero_ps(), b = a, c = a, d = a;
    for (size_t i = 0; i + 64 <= j->n; i += 64) {
        a = _mm512_add_ps(a, _mm512_load_ps(j->p + i));
        b = _mm512_add_ps(b, _mm512_load_ps(j->p + i + 16));
        c = _mm512_add_ps(c, _mm512_load_ps(j->p + i + 32));
        d = _mm512_add_ps(d, _mm512_load_ps(j->p + i + 48));
    }
    j->out = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a, b), _mm512_add_ps(c, d)));
#else
    __m256 a = _mm256_setzero_ps(), b = a, c = a, d = a;
    for (size_t i = 0; i + 32 <= j->n; i += 32) {
        a = _mm256_add_ps(a, _mm256_load_ps(j->p + i));
        b = _mm256_add_ps(b, _mm256_load_ps(j->p + i + 8));
        c = _mm256_add_ps(c, _mm256_load_ps(j->p + i + 16));
        d = _mm256_add_ps(d, _mm256_load_ps(j->p + i + 24));
    }
    float t[8];
    _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d)));
    j->out = t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
#endif
    j->cpu = thread_cpu() - c0;
    return NULL;
}

#define FMA_ITERS 20000000L

static void *fma_part(void *arg)
{
    job *j = arg;
    const double c0 = thread_cpu();
#if defined(__AVX512F__)
#define VEC __m512
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define LANES 16
#else
#define VEC __m256
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define LANES 8
#endif
    VEC acc[12];
    const VEC m = SET1(0.999999f), s = SET1(1e-7f);
    for (int k = 0; k < 12; k++) acc[k] = SET1(j->out + (float)k);
    for (long i = 0; i < FMA_ITERS; i++)
        for (int k = 0; k < 12; k++) acc[k] = FMA(acc[k], m, s);
    float t[LANES], sum = 0;
    for (int k = 0; k < 12; k++) {
        memcpy(t, &acc[k], sizeof t);
        sum += t[0];
    }
    j->out = sum;
    j->cpu = thread_cpu() - c0;
    return NULL;
}

/* Runs fn on nth threads; returns the slowest thread's CPU seconds and
 * stores the wall seconds in *wall. */
static double run(void *(*fn)(void *), job *jobs, int nth, double *wall)
{
    pthread_t th[64];
    double t0 = now();
    for (int i = 1; i < nth; i++) pthread_create(&th[i], NULL, fn, &jobs[i]);
    fn(&jobs[0]);
    for (int i = 1; i < nth; i++) pthread_join(th[i], NULL);
    *wall = now() - t0;
    double worst = 0;
    for (int i = 0; i < nth; i++)
        if (jobs[i].cpu > worst) worst = jobs[i].cpu;
    return worst;
}

int main(int argc, char **argv)
{
    int max_th = argc > 1 ? atoi(argv[1]) : 2;
    if (max_th < 1 || max_th > 64) max_th = 2;
    float *buf = aligned_alloc((size_t)2 << 20, BUF_BYTES);
    if (!buf) return 1;
    (void)madvise(buf, BUF_BYTES, MADV_HUGEPAGE);
    for (size_t i = 0; i < BUF_BYTES / sizeof(float); i++) buf[i] = (float)(i & 7);
    for (int nth = 1; nth <= max_th; nth++) {
        job jobs[64];
        const size_t per = BUF_BYTES / sizeof(float) / (size_t)nth / 64 * 64;
        double best = 1e30, best_wall = 1e30, w;
        for (int r = 0; r < 5; r++) {
            for (int i = 0; i < nth; i++) jobs[i] = (job){buf + (size_t)i * per, per, 0, 0};
            double t = run(read_part, jobs, nth, &w);
            if (t < best) best = t;
            if (w < best_wall) best_wall = w;
        }
        const double bytes = (double)per * sizeof(float) * nth;
        printf("bw %d %.2f %.2f\n", nth, bytes / best * 1e-9, bytes / best_wall * 1e-9);
        best = best_wall = 1e30;
        for (int r = 0; r < 5; r++) {
            for (int i = 0; i < nth; i++) jobs[i] = (job){NULL, 0, (float)i, 0};
            double t = run(fma_part, jobs, nth, &w);
            if (t < best) best = t;
            if (w < best_wall) best_wall = w;
        }
        const double flops = 2.0 * LANES * 12 * FMA_ITERS * nth;
        printf("fma %d %.2f %.2f\n", nth, flops / best * 1e-9, flops / best_wall * 1e-9);
        fflush(stdout);
    }
    free(buf);
    return 0;
}
