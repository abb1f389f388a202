/* lora_mm.c - LoRA forward/backward as GEMMs, and LoRA dropout (see lora_mm.h). */
#include "train/lora_mm.h"

#include <math.h>

#include "train/fgemm.h"

#define GOLDEN 0x9e3779b97f4a7c15ull

/* SplitMix64's output function: a bijection of 64 bits whose outputs for
 * consecutive inputs pass as independent. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void lora_dropout_init(lora_dropout *d, float p, uint64_t seed, int32_t layer, lora_kind kind)
{
    /* Every (layer, kind) gets its own stream, as every PEFT module has its
     * own dropout layer. */
    const uint64_t site = ((uint64_t)(uint32_t)(layer + 1) << 8) | (uint64_t)kind;
    d->key = mix64(mix64(seed) + (site + 1) * GOLDEN);
    const double pd = p > 0.0f ? (double)p : 0.0;
    d->threshold = (uint64_t)llround(pd * 4294967296.0);
    d->keep_scale = (float)(1.0 / (1.0 - pd));
}

/* One hash serves two columns: the low 32 bits for the even one, the high
 * for the odd one. */
static uint64_t pair_hash(const lora_dropout *d, int64_t t, int64_t c)
{
    const uint64_t ctr = ((uint64_t)t << 32) | ((uint64_t)c >> 1);
    return mix64(d->key + ctr * GOLDEN);
}

int lora_dropout_keeps(const lora_dropout *d, int64_t t, int64_t c)
{
    const uint64_t h = pair_hash(d, t, c);
    const uint64_t draw = (c & 1) ? h >> 32 : h & 0xffffffffull;
    return draw >= d->threshold;
}

typedef struct drop_job {
    float *dst;
    const float *src;
    int64_t T, n;
    const lora_dropout *d;
} drop_job;

static void drop_worker(void *p, int ith, int nth)
{
    const drop_job *j = p;
    const int64_t t0 = j->T * ith / nth, t1 = j->T * (ith + 1) / nth;
    const uint64_t thr = j->d->threshold;
    const float s = j->d->keep_scale;
    for (int64_t t = t0; t < t1; t++) {
        const float *x = j->src + t * j->n;
        float *y = j->dst + t * j->n;
        for (int64_t c = 0; c < j->n; c += 2) {
            const uint64_t h = pair_hash(j->d, t, c);
            y[c] = (h & 0xffffffffull) >= thr ? s * x[c] : 0.0f;
            if (c + 1 < j->n) y[c + 1] = (h >> 32) >= thr ? s * x[c + 1] : 0.0f;
        }
    }
}

void lora_dropout_apply(threadpool *pool, float *dst, const float *src, int64_t T, int64_t n,
                        const lora_dropout *d)
{
    drop_job j = {.dst = dst, .src = src, .T = T, .n = n, .d = d};
    threadpool_run(pool, drop_worker, &j);
}

size_t lora_mm_scratch(const lora_module *m, int32_t rank, int64_t T)
{
    const uint64_t r = (uint64_t)(rank > 0 ? rank : 0), t = (uint64_t)(T > 0 ? T : 0);
    const uint64_t n = (uint64_t)m->n_in + (uint64_t)m->n_out + 3u * t;
    if (r != 0 && n > (SIZE_MAX / sizeof(float)) / r) return 0;
    /* + (T, n_in) for the dropped input */
    if (t != 0 && (uint64_t)m->n_in > (SIZE_MAX / sizeof(float)) / t) return 0;
    const uint64_t a = r * n, b = t * (uint64_t)m->n_in;
    if (a > SIZE_MAX / sizeof(float) - b) return 0;
    return (size_t)(a + b);
}

/* The (T, n_in) region of the scratch for the dropped input: after what
 * either pass uses, r * (n_in + n_out + 3 T) floats. */
static float *drop_buf(float *scratch, const lora_module *m, int64_t r, int64_t T)
{
    return scratch + r * (m->n_in + m->n_out + 3 * T);
}

/* dst: (cols, rows) = src: (rows, cols) transposed, times s. */
static void transpose_scaled(float *dst, const float *src, int64_t rows, int64_t cols, float s)
{
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            dst[j * rows + i] = s * src[i * cols + j];
}

void lora_mm_forward(threadpool *pool, float *y, float *u, const float *x, const lora_module *m,
                     int32_t rank, float scale, int64_t T, const lora_dropout *drop, float *scratch)
{
    const int64_t r = rank, n_in = m->n_in, n_out = m->n_out;
    float *At = scratch;       /* (n_in, r) */
    float *us = At + n_in * r; /* (T, r) */
    float *Bt = us + T * r;    /* (r, n_out) */
    if (drop) {
        float *xd = drop_buf(scratch, m, r, T);
        lora_dropout_apply(pool, xd, x, T, n_in, drop);
        x = xd;
    }
    transpose_scaled(At, m->A, r, n_in, 1.0f);
    fgemm(pool, T, r, n_in, x, n_in, At, r, u, r, false);
    for (int64_t i = 0; i < T * r; i++)
        us[i] = scale * u[i];
    transpose_scaled(Bt, m->B, n_out, r, 1.0f);
    fgemm(pool, T, n_out, r, us, r, Bt, n_out, y, n_out, true);
}

void lora_mm_backward(threadpool *pool, float *dx, const float *dy, const float *x, const float *u,
                      const lora_module *m, int32_t rank, float scale, int64_t T,
                      const lora_dropout *drop, float *scratch)
{
    const int64_t r = rank, n_in = m->n_in, n_out = m->n_out;
    float *du = scratch;      /* (T, r): scale * dy B */
    float *ut = du + T * r;   /* (r, T): scale * u^T */
    float *dut = ut + T * r;  /* (r, T): du^T */
    float *dbt = dut + T * r; /* (r, n_out): gradient of B, transposed */
    float *xd = drop_buf(scratch, m, r, T);
    if (drop) {
        /* The forward's dropped input, redrawn: A's gradient is du^T drop(x). */
        lora_dropout_apply(pool, xd, x, T, n_in, drop);
        x = xd;
    }
    fgemm(pool, T, r, n_out, dy, n_out, m->B, r, du, r, false);
    for (int64_t i = 0; i < T * r; i++)
        du[i] *= scale;
    transpose_scaled(ut, u, T, r, scale);
    fgemm(pool, r, n_out, T, ut, T, dy, n_out, dbt, n_out, false);
    for (int64_t o = 0; o < n_out; o++)
        for (int64_t j = 0; j < r; j++)
            m->dB[o * r + j] += dbt[j * n_out + o];
    transpose_scaled(dut, du, T, r, 1.0f);
    fgemm(pool, r, n_in, T, dut, T, x, n_in, m->dA, n_in, true);
    if (!dx) return;
    if (!drop) {
        fgemm(pool, T, n_in, r, du, r, m->A, n_in, dx, n_in, true);
        return;
    }
    /* The path's input gradient goes through the same mask: the dropped
     * input is no longer needed, so its buffer takes du A. */
    fgemm(pool, T, n_in, r, du, r, m->A, n_in, xd, n_in, false);
    lora_dropout_apply(pool, xd, xd, T, n_in, drop);
    for (int64_t i = 0; i < T * n_in; i++)
        dx[i] += xd[i];
}
