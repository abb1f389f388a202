/* libFuzzer target: the JSON reader must accept or refuse any bytes without
 * reading outside them, and every accepted tree must be walkable. */
#include <stddef.h>
#include <stdint.h>

#include "base/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t walk(const json_value *v)
{
    size_t n = 1;
    if (v->kind == JSON_ARRAY || v->kind == JSON_OBJECT)
        for (size_t i = 0; i < v->n; i++) n += walk(&v->items[i]);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_doc *doc = NULL;
    loft_status st;
    if (json_parse(&doc, (const char *)data, size, "fuzz.json", &st) == LOFT_OK) {
        (void)walk(json_doc_root(doc));
        json_doc_free(doc);
    }
    return 0;
}
