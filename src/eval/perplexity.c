#include "eval/perplexity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "infer/kv.h"

/* -log softmax(logits)[target], accumulated in double like llama.cpp. */
static double token_nll(const float *logits, int32_t n_vocab, int32_t target)
{
    float max = logits[0];
    for (int32_t i = 1; i < n_vocab; i++)
        if (logits[i] > max) max = logits[i];
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++)
        sum += expf(logits[i] - max);
    return -((double)(logits[target] - max) - log(sum));
}

loft_code loft_perplexity_tokens(loft_model *m, const loft_vocab *v, const int32_t *tokens,
                                 size_t n_tokens, const loft_ppl_params *p,
                                 loft_ppl_progress progress, void *user, loft_ppl_result *out,
                                 loft_status *st)
{
    memset(out, 0, sizeof *out);
    const int32_t n_ctx = p->n_ctx;
    if (n_ctx < 4) return loft_fail(st, LOFT_ERR_ARG, "perplexity: context %d is below 4", n_ctx);
    if (p->n_batch < 1)
        return loft_fail(st, LOFT_ERR_ARG, "perplexity: batch size %d is below 1", p->n_batch);
    if (n_tokens / 2 < (size_t)n_ctx)
        return loft_fail(st, LOFT_ERR_RANGE,
                         "perplexity: the text tokenizes to %zu tokens; a context of %d needs at "
                         "least %d",
                         n_tokens, n_ctx, 2 * n_ctx);
    const model_hparams *hp = model_get_hparams(m);
    const int32_t n_vocab = hp->n_vocab;
    const int32_t n_batch = p->n_batch < n_ctx ? p->n_batch : n_ctx;
    const int32_t bos = vocab_bos(v);
    const bool add_bos = vocab_adds_bos(v) && bos >= 0;

    int64_t n_chunk = (int64_t)(n_tokens / (size_t)n_ctx);
    if (p->n_chunks > 0 && p->n_chunks < n_chunk) n_chunk = p->n_chunks;

    if ((size_t)n_batch > SIZE_MAX / sizeof(float) / (size_t)n_vocab)
        return loft_fail(st, LOFT_ERR_NOMEM, "perplexity: logits of %d x %d overflow", n_batch,
                         n_vocab);
    float *logits = malloc((size_t)n_batch * (size_t)n_vocab * sizeof *logits);
    int32_t *chunk = malloc((size_t)n_ctx * sizeof *chunk);
    kv_cache *kv = NULL;
    loft_code rc = LOFT_OK;
    if (!logits || !chunk) {
        rc = loft_fail(st, LOFT_ERR_NOMEM, "perplexity: out of memory for %d x %d logits", n_batch,
                       n_vocab);
        goto done;
    }
    rc = kv_cache_init(&kv, m, n_ctx, st);
    if (rc != LOFT_OK) goto done;

    const int32_t first = n_ctx / 2;
    double nll = 0.0, nll2 = 0.0;
    int64_t count = 0;
    for (int64_t c = 0; c < n_chunk; c++) {
        memcpy(chunk, tokens + (size_t)c * (size_t)n_ctx, (size_t)n_ctx * sizeof *chunk);
        if (add_bos) chunk[0] = bos;
        kv_cache_clear(kv);
        for (int32_t b0 = 0; b0 < n_ctx; b0 += n_batch) {
            int32_t nb = n_ctx - b0 < n_batch ? n_ctx - b0 : n_batch;
            bool wanted = b0 + nb - 1 >= first;
            rc = model_forward(m, kv, chunk + b0, nb, logits, wanted, st);
            if (rc != LOFT_OK) goto done;
            if (!wanted) continue;
            /* Position pos predicts chunk[pos + 1]; the last position has no target. */
            for (int32_t t = 0; t < nb; t++) {
                int32_t pos = b0 + t;
                if (pos < first || pos >= n_ctx - 1) continue;
                double v_nll =
                    token_nll(logits + (size_t)t * (size_t)n_vocab, n_vocab, chunk[pos + 1]);
                nll += v_nll;
                nll2 += v_nll * v_nll;
                count++;
            }
        }
        out->n_chunks = (int32_t)(c + 1);
        if (progress) progress(user, (int32_t)(c + 1), exp(nll / (double)count));
    }
    out->n_tokens = (int64_t)n_tokens;
    out->n_scored = count;
    out->nll = nll / (double)count;
    out->ppl = exp(out->nll);
    double var = nll2 / (double)count - out->nll * out->nll;
    out->ppl_err = var > 0 && count > 1 ? sqrt(var / (double)(count - 1)) * out->ppl : 0.0;

done:
    kv_cache_free(kv);
    free(chunk);
    free(logits);
    return rc;
}

loft_code loft_perplexity_text(loft_model *m, const loft_vocab *v, const char *text, size_t len,
                               const loft_ppl_params *p, loft_ppl_progress progress, void *user,
                               loft_ppl_result *out, loft_status *st)
{
    int32_t *tokens = NULL;
    size_t n = 0;
    loft_code rc = vocab_tokenize(v, text, len, true, false, &tokens, &n, st);
    if (rc != LOFT_OK) return rc;
    rc = loft_perplexity_tokens(m, v, tokens, n, p, progress, user, out, st);
    free(tokens);
    return rc;
}
