/*
 * attn_ggml.h - the implementations behind kernels_attn_group_ggml and
 * kernels_attn_tokens_ggml, one by one, so tests can hold the SIMD bodies
 * to the scalar one bit for bit.
 */
#ifndef LOFT_KERNELS_ATTN_GGML_H
#define LOFT_KERNELS_ATTN_GGML_H

#include <stdbool.h>

#include "kernels/kernels.h"

/* kernels_attn_group_ggml (same arguments and results) computed by the
 * body for `isa`: "ref" (the portable scalar emulation, the oracle),
 * "avx2" (the same scalar code with inlined FMA) or "avx512" (vectors).
 * Returns false, touching nothing, when that body is not compiled in or
 * this CPU cannot run it. */
bool kernels_attn_group_ggml_isa(const char *isa, float *out, const float *q, int ng, const void *K,
                                 size_t k_stride, const void *V, size_t v_stride, int32_t first,
                                 int32_t last, const kernels_attn *as, float *scores);

/* kernels_attn_tokens_ggml (same arguments and results) computed by the
 * body for `isa` as above: "avx512" runs the several-token body where it
 * takes the shape, the others (and avx512 on other shapes) the one-token
 * body of that name token by token. Returns false, touching nothing, when
 * that body is not available. */
bool kernels_attn_tokens_ggml_isa(const char *isa, float *out, size_t out_stride, const float *q,
                                  size_t q_stride, int nt, int ng, const void *K, size_t k_stride,
                                  const void *V, size_t v_stride, const int32_t *first,
                                  const int32_t *last, const kernels_attn *as, float *scores);

#endif
