/*
 * fuzz_gguf.c - libFuzzer target for the GGUF reader.
 *
 * Parses the input with gguf_open_memory and, when it is accepted, walks
 * every key-value pair (nested arrays included) and every tensor through
 * the getters, touching the first and last byte of each tensor's data, so
 * that any view the parser hands out that reaches outside the input is
 * caught by AddressSanitizer. Run with `make fuzz`.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

static void touch(const void *p, uint64_t n)
{
    if (n == 0) return;
    const volatile uint8_t *b = p;
    sink += b[0] + b[n - 1];
}

static void walk_array(const gguf_array *a)
{
    for (uint64_t i = 0; i < a->count; i++) {
        if (a->elem_type == GGUF_TYPE_STRING) {
            touch(a->strs[i].data, a->strs[i].len);
        } else if (a->elem_type == GGUF_TYPE_ARRAY) {
            walk_array(&a->items[i].v.arr);
        } else {
            sink += (uint64_t)gguf_array_get_int(a, i);
            double d = gguf_array_get_float(a, i);
            sink += d == d;
        }
    }
}

static void walk(const gguf_file *g)
{
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const gguf_kv *kv = &g->kv[i];
        touch(kv->key.data, kv->key.len);
        /* Look the key up by name as a caller would (keys may hold NULs,
         * so only the C-string prefix is used). */
        char key[64];
        size_t n = kv->key.len < sizeof key - 1 ? (size_t)kv->key.len : sizeof key - 1;
        memcpy(key, kv->key.data, n);
        key[n] = '\0';
        uint64_t u;
        int64_t s;
        double d;
        bool b;
        gguf_str str;
        sink += gguf_get_uint(g, key, &u) + gguf_get_int(g, key, &s) + gguf_get_float(g, key, &d) +
                gguf_get_bool(g, key, &b);
        if (gguf_get_str(g, key, &str)) touch(str.data, str.len);
        sink += (uint64_t)gguf_find_key(g, key);
        if (kv->value.type == GGUF_TYPE_STRING) touch(kv->value.v.str.data, kv->value.v.str.len);
        if (kv->value.type == GGUF_TYPE_ARRAY) walk_array(&kv->value.v.arr);
        sink += gguf_type_size(kv->value.type) + (uint64_t)gguf_type_name(kv->value.type)[0];
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor_info *t = &g->tensors[i];
        touch(t->name.data, t->name.len);
        touch(t->data, t->nbytes);
        char name[64];
        size_t n = t->name.len < sizeof name - 1 ? (size_t)t->name.len : sizeof name - 1;
        memcpy(name, t->name.data, n);
        name[n] = '\0';
        sink += gguf_find_tensor(g, name) != NULL;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so a read one byte past the input is reported. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    gguf_file *g = NULL;
    loft_status st;
    if (gguf_open_memory(&g, copy, size, "fuzz", &st) == LOFT_OK) {
        walk(g);
        gguf_close(g);
    }
    free(copy);
    return 0;
}
