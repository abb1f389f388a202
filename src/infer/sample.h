/*
 * sample.h - choosing the next token from a row of logits.
 *
 * The chain runs in llama.cpp's default order:
 *   penalties (repeat / frequency / presence over the last repeat_last_n
 *   tokens) -> top-k -> top-p -> min-p -> temperature -> seeded draw.
 * temp <= 0 is greedy: the highest logit after penalties, ties broken
 * towards the lowest token id. Top-k, top-p and min-p act on the logits
 * before temperature, as in llama.cpp.
 *
 * The stages are exposed on a candidate array so tests can hold each one
 * to values worked out by hand.
 */
#ifndef LOFT_INFER_SAMPLE_H
#define LOFT_INFER_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/rng.h"
#include "loft.h"

typedef struct loft_sampler_params {
    float temp;              /* <= 0: greedy */
    int32_t top_k;           /* <= 0: off */
    float top_p;             /* >= 1: off */
    float min_p;             /* <= 0: off */
    float repeat_penalty;    /* 1: off */
    int32_t repeat_last_n;   /* window of past tokens the penalties see; 0: off */
    float presence_penalty;  /* 0: off */
    float frequency_penalty; /* 0: off */
    uint64_t seed;
} loft_sampler_params;

/* llama.cpp's defaults: temp 0.8, top-k 40, top-p 0.95, min-p 0.05,
 * repeat penalty 1.0 over 64 tokens, no presence/frequency penalty, seed 0. */
void loft_sampler_params_default(loft_sampler_params *p);

/* One candidate token: its id, logit and (after a softmax) probability. */
typedef struct loft_candidate {
    int32_t id;
    float logit;
    float p;
} loft_candidate;

/* A working set of candidates. `sorted` is true when data is in
 * descending logit order. */
typedef struct loft_candidates {
    loft_candidate *data;
    size_t size;
    bool sorted;
} loft_candidates;

/* ---- stages (each keeps at least one candidate) ----------------------- */

/* Penalises every candidate whose id occurs in last[0..n_last): the logit is
 * divided by `repeat` when positive and multiplied by it otherwise, then
 * count*frequency + presence is subtracted (count = occurrences). */
void loft_sample_penalties(loft_candidates *c, const int32_t *last, size_t n_last, float repeat,
                           float frequency, float presence);

/* Keeps the k highest logits (sorted afterwards); k <= 0 leaves c alone. */
void loft_sample_top_k(loft_candidates *c, int32_t k);

/* Keeps the smallest prefix, by descending probability, whose probability
 * sums to at least p; p >= 1 leaves c alone. Fills each candidate's p. */
void loft_sample_top_p(loft_candidates *c, float p);

/* Keeps candidates whose probability is at least min_p times the largest
 * (compared on logits: logit >= max + log(min_p)); min_p <= 0 leaves c alone. */
void loft_sample_min_p(loft_candidates *c, float min_p);

/* Divides every logit by t (t > 0). */
void loft_sample_temp(loft_candidates *c, float t);

/* Sets each candidate's p to its softmax probability over c and sorts c. */
void loft_sample_softmax(loft_candidates *c);

/* Draws one candidate with probability proportional to exp(logit); returns its id. */
int32_t loft_sample_dist(loft_candidates *c, loft_rng *rng);

/* The id with the highest logit; ties go to the lowest id. */
int32_t loft_sample_greedy(const loft_candidates *c);

/* ---- the chain ------------------------------------------------------- */

typedef struct loft_sampler loft_sampler;

/* A sampler for a vocabulary of n_vocab tokens. Owns its buffers and RNG
 * (seeded from p->seed); free with loft_sampler_free. */
loft_code loft_sampler_init(loft_sampler **out, const loft_sampler_params *p, int32_t n_vocab,
                            loft_status *st);
void loft_sampler_free(loft_sampler *s);

/* Records a token (prompt or generated) in the penalty window. */
void loft_sampler_accept(loft_sampler *s, int32_t token);

/* Forgets the penalty window; the RNG stream continues. */
void loft_sampler_reset(loft_sampler *s);

/* Runs the chain over logits[0..n_vocab) (not modified) and returns the
 * chosen token id. Does not accept it: call loft_sampler_accept. */
int32_t loft_sampler_sample(loft_sampler *s, const float *logits);

#endif
