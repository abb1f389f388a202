#include "session.h"

#include "bench/memfit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "base/rng.h"

double session_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int fail(const session *s, int code, const char *msg)
{
    fprintf(stderr, "loft %s: %s\n", s->args->cmd, msg);
    return code;
}

static int resolve_template(session *s)
{
    loft_status st;
    const loft_args *a = s->args;
    if (a->chat_template) {
        if (loft_chat_template_by_name(&s->tmpl, a->chat_template, &st) != LOFT_OK)
            return fail(s, 2, st.msg);
        return 0;
    }
    const gguf_file *g = model_gguf(s->model);
    gguf_str text = {0, NULL};
    gguf_get_str(g, "tokenizer.chat_template", &text);
    if (loft_chat_template_detect(&s->tmpl, text.data, (size_t)text.len,
                                  model_get_hparams(s->model)->arch_name, &st) != LOFT_OK)
        return fail(s, 1, st.msg);
    return 0;
}

int session_open(session *s, const loft_args *a, bool want_template)
{
    memset(s, 0, sizeof *s);
    s->args = a;
    loft_status st;
    double t0 = session_now_ms();
    if (!a->model) return fail(s, 2, "no model given (-m FILE)");
    if (model_load(&s->model, a->model, &st) != LOFT_OK) return fail(s, 1, st.msg);
    if (model_set_threads(s->model, a->n_threads, &st) != LOFT_OK) return fail(s, 1, st.msg);
    const model_hparams *hp = model_get_hparams(s->model);
    if (vocab_load(&s->vocab, model_gguf(s->model), &st) != LOFT_OK) return fail(s, 1, st.msg);
    s->n_vocab = hp->n_vocab;
    if (vocab_n_tokens(s->vocab) > s->n_vocab) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s: tokenizer has %d tokens but the output layer only %d",
                 a->model, vocab_n_tokens(s->vocab), s->n_vocab);
        return fail(s, 1, msg);
    }
    /* An adapter that cannot be read is a runtime failure; one made for
     * another model is bad input, like a wrong flag. */
    for (int i = 0; i < a->n_lora; i++)
        if (lora_stack_add(&s->lora, a->lora[i], a->lora_scale[i], s->model, &st) != LOFT_OK)
            return fail(s, st.code == LOFT_ERR_IO || st.code == LOFT_ERR_NOMEM ? 1 : 2, st.msg);
    if (a->n_lora && lora_stack_attach(&s->lora, s->model, &st) != LOFT_OK)
        return fail(s, 1, st.msg);
    s->n_ctx = a->n_ctx;
    /* Refuse a configuration that cannot fit before the cache is allocated,
     * rather than be killed by the kernel half-way. */
    memfit_config mc = {s->n_ctx, a->n_batch > 0 ? a->n_batch : 512, false};
    memfit_estimate est;
    uint64_t have = 0;
    if (memfit_estimate_model(model_gguf(s->model), &mc, &est, &st) == LOFT_OK &&
        !memfit_fits(&est, a->mem_limit, &have)) {
        char oom[96], msg[256];
        memfit_oom_text(est.total, have, oom, sizeof oom);
        /* perplexity and eval open with a 1-position cache and check their
         * real -c afterwards (session_check_fit); here only the model is
         * too big. */
        if (s->n_ctx > 1)
            snprintf(msg, sizeof msg, "%s with -c %d does not fit in memory: %s", a->model,
                     s->n_ctx, oom);
        else
            snprintf(msg, sizeof msg, "%s does not fit in memory: %s", a->model, oom);
        return fail(s, 1, msg);
    }
    if (hp->n_ctx_train > 0 && s->n_ctx > hp->n_ctx_train)
        fprintf(stderr,
                "loft %s: warning: context %d is larger than the model's training context %d\n",
                a->cmd, s->n_ctx, hp->n_ctx_train);
    if (kv_cache_init(&s->kv, s->model, s->n_ctx, &st) != LOFT_OK) return fail(s, 1, st.msg);
    s->logits = malloc((size_t)s->n_vocab * sizeof *s->logits);
    s->tokens = malloc((size_t)s->n_ctx * sizeof *s->tokens);
    if (!s->logits || !s->tokens) return fail(s, 1, "out of memory");

    loft_sampler_params sp = a->sampling;
    sp.repeat_last_n = a->repeat_last_n < 0 ? s->n_ctx : a->repeat_last_n;
    sp.seed = a->seed < 0 ? loft_rng_time_seed() : (uint64_t)a->seed;
    if (loft_sampler_init(&s->sampler, &sp, s->n_vocab, &st) != LOFT_OK) return fail(s, 2, st.msg);
    if (want_template) {
        int rc = resolve_template(s);
        if (rc) return rc;
    }
    s->t_load_ms = session_now_ms() - t0;
    return 0;
}

int session_check_fit(const session *s, int32_t n_ctx, int32_t n_batch, bool all_logits)
{
    const loft_args *a = s->args;
    memfit_config mc = {n_ctx, n_batch, all_logits};
    memfit_estimate est;
    loft_status st;
    uint64_t have = 0;
    /* A model the estimator cannot read has already been refused by the
     * loader; nothing is guessed here. */
    if (memfit_estimate_model(model_gguf(s->model), &mc, &est, &st) != LOFT_OK) return 0;
    if (memfit_fits(&est, a->mem_limit, &have)) return 0;
    char oom[96], msg[512];
    memfit_oom_text(est.total, have, oom, sizeof oom);
    snprintf(msg, sizeof msg, "%s with -c %d -b %d does not fit in memory: %s", a->model, n_ctx,
             n_batch, oom);
    return fail(s, 1, msg);
}

int session_check_train_fit(const char *cmd, const gguf_file *g,
                            const struct memfit_train_config *tc, uint64_t mem_limit)
{
    memfit_estimate est;
    loft_status st;
    uint64_t have = 0;
    if (memfit_estimate_train(g, tc, &est, &st) != LOFT_OK) return 0;
    if (memfit_fits(&est, mem_limit, &have)) return 0;
    char oom[96];
    memfit_oom_text(est.total, have, oom, sizeof oom);
    fprintf(stderr, "loft %s: %s with -c %d --lora-rank %d does not fit in memory: %s\n", cmd,
            g->path, tc->n_ctx, tc->rank, oom);
    return 1;
}

void session_close(session *s)
{
    loft_sampler_free(s->sampler);
    kv_cache_free(s->kv);
    vocab_free(s->vocab);
    model_free(s->model);
    lora_stack_free(&s->lora);
    free(s->logits);
    free(s->tokens);
    memset(s, 0, sizeof *s);
}

int session_tokenize(session *s, const char *text, size_t len, bool add_special, int32_t **out,
                     size_t *n_out)
{
    loft_status st;
    if (vocab_tokenize(s->vocab, text, len, add_special, true, out, n_out, &st) != LOFT_OK)
        return fail(s, 1, st.msg);
    return 0;
}

/* Evaluates toks[0..n) after what the cache holds, in batches of -b. */
static int eval_tokens(session *s, const int32_t *toks, size_t n)
{
    loft_status st;
    size_t batch = s->args->n_batch > 0 ? (size_t)s->args->n_batch : 512;
    if (s->n_tokens + n > (size_t)s->n_ctx) return fail(s, 1, "internal: context overflow");
    for (size_t i = 0; i < n; i += batch) {
        size_t nb = n - i < batch ? n - i : batch;
        if (model_forward(s->model, s->kv, toks + i, (int32_t)nb, s->logits, false, &st) != LOFT_OK)
            return fail(s, 1, st.msg);
        memcpy(s->tokens + s->n_tokens, toks + i, nb * sizeof *toks);
        s->n_tokens += nb;
    }
    return 0;
}

int session_sync(session *s, const int32_t *toks, size_t n)
{
    if (n == 0 || n > (size_t)s->n_ctx) return fail(s, 1, "internal: bad token count to sync");
    size_t common = 0;
    while (common < s->n_tokens && common < n && s->tokens[common] == toks[common])
        common++;
    if (common == n) common--; /* the last token must be run again for its logits */
    kv_cache_truncate(s->kv, (int32_t)common);
    s->n_tokens = common;
    double t0 = session_now_ms();
    int rc = eval_tokens(s, toks + common, n - common);
    s->t_prompt_ms += session_now_ms() - t0;
    s->n_prompt_eval += (int64_t)(n - common);
    return rc;
}

/* Frees room when the context is full: keeps the first n_keep tokens and
 * drops the older half of the rest, then rebuilds the cache by running the
 * kept tokens again (positions must be contiguous from 0). */
static int context_shift(session *s)
{
    size_t keep = (size_t)s->n_keep;
    if (keep > s->n_tokens) keep = s->n_tokens;
    size_t left = s->n_tokens - keep;
    size_t discard = left / 2;
    if (discard == 0) return fail(s, 1, "context full and --keep leaves nothing to drop");
    memmove(s->tokens + keep, s->tokens + keep + discard,
            (s->n_tokens - keep - discard) * sizeof *s->tokens);
    size_t n = s->n_tokens - discard;
    int32_t *copy = malloc(n * sizeof *copy);
    if (!copy) return fail(s, 1, "out of memory");
    memcpy(copy, s->tokens, n * sizeof *copy);
    kv_cache_clear(s->kv);
    s->n_tokens = 0;
    int rc = eval_tokens(s, copy, n);
    free(copy);
    s->n_shifts++;
    return rc;
}

static bool append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        while (nc < *len + n + 1)
            nc *= 2;
        char *nb = realloc(*buf, nc);
        if (!nb) return false;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
    return true;
}

int session_generate(session *s, int32_t n_predict, volatile sig_atomic_t *stop, char **answer,
                     size_t *answer_len)
{
    vocab_stream vs;
    vocab_stream_init(&vs);
    size_t alen = answer && *answer ? strlen(*answer) : 0, acap = alen ? alen + 1 : 0;
    int rc = 0;
    double t_start = session_now_ms();
    for (int32_t i = 0; n_predict < 0 || i < n_predict; i++) {
        if (stop && *stop) break;
        int32_t tok = loft_sampler_sample(s->sampler, s->logits);
        if (s->n_gen == 0 && s->t_first_token_ms == 0)
            s->t_first_token_ms = s->t_prompt_ms + (session_now_ms() - t_start);
        loft_sampler_accept(s->sampler, tok);
        if (vocab_is_eog(s->vocab, tok)) break;
        s->n_gen++;
        size_t n;
        const char *piece = vocab_stream_push(&vs, s->vocab, tok, false, &n);
        if (!piece) {
            rc = fail(s, 1, "out of memory");
            break;
        }
        if (n && !s->quiet) {
            fwrite(piece, 1, n, stdout);
            fflush(stdout);
        }
        if (n) {
            if (answer && !append(answer, &alen, &acap, piece, n)) {
                rc = fail(s, 1, "out of memory");
                break;
            }
        }
        if (n_predict >= 0 && i + 1 >= n_predict) break;
        if (s->n_tokens >= (size_t)s->n_ctx) {
            if (!s->args->context_shift) {
                fprintf(stderr,
                        "\nloft %s: context full (%d tokens); stopping (--context-shift "
                        "continues)\n",
                        s->args->cmd, s->n_ctx);
                break;
            }
            if ((rc = context_shift(s)) != 0) break;
        }
        if ((rc = eval_tokens(s, &tok, 1)) != 0) break;
    }
    size_t n;
    const char *rest = vocab_stream_flush(&vs, &n);
    if (rest && n) {
        if (!s->quiet) fwrite(rest, 1, n, stdout);
        if (answer) append(answer, &alen, &acap, rest, n);
    }
    fflush(stdout);
    vocab_stream_free(&vs);
    s->t_gen_ms += session_now_ms() - t_start;
    if (answer_len) *answer_len = alen;
    return rc;
}

void session_print_timings(const session *s)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double pp = s->t_prompt_ms > 0 ? 1e3 * (double)s->n_prompt_eval / s->t_prompt_ms : 0.0;
    double tg = s->t_gen_ms > 0 ? 1e3 * (double)s->n_gen / s->t_gen_ms : 0.0;
    fprintf(stderr, "\n");
    fprintf(stderr, "loft %s: load:       %10.2f ms\n", s->args->cmd, s->t_load_ms);
    fprintf(stderr, "loft %s: prompt:     %10.2f ms / %6lld tokens (%8.2f tokens/s)\n",
            s->args->cmd, s->t_prompt_ms, (long long)s->n_prompt_eval, pp);
    fprintf(stderr, "loft %s: generation: %10.2f ms / %6lld tokens (%8.2f tokens/s)\n",
            s->args->cmd, s->t_gen_ms, (long long)s->n_gen, tg);
    fprintf(stderr, "loft %s: first token:%10.2f ms\n", s->args->cmd, s->t_first_token_ms);
    if (s->n_shifts)
        fprintf(stderr, "loft %s: context shifts: %lld\n", s->args->cmd, (long long)s->n_shifts);
    fprintf(stderr, "loft %s: peak RSS:   %10.1f MiB\n", s->args->cmd,
            (double)ru.ru_maxrss / 1024.0);
}
