/*
 * model.h - loading a GGUF model and running its forward pass.
 *
 * A loft_model owns the gguf_file it was loaded from; every weight is a view
 * into that file's read-only mapping (nothing is copied). The forward pass
 * appends tokens to a kv_cache (src/infer/kv.h) and writes logits.
 *
 * Known architectures: llama, qwen2, qwen3, gemma3. Anything else is refused
 * with LOFT_ERR_UNSUPPORTED naming the known ones.
 *
 * Threading: a loft_model holds the scratch buffers of its forward pass, so
 * one model runs one forward at a time (any number of caches, one at a time).
 */
#ifndef LOFT_MODEL_H
#define LOFT_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf/gguf.h"
#include "loft.h"

typedef struct loft_model loft_model;
typedef struct kv_cache kv_cache;

typedef enum model_arch {
    MODEL_ARCH_LLAMA = 0,
    MODEL_ARCH_QWEN2,
    MODEL_ARCH_QWEN3,
    MODEL_ARCH_GEMMA3,
    MODEL_ARCH_COUNT
} model_arch;

/* How rope pairs the dimensions of a head: NORM rotates (x[2i], x[2i+1])
 * (llama, whose q/k rows the converter permutes), NEOX rotates
 * (x[i], x[i + n_rot/2]) (qwen, gemma). */
typedef enum rope_style { ROPE_STYLE_NORM = 0, ROPE_STYLE_NEOX = 1 } rope_style;

/* Context-extension scheme of the rope frequencies. LLAMA3 means the file
 * carries per-frequency divisors in the tensor rope_freqs.weight (that is how
 * llama.cpp's converter stores llama-3 scaling); LINEAR divides positions by
 * rope_scaling_factor. */
typedef enum rope_scaling { ROPE_SCALING_NONE = 0, ROPE_SCALING_LINEAR, ROPE_SCALING_LLAMA3 } rope_scaling;

typedef struct model_hparams {
    model_arch arch;
    const char *arch_name; /* "llama", "qwen2", ... (static string) */
    int32_t n_layer;
    int32_t n_embd;      /* residual width C */
    int32_t n_head;      /* query heads */
    int32_t n_head_kv;   /* key/value heads (GQA: n_head % n_head_kv == 0) */
    int32_t head_dim;    /* per-head width of q and k */
    int32_t head_dim_v;  /* per-head width of v */
    int32_t n_ff;        /* feed-forward hidden width */
    int32_t n_vocab;
    int32_t n_ctx_train; /* context length the model was trained with */
    int32_t n_rot;       /* leading dims of each head that rope rotates */
    rope_style rope_style;
    rope_scaling rope_scaling;
    float rope_freq_base;     /* theta base of global (or all) layers */
    float rope_freq_base_swa; /* theta base of sliding-window layers */
    float rope_freq_scale;    /* 1 / linear scaling factor, 1 when none */
    float norm_eps;           /* RMSNorm epsilon */
    int32_t sliding_window;   /* window of local layers in tokens; 0 = none */
    float attn_scale;         /* multiplies q.k before softmax */
    float attn_softcap;       /* 0 = none, else cap * tanh(s / cap) on scores */
    float final_softcap;      /* 0 = none, else the same on the logits */
    float embd_scale;         /* multiplies the token embedding (gemma: sqrt(C)) */
    bool tied_output;         /* the output matrix is token_embd */
} model_hparams;

/* Loads the model at path. On LOFT_OK *out owns the mapping; free it with
 * model_free. Refuses unknown architectures, missing hyperparameters, missing
 * tensors and tensors of the wrong shape or of a type without a dequantizer,
 * naming the key or tensor. On failure *out is NULL. */
loft_code model_load(loft_model **out, const char *path, loft_status *st);

/* Runs the forward pass on n_threads threads (n_threads <= 0: one per
 * online processor, or $LOFT_THREADS when set), replacing the current pool. Results do not depend on
 * the thread count. The default after model_load is one per processor. */
loft_code model_set_threads(loft_model *m, int n_threads, loft_status *st);

/* Threads the forward pass uses. */
int model_get_threads(const loft_model *m);

/* on: every matmul takes its activations in F32 and dequantizes weight rows
 * (the reference arithmetic: closest to a float64 forward, slower);
 * off (the default): activations are rounded to 8-bit blocks per matmul and
 * multiplied in integers, as llama.cpp does. */
void model_set_f32_activations(loft_model *m, bool on);

/* Frees the model and unmaps its file; NULL is allowed. */
void model_free(loft_model *m);

/* The hyperparameters; valid as long as the model. */
const model_hparams *model_get_hparams(const loft_model *m);

/* True when layer il uses sliding-window attention (and the swa rope base). */
bool model_layer_is_swa(const loft_model *m, int32_t il);

/* The parsed file, so the tokenizer can read its tables from the same
 * mapping; owned by the model. */
const gguf_file *model_gguf(const loft_model *m);

/* Runs tokens[0..n_tokens) at positions kv_cache_used(kv) onwards and
 * appends their keys/values to kv. logits receives n_vocab floats for the
 * last token, or n_tokens * n_vocab (row t for token t) when all_logits.
 * Token ids outside [0, n_vocab) give LOFT_ERR_RANGE and leave kv unchanged;
 * more tokens than the cache has room for give LOFT_ERR_RANGE and leave kv
 * unchanged. kv must have been made for this model (kv_cache_init). */
loft_code model_forward(loft_model *m, kv_cache *kv, const int32_t *tokens, int32_t n_tokens,
                        float *logits, bool all_logits, loft_status *st);

/* Adapters at inference (LoRA): a hook the forward calls right after each
 * frozen projection, before any bias, to add its own terms:
 *   y: (T, n_out) += f(x: (T, n_in)).
 * which is one of MODEL_PROJ_* (the order of src/train/lora.h's kinds);
 * layer is -1 for MODEL_PROJ_OUTPUT. Only the llama architecture calls it
 * so far. NULL fn removes the hook. The hook is not owned by the model. */
enum {
    MODEL_PROJ_Q = 0,
    MODEL_PROJ_K,
    MODEL_PROJ_V,
    MODEL_PROJ_O,
    MODEL_PROJ_GATE,
    MODEL_PROJ_UP,
    MODEL_PROJ_DOWN,
    MODEL_PROJ_OUTPUT
};
typedef void (*model_adapter_fn)(void *ctx, int32_t layer, int32_t which, float *y,
                                 const float *x, int32_t T);
void model_set_adapter(loft_model *m, model_adapter_fn fn, void *ctx);

#endif
