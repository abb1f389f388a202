/*
 * vocab.h - tokenizers built from a GGUF file's tokenizer.ggml.* metadata.
 *
 * Two models are handled, matching llama.cpp token for token:
 *   "gpt2"  byte-level BPE (merge ranks, a regex pre-tokenizer chosen by
 *           tokenizer.ggml.pre, bytes mapped to printable code points);
 *   "llama" SentencePiece-style BPE driven by token scores, with <0xXX> byte
 *           fallback and spaces written as U+2581.
 * In the input, control (and unknown) tokens are recognised only when the
 * caller asks for parse_special; user-defined tokens (gemma's newline runs,
 * for one) are always cut out first, as llama.cpp does.
 *
 * A loft_vocab is immutable after vocab_load and may be shared by threads.
 * It copies what it needs, so the gguf_file can be closed afterwards.
 */
#ifndef LOFT_TEXT_VOCAB_H
#define LOFT_TEXT_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf/gguf.h"
#include "loft.h"

typedef struct loft_vocab loft_vocab;

typedef enum vocab_kind {
    VOCAB_KIND_SPM = 1, /* tokenizer.ggml.model = "llama" */
    VOCAB_KIND_BPE = 2, /* tokenizer.ggml.model = "gpt2" */
} vocab_kind;

/* Token types as stored in tokenizer.ggml.token_type (llama.cpp numbering). */
typedef enum vocab_token_type {
    VOCAB_TYPE_UNDEFINED = 0,
    VOCAB_TYPE_NORMAL = 1,
    VOCAB_TYPE_UNKNOWN = 2,
    VOCAB_TYPE_CONTROL = 3,
    VOCAB_TYPE_USER_DEFINED = 4,
    VOCAB_TYPE_UNUSED = 5,
    VOCAB_TYPE_BYTE = 6,
} vocab_token_type;

/* Builds the tokenizer from g's metadata. Every array length, id, merge and
 * token text is validated; a failure names the file and the key. On LOFT_OK
 * *out is owned by the caller (vocab_free). */
loft_code vocab_load(loft_vocab **out, const gguf_file *g, loft_status *st);

/* Frees v; NULL is allowed. */
void vocab_free(loft_vocab *v);

/* Tokenizes len bytes of text (need not be NUL-terminated or valid UTF-8).
 * add_special: add BOS / EOS as the model's metadata says (add_bos_token,
 * add_eos_token). parse_special: text of control / unknown tokens is
 * matched as those tokens; otherwise it is tokenized as plain text.
 * User-defined tokens are matched either way. An error only comes from
 * running out of memory or from an SPM vocabulary lacking a byte token.
 * On LOFT_OK *tokens is malloc'd (caller frees; may be NULL when
 * *n_tokens == 0). */
loft_code vocab_tokenize(const loft_vocab *v, const char *text, size_t len, bool add_special,
                         bool parse_special, int32_t **tokens, size_t *n_tokens, loft_status *st);

/* Bytes that token tok stands for: byte tokens become their byte, U+2581
 * becomes a space (SPM), byte-level code points become bytes (BPE). Control
 * tokens are rendered as their text only when render_special; user-defined
 * tokens always are. Writes at most cap bytes to buf (no NUL) and returns the
 * full piece length, so a return > cap means buf was too small. An id out of
 * range gives 0. */
size_t vocab_token_to_piece(const loft_vocab *v, int32_t tok, bool render_special, char *buf,
                            size_t cap);

/* Concatenates the pieces of n tokens into a malloc'd, NUL-terminated
 * string (*out, length *out_len). Follows llama.cpp's detokenize with
 * remove_special = false: for SPM vocabularies with add_space_prefix, the
 * space the tokenizer added before the first word is removed. */
loft_code vocab_detokenize(const loft_vocab *v, const int32_t *tokens, size_t n,
                           bool render_special, char **out, size_t *out_len, loft_status *st);

int32_t vocab_n_tokens(const loft_vocab *v);
vocab_kind vocab_get_kind(const loft_vocab *v);
/* Special ids, -1 when the model has none. */
int32_t vocab_bos(const loft_vocab *v);
int32_t vocab_eos(const loft_vocab *v);
int32_t vocab_eot(const loft_vocab *v);
int32_t vocab_eom(const loft_vocab *v);
int32_t vocab_unk(const loft_vocab *v);
int32_t vocab_pad(const loft_vocab *v);
int32_t vocab_sep(const loft_vocab *v);
/* Whether tokenize(add_special = true) adds BOS / EOS. */
bool vocab_adds_bos(const loft_vocab *v);
bool vocab_adds_eos(const loft_vocab *v);

/* End of generation: eos, eot, eom and the control tokens llama.cpp treats
 * as such (<|im_end|>, <end_of_turn>, <|eot_id|>, ...). */
bool vocab_is_eog(const loft_vocab *v, int32_t tok);
/* Whether tok is a control token (not rendered unless asked). */
bool vocab_is_control(const loft_vocab *v, int32_t tok);
vocab_token_type vocab_token_get_type(const loft_vocab *v, int32_t tok);

/* The token's stored text (not decoded), or NULL when out of range; *len
 * receives its length when len is not NULL. */
const char *vocab_token_text(const loft_vocab *v, int32_t tok, size_t *len);

/* Id of the token whose stored text equals text exactly, or -1. */
int32_t vocab_find_token(const loft_vocab *v, const char *text);

/* Streaming detokenizer: bytes of a multi-byte UTF-8 character split across
 * tokens are held back until the character is complete, so every chunk
 * vocab_stream_push returns is whole UTF-8 (an invalid sequence is passed
 * through once it can no longer become valid). Initialise with
 * vocab_stream_init, release with vocab_stream_free. */
typedef struct vocab_stream {
    char *buf; /* owned: the last chunk returned, then the held-back bytes */
    size_t cap;
    size_t ready;   /* bytes of the last chunk returned */
    size_t pending; /* incomplete trailing bytes held back (at most 3) */
} vocab_stream;

void vocab_stream_init(vocab_stream *s);
void vocab_stream_free(vocab_stream *s);

/* Adds token tok's piece. Returns the bytes now ready to print (a view into
 * s, valid until the next call) with their count in *len; NULL on allocation
 * failure. */
const char *vocab_stream_push(vocab_stream *s, const loft_vocab *v, int32_t tok,
                              bool render_special, size_t *len);

/* Returns whatever is still held back (an incomplete sequence at the end of
 * the output) and empties the stream. */
const char *vocab_stream_flush(vocab_stream *s, size_t *len);

#endif
