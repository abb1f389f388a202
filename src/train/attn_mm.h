/*
 * attn_mm.h - the trainer's causal self-attention of a whole sequence
 * (forward with saved probabilities, and backward) as F32 GEMMs per head
 * (train/fgemm.h). Same shapes, layout and maths as attention_seq_forward /
 * attention_seq_backward in model/layers_backward.h, which stay the
 * reference: results differ from them by float rounding only.
 *
 * Work is split by kv head (with its query heads), so a thread owns the dk
 * and dv rows it writes and every sum keeps one order whatever the thread
 * count.
 */
#ifndef LOFT_TRAIN_ATTN_MM_H
#define LOFT_TRAIN_ATTN_MM_H

#include <stddef.h>
#include <stdint.h>

#include "model/layers.h"

/* Floats of scratch one caller of attn_mm_forward/backward needs for T
 * tokens and head sizes as (0 when the size overflows). */
size_t attn_mm_scratch(int32_t T, const attn_shape *as);

/* attention_seq_forward for the query heads of kv heads [kv0, kv1). */
void attn_mm_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                     int32_t T, const attn_shape *as, int32_t kv0, int32_t kv1, float *scratch);

/* attention_seq_backward for kv heads [kv0, kv1) and their query heads:
 * dq, dk, dv += from dout. */
void attn_mm_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                      const float *q, const float *k, const float *v, int32_t T,
                      const attn_shape *as, int32_t kv0, int32_t kv1, float *scratch);

#endif
