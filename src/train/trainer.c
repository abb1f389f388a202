/*
 * trainer.c - forward with saved activations, masked cross-entropy and the
 * LoRA-only backward of the llama-family block (see trainer.h):
 *
 *   xn1 = rmsnorm(x_in)            q,k,v = rope(Wq xn1), rope(Wk xn1), Wv xn1
 *   att = softmax(q k^T) v         x_mid = x_in + Wo att
 *   xn2 = rmsnorm(x_mid)           h = silu(Wg xn2) * (Wu xn2)
 *   x_out = x_mid + Wd h           (each W x also gets + scale * B A x)
 *
 * It reads the model's internals (model_impl.h) for the weight views.
 */
#include "train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "base/threadpool.h"
#include "kernels/kernels.h"
#include "model/layers_backward.h"
#include "model/model_impl.h"
#include "train/attn_mm.h"
#include "train/fgemm.h"
#include "train/lora_mm.h"
#include "train/trainer_mem.h"

/* Saved activations of one block for a sequence of up to max_tokens. */
typedef struct layer_acts {
    float *x_in, *inv1, *xn1, *q, *k, *v, *probs, *att;
    float *x_mid, *inv2, *xn2, *gate, *up, *h;
    float *u[LORA_OUTPUT]; /* LoRA intermediates (T, r) per kind */
} layer_acts;

struct trainer {
    loft_model *m;
    lora_set *lora;
    trainer_config cfg;
    threadpool *pool;
    const loft_kernels *kt;
    int64_t C, F, qd, kd, vd, V;
    float *arena; /* all saved activations */
    size_t arena_floats;
    layer_acts *acts; /* under checkpointing, all but x_in shared by every block */
    /* final stage */
    float *x_fin, *inv_f, *xn_f, *xn_sel, *logits, *u_out;
    int32_t *sel;     /* rows with a target */
    double *row_loss; /* loss of each selected row */
    /* backward scratch */
    float *dx, *dxn, *dq, *dk, *dv, *datt, *dgate, *dup, *dh, *du, *dsel, *att_scr;
    float *rope_cs;
    float *wscratch;    /* n_threads * fgemm_w_scratch(max_in) floats */
    float *lora_scr;    /* lora_mm scratch for the largest adapted module */
    size_t att_scr_per; /* attn_mm scratch floats per thread (att_scr) */
    void *xq;           /* kernels_matmul activation scratch */
    size_t xq_bytes;
    int64_t max_in;
    /* LoRA dropout: armed by trainer_set_dropout for one call, active
     * during it */
    float drop_p;
    uint64_t drop_seed;
    bool drop_armed, drop_active;
    /* The segments of the current call (trainer_batch): token t is at
     * position pos[t] of its segment; segment i spans tokens
     * [seg_start[i], seg_start[i + 1]) and keeps its attention
     * probabilities (n_head, n, n) at probs + seg_poff[i] of each block. */
    int32_t n_seg;
    int32_t *pos, *seg_start;
    size_t *seg_poff;
};

void trainer_lora_dims(const loft_model *m, lora_dims *d)
{
    const model_hparams *hp = model_get_hparams(m);
    const int64_t C = hp->n_embd, F = hp->n_ff;
    memset(d, 0, sizeof *d);
    d->n_layer = hp->n_layer;
    const int64_t qd = (int64_t)hp->n_head * hp->head_dim;
    const int64_t kd = (int64_t)hp->n_head_kv * hp->head_dim;
    const int64_t vd = (int64_t)hp->n_head_kv * hp->head_dim_v;
    const int64_t ad = (int64_t)hp->n_head * hp->head_dim_v;
    const int64_t in[LORA_KIND_COUNT] = {C, C, C, ad, C, C, F, C};
    const int64_t out[LORA_KIND_COUNT] = {qd, kd, vd, C, F, F, C, hp->n_vocab};
    memcpy(d->n_in, in, sizeof in);
    memcpy(d->n_out, out, sizeof out);
}

/* ---- frozen products --------------------------------------------------- */

/* The dropout of module lm in the current call, in *buf, or NULL. */
static const lora_dropout *drop_of(const trainer *tr, const lora_module *lm, lora_dropout *buf)
{
    if (!tr->drop_active || !lm) return NULL;
    lora_dropout_init(buf, tr->drop_p, tr->drop_seed, lm->layer, lm->kind);
    return buf;
}

/* y: (T, n_out) = x W^T, then + lora when the module is adapted (u saved).
 * Exact mode (and F32 weights) runs the F32 GEMM over dequantized tiles of
 * W; otherwise the inference kernels with 8-bit activations. */
static void proj_forward(trainer *tr, float *y, const float *x, const model_weight *w, int64_t T,
                         const lora_module *lm, float *u)
{
    if (tr->cfg.exact_matmul || w->type == LOFT_TYPE_F32) {
        fgemm_w_forward(tr->pool, y, x, T, w, tr->wscratch);
    } else {
        const kernels_weight kw = {w->data, w->type, w->n_in, w->n_out, w->row_bytes, NULL};
        loft_status st;
        /* The type and the scratch were checked at trainer_init. */
        (void)kernels_matmul(tr->kt, tr->pool, y, x, T, &kw, tr->xq, tr->xq_bytes, &st);
    }
    lora_dropout d;
    if (lm)
        lora_mm_forward(tr->pool, y, u, x, lm, tr->lora->rank, tr->lora->scale, T,
                        drop_of(tr, lm, &d), tr->lora_scr);
}

/* Products proj_forward_multi shares one quantized input among (q, k, v). */
#define TRAINER_MULTI_MAX 3

/* ys[i]: (T, ws[i].n_out) = x W_i^T for i < n, then each adapted module's
 * LoRA term (us[i] saved). x is quantized once and the products go to the
 * pool as one job (kernels_matmul_xq_many): the same bits as one
 * kernels_matmul per weight. Falls back to one proj_forward per weight where
 * the shared path does not apply (exact mode, F32 weights, activation
 * formats that differ). */
static void proj_forward_multi(trainer *tr, int n, const model_weight *const *ws, float *const *ys,
                               const float *x, int64_t T, const lora_module *const *lms,
                               float *const *us)
{
    bool shared = !tr->cfg.exact_matmul && n <= TRAINER_MULTI_MAX;
    for (int i = 0; i < n && shared; i++)
        shared = ws[i]->type != LOFT_TYPE_F32 &&
                 kernels_x_format(ws[i]->type) == kernels_x_format(ws[0]->type) &&
                 ws[i]->n_in == ws[0]->n_in;
    if (!shared) {
        for (int i = 0; i < n; i++)
            proj_forward(tr, ys[i], x, ws[i], T, lms[i], us[i]);
        return;
    }
    const size_t rs = kernels_x_row_size(ws[0]->type, ws[0]->n_in);
    kernels_quantize_x(tr->kt, ws[0]->type, x, T, ws[0]->n_in, tr->xq);
    /* one hand-off to the pool for all of them; the rows as they are in
     * the file (no packed layout), as proj_forward multiplies them */
    kernels_matmul_item items[TRAINER_MULTI_MAX];
    for (int i = 0; i < n; i++)
        items[i] = (kernels_matmul_item){
            ys[i], tr->xq, rs, T,
            (kernels_weight){ws[i]->data, ws[i]->type, ws[i]->n_in, ws[i]->n_out, ws[i]->row_bytes,
                             NULL}};
    kernels_matmul_xq_many(tr->kt, tr->pool, n, items);
    lora_dropout d;
    for (int i = 0; i < n; i++)
        if (lms[i])
            lora_mm_forward(tr->pool, ys[i], us[i], x, lms[i], tr->lora->rank, tr->lora->scale, T,
                            drop_of(tr, lms[i], &d), tr->lora_scr);
}

/* The LoRA path of a projection's backward: A/B grads accumulated and, when
 * dx is not NULL, dx += its input gradient. */
static void lora_bwd(trainer *tr, float *dx, const float *dy, const float *x, int64_t T,
                     const lora_module *lm, const float *u)
{
    lora_dropout d;
    if (lm)
        lora_mm_backward(tr->pool, dx, dy, x, u, lm, tr->lora->rank, tr->lora->scale, T,
                         drop_of(tr, lm, &d), tr->lora_scr);
}

/* dx += dy W (+ the LoRA path, whose A/B grads are accumulated too). */
static void proj_backward(trainer *tr, float *dx, const float *dy, const float *x,
                          const model_weight *w, int64_t T, const lora_module *lm, const float *u)
{
    fgemm_w_backward(tr->pool, dx, dy, T, w, tr->wscratch);
    lora_bwd(tr, dx, dy, x, T, lm, u);
}

/* ---- attention over the pool --------------------------------------------- */

typedef struct attn_job {
    trainer *tr;
    layer_acts *a;
    int32_t T;
    const attn_shape *as;
} attn_job;

/* [lo, hi): part ith of nth of n items, as even as they go. */
static void range_of(int32_t n, int ith, int nth, int32_t *lo, int32_t *hi)
{
    *lo = (int32_t)((int64_t)n * ith / nth);
    *hi = (int32_t)((int64_t)n * (ith + 1) / nth);
}

/* Each segment attends to itself only: its rows of q, k, v, att (and of
 * their gradients) are a whole sequence for attn_mm, the strides staying
 * those of the packed rows. A thread takes the same kv heads in every
 * segment, so every sum keeps one order whatever the thread count. */
static void attn_fwd_worker(void *p, int ith, int nth)
{
    const attn_job *j = p;
    const trainer *tr = j->tr;
    const layer_acts *a = j->a;
    int32_t k0, k1;
    range_of(j->as->n_head_kv, ith, nth, &k0, &k1);
    if (k0 >= k1) return;
    float *scr = tr->att_scr + (size_t)ith * tr->att_scr_per;
    for (int32_t s = 0; s < tr->n_seg; s++) {
        const size_t t0 = (size_t)tr->seg_start[s];
        const int32_t n = tr->seg_start[s + 1] - tr->seg_start[s];
        attn_mm_forward(a->att + t0 * (size_t)tr->qd, a->probs + tr->seg_poff[s],
                        a->q + t0 * (size_t)tr->qd, a->k + t0 * (size_t)tr->kd,
                        a->v + t0 * (size_t)tr->vd, n, j->as, k0, k1, scr);
    }
}

static void attn_bwd_worker(void *p, int ith, int nth)
{
    const attn_job *j = p;
    const trainer *tr = j->tr;
    const layer_acts *a = j->a;
    int32_t k0, k1;
    range_of(j->as->n_head_kv, ith, nth, &k0, &k1);
    if (k0 >= k1) return;
    float *scr = tr->att_scr + (size_t)ith * tr->att_scr_per;
    for (int32_t s = 0; s < tr->n_seg; s++) {
        const size_t t0 = (size_t)tr->seg_start[s];
        const size_t oq = t0 * (size_t)tr->qd, ok = t0 * (size_t)tr->kd, ov = t0 * (size_t)tr->vd;
        const int32_t n = tr->seg_start[s + 1] - tr->seg_start[s];
        attn_mm_backward(tr->dq + oq, tr->dk + ok, tr->dv + ov, tr->datt + oq,
                         a->probs + tr->seg_poff[s], a->q + oq, a->k + ok, a->v + ov, n, j->as, k0,
                         k1, scr);
    }
}

/* ---- element-wise steps over the pool ----------------------------------- */

/* Rows [0, T) split over threads; each value depends on its own row only,
 * so the split does not change any bit. */
typedef struct glu_job {
    float *h, *dgate, *dup;
    const float *gate, *up, *dh;
    int32_t T;
    int64_t F;
} glu_job;

static void glu_fwd_worker(void *p, int ith, int nth)
{
    const glu_job *j = p;
    int32_t t0, t1;
    range_of(j->T, ith, nth, &t0, &t1);
    const size_t o = (size_t)t0 * (size_t)j->F;
    if (t0 < t1) swiglu_forward(j->h + o, j->gate + o, j->up + o, t1 - t0, j->F);
}

static void glu_bwd_worker(void *p, int ith, int nth)
{
    const glu_job *j = p;
    int32_t t0, t1;
    range_of(j->T, ith, nth, &t0, &t1);
    const size_t o = (size_t)t0 * (size_t)j->F;
    if (t0 < t1)
        swiglu_backward(j->dgate + o, j->dup + o, j->dh + o, j->gate + o, j->up + o, t1 - t0, j->F);
}

/* Cross-entropy of the n selected rows of logits: row i's loss goes to
 * row_loss[i] and, when backward, its logits are replaced by the gradient
 * grad_weight * (softmax - onehot). */
typedef struct loss_job {
    float *logits;
    double *row_loss;
    const int32_t *tokens, *sel;
    int32_t n;
    int64_t V;
    bool backward;
    float grad_weight;
} loss_job;

static void loss_worker(void *p, int ith, int nth)
{
    const loss_job *j = p;
    int32_t i0, i1;
    range_of(j->n, ith, nth, &i0, &i1);
    const int64_t V = j->V;
    for (int32_t i = i0; i < i1; i++) {
        float *lg = j->logits + (size_t)i * (size_t)V;
        const int32_t target = j->tokens[j->sel[i] + 1];
        float mx = -INFINITY;
        for (int64_t k = 0; k < V; k++)
            if (lg[k] > mx) mx = lg[k];
        double sum = 0.0;
        for (int64_t k = 0; k < V; k++)
            sum += exp((double)(lg[k] - mx));
        const double lse = (double)mx + log(sum);
        j->row_loss[i] = lse - (double)lg[target];
        if (j->backward) {
            /* d(-log p_target)/d logits = softmax - onehot */
            for (int64_t k = 0; k < V; k++)
                lg[k] = (float)(exp((double)lg[k] - lse) * (double)j->grad_weight);
            lg[target] -= j->grad_weight;
        }
    }
}

/* ---- setup ------------------------------------------------------------- */

static float *take(float **cur, size_t n)
{
    float *p = *cur;
    *cur += n;
    return p;
}

size_t trainer_activation_bytes(const trainer *tr)
{
    return tr->arena_floats * sizeof(float);
}

loft_code trainer_set_dropout(trainer *tr, float p, uint64_t seed, loft_status *st)
{
    if (!(p >= 0.0f && p < 1.0f))
        return loft_fail(st, LOFT_ERR_RANGE, "LoRA dropout %g is outside [0, 1)", (double)p);
    tr->drop_p = p;
    tr->drop_seed = seed;
    tr->drop_armed = p > 0.0f;
    return LOFT_OK;
}

void trainer_free(trainer *tr)
{
    if (!tr) return;
    threadpool_free(tr->pool);
    free(tr->arena);
    free(tr->acts);
    free(tr->sel);
    free(tr->row_loss);
    free(tr->xq);
    free(tr->pos);
    free(tr->seg_start);
    free(tr->seg_poff);
    free(tr);
}

static loft_code check_type(const trainer *tr, const model_weight *w, const char *what,
                            loft_status *st)
{
    const loft_type_traits *tt = loft_type_get(w->type);
    if (!tt || !tt->can_dequantize)
        return loft_fail(st, LOFT_ERR_UNSUPPORTED, "trainer: %s has type %u without a dequantizer",
                         what, w->type);
    if (!tr->cfg.exact_matmul && w->type != LOFT_TYPE_F32 &&
        kernels_x_format(w->type) == KERNELS_X_NONE)
        return loft_fail(st, LOFT_ERR_UNSUPPORTED, "trainer: %s has type %s without a kernel", what,
                         tt->name);
    return LOFT_OK;
}

loft_code trainer_init(trainer **out, loft_model *m, lora_set *lora, const trainer_config *cfg,
                       loft_status *st)
{
    *out = NULL;
    const model_hparams *hp = model_get_hparams(m);
    if (hp->arch != MODEL_ARCH_LLAMA && hp->arch != MODEL_ARCH_QWEN2)
        return loft_fail(st, LOFT_ERR_UNSUPPORTED,
                         "fine-tuning supports the llama and qwen2 architectures, not %s",
                         hp->arch_name);
    if (hp->attn_softcap > 0.0f || hp->final_softcap > 0.0f)
        return loft_fail(st, LOFT_ERR_UNSUPPORTED,
                         "fine-tuning: softcapped models are not supported");
    if (cfg->max_tokens < 2 || cfg->n_threads < 1 || cfg->max_segment < 0 ||
        cfg->max_segment > cfg->max_tokens)
        return loft_fail(st, LOFT_ERR_ARG,
                         "trainer: max_tokens %d / max_segment %d / threads %d out of range",
                         cfg->max_tokens, cfg->max_segment, cfg->n_threads);
    trainer *tr = calloc(1, sizeof *tr);
    if (!tr) return loft_fail(st, LOFT_ERR_NOMEM, "trainer: out of memory");
    tr->m = m;
    tr->lora = lora;
    tr->cfg = *cfg;
    if (tr->cfg.max_segment == 0) tr->cfg.max_segment = cfg->max_tokens;
    tr->kt = kernels_get();
    tr->C = hp->n_embd;
    tr->F = hp->n_ff;
    tr->qd = (int64_t)hp->n_head * hp->head_dim;
    tr->kd = (int64_t)hp->n_head_kv * hp->head_dim;
    tr->vd = (int64_t)hp->n_head_kv * hp->head_dim_v;
    tr->V = hp->n_vocab;
    if ((int64_t)hp->n_head * hp->head_dim_v != tr->qd) {
        free(tr);
        return loft_fail(st, LOFT_ERR_UNSUPPORTED, "trainer: head_dim_v != head_dim");
    }
    loft_code c = threadpool_init(&tr->pool, cfg->n_threads, st);
    if (c != LOFT_OK) goto fail;

    const size_t T = (size_t)cfg->max_tokens, C = (size_t)tr->C, F = (size_t)tr->F;
    const size_t S = (size_t)tr->cfg.max_segment;
    const size_t qd = (size_t)tr->qd, kd = (size_t)tr->kd, vd = (size_t)tr->vd;
    const size_t r = lora ? (size_t)lora->rank : 0, H = (size_t)hp->n_head, V = (size_t)tr->V;
    size_t lscr = 0;
    bool ok = true;
    for (size_t i = 0; lora && i < lora->n_mods; i++) {
        const size_t s = lora_mm_scratch(&lora->mods[i], lora->rank, (int64_t)T);
        if (s == 0) ok = false;
        if (s > lscr) lscr = s;
    }
    trainer_arena_plan pl;
    if (!ok || !trainer_plan_arena(hp, r, lscr, &tr->cfg, &pl)) {
        c = loft_fail(st, LOFT_ERR_NOMEM, "trainer: activation size overflows for %zu tokens", T);
        goto fail;
    }
    tr->max_in = pl.max_in;
    tr->att_scr_per = pl.att_scr_per;
    tr->arena_floats = pl.total;
    tr->arena = malloc(pl.total * sizeof(float));
    tr->acts = calloc((size_t)hp->n_layer, sizeof *tr->acts);
    tr->sel = malloc(T * sizeof *tr->sel);
    tr->row_loss = malloc(T * sizeof *tr->row_loss);
    tr->pos = malloc(T * sizeof *tr->pos);
    tr->seg_start = malloc((T + 1) * sizeof *tr->seg_start);
    tr->seg_poff = malloc(T * sizeof *tr->seg_poff);
    if (!tr->arena || !tr->acts || !tr->sel || !tr->row_loss || !tr->pos || !tr->seg_start ||
        !tr->seg_poff) {
        c = loft_fail(st, LOFT_ERR_NOMEM, "trainer: out of memory for %zu floats of activations",
                      pl.total);
        goto fail;
    }
    float *cur = tr->arena;
    for (int32_t il = 0; il < hp->n_layer; il++)
        tr->acts[il].x_in = take(&cur, T * C);
    const int32_t n_sets = cfg->checkpoint_activations ? 1 : hp->n_layer;
    for (int32_t il = 0; il < hp->n_layer; il++) {
        layer_acts *a = &tr->acts[il];
        if (il >= n_sets) { /* the shared set, with this block's own input */
            float *x_in = a->x_in;
            *a = tr->acts[0];
            a->x_in = x_in;
            continue;
        }
        a->inv1 = take(&cur, T);
        a->xn1 = take(&cur, T * C);
        a->q = take(&cur, T * qd);
        a->k = take(&cur, T * kd);
        a->v = take(&cur, T * vd);
        a->att = take(&cur, T * qd);
        a->x_mid = take(&cur, T * C);
        a->inv2 = take(&cur, T);
        a->xn2 = take(&cur, T * C);
        a->gate = take(&cur, T * F);
        a->up = take(&cur, T * F);
        a->h = take(&cur, T * F);
        for (int k = 0; k < LORA_OUTPUT; k++)
            a->u[k] = take(&cur, T * r);
        a->probs = take(&cur, H * T * S);
    }
    tr->x_fin = take(&cur, T * C);
    tr->inv_f = take(&cur, T);
    tr->xn_f = take(&cur, T * C);
    tr->xn_sel = take(&cur, T * C);
    tr->u_out = take(&cur, T * r);
    tr->dsel = take(&cur, T * C);
    tr->logits = take(&cur, T * V);
    tr->dx = take(&cur, T * C);
    tr->dxn = take(&cur, T * C);
    tr->dq = take(&cur, T * qd);
    tr->dk = take(&cur, T * kd);
    tr->dv = take(&cur, T * vd);
    tr->datt = take(&cur, T * qd);
    tr->dgate = take(&cur, T * F);
    tr->dup = take(&cur, T * F);
    tr->dh = take(&cur, T * F);
    tr->du = take(&cur, T * r);
    tr->att_scr = take(&cur, (size_t)cfg->n_threads * tr->att_scr_per);
    tr->rope_cs = take(&cur, (size_t)hp->n_rot + 2);
    tr->wscratch = take(&cur, (size_t)cfg->n_threads * pl.wscr);
    tr->lora_scr = take(&cur, lscr);

    /* Every frozen matrix must be readable; size the 8-bit activation
     * scratch for the widest. */
    char what[64];
    for (int32_t il = 0; il < hp->n_layer; il++) {
        const model_layer *L = &m->layers[il];
        const model_weight *ws[7] = {&L->wq,       &L->wk,     &L->wv,      &L->wo,
                                     &L->ffn_gate, &L->ffn_up, &L->ffn_down};
        for (int i = 0; i < 7; i++) {
            snprintf(what, sizeof what, "blk.%d.%s", il, lora_kind_tensor_name((lora_kind)i));
            if ((c = check_type(tr, ws[i], what, st)) != LOFT_OK) goto fail;
            size_t b = kernels_x_row_size(ws[i]->type, ws[i]->n_in);
            if (b > tr->xq_bytes) tr->xq_bytes = b;
        }
    }
    if ((c = check_type(tr, &m->output, "output", st)) != LOFT_OK) goto fail;
    size_t b = kernels_x_row_size(m->output.type, m->output.n_in);
    if (b > tr->xq_bytes) tr->xq_bytes = b;
    if (tr->xq_bytes > SIZE_MAX / T) {
        c = loft_fail(st, LOFT_ERR_NOMEM, "trainer: scratch size overflows");
        goto fail;
    }
    tr->xq_bytes *= T;
    tr->xq = malloc(tr->xq_bytes ? tr->xq_bytes : 1);
    if (!tr->xq) {
        c = loft_fail(st, LOFT_ERR_NOMEM, "trainer: out of memory");
        goto fail;
    }
    *out = tr;
    return LOFT_OK;
fail:
    trainer_free(tr);
    return c;
}

/* ---- the pass ---------------------------------------------------------- */

static loft_code sequence_impl(trainer *tr, const int32_t *tokens, const uint8_t *mask, int32_t T,
                               bool backward, float grad_weight, double *loss_sum,
                               int32_t *n_targets, float *logits_out, loft_status *st);

/* Records the segments of the next pass: positions, starts and where each
 * keeps its attention probabilities (sum of n_head * len^2 over those
 * before it; at most n_head * max_tokens * max_segment in all). */
static loft_code set_segments(trainer *tr, const int32_t *seg_len, int32_t n_seg, int32_t *T,
                              loft_status *st)
{
    if (n_seg < 1 || n_seg > tr->cfg.max_tokens)
        return loft_fail(st, LOFT_ERR_RANGE, "trainer: %d segments (allowed 1..%d)", n_seg,
                         tr->cfg.max_tokens);
    const size_t H = (size_t)tr->m->hp.n_head;
    int32_t t = 0;
    size_t off = 0;
    for (int32_t i = 0; i < n_seg; i++) {
        const int32_t n = seg_len[i];
        if (n < 1 || n > tr->cfg.max_segment || n > tr->cfg.max_tokens - t)
            return loft_fail(st, LOFT_ERR_RANGE,
                             "trainer: segment %d of %d tokens (each 1..%d, all at most %d)", i, n,
                             tr->cfg.max_segment, tr->cfg.max_tokens);
        tr->seg_start[i] = t;
        tr->seg_poff[i] = off;
        for (int32_t k = 0; k < n; k++)
            tr->pos[t + k] = k;
        t += n;
        off += H * (size_t)n * (size_t)n;
    }
    tr->seg_start[n_seg] = t;
    tr->n_seg = n_seg;
    *T = t;
    return LOFT_OK;
}

loft_code trainer_batch(trainer *tr, const int32_t *tokens, const uint8_t *mask,
                        const int32_t *seg_len, int32_t n_seg, bool backward, float grad_weight,
                        double *loss_sum, int32_t *n_targets, loft_status *st)
{
    *loss_sum = 0.0;
    *n_targets = 0;
    int32_t T = 0;
    loft_code c = set_segments(tr, seg_len, n_seg, &T, st);
    if (c != LOFT_OK) return c;
    return sequence_impl(tr, tokens, mask, T, backward, grad_weight, loss_sum, n_targets, NULL, st);
}

loft_code trainer_sequence(trainer *tr, const int32_t *tokens, const uint8_t *mask, int32_t T,
                           bool backward, float grad_weight, double *loss_sum, int32_t *n_targets,
                           loft_status *st)
{
    *loss_sum = 0.0;
    *n_targets = 0;
    if (T < 2 || T > tr->cfg.max_segment)
        return loft_fail(st, LOFT_ERR_RANGE, "trainer: sequence of %d tokens (allowed 2..%d)", T,
                         tr->cfg.max_segment);
    int32_t T1 = 0;
    loft_code c = set_segments(tr, &T, 1, &T1, st);
    if (c != LOFT_OK) return c;
    return sequence_impl(tr, tokens, mask, T, backward, grad_weight, loss_sum, n_targets, NULL, st);
}

/* Forward of one segment up to the logits of the last target row, copied
 * to logits. */
static loft_code trainer_sequence_rows(trainer *tr, const int32_t *tokens, const uint8_t *mask,
                                       int32_t T, float *logits, double *l, int32_t *n,
                                       loft_status *st)
{
    int32_t T1 = 0;
    loft_code c = set_segments(tr, &T, 1, &T1, st);
    if (c != LOFT_OK) return c;
    return sequence_impl(tr, tokens, mask, T, false, 0.0f, l, n, logits, st);
}

static const lora_module *mod(const trainer *tr, int32_t il, lora_kind k)
{
    return tr->lora ? lora_set_find(tr->lora, il, k) : NULL;
}

static void rope_all(trainer *tr, float *q, float *k, int32_t T, const rope_params *rp,
                     bool inverse)
{
    const model_hparams *hp = &tr->m->hp;
    for (int32_t t = 0; t < T; t++) {
        rope_cache(tr->rope_cs, tr->pos[t], rp);
        float *qt = q + (size_t)t * (size_t)tr->qd, *kt = k + (size_t)t * (size_t)tr->kd;
        if (inverse) {
            rope_backward(qt, hp->n_head, hp->head_dim, tr->rope_cs, rp);
            rope_backward(kt, hp->n_head_kv, hp->head_dim, tr->rope_cs, rp);
        } else {
            rope_apply(qt, hp->n_head, hp->head_dim, tr->rope_cs, rp);
            rope_apply(kt, hp->n_head_kv, hp->head_dim, tr->rope_cs, rp);
        }
    }
}

static void layer_forward(trainer *tr, int32_t il, float *x, int32_t T, const rope_params *rp,
                          const attn_shape *as)
{
    const model_hparams *hp = &tr->m->hp;
    const model_layer *L = &tr->m->layers[il];
    layer_acts *a = &tr->acts[il];
    const int64_t C = tr->C, F = tr->F;
    memcpy(a->x_in, x, (size_t)T * (size_t)C * sizeof *x);
    rmsnorm_forward_save(a->xn1, a->inv1, x, weight_f32(&L->attn_norm), T, C, hp->norm_eps);
    const model_weight *wqkv[3] = {&L->wq, &L->wk, &L->wv};
    float *const yqkv[3] = {a->q, a->k, a->v};
    const lora_module *lqkv[3] = {mod(tr, il, LORA_ATTN_Q), mod(tr, il, LORA_ATTN_K),
                                  mod(tr, il, LORA_ATTN_V)};
    float *const uqkv[3] = {a->u[LORA_ATTN_Q], a->u[LORA_ATTN_K], a->u[LORA_ATTN_V]};
    proj_forward_multi(tr, 3, wqkv, yqkv, a->xn1, T, lqkv, uqkv);
    if (L->bq.data) add_bias(a->q, weight_f32(&L->bq), T, tr->qd);
    if (L->bk.data) add_bias(a->k, weight_f32(&L->bk), T, tr->kd);
    if (L->bv.data) add_bias(a->v, weight_f32(&L->bv), T, tr->vd);
    rope_all(tr, a->q, a->k, T, rp, false);
    attn_job aj = {.tr = tr, .a = a, .T = T, .as = as};
    threadpool_run(tr->pool, attn_fwd_worker, &aj);
    float *proj = tr->dsel; /* free during the forward */
    proj_forward(tr, proj, a->att, &L->wo, T, mod(tr, il, LORA_ATTN_O), a->u[LORA_ATTN_O]);
    if (L->bo.data) add_bias(proj, weight_f32(&L->bo), T, C);
    for (int64_t i = 0; i < (int64_t)T * C; i++)
        x[i] += proj[i];
    memcpy(a->x_mid, x, (size_t)T * (size_t)C * sizeof *x);
    rmsnorm_forward_save(a->xn2, a->inv2, x, weight_f32(&L->ffn_norm), T, C, hp->norm_eps);
    const model_weight *wgu[2] = {&L->ffn_gate, &L->ffn_up};
    float *const ygu[2] = {a->gate, a->up};
    const lora_module *lgu[2] = {mod(tr, il, LORA_FFN_GATE), mod(tr, il, LORA_FFN_UP)};
    float *const ugu[2] = {a->u[LORA_FFN_GATE], a->u[LORA_FFN_UP]};
    proj_forward_multi(tr, 2, wgu, ygu, a->xn2, T, lgu, ugu);
    glu_job gj = {.h = a->h, .gate = a->gate, .up = a->up, .T = T, .F = F};
    threadpool_run(tr->pool, glu_fwd_worker, &gj);
    proj_forward(tr, proj, a->h, &L->ffn_down, T, mod(tr, il, LORA_FFN_DOWN), a->u[LORA_FFN_DOWN]);
    for (int64_t i = 0; i < (int64_t)T * C; i++)
        x[i] += proj[i];
}

/* dx: gradient of the block's output on entry, of its input on exit (for block 0,
 * whose input gradient nothing needs, it stops after the feed-forward). */
static void layer_backward(trainer *tr, int32_t il, float *dx, int32_t T, const rope_params *rp,
                           const attn_shape *as)
{
    const model_layer *L = &tr->m->layers[il];
    layer_acts *a = &tr->acts[il];
    const size_t TC = (size_t)T * (size_t)tr->C, TF = (size_t)T * (size_t)tr->F;
    /* feed-forward: x_out = x_mid + down(h) */
    memset(tr->dh, 0, TF * sizeof(float));
    proj_backward(tr, tr->dh, dx, a->h, &L->ffn_down, T, mod(tr, il, LORA_FFN_DOWN),
                  a->u[LORA_FFN_DOWN]);
    memset(tr->dgate, 0, TF * sizeof(float));
    memset(tr->dup, 0, TF * sizeof(float));
    glu_job gj = {.dgate = tr->dgate,
                  .dup = tr->dup,
                  .dh = tr->dh,
                  .gate = a->gate,
                  .up = a->up,
                  .T = T,
                  .F = tr->F};
    threadpool_run(tr->pool, glu_bwd_worker, &gj);
    /* Frozen products sharing an input go through the pool together. */
    memset(tr->dxn, 0, TC * sizeof(float));
    const float *dgu[2] = {tr->dgate, tr->dup};
    const model_weight *wgu[2] = {&L->ffn_gate, &L->ffn_up};
    fgemm_w_backward_multi(tr->pool, tr->dxn, 2, dgu, wgu, T, tr->wscratch);
    lora_bwd(tr, tr->dxn, tr->dgate, a->xn2, T, mod(tr, il, LORA_FFN_GATE), a->u[LORA_FFN_GATE]);
    lora_bwd(tr, tr->dxn, tr->dup, a->xn2, T, mod(tr, il, LORA_FFN_UP), a->u[LORA_FFN_UP]);
    rmsnorm_backward(dx, tr->dxn, a->x_mid, weight_f32(&L->ffn_norm), a->inv2, T, tr->C);
    /* attention: x_mid = x_in + wo(att) */
    memset(tr->datt, 0, (size_t)T * (size_t)tr->qd * sizeof(float));
    proj_backward(tr, tr->datt, dx, a->att, &L->wo, T, mod(tr, il, LORA_ATTN_O), a->u[LORA_ATTN_O]);
    memset(tr->dq, 0, (size_t)T * (size_t)tr->qd * sizeof(float));
    memset(tr->dk, 0, (size_t)T * (size_t)tr->kd * sizeof(float));
    memset(tr->dv, 0, (size_t)T * (size_t)tr->vd * sizeof(float));
    attn_job aj = {.tr = tr, .a = a, .T = T, .as = as};
    threadpool_run(tr->pool, attn_bwd_worker, &aj);
    rope_all(tr, tr->dq, tr->dk, T, rp, true);
    /* The gradient of the first block's input would only reach the frozen
     * embeddings: the LoRA gradients of q, k, v are all that is left. */
    float *dxn = il > 0 ? tr->dxn : NULL;
    if (dxn) {
        memset(dxn, 0, TC * sizeof(float));
        const float *dqkv[3] = {tr->dq, tr->dk, tr->dv};
        const model_weight *wqkv[3] = {&L->wq, &L->wk, &L->wv};
        fgemm_w_backward_multi(tr->pool, dxn, 3, dqkv, wqkv, T, tr->wscratch);
    }
    lora_bwd(tr, dxn, tr->dq, a->xn1, T, mod(tr, il, LORA_ATTN_Q), a->u[LORA_ATTN_Q]);
    lora_bwd(tr, dxn, tr->dk, a->xn1, T, mod(tr, il, LORA_ATTN_K), a->u[LORA_ATTN_K]);
    lora_bwd(tr, dxn, tr->dv, a->xn1, T, mod(tr, il, LORA_ATTN_V), a->u[LORA_ATTN_V]);
    if (dxn) rmsnorm_backward(dx, dxn, a->x_in, weight_f32(&L->attn_norm), a->inv1, T, tr->C);
}

/* Under checkpointing: block il's activations again, into the shared set,
 * by the forward's own code from its saved input (the top block's are
 * still there from the forward). dxn and dsel are free between blocks of
 * the backward. */
static void recompute(trainer *tr, int32_t il, int32_t T, const rope_params *rp,
                      const attn_shape *as)
{
    memcpy(tr->dxn, tr->acts[il].x_in, (size_t)T * (size_t)tr->C * sizeof(float));
    layer_forward(tr, il, tr->dxn, T, rp, as);
}

static loft_code sequence_impl(trainer *tr, const int32_t *tokens, const uint8_t *mask, int32_t T,
                               bool backward, float grad_weight, double *loss_sum,
                               int32_t *n_targets, float *logits_out, loft_status *st)
{
    *loss_sum = 0.0;
    *n_targets = 0;
    /* Dropout only in the call it was armed for, never for logits. */
    tr->drop_active = tr->drop_armed && !logits_out;
    tr->drop_armed = false;
    loft_model *m = tr->m;
    const model_hparams *hp = &m->hp;
    if (T < 2 || T > tr->cfg.max_tokens)
        return loft_fail(st, LOFT_ERR_RANGE, "trainer: sequence of %d tokens (allowed 2..%d)", T,
                         tr->cfg.max_tokens);
    for (int32_t t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= hp->n_vocab)
            return loft_fail(st, LOFT_ERR_RANGE, "trainer: token %d at %d is outside [0, %d)",
                             tokens[t], t, hp->n_vocab);
    const int64_t C = tr->C, V = tr->V;
    const rope_params rp = {.n_rot = hp->n_rot,
                            .neox = hp->rope_style == ROPE_STYLE_NEOX,
                            .freq_base = hp->rope_freq_base,
                            .freq_scale = hp->rope_freq_scale,
                            .freq_factors = weight_f32(&m->rope_freqs)};
    float *x = tr->x_fin;
    for (int32_t t = 0; t < T; t++)
        embedding_lookup(x + (size_t)t * (size_t)C, &m->tok_embd, tokens[t], hp->embd_scale);
    for (int32_t il = 0; il < hp->n_layer; il++) {
        attn_shape as = {.n_head = hp->n_head,
                         .n_head_kv = hp->n_head_kv,
                         .head_dim = hp->head_dim,
                         .head_dim_v = hp->head_dim_v,
                         .window = model_layer_is_swa(m, il) ? hp->sliding_window : 0,
                         .scale = hp->attn_scale,
                         .softcap = 0.0f};
        layer_forward(tr, il, x, T, &rp, &as);
    }
    rmsnorm_forward_save(tr->xn_f, tr->inv_f, x, weight_f32(&m->output_norm), T, C, hp->norm_eps);

    /* Only rows that predict a target go through the output matrix; a
     * segment's first token has no predecessor in its segment. */
    int32_t n = 0;
    for (int32_t t = 1; t < T; t++)
        if (mask[t] && tr->pos[t] > 0) {
            tr->sel[n] = t - 1;
            memcpy(tr->xn_sel + (size_t)n * (size_t)C, tr->xn_f + (size_t)(t - 1) * (size_t)C,
                   (size_t)C * sizeof(float));
            n++;
        }
    *n_targets = n;
    if (n == 0) return LOFT_OK;
    proj_forward(tr, tr->logits, tr->xn_sel, &m->output, n, mod(tr, -1, LORA_OUTPUT), tr->u_out);
    if (logits_out) {
        memcpy(logits_out, tr->logits + (size_t)(n - 1) * (size_t)V, (size_t)V * sizeof(float));
        return LOFT_OK;
    }
    loss_job lj = {.logits = tr->logits,
                   .row_loss = tr->row_loss,
                   .tokens = tokens,
                   .sel = tr->sel,
                   .n = n,
                   .V = V,
                   .backward = backward,
                   .grad_weight = grad_weight};
    threadpool_run(tr->pool, loss_worker, &lj);
    double loss = 0.0;
    for (int32_t i = 0; i < n; i++)
        loss += tr->row_loss[i];
    *loss_sum = loss;
    if (!backward) return LOFT_OK;

    memset(tr->dsel, 0, (size_t)n * (size_t)C * sizeof(float));
    proj_backward(tr, tr->dsel, tr->logits, tr->xn_sel, &m->output, n, mod(tr, -1, LORA_OUTPUT),
                  tr->u_out);
    memset(tr->dxn, 0, (size_t)T * (size_t)C * sizeof(float));
    for (int32_t i = 0; i < n; i++)
        memcpy(tr->dxn + (size_t)tr->sel[i] * (size_t)C, tr->dsel + (size_t)i * (size_t)C,
               (size_t)C * sizeof(float));
    float *dx = tr->dx;
    memset(dx, 0, (size_t)T * (size_t)C * sizeof(float));
    rmsnorm_backward(dx, tr->dxn, x, weight_f32(&m->output_norm), tr->inv_f, T, C);
    for (int32_t il = hp->n_layer - 1; il >= 0; il--) {
        attn_shape as = {.n_head = hp->n_head,
                         .n_head_kv = hp->n_head_kv,
                         .head_dim = hp->head_dim,
                         .head_dim_v = hp->head_dim_v,
                         .window = model_layer_is_swa(m, il) ? hp->sliding_window : 0,
                         .scale = hp->attn_scale,
                         .softcap = 0.0f};
        if (tr->cfg.checkpoint_activations && il < hp->n_layer - 1) recompute(tr, il, T, &rp, &as);
        layer_backward(tr, il, dx, T, &rp, &as);
    }
    return LOFT_OK;
}

loft_code trainer_last_logits(trainer *tr, const int32_t *tokens, int32_t T, float *logits,
                              loft_status *st)
{
    if (T < 1 || T >= tr->cfg.max_segment)
        return loft_fail(st, LOFT_ERR_RANGE, "trainer: sequence of %d tokens (allowed 1..%d)", T,
                         tr->cfg.max_segment - 1);
    /* Row T-1 reaches the output matrix when token T is a target: append
     * a placeholder token (attention is causal, so it changes nothing
     * before it) and mark it. */
    int32_t *tk = malloc((size_t)(T + 1) * sizeof *tk);
    uint8_t *mask = calloc((size_t)T + 1, 1);
    if (!tk || !mask) {
        free(tk);
        free(mask);
        return loft_fail(st, LOFT_ERR_NOMEM, "trainer: out of memory");
    }
    memcpy(tk, tokens, (size_t)T * sizeof *tk);
    tk[T] = 0;
    mask[T] = 1;
    double l;
    int32_t cnt;
    loft_code c = trainer_sequence_rows(tr, tk, mask, T + 1, logits, &l, &cnt, st);
    free(tk);
    free(mask);
    return c;
}
