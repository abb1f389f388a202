/* wordpiece.c - the BERT tokenizer: normalizer, pre-tokenizer, WordPiece. */
#include "text/wordpiece.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "text/unicode.h"
#include "text/wordpiece_impl.h"

#define WP_MAX_WORD_CHARS 100 /* longer words become [UNK] (Hugging Face's limit) */
#define WP_CONTROL 3          /* llama.cpp's token type of control tokens */

struct wordpiece {
    int32_t n_vocab;
    char **text;      /* stored spelling (see wordpiece.h), NUL-terminated */
    uint32_t *len;    /* bytes of text[i] */
    uint8_t *control; /* 1 when token i is a control token */
    int32_t *slots;   /* open-addressing table of ids, -1 = empty */
    size_t n_slots;   /* power of two */
    int32_t unk, cls, sep;
};

/* ---- hash table ---------------------------------------------------------- */

static uint64_t wp_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Id of the token stored as s[0..n), or -1. */
static int32_t wp_find(const wordpiece *wp, const char *s, size_t n)
{
    size_t mask = wp->n_slots - 1;
    for (size_t i = (size_t)wp_hash(s, n) & mask;; i = (i + 1) & mask) {
        int32_t id = wp->slots[i];
        if (id < 0) return -1;
        if (wp->len[id] == n && !memcmp(wp->text[id], s, n)) return id;
    }
}

/* ---- loading ------------------------------------------------------------- */

static loft_code wp_special(const gguf_file *g, const char *key, int32_t n_vocab, int32_t *out,
                            loft_status *st)
{
    int64_t v;
    if (!gguf_get_int(g, key, &v))
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s is missing (the bert tokenizer needs it)",
                         g->path, key);
    if (v < 0 || v >= n_vocab)
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s = %lld is outside the %d tokens", g->path,
                         key, (long long)v, n_vocab);
    *out = (int32_t)v;
    return LOFT_OK;
}

loft_code wordpiece_load(wordpiece **out, const gguf_file *g, loft_status *st)
{
    *out = NULL;
    gguf_str model = {9, "<missing>"};
    bool has_model = gguf_get_str(g, "tokenizer.ggml.model", &model);
    if (!has_model || !gguf_str_eq(model, "bert"))
        return loft_fail(st, LOFT_ERR_UNSUPPORTED,
                         "%s: tokenizer.ggml.model is %.*s, expected \"bert\" (WordPiece)", g->path,
                         model.len > 64 ? 64 : (int)model.len, model.data);
    const gguf_array *toks = gguf_get_array(g, "tokenizer.ggml.tokens");
    if (!toks || toks->elem_type != GGUF_TYPE_STRING || toks->count == 0 ||
        toks->count > INT32_MAX / 4)
        return loft_fail(st, LOFT_ERR_FORMAT,
                         "%s: tokenizer.ggml.tokens is missing or not a non-empty string array",
                         g->path);
    const gguf_array *types = gguf_get_array(g, "tokenizer.ggml.token_type");
    if (types && (types->count != toks->count || types->elem_type == GGUF_TYPE_STRING ||
                  types->elem_type == GGUF_TYPE_ARRAY))
        return loft_fail(st, LOFT_ERR_FORMAT,
                         "%s: tokenizer.ggml.token_type has %llu entries for %llu tokens", g->path,
                         (unsigned long long)types->count, (unsigned long long)toks->count);

    wordpiece *wp = calloc(1, sizeof *wp);
    if (!wp) return loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory for the tokenizer", g->path);
    wp->n_vocab = (int32_t)toks->count;
    size_t n = (size_t)wp->n_vocab;
    wp->n_slots = 1;
    while (wp->n_slots < 2 * n)
        wp->n_slots *= 2;
    wp->text = calloc(n, sizeof *wp->text);
    wp->len = calloc(n, sizeof *wp->len);
    wp->control = calloc(n, 1);
    wp->slots = malloc(wp->n_slots * sizeof *wp->slots);
    loft_code c = LOFT_OK;
    if (!wp->text || !wp->len || !wp->control || !wp->slots) {
        c = loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory for %zu tokens", g->path, n);
        goto fail;
    }
    memset(wp->slots, 0xff, wp->n_slots * sizeof *wp->slots);
    for (size_t i = 0; i < n; i++) {
        gguf_str s = toks->strs[i];
        if (s.len == 0 || s.len > 1024) {
            c = loft_fail(st, LOFT_ERR_FORMAT,
                          "%s: tokenizer.ggml.tokens[%zu] has length %llu (1..1024 expected)",
                          g->path, i, (unsigned long long)s.len);
            goto fail;
        }
        wp->text[i] = malloc((size_t)s.len + 1);
        if (!wp->text[i]) {
            c = loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory for the tokens", g->path);
            goto fail;
        }
        memcpy(wp->text[i], s.data, (size_t)s.len);
        wp->text[i][s.len] = '\0';
        wp->len[i] = (uint32_t)s.len;
        wp->control[i] = types && gguf_array_get_int(types, i) == WP_CONTROL;
        /* The first of duplicate spellings wins, as a dictionary built in
         * order would keep it. */
        if (wp_find(wp, wp->text[i], wp->len[i]) >= 0) continue;
        size_t mask = wp->n_slots - 1, k = (size_t)wp_hash(wp->text[i], wp->len[i]) & mask;
        while (wp->slots[k] >= 0)
            k = (k + 1) & mask;
        wp->slots[k] = (int32_t)i;
    }
    if ((c = wp_special(g, "tokenizer.ggml.unknown_token_id", wp->n_vocab, &wp->unk, st)) ||
        (c = wp_special(g, "tokenizer.ggml.bos_token_id", wp->n_vocab, &wp->cls, st)) ||
        (c = wp_special(g, "tokenizer.ggml.seperator_token_id", wp->n_vocab, &wp->sep, st)))
        goto fail;
    *out = wp;
    return LOFT_OK;
fail:
    wordpiece_free(wp);
    return c;
}

void wordpiece_free(wordpiece *wp)
{
    if (!wp) return;
    if (wp->text)
        for (int32_t i = 0; i < wp->n_vocab; i++)
            free(wp->text[i]);
    free(wp->text);
    free(wp->len);
    free(wp->control);
    free(wp->slots);
    free(wp);
}

int32_t wordpiece_n_vocab(const wordpiece *wp)
{
    return wp->n_vocab;
}

size_t wordpiece_token_text(const wordpiece *wp, int32_t id, char *buf, size_t cap)
{
    if (id < 0 || id >= wp->n_vocab) return 0;
    const char *s = wp->text[id];
    size_t n = wp->len[id];
    char tmp[1030];
    if (wp->control[id]) {
        memcpy(tmp, s, n);
    } else if (n >= 3 && !memcmp(s, "\xe2\x96\x81", 3)) {
        memcpy(tmp, s + 3, n - 3);
        n -= 3;
    } else {
        tmp[0] = tmp[1] = '#';
        memcpy(tmp + 2, s, n);
        n += 2;
    }
    if (cap > 0) {
        size_t k = n < cap - 1 ? n : cap - 1;
        memcpy(buf, tmp, k);
        buf[k] = '\0';
    }
    return n;
}

/* ---- normalizer ---------------------------------------------------------- */

static bool wp_is_cjk(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static bool wp_is_punct(uint32_t c)
{
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
        (c >= 123 && c <= 126))
        return true;
    return (unicode_flags(c) & UNICODE_PUNCT) != 0;
}

static const wordpiece_fold *wp_fold_find(uint32_t c)
{
    size_t lo = 0, hi = wordpiece_n_folds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (wordpiece_folds[mid].cpt < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < wordpiece_n_folds && wordpiece_folds[lo].cpt == c ? &wordpiece_folds[lo] : NULL;
}

/* Appends the normalized form of code point c to out (room for 5 more);
 * returns the new count. */
static size_t wp_normalize_cpt(uint32_t c, uint32_t *out, size_t n)
{
    if (c == 0 || c == UNICODE_REPLACEMENT) return n;
    uint16_t f = unicode_flags(c);
    bool tnr = c == '\t' || c == '\n' || c == '\r';
    if (!tnr && (f & (UNICODE_CONTROL | UNICODE_UNDEFINED))) return n;
    if (tnr || (f & UNICODE_WHITESPACE)) {
        out[n++] = ' ';
        return n;
    }
    if (wp_is_cjk(c)) {
        /* Padded first, then folded: compatibility ideographs (U+F900..)
         * decompose to unified ones. */
        const wordpiece_fold *fd = wp_fold_find(c);
        out[n++] = ' ';
        if (!fd) out[n++] = c;
        for (int i = 0; fd && i < fd->n; i++) out[n++] = fd->to[i];
        out[n++] = ' ';
        return n;
    }
    if (c >= 0xAC00 && c <= 0xD7A3) { /* Hangul syllable: NFD is arithmetic */
        uint32_t s = c - 0xAC00;
        out[n++] = 0x1100 + s / (21 * 28);
        out[n++] = 0x1161 + (s % (21 * 28)) / 28;
        if (s % 28) out[n++] = 0x11A7 + s % 28;
        return n;
    }
    const wordpiece_fold *fd = wp_fold_find(c);
    if (!fd) {
        out[n++] = c;
        return n;
    }
    for (int i = 0; i < fd->n; i++)
        out[n++] = fd->to[i];
    return n;
}

/* ---- wordpiece ----------------------------------------------------------- */

typedef struct wp_out {
    int32_t *ids;
    size_t n, cap;
} wp_out;

static bool wp_push(wp_out *o, int32_t id)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        int32_t *p = realloc(o->ids, cap * sizeof *p);
        if (!p) return false;
        o->ids = p;
        o->cap = cap;
    }
    o->ids[o->n++] = id;
    return true;
}

/* Pieces of one word w[0..n) code points; key is scratch of at least
 * 3 + 4 * n bytes. */
static bool wp_word(const wordpiece *wp, const uint32_t *w, size_t n, char *key, wp_out *o)
{
    if (n > WP_MAX_WORD_CHARS) return wp_push(o, wp->unk);
    size_t first = o->n;
    /* bytes[i]: UTF-8 offset of code point i in the encoded word (after the
     * 3-byte U+2581 prefix). */
    size_t bytes[WP_MAX_WORD_CHARS + 1];
    memcpy(key, "\xe2\x96\x81", 3);
    bytes[0] = 0;
    for (size_t i = 0; i < n; i++)
        bytes[i + 1] = bytes[i] + unicode_encode(w[i], key + 3 + bytes[i]);
    for (size_t start = 0; start < n;) {
        int32_t found = -1;
        size_t end = n;
        for (; end > start; end--) {
            const char *s = start == 0 ? key : key + 3 + bytes[start];
            size_t len = bytes[end] - bytes[start] + (start == 0 ? 3 : 0);
            int32_t id = wp_find(wp, s, len);
            if (id >= 0 && !(start > 0 && wp->control[id])) {
                found = id;
                break;
            }
        }
        if (found < 0) {
            o->n = first;
            return wp_push(o, wp->unk);
        }
        if (!wp_push(o, found)) return false;
        start = end;
    }
    return true;
}

loft_code wordpiece_tokenize(const wordpiece *wp, const char *text, size_t len, int32_t max_tokens,
                             int32_t **tokens, size_t *n_tokens, loft_status *st)
{
    *tokens = NULL;
    *n_tokens = 0;
    if (max_tokens > 0 && max_tokens < 2)
        return loft_fail(st, LOFT_ERR_ARG,
                         "wordpiece: max_tokens %d leaves no room for [CLS] and [SEP]", max_tokens);
    /* Each byte decodes to at most one code point, which normalizes to at
     * most 3 (a CJK ideograph with its spaces, a Hangul syllable). */
    if (len > (SIZE_MAX / sizeof(uint32_t) - 8) / 3)
        return loft_fail(st, LOFT_ERR_NOMEM, "wordpiece: text of %zu bytes is too long", len);
    uint32_t *cp = malloc((3 * len + 8) * sizeof *cp);
    char *key = malloc(3 + 4 * WP_MAX_WORD_CHARS + 8);
    wp_out o = {0};
    loft_code c = LOFT_OK;
    if (!cp || !key || !wp_push(&o, wp->cls)) {
        c = loft_fail(st, LOFT_ERR_NOMEM, "wordpiece: out of memory for %zu bytes of text", len);
        goto done;
    }
    size_t n = 0;
    for (size_t pos = 0; pos < len;)
        n = wp_normalize_cpt(unicode_decode(text, len, &pos), cp, n);
    for (size_t i = 0; i < n;) {
        uint32_t ch = cp[i];
        if (ch == ' ' || (unicode_flags(ch) & UNICODE_WHITESPACE)) {
            i++;
            continue;
        }
        size_t j = i + 1;
        if (!wp_is_punct(ch))
            while (j < n && cp[j] != ' ' && !(unicode_flags(cp[j]) & UNICODE_WHITESPACE) &&
                   !wp_is_punct(cp[j]))
                j++;
        if (!wp_word(wp, cp + i, j - i, key, &o)) {
            c = loft_fail(st, LOFT_ERR_NOMEM, "wordpiece: out of memory for the tokens");
            goto done;
        }
        i = j;
    }
    if (max_tokens > 0 && o.n > (size_t)max_tokens - 1) o.n = (size_t)max_tokens - 1;
    if (!wp_push(&o, wp->sep)) {
        c = loft_fail(st, LOFT_ERR_NOMEM, "wordpiece: out of memory for the tokens");
        goto done;
    }
    *tokens = o.ids;
    *n_tokens = o.n;
    o.ids = NULL;
done:
    free(o.ids);
    free(cp);
    free(key);
    return c;
}
