/* lora_mm.c - LoRA forward/backward as GEMMs (see lora_mm.h). */
#include "train/lora_mm.h"

#include "train/fgemm.h"

size_t lora_mm_scratch(const lora_module *m, int32_t rank, int64_t T)
{
    const uint64_t r = (uint64_t)(rank > 0 ? rank : 0);
    const uint64_t n = (uint64_t)m->n_in + (uint64_t)m->n_out + 3u * (uint64_t)(T > 0 ? T : 0);
    if (r != 0 && n > (SIZE_MAX / sizeof(float)) / r) return 0;
    return (size_t)(r * n);
}

/* dst: (cols, rows) = src: (rows, cols) transposed, times s. */
static void transpose_scaled(float *dst, const float *src, int64_t rows, int64_t cols, float s)
{
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            dst[j * rows + i] = s * src[i * cols + j];
}

void lora_mm_forward(threadpool *pool, float *y, float *u, const float *x, const lora_module *m,
                     int32_t rank, float scale, int64_t T, float *scratch)
{
    const int64_t r = rank, n_in = m->n_in, n_out = m->n_out;
    float *At = scratch;       /* (n_in, r) */
    float *us = At + n_in * r; /* (T, r) */
    float *Bt = us + T * r;    /* (r, n_out) */
    transpose_scaled(At, m->A, r, n_in, 1.0f);
    fgemm(pool, T, r, n_in, x, n_in, At, r, u, r, false);
    for (int64_t i = 0; i < T * r; i++)
        us[i] = scale * u[i];
    transpose_scaled(Bt, m->B, n_out, r, 1.0f);
    fgemm(pool, T, n_out, r, us, r, Bt, n_out, y, n_out, true);
}

void lora_mm_backward(threadpool *pool, float *dx, const float *dy, const float *x, const float *u,
                      const lora_module *m, int32_t rank, float scale, int64_t T, float *scratch)
{
    const int64_t r = rank, n_in = m->n_in, n_out = m->n_out;
    float *du = scratch;      /* (T, r): scale * dy B */
    float *ut = du + T * r;   /* (r, T): scale * u^T */
    float *dut = ut + T * r;  /* (r, T): du^T */
    float *dbt = dut + T * r; /* (r, n_out): gradient of B, transposed */
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
    if (dx) fgemm(pool, T, n_in, r, du, r, m->A, n_in, dx, n_in, true);
}
