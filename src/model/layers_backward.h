/*
 * layers_backward.h - the backward halves of the layer functions in
 * layers.h, plus the whole-sequence forms of the forward steps whose
 * backward needs saved state (attention probabilities, norm scales).
 *
 * Convention: every *_backward ADDS into the gradients it produces (dx +=),
 * so a residual stream or a tensor read twice (GQA keys) accumulates
 * without extra buffers; callers zero gradient buffers first. Shapes as in
 * layers.h: x: (T, C) is T rows of C floats.
 */
#ifndef LOFT_MODEL_LAYERS_BACKWARD_H
#define LOFT_MODEL_LAYERS_BACKWARD_H

#include <stdint.h>

#include "model/layers.h"

/* rmsnorm_forward that also stores inv_rms[t] = 1 / sqrt(mean(x_t^2) + eps)
 * (T floats) for the backward. out may alias x. */
void rmsnorm_forward_save(float *out, float *inv_rms, const float *x, const float *w, int64_t T,
                          int64_t n, float eps);

/* dx: (T, n) += d(rmsnorm)/dx applied to dy: (T, n), for the gain w (NULL:
 * none) and the inv_rms saved by rmsnorm_forward_save. The gain is frozen,
 * so it gets no gradient. dx must not alias dy. */
void rmsnorm_backward(float *dx, const float *dy, const float *x, const float *w,
                      const float *inv_rms, int64_t T, int64_t n);

/* The adjoint of rope_apply (a rotation, so the inverse rotation): rotates
 * the gradient dx: (n_heads, head_dim) of one token in place by -angle. */
void rope_backward(float *dx, int32_t n_heads, int32_t head_dim, const float *cs,
                   const rope_params *rp);

/* Causal self-attention of a whole sequence of T tokens at positions 0..T-1:
 *   q: (T, n_head*hd)  k: (T, n_head_kv*hd)  v: (T, n_head_kv*hdv)
 *   out: (T, n_head*hdv)  probs: (n_head, T, T), row i of head h holds the
 *   softmax weights of query i (zeros past i and outside the window).
 * Softcapped scores are not supported (as->softcap must be 0). */
void attention_seq_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                           int32_t T, const attn_shape *as);

/* Backward of attention_seq_forward: dq, dk, dv (shapes of q, k, v) +=
 * from dout. scratch: T floats. */
void attention_seq_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                            const float *q, const float *k, const float *v, int32_t T,
                            const attn_shape *as, float *scratch);

/* Backward of swiglu_forward (h = silu(gate) * up), all (T, n):
 * dgate += dh * up * silu'(gate), dup += dh * silu(gate). */
void swiglu_backward(float *dgate, float *dup, const float *dh, const float *gate, const float *up,
                     int64_t T, int64_t n);

/* Backward of geglu_forward (h = gelu_tanh(gate) * up), all (T, n). */
void geglu_backward(float *dgate, float *dup, const float *dh, const float *gate, const float *up,
                    int64_t T, int64_t n);

/* Input gradient of y = x W^T through a frozen weight of any type:
 * dx: (T, w.n_in) += dy: (T, w.n_out) times W, with the rows of W
 * dequantized on the fly (never stored whole). Tokens t in [t0, t1) only,
 * so threads may split the rows of dx. row_buf: w.n_in * 16 floats. */
void matmul_qw_backward_x(float *dx, const float *dy, const model_weight *w, int64_t T, int64_t t0,
                          int64_t t1, float *row_buf);

#endif
