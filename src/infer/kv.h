/*
 * kv.h - the key/value cache of one sequence.
 *
 * For every layer the cache keeps one key row (n_head_kv * head_dim) and one
 * value row (n_head_kv * head_dim_v) per position, stored as F16 (default,
 * like llama.cpp) or F32. Positions 0..used-1 are filled; model_forward
 * appends after them. The cache is sized once, from n_ctx, at init.
 */
#ifndef LOFT_INFER_KV_H
#define LOFT_INFER_KV_H

#include <stdbool.h>
#include <stdint.h>

#include "loft.h"

typedef struct kv_cache kv_cache;
typedef struct loft_model loft_model;
typedef struct loft_kernels loft_kernels;

/* A cache of n_ctx positions for model m with F16 storage. n_ctx must be in
 * [1, 2^24]; an n_ctx above the model's training context is allowed (the
 * caller decides). On failure *out is NULL. The cache does not keep m; it
 * records its shape so model_forward can refuse a cache of another shape. */
loft_code kv_cache_init(kv_cache **out, const loft_model *m, int32_t n_ctx, loft_status *st);

/* Same with an explicit element type: LOFT_TYPE_F16 or LOFT_TYPE_F32
 * (src/quant/quant.h ids); other types give LOFT_ERR_UNSUPPORTED. */
loft_code kv_cache_init_type(kv_cache **out, const loft_model *m, int32_t n_ctx, uint32_t type,
                             loft_status *st);

/* Frees the cache; NULL is allowed. */
void kv_cache_free(kv_cache *kv);

/* Forgets every position (used becomes 0); keeps the memory. */
void kv_cache_clear(kv_cache *kv);

/* Forgets positions n.. (used becomes min(used, n)); n < 0 counts as 0. */
void kv_cache_truncate(kv_cache *kv, int32_t n);

/* Positions filled so far. */
int32_t kv_cache_used(const kv_cache *kv);

/* Positions the cache can hold. */
int32_t kv_cache_size(const kv_cache *kv);

/* ---- used by the forward pass ------------------------------------------ */

/* Shape the cache was made for. */
int32_t kv_cache_n_layer(const kv_cache *kv);
int32_t kv_cache_k_width(const kv_cache *kv); /* n_head_kv * head_dim */
int32_t kv_cache_v_width(const kv_cache *kv); /* n_head_kv * head_dim_v */

/* Stores the key row k (k_width floats) and value row v (v_width floats) of
 * layer il at position pos (< size), rounding to the storage type (F16:
 * kt->f32_to_f16, loft_f32_to_f16's bits in every set; kt NULL means
 * kernels_get()). Does not change `used`; the caller commits with
 * kv_cache_set_used. */
void kv_cache_store(kv_cache *kv, const loft_kernels *kt, int32_t il, int32_t pos, const float *k,
                    const float *v);

/* The keys / values of layer il at positions 0..n_pos-1 as F32 rows,
 * (n_pos, k_width) and (n_pos, v_width). For F16 storage they are converted
 * into the cache's staging buffers, which the next call for any layer
 * overwrites. n_pos <= size. */
void kv_cache_layer_f32(kv_cache *kv, int32_t il, int32_t n_pos, const float **k, const float **v);

/* The keys / values of layer il as stored, without conversion: row p of
 * the keys at (element type *type) *k + p * k_width, values likewise with
 * v_width. *type is LOFT_TYPE_F16 or LOFT_TYPE_F32. Valid until the cache is
 * freed. */
void kv_cache_layer_raw(const kv_cache *kv, int32_t il, const void **k, const void **v,
                        uint32_t *type);

/* Sets `used` to n (0 <= n <= size), after the caller stored rows 0..n-1. */
void kv_cache_set_used(kv_cache *kv, int32_t n);

#endif
