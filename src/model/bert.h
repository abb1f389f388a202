/*
 * bert.h - the BERT encoder for sentence embeddings (all-MiniLM-L6-v2 and
 * kin), read from a GGUF file of llama.cpp's "bert" layout
 * (scripts/convert-bert-to-gguf.py writes one).
 *
 * embed(text) = L2-normalize(mean over tokens of encoder(wordpiece(text))),
 * the sentence-transformers pipeline Transformer -> Pooling(mean) ->
 * Normalize. The encoder, for T tokens and width C:
 *   x = LayerNorm(token_embd[id] + position_embd[t] + token_types[0])
 *   per block:  x = LayerNorm(x + attn_output(softmax(q k^T / sqrt(d)) v))
 *               x = LayerNorm(x + ffn_down(gelu_erf(ffn_up(x))))
 * with bidirectional attention (every token sees every token) and biases on
 * every linear layer (post-norm, as BERT is).
 *
 * A bert_model owns its gguf_file (weights are views into the mapping; 2-D
 * weights may be F32, F16 or any type with a dot product, vectors must be
 * F32) and its tokenizer. One encode at a time per model.
 */
#ifndef LOFT_MODEL_BERT_H
#define LOFT_MODEL_BERT_H

#include <stddef.h>
#include <stdint.h>

#include "gguf/gguf.h"
#include "loft.h"
#include "text/wordpiece.h"

typedef struct bert_model bert_model;

typedef struct bert_hparams {
    int32_t n_layer;
    int32_t n_embd; /* C */
    int32_t n_head; /* C % n_head == 0 */
    int32_t n_ff;
    int32_t n_ctx; /* positions in position_embd: the longest input */
    int32_t n_vocab;
    float norm_eps; /* LayerNorm epsilon */
} bert_hparams;

/* Loads an encoder. A file whose general.architecture is not "bert" is
 * refused with LOFT_ERR_UNSUPPORTED ("not an encoder"); a missing key or
 * tensor, a wrong shape or type, or a pooling other than mean
 * (bert.pooling_type 1, the default when absent) fail naming the key or
 * tensor. On LOFT_OK *out is owned by the caller (bert_free). */
loft_code bert_load(bert_model **out, const char *path, loft_status *st);

/* Frees m; NULL is allowed. */
void bert_free(bert_model *m);

const bert_hparams *bert_get_hparams(const bert_model *m);

/* The tokenizer read from the same file; valid as long as m. */
const wordpiece *bert_get_wordpiece(const bert_model *m);

/* Encodes tokens[0..n) (1 <= n <= n_ctx, ids in [0, n_vocab)) and writes the
 * mean-pooled, L2-normalized embedding (n_embd floats) to out. When
 * hidden is not NULL it receives the last layer's states, (n, n_embd).
 * Errors: LOFT_ERR_RANGE for a bad n or id, LOFT_ERR_NOMEM. */
loft_code bert_encode(bert_model *m, const int32_t *tokens, int32_t n, float *out, float *hidden,
                      loft_status *st);

/* Tokenizes len bytes of text ([CLS] ... [SEP], cut to n_ctx tokens) and
 * encodes it into out (n_embd floats). */
loft_code bert_embed(bert_model *m, const char *text, size_t len, float *out, loft_status *st);

#endif
