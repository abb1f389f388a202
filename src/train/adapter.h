/*
 * adapter.h - LoRA adapters in llama.cpp's GGUF format.
 *
 * Metadata: general.type = "adapter", general.architecture = the base
 * model's, adapter.type = "lora", adapter.lora.alpha (float32). Tensors, all
 * F32: "blk.N.<module>.weight.lora_a" with ne = [n_in, r] (our A: r rows of
 * n_in) and "blk.N.<module>.weight.lora_b" with ne = [r, n_out] (our B:
 * n_out rows of r); "output.weight.lora_a/b" for the output matrix. That is
 * the layout llama.cpp's llama_adapter_lora_init checks (a->ne[0] == the
 * weight's ne[0], b->ne[1] == its ne[1], a->ne[1] == b->ne[0]).
 */
#ifndef LOFT_TRAIN_ADAPTER_H
#define LOFT_TRAIN_ADAPTER_H

#include "loft.h"
#include "model/model.h"
#include "train/lora.h"

/* Writes s to path atomically (temp file + rename). arch: the base model's
 * general.architecture. */
loft_code adapter_save(const lora_set *s, const char *arch, const char *path, loft_status *st);

/* Reads an adapter written by loft or llama.cpp's converter into *out,
 * checking every tensor against dims (the base model's shapes), the
 * architecture against arch, and that all pairs share one rank. On failure
 * *out is empty and st names the file and tensor. */
loft_code adapter_load(lora_set *out, const char *path, const lora_dims *dims, const char *arch,
                       loft_status *st);

/* Copies the A and B values of src into the modules of dst that exist in
 * both (same layer, kind and shape); LOFT_ERR_FORMAT when src has a module
 * dst lacks or ranks differ. For continuing training from an adapter. */
loft_code adapter_copy_into(lora_set *dst, const lora_set *src, const char *what, loft_status *st);

/* Adapters applied at inference, any number, each with a user scale
 * (llama.cpp's --lora / --lora-scaled): y += scale * alpha / r * B A x per
 * adapted projection. Attach to a model with lora_stack_attach; the stack
 * must outlive that model's forward calls. */
typedef struct lora_stack {
    lora_set *sets;
    float *scales;
    size_t n;
    float *u; /* scratch: (T, r) for the largest chunk and rank */
    size_t u_cap;
} lora_stack;

/* Loads the adapter at path for model m (shapes and architecture checked)
 * and appends it with scale. */
loft_code lora_stack_add(lora_stack *s, const char *path, float scale, const loft_model *m,
                         loft_status *st);

/* Makes m's forward add every adapter of s (model_set_adapter). The
 * architecture must call the hook (llama); others fail with
 * LOFT_ERR_UNSUPPORTED. */
loft_code lora_stack_attach(lora_stack *s, loft_model *m, loft_status *st);

void lora_stack_free(lora_stack *s);

#endif