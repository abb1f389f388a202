/*
 * writer.c - building a GGUF version 3 file and writing it atomically.
 *
 * Metadata is deep-copied into the writer (values it owns use the same
 * gguf_value layout the reader produces, with heap copies instead of views);
 * tensor data is borrowed. gguf_writer_write lays out keys and tensors in
 * insertion order, pads every tensor to the alignment with zeros, writes to
 * PATH.tmp.<pid>, fsyncs and renames, so a reader never sees half a file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/atomic_file.h"
#include "base/status.h"
#include "gguf/gguf.h"
#include "gguf/gguf_util.h"
#include "quant/quant.h"

typedef struct writer_kv {
    char *key;
    gguf_value value; /* owns its strings, raw bytes and items */
} writer_kv;

typedef struct writer_tensor {
    char *name;
    uint32_t type;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    const void *data;
    uint64_t nbytes;
} writer_tensor;

struct gguf_writer {
    uint64_t alignment;
    writer_kv *kv;
    size_t n_kv, cap_kv;
    writer_tensor *tensors;
    size_t n_tensors, cap_tensors;
};

/* ---- owned values -------------------------------------------------------- */

static void value_free(gguf_value *v);

static void array_free(gguf_array *a)
{
    if (a->strs) {
        for (uint64_t i = 0; i < a->count; i++)
            free((void *)a->strs[i].data);
        free(a->strs);
    }
    if (a->items) {
        for (uint64_t i = 0; i < a->count; i++)
            value_free(&a->items[i]);
        free(a->items);
    }
    free((void *)a->raw);
    memset(a, 0, sizeof *a);
}

static void value_free(gguf_value *v)
{
    if (v->type == GGUF_TYPE_STRING)
        free((void *)v->v.str.data);
    else if (v->type == GGUF_TYPE_ARRAY)
        array_free(&v->v.arr);
    memset(v, 0, sizeof *v);
}

/* A heap copy of n bytes plus a NUL (so an empty string is never NULL). */
static char *copy_bytes(const char *s, uint64_t n)
{
    if (n >= SIZE_MAX) return NULL;
    char *p = malloc((size_t)n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, (size_t)n);
    p[n] = '\0';
    return p;
}

static void *calloc_checked(uint64_t n, size_t size)
{
    if (n == 0 || n > SIZE_MAX / size) return NULL;
    return calloc((size_t)n, size);
}

static loft_code array_copy(gguf_array *dst, const gguf_array *src, int depth);

/* Deep copy of src into dst (dst is zeroed first; freed on failure). */
static loft_code value_copy(gguf_value *dst, const gguf_value *src, int depth)
{
    memset(dst, 0, sizeof *dst);
    if (src->type >= GGUF_TYPE_COUNT) return LOFT_ERR_ARG;
    dst->type = src->type;
    if (src->type == GGUF_TYPE_STRING) {
        if (!src->v.str.data && src->v.str.len) return LOFT_ERR_ARG;
        dst->v.str.data = copy_bytes(src->v.str.data, src->v.str.len);
        if (!dst->v.str.data) return LOFT_ERR_NOMEM;
        dst->v.str.len = src->v.str.len;
        return LOFT_OK;
    }
    if (src->type == GGUF_TYPE_ARRAY) return array_copy(&dst->v.arr, &src->v.arr, depth);
    dst->v = src->v;
    return LOFT_OK;
}

static loft_code array_copy(gguf_array *dst, const gguf_array *src, int depth)
{
    if (depth > GGUF_MAX_ARRAY_DEPTH || src->elem_type >= GGUF_TYPE_COUNT) return LOFT_ERR_ARG;
    dst->elem_type = src->elem_type;
    if (src->count == 0) return LOFT_OK;
    size_t esz = gguf_type_size(src->elem_type);
    loft_code rc = LOFT_OK;
    if (esz) {
        if (!src->raw) return LOFT_ERR_ARG;
        if (src->count > SIZE_MAX / esz) return LOFT_ERR_NOMEM;
        void *raw = malloc((size_t)src->count * esz);
        if (!raw) return LOFT_ERR_NOMEM;
        memcpy(raw, src->raw, (size_t)src->count * esz);
        dst->raw = raw;
        dst->count = src->count;
    } else if (src->elem_type == GGUF_TYPE_STRING) {
        if (!src->strs) return LOFT_ERR_ARG;
        dst->strs = calloc_checked(src->count, sizeof *dst->strs);
        if (!dst->strs) return LOFT_ERR_NOMEM;
        dst->count = src->count;
        for (uint64_t i = 0; i < src->count && rc == LOFT_OK; i++) {
            const gguf_str *s = &src->strs[i];
            if (!s->data && s->len) {
                rc = LOFT_ERR_ARG;
                break;
            }
            dst->strs[i].data = copy_bytes(s->data, s->len);
            dst->strs[i].len = s->len;
            if (!dst->strs[i].data) rc = LOFT_ERR_NOMEM;
        }
    } else {
        if (!src->items) return LOFT_ERR_ARG;
        dst->items = calloc_checked(src->count, sizeof *dst->items);
        if (!dst->items) return LOFT_ERR_NOMEM;
        dst->count = src->count;
        for (uint64_t i = 0; i < src->count && rc == LOFT_OK; i++) {
            if (src->items[i].type != GGUF_TYPE_ARRAY) {
                rc = LOFT_ERR_ARG;
                break;
            }
            dst->items[i].type = GGUF_TYPE_ARRAY;
            rc = array_copy(&dst->items[i].v.arr, &src->items[i].v.arr, depth + 1);
        }
    }
    if (rc != LOFT_OK) array_free(dst);
    return rc;
}

/* ---- init / free ----------------------------------------------------------- */

static bool valid_alignment(uint64_t a)
{
    return a != 0 && a <= UINT32_MAX && (a & (a - 1)) == 0;
}

gguf_writer *gguf_writer_init(uint64_t alignment)
{
    if (alignment == 0) alignment = GGUF_DEFAULT_ALIGNMENT;
    if (!valid_alignment(alignment)) return NULL;
    gguf_writer *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->alignment = alignment;
    /* Readers only learn a non-default alignment from this key, so it goes
     * first; setting it again later moves the layout with it. */
    if (alignment != GGUF_DEFAULT_ALIGNMENT &&
        gguf_writer_set_uint(w, "general.alignment", GGUF_TYPE_UINT32, alignment) != LOFT_OK) {
        gguf_writer_free(w);
        return NULL;
    }
    return w;
}

void gguf_writer_free(gguf_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        value_free(&w->kv[i].value);
    }
    free(w->kv);
    for (size_t i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    free(w->tensors);
    free(w);
}

/* Grows *items (of *cap elements of size bytes) to hold one more. */
static bool grow(void **items, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) return true;
    size_t want = *cap ? *cap * 2 : 16;
    if (want < *cap || want > SIZE_MAX / size) return false;
    void *p = realloc(*items, want * size);
    if (!p) return false;
    *items = p;
    *cap = want;
    return true;
}

/* ---- metadata setters ------------------------------------------------------ */

/* Takes ownership of *v (already a deep copy): replaces the key's value in
 * place or appends the key. v is freed on failure. */
static loft_code set_owned(gguf_writer *w, const char *key, gguf_value *v)
{
    if (!w || !key || !*key) {
        value_free(v);
        return LOFT_ERR_ARG;
    }
    bool is_alignment = strcmp(key, "general.alignment") == 0;
    if (is_alignment && (v->type != GGUF_TYPE_UINT32 || !valid_alignment(v->v.u64))) {
        value_free(v);
        return LOFT_ERR_ARG;
    }
    size_t i = 0;
    while (i < w->n_kv && strcmp(w->kv[i].key, key) != 0)
        i++;
    if (i == w->n_kv) {
        char *k = copy_bytes(key, strlen(key));
        if (!k || !grow((void **)&w->kv, &w->cap_kv, w->n_kv, sizeof *w->kv)) {
            free(k);
            value_free(v);
            return LOFT_ERR_NOMEM;
        }
        w->kv[i].key = k;
        memset(&w->kv[i].value, 0, sizeof w->kv[i].value);
        w->n_kv++;
    } else {
        value_free(&w->kv[i].value);
    }
    w->kv[i].value = *v;
    if (is_alignment) w->alignment = v->v.u64;
    return LOFT_OK;
}

loft_code gguf_writer_set_uint(gguf_writer *w, const char *key, gguf_type t, uint64_t v)
{
    uint64_t max;
    switch (t) {
    case GGUF_TYPE_UINT8:
        max = UINT8_MAX;
        break;
    case GGUF_TYPE_UINT16:
        max = UINT16_MAX;
        break;
    case GGUF_TYPE_UINT32:
        max = UINT32_MAX;
        break;
    case GGUF_TYPE_UINT64:
        max = UINT64_MAX;
        break;
    default:
        return LOFT_ERR_ARG;
    }
    if (v > max) return LOFT_ERR_ARG;
    gguf_value val = {.type = t, .v.u64 = v};
    return set_owned(w, key, &val);
}

loft_code gguf_writer_set_int(gguf_writer *w, const char *key, gguf_type t, int64_t v)
{
    int64_t lo, hi;
    switch (t) {
    case GGUF_TYPE_INT8:
        lo = INT8_MIN, hi = INT8_MAX;
        break;
    case GGUF_TYPE_INT16:
        lo = INT16_MIN, hi = INT16_MAX;
        break;
    case GGUF_TYPE_INT32:
        lo = INT32_MIN, hi = INT32_MAX;
        break;
    case GGUF_TYPE_INT64:
        lo = INT64_MIN, hi = INT64_MAX;
        break;
    default:
        return LOFT_ERR_ARG;
    }
    if (v < lo || v > hi) return LOFT_ERR_ARG;
    gguf_value val = {.type = t, .v.i64 = v};
    return set_owned(w, key, &val);
}

loft_code gguf_writer_set_float(gguf_writer *w, const char *key, gguf_type t, double v)
{
    if (t != GGUF_TYPE_FLOAT32 && t != GGUF_TYPE_FLOAT64) return LOFT_ERR_ARG;
    /* Stored as the reader would return it, so a round trip compares equal. */
    gguf_value val = {.type = t, .v.f64 = t == GGUF_TYPE_FLOAT32 ? (double)(float)v : v};
    return set_owned(w, key, &val);
}

loft_code gguf_writer_set_bool(gguf_writer *w, const char *key, bool v)
{
    gguf_value val = {.type = GGUF_TYPE_BOOL, .v.u64 = v ? 1 : 0};
    return set_owned(w, key, &val);
}

loft_code gguf_writer_set_str(gguf_writer *w, const char *key, const char *v)
{
    if (!v) return LOFT_ERR_ARG;
    gguf_value src = {.type = GGUF_TYPE_STRING, .v.str = {strlen(v), v}};
    return gguf_writer_set_value(w, key, &src);
}

loft_code gguf_writer_set_array(gguf_writer *w, const char *key, gguf_type elem_type,
                                const void *data, uint64_t n)
{
    if (gguf_type_size(elem_type) == 0) return LOFT_ERR_ARG;
    if (elem_type == GGUF_TYPE_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (((const uint8_t *)data)[i] > 1) return LOFT_ERR_ARG;
    gguf_value src = {.type = GGUF_TYPE_ARRAY};
    src.v.arr.elem_type = elem_type;
    src.v.arr.count = n;
    src.v.arr.raw = data;
    return gguf_writer_set_value(w, key, &src);
}

loft_code gguf_writer_set_str_array(gguf_writer *w, const char *key, const char *const *v,
                                    uint64_t n)
{
    if (n && !v) return LOFT_ERR_ARG;
    gguf_value src = {.type = GGUF_TYPE_ARRAY};
    src.v.arr.elem_type = GGUF_TYPE_STRING;
    src.v.arr.count = n;
    if (n) {
        src.v.arr.strs = calloc_checked(n, sizeof *src.v.arr.strs);
        if (!src.v.arr.strs) return LOFT_ERR_NOMEM;
        for (uint64_t i = 0; i < n; i++) {
            if (!v[i]) {
                free(src.v.arr.strs);
                return LOFT_ERR_ARG;
            }
            src.v.arr.strs[i].len = strlen(v[i]);
            src.v.arr.strs[i].data = v[i];
        }
    }
    loft_code rc = gguf_writer_set_value(w, key, &src);
    free(src.v.arr.strs);
    return rc;
}

loft_code gguf_writer_set_value(gguf_writer *w, const char *key, const gguf_value *v)
{
    if (!w || !key || !*key || !v) return LOFT_ERR_ARG;
    if (v->type == GGUF_TYPE_BOOL && v->v.u64 > 1) return LOFT_ERR_ARG;
    gguf_value copy;
    loft_code rc = value_copy(&copy, v, 0);
    if (rc != LOFT_OK) return rc;
    return set_owned(w, key, &copy);
}

/* ---- tensors --------------------------------------------------------------- */

loft_code gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                 const int64_t *ne, const void *data, uint64_t nbytes)
{
    if (!w || !name || !*name || !ne || n_dims < 1 || n_dims > GGUF_MAX_DIMS) return LOFT_ERR_ARG;
    const loft_type_traits *tt = loft_type_get(type);
    if (!tt || tt->block_size == 0) return LOFT_ERR_ARG;
    int64_t rows = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] < 0) return LOFT_ERR_ARG;
        if (d > 0) {
            if (ne[d] != 0 && rows > INT64_MAX / ne[d]) return LOFT_ERR_ARG;
            rows *= ne[d];
        }
    }
    if (ne[0] % tt->block_size != 0) return LOFT_ERR_ARG;
    uint64_t blocks = (uint64_t)ne[0] / tt->block_size;
    if (blocks && tt->type_size > UINT64_MAX / blocks) return LOFT_ERR_ARG;
    uint64_t row_bytes = blocks * tt->type_size;
    if (rows && row_bytes > UINT64_MAX / (uint64_t)rows) return LOFT_ERR_ARG;
    if (row_bytes * (uint64_t)rows != nbytes || (nbytes && !data)) return LOFT_ERR_ARG;
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0) return LOFT_ERR_ARG;

    char *copy = copy_bytes(name, strlen(name));
    if (!copy || !grow((void **)&w->tensors, &w->cap_tensors, w->n_tensors, sizeof *w->tensors)) {
        free(copy);
        return LOFT_ERR_NOMEM;
    }
    writer_tensor *t = &w->tensors[w->n_tensors++];
    t->name = copy;
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < GGUF_MAX_DIMS; d++)
        t->ne[d] = d < (int)n_dims ? ne[d] : 1;
    t->data = data;
    t->nbytes = nbytes;
    return LOFT_OK;
}

/* ---- serialization ---------------------------------------------------------- */

typedef struct out_file {
    FILE *f;
    uint64_t pos;
    bool failed;
    int err; /* errno of the first failure */
} out_file;

static void put(out_file *o, const void *p, size_t n)
{
    if (o->failed || n == 0) return;
    if (fwrite(p, 1, n, o->f) != n) {
        o->failed = true;
        o->err = errno ? errno : EIO;
        return;
    }
    o->pos += n;
}

static void put_u32(out_file *o, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(o, b, 4);
}

static void put_u64(out_file *o, uint64_t v)
{
    put_u32(o, (uint32_t)v);
    put_u32(o, (uint32_t)(v >> 32));
}

static void put_str(out_file *o, const char *s, uint64_t len)
{
    put_u64(o, len);
    put(o, s, (size_t)len);
}

static void put_pad(out_file *o, uint64_t alignment)
{
    static const uint8_t zeros[256];
    uint64_t pad = (alignment - o->pos % alignment) % alignment;
    while (pad > 0) {
        size_t n = pad < sizeof zeros ? (size_t)pad : sizeof zeros;
        put(o, zeros, n);
        pad -= n;
    }
}

/* A scalar in its file width; values are already range-checked. */
static void put_scalar(out_file *o, const gguf_value *v)
{
    uint8_t b[8];
    uint64_t bits = v->v.u64;
    if (v->type == GGUF_TYPE_FLOAT32) {
        float f = (float)v->v.f64;
        uint32_t u;
        memcpy(&u, &f, 4);
        bits = u;
    } else if (v->type == GGUF_TYPE_FLOAT64) {
        memcpy(&bits, &v->v.f64, 8);
    }
    size_t n = gguf_type_size(v->type);
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(bits >> (8 * i));
    put(o, b, n);
}

static void put_array(out_file *o, const gguf_array *a)
{
    put_u32(o, (uint32_t)a->elem_type);
    put_u64(o, a->count);
    size_t esz = gguf_type_size(a->elem_type);
    if (esz) {
        /* Raw elements are kept little-endian as given. */
        if (a->count) put(o, a->raw, (size_t)(a->count * esz));
    } else if (a->elem_type == GGUF_TYPE_STRING) {
        for (uint64_t i = 0; i < a->count; i++)
            put_str(o, a->strs[i].data, a->strs[i].len);
    } else {
        for (uint64_t i = 0; i < a->count; i++)
            put_array(o, &a->items[i].v.arr);
    }
}

static void put_value(out_file *o, const gguf_value *v)
{
    put_u32(o, (uint32_t)v->type);
    if (v->type == GGUF_TYPE_STRING)
        put_str(o, v->v.str.data, v->v.str.len);
    else if (v->type == GGUF_TYPE_ARRAY)
        put_array(o, &v->v.arr);
    else
        put_scalar(o, v);
}

static uint64_t padded(uint64_t n, uint64_t alignment)
{
    return (n + alignment - 1) / alignment * alignment;
}

static void put_all(out_file *o, const gguf_writer *w)
{
    put(o, GGUF_MAGIC, 4);
    put_u32(o, 3);
    put_u64(o, w->n_tensors);
    put_u64(o, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        put_str(o, w->kv[i].key, strlen(w->kv[i].key));
        put_value(o, &w->kv[i].value);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const writer_tensor *t = &w->tensors[i];
        put_str(o, t->name, strlen(t->name));
        put_u32(o, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++)
            put_u64(o, (uint64_t)t->ne[d]);
        put_u32(o, t->type);
        put_u64(o, offset);
        offset += padded(t->nbytes, w->alignment);
    }
    put_pad(o, w->alignment);
    for (size_t i = 0; i < w->n_tensors && !o->failed; i++) {
        const writer_tensor *t = &w->tensors[i];
        /* Chunks keep a single fwrite under size_t even on 32-bit hosts. */
        const uint8_t *p = t->data;
        for (uint64_t done = 0; done < t->nbytes;) {
            uint64_t n = t->nbytes - done < (1u << 30) ? t->nbytes - done : (1u << 30);
            put(o, p + done, (size_t)n);
            done += n;
        }
        put_pad(o, w->alignment);
    }
}

/* The tensor data section must fit in a uint64 once padded. */
static bool layout_fits(const gguf_writer *w)
{
    uint64_t total = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        uint64_t n = w->tensors[i].nbytes;
        if (n > UINT64_MAX - w->alignment) return false;
        n = padded(n, w->alignment);
        if (total > UINT64_MAX - n) return false;
        total += n;
    }
    return true;
}

loft_code gguf_writer_write(gguf_writer *w, const char *path, loft_status *st)
{
    if (!w || !path || !*path) return loft_fail(st, LOFT_ERR_ARG, "gguf writer: no path given");
    if (!layout_fits(w))
        return loft_fail(st, LOFT_ERR_ARG, "%s: tensor data too large for a GGUF file", path);
    atomic_file af;
    loft_code rc = atomic_file_open(&af, path, st);
    if (rc != LOFT_OK) return rc;
    out_file o = {0};
    o.f = af.f;
    errno = 0;
    put_all(&o, w);
    if (o.failed) {
        /* The first failure's reason and offset say more than the stream's
         * error flag would at commit. */
        rc = loft_fail(st, LOFT_ERR_IO,
                       "%s: cannot write %s after %llu bytes: %s (the previous file, if "
                       "any, is kept)",
                       path, af.tmp, (unsigned long long)o.pos, strerror(o.err ? o.err : EIO));
        atomic_file_abort(&af);
        return rc;
    }
    return atomic_file_commit(&af, st);
}
