/*
 * lora_mm.h - the LoRA forward and backward of lora.h written as F32 GEMMs
 * (train/fgemm.h) over a whole sequence, for the trainer. Same maths as
 * lora_forward / lora_backward; the sums run in fgemm's fixed order, so the
 * results do not depend on the thread count (they differ from lora.c's by
 * float rounding only).
 *
 * Optional LoRA dropout (PEFT's lora_dropout): the low-rank path reads
 * dropout_p(x) instead of x, y = x W^T + scale * (drop(x) A^T) B^T, where
 * drop keeps an entry times 1 / (1 - p) or zeroes it. The mask is drawn
 * from a counter-based hash of (key, row, column), never from a stateful
 * generator, so the backward (and a recomputed forward) redraws exactly the
 * mask the forward used and nothing about it needs saving.
 */
#ifndef LOFT_TRAIN_LORA_MM_H
#define LOFT_TRAIN_LORA_MM_H

#include <stddef.h>
#include <stdint.h>

#include "base/threadpool.h"
#include "train/lora.h"

/* The dropout of one module in one pass. */
typedef struct lora_dropout {
    uint64_t key;       /* from lora_dropout_init: (seed, layer, kind) */
    uint64_t threshold; /* a 32-bit draw below it drops the entry: p * 2^32 rounded */
    float keep_scale;   /* 1 / (1 - p) */
} lora_dropout;

/* The dropout of module (layer, kind) (layer -1 for output) with rate p
 * (0 <= p < 1) under seed, the seed of the pass (train.c derives it from
 * the run's seed, the optimizer step and the micro-batch). */
void lora_dropout_init(lora_dropout *d, float p, uint64_t seed, int32_t layer, lora_kind kind);

/* Whether entry (t, c) is kept: a pure function of (d->key, t, c). */
int lora_dropout_keeps(const lora_dropout *d, int64_t t, int64_t c);

/* dst: (T, n) = drop(src): kept entries times keep_scale, others 0. dst
 * may be src (in place). Rows are split over the pool. */
void lora_dropout_apply(threadpool *pool, float *dst, const float *src, int64_t T, int64_t n,
                        const lora_dropout *d);

/* Floats of scratch lora_mm_forward/backward need for module m, rank r and
 * T tokens, dropout included (0 when the size overflows). */
size_t lora_mm_scratch(const lora_module *m, int32_t rank, int64_t T);

/* y: (T, n_out) += scale * (drop(x) A^T) B^T, with u: (T, rank) =
 * drop(x) A^T saved. drop is NULL for no dropout. */
void lora_mm_forward(threadpool *pool, float *y, float *u, const float *x, const lora_module *m,
                     int32_t rank, float scale, int64_t T, const lora_dropout *drop,
                     float *scratch);

/* From dy: (T, n_out), the saved x: (T, n_in) (the input before dropout)
 * and u: adds the gradients of A and B into m->dA, m->dB and, when dx is
 * not NULL, dx: (T, n_in) += drop(scale * (dy B) A) (the same mask as the
 * forward's: drop must be what the forward was given). */
void lora_mm_backward(threadpool *pool, float *dx, const float *dy, const float *x, const float *u,
                      const lora_module *m, int32_t rank, float scale, int64_t T,
                      const lora_dropout *drop, float *scratch);

#endif
