/*
 * The forward pass of tiny random qwen2, qwen3, llama and gemma3 models
 * against Hugging Face transformers (F32), from tests/golden/qwen/ (made by
 * scripts/gen-qwen-fixtures.py, converted by scripts/convert-hf-to-gguf.py).
 *
 * Every logit of every position must be within 1e-3 of transformers' (the
 * weights are F32 and loft keeps an F32 cache here, so only summation order
 * differs; logits are of size ~1-5). Each sequence runs twice: as one batch
 * with all logits, and token by token through the cache; both must match.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/kv.h"
#include "model/model.h"
#include "quant/quant.h"
#include "test.h"

#define MAX_SEQS 8
#define MAX_LEN 64
#define TOL 1e-3

typedef struct hf_fixture {
    char model[128];
    int n_vocab;
    int n_seqs;
    int len[MAX_SEQS];
    int32_t tokens[MAX_SEQS][MAX_LEN];
    float *logits[MAX_SEQS]; /* (len, n_vocab) */
} hf_fixture;

static void hf_fixture_free(hf_fixture *f)
{
    for (int i = 0; i < f->n_seqs; i++) free(f->logits[i]);
}

/* Reads tests/golden/qwen/<name>.logits; false on a missing or malformed file. */
static bool hf_fixture_load(hf_fixture *f, const char *name)
{
    char rel[128];
    snprintf(rel, sizeof rel, "golden/qwen/%s.logits", name);
    FILE *fp = fopen(test_data_path(rel), "r");
    memset(f, 0, sizeof *f);
    if (!fp) return false;
    char key[32];
    bool ok = true;
    while (ok && fscanf(fp, "%31s", key) == 1) {
        if (key[0] == '#') {
            int ch;
            while ((ch = fgetc(fp)) != EOF && ch != '\n') {}
        } else if (strcmp(key, "model") == 0) {
            ok = fscanf(fp, "%127s", f->model) == 1;
        } else if (strcmp(key, "n_vocab") == 0) {
            ok = fscanf(fp, "%d", &f->n_vocab) == 1 && f->n_vocab > 0 && f->n_vocab < 100000;
        } else if (strcmp(key, "seq") == 0) {
            ok = f->n_seqs < MAX_SEQS && f->n_vocab > 0;
            int s = f->n_seqs, n = 0;
            ok = ok && fscanf(fp, "%d", &n) == 1 && n > 0 && n <= MAX_LEN;
            if (!ok) break;
            f->len[s] = n;
            f->logits[s] = malloc(sizeof(float) * (size_t)n * (size_t)f->n_vocab);
            f->n_seqs++;
            ok = f->logits[s] != NULL;
            for (int i = 0; ok && i < n; i++) ok = fscanf(fp, "%d", &f->tokens[s][i]) == 1;
            for (int i = 0; ok && i < n * f->n_vocab; i++) ok = fscanf(fp, "%f", &f->logits[s][i]) == 1;
        } else if (strcmp(key, "end") == 0) {
            break;
        } else {
            ok = false;
        }
    }
    fclose(fp);
    return ok && f->n_seqs > 0;
}

static void check_hf_model(const char *name, model_arch arch)
{
    hf_fixture f;
    CHECKF(hf_fixture_load(&f, name), "cannot read golden/qwen/%s.logits", name);
    char rel[192];
    snprintf(rel, sizeof rel, "golden/qwen/%s", f.model);
    loft_status st;
    loft_model *m = NULL;
    loft_code c = model_load(&m, test_data_path(rel), &st);
    if (c != LOFT_OK) hf_fixture_free(&f);
    CHECKF(c == LOFT_OK, "%s", st.msg);
    const model_hparams *hp = model_get_hparams(m);
    kv_cache *kv = NULL;
    c = kv_cache_init_type(&kv, m, MAX_LEN, LOFT_TYPE_F32, &st);
    float *lg = malloc(sizeof(float) * MAX_LEN * (size_t)f.n_vocab);
    double worst_batch = 0, worst_step = 0;
    bool ok = c == LOFT_OK && lg && hp->arch == arch && hp->n_vocab == f.n_vocab;
    for (int s = 0; ok && s < f.n_seqs; s++) {
        const int n = f.len[s];
        kv_cache_clear(kv);
        ok = model_forward(m, kv, f.tokens[s], n, lg, true, &st) == LOFT_OK;
        for (int i = 0; ok && i < n * f.n_vocab; i++)
            worst_batch = fmax(worst_batch, fabs((double)lg[i] - f.logits[s][i]));
        kv_cache_clear(kv);
        for (int t = 0; ok && t < n; t++) {
            ok = model_forward(m, kv, &f.tokens[s][t], 1, lg, false, &st) == LOFT_OK;
            for (int i = 0; ok && i < f.n_vocab; i++)
                worst_step = fmax(worst_step,
                                  fabs((double)lg[i] - f.logits[s][(size_t)t * f.n_vocab + i]));
        }
        ok = ok && kv_cache_used(kv) == n;
    }
    printf("    %s: %d sequences, max |loft - transformers| batch %.2e, token by token %.2e\n",
           name, f.n_seqs, worst_batch, worst_step);
    free(lg);
    kv_cache_free(kv);
    model_free(m);
    hf_fixture_free(&f);
    CHECKF(ok, "%s: %s", name, st.msg);
    CHECKF(worst_batch < TOL && worst_step < TOL, "%s: max abs diff %.2e / %.2e >= %.0e", name,
           worst_batch, worst_step, TOL);
}

static void test_qwen2(void)
{
    check_hf_model("qwen2", MODEL_ARCH_QWEN2);
}

static void test_qwen3(void)
{
    check_hf_model("qwen3", MODEL_ARCH_QWEN3);
}

static void test_llama(void)
{
    check_hf_model("llama", MODEL_ARCH_LLAMA);
}

static void test_gemma3(void)
{
    check_hf_model("gemma3", MODEL_ARCH_GEMMA3);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"model_hf_qwen2", test_qwen2},
        {"model_hf_qwen3", test_qwen3},
        {"model_hf_llama", test_llama},
        {"model_hf_gemma3", test_gemma3},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
