/*
 * json.h - reading and writing JSON text.
 *
 * The reader parses one JSON document (RFC 8259) into a tree of json_value
 * nodes carved from one allocation pool owned by a json_doc. It never reads
 * past the given length, limits nesting depth, and reports the first error
 * with its line and column. Strings are decoded to UTF-8 (\uXXXX escapes and
 * surrogate pairs included) and NUL-terminated; they may contain NUL bytes,
 * so their length is kept too.
 */
#ifndef LOFT_BASE_JSON_H
#define LOFT_BASE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "loft.h"

#define JSON_MAX_DEPTH 128

typedef enum json_kind {
    JSON_NULL,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
} json_kind;

typedef struct json_value json_value;

struct json_value {
    json_kind kind;
    bool boolean;
    double number;
    char *str;       /* JSON_STRING: decoded, NUL-terminated */
    size_t str_len;  /* JSON_STRING: bytes before the terminator */
    size_t n;        /* JSON_ARRAY / JSON_OBJECT: number of items */
    json_value *items; /* JSON_ARRAY / JSON_OBJECT: n values */
    char **keys;       /* JSON_OBJECT: n decoded keys, NUL-terminated */
};

typedef struct json_doc json_doc;

/* Parses len bytes at text as one JSON document (surrounding whitespace
 * allowed, nothing else). On LOFT_OK *out owns the tree (json_doc_free);
 * on failure *out is NULL and st says "<name>:<line>:<col>: <what>". */
loft_code json_parse(json_doc **out, const char *text, size_t len, const char *name,
                     loft_status *st);
void json_doc_free(json_doc *doc);

/* The root value of a parsed document. */
const json_value *json_doc_root(const json_doc *doc);

/* The member `key` of an object, or NULL (also when v is not an object). */
const json_value *json_get(const json_value *v, const char *key);

/* The string of member `key` when it exists and is a string, else NULL. */
const char *json_get_str(const json_value *v, const char *key);

/* Writes len bytes of s to f as a quoted JSON string: quotes, backslashes
 * and control characters escaped, bytes >= 0x80 passed through (the input
 * is expected to be UTF-8). */
void json_write_str(FILE *f, const char *s, size_t len);

/* Writes a double as a JSON number; NaN and infinities (not JSON) as null. */
void json_write_num(FILE *f, double v);

#endif
