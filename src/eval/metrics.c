/* metrics.c - label accuracy, confusion, Jaccard, cosine, judge rule. */
#include "eval/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"

/* ---- labels -------------------------------------------------------------- */

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_alnum(unsigned char c)
{
    return is_alpha(c) || (c >= '0' && c <= '9');
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool eq_nocase(const char *a, size_t n, const char *b)
{
    if (strlen(b) != n) return false;
    for (size_t i = 0; i < n; i++)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

void eval_labels_default(eval_labels *l)
{
    memset(l, 0, sizeof *l);
    l->n = 3;
    strcpy(l->names[0], "Yes");
    strcpy(l->names[1], "No");
    strcpy(l->names[2], "Uncertain");
    l->n_alias = 1;
    strcpy(l->alias[0], "maybe");
    l->alias_to[0] = 2;
}

static int label_index(const eval_labels *l, const char *s, size_t n)
{
    for (int i = 0; i < l->n; i++)
        if (eq_nocase(s, n, l->names[i])) return i;
    return -1;
}

static bool valid_name(const char *s, size_t n)
{
    if (n == 0 || n >= EVAL_LABEL_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alpha((unsigned char)s[i])) return false;
    return true;
}

loft_code eval_labels_parse(eval_labels *l, const char *spec, loft_status *st)
{
    memset(l, 0, sizeof *l);
    /* Names first, then aliases, so an alias may name a later label. */
    for (int pass = 0; pass < 2; pass++) {
        const char *p = spec;
        while (*p) {
            const char *end = strchr(p, ',');
            size_t n = end ? (size_t)(end - p) : strlen(p);
            const char *eq = memchr(p, '=', n);
            if (pass == 0 && !eq) {
                if (!valid_name(p, n))
                    return loft_fail(st, LOFT_ERR_ARG,
                                     "labels: '%.*s' is not a name (letters only, 1..%d bytes)",
                                     (int)n, p, EVAL_LABEL_NAME_MAX - 1);
                if (label_index(l, p, n) >= 0)
                    return loft_fail(st, LOFT_ERR_ARG, "labels: '%.*s' is given twice", (int)n, p);
                if (l->n == EVAL_MAX_LABELS)
                    return loft_fail(st, LOFT_ERR_ARG, "labels: more than %d labels",
                                     EVAL_MAX_LABELS);
                memcpy(l->names[l->n], p, n);
                l->names[l->n++][n] = '\0';
            } else if (pass == 1 && eq) {
                size_t an = (size_t)(eq - p), tn = n - an - 1;
                int to = label_index(l, eq + 1, tn);
                if (!valid_name(p, an) || to < 0)
                    return loft_fail(st, LOFT_ERR_ARG,
                                     "labels: alias '%.*s' must be name=LABEL with a label given",
                                     (int)n, p);
                if (l->n_alias == EVAL_MAX_ALIASES)
                    return loft_fail(st, LOFT_ERR_ARG, "labels: more than %d aliases",
                                     EVAL_MAX_ALIASES);
                memcpy(l->alias[l->n_alias], p, an);
                l->alias[l->n_alias][an] = '\0';
                l->alias_to[l->n_alias++] = to;
            }
            p += n;
            if (*p == ',') p++;
        }
    }
    if (l->n < 2)
        return loft_fail(st, LOFT_ERR_ARG, "labels: '%s' gives fewer than 2 labels", spec);
    return LOFT_OK;
}

/* Skips white space, punctuation and markup up to the first letter or
 * digit; returns its offset (len when there is none). */
static size_t skip_to_word(const char *t, size_t len, size_t i)
{
    while (i < len && !is_alnum((unsigned char)t[i]) && (unsigned char)t[i] < 0x80)
        i++;
    return i;
}

/* Length of the word of letters (digits too when digits) at t[i..). */
static size_t word_len(const char *t, size_t len, size_t i, bool digits)
{
    size_t j = i;
    while (j < len && (digits ? is_alnum((unsigned char)t[j]) : is_alpha((unsigned char)t[j])))
        j++;
    return j - i;
}

/* Offset of the first word after an optional leading prefix word (one of
 * prefixes, followed by ':' when colon) has been skipped. */
static size_t first_word(const char *t, size_t len, const char *const *prefixes, bool colon)
{
    size_t i = skip_to_word(t, len, 0);
    size_t n = word_len(t, len, i, false);
    for (int k = 0; prefixes[k]; k++) {
        if (!eq_nocase(t + i, n, prefixes[k])) continue;
        size_t j = i + n;
        while (j < len && (t[j] == ' ' || t[j] == '\t'))
            j++;
        if (colon && (j >= len || t[j] != ':')) break;
        return skip_to_word(t, len, j);
    }
    return i;
}

int eval_label_of(const eval_labels *l, const char *text, size_t len)
{
    static const char *const prefixes[] = {"a", "answer", NULL};
    size_t i = first_word(text, len, prefixes, true);
    size_t n = word_len(text, len, i, false);
    if (n == 0) return -1;
    int k = label_index(l, text + i, n);
    if (k >= 0) return k;
    for (int a = 0; a < l->n_alias; a++)
        if (eq_nocase(text + i, n, l->alias[a])) return l->alias_to[a];
    return -1;
}

/* ---- confusion ----------------------------------------------------------- */

void eval_confusion_init(eval_confusion *c, int n_labels)
{
    memset(c, 0, sizeof *c);
    c->n_labels = n_labels;
}

void eval_confusion_add(eval_confusion *c, int truth, int pred)
{
    int col = pred < 0 || pred >= c->n_labels ? c->n_labels : pred;
    c->confusion[truth][col]++;
    c->total++;
    if (pred == truth) c->correct++;
}

double eval_accuracy(const eval_confusion *c)
{
    return c->total ? (double)c->correct / (double)c->total : 0.0;
}

double eval_precision(const eval_confusion *c, int k)
{
    int64_t predicted = 0;
    for (int t = 0; t < c->n_labels; t++)
        predicted += c->confusion[t][k];
    return predicted ? (double)c->confusion[k][k] / (double)predicted : NAN;
}

double eval_recall(const eval_confusion *c, int k)
{
    int64_t actual = 0;
    for (int p = 0; p <= c->n_labels; p++)
        actual += c->confusion[k][p];
    return actual ? (double)c->confusion[k][k] / (double)actual : NAN;
}

/* ---- similarity ---------------------------------------------------------- */

typedef struct word_span {
    const char *s;
    size_t n;
} word_span;

static bool word_byte(unsigned char c)
{
    return is_alnum(c) || c >= 0x80;
}

/* The words of t, lowercased into buf (len bytes), sorted and unique. */
static size_t collect_words(const char *t, size_t len, char *buf, word_span *w)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        buf[i] = lower(t[i]);
    for (size_t i = 0; i < len;) {
        if (!word_byte((unsigned char)buf[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && word_byte((unsigned char)buf[j]))
            j++;
        w[n++] = (word_span){buf + i, j - i};
        i = j;
    }
    return n;
}

static int cmp_span(const void *pa, const void *pb)
{
    const word_span *a = pa, *b = pb;
    size_t n = a->n < b->n ? a->n : b->n;
    int c = memcmp(a->s, b->s, n);
    if (c) return c;
    return a->n < b->n ? -1 : a->n > b->n;
}

static size_t unique_words(word_span *w, size_t n)
{
    if (n == 0) return 0;
    qsort(w, n, sizeof *w, cmp_span);
    size_t k = 1;
    for (size_t i = 1; i < n; i++)
        if (cmp_span(&w[i], &w[k - 1])) w[k++] = w[i];
    return k;
}

double eval_jaccard(const char *a, size_t a_len, const char *b, size_t b_len)
{
    /* At most one word per two bytes (+1). */
    size_t wa_max = a_len / 2 + 1, wb_max = b_len / 2 + 1;
    char *buf = malloc(a_len + b_len + 1);
    word_span *wa = malloc((wa_max + wb_max) * sizeof *wa);
    if (!buf || !wa) {
        free(buf);
        free(wa);
        return -1;
    }
    word_span *wb = wa + wa_max;
    size_t na = unique_words(wa, collect_words(a, a_len, buf, wa));
    size_t nb = unique_words(wb, collect_words(b, b_len, buf + a_len, wb));
    size_t inter = 0, i = 0, j = 0;
    while (i < na && j < nb) {
        int c = cmp_span(&wa[i], &wb[j]);
        if (c == 0) {
            inter++;
            i++;
            j++;
        } else if (c < 0) {
            i++;
        } else {
            j++;
        }
    }
    size_t uni = na + nb - inter;
    free(buf);
    free(wa);
    return uni ? (double)inter / (double)uni : 1.0;
}

double eval_cosine(const float *a, const float *b, size_t n)
{
    double dot = 0, na = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        dot += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    return na > 0 && nb > 0 ? dot / sqrt(na * nb) : 0.0;
}

/* ---- judge --------------------------------------------------------------- */

eval_verdict eval_judge_combine(int v_ab, int v_ba)
{
    if (v_ab == 1 && v_ba == 2) return EVAL_A;
    if (v_ab == 2 && v_ba == 1) return EVAL_B;
    return EVAL_TIE;
}

int eval_judge_parse(const char *text, size_t len)
{
    static const char *const prefixes[] = {"answer", "response", NULL};
    size_t i = first_word(text, len, prefixes, false);
    size_t n = word_len(text, len, i, true);
    if (eq_nocase(text + i, n, "1") || eq_nocase(text + i, n, "first")) return 1;
    if (eq_nocase(text + i, n, "2") || eq_nocase(text + i, n, "second")) return 2;
    return 0;
}
