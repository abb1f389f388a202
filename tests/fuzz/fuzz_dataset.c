/*
 * fuzz_dataset.c - libFuzzer target for the JSONL dataset reader
 * (src/train/dataset.c: lines, JSON, the four example shapes, chat
 * templates, tokenization segment by segment, the loss mask, truncation).
 *
 * The first input byte picks the options (vocabulary, template, n_ctx,
 * strict, assistant_loss_only); the rest is written to a private temporary
 * file and read with dataset_load. Every example that comes back must keep
 * the reader's promises: 1 <= n <= n_ctx, ids in the vocabulary, mask[0] = 0
 * and n_loss equal to the bits set. The vocabularies are the tiny BPE and SPM
 * ones of tests/fuzz/seed-model/ (run from the repository root).
 * Run with `make fuzz`.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "text/chat.h"
#include "text/vocab.h"
#include "train/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static loft_vocab *vocabs[2];

static loft_vocab *load_vocab(const char *path)
{
    gguf_file *g = NULL;
    loft_vocab *v = NULL;
    loft_status st;
    if (gguf_open(&g, path, &st) != LOFT_OK || vocab_load(&v, g, &st) != LOFT_OK) {
        fprintf(stderr, "fuzz_dataset: %s (run from the repository root)\n", st.msg);
        abort();
    }
    gguf_close(g);
    return v;
}

static const char *write_input(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/loft-fuzz-dataset-%d.jsonl", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
    return path;
}

static void check_examples(const train_dataset *d, const loft_vocab *v, int32_t n_ctx)
{
    int64_t total = 0, loss = 0;
    for (size_t i = 0; i < d->n; i++) {
        const train_example *ex = &d->ex[i];
        if (ex->n < 1 || ex->n > n_ctx || ex->mask[0] != 0) abort();
        int32_t bits = 0;
        for (int32_t t = 0; t < ex->n; t++) {
            if (ex->tokens[t] < 0 || ex->tokens[t] >= vocab_n_tokens(v)) abort();
            bits += ex->mask[t] != 0;
        }
        if (bits != ex->n_loss || bits == 0) abort();
        total += ex->n;
        loss += ex->n_loss;
    }
    if (total != d->n_tokens || loss != d->n_loss_tokens) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!vocabs[0]) {
        vocabs[0] = load_vocab("tests/fuzz/seed-model/llama-bpe.gguf");
        vocabs[1] = load_vocab("tests/fuzz/seed-model/llama-spm-tied.gguf");
    }
    if (size == 0) return 0;
    const uint8_t opt = data[0];
    const loft_vocab *v = vocabs[opt & 1];
    loft_chat_template tmpl;
    memset(&tmpl, 0, sizeof tmpl);
    tmpl.kind = (loft_chat_kind)((opt >> 1) % LOFT_CHAT_KIND_COUNT);
    if (opt & 0x08) snprintf(tmpl.default_system, sizeof tmpl.default_system, "be brief");
    dataset_opts o = {
        .n_ctx = 2 + (opt >> 4) * 3,
        .assistant_loss_only = (opt & 0x04) != 0,
        .strict = (opt & 0x40) != 0,
    };
    const char *path = write_input(data + 1, size - 1);
    train_dataset d;
    loft_status st;
    if (dataset_load(&d, path, v, (opt & 0x80) ? NULL : &tmpl, &o, &st) != LOFT_OK) {
        if (d.n != 0 || d.ex != NULL) abort();
        return 0;
    }
    check_examples(&d, v, o.n_ctx);
    train_dataset val;
    if (dataset_split_tail(&d, &val, d.n / 2, &st) == LOFT_OK) {
        check_examples(&d, v, o.n_ctx);
        check_examples(&val, v, o.n_ctx);
        dataset_free(&val);
    }
    dataset_free(&d);
    return 0;
}
