/*
 * bpe.c - byte-level BPE (tokenizer.ggml.model = "gpt2").
 *
 * The text is decoded to code points (a malformed byte becomes U+FFFD, as in
 * llama.cpp), split into words by the vocabulary's pre-tokenizer, and each
 * word's UTF-8 bytes are written as GPT-2's printable code points. Inside a
 * word, adjacent symbols are merged lowest merge rank first (ties: leftmost
 * first) until no listed merge applies; the symbols left are the tokens.
 */
#include <stdlib.h>
#include <string.h>

#include "text/merge_queue.h"
#include "text/unicode.h"
#include "text/vocab_impl.h"

typedef struct symbol {
    int prev, next; /* neighbours in the chain, -1 at the ends */
    size_t start;   /* byte offset in the encoded word */
    size_t n;       /* bytes; 0 once merged into the left neighbour */
    int32_t id;     /* token with exactly this text, or -1 */
} symbol;

typedef struct bpe_work {
    const loft_vocab *v;
    const char *word; /* encoded word */
    symbol *sym;
    merge_queue queue;
} bpe_work;

static bool queue_pair(bpe_work *w, int left, int right)
{
    if (left < 0 || right < 0) {
        return true;
    }
    int32_t rank = vocab_merge_rank(w->v, w->sym[left].id, w->sym[right].id);
    if (rank < 0) {
        return true;
    }
    merge_pair b = {left, right, (double)rank, w->sym[left].n + w->sym[right].n};
    return merge_queue_push(&w->queue, b);
}

/* Merges one encoded word (len bytes at w->word) and appends its tokens. */
static loft_code merge_word(bpe_work *w, size_t len, tok_list *out)
{
    const loft_vocab *v = w->v;
    if (v->ignore_merges) {
        int32_t id = vocab_lookup(v, w->word, len);
        if (id >= 0) {
            return tok_list_push(out, id) ? LOFT_OK : LOFT_ERR_NOMEM;
        }
    }
    int n = 0;
    for (size_t off = 0; off < len; n++) {
        size_t cl = unicode_seq_len((unsigned char)w->word[off]);
        if (cl > len - off) {
            cl = len - off;
        }
        w->sym[n] = (symbol){n - 1, off + cl == len ? -1 : n + 1, off, cl,
                             vocab_lookup(v, w->word + off, cl)};
        off += cl;
    }
    w->queue.n = 0;
    for (int i = 1; i < n; i++) {
        if (!queue_pair(w, i - 1, i)) {
            return LOFT_ERR_NOMEM;
        }
    }
    while (w->queue.n > 0) {
        merge_pair b = merge_queue_pop(&w->queue);
        symbol *l = &w->sym[b.left], *r = &w->sym[b.right];
        /* Stale: one side was merged away, or grew since it was queued. */
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) {
            continue;
        }
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) {
            w->sym[r->next].prev = b.left;
        }
        l->id = vocab_lookup(v, w->word + l->start, l->n);
        if (!queue_pair(w, l->prev, b.left) || !queue_pair(w, b.left, l->next)) {
            return LOFT_ERR_NOMEM;
        }
    }
    for (int i = 0; i != -1 && n > 0; i = w->sym[i].next) {
        const symbol *s = &w->sym[i];
        if (s->id >= 0) {
            if (!tok_list_push(out, s->id)) {
                return LOFT_ERR_NOMEM;
            }
            continue;
        }
        /* Not a token: each byte on its own if it is one, else dropped
         * (llama.cpp's rule; byte-level vocabularies rarely get here). */
        for (size_t k = 0; k < s->n; k++) {
            int32_t id = vocab_lookup(v, w->word + s->start + k, 1);
            if (id >= 0 && !tok_list_push(out, id)) {
                return LOFT_ERR_NOMEM;
            }
        }
    }
    return LOFT_OK;
}

loft_code bpe_tokenize_fragment(const loft_vocab *v, const char *text, size_t len, tok_list *out)
{
    size_t n_cpts = 0;
    uint32_t *cpts = unicode_decode_all(text, len, &n_cpts);
    pretok_words words = {0};
    bpe_work w = {v, NULL, NULL, {0}};
    char *enc = NULL;
    loft_code rc = LOFT_ERR_NOMEM;
    if (!cpts) {
        goto done;
    }
    rc = pretokenize(v->pre, cpts, n_cpts, &words);
    if (rc != LOFT_OK) {
        goto done;
    }
    /* A code point is at most 4 bytes, each encoded in at most 2 bytes. */
    size_t longest = 0;
    for (size_t i = 0; i < words.n; i++) {
        longest = words.len[i] > longest ? words.len[i] : longest;
    }
    rc = LOFT_ERR_NOMEM;
    if (longest > SIZE_MAX / 8 / sizeof(symbol)) {
        goto done;
    }
    enc = malloc(longest * 8 + 1);
    w.sym = malloc((longest * 4 + 1) * sizeof *w.sym);
    if (!enc || !w.sym) {
        goto done;
    }
    w.word = enc;
    rc = LOFT_OK;
    size_t start = 0;
    for (size_t i = 0; i < words.n && rc == LOFT_OK; i++) {
        size_t elen = 0;
        for (size_t k = start; k < start + words.len[i]; k++) {
            char raw[4];
            size_t rl = unicode_encode(cpts[k], raw);
            for (size_t b = 0; b < rl; b++) {
                elen += unicode_encode(unicode_byte_cpt((uint8_t)raw[b]), enc + elen);
            }
        }
        start += words.len[i];
        rc = merge_word(&w, elen, out);
    }
done:
    free(cpts);
    free(enc);
    free(w.sym);
    merge_queue_free(&w.queue);
    pretok_words_free(&words);
    return rc;
}
