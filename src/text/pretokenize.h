/*
 * pretokenize.h - the regex pre-tokenizers of byte-level BPE vocabularies,
 * written as hand matchers that split exactly where llama.cpp splits.
 */
#ifndef LOFT_TEXT_PRETOKENIZE_H
#define LOFT_TEXT_PRETOKENIZE_H

#include <stddef.h>
#include <stdint.h>

#include "loft.h"

typedef enum pretok_kind {
    /* "[\p{P}$+<=>^~|]+", then the GPT-2 regex, "\p{N}+", "[0-9][0-9][0-9]" */
    PRETOK_DEFAULT = 0,
    /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
    PRETOK_GPT2,
    /* "\p{N}" (every digit alone), then the GPT-2 regex (smollm, starcoder) */
    PRETOK_SMOLLM,
    /* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
     *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
    PRETOK_LLAMA3,
    /* as LLAMA3 with \p{N} instead of \p{N}{1,3} */
    PRETOK_QWEN2,
} pretok_kind;

/* A growable list of word lengths, in code points. */
typedef struct pretok_words {
    size_t *len;
    size_t n;
    size_t cap;
} pretok_words;

void pretok_words_free(pretok_words *w);

/* Splits cpts[0..n) into words (consecutive, covering everything, none
 * empty) and stores their lengths in *out (reset first). Returns LOFT_OK or
 * LOFT_ERR_NOMEM. */
loft_code pretokenize(pretok_kind kind, const uint32_t *cpts, size_t n, pretok_words *out);

#endif
