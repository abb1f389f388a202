/*
 * lora_mm.h - the LoRA forward and backward of lora.h written as F32 GEMMs
 * (train/fgemm.h) over a whole sequence, for the trainer. Same maths as
 * lora_forward / lora_backward; the sums run in fgemm's fixed order, so the
 * results do not depend on the thread count (they differ from lora.c's by
 * float rounding only).
 */
#ifndef LOFT_TRAIN_LORA_MM_H
#define LOFT_TRAIN_LORA_MM_H

#include <stddef.h>
#include <stdint.h>

#include "base/threadpool.h"
#include "train/lora.h"

/* Floats of scratch lora_mm_forward/backward need for module m, rank r and
 * T tokens (0 when the size overflows). */
size_t lora_mm_scratch(const lora_module *m, int32_t rank, int64_t T);

/* y: (T, n_out) += scale * (x A^T) B^T, with u: (T, rank) = x A^T saved. */
void lora_mm_forward(threadpool *pool, float *y, float *u, const float *x, const lora_module *m,
                     int32_t rank, float scale, int64_t T, float *scratch);

/* From dy: (T, n_out), the saved x: (T, n_in) and u: adds the gradients of
 * A and B into m->dA, m->dB and, when dx is not NULL, dx: (T, n_in) +=
 * scale * (dy B) A. */
void lora_mm_backward(threadpool *pool, float *dx, const float *dy, const float *x, const float *u,
                      const lora_module *m, int32_t rank, float scale, int64_t T, float *scratch);

#endif
