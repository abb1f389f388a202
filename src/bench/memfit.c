#include "bench/memfit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "bench/sysinfo.h"

/* Tokens of activations the forward pass keeps at once (model_impl.h's
 * MODEL_CHUNK; kept in step by the memory test against measured RSS). */
#define MEMFIT_CHUNK 512
/* Code, libc, thread stacks and the allocator's own slack. */
#define MEMFIT_BASELINE (6u << 20)
/* Bytes per vocabulary entry of the tokenizer's tables (token index, hash
 * slot, score, type). */
#define MEMFIT_PER_TOKEN 48u
/* Adaptable matrix kinds, in src/train/lora.h's order (q, k, v, o, gate,
 * up, down, output); kept here so the estimate needs no trainer code. */
#define LORA_KINDS 8
/* Fixed part of the training estimate's slack (see memfit_estimate_train). */
#define MEMFIT_TRAIN_SLACK (16u << 20)

static bool get_arch_int(const gguf_file *g, const char *arch, const char *suffix, bool required,
                         int64_t dflt, int64_t *out, loft_status *st)
{
    char key[192];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (gguf_get_int(g, key, out) && *out >= 0) return true;
    if (required) {
        loft_fail(st, LOFT_ERR_FORMAT, "%s: memory estimate needs metadata key %s", g->path, key);
        return false;
    }
    *out = dflt;
    return true;
}

/* a * b with overflow saturating at UINT64_MAX (an estimate that large
 * fails every limit anyway). */
static uint64_t mul_sat(uint64_t a, uint64_t b)
{
    if (a && b > UINT64_MAX / a) return UINT64_MAX;
    return a * b;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* The hyperparameters an estimate needs, read from g's metadata. */
typedef struct shape {
    int64_t n_layer, C, n_head, n_head_kv, n_ff, hd, hdv, n_vocab;
} shape;

static loft_code read_shape(const gguf_file *g, shape *sh, loft_status *st)
{
    memset(sh, 0, sizeof *sh);
    gguf_str a;
    if (!gguf_get_str(g, "general.architecture", &a) || a.len == 0 || a.len > 64)
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: memory estimate needs general.architecture",
                         g->path);
    char arch[72];
    snprintf(arch, sizeof arch, "%.*s", (int)a.len, a.data);
    if (!get_arch_int(g, arch, "block_count", true, 0, &sh->n_layer, st) ||
        !get_arch_int(g, arch, "embedding_length", true, 0, &sh->C, st) ||
        !get_arch_int(g, arch, "attention.head_count", true, 0, &sh->n_head, st) ||
        !get_arch_int(g, arch, "feed_forward_length", true, 0, &sh->n_ff, st) ||
        !get_arch_int(g, arch, "attention.head_count_kv", false, sh->n_head, &sh->n_head_kv, st))
        return st ? st->code : LOFT_ERR_FORMAT;
    if (sh->n_head <= 0)
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s.attention.head_count is 0", g->path, arch);
    get_arch_int(g, arch, "attention.key_length", false, sh->C / sh->n_head, &sh->hd, st);
    get_arch_int(g, arch, "attention.value_length", false, sh->hd, &sh->hdv, st);
    const gguf_array *toks = gguf_get_array(g, "tokenizer.ggml.tokens");
    if (toks) sh->n_vocab = (int64_t)toks->count;
    if (!sh->n_vocab) get_arch_int(g, arch, "vocab_size", false, 0, &sh->n_vocab, st);
    return LOFT_OK;
}

loft_code memfit_estimate_model(const gguf_file *g, const memfit_config *cfg, memfit_estimate *out,
                                loft_status *st)
{
    memset(out, 0, sizeof *out);
    shape sh;
    loft_code c = read_shape(g, &sh, st);
    if (c != LOFT_OK) return c;
    const int64_t n_layer = sh.n_layer, C = sh.C, n_head = sh.n_head, n_head_kv = sh.n_head_kv;
    const int64_t n_ff = sh.n_ff, hd = sh.hd, hdv = sh.hdv, n_vocab = sh.n_vocab;

    uint64_t n_ctx = cfg->n_ctx > 0 ? (uint64_t)cfg->n_ctx : 1;
    uint64_t kw = (uint64_t)n_head_kv * (uint64_t)hd, vw = (uint64_t)n_head_kv * (uint64_t)hdv;
    uint64_t qd = (uint64_t)n_head * (uint64_t)hd, od = (uint64_t)n_head * (uint64_t)hdv;

    out->weights = g->file_size;
    /* F16 rows for every layer, plus one layer of F32 staging rows. */
    out->kv_cache = add_sat(mul_sat(mul_sat((uint64_t)n_layer, n_ctx), (kw + vw) * 2),
                            mul_sat(n_ctx, (kw + vw) * 4));
    uint64_t per_token = 3 * (uint64_t)C + qd + kw + vw + od + 2 * (uint64_t)n_ff;
    uint64_t widest = (uint64_t)C;
    if (od > widest) widest = od;
    if ((uint64_t)n_ff > widest) widest = (uint64_t)n_ff;
    uint64_t logit_rows = cfg->all_logits && cfg->n_batch > 0 ? (uint64_t)cfg->n_batch : 1;
    out->buffers = mul_sat(4, MEMFIT_CHUNK * per_token + widest + n_ctx);
    out->buffers = add_sat(out->buffers, mul_sat(mul_sat(4, (uint64_t)n_vocab), logit_rows));
    out->overhead = MEMFIT_BASELINE + mul_sat(MEMFIT_PER_TOKEN, (uint64_t)n_vocab);
    out->total =
        add_sat(add_sat(out->weights, out->kv_cache), add_sat(out->buffers, out->overhead));
    return LOFT_OK;
}

loft_code memfit_estimate_train(const gguf_file *g, const memfit_train_config *cfg,
                                memfit_estimate *out, loft_status *st)
{
    memset(out, 0, sizeof *out);
    shape sh;
    loft_code c = read_shape(g, &sh, st);
    if (c != LOFT_OK) return c;
    const uint64_t S = cfg->n_ctx > 0 ? (uint64_t)cfg->n_ctx : 1;
    const uint64_t T = cfg->max_tokens > cfg->n_ctx ? (uint64_t)cfg->max_tokens : S;
    const uint64_t r = cfg->rank > 0 ? (uint64_t)cfg->rank : 0;
    const uint64_t C = (uint64_t)sh.C, F = (uint64_t)sh.n_ff, H = (uint64_t)sh.n_head;
    const uint64_t V = (uint64_t)sh.n_vocab, L = (uint64_t)sh.n_layer;
    const uint64_t qd = H * (uint64_t)sh.hd, kd = (uint64_t)sh.n_head_kv * (uint64_t)sh.hd;
    const uint64_t vd = (uint64_t)sh.n_head_kv * (uint64_t)sh.hdv;

    /* Floats per layer: the saved activations of each token, one LoRA
     * output row per module kind, and the attention probabilities. */
    uint64_t per_layer = mul_sat(T, 4 * C + 2 + 2 * qd + kd + vd + 3 * F + 7 * r);
    per_layer = add_sat(per_layer, mul_sat(mul_sat(H, T), S));
    uint64_t floats = cfg->checkpoint_activations
                          ? add_sat(per_layer, mul_sat(mul_sat(T, C), L))
                          : mul_sat(per_layer, L);
    /* Final norm, logits and the backward scratch of one layer. */
    floats = add_sat(floats, mul_sat(T, 4 * C + 1 + r));
    floats = add_sat(floats, mul_sat(T, V));
    floats = add_sat(floats, mul_sat(T, 3 * C + 2 * qd + kd + vd + 3 * F + r + 1));
    uint64_t widest = F > C ? F : C;
    if (qd > widest) widest = qd;
    floats = add_sat(floats, mul_sat(cfg->n_threads > 0 ? (uint64_t)cfg->n_threads : 1, widest * 32));
    /* LoRA A (r, n_in) and B (n_out, r) per adapted matrix. */
    const uint64_t dims[LORA_KINDS][2] = {{C, qd}, {C, kd}, {C, vd}, {qd, C},
                                          {C, F},  {C, F},  {F, C},  {C, V}};
    uint64_t params = 0;
    for (int k = 0; k < LORA_KINDS; k++) {
        if (!(cfg->modules & (1u << k))) continue;
        uint64_t n = mul_sat(r, dims[k][0] + dims[k][1]);
        params = add_sat(params, k == LORA_KINDS - 1 ? n : mul_sat(n, L));
    }
    /* params, grads, AdamW m and v */
    floats = add_sat(floats, mul_sat(params, 4));

    out->weights = g->file_size;
    out->buffers = mul_sat(floats, 4);
    /* the 8-bit activation rows for T tokens, and the tokenizer */
    out->overhead = add_sat(MEMFIT_BASELINE + mul_sat(MEMFIT_PER_TOKEN, V), mul_sat(T, widest * 2));
    /* The dataset, the model's own tables and the allocator's slack on
     * hundreds of MiB of arenas: measured at -c 256 on SmolLM2 the rest
     * of the estimate was within 0.1% of the peak RSS, so 1/16 of it on
     * top keeps the estimate an upper bound. */
    out->overhead = add_sat(out->overhead,
                            MEMFIT_TRAIN_SLACK + add_sat(out->weights, out->buffers) / 16);
    out->total = add_sat(add_sat(out->weights, out->buffers), out->overhead);
    return LOFT_OK;
}

bool memfit_fits(const memfit_estimate *est, uint64_t limit_bytes, uint64_t *have)
{
    uint64_t lim = limit_bytes ? limit_bytes : sysinfo_available_ram();
    if (have) *have = lim;
    /* Unknown available RAM (no /proc): do not refuse on a guess. */
    if (!lim) return true;
    return est->total <= lim;
}

bool memfit_parse_size(const char *s, uint64_t *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v >= 0) || !isfinite(v)) return false;
    double mult = 1;
    switch (*end) {
    case 0:
        break;
    case 'k':
    case 'K':
        mult = 1024.0;
        end++;
        break;
    case 'm':
    case 'M':
        mult = 1024.0 * 1024.0;
        end++;
        break;
    case 'g':
    case 'G':
        mult = 1024.0 * 1024.0 * 1024.0;
        end++;
        break;
    case 't':
    case 'T':
        mult = 1024.0 * 1024.0 * 1024.0 * 1024.0;
        end++;
        break;
    default:
        return false;
    }
    if (mult > 1 &&
        (!strcmp(end, "iB") || !strcmp(end, "ib") || !strcmp(end, "B") || !strcmp(end, "b")))
        end += strlen(end);
    if (*end) return false;
    double bytes = v * mult;
    if (bytes >= 18446744073709551615.0) return false;
    *out = (uint64_t)bytes;
    return true;
}

void memfit_oom_text(uint64_t need, uint64_t have, char *buf, size_t cap)
{
    const double gib = 1024.0 * 1024.0 * 1024.0;
    snprintf(buf, cap, "OOM (needs %.2f GiB, has %.2f GiB)", (double)need / gib,
             (double)have / gib);
}
