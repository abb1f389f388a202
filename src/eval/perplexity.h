/*
 * perplexity.h - perplexity of a model over a text, computed the way
 * llama.cpp's llama-perplexity does it, so the figures can be compared:
 *
 *   - the whole text is tokenized once, with BOS when the model adds it;
 *   - it is cut into n_chunk = n_tokens / n_ctx chunks of n_ctx tokens
 *     (at least 2 * n_ctx tokens are required);
 *   - each chunk is evaluated from an empty cache, its first token replaced
 *     by BOS when the model adds BOS;
 *   - only the second half is scored: the logits at positions
 *     n_ctx/2 .. n_ctx-2 against the tokens that follow them;
 *   - PPL = exp(mean NLL); the error is PPL * sqrt(var(NLL) / (count - 1)).
 */
#ifndef LOFT_EVAL_PERPLEXITY_H
#define LOFT_EVAL_PERPLEXITY_H

#include <stddef.h>
#include <stdint.h>

#include "loft.h"
#include "model/model.h"
#include "text/vocab.h"

typedef struct loft_ppl_params {
    int32_t n_ctx;    /* chunk length in tokens, >= 4 */
    int32_t n_batch;  /* tokens per forward call, >= 1 (bounds the logits buffer) */
    int32_t n_chunks; /* chunks to score; <= 0 means all */
} loft_ppl_params;

typedef struct loft_ppl_result {
    int32_t n_chunks; /* chunks scored */
    int64_t n_tokens; /* tokens in the text (after tokenization) */
    int64_t n_scored; /* predictions scored */
    double nll;       /* mean negative log-likelihood (nats) */
    double ppl;       /* exp(nll) */
    double ppl_err;   /* standard error of ppl (0 when undefined) */
} loft_ppl_result;

/* Called after each chunk with its 1-based index and the running estimate. */
typedef void (*loft_ppl_progress)(void *user, int32_t chunk, double running_ppl);

/* Scores tokens[0..n_tokens) (already tokenized, BOS included as the model
 * wants) with model m. progress may be NULL. Fails with LOFT_ERR_RANGE when
 * the text has fewer than 2 * n_ctx tokens, naming both counts. */
loft_code loft_perplexity_tokens(loft_model *m, const loft_vocab *v, const int32_t *tokens,
                                 size_t n_tokens, const loft_ppl_params *p,
                                 loft_ppl_progress progress, void *user, loft_ppl_result *out,
                                 loft_status *st);

/* Tokenizes len bytes of text like llama.cpp (special tokens added as the
 * model says, special-token text not parsed) and scores it. */
loft_code loft_perplexity_text(loft_model *m, const loft_vocab *v, const char *text, size_t len,
                               const loft_ppl_params *p, loft_ppl_progress progress, void *user,
                               loft_ppl_result *out, loft_status *st);

#endif
