/* kv.c - the key/value cache: one allocation per stream, rows per position. */
#include "infer/kv.h"

#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "quant/quant.h"

#define KV_MAX_CTX (1 << 24)

struct kv_cache {
    uint32_t type; /* LOFT_TYPE_F16 or LOFT_TYPE_F32 */
    int32_t n_layer;
    int32_t n_ctx;
    int32_t used;
    int32_t k_width;
    int32_t v_width;
    void *k;         /* (n_layer, n_ctx, k_width) of type */
    void *v;         /* (n_layer, n_ctx, v_width) of type */
    float *k_stage;  /* (n_ctx, k_width), F16 storage only */
    float *v_stage;  /* (n_ctx, v_width), F16 storage only */
};

/* a * b * c as size_t, false on overflow. */
static bool kv_mul3(size_t a, size_t b, size_t c, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return false;
    size_t ab = a * b;
    if (ab != 0 && c > SIZE_MAX / ab) return false;
    *out = ab * c;
    return true;
}

loft_code kv_cache_init(kv_cache **out, const loft_model *m, int32_t n_ctx, loft_status *st)
{
    return kv_cache_init_type(out, m, n_ctx, LOFT_TYPE_F16, st);
}

loft_code kv_cache_init_type(kv_cache **out, const loft_model *m, int32_t n_ctx, uint32_t type,
                             loft_status *st)
{
    *out = NULL;
    if (!m) return loft_fail(st, LOFT_ERR_ARG, "kv cache: no model given");
    if (n_ctx < 1 || n_ctx > KV_MAX_CTX)
        return loft_fail(st, LOFT_ERR_RANGE, "kv cache: n_ctx %d is outside [1, %d]", (int)n_ctx,
                         KV_MAX_CTX);
    if (type != LOFT_TYPE_F16 && type != LOFT_TYPE_F32)
        return loft_fail(st, LOFT_ERR_UNSUPPORTED,
                         "kv cache: element type %u is not supported (F16 or F32)", type);
    const model_hparams *hp = model_get_hparams(m);
    size_t elt = type == LOFT_TYPE_F16 ? sizeof(uint16_t) : sizeof(float);
    size_t k_bytes, v_bytes, k_stage, v_stage;
    int32_t k_width = hp->n_head_kv * hp->head_dim;
    int32_t v_width = hp->n_head_kv * hp->head_dim_v;
    if (!kv_mul3((size_t)hp->n_layer, (size_t)n_ctx, (size_t)k_width * elt, &k_bytes) ||
        !kv_mul3((size_t)hp->n_layer, (size_t)n_ctx, (size_t)v_width * elt, &v_bytes) ||
        !kv_mul3(1, (size_t)n_ctx, (size_t)k_width * sizeof(float), &k_stage) ||
        !kv_mul3(1, (size_t)n_ctx, (size_t)v_width * sizeof(float), &v_stage))
        return loft_fail(st, LOFT_ERR_NOMEM, "kv cache: size for n_ctx %d overflows", (int)n_ctx);

    kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv) return loft_fail(st, LOFT_ERR_NOMEM, "kv cache: out of memory");
    kv->type = type;
    kv->n_layer = hp->n_layer;
    kv->n_ctx = n_ctx;
    kv->k_width = k_width;
    kv->v_width = v_width;
    kv->k = malloc(k_bytes ? k_bytes : 1);
    kv->v = malloc(v_bytes ? v_bytes : 1);
    if (type == LOFT_TYPE_F16) {
        kv->k_stage = malloc(k_stage ? k_stage : 1);
        kv->v_stage = malloc(v_stage ? v_stage : 1);
    }
    if (!kv->k || !kv->v || (type == LOFT_TYPE_F16 && (!kv->k_stage || !kv->v_stage))) {
        kv_cache_free(kv);
        return loft_fail(st, LOFT_ERR_NOMEM, "kv cache: cannot allocate %zu + %zu bytes for n_ctx %d",
                         k_bytes, v_bytes, (int)n_ctx);
    }
    *out = kv;
    return LOFT_OK;
}

void kv_cache_free(kv_cache *kv)
{
    if (!kv) return;
    free(kv->k);
    free(kv->v);
    free(kv->k_stage);
    free(kv->v_stage);
    free(kv);
}

void kv_cache_clear(kv_cache *kv)
{
    kv->used = 0;
}

void kv_cache_truncate(kv_cache *kv, int32_t n)
{
    if (n < 0) n = 0;
    if (n < kv->used) kv->used = n;
}

int32_t kv_cache_used(const kv_cache *kv)
{
    return kv->used;
}

int32_t kv_cache_size(const kv_cache *kv)
{
    return kv->n_ctx;
}

int32_t kv_cache_n_layer(const kv_cache *kv)
{
    return kv->n_layer;
}

int32_t kv_cache_k_width(const kv_cache *kv)
{
    return kv->k_width;
}

int32_t kv_cache_v_width(const kv_cache *kv)
{
    return kv->v_width;
}

/* Element offset of row (il, pos) in a (n_layer, n_ctx, width) block. */
static size_t kv_row(const kv_cache *kv, int32_t il, int32_t pos, int32_t width)
{
    return ((size_t)il * (size_t)kv->n_ctx + (size_t)pos) * (size_t)width;
}

void kv_cache_store(kv_cache *kv, const loft_kernels *kt, int32_t il, int32_t pos, const float *k,
                    const float *v)
{
    size_t ko = kv_row(kv, il, pos, kv->k_width);
    size_t vo = kv_row(kv, il, pos, kv->v_width);
    if (kv->type == LOFT_TYPE_F32) {
        memcpy((float *)kv->k + ko, k, (size_t)kv->k_width * sizeof(float));
        memcpy((float *)kv->v + vo, v, (size_t)kv->v_width * sizeof(float));
        return;
    }
    uint16_t *kd = (uint16_t *)kv->k + ko;
    uint16_t *vd = (uint16_t *)kv->v + vo;
    if (!kt) kt = kernels_get();
    kt->f32_to_f16(kd, k, kv->k_width);
    kt->f32_to_f16(vd, v, kv->v_width);
}

void kv_cache_layer_f32(kv_cache *kv, int32_t il, int32_t n_pos, const float **k, const float **v)
{
    size_t ko = kv_row(kv, il, 0, kv->k_width);
    size_t vo = kv_row(kv, il, 0, kv->v_width);
    if (kv->type == LOFT_TYPE_F32) {
        *k = (const float *)kv->k + ko;
        *v = (const float *)kv->v + vo;
        return;
    }
    const uint16_t *ks = (const uint16_t *)kv->k + ko;
    const uint16_t *vs = (const uint16_t *)kv->v + vo;
    size_t nk = (size_t)n_pos * (size_t)kv->k_width;
    size_t nv = (size_t)n_pos * (size_t)kv->v_width;
    for (size_t i = 0; i < nk; i++) kv->k_stage[i] = loft_f16_to_f32(ks[i]);
    for (size_t i = 0; i < nv; i++) kv->v_stage[i] = loft_f16_to_f32(vs[i]);
    *k = kv->k_stage;
    *v = kv->v_stage;
}

void kv_cache_layer_raw(const kv_cache *kv, int32_t il, const void **k, const void **v,
                        uint32_t *type)
{
    const size_t esz = kv->type == LOFT_TYPE_F16 ? 2 : 4;
    *k = (const char *)kv->k + kv_row(kv, il, 0, kv->k_width) * esz;
    *v = (const char *)kv->v + kv_row(kv, il, 0, kv->v_width) * esz;
    *type = kv->type;
}

void kv_cache_set_used(kv_cache *kv, int32_t n)
{
    kv->used = n;
}
