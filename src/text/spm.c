/*
 * spm.c - SentencePiece-style BPE (tokenizer.ggml.model = "llama"), as
 * llama.cpp runs it: the escaped text starts as one symbol per UTF-8
 * character; the adjacent pair whose concatenation is the token with the
 * highest score is merged first (ties: leftmost first), until no adjacent
 * pair forms a token. A final symbol that is not a token is written as its
 * bytes' <0xXX> tokens.
 */
#include <stdlib.h>

#include "text/merge_queue.h"
#include "text/unicode.h"
#include "text/vocab_impl.h"

typedef struct spm_symbol {
    int prev, next;
    size_t start, n; /* bytes of the escaped text; n = 0 once merged */
} spm_symbol;

typedef struct spm_work {
    const loft_vocab *v;
    const char *text;
    spm_symbol *sym;
    merge_queue queue; /* priority: minus the merged token's score */
} spm_work;


/* Queues (left, right) when their concatenation is a token. */
static bool spm_try_pair(spm_work *w, int left, int right)
{
    if (left < 0 || right < 0) {
        return true;
    }
    size_t size = w->sym[left].n + w->sym[right].n;
    int32_t id = vocab_lookup(w->v, w->text + w->sym[left].start, size);
    if (id < 0) {
        return true;
    }
    merge_pair b = {left, right, -(double)w->v->score[id], size};
    return merge_queue_push(&w->queue, b);
}

loft_code spm_tokenize_fragment(const loft_vocab *v, const char *text, size_t len, tok_list *out)
{
    if (len == 0) {
        return LOFT_OK;
    }
    if (len > (size_t)INT32_MAX || len > SIZE_MAX / sizeof(spm_symbol)) {
        return LOFT_ERR_NOMEM;
    }
    spm_work w = {v, text, malloc(len * sizeof(spm_symbol)), {NULL, 0, 0}};
    loft_code rc = LOFT_ERR_NOMEM;
    if (!w.sym) {
        goto done;
    }
    int n = 0;
    for (size_t off = 0; off < len; n++) {
        size_t cl = unicode_seq_len((unsigned char)text[off]);
        if (cl > len - off) {
            cl = len - off;
        }
        w.sym[n] = (spm_symbol){n - 1, off + cl == len ? -1 : n + 1, off, cl};
        off += cl;
    }
    for (int i = 1; i < n; i++) {
        if (!spm_try_pair(&w, i - 1, i)) {
            goto done;
        }
    }
    while (w.queue.n > 0) {
        merge_pair b = merge_queue_pop(&w.queue);
        spm_symbol *l = &w.sym[b.left], *r = &w.sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) {
            continue;
        }
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) {
            w.sym[r->next].prev = b.left;
        }
        if (!spm_try_pair(&w, l->prev, b.left) || !spm_try_pair(&w, b.left, l->next)) {
            goto done;
        }
    }
    rc = LOFT_OK;
    for (int i = 0; i != -1 && rc == LOFT_OK; i = w.sym[i].next) {
        const spm_symbol *s = &w.sym[i];
        int32_t id = vocab_lookup(v, text + s->start, s->n);
        if (id >= 0) {
            rc = tok_list_push(out, id) ? LOFT_OK : LOFT_ERR_NOMEM;
            continue;
        }
        for (size_t k = 0; k < s->n && rc == LOFT_OK; k++) {
            int32_t bt = v->byte_tok[(unsigned char)text[s->start + k]];
            if (bt < 0) {
                rc = LOFT_ERR_UNSUPPORTED; /* no <0xXX> token for this byte */
            } else if (!tok_list_push(out, bt)) {
                rc = LOFT_ERR_NOMEM;
            }
        }
    }
done:
    free(w.sym);
    merge_queue_free(&w.queue);
    return rc;
}
