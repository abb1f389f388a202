/* Holds loft's bert encoder and WordPiece tokenizer (src/model/bert.c,
 * src/text/wordpiece.c) to sentence-transformers running all-MiniLM-L6-v2 on
 * the 200 sentences of tests/golden/embed/sentences.txt: the token ids must
 * equal the Hugging Face tokenizer's on every line, and each embedding must
 * have cosine >= 0.999 with the reference (tests/golden/embed/embeddings.bin
 * and tokens.txt, written by scripts/gen-embed-fixtures.py). Also: bad
 * inputs are refused with a message naming the file or value. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "gguf/gguf.h"
#include "model/bert.h"
#include "quant/quant.h"
#include "test.h"
#include "text/wordpiece.h"

#define N_SENT 200

/* Splits buf in place at '\n' into at most max lines; returns the count. */
static int split_lines(char *buf, size_t len, char **lines, size_t *lens, int max)
{
    int n = 0;
    size_t pos = 0;
    while (pos < len && n < max) {
        char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        lines[n] = buf + pos;
        lens[n] = end - pos;
        buf[end] = '\0';
        n++;
        pos = end + 1;
    }
    return n;
}

static bert_model *load_minilm(void)
{
    loft_status st;
    bert_model *m = NULL;
    if (bert_load(&m, test_model_path("all-minilm-l6-v2.gguf"), &st) != LOFT_OK) {
        fprintf(stderr, "  load: %s\n", st.msg);
        return NULL;
    }
    return m;
}

static void test_tokens_match_hf(void)
{
    size_t slen = 0, tlen = 0;
    char *sent = test_read_file(test_data_path("golden/embed/sentences.txt"), &slen);
    char *toks = test_read_file(test_data_path("golden/embed/tokens.txt"), &tlen);
    bert_model *m = load_minilm();
    int ok = sent && toks && m;
    char *lines[N_SENT + 1], *tl[N_SENT + 1];
    size_t lens[N_SENT + 1], tls[N_SENT + 1];
    int n = ok ? split_lines(sent, slen, lines, lens, N_SENT + 1) : 0;
    int nt = ok ? split_lines(toks, tlen, tl, tls, N_SENT + 1) : 0;
    int agree = 0, first_bad = -1;
    for (int i = 0; ok && i < n && i < nt; i++) {
        int32_t *ids = NULL;
        size_t n_ids = 0;
        loft_status st;
        if (wordpiece_tokenize(bert_get_wordpiece(m), lines[i], lens[i], 256, &ids, &n_ids, &st)) {
            ok = 0;
            break;
        }
        size_t k = 0;
        int same = 1;
        char *p = tl[i];
        while (*p) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p) break;
            if (k >= n_ids || ids[k] != v) same = 0;
            k++;
            p = end;
        }
        if (k != n_ids) same = 0;
        agree += same;
        if (!same && first_bad < 0) {
            first_bad = i;
            fprintf(stderr, "  line %d: %s\n  loft:", i + 1, lines[i]);
            for (size_t j = 0; j < n_ids; j++)
                fprintf(stderr, " %d", ids[j]);
            fprintf(stderr, "\n  hf:   %s\n", tl[i]);
        }
        free(ids);
    }
    printf("  token ids: %d/%d sentences identical to the Hugging Face tokenizer\n", agree, n);
    bert_free(m);
    free(sent);
    free(toks);
    CHECK(ok);
    CHECKF(n == N_SENT && nt == N_SENT, "%d sentences and %d token lines, expected %d", n, nt,
           N_SENT);
    CHECKF(agree == N_SENT, "%d of %d sentences tokenized differently (first: line %d)",
           N_SENT - agree, N_SENT, first_bad + 1);
}

static void test_embeddings_match_st(void)
{
    size_t slen = 0, blen = 0;
    char *sent = test_read_file(test_data_path("golden/embed/sentences.txt"), &slen);
    char *bin = test_read_file(test_data_path("golden/embed/embeddings.bin"), &blen);
    bert_model *m = load_minilm();
    CHECK(sent && bin && m);
    uint32_t n_ref = 0, dim = 0;
    CHECK(blen >= 12 && !memcmp(bin, "LEMB", 4));
    memcpy(&n_ref, bin + 4, 4);
    memcpy(&dim, bin + 8, 4);
    const bert_hparams *hp = bert_get_hparams(m);
    CHECKF(n_ref == N_SENT && (int32_t)dim == hp->n_embd && blen == 12 + (size_t)n_ref * dim * 2,
           "embeddings.bin: %u x %u in %zu bytes", n_ref, dim, blen);
    char *lines[N_SENT + 1];
    size_t lens[N_SENT + 1];
    int n = split_lines(sent, slen, lines, lens, N_SENT + 1);
    CHECK(n == N_SENT);
    float *v = malloc(dim * sizeof *v);
    CHECK(v);
    double min_cos = 2, sum_cos = 0;
    int worst = -1, failed = 0;
    for (int i = 0; i < n; i++) {
        loft_status st;
        if (bert_embed(m, lines[i], lens[i], v, &st)) {
            fprintf(stderr, "  line %d: %s\n", i + 1, st.msg);
            failed = 1;
            break;
        }
        double dot = 0, na = 0, nb = 0;
        for (uint32_t j = 0; j < dim; j++) {
            uint16_t h;
            memcpy(&h, bin + 12 + ((size_t)i * dim + j) * 2, 2);
            double r = loft_f16_to_f32(h);
            dot += r * v[j];
            na += r * r;
            nb += (double)v[j] * v[j];
        }
        double cos = dot / sqrt(na * nb);
        if (!(cos >= min_cos)) {
            min_cos = cos;
            worst = i;
        }
        sum_cos += cos;
    }
    printf("  cosine vs sentence-transformers over %d sentences: min %.6f (line %d) mean %.6f\n", n,
           min_cos, worst + 1, sum_cos / n);
    free(v);
    bert_free(m);
    free(sent);
    free(bin);
    CHECK(!failed);
    CHECKF(min_cos >= 0.999, "line %d has cosine %.6f < 0.999", worst + 1, min_cos);
}

/* Hand-made cases: the similarity structure the metric relies on. */
static void test_embedding_properties(void)
{
    bert_model *m = load_minilm();
    CHECK(m);
    const int32_t C = bert_get_hparams(m)->n_embd;
    float *a = malloc(3 * (size_t)C * sizeof *a);
    CHECK(a);
    float *b = a + C, *c = b + C;
    loft_status st;
    const char *s1 = "A man is playing a guitar.", *s2 = "A person plays the guitar.",
               *s3 = "The stock market fell sharply today.";
    int ok = !bert_embed(m, s1, strlen(s1), a, &st) && !bert_embed(m, s2, strlen(s2), b, &st) &&
             !bert_embed(m, s3, strlen(s3), c, &st);
    double nrm = 0, ab = 0, ac = 0;
    for (int32_t i = 0; ok && i < C; i++) {
        nrm += (double)a[i] * a[i];
        ab += (double)a[i] * b[i];
        ac += (double)a[i] * c[i];
    }
    /* Embedding the same text again gives the same vector bit for bit. */
    int same = ok && !bert_embed(m, s1, strlen(s1), c, &st) && !memcmp(a, c, (size_t)C * 4);
    free(a);
    bert_free(m);
    CHECK(ok);
    CHECKF(fabs(nrm - 1) < 1e-5, "norm^2 %.8f", nrm);
    CHECKF(ab > 0.7 && ac < 0.3, "paraphrase %.3f, unrelated %.3f", ab, ac);
    CHECK(same);
}

static void test_bad_inputs(void)
{
    loft_status st;
    bert_model *m = NULL;
    /* A decoder model is not an encoder. */
    loft_code c = bert_load(&m, test_model_path("smollm2-135m-instruct-q4_1.gguf"), &st);
    CHECKF(c == LOFT_ERR_UNSUPPORTED && m == NULL && strstr(st.msg, "not an encoder") &&
               strstr(st.msg, "smollm2-135m-instruct-q4_1.gguf"),
           "code %d: %s", c, st.msg);
    c = bert_load(&m, "tests/no-such-file.gguf", &st);
    CHECKF(c != LOFT_OK && strstr(st.msg, "no-such-file.gguf"), "%s", st.msg);
    m = load_minilm();
    CHECK(m);
    float v[384];
    int32_t toks[3] = {101, 30522, 102};
    c = bert_encode(m, toks, 3, v, NULL, &st);
    int bad_id = c == LOFT_ERR_RANGE && strstr(st.msg, "30522") != NULL;
    c = bert_encode(m, toks, 0, v, NULL, &st);
    int bad_n = c == LOFT_ERR_RANGE;
    int32_t *many = calloc(600, sizeof *many);
    c = many ? bert_encode(m, many, 600, v, NULL, &st) : LOFT_ERR_NOMEM;
    int too_long = c == LOFT_ERR_RANGE && strstr(st.msg, "600") != NULL;
    free(many);
    /* A text longer than the context is cut to n_ctx tokens, [SEP] last. */
    size_t len = 3000;
    char *text = malloc(len + 1);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    int cut = 0;
    if (text) {
        for (size_t i = 0; i < len; i += 2)
            memcpy(text + i, "a ", 2);
        text[len] = '\0';
        cut = !wordpiece_tokenize(bert_get_wordpiece(m), text, len, 512, &ids, &n_ids, &st) &&
              n_ids == 512 && ids[0] == 101 && ids[511] == 102 && !bert_embed(m, text, len, v, &st);
    }
    free(ids);
    free(text);
    bert_free(m);
    CHECK(bad_id);
    CHECK(bad_n);
    CHECK(too_long);
    CHECK(cut);
}

/* Rewrites the MiniLM file to path with tensor `drop` left out and
 * position_embd.weight cut to 100 rows when cut_pos. */
static loft_code write_variant(const char *path, const char *drop, bool cut_pos, loft_status *st)
{
    gguf_file *g = NULL;
    loft_code c = gguf_open(&g, test_model_path("all-minilm-l6-v2.gguf"), st);
    if (c) return c;
    gguf_writer *w = gguf_writer_init(0);
    if (!w) {
        gguf_close(g);
        return LOFT_ERR_NOMEM;
    }
    char key[256];
    for (uint64_t i = 0; !c && i < g->n_kv; i++) {
        snprintf(key, sizeof key, "%.*s", (int)g->kv[i].key.len, g->kv[i].key.data);
        c = gguf_writer_set_value(w, key, &g->kv[i].value);
    }
    for (uint64_t i = 0; !c && i < g->n_tensors; i++) {
        const gguf_tensor_info *t = &g->tensors[i];
        snprintf(key, sizeof key, "%.*s", (int)t->name.len, t->name.data);
        if (drop && !strcmp(key, drop)) continue;
        int64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        uint64_t nbytes = t->nbytes;
        if (cut_pos && !strcmp(key, "position_embd.weight")) {
            nbytes = nbytes / (uint64_t)ne[1] * 100;
            ne[1] = 100;
        }
        c = gguf_writer_add_tensor(w, key, t->type, t->n_dims, ne, t->data, nbytes);
    }
    if (!c) c = gguf_writer_write(w, path, st);
    gguf_writer_free(w);
    gguf_close(g);
    return c;
}

static void test_corrupt_models(void)
{
    loft_status st;
    bert_model *m = NULL;
    char p1[128], p2[128];
    snprintf(p1, sizeof p1, "/tmp/loft-test-embed-%ld-missing.gguf", (long)getpid());
    snprintf(p2, sizeof p2, "/tmp/loft-test-embed-%ld-shape.gguf", (long)getpid());
    CHECKF(write_variant(p1, "blk.3.ffn_down.weight", false, &st) == LOFT_OK, "%s", st.msg);
    CHECKF(write_variant(p2, NULL, true, &st) == LOFT_OK, "%s", st.msg);
    loft_code c1 = bert_load(&m, p1, &st);
    int missing = c1 == LOFT_ERR_FORMAT && strstr(st.msg, "blk.3.ffn_down.weight") &&
                  strstr(st.msg, "missing") && strstr(st.msg, p1);
    char msg1[LOFT_STATUS_MSG_MAX];
    snprintf(msg1, sizeof msg1, "%s", st.msg);
    loft_code c2 = bert_load(&m, p2, &st);
    int shape = c2 == LOFT_ERR_FORMAT && strstr(st.msg, "position_embd.weight") &&
                strstr(st.msg, "[384, 512]");
    remove(p1);
    remove(p2);
    CHECKF(missing, "%s", msg1);
    CHECKF(shape, "%s", st.msg);
    CHECK(m == NULL);
}

/* `loft embed --json` prints the same vector the library computes. */
static void test_cli_embed(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s embed -m %s -p 'Is aspirin effective?' --json 2>/dev/null",
             test_loft_bin(), test_model_path("all-minilm-l6-v2.gguf"));
    char *out = NULL;
    int rc = test_run(cmd, &out);
    json_doc *doc = NULL;
    loft_status st;
    loft_code c =
        rc == 0 && out ? json_parse(&doc, out, strlen(out), "loft embed --json", &st) : LOFT_ERR_IO;
    free(out);
    CHECKF(rc == 0, "%s: rc %d", test_loft_bin(), rc);
    CHECKF(c == LOFT_OK, "%s", st.msg);
    const json_value *e = json_get(json_doc_root(doc), "embeddings");
    int ok = e && e->kind == JSON_ARRAY && e->n == 1 && e->items[0].n == 384;
    bert_model *m = ok ? load_minilm() : NULL;
    float v[384];
    double maxdiff = 1;
    if (m && !bert_embed(m, "Is aspirin effective?", 21, v, &st)) {
        maxdiff = 0;
        for (int i = 0; i < 384; i++) {
            double d = fabs(e->items[0].items[i].number - v[i]);
            if (d > maxdiff) maxdiff = d;
        }
    }
    bert_free(m);
    json_doc_free(doc);
    CHECK(ok);
    CHECKF(maxdiff < 1e-6, "max difference %g", maxdiff);
    snprintf(cmd, sizeof cmd, "%s embed -m %s -p hi 2>&1", test_loft_bin(),
             test_model_path("smollm2-135m-instruct-q4_1.gguf"));
    rc = test_run(cmd, &out);
    int refused = rc != 0 && out && strstr(out, "not an encoder");
    free(out);
    CHECK(refused);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"tokens_match_hf", test_tokens_match_hf},
        {"embeddings_match_st", test_embeddings_match_st},
        {"embedding_properties", test_embedding_properties},
        {"bad_inputs", test_bad_inputs},
        {"corrupt_models", test_corrupt_models},
        {"cli_embed", test_cli_embed},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
