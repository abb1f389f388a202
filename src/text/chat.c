#include "text/chat.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"

static const char *const kind_names[LOFT_CHAT_KIND_COUNT] = {"chatml", "gemma", "llama3", "zephyr"};

const char *loft_chat_kind_name(loft_chat_kind kind)
{
    return (unsigned)kind < LOFT_CHAT_KIND_COUNT ? kind_names[kind] : "?";
}

const char *loft_chat_template_names(void)
{
    return "chatml, gemma, llama3, zephyr";
}

loft_code loft_chat_template_by_name(loft_chat_template *out, const char *name, loft_status *st)
{
    memset(out, 0, sizeof *out);
    for (int k = 0; k < LOFT_CHAT_KIND_COUNT; k++)
        if (!strcmp(name, kind_names[k])) {
            out->kind = (loft_chat_kind)k;
            return LOFT_OK;
        }
    /* Spellings other tools use for the same formats. */
    if (!strcmp(name, "smollm") || !strcmp(name, "qwen") || !strcmp(name, "qwen2")) {
        out->kind = LOFT_CHAT_CHATML;
        return LOFT_OK;
    }
    if (!strcmp(name, "gemma3") || !strcmp(name, "gemma2")) {
        out->kind = LOFT_CHAT_GEMMA;
        return LOFT_OK;
    }
    if (!strcmp(name, "llama-3") || !strcmp(name, "llama3.1")) {
        out->kind = LOFT_CHAT_LLAMA3;
        return LOFT_OK;
    }
    if (!strcmp(name, "tinyllama")) {
        out->kind = LOFT_CHAT_ZEPHYR;
        return LOFT_OK;
    }
    return loft_fail(st, LOFT_ERR_ARG, "unknown chat template '%s' (known: %s)", name,
                     loft_chat_template_names());
}

/* ---- recognition ----------------------------------------------------- */

static const char *find_in(const char *text, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    if (n == 0 || n > len) return NULL;
    for (size_t i = 0; i + n <= len; i++)
        if (text[i] == needle[0] && !memcmp(text + i, needle, n)) return text + i;
    return NULL;
}

static bool has(const char *text, size_t len, const char *needle)
{
    return find_in(text, len, needle) != NULL;
}

/* A ChatML template that writes a fixed system turn when the conversation
 * has none carries it as a literal: <|im_start|>system, a newline (real or
 * the two characters \n), the prompt, <|im_end|>. The literal must contain
 * no template syntax, so a template that inserts messages[0]['content'] is
 * not mistaken for one with a default. */
static void find_default_system(loft_chat_template *t, const char *text, size_t len)
{
    static const char open[] = "<|im_start|>system";
    const char *end = text + len;
    const char *p = text;
    while ((p = find_in(p, (size_t)(end - p), open)) != NULL) {
        const char *q = p + sizeof open - 1;
        if (q < end && *q == '\n')
            q++;
        else if (end - q >= 2 && q[0] == '\\' && q[1] == 'n')
            q += 2;
        else {
            p = q;
            continue;
        }
        const char *close = find_in(q, (size_t)(end - q), "<|im_end|>");
        if (!close) return;
        size_t n = (size_t)(close - q);
        bool literal = n > 0 && n < sizeof t->default_system;
        for (size_t i = 0; i < n && literal; i++)
            literal = q[i] != '{' && q[i] != '}' && q[i] != '\'' && q[i] != '"' && q[i] != '\\';
        if (literal) {
            memcpy(t->default_system, q, n);
            t->default_system[n] = '\0';
            return;
        }
        p = close;
    }
}

loft_code loft_chat_template_detect(loft_chat_template *out, const char *text, size_t len,
                                    const char *arch, loft_status *st)
{
    memset(out, 0, sizeof *out);
    if (!text || len == 0) {
        out->kind = arch && !strncmp(arch, "gemma", 5) ? LOFT_CHAT_GEMMA : LOFT_CHAT_CHATML;
        return LOFT_OK;
    }
    if (has(text, len, "<|im_start|>")) {
        out->kind = LOFT_CHAT_CHATML;
        /* Only a template that tests for a missing system turn has a default. */
        if (has(text, len, "!= 'system'") || has(text, len, "!= \"system\"") ||
            has(text, len, "else"))
            find_default_system(out, text, len);
        return LOFT_OK;
    }
    if (has(text, len, "<start_of_turn>")) {
        out->kind = LOFT_CHAT_GEMMA;
        return LOFT_OK;
    }
    if (has(text, len, "<|start_header_id|>") && has(text, len, "<|end_header_id|>")) {
        out->kind = LOFT_CHAT_LLAMA3;
        return LOFT_OK;
    }
    if (has(text, len, "<|user|>") && has(text, len, "<|assistant|>") &&
        !has(text, len, "<|end|>")) {
        out->kind = LOFT_CHAT_ZEPHYR;
        return LOFT_OK;
    }
    return loft_fail(st, LOFT_ERR_UNSUPPORTED,
                     "the model's chat template is not one loft recognises; pick one with "
                     "--chat-template NAME (known: %s)",
                     loft_chat_template_names());
}

/* ---- rendering ------------------------------------------------------- */

typedef struct strbuf {
    char *data;
    size_t len, cap;
    bool failed;
} strbuf;

static void sb_add(strbuf *b, const char *s, size_t n)
{
    if (b->failed) return;
    if (n > SIZE_MAX - b->len - 1) {
        b->failed = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            if (cap > SIZE_MAX / 2) {
                cap = b->len + n + 1;
                break;
            }
            cap *= 2;
        }
        char *d = realloc(b->data, cap);
        if (!d) {
            b->failed = true;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void sb_puts(strbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Appends s without leading and trailing whitespace (Jinja's trim). */
static void sb_trimmed(strbuf *b, const char *s)
{
    size_t n = strlen(s);
    while (n && is_space(*s))
        s++, n--;
    while (n && is_space(s[n - 1]))
        n--;
    sb_add(b, s, n);
}

static void render_chatml(strbuf *b, const loft_chat_template *t, const loft_chat_msg *m, size_t n,
                          bool gen)
{
    if (t->default_system[0] && (n == 0 || strcmp(m[0].role, "system") != 0)) {
        sb_puts(b, "<|im_start|>system\n");
        sb_puts(b, t->default_system);
        sb_puts(b, "<|im_end|>\n");
    }
    for (size_t i = 0; i < n; i++) {
        sb_puts(b, "<|im_start|>");
        sb_puts(b, m[i].role);
        sb_puts(b, "\n");
        sb_puts(b, m[i].content);
        sb_puts(b, "<|im_end|>\n");
    }
    if (gen) sb_puts(b, "<|im_start|>assistant\n");
}

/* Gemma has no system role: system text joins the next user turn, followed
 * by a blank line, and "assistant" is called "model". */
static void render_gemma(strbuf *b, const loft_chat_msg *m, size_t n, bool gen)
{
    strbuf sys = {0};
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(m[i].role, "system")) {
            sb_trimmed(&sys, m[i].content);
            continue;
        }
        bool model = !strcmp(m[i].role, "assistant");
        sb_puts(b, "<start_of_turn>");
        sb_puts(b, model ? "model" : m[i].role);
        sb_puts(b, "\n");
        if (sys.len && !model) {
            sb_add(b, sys.data, sys.len);
            sb_puts(b, "\n\n");
            sys.len = 0;
        }
        sb_trimmed(b, m[i].content);
        sb_puts(b, "<end_of_turn>\n");
    }
    if (sys.failed) b->failed = true;
    free(sys.data);
    if (gen) sb_puts(b, "<start_of_turn>model\n");
}

static void render_llama3(strbuf *b, const loft_chat_msg *m, size_t n, bool gen)
{
    for (size_t i = 0; i < n; i++) {
        sb_puts(b, "<|start_header_id|>");
        sb_puts(b, m[i].role);
        sb_puts(b, "<|end_header_id|>\n\n");
        sb_trimmed(b, m[i].content);
        sb_puts(b, "<|eot_id|>");
    }
    if (gen) sb_puts(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static void render_zephyr(strbuf *b, const loft_chat_msg *m, size_t n, bool gen)
{
    for (size_t i = 0; i < n; i++) {
        sb_puts(b, "<|");
        sb_puts(b, m[i].role);
        sb_puts(b, "|>\n");
        sb_puts(b, m[i].content);
        sb_puts(b, "</s>\n");
    }
    if (gen) sb_puts(b, "<|assistant|>\n");
}

loft_code loft_chat_render(const loft_chat_template *t, const loft_chat_msg *msgs, size_t n,
                           bool add_generation_prompt, char **out, loft_status *st)
{
    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *r = msgs[i].role;
        if (!r || !msgs[i].content)
            return loft_fail(st, LOFT_ERR_ARG, "chat message %zu has no role or content", i);
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant"))
            return loft_fail(st, LOFT_ERR_ARG,
                             "chat message %zu: role '%s' is not system, user or assistant", i, r);
    }
    strbuf b = {0};
    sb_add(&b, "", 0);
    switch (t->kind) {
    case LOFT_CHAT_CHATML:
        render_chatml(&b, t, msgs, n, add_generation_prompt);
        break;
    case LOFT_CHAT_GEMMA:
        render_gemma(&b, msgs, n, add_generation_prompt);
        break;
    case LOFT_CHAT_LLAMA3:
        render_llama3(&b, msgs, n, add_generation_prompt);
        break;
    case LOFT_CHAT_ZEPHYR:
        render_zephyr(&b, msgs, n, add_generation_prompt);
        break;
    default:
        free(b.data);
        return loft_fail(st, LOFT_ERR_ARG, "chat template kind %d is not known", (int)t->kind);
    }
    if (b.failed) {
        free(b.data);
        return loft_fail(st, LOFT_ERR_NOMEM, "chat template: out of memory rendering %zu messages",
                         n);
    }
    *out = b.data;
    return LOFT_OK;
}
