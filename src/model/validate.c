/* validate.c - cross-checks of a model's hyperparameters and tensor set. */
#include "model/validate.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/status.h"
#include "model/model_impl.h"

/* ---- hyperparameters --------------------------------------------------- */

loft_code model_validate_hparams(const loft_model *m, loft_status *st)
{
    const model_hparams *hp = &m->hp;
    const char *path = m->gguf->path;
    const char *a = hp->arch_name;
    char key[160];

    /* Without key_length the head width is embedding_length / head_count;
     * a remainder would silently drop columns of every projection. */
    snprintf(key, sizeof key, "%s.attention.key_length", a);
    if (gguf_find_key(m->gguf, key) < 0 && hp->n_embd % hp->n_head != 0)
        return loft_fail(st, LOFT_ERR_FORMAT,
                         "%s: %s.embedding_length %d is not a multiple of %s.attention.head_count "
                         "%d (and %s is absent)",
                         path, a, (int)hp->n_embd, a, (int)hp->n_head, key);

    if (!(hp->norm_eps > 0.0f) || hp->norm_eps > MODEL_MAX_NORM_EPS)
        return loft_fail(
            st, LOFT_ERR_FORMAT,
            "%s: %s.attention.layer_norm_rms_epsilon is %g, expected a value in (0, %g]", path, a,
            (double)hp->norm_eps, MODEL_MAX_NORM_EPS);

    snprintf(key, sizeof key, "%s.context_length", a);
    if (gguf_find_key(m->gguf, key) >= 0 &&
        (hp->n_ctx_train < 1 || hp->n_ctx_train > MODEL_MAX_CTX_TRAIN))
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s is %d, expected a value in [1, %d]", path,
                         key, (int)hp->n_ctx_train, MODEL_MAX_CTX_TRAIN);

    if (!isfinite(hp->rope_freq_scale) || !(hp->rope_freq_scale > 0.0f))
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: %s rope scaling gives a frequency scale of %g",
                         path, a, (double)hp->rope_freq_scale);
    return LOFT_OK;
}

/* ---- the tensor set ---------------------------------------------------- */

/* Tensor names per architecture: what its loader reads and its forward
 * uses. Biases are read for every architecture but gemma3's forward has
 * none; gemma3 ropes without per-frequency divisors. */
enum { ARCH_BIT_LLAMA = 1, ARCH_BIT_QWEN2 = 2, ARCH_BIT_QWEN3 = 4, ARCH_BIT_GEMMA3 = 8 };
#define ARCH_BITS_ALL (ARCH_BIT_LLAMA | ARCH_BIT_QWEN2 | ARCH_BIT_QWEN3 | ARCH_BIT_GEMMA3)
#define ARCH_BITS_BIAS (ARCH_BIT_LLAMA | ARCH_BIT_QWEN2 | ARCH_BIT_QWEN3)

typedef struct tensor_name {
    const char *name;
    unsigned arches;
} tensor_name;

static const tensor_name GLOBAL_TENSORS[] = {
    {"token_embd.weight", ARCH_BITS_ALL},
    {"output_norm.weight", ARCH_BITS_ALL},
    {"output.weight", ARCH_BITS_ALL},
    {"rope_freqs.weight", ARCH_BITS_BIAS},
};

static const tensor_name LAYER_TENSORS[] = {
    {"attn_norm.weight", ARCH_BITS_ALL},
    {"attn_q.weight", ARCH_BITS_ALL},
    {"attn_k.weight", ARCH_BITS_ALL},
    {"attn_v.weight", ARCH_BITS_ALL},
    {"attn_output.weight", ARCH_BITS_ALL},
    {"ffn_norm.weight", ARCH_BITS_ALL},
    {"ffn_gate.weight", ARCH_BITS_ALL},
    {"ffn_up.weight", ARCH_BITS_ALL},
    {"ffn_down.weight", ARCH_BITS_ALL},
    {"attn_q.bias", ARCH_BITS_BIAS},
    {"attn_k.bias", ARCH_BITS_BIAS},
    {"attn_v.bias", ARCH_BITS_BIAS},
    {"attn_output.bias", ARCH_BITS_BIAS},
    {"attn_q_norm.weight", ARCH_BIT_QWEN3 | ARCH_BIT_GEMMA3},
    {"attn_k_norm.weight", ARCH_BIT_QWEN3 | ARCH_BIT_GEMMA3},
    {"post_attention_norm.weight", ARCH_BIT_GEMMA3},
    {"post_ffw_norm.weight", ARCH_BIT_GEMMA3},
};

static unsigned arch_bit(model_arch arch)
{
    switch (arch) {
    case MODEL_ARCH_LLAMA:
        return ARCH_BIT_LLAMA;
    case MODEL_ARCH_QWEN2:
        return ARCH_BIT_QWEN2;
    case MODEL_ARCH_QWEN3:
        return ARCH_BIT_QWEN3;
    case MODEL_ARCH_GEMMA3:
        return ARCH_BIT_GEMMA3;
    default:
        return 0;
    }
}

static bool name_in(const tensor_name *list, size_t n, const char *s, size_t len, unsigned bit)
{
    for (size_t i = 0; i < n; i++)
        if ((list[i].arches & bit) && strlen(list[i].name) == len && !memcmp(list[i].name, s, len))
            return true;
    return false;
}

/* Checks one tensor name against the architecture and the layer count. */
static loft_code check_tensor_name(const loft_model *m, const gguf_str name, loft_status *st)
{
    const char *path = m->gguf->path;
    const model_hparams *hp = &m->hp;
    const unsigned bit = arch_bit(hp->arch);
    const int shown = (int)(name.len > 96 ? 96 : name.len);
    const char *s = name.data;
    size_t len = (size_t)name.len;
    if (len > 4 && !memcmp(s, "blk.", 4)) {
        /* blk.<decimal layer>.<tensor>, the layer without sign or padding. */
        size_t i = 4;
        int64_t layer = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9' && layer <= INT32_MAX) {
            layer = layer * 10 + (s[i] - '0');
            i++;
        }
        if (i == 4 || i >= len || s[i] != '.' || (s[4] == '0' && i > 5) || layer > INT32_MAX)
            return loft_fail(st, LOFT_ERR_FORMAT,
                             "%s: tensor %.*s: layer number is not a decimal integer", path, shown,
                             s);
        if (layer >= hp->n_layer)
            return loft_fail(st, LOFT_ERR_FORMAT,
                             "%s: tensor %.*s: layer %lld is past %s.block_count %d", path, shown,
                             s, (long long)layer, hp->arch_name, (int)hp->n_layer);
        if (name_in(LAYER_TENSORS, sizeof LAYER_TENSORS / sizeof LAYER_TENSORS[0], s + i + 1,
                    len - i - 1, bit))
            return LOFT_OK;
    } else if (name_in(GLOBAL_TENSORS, sizeof GLOBAL_TENSORS / sizeof GLOBAL_TENSORS[0], s, len,
                       bit)) {
        return LOFT_OK;
    }
    return loft_fail(st, LOFT_ERR_FORMAT, "%s: tensor %.*s is not part of the %s architecture",
                     path, shown, s, hp->arch_name);
}

loft_code model_validate_tensors(const loft_model *m, loft_status *st)
{
    const char *path = m->gguf->path;
    for (uint64_t i = 0; i < m->gguf->n_tensors; i++) {
        loft_code c = check_tensor_name(m, m->gguf->tensors[i].name, st);
        if (c != LOFT_OK) return c;
    }
    /* rope_freqs divides each frequency: zero, negative or NaN divisors
     * would turn positions into infinities. */
    if (m->rope_freqs.data) {
        const float *f = weight_f32(&m->rope_freqs);
        for (int64_t i = 0; i < m->rope_freqs.n_in; i++)
            if (!isfinite(f[i]) || !(f[i] > 0.0f))
                return loft_fail(st, LOFT_ERR_FORMAT,
                                 "%s: tensor rope_freqs.weight: element %lld is %g, expected a "
                                 "finite value > 0",
                                 path, (long long)i, (double)f[i]);
    }
    return LOFT_OK;
}
