/*
 * reader.c - parsing GGUF files (versions 2 and 3) from a read-only mapping.
 *
 * Nothing read from the file is trusted: every count, length and offset is
 * compared with the bytes that remain and checked for overflow before it is
 * used, and all reads go through byte-wise little-endian loads, so a file may
 * be truncated, hostile or unaligned anywhere without the parser reading
 * outside the image. Strings and tensor data are views into the image.
 */
#include "gguf/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/status.h"
#include "gguf/gguf_util.h"
#include "quant/quant.h"

/* The smallest possible encodings, used to bound counts read from the
 * header by what the rest of the file could hold. A key-value pair: key
 * length (8) + at least one key byte + value type (4) + a one-byte value. A
 * tensor info: name length (8) + one name byte + n_dims (4) + one dimension
 * (8) + type (4) + offset (8). A nested array: element type (4) + count (8). */
#define KV_MIN_BYTES 14u
#define TENSOR_INFO_MIN_BYTES 33u
#define ARRAY_MIN_BYTES 12u

/* The public struct first, so gguf_close can recover the owner. */
typedef struct gguf_owner {
    gguf_file pub;
    size_t map_size; /* non-zero when pub.map was mmapped by gguf_open */
} gguf_owner;

typedef struct cursor {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    const char *name; /* file name for messages */
    char ctx[192];    /* the field being read, for messages */
    loft_status *st;
} cursor;

/* ---- errors ---------------------------------------------------------- */

/* Fails with "<name>: <ctx>: <message>". */
LOFT_PRINTF(3, 4)
static loft_code bad(cursor *c, loft_code code, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return loft_fail(c->st, code, "%s: %s: %s", c->name, c->ctx, what);
}

LOFT_PRINTF(2, 3)
static void set_ctx(cursor *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->ctx, sizeof c->ctx, fmt, ap);
    va_end(ap);
}

/* ---- primitive reads --------------------------------------------------- */

static uint64_t remaining(const cursor *c)
{
    return c->size - c->pos;
}

/* Takes n bytes at the cursor; `what` names them for the truncation message. */
static loft_code take(cursor *c, uint64_t n, const char *what, const uint8_t **out)
{
    if (n > remaining(c))
        return bad(c, LOFT_ERR_FORMAT,
                   "%s needs %llu bytes at offset %llu but the file ends at %llu (truncated)", what,
                   (unsigned long long)n, (unsigned long long)c->pos, (unsigned long long)c->size);
    *out = c->base + c->pos;
    c->pos += n;
    return LOFT_OK;
}

static loft_code read_u32(cursor *c, const char *what, uint32_t *out)
{
    const uint8_t *b = NULL;
    loft_code rc = take(c, 4, what, &b);
    if (rc == LOFT_OK) *out = gguf_load_u32(b);
    return rc;
}

static loft_code read_u64(cursor *c, const char *what, uint64_t *out)
{
    const uint8_t *b = NULL;
    loft_code rc = take(c, 8, what, &b);
    if (rc == LOFT_OK) *out = gguf_load_u64(b);
    return rc;
}

/* A length-prefixed string; the view points into the image. */
static loft_code read_str(cursor *c, const char *what, gguf_str *out)
{
    uint64_t len;
    loft_code rc = read_u64(c, what, &len);
    if (rc != LOFT_OK) return rc;
    if (len > remaining(c))
        return bad(c, LOFT_ERR_FORMAT,
                   "%s: string length %llu exceeds the %llu bytes left in the file", what,
                   (unsigned long long)len, (unsigned long long)remaining(c));
    out->len = len;
    out->data = (const char *)(c->base + c->pos);
    c->pos += len;
    return LOFT_OK;
}

/* ---- values ------------------------------------------------------------ */

static void free_array(gguf_array *a);

static void free_value(gguf_value *v)
{
    if (v->type == GGUF_TYPE_ARRAY) free_array(&v->v.arr);
}

static void free_array(gguf_array *a)
{
    free(a->strs);
    a->strs = NULL;
    if (a->items) {
        for (uint64_t i = 0; i < a->count; i++)
            free_value(&a->items[i]);
        free(a->items);
        a->items = NULL;
    }
}

/* calloc(n, size) after checking that n * size fits (n may come from a file). */
static void *alloc_array(uint64_t n, size_t size)
{
    if (n == 0) return NULL;
    if (n > SIZE_MAX / size) return NULL;
    return calloc((size_t)n, size);
}

static loft_code read_array(cursor *c, gguf_array *a, int depth);

static loft_code read_scalar(cursor *c, gguf_type type, gguf_value *v)
{
    size_t n = gguf_type_size(type);
    const uint8_t *b = NULL;
    loft_code rc = take(c, n, gguf_type_name(type), &b);
    if (rc != LOFT_OK) return rc;
    switch (type) {
    case GGUF_TYPE_UINT8:
        v->v.u64 = b[0];
        break;
    case GGUF_TYPE_INT8:
        v->v.i64 = (int8_t)b[0];
        break;
    case GGUF_TYPE_UINT16:
        v->v.u64 = gguf_load_u16(b);
        break;
    case GGUF_TYPE_INT16:
        v->v.i64 = (int16_t)gguf_load_u16(b);
        break;
    case GGUF_TYPE_UINT32:
        v->v.u64 = gguf_load_u32(b);
        break;
    case GGUF_TYPE_INT32:
        v->v.i64 = (int32_t)gguf_load_u32(b);
        break;
    case GGUF_TYPE_UINT64:
        v->v.u64 = gguf_load_u64(b);
        break;
    case GGUF_TYPE_INT64:
        v->v.i64 = (int64_t)gguf_load_u64(b);
        break;
    case GGUF_TYPE_FLOAT32:
        v->v.f64 = gguf_load_f32(b);
        break;
    case GGUF_TYPE_FLOAT64:
        v->v.f64 = gguf_load_f64(b);
        break;
    case GGUF_TYPE_BOOL:
        if (b[0] > 1) return bad(c, LOFT_ERR_FORMAT, "bool value is %u, expected 0 or 1", b[0]);
        v->v.u64 = b[0];
        break;
    default:
        return bad(c, LOFT_ERR_FORMAT, "value type %u is not a scalar", (unsigned)type);
    }
    return LOFT_OK;
}

/* Reads a value of the given type (already read from the file). */
static loft_code read_value(cursor *c, gguf_type type, gguf_value *v, int depth)
{
    v->type = type;
    if (type == GGUF_TYPE_STRING) return read_str(c, "string", &v->v.str);
    if (type == GGUF_TYPE_ARRAY) return read_array(c, &v->v.arr, depth);
    return read_scalar(c, type, v);
}

/* Array body: element type, count, elements. Counts are bounded by the
 * smallest size one element could have before anything is allocated. */
static loft_code read_array(cursor *c, gguf_array *a, int depth)
{
    uint32_t et;
    uint64_t count;
    loft_code rc = read_u32(c, "array element type", &et);
    if (rc == LOFT_OK) rc = read_u64(c, "array count", &count);
    if (rc != LOFT_OK) return rc;
    if (et >= GGUF_TYPE_COUNT)
        return bad(c, LOFT_ERR_FORMAT, "array element type %u is not a GGUF value type", et);
    a->elem_type = (gguf_type)et;
    size_t esz = gguf_type_size(a->elem_type);
    uint64_t min_elem = esz ? esz : et == GGUF_TYPE_STRING ? 8 : ARRAY_MIN_BYTES;
    if (count > remaining(c) / min_elem)
        return bad(c, LOFT_ERR_FORMAT,
                   "array of %llu %s elements needs at least %llu bytes each but only %llu "
                   "bytes are left in the file",
                   (unsigned long long)count, gguf_type_name(a->elem_type),
                   (unsigned long long)min_elem, (unsigned long long)remaining(c));
    if (et == GGUF_TYPE_ARRAY && depth + 1 > GGUF_MAX_ARRAY_DEPTH && count > 0)
        return bad(c, LOFT_ERR_FORMAT, "arrays nested more than %d levels deep",
                   GGUF_MAX_ARRAY_DEPTH);

    if (esz) {
        const uint8_t *raw = NULL;
        rc = take(c, count * esz, "array elements", &raw);
        if (rc != LOFT_OK) return rc;
        if (et == GGUF_TYPE_BOOL) {
            for (uint64_t i = 0; i < count; i++)
                if (raw[i] > 1)
                    return bad(c, LOFT_ERR_FORMAT, "bool array element %llu is %u, expected 0 or 1",
                               (unsigned long long)i, raw[i]);
        }
        a->raw = raw;
        a->count = count;
        return LOFT_OK;
    }
    if (count == 0) {
        a->count = 0;
        return LOFT_OK;
    }
    if (et == GGUF_TYPE_STRING) {
        a->strs = alloc_array(count, sizeof *a->strs);
        if (!a->strs)
            return bad(c, LOFT_ERR_NOMEM, "cannot allocate %llu strings",
                       (unsigned long long)count);
        a->count = count;
        for (uint64_t i = 0; i < count; i++) {
            rc = read_str(c, "array string", &a->strs[i]);
            if (rc != LOFT_OK) return rc;
        }
        return LOFT_OK;
    }
    a->items = alloc_array(count, sizeof *a->items);
    if (!a->items)
        return bad(c, LOFT_ERR_NOMEM, "cannot allocate %llu nested arrays",
                   (unsigned long long)count);
    a->count = count;
    for (uint64_t i = 0; i < count; i++) {
        a->items[i].type = GGUF_TYPE_ARRAY;
        rc = read_array(c, &a->items[i].v.arr, depth + 1);
        if (rc != LOFT_OK) return rc;
    }
    return LOFT_OK;
}

/* ---- duplicate names --------------------------------------------------- */

typedef struct named {
    gguf_str s;
    uint64_t index;
} named;

static int cmp_named(const void *pa, const void *pb)
{
    const named *a = pa, *b = pb;
    uint64_t n = a->s.len < b->s.len ? a->s.len : b->s.len;
    int d = n ? memcmp(a->s.data, b->s.data, (size_t)n) : 0;
    if (d) return d;
    if (a->s.len != b->s.len) return a->s.len < b->s.len ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index ? 1 : 0;
}

/* Finds two equal names among n by sorting (n can be large in a hostile
 * file, so no pairwise scan). Sets *dup_a < *dup_b and returns 1 if found,
 * 0 if all are distinct, -1 when out of memory. */
static int find_duplicate(const gguf_str *(*get)(const gguf_file *, uint64_t), const gguf_file *g,
                          uint64_t n, uint64_t *dup_a, uint64_t *dup_b)
{
    if (n < 2) return 0;
    named *v = alloc_array(n, sizeof *v);
    if (!v) return -1;
    for (uint64_t i = 0; i < n; i++) {
        v[i].s = *get(g, i);
        v[i].index = i;
    }
    qsort(v, (size_t)n, sizeof *v, cmp_named);
    int found = 0;
    for (uint64_t i = 1; i < n && !found; i++) {
        if (v[i].s.len == v[i - 1].s.len &&
            (v[i].s.len == 0 || memcmp(v[i].s.data, v[i - 1].s.data, (size_t)v[i].s.len) == 0)) {
            *dup_a = v[i - 1].index;
            *dup_b = v[i].index;
            found = 1;
        }
    }
    free(v);
    return found;
}

static const gguf_str *kv_key_at(const gguf_file *g, uint64_t i)
{
    return &g->kv[i].key;
}

static const gguf_str *tensor_name_at(const gguf_file *g, uint64_t i)
{
    return &g->tensors[i].name;
}

/* ---- header, key-values, tensor infos ---------------------------------- */

static loft_code read_header(cursor *c, gguf_file *g)
{
    set_ctx(c, "header");
    if (c->size == 0) return bad(c, LOFT_ERR_FORMAT, "file is empty (0 bytes), not a GGUF file");
    const uint8_t *magic = NULL;
    loft_code rc = take(c, 4, "magic", &magic);
    if (rc != LOFT_OK) return rc;
    if (memcmp(magic, GGUF_MAGIC, 4) != 0)
        return bad(c, LOFT_ERR_FORMAT,
                   "bad magic %02x %02x %02x %02x, expected \"GGUF\" (not a GGUF file)", magic[0],
                   magic[1], magic[2], magic[3]);
    set_ctx(c, "header: version");
    rc = read_u32(c, "version", &g->version);
    if (rc != LOFT_OK) return rc;
    uint32_t v = g->version;
    uint32_t swapped = (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24);
    if (v >= 0x10000u && swapped != 0 && swapped < 0x10000u)
        return bad(c, LOFT_ERR_UNSUPPORTED,
                   "the file is big-endian (version reads 0x%08x, byte-swapped %u); loft reads "
                   "little-endian GGUF only",
                   v, swapped);
    if (v == 1)
        return bad(c, LOFT_ERR_UNSUPPORTED,
                   "GGUF version 1 is not supported (it is obsolete; loft reads versions 2 and 3)");
    if (v != 2 && v != 3)
        return bad(c, LOFT_ERR_UNSUPPORTED,
                   "GGUF version %u is not supported (loft reads versions 2 and 3)", v);

    set_ctx(c, "header: n_tensors");
    rc = read_u64(c, "n_tensors", &g->n_tensors);
    if (rc != LOFT_OK) return rc;
    set_ctx(c, "header: n_kv");
    rc = read_u64(c, "n_kv", &g->n_kv);
    if (rc != LOFT_OK) return rc;

    uint64_t left = remaining(c);
    if (g->n_kv > left / KV_MIN_BYTES)
        return bad(c, LOFT_ERR_FORMAT,
                   "%llu key-value pairs cannot fit in the %llu bytes left (each needs at least "
                   "%u)",
                   (unsigned long long)g->n_kv, (unsigned long long)left, KV_MIN_BYTES);
    left -= g->n_kv * KV_MIN_BYTES;
    if (g->n_tensors > left / TENSOR_INFO_MIN_BYTES) {
        set_ctx(c, "header: n_tensors");
        return bad(c, LOFT_ERR_FORMAT,
                   "%llu tensor infos cannot fit in the %llu bytes left after the key-value "
                   "pairs (each needs at least %u)",
                   (unsigned long long)g->n_tensors, (unsigned long long)left,
                   TENSOR_INFO_MIN_BYTES);
    }
    return LOFT_OK;
}

static loft_code read_kvs(cursor *c, gguf_file *g)
{
    if (g->n_kv == 0) return LOFT_OK;
    g->kv = alloc_array(g->n_kv, sizeof *g->kv);
    if (!g->kv)
        return loft_fail(c->st, LOFT_ERR_NOMEM, "%s: cannot allocate %llu key-value pairs", c->name,
                         (unsigned long long)g->n_kv);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        gguf_kv *kv = &g->kv[i];
        set_ctx(c, "kv %llu", (unsigned long long)i);
        loft_code rc = read_str(c, "key", &kv->key);
        if (rc != LOFT_OK) return rc;
        if (kv->key.len == 0) return bad(c, LOFT_ERR_FORMAT, "key is empty");
        char key[GGUF_PRINT_NAME_MAX];
        gguf_print_name(key, kv->key);
        set_ctx(c, "kv %llu ('%s')", (unsigned long long)i, key);
        uint32_t type;
        rc = read_u32(c, "value type", &type);
        if (rc != LOFT_OK) return rc;
        if (type >= GGUF_TYPE_COUNT)
            return bad(c, LOFT_ERR_FORMAT, "value type %u is not a GGUF value type", type);
        rc = read_value(c, (gguf_type)type, &kv->value, 0);
        if (rc != LOFT_OK) return rc;
    }
    uint64_t a, b;
    int dup = find_duplicate(kv_key_at, g, g->n_kv, &a, &b);
    if (dup < 0) return loft_fail(c->st, LOFT_ERR_NOMEM, "%s: out of memory", c->name);
    if (dup > 0) {
        char key[GGUF_PRINT_NAME_MAX];
        gguf_print_name(key, g->kv[a].key);
        set_ctx(c, "kv %llu", (unsigned long long)b);
        return bad(c, LOFT_ERR_FORMAT, "duplicate key '%s' (also kv %llu)", key,
                   (unsigned long long)a);
    }
    return LOFT_OK;
}

/* general.alignment, when present, must be a uint32 power of two. */
static loft_code read_alignment(cursor *c, gguf_file *g)
{
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_value *v = gguf_get(g, "general.alignment");
    if (!v) return LOFT_OK;
    set_ctx(c, "general.alignment");
    if (v->type != GGUF_TYPE_UINT32)
        return bad(c, LOFT_ERR_FORMAT, "has type %s, expected uint32", gguf_type_name(v->type));
    if (v->v.u64 == 0 || (v->v.u64 & (v->v.u64 - 1)) != 0)
        return bad(c, LOFT_ERR_FORMAT, "is %llu, expected a non-zero power of two",
                   (unsigned long long)v->v.u64);
    g->alignment = v->v.u64;
    return LOFT_OK;
}

/* Shape and type of one tensor info; data bounds are checked later, once
 * the data section's start is known. */
static loft_code read_tensor_info(cursor *c, gguf_file *g, uint64_t i)
{
    gguf_tensor_info *t = &g->tensors[i];
    set_ctx(c, "tensor %llu", (unsigned long long)i);
    loft_code rc = read_str(c, "name", &t->name);
    if (rc != LOFT_OK) return rc;
    if (t->name.len == 0) return bad(c, LOFT_ERR_FORMAT, "name is empty");
    char name[GGUF_PRINT_NAME_MAX];
    gguf_print_name(name, t->name);
    set_ctx(c, "tensor %llu ('%s')", (unsigned long long)i, name);

    rc = read_u32(c, "n_dims", &t->n_dims);
    if (rc != LOFT_OK) return rc;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return bad(c, LOFT_ERR_FORMAT, "n_dims is %u, expected 1 to %d", t->n_dims, GGUF_MAX_DIMS);
    for (int d = 0; d < GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t ne;
        rc = read_u64(c, "dimension", &ne);
        if (rc != LOFT_OK) return rc;
        if (ne > (uint64_t)INT64_MAX)
            return bad(c, LOFT_ERR_FORMAT, "ne[%u] is negative (%lld)", d, (long long)(int64_t)ne);
        t->ne[d] = (int64_t)ne;
    }
    rc = read_u32(c, "type", &t->type);
    if (rc == LOFT_OK) rc = read_u64(c, "offset", &t->offset);
    if (rc != LOFT_OK) return rc;

    /* The element count must fit in int64 whatever order it is multiplied in. */
    int64_t rows = 1;
    for (uint32_t d = 1; d < t->n_dims; d++) {
        if (t->ne[d] != 0 && rows > INT64_MAX / t->ne[d])
            return bad(c, LOFT_ERR_FORMAT, "shape [%lld, %lld, %lld, %lld] has too many elements",
                       (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                       (long long)t->ne[3]);
        rows *= t->ne[d];
    }
    if (rows != 0 && t->ne[0] > INT64_MAX / rows)
        return bad(c, LOFT_ERR_FORMAT, "shape [%lld, %lld, %lld, %lld] has too many elements",
                   (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                   (long long)t->ne[3]);

    const loft_type_traits *tt = loft_type_get(t->type);
    if (!tt || tt->block_size == 0 || tt->type_size == 0)
        return loft_fail(c->st, LOFT_ERR_UNSUPPORTED,
                         "%s: tensor %llu: tensor '%s' has unknown type id %u", c->name,
                         (unsigned long long)i, name, t->type);
    if (t->ne[0] % tt->block_size != 0)
        return bad(c, LOFT_ERR_FORMAT,
                   "row length ne[0] = %lld is not a multiple of %s's block size %u",
                   (long long)t->ne[0], tt->name, tt->block_size);
    uint64_t blocks = (uint64_t)t->ne[0] / tt->block_size;
    uint64_t row_bytes = blocks * tt->type_size;
    if (blocks != 0 && row_bytes / blocks != tt->type_size)
        return bad(c, LOFT_ERR_FORMAT, "row size overflows");
    if (rows != 0 && row_bytes > UINT64_MAX / (uint64_t)rows)
        return bad(c, LOFT_ERR_FORMAT, "data size (%llu bytes per row x %lld rows) overflows",
                   (unsigned long long)row_bytes, (long long)rows);
    t->nbytes = row_bytes * (uint64_t)rows;
    return LOFT_OK;
}

typedef struct extent {
    uint64_t begin, end, index;
} extent;

static int cmp_extent(const void *pa, const void *pb)
{
    const extent *a = pa, *b = pb;
    if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index ? 1 : 0;
}

/* Tensors whose bytes overlap would alias each other's weights. */
static loft_code check_overlaps(cursor *c, gguf_file *g)
{
    extent *e = alloc_array(g->n_tensors, sizeof *e);
    if (!e && g->n_tensors) return loft_fail(c->st, LOFT_ERR_NOMEM, "%s: out of memory", c->name);
    uint64_t n = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        if (g->tensors[i].nbytes == 0) continue;
        e[n].begin = g->tensors[i].offset;
        e[n].end = g->tensors[i].offset + g->tensors[i].nbytes;
        e[n].index = i;
        n++;
    }
    if (n > 1) qsort(e, (size_t)n, sizeof *e, cmp_extent);
    loft_code rc = LOFT_OK;
    uint64_t far = 0; /* the extent reaching furthest so far */
    for (uint64_t k = 1; k < n && rc == LOFT_OK; k++) {
        if (e[k].begin < e[far].end) {
            const gguf_tensor_info *a = &g->tensors[e[far].index], *b = &g->tensors[e[k].index];
            char na[GGUF_PRINT_NAME_MAX], nb[GGUF_PRINT_NAME_MAX];
            gguf_print_name(na, a->name);
            gguf_print_name(nb, b->name);
            set_ctx(c, "tensor %llu ('%s')", (unsigned long long)e[k].index, nb);
            rc = bad(c, LOFT_ERR_FORMAT,
                     "data [offset %llu, %llu bytes] overlaps tensor %llu ('%s') [offset %llu, "
                     "%llu bytes]",
                     (unsigned long long)b->offset, (unsigned long long)b->nbytes,
                     (unsigned long long)e[far].index, na, (unsigned long long)a->offset,
                     (unsigned long long)a->nbytes);
        }
        if (e[k].end > e[far].end) far = k;
    }
    free(e);
    return rc;
}

static loft_code read_tensors(cursor *c, gguf_file *g)
{
    if (g->n_tensors > 0) {
        g->tensors = alloc_array(g->n_tensors, sizeof *g->tensors);
        if (!g->tensors)
            return loft_fail(c->st, LOFT_ERR_NOMEM, "%s: cannot allocate %llu tensor infos",
                             c->name, (unsigned long long)g->n_tensors);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        loft_code rc = read_tensor_info(c, g, i);
        if (rc != LOFT_OK) return rc;
    }
    uint64_t a, b;
    int dup = find_duplicate(tensor_name_at, g, g->n_tensors, &a, &b);
    if (dup < 0) return loft_fail(c->st, LOFT_ERR_NOMEM, "%s: out of memory", c->name);
    if (dup > 0) {
        char name[GGUF_PRINT_NAME_MAX];
        gguf_print_name(name, g->tensors[b].name);
        set_ctx(c, "tensor %llu ('%s')", (unsigned long long)b, name);
        return bad(c, LOFT_ERR_FORMAT, "duplicate tensor name (also tensor %llu)",
                   (unsigned long long)a);
    }

    /* The alignment is at most 2^31 and pos at most the file size, so this
     * rounding cannot wrap. */
    g->data_offset = (c->pos + g->alignment - 1) / g->alignment * g->alignment;
    if (g->n_tensors == 0) return LOFT_OK;
    if (g->data_offset > c->size) {
        set_ctx(c, "data section");
        return bad(c, LOFT_ERR_FORMAT,
                   "starts at offset %llu, past the end of the file (size %llu; truncated)",
                   (unsigned long long)g->data_offset, (unsigned long long)c->size);
    }
    uint64_t data_size = c->size - g->data_offset;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor_info *t = &g->tensors[i];
        char name[GGUF_PRINT_NAME_MAX];
        gguf_print_name(name, t->name);
        set_ctx(c, "tensor %llu ('%s')", (unsigned long long)i, name);
        if (t->offset % g->alignment != 0)
            return bad(c, LOFT_ERR_FORMAT,
                       "data offset %llu is not a multiple of the alignment %llu",
                       (unsigned long long)t->offset, (unsigned long long)g->alignment);
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return bad(c, LOFT_ERR_FORMAT,
                       "data [offset %llu, %llu bytes] extends past the end of the file (size "
                       "%llu, data section %llu bytes from offset %llu)",
                       (unsigned long long)t->offset, (unsigned long long)t->nbytes,
                       (unsigned long long)c->size, (unsigned long long)data_size,
                       (unsigned long long)g->data_offset);
        t->data = c->base + g->data_offset + t->offset;
    }
    return check_overlaps(c, g);
}

/* ---- open / close ------------------------------------------------------ */

static void free_parsed(gguf_file *g)
{
    if (g->kv) {
        for (uint64_t i = 0; i < g->n_kv; i++)
            free_value(&g->kv[i].value);
        free(g->kv);
    }
    free(g->tensors);
    free(g->path);
}

static loft_code parse(gguf_owner *o, const uint8_t *data, uint64_t size, const char *name,
                       loft_status *st)
{
    gguf_file *g = &o->pub;
    g->map = data;
    g->file_size = size;
    g->path = strdup(name);
    if (!g->path) return loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory", name);
    cursor c = {.base = data, .size = size, .name = g->path, .st = st};
    loft_code rc = read_header(&c, g);
    if (rc == LOFT_OK) rc = read_kvs(&c, g);
    if (rc == LOFT_OK) rc = read_alignment(&c, g);
    if (rc == LOFT_OK) rc = read_tensors(&c, g);
    return rc;
}

loft_code gguf_open_memory(gguf_file **out, const void *data, size_t size, const char *name,
                           loft_status *st)
{
    *out = NULL;
    if (!name) name = "(memory)";
    if (!data && size) return loft_fail(st, LOFT_ERR_ARG, "%s: no data", name);
    gguf_owner *o = calloc(1, sizeof *o);
    if (!o) return loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory", name);
    loft_code rc = parse(o, data, size, name, st);
    if (rc != LOFT_OK) {
        free_parsed(&o->pub);
        free(o);
        return rc;
    }
    *out = &o->pub;
    return LOFT_OK;
}

loft_code gguf_open(gguf_file **out, const char *path, loft_status *st)
{
    *out = NULL;
    /* O_NONBLOCK: opening a FIFO by mistake must not hang; it is refused below. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return loft_fail(st, LOFT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return loft_fail(st, LOFT_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(sb.st_mode)) {
        close(fd);
        return loft_fail(st, LOFT_ERR_IO, "%s: is a directory, not a GGUF file", path);
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return loft_fail(st, LOFT_ERR_IO, "%s: is not a regular file", path);
    }
    if (sb.st_size == 0) {
        close(fd);
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: file is empty (0 bytes), not a GGUF file", path);
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return loft_fail(st, LOFT_ERR_UNSUPPORTED, "%s: file is too large to map (%lld bytes)",
                         path, (long long)sb.st_size);
    }
    size_t size = (size_t)sb.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); /* the mapping keeps the file alive */
    if (map == MAP_FAILED)
        return loft_fail(st, LOFT_ERR_IO, "%s: cannot map %zu bytes: %s", path, size, strerror(e));

    gguf_owner *o = calloc(1, sizeof *o);
    if (!o) {
        munmap(map, size);
        return loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory", path);
    }
    o->map_size = size;
    loft_code rc = parse(o, map, size, path, st);
    if (rc != LOFT_OK) {
        gguf_close(&o->pub);
        return rc;
    }
    *out = &o->pub;
    return LOFT_OK;
}

void gguf_release_pages(const gguf_file *g, const void *p, size_t n)
{
    const gguf_owner *o = (const gguf_owner *)g;
    const long ps = sysconf(_SC_PAGESIZE);
    if (!o->map_size || ps <= 0 || n == 0) return;
    const uintptr_t base = (uintptr_t)g->map, a = (uintptr_t)p;
    if (a < base || n > o->map_size || a - base > o->map_size - n) return;
    const uintptr_t lo = (a + (uintptr_t)ps - 1) / (uintptr_t)ps * (uintptr_t)ps;
    const uintptr_t hi = (a + n) / (uintptr_t)ps * (uintptr_t)ps;
    /* The map is private and never written: dropped pages are read back
     * from the file on the next touch, with the same bytes. */
    if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

void gguf_close(gguf_file *g)
{
    if (!g) return;
    gguf_owner *o = (gguf_owner *)g;
    if (o->map_size) munmap((void *)g->map, o->map_size);
    free_parsed(g);
    free(o);
}
