/* Holds loft's perplexity (src/eval/perplexity.c) to llama.cpp's on the same
 * text and chunking: tests/golden/ppl/reference.txt was written by
 * scripts/gen-ppl-fixture.py through llama-cpp-python (one token per
 * micro-batch: llama.cpp's matrix-vector path; see the script for why). The
 * ratio must be within 0.5%, and tokens, chunks and scored positions must
 * match exactly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/perplexity.h"
#include "model/model.h"
#include "test.h"
#include "text/vocab.h"

typedef struct ppl_ref {
    char model[128];
    int n_ctx;
    long long n_tokens;
    int n_chunks;
    long long n_scored;
    double ppl, ppl_err;
    double ppl_batched; /* llama.cpp's matrix-matrix path, for information */
} ppl_ref;

static int read_ref(const char *model, ppl_ref *r)
{
    FILE *f = fopen(test_data_path("golden/ppl/reference.txt"), "r");
    if (!f) return 0;
    int found = 0;
    while (!found &&
           fscanf(f, "%127s %d %lld %d %lld %lf %lf %lf", r->model, &r->n_ctx, &r->n_tokens,
                  &r->n_chunks, &r->n_scored, &r->ppl, &r->ppl_err, &r->ppl_batched) == 8)
        found = !strcmp(r->model, model);
    fclose(f);
    return found;
}

static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n > 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    *len = buf ? (size_t)n : 0;
    return buf;
}

static void progress(void *user, int32_t chunk, double running)
{
    int *calls = user;
    (*calls)++;
    fprintf(stderr, "    [%d]%.4f\n", chunk, running);
}

static void check_model(const char *file)
{
    ppl_ref ref;
    CHECKF(read_ref(file, &ref), "no reference line for %s", file);
    size_t len;
    char *text = read_text(test_data_path("golden/ppl/text.txt"), &len);
    CHECK(text != NULL);
    loft_status st;
    loft_model *m = NULL;
    loft_vocab *v = NULL;
    if (model_load(&m, test_model_path(file), &st) != LOFT_OK ||
        vocab_load(&v, model_gguf(m), &st) != LOFT_OK) {
        free(text);
        vocab_free(v);
        model_free(m);
        CHECKF(0, "%s", st.msg);
    }
    model_set_f32_activations(m, true);
    loft_ppl_params p = {ref.n_ctx, ref.n_ctx, 0};
    loft_ppl_result res;
    int calls = 0;
    loft_code rc = loft_perplexity_text(m, v, text, len, &p, progress, &calls, &res, &st);
    free(text);
    vocab_free(v);
    model_free(m);
    CHECKF(rc == LOFT_OK, "%s", st.msg);
    CHECKF(res.n_tokens == ref.n_tokens, "tokens %lld, llama.cpp %lld", (long long)res.n_tokens,
           ref.n_tokens);
    CHECK(res.n_chunks == ref.n_chunks && calls == ref.n_chunks);
    CHECK(res.n_scored == ref.n_scored);
    double ratio = res.ppl / ref.ppl;
    fprintf(stderr,
            "    %s: loft PPL %.4f +/- %.4f, llama.cpp %.4f +/- %.4f, ratio %.5f (llama.cpp "
            "batched path %.4f, ratio %.5f)\n",
            file, res.ppl, res.ppl_err, ref.ppl, ref.ppl_err, ratio, ref.ppl_batched,
            res.ppl / ref.ppl_batched);
    CHECKF(fabs(ratio - 1.0) < 0.005, "ratio %.5f", ratio);
    CHECKF(fabs(res.ppl_err / ref.ppl_err - 1.0) < 0.05, "error %.5f vs %.5f", res.ppl_err,
           ref.ppl_err);
}

static void test_smollm2(void)
{
    check_model("smollm2-135m-instruct-q4_1.gguf");
}

static void test_gemma3(void)
{
    check_model("gemma-3-270m-q4_k_m.gguf");
}

static void test_short_text_refused(void)
{
    loft_status st;
    loft_model *m = NULL;
    loft_vocab *v = NULL;
    CHECKF(model_load(&m, test_model_path("smollm2-135m-instruct-q4_1.gguf"), &st) == LOFT_OK, "%s",
           st.msg);
    CHECKF(vocab_load(&v, model_gguf(m), &st) == LOFT_OK, "%s", st.msg);
    const char *text = "Far too short for a context of 128 tokens.";
    loft_ppl_params p = {128, 128, 0};
    loft_ppl_result res;
    loft_code rc = loft_perplexity_text(m, v, text, strlen(text), &p, NULL, NULL, &res, &st);
    vocab_free(v);
    model_free(m);
    CHECK(rc == LOFT_ERR_RANGE);
    CHECK(strstr(st.msg, "256") != NULL);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"perplexity_smollm2_matches_llama_cpp", test_smollm2},
        {"perplexity_gemma3_matches_llama_cpp", test_gemma3},
        {"perplexity_short_text_refused", test_short_text_refused},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
