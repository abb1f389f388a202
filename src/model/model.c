/* model.c - loading (hyperparameters, tensor views) and the forward driver. */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "model/model_impl.h"
#include "model/validate.h"
#include "quant/quant.h"

/* Limits that keep every size computed from the hyperparameters far from
 * overflow; real models are orders of magnitude below them. */
#define MODEL_MAX_LAYER 4096
#define MODEL_MAX_WIDTH (1 << 20)
#define MODEL_MAX_VOCAB (1 << 24)

typedef struct arch_entry {
    const char *name;
    model_arch arch;
    loft_code (*load)(loft_model *m, loft_status *st);
} arch_entry;

static const arch_entry ARCHES[] = {
    {"llama", MODEL_ARCH_LLAMA, llama_load},
    {"qwen2", MODEL_ARCH_QWEN2, qwen_load},
    {"qwen3", MODEL_ARCH_QWEN3, qwen_load},
    {"gemma3", MODEL_ARCH_GEMMA3, gemma3_load},
};
#define N_ARCHES ((int)(sizeof ARCHES / sizeof ARCHES[0]))

/* ---- keys -------------------------------------------------------------- */

static void model_key_name(const loft_model *m, const char *suffix, char *buf, size_t n)
{
    snprintf(buf, n, "%s.%s", m->hp.arch_name, suffix);
}

loft_code model_key_int(const loft_model *m, const char *suffix, bool optional, int32_t *out,
                        loft_status *st)
{
    char key[160];
    model_key_name(m, suffix, key, sizeof key);
    int64_t v;
    if (gguf_find_key(m->gguf, key) < 0) {
        if (optional) return LOFT_OK;
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: required key %s is missing", m->gguf->path, key);
    }
    if (!gguf_get_int(m->gguf, key, &v) || v < INT32_MIN || v > INT32_MAX)
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: key %s is not a 32-bit integer", m->gguf->path,
                         key);
    *out = (int32_t)v;
    return LOFT_OK;
}

loft_code model_key_float(const loft_model *m, const char *suffix, bool optional, float *out,
                          loft_status *st)
{
    char key[160];
    model_key_name(m, suffix, key, sizeof key);
    double v;
    if (gguf_find_key(m->gguf, key) < 0) {
        if (optional) return LOFT_OK;
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: required key %s is missing", m->gguf->path, key);
    }
    if (!gguf_get_float(m->gguf, key, &v) || !isfinite(v))
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: key %s is not a finite number", m->gguf->path,
                         key);
    *out = (float)v;
    return LOFT_OK;
}

/* ---- tensors ----------------------------------------------------------- */

loft_code model_weight_get(loft_model *m, model_weight *w, const char *name, int64_t ne0,
                           int64_t ne1, bool is_2d, bool optional, bool f32_only, loft_status *st)
{
    memset(w, 0, sizeof *w);
    const char *path = m->gguf->path;
    const gguf_tensor_info *t = gguf_find_tensor(m->gguf, name);
    if (!t) {
        if (optional) return LOFT_OK;
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: tensor %s is missing", path, name);
    }
    int64_t want1 = is_2d ? ne1 : 1;
    if (t->ne[0] != ne0 || t->ne[1] != want1 || t->ne[2] != 1 || t->ne[3] != 1) {
        if (is_2d)
            return loft_fail(st, LOFT_ERR_FORMAT,
                             "%s: tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]",
                             path, name, (long long)t->ne[0], (long long)t->ne[1],
                             (long long)t->ne[2], (long long)t->ne[3], (long long)ne0,
                             (long long)ne1);
        return loft_fail(st, LOFT_ERR_FORMAT,
                         "%s: tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld]", path,
                         name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                         (long long)t->ne[3], (long long)ne0);
    }
    const loft_type_traits *tr = loft_type_get(t->type);
    if (!tr || !tr->can_dequantize)
        return loft_fail(st, LOFT_ERR_UNSUPPORTED, "%s: tensor %s has type %s, which loft cannot read",
                         path, name, tr ? tr->name : "unknown");
    if (f32_only && t->type != LOFT_TYPE_F32)
        return loft_fail(st, LOFT_ERR_UNSUPPORTED, "%s: tensor %s has type %s, expected F32", path,
                         name, tr->name);
    size_t row_bytes = loft_type_row_size(t->type, ne0);
    if (row_bytes == 0)
        return loft_fail(st, LOFT_ERR_FORMAT,
                         "%s: tensor %s: row length %lld is not a multiple of the %s block size %u",
                         path, name, (long long)ne0, tr->name, tr->block_size);
    if ((uint64_t)row_bytes * (uint64_t)want1 > t->nbytes)
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: tensor %s: %llu data bytes, expected %llu", path,
                         name, (unsigned long long)t->nbytes,
                         (unsigned long long)((uint64_t)row_bytes * (uint64_t)want1));
    /* F32 rows are read in place as floats: the data must be float-aligned. */
    if (t->type == LOFT_TYPE_F32 && ((uintptr_t)t->data % sizeof(float)) != 0)
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: tensor %s: F32 data is not 4-byte aligned", path,
                         name);
    w->data = t->data;
    w->type = t->type;
    w->n_in = ne0;
    w->n_out = want1;
    w->row_bytes = row_bytes;
    return LOFT_OK;
}

loft_code model_layer_weight_get(loft_model *m, model_weight *w, int32_t il, const char *suffix,
                                 bool bias, int64_t ne0, int64_t ne1, bool is_2d, bool optional,
                                 bool f32_only, loft_status *st)
{
    char name[160];
    snprintf(name, sizeof name, "blk.%d.%s.%s", (int)il, suffix, bias ? "bias" : "weight");
    return model_weight_get(m, w, name, ne0, ne1, is_2d, optional, f32_only, st);
}

/* ---- hyperparameters --------------------------------------------------- */

static loft_code model_check_range(const loft_model *m, const char *what, int64_t v, int64_t lo,
                                   int64_t hi, loft_status *st)
{
    if (v < lo || v > hi)
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s.%s is %lld, expected a value in [%lld, %lld]",
                         m->gguf->path, m->hp.arch_name, what, (long long)v, (long long)lo,
                         (long long)hi);
    return LOFT_OK;
}

/* Rope scaling from rope.scaling.type / rope.scaling.factor (or the older
 * rope.scale_linear); llama-3 scaling arrives as the rope_freqs tensor. */
static loft_code model_load_rope_scaling(loft_model *m, loft_status *st)
{
    model_hparams *hp = &m->hp;
    const char *path = m->gguf->path;
    char key[160];
    float factor = 0.0f;
    loft_code c;
    hp->rope_freq_scale = 1.0f;
    hp->rope_scaling = ROPE_SCALING_NONE;
    if ((c = model_key_float(m, "rope.scale_linear", true, &factor, st))) return c;
    if ((c = model_key_float(m, "rope.scaling.factor", true, &factor, st))) return c;
    model_key_name(m, "rope.scaling.type", key, sizeof key);
    gguf_str type = {0, NULL};
    bool has_type = gguf_get_str(m->gguf, key, &type);
    if (has_type && !gguf_str_eq(type, "none") && !gguf_str_eq(type, "linear"))
        return loft_fail(st, LOFT_ERR_UNSUPPORTED,
                         "%s: %s is \"%.*s\"; loft knows none, linear (and llama-3 scaling through "
                         "rope_freqs.weight)",
                         path, key, (int)(type.len > 64 ? 64 : type.len), type.data);
    if (has_type && gguf_str_eq(type, "none")) return LOFT_OK;
    if (factor != 0.0f && factor != 1.0f) {
        if (!(factor > 0.0f))
            return loft_fail(st, LOFT_ERR_FORMAT, "%s: rope scaling factor %g is not positive",
                             path, (double)factor);
        hp->rope_scaling = ROPE_SCALING_LINEAR;
        hp->rope_freq_scale = 1.0f / factor;
    }
    return LOFT_OK;
}

loft_code model_load_common(loft_model *m, loft_status *st)
{
    model_hparams *hp = &m->hp;
    const char *path = m->gguf->path;
    loft_code c;
    if ((c = model_key_int(m, "block_count", false, &hp->n_layer, st)) ||
        (c = model_key_int(m, "embedding_length", false, &hp->n_embd, st)) ||
        (c = model_key_int(m, "feed_forward_length", false, &hp->n_ff, st)) ||
        (c = model_key_int(m, "attention.head_count", false, &hp->n_head, st)))
        return c;
    hp->n_head_kv = hp->n_head;
    hp->n_ctx_train = 0;
    if ((c = model_key_int(m, "attention.head_count_kv", true, &hp->n_head_kv, st)) ||
        (c = model_key_int(m, "context_length", true, &hp->n_ctx_train, st)) ||
        (c = model_key_float(m, "attention.layer_norm_rms_epsilon", false, &hp->norm_eps, st)))
        return c;
    if ((c = model_check_range(m, "block_count", hp->n_layer, 1, MODEL_MAX_LAYER, st)) ||
        (c = model_check_range(m, "embedding_length", hp->n_embd, 1, MODEL_MAX_WIDTH, st)) ||
        (c = model_check_range(m, "feed_forward_length", hp->n_ff, 1, MODEL_MAX_WIDTH, st)) ||
        (c = model_check_range(m, "attention.head_count", hp->n_head, 1, 4096, st)) ||
        (c = model_check_range(m, "attention.head_count_kv", hp->n_head_kv, 1, hp->n_head, st)))
        return c;
    if (hp->n_head % hp->n_head_kv != 0)
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: head_count %d is not a multiple of head_count_kv %d",
                         path, (int)hp->n_head, (int)hp->n_head_kv);
    hp->head_dim = hp->n_embd / hp->n_head;
    if ((c = model_key_int(m, "attention.key_length", true, &hp->head_dim, st))) return c;
    hp->head_dim_v = hp->head_dim;
    if ((c = model_key_int(m, "attention.value_length", true, &hp->head_dim_v, st))) return c;
    if ((c = model_check_range(m, "attention.key_length", hp->head_dim, 2, 65536, st)) ||
        (c = model_check_range(m, "attention.value_length", hp->head_dim_v, 1, 65536, st)))
        return c;
    hp->n_rot = hp->head_dim;
    if ((c = model_key_int(m, "rope.dimension_count", true, &hp->n_rot, st))) return c;
    if (hp->n_rot < 2 || hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0)
        return loft_fail(st, LOFT_ERR_FORMAT,
                         "%s: %s.rope.dimension_count %d must be even and in [2, head_dim %d]", path,
                         hp->arch_name, (int)hp->n_rot, (int)hp->head_dim);
    hp->rope_freq_base = 10000.0f;
    hp->rope_freq_base_swa = 10000.0f;
    if ((c = model_key_float(m, "rope.freq_base", true, &hp->rope_freq_base, st)) ||
        (c = model_key_float(m, "rope.freq_base_swa", true, &hp->rope_freq_base_swa, st)))
        return c;
    if (!(hp->rope_freq_base > 0.0f) || !(hp->rope_freq_base_swa > 0.0f))
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s.rope.freq_base must be positive", path,
                         hp->arch_name);
    if (!(hp->norm_eps >= 0.0f))
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s.attention.layer_norm_rms_epsilon is negative",
                         path, hp->arch_name);
    if ((c = model_load_rope_scaling(m, st))) return c;
    hp->sliding_window = 0;
    hp->attn_softcap = 0.0f;
    hp->final_softcap = 0.0f;
    if ((c = model_key_float(m, "attn_logit_softcapping", true, &hp->attn_softcap, st)) ||
        (c = model_key_float(m, "final_logit_softcapping", true, &hp->final_softcap, st)))
        return c;
    if (hp->attn_softcap < 0.0f || hp->final_softcap < 0.0f)
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: a logit softcapping value is negative", path);
    hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
    hp->embd_scale = 1.0f;

    /* The vocabulary size is the number of embedding rows. */
    const gguf_tensor_info *te = gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!te) return loft_fail(st, LOFT_ERR_FORMAT, "%s: tensor token_embd.weight is missing", path);
    if (te->ne[1] < 1 || te->ne[1] > MODEL_MAX_VOCAB)
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: token_embd.weight has %lld rows, expected 1..%d",
                         path, (long long)te->ne[1], MODEL_MAX_VOCAB);
    hp->n_vocab = (int32_t)te->ne[1];
    int32_t vocab_key = hp->n_vocab;
    if ((c = model_key_int(m, "vocab_size", true, &vocab_key, st))) return c;
    if (vocab_key != hp->n_vocab)
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s.vocab_size %d differs from token_embd rows %d",
                         path, hp->arch_name, (int)vocab_key, (int)hp->n_vocab);

    const int64_t C = hp->n_embd;
    if ((c = model_weight_get(m, &m->tok_embd, "token_embd.weight", C, hp->n_vocab, true, false,
                              false, st)) ||
        (c = model_weight_get(m, &m->output_norm, "output_norm.weight", C, 1, false, false, true,
                              st)) ||
        (c = model_weight_get(m, &m->output, "output.weight", C, hp->n_vocab, true, true, false,
                              st)) ||
        (c = model_weight_get(m, &m->rope_freqs, "rope_freqs.weight", hp->n_rot / 2, 1, false, true,
                              true, st)))
        return c;
    hp->tied_output = m->output.data == NULL;
    if (hp->tied_output) m->output = m->tok_embd;
    if (m->rope_freqs.data) hp->rope_scaling = ROPE_SCALING_LLAMA3;

    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    m->layer_swa = calloc((size_t)hp->n_layer, sizeof *m->layer_swa);
    if (!m->layers || !m->layer_swa)
        return loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory for %d layers", path,
                         (int)hp->n_layer);
    return LOFT_OK;
}

loft_code model_load_common_layers(loft_model *m, loft_status *st)
{
    const model_hparams *hp = &m->hp;
    const int64_t C = hp->n_embd, F = hp->n_ff;
    const int64_t qd = (int64_t)hp->n_head * hp->head_dim;
    const int64_t kd = (int64_t)hp->n_head_kv * hp->head_dim;
    const int64_t vd = (int64_t)hp->n_head_kv * hp->head_dim_v;
    const int64_t od = (int64_t)hp->n_head * hp->head_dim_v;
    loft_code c;
    for (int32_t il = 0; il < hp->n_layer; il++) {
        model_layer *L = &m->layers[il];
        if ((c = model_layer_weight_get(m, &L->attn_norm, il, "attn_norm", false, C, 1, false,
                                        false, true, st)) ||
            (c = model_layer_weight_get(m, &L->wq, il, "attn_q", false, C, qd, true, false, false,
                                        st)) ||
            (c = model_layer_weight_get(m, &L->wk, il, "attn_k", false, C, kd, true, false, false,
                                        st)) ||
            (c = model_layer_weight_get(m, &L->wv, il, "attn_v", false, C, vd, true, false, false,
                                        st)) ||
            (c = model_layer_weight_get(m, &L->wo, il, "attn_output", false, od, C, true, false,
                                        false, st)) ||
            (c = model_layer_weight_get(m, &L->bq, il, "attn_q", true, qd, 1, false, true, true,
                                        st)) ||
            (c = model_layer_weight_get(m, &L->bk, il, "attn_k", true, kd, 1, false, true, true,
                                        st)) ||
            (c = model_layer_weight_get(m, &L->bv, il, "attn_v", true, vd, 1, false, true, true,
                                        st)) ||
            (c = model_layer_weight_get(m, &L->bo, il, "attn_output", true, C, 1, false, true,
                                        true, st)) ||
            (c = model_layer_weight_get(m, &L->ffn_norm, il, "ffn_norm", false, C, 1, false, false,
                                        true, st)) ||
            (c = model_layer_weight_get(m, &L->ffn_gate, il, "ffn_gate", false, C, F, true, false,
                                        false, st)) ||
            (c = model_layer_weight_get(m, &L->ffn_up, il, "ffn_up", false, C, F, true, false,
                                        false, st)) ||
            (c = model_layer_weight_get(m, &L->ffn_down, il, "ffn_down", false, F, C, true, false,
                                        false, st)))
            return c;
    }
    return LOFT_OK;
}

/* ---- scratch ----------------------------------------------------------- */

static void model_scratch_free(model_scratch *s)
{
    free(s->x);
    free(s->xn);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->att);
    free(s->proj);
    free(s->gate);
    free(s->up);
    free(s->row);
    free(s->rope);
    free(s->scores);
    free(s->xq);
    memset(s, 0, sizeof *s);
}

static float *model_alloc_floats(int64_t rows, int64_t cols)
{
    /* rows <= MODEL_CHUNK and cols <= 4096 * 65536: no size_t overflow. */
    return malloc((size_t)rows * (size_t)cols * sizeof(float));
}

static loft_code model_scratch_init(loft_model *m, loft_status *st)
{
    const model_hparams *hp = &m->hp;
    model_scratch *s = &m->s;
    const int64_t T = MODEL_CHUNK;
    const int64_t qd = (int64_t)hp->n_head * hp->head_dim;
    const int64_t kd = (int64_t)hp->n_head_kv * hp->head_dim;
    const int64_t vd = (int64_t)hp->n_head_kv * hp->head_dim_v;
    const int64_t od = (int64_t)hp->n_head * hp->head_dim_v;
    int64_t widest = hp->n_embd;
    if (od > widest) widest = od;
    if (hp->n_ff > widest) widest = hp->n_ff;
    s->x = model_alloc_floats(T, hp->n_embd);
    s->xn = model_alloc_floats(T, hp->n_embd);
    s->q = model_alloc_floats(T, qd);
    s->k = model_alloc_floats(T, kd);
    s->v = model_alloc_floats(T, vd);
    s->att = model_alloc_floats(T, od);
    s->proj = model_alloc_floats(T, hp->n_embd);
    s->gate = model_alloc_floats(T, hp->n_ff);
    s->up = model_alloc_floats(T, hp->n_ff);
    s->row = model_alloc_floats(1, widest);
    s->rope = model_alloc_floats(T, hp->n_rot);
    /* F32 rows are the widest activation format (4 bytes a value). */
    s->xq_bytes = (size_t)T * (size_t)widest * sizeof(float);
    s->xq = malloc(s->xq_bytes);
    m->widest = widest;
    if (!s->x || !s->xn || !s->q || !s->k || !s->v || !s->att || !s->proj || !s->gate || !s->up ||
        !s->row || !s->rope || !s->xq)
        return loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory for forward buffers", m->gguf->path);
    return LOFT_OK;
}

/* ---- load / free ------------------------------------------------------- */

loft_code model_load(loft_model **out, const char *path, loft_status *st)
{
    *out = NULL;
    loft_model *m = calloc(1, sizeof *m);
    if (!m) return loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory", path);
    loft_code c = gguf_open(&m->gguf, path, st);
    if (c) {
        free(m);
        return c;
    }
    gguf_str arch;
    if (!gguf_get_str(m->gguf, "general.architecture", &arch)) {
        c = loft_fail(st, LOFT_ERR_FORMAT, "%s: key general.architecture is missing or not a string",
                      path);
        goto fail;
    }
    const arch_entry *e = NULL;
    for (int i = 0; i < N_ARCHES; i++)
        if (gguf_str_eq(arch, ARCHES[i].name)) e = &ARCHES[i];
    if (!e) {
        c = loft_fail(st, LOFT_ERR_UNSUPPORTED,
                      "%s: architecture \"%.*s\" is not supported (known: llama, qwen2, qwen3, gemma3)",
                      path, (int)(arch.len > 64 ? 64 : arch.len), arch.data);
        goto fail;
    }
    m->hp.arch = e->arch;
    m->hp.arch_name = e->name;
    if ((c = model_load_common(m, st)) || (c = model_validate_hparams(m, st)) ||
        (c = model_load_common_layers(m, st)) || (c = e->load(m, st)) ||
        (c = model_validate_tensors(m, st)) || (c = model_scratch_init(m, st)) ||
        (c = model_set_threads(m, 0, st)))
        goto fail;
    model_pack_weights(m);
    *out = m;
    return LOFT_OK;
fail:
    model_free(m);
    return c;
}

void model_free(loft_model *m)
{
    if (!m) return;
    model_scratch_free(&m->s);
    threadpool_free(m->pool);
    free(m->rows);
    free(m->layers);
    free(m->layer_swa);
    free(m->packed);
    free(m->vectors);
    gguf_close(m->gguf);
    free(m);
}

loft_code model_set_threads(loft_model *m, int n_threads, loft_status *st)
{
    if (n_threads <= 0) {
        /* LOFT_THREADS lets a driver that predates threads pick a count. */
        const char *env = getenv("LOFT_THREADS");
        n_threads = env && atoi(env) > 0 ? atoi(env) : threadpool_cpu_count();
    }
    if (n_threads > THREADPOOL_MAX_THREADS) n_threads = THREADPOOL_MAX_THREADS;
    if (!m->kt) m->kt = kernels_get();
    if (m->pool && threadpool_size(m->pool) == n_threads && m->rows) return LOFT_OK;
    threadpool_free(m->pool);
    m->pool = NULL;
    free(m->rows);
    m->rows = malloc((size_t)n_threads * (size_t)m->widest * sizeof(float));
    if (!m->rows)
        return loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory for %d threads' weight rows",
                         m->gguf->path, n_threads);
    if (n_threads == 1) return LOFT_OK;
    return threadpool_init(&m->pool, n_threads, st);
}

void model_set_f32_activations(loft_model *m, bool on)
{
    m->f32_act = on;
}

int model_get_threads(const loft_model *m)
{
    return threadpool_size(m->pool);
}

/* Products waiting for one pool run in model_matmuls. */
typedef struct matmul_batch {
    kernels_matmul_item items[MODEL_MATMULS_MAX];
    int n;
} matmul_batch;

static void matmul_batch_flush(loft_model *m, matmul_batch *b)
{
    if (b->n) kernels_matmul_xq_many(m->kt, m->pool, b->n, b->items);
    b->n = 0;
}

void model_matmuls(loft_model *m, const float *x, int32_t T, int n, const model_weight *const *ws,
                   float *const *ys)
{
    matmul_batch b = {.n = 0};
    kernels_xfmt held = KERNELS_X_F32; /* the format s.xq holds x in (F32: none yet) */
    size_t held_rs = 0;
    for (int i = 0; i < n; i++) {
        const model_weight *w = ws[i];
        const size_t rs = kernels_x_row_size(w->type, w->n_in);
        const kernels_weight kw = {w->data, w->type, w->n_in, w->n_out, w->row_bytes, w->packed};
        const kernels_xfmt f = kernels_x_format(w->type);
        if (m->f32_act || rs == 0 || !m->kt->dot[w->type]) {
            kernels_matmul_f32(m->kt, m->pool, ys[i], x, T, &kw, m->rows);
            continue;
        }
        const void *xq = x; /* F32 rows as they are: no copy */
        if (f != KERNELS_X_F32) {
            if (f != held || rs != held_rs) { /* the same x in one format is quantized once */
                matmul_batch_flush(m, &b);    /* those queued still read the old s.xq */
                model_quantize_x(m, w->type, x, T, w->n_in, m->s.xq);
                held = f;
                held_rs = rs;
            }
            xq = m->s.xq;
        }
        if (b.n == MODEL_MATMULS_MAX) matmul_batch_flush(m, &b);
        b.items[b.n++] = (kernels_matmul_item){ys[i], xq, rs, T, kw};
    }
    matmul_batch_flush(m, &b);
}

void model_matmul(loft_model *m, float *y, const float *x, const model_weight *w, int32_t T)
{
    model_matmuls(m, x, T, 1, &w, &y);
}

const model_hparams *model_get_hparams(const loft_model *m)
{
    return &m->hp;
}

bool model_layer_is_swa(const loft_model *m, int32_t il)
{
    return il >= 0 && il < m->hp.n_layer && m->layer_swa[il];
}

const gguf_file *model_gguf(const loft_model *m)
{
    return m->gguf;
}

/* ---- shared forward pieces --------------------------------------------- */

void model_attention(loft_model *m, kv_cache *kv, int32_t il, int32_t T, int32_t pos0)
{
    model_attention_scaled(m, kv, il, T, pos0, m->hp.attn_scale);
}

void model_attention_scaled(loft_model *m, kv_cache *kv, int32_t il, int32_t T, int32_t pos0,
                            float scale)
{
    const model_hparams *hp = &m->hp;
    model_scratch *s = &m->s;
    model_kv_store(m, kv, il, T, pos0);
    const void *K, *V;
    uint32_t kv_type;
    kv_cache_layer_raw(kv, il, &K, &V, &kv_type);
    const kernels_attn as = {
        .n_head = hp->n_head,
        .n_head_kv = hp->n_head_kv,
        .head_dim = hp->head_dim,
        .head_dim_v = hp->head_dim_v,
        .window = m->layer_swa[il] ? hp->sliding_window : 0,
        .scale = scale,
        .softcap = hp->attn_softcap,
        /* the 8-bit path follows ggml's roundings and order (its prompt
         * path when several tokens come at once); the F32 one stays close
         * to exact */
        .f16_products = m->f32_act ? KERNELS_ATTN_OWN
                        : T > 1    ? KERNELS_ATTN_GGML_BATCH
                                   : KERNELS_ATTN_GGML_DECODE,
    };
    kernels_attention(m->kt, m->pool, s->att, s->q, T, pos0, K, V, kv_type, &as, s->scores);
}

void model_output_logits(loft_model *m, float *x, int32_t T, float *logits, bool all_logits)
{
    const model_hparams *hp = &m->hp;
    const int64_t C = hp->n_embd;
    const float *rows = all_logits ? x : x + (size_t)(T - 1) * (size_t)C;
    const int32_t n = all_logits ? T : 1;
    rmsnorm_forward(m->s.xn, rows, weight_f32(&m->output_norm), n, C, hp->norm_eps);
    model_matmul(m, logits, m->s.xn, &m->output, n);
    if (m->adapter) m->adapter(m->adapter_ctx, -1, MODEL_PROJ_OUTPUT, logits, m->s.xn, n);
    if (hp->final_softcap > 0.0f)
        softcap_apply(logits, (int64_t)n * hp->n_vocab, hp->final_softcap);
}

/* ---- forward driver ---------------------------------------------------- */

loft_code model_forward(loft_model *m, kv_cache *kv, const int32_t *tokens, int32_t n_tokens,
                        float *logits, bool all_logits, loft_status *st)
{
    const model_hparams *hp = &m->hp;
    const char *path = m->gguf->path;
    if (n_tokens < 1 || !tokens || !logits)
        return loft_fail(st, LOFT_ERR_ARG, "%s: forward needs at least one token and a logits buffer",
                         path);
    if (kv_cache_n_layer(kv) != hp->n_layer ||
        kv_cache_k_width(kv) != hp->n_head_kv * hp->head_dim ||
        kv_cache_v_width(kv) != hp->n_head_kv * hp->head_dim_v)
        return loft_fail(st, LOFT_ERR_ARG, "%s: the kv cache was made for a model of another shape",
                         path);
    for (int32_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
            return loft_fail(st, LOFT_ERR_RANGE, "%s: token %d (at batch index %d) is outside [0, %d)",
                             path, (int)tokens[i], (int)i, (int)hp->n_vocab);
    const int32_t used = kv_cache_used(kv), size = kv_cache_size(kv);
    if (n_tokens > size - used)
        return loft_fail(st, LOFT_ERR_RANGE,
                         "%s: context overflow: %d tokens in the cache + %d new > n_ctx %d", path,
                         (int)used, (int)n_tokens, (int)size);
    const size_t n_scores = kernels_attention_scratch(m->pool, size);
    if (m->s.n_scores < n_scores) {
        float *sc = realloc(m->s.scores, n_scores * sizeof(float));
        if (!sc) return loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory for %d scores", path, size);
        m->s.scores = sc;
        m->s.n_scores = n_scores;
    }
    for (int32_t off = 0; off < n_tokens; off += MODEL_CHUNK) {
        const int32_t T = n_tokens - off < MODEL_CHUNK ? n_tokens - off : MODEL_CHUNK;
        const bool last = off + T == n_tokens;
        float *out = NULL;
        if (all_logits)
            out = logits + (size_t)off * (size_t)hp->n_vocab;
        else if (last)
            out = logits;
        m->forward(m, kv, tokens + off, T, used + off, out, all_logits);
        kv_cache_set_used(kv, used + off + T);
    }
    return LOFT_OK;
}

void model_add_rows(float *x, const float *y, int64_t n)
{
    /* four values read before any is written: the compiler may add them as
     * one vector without proving that x and y do not overlap */
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float a[4], b[4];
        memcpy(a, x + i, sizeof a);
        memcpy(b, y + i, sizeof b);
        _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) a[k] += b[k];
        memcpy(x + i, a, sizeof a);
    }
    for (; i < n; i++) x[i] += y[i];
}

void model_set_adapter(loft_model *m, model_adapter_fn fn, void *ctx)
{
    m->adapter = fn;
    m->adapter_ctx = fn ? ctx : NULL;
}
