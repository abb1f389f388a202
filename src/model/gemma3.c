/*
 * gemma3.c - the gemma3 architecture (text part).
 *
 * x = embd(token) * sqrt(C), then per block
 *   h  = x + post_attention_norm(wo(attn(rope(q_norm(wq xn)), rope(k_norm(wk xn)), wv xn)))
 *        with xn = attn_norm(x)
 *   x' = h + post_ffw_norm(down(gelu(gate hn) * up hn)) with hn = ffn_norm(h)
 * and output = softcap(output(output_norm(x))) when the file asks.
 *
 * Gemma's RMSNorm multiplies by (1 + w); llama.cpp's converter stores the
 * norm weights already shifted (w + 1), so every norm here is a plain RMSNorm
 * by the stored weight. Rope is NEOX. Layers are local (sliding window) or
 * global: by default five local then one global (il % 6 < 5 is local), or as
 * attention.sliding_window_pattern says. Local layers rope with base
 * rope.freq_base_swa (default 10000) and no scaling; global layers with
 * rope.freq_base and the file's scaling.
 */
#include <math.h>
#include <stddef.h>

#include "base/status.h"
#include "model/model_impl.h"

static void gemma3_forward(loft_model *m, kv_cache *kv, const int32_t *tokens, int32_t T,
                           int32_t pos0, float *logits, bool all_logits)
{
    const model_hparams *hp = &m->hp;
    model_scratch *s = &m->s;
    const int64_t C = hp->n_embd, F = hp->n_ff;

    for (int32_t t = 0; t < T; t++)
        embedding_lookup(s->x + (size_t)t * (size_t)C, &m->tok_embd, tokens[t], hp->embd_scale);

    for (int32_t il = 0; il < hp->n_layer; il++) {
        const model_layer *L = &m->layers[il];
        const bool swa = m->layer_swa[il];
        const rope_params rp = {
            .n_rot = hp->n_rot,
            .neox = true,
            .freq_base = swa ? hp->rope_freq_base_swa : hp->rope_freq_base,
            .freq_scale = swa ? 1.0f : hp->rope_freq_scale,
            .freq_factors = NULL,
        };

        /* attention */
        model_rmsnorm(m, s->xn, s->x, weight_f32(&L->attn_norm), T, C, hp->norm_eps);
        model_matmuls(m, s->xn, T, 3, (const model_weight *[]){&L->wq, &L->wk, &L->wv},
                      (float *[]){s->q, s->k, s->v});
        model_rmsnorm(m, s->q, s->q, weight_f32(&L->q_norm), (int64_t)T * hp->n_head, hp->head_dim,
                      hp->norm_eps);
        model_rmsnorm(m, s->k, s->k, weight_f32(&L->k_norm), (int64_t)T * hp->n_head_kv,
                      hp->head_dim, hp->norm_eps);
        /* Gemma scales the queries, not the scores (llama.cpp's graph
         * too): the F16 rounding of the query comes after the scaling. */
        model_rope(m, T, pos0, &rp, hp->attn_scale);
        model_attention_scaled(m, kv, il, T, pos0, 1.0f);
        model_matmul(m, s->proj, s->att, &L->wo, T);
        /* The last layer's output feeds only the logits: llama.cpp keeps
         * just the rows it returns from here on (its products of one row
         * round as a single token's do), and so does loft. */
        int32_t n = T;
        if (il == hp->n_layer - 1) n = !logits ? 0 : all_logits ? T : 1;
        float *x = s->x + (size_t)(T - n) * (size_t)C;
        float *proj = s->proj + (size_t)(T - n) * (size_t)C;
        model_rmsnorm(m, proj, proj, weight_f32(&L->attn_post_norm), n, C, hp->norm_eps);
        model_add_rows_par(m, x, proj, n, C);

        /* feed-forward */
        model_rmsnorm(m, s->xn, x, weight_f32(&L->ffn_norm), n, C, hp->norm_eps);
        model_matmuls(m, s->xn, n, 2, (const model_weight *[]){&L->ffn_gate, &L->ffn_up},
                      (float *[]){s->gate, s->up});
        /* The 8-bit path (quantized weights, 8-bit activations) follows
         * ggml, whose gelu goes through F16; with F32 activations, or float
         * weights that keep them in F32, gelu stays in F32. */
        if (m->f32_act || kernels_x_format(L->ffn_gate.type) == KERNELS_X_F32)
            kernels_glu(m->kt, m->pool, KERNELS_GEGLU, s->gate, s->gate, s->up, (int64_t)n * F);
        else
            kernels_glu(m->kt, m->pool, KERNELS_GEGLU_F16, s->gate, s->gate, s->up,
                        (int64_t)n * F);
        model_matmul(m, proj, s->gate, &L->ffn_down, n);
        model_rmsnorm(m, proj, proj, weight_f32(&L->ffn_post_norm), n, C, hp->norm_eps);
        model_add_rows_par(m, x, proj, n, C);
    }
    if (logits) model_output_logits(m, s->x, T, logits, all_logits);
}

/* Marks the local layers from attention.sliding_window_pattern: an array of
 * per-layer flags, or a period n (il % n < n - 1 is local; default 6). */
static loft_code gemma3_swa_pattern(loft_model *m, loft_status *st)
{
    model_hparams *hp = &m->hp;
    const char *path = m->gguf->path;
    const char *key = "gemma3.attention.sliding_window_pattern";
    const gguf_array *arr = gguf_get_array(m->gguf, key);
    if (arr) {
        if (arr->elem_type != GGUF_TYPE_BOOL && arr->elem_type != GGUF_TYPE_UINT8 &&
            arr->elem_type != GGUF_TYPE_INT8 && arr->elem_type != GGUF_TYPE_INT32 &&
            arr->elem_type != GGUF_TYPE_UINT32)
            return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s is an array of %s, expected bool", path,
                             key, gguf_type_name(arr->elem_type));
        if (arr->count != (uint64_t)hp->n_layer)
            return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s has %llu entries, expected %d", path, key,
                             (unsigned long long)arr->count, (int)hp->n_layer);
        for (int32_t il = 0; il < hp->n_layer; il++)
            m->layer_swa[il] = gguf_array_get_int(arr, (uint64_t)il) != 0;
        return LOFT_OK;
    }
    int32_t period = 6;
    loft_code c = model_key_int(m, "attention.sliding_window_pattern", true, &period, st);
    if (c) return c;
    if (period < 0)
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s is %d, expected >= 0", path, key,
                         (int)period);
    for (int32_t il = 0; il < hp->n_layer; il++)
        m->layer_swa[il] = period == 0 || il % period < period - 1;
    return LOFT_OK;
}

loft_code gemma3_load(loft_model *m, loft_status *st)
{
    model_hparams *hp = &m->hp;
    const int64_t C = hp->n_embd, hd = hp->head_dim;
    loft_code c;

    hp->embd_scale = sqrtf((float)C);
    /* Gemma 3 27B scales queries by 1/sqrt(C / n_head) instead of
     * 1/sqrt(head_dim) (Google's gemma_pytorch config); llama.cpp spots it
     * by its 62 layers, and so does loft. */
    if (hp->n_layer == 62)
        hp->attn_scale = 1.0f / sqrtf((float)(hp->n_embd / hp->n_head));

    if ((c = model_key_int(m, "attention.sliding_window", true, &hp->sliding_window, st))) return c;
    if (hp->sliding_window < 0)
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: gemma3.attention.sliding_window is negative",
                         m->gguf->path);
    if (hp->sliding_window > 0 && (c = gemma3_swa_pattern(m, st))) return c;

    for (int32_t il = 0; il < hp->n_layer; il++) {
        model_layer *L = &m->layers[il];
        if ((c = model_layer_weight_get(m, &L->q_norm, il, "attn_q_norm", false, hd, 1, false,
                                        false, true, st)) ||
            (c = model_layer_weight_get(m, &L->k_norm, il, "attn_k_norm", false, hd, 1, false,
                                        false, true, st)) ||
            (c = model_layer_weight_get(m, &L->attn_post_norm, il, "post_attention_norm", false, C,
                                        1, false, false, true, st)) ||
            (c = model_layer_weight_get(m, &L->ffn_post_norm, il, "post_ffw_norm", false, C, 1,
                                        false, false, true, st)))
            return c;
    }
    m->forward = gemma3_forward;
    return LOFT_OK;
}
