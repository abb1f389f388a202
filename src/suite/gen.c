/* gen.c - greedy generation with timings (see gen.h). */
#include "suite/gen.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/status.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

void suite_gen_close(suite_gen *g)
{
    if (g->m) model_set_adapter(g->m, NULL, NULL);
    lora_stack_free(&g->lora);
    kv_cache_free(g->kv);
    vocab_free(g->v);
    model_free(g->m);
    free(g->logits);
    memset(g, 0, sizeof *g);
}

loft_code suite_gen_open(suite_gen *g, const char *path, int threads, int32_t n_ctx,
                         const char *adapter, loft_status *st)
{
    memset(g, 0, sizeof *g);
    loft_code rc = model_load(&g->m, path, st);
    if (rc == LOFT_OK) rc = model_set_threads(g->m, threads, st);
    if (rc == LOFT_OK) rc = vocab_load(&g->v, model_gguf(g->m), st);
    if (rc == LOFT_OK) {
        const model_hparams *hp = model_get_hparams(g->m);
        g->n_vocab = hp->n_vocab;
        g->n_ctx = n_ctx;
        if (vocab_n_tokens(g->v) > g->n_vocab)
            rc = loft_fail(st, LOFT_ERR_FORMAT, "%s: tokenizer has %d tokens, the output layer %d",
                           path, vocab_n_tokens(g->v), g->n_vocab);
    }
    if (rc == LOFT_OK) {
        gguf_str text = {0, NULL};
        gguf_get_str(model_gguf(g->m), "tokenizer.chat_template", &text);
        rc = loft_chat_template_detect(&g->tmpl, text.data, (size_t)text.len,
                                       model_get_hparams(g->m)->arch_name, st);
    }
    if (rc == LOFT_OK) rc = kv_cache_init(&g->kv, g->m, n_ctx, st);
    if (rc == LOFT_OK && !(g->logits = malloc((size_t)g->n_vocab * sizeof *g->logits)))
        rc = loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory for the logits", path);
    if (rc == LOFT_OK && adapter) {
        rc = lora_stack_add(&g->lora, adapter, 1.0f, g->m, st);
        if (rc == LOFT_OK) rc = lora_stack_attach(&g->lora, g->m, st);
    }
    if (rc != LOFT_OK) suite_gen_close(g);
    return rc;
}

loft_code suite_gen_prompt(suite_gen *g, const char *text, bool chat, int32_t **toks, size_t *n,
                           loft_status *st)
{
    *toks = NULL;
    *n = 0;
    char *rendered = NULL;
    if (chat) {
        loft_chat_msg msg = {"user", text};
        loft_code rc = loft_chat_render(&g->tmpl, &msg, 1, true, &rendered, st);
        if (rc != LOFT_OK) return rc;
        text = rendered;
    }
    loft_code rc = vocab_tokenize(g->v, text, strlen(text), true, true, toks, n, st);
    free(rendered);
    if (rc == LOFT_OK && *n == 0) rc = loft_fail(st, LOFT_ERR_ARG, "a prompt tokenizes to nothing");
    if (rc == LOFT_OK && *n >= (size_t)g->n_ctx)
        rc = loft_fail(st, LOFT_ERR_ARG, "a prompt of %zu tokens does not fit the %d-token cache",
                       *n, g->n_ctx);
    if (rc != LOFT_OK) {
        free(*toks);
        *toks = NULL;
        *n = 0;
    }
    return rc;
}

static int32_t argmax(const float *x, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Appends a piece to a growing string. */
static bool append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 128;
        while (nc < *len + n + 1)
            nc *= 2;
        char *nb = realloc(*buf, nc);
        if (!nb) return false;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = 0;
    return true;
}

loft_code suite_gen_run(suite_gen *g, const int32_t *toks, size_t n, int32_t n_predict,
                        volatile sig_atomic_t *stop, char **text, suite_gen_timing *t,
                        bool *stopped, loft_status *st)
{
    memset(t, 0, sizeof *t);
    *stopped = false;
    if (text) *text = NULL;
    kv_cache_clear(g->kv);
    size_t len = 0, cap = 0;
    char *out = NULL;
    double t0 = now_ms();
    loft_code rc = model_forward(g->m, g->kv, toks, (int32_t)n, g->logits, false, st);
    if (rc != LOFT_OK) return rc;
    double t1 = now_ms();
    t->prompt_ms = t1 - t0;
    t->n_prompt = (int32_t)n;
    vocab_stream vs;
    vocab_stream_init(&vs);
    for (int32_t i = 0; i < n_predict; i++) {
        if (stop && *stop) {
            *stopped = true;
            break;
        }
        int32_t tok = argmax(g->logits, g->n_vocab);
        if (i == 0) t->ttft_ms = now_ms() - t0;
        if (vocab_is_eog(g->v, tok)) break;
        t->n_gen++;
        if (text) {
            size_t pn;
            const char *piece = vocab_stream_push(&vs, g->v, tok, false, &pn);
            if (!piece || (pn && !append(&out, &len, &cap, piece, pn))) {
                rc = loft_fail(st, LOFT_ERR_NOMEM, "out of memory for the answer");
                break;
            }
        }
        if (i + 1 >= n_predict || kv_cache_used(g->kv) >= g->n_ctx) break;
        if ((rc = model_forward(g->m, g->kv, &tok, 1, g->logits, false, st)) != LOFT_OK) break;
    }
    t->gen_ms = now_ms() - t1;
    if (text && rc == LOFT_OK) {
        size_t pn;
        const char *rest = vocab_stream_flush(&vs, &pn);
        if ((rest && pn && !append(&out, &len, &cap, rest, pn)) ||
            (!out && !append(&out, &len, &cap, "", 0)))
            rc = loft_fail(st, LOFT_ERR_NOMEM, "out of memory for the answer");
    }
    vocab_stream_free(&vs);
    if (rc != LOFT_OK || !text) {
        free(out);
        return rc;
    }
    size_t b = 0;
    while (b < len && strchr(" \t\r\n", out[b]))
        b++;
    while (len > b && strchr(" \t\r\n", out[len - 1]))
        len--;
    memmove(out, out + b, len - b);
    out[len - b] = 0;
    *text = out;
    return LOFT_OK;
}
