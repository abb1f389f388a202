/*
 * scripts/convert-peft-to-gguf.py end to end (fixtures from
 * scripts/gen-peft-convert-fixture.py in tests/golden/peft/): a PEFT LoRA
 * adapter (rank 4, alpha 6, q/k/v/o/gate/up/down and the lm_head) of the
 * tiny random F32 llama in tests/golden/qwen/llama.gguf, converted to GGUF
 * and applied by loft's inference hook, gives PEFT's logits.
 *   - every logit of every position within 1e-3 of PEFT's (F32 weights and
 *     an F32 cache: only the summation order differs);
 *   - the same logits without the adapter are far from PEFT's (the adapter
 *     matters, so a converter that wrote zeros or lost the scale fails);
 *   - the converted file names the base architecture and PEFT's alpha.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "infer/kv.h"
#include "model/model.h"
#include "quant/quant.h"
#include "test.h"
#include "train/adapter.h"

#define MAX_SEQS 4
#define MAX_LEN 32
#define TOL 1e-3

typedef struct peft_fixture {
    int n_vocab, n_seqs;
    int len[MAX_SEQS];
    int32_t tokens[MAX_SEQS][MAX_LEN];
    float *logits[MAX_SEQS]; /* (len, n_vocab) */
} peft_fixture;

static void fixture_free(peft_fixture *f)
{
    for (int i = 0; i < f->n_seqs; i++) free(f->logits[i]);
    memset(f, 0, sizeof *f);
}

/* Reads golden/peft/llama-lora.logits; false on a missing or malformed file. */
static bool fixture_load(peft_fixture *f)
{
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(test_data_path("golden/peft/llama-lora.logits"), "r");
    if (!fp) return false;
    char word[64];
    bool ok = true;
    while (ok && fscanf(fp, "%63s", word) == 1) {
        if (word[0] == '#') {
            int ch;
            while ((ch = fgetc(fp)) != EOF && ch != '\n') {
            }
        } else if (!strcmp(word, "model")) {
            ok = fscanf(fp, "%63s", word) == 1;
        } else if (!strcmp(word, "n_vocab")) {
            ok = fscanf(fp, "%d", &f->n_vocab) == 1 && f->n_vocab > 0 && f->n_vocab <= 4096;
        } else if (!strcmp(word, "seq")) {
            int n = 0, s = f->n_seqs;
            ok = s < MAX_SEQS && f->n_vocab > 0 && fscanf(fp, "%d", &n) == 1 && n > 0 &&
                 n <= MAX_LEN;
            for (int i = 0; ok && i < n; i++) ok = fscanf(fp, "%d", &f->tokens[s][i]) == 1;
            if (ok) f->logits[s] = malloc(sizeof(float) * (size_t)n * (size_t)f->n_vocab);
            ok = ok && f->logits[s] != NULL;
            for (int i = 0; ok && i < n * f->n_vocab; i++)
                ok = fscanf(fp, "%f", &f->logits[s][i]) == 1;
            if (ok) {
                f->len[s] = n;
                f->n_seqs++;
            }
        } else if (!strcmp(word, "end")) {
            break;
        } else {
            ok = false;
        }
    }
    fclose(fp);
    if (!ok || f->n_seqs == 0) fixture_free(f);
    return ok && f->n_seqs > 0;
}

/* Largest |loft - PEFT| over every logit of every sequence, with or without
 * the adapter attached; negative when a forward failed. */
static double worst_diff(loft_model *m, kv_cache *kv, const peft_fixture *f, float *lg)
{
    double worst = 0.0;
    loft_status st;
    for (int s = 0; s < f->n_seqs; s++) {
        kv_cache_clear(kv);
        if (model_forward(m, kv, f->tokens[s], f->len[s], lg, true, &st) != LOFT_OK) {
            fprintf(stderr, "forward: %s\n", st.msg);
            return -1.0;
        }
        for (int i = 0; i < f->len[s] * f->n_vocab; i++)
            worst = fmax(worst, fabs((double)lg[i] - f->logits[s][i]));
    }
    return worst;
}

static void test_converted_adapter_matches_peft(void)
{
    peft_fixture f;
    CHECK(fixture_load(&f));
    loft_status st;
    loft_model *m = NULL;
    CHECKF(model_load(&m, test_data_path("golden/qwen/llama.gguf"), &st) == LOFT_OK, "%s", st.msg);
    CHECK(model_get_hparams(m)->n_vocab == f.n_vocab);
    kv_cache *kv = NULL;
    CHECK(kv_cache_init_type(&kv, m, MAX_LEN, LOFT_TYPE_F32, &st) == LOFT_OK);
    float *lg = malloc(sizeof(float) * MAX_LEN * (size_t)f.n_vocab);
    CHECK(lg);

    const double plain = worst_diff(m, kv, &f, lg);
    lora_stack stack = {0};
    loft_code c = lora_stack_add(&stack, test_data_path("golden/peft/adapter.gguf"), 1.0f, m, &st);
    if (c == LOFT_OK) c = lora_stack_attach(&stack, m, &st);
    const double with = c == LOFT_OK ? worst_diff(m, kv, &f, lg) : -1.0;
    model_set_adapter(m, NULL, NULL);
    const int n_sets = (int)stack.n;
    lora_stack_free(&stack);
    free(lg);
    kv_cache_free(kv);
    model_free(m);
    fixture_free(&f);
    CHECKF(c == LOFT_OK, "adapter: %s", st.msg);
    CHECK(n_sets == 1);
    CHECKF(with >= 0.0 && with <= TOL, "with the converted adapter: max |loft - PEFT| = %g", with);
    CHECKF(plain > 0.5, "without the adapter loft is only %g from PEFT: the fixture tests nothing",
           plain);
}

static void test_converted_metadata(void)
{
    loft_status st;
    gguf_file *g = NULL;
    CHECKF(gguf_open(&g, test_data_path("golden/peft/adapter.gguf"), &st) == LOFT_OK, "%s",
           st.msg);
    gguf_str s;
    double alpha = 0.0;
    const bool arch = gguf_get_str(g, "general.architecture", &s) && gguf_str_eq(s, "llama");
    const bool kind = gguf_get_str(g, "adapter.type", &s) && gguf_str_eq(s, "lora");
    const bool has_alpha = gguf_get_float(g, "adapter.lora.alpha", &alpha);
    /* 2 layers x 7 projections + the output, an A and a B each. */
    const uint64_t n_tensors = g->n_tensors;
    const gguf_tensor_info *qb = gguf_find_tensor(g, "blk.1.attn_q.weight.lora_b");
    const bool qb_ok = qb && qb->type == LOFT_TYPE_F32 && qb->n_dims == 2 && qb->ne[0] == 4 &&
                       qb->ne[1] == 64;
    gguf_close(g);
    CHECK(arch && kind);
    CHECKF(has_alpha && alpha == 6.0, "adapter.lora.alpha = %g, PEFT's lora_alpha is 6", alpha);
    CHECKF(n_tensors == 30, "%llu tensors, expected 30", (unsigned long long)n_tensors);
    CHECK(qb_ok);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"converted_adapter_matches_peft", test_converted_adapter_matches_peft},
        {"converted_metadata", test_converted_metadata},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
