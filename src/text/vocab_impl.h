/*
 * vocab_impl.h - the inside of a loft_vocab, shared by vocab.c (loading,
 * special-token partition), bpe.c, spm.c and detok.c. Not a public header.
 */
#ifndef LOFT_TEXT_VOCAB_IMPL_H
#define LOFT_TEXT_VOCAB_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "text/pretokenize.h"
#include "text/vocab.h"

/* Token attributes, numbered as llama.cpp's llama_token_attr; the loader
 * sets them from the token types and llama.cpp's by-name rules. */
enum {
    VOCAB_ATTR_UNKNOWN = 1 << 0,
    VOCAB_ATTR_UNUSED = 1 << 1,
    VOCAB_ATTR_NORMAL = 1 << 2,
    VOCAB_ATTR_CONTROL = 1 << 3,
    VOCAB_ATTR_USER_DEFINED = 1 << 4,
    VOCAB_ATTR_BYTE = 1 << 5,
};

struct loft_vocab {
    vocab_kind kind;
    pretok_kind pre;
    bool ignore_merges;    /* a word that is a whole token skips merging */
    bool clean_spaces;     /* detokenize drops spaces before ?!., etc. */
    bool add_space_prefix; /* SPM: a space before text that follows a special */
    bool add_bos, add_eos;

    int32_t n_tokens;
    char *blob;         /* every token text, each followed by a NUL */
    size_t *text_off;   /* [n_tokens] offset into blob */
    uint32_t *text_len; /* [n_tokens] */
    float *score;       /* [n_tokens] */
    uint8_t *type;      /* [n_tokens] vocab_token_type */
    uint32_t *attr;     /* [n_tokens] VOCAB_ATTR_* */
    uint8_t *eog;       /* [n_tokens] 1 for end-of-generation tokens */

    int32_t *tok_slot; /* open-addressing table text -> id (-1 empty) */
    size_t tok_mask;

    uint64_t *merge_key; /* open-addressing table (left, right) -> rank */
    int32_t *merge_rank; /* -1 marks an empty slot */
    size_t merge_mask;

    int32_t byte_tok[256]; /* token of each raw byte (SPM <0xXX>, BPE byte char), -1 if none */

    int32_t bos, eos, eot, eom, unk, pad, sep;

    int32_t *special; /* control / user-defined / unknown ids, longest text first */
    size_t n_special;
};

/* A growable list of token ids. */
typedef struct tok_list {
    int32_t *ids;
    size_t n, cap;
} tok_list;

bool tok_list_push(tok_list *l, int32_t id);

/* Id of the token with exactly these bytes, or -1. */
int32_t vocab_lookup(const loft_vocab *v, const char *s, size_t len);

/* Rank of merging tokens left and right, or -1 when no merge exists. */
int32_t vocab_merge_rank(const loft_vocab *v, int32_t left, int32_t right);

/* Appends the tokens of one raw-text fragment (no specials inside). */
loft_code bpe_tokenize_fragment(const loft_vocab *v, const char *text, size_t len, tok_list *out);
/* text is already escaped (spaces as U+2581, prefix space added). */
loft_code spm_tokenize_fragment(const loft_vocab *v, const char *text, size_t len, tok_list *out);

#endif
