/*
 * optim.h - AdamW with decoupled weight decay and bias correction
 * (PyTorch's torch.optim.AdamW), global-norm gradient clipping, and the
 * learning-rate schedule (linear warmup, then constant / linear / cosine
 * decay to lr_min).
 */
#ifndef LOFT_TRAIN_OPTIM_H
#define LOFT_TRAIN_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "loft.h"

typedef struct adamw {
    float beta1, beta2, eps, weight_decay;
    int64_t t;    /* steps taken */
    float *m, *v; /* first and second moments, n each */
    size_t n;
} adamw;

/* Zeroed moments for n parameters. */
loft_code adamw_init(adamw *o, size_t n, float beta1, float beta2, float eps, float weight_decay,
                     loft_status *st);
void adamw_free(adamw *o);

/* One step: p *= 1 - lr * wd; m, v updated from g; p -= lr * m_hat /
 * (sqrt(v_hat) + eps) with m_hat = m / (1 - beta1^t), v_hat = v / (1 -
 * beta2^t). */
void adamw_step(adamw *o, float *params, const float *grads, float lr);

/* The L2 norm of g (summed in double). */
double grad_norm(const float *g, size_t n);

/* Scales g so its norm is at most max_norm (when max_norm > 0 and the norm
 * exceeds it, as torch.nn.utils.clip_grad_norm_ does). Returns the norm
 * before clipping. */
double grad_clip(float *g, size_t n, double max_norm);

typedef enum lr_sched { LR_CONSTANT = 0, LR_LINEAR, LR_COSINE } lr_sched;

/* Learning rate of optimizer step `step` (0-based) of total: linear from
 * lr/warmup up to lr over the first warmup steps, then constant, or decayed
 * linearly / by half a cosine to lr_min at the last step. */
double lr_at(lr_sched kind, int64_t step, int64_t total, int64_t warmup, double lr, double lr_min);

#endif
