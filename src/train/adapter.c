/* adapter.c - LoRA adapters in llama.cpp's GGUF format (see adapter.h). */
#include "train/adapter.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "gguf/gguf.h"
#include "quant/quant.h"
#include "train/trainer.h"

static void tensor_stem(char *buf, size_t cap, int32_t layer, lora_kind k)
{
    if (layer < 0)
        snprintf(buf, cap, "%s.weight", lora_kind_tensor_name(k));
    else
        snprintf(buf, cap, "blk.%d.%s.weight", layer, lora_kind_tensor_name(k));
}

loft_code adapter_save(const lora_set *s, const char *arch, const char *path, loft_status *st)
{
    gguf_writer *w = gguf_writer_init(0);
    if (!w) return loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory", path);
    loft_code c = gguf_writer_set_str(w, "general.type", "adapter");
    if (c == LOFT_OK) c = gguf_writer_set_str(w, "general.architecture", arch);
    if (c == LOFT_OK) c = gguf_writer_set_str(w, "general.name", "loft LoRA adapter");
    if (c == LOFT_OK) c = gguf_writer_set_str(w, "adapter.type", "lora");
    if (c == LOFT_OK)
        c = gguf_writer_set_float(w, "adapter.lora.alpha", GGUF_TYPE_FLOAT32, (double)s->alpha);
    char stem[96], name[128];
    for (size_t i = 0; i < s->n_mods && c == LOFT_OK; i++) {
        const lora_module *m = &s->mods[i];
        tensor_stem(stem, sizeof stem, m->layer, m->kind);
        const int64_t ne_a[2] = {m->n_in, s->rank}, ne_b[2] = {s->rank, m->n_out};
        snprintf(name, sizeof name, "%s.lora_a", stem);
        c = gguf_writer_add_tensor(w, name, LOFT_TYPE_F32, 2, ne_a, m->A,
                                   (uint64_t)m->n_in * (uint64_t)s->rank * sizeof(float));
        if (c != LOFT_OK) break;
        snprintf(name, sizeof name, "%s.lora_b", stem);
        c = gguf_writer_add_tensor(w, name, LOFT_TYPE_F32, 2, ne_b, m->B,
                                   (uint64_t)m->n_out * (uint64_t)s->rank * sizeof(float));
    }
    if (c != LOFT_OK) {
        gguf_writer_free(w);
        return loft_fail(st, c, "%s: cannot build the adapter (%s)", path, loft_code_name(c));
    }
    c = gguf_writer_write(w, path, st);
    gguf_writer_free(w);
    return c;
}

/* Splits "blk.N.<module>.weight.lora_a" into layer, kind and a/b. */
static bool parse_name(const char *name, size_t len, int32_t *layer, lora_kind *kind, int *is_b)
{
    char buf[160];
    if (len >= sizeof buf) return false;
    memcpy(buf, name, len);
    buf[len] = '\0';
    size_t n = len;
    if (n > 7 && !strcmp(buf + n - 7, ".lora_a"))
        *is_b = 0;
    else if (n > 7 && !strcmp(buf + n - 7, ".lora_b"))
        *is_b = 1;
    else
        return false;
    n -= 7;
    buf[n] = '\0';
    if (n < 8 || strcmp(buf + n - 7, ".weight")) return false;
    buf[n - 7] = '\0';
    const char *mod = buf;
    *layer = -1;
    if (!strncmp(buf, "blk.", 4)) {
        char *end = NULL;
        long l = strtol(buf + 4, &end, 10);
        if (end == buf + 4 || *end != '.' || l < 0 || l > 100000) return false;
        *layer = (int32_t)l;
        mod = end + 1;
    }
    for (int k = 0; k < LORA_KIND_COUNT; k++)
        if (!strcmp(mod, lora_kind_tensor_name((lora_kind)k))) {
            if ((k == LORA_OUTPUT) != (*layer < 0)) return false;
            *kind = (lora_kind)k;
            return true;
        }
    return false;
}

loft_code adapter_load(lora_set *out, const char *path, const lora_dims *dims, const char *arch,
                       loft_status *st)
{
    memset(out, 0, sizeof *out);
    gguf_file *g = NULL;
    uint8_t *present = NULL; /* per (layer, kind), as lora_set's index */
    loft_code c = gguf_open(&g, path, st);
    if (c != LOFT_OK) return c;
    gguf_str s;
    if (!gguf_get_str(g, "general.type", &s) || !gguf_str_eq(s, "adapter")) {
        c = loft_fail(st, LOFT_ERR_FORMAT, "%s: general.type is not \"adapter\"", path);
        goto done;
    }
    if (!gguf_get_str(g, "adapter.type", &s) || !gguf_str_eq(s, "lora")) {
        c = loft_fail(st, LOFT_ERR_FORMAT, "%s: adapter.type is not \"lora\"", path);
        goto done;
    }
    if (arch && (!gguf_get_str(g, "general.architecture", &s) || !gguf_str_eq(s, arch))) {
        c = loft_fail(st, LOFT_ERR_FORMAT, "%s: general.architecture is not the model's \"%s\"",
                      path, arch);
        goto done;
    }
    double alpha = 0;
    if (!gguf_get_float(g, "adapter.lora.alpha", &alpha)) {
        c = loft_fail(st, LOFT_ERR_FORMAT, "%s: adapter.lora.alpha is missing", path);
        goto done;
    }
    /* alpha / rank scales every update: NaN or infinite values would
     * silently poison the model. */
    if (!isfinite(alpha) || fabs(alpha) > 1e6) {
        c = loft_fail(st, LOFT_ERR_FORMAT,
                      "%s: adapter.lora.alpha is %g (must be finite, |alpha| <= 1e6)", path, alpha);
        goto done;
    }
    /* First pass: which modules, and the rank. Layers may be skipped (PEFT's
     * layers_to_transform); a module present needs both of its tensors. */
    uint32_t kinds = 0;
    int64_t rank = -1;
    const size_t n_index = ((size_t)dims->n_layer + 1) * LORA_KIND_COUNT;
    present = calloc(n_index, 1);
    if (!present) {
        c = loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor_info *ti = &g->tensors[i];
        int32_t layer;
        lora_kind kind;
        int is_b;
        if (!parse_name(ti->name.data, (size_t)ti->name.len, &layer, &kind, &is_b)) {
            c = loft_fail(st, LOFT_ERR_FORMAT, "%s: tensor '%.*s' is not a LoRA tensor loft knows",
                          path, (int)ti->name.len, ti->name.data);
            goto done;
        }
        if (ti->type != LOFT_TYPE_F32 || ti->n_dims != 2 || layer >= dims->n_layer) {
            c = loft_fail(st, LOFT_ERR_FORMAT, "%s: tensor '%.*s' must be 2-D F32 of a layer < %d",
                          path, (int)ti->name.len, ti->name.data, dims->n_layer);
            goto done;
        }
        const int64_t r = is_b ? ti->ne[0] : ti->ne[1];
        const int64_t want = is_b ? dims->n_out[kind] : dims->n_in[kind];
        const int64_t have = is_b ? ti->ne[1] : ti->ne[0];
        if (have != want || (rank >= 0 && r != rank) || r < 1 || r > 65536) {
            c = loft_fail(
                st, LOFT_ERR_FORMAT,
                "%s: tensor '%.*s' has shape [%lld, %lld]; expected %s %lld and rank %lld", path,
                (int)ti->name.len, ti->name.data, (long long)ti->ne[0], (long long)ti->ne[1],
                is_b ? "n_out" : "n_in", (long long)want, (long long)(rank >= 0 ? rank : r));
            goto done;
        }
        rank = r;
        kinds |= 1u << kind;
        present[(size_t)(layer + 1) * LORA_KIND_COUNT + (size_t)kind] = 1;
    }
    if (rank < 0) {
        c = loft_fail(st, LOFT_ERR_FORMAT, "%s: no LoRA tensor", path);
        goto done;
    }
    /* llama.cpp reads alpha 0 as "no scaling" (scale 1): alpha = rank. */
    if (alpha == 0.0) alpha = (double)rank;
    c = lora_set_init_some(out, dims, kinds, present, (int32_t)rank, (float)alpha, st);
    if (c != LOFT_OK) goto done;
    /* Second pass: every module of the set must have both tensors. */
    char stem[96], name[128];
    for (size_t i = 0; i < out->n_mods; i++) {
        lora_module *m = &out->mods[i];
        tensor_stem(stem, sizeof stem, m->layer, m->kind);
        for (int b = 0; b < 2; b++) {
            snprintf(name, sizeof name, "%s.lora_%c", stem, b ? 'b' : 'a');
            const gguf_tensor_info *ti = gguf_find_tensor(g, name);
            if (!ti) {
                c = loft_fail(st, LOFT_ERR_FORMAT, "%s: tensor '%s' is missing", path, name);
                lora_set_free(out);
                goto done;
            }
            memcpy(b ? m->B : m->A, ti->data, (size_t)ti->nbytes);
        }
    }
done:
    free(present);
    gguf_close(g);
    return c;
}

loft_code adapter_copy_into(lora_set *dst, const lora_set *src, const char *what, loft_status *st)
{
    if (dst->rank != src->rank)
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: rank %d differs from --lora-rank %d", what,
                         src->rank, dst->rank);
    for (size_t i = 0; i < src->n_mods; i++) {
        const lora_module *sm = &src->mods[i];
        lora_module *dm = lora_set_find(dst, sm->layer, sm->kind);
        if (!dm || dm->n_in != sm->n_in || dm->n_out != sm->n_out)
            return loft_fail(st, LOFT_ERR_FORMAT, "%s: module %s of layer %d is not trained here",
                             what, lora_kind_tensor_name(sm->kind), sm->layer);
        memcpy(dm->A, sm->A, (size_t)sm->n_in * (size_t)src->rank * sizeof(float));
        memcpy(dm->B, sm->B, (size_t)sm->n_out * (size_t)src->rank * sizeof(float));
    }
    return LOFT_OK;
}

/* ---- adapters at inference --------------------------------------------- */

loft_code lora_stack_add(lora_stack *s, const char *path, float scale, const loft_model *m,
                         loft_status *st)
{
    lora_dims dims;
    trainer_lora_dims(m, &dims);
    lora_set set;
    loft_code c = adapter_load(&set, path, &dims, model_get_hparams(m)->arch_name, st);
    if (c != LOFT_OK) return c;
    lora_set *ns = realloc(s->sets, (s->n + 1) * sizeof *ns);
    if (ns) s->sets = ns;
    float *sc = ns ? realloc(s->scales, (s->n + 1) * sizeof *sc) : NULL;
    if (sc) s->scales = sc;
    if (!ns || !sc) {
        lora_set_free(&set);
        return loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory", path);
    }
    s->sets[s->n] = set;
    s->scales[s->n] = scale;
    s->n++;
    return LOFT_OK;
}

static void stack_apply(void *ctx, int32_t layer, int32_t which, float *y, const float *x,
                        int32_t T)
{
    lora_stack *s = ctx;
    for (size_t i = 0; i < s->n; i++) {
        const lora_set *set = &s->sets[i];
        const lora_module *mod = lora_set_find(set, layer, (lora_kind)which);
        if (!mod) continue;
        const size_t need = (size_t)T * (size_t)set->rank;
        if (need > s->u_cap) {
            /* The forward cannot fail: on allocation failure the adapter
             * is skipped for this chunk (never expected: chunks are small). */
            float *u = realloc(s->u, need * sizeof *u);
            if (!u) continue;
            s->u = u;
            s->u_cap = need;
        }
        lora_forward(y, s->u, x, mod, set->rank, set->scale * s->scales[i], T);
    }
}

loft_code lora_stack_attach(lora_stack *s, loft_model *m, loft_status *st)
{
    const model_hparams *hp = model_get_hparams(m);
    if (hp->arch != MODEL_ARCH_LLAMA)
        return loft_fail(st, LOFT_ERR_UNSUPPORTED,
                         "LoRA adapters at inference are supported for llama models, not %s",
                         hp->arch_name);
    size_t need = 64u * 64u;
    s->u = malloc(need * sizeof *s->u);
    if (!s->u) return loft_fail(st, LOFT_ERR_NOMEM, "out of memory");
    s->u_cap = need;
    model_set_adapter(m, stack_apply, s);
    return LOFT_OK;
}

void lora_stack_free(lora_stack *s)
{
    for (size_t i = 0; i < s->n; i++)
        lora_set_free(&s->sets[i]);
    free(s->sets);
    free(s->scales);
    free(s->u);
    memset(s, 0, sizeof *s);
}
