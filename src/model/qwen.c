/*
 * qwen.c - the qwen2 and qwen3 architectures.
 *
 * Both are llama blocks with NEOX rope (pairs (i, i + n_rot/2); their
 * checkpoints are converted without the q/k permutation). qwen2 adds biases
 * to q, k and v. qwen3 has no biases but normalizes each head of q and k
 * with its own RMSNorm (weights of head_dim) before rope, and its head_dim
 * comes from attention.key_length (it need not be n_embd / n_head).
 */
#include <stddef.h>

#include "model/model_impl.h"

static void qwen_forward(loft_model *m, kv_cache *kv, const int32_t *tokens, int32_t T,
                         int32_t pos0, float *logits, bool all_logits)
{
    const model_hparams *hp = &m->hp;
    model_scratch *s = &m->s;
    const int64_t C = hp->n_embd, F = hp->n_ff;
    const int64_t qd = (int64_t)hp->n_head * hp->head_dim;
    const int64_t kd = (int64_t)hp->n_head_kv * hp->head_dim;
    const int64_t vd = (int64_t)hp->n_head_kv * hp->head_dim_v;
    const rope_params rp = {
        .n_rot = hp->n_rot,
        .neox = true,
        .freq_base = hp->rope_freq_base,
        .freq_scale = hp->rope_freq_scale,
        .freq_factors = weight_f32(&m->rope_freqs),
    };

    for (int32_t t = 0; t < T; t++)
        embedding_lookup(s->x + (size_t)t * (size_t)C, &m->tok_embd, tokens[t], hp->embd_scale);

    for (int32_t il = 0; il < hp->n_layer; il++) {
        const model_layer *L = &m->layers[il];

        /* attention */
        model_rmsnorm(m, s->xn, s->x, weight_f32(&L->attn_norm), T, C, hp->norm_eps);
        model_matmuls(m, s->xn, T, 3, (const model_weight *[]){&L->wq, &L->wk, &L->wv},
                      (float *[]){s->q, s->k, s->v});
        if (L->bq.data) add_bias(s->q, weight_f32(&L->bq), T, qd);
        if (L->bk.data) add_bias(s->k, weight_f32(&L->bk), T, kd);
        if (L->bv.data) add_bias(s->v, weight_f32(&L->bv), T, vd);
        /* Per-head norms: each head is one row of head_dim. */
        if (L->q_norm.data)
            model_rmsnorm(m, s->q, s->q, weight_f32(&L->q_norm), (int64_t)T * hp->n_head,
                          hp->head_dim, hp->norm_eps);
        if (L->k_norm.data)
            model_rmsnorm(m, s->k, s->k, weight_f32(&L->k_norm), (int64_t)T * hp->n_head_kv,
                          hp->head_dim, hp->norm_eps);
        model_rope(m, T, pos0, &rp, 1.0f);
        model_attention(m, kv, il, T, pos0);
        model_matmul(m, s->proj, s->att, &L->wo, T);
        if (L->bo.data) add_bias(s->proj, weight_f32(&L->bo), T, C);
        model_add_rows_par(m, s->x, s->proj, T, C);

        /* feed-forward */
        model_rmsnorm(m, s->xn, s->x, weight_f32(&L->ffn_norm), T, C, hp->norm_eps);
        model_matmuls(m, s->xn, T, 2, (const model_weight *[]){&L->ffn_gate, &L->ffn_up},
                      (float *[]){s->gate, s->up});
        kernels_glu(m->kt, m->pool, KERNELS_SWIGLU, s->gate, s->gate, s->up, (int64_t)T * F);
        model_matmul(m, s->proj, s->gate, &L->ffn_down, T);
        model_add_rows_par(m, s->x, s->proj, T, C);
    }
    if (logits) model_output_logits(m, s->x, T, logits, all_logits);
}

loft_code qwen_load(loft_model *m, loft_status *st)
{
    const model_hparams *hp = &m->hp;
    const bool qwen3 = hp->arch == MODEL_ARCH_QWEN3;
    const int64_t qd = (int64_t)hp->n_head * hp->head_dim;
    const int64_t kd = (int64_t)hp->n_head_kv * hp->head_dim;
    const int64_t vd = (int64_t)hp->n_head_kv * hp->head_dim_v;
    loft_code c;
    for (int32_t il = 0; il < hp->n_layer; il++) {
        model_layer *L = &m->layers[il];
        if (qwen3) {
            if ((c = model_layer_weight_get(m, &L->q_norm, il, "attn_q_norm", false, hp->head_dim,
                                            1, false, false, true, st)) ||
                (c = model_layer_weight_get(m, &L->k_norm, il, "attn_k_norm", false, hp->head_dim,
                                            1, false, false, true, st)))
                return c;
        } else {
            /* qwen2's q/k/v biases are part of the architecture: require them. */
            if ((c = model_layer_weight_get(m, &L->bq, il, "attn_q", true, qd, 1, false, false,
                                            true, st)) ||
                (c = model_layer_weight_get(m, &L->bk, il, "attn_k", true, kd, 1, false, false,
                                            true, st)) ||
                (c = model_layer_weight_get(m, &L->bv, il, "attn_v", true, vd, 1, false, false,
                                            true, st)))
                return c;
        }
    }
    m->forward = qwen_forward;
    return LOFT_OK;
}
