/*
 * checkpoint.h - saving and restoring a training run's state (see train.h
 * for the directory layout).
 */
#ifndef LOFT_TRAIN_CHECKPOINT_H
#define LOFT_TRAIN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "loft.h"
#include "train/lora.h"
#include "train/optim.h"

typedef struct train_state {
    int64_t step;  /* optimizer steps done */
    int32_t epoch; /* 0-based epoch in progress */
    int64_t pos;   /* examples of that epoch's order already consumed */
    uint64_t seed; /* the data-order seed the run was started with */
    uint64_t n_examples;
} train_state;

/* Writes <parent>/checkpoint_step_NNNNNNNN/ (adapter.gguf + state.gguf with
 * the moments, the state and order[0..n_order)) through a temporary
 * directory renamed into place; an older directory of the same name is
 * replaced. */
loft_code checkpoint_save(const char *parent, const lora_set *s, const adamw *o,
                          const train_state *ts, const int32_t *order, size_t n_order,
                          const char *arch, loft_status *st);

/* Restores s's parameters (s must already have the run's modules and rank),
 * o's moments and step count, and *ts from checkpoint directory dir. */
loft_code checkpoint_load(const char *dir, lora_set *s, adamw *o, train_state *ts,
                          const lora_dims *dims, const char *arch, loft_status *st);

#endif
