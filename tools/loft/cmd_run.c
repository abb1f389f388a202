/*
 * cmd_run.c - `loft run -m MODEL -p PROMPT [options]`: one generation.
 *
 * Without -st/-cnv the prompt is completed as raw text. With -st (or -cnv)
 * it becomes one user turn of the model's chat template (plus -sys as the
 * system turn), as llama-cli -st does, and generation stops at the end of
 * the answer. Text streams to stdout; timings go to stderr at the end.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "session.h"

static volatile sig_atomic_t run_interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    run_interrupted = 1;
}

static void run_usage(FILE *f)
{
    fprintf(f, "usage: loft run -m MODEL (-p PROMPT | -f FILE) [options]\n\n");
    args_print_usage(f);
}

/* Builds the text to tokenize: the prompt itself, or the chat rendering of
 * one user turn. Returns 0 or an exit status; *out is malloc'd. */
static int build_prompt(session *s, const loft_args *a, const char *prompt, char **out)
{
    if (!(a->single_turn || a->conversation) || a->no_conversation) {
        *out = strdup(prompt);
        if (!*out) {
            fprintf(stderr, "loft run: out of memory\n");
            return 1;
        }
        return 0;
    }
    loft_chat_msg msgs[2];
    size_t n = 0;
    if (a->system_prompt) msgs[n++] = (loft_chat_msg){"system", a->system_prompt};
    msgs[n++] = (loft_chat_msg){"user", prompt};
    loft_status st;
    if (loft_chat_render(&s->tmpl, msgs, n, true, out, &st) != LOFT_OK) {
        fprintf(stderr, "loft run: %s\n", st.msg);
        return 1;
    }
    return 0;
}

/* Fits an over-long prompt for --context-shift: keeps the first n_keep
 * tokens and the most recent ones, so that half the context stays free. */
static size_t shorten_prompt(int32_t *toks, size_t n, size_t keep, size_t n_ctx)
{
    if (keep > n_ctx / 2) keep = n_ctx / 2;
    size_t tail = n_ctx / 2 - keep;
    if (tail == 0) tail = 1;
    memmove(toks + keep, toks + n - tail, tail * sizeof *toks);
    return keep + tail;
}

static int run_main(const loft_args *a, char *prompt)
{
    session s;
    int rc = session_open(&s, a, a->single_turn || a->conversation);
    if (rc) {
        session_close(&s);
        return rc;
    }
    char *text = NULL;
    int32_t *toks = NULL;
    size_t n = 0;
    if ((rc = build_prompt(&s, a, prompt, &text)) != 0) goto done;
    if ((rc = session_tokenize(&s, text, strlen(text), true, &toks, &n)) != 0) goto done;
    if (n == 0) {
        fprintf(stderr, "loft run: the prompt tokenizes to nothing\n");
        rc = 2;
        goto done;
    }
    if (a->verbose_prompt) {
        fprintf(stderr, "loft run: prompt is %zu tokens:\n", n);
        for (size_t i = 0; i < n; i++) {
            char piece[64];
            size_t pl = vocab_token_to_piece(s.vocab, toks[i], true, piece, sizeof piece);
            fprintf(stderr, "%6d -> '%.*s'\n", toks[i],
                    (int)(pl < sizeof piece ? pl : sizeof piece), piece);
        }
    }
    /* --keep counts prompt tokens after BOS, as llama.cpp counts them. */
    size_t keep = a->n_keep < 0 || (size_t)a->n_keep > n ? n : (size_t)a->n_keep;
    if (a->n_keep >= 0 && vocab_adds_bos(s.vocab) && keep < n) keep++;
    s.n_keep = (int32_t)keep;
    if (n >= (size_t)s.n_ctx) {
        if (!a->context_shift) {
            fprintf(stderr,
                    "loft run: the prompt is %zu tokens but the context holds %d (-c); raise -c "
                    "or pass --context-shift\n",
                    n, s.n_ctx);
            rc = 2;
            goto done;
        }
        size_t was = n;
        n = shorten_prompt(toks, n, keep, (size_t)s.n_ctx);
        if ((size_t)s.n_keep > n) s.n_keep = (int32_t)n;
        fprintf(stderr, "loft run: note: prompt of %zu tokens shortened to %zu (--context-shift)\n",
                was, n);
    }
    if (!(a->single_turn || a->conversation) && !a->no_display_prompt) {
        fputs(prompt, stdout);
        fflush(stdout);
    }
    for (size_t i = 0; i < n; i++)
        loft_sampler_accept(s.sampler, toks[i]);
    if (a->bench_runs > 0) {
        rc = run_bench(&s, toks, n, a->n_predict, a->bench_runs, &run_interrupted);
        goto done;
    }
    if ((rc = session_sync(&s, toks, n)) != 0) goto done;
    rc = session_generate(&s, a->n_predict, &run_interrupted, NULL, NULL);
    fputc('\n', stdout);
    fflush(stdout);
    if (run_interrupted) fprintf(stderr, "loft run: interrupted\n");
    session_print_timings(&s);
done:
    free(toks);
    free(text);
    session_close(&s);
    return rc;
}

int cmd_run(int argc, char **argv)
{
    loft_args a;
    int rc = args_parse(&a, "run", argc, argv);
    if (rc) return rc;
    if (a.help) {
        run_usage(stdout);
        return 0;
    }
    if (!a.model) {
        fprintf(stderr, "loft run: no model given (-m FILE)\n");
        return 2;
    }
    if (a.prompt && a.file) {
        fprintf(stderr, "loft run: give the prompt with -p or -f, not both\n");
        return 2;
    }
    char *prompt = NULL;
    size_t len = 0;
    if (a.file) {
        prompt = args_read_file("run", a.file, &len);
        if (!prompt) return 1;
    } else if (a.prompt) {
        prompt = strdup(a.prompt);
        if (!prompt) return 1;
        if (a.escape) args_unescape(prompt);
        len = strlen(prompt);
    }
    if (!prompt || len == 0) {
        fprintf(stderr, "loft run: empty prompt (give one with -p TEXT or -f FILE)\n");
        free(prompt);
        return 2;
    }
    size_t bad_at;
    if (strlen(prompt) != len || !args_valid_utf8(prompt, len, &bad_at)) {
        if (strlen(prompt) != len) bad_at = strlen(prompt);
        fprintf(stderr, "loft run: the prompt is not valid UTF-8 (bad byte at offset %zu)\n",
                bad_at);
        free(prompt);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    rc = run_main(&a, prompt);
    free(prompt);
    return rc;
}
