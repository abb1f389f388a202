/* optim.c - AdamW, clipping and the learning-rate schedule. */
#include "train/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"

loft_code adamw_init(adamw *o, size_t n, float beta1, float beta2, float eps, float weight_decay,
                     loft_status *st)
{
    memset(o, 0, sizeof *o);
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    o->weight_decay = weight_decay;
    o->n = n;
    o->m = calloc(n ? n : 1, sizeof(float));
    o->v = calloc(n ? n : 1, sizeof(float));
    if (!o->m || !o->v) {
        adamw_free(o);
        return loft_fail(st, LOFT_ERR_NOMEM, "AdamW: out of memory for %zu moments", n);
    }
    return LOFT_OK;
}

void adamw_free(adamw *o)
{
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

void adamw_step(adamw *o, float *p, const float *g, float lr)
{
    o->t++;
    const double bc1 = 1.0 - pow((double)o->beta1, (double)o->t);
    const double bc2 = 1.0 - pow((double)o->beta2, (double)o->t);
    const float step = (float)((double)lr / bc1);
    const float sq_bc2 = (float)sqrt(bc2);
    const float decay = 1.0f - lr * o->weight_decay;
    for (size_t i = 0; i < o->n; i++) {
        p[i] *= decay;
        o->m[i] = o->beta1 * o->m[i] + (1.0f - o->beta1) * g[i];
        o->v[i] = o->beta2 * o->v[i] + (1.0f - o->beta2) * g[i] * g[i];
        const float denom = sqrtf(o->v[i]) / sq_bc2 + o->eps;
        p[i] -= step * o->m[i] / denom;
    }
}

double grad_norm(const float *g, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)g[i] * (double)g[i];
    return sqrt(s);
}

double grad_clip(float *g, size_t n, double max_norm)
{
    const double norm = grad_norm(g, n);
    if (max_norm > 0.0 && norm > max_norm) {
        const float f = (float)(max_norm / (norm + 1e-6));
        for (size_t i = 0; i < n; i++)
            g[i] *= f;
    }
    return norm;
}

double lr_at(lr_sched kind, int64_t step, int64_t total, int64_t warmup, double lr, double lr_min)
{
    if (warmup > 0 && step < warmup) return lr * (double)(step + 1) / (double)warmup;
    if (kind == LR_CONSTANT) return lr;
    const int64_t span = total - warmup - 1;
    double frac = span > 0 ? (double)(step - warmup) / (double)span : 1.0;
    if (frac > 1.0) frac = 1.0;
    if (frac < 0.0) frac = 0.0;
    if (kind == LR_LINEAR) return lr + (lr_min - lr) * frac;
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + cos(M_PI * frac));
}
