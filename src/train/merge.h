/*
 * merge.h - folding LoRA adapters into a base model (`loft merge`).
 *
 * For every matrix W (n_out rows of n_in) that one of the adapters adapts,
 * the merged model stores
 *     W' = W + sum_i scale_i * (alpha_i / r_i) * B_i A_i
 * (A_i: (r_i, n_in), B_i: (n_out, r_i)) in the output type, every other
 * tensor byte for byte and every metadata key unchanged. The arithmetic is
 * done in F32 on the dequantized base row. When the output matrix is
 * adapted but the model ties it to token_embd, a separate output.weight is
 * written (the embedding itself stays as it was).
 *
 * Adapters are checked against the base before anything is written: the
 * architecture, every tensor's shape (llama.cpp's adapter layout), one rank
 * per adapter. The file is written atomically by the GGUF writer.
 */
#ifndef LOFT_TRAIN_MERGE_H
#define LOFT_TRAIN_MERGE_H

#include <stddef.h>
#include <stdint.h>

#include "loft.h"

typedef struct merge_adapter {
    const char *path;
    float scale; /* the user scale (1 for --lora) */
} merge_adapter;

typedef struct merge_params {
    const merge_adapter *adapters;
    size_t n_adapters;
    int out_type; /* a loft_type for every merged matrix, or -1: each
                     base tensor's own type when loft can quantize to it,
                     else F16 */
} merge_params;

typedef struct merge_summary {
    int n_tensors;  /* tensors written */
    int n_merged;   /* matrices that received a LoRA update */
    int n_fallback; /* merged matrices written as F16 because their row
                       width is not a multiple of the type's block or the
                       type has no quantizer */
    int64_t n_params_changed;
} merge_summary;

/* Writes base_path + the adapters of p to out_path. The output type must
 * have a quantizer (LOFT_ERR_ARG otherwise). An adapter whose architecture,
 * tensor names or shapes do not fit the base fails with LOFT_ERR_FORMAT
 * naming the adapter file and tensor; nothing is written then. sum may be
 * NULL. */
loft_code merge_model(const char *base_path, const merge_params *p, const char *out_path,
                      merge_summary *sum, loft_status *st);

#endif
