/*
 * Tokenizers against llama.cpp: every corpus string on both real models,
 * with and without special-token parsing, ids and detokenized text equal to
 * the reference (tests/golden/tokenizer/, made by
 * scripts/gen-tokenizer-fixtures.py); streaming detokenization; and the
 * loader refusing broken vocabularies.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "test.h"
#include "text/vocab.h"

/* ---- fixtures --------------------------------------------------------- */

typedef struct bytes {
    char *p;
    size_t n;
} bytes;

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c - 'A' + 10;
}

/* The corpus escapes: \n \t \r \\ \xHH. */
static bytes unescape(const char *s, size_t len)
{
    bytes b = {malloc(len + 1), 0};
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\' && i + 1 < len) {
            char e = s[i + 1];
            if (e == 'x' && i + 3 < len) {
                b.p[b.n++] = (char)(hexval(s[i + 2]) * 16 + hexval(s[i + 3]));
                i += 3;
                continue;
            }
            b.p[b.n++] = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
            i++;
            continue;
        }
        b.p[b.n++] = s[i];
    }
    b.p[b.n] = '\0';
    return b;
}

/* Splits buf into lines in place (the last newline ends the last line). */
static size_t split_lines(char *buf, size_t len, char ***lines)
{
    size_t n = 0, cap = 64;
    *lines = malloc(cap * sizeof **lines);
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\n') {
            buf[i] = '\0';
            if (n == cap) {
                cap *= 2;
                *lines = realloc(*lines, cap * sizeof **lines);
            }
            (*lines)[n++] = buf + start;
            start = i + 1;
        }
    }
    return n;
}

typedef struct ref_row {
    int32_t *ids[2];
    size_t n_ids[2];
    bytes detok[2];
} ref_row;

static size_t parse_ids(const char *s, size_t len, int32_t **out)
{
    size_t n = 0;
    *out = malloc((len / 2 + 1) * sizeof **out);
    const char *p = s, *end = s + len;
    while (p < end) {
        char *q;
        long v = strtol(p, &q, 10);
        if (q == p) {
            break;
        }
        (*out)[n++] = (int32_t)v;
        p = q;
        while (p < end && *p == ' ') {
            p++;
        }
    }
    return n;
}

/* One reference line: index, ids, ids, text, text (tab-separated). */
static int parse_row(char *line, ref_row *r)
{
    char *f[5];
    f[0] = line;
    for (int k = 1; k < 5; k++) {
        char *t = strchr(f[k - 1], '\t');
        if (!t) {
            return -1;
        }
        *t = '\0';
        f[k] = t + 1;
    }
    for (int m = 0; m < 2; m++) {
        r->n_ids[m] = parse_ids(f[1 + m], strlen(f[1 + m]), &r->ids[m]);
        r->detok[m] = unescape(f[3 + m], strlen(f[3 + m]));
    }
    return atoi(f[0]);
}

static bool utf8_complete(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t need = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (i + need > n) {
            return false;
        }
        for (size_t k = 1; k < need; k++) {
            if (((unsigned char)s[i + k] & 0xC0) != 0x80) {
                need = 1; /* invalid: passes through byte by byte */
                break;
            }
        }
        i += need;
    }
    return true;
}

/* ---- the corpus against llama.cpp -------------------------------------- */

/* Checks v against a reference file in the models' format; label names
 * the vocabulary in messages. Takes ownership of v. */
static void check_fixture(const char *label, const char *rel, loft_vocab *v)
{
    size_t clen, rlen;
    const char *model = label;
    loft_status st;
    CHECKF(v != NULL, "%s: no vocabulary", label);
    char *corpus = test_read_file(test_data_path("golden/tokenizer/corpus.txt"), &clen);
    CHECKF(corpus != NULL, "cannot read the corpus");
    char *ref = test_read_file(test_data_path(rel), &rlen);
    CHECKF(ref != NULL, "cannot read %s", rel);
    char **cl, **rl;
    size_t n_corpus = split_lines(corpus, clen, &cl);
    size_t n_ref = split_lines(ref, rlen, &rl);
    CHECKF(n_corpus >= 300 && n_corpus == n_ref, "corpus %zu lines, reference %zu", n_corpus,
           n_ref);

    size_t match_ids[2] = {0, 0}, match_text[2] = {0, 0}, roundtrip = 0, ref_roundtrip = 0;
    int shown = 0;
    for (size_t i = 0; i < n_corpus; i++) {
        bytes text = unescape(cl[i], strlen(cl[i]));
        ref_row r;
        int idx = parse_row(rl[i], &r);
        CHECKF(idx == (int)i, "%s: reference line %zu is malformed", rel, i);
        for (int m = 0; m < 2; m++) {
            int32_t *ids = NULL;
            size_t n = 0;
            CHECKF(vocab_tokenize(v, text.p, text.n, true, m == 1, &ids, &n, &st) == LOFT_OK, "%s",
                   st.msg);
            bool same = n == r.n_ids[m] && (n == 0 || memcmp(ids, r.ids[m], n * sizeof *ids) == 0);
            match_ids[m] += same;
            if (!same && shown++ < 8) {
                fprintf(stderr, "  %s line %zu (special %d): '%s'\n    loft:", model, i + 1, m,
                        cl[i]);
                for (size_t k = 0; k < n; k++) {
                    fprintf(stderr, " %d", ids[k]);
                }
                fprintf(stderr, "\n    ref: ");
                for (size_t k = 0; k < r.n_ids[m]; k++) {
                    fprintf(stderr, " %d", r.ids[m][k]);
                }
                fprintf(stderr, "\n");
            }
            /* Detokenize the reference ids, so a tokenizer fault does not
             * hide a detokenizer one. */
            char *out = NULL;
            size_t out_len = 0;
            CHECKF(vocab_detokenize(v, r.ids[m], r.n_ids[m], m == 1, &out, &out_len, &st) ==
                       LOFT_OK,
                   "%s", st.msg);
            bool text_same = out_len == r.detok[m].n && memcmp(out, r.detok[m].p, out_len) == 0;
            match_text[m] += text_same;
            if (!text_same && shown++ < 8) {
                fprintf(stderr, "  %s line %zu detok (special %d): loft '%.*s' ref '%s'\n", model,
                        i + 1, m, (int)out_len, out, r.detok[m].p);
            }
            if (m == 0) {
                /* Where llama.cpp gets the input back from its own ids,
                 * loft must get it back from its own ids too. */
                bool ref_rt = r.detok[0].n == text.n && memcmp(r.detok[0].p, text.p, text.n) == 0;
                char *own = NULL;
                size_t own_len = 0;
                CHECK(vocab_detokenize(v, ids, n, false, &own, &own_len, &st) == LOFT_OK);
                bool rt = own_len == text.n && memcmp(own, text.p, text.n) == 0;
                ref_roundtrip += ref_rt;
                roundtrip += ref_rt && rt;
                free(own);
            }
            free(out);
            free(ids);
            free(r.ids[m]);
            free(r.detok[m].p);
        }
        free(text.p);
    }
    fprintf(stderr,
            "  %s: ids match %zu/%zu (parse_special off), %zu/%zu (on); detokenize match %zu/%zu, "
            "%zu/%zu; round trip %zu/%zu where llama.cpp round-trips\n",
            model, match_ids[0], n_corpus, match_ids[1], n_corpus, match_text[0], n_corpus,
            match_text[1], n_corpus, roundtrip, ref_roundtrip);
    vocab_free(v);
    free(cl);
    free(rl);
    free(corpus);
    free(ref);
    CHECK(match_ids[0] == n_corpus && match_ids[1] == n_corpus);
    CHECK(match_text[0] == n_corpus && match_text[1] == n_corpus);
    CHECK(roundtrip == ref_roundtrip);
}

/* ---- the other pre-tokenizers ------------------------------------------ */

/* A model's vocabulary with one key set to a string (str) or a bool, as
 * scripts/gen-tokenizer-fixtures.py builds it for llama.cpp. */
static loft_vocab *vocab_with(const char *model_file, const char *key, const char *str, bool flag,
                              loft_status *st)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/loft-test-variant-%d.gguf", (int)getpid());
    gguf_file *src = NULL;
    if (gguf_open(&src, test_model_path(model_file), st) != LOFT_OK) {
        return NULL;
    }
    gguf_writer *w = gguf_writer_init(0);
    loft_code rc = w ? LOFT_OK : LOFT_ERR_NOMEM;
    for (uint64_t i = 0; i < src->n_kv && rc == LOFT_OK; i++) {
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)src->kv[i].key.len, src->kv[i].key.data);
        if (strcmp(name, key) != 0) {
            rc = gguf_writer_set_value(w, name, &src->kv[i].value);
        }
    }
    if (rc == LOFT_OK) {
        rc = str ? gguf_writer_set_str(w, key, str) : gguf_writer_set_bool(w, key, flag);
    }
    if (rc == LOFT_OK) {
        rc = gguf_writer_write(w, path, st);
    }
    gguf_writer_free(w);
    gguf_close(src);
    loft_vocab *v = NULL;
    gguf_file *g = NULL;
    if (rc == LOFT_OK && gguf_open(&g, path, st) == LOFT_OK) {
        if (vocab_load(&v, g, st) != LOFT_OK) {
            v = NULL;
        }
        gguf_close(g);
    }
    unlink(path);
    return v;
}

static loft_vocab *smollm_with_pre(const char *pre, loft_status *st)
{
    return vocab_with("smollm2-135m-instruct-q4_1.gguf", "tokenizer.ggml.pre", pre, false, st);
}

static void test_pre_variants(void)
{
    static const char *pres[] = {"gpt-2", "llama3", "qwen2", "default"};
    size_t clen, rlen;
    char *corpus = test_read_file(test_data_path("golden/tokenizer/corpus.txt"), &clen);
    char *ref = test_read_file(test_data_path("golden/tokenizer/pre-variants.tsv"), &rlen);
    CHECK(corpus && ref);
    char **cl, **rl;
    size_t n = split_lines(corpus, clen, &cl);
    CHECK(split_lines(ref, rlen, &rl) == n);
    bool all = true;
    size_t match_text = 0;
    for (size_t p = 0; p < 4; p++) {
        loft_status st;
        loft_vocab *v = smollm_with_pre(pres[p], &st);
        CHECKF(v != NULL, "pre %s: %s", pres[p], st.msg);
        size_t match = 0;
        for (size_t i = 0; i < n; i++) {
            /* column p + 1 of the reference line */
            const char *f = rl[i];
            for (size_t k = 0; k <= p; k++) {
                f = strchr(f, '\t');
                f = f ? f + 1 : "";
            }
            const char *e = strchr(f, '\t');
            int32_t *want = NULL;
            size_t n_want = parse_ids(f, e ? (size_t)(e - f) : strlen(f), &want);
            bytes text = unescape(cl[i], strlen(cl[i]));
            int32_t *ids = NULL;
            size_t n_ids = 0;
            CHECK(vocab_tokenize(v, text.p, text.n, true, false, &ids, &n_ids, &st) == LOFT_OK);
            bool same = n_ids == n_want && (n_ids == 0 || memcmp(ids, want, n_ids * 4) == 0);
            match += same;
            if (!same) {
                fprintf(stderr, "  pre %s line %zu: '%s' differs\n", pres[p], i + 1, cl[i]);
            }
            if (p == 0) {
                /* gpt-2 cleans spaces when detokenizing; the last column
                 * is llama.cpp's text for these ids. */
                const char *t = strrchr(rl[i], '\t') + 1;
                bytes want_text = unescape(t, strlen(t));
                char *out = NULL;
                size_t out_len = 0;
                CHECK(vocab_detokenize(v, want, n_want, false, &out, &out_len, &st) == LOFT_OK);
                bool text_same = out_len == want_text.n && memcmp(out, want_text.p, out_len) == 0;
                match_text += text_same;
                if (!text_same) {
                    fprintf(stderr, "  pre %s line %zu: detok '%s' want '%s'\n", pres[p], i + 1,
                            out, want_text.p);
                }
                free(out);
                free(want_text.p);
            }
            free(ids);
            free(want);
            free(text.p);
        }
        fprintf(stderr, "  pre %s: ids match %zu/%zu\n", pres[p], match, n);
        all = all && match == n;
        vocab_free(v);
    }
    fprintf(stderr, "  pre gpt-2: detokenize (clean_spaces) match %zu/%zu\n", match_text, n);
    free(cl);
    free(rl);
    free(corpus);
    free(ref);
    CHECK(all && match_text == n);
}

/* ---- metadata-driven behaviour ----------------------------------------- */

static loft_vocab *open_vocab(const char *file)
{
    gguf_file *g = NULL;
    loft_status st;
    if (gguf_open(&g, test_model_path(file), &st) != LOFT_OK) {
        fprintf(stderr, "  %s\n", st.msg);
        return NULL;
    }
    loft_vocab *v = NULL;
    if (vocab_load(&v, g, &st) != LOFT_OK) {
        fprintf(stderr, "  %s\n", st.msg);
    }
    gguf_close(g);
    return v;
}

static void test_smollm_corpus(void)
{
    check_fixture("smollm2-135m-instruct-q4_1", "golden/tokenizer/smollm2-135m-instruct-q4_1.tsv",
                  open_vocab("smollm2-135m-instruct-q4_1.gguf"));
}

static void test_gemma_corpus(void)
{
    check_fixture("gemma-3-270m-q4_k_m", "golden/tokenizer/gemma-3-270m-q4_k_m.tsv",
                  open_vocab("gemma-3-270m-q4_k_m.gguf"));
}

/* SentencePiece with the space prefix on (gemma has it off). */
static void test_space_prefix(void)
{
    loft_status st;
    loft_vocab *v =
        vocab_with("gemma-3-270m-q4_k_m.gguf", "tokenizer.ggml.add_space_prefix", NULL, true, &st);
    CHECKF(v != NULL, "%s", st.msg);
    check_fixture("gemma+add_space_prefix", "golden/tokenizer/space-prefix.tsv", v);
}

static void test_special_ids(void)
{
    loft_vocab *s = open_vocab("smollm2-135m-instruct-q4_1.gguf");
    loft_vocab *g = open_vocab("gemma-3-270m-q4_k_m.gguf");
    CHECK(s && g);
    /* smollm: <|endoftext|> 0, <|im_start|> 1, <|im_end|> 2; no BOS added */
    CHECK(vocab_n_tokens(s) == 49152 && vocab_get_kind(s) == VOCAB_KIND_BPE);
    CHECK(vocab_bos(s) == 1 && vocab_eos(s) == 2 && !vocab_adds_bos(s));
    CHECK(vocab_find_token(s, "<|im_end|>") == 2 && vocab_is_eog(s, 2) && vocab_is_eog(s, 0));
    CHECK(!vocab_is_eog(s, 1) && vocab_is_control(s, 1) && vocab_eot(s) == 0);
    /* gemma: <bos> 2 added, <eos> 1, <end_of_turn> 106 ends a turn */
    CHECK(vocab_get_kind(g) == VOCAB_KIND_SPM && vocab_n_tokens(g) == 262144);
    CHECK(vocab_bos(g) == 2 && vocab_eos(g) == 1 && vocab_adds_bos(g) && !vocab_adds_eos(g));
    CHECK(vocab_find_token(g, "<end_of_turn>") == 106 && vocab_eot(g) == 106);
    CHECK(vocab_is_eog(g, 106) && vocab_is_eog(g, 1) && !vocab_is_eog(g, 2));
    CHECK(vocab_find_token(g, "no such token here") == -1);
    /* pieces: control tokens only when asked; byte tokens are their byte */
    char buf[64];
    CHECK(vocab_token_to_piece(g, 106, false, buf, sizeof buf) == 0);
    CHECK(vocab_token_to_piece(g, 106, true, buf, sizeof buf) == 13 &&
          memcmp(buf, "<end_of_turn>", 13) == 0);
    int32_t b41 = vocab_find_token(g, "<0x41>");
    CHECK(b41 >= 0 && vocab_token_to_piece(g, b41, false, buf, sizeof buf) == 1 && buf[0] == 'A');
    /* a piece longer than the buffer reports its full length */
    CHECK(vocab_token_to_piece(g, 106, true, buf, 4) == 13 && memcmp(buf, "<end", 4) == 0);
    vocab_free(s);
    vocab_free(g);
}

/* ---- streaming ---------------------------------------------------------- */

/* Pushes ids one at a time; every chunk must be whole UTF-8 and the chunks
 * together the detokenized text. */
static bool stream_matches(const loft_vocab *v, const int32_t *ids, size_t n)
{
    char *want = NULL;
    size_t want_len = 0;
    loft_status st;
    if (vocab_detokenize(v, ids, n, false, &want, &want_len, &st) != LOFT_OK) {
        return false;
    }
    vocab_stream s;
    vocab_stream_init(&s);
    char *got = malloc(want_len + 16);
    size_t got_len = 0;
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        size_t len;
        const char *chunk = vocab_stream_push(&s, v, ids[i], false, &len);
        ok = chunk != NULL && utf8_complete(chunk, len) && got_len + len <= want_len;
        if (ok) {
            memcpy(got + got_len, chunk, len);
            got_len += len;
        }
    }
    size_t tail;
    const char *rest = vocab_stream_flush(&s, &tail);
    if (ok && got_len + tail <= want_len) {
        memcpy(got + got_len, rest, tail);
        got_len += tail;
    }
    ok = ok && got_len == want_len && memcmp(got, want, want_len) == 0;
    vocab_stream_free(&s);
    free(got);
    free(want);
    return ok;
}

static void test_stream_utf8(void)
{
    loft_vocab *s = open_vocab("smollm2-135m-instruct-q4_1.gguf");
    loft_vocab *g = open_vocab("gemma-3-270m-q4_k_m.gguf");
    CHECK(s && g);
    static const char *texts[] = {"👨‍👩‍👧‍👦 family", "𠜎𠜱𠝹 and 𓀀𓀁", "ภาษาไทย",
                                  "日本語のテキスト", "naïve café 😀😃"};
    loft_status st;
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        for (int m = 0; m < 2; m++) {
            const loft_vocab *v = m ? g : s;
            int32_t *ids = NULL;
            size_t n = 0;
            CHECK(vocab_tokenize(v, texts[t], strlen(texts[t]), false, false, &ids, &n, &st) ==
                  LOFT_OK);
            CHECKF(stream_matches(v, ids, n), "stream of '%s' on model %d", texts[t], m);
            free(ids);
        }
    }
    /* Byte tokens one by one: 😀 is F0 9F 98 80, held back until whole. */
    int32_t bytes4[4];
    static const char *hex[4] = {"<0xF0>", "<0x9F>", "<0x98>", "<0x80>"};
    for (int k = 0; k < 4; k++) {
        bytes4[k] = vocab_find_token(g, hex[k]);
        CHECK(bytes4[k] >= 0);
    }
    vocab_stream str;
    vocab_stream_init(&str);
    size_t len;
    for (int k = 0; k < 3; k++) {
        CHECK(vocab_stream_push(&str, g, bytes4[k], false, &len) != NULL && len == 0);
    }
    const char *c = vocab_stream_push(&str, g, bytes4[3], false, &len);
    CHECK(c && len == 4 && memcmp(c, "\xF0\x9F\x98\x80", 4) == 0);
    /* An incomplete sequence at the end comes out of flush. */
    CHECK(vocab_stream_push(&str, g, bytes4[0], false, &len) != NULL && len == 0);
    c = vocab_stream_flush(&str, &len);
    CHECK(len == 1 && (unsigned char)c[0] == 0xF0);
    vocab_stream_free(&str);
    CHECK(stream_matches(g, bytes4, 4));
    vocab_free(s);
    vocab_free(g);
}

/* ---- random texts round-trip ------------------------------------------- */

/* Random strings glued from awkward fragments: both vocabularies must give
 * back exactly the text, with special parsing on and off (valid UTF-8 only;
 * neither model adds a space prefix or cleans spaces). */
static void test_random_roundtrip(void)
{
    static const char *frags[] = {
        " ",
        "  ",
        "\t",
        "\n",
        "\r\n",
        "a",
        "Z",
        "'s",
        "'LL",
        "0",
        "42",
        "1234",
        ".",
        "!?",
        "é",
        "ß",
        "Ж",
        "λ",
        "中",
        "文",
        "の",
        "ก",
        "ि",
        "ا",
        "😀",
        "\u200d",
        "👍🏽",
        "<",
        ">",
        "|",
        "<|im_start|>",
        "<|im_end|>",
        "<start_of_turn>",
        "<end_of_turn>",
        "<eos>",
        "<unused7>",
        "\n\n\n",
        "\u00a0",
        "\u3000",
        "x",
        "the",
        " the",
        "ing",
    };
    const size_t n_frags = sizeof frags / sizeof frags[0];
    loft_vocab *vs[2] = {open_vocab("smollm2-135m-instruct-q4_1.gguf"),
                         open_vocab("gemma-3-270m-q4_k_m.gguf")};
    CHECK(vs[0] && vs[1]);
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    char text[1024];
    size_t failures = 0;
    for (int iter = 0; iter < 1500; iter++) {
        size_t len = 0;
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        int parts = (int)((rng >> 33) % 24);
        for (int k = 0; k < parts; k++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            const char *f = frags[(rng >> 33) % n_frags];
            size_t fl = strlen(f);
            memcpy(text + len, f, fl);
            len += fl;
        }
        for (int m = 0; m < 4; m++) {
            const loft_vocab *v = vs[m & 1];
            bool special = m >= 2;
            int32_t *ids = NULL;
            size_t n = 0;
            loft_status st;
            CHECK(vocab_tokenize(v, text, len, false, special, &ids, &n, &st) == LOFT_OK);
            char *out = NULL;
            size_t out_len = 0;
            CHECK(vocab_detokenize(v, ids, n, special, &out, &out_len, &st) == LOFT_OK);
            if (out_len != len || memcmp(out, text, len) != 0) {
                if (failures++ < 4) {
                    fprintf(stderr, "  model %d special %d: '%.*s' came back as '%s'\n", m & 1,
                            special, (int)len, text, out);
                }
            }
            free(out);
            free(ids);
        }
    }
    vocab_free(vs[0]);
    vocab_free(vs[1]);
    CHECKF(failures == 0, "%zu texts did not round-trip", failures);
}

/* ---- refusing broken vocabularies --------------------------------------- */

typedef enum fault { FAULT_NONE, FAULT_BOS_RANGE, FAULT_MERGE_MISSING, FAULT_TYPES_SHORT } fault;

/* A tiny gpt2 vocabulary written with the GGUF writer, with one fault. */
static loft_code load_tiny(fault f, loft_vocab **v, loft_status *st)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/loft-test-vocab-%d.gguf", (int)getpid());
    static const char *tokens[] = {"a",
                                   "b",
                                   "ab",
                                   "\xc4\xa0",
                                   "\xc4\xa0"
                                   "ab",
                                   "<s>"};
    int32_t types[] = {1, 1, 1, 1, 1, 3};
    const char *merges_ok[] = {"a b", "\xc4\xa0 ab"};
    const char *merges_bad[] = {"a b", "\xc4\xa0 zz"};
    gguf_writer *w = gguf_writer_init(0);
    if (!w) {
        return LOFT_ERR_NOMEM;
    }
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_set_str(w, "tokenizer.ggml.pre", "gpt-2");
    gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", tokens, 6);
    gguf_writer_set_array(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types,
                          f == FAULT_TYPES_SHORT ? 5 : 6);
    gguf_writer_set_str_array(w, "tokenizer.ggml.merges",
                              f == FAULT_MERGE_MISSING ? merges_bad : merges_ok, 2);
    gguf_writer_set_uint(w, "tokenizer.ggml.bos_token_id", GGUF_TYPE_UINT32,
                         f == FAULT_BOS_RANGE ? 6 : 5);
    gguf_writer_set_uint(w, "tokenizer.ggml.eos_token_id", GGUF_TYPE_UINT32, 5);
    loft_code rc = gguf_writer_write(w, path, st);
    gguf_writer_free(w);
    if (rc != LOFT_OK) {
        return rc;
    }
    gguf_file *g = NULL;
    rc = gguf_open(&g, path, st);
    if (rc == LOFT_OK) {
        rc = vocab_load(v, g, st);
        gguf_close(g);
    }
    unlink(path);
    return rc;
}

static void test_refuses_broken_vocab(void)
{
    loft_vocab *v = NULL;
    loft_status st;
    CHECKF(load_tiny(FAULT_NONE, &v, &st) == LOFT_OK, "%s", st.msg);
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(vocab_tokenize(v, "ab ab<s>", 8, false, true, &ids, &n, &st) == LOFT_OK);
    CHECK(n == 3 && ids[0] == 2 && ids[1] == 4 && ids[2] == 5);
    free(ids);
    vocab_free(v);

    v = NULL;
    CHECK(load_tiny(FAULT_BOS_RANGE, &v, &st) == LOFT_ERR_FORMAT && v == NULL);
    CHECKF(strstr(st.msg, "tokenizer.ggml.bos_token_id") && strstr(st.msg, "out of range"), "%s",
           st.msg);
    CHECK(load_tiny(FAULT_MERGE_MISSING, &v, &st) == LOFT_ERR_FORMAT && v == NULL);
    CHECKF(strstr(st.msg, "tokenizer.ggml.merges[1]") && strstr(st.msg, "missing token"), "%s",
           st.msg);
    CHECK(load_tiny(FAULT_TYPES_SHORT, &v, &st) == LOFT_ERR_FORMAT && v == NULL);
    CHECKF(strstr(st.msg, "tokenizer.ggml.token_type"), "%s", st.msg);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"tokenizer_smollm_corpus", test_smollm_corpus},
        {"tokenizer_gemma_corpus", test_gemma_corpus},
        {"tokenizer_space_prefix", test_space_prefix},
        {"tokenizer_pre_variants", test_pre_variants},
        {"tokenizer_special_ids", test_special_ids},
        {"tokenizer_stream_utf8", test_stream_utf8},
        {"tokenizer_random_roundtrip", test_random_roundtrip},
        {"tokenizer_refuses_broken_vocab", test_refuses_broken_vocab},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
