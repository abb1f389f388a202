/*
 * lora.h - LoRA adapters: y = x W^T + scale * (x A^T) B^T, with the frozen
 * weight W: (n_out, n_in), A: (r, n_in), B: (n_out, r), scale = alpha / r.
 * Initialisation follows PEFT: A ~ kaiming_uniform(a = sqrt(5)), which is
 * U(-1/sqrt(n_in), 1/sqrt(n_in)), and B = 0, so training starts at the base.
 *
 * A lora_set holds every adapted matrix; all A and B values live in one
 * parameter array (and their gradients in one gradient array of the same
 * layout), so the optimizer and the checkpoint treat them as one vector.
 */
#ifndef LOFT_TRAIN_LORA_H
#define LOFT_TRAIN_LORA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/rng.h"
#include "loft.h"

/* The adaptable matrices, in llama.cpp's tensor-name spelling. */
typedef enum lora_kind {
    LORA_ATTN_Q = 0,
    LORA_ATTN_K,
    LORA_ATTN_V,
    LORA_ATTN_O,
    LORA_FFN_GATE,
    LORA_FFN_UP,
    LORA_FFN_DOWN,
    LORA_OUTPUT, /* the output (lm head) matrix; layer -1 */
    LORA_KIND_COUNT
} lora_kind;

/* "attn_q", ..., "attn_output", ..., "output": the GGUF tensor stem. */
const char *lora_kind_tensor_name(lora_kind k);

/* Parses a comma-separated module list with exact names: attn_q, attn_k,
 * attn_v, attn_o (or attn_output), ffn_gate, ffn_up, ffn_down, output, and
 * all (every one of them except output). *mask gets bit (1 << kind). An
 * unknown or empty name fails with LOFT_ERR_ARG naming it. */
loft_code lora_parse_modules(const char *list, uint32_t *mask, loft_status *st);

typedef struct lora_module {
    int32_t layer; /* block index, -1 for output */
    lora_kind kind;
    int64_t n_in, n_out;
    float *A, *B;   /* views into the set's params: (r, n_in), (n_out, r) */
    float *dA, *dB; /* the same into grads */
} lora_module;

/* The shape of every adaptable matrix of a model, per kind (n_in, n_out);
 * filled by the trainer from the model's hyperparameters. */
typedef struct lora_dims {
    int32_t n_layer;
    int64_t n_in[LORA_KIND_COUNT];
    int64_t n_out[LORA_KIND_COUNT];
} lora_dims;

typedef struct lora_set {
    int32_t rank;
    float alpha;
    float scale;    /* alpha / rank */
    uint32_t kinds; /* bit mask of lora_kind */
    lora_module *mods;
    size_t n_mods;
    float *params; /* every A then B, module after module */
    float *grads;
    size_t n_params;
    /* index[(layer + 1) * LORA_KIND_COUNT + kind] = module index or -1 */
    int32_t *index;
    int32_t n_layer;
} lora_set;

/* Allocates modules for every layer and every kind in `kinds` (output once,
 * as layer -1) with A and B zeroed. rank >= 1. */
loft_code lora_set_init(lora_set *s, const lora_dims *dims, uint32_t kinds, int32_t rank,
                        float alpha, loft_status *st);

/* As lora_set_init, but only the (layer, kind) pairs with
 * present[(layer + 1) * LORA_KIND_COUNT + kind] != 0 get a module (an
 * adapter trained on some layers only, as PEFT's layers_to_transform
 * makes); present == NULL means all of them. */
loft_code lora_set_init_some(lora_set *s, const lora_dims *dims, uint32_t kinds,
                             const uint8_t *present, int32_t rank, float alpha, loft_status *st);
void lora_set_free(lora_set *s);

/* PEFT's initialisation from a seed: A uniform in +-1/sqrt(n_in) (drawn
 * module by module, row by row), B zero. */
void lora_set_init_peft(lora_set *s, uint64_t seed);

/* The module of (layer, kind), or NULL when that matrix is not adapted. */
lora_module *lora_set_find(const lora_set *s, int32_t layer, lora_kind kind);

/* Zeroes every gradient. */
void lora_set_zero_grads(lora_set *s);

/* Forward of the low-rank path for T tokens:
 *   u: (T, r) = x: (T, n_in) A^T (saved for the backward),
 *   y: (T, n_out) += scale * u B^T. */
void lora_forward(float *y, float *u, const float *x, const lora_module *m, int32_t rank,
                  float scale, int64_t T);

/* Backward of lora_forward from dy: (T, n_out):
 *   dB += scale * dy^T u, du = scale * dy B, dA += du^T x, and, when dx is
 *   not NULL, dx: (T, n_in) += du A. du_buf: T * r floats of scratch. */
void lora_backward(float *dx, const float *dy, const float *x, const float *u, const lora_module *m,
                   int32_t rank, float scale, int64_t T, float *du_buf);

#endif
