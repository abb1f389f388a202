/*
 * values.c - looking up and converting GGUF metadata values.
 *
 * The getters answer "does this key hold a value of this kind that converts
 * without loss" so that callers can read hyperparameters written with any
 * integer width (converters disagree on uint32 vs int32 vs uint64).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "gguf/gguf.h"
#include "gguf/gguf_util.h"

/* ---- types --------------------------------------------------------------- */

const char *gguf_type_name(gguf_type t)
{
    switch (t) {
    case GGUF_TYPE_UINT8:
        return "uint8";
    case GGUF_TYPE_INT8:
        return "int8";
    case GGUF_TYPE_UINT16:
        return "uint16";
    case GGUF_TYPE_INT16:
        return "int16";
    case GGUF_TYPE_UINT32:
        return "uint32";
    case GGUF_TYPE_INT32:
        return "int32";
    case GGUF_TYPE_FLOAT32:
        return "float32";
    case GGUF_TYPE_BOOL:
        return "bool";
    case GGUF_TYPE_STRING:
        return "string";
    case GGUF_TYPE_ARRAY:
        return "array";
    case GGUF_TYPE_UINT64:
        return "uint64";
    case GGUF_TYPE_INT64:
        return "int64";
    case GGUF_TYPE_FLOAT64:
        return "float64";
    case GGUF_TYPE_COUNT:
        break;
    }
    return "?";
}

size_t gguf_type_size(gguf_type t)
{
    switch (t) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_BOOL:
        return 1;
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16:
        return 2;
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_FLOAT32:
        return 4;
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64:
    case GGUF_TYPE_FLOAT64:
        return 8;
    case GGUF_TYPE_STRING:
    case GGUF_TYPE_ARRAY:
    case GGUF_TYPE_COUNT:
        break;
    }
    return 0;
}

static bool is_unsigned(gguf_type t)
{
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_UINT32 ||
           t == GGUF_TYPE_UINT64;
}

static bool is_signed(gguf_type t)
{
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 ||
           t == GGUF_TYPE_INT64;
}

static bool is_float(gguf_type t)
{
    return t == GGUF_TYPE_FLOAT32 || t == GGUF_TYPE_FLOAT64;
}

/* ---- strings ------------------------------------------------------------- */

bool gguf_str_eq(gguf_str s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.data, c, n) == 0);
}

void gguf_print_name(char *out, gguf_str s)
{
    const size_t keep = GGUF_PRINT_NAME_MAX - 4; /* room for "..." and NUL */
    size_t n = s.len < keep ? (size_t)s.len : keep;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s.data[i];
        out[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    if (s.len > keep) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

/* ---- lookup and typed getters ------------------------------------------- */

int64_t gguf_find_key(const gguf_file *g, const char *key)
{
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (gguf_str_eq(g->kv[i].key, key)) return (int64_t)i;
    return -1;
}

const gguf_value *gguf_get(const gguf_file *g, const char *key)
{
    int64_t i = gguf_find_key(g, key);
    return i < 0 ? NULL : &g->kv[i].value;
}

bool gguf_get_uint(const gguf_file *g, const char *key, uint64_t *out)
{
    const gguf_value *v = gguf_get(g, key);
    if (!v) return false;
    if (is_unsigned(v->type)) {
        *out = v->v.u64;
        return true;
    }
    if (is_signed(v->type) && v->v.i64 >= 0) {
        *out = (uint64_t)v->v.i64;
        return true;
    }
    return false;
}

bool gguf_get_int(const gguf_file *g, const char *key, int64_t *out)
{
    const gguf_value *v = gguf_get(g, key);
    if (!v) return false;
    if (is_signed(v->type)) {
        *out = v->v.i64;
        return true;
    }
    if (is_unsigned(v->type) && v->v.u64 <= (uint64_t)INT64_MAX) {
        *out = (int64_t)v->v.u64;
        return true;
    }
    return false;
}

/* Integers convert to double without loss up to 2^53 in magnitude. */
#define EXACT_DOUBLE_INT (UINT64_C(1) << 53)

bool gguf_get_float(const gguf_file *g, const char *key, double *out)
{
    const gguf_value *v = gguf_get(g, key);
    if (!v) return false;
    if (is_float(v->type)) {
        *out = v->v.f64;
        return true;
    }
    if (is_unsigned(v->type) && v->v.u64 <= EXACT_DOUBLE_INT) {
        *out = (double)v->v.u64;
        return true;
    }
    if (is_signed(v->type) && v->v.i64 <= (int64_t)EXACT_DOUBLE_INT &&
        v->v.i64 >= -(int64_t)EXACT_DOUBLE_INT) {
        *out = (double)v->v.i64;
        return true;
    }
    return false;
}

bool gguf_get_bool(const gguf_file *g, const char *key, bool *out)
{
    const gguf_value *v = gguf_get(g, key);
    if (!v || v->type != GGUF_TYPE_BOOL) return false;
    *out = v->v.u64 != 0;
    return true;
}

bool gguf_get_str(const gguf_file *g, const char *key, gguf_str *out)
{
    const gguf_value *v = gguf_get(g, key);
    if (!v || v->type != GGUF_TYPE_STRING) return false;
    *out = v->v.str;
    return true;
}

const gguf_array *gguf_get_array(const gguf_file *g, const char *key)
{
    const gguf_value *v = gguf_get(g, key);
    return v && v->type == GGUF_TYPE_ARRAY ? &v->v.arr : NULL;
}

const gguf_tensor_info *gguf_find_tensor(const gguf_file *g, const char *name)
{
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (gguf_str_eq(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

/* ---- array elements ------------------------------------------------------ */

/* Element i as a double (integers exactly when they fit in 53 bits); 0 for
 * string/array elements or an index out of range. */
static double element_as_double(const gguf_array *a, uint64_t i, int64_t *as_int, bool *is_int)
{
    *is_int = true;
    *as_int = 0;
    size_t esz = gguf_type_size(a->elem_type);
    if (!esz || i >= a->count || !a->raw) return 0.0;
    const uint8_t *b = (const uint8_t *)a->raw + i * esz;
    switch (a->elem_type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_BOOL:
        *as_int = b[0];
        break;
    case GGUF_TYPE_INT8:
        *as_int = (int8_t)b[0];
        break;
    case GGUF_TYPE_UINT16:
        *as_int = gguf_load_u16(b);
        break;
    case GGUF_TYPE_INT16:
        *as_int = (int16_t)gguf_load_u16(b);
        break;
    case GGUF_TYPE_UINT32:
        *as_int = gguf_load_u32(b);
        break;
    case GGUF_TYPE_INT32:
        *as_int = (int32_t)gguf_load_u32(b);
        break;
    case GGUF_TYPE_INT64:
        *as_int = (int64_t)gguf_load_u64(b);
        break;
    case GGUF_TYPE_UINT64: {
        uint64_t u = gguf_load_u64(b);
        *is_int = false; /* may not fit int64: report through the double */
        if (u <= (uint64_t)INT64_MAX) {
            *as_int = (int64_t)u;
            *is_int = true;
        }
        return (double)u;
    }
    case GGUF_TYPE_FLOAT32:
        *is_int = false;
        return gguf_load_f32(b);
    case GGUF_TYPE_FLOAT64:
        *is_int = false;
        return gguf_load_f64(b);
    default:
        return 0.0;
    }
    return (double)*as_int;
}

int64_t gguf_array_get_int(const gguf_array *a, uint64_t i)
{
    int64_t n;
    bool is_int;
    double d = element_as_double(a, i, &n, &is_int);
    if (is_int) return n;
    /* Floats truncate toward zero and saturate; NaN reads as 0. */
    if (isnan(d)) return 0;
    if (d >= 9223372036854775808.0) return INT64_MAX;
    if (d < -9223372036854775808.0) return INT64_MIN;
    return (int64_t)d;
}

double gguf_array_get_float(const gguf_array *a, uint64_t i)
{
    int64_t n;
    bool is_int;
    return element_as_double(a, i, &n, &is_int);
}
