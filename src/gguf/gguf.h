/*
 * gguf.h - reading and writing GGUF files (versions 2 and 3, little-endian).
 *
 * Reader: the file is mapped read-only; keys, strings and tensor data are
 * views into the mapping and live exactly as long as the gguf_file. Every
 * count, length, offset and size read from the file is checked against the
 * file size and against overflow before it is used; a malformed file yields
 * LOFT_ERR_FORMAT with a message naming the file, the field and the fault.
 *
 * Writer: collects metadata and tensors in memory (tensor data is borrowed,
 * not copied) and writes them to PATH.tmp.<pid>, fsyncs and renames to PATH.
 */
#ifndef LOFT_GGUF_H
#define LOFT_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loft.h"

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4

/* Metadata value types as numbered in the GGUF specification. */
typedef enum gguf_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
} gguf_type;

/* A string view: len bytes at data, not NUL-terminated. */
typedef struct gguf_str {
    uint64_t len;
    const char *data;
} gguf_str;

struct gguf_value;

/* An array value. Exactly one of raw / strs / items is used, by elem_type:
 * numeric and bool elements are `count` little-endian scalars at `raw`
 * (inside the mapping, possibly unaligned: read them with gguf_array_*);
 * strings are `count` views in `strs`; nested arrays are `count` values in
 * `items`. */
typedef struct gguf_array {
    gguf_type elem_type;
    uint64_t count;
    const void *raw;
    gguf_str *strs;
    struct gguf_value *items;
} gguf_array;

typedef struct gguf_value {
    gguf_type type;
    union {
        uint64_t u64; /* UINT8, UINT16, UINT32, UINT64, BOOL (0/1) */
        int64_t i64;  /* INT8, INT16, INT32, INT64 */
        double f64;   /* FLOAT32, FLOAT64 */
        gguf_str str;
        gguf_array arr;
    } v;
} gguf_value;

typedef struct gguf_kv {
    gguf_str key;
    gguf_value value;
} gguf_kv;

typedef struct gguf_tensor_info {
    gguf_str name;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the fastest-varying (row length); unused dims are 1 */
    uint32_t type;             /* a ggml type id; see quant/quant.h */
    uint64_t offset;           /* relative to the start of the data section */
    const void *data;          /* inside the mapping */
    uint64_t nbytes;
} gguf_tensor_info;

typedef struct gguf_file {
    char *path;
    uint32_t version;
    uint64_t n_kv;
    gguf_kv *kv;
    uint64_t n_tensors;
    gguf_tensor_info *tensors;
    uint64_t alignment;
    uint64_t data_offset; /* file offset of the tensor data section */
    const uint8_t *map;
    uint64_t file_size;
} gguf_file;

/* ---- reader ---------------------------------------------------------- */

/* Maps and parses path. On LOFT_OK *out owns the mapping; free it with
 * gguf_close. On failure *out is NULL and st says what was wrong. Tensors
 * of a type id loft does not know are refused, naming tensor and id. */
loft_code gguf_open(gguf_file **out, const char *path, loft_status *st);

/* Parses an in-memory image (not copied; must outlive the result). Same
 * checks as gguf_open; `name` is used in messages. For tests and fuzzing. */
loft_code gguf_open_memory(gguf_file **out, const void *data, size_t size, const char *name,
                           loft_status *st);

/* Drops the whole pages inside [p, p + n) (bytes of g's mapping) from this
 * process's resident set: for data a copy has replaced. They stay valid,
 * read back from the file if touched again. A no-op for images from
 * gguf_open_memory and for ranges outside the mapping. */
void gguf_release_pages(const gguf_file *g, const void *p, size_t n);

/* Unmaps and frees everything; NULL is allowed. */
void gguf_close(gguf_file *g);

/* Index of the key, or -1. */
int64_t gguf_find_key(const gguf_file *g, const char *key);
const gguf_value *gguf_get(const gguf_file *g, const char *key);

/* Typed getters: true when the key exists and converts without loss to the
 * asked type (any integer type for _int/_uint within range, either float
 * type or an integer for _float). */
bool gguf_get_uint(const gguf_file *g, const char *key, uint64_t *out);
bool gguf_get_int(const gguf_file *g, const char *key, int64_t *out);
bool gguf_get_float(const gguf_file *g, const char *key, double *out);
bool gguf_get_bool(const gguf_file *g, const char *key, bool *out);
bool gguf_get_str(const gguf_file *g, const char *key, gguf_str *out);
const gguf_array *gguf_get_array(const gguf_file *g, const char *key);

/* Element i of a numeric or bool array, converted. i must be < count. */
int64_t gguf_array_get_int(const gguf_array *a, uint64_t i);
double gguf_array_get_float(const gguf_array *a, uint64_t i);

/* Tensor by name, or NULL. */
const gguf_tensor_info *gguf_find_tensor(const gguf_file *g, const char *name);

/* True when s equals the NUL-terminated c. */
bool gguf_str_eq(gguf_str s, const char *c);

/* Name of a metadata type ("uint32", "string", ...), "?" when unknown. */
const char *gguf_type_name(gguf_type t);

/* Bytes of one scalar of type t (0 for STRING, ARRAY and unknown). */
size_t gguf_type_size(gguf_type t);

/* ---- writer ---------------------------------------------------------- */

typedef struct gguf_writer gguf_writer;

/* A writer for GGUF version 3 with the given alignment (0 = default 32). */
gguf_writer *gguf_writer_init(uint64_t alignment);
void gguf_writer_free(gguf_writer *w);

/* Setters copy key and value. Setting a key twice replaces it. They return
 * LOFT_ERR_NOMEM or LOFT_ERR_ARG (bad key/type) on failure. */
loft_code gguf_writer_set_uint(gguf_writer *w, const char *key, gguf_type t, uint64_t v);
loft_code gguf_writer_set_int(gguf_writer *w, const char *key, gguf_type t, int64_t v);
loft_code gguf_writer_set_float(gguf_writer *w, const char *key, gguf_type t, double v);
loft_code gguf_writer_set_bool(gguf_writer *w, const char *key, bool v);
loft_code gguf_writer_set_str(gguf_writer *w, const char *key, const char *v);
/* A numeric/bool array: n elements of elem_type, packed little-endian at data. */
loft_code gguf_writer_set_array(gguf_writer *w, const char *key, gguf_type elem_type,
                                const void *data, uint64_t n);
loft_code gguf_writer_set_str_array(gguf_writer *w, const char *key, const char *const *v,
                                    uint64_t n);
/* Copies a value read by the reader (any type, nested arrays included). */
loft_code gguf_writer_set_value(gguf_writer *w, const char *key, const gguf_value *v);

/* Adds a tensor. data (nbytes, which must equal the type's size for ne) is
 * borrowed until gguf_writer_write returns. */
loft_code gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                 const int64_t *ne, const void *data, uint64_t nbytes);

/* Writes everything to path atomically (temp file, fsync, rename). On
 * failure the temp file is removed and any previous file at path is intact. */
loft_code gguf_writer_write(gguf_writer *w, const char *path, loft_status *st);

#endif
