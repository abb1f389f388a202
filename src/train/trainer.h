/*
 * trainer.h - one sequence through the model with LoRA adapters: a forward
 * pass that keeps the activations each backward step needs, the masked
 * cross-entropy loss, and the backward pass that accumulates gradients into
 * the LoRA set only (base weights are frozen, read in their stored type and
 * dequantized row by row; no full-precision copy of them is ever made).
 *
 * Architectures: llama (SmolLM, Llama, Mistral) and qwen2. Others are
 * refused with LOFT_ERR_UNSUPPORTED at trainer_init.
 *
 * A trainer owns activation buffers for up to max_tokens tokens and uses
 * one thread pool; one call at a time. A call runs one sequence or a packed
 * micro-batch of several (trainer_batch): each segment is an independent
 * example with positions restarting at 0 and causal attention inside it
 * only, so a segment's loss and gradients equal those of running it alone,
 * up to float summation order in the products that span all tokens.
 *
 * Activation checkpointing (checkpoint_activations): the forward keeps only
 * each block's input, and the backward recomputes a block's activations,
 * into one shared set of block buffers, just before that block's backward.
 * The recomputation is the same code on the same input, so losses and
 * gradients are bit-identical to the normal mode; the cost is about one
 * more forward per training sequence.
 */
#ifndef LOFT_TRAIN_TRAINER_H
#define LOFT_TRAIN_TRAINER_H

#include <stdbool.h>
#include <stdint.h>

#include "loft.h"
#include "model/model.h"
#include "train/lora.h"

typedef struct trainer trainer;

typedef struct trainer_config {
    int32_t max_tokens; /* most tokens in one call (the larger of -c and -ub) */
    /* longest segment, <= max_tokens (the -c of finetune); 0 means
     * max_tokens. Attention probabilities are kept for max_tokens x
     * max_segment pairs per head, not max_tokens squared. */
    int32_t max_segment;
    int n_threads;      /* >= 1 */
    /* true: frozen products dequantize weight rows to F32 and dot in F32
     * (matches a dequantized reference model); false: the inference
     * kernels, which quantize activations to 8 bits for quantized weights
     * (faster, llama.cpp's numerics). */
    bool exact_matmul;
    /* true: save block inputs only and recompute the rest in the backward */
    bool checkpoint_activations;
} trainer_config;

/* Fills the shapes of the matrices LoRA can adapt in m. */
void trainer_lora_dims(const loft_model *m, lora_dims *dims);

/* Prepares buffers for m (which must outlive the trainer) and lora (NULL:
 * the base model alone). On failure *out is NULL. */
loft_code trainer_init(trainer **out, loft_model *m, lora_set *lora, const trainer_config *cfg,
                       loft_status *st);
void trainer_free(trainer *tr);

/* Bytes of the activation arena a trainer_init with these arguments
 * allocates (saved activations plus forward/backward scratch; not the
 * model, the LoRA set or the optimizer): the LoRA modules are those of
 * `modules` (lora_kind bits; rank ignored when 0). 0 when the size
 * overflows or the configuration is invalid. */
size_t trainer_activation_bytes_for(const loft_model *m, int32_t rank, uint32_t modules,
                                    const trainer_config *cfg);

/* Bytes of tr's activation arena (as trainer_activation_bytes_for). */
size_t trainer_activation_bytes(const trainer *tr);

/* LoRA dropout (PEFT's lora_dropout, see train/lora_mm.h) with rate p for
 * the NEXT trainer_sequence or trainer_batch call only, whose masks are a function of
 * (seed, layer, module, token, column); that call's backward, and any
 * recomputation under checkpointing, reuse them. Any later call runs
 * without dropout unless armed again, so validation and
 * trainer_last_logits never drop. p = 0 disarms (bit-identical to never
 * calling this). LOFT_ERR_RANGE unless 0 <= p < 1. */
loft_code trainer_set_dropout(trainer *tr, float p, uint64_t seed, loft_status *st);

/* Runs tokens[0..T) as one segment (2 <= T <= max_segment). Token t is a target when
 * mask[t] (t >= 1): the loss term is -log softmax(logits[t-1])[tokens[t]].
 * *loss_sum receives the sum of those terms and *n_targets their count.
 * When backward, gradients of grad_weight * loss_sum are ADDED to the LoRA
 * set's grads (the caller zeroes them per optimizer step and passes
 * 1 / (targets in the step) to get the mean). */
loft_code trainer_sequence(trainer *tr, const int32_t *tokens, const uint8_t *mask, int32_t T,
                           bool backward, float grad_weight, double *loss_sum, int32_t *n_targets,
                           loft_status *st);

/* Runs n_seg segments packed into tokens[0..T), T = sum of seg_len[0..n_seg)
 * (2 <= T <= max_tokens, 1 <= seg_len[i] <= max_segment): segment i holds
 * the seg_len[i] tokens after those of segments before it. Token t is a
 * target when mask[t] and t is not the first token of its segment (no
 * target crosses a boundary). Loss and gradients as in trainer_sequence,
 * summed over every segment's targets; one call with n_seg == 1 is
 * trainer_sequence, bit for bit. */
loft_code trainer_batch(trainer *tr, const int32_t *tokens, const uint8_t *mask,
                        const int32_t *seg_len, int32_t n_seg, bool backward, float grad_weight,
                        double *loss_sum, int32_t *n_targets, loft_status *st);

/* Forward only, for checking an adapter against other engines: logits
 * (n_vocab floats) of the last of tokens[0..T) (1 <= T < max_segment). */
loft_code trainer_last_logits(trainer *tr, const int32_t *tokens, int32_t T, float *logits,
                              loft_status *st);

#endif
