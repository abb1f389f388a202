/* merge.c - folding LoRA adapters into a base model (see merge.h). */
#include "train/merge.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "gguf/gguf.h"
#include "quant/quant.h"
#include "train/adapter.h"
#include "train/lora.h"

/* The adaptable matrices' shapes read from the base's own tensors (layer
 * 0; every layer is checked again when merged), so merging works for any
 * architecture whose tensors use llama.cpp's names. A kind whose tensor is
 * missing gets shape 0 and any adapter module of that kind is refused. */
static loft_code dims_from_gguf(const gguf_file *g, const char *path, char *arch, size_t arch_cap,
                                lora_dims *d, loft_status *st)
{
    memset(d, 0, sizeof *d);
    gguf_str a;
    if (!gguf_get_str(g, "general.architecture", &a) || a.len == 0 || a.len >= arch_cap)
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: general.architecture is missing or too long",
                         path);
    memcpy(arch, a.data, (size_t)a.len);
    arch[a.len] = '\0';
    char key[96];
    snprintf(key, sizeof key, "%s.block_count", arch);
    uint64_t n_layer = 0;
    if (!gguf_get_uint(g, key, &n_layer) || n_layer < 1 || n_layer > 100000)
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s is missing or out of range", path, key);
    d->n_layer = (int32_t)n_layer;
    char name[128];
    for (int k = 0; k < LORA_KIND_COUNT; k++) {
        const gguf_tensor_info *ti;
        if (k == LORA_OUTPUT) {
            ti = gguf_find_tensor(g, "output.weight");
            if (!ti) ti = gguf_find_tensor(g, "token_embd.weight");
        } else {
            snprintf(name, sizeof name, "blk.0.%s.weight", lora_kind_tensor_name((lora_kind)k));
            ti = gguf_find_tensor(g, name);
        }
        if (ti && ti->n_dims == 2) {
            d->n_in[k] = ti->ne[0];
            d->n_out[k] = ti->ne[1];
        }
    }
    return LOFT_OK;
}

/* Which adapted matrix a base tensor name is: *layer and *kind, or false. */
static bool tensor_kind(const char *name, int32_t *layer, lora_kind *kind)
{
    if (!strcmp(name, "output.weight")) {
        *layer = -1;
        *kind = LORA_OUTPUT;
        return true;
    }
    if (strncmp(name, "blk.", 4)) return false;
    char *end = NULL;
    long l = strtol(name + 4, &end, 10);
    if (end == name + 4 || *end != '.' || l < 0 || l > 100000) return false;
    const char *mod = end + 1;
    for (int k = 0; k < LORA_OUTPUT; k++) {
        const char *stem = lora_kind_tensor_name((lora_kind)k);
        size_t n = strlen(stem);
        if (!strncmp(mod, stem, n) && !strcmp(mod + n, ".weight")) {
            *layer = (int32_t)l;
            *kind = (lora_kind)k;
            return true;
        }
    }
    return false;
}

/* W: (n_out, n_in) += coef * B A for one module (B: (n_out, r), A: (r, n_in)). */
static void add_low_rank(float *W, const lora_module *m, int32_t rank, float coef)
{
    for (int64_t o = 0; o < m->n_out; o++) {
        float *w = W + o * m->n_in;
        for (int32_t r = 0; r < rank; r++) {
            const float b = coef * m->B[o * rank + r];
            if (b == 0.0f) continue;
            const float *a = m->A + (int64_t)r * m->n_in;
            for (int64_t i = 0; i < m->n_in; i++)
                w[i] += b * a[i];
        }
    }
}

typedef struct merge_ctx {
    const char *base_path;
    const merge_params *p;
    gguf_file *g;
    lora_set *sets;
    size_t n_sets;
    void **bufs; /* tensor data the writer borrows */
    size_t n_bufs;
} merge_ctx;

/* The type a merged matrix of the given base type and width is written as. */
static uint32_t merged_type(const merge_params *p, uint32_t base_type, int64_t n_in, bool *fallback)
{
    uint32_t t = p->out_type >= 0 ? (uint32_t)p->out_type : base_type;
    const loft_type_traits *tt = loft_type_get(t);
    *fallback = !tt || !tt->can_quantize || n_in % tt->block_size != 0;
    return *fallback ? LOFT_TYPE_F16 : t;
}

/* Dequantizes src (a base tensor of shape (n_out, n_in)), adds every
 * adapter's module (layer, kind), quantizes to *out_type and hands the
 * buffer to the writer. */
static loft_code merge_tensor(merge_ctx *c, gguf_writer *w, const char *out_name,
                              const gguf_tensor_info *src, int32_t layer, lora_kind kind,
                              merge_summary *sum, loft_status *st)
{
    const int64_t n_in = src->ne[0], n_out = src->ne[1];
    const char *name = out_name;
    const loft_type_traits *bt = loft_type_get(src->type);
    if (!bt || !bt->can_dequantize)
        return loft_fail(st, LOFT_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s, which loft cannot "
                         "dequantize for merging", c->base_path, name, bt ? bt->name : "?");
    bool fallback;
    const uint32_t ot = merged_type(c->p, src->type, n_in, &fallback);
    const size_t in_row = loft_type_row_size(src->type, n_in);
    const size_t out_row = loft_type_row_size(ot, n_in);
    if (in_row == 0 || out_row == 0 || (uint64_t)n_out > SIZE_MAX / out_row ||
        (uint64_t)n_out > SIZE_MAX / sizeof(float) / (uint64_t)n_in ||
        in_row * (uint64_t)n_out != src->nbytes)
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: tensor '%s' has an impossible size",
                         c->base_path, name);
    float *W = malloc((size_t)n_out * (size_t)n_in * sizeof *W);
    void *out = malloc((size_t)n_out * out_row);
    void **nb = realloc(c->bufs, (c->n_bufs + 1) * sizeof *nb);
    if (nb) c->bufs = nb;
    if (!W || !out || !nb) {
        free(W);
        free(out);
        return loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory merging '%s'", c->base_path, name);
    }
    c->bufs[c->n_bufs++] = out;
    const uint8_t *sp = src->data;
    for (int64_t o = 0; o < n_out; o++)
        loft_dequantize_row(src->type, sp + (size_t)o * in_row, W + o * n_in, n_in);
    for (size_t i = 0; i < c->n_sets; i++) {
        const lora_set *s = &c->sets[i];
        const lora_module *m = lora_set_find(s, layer, kind);
        if (!m) continue;
        if (m->n_in != n_in || m->n_out != n_out) {
            free(W);
            return loft_fail(st, LOFT_ERR_FORMAT,
                             "%s: module for '%s' is (%lld x %lld) but the base tensor is "
                             "(%lld x %lld)",
                             c->p->adapters[i].path, name, (long long)m->n_out,
                             (long long)m->n_in, (long long)n_out, (long long)n_in);
        }
        add_low_rank(W, m, s->rank, c->p->adapters[i].scale * s->scale);
    }
    uint8_t *op = out;
    for (int64_t o = 0; o < n_out; o++)
        loft_quantize_row(ot, W + o * n_in, op + (size_t)o * out_row, n_in);
    free(W);
    const int64_t ne[2] = {n_in, n_out};
    loft_code rc = gguf_writer_add_tensor(w, name, ot, 2, ne, out, (uint64_t)n_out * out_row);
    if (rc != LOFT_OK)
        return loft_fail(st, rc, "%s: cannot add tensor '%s' (%s)", c->base_path, name,
                         loft_code_name(rc));
    sum->n_merged++;
    sum->n_fallback += fallback;
    sum->n_params_changed += n_in * n_out;
    return LOFT_OK;
}

static bool adapted(const merge_ctx *c, int32_t layer, lora_kind kind)
{
    for (size_t i = 0; i < c->n_sets; i++)
        if (lora_set_find(&c->sets[i], layer, kind)) return true;
    return false;
}

/* Every module of every adapter must meet a tensor of the base. */
static loft_code check_coverage(const merge_ctx *c, loft_status *st)
{
    char name[128];
    for (size_t i = 0; i < c->n_sets; i++)
        for (size_t j = 0; j < c->sets[i].n_mods; j++) {
            const lora_module *m = &c->sets[i].mods[j];
            if (m->kind == LORA_OUTPUT) continue; /* token_embd stands in when tied */
            snprintf(name, sizeof name, "blk.%d.%s.weight", m->layer,
                     lora_kind_tensor_name(m->kind));
            const gguf_tensor_info *ti = gguf_find_tensor(c->g, name);
            if (!ti || ti->n_dims != 2 || ti->ne[0] != m->n_in || ti->ne[1] != m->n_out)
                return loft_fail(st, LOFT_ERR_FORMAT,
                                 "%s: adapts '%s', which the base %s does not have with shape "
                                 "[%lld, %lld]",
                                 c->p->adapters[i].path, name, c->base_path, (long long)m->n_in,
                                 (long long)m->n_out);
        }
    return LOFT_OK;
}

static loft_code write_merged(merge_ctx *c, const char *out_path, merge_summary *sum,
                              loft_status *st)
{
    const gguf_file *g = c->g;
    gguf_writer *w = gguf_writer_init(g->alignment);
    if (!w) return loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory", out_path);
    loft_code rc = LOFT_OK;
    char name[256];
    for (uint64_t i = 0; i < g->n_kv && rc == LOFT_OK; i++) {
        const gguf_kv *kv = &g->kv[i];
        if (kv->key.len >= sizeof name) {
            rc = loft_fail(st, LOFT_ERR_FORMAT, "%s: metadata key %llu is too long", c->base_path,
                           (unsigned long long)i);
            break;
        }
        memcpy(name, kv->key.data, (size_t)kv->key.len);
        name[kv->key.len] = '\0';
        loft_code r = gguf_writer_set_value(w, name, &kv->value);
        if (r != LOFT_OK) rc = loft_fail(st, r, "%s: cannot copy key '%s'", c->base_path, name);
    }
    bool have_output = gguf_find_tensor(g, "output.weight") != NULL;
    for (uint64_t i = 0; i < g->n_tensors && rc == LOFT_OK; i++) {
        const gguf_tensor_info *ti = &g->tensors[i];
        if (ti->name.len >= sizeof name) {
            rc = loft_fail(st, LOFT_ERR_FORMAT, "%s: tensor name %llu is too long", c->base_path,
                           (unsigned long long)i);
            break;
        }
        memcpy(name, ti->name.data, (size_t)ti->name.len);
        name[ti->name.len] = '\0';
        int32_t layer;
        lora_kind kind;
        if (ti->n_dims == 2 && tensor_kind(name, &layer, &kind) && adapted(c, layer, kind)) {
            rc = merge_tensor(c, w, name, ti, layer, kind, sum, st);
        } else {
            loft_code r = gguf_writer_add_tensor(w, name, ti->type, ti->n_dims, ti->ne, ti->data,
                                                 ti->nbytes);
            if (r != LOFT_OK) rc = loft_fail(st, r, "%s: cannot copy tensor '%s'", c->base_path, name);
        }
        sum->n_tensors += rc == LOFT_OK;
    }
    if (rc == LOFT_OK && !have_output && adapted(c, -1, LORA_OUTPUT)) {
        /* Tied embeddings: the adapted output matrix becomes its own tensor. */
        const gguf_tensor_info *te = gguf_find_tensor(g, "token_embd.weight");
        if (!te || te->n_dims != 2)
            rc = loft_fail(st, LOFT_ERR_FORMAT, "%s: the output matrix is adapted but the base has "
                           "neither output.weight nor token_embd.weight", c->base_path);
        else
            rc = merge_tensor(c, w, "output.weight", te, -1, LORA_OUTPUT, sum, st);
        sum->n_tensors += rc == LOFT_OK;
    }
    if (rc == LOFT_OK) rc = gguf_writer_write(w, out_path, st);
    gguf_writer_free(w);
    return rc;
}

loft_code merge_model(const char *base_path, const merge_params *p, const char *out_path,
                      merge_summary *sum, loft_status *st)
{
    merge_summary local;
    if (!sum) sum = &local;
    memset(sum, 0, sizeof *sum);
    if (!p || p->n_adapters == 0)
        return loft_fail(st, LOFT_ERR_ARG, "merge: no adapter given (--lora FILE)");
    if (p->out_type >= 0) {
        const loft_type_traits *tt = loft_type_get((uint32_t)p->out_type);
        /* Q8_1 and Q8_K hold activations; llama.cpp has no weight kernels for them. */
        if (!tt || !tt->can_quantize || p->out_type == LOFT_TYPE_Q8_1 ||
            p->out_type == LOFT_TYPE_Q8_K)
            return loft_fail(st, LOFT_ERR_ARG, "merge: loft cannot write weights of type %s",
                             tt ? tt->name : "?");
    }
    merge_ctx c = {.base_path = base_path, .p = p};
    loft_code rc = gguf_open(&c.g, base_path, st);
    if (rc != LOFT_OK) return rc;
    char arch[64];
    lora_dims dims;
    rc = dims_from_gguf(c.g, base_path, arch, sizeof arch, &dims, st);
    if (rc == LOFT_OK) {
        c.sets = calloc(p->n_adapters, sizeof *c.sets);
        if (!c.sets) rc = loft_fail(st, LOFT_ERR_NOMEM, "merge: out of memory");
    }
    for (size_t i = 0; rc == LOFT_OK && i < p->n_adapters; i++) {
        rc = adapter_load(&c.sets[i], p->adapters[i].path, &dims, arch, st);
        if (rc == LOFT_OK) c.n_sets++;
    }
    if (rc == LOFT_OK) rc = check_coverage(&c, st);
    if (rc == LOFT_OK) rc = write_merged(&c, out_path, sum, st);
    for (size_t i = 0; i < c.n_sets; i++)
        lora_set_free(&c.sets[i]);
    free(c.sets);
    for (size_t i = 0; i < c.n_bufs; i++)
        free(c.bufs[i]);
    free(c.bufs);
    gguf_close(c.g);
    return rc;
}
