/* trainer_mem.c - the trainer's activation arena size (see trainer_mem.h). */
#include "train/trainer_mem.h"

#include <string.h>

#include "train/attn_mm.h"
#include "train/fgemm.h"
#include "train/lora_mm.h"

/* *total += a * b floats, false when that or the byte count overflows. */
static bool add_size(size_t *total, size_t a, size_t b)
{
    if (a != 0 && b > (SIZE_MAX / sizeof(float)) / a) return false;
    if (a * b > (SIZE_MAX / sizeof(float)) - *total) return false;
    *total += a * b;
    return true;
}

bool trainer_plan_arena(const model_hparams *hp, size_t r, size_t lscr, const trainer_config *cfg,
                        trainer_arena_plan *p)
{
    memset(p, 0, sizeof *p);
    const size_t T = (size_t)cfg->max_tokens, C = (size_t)hp->n_embd, F = (size_t)hp->n_ff;
    const size_t qd = (size_t)hp->n_head * (size_t)hp->head_dim;
    const size_t kd = (size_t)hp->n_head_kv * (size_t)hp->head_dim;
    const size_t vd = (size_t)hp->n_head_kv * (size_t)hp->head_dim_v;
    const size_t H = (size_t)hp->n_head, V = (size_t)hp->n_vocab;
    /* attention probabilities are kept per segment: at most H * T * S */
    const size_t S = cfg->max_segment > 0 ? (size_t)cfg->max_segment : T;
    /* Every block's input, then the other saved activations of one block
     * per set: one set under checkpointing, else one per block. */
    size_t set = 0;
    bool ok = add_size(&set, T, 3 * C + 2 + 2 * qd + kd + vd + 3 * F + LORA_OUTPUT * r) &&
              add_size(&set, H * T, S);
    for (int32_t il = 0; il < hp->n_layer; il++)
        ok = ok && add_size(&p->total, T, C);
    ok = ok && add_size(&p->total, set, cfg->checkpoint_activations ? 1 : (size_t)hp->n_layer);
    /* final stage + backward scratch */
    ok = ok && add_size(&p->total, T, 4 * C + 1 + r) && add_size(&p->total, T, V) &&
         add_size(&p->total, T, 3 * C + 2 * qd + kd + vd + 3 * F + r + 1) &&
         add_size(&p->total, 1, (size_t)hp->n_rot + 2);
    p->max_in = hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd;
    if ((int64_t)qd > p->max_in) p->max_in = (int64_t)qd;
    p->wscr = fgemm_w_scratch(p->max_in);
    ok = ok && p->wscr > 0 && add_size(&p->total, (size_t)cfg->n_threads, p->wscr) &&
         add_size(&p->total, 1, lscr);
    const attn_shape as_max = {.n_head = hp->n_head,
                               .n_head_kv = hp->n_head_kv,
                               .head_dim = hp->head_dim,
                               .head_dim_v = hp->head_dim_v};
    p->att_scr_per = attn_mm_scratch((int32_t)S, &as_max);
    return ok && p->att_scr_per > 0 && add_size(&p->total, (size_t)cfg->n_threads, p->att_scr_per);
}

size_t trainer_activation_bytes_for(const loft_model *m, int32_t rank, uint32_t modules,
                                    const trainer_config *cfg)
{
    if (cfg->max_tokens < 2 || cfg->n_threads < 1) return 0;
    lora_dims d;
    trainer_lora_dims(m, &d);
    size_t lscr = 0;
    for (int k = 0; k < LORA_KIND_COUNT && rank > 0; k++) {
        if (!((modules >> k) & 1u)) continue;
        const lora_module lm = {
            .layer = 0, .kind = (lora_kind)k, .n_in = d.n_in[k], .n_out = d.n_out[k]};
        const size_t s = lora_mm_scratch(&lm, rank, cfg->max_tokens);
        if (s == 0) return 0;
        if (s > lscr) lscr = s;
    }
    trainer_arena_plan pl;
    const size_t r = rank > 0 && modules ? (size_t)rank : 0;
    if (!trainer_plan_arena(model_get_hparams(m), r, lscr, cfg, &pl)) return 0;
    return pl.total * sizeof(float);
}
