/*
 * vocab.c - loading a tokenizer from GGUF metadata: validation of every
 * table, llama.cpp's by-name rules for special tokens, and the lookups the
 * tokenizers share (text -> id, merge ranks).
 */
#include "text/vocab.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "text/unicode.h"
#include "text/vocab_impl.h"

#define KEY_MODEL "tokenizer.ggml.model"
#define KEY_PRE "tokenizer.ggml.pre"
#define KEY_TOKENS "tokenizer.ggml.tokens"
#define KEY_SCORES "tokenizer.ggml.scores"
#define KEY_TYPES "tokenizer.ggml.token_type"
#define KEY_MERGES "tokenizer.ggml.merges"

/* ---- small helpers ---------------------------------------------------- */

bool tok_list_push(tok_list *l, int32_t id)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof *l->ids) {
            return false;
        }
        int32_t *p = realloc(l->ids, cap * sizeof *p);
        if (!p) {
            return false;
        }
        l->ids = p;
        l->cap = cap;
    }
    l->ids[l->n++] = id;
    return true;
}

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* Smallest power of two >= 2n (at least 16), or 0 on overflow. */
static size_t table_size(size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n) {
        if (cap > SIZE_MAX / 4) {
            return 0;
        }
        cap *= 2;
    }
    return cap;
}

static const char *tok_text(const loft_vocab *v, int32_t id)
{
    return v->blob + v->text_off[id];
}

int32_t vocab_lookup(const loft_vocab *v, const char *s, size_t len)
{
    size_t i = (size_t)hash_bytes(s, len) & v->tok_mask;
    for (;;) {
        int32_t id = v->tok_slot[i];
        if (id < 0) {
            return -1;
        }
        if (v->text_len[id] == len && memcmp(tok_text(v, id), s, len) == 0) {
            return id;
        }
        i = (i + 1) & v->tok_mask;
    }
}

static uint64_t merge_key(int32_t left, int32_t right)
{
    return ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
}

int32_t vocab_merge_rank(const loft_vocab *v, int32_t left, int32_t right)
{
    if (!v->merge_rank || left < 0 || right < 0) {
        return -1;
    }
    uint64_t key = merge_key(left, right);
    size_t i = (size_t)hash_u64(key) & v->merge_mask;
    for (;;) {
        if (v->merge_rank[i] < 0) {
            return -1;
        }
        if (v->merge_key[i] == key) {
            return v->merge_rank[i];
        }
        i = (i + 1) & v->merge_mask;
    }
}

/* Strict UTF-8: shortest forms, no surrogates, nothing past U+10FFFF. */
static bool utf8_valid(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t at = i;
        uint32_t c = unicode_decode(s, len, &i);
        if (c == UNICODE_REPLACEMENT && !(i - at == 3 && memcmp(s + at, "\xEF\xBF\xBD", 3) == 0)) {
            return false;
        }
        size_t n = i - at;
        if ((n == 2 && c < 0x80) || (n == 3 && c < 0x800) || (n == 4 && c < 0x10000) ||
            (c >= 0xD800 && c <= 0xDFFF)) {
            return false;
        }
    }
    return true;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* The byte a "<0xHH>" text stands for, or -1. */
static int byte_token_value(const char *s, size_t len)
{
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') {
        return -1;
    }
    int hi = hex_value(s[3]), lo = hex_value(s[4]);
    return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

/* ---- loading ---------------------------------------------------------- */

typedef struct pre_name {
    const char *name;
    pretok_kind kind;
    bool clean_spaces;
    bool ignore_merges_and_bos; /* the Llama-3 family: ignore_merges, add_bos */
} pre_name;

/* tokenizer.ggml.pre values and what llama.cpp does with each (the subset
 * whose expressions pretokenize.c implements). */
static const pre_name pre_names[] = {
    {"default", PRETOK_DEFAULT, true, false},   {"gpt-2", PRETOK_GPT2, true, false},
    {"phi-2", PRETOK_GPT2, true, false},        {"jina-es", PRETOK_GPT2, true, false},
    {"jina-de", PRETOK_GPT2, true, false},      {"gigachat", PRETOK_GPT2, true, false},
    {"mellum", PRETOK_GPT2, true, false},       {"exaone4", PRETOK_GPT2, true, false},
    {"mpt", PRETOK_GPT2, true, false},          {"olmo", PRETOK_GPT2, true, false},
    {"trillion", PRETOK_GPT2, false, false},    {"smollm", PRETOK_SMOLLM, false, false},
    {"command-r", PRETOK_SMOLLM, false, false}, {"starcoder", PRETOK_SMOLLM, true, false},
    {"refact", PRETOK_SMOLLM, true, false},     {"codeshell", PRETOK_SMOLLM, true, false},
    {"exaone", PRETOK_SMOLLM, true, false},     {"minerva-7b", PRETOK_SMOLLM, true, false},
    {"llama3", PRETOK_LLAMA3, true, true},      {"llama-v3", PRETOK_LLAMA3, true, true},
    {"llama-bpe", PRETOK_LLAMA3, true, true},   {"falcon3", PRETOK_LLAMA3, true, true},
    {"falcon-h1", PRETOK_LLAMA3, true, true},   {"pixtral", PRETOK_LLAMA3, true, true},
    {"midm-2.0", PRETOK_LLAMA3, true, true},    {"lfm2", PRETOK_LLAMA3, true, true},
    {"dbrx", PRETOK_LLAMA3, true, false},       {"smaug-bpe", PRETOK_LLAMA3, true, false},
    {"qwen2", PRETOK_QWEN2, false, false},      {"deepseek-r1-qwen", PRETOK_QWEN2, false, false},
    {"megrez", PRETOK_QWEN2, true, false},      {"stablelm2", PRETOK_QWEN2, true, false},
    {"hunyuan", PRETOK_QWEN2, false, false},
};

/* Reads an optional special-token id key into *id; an id out of range is
 * an error naming the key. */
static loft_code read_special(const gguf_file *g, const char *key, int32_t n_tokens, int32_t *id,
                              loft_status *st)
{
    const gguf_value *val = gguf_get(g, key);
    if (!val) {
        return LOFT_OK;
    }
    int64_t x;
    if (!gguf_get_int(g, key, &x)) {
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s: expected an integer token id, got %s",
                         g->path, key, gguf_type_name(val->type));
    }
    if (x < 0 || x >= n_tokens) {
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s: token id %lld out of range [0, %d)", g->path,
                         key, (long long)x, n_tokens);
    }
    *id = (int32_t)x;
    return LOFT_OK;
}

static void read_flag(const gguf_file *g, const char *key, bool *flag)
{
    bool b;
    if (gguf_get_bool(g, key, &b)) {
        *flag = b;
    }
}

static loft_code load_model_kind(loft_vocab *v, const gguf_file *g, loft_status *st)
{
    gguf_str model;
    if (!gguf_get_str(g, KEY_MODEL, &model)) {
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s: missing or not a string", g->path,
                         KEY_MODEL);
    }
    if (gguf_str_eq(model, "llama")) {
        v->kind = VOCAB_KIND_SPM;
        v->add_space_prefix = true;
        v->add_bos = true;
        v->bos = 1;
        v->eos = 2;
        v->unk = 0;
        return LOFT_OK;
    }
    if (!gguf_str_eq(model, "gpt2")) {
        return loft_fail(st, LOFT_ERR_UNSUPPORTED,
                         "%s: %s: tokenizer model '%.*s' is not supported (expected llama or gpt2)",
                         g->path, KEY_MODEL, (int)(model.len > 64 ? 64 : model.len), model.data);
    }
    v->kind = VOCAB_KIND_BPE;
    v->bos = 11;
    v->eos = 11;
    gguf_str pre = {7, "default"};
    if (gguf_get(g, KEY_PRE) && !gguf_get_str(g, KEY_PRE, &pre)) {
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s: not a string", g->path, KEY_PRE);
    }
    for (size_t i = 0; i < sizeof pre_names / sizeof pre_names[0]; i++) {
        if (gguf_str_eq(pre, pre_names[i].name)) {
            v->pre = pre_names[i].kind;
            v->clean_spaces = pre_names[i].clean_spaces;
            v->ignore_merges = pre_names[i].ignore_merges_and_bos;
            v->add_bos = pre_names[i].ignore_merges_and_bos;
            return LOFT_OK;
        }
    }
    return loft_fail(st, LOFT_ERR_UNSUPPORTED, "%s: %s: pre-tokenizer '%.*s' is not supported",
                     g->path, KEY_PRE, (int)(pre.len > 64 ? 64 : pre.len), pre.data);
}

static loft_code load_tokens(loft_vocab *v, const gguf_file *g, loft_status *st)
{
    const gguf_array *toks = gguf_get_array(g, KEY_TOKENS);
    if (!toks || toks->elem_type != GGUF_TYPE_STRING) {
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s: missing or not an array of strings", g->path,
                         KEY_TOKENS);
    }
    if (toks->count == 0 || toks->count > INT32_MAX / 2) {
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s: %llu tokens (expected 1 to %d)", g->path,
                         KEY_TOKENS, (unsigned long long)toks->count, INT32_MAX / 2);
    }
    size_t n = (size_t)toks->count;
    v->n_tokens = (int32_t)n;

    const gguf_array *scores = gguf_get_array(g, KEY_SCORES);
    if (gguf_get(g, KEY_SCORES) &&
        (!scores ||
         (scores->elem_type != GGUF_TYPE_FLOAT32 && scores->elem_type != GGUF_TYPE_INT32) ||
         scores->count != n)) {
        return loft_fail(st, LOFT_ERR_FORMAT,
                         "%s: %s: expected %zu float32 or int32 values (one per token)", g->path,
                         KEY_SCORES, n);
    }
    const gguf_array *types = gguf_get_array(g, KEY_TYPES);
    if (gguf_get(g, KEY_TYPES) &&
        (!types || types->elem_type != GGUF_TYPE_INT32 || types->count != n)) {
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s: expected %zu int32 values (one per token)",
                         g->path, KEY_TYPES, n);
    }

    /* Texts: an empty one is renamed "[EMPTY_<id>]" as llama.cpp does. */
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t len = toks->strs[i].len ? toks->strs[i].len : 24;
        if (len > UINT32_MAX || total > SIZE_MAX - len - 1) {
            return loft_fail(st, LOFT_ERR_NOMEM, "%s: %s: token texts too large", g->path,
                             KEY_TOKENS);
        }
        total += (size_t)len + 1;
    }
    v->blob = malloc(total);
    v->text_off = calloc(n, sizeof *v->text_off);
    v->text_len = calloc(n, sizeof *v->text_len);
    v->score = calloc(n, sizeof *v->score);
    v->type = calloc(n, sizeof *v->type);
    v->attr = calloc(n, sizeof *v->attr);
    v->eog = calloc(n, sizeof *v->eog);
    size_t cap = table_size(n);
    v->tok_slot = cap ? malloc(cap * sizeof *v->tok_slot) : NULL;
    if (!v->blob || !v->text_off || !v->text_len || !v->score || !v->type || !v->attr || !v->eog ||
        !v->tok_slot) {
        return loft_fail(st, LOFT_ERR_NOMEM, "%s: %s: out of memory for %zu tokens", g->path,
                         KEY_TOKENS, n);
    }
    memset(v->tok_slot, 0xff, cap * sizeof *v->tok_slot);
    v->tok_mask = cap - 1;

    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const gguf_str *s = &toks->strs[i];
        char *dst = v->blob + off;
        size_t len;
        if (s->len == 0) {
            len = (size_t)snprintf(dst, 25, "[EMPTY_%zu]", i);
        } else {
            len = (size_t)s->len;
            memcpy(dst, s->data, len);
            if (memchr(dst, '\0', len) || !utf8_valid(dst, len)) {
                return loft_fail(st, LOFT_ERR_FORMAT,
                                 "%s: %s[%zu]: token text is not valid UTF-8 without NUL bytes",
                                 g->path, KEY_TOKENS, i);
            }
        }
        dst[len] = '\0';
        v->text_off[i] = off;
        v->text_len[i] = (uint32_t)len;
        off += len + 1;

        if (vocab_lookup(v, dst, len) >= 0) {
            return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s[%zu]: duplicate token text '%.40s'",
                             g->path, KEY_TOKENS, i, dst);
        }
        size_t h = (size_t)hash_bytes(dst, len) & v->tok_mask;
        while (v->tok_slot[h] >= 0) {
            h = (h + 1) & v->tok_mask;
        }
        v->tok_slot[h] = (int32_t)i;

        v->score[i] = scores ? (float)gguf_array_get_float(scores, i) : 0.0f;
        if (!isfinite(v->score[i])) {
            return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s[%zu]: score is not a finite number (%g)",
                             g->path, KEY_SCORES, i, (double)v->score[i]);
        }
        int64_t t = types ? gguf_array_get_int(types, i) : VOCAB_TYPE_NORMAL;
        if (t < VOCAB_TYPE_UNDEFINED || t > VOCAB_TYPE_BYTE) {
            return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s[%zu]: unknown token type %lld", g->path,
                             KEY_TYPES, i, (long long)t);
        }
        static const uint32_t attr_of_type[] = {0,
                                                VOCAB_ATTR_NORMAL,
                                                VOCAB_ATTR_UNKNOWN,
                                                VOCAB_ATTR_CONTROL,
                                                VOCAB_ATTR_USER_DEFINED,
                                                VOCAB_ATTR_UNUSED,
                                                VOCAB_ATTR_BYTE};
        v->type[i] = (uint8_t)t;
        v->attr[i] = attr_of_type[t];
        if (t == VOCAB_TYPE_BYTE && byte_token_value(dst, len) < 0) {
            return loft_fail(st, LOFT_ERR_FORMAT,
                             "%s: %s[%zu]: byte token text '%.40s' is not of the form <0xHH>",
                             g->path, KEY_TOKENS, i, dst);
        }
    }
    return LOFT_OK;
}

static loft_code load_merges(loft_vocab *v, const gguf_file *g, loft_status *st)
{
    const gguf_array *m = gguf_get_array(g, KEY_MERGES);
    if (!m || m->elem_type != GGUF_TYPE_STRING) {
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s: missing or not an array of strings", g->path,
                         KEY_MERGES);
    }
    if (m->count > INT32_MAX / 2) {
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s: %llu merges is too many", g->path,
                         KEY_MERGES, (unsigned long long)m->count);
    }
    size_t cap = table_size((size_t)m->count);
    v->merge_key = cap ? malloc(cap * sizeof *v->merge_key) : NULL;
    v->merge_rank = cap ? malloc(cap * sizeof *v->merge_rank) : NULL;
    if (!v->merge_key || !v->merge_rank) {
        return loft_fail(st, LOFT_ERR_NOMEM, "%s: %s: out of memory", g->path, KEY_MERGES);
    }
    memset(v->merge_rank, 0xff, cap * sizeof *v->merge_rank);
    v->merge_mask = cap - 1;

    for (uint64_t i = 0; i < m->count; i++) {
        const gguf_str *s = &m->strs[i];
        /* "left right", split at the first space after the first byte. */
        const char *sp = s->len > 1 ? memchr(s->data + 1, ' ', (size_t)s->len - 1) : NULL;
        if (!sp) {
            return loft_fail(st, LOFT_ERR_FORMAT,
                             "%s: %s[%llu]: expected two token texts separated by a space", g->path,
                             KEY_MERGES, (unsigned long long)i);
        }
        size_t llen = (size_t)(sp - s->data), rlen = (size_t)s->len - llen - 1;
        int32_t left = vocab_lookup(v, s->data, llen);
        int32_t right = vocab_lookup(v, sp + 1, rlen);
        if (left < 0 || right < 0) {
            return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s[%llu]: '%.*s' names a missing token",
                             g->path, KEY_MERGES, (unsigned long long)i,
                             (int)(s->len > 80 ? 80 : s->len), s->data);
        }
        uint64_t key = merge_key(left, right);
        size_t h = (size_t)hash_u64(key) & v->merge_mask;
        while (v->merge_rank[h] >= 0 && v->merge_key[h] != key) {
            h = (h + 1) & v->merge_mask;
        }
        if (v->merge_rank[h] < 0) { /* a repeated pair keeps its first rank */
            v->merge_key[h] = key;
            v->merge_rank[h] = (int32_t)i;
        }
    }
    return LOFT_OK;
}

/* Texts llama.cpp takes for end-of-turn and end-of-generation tokens. */
static const char *const eot_texts[] = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<\xef\xbd\x9c"
    "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    "<end_of_utterance>",
};
static const char *const eog_texts[] = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<\xef\xbd\x9c"
    "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
};

static int32_t find_text(const loft_vocab *v, const char *s)
{
    return vocab_lookup(v, s, strlen(s));
}

/* llama.cpp's by-name rules: end-of-turn / end-of-generation tokens, made
 * control tokens when the file did not say so. */
static void mark_eog(loft_vocab *v)
{
    /* llama.cpp takes the first match in hash-map order; the lowest id is a
     * reproducible stand-in that agrees with it on the models we test. */
    if (v->eot < 0) {
        for (size_t i = 0; i < sizeof eot_texts / sizeof eot_texts[0]; i++) {
            int32_t id = find_text(v, eot_texts[i]);
            if (id >= 0 && (v->eot < 0 || id < v->eot)) {
                v->eot = id;
            }
        }
    }
    if (v->eom < 0) {
        v->eom = find_text(v, "<|eom_id|>");
    }
    int32_t ids[] = {v->eot, v->eom};
    for (size_t i = 0; i < 2; i++) {
        if (ids[i] >= 0) {
            v->attr[ids[i]] |= VOCAB_ATTR_CONTROL;
        }
    }
    for (size_t i = 0; i < sizeof eog_texts / sizeof eog_texts[0]; i++) {
        int32_t id = find_text(v, eog_texts[i]);
        if (id >= 0) {
            v->eog[id] = 1;
            v->attr[id] |= VOCAB_ATTR_CONTROL;
        }
    }
    for (size_t i = 0; i < 3; i++) {
        int32_t id = i == 0 ? v->eos : i == 1 ? v->eot : v->eom;
        if (id >= 0) {
            v->eog[id] = 1;
        }
    }
    /* Harmony-style vocabularies end a message, not the generation, with
     * <|end|>; vocabularies with <|tool_response> use </s> as plain text. */
    int32_t end = find_text(v, "<|end|>"), ret = find_text(v, "<|return|>");
    int32_t call = find_text(v, "<|call|>"), calls = find_text(v, "<|calls|>");
    int32_t flush = find_text(v, "<|flush|>");
    bool has_call = (call >= 0 && v->eog[call]) || (calls >= 0 && v->eog[calls]);
    if (end >= 0 && v->eog[end] && has_call &&
        ((ret >= 0 && v->eog[ret]) || (flush >= 0 && v->eog[flush]))) {
        v->eog[end] = 0;
        v->attr[end] = VOCAB_ATTR_USER_DEFINED;
    }
    int32_t s = find_text(v, "</s>"), tr = find_text(v, "<|tool_response>");
    if (s >= 0 && v->eog[s] && tr >= 0 && v->eog[tr]) {
        v->eog[s] = 0;
        v->attr[s] = VOCAB_ATTR_NORMAL;
    }
}

typedef struct special_key {
    uint32_t len;
    int32_t id;
} special_key;

/* Longest text first; equal lengths by id, so the order is reproducible. */
static int cmp_special(const void *a, const void *b)
{
    const special_key *x = a, *y = b;
    if (x->len != y->len) {
        return x->len > y->len ? -1 : 1;
    }
    return x->id < y->id ? -1 : x->id > y->id;
}

static loft_code build_specials(loft_vocab *v, loft_status *st)
{
    const uint32_t mask = VOCAB_ATTR_CONTROL | VOCAB_ATTR_USER_DEFINED | VOCAB_ATTR_UNKNOWN;
    size_t n = 0;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        n += (v->attr[i] & mask) != 0;
    }
    special_key *keys = malloc((n ? n : 1) * sizeof *keys);
    v->special = malloc((n ? n : 1) * sizeof *v->special);
    if (!keys || !v->special) {
        free(keys);
        return loft_fail(st, LOFT_ERR_NOMEM, "vocab: out of memory for %zu special tokens", n);
    }
    n = 0;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        if (v->attr[i] & mask) {
            keys[n++] = (special_key){v->text_len[i], i};
        }
    }
    qsort(keys, n, sizeof *keys, cmp_special);
    for (size_t i = 0; i < n; i++) {
        v->special[i] = keys[i].id;
    }
    v->n_special = n;
    free(keys);
    return LOFT_OK;
}

static void build_byte_tokens(loft_vocab *v)
{
    for (int b = 0; b < 256; b++) {
        int32_t id;
        if (v->kind == VOCAB_KIND_SPM) {
            char hex[7];
            snprintf(hex, sizeof hex, "<0x%02X>", b);
            id = vocab_lookup(v, hex, 6);
            if (id < 0) {
                char c = (char)b;
                id = vocab_lookup(v, &c, 1);
            }
        } else {
            char u[4];
            size_t n = unicode_encode(unicode_byte_cpt((uint8_t)b), u);
            id = vocab_lookup(v, u, n);
        }
        v->byte_tok[b] = id;
    }
}

loft_code vocab_load(loft_vocab **out, const gguf_file *g, loft_status *st)
{
    *out = NULL;
    loft_vocab *v = calloc(1, sizeof *v);
    if (!v) {
        return loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory for the vocabulary", g->path);
    }
    v->bos = v->eos = v->eot = v->eom = v->unk = v->pad = v->sep = -1;
    loft_code rc = load_model_kind(v, g, st);
    if (rc == LOFT_OK) {
        rc = load_tokens(v, g, st);
    }
    if (rc == LOFT_OK && v->kind == VOCAB_KIND_BPE) {
        rc = load_merges(v, g, st);
    }
    /* A token without an embedding row would index past the matrix. */
    const gguf_tensor_info *embd = gguf_find_tensor(g, "token_embd.weight");
    if (rc == LOFT_OK && embd && embd->ne[1] < v->n_tokens) {
        rc = loft_fail(st, LOFT_ERR_FORMAT, "%s: %s: %d tokens, but token_embd.weight has %lld rows",
                       g->path, KEY_TOKENS, (int)v->n_tokens, (long long)embd->ne[1]);
    }
    if (rc != LOFT_OK) {
        vocab_free(v);
        return rc;
    }
    /* Defaults that fall outside the vocabulary are dropped, as llama.cpp
     * drops them; ids the file gives must be in range. */
    int32_t *defaults[] = {&v->bos, &v->eos, &v->unk};
    for (size_t i = 0; i < 3; i++) {
        if (*defaults[i] >= v->n_tokens) {
            *defaults[i] = -1;
        }
    }
    static const struct {
        const char *key;
        size_t field;
    } specials[] = {
        {"tokenizer.ggml.bos_token_id", offsetof(loft_vocab, bos)},
        {"tokenizer.ggml.eos_token_id", offsetof(loft_vocab, eos)},
        {"tokenizer.ggml.eot_token_id", offsetof(loft_vocab, eot)},
        {"tokenizer.ggml.eom_token_id", offsetof(loft_vocab, eom)},
        {"tokenizer.ggml.unknown_token_id", offsetof(loft_vocab, unk)},
        {"tokenizer.ggml.seperator_token_id", offsetof(loft_vocab, sep)},
        {"tokenizer.ggml.padding_token_id", offsetof(loft_vocab, pad)},
    };
    for (size_t i = 0; i < sizeof specials / sizeof specials[0] && rc == LOFT_OK; i++) {
        int32_t *id = (int32_t *)(void *)((char *)v + specials[i].field);
        rc = read_special(g, specials[i].key, v->n_tokens, id, st);
    }
    read_flag(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix);
    read_flag(g, "tokenizer.ggml.add_bos_token", &v->add_bos);
    read_flag(g, "tokenizer.ggml.add_eos_token", &v->add_eos);
    if (rc == LOFT_OK && v->add_bos && v->bos < 0) {
        rc = loft_fail(
            st, LOFT_ERR_FORMAT,
            "%s: tokenizer.ggml.add_bos_token is set but the vocabulary has no BOS token", g->path);
    }
    if (rc == LOFT_OK && v->add_eos && v->eos < 0) {
        rc = loft_fail(
            st, LOFT_ERR_FORMAT,
            "%s: tokenizer.ggml.add_eos_token is set but the vocabulary has no EOS token", g->path);
    }
    if (rc == LOFT_OK) {
        mark_eog(v);
        build_byte_tokens(v);
        rc = build_specials(v, st);
    }
    if (rc != LOFT_OK) {
        vocab_free(v);
        return rc;
    }
    *out = v;
    return LOFT_OK;
}

void vocab_free(loft_vocab *v)
{
    if (!v) {
        return;
    }
    free(v->blob);
    free(v->text_off);
    free(v->text_len);
    free(v->score);
    free(v->type);
    free(v->attr);
    free(v->eog);
    free(v->tok_slot);
    free(v->merge_key);
    free(v->merge_rank);
    free(v->special);
    free(v);
}

/* ---- accessors -------------------------------------------------------- */

int32_t vocab_n_tokens(const loft_vocab *v)
{
    return v->n_tokens;
}
vocab_kind vocab_get_kind(const loft_vocab *v)
{
    return v->kind;
}
int32_t vocab_bos(const loft_vocab *v)
{
    return v->bos;
}
int32_t vocab_eos(const loft_vocab *v)
{
    return v->eos;
}
int32_t vocab_eot(const loft_vocab *v)
{
    return v->eot;
}
int32_t vocab_eom(const loft_vocab *v)
{
    return v->eom;
}
int32_t vocab_unk(const loft_vocab *v)
{
    return v->unk;
}
int32_t vocab_pad(const loft_vocab *v)
{
    return v->pad;
}
int32_t vocab_sep(const loft_vocab *v)
{
    return v->sep;
}
bool vocab_adds_bos(const loft_vocab *v)
{
    return v->add_bos;
}
bool vocab_adds_eos(const loft_vocab *v)
{
    return v->add_eos;
}

bool vocab_is_eog(const loft_vocab *v, int32_t tok)
{
    return tok >= 0 && tok < v->n_tokens && v->eog[tok];
}

bool vocab_is_control(const loft_vocab *v, int32_t tok)
{
    return tok >= 0 && tok < v->n_tokens && (v->attr[tok] & VOCAB_ATTR_CONTROL);
}

vocab_token_type vocab_token_get_type(const loft_vocab *v, int32_t tok)
{
    return (tok >= 0 && tok < v->n_tokens) ? (vocab_token_type)v->type[tok] : VOCAB_TYPE_UNDEFINED;
}

const char *vocab_token_text(const loft_vocab *v, int32_t tok, size_t *len)
{
    if (tok < 0 || tok >= v->n_tokens) {
        return NULL;
    }
    if (len) {
        *len = v->text_len[tok];
    }
    return tok_text(v, tok);
}

int32_t vocab_find_token(const loft_vocab *v, const char *text)
{
    return vocab_lookup(v, text, strlen(text));
}
