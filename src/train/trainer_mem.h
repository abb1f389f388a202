/*
 * trainer_mem.h - the size and parts of the trainer's activation arena, for
 * trainer.c (which lays the arena out in this order) and for estimating it
 * before a trainer exists (trainer_activation_bytes_for).
 *
 * The arena holds every block's input (n_layer x T x C), then the other
 * saved activations of one block per set (one set under activation
 * checkpointing, n_layer sets otherwise), the final stage, the backward
 * scratch and the per-thread scratch of the products and attention.
 */
#ifndef LOFT_TRAIN_TRAINER_MEM_H
#define LOFT_TRAIN_TRAINER_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "train/trainer.h"

typedef struct trainer_arena_plan {
    size_t total;                          /* floats in all */
    size_t wscr, att_scr_per; /* floats per thread */
    int64_t max_in;           /* widest input of a block matrix */
} trainer_arena_plan;

/* Fills p for hp and cfg with LoRA rank r (0 without LoRA) and lscr floats
 * of lora_mm scratch (the largest adapted module's). False when a size
 * overflows. */
bool trainer_plan_arena(const model_hparams *hp, size_t r, size_t lscr, const trainer_config *cfg,
                        trainer_arena_plan *p);

#endif
