/* evalgen.c - prompts, greedy generation and log-likelihoods for eval. */
#include "evalgen.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int evalgen_fail(const session *s, int rc, const char *what)
{
    fprintf(stderr, "loft %s: %s\n", s->args->cmd, what);
    return rc;
}

int evalgen_prompt(session *s, evalgen_format fmt, const char *system, const char *q,
                   int32_t **toks, size_t *n)
{
    char *text = NULL;
    if (fmt == EVALGEN_QA) {
        size_t len = strlen(q) + 8;
        text = malloc(len);
        if (!text) return evalgen_fail(s, 1, "out of memory");
        snprintf(text, len, "Q: %s\nA:", q);
    } else {
        loft_chat_msg msgs[2];
        size_t k = 0;
        if (system) msgs[k++] = (loft_chat_msg){"system", system};
        msgs[k++] = (loft_chat_msg){"user", q};
        loft_status st;
        if (loft_chat_render(&s->tmpl, msgs, k, true, &text, &st) != LOFT_OK)
            return evalgen_fail(s, 1, st.msg);
    }
    int rc = session_tokenize(s, text, strlen(text), true, toks, n);
    free(text);
    if (!rc && *n == 0) return evalgen_fail(s, 2, "a prompt tokenizes to nothing");
    return rc;
}

/* A buffer holding prompt + continuation tokens. */
static int32_t *grow_copy(const int32_t *p, size_t n, size_t extra)
{
    int32_t *t = malloc((n + extra + 1) * sizeof *t);
    if (t) memcpy(t, p, n * sizeof *t);
    return t;
}

int evalgen_greedy(session *s, const int32_t *prompt, size_t n, int32_t n_predict, char **out,
                   int32_t *n_gen)
{
    *out = NULL;
    *n_gen = 0;
    if (n >= (size_t)s->n_ctx) return evalgen_fail(s, 2, "a prompt does not fit the context (-c)");
    size_t room = (size_t)s->n_ctx - n;
    if (n_predict >= 0 && (size_t)n_predict < room) room = (size_t)n_predict;
    int32_t *t = grow_copy(prompt, n, room);
    size_t cap = 256, len = 0;
    char *text = malloc(cap);
    if (!t || !text) {
        free(t);
        free(text);
        return evalgen_fail(s, 1, "out of memory");
    }
    int rc = session_sync(s, t, n);
    size_t total = n;
    double t0 = session_now_ms();
    while (!rc && total - n < room) {
        int32_t best = 0;
        for (int32_t v = 1; v < s->n_vocab; v++)
            if (s->logits[v] > s->logits[best]) best = v;
        if (vocab_is_eog(s->vocab, best)) break;
        char piece[256];
        size_t pn = vocab_token_to_piece(s->vocab, best, false, piece, sizeof piece);
        if (pn > sizeof piece) pn = sizeof piece;
        if (len + pn + 1 > cap) {
            while (len + pn + 1 > cap)
                cap *= 2;
            char *p = realloc(text, cap);
            if (!p) {
                rc = evalgen_fail(s, 1, "out of memory");
                break;
            }
            text = p;
        }
        memcpy(text + len, piece, pn);
        len += pn;
        t[total++] = best;
        s->n_gen++;
        if (total - n >= room) break;
        rc = session_sync(s, t, total);
    }
    s->t_gen_ms += session_now_ms() - t0;
    free(t);
    if (rc) {
        free(text);
        return rc;
    }
    text[len] = '\0';
    size_t b = 0;
    while (b < len && (text[b] == ' ' || text[b] == '\n' || text[b] == '\t' || text[b] == '\r'))
        b++;
    while (len > b && (text[len - 1] == ' ' || text[len - 1] == '\n' || text[len - 1] == '\t' ||
                       text[len - 1] == '\r'))
        len--;
    memmove(text, text + b, len - b);
    text[len - b] = '\0';
    *out = text;
    *n_gen = (int32_t)(total - n);
    return 0;
}

static double log_prob(const float *logits, int32_t n_vocab, int32_t tok)
{
    float mx = logits[0];
    for (int32_t v = 1; v < n_vocab; v++)
        if (logits[v] > mx) mx = logits[v];
    double sum = 0;
    for (int32_t v = 0; v < n_vocab; v++)
        sum += exp((double)logits[v] - mx);
    return (double)logits[tok] - mx - log(sum);
}

int evalgen_loglik(session *s, const int32_t *prompt, size_t n, const char *cont, double *ll,
                   size_t *n_cont)
{
    *ll = 0;
    *n_cont = 0;
    int32_t *ct = NULL;
    size_t m = 0;
    int rc = session_tokenize(s, cont, strlen(cont), false, &ct, &m);
    if (rc) return rc;
    if (n + m > (size_t)s->n_ctx) {
        free(ct);
        return evalgen_fail(s, 2, "a prompt and a candidate do not fit the context (-c)");
    }
    int32_t *t = grow_copy(prompt, n, m);
    if (!t) {
        free(ct);
        return evalgen_fail(s, 1, "out of memory");
    }
    double sum = 0;
    rc = session_sync(s, t, n);
    for (size_t i = 0; !rc && i < m; i++) {
        sum += log_prob(s->logits, s->n_vocab, ct[i]);
        t[n + i] = ct[i];
        if (i + 1 < m) rc = session_sync(s, t, n + i + 1);
    }
    free(t);
    free(ct);
    *ll = sum;
    *n_cont = m;
    return rc;
}


int evalgen_split_args(const char *cmd, int argc, char **argv, const evalgen_flag *flags,
                       size_t n_flags, long *limit, char **rest, int *n_rest)
{
    *n_rest = 0;
    rest[(*n_rest)++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--limit")) {
            char *end;
            if (i + 1 >= argc || (*limit = strtol(argv[i + 1], &end, 10)) < 1 || *end) {
                fprintf(stderr, "loft %s: --limit needs a positive integer\n", cmd);
                return 2;
            }
            i++;
            continue;
        }
        const char **dst = NULL;
        for (size_t k = 0; k < n_flags && !dst; k++)
            if (!strcmp(a, flags[k].name)) dst = flags[k].dst;
        if (!dst) {
            rest[(*n_rest)++] = argv[i];
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "loft %s: %s needs a value\n", cmd, a);
            return 2;
        }
        *dst = argv[++i];
    }
    return 0;
}
