#include "base/json.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"

/* ---- allocation: a chain of chunks owned by the document ---------------- */

typedef struct json_chunk {
    struct json_chunk *next;
    size_t used, cap;
    max_align_t data[];
} json_chunk;

struct json_doc {
    json_chunk *chunks;
    json_value root;
};

static void *doc_alloc(json_doc *doc, size_t size)
{
    size = (size + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    json_chunk *c = doc->chunks;
    if (!c || c->cap - c->used < size) {
        size_t cap = size > 65536 ? size : 65536;
        c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->cap = cap;
        c->used = 0;
        c->next = doc->chunks;
        doc->chunks = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += size;
    return p;
}

void json_doc_free(json_doc *doc)
{
    if (!doc) return;
    for (json_chunk *c = doc->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(doc);
}

const json_value *json_doc_root(const json_doc *doc)
{
    return &doc->root;
}

/* ---- parser ------------------------------------------------------------- */

typedef struct parser {
    const char *begin, *s, *end, *name;
    json_doc *doc;
    loft_status *st;
    int depth;
} parser;

static loft_code parse_error(parser *p, const char *what)
{
    int line = 1, col = 1;
    for (const char *q = p->begin; q < p->s && q < p->end; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    return loft_fail(p->st, LOFT_ERR_FORMAT, "%s:%d:%d: %s", p->name, line, col, what);
}

static void skip_ws(parser *p)
{
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
        p->s++;
}

static loft_code parse_value(parser *p, json_value *out);

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool read_hex4(parser *p, uint32_t *out)
{
    if (p->end - p->s < 4) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(p->s[i]);
        if (d < 0) return false;
        v = v * 16 + (uint32_t)d;
    }
    p->s += 4;
    *out = v;
    return true;
}

static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses a string starting at the opening quote. The decoded text is never
 * longer than the source text, so one allocation of the source length fits. */
static loft_code parse_string(parser *p, char **out, size_t *out_len)
{
    const char *start = ++p->s;
    const char *q = start;
    while (q < p->end && *q != '"') q += (*q == '\\' && q + 1 < p->end) ? 2 : 1;
    if (q >= p->end) return parse_error(p, "unterminated string");
    char *buf = doc_alloc(p->doc, (size_t)(q - start) + 1);
    if (!buf) return loft_fail(p->st, LOFT_ERR_NOMEM, "%s: out of memory", p->name);
    size_t n = 0;
    while (p->s < p->end && *p->s != '"') {
        unsigned char c = (unsigned char)*p->s;
        if (c < 0x20) return parse_error(p, "control character inside a string");
        if (c != '\\') {
            buf[n++] = (char)c;
            p->s++;
            continue;
        }
        p->s++;
        if (p->s >= p->end) return parse_error(p, "unterminated escape");
        char e = *p->s++;
        switch (e) {
        case '"': buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case '/': buf[n++] = '/'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'n': buf[n++] = '\n'; break;
        case 'r': buf[n++] = '\r'; break;
        case 't': buf[n++] = '\t'; break;
        case 'u': {
            uint32_t cp;
            if (!read_hex4(p, &cp)) return parse_error(p, "bad \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (p->end - p->s >= 6 && p->s[0] == '\\' && p->s[1] == 'u') {
                    p->s += 2;
                    if (!read_hex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                        return parse_error(p, "unpaired surrogate in \\u escape");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else {
                    return parse_error(p, "unpaired surrogate in \\u escape");
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return parse_error(p, "unpaired surrogate in \\u escape");
            }
            n += utf8_encode(cp, buf + n);
            break;
        }
        default: return parse_error(p, "unknown escape in string");
        }
    }
    p->s++; /* closing quote */
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return LOFT_OK;
}

static loft_code parse_number(parser *p, json_value *out)
{
    const char *q = p->s;
    if (q < p->end && *q == '-') q++;
    if (q >= p->end || !(*q >= '0' && *q <= '9')) return parse_error(p, "bad number");
    if (*q == '0')
        q++;
    else
        while (q < p->end && *q >= '0' && *q <= '9') q++;
    if (q < p->end && *q == '.') {
        q++;
        if (q >= p->end || !(*q >= '0' && *q <= '9')) return parse_error(p, "bad number");
        while (q < p->end && *q >= '0' && *q <= '9') q++;
    }
    if (q < p->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < p->end && (*q == '+' || *q == '-')) q++;
        if (q >= p->end || !(*q >= '0' && *q <= '9')) return parse_error(p, "bad number");
        while (q < p->end && *q >= '0' && *q <= '9') q++;
    }
    char tmp[64];
    size_t len = (size_t)(q - p->s);
    if (len >= sizeof tmp) {
        /* Long digit strings: strtod on a bounded heap copy. */
        char *big = malloc(len + 1);
        if (!big) return loft_fail(p->st, LOFT_ERR_NOMEM, "%s: out of memory", p->name);
        memcpy(big, p->s, len);
        big[len] = '\0';
        out->number = strtod(big, NULL);
        free(big);
    } else {
        memcpy(tmp, p->s, len);
        tmp[len] = '\0';
        out->number = strtod(tmp, NULL);
    }
    out->kind = JSON_NUMBER;
    p->s = q;
    return LOFT_OK;
}

static bool match_word(parser *p, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(p->end - p->s) < n || memcmp(p->s, w, n) != 0) return false;
    p->s += n;
    return true;
}

/* A growable list of values (and keys) used while a container is parsed;
 * the finished list is copied into the document. */
typedef struct value_list {
    json_value *items;
    char **keys;
    size_t n, cap;
} value_list;

static bool list_push(value_list *l, const json_value *v, char *key)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        json_value *items = realloc(l->items, cap * sizeof *items);
        if (!items) return false;
        l->items = items;
        char **keys = realloc(l->keys, cap * sizeof *keys);
        if (!keys) return false;
        l->keys = keys;
        l->cap = cap;
    }
    l->items[l->n] = *v;
    l->keys[l->n] = key;
    l->n++;
    return true;
}

static loft_code parse_container(parser *p, json_value *out, bool is_object)
{
    if (++p->depth > JSON_MAX_DEPTH) return parse_error(p, "nesting too deep");
    p->s++; /* [ or { */
    value_list l = {0};
    loft_code rc = LOFT_OK;
    char close = is_object ? '}' : ']';
    skip_ws(p);
    if (p->s < p->end && *p->s == close) {
        p->s++;
    } else {
        for (;;) {
            char *key = NULL;
            size_t key_len;
            skip_ws(p);
            if (is_object) {
                if (p->s >= p->end || *p->s != '"') {
                    rc = parse_error(p, "expected a string key");
                    break;
                }
                if ((rc = parse_string(p, &key, &key_len)) != LOFT_OK) break;
                skip_ws(p);
                if (p->s >= p->end || *p->s != ':') {
                    rc = parse_error(p, "expected ':' after a key");
                    break;
                }
                p->s++;
            }
            json_value v;
            if ((rc = parse_value(p, &v)) != LOFT_OK) break;
            if (!list_push(&l, &v, key)) {
                rc = loft_fail(p->st, LOFT_ERR_NOMEM, "%s: out of memory", p->name);
                break;
            }
            skip_ws(p);
            if (p->s < p->end && *p->s == ',') {
                p->s++;
                continue;
            }
            if (p->s < p->end && *p->s == close) {
                p->s++;
                break;
            }
            rc = parse_error(p, is_object ? "expected ',' or '}'" : "expected ',' or ']'");
            break;
        }
    }
    if (rc == LOFT_OK) {
        memset(out, 0, sizeof *out);
        out->kind = is_object ? JSON_OBJECT : JSON_ARRAY;
        out->n = l.n;
        if (l.n) {
            out->items = doc_alloc(p->doc, l.n * sizeof *out->items);
            out->keys = is_object ? doc_alloc(p->doc, l.n * sizeof *out->keys) : NULL;
            if (!out->items || (is_object && !out->keys))
                rc = loft_fail(p->st, LOFT_ERR_NOMEM, "%s: out of memory", p->name);
            else {
                memcpy(out->items, l.items, l.n * sizeof *out->items);
                if (is_object) memcpy(out->keys, l.keys, l.n * sizeof *out->keys);
            }
        }
    }
    free(l.items);
    free(l.keys);
    p->depth--;
    return rc;
}

static loft_code parse_value(parser *p, json_value *out)
{
    skip_ws(p);
    memset(out, 0, sizeof *out);
    if (p->s >= p->end) return parse_error(p, "unexpected end of input");
    switch (*p->s) {
    case '{': return parse_container(p, out, true);
    case '[': return parse_container(p, out, false);
    case '"': out->kind = JSON_STRING; return parse_string(p, &out->str, &out->str_len);
    case 't':
        if (!match_word(p, "true")) break;
        out->kind = JSON_BOOL;
        out->boolean = true;
        return LOFT_OK;
    case 'f':
        if (!match_word(p, "false")) break;
        out->kind = JSON_BOOL;
        return LOFT_OK;
    case 'n':
        if (!match_word(p, "null")) break;
        out->kind = JSON_NULL;
        return LOFT_OK;
    default:
        if (*p->s == '-' || (*p->s >= '0' && *p->s <= '9')) return parse_number(p, out);
    }
    return parse_error(p, "unexpected character");
}

loft_code json_parse(json_doc **out, const char *text, size_t len, const char *name,
                     loft_status *st)
{
    *out = NULL;
    json_doc *doc = calloc(1, sizeof *doc);
    if (!doc) return loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory", name);
    parser p = {text, text, text + len, name, doc, st, 0};
    loft_code rc = parse_value(&p, &doc->root);
    if (rc == LOFT_OK) {
        skip_ws(&p);
        if (p.s != p.end) rc = parse_error(&p, "unexpected text after the JSON value");
    }
    if (rc != LOFT_OK) {
        json_doc_free(doc);
        return rc;
    }
    *out = doc;
    return LOFT_OK;
}

const json_value *json_get(const json_value *v, const char *key)
{
    if (!v || v->kind != JSON_OBJECT) return NULL;
    for (size_t i = 0; i < v->n; i++)
        if (!strcmp(v->keys[i], key)) return &v->items[i];
    return NULL;
}

const char *json_get_str(const json_value *v, const char *key)
{
    const json_value *m = json_get(v, key);
    return m && m->kind == JSON_STRING ? m->str : NULL;
}

/* ---- writer ------------------------------------------------------------- */

void json_write_str(FILE *f, const char *s, size_t len)
{
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (c < 0x20)
                fprintf(f, "\\u%04x", c);
            else
                fputc(c, f);
        }
    }
    fputc('"', f);
}

void json_write_num(FILE *f, double v)
{
    if (isnan(v) || isinf(v))
        fputs("null", f);
    else if (v == (double)(long long)v && fabs(v) < 1e15)
        fprintf(f, "%lld", (long long)v);
    else
        fprintf(f, "%.17g", v);
}
