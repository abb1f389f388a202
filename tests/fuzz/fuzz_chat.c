/*
 * fuzz_chat.c - libFuzzer target for chat templates (src/text/chat.c):
 * recognising a model's template text and rendering conversations.
 *
 * The input is split at NUL bytes: the first field is a template text
 * (recognised with loft_chat_template_detect for a llama and a gemma3
 * model), the second a template name (loft_chat_template_by_name), the rest
 * role/content pairs. The conversation is rendered with the recognised
 * template and with every built-in one, with and without the generation
 * prompt; every message's content must appear in the output, which must be
 * NUL-terminated where its length says. Nothing in the template text is
 * ever executed: detection only looks for substrings. Run with `make fuzz`.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text/chat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_MSGS 16

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* True when out holds s, or s without its outer whitespace (some families
 * trim contents, as their Jinja templates do). */
static bool holds(const char *out, const char *s)
{
    size_t n = strlen(s);
    while (n && is_space(*s))
        s++, n--;
    while (n && is_space(s[n - 1]))
        n--;
    return memmem(out, strlen(out), s, n) != NULL;
}

static void render(const loft_chat_template *t, const loft_chat_msg *msgs, size_t n)
{
    for (int gen = 0; gen < 2; gen++) {
        char *out = NULL;
        loft_status st;
        if (loft_chat_render(t, msgs, n, gen != 0, &out, &st) != LOFT_OK) {
            if (out) abort();
            continue;
        }
        if (!out) abort();
        /* Contents are rendered verbatim or trimmed. The gemma family folds
         * the system prompt into the first user turn, so with no user turn
         * it is dropped, as Gemma's own template drops it. */
        for (size_t i = 0; i < n; i++) {
            if (t->kind == LOFT_CHAT_GEMMA && !strcmp(msgs[i].role, "system")) continue;
            if (!holds(out, msgs[i].content)) abort();
        }
        free(out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    buf[size] = '\0';
    const char *fields[2 + 2 * FUZZ_MAX_MSGS];
    size_t lens[2 + 2 * FUZZ_MAX_MSGS];
    size_t nf = 0;
    for (size_t i = 0; i <= size && nf < sizeof fields / sizeof fields[0];) {
        fields[nf] = buf + i;
        lens[nf] = strlen(buf + i);
        i += lens[nf] + 1;
        nf++;
    }
    loft_chat_msg msgs[FUZZ_MAX_MSGS];
    size_t n = 0;
    for (size_t f = 2; f + 1 < nf && n < FUZZ_MAX_MSGS; f += 2) {
        msgs[n].role = fields[f];
        msgs[n].content = fields[f + 1];
        n++;
    }
    loft_chat_template t;
    loft_status st;
    static const char *arches[] = {"llama", "gemma3"};
    for (int a = 0; a < 2; a++)
        if (loft_chat_template_detect(&t, fields[0], lens[0], arches[a], &st) == LOFT_OK) {
            if (memchr(t.default_system, '\0', sizeof t.default_system) == NULL) abort();
            render(&t, msgs, n);
        }
    if (nf > 1 && loft_chat_template_by_name(&t, fields[1], &st) == LOFT_OK) render(&t, msgs, n);
    for (int k = 0; k < LOFT_CHAT_KIND_COUNT; k++) {
        memset(&t, 0, sizeof t);
        t.kind = (loft_chat_kind)k;
        render(&t, msgs, n);
    }
    free(buf);
    return 0;
}
