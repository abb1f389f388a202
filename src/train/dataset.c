/* dataset.c - JSONL training examples with a token-boundary loss mask. */
#include "train/dataset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/status.h"

/* ---- building one example segment by segment -------------------------- */

typedef struct tok_builder {
    int32_t *tokens;
    uint8_t *mask;
    size_t n, cap;
} tok_builder;

static bool tb_reserve(tok_builder *b, size_t extra)
{
    if (extra > SIZE_MAX / 2 - b->n) return false;
    size_t need = b->n + extra;
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    int32_t *t = realloc(b->tokens, cap * sizeof *t);
    if (!t) return false;
    b->tokens = t;
    uint8_t *m = realloc(b->mask, cap);
    if (!m) return false;
    b->mask = m;
    b->cap = cap;
    return true;
}

static loft_code tb_push(tok_builder *b, int32_t tok, bool train, loft_status *st)
{
    if (!tb_reserve(b, 1)) return loft_fail(st, LOFT_ERR_NOMEM, "dataset: out of memory");
    b->tokens[b->n] = tok;
    b->mask[b->n] = train ? 1 : 0;
    b->n++;
    return LOFT_OK;
}

/* Appends the tokens of text (no BOS/EOS; control-token text recognised,
 * as the chat templates need) with the given mask bit. */
static loft_code tb_text(tok_builder *b, const loft_vocab *v, const char *text, size_t len,
                         bool train, loft_status *st)
{
    if (len == 0) return LOFT_OK;
    int32_t *toks = NULL;
    size_t nt = 0;
    loft_code c = vocab_tokenize(v, text, len, false, true, &toks, &nt, st);
    if (c != LOFT_OK) return c;
    /* Text of bytes the vocabulary has no token for gives none; b may not
     * have a buffer yet (NULL + 0 is undefined). */
    if (nt == 0) {
        free(toks);
        return LOFT_OK;
    }
    if (!tb_reserve(b, nt)) {
        free(toks);
        return loft_fail(st, LOFT_ERR_NOMEM, "dataset: out of memory");
    }
    memcpy(b->tokens + b->n, toks, nt * sizeof *toks);
    memset(b->mask + b->n, train ? 1 : 0, nt);
    b->n += nt;
    free(toks);
    return LOFT_OK;
}

/* ---- the record kinds -------------------------------------------------- */

static loft_code build_messages(tok_builder *b, const json_value *msgs, const loft_vocab *v,
                                const loft_chat_template *tmpl, bool loss_only, loft_status *st)
{
    if (msgs->kind != JSON_ARRAY || msgs->n == 0)
        return loft_fail(st, LOFT_ERR_FORMAT, "\"messages\" is not a non-empty array");
    if (!tmpl) return loft_fail(st, LOFT_ERR_FORMAT, "\"messages\" needs a chat template");
    loft_chat_msg *m = calloc(msgs->n, sizeof *m);
    if (!m) return loft_fail(st, LOFT_ERR_NOMEM, "dataset: out of memory");
    bool any_assistant = false;
    for (size_t i = 0; i < msgs->n; i++) {
        m[i].role = json_get_str(&msgs->items[i], "role");
        m[i].content = json_get_str(&msgs->items[i], "content");
        if (!m[i].role || !m[i].content) {
            free(m);
            return loft_fail(st, LOFT_ERR_FORMAT, "message %zu has no string role and content", i);
        }
        if (!strcmp(m[i].role, "assistant")) any_assistant = true;
    }
    if (!any_assistant) {
        free(m);
        return loft_fail(st, LOFT_ERR_FORMAT, "\"messages\" has no assistant turn");
    }
    /* The rendering of messages [0, i) (with the assistant opening when the
     * next is an assistant turn) is a prefix of the rendering of [0, i]; the
     * difference is that turn's text, tokenized on its own. */
    loft_code c = LOFT_OK;
    size_t done = 0; /* bytes of the rendering already tokenized */
    char *full = NULL;
    for (size_t i = 0; i < msgs->n && c == LOFT_OK; i++) {
        bool asst = !strcmp(m[i].role, "assistant");
        if (asst) {
            char *pre = NULL;
            c = loft_chat_render(tmpl, m, i, true, &pre, st);
            if (c != LOFT_OK) break;
            size_t lp = strlen(pre);
            if (lp < done)
                c = loft_fail(st, LOFT_ERR_FORMAT, "chat rendering is not incremental");
            else
                c = tb_text(b, v, pre + done, lp - done, !loss_only, st);
            free(pre);
            done = lp;
            if (c != LOFT_OK) break;
        }
        c = loft_chat_render(tmpl, m, i + 1, false, &full, st);
        if (c != LOFT_OK) break;
        size_t lf = strlen(full);
        if (lf < done)
            c = loft_fail(st, LOFT_ERR_FORMAT, "chat rendering is not incremental");
        else
            c = tb_text(b, v, full + done, lf - done, asst || !loss_only, st);
        done = lf;
        free(full);
        full = NULL;
    }
    free(m);
    return c;
}

static const char *find_answer(const char *text, size_t len, size_t *at)
{
    for (size_t i = 0; i + 3 <= len; i++)
        if (text[i] == '\n' && text[i + 1] == 'A' && text[i + 2] == ':') {
            *at = i + 3;
            return text + i;
        }
    return NULL;
}

loft_code dataset_example_from_json(train_example *ex, bool *truncated, const char *line,
                                    size_t len, const loft_vocab *v, const loft_chat_template *tmpl,
                                    const dataset_opts *o, loft_status *st)
{
    memset(ex, 0, sizeof *ex);
    *truncated = false;
    json_doc *doc = NULL;
    loft_code c = json_parse(&doc, line, len, "line", st);
    if (c != LOFT_OK) return loft_fail(st, LOFT_ERR_FORMAT, "not valid JSON (%s)", st->msg);
    const json_value *root = json_doc_root(doc);
    tok_builder b = {0};
    const bool lo = o->assistant_loss_only;
    if (root->kind != JSON_OBJECT) {
        c = loft_fail(st, LOFT_ERR_FORMAT, "not a JSON object");
        goto done;
    }
    if (vocab_adds_bos(v) && vocab_bos(v) >= 0) {
        c = tb_push(&b, vocab_bos(v), false, st);
        if (c != LOFT_OK) goto done;
    }
    const json_value *msgs = json_get(root, "messages");
    const json_value *prompt = json_get(root, "prompt");
    const json_value *compl = json_get(root, "completion");
    const json_value *text = json_get(root, "text");
    if (msgs) {
        c = build_messages(&b, msgs, v, tmpl, lo, st);
    } else if (prompt && compl &&prompt->kind == JSON_STRING && compl ->kind == JSON_STRING) {
        c = tb_text(&b, v, prompt->str, prompt->str_len, !lo, st);
        if (c == LOFT_OK) c = tb_text(&b, v, compl ->str, compl ->str_len, true, st);
        if (c == LOFT_OK && vocab_eos(v) >= 0) c = tb_push(&b, vocab_eos(v), true, st);
    } else if (text && text->kind == JSON_STRING) {
        size_t at = 0;
        bool qa = (json_get(root, "label") || json_get(root, "question")) &&
                  find_answer(text->str, text->str_len, &at);
        if (qa) {
            c = tb_text(&b, v, text->str, at, !lo, st);
            if (c == LOFT_OK) c = tb_text(&b, v, text->str + at, text->str_len - at, true, st);
        } else {
            c = tb_text(&b, v, text->str, text->str_len, true, st);
        }
        if (c == LOFT_OK && vocab_eos(v) >= 0) c = tb_push(&b, vocab_eos(v), true, st);
    } else {
        c = loft_fail(st, LOFT_ERR_FORMAT,
                      "no usable field (expected \"messages\", \"prompt\"+\"completion\" or "
                      "\"text\" as strings)");
    }
    if (c != LOFT_OK) goto done;
    if (b.n > (size_t)o->n_ctx) {
        b.n = (size_t)o->n_ctx;
        *truncated = true;
    }
    if (b.n > 0) b.mask[0] = 0; /* nothing predicts the first token */
    ex->tokens = b.tokens;
    ex->mask = b.mask;
    ex->n = (int32_t)b.n;
    for (size_t i = 0; i < b.n; i++)
        ex->n_loss += b.mask[i];
    json_doc_free(doc);
    return LOFT_OK;
done:
    free(b.tokens);
    free(b.mask);
    json_doc_free(doc);
    return c;
}

void train_example_free(train_example *ex)
{
    free(ex->tokens);
    free(ex->mask);
    memset(ex, 0, sizeof *ex);
}

void dataset_free(train_dataset *d)
{
    for (size_t i = 0; i < d->n; i++)
        train_example_free(&d->ex[i]);
    free(d->ex);
    free(d->bad);
    memset(d, 0, sizeof *d);
}

static loft_code add_bad(train_dataset *d, size_t line, const char *why, loft_status *st)
{
    dataset_bad_line *nb = realloc(d->bad, (d->n_bad + 1) * sizeof *nb);
    if (!nb) return loft_fail(st, LOFT_ERR_NOMEM, "dataset: out of memory");
    d->bad = nb;
    nb[d->n_bad].line = line;
    size_t n = strlen(why);
    if (n >= sizeof nb[d->n_bad].why) n = sizeof nb[d->n_bad].why - 1;
    memcpy(nb[d->n_bad].why, why, n);
    nb[d->n_bad].why[n] = '\0';
    d->n_bad++;
    return LOFT_OK;
}

static loft_code add_example(train_dataset *d, size_t *cap, train_example *ex, loft_status *st)
{
    if (d->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        train_example *ne = realloc(d->ex, nc * sizeof *ne);
        if (!ne) return loft_fail(st, LOFT_ERR_NOMEM, "dataset: out of memory");
        d->ex = ne;
        *cap = nc;
    }
    d->ex[d->n++] = *ex;
    d->n_tokens += ex->n;
    d->n_loss_tokens += ex->n_loss;
    return LOFT_OK;
}

loft_code dataset_load(train_dataset *out, const char *path, const loft_vocab *v,
                       const loft_chat_template *tmpl, const dataset_opts *o, loft_status *st)
{
    memset(out, 0, sizeof *out);
    if (o->n_ctx < 2)
        return loft_fail(st, LOFT_ERR_ARG, "%s: context %d is below 2", path, o->n_ctx);
    FILE *f = fopen(path, "rb");
    if (!f) return loft_fail(st, LOFT_ERR_IO, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t line_cap = 0, cap = 0, lineno = 0;
    ssize_t got;
    loft_code c = LOFT_OK;
    while ((got = getline(&line, &line_cap, f)) >= 0) {
        lineno++;
        size_t len = (size_t)got;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' ||
                       line[len - 1] == '\t'))
            len--;
        size_t lead = 0;
        while (lead < len && (line[lead] == ' ' || line[lead] == '\t'))
            lead++;
        if (lead == len) continue;
        out->n_lines++;
        train_example ex;
        bool trunc = false;
        loft_status lst;
        c = dataset_example_from_json(&ex, &trunc, line + lead, len - lead, v, tmpl, o, &lst);
        if (c == LOFT_ERR_FORMAT) {
            if (o->strict) {
                c = loft_fail(st, LOFT_ERR_FORMAT, "%s:%zu: %s", path, lineno, lst.msg);
                goto fail;
            }
            c = add_bad(out, lineno, lst.msg, st);
            if (c != LOFT_OK) goto fail;
            continue;
        }
        if (c != LOFT_OK) {
            c = loft_fail(st, c, "%s:%zu: %s", path, lineno, lst.msg);
            goto fail;
        }
        if (trunc) out->n_truncated++;
        if (ex.n_loss == 0) {
            out->n_no_loss++;
            train_example_free(&ex);
            continue;
        }
        c = add_example(out, &cap, &ex, st);
        if (c != LOFT_OK) {
            train_example_free(&ex);
            goto fail;
        }
    }
    if (ferror(f)) {
        c = loft_fail(st, LOFT_ERR_IO, "%s: read error after line %zu", path, lineno);
        goto fail;
    }
    free(line);
    fclose(f);
    if (out->n == 0) {
        c = loft_fail(st, LOFT_ERR_FORMAT, "%s: no usable example in %zu lines%s%s", path,
                      out->n_lines, out->n_bad ? " (first problem: " : "",
                      out->n_bad ? out->bad[0].why : "");
        dataset_free(out);
        return c;
    }
    return LOFT_OK;
fail:
    free(line);
    fclose(f);
    dataset_free(out);
    return c;
}

loft_code dataset_split_tail(train_dataset *d, train_dataset *val, size_t count, loft_status *st)
{
    memset(val, 0, sizeof *val);
    if (count == 0) return LOFT_OK;
    if (count >= d->n)
        return loft_fail(st, LOFT_ERR_ARG,
                         "validation split of %zu leaves no training example of %zu", count, d->n);
    val->ex = malloc(count * sizeof *val->ex);
    if (!val->ex) return loft_fail(st, LOFT_ERR_NOMEM, "dataset: out of memory");
    memcpy(val->ex, d->ex + (d->n - count), count * sizeof *val->ex);
    val->n = count;
    d->n -= count;
    for (size_t i = 0; i < count; i++) {
        val->n_tokens += val->ex[i].n;
        val->n_loss_tokens += val->ex[i].n_loss;
        d->n_tokens -= val->ex[i].n;
        d->n_loss_tokens -= val->ex[i].n_loss;
    }
    return LOFT_OK;
}
