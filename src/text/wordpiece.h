/*
 * wordpiece.h - the BERT tokenizer (tokenizer.ggml.model = "bert"), matching
 * Hugging Face tokenizers' BertNormalizer + BertPreTokenizer + WordPiece as
 * all-MiniLM-L6-v2 configures them:
 *
 *   normalize   drop NUL, U+FFFD and control / unassigned code points (tab,
 *               newline and carriage return excepted); white space becomes
 *               ' '; CJK ideographs get a space on each side; NFD, then the
 *               nonspacing marks are dropped (accent stripping); lowercase;
 *   split       on white space, and every punctuation character (Unicode P*
 *               or ASCII punctuation) is a word of its own;
 *   wordpiece   each word (at most 100 code points, else [UNK]) is cut by
 *               greedy longest match from the left: the first piece as a
 *               word-initial token, the rest as "##" continuations; a word
 *               with any position that no token matches becomes one [UNK];
 *   specials    [CLS] first and [SEP] last.
 *
 * The vocabulary is read in llama.cpp's spelling (scripts/convert-bert-to-
 * gguf.py): word-initial tokens carry a leading U+2581, continuation tokens
 * are stored without "##", control tokens as they are.
 *
 * A wordpiece is immutable after wordpiece_load and may be shared by threads.
 */
#ifndef LOFT_TEXT_WORDPIECE_H
#define LOFT_TEXT_WORDPIECE_H

#include <stddef.h>
#include <stdint.h>

#include "gguf/gguf.h"
#include "loft.h"

typedef struct wordpiece wordpiece;

/* Builds the tokenizer from g's tokenizer.ggml.* metadata. Refuses a model
 * other than "bert", a missing or malformed token list and missing [UNK],
 * [CLS] or [SEP] ids (tokenizer.ggml.unknown_token_id, bos_token_id (the
 * [CLS] id, as llama.cpp stores it), seperator_token_id), naming the file and
 * the key. On LOFT_OK *out is owned by the caller (wordpiece_free). */
loft_code wordpiece_load(wordpiece **out, const gguf_file *g, loft_status *st);

/* Frees wp; NULL is allowed. */
void wordpiece_free(wordpiece *wp);

/* Tokenizes len bytes of text (invalid UTF-8 decodes to U+FFFD, which is
 * dropped) into [CLS] pieces [SEP]. When max_tokens > 0 the pieces are cut so
 * the whole, specials included, is at most max_tokens (>= 2) long, as
 * Hugging Face truncates. On LOFT_OK *tokens is malloc'd (caller frees) and
 * holds *n_tokens >= 2 ids. Errors: LOFT_ERR_NOMEM, LOFT_ERR_ARG for
 * 0 < max_tokens < 2. */
loft_code wordpiece_tokenize(const wordpiece *wp, const char *text, size_t len, int32_t max_tokens,
                             int32_t **tokens, size_t *n_tokens, loft_status *st);

/* Number of tokens in the vocabulary. */
int32_t wordpiece_n_vocab(const wordpiece *wp);

/* The token's text in the Hugging Face spelling ("##ing", "the", "[CLS]")
 * written to buf (cap bytes, NUL-terminated when cap > 0); returns the full
 * length, or 0 for an id out of range. */
size_t wordpiece_token_text(const wordpiece *wp, int32_t id, char *buf, size_t cap);

#endif
