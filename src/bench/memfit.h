/*
 * memfit.h - how much memory a model configuration needs, estimated from
 * the GGUF metadata before anything is loaded, so a run that cannot fit is
 * refused with a clear message ("OOM (needs X GiB, has Y GiB)") instead of
 * being killed by the kernel.
 *
 * The estimate follows what loft allocates: the mapped file (weights and
 * tokenizer tables, all touched by a forward pass), the F16 KV cache plus
 * its F32 staging rows, the forward scratch (MODEL_CHUNK tokens of
 * activations), the logits, the tokenizer's own tables and a fixed process
 * baseline.
 */
#ifndef LOFT_BENCH_MEMFIT_H
#define LOFT_BENCH_MEMFIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf/gguf.h"
#include "loft.h"

typedef struct memfit_config {
    int32_t n_ctx;   /* KV cache positions */
    int32_t n_batch; /* tokens per forward call (logits rows when all_logits) */
    bool all_logits; /* logits for every batch position (perplexity) */
} memfit_config;

typedef struct memfit_estimate {
    uint64_t weights;  /* the mapped file */
    uint64_t kv_cache; /* cache + staging */
    uint64_t buffers;  /* forward scratch + logits */
    uint64_t overhead; /* tokenizer tables + process baseline */
    uint64_t total;
} memfit_estimate;

/* Estimates the memory of running g's model with cfg. Needs the
 * architecture's block_count, embedding_length, head counts and
 * feed_forward_length; fails with LOFT_ERR_FORMAT naming a missing key. */
loft_code memfit_estimate_model(const gguf_file *g, const memfit_config *cfg, memfit_estimate *out,
                                loft_status *st);

typedef struct memfit_train_config {
    int32_t n_ctx;     /* tokens per sequence (the trainer's activation rows) */
    int32_t rank;      /* LoRA rank */
    uint32_t modules;  /* bit (1 << lora_kind): q, k, v, o, gate, up, down, output */
    int32_t n_threads; /* per-thread matmul scratch */
    /* tokens per forward/backward when several sequences share one
     * (finetune --pack: the larger of -ub and -c); 0 means n_ctx. The
     * attention probabilities are then n_head * max_tokens * n_ctx. */
    int32_t max_tokens;
    bool checkpoint_activations; /* one block's activations kept, plus every block's input */
} memfit_train_config;

/* Estimates the memory of fine-tuning g's model with cfg, following the
 * trainer's allocation (src/train/trainer.c): the mapped file, the saved
 * activations of every layer for max_tokens (or n_ctx) tokens (attention
 * probabilities are n_head * tokens * n_ctx per layer; with
 * checkpoint_activations one layer's set plus each layer's input rows), the
 * logits, the backward scratch, and the
 * LoRA parameters, gradients and both AdamW moments (4 floats each).
 * kv_cache is 0; buffers holds activations + LoRA state. Fails like
 * memfit_estimate_model on missing keys. */
loft_code memfit_estimate_train(const gguf_file *g, const memfit_train_config *cfg,
                                memfit_estimate *out, loft_status *st);

/* The limit a run must fit in: limit_bytes when > 0, else the RAM available
 * now. Returns true when est fits; *have receives the limit used. */
bool memfit_fits(const memfit_estimate *est, uint64_t limit_bytes, uint64_t *have);

/* Parses a size such as "512M", "8G", "8GiB", "1.5g" or "123456" (bytes)
 * into bytes. Returns false on anything else. */
bool memfit_parse_size(const char *s, uint64_t *out);

/* Writes "OOM (needs X GiB, has Y GiB)" into buf. */
void memfit_oom_text(uint64_t need, uint64_t have, char *buf, size_t cap);

#endif
