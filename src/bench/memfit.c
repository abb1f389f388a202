#include "bench/memfit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "bench/sysinfo.h"

/* Tokens of activations the forward pass keeps at once (model_impl.h's
 * MODEL_CHUNK; kept in step by the memory test against measured RSS). */
#define MEMFIT_CHUNK 32
/* Code, libc, thread stacks and the allocator's own slack. */
#define MEMFIT_BASELINE (6u << 20)
/* Bytes per vocabulary entry of the tokenizer's tables (token index, hash
 * slot, score, type). */
#define MEMFIT_PER_TOKEN 48u

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

loft_code memfit_estimate_model(const gguf_file *g, const memfit_config *cfg, memfit_estimate *out,
                                loft_status *st)
{
    memset(out, 0, sizeof *out);
    gguf_str a;
    if (!gguf_get_str(g, "general.architecture", &a) || a.len == 0 || a.len > 64)
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: memory estimate needs general.architecture",
                         g->path);
    char arch[72];
    snprintf(arch, sizeof arch, "%.*s", (int)a.len, a.data);
    int64_t n_layer, C, n_head, n_head_kv, n_ff, hd, hdv, n_vocab = 0;
    if (!get_arch_int(g, arch, "block_count", true, 0, &n_layer, st) ||
        !get_arch_int(g, arch, "embedding_length", true, 0, &C, st) ||
        !get_arch_int(g, arch, "attention.head_count", true, 0, &n_head, st) ||
        !get_arch_int(g, arch, "feed_forward_length", true, 0, &n_ff, st) ||
        !get_arch_int(g, arch, "attention.head_count_kv", false, n_head, &n_head_kv, st))
        return st ? st->code : LOFT_ERR_FORMAT;
    if (n_head <= 0)
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s.attention.head_count is 0", g->path, arch);
    get_arch_int(g, arch, "attention.key_length", false, C / n_head, &hd, st);
    get_arch_int(g, arch, "attention.value_length", false, hd, &hdv, st);
    const gguf_array *toks = gguf_get_array(g, "tokenizer.ggml.tokens");
    if (toks) n_vocab = (int64_t)toks->count;
    if (!n_vocab) get_arch_int(g, arch, "vocab_size", false, 0, &n_vocab, st);

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
