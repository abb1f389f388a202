/* records.c - JSONL evaluation records. */
#include "eval/records.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/status.h"

void eval_fields_default(eval_fields *f)
{
    f->question = "question";
    f->answer = "answer";
    f->label = "label";
    f->choices = "choices";
}

void eval_records_free(eval_records *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        eval_record *r = &rs->r[i];
        free(r->question);
        free(r->answer);
        free(r->label);
        for (size_t k = 0; k < r->n_choices; k++)
            free(r->choices[k]);
        free(r->choices);
    }
    free(rs->r);
    rs->r = NULL;
    rs->n = 0;
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static char *read_file(const char *path, size_t *len, loft_status *st, loft_code *c)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *c = loft_fail(st, LOFT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 65536) {
            cap = cap ? cap * 2 : 65536 * 2;
            char *p = realloc(buf, cap + 1);
            if (!p) {
                free(buf);
                fclose(f);
                *c = loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory", path);
                return NULL;
            }
            buf = p;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        *c = loft_fail(st, LOFT_ERR_IO, "%s: read error", path);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Fills r from the object v; returns LOFT_OK or a failure naming the line. */
static loft_code fill_record(eval_record *r, const json_value *v, const char *path,
                             const eval_fields *f, unsigned need, loft_status *st)
{
    const char *q = json_get_str(v, f->question);
    const char *a = json_get_str(v, f->answer);
    const char *lab = json_get_str(v, f->label);
    const json_value *lv = json_get(v, f->label);
    if (lv && lv->kind == JSON_NUMBER) lab = NULL;
    size_t a_len = a ? strlen(a) : 0;
    if (!a) {
        const char *text = json_get_str(v, "text");
        const char *at = text ? strstr(text, "\nA:") : NULL;
        if (at) {
            a = at + 3;
            while (*a == ' ')
                a++;
            a_len = strlen(a);
        }
    }
    if (q && !(r->question = strdup(q))) goto nomem;
    if (a && !(r->answer = dup_n(a, a_len))) goto nomem;
    if (lab && !(r->label = strdup(lab))) goto nomem;
    r->answer_index = -1;
    const json_value *ch = json_get(v, f->choices);
    if (ch && ch->kind == JSON_ARRAY && ch->n > 0) {
        r->choices = calloc(ch->n, sizeof *r->choices);
        if (!r->choices) goto nomem;
        for (size_t k = 0; k < ch->n; k++) {
            if (ch->items[k].kind != JSON_STRING)
                return loft_fail(st, LOFT_ERR_FORMAT, "%s:%zu: %s[%zu] is not a string", path,
                                 r->line, f->choices, k);
            if (!(r->choices[k] = strdup(ch->items[k].str))) goto nomem;
            r->n_choices++;
        }
        const json_value *av = json_get(v, f->answer);
        if (av && av->kind == JSON_NUMBER && av->number >= 0 && av->number < (double)ch->n &&
            av->number == (double)(size_t)av->number)
            r->answer_index = (int)av->number;
        for (size_t k = 0; r->answer_index < 0 && k < r->n_choices; k++)
            if ((a && !strcmp(r->choices[k], a)) || (lab && !strcmp(r->choices[k], lab)))
                r->answer_index = (int)k;
    }
    if ((need & EVAL_NEED_QUESTION) && !r->question)
        return loft_fail(st, LOFT_ERR_FORMAT, "%s:%zu: field \"%s\" is missing or not a string",
                         path, r->line, f->question);
    if ((need & EVAL_NEED_ANSWER) && !r->answer)
        return loft_fail(st, LOFT_ERR_FORMAT,
                         "%s:%zu: field \"%s\" is missing or not a string (and there is no "
                         "\"text\" with \"\\nA:\")",
                         path, r->line, f->answer);
    if ((need & EVAL_NEED_LABEL) && !r->label)
        return loft_fail(st, LOFT_ERR_FORMAT, "%s:%zu: field \"%s\" is missing or not a string",
                         path, r->line, f->label);
    if ((need & EVAL_NEED_CHOICES) && r->choices && r->answer_index < 0)
        return loft_fail(st, LOFT_ERR_FORMAT,
                         "%s:%zu: the reference (\"%s\" as an index or a string, or \"%s\") is "
                         "none of the %zu choices",
                         path, r->line, f->answer, f->label, r->n_choices);
    return LOFT_OK;
nomem:
    return loft_fail(st, LOFT_ERR_NOMEM, "%s:%zu: out of memory", path, r->line);
}

loft_code eval_records_load(eval_records *out, const char *path, const eval_fields *f,
                            unsigned need, loft_status *st)
{
    out->r = NULL;
    out->n = 0;
    loft_code c = LOFT_OK;
    size_t len = 0;
    char *buf = read_file(path, &len, st, &c);
    if (!buf) return c;
    size_t cap = 0, line = 0;
    for (size_t pos = 0; pos < len;) {
        char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        line++;
        size_t b = pos, e = end;
        while (b < e && (buf[b] == ' ' || buf[b] == '\t' || buf[b] == '\r'))
            b++;
        while (e > b && (buf[e - 1] == ' ' || buf[e - 1] == '\t' || buf[e - 1] == '\r'))
            e--;
        pos = end + 1;
        if (b == e) continue;
        char name[512];
        snprintf(name, sizeof name, "%s:%zu", path, line);
        json_doc *doc = NULL;
        if ((c = json_parse(&doc, buf + b, e - b, name, st))) goto fail;
        const json_value *v = json_doc_root(doc);
        if (v->kind != JSON_OBJECT) {
            json_doc_free(doc);
            c = loft_fail(st, LOFT_ERR_FORMAT, "%s:%zu: not a JSON object", path, line);
            goto fail;
        }
        if (out->n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            eval_record *p = realloc(out->r, nc * sizeof *p);
            if (!p) {
                json_doc_free(doc);
                c = loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory", path);
                goto fail;
            }
            out->r = p;
            cap = nc;
        }
        eval_record *r = &out->r[out->n++];
        memset(r, 0, sizeof *r);
        r->line = line;
        c = fill_record(r, v, path, f, need, st);
        json_doc_free(doc);
        if (c) goto fail;
    }
    free(buf);
    if (out->n == 0) return loft_fail(st, LOFT_ERR_FORMAT, "%s: no records", path);
    return LOFT_OK;
fail:
    free(buf);
    eval_records_free(out);
    return c;
}
