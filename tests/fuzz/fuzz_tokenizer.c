/*
 * fuzz_tokenizer.c - libFuzzer target for the tokenizers.
 *
 * Loads the two test models' vocabularies once (from $LOFT_MODELS or
 * models/, as the tests do; a model that is missing is skipped) and runs
 * every input through tokenize (special parsing on and off), detokenize and
 * the streaming detokenizer. Byte-level BPE is lossless where the vocabulary
 * has a token for every byte of the text (smollm lacks a few control bytes,
 * as in llama.cpp those are dropped), so for smollm such a text must come
 * back exactly when it is valid UTF-8. Run with `make fuzz`.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "text/unicode.h"
#include "text/vocab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static loft_vocab *vocabs[2];
static bool loaded;

static loft_vocab *load(const char *file)
{
    char path[1024];
    const char *dir = getenv("LOFT_MODELS");
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "models", file);
    gguf_file *g = NULL;
    loft_status st;
    loft_vocab *v = NULL;
    if (gguf_open(&g, path, &st) == LOFT_OK) {
        if (vocab_load(&v, g, &st) != LOFT_OK) {
            v = NULL;
        }
        gguf_close(g);
    }
    return v;
}

/* Strict UTF-8 (what byte-level BPE gives back unchanged). */
static bool valid_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t need;
        uint32_t cpt, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            need = 1, cpt = c & 0x1Fu, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            need = 2, cpt = c & 0x0Fu, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            need = 3, cpt = c & 0x07u, min = 0x10000;
        } else {
            return false;
        }
        if (n - i <= need) {
            return false;
        }
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return false;
            }
            cpt = (cpt << 6) | (s[i + k] & 0x3Fu);
        }
        if (cpt < min || cpt > 0x10FFFF || (cpt >= 0xD800 && cpt <= 0xDFFF)) {
            return false;
        }
        i += need + 1;
    }
    return true;
}

/* Whether every byte of s has its own byte-level token in v. */
static bool bytes_covered(const loft_vocab *v, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char u[5] = {0};
        unicode_encode(unicode_byte_cpt(s[i]), u);
        if (vocab_find_token(v, u) < 0) {
            return false;
        }
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!loaded) {
        vocabs[0] = load("smollm2-135m-instruct-q4_1.gguf");
        vocabs[1] = load("gemma-3-270m-q4_k_m.gguf");
        loaded = true;
    }
    const char *text = (const char *)data;
    for (int m = 0; m < 4; m++) {
        const loft_vocab *v = vocabs[m & 1];
        if (!v) {
            continue;
        }
        bool special = m >= 2;
        int32_t *ids = NULL;
        size_t n = 0;
        loft_status st;
        if (vocab_tokenize(v, text, size, true, special, &ids, &n, &st) != LOFT_OK) {
            abort();
        }
        char *out = NULL;
        size_t out_len = 0;
        if (vocab_detokenize(v, ids, n, special, &out, &out_len, &st) != LOFT_OK) {
            abort();
        }
        if ((m & 1) == 0 && !special && valid_utf8(data, size) && bytes_covered(v, data, size) &&
            (out_len != size || memcmp(out, data, size) != 0)) {
            abort();
        }
        vocab_stream s;
        vocab_stream_init(&s);
        size_t total = 0, len;
        for (size_t i = 0; i < n; i++) {
            if (!vocab_stream_push(&s, v, ids[i], special, &len)) {
                abort();
            }
            total += len;
        }
        vocab_stream_flush(&s, &len);
        vocab_stream_free(&s);
        free(out);
        free(ids);
        (void)total;
    }
    return 0;
}
