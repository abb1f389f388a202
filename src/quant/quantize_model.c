#include "quant/quantize_model.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "base/threadpool.h"
#include "quant/quant.h"

/* ---- file types -------------------------------------------------------- */

static const quantize_ftype ftypes[] = {
    {"F32", 0, LOFT_TYPE_F32},
    {"F16", 1, LOFT_TYPE_F16},
    {"BF16", 32, LOFT_TYPE_BF16},
    {"Q4_0", 2, LOFT_TYPE_Q4_0},
    {"Q4_1", 3, LOFT_TYPE_Q4_1},
    {"Q5_0", 8, LOFT_TYPE_Q5_0},
    {"Q5_1", 9, LOFT_TYPE_Q5_1},
    {"Q8_0", 7, LOFT_TYPE_Q8_0},
    {"Q2_K", 10, LOFT_TYPE_Q2_K},
    {"Q3_K_S", 11, LOFT_TYPE_Q3_K},
    {"Q3_K_M", 12, LOFT_TYPE_Q3_K},
    {"Q3_K_L", 13, LOFT_TYPE_Q3_K},
    {"Q4_K_S", 14, LOFT_TYPE_Q4_K},
    {"Q4_K_M", 15, LOFT_TYPE_Q4_K},
    {"Q5_K_S", 16, LOFT_TYPE_Q5_K},
    {"Q5_K_M", 17, LOFT_TYPE_Q5_K},
    {"Q6_K", 18, LOFT_TYPE_Q6_K},
    /* llama-quantize's aliases: the plain K names mean the _M mix. */
    {"Q3_K", 12, LOFT_TYPE_Q3_K},
    {"Q4_K", 15, LOFT_TYPE_Q4_K},
    {"Q5_K", 17, LOFT_TYPE_Q5_K},
};

enum {
    FT_Q2_K = 10,
    FT_Q3_K_M = 12,
    FT_Q3_K_L = 13,
    FT_Q4_K_S = 14,
    FT_Q4_K_M = 15,
    FT_Q5_K_M = 17,
};

static bool ascii_ieq(const char *a, const char *b)
{
    for (;; a++, b++) {
        char ca = *a, cb = *b;
        if (ca >= 'a' && ca <= 'z') ca = (char)(ca - 'a' + 'A');
        if (cb >= 'a' && cb <= 'z') cb = (char)(cb - 'a' + 'A');
        if (ca != cb) return false;
        if (!ca) return true;
    }
}

const quantize_ftype *quantize_ftype_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof ftypes / sizeof ftypes[0]; i++)
        if (ascii_ieq(name, ftypes[i].name)) return &ftypes[i];
    return NULL;
}

const char *quantize_ftype_name(uint32_t ftype)
{
    for (size_t i = 0; i < sizeof ftypes / sizeof ftypes[0]; i++)
        if (ftypes[i].ftype == ftype) return ftypes[i].name;
    return NULL;
}

const char *quantize_ftype_names(void)
{
    return "F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M "
           "Q5_K_S Q5_K_M Q6_K (Q3_K/Q4_K/Q5_K mean the _M mixes)";
}

/* ---- which tensors are quantized, and to what ------------------------- */

typedef enum tensor_role {
    ROLE_OTHER,
    ROLE_OUTPUT,
    ROLE_TOKEN_EMBD,
    ROLE_ATTN_V, /* attn_v, attn_qkv, attn_kv_b: the sensitive value projections */
    ROLE_ATTN_K,
    ROLE_ATTN_OUTPUT,
    ROLE_FFN_DOWN,
} tensor_role;

static bool has(gguf_str s, const char *needle)
{
    size_t n = strlen(needle);
    if (n > s.len) return false;
    for (uint64_t i = 0; i + n <= s.len; i++)
        if (!memcmp(s.data + i, needle, n)) return true;
    return false;
}

static bool ends_with(gguf_str s, const char *suffix)
{
    size_t n = strlen(suffix);
    return s.len >= n && !memcmp(s.data + s.len - n, suffix, n);
}

static tensor_role role_of(gguf_str name)
{
    if (gguf_str_eq(name, "output.weight")) return ROLE_OUTPUT;
    if (gguf_str_eq(name, "token_embd.weight") || gguf_str_eq(name, "per_layer_token_embd.weight"))
        return ROLE_TOKEN_EMBD;
    if (has(name, "attn_qkv.weight") || has(name, "attn_kv_b.weight") || has(name, "attn_v.weight"))
        return ROLE_ATTN_V;
    if (has(name, "attn_k.weight")) return ROLE_ATTN_K;
    if (has(name, "attn_output.weight")) return ROLE_ATTN_OUTPUT;
    if (has(name, "ffn_down")) return ROLE_FFN_DOWN;
    return ROLE_OTHER;
}

/* Dimensions as ggml counts them: trailing dimensions of size 1 do not count. */
static int effective_dims(const gguf_tensor_info *t)
{
    int n = 1;
    for (int d = 1; d < GGUF_MAX_DIMS; d++)
        if (t->ne[d] > 1) n = d + 1;
    return n;
}

/* llama.cpp quantizes only matrices named *weight that are not norms, routing
 * tables or small positional tables; everything else is copied unchanged. */
static bool may_quantize(const gguf_tensor_info *t)
{
    if (effective_dims(t) < 2) return false;
    gguf_str n = t->name;
    if (!ends_with(n, "weight")) return false;
    static const char *const keep[] = {"_norm.weight",
                                       "ffn_gate_inp.weight",
                                       "altup",
                                       "laurel",
                                       "per_layer_model_proj",
                                       "ssm_conv1d",
                                       "attn_rel_b.weight",
                                       "position_embd",
                                       "token_types.weight",
                                       "pos_embd"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        if (has(n, keep[i])) return false;
    return true;
}

static bool is_quantized(uint32_t t)
{
    return t != LOFT_TYPE_F32 && t != LOFT_TYPE_F16 && t != LOFT_TYPE_BF16 && t != LOFT_TYPE_F64 &&
           t != LOFT_TYPE_I8 && t != LOFT_TYPE_I16 && t != LOFT_TYPE_I32 && t != LOFT_TYPE_I64;
}

static int64_t block_of(uint32_t t)
{
    const loft_type_traits *tr = loft_type_get(t);
    return tr ? tr->block_size : 1;
}

/* More bits for the first and last eighth of the layers and every third one
 * between (llama.cpp's use_more_bits). */
static bool more_bits(int i, int n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

typedef struct mix_state {
    uint32_t ftype;
    bool tied; /* no output.weight: token_embd doubles as the output */
    bool falcon;
    int n_layer;
    int n_gqa; /* query heads per kv head */
    int n_expert;
    int n_attn_v; /* attn_v-like tensors in the file */
    int i_attn_v; /* how many of them have been assigned */
    int i_ffn_down;
} mix_state;

/* The layer of "blk.N....", or -1. */
static int layer_of(gguf_str name)
{
    if (name.len < 5 || memcmp(name.data, "blk.", 4)) return -1;
    int v = 0;
    uint64_t i = 4;
    if (i >= name.len || name.data[i] < '0' || name.data[i] > '9') return -1;
    for (; i < name.len && name.data[i] >= '0' && name.data[i] <= '9'; i++) {
        if (v > 100000) return -1;
        v = v * 10 + (name.data[i] - '0');
    }
    return v;
}

/* The mix's choice for one quantizable tensor, before the row-width fallback. */
static uint32_t mix_type(mix_state *ms, const gguf_tensor_info *t, uint32_t type)
{
    tensor_role role = role_of(t->name);
    uint32_t ft = ms->ftype;
    if (role == ROLE_OUTPUT || (ms->tied && role == ROLE_TOKEN_EMBD)) {
        if (ms->falcon || t->ne[0] % block_of(type) != 0) return LOFT_TYPE_Q8_0;
        return type == LOFT_TYPE_Q8_0 ? type : LOFT_TYPE_Q6_K;
    }
    if (role == ROLE_TOKEN_EMBD) return type;
    if (role == ROLE_ATTN_V) {
        int i = ms->i_attn_v++;
        if (ft == FT_Q2_K)
            type = ms->n_gqa >= 4 ? LOFT_TYPE_Q4_K : LOFT_TYPE_Q3_K;
        else if (ft == FT_Q3_K_M)
            type = i < 2 ? LOFT_TYPE_Q5_K : LOFT_TYPE_Q4_K;
        else if (ft == FT_Q3_K_L)
            type = LOFT_TYPE_Q5_K;
        else if ((ft == FT_Q4_K_M || ft == FT_Q5_K_M) && more_bits(i, ms->n_attn_v))
            type = LOFT_TYPE_Q6_K;
        else if (ft == FT_Q4_K_S && i < 4)
            type = LOFT_TYPE_Q5_K;
        if (ms->n_expert == 8) type = LOFT_TYPE_Q8_0;
        return type;
    }
    if (role == ROLE_ATTN_K) return ms->n_expert == 8 ? LOFT_TYPE_Q8_0 : type;
    if (role == ROLE_FFN_DOWN) {
        int i = ms->i_ffn_down++, n = ms->n_layer;
        if (ms->n_expert > 1) {
            int l = layer_of(t->name);
            if (l >= 0) i = l;
        }
        if (ft == FT_Q2_K)
            type = LOFT_TYPE_Q3_K;
        else if (ft == FT_Q3_K_M)
            type = i < n / 16                         ? LOFT_TYPE_Q5_K
                   : (!ms->falcon || more_bits(i, n)) ? LOFT_TYPE_Q4_K
                                                      : LOFT_TYPE_Q3_K;
        else if (ft == FT_Q3_K_L)
            type = ms->falcon ? LOFT_TYPE_Q4_K : LOFT_TYPE_Q5_K;
        else if (ft == FT_Q4_K_M) {
            if (ms->falcon)
                type = i < n / 16        ? LOFT_TYPE_Q6_K
                       : more_bits(i, n) ? LOFT_TYPE_Q5_K
                                         : LOFT_TYPE_Q4_K;
            else if (more_bits(i, n))
                type = LOFT_TYPE_Q6_K;
        } else if (ft == FT_Q5_K_M && more_bits(i, n))
            type = LOFT_TYPE_Q6_K;
        else if (ft == FT_Q4_K_S && !ms->falcon && i < n / 8)
            type = LOFT_TYPE_Q5_K;
        return type;
    }
    if (role == ROLE_ATTN_OUTPUT) {
        if (ms->falcon) return ft == FT_Q3_K_L ? LOFT_TYPE_Q4_K : type;
        if (ms->n_expert == 8) {
            if (ft == FT_Q2_K || (ft >= 11 && ft <= FT_Q4_K_M)) return LOFT_TYPE_Q5_K;
            return type;
        }
        if (ft == FT_Q2_K) return LOFT_TYPE_Q3_K;
        if (ft == FT_Q3_K_M) return LOFT_TYPE_Q4_K;
        if (ft == FT_Q3_K_L) return LOFT_TYPE_Q5_K;
    }
    return type;
}

/* A type whose block divides the row width, as llama.cpp falls back. */
static uint32_t fallback_type(const gguf_tensor_info *t, uint32_t type, int *n_fallback)
{
    int64_t ncols = t->ne[0];
    if (ncols % block_of(type) == 0) return type;
    if (n_fallback) (*n_fallback)++;
    uint32_t to = type;
    switch (type) {
    case LOFT_TYPE_Q2_K:
    case LOFT_TYPE_Q3_K:
        to = LOFT_TYPE_Q4_0;
        break;
    case LOFT_TYPE_Q4_K:
        to = LOFT_TYPE_Q5_0;
        break;
    case LOFT_TYPE_Q5_K:
        to = LOFT_TYPE_Q5_1;
        break;
    case LOFT_TYPE_Q6_K:
        to = LOFT_TYPE_Q8_0;
        break;
    default:
        break;
    }
    if (ncols % block_of(to) != 0) to = LOFT_TYPE_F16;
    return to;
}

/* Order in which llama.cpp walks the tensors: by layer (non-layer tensors
 * first), then by name. The mix counters depend on it. */
static const gguf_file *sort_file;

static int cmp_tensor_order(const void *a, const void *b)
{
    const gguf_tensor_info *ta = &sort_file->tensors[*(const uint64_t *)a];
    const gguf_tensor_info *tb = &sort_file->tensors[*(const uint64_t *)b];
    int la = layer_of(ta->name), lb = layer_of(tb->name);
    if (la != lb) return la < lb ? -1 : 1;
    uint64_t n = ta->name.len < tb->name.len ? ta->name.len : tb->name.len;
    int c = memcmp(ta->name.data, tb->name.data, n);
    if (c) return c;
    return ta->name.len < tb->name.len ? -1 : ta->name.len > tb->name.len;
}

/* Indices of g's tensors in llama.cpp's order (malloc'd), or NULL. The
 * static comparator context makes this single-threaded. */
static uint64_t *tensor_order(const gguf_file *g)
{
    uint64_t n = g->n_tensors;
    uint64_t *idx = malloc((n ? n : 1) * sizeof *idx);
    if (!idx) return NULL;
    for (uint64_t i = 0; i < n; i++)
        idx[i] = i;
    sort_file = g;
    qsort(idx, n, sizeof *idx, cmp_tensor_order);
    sort_file = NULL;
    return idx;
}

static int64_t arch_int(const gguf_file *g, const char *suffix, int64_t dflt)
{
    gguf_str arch;
    char key[160];
    if (!gguf_get_str(g, "general.architecture", &arch) || arch.len > 64) return dflt;
    snprintf(key, sizeof key, "%.*s.%s", (int)arch.len, arch.data, suffix);
    int64_t v;
    return gguf_get_int(g, key, &v) ? v : dflt;
}

loft_code quantize_plan(const gguf_file *g, const quantize_params *p, uint32_t *types,
                        int *n_fallback, loft_status *st)
{
    if (!p || !p->ftype) return loft_fail(st, LOFT_ERR_ARG, "%s: no target file type", g->path);
    uint32_t base = p->ftype->default_type;
    mix_state ms = {.ftype = p->ftype->ftype, .tied = true};
    gguf_str arch;
    ms.falcon = gguf_get_str(g, "general.architecture", &arch) && gguf_str_eq(arch, "falcon");
    ms.n_layer = (int)arch_int(g, "block_count", 0);
    int64_t n_head = arch_int(g, "attention.head_count", 1);
    int64_t n_head_kv = arch_int(g, "attention.head_count_kv", n_head);
    ms.n_gqa = n_head_kv > 0 ? (int)(n_head / n_head_kv) : 1;
    ms.n_expert = (int)arch_int(g, "expert_count", 1);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        tensor_role r = role_of(g->tensors[i].name);
        if (r == ROLE_OUTPUT) ms.tied = false;
        if (r == ROLE_ATTN_V) ms.n_attn_v++;
    }
    uint64_t *order = tensor_order(g);
    if (!order) return loft_fail(st, LOFT_ERR_NOMEM, "%s: no memory for the tensor order", g->path);
    int fallbacks = 0;
    loft_code rc = LOFT_OK;
    for (uint64_t k = 0; k < g->n_tensors; k++) {
        const gguf_tensor_info *t = &g->tensors[order[k]];
        uint32_t type = t->type;
        if (may_quantize(t)) {
            type = base;
            if (is_quantized(base)) {
                if (!p->pure) type = mix_type(&ms, t, type);
                type = fallback_type(t, type, &fallbacks);
            }
        }
        const loft_type_traits *tr = loft_type_get(type);
        if (type != t->type && (!tr || !tr->can_quantize)) {
            rc = loft_fail(st, LOFT_ERR_UNSUPPORTED, "%s: tensor %.*s: loft cannot quantize to %s",
                           g->path, (int)t->name.len, t->name.data, tr ? tr->name : "?");
            break;
        }
        types[order[k]] = type;
    }
    free(order);
    if (n_fallback) *n_fallback = fallbacks;
    return rc;
}

/* ---- conversion --------------------------------------------------------- */

typedef struct convert_job {
    const gguf_tensor_info *t;
    uint32_t to;
    uint8_t *dst;
    int64_t n_per_row, n_rows;
    size_t src_row, dst_row;
    float **scratch; /* one row of floats per thread */
    int failed;      /* set by any thread whose conversion was refused */
} convert_job;

static void convert_rows(void *ctx, int ith, int nth)
{
    convert_job *j = ctx;
    int64_t per = (j->n_rows + nth - 1) / nth;
    int64_t r0 = per * ith, r1 = r0 + per < j->n_rows ? r0 + per : j->n_rows;
    const uint8_t *src = j->t->data;
    float *row = j->scratch[ith];
    for (int64_t r = r0; r < r1; r++) {
        if (!loft_dequantize_row(j->t->type, src + (size_t)r * j->src_row, row, j->n_per_row) ||
            !loft_quantize_row(j->to, row, j->dst + (size_t)r * j->dst_row, j->n_per_row)) {
            j->failed = 1;
            return;
        }
    }
}

static loft_code copy_metadata(const gguf_file *g, gguf_writer *w, uint32_t ftype, loft_status *st)
{
    char key[512];
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const gguf_kv *kv = &g->kv[i];
        if (kv->key.len >= sizeof key)
            return loft_fail(st, LOFT_ERR_FORMAT,
                             "%s: metadata key of %" PRIu64 " bytes is too long", g->path,
                             kv->key.len);
        memcpy(key, kv->key.data, kv->key.len);
        key[kv->key.len] = 0;
        /* A quantized file is written whole, never split. */
        if (!strncmp(key, "split.", 6)) continue;
        if (gguf_writer_set_value(w, key, &kv->value) != LOFT_OK)
            return loft_fail(st, LOFT_ERR_NOMEM, "%s: cannot copy metadata key %s", g->path, key);
    }
    if (gguf_writer_set_uint(w, "general.quantization_version", GGUF_TYPE_UINT32, 2) != LOFT_OK ||
        gguf_writer_set_uint(w, "general.file_type", GGUF_TYPE_UINT32, ftype) != LOFT_OK)
        return loft_fail(st, LOFT_ERR_NOMEM, "%s: cannot set general.file_type", g->path);
    return LOFT_OK;
}

static void log_line(const quantize_params *p, const char *fmt, ...) LOFT_PRINTF(2, 3);

static void log_line(const quantize_params *p, const char *fmt, ...)
{
    if (!p->log) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->log, fmt, ap);
    va_end(ap);
}

/* Converts tensor t to type `to` into a new buffer (*out, *out_size). */
static loft_code convert_tensor(const gguf_file *g, const gguf_tensor_info *t, uint32_t to,
                                threadpool *pool, float **scratch, uint8_t **out,
                                uint64_t *out_size, loft_status *st)
{
    int64_t n_per_row = t->ne[0], n_rows = 1;
    for (int d = 1; d < GGUF_MAX_DIMS; d++) {
        if (t->ne[d] <= 0 || n_rows > INT64_MAX / t->ne[d])
            return loft_fail(st, LOFT_ERR_FORMAT, "%s: tensor %.*s: bad shape", g->path,
                             (int)t->name.len, t->name.data);
        n_rows *= t->ne[d];
    }
    size_t src_row = loft_type_row_size(t->type, n_per_row);
    size_t dst_row = loft_type_row_size(to, n_per_row);
    if (!src_row || !dst_row || (uint64_t)n_rows > SIZE_MAX / dst_row ||
        (uint64_t)src_row * (uint64_t)n_rows != t->nbytes)
        return loft_fail(st, LOFT_ERR_FORMAT,
                         "%s: tensor %.*s: row of %" PRId64 " values does not fit types %s -> %s",
                         g->path, (int)t->name.len, t->name.data, n_per_row,
                         loft_type_get(t->type)->name, loft_type_get(to)->name);
    size_t size = dst_row * (size_t)n_rows;
    uint8_t *dst = malloc(size ? size : 1);
    if (!dst)
        return loft_fail(st, LOFT_ERR_NOMEM, "%s: tensor %.*s: no memory for %zu bytes", g->path,
                         (int)t->name.len, t->name.data, size);
    convert_job job = {t, to, dst, n_per_row, n_rows, src_row, dst_row, scratch, 0};
    threadpool_run(pool, convert_rows, &job);
    if (job.failed) {
        free(dst);
        return loft_fail(st, LOFT_ERR_UNSUPPORTED, "%s: tensor %.*s: cannot convert %s to %s",
                         g->path, (int)t->name.len, t->name.data, loft_type_get(t->type)->name,
                         loft_type_get(to)->name);
    }
    *out = dst;
    *out_size = size;
    return LOFT_OK;
}

loft_code quantize_model(const char *in_path, const char *out_path, const quantize_params *p,
                         quantize_summary *sum, loft_status *st)
{
    gguf_file *g = NULL;
    gguf_writer *w = NULL;
    threadpool *pool = NULL;
    uint32_t *types = NULL;
    uint8_t **bufs = NULL;
    uint64_t *order = NULL;
    float **scratch = NULL;
    quantize_summary s = {0};
    loft_code rc = gguf_open(&g, in_path, st);
    if (rc != LOFT_OK) return rc;
    uint64_t n = g->n_tensors;
    types = calloc(n ? n : 1, sizeof *types);
    bufs = calloc(n ? n : 1, sizeof *bufs);
    order = tensor_order(g);
    if (!types || !bufs || !order) {
        rc = loft_fail(st, LOFT_ERR_NOMEM, "%s: no memory for %" PRIu64 " tensors", in_path, n);
        goto done;
    }
    rc = quantize_plan(g, p, types, &s.n_fallback, st);
    if (rc != LOFT_OK) goto done;

    /* Refuse requantization before any work, naming the first such tensor. */
    int64_t max_row = 1;
    for (uint64_t i = 0; i < n; i++) {
        const gguf_tensor_info *t = &g->tensors[i];
        if (types[i] == t->type) continue;
        if (is_quantized(t->type)) {
            if (!p->allow_requantize) {
                rc = loft_fail(st, LOFT_ERR_ARG,
                               "%s: tensor %.*s is already quantized (%s); requantizing to %s "
                               "loses accuracy twice, pass --allow-requantize to do it anyway",
                               in_path, (int)t->name.len, t->name.data,
                               loft_type_get(t->type)->name, loft_type_get(types[i])->name);
                goto done;
            }
            s.n_requantized++;
        }
        if (t->ne[0] > max_row) max_row = t->ne[0];
    }
    if (s.n_requantized)
        log_line(p,
                 "warning: %s is already quantized; %d tensors are requantized, so the "
                 "result is less accurate than quantizing the original F32/F16/BF16 model\n",
                 in_path, s.n_requantized);

    int nth = p->n_threads > 0 ? p->n_threads : threadpool_cpu_count();
    if (nth > THREADPOOL_MAX_THREADS) nth = THREADPOOL_MAX_THREADS;
    rc = threadpool_init(&pool, nth, st);
    if (rc != LOFT_OK) goto done;
    scratch = calloc((size_t)nth, sizeof *scratch);
    if (!scratch || (uint64_t)max_row > SIZE_MAX / sizeof(float)) {
        rc = loft_fail(st, LOFT_ERR_NOMEM, "%s: no memory for row buffers", in_path);
        goto done;
    }
    for (int i = 0; i < nth; i++)
        if (!(scratch[i] = malloc((size_t)max_row * sizeof(float)))) {
            rc = loft_fail(st, LOFT_ERR_NOMEM, "%s: no memory for row buffers", in_path);
            goto done;
        }

    w = gguf_writer_init(g->alignment);
    if (!w) {
        rc = loft_fail(st, LOFT_ERR_NOMEM, "%s: no memory for the writer", out_path);
        goto done;
    }
    rc = copy_metadata(g, w, p->ftype->ftype, st);
    if (rc != LOFT_OK) goto done;

    for (uint64_t k = 0; k < n; k++) {
        uint64_t i = order[k];
        const gguf_tensor_info *t = &g->tensors[i];
        const void *data = t->data;
        uint64_t size = t->nbytes;
        if (types[i] != t->type) {
            rc = convert_tensor(g, t, types[i], pool, scratch, &bufs[i], &size, st);
            if (rc != LOFT_OK) goto done;
            data = bufs[i];
            s.n_converted++;
        }
        if (p->verbose)
            log_line(p, "[%4" PRIu64 "/%4" PRIu64 "] %-36.*s %6s -> %-6s %9.3f MiB -> %9.3f MiB\n",
                     k + 1, n, (int)t->name.len, t->name.data, loft_type_get(t->type)->name,
                     loft_type_get(types[i])->name, (double)t->nbytes / 1048576.0,
                     (double)size / 1048576.0);
        s.bytes_in += t->nbytes;
        s.bytes_out += size;
        char name[512];
        snprintf(name, sizeof name, "%.*s", (int)(t->name.len < 511 ? t->name.len : 511),
                 t->name.data);
        if (gguf_writer_add_tensor(w, name, types[i], t->n_dims, t->ne, data, size) != LOFT_OK) {
            rc = loft_fail(st, LOFT_ERR_NOMEM, "%s: cannot add tensor %s", out_path, name);
            goto done;
        }
    }
    s.n_tensors = (int)n;
    rc = gguf_writer_write(w, out_path, st);

done:
    if (sum) *sum = s;
    gguf_writer_free(w);
    if (bufs)
        for (uint64_t i = 0; i < n; i++)
            free(bufs[i]);
    if (scratch)
        for (int i = 0; i < threadpool_size(pool); i++)
            free(scratch[i]);
    free(scratch);
    threadpool_free(pool);
    free(bufs);
    free(types);
    free(order);
    gguf_close(g);
    return rc;
}
