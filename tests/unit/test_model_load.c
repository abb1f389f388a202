/*
 * Loading (hyperparameters, tensor checks, refusals with the right names),
 * the KV cache and the forward pass's argument checks, on the tiny models
 * of tests/golden/qwen/ and on broken copies of them written here.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "infer/kv.h"
#include "model/model.h"
#include "model/model_impl.h"
#include "quant/quant.h"
#include "test.h"

static const char *tiny(const char *name)
{
    static char rel[128];
    snprintf(rel, sizeof rel, "golden/qwen/%s.gguf", name);
    return test_data_path(rel);
}

/* How write_variant changes the copy. */
typedef struct variant {
    const char *drop_tensor; /* leave this tensor out */
    const char *drop_key;    /* leave this key out */
    const char *arch;        /* set general.architecture */
    const char *half_tensor; /* keep only the first half of this 2-D tensor's rows */
} variant;

/* Copies src to a temporary file with the changes of v; returns its path
 * (static buffer) or NULL. */
static const char *write_variant(const char *src, const variant *v)
{
    static char path[256];
    snprintf(path, sizeof path, "/tmp/loft-test-model-%d.gguf", (int)getpid());
    loft_status st;
    gguf_file *g = NULL;
    if (gguf_open(&g, src, &st) != LOFT_OK) return NULL;
    gguf_writer *w = gguf_writer_init(g->alignment);
    bool ok = w != NULL;
    char name[256];
    for (uint64_t i = 0; ok && i < g->n_kv; i++) {
        const gguf_kv *kv = &g->kv[i];
        snprintf(name, sizeof name, "%.*s", (int)kv->key.len, kv->key.data);
        if (v->drop_key && strcmp(name, v->drop_key) == 0) continue;
        if (v->arch && strcmp(name, "general.architecture") == 0)
            ok = gguf_writer_set_str(w, name, v->arch) == LOFT_OK;
        else
            ok = gguf_writer_set_value(w, name, &kv->value) == LOFT_OK;
    }
    for (uint64_t i = 0; ok && i < g->n_tensors; i++) {
        const gguf_tensor_info *t = &g->tensors[i];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.data);
        if (v->drop_tensor && strcmp(name, v->drop_tensor) == 0) continue;
        int64_t ne[GGUF_MAX_DIMS];
        memcpy(ne, t->ne, sizeof ne);
        uint64_t nbytes = t->nbytes;
        if (v->half_tensor && strcmp(name, v->half_tensor) == 0) {
            ne[1] /= 2;
            nbytes = loft_type_row_size(t->type, ne[0]) * (uint64_t)ne[1];
        }
        ok = gguf_writer_add_tensor(w, name, t->type, t->n_dims, ne, t->data, nbytes) == LOFT_OK;
    }
    ok = ok && gguf_writer_write(w, path, &st) == LOFT_OK;
    gguf_writer_free(w);
    gguf_close(g);
    return ok ? path : NULL;
}

/* Loads a variant of qwen2 and checks the refusal: code and a fragment of
 * the message. */
static bool refuses(const variant *v, loft_code want, const char *fragment)
{
    const char *path = write_variant(tiny("qwen2"), v);
    if (!path) return false;
    loft_status st;
    loft_model *m = (loft_model *)&st; /* must be reset to NULL */
    loft_code c = model_load(&m, path, &st);
    remove(path);
    if (c != want || m != NULL || !strstr(st.msg, fragment)) {
        fprintf(stderr, "    got %d \"%s\", wanted %d with \"%s\"\n", (int)c, st.msg, (int)want,
                fragment);
        return false;
    }
    return true;
}

static void test_hparams_of_tiny_models(void)
{
    loft_status st;
    loft_model *m = NULL;
    CHECKF(model_load(&m, tiny("qwen3"), &st) == LOFT_OK, "%s", st.msg);
    const model_hparams *hp = model_get_hparams(m);
    CHECK(hp->arch == MODEL_ARCH_QWEN3 && strcmp(hp->arch_name, "qwen3") == 0);
    CHECK(hp->n_layer == 2 && hp->n_embd == 64 && hp->n_head == 4 && hp->n_head_kv == 2);
    CHECK(hp->head_dim == 32 && hp->n_rot == 32 && hp->n_ff == 128 && hp->n_vocab == 256);
    CHECK(!hp->tied_output && hp->rope_freq_base == 1000000.0f && hp->sliding_window == 0);
    CHECK(fabsf(hp->attn_scale - 1.0f / sqrtf(32.0f)) < 1e-7f);
    /* The matrices are copied into 2 MiB pages at load (model_pack.c),
     * byte for byte; the embedding table (untied) stays a view into the
     * mapping. */
    const gguf_file *g = model_gguf(m);
    const model_weight *wq = &m->layers[1].wq;
    const void *file_wq = gguf_find_tensor(g, "blk.1.attn_q.weight")->data;
    const bool wq_mapped = (const uint8_t *)wq->data >= g->map &&
                           (const uint8_t *)wq->data < g->map + g->file_size;
    CHECK(!wq_mapped && wq->data != file_wq);
    CHECK(memcmp(wq->data, file_wq, wq->row_bytes * (size_t)wq->n_out) == 0);
    CHECK((const uint8_t *)m->tok_embd.data >= g->map &&
          (const uint8_t *)m->tok_embd.data < g->map + g->file_size);
    model_free(m);

    /* LOFT_MMAP=1: the unpacked matrices stay views into the mapping. */
    setenv("LOFT_MMAP", "1", 1);
    CHECKF(model_load(&m, tiny("qwen3"), &st) == LOFT_OK, "%s", st.msg);
    unsetenv("LOFT_MMAP");
    g = model_gguf(m);
    CHECK(m->layers[1].wq.data == gguf_find_tensor(g, "blk.1.attn_q.weight")->data);
    model_free(m);

    CHECKF(model_load(&m, tiny("gemma3"), &st) == LOFT_OK, "%s", st.msg);
    hp = model_get_hparams(m);
    CHECK(hp->arch == MODEL_ARCH_GEMMA3 && hp->tied_output && hp->sliding_window == 4);
    CHECK(hp->embd_scale == 8.0f && hp->rope_freq_base_swa == 10000.0f);
    CHECK(model_layer_is_swa(m, 0) && !model_layer_is_swa(m, 1) && model_layer_is_swa(m, 2));
    CHECK(!model_layer_is_swa(m, 3) && !model_layer_is_swa(m, -1));
    model_free(m);

    CHECKF(model_load(&m, tiny("llama"), &st) == LOFT_OK, "%s", st.msg);
    CHECK(model_get_hparams(m)->arch == MODEL_ARCH_LLAMA);
    model_free(m);
}

static void test_refusals_name_the_problem(void)
{
    CHECK(refuses(&(variant){.arch = "gpt2"}, LOFT_ERR_UNSUPPORTED,
                  "\"gpt2\" is not supported (known: llama, qwen2, qwen3, gemma3)"));
    CHECK(refuses(&(variant){.drop_tensor = "blk.1.ffn_down.weight"}, LOFT_ERR_FORMAT,
                  "tensor blk.1.ffn_down.weight is missing"));
    CHECK(refuses(&(variant){.drop_tensor = "blk.0.attn_k.bias"}, LOFT_ERR_FORMAT,
                  "tensor blk.0.attn_k.bias is missing"));
    CHECK(refuses(&(variant){.half_tensor = "blk.0.attn_q.weight"}, LOFT_ERR_FORMAT,
                  "tensor blk.0.attn_q.weight has shape [64, 32, 1, 1], expected [64, 64]"));
    CHECK(refuses(&(variant){.drop_key = "qwen2.block_count"}, LOFT_ERR_FORMAT,
                  "required key qwen2.block_count is missing"));
    CHECK(refuses(&(variant){.drop_key = "general.architecture"}, LOFT_ERR_FORMAT,
                  "general.architecture"));
    loft_status st;
    loft_model *m = NULL;
    CHECK(model_load(&m, "/nonexistent/model.gguf", &st) != LOFT_OK && m == NULL);
}

/* On the 8-bit path a reordered float sum can move an activation across an
 * int8 rounding boundary, a step of 1/127 of its block's range, which later
 * layers damp: the logits stay within this share of the largest |logit|
 * (seen: 1.2e-4 on the 75-token gemma3 case). A wrong result (a missed
 * token, a wrong position, a stale cache row) moves them by 1e-1 or more. */
#define REORDER_TOL 1e-3

static double max_rel_diff(const float *a, const float *b, int n)
{
    double d = 0, scale = 0;
    for (int i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs((double)a[i]));
    }
    return scale > 0 ? d / scale : d;
}

static void test_forward_argument_checks(void)
{
    loft_status st;
    loft_model *m = NULL;
    CHECKF(model_load(&m, tiny("qwen2"), &st) == LOFT_OK, "%s", st.msg);
    kv_cache *kv = NULL;
    CHECK(kv_cache_init(&kv, m, 0, &st) == LOFT_ERR_RANGE && kv == NULL);
    CHECK(kv_cache_init_type(&kv, m, 8, LOFT_TYPE_Q8_0, &st) == LOFT_ERR_UNSUPPORTED);
    CHECKF(kv_cache_init(&kv, m, 8, &st) == LOFT_OK, "%s", st.msg);
    CHECK(kv_cache_size(kv) == 8 && kv_cache_used(kv) == 0);
    float logits[256 * 8];
    int32_t toks[8] = {1, 2, 3, 4, 5, 6, 7, 8};

    CHECK(model_forward(m, kv, toks, 5, logits, false, &st) == LOFT_OK);
    CHECK(kv_cache_used(kv) == 5);
    int32_t bad[2] = {7, 256};
    CHECK(model_forward(m, kv, bad, 2, logits, false, &st) == LOFT_ERR_RANGE);
    CHECK(strstr(st.msg, "token 256") != NULL && kv_cache_used(kv) == 5);
    bad[1] = -1;
    CHECK(model_forward(m, kv, bad, 2, logits, false, &st) == LOFT_ERR_RANGE);
    CHECK(model_forward(m, kv, toks, 4, logits, false, &st) == LOFT_ERR_RANGE);
    CHECK(strstr(st.msg, "context overflow") != NULL && kv_cache_used(kv) == 5);
    CHECK(model_forward(m, kv, toks, 0, logits, false, &st) == LOFT_ERR_ARG);
    CHECK(model_forward(m, kv, toks, 3, logits, false, &st) == LOFT_OK && kv_cache_used(kv) == 8);
    CHECK(model_forward(m, kv, toks, 1, logits, false, &st) == LOFT_ERR_RANGE);

    /* Rewinding the cache and replaying gives the same logits: bit for bit on
     * the F32-activation path; on the default path, which follows llama.cpp's
     * summation orders (they depend on the batch shape, as ggml's do), to
     * float reassociation. */
    float first[256], again[256];
    for (int pass = 0; pass < 2; pass++) {
        model_set_f32_activations(m, pass == 0);
        kv_cache_clear(kv);
        CHECK(model_forward(m, kv, toks, 8, logits, true, &st) == LOFT_OK);
        memcpy(first, logits + 7 * 256, sizeof first);
        kv_cache_truncate(kv, 3);
        CHECK(kv_cache_used(kv) == 3);
        CHECK(model_forward(m, kv, toks + 3, 5, again, false, &st) == LOFT_OK);
        if (pass == 0) {
            CHECK(memcmp(first, again, sizeof first) == 0);
        } else {
            double rd = max_rel_diff(first, again, 256);
            CHECKF(rd < REORDER_TOL, "replay differs by %g of the largest logit", rd);
        }
    }

    /* A cache made for another model is refused. */
    loft_model *other = NULL;
    CHECKF(model_load(&other, tiny("qwen3"), &st) == LOFT_OK, "%s", st.msg);
    kv_cache_clear(kv);
    CHECK(model_forward(other, kv, toks, 1, logits, false, &st) == LOFT_ERR_ARG);
    model_free(other);

    /* F16 and F32 caches agree to F16 precision. */
    kv_cache *kv32 = NULL;
    CHECK(kv_cache_init_type(&kv32, m, 8, LOFT_TYPE_F32, &st) == LOFT_OK);
    CHECK(model_forward(m, kv32, toks, 8, again, false, &st) == LOFT_OK);
    double d = 0;
    for (int i = 0; i < 256; i++) d = fmax(d, fabs(first[i] - again[i]));
    CHECKF(d > 0 && d < 1e-2, "F16 vs F32 cache: %g", d);
    kv_cache_free(kv32);
    kv_cache_free(kv);
    model_free(m);
}

/* A batch longer than the forward's chunk gives, row for row, the logits of
 * feeding the same tokens one at a time (same operations, same order). */
static void test_batch_equals_token_by_token(void)
{
    enum { N = 75, V = 256 };
    loft_status st;
    loft_model *m = NULL;
    CHECKF(model_load(&m, tiny("gemma3"), &st) == LOFT_OK, "%s", st.msg);
    kv_cache *kv = NULL;
    CHECKF(kv_cache_init(&kv, m, N, &st) == LOFT_OK, "%s", st.msg);
    int32_t toks[N];
    for (int i = 0; i < N; i++) toks[i] = (i * 37 + 11) % V;
    float *all = malloc(sizeof(float) * N * V), one[V];
    CHECK(all != NULL);
    bool ok = true;
    int mismatches = 0;
    double worst = 0;
    /* pass 0: F32 activations, bit for bit; pass 1: the default path, whose
     * prompt and decode orders differ as llama.cpp's do, to reassociation. */
    for (int pass = 0; ok && pass < 2; pass++) {
        model_set_f32_activations(m, pass == 0);
        kv_cache_clear(kv);
        ok = model_forward(m, kv, toks, N, all, true, &st) == LOFT_OK;
        kv_cache_clear(kv);
        for (int t = 0; ok && t < N; t++) {
            ok = model_forward(m, kv, &toks[t], 1, one, false, &st) == LOFT_OK;
            if (pass == 0)
                mismatches += memcmp(one, all + (size_t)t * V, sizeof one) != 0;
            else
                worst = fmax(worst, max_rel_diff(one, all + (size_t)t * V, V));
        }
    }
    free(all);
    kv_cache_free(kv);
    model_free(m);
    CHECKF(ok, "%s", st.msg);
    CHECKF(mismatches == 0, "F32 path: %d of %d rows differ", mismatches, N);
    CHECKF(worst < REORDER_TOL, "default path: batch vs token by token differ by %g", worst);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"model_hparams_of_tiny_models", test_hparams_of_tiny_models},
        {"model_refusals_name_the_problem", test_refusals_name_the_problem},
        {"model_forward_argument_checks", test_forward_argument_checks},
        {"model_batch_equals_token_by_token", test_batch_equals_token_by_token},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
