/* bert.c - the BERT encoder: hyperparameters, tensor names, forward. */
#include "model/bert.h"

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "kernels/kernels.h"
#include "quant/quant.h"

typedef struct bert_linear {
    kernels_weight w;
    const float *b; /* n_out */
} bert_linear;

typedef struct bert_norm {
    const float *w, *b; /* n_embd each */
} bert_norm;

typedef struct bert_layer {
    bert_linear q, k, v, o, up, down;
    bert_norm attn_norm, out_norm;
} bert_layer;

/* The linear layers of a block: GGUF name and whether the input / output
 * width is n_ff (else n_embd). */
typedef struct bert_lin_spec {
    size_t offset; /* in bert_layer */
    const char *name;
    bool in_ff, out_ff;
} bert_lin_spec;

static const bert_lin_spec bert_lins[] = {
    {offsetof(bert_layer, q), "attn_q", false, false},
    {offsetof(bert_layer, k), "attn_k", false, false},
    {offsetof(bert_layer, v), "attn_v", false, false},
    {offsetof(bert_layer, o), "attn_output", false, false},
    {offsetof(bert_layer, up), "ffn_up", false, true},
    {offsetof(bert_layer, down), "ffn_down", true, false},
};

struct bert_model {
    gguf_file *g;
    wordpiece *wp;
    bert_hparams hp;
    const gguf_tensor_info *tok_embd, *pos_embd, *type_embd;
    bert_norm embd_norm;
    bert_layer *layers;
    const loft_kernels *kt;
};

/* ---- loading ------------------------------------------------------------- */

static loft_code bert_key_i32(const gguf_file *g, const char *key, int32_t lo, int32_t *out,
                              loft_status *st)
{
    int64_t v;
    if (!gguf_get_int(g, key, &v))
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s is missing or not an integer", g->path, key);
    if (v < lo || v > (1 << 24))
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s = %lld is outside [%d, %d]", g->path, key,
                         (long long)v, lo, 1 << 24);
    *out = (int32_t)v;
    return LOFT_OK;
}

/* The tensor `name` with shape (ne0, ne1) (ne1 = 1 for a vector). */
static loft_code bert_tensor(const gguf_file *g, const char *name, int64_t ne0, int64_t ne1,
                             const gguf_tensor_info **out, loft_status *st)
{
    const gguf_tensor_info *t = gguf_find_tensor(g, name);
    if (!t) return loft_fail(st, LOFT_ERR_FORMAT, "%s: tensor %s is missing", g->path, name);
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1)
        return loft_fail(st, LOFT_ERR_FORMAT,
                         "%s: tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]",
                         g->path, name, (long long)t->ne[0], (long long)t->ne[1],
                         (long long)t->ne[2], (long long)t->ne[3], (long long)ne0, (long long)ne1);
    if (ne1 == 1 && t->type != LOFT_TYPE_F32)
        return loft_fail(st, LOFT_ERR_UNSUPPORTED, "%s: tensor %s is %s, expected f32", g->path,
                         name, loft_type_get(t->type) ? loft_type_get(t->type)->name : "?");
    const loft_type_traits *tr = loft_type_get(t->type);
    if (!tr || loft_type_row_size(t->type, ne0) == 0)
        return loft_fail(st, LOFT_ERR_UNSUPPORTED,
                         "%s: tensor %s has type %u that loft cannot read "
                         "with rows of %lld",
                         g->path, name, t->type, (long long)ne0);
    *out = t;
    return LOFT_OK;
}

static loft_code bert_vec(const gguf_file *g, const char *name, int64_t n, const float **out,
                          loft_status *st)
{
    const gguf_tensor_info *t;
    loft_code c = bert_tensor(g, name, n, 1, &t, st);
    if (c) return c;
    *out = t->data;
    return LOFT_OK;
}

static loft_code bert_lin(const bert_model *m, const char *name, int64_t n_in, int64_t n_out,
                          bert_linear *l, loft_status *st)
{
    char key[96];
    const gguf_tensor_info *t;
    snprintf(key, sizeof key, "%s.weight", name);
    loft_code c = bert_tensor(m->g, key, n_in, n_out, &t, st);
    if (c) return c;
    if (!m->kt->dot[t->type] || kernels_x_row_size(t->type, n_in) == 0)
        return loft_fail(st, LOFT_ERR_UNSUPPORTED, "%s: tensor %s: type %s has no dot product",
                         m->g->path, key, loft_type_get(t->type)->name);
    l->w = (kernels_weight){t->data, t->type, n_in, n_out, loft_type_row_size(t->type, n_in), NULL};
    snprintf(key, sizeof key, "%s.bias", name);
    return bert_vec(m->g, key, n_out, &l->b, st);
}

static loft_code bert_norm_load(const bert_model *m, const char *name, bert_norm *nm,
                                loft_status *st)
{
    char key[96];
    snprintf(key, sizeof key, "%s.weight", name);
    loft_code c = bert_vec(m->g, key, m->hp.n_embd, &nm->w, st);
    if (c) return c;
    snprintf(key, sizeof key, "%s.bias", name);
    return bert_vec(m->g, key, m->hp.n_embd, &nm->b, st);
}

static loft_code bert_read_hparams(bert_model *m, loft_status *st)
{
    gguf_file *g = m->g;
    bert_hparams *hp = &m->hp;
    gguf_str arch = {9, "<missing>"};
    bool has = gguf_get_str(g, "general.architecture", &arch);
    if (!has || !gguf_str_eq(arch, "bert"))
        return loft_fail(st, LOFT_ERR_UNSUPPORTED,
                         "%s: general.architecture is %.*s, not an encoder (expected \"bert\")",
                         g->path, arch.len > 64 ? 64 : (int)arch.len, arch.data);
    loft_code c;
    if ((c = bert_key_i32(g, "bert.block_count", 1, &hp->n_layer, st)) ||
        (c = bert_key_i32(g, "bert.embedding_length", 1, &hp->n_embd, st)) ||
        (c = bert_key_i32(g, "bert.attention.head_count", 1, &hp->n_head, st)) ||
        (c = bert_key_i32(g, "bert.feed_forward_length", 1, &hp->n_ff, st)) ||
        (c = bert_key_i32(g, "bert.context_length", 2, &hp->n_ctx, st)))
        return c;
    if (hp->n_embd % hp->n_head)
        return loft_fail(st, LOFT_ERR_FORMAT,
                         "%s: bert.embedding_length %d is not a multiple of head_count %d", g->path,
                         hp->n_embd, hp->n_head);
    double eps;
    if (!gguf_get_float(g, "bert.attention.layer_norm_epsilon", &eps) || !(eps > 0) || eps > 1)
        return loft_fail(st, LOFT_ERR_FORMAT,
                         "%s: bert.attention.layer_norm_epsilon is missing or not in (0, 1]",
                         g->path);
    hp->norm_eps = (float)eps;
    int64_t pooling = 1;
    if (gguf_find_key(g, "bert.pooling_type") >= 0 &&
        (!gguf_get_int(g, "bert.pooling_type", &pooling) || pooling != 1))
        return loft_fail(st, LOFT_ERR_UNSUPPORTED,
                         "%s: bert.pooling_type is %lld; only mean pooling (1) is supported",
                         g->path, (long long)pooling);
    bool causal = false;
    if (gguf_get_bool(g, "bert.attention.causal", &causal) && causal)
        return loft_fail(st, LOFT_ERR_UNSUPPORTED,
                         "%s: bert.attention.causal is true; the encoder is bidirectional",
                         g->path);
    return LOFT_OK;
}

loft_code bert_load(bert_model **out, const char *path, loft_status *st)
{
    *out = NULL;
    bert_model *m = calloc(1, sizeof *m);
    if (!m) return loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory", path);
    m->kt = kernels_get();
    loft_code c = gguf_open(&m->g, path, st);
    if (c) goto fail;
    if ((c = bert_read_hparams(m, st))) goto fail;
    const gguf_file *g = m->g;
    bert_hparams *hp = &m->hp;
    const gguf_tensor_info *te = gguf_find_tensor(g, "token_embd.weight");
    if (!te) {
        c = loft_fail(st, LOFT_ERR_FORMAT, "%s: tensor token_embd.weight is missing", path);
        goto fail;
    }
    if (te->ne[1] < 1 || te->ne[1] > INT32_MAX) {
        c = loft_fail(st, LOFT_ERR_FORMAT, "%s: tensor token_embd.weight has %lld rows", path,
                      (long long)te->ne[1]);
        goto fail;
    }
    hp->n_vocab = (int32_t)te->ne[1];
    if ((c = bert_tensor(g, "token_embd.weight", hp->n_embd, hp->n_vocab, &m->tok_embd, st)) ||
        (c = bert_tensor(g, "position_embd.weight", hp->n_embd, hp->n_ctx, &m->pos_embd, st)))
        goto fail;
    m->type_embd = gguf_find_tensor(g, "token_types.weight");
    if (m->type_embd && (c = bert_tensor(g, "token_types.weight", hp->n_embd, m->type_embd->ne[1],
                                         &m->type_embd, st)))
        goto fail;
    if ((c = bert_norm_load(m, "token_embd_norm", &m->embd_norm, st))) goto fail;
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) {
        c = loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory for %d layers", path, hp->n_layer);
        goto fail;
    }
    for (int32_t il = 0; il < hp->n_layer; il++) {
        bert_layer *L = &m->layers[il];
        char nm[64];
        for (size_t k = 0; k < sizeof bert_lins / sizeof bert_lins[0]; k++) {
            const bert_lin_spec *ls = &bert_lins[k];
            snprintf(nm, sizeof nm, "blk.%d.%s", (int)il, ls->name);
            bert_linear *l = (bert_linear *)(void *)((char *)L + ls->offset);
            if ((c = bert_lin(m, nm, ls->in_ff ? hp->n_ff : hp->n_embd,
                              ls->out_ff ? hp->n_ff : hp->n_embd, l, st)))
                goto fail;
        }
        snprintf(nm, sizeof nm, "blk.%d.attn_output_norm", (int)il);
        if ((c = bert_norm_load(m, nm, &L->attn_norm, st))) goto fail;
        snprintf(nm, sizeof nm, "blk.%d.layer_output_norm", (int)il);
        if ((c = bert_norm_load(m, nm, &L->out_norm, st))) goto fail;
    }
    if ((c = wordpiece_load(&m->wp, g, st))) goto fail;
    if (wordpiece_n_vocab(m->wp) != hp->n_vocab) {
        c = loft_fail(st, LOFT_ERR_FORMAT, "%s: the tokenizer has %d tokens, token_embd.weight %d",
                      path, wordpiece_n_vocab(m->wp), hp->n_vocab);
        goto fail;
    }
    *out = m;
    return LOFT_OK;
fail:
    bert_free(m);
    return c;
}

void bert_free(bert_model *m)
{
    if (!m) return;
    wordpiece_free(m->wp);
    free(m->layers);
    gguf_close(m->g);
    free(m);
}

const bert_hparams *bert_get_hparams(const bert_model *m)
{
    return &m->hp;
}

const wordpiece *bert_get_wordpiece(const bert_model *m)
{
    return m->wp;
}

/* ---- forward ------------------------------------------------------------- */

/* x: (T, n) = LayerNorm(x) * w + b, row by row (mean and variance in double
 * so the result does not depend on summation order details). */
static void bert_layernorm(float *x, const bert_norm *nm, int64_t T, int64_t n, float eps)
{
    for (int64_t t = 0; t < T; t++) {
        float *r = x + t * n;
        double mean = 0, var = 0;
        for (int64_t i = 0; i < n; i++)
            mean += r[i];
        mean /= (double)n;
        for (int64_t i = 0; i < n; i++)
            var += ((double)r[i] - mean) * ((double)r[i] - mean);
        var /= (double)n;
        const float inv = (float)(1.0 / sqrt(var + eps));
        for (int64_t i = 0; i < n; i++)
            r[i] = ((float)(r[i] - mean)) * inv * nm->w[i] + nm->b[i];
    }
}

/* y: (T, n_out) = x: (T, n_in) W^T + b. */
static loft_code bert_linear_fwd(const bert_model *m, float *y, const float *x, int64_t T,
                                 const bert_linear *l, void *scratch, size_t scratch_bytes,
                                 loft_status *st)
{
    loft_code c = kernels_matmul(m->kt, NULL, y, x, T, &l->w, scratch, scratch_bytes, st);
    if (c) return c;
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < l->w.n_out; i++)
            y[t * l->w.n_out + i] += l->b[i];
    return LOFT_OK;
}

/* Bidirectional attention. q, k, v: (T, C) with n_head heads of d = C /
 * n_head; out: (T, C); p: scratch of T floats. */
static void bert_attention(float *out, const float *q, const float *k, const float *v, int64_t T,
                           int32_t n_head, int64_t C, float *p)
{
    const int64_t d = C / n_head;
    const float scale = 1.0f / sqrtf((float)d);
    for (int32_t h = 0; h < n_head; h++) {
        for (int64_t t = 0; t < T; t++) {
            const float *qt = q + t * C + h * d;
            float mx = -INFINITY;
            for (int64_t s = 0; s < T; s++) {
                const float *ks = k + s * C + h * d;
                float dot = 0;
                for (int64_t i = 0; i < d; i++)
                    dot += qt[i] * ks[i];
                p[s] = dot * scale;
                if (p[s] > mx) mx = p[s];
            }
            float sum = 0;
            for (int64_t s = 0; s < T; s++) {
                p[s] = expf(p[s] - mx);
                sum += p[s];
            }
            float *o = out + t * C + h * d;
            for (int64_t i = 0; i < d; i++)
                o[i] = 0;
            for (int64_t s = 0; s < T; s++) {
                const float w = p[s] / sum;
                const float *vs = v + s * C + h * d;
                for (int64_t i = 0; i < d; i++)
                    o[i] += w * vs[i];
            }
        }
    }
}

/* Adds row `row` of embedding table t (n floats) to dst. */
static void bert_add_row(float *dst, const gguf_tensor_info *t, int64_t row, float *tmp, int64_t n)
{
    const size_t rs = loft_type_row_size(t->type, n);
    loft_dequantize_row(t->type, (const char *)t->data + (size_t)row * rs, tmp, n);
    for (int64_t i = 0; i < n; i++)
        dst[i] += tmp[i];
}

loft_code bert_encode(bert_model *m, const int32_t *tokens, int32_t n, float *out, float *hidden,
                      loft_status *st)
{
    const bert_hparams *hp = &m->hp;
    if (n < 1 || n > hp->n_ctx)
        return loft_fail(st, LOFT_ERR_RANGE, "bert: %d tokens, the model takes 1..%d", n,
                         hp->n_ctx);
    for (int32_t t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= hp->n_vocab)
            return loft_fail(st, LOFT_ERR_RANGE, "bert: token %d at position %d is outside [0, %d)",
                             tokens[t], t, hp->n_vocab);
    const int64_t T = n, C = hp->n_embd, F = hp->n_ff;
    /* Buffers: x, q, k, v, a (T*C each), u (T*F), p (T), tmp (C), scratch
     * (T*F floats: the widest matmul input). All sizes are bounded by
     * n_ctx, n_embd, n_ff <= 2^24 checked at load, but the products are
     * checked anyway. */
    if ((uint64_t)T * (uint64_t)(F > C ? F : C) > (SIZE_MAX / sizeof(float)) / 8)
        return loft_fail(st, LOFT_ERR_NOMEM, "bert: buffers for %d tokens overflow", n);
    const size_t tc = (size_t)(T * C), tf = (size_t)(T * F);
    float *buf = malloc((5 * tc + 2 * tf + (size_t)T + (size_t)C) * sizeof(float));
    if (!buf) return loft_fail(st, LOFT_ERR_NOMEM, "bert: out of memory for %d tokens", n);
    float *x = buf, *q = x + tc, *k = q + tc, *v = k + tc, *a = v + tc, *u = a + tc;
    float *scratch = u + tf, *p = scratch + tf, *tmp = p + T;
    const size_t scratch_bytes = tf * sizeof(float);
    loft_code c = LOFT_OK;

    for (int64_t t = 0; t < T; t++) {
        float *r = x + t * C;
        memset(r, 0, (size_t)C * sizeof *r);
        bert_add_row(r, m->tok_embd, tokens[t], tmp, C);
        bert_add_row(r, m->pos_embd, t, tmp, C);
        if (m->type_embd) bert_add_row(r, m->type_embd, 0, tmp, C);
    }
    bert_layernorm(x, &m->embd_norm, T, C, hp->norm_eps);

    for (int32_t il = 0; il < hp->n_layer; il++) {
        const bert_layer *L = &m->layers[il];
        if ((c = bert_linear_fwd(m, q, x, T, &L->q, scratch, scratch_bytes, st)) ||
            (c = bert_linear_fwd(m, k, x, T, &L->k, scratch, scratch_bytes, st)) ||
            (c = bert_linear_fwd(m, v, x, T, &L->v, scratch, scratch_bytes, st)))
            goto done;
        bert_attention(a, q, k, v, T, hp->n_head, C, p);
        if ((c = bert_linear_fwd(m, q, a, T, &L->o, scratch, scratch_bytes, st))) goto done;
        for (size_t i = 0; i < tc; i++)
            x[i] += q[i];
        bert_layernorm(x, &L->attn_norm, T, C, hp->norm_eps);
        if ((c = bert_linear_fwd(m, u, x, T, &L->up, scratch, scratch_bytes, st))) goto done;
        for (size_t i = 0; i < tf; i++)
            u[i] = 0.5f * u[i] * (1.0f + erff(u[i] * (float)M_SQRT1_2));
        if ((c = bert_linear_fwd(m, q, u, T, &L->down, scratch, scratch_bytes, st))) goto done;
        for (size_t i = 0; i < tc; i++)
            x[i] += q[i];
        bert_layernorm(x, &L->out_norm, T, C, hp->norm_eps);
    }
    if (hidden) memcpy(hidden, x, tc * sizeof *x);

    double norm = 0;
    for (int64_t i = 0; i < C; i++) {
        double s = 0;
        for (int64_t t = 0; t < T; t++)
            s += x[t * C + i];
        out[i] = (float)(s / (double)T);
        norm += (double)out[i] * out[i];
    }
    /* sentence-transformers' Normalize divides by max(norm, 1e-12). */
    norm = sqrt(norm);
    if (norm < 1e-12) norm = 1e-12;
    for (int64_t i = 0; i < C; i++)
        out[i] = (float)(out[i] / norm);
done:
    free(buf);
    return c;
}

loft_code bert_embed(bert_model *m, const char *text, size_t len, float *out, loft_status *st)
{
    int32_t *toks = NULL;
    size_t n = 0;
    loft_code c = wordpiece_tokenize(m->wp, text, len, m->hp.n_ctx, &toks, &n, st);
    if (c) return c;
    c = bert_encode(m, toks, (int32_t)n, out, NULL, st);
    free(toks);
    return c;
}
