/*
 * fuzz_adapter.c - libFuzzer target for the LoRA adapter loader
 * (src/train/adapter.c) at inference.
 *
 * Loads the tiny llama of tests/fuzz/seed-model/llama-bpe.gguf once (run
 * from the repository root, as `make fuzz` does). Each input is written to a
 * private temporary file and added to an adapter stack for that model (its
 * shapes, rank and architecture checked); an adapter that is accepted is
 * attached and a 2-token forward runs through it, so every value it holds
 * is read. Seeds: tests/fuzz/seed-adapter/ (make-corrupt-models.py).
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
#include "train/adapter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_BASE_MODEL "tests/fuzz/seed-model/llama-bpe.gguf"

static loft_model *base;
static volatile float sink;

static const char *write_input(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/loft-fuzz-adapter-%d.gguf", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
    return path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    loft_status st;
    if (!base) {
        if (model_load(&base, FUZZ_BASE_MODEL, &st) != LOFT_OK) {
            fprintf(stderr, "fuzz_adapter: %s (run from the repository root)\n", st.msg);
            abort();
        }
        if (model_set_threads(base, 1, &st) != LOFT_OK) abort();
    }
    const char *path = write_input(data, size);
    lora_stack s;
    memset(&s, 0, sizeof s);
    if (lora_stack_add(&s, path, 0.5f, base, &st) == LOFT_OK) {
        if (lora_stack_attach(&s, base, &st) != LOFT_OK) abort();
        const int32_t n_vocab = model_get_hparams(base)->n_vocab;
        kv_cache *kv = NULL;
        if (kv_cache_init(&kv, base, 4, &st) != LOFT_OK) abort();
        int32_t toks[2] = {1, n_vocab - 1};
        float logits[2 * 64];
        if (n_vocab > 64) abort();
        if (model_forward(base, kv, toks, 2, logits, true, &st) != LOFT_OK) abort();
        sink += logits[0];
        kv_cache_free(kv);
        model_set_adapter(base, NULL, NULL);
    }
    lora_stack_free(&s);
    return 0;
}
