/*
 * model_impl.h - the inside of a loft_model, shared by model.c and the
 * architecture files (llama.c, qwen.c, gemma3.c). Not for other modules:
 * they use model.h.
 */
#ifndef LOFT_MODEL_IMPL_H
#define LOFT_MODEL_IMPL_H

#include "base/threadpool.h"
#include "infer/kv.h"
#include "kernels/kernels.h"
#include "model/layers.h"
#include "model/model.h"

/* The tensors of one block; absent optional ones have data == NULL. */
typedef struct model_layer {
    model_weight attn_norm;      /* (C) */
    model_weight wq, wk, wv, wo; /* (n_head*hd, C), (n_kv*hd, C), (n_kv*hdv, C), (C, n_head*hdv) */
    model_weight bq, bk, bv, bo; /* biases, optional (qwen2 has q/k/v) */
    model_weight q_norm, k_norm; /* (hd), per-head RMSNorm (qwen3, gemma3) */
    model_weight attn_post_norm; /* (C), gemma3 */
    model_weight ffn_norm;       /* (C) */
    model_weight ffn_gate, ffn_up; /* (n_ff, C) */
    model_weight ffn_down;         /* (C, n_ff) */
    model_weight ffn_post_norm;    /* (C), gemma3 */
} model_layer;

/* Forward scratch, sized for MODEL_CHUNK tokens and grown for the largest
 * cache seen; allocated once, reused by every call. */
#define MODEL_CHUNK 512

typedef struct model_scratch {
    float *x;      /* (CHUNK, C) residual stream */
    float *xn;     /* (CHUNK, C) normalized input of a sub-block */
    float *q;      /* (CHUNK, n_head*hd) */
    float *k;      /* (CHUNK, n_kv*hd) */
    float *v;      /* (CHUNK, n_kv*hdv) */
    float *att;    /* (CHUNK, n_head*hdv) */
    float *proj;   /* (CHUNK, C) output of wo / ffn_down */
    float *gate;   /* (CHUNK, n_ff) */
    float *up;     /* (CHUNK, n_ff) */
    float *row;    /* max input width: one dequantized weight row */
    float *rope;   /* (CHUNK, n_rot): each token's cos/sin (model_rope) */
    /* What rope holds: the rotations of positions rope_pos0 .. + rope_T - 1
     * under rope_rp (rope_T 0: nothing yet). The layers of one chunk share
     * them unless their rope parameters differ. */
    int32_t rope_pos0, rope_T;
    rope_params rope_rp;
    float *scores; /* n_scores floats: attention scratch (kernels_attention_scratch) */
    size_t n_scores;
    void *xq;        /* (CHUNK, widest) activations in a weight type's format */
    size_t xq_bytes;
} model_scratch;

/* Forward of one architecture: tokens[0..T) (T <= MODEL_CHUNK, ids already
 * checked) at positions pos0.. with their kv rows stored in kv (pos0 + T <=
 * size; the caller then moves `used`). When logits is not NULL it receives
 * (T, n_vocab) when all_logits, else the last token's n_vocab. */
typedef void (*model_forward_fn)(loft_model *m, kv_cache *kv, const int32_t *tokens, int32_t T,
                                 int32_t pos0, float *logits, bool all_logits);

struct loft_model {
    gguf_file *gguf;
    model_hparams hp;
    model_weight tok_embd; /* (n_vocab, C) */
    model_weight output_norm;
    model_weight output;   /* (n_vocab, C); token_embd when tied */
    model_weight rope_freqs; /* (n_rot/2) F32 divisors, optional */
    model_layer *layers;
    bool *layer_swa;       /* n_layer flags */
    model_scratch s;
    threadpool *pool;       /* forward threads; NULL: the caller alone */
    const loft_kernels *kt; /* kernel set, chosen at load (kernels_get) */
    bool f32_act;           /* matmuls take F32 activations (model_set_f32_activations) */
    float *rows;            /* (threads, widest) dequantized weight rows for f32_act */
    void *packed;           /* the packed copies of weights (model_pack_weights), or NULL */
    void *vectors;          /* heap copies of the norm / bias vectors (model_pack_weights), or NULL */
    int64_t widest;         /* widest matmul input */
    model_forward_fn forward;
    model_adapter_fn adapter; /* optional LoRA hook (model_set_adapter) */
    void *adapter_ctx;
};

/* Looks up `name` and checks it: n_dims and ne must match (ne1 ignored for
 * 1-D), and the type must be dequantizable (F32 only when f32_only). When
 * the tensor is absent, fails unless optional (then w->data is NULL). */
loft_code model_weight_get(loft_model *m, model_weight *w, const char *name, int64_t ne0,
                           int64_t ne1, bool is_2d, bool optional, bool f32_only, loft_status *st);

/* The same for tensor "blk.<il>.<suffix>.weight" (or ".bias" when bias). */
loft_code model_layer_weight_get(loft_model *m, model_weight *w, int32_t il, const char *suffix,
                                 bool bias, int64_t ne0, int64_t ne1, bool is_2d, bool optional,
                                 bool f32_only, loft_status *st);

/* Key "<arch>.<suffix>" read as an integer / float; missing -> LOFT_ERR_FORMAT
 * unless optional (then *out is unchanged and LOFT_OK). */
loft_code model_key_int(const loft_model *m, const char *suffix, bool optional, int32_t *out,
                        loft_status *st);
loft_code model_key_float(const loft_model *m, const char *suffix, bool optional, float *out,
                          loft_status *st);

/* Reads the hyperparameters common to the transformer architectures into
 * m->hp (block_count, embedding_length, feed_forward_length, head counts,
 * key/value lengths, context length, rope, norm epsilon, vocabulary size
 * from token_embd) and loads token_embd, output_norm, output (tied when
 * absent) and rope_freqs. */
loft_code model_load_common(loft_model *m, loft_status *st);

/* Loads the tensors the layers of every architecture have: attn_norm,
 * attn_q/k/v/output (and optional biases), ffn_norm, ffn_gate/up/down. */
loft_code model_load_common_layers(loft_model *m, loft_status *st);

/* The output stage shared by the architectures: x: (T, C) -> output_norm ->
 * output matmul -> final softcap, for the rows asked (see model_forward_fn). */
void model_output_logits(loft_model *m, float *x, int32_t T, float *logits, bool all_logits);

/* Runs the attention of the chunk: q: (T, n_head*hd), k: (T, n_kv*hd) and
 * v: (T, n_kv*hdv) for positions pos0.. are already projected (roped and
 * normed as the architecture wants); stores k/v in kv for layer il and
 * writes att: (T, n_head*hdv). */
void model_attention(loft_model *m, kv_cache *kv, int32_t il, int32_t T, int32_t pos0);

/* Called once at the end of model_load, with m->kt set: gives each weight
 * matrix of a type m->kt has a packed kernel for its packed copy (in
 * m->packed, freed by model_free) and drops the mapped pages it replaces
 * from the resident set. Leaves the model as it was when memory is short. */
void model_pack_weights(loft_model *m);

/* model_attention with q.k multiplied by `scale` instead of hp.attn_scale
 * (1 for an architecture that scales the queries beforehand). */
void model_attention_scaled(loft_model *m, kv_cache *kv, int32_t il, int32_t T, int32_t pos0,
                            float scale);

/* y: (T, w.n_out) = x: (T, w.n_in) times w transposed, on the model's
 * thread pool with its kernel set (activations converted to the weight
 * type's 8-bit format first, as llama.cpp does; float-weight types read
 * x in place). T <= MODEL_CHUNK; y and x do not overlap. */
/* y = x W^T for T rows of x (F32, w.n_in wide) into y (T, w.n_out): x is
 * brought into w's activation format first (s.xq), over the pool. */
void model_matmul(loft_model *m, float *y, const float *x, const model_weight *w, int32_t T);

/* n products of the same x: ys[i] = x ws[i]^T. x is quantized once for
 * every run of weights that take the same activation format, so q/k/v or
 * gate/up share one quantization, and such a run goes to the pool as one
 * job (kernels_matmul_xq_many). Results equal n model_matmul calls. */
#define MODEL_MATMULS_MAX 4
void model_matmuls(loft_model *m, const float *x, int32_t T, int n, const model_weight *const *ws,
                   float *const *ys);

/* ---- per-token steps over the pool (model_par.c) ----
 * Each runs on the caller alone for one row or little work, else splits
 * its rows over m->pool; rows are independent, so results never depend on
 * the thread count. */

/* fn(ctx, r0, r1) for row ranges covering [0, n_rows); row_work is the
 * floats one row touches (to judge whether threads pay). */
typedef void (*model_rows_fn)(void *ctx, int64_t r0, int64_t r1);
void model_for_rows(loft_model *m, int64_t n_rows, int64_t row_work, model_rows_fn fn, void *ctx);

/* rmsnorm_forward over rows (rows, n) */
void model_rmsnorm(loft_model *m, float *out, const float *x, const float *w, int64_t rows,
                   int64_t n, float eps);

/* Rope on s.q and s.k for T tokens at positions pos0.., the per-token
 * cos/sin in s.rope (T, n_rot), computed unless s.rope already holds
 * those positions under the same parameters; the queries are then
 * multiplied by q_scale unless it is 1. */
void model_rope(loft_model *m, int32_t T, int32_t pos0, const rope_params *rp, float q_scale);

/* kv_cache_store of s.k / s.v for T tokens at positions pos0.. of layer il */
void model_kv_store(loft_model *m, kv_cache *kv, int32_t il, int32_t T, int32_t pos0);

/* swiglu_ggml_forward per token on (T, n) rows */
void model_swiglu_ggml(loft_model *m, float *out, const float *gate, const float *up, int32_t T,
                       int64_t n);

/* x += y over (rows, n) */
void model_add_rows_par(loft_model *m, float *x, const float *y, int64_t rows, int64_t n);

/* kernels_quantize_x of T rows of k values into xq for weight type `type` */
void model_quantize_x(loft_model *m, uint32_t type, const float *x, int32_t T, int64_t k, void *xq);

/* x: (n) += y: (n). */
void model_add_rows(float *x, const float *y, int64_t n);

/* Per-architecture entry points (llama.c, qwen.c, gemma3.c): read the
 * architecture's own keys and tensors, set m->forward. */
loft_code llama_load(loft_model *m, loft_status *st);
loft_code qwen_load(loft_model *m, loft_status *st);
loft_code gemma3_load(loft_model *m, loft_status *st);

#endif
