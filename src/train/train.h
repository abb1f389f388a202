/*
 * train.h - the fine-tuning run: epochs of shuffled examples grouped into
 * optimizer steps, AdamW with clipping and a schedule, validation,
 * checkpoints with exact resume, and the final adapter.
 *
 * Steps: each epoch's example order is a permutation drawn from (seed,
 * epoch) alone, so it can be rebuilt on resume; an optimizer step takes the
 * next examples of that order while their tokens fit in n_batch (at least
 * one). Without pack each of them is its own forward/backward; with pack
 * they are grouped greedily, in order, into micro-batches of at most
 * n_ubatch tokens (an example longer than that runs alone), each one
 * forward/backward over several sequences that do not see each other
 * (trainer_batch). Gradients are accumulated over the step's micro-batches
 * and the loss is the mean over every target token of the step, so pack
 * changes float summation order only. The grouping is a function of the
 * order, so exact resume holds either way; the result does not depend on
 * the thread count.
 *
 * LoRA dropout draws its masks from a hash of (seed, optimizer step,
 * micro-batch of the step, ...), not from a stateful generator, so a
 * resumed run draws the masks the uninterrupted one did and the checkpoint
 * holds nothing for it.
 *
 * Checkpoints: every save_every steps (and on a stop request) a directory
 * <ckpt_dir>/checkpoint_step_NNNNNNNN/ with adapter.gguf and state.gguf
 * (AdamW moments, step, epoch, seed, the epoch's example order), written as
 * a temporary directory and renamed.
 */
#ifndef LOFT_TRAIN_TRAIN_H
#define LOFT_TRAIN_TRAIN_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "loft.h"
#include "model/model.h"
#include "train/dataset.h"
#include "train/lora.h"
#include "train/optim.h"

/* llama.cpp's default physical batch (n_ubatch), which it also caps at
 * the logical one. */
#define TRAIN_DEFAULT_UBATCH 512

typedef struct train_report {
    bool is_eval;  /* a validation result (val_loss) rather than a step */
    int32_t epoch; /* 1-based */
    int32_t n_epochs;
    int64_t step; /* optimizer steps done, 1-based */
    int64_t total_steps;
    double loss; /* mean loss of the step */
    double val_loss;
    double lr;
    double grad_norm;    /* before clipping */
    double tokens_per_s; /* tokens run per second, this process */
    double eta_s;
    int32_t n_seqs;     /* sequences in the step */
    int32_t n_ubatches; /* forward/backward passes in the step */
    int32_t n_tokens;
} train_report;

typedef void (*train_report_fn)(void *ud, const train_report *r);

typedef struct train_opts {
    int32_t n_ctx, n_batch;
    /* most tokens per forward/backward with pack: 1..n_batch, or 0 for
     * the default min(n_batch, TRAIN_DEFAULT_UBATCH); checked even
     * without pack, where each example runs alone */
    int32_t n_ubatch;
    bool pack;
    int n_threads;
    int32_t rank;
    float alpha;
    uint32_t modules; /* lora_kind bits */
    uint64_t lora_seed, seed;
    double lr, lr_min;
    lr_sched sched;
    double warmup_ratio;
    int64_t warmup_steps; /* < 0: from warmup_ratio */
    int32_t n_epochs;
    float weight_decay, beta1, beta2, eps;
    double grad_clip;
    bool shuffle;
    bool exact_matmul;
    /* LoRA dropout rate in [0, 1) on training sequences (never validation);
     * masks from (seed, step, micro-batch, layer, module, token, column) */
    float lora_dropout;
    bool checkpoint_activations; /* recompute block activations in the backward */
    int64_t save_every;          /* 0 = only at the end / on stop */
    const char *ckpt_dir;        /* NULL: no checkpoints or log */
    const char *output_adapter;
    const char *resume_from;     /* a checkpoint directory, or NULL */
    bool auto_resume;            /* newest complete checkpoint in ckpt_dir */
    const char *init_adapter;    /* --lora: start from this adapter */
    int64_t eval_steps;          /* 0 = at epoch ends only */
    int64_t max_steps;           /* > 0: stop after this many steps (tests) */
    volatile sig_atomic_t *stop; /* set asynchronously: finish step, checkpoint, return */
    train_report_fn report;
    void *report_ud;
} train_opts;

typedef struct train_result {
    int64_t steps; /* optimizer steps done in total */
    bool stopped;  /* ended early by *stop */
    bool resumed;
    int64_t resumed_step;
    double last_loss;
    double last_val_loss; /* NaN when no validation set */
} train_result;

/* The micro-batch size o asks for: n_ubatch, or its default when 0;
 * -1 when n_ubatch is out of range (st says why). */
int32_t train_ubatch(const train_opts *o, loft_status *st);

/* Trains a LoRA adapter on m over train (val may be NULL or empty) and
 * writes it to o->output_adapter (unless stopped early). */
loft_code train_run(loft_model *m, const train_dataset *train, const train_dataset *val,
                    const train_opts *o, train_result *res, loft_status *st);

/* The mean loss per target of the base model plus adapter s (NULL: base
 * alone) over d. */
loft_code train_eval_loss(loft_model *m, lora_set *s, const train_dataset *d, int n_threads,
                          int32_t n_ctx, double *loss, loft_status *st);

/* Newest complete checkpoint directory under dir (*out malloc'd), or
 * *out = NULL when there is none. */
loft_code train_find_checkpoint(const char *dir, char **out, loft_status *st);

#endif
