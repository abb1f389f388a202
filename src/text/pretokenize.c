/*
 * pretokenize.c - regex pre-tokenizers as hand-written matchers.
 *
 * llama.cpp runs a vocabulary's regexes one after another: the first splits
 * the whole text into pieces, each later one splits every piece again, and
 * the text between matches is kept as pieces of its own. The GPT-2, Llama-3
 * and Qwen-2 expressions have hand-coded matchers there (the behaviour the
 * reference tokenizer actually has, including where it differs from a true
 * regex engine); the small class expressions run through std::regex. The
 * matchers below reproduce both, piece for piece.
 */
#include "text/pretokenize.h"

#include <stdbool.h>
#include <stdlib.h>

#include "text/unicode.h"

#define OUT_OF_RANGE 0xFFFFFFFFu

void pretok_words_free(pretok_words *w)
{
    free(w->len);
    w->len = NULL;
    w->n = w->cap = 0;
}

static bool words_push(pretok_words *w, size_t len)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof *w->len) {
            return false;
        }
        size_t *p = realloc(w->len, cap * sizeof *p);
        if (!p) {
            return false;
        }
        w->len = p;
        w->cap = cap;
    }
    w->len[w->n++] = len;
    return true;
}

/* ---- one piece being split ------------------------------------------- */

typedef struct piece {
    const uint32_t *cpts;
    size_t ini, end; /* the piece is cpts[ini, end) */
    size_t prev_end; /* end of the last word emitted */
    pretok_words *out;
    bool oom;
} piece;

static uint32_t cpt_at(const piece *p, size_t pos)
{
    return (pos >= p->ini && pos < p->end) ? p->cpts[pos] : OUT_OF_RANGE;
}

/* 0 outside the piece: "no class at all", unlike any real code point. */
static uint16_t flags_at(const piece *p, size_t pos)
{
    return (pos >= p->ini && pos < p->end) ? unicode_flags(p->cpts[pos]) : 0;
}

/* Ends the current word at end; returns its length (0 adds nothing). */
static size_t emit(piece *p, size_t end)
{
    size_t len = end - p->prev_end;
    if (len > 0 && !words_push(p->out, len)) {
        p->oom = true;
    }
    p->prev_end = end;
    return len;
}

static bool is_l(uint16_t f)
{
    return (f & UNICODE_LETTER) != 0;
}
static bool is_n(uint16_t f)
{
    return (f & UNICODE_NUMBER) != 0;
}
static bool is_ws(uint16_t f)
{
    return (f & UNICODE_WHITESPACE) != 0;
}
/* [^\s\p{L}\p{N}] for a position inside the piece. */
static bool is_other(uint16_t f)
{
    return !(is_ws(f) || is_l(f) || is_n(f)) && f != 0;
}

/* 's 't 're 've 'm 'll 'd at pos (ASCII lowercase, or any case when
 * fold); returns the match length or 0. */
static size_t match_contraction(const piece *p, size_t pos, bool fold)
{
    if (p->cpts[pos] != '\'' || pos + 1 >= p->end) {
        return 0;
    }
    uint32_t c1 = cpt_at(p, pos + 1);
    if (fold) {
        c1 = unicode_tolower(c1);
    }
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
        return 2;
    }
    if (pos + 2 < p->end) {
        uint32_t c2 = cpt_at(p, pos + 2);
        if (fold) {
            c2 = unicode_tolower(c2);
        }
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
            return 3;
        }
    }
    return 0;
}

/* ---- GPT-2 ------------------------------------------------------------ */

static void split_gpt2(piece *p)
{
    size_t pos = p->ini;
    while (pos < p->end) {
        uint32_t cpt = p->cpts[pos];
        uint16_t flags = flags_at(p, pos);

        size_t c = match_contraction(p, pos, false);
        if (c) {
            pos += emit(p, pos + c);
            continue;
        }
        /* " ?X+" for X in letters, numbers, others. */
        uint16_t f2 = cpt == ' ' ? flags_at(p, pos + 1) : flags;
        if (is_l(f2) || is_n(f2) || is_other(f2)) {
            bool (*in_class)(uint16_t) = is_l(f2) ? is_l : is_n(f2) ? is_n : is_other;
            pos += (cpt == ' ');
            while (in_class(f2)) {
                f2 = flags_at(p, ++pos);
            }
            emit(p, pos);
            continue;
        }
        size_t n_ws = 0;
        while (is_ws(flags_at(p, pos + n_ws))) {
            n_ws++;
        }
        if (n_ws > 1 && cpt_at(p, pos + n_ws) != OUT_OF_RANGE) {
            /* \s+(?!\S): leave the last blank to lead the next word */
            pos += n_ws - 1;
            emit(p, pos);
            continue;
        }
        if (n_ws > 0) {
            pos += n_ws;
            emit(p, pos);
            continue;
        }
        emit(p, ++pos);
    }
}

/* ---- Llama-3 / Qwen-2 ------------------------------------------------- */

static void split_llama3(piece *p, size_t max_digits)
{
    size_t pos = p->ini;
    while (pos < p->end) {
        uint32_t cpt = p->cpts[pos];
        uint16_t flags = flags_at(p, pos);

        size_t c = match_contraction(p, pos, true);
        if (c) {
            pos += emit(p, pos + c);
            continue;
        }
        /* [^\r\n\p{L}\p{N}]?\p{L}+ */
        if (!(cpt == '\r' || cpt == '\n' || is_n(flags))) {
            if (is_l(flags) || is_l(flags_at(p, pos + 1))) {
                pos++;
                while (is_l(flags_at(p, pos))) {
                    pos++;
                }
                emit(p, pos);
                continue;
            }
        }
        /* \p{N}{1,max_digits} */
        if (is_n(flags)) {
            size_t ini = pos;
            while (is_n(flags_at(p, pos))) {
                if (++pos - ini >= max_digits) {
                    emit(p, pos);
                    ini = pos;
                }
            }
            emit(p, pos);
            continue;
        }
        /* " ?[^\s\p{L}\p{N}]+[\r\n]*"; the reference tests the class of the
         * first code point itself here, not of the one after a space. */
        uint16_t f2 = cpt == ' ' ? flags_at(p, pos + 1) : flags;
        if (!(is_ws(f2) || is_l(f2) || is_n(f2)) && flags != 0) {
            pos += (cpt == ' ');
            while (is_other(f2)) {
                f2 = flags_at(p, ++pos);
            }
            uint32_t c2 = cpt_at(p, pos);
            while (c2 == '\r' || c2 == '\n') {
                c2 = cpt_at(p, ++pos);
            }
            emit(p, pos);
            continue;
        }
        size_t n_ws = 0, last_rn_end = 0;
        while (is_ws(flags_at(p, pos + n_ws))) {
            uint32_t c2 = cpt_at(p, pos + n_ws);
            if (c2 == '\r' || c2 == '\n') {
                last_rn_end = pos + n_ws + 1;
            }
            n_ws++;
        }
        if (last_rn_end > 0) { /* \s*[\r\n]+ */
            pos = last_rn_end;
            emit(p, pos);
            continue;
        }
        if (n_ws > 1 && cpt_at(p, pos + n_ws) != OUT_OF_RANGE) {
            pos += n_ws - 1;
            emit(p, pos);
            continue;
        }
        if (n_ws > 0) {
            pos += n_ws;
            emit(p, pos);
            continue;
        }
        emit(p, ++pos);
    }
}

/* ---- class expressions ------------------------------------------------ */

/* The reference matches these on a "collapsed" text where each code point
 * above 127 stands for its class (whitespace first), so an ASCII list and a
 * class test together decide membership. */

/* [\p{P}\$\+<=>\^~\|] : ASCII punctuation except '`', plus $+<=>^|~. */
static bool in_punct_set(uint32_t c)
{
    if (c < 128) {
        return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x5E) ||
               c == '_' || (c >= 0x7B && c <= 0x7E);
    }
    uint16_t f = unicode_flags(c);
    return !is_ws(f) && (f & 0xFF) == UNICODE_PUNCT;
}

/* \p{N} */
static bool in_number_set(uint32_t c)
{
    if (c < 128) {
        return c >= '0' && c <= '9';
    }
    uint16_t f = unicode_flags(c);
    return !is_ws(f) && (f & 0xFF) == UNICODE_NUMBER;
}

static bool is_ascii_digit(uint32_t c)
{
    return c >= '0' && c <= '9';
}

typedef enum class_rule {
    RULE_RUN,    /* maximal runs of the class are words */
    RULE_SINGLE, /* every member alone is a word */
    RULE_TRIPLE, /* [0-9][0-9][0-9], leftmost first */
} class_rule;

static void split_class(piece *p, bool (*in_set)(uint32_t), class_rule rule)
{
    size_t pos = p->ini;
    while (pos < p->end) {
        if (rule == RULE_TRIPLE) {
            if (pos + 3 <= p->end && is_ascii_digit(p->cpts[pos]) &&
                is_ascii_digit(p->cpts[pos + 1]) && is_ascii_digit(p->cpts[pos + 2])) {
                emit(p, pos);
                pos += 3;
                emit(p, pos);
            } else {
                pos++;
            }
            continue;
        }
        if (!in_set(p->cpts[pos])) {
            pos++;
            continue;
        }
        emit(p, pos);
        pos++;
        if (rule == RULE_RUN) {
            while (pos < p->end && in_set(p->cpts[pos])) {
                pos++;
            }
        }
        emit(p, pos);
    }
    emit(p, p->end);
}

/* ---- passes ----------------------------------------------------------- */

typedef enum pass_kind {
    PASS_GPT2,
    PASS_LLAMA3,
    PASS_QWEN2,
    PASS_PUNCT_RUN,
    PASS_NUMBER_RUN,
    PASS_NUMBER_SINGLE,
    PASS_DIGIT_TRIPLE,
} pass_kind;

/* Splits every piece listed in `in` by one expression into `out`. */
static loft_code run_pass(pass_kind kind, const uint32_t *cpts, const pretok_words *in,
                          pretok_words *out)
{
    out->n = 0;
    size_t start = 0;
    for (size_t i = 0; i < in->n; i++) {
        piece p = {cpts, start, start + in->len[i], start, out, false};
        start += in->len[i];
        switch (kind) {
        case PASS_GPT2:
            split_gpt2(&p);
            break;
        case PASS_LLAMA3:
            split_llama3(&p, 3);
            break;
        case PASS_QWEN2:
            split_llama3(&p, 1);
            break;
        case PASS_PUNCT_RUN:
            split_class(&p, in_punct_set, RULE_RUN);
            break;
        case PASS_NUMBER_RUN:
            split_class(&p, in_number_set, RULE_RUN);
            break;
        case PASS_NUMBER_SINGLE:
            split_class(&p, in_number_set, RULE_SINGLE);
            break;
        case PASS_DIGIT_TRIPLE:
            split_class(&p, NULL, RULE_TRIPLE);
            break;
        }
        if (p.oom) {
            return LOFT_ERR_NOMEM;
        }
    }
    return LOFT_OK;
}

loft_code pretokenize(pretok_kind kind, const uint32_t *cpts, size_t n, pretok_words *out)
{
    static const pass_kind default_passes[] = {PASS_PUNCT_RUN, PASS_GPT2, PASS_NUMBER_RUN,
                                               PASS_DIGIT_TRIPLE};
    static const pass_kind gpt2_passes[] = {PASS_GPT2};
    static const pass_kind smollm_passes[] = {PASS_NUMBER_SINGLE, PASS_GPT2};
    static const pass_kind llama3_passes[] = {PASS_LLAMA3};
    static const pass_kind qwen2_passes[] = {PASS_QWEN2};
    const pass_kind *passes = default_passes;
    size_t n_passes = 4;
    switch (kind) {
    case PRETOK_DEFAULT:
        break;
    case PRETOK_GPT2:
        passes = gpt2_passes;
        n_passes = 1;
        break;
    case PRETOK_SMOLLM:
        passes = smollm_passes;
        n_passes = 2;
        break;
    case PRETOK_LLAMA3:
        passes = llama3_passes;
        n_passes = 1;
        break;
    case PRETOK_QWEN2:
        passes = qwen2_passes;
        n_passes = 1;
        break;
    }

    out->n = 0;
    if (n == 0) {
        return LOFT_OK;
    }
    pretok_words a = {0}, b = {0};
    loft_code rc = LOFT_ERR_NOMEM;
    if (!words_push(&a, n)) {
        goto done;
    }
    for (size_t k = 0; k < n_passes; k++) {
        rc = run_pass(passes[k], cpts, &a, &b);
        if (rc != LOFT_OK) {
            goto done;
        }
        pretok_words t = a;
        a = b;
        b = t;
    }
    pretok_words_free(out);
    *out = a;
    a.len = NULL;
    rc = LOFT_OK;
done:
    pretok_words_free(&a);
    pretok_words_free(&b);
    return rc;
}
