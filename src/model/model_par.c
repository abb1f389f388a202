/*
 * model_par.c - the per-token steps of a forward pass (norms, rope, the
 * F16 cache store, the gated activation, residual adds, quantizing the
 * activations for a matmul), split over the model's thread pool.
 *
 * Each step treats its rows independently, so cutting the rows into
 * ranges changes no result. A chunk of a prompt has up to MODEL_CHUNK
 * rows; one generated token has one, and runs on the caller alone (a pool
 * run costs more than the work).
 */
#include <stddef.h>

#include "model/model_impl.h"

/* Floats a step must touch before a second thread is worth waking. */
#define MODEL_PAR_MIN_WORK 8192

typedef struct par_job {
    model_rows_fn fn;
    void *ctx;
    int64_t n;
} par_job;

static void par_part(void *arg, int ith, int nth)
{
    const par_job *jb = arg;
    const int64_t r0 = jb->n * ith / nth, r1 = jb->n * (ith + 1) / nth;
    if (r1 > r0) jb->fn(jb->ctx, r0, r1);
}

void model_for_rows(loft_model *m, int64_t n_rows, int64_t row_work, model_rows_fn fn, void *ctx)
{
    if (n_rows <= 0) return;
    if (threadpool_size(m->pool) == 1 || n_rows < 2 || n_rows * row_work < MODEL_PAR_MIN_WORK) {
        fn(ctx, 0, n_rows);
        return;
    }
    par_job jb = {fn, ctx, n_rows};
    threadpool_run(m->pool, par_part, &jb);
}

/* ---- rmsnorm ------------------------------------------------------------ */

typedef struct norm_job {
    float *out;
    const float *x, *w;
    int64_t n;
    float eps;
} norm_job;

static void norm_rows(void *arg, int64_t r0, int64_t r1)
{
    const norm_job *jb = arg;
    const size_t o = (size_t)r0 * (size_t)jb->n;
    rmsnorm_forward(jb->out + o, jb->x + o, jb->w, r1 - r0, jb->n, jb->eps);
}

void model_rmsnorm(loft_model *m, float *out, const float *x, const float *w, int64_t rows,
                   int64_t n, float eps)
{
    norm_job jb = {out, x, w, n, eps};
    model_for_rows(m, rows, n, norm_rows, &jb);
}

/* ---- rope --------------------------------------------------------------- */

typedef struct rope_job {
    const loft_kernels *kt;
    model_scratch *s;
    const model_hparams *hp;
    const rope_params *rp;
    int32_t pos0;
    float q_scale;
    bool fill; /* compute the rotations into s->rope (else they are there) */
} rope_job;

static void rope_rows(void *arg, int64_t t0, int64_t t1)
{
    const rope_job *jb = arg;
    const model_hparams *hp = jb->hp;
    const loft_kernels *kt = jb->kt;
    const size_t qd = (size_t)hp->n_head * (size_t)hp->head_dim;
    const size_t kd = (size_t)hp->n_head_kv * (size_t)hp->head_dim;
    for (int64_t t = t0; t < t1; t++) {
        float *cs = jb->s->rope + (size_t)t * (size_t)hp->n_rot;
        float *q = jb->s->q + (size_t)t * qd;
        if (jb->fill) rope_cache(cs, jb->pos0 + (int32_t)t, jb->rp);
        /* rope_apply's bits, vectorized */
        kt->rope(q, hp->n_head, hp->head_dim, jb->rp->n_rot, jb->rp->neox, cs);
        kt->rope(jb->s->k + (size_t)t * kd, hp->n_head_kv, hp->head_dim, jb->rp->n_rot,
                 jb->rp->neox, cs);
        if (jb->q_scale != 1.0f)
            for (size_t i = 0; i < qd; i++) q[i] *= jb->q_scale;
    }
}

/* Whether rope_cache gives the same rotations under a and b. */
static bool rope_same(const rope_params *a, const rope_params *b)
{
    return a->n_rot == b->n_rot && a->freq_base == b->freq_base &&
           a->freq_scale == b->freq_scale && a->freq_factors == b->freq_factors;
}

void model_rope(loft_model *m, int32_t T, int32_t pos0, const rope_params *rp, float q_scale)
{
    const model_hparams *hp = &m->hp;
    model_scratch *s = &m->s;
    /* every layer of a chunk rotates the same positions: the sines and
     * cosines are computed once, by the first */
    const bool fill = !(s->rope_T >= T && s->rope_pos0 == pos0 && rope_same(&s->rope_rp, rp));
    rope_job jb = {m->kt, s, hp, rp, pos0, q_scale, fill};
    model_for_rows(m, T, (int64_t)(hp->n_head + hp->n_head_kv) * hp->head_dim, rope_rows, &jb);
    if (fill) {
        s->rope_pos0 = pos0;
        s->rope_T = T;
        s->rope_rp = *rp;
    }
}

/* ---- cache store ---------------------------------------------------------- */

typedef struct store_job {
    kv_cache *kv;
    const loft_kernels *kt;
    const float *k, *v;
    int32_t il, pos0;
    size_t kd, vd;
} store_job;

static void store_rows(void *arg, int64_t t0, int64_t t1)
{
    const store_job *jb = arg;
    for (int64_t t = t0; t < t1; t++)
        kv_cache_store(jb->kv, jb->kt, jb->il, jb->pos0 + (int32_t)t, jb->k + (size_t)t * jb->kd,
                       jb->v + (size_t)t * jb->vd);
}

void model_kv_store(loft_model *m, kv_cache *kv, int32_t il, int32_t T, int32_t pos0)
{
    const model_hparams *hp = &m->hp;
    const size_t kd = (size_t)hp->n_head_kv * (size_t)hp->head_dim;
    const size_t vd = (size_t)hp->n_head_kv * (size_t)hp->head_dim_v;
    store_job jb = {kv, m->kt, m->s.k, m->s.v, il, pos0, kd, vd};
    model_for_rows(m, T, (int64_t)(kd + vd), store_rows, &jb);
}

/* ---- gated activation in ggml's rounding ---------------------------------- */

typedef struct swiglu_job {
    float *out;
    const float *gate, *up;
    int64_t n;
} swiglu_job;

static void swiglu_rows(void *arg, int64_t t0, int64_t t1)
{
    const swiglu_job *jb = arg;
    for (int64_t t = t0; t < t1; t++) {
        const size_t o = (size_t)t * (size_t)jb->n;
        swiglu_ggml_forward(jb->out + o, jb->gate + o, jb->up + o, jb->n);
    }
}

void model_swiglu_ggml(loft_model *m, float *out, const float *gate, const float *up, int32_t T,
                       int64_t n)
{
    swiglu_job jb = {out, gate, up, n};
    model_for_rows(m, T, 4 * n, swiglu_rows, &jb);
}

/* ---- residual add --------------------------------------------------------- */

typedef struct add_job {
    float *x;
    const float *y;
    int64_t n;
} add_job;

static void add_rows_part(void *arg, int64_t r0, int64_t r1)
{
    const add_job *jb = arg;
    const size_t o = (size_t)r0 * (size_t)jb->n;
    model_add_rows(jb->x + o, jb->y + o, (r1 - r0) * jb->n);
}

void model_add_rows_par(loft_model *m, float *x, const float *y, int64_t rows, int64_t n)
{
    add_job jb = {x, y, n};
    model_for_rows(m, rows, n, add_rows_part, &jb);
}

/* ---- activation quantization ---------------------------------------------- */

typedef struct quant_job {
    const loft_kernels *kt;
    uint32_t type;
    const float *x;
    int64_t k;
    char *xq;
    size_t rs;
} quant_job;

static void quant_rows(void *arg, int64_t r0, int64_t r1)
{
    const quant_job *jb = arg;
    kernels_quantize_x(jb->kt, jb->type, jb->x + (size_t)r0 * (size_t)jb->k, r1 - r0, jb->k,
                       jb->xq + (size_t)r0 * jb->rs);
}

void model_quantize_x(loft_model *m, uint32_t type, const float *x, int32_t T, int64_t k, void *xq)
{
    quant_job jb = {m->kt, type, x, k, xq, kernels_x_row_size(type, k)};
    model_for_rows(m, T, k, quant_rows, &jb);
}
