/*
 * sha256.h - SHA-256 (FIPS 180-4), incremental, for identifying model files
 * in benchmark records.
 */
#ifndef LOFT_BASE_SHA256_H
#define LOFT_BASE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "loft.h"

typedef struct sha256_ctx {
    uint32_t h[8];
    uint64_t total;    /* bytes fed so far */
    uint8_t block[64]; /* pending partial block */
    size_t fill;       /* bytes pending in block */
} sha256_ctx;

void sha256_init(sha256_ctx *c);
/* Feeds n bytes; any split of the input gives the same digest. */
void sha256_update(sha256_ctx *c, const void *data, size_t n);
/* Writes the 32-byte digest; c must be re-initialized before reuse. */
void sha256_final(sha256_ctx *c, uint8_t out[32]);

/* Digest of one buffer as 64 lowercase hex characters plus NUL. */
void sha256_hex(const void *data, size_t n, char out[65]);

/* Digest of a whole file as hex (out: 65 bytes), reading it in chunks. */
loft_code sha256_file_hex(const char *path, char out[65], loft_status *st);

#endif
