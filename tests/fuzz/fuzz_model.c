/*
 * fuzz_model.c - libFuzzer target for the model loader on top of the GGUF
 * reader (hyperparameters, tensor shapes and types, the tokenizer tables).
 *
 * The input is written to a private temporary file (model_load takes a
 * path) and loaded. When the model loads, a 2-token forward runs in a small
 * cache (the first and last token ids), so every view the loader accepted
 * is read by the forward pass, and the vocabulary in the same file (when
 * there is one) tokenizes and detokenizes a short text. Seeds: the tiny
 * models of tests/fuzz/seed-model/ (tests/corrupt/make-corrupt-models.py).
 * Run with `make fuzz`.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "infer/kv.h"
#include "model/model.h"
#include "text/vocab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile float sink;

/* Writes data to a per-process file; returns its path (static). */
static const char *write_input(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/loft-fuzz-model-%d.gguf", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
    return path;
}

static void run_vocab(const loft_model *m)
{
    loft_vocab *v = NULL;
    loft_status st;
    if (vocab_load(&v, model_gguf(m), &st) != LOFT_OK) return;
    static const char text[] = "abcd a\nab <|im_start|>e";
    int32_t *ids = NULL;
    size_t n = 0;
    if (vocab_tokenize(v, text, sizeof text - 1, true, true, &ids, &n, &st) == LOFT_OK) {
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= vocab_n_tokens(v)) abort();
        char *out = NULL;
        size_t len = 0;
        if (vocab_detokenize(v, ids, n, true, &out, &len, &st) == LOFT_OK) free(out);
        free(ids);
    }
    vocab_free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = write_input(data, size);
    loft_model *m = NULL;
    loft_status st;
    if (model_load(&m, path, &st) != LOFT_OK) {
        if (m) abort();
        return 0;
    }
    if (model_set_threads(m, 1, &st) != LOFT_OK) abort();
    const model_hparams *hp = model_get_hparams(m);
    kv_cache *kv = NULL;
    if (kv_cache_init(&kv, m, 4, &st) == LOFT_OK) {
        int32_t toks[2] = {0, hp->n_vocab - 1};
        float *logits = malloc(2 * (size_t)hp->n_vocab * sizeof(float));
        if (!logits) abort();
        if (model_forward(m, kv, toks, 2, logits, true, &st) != LOFT_OK) abort();
        sink += logits[0] + logits[2 * (size_t)hp->n_vocab - 1];
        free(logits);
        kv_cache_free(kv);
    }
    run_vocab(m);
    model_free(m);
    return 0;
}
