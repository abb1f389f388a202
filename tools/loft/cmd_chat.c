/*
 * cmd_chat.c - `loft chat -m MODEL [options]`: an interactive conversation.
 *
 * Each line read from stdin is a user turn; the whole conversation is
 * rendered with the chat template and only the tokens that differ from
 * what the KV cache already holds are evaluated. Commands: /exit, /reset
 * (forget the conversation, keep -sys). Ctrl-C stops the answer being
 * written; Ctrl-C at the prompt, or end of input, ends the program. When
 * the conversation outgrows the context the oldest turns are dropped.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "session.h"

static volatile sig_atomic_t chat_interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    chat_interrupted = 1;
}

typedef struct history {
    loft_chat_msg *msgs; /* role is static; content is owned */
    size_t n, cap;
    size_t n_fixed; /* leading system message kept by /reset */
} history;

static bool history_add(history *h, const char *role, const char *content)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        loft_chat_msg *m = realloc(h->msgs, cap * sizeof *m);
        if (!m) return false;
        h->msgs = m;
        h->cap = cap;
    }
    char *copy = strdup(content);
    if (!copy) return false;
    h->msgs[h->n++] = (loft_chat_msg){role, copy};
    return true;
}

/* Removes messages [from, from + count). */
static void history_drop(history *h, size_t from, size_t count)
{
    for (size_t i = from; i < from + count; i++)
        free((char *)h->msgs[i].content);
    memmove(h->msgs + from, h->msgs + from + count, (h->n - from - count) * sizeof *h->msgs);
    h->n -= count;
}

static void history_free(history *h)
{
    for (size_t i = 0; i < h->n; i++)
        free((char *)h->msgs[i].content);
    free(h->msgs);
}

static void chat_usage(FILE *f)
{
    fprintf(f, "usage: loft chat -m MODEL [options]\n"
               "  type a message and press enter; /reset forgets the conversation, /exit (or\n"
               "  end of input) quits; Ctrl-C stops an answer, Ctrl-C at the prompt quits.\n\n");
    args_print_usage(f);
}

/* Renders and tokenizes the conversation, dropping the oldest turns after
 * the fixed prefix until it fits in the context with room to answer.
 * Returns 0, 1 on a hard error, or 3 when the last message alone is too
 * long (it is then removed). */
static int fit_conversation(session *s, history *h, int32_t **toks, size_t *n)
{
    size_t room = (size_t)s->n_ctx / 8 > 16 ? (size_t)s->n_ctx / 8 : 16;
    for (;;) {
        char *text = NULL;
        loft_status st;
        if (loft_chat_render(&s->tmpl, h->msgs, h->n, true, &text, &st) != LOFT_OK) {
            fprintf(stderr, "loft chat: %s\n", st.msg);
            return 1;
        }
        int rc = session_tokenize(s, text, strlen(text), true, toks, n);
        free(text);
        if (rc) return 1;
        if (*n + room <= (size_t)s->n_ctx) return 0;
        free(*toks);
        *toks = NULL;
        /* Drop the oldest user turn and the answer to it. */
        if (h->n - h->n_fixed <= 1) {
            fprintf(stderr, "loft chat: that message is %zu tokens; the context holds %d (-c)\n",
                    *n, s->n_ctx);
            history_drop(h, h->n - 1, 1);
            return 3;
        }
        size_t count = h->n - h->n_fixed >= 3 ? 2 : 1;
        history_drop(h, h->n_fixed, count);
        fprintf(stderr, "loft chat: note: context full, dropped the oldest turn\n");
    }
}

static int chat_loop(session *s, const loft_args *a)
{
    history h = {0};
    int rc = 0;
    if (a->system_prompt) {
        if (!history_add(&h, "system", a->system_prompt)) return 1;
        h.n_fixed = 1;
    }
    char *line = NULL;
    size_t line_cap = 0;
    bool tty = isatty(STDIN_FILENO);
    for (;;) {
        fputs("\n> ", stdout);
        fflush(stdout);
        chat_interrupted = 0;
        errno = 0;
        ssize_t got = getline(&line, &line_cap, stdin);
        if (got < 0) {
            /* End of input, or Ctrl-C while waiting for it. */
            fputc('\n', stdout);
            break;
        }
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = '\0';
        if (!tty) {
            fputs(line, stdout);
            fputc('\n', stdout);
        }
        if (got == 0) continue;
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
        if (!strcmp(line, "/reset")) {
            history_drop(&h, h.n_fixed, h.n - h.n_fixed);
            loft_sampler_reset(s->sampler);
            printf("(conversation reset)\n");
            continue;
        }
        if (!args_valid_utf8(line, (size_t)got, NULL)) {
            fprintf(stderr, "loft chat: that line is not valid UTF-8; ignored\n");
            continue;
        }
        if (!history_add(&h, "user", line)) {
            rc = 1;
            break;
        }
        int32_t *toks = NULL;
        size_t n = 0;
        int fit = fit_conversation(s, &h, &toks, &n);
        if (fit == 3) continue;
        if (fit) {
            rc = 1;
            break;
        }
        loft_sampler_reset(s->sampler);
        for (size_t i = 0; i < n; i++)
            loft_sampler_accept(s->sampler, toks[i]);
        rc = session_sync(s, toks, n);
        free(toks);
        if (rc) break;
        char *answer = NULL;
        size_t alen = 0;
        rc = session_generate(s, a->n_predict, &chat_interrupted, &answer, &alen);
        if (chat_interrupted) {
            fputs(" [stopped]", stdout);
            chat_interrupted = 0;
        }
        fputc('\n', stdout);
        fflush(stdout);
        bool ok = history_add(&h, "assistant", answer ? answer : "");
        free(answer);
        if (rc || !ok) {
            rc = rc ? rc : 1;
            break;
        }
    }
    free(line);
    history_free(&h);
    return rc;
}

int cmd_chat(int argc, char **argv)
{
    loft_args a;
    int rc = args_parse(&a, "chat", argc, argv);
    if (rc) return rc;
    if (a.help) {
        chat_usage(stdout);
        return 0;
    }
    if (!a.model) {
        fprintf(stderr, "loft chat: no model given (-m FILE)\n");
        return 2;
    }
    if (a.prompt || a.file) {
        fprintf(stderr, "loft chat: -p/-f are for 'loft run'; chat reads its turns from stdin\n");
        return 2;
    }
    /* No SA_RESTART: a Ctrl-C at the prompt must interrupt the read. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    session s;
    rc = session_open(&s, &a, true);
    if (!rc) {
        fprintf(stderr, "loft chat: %s, chat template %s; /exit to quit, /reset to start over\n",
                a.model, loft_chat_kind_name(s.tmpl.kind));
        rc = chat_loop(&s, &a);
        session_print_timings(&s);
    }
    session_close(&s);
    return rc;
}
