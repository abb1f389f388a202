/* lora.c - LoRA parameter sets and the low-rank forward/backward. */
#include "train/lora.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "model/layers.h"

static const char *const tensor_names[LORA_KIND_COUNT] = {
    "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "output"};

const char *lora_kind_tensor_name(lora_kind k)
{
    return (unsigned)k < LORA_KIND_COUNT ? tensor_names[k] : "?";
}

static int kind_from_name(const char *s, size_t n)
{
    if (n == 6 && !memcmp(s, "attn_o", 6)) return LORA_ATTN_O;
    for (int k = 0; k < LORA_KIND_COUNT; k++)
        if (strlen(tensor_names[k]) == n && !memcmp(s, tensor_names[k], n)) return k;
    return -1;
}

loft_code lora_parse_modules(const char *list, uint32_t *mask, loft_status *st)
{
    *mask = 0;
    const char *p = list;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n && (*p == ' '))
            p++, n--;
        while (n && p[n - 1] == ' ')
            n--;
        if (n == 3 && !memcmp(p, "all", 3)) {
            *mask |= (1u << LORA_OUTPUT) - 1u;
        } else {
            int k = kind_from_name(p, n);
            if (k < 0)
                return loft_fail(st, LOFT_ERR_ARG,
                                 "--lora-modules: unknown module '%.*s' (known: attn_q, attn_k, "
                                 "attn_v, attn_o, ffn_gate, ffn_up, ffn_down, output, all)",
                                 (int)n, p);
            *mask |= 1u << k;
        }
        if (!e) break;
        p = e + 1;
    }
    return LOFT_OK;
}

loft_code lora_set_init(lora_set *s, const lora_dims *dims, uint32_t kinds, int32_t rank,
                        float alpha, loft_status *st)
{
    return lora_set_init_some(s, dims, kinds, NULL, rank, alpha, st);
}

loft_code lora_set_init_some(lora_set *s, const lora_dims *dims, uint32_t kinds,
                             const uint8_t *present, int32_t rank, float alpha, loft_status *st)
{
    memset(s, 0, sizeof *s);
    if (rank < 1) return loft_fail(st, LOFT_ERR_ARG, "LoRA rank %d is below 1", rank);
    if (!kinds) return loft_fail(st, LOFT_ERR_ARG, "no LoRA module selected");
    s->rank = rank;
    s->alpha = alpha;
    s->scale = alpha / (float)rank;
    s->kinds = kinds;
    s->n_layer = dims->n_layer;
    size_t n_per_layer = 0;
    for (int k = 0; k < LORA_OUTPUT; k++)
        if (kinds & (1u << k)) n_per_layer++;
    size_t n_mods = n_per_layer * (size_t)dims->n_layer + ((kinds >> LORA_OUTPUT) & 1u);
    size_t n_index = ((size_t)dims->n_layer + 1) * LORA_KIND_COUNT;
    s->mods = calloc(n_mods ? n_mods : 1, sizeof *s->mods);
    s->index = malloc(n_index * sizeof *s->index);
    if (!s->mods || !s->index) goto nomem;
    for (size_t i = 0; i < n_index; i++)
        s->index[i] = -1;
    size_t total = 0;
    for (int32_t il = -1; il < dims->n_layer; il++)
        for (int k = 0; k < LORA_KIND_COUNT; k++) {
            if (!(kinds & (1u << k)) || ((k == LORA_OUTPUT) != (il < 0))) continue;
            if (present && !present[(size_t)(il + 1) * LORA_KIND_COUNT + (size_t)k]) continue;
            lora_module *m = &s->mods[s->n_mods];
            m->layer = il;
            m->kind = (lora_kind)k;
            m->n_in = dims->n_in[k];
            m->n_out = dims->n_out[k];
            uint64_t sz = (uint64_t)(m->n_in + m->n_out) * (uint64_t)rank;
            if (m->n_in <= 0 || m->n_out <= 0 || sz > (SIZE_MAX / sizeof(float)) / 4 - total)
                goto nomem;
            s->index[(size_t)(il + 1) * LORA_KIND_COUNT + (size_t)k] = (int32_t)s->n_mods;
            s->n_mods++;
            total += (size_t)sz;
        }
    s->n_params = total;
    s->params = calloc(total, sizeof(float));
    s->grads = calloc(total, sizeof(float));
    if (!s->params || !s->grads) goto nomem;
    size_t off = 0;
    for (size_t i = 0; i < s->n_mods; i++) {
        lora_module *m = &s->mods[i];
        m->A = s->params + off;
        m->dA = s->grads + off;
        off += (size_t)m->n_in * (size_t)rank;
        m->B = s->params + off;
        m->dB = s->grads + off;
        off += (size_t)m->n_out * (size_t)rank;
    }
    return LOFT_OK;
nomem:
    lora_set_free(s);
    return loft_fail(st, LOFT_ERR_NOMEM, "LoRA rank %d: out of memory for the adapter", rank);
}

void lora_set_free(lora_set *s)
{
    free(s->mods);
    free(s->params);
    free(s->grads);
    free(s->index);
    memset(s, 0, sizeof *s);
}

void lora_set_init_peft(lora_set *s, uint64_t seed)
{
    loft_rng rng;
    loft_rng_seed(&rng, seed);
    for (size_t i = 0; i < s->n_mods; i++) {
        lora_module *m = &s->mods[i];
        const double bound = 1.0 / sqrt((double)m->n_in);
        const size_t na = (size_t)m->n_in * (size_t)s->rank;
        for (size_t j = 0; j < na; j++)
            m->A[j] = (float)((2.0 * loft_rng_uniform(&rng) - 1.0) * bound);
        memset(m->B, 0, (size_t)m->n_out * (size_t)s->rank * sizeof(float));
    }
}

lora_module *lora_set_find(const lora_set *s, int32_t layer, lora_kind kind)
{
    if (!s || !s->index || layer < -1 || layer >= s->n_layer || (unsigned)kind >= LORA_KIND_COUNT)
        return NULL;
    int32_t i = s->index[(size_t)(layer + 1) * LORA_KIND_COUNT + (size_t)kind];
    return i < 0 ? NULL : &s->mods[i];
}

void lora_set_zero_grads(lora_set *s)
{
    memset(s->grads, 0, s->n_params * sizeof(float));
}

void lora_forward(float *y, float *u, const float *x, const lora_module *m, int32_t rank,
                  float scale, int64_t T)
{
    const int64_t n_in = m->n_in, n_out = m->n_out;
    for (int64_t t = 0; t < T; t++) {
        const float *xt = x + t * n_in;
        float *ut = u + t * rank;
        for (int32_t j = 0; j < rank; j++) {
            ut[j] = dot_f32(m->A + (size_t)j * (size_t)n_in, xt, n_in);
        }
        float *yt = y + t * n_out;
        for (int64_t o = 0; o < n_out; o++) {
            const float *b = m->B + (size_t)o * (size_t)rank;
            float acc = 0.0f;
            for (int32_t j = 0; j < rank; j++)
                acc += b[j] * ut[j];
            yt[o] += scale * acc;
        }
    }
}

void lora_backward(float *dx, const float *dy, const float *x, const float *u, const lora_module *m,
                   int32_t rank, float scale, int64_t T, float *du_buf)
{
    const int64_t n_in = m->n_in, n_out = m->n_out;
    for (int64_t t = 0; t < T; t++) {
        const float *g = dy + t * n_out;
        const float *ut = u + t * rank;
        float *du = du_buf + t * rank;
        for (int32_t j = 0; j < rank; j++)
            du[j] = 0.0f;
        for (int64_t o = 0; o < n_out; o++) {
            const float go = g[o] * scale;
            if (go == 0.0f) continue;
            float *db = m->dB + (size_t)o * (size_t)rank;
            const float *b = m->B + (size_t)o * (size_t)rank;
            for (int32_t j = 0; j < rank; j++) {
                db[j] += go * ut[j];
                du[j] += go * b[j];
            }
        }
        const float *xt = x + t * n_in;
        for (int32_t j = 0; j < rank; j++) {
            float *da = m->dA + (size_t)j * (size_t)n_in;
            const float *a = m->A + (size_t)j * (size_t)n_in;
            const float dj = du[j];
            for (int64_t i = 0; i < n_in; i++)
                da[i] += dj * xt[i];
            if (dx)
                for (int64_t i = 0; i < n_in; i++)
                    dx[t * n_in + i] += dj * a[i];
        }
    }
}
