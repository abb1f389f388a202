/*
 * llama.c - the llama architecture (Llama 1-3, SmolLM, Mistral without
 * sliding window, ...).
 *
 * Block: x += wo(attn(rope(wq xn), rope(wk xn), wv xn)) with xn = rmsnorm(x),
 *        x += down(silu(gate xn) * up xn) with xn = rmsnorm(x).
 * Rope is the NORM style (adjacent pairs): llama.cpp's converter permutes
 * the q/k rows of Hugging Face checkpoints so that this pairing is right.
 * Llama-3 rope scaling comes as rope_freqs.weight (see model.c).
 */
#include <stddef.h>

#include "model/model_impl.h"

static void llama_forward(loft_model *m, kv_cache *kv, const int32_t *tokens, int32_t T,
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
        .neox = false,
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
        if (m->adapter) {
            m->adapter(m->adapter_ctx, il, MODEL_PROJ_Q, s->q, s->xn, T);
            m->adapter(m->adapter_ctx, il, MODEL_PROJ_K, s->k, s->xn, T);
            m->adapter(m->adapter_ctx, il, MODEL_PROJ_V, s->v, s->xn, T);
        }
        if (L->bq.data) add_bias(s->q, weight_f32(&L->bq), T, qd);
        if (L->bk.data) add_bias(s->k, weight_f32(&L->bk), T, kd);
        if (L->bv.data) add_bias(s->v, weight_f32(&L->bv), T, vd);
        model_rope(m, T, pos0, &rp, 1.0f);
        model_attention(m, kv, il, T, pos0);
        model_matmul(m, s->proj, s->att, &L->wo, T);
        if (m->adapter) m->adapter(m->adapter_ctx, il, MODEL_PROJ_O, s->proj, s->att, T);
        if (L->bo.data) add_bias(s->proj, weight_f32(&L->bo), T, C);
        model_add_rows_par(m, s->x, s->proj, T, C);

        /* feed-forward */
        model_rmsnorm(m, s->xn, s->x, weight_f32(&L->ffn_norm), T, C, hp->norm_eps);
        model_matmuls(m, s->xn, T, 2, (const model_weight *[]){&L->ffn_gate, &L->ffn_up},
                      (float *[]){s->gate, s->up});
        if (m->adapter) {
            m->adapter(m->adapter_ctx, il, MODEL_PROJ_GATE, s->gate, s->xn, T);
            m->adapter(m->adapter_ctx, il, MODEL_PROJ_UP, s->up, s->xn, T);
        }
        if (m->f32_act)
            kernels_glu(m->kt, m->pool, KERNELS_SWIGLU, s->gate, s->gate, s->up, (int64_t)T * F);
        else /* the 8-bit path follows ggml to the bit */
            model_swiglu_ggml(m, s->gate, s->gate, s->up, T, F);
        model_matmul(m, s->proj, s->gate, &L->ffn_down, T);
        if (m->adapter) m->adapter(m->adapter_ctx, il, MODEL_PROJ_DOWN, s->proj, s->gate, T);
        model_add_rows_par(m, s->x, s->proj, T, C);
    }
    if (logits) model_output_logits(m, s->x, T, logits, all_logits);
}

loft_code llama_load(loft_model *m, loft_status *st)
{
    (void)st;
    m->forward = llama_forward;
    return LOFT_OK;
}
