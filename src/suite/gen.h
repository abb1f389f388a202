/*
 * gen.h - greedy generation for the suite: a model with its tokenizer,
 * chat template, KV cache and optional adapters; a prompt answered from an
 * empty cache with the time to the first token and the generation speed.
 */
#ifndef LOFT_SUITE_GEN_H
#define LOFT_SUITE_GEN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "infer/kv.h"
#include "loft.h"
#include "model/model.h"
#include "text/chat.h"
#include "text/vocab.h"
#include "train/adapter.h"

typedef struct suite_gen {
    loft_model *m;
    loft_vocab *v;
    kv_cache *kv;
    float *logits;
    int32_t n_vocab, n_ctx;
    loft_chat_template tmpl;
    lora_stack lora;
} suite_gen;

typedef struct suite_gen_timing {
    double ttft_ms;   /* prompt start to the first token chosen */
    double prompt_ms; /* the prompt's forward pass */
    double gen_ms;    /* first token chosen to the end */
    int32_t n_prompt, n_gen;
} suite_gen_timing;

/* Loads model and tokenizer (threads: forward threads), an n_ctx cache and
 * the chat template; adapter (NULL: none) is applied at scale 1. */
loft_code suite_gen_open(suite_gen *g, const char *path, int threads, int32_t n_ctx,
                         const char *adapter, loft_status *st);
void suite_gen_close(suite_gen *g);

/* The tokens of text: one user turn in the chat template when chat, else
 * the text as is; special tokens added as the model says. *toks malloc'd. */
loft_code suite_gen_prompt(suite_gen *g, const char *text, bool chat, int32_t **toks, size_t *n,
                           loft_status *st);

/* Answers toks[0..n) from an empty cache: up to n_predict greedy tokens,
 * stopping at an end-of-generation token or when *stop is set (then
 * *stopped). text (NULL: not wanted) receives the answer, trimmed,
 * malloc'd. */
loft_code suite_gen_run(suite_gen *g, const int32_t *toks, size_t n, int32_t n_predict,
                        volatile sig_atomic_t *stop, char **text, suite_gen_timing *t,
                        bool *stopped, loft_status *st);

#endif
