/*
 * detok.c - token ids back to bytes: pieces, whole texts (llama.cpp's
 * detokenize) and a streaming form that never splits a UTF-8 character.
 */
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "text/unicode.h"
#include "text/vocab_impl.h"

/* Writes into buf up to cap bytes while counting the full length. */
typedef struct sink {
    char *buf;
    size_t cap, len;
} sink;

static void sink_put(sink *s, const char *p, size_t n)
{
    if (s->len < s->cap) {
        size_t room = s->cap - s->len;
        memcpy(s->buf + s->len, p, n < room ? n : room);
    }
    s->len += n;
}

static const char hex_digits[] = "0123456789abcdef";

/* A byte-level token text back to bytes. A code point outside GPT-2's byte
 * map is written the way llama.cpp writes it, "[UNK_BYTE_0x<utf8 hex><whole
 * token text>]", so outputs stay comparable. */
static void put_bpe_decoded(sink *s, const char *t, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        uint32_t cpt = unicode_decode(t, len, &pos);
        int b = unicode_cpt_byte(cpt);
        if (b >= 0) {
            char c = (char)b;
            sink_put(s, &c, 1);
            continue;
        }
        char u[4];
        size_t ul = unicode_encode(cpt, u);
        sink_put(s, "[UNK_BYTE_0x", 12);
        for (size_t k = 0; k < ul; k++) {
            char h[2] = {hex_digits[(unsigned char)u[k] >> 4],
                         hex_digits[(unsigned char)u[k] & 15]};
            sink_put(s, h, 2);
        }
        sink_put(s, t, len);
        sink_put(s, "]", 1);
    }
}

/* SPM: U+2581 is a space. */
static void put_unescaped(sink *s, const char *t, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if (len - i >= 3 && memcmp(t + i, "\xe2\x96\x81", 3) == 0) {
            sink_put(s, " ", 1);
            i += 3;
        } else {
            sink_put(s, t + i, 1);
            i++;
        }
    }
}

static void put_piece(const loft_vocab *v, int32_t tok, bool render_special, sink *s)
{
    if (tok < 0 || tok >= v->n_tokens) {
        return;
    }
    uint32_t attr = v->attr[tok];
    const uint32_t special = VOCAB_ATTR_UNKNOWN | VOCAB_ATTR_CONTROL;
    if (!render_special && (attr & special)) {
        return;
    }
    const char *t = v->blob + v->text_off[tok];
    size_t len = v->text_len[tok];
    if (attr & (special | VOCAB_ATTR_USER_DEFINED)) {
        sink_put(s, t, len);
    } else if (attr & VOCAB_ATTR_NORMAL) {
        if (v->kind == VOCAB_KIND_SPM) {
            put_unescaped(s, t, len);
        } else {
            put_bpe_decoded(s, t, len);
        }
    } else if (attr & VOCAB_ATTR_BYTE) {
        /* the loader checked the <0xHH> form */
        char c = (char)(strtol((char[]){t[3], t[4], 0}, NULL, 16));
        sink_put(s, &c, 1);
    }
    /* unused and undefined tokens have no text */
}

size_t vocab_token_to_piece(const loft_vocab *v, int32_t tok, bool render_special, char *buf,
                            size_t cap)
{
    sink s = {buf, buf ? cap : 0, 0};
    put_piece(v, tok, render_special, &s);
    return s.len;
}

/* llama.cpp's clean-up of tokenizer-inserted spaces (clean_spaces): " ?",
 * " !", " .", " ," lose the space; " ' " loses both; " 's", " 'm", " 're",
 * " 've" lose the space. In place; returns the new length. */
static size_t clean_spaces(char *t, size_t total)
{
    size_t n = total ? 1 : 0;
    for (size_t i = 1; i < total; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) {
            n--;
        }
        t[n++] = x;
    }
    total = n;
    n = total ? 1 : 0;
    for (size_t i = 1; i < total; i++) {
        char x = t[i];
        if (x == '\'' && i + 1 < total && t[i - 1] == ' ' && t[i + 1] == ' ') {
            n--;
            t[++i] = '\0';
        }
        t[n++] = x;
    }
    total = n;
    n = total ? 1 : 0;
    for (size_t i = 1; i < total; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && x == '\'' && i + 1 < total) {
            char x1 = t[i + 1];
            if (x1 == 's' || x1 == 'm') {
                n--;
            } else if (i + 2 < total) {
                char x2 = t[i + 2];
                if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) {
                    n--;
                }
            }
        }
        t[n++] = x;
    }
    return n;
}

loft_code vocab_detokenize(const loft_vocab *v, const int32_t *tokens, size_t n,
                           bool render_special, char **out, size_t *out_len, loft_status *st)
{
    *out = NULL;
    *out_len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = vocab_token_to_piece(v, tokens[i], render_special, NULL, 0);
        if (len > SIZE_MAX - 1 - total) {
            return loft_fail(st, LOFT_ERR_NOMEM, "vocab_detokenize: text too long");
        }
        total += len;
    }
    char *text = malloc(total + 1);
    if (!text) {
        return loft_fail(st, LOFT_ERR_NOMEM, "vocab_detokenize: out of memory for %zu bytes",
                         total + 1);
    }
    sink s = {text, total, 0};
    for (size_t i = 0; i < n; i++) {
        size_t before = s.len;
        put_piece(v, tokens[i], render_special, &s);
        /* The space the tokenizer put before the first word goes (llama.cpp
         * strips one leading space of the first token when add_space_prefix). */
        if (i == 0 && v->add_space_prefix && s.len > before && text[before] == ' ') {
            memmove(text + before, text + before + 1, s.len - before - 1);
            s.len--;
        }
    }
    total = s.len;
    if (v->clean_spaces) {
        total = clean_spaces(text, total);
    }
    text[total] = '\0';
    *out = text;
    *out_len = total;
    return LOFT_OK;
}

/* ---- streaming -------------------------------------------------------- */

void vocab_stream_init(vocab_stream *s)
{
    memset(s, 0, sizeof *s);
}

void vocab_stream_free(vocab_stream *s)
{
    free(s->buf);
    memset(s, 0, sizeof *s);
}

/* Bytes at the end of t[0..len) that start a UTF-8 character still missing
 * continuation bytes (0 when the end is complete or cannot become valid). */
static size_t incomplete_tail(const char *t, size_t len)
{
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        unsigned char c = (unsigned char)t[len - back];
        if ((c & 0xC0) == 0x80) {
            continue; /* a continuation byte: look further back */
        }
        size_t need = c >= 0xF0 && c <= 0xF7   ? 4
                      : c >= 0xE0 && c <= 0xEF ? 3
                      : c >= 0xC0 && c <= 0xDF ? 2
                                               : 1;
        return need > back ? back : 0;
    }
    return 0;
}

const char *vocab_stream_push(vocab_stream *s, const loft_vocab *v, int32_t tok,
                              bool render_special, size_t *len)
{
    *len = 0;
    size_t piece = vocab_token_to_piece(v, tok, render_special, NULL, 0);
    size_t need = s->pending + piece;
    if (need < s->pending) {
        return NULL;
    }
    /* Held-back bytes move to the front, the piece follows them. */
    if (s->pending) {
        memmove(s->buf, s->buf + s->ready, s->pending);
    }
    if (need + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 64;
        while (cap < need + 1) {
            if (cap > SIZE_MAX / 2) {
                return NULL;
            }
            cap *= 2;
        }
        char *p = realloc(s->buf, cap);
        if (!p) {
            return NULL;
        }
        s->buf = p;
        s->cap = cap;
    }
    vocab_token_to_piece(v, tok, render_special, s->buf + s->pending, piece);
    size_t hold = incomplete_tail(s->buf, need);
    s->ready = need - hold;
    s->pending = hold;
    *len = s->ready;
    return s->buf;
}

const char *vocab_stream_flush(vocab_stream *s, size_t *len)
{
    const char *p = s->buf ? s->buf + s->ready : "";
    *len = s->pending;
    s->ready += s->pending;
    s->pending = 0;
    return p;
}
