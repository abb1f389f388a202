/*
 * tokenize.c - vocab_tokenize: cut the special tokens out of the text
 * (llama.cpp's partition), then run the vocabulary's own algorithm on the
 * text between them (bpe.c or spm.c).
 */
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "text/vocab_impl.h"

/* ---- tokenize --------------------------------------------------------- */

/* A fragment of the input: raw text [off, off+len) or one special token. */
typedef struct fragment {
    int32_t token; /* -1 for raw text */
    size_t off, len;
} fragment;

typedef struct frag_list {
    fragment *f;
    size_t n, cap;
} frag_list;

static bool frag_push(frag_list *l, int32_t token, size_t off, size_t len)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        if (cap > SIZE_MAX / sizeof *l->f) {
            return false;
        }
        fragment *p = realloc(l->f, cap * sizeof *p);
        if (!p) {
            return false;
        }
        l->f = p;
        l->cap = cap;
    }
    l->f[l->n++] = (fragment){token, off, len};
    return true;
}

/* Cuts every occurrence of the special tokens out of the raw fragments,
 * longest token first, leftmost occurrence first (llama.cpp's
 * tokenizer_st_partition). Control and unknown tokens take part only when
 * parse_special; user-defined ones always do, as in llama.cpp. */
static loft_code partition(const loft_vocab *v, const char *text, size_t len, bool parse_special,
                           frag_list *frags)
{
    frag_list next = {0};
    frags->n = 0;
    if (len == 0) {
        return LOFT_OK;
    }
    if (!frag_push(frags, -1, 0, len)) {
        return LOFT_ERR_NOMEM;
    }
    for (size_t k = 0; k < v->n_special; k++) {
        int32_t id = v->special[k];
        if (!parse_special && (v->attr[id] & (VOCAB_ATTR_CONTROL | VOCAB_ATTR_UNKNOWN))) {
            continue;
        }
        const char *tt = v->blob + v->text_off[id];
        size_t tl = v->text_len[id];
        bool any = false;
        next.n = 0;
        for (size_t i = 0; i < frags->n; i++) {
            fragment f = frags->f[i];
            if (f.token >= 0 || f.len < tl) {
                if (!frag_push(&next, f.token, f.off, f.len)) {
                    goto oom;
                }
                continue;
            }
            size_t pos = f.off, end = f.off + f.len;
            for (;;) {
                const char *hit = memmem(text + pos, end - pos, tt, tl);
                if (!hit) {
                    break;
                }
                size_t at = (size_t)(hit - text);
                any = true;
                if ((at > pos && !frag_push(&next, -1, pos, at - pos)) ||
                    !frag_push(&next, id, 0, 0)) {
                    goto oom;
                }
                pos = at + tl;
            }
            if (pos < end && !frag_push(&next, -1, pos, end - pos)) {
                goto oom;
            }
        }
        if (any) {
            frag_list t = *frags;
            *frags = next;
            next = t;
        }
    }
    free(next.f);
    return LOFT_OK;
oom:
    free(next.f);
    return LOFT_ERR_NOMEM;
}

/* SPM input: an optional leading space, then every ' ' as U+2581. */
static loft_code spm_fragment(const loft_vocab *v, const char *text, size_t len, bool prefix,
                              tok_list *out)
{
    size_t spaces = prefix;
    for (size_t i = 0; i < len; i++) {
        spaces += text[i] == ' ';
    }
    if (spaces > (SIZE_MAX - len) / 2) {
        return LOFT_ERR_NOMEM;
    }
    char *buf = malloc(len + 2 * spaces + 1);
    if (!buf) {
        return LOFT_ERR_NOMEM;
    }
    size_t n = 0;
    if (prefix) {
        memcpy(buf, "\xe2\x96\x81", 3);
        n = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(buf + n, "\xe2\x96\x81", 3);
            n += 3;
        } else {
            buf[n++] = text[i];
        }
    }
    loft_code rc = spm_tokenize_fragment(v, buf, n, out);
    free(buf);
    return rc;
}

loft_code vocab_tokenize(const loft_vocab *v, const char *text, size_t len, bool add_special,
                         bool parse_special, int32_t **tokens, size_t *n_tokens, loft_status *st)
{
    *tokens = NULL;
    *n_tokens = 0;
    if (!text && len > 0) {
        return loft_fail(st, LOFT_ERR_ARG, "vocab_tokenize: text is NULL");
    }
    frag_list frags = {0};
    tok_list out = {0};
    loft_code rc = partition(v, text, len, parse_special, &frags);
    if (rc != LOFT_OK) {
        goto done;
    }
    if (add_special && v->add_bos && !tok_list_push(&out, v->bos)) {
        rc = LOFT_ERR_NOMEM;
        goto done;
    }
    bool prev_special = true; /* SPM: the first text gets the prefix space */
    for (size_t i = 0; i < frags.n && rc == LOFT_OK; i++) {
        const fragment *f = &frags.f[i];
        if (f->token >= 0) {
            rc = tok_list_push(&out, f->token) ? LOFT_OK : LOFT_ERR_NOMEM;
            prev_special = true;
        } else if (v->kind == VOCAB_KIND_SPM) {
            rc = spm_fragment(v, text + f->off, f->len, v->add_space_prefix && prev_special, &out);
            prev_special = false;
        } else {
            rc = bpe_tokenize_fragment(v, text + f->off, f->len, &out);
        }
    }
    if (rc == LOFT_OK && add_special && v->add_eos && !tok_list_push(&out, v->eos)) {
        rc = LOFT_ERR_NOMEM;
    }
done:
    free(frags.f);
    if (rc != LOFT_OK) {
        free(out.ids);
        if (rc == LOFT_ERR_NOMEM) {
            return loft_fail(st, rc, "vocab_tokenize: out of memory for %zu bytes of text", len);
        }
        return loft_fail(st, rc, "vocab_tokenize: a byte has no token in this vocabulary");
    }
    *tokens = out.ids;
    *n_tokens = out.n;
    return LOFT_OK;
}
