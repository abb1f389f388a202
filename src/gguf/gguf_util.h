/* gguf_util.h - helpers shared by the GGUF reader, getters and writer. */
#ifndef LOFT_GGUF_UTIL_H
#define LOFT_GGUF_UTIL_H

#include <stdint.h>
#include <string.h>

#include "gguf/gguf.h"

/* Arrays of arrays nested deeper than this are refused by the reader and
 * never written by the writer (bounds the recursion of both). */
#define GGUF_MAX_ARRAY_DEPTH 16

/* Little-endian loads from possibly unaligned bytes, independent of the
 * host's byte order. */
static inline uint16_t gguf_load_u16(const uint8_t *b)
{
    return (uint16_t)(b[0] | (b[1] << 8));
}

static inline uint32_t gguf_load_u32(const uint8_t *b)
{
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}

static inline uint64_t gguf_load_u64(const uint8_t *b)
{
    return (uint64_t)gguf_load_u32(b) | ((uint64_t)gguf_load_u32(b + 4) << 32);
}

static inline double gguf_load_f32(const uint8_t *b)
{
    uint32_t u = gguf_load_u32(b);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline double gguf_load_f64(const uint8_t *b)
{
    uint64_t u = gguf_load_u64(b);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* Room for a name printed by gguf_print_name, NUL included. */
#define GGUF_PRINT_NAME_MAX 80

/* Writes s into out (GGUF_PRINT_NAME_MAX bytes) for an error message:
 * non-printable bytes become '?', and a long name is cut with "...". */
void gguf_print_name(char *out, gguf_str s);

#endif
