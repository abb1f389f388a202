/*
 * cmd_info.c - `loft info MODEL.gguf [--json] [--no-tensors]`: what a model
 * file holds — architecture, hyperparameters, tokenizer, tensors, sizes —
 * read from the GGUF metadata alone, so it works for any architecture.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/json.h"
#include "commands.h"
#include "gguf/gguf.h"
#include "quant/quant.h"

/* One hyperparameter: the key's suffix after "<arch>.", and its label. */
typedef struct hparam_key {
    const char *suffix;
    const char *label;
    const char *json_name;
} hparam_key;

static const hparam_key hparam_keys[] = {
    {"block_count", "layers", "n_layer"},
    {"embedding_length", "embedding size", "n_embd"},
    {"attention.head_count", "heads", "n_head"},
    {"attention.head_count_kv", "kv heads", "n_head_kv"},
    {"attention.key_length", "head dim (k)", "head_dim_k"},
    {"attention.value_length", "head dim (v)", "head_dim_v"},
    {"feed_forward_length", "ffn size", "n_ff"},
    {"context_length", "context length", "n_ctx_train"},
    {"rope.dimension_count", "rope dims", "rope_dims"},
    {"rope.freq_base", "rope base", "rope_freq_base"},
    {"rope.scaling.type", "rope scaling", "rope_scaling_type"},
    {"rope.scaling.factor", "rope scale factor", "rope_scaling_factor"},
    {"rope.scaling.original_context_length", "rope orig. context", "rope_scaling_orig_ctx"},
    {"attention.layer_norm_rms_epsilon", "rms norm eps", "norm_rms_eps"},
    {"attention.layer_norm_epsilon", "norm eps", "norm_eps"},
    {"attention.sliding_window", "sliding window", "sliding_window"},
    {"attn_logit_softcapping", "attn softcap", "attn_logit_softcapping"},
    {"final_logit_softcapping", "final softcap", "final_logit_softcapping"},
    {"vocab_size", "vocab size (arch)", "n_vocab_arch"},
    {"expert_count", "experts", "n_expert"},
    {"expert_used_count", "experts used", "n_expert_used"},
};

/* llama.cpp's names for general.file_type (the mix a quantizer produced). */
static const char *file_type_name(uint64_t ftype)
{
    static const struct {
        uint64_t id;
        const char *name;
    } names[] = {{0, "F32"},     {1, "F16"},     {2, "Q4_0"},    {3, "Q4_1"},    {7, "Q8_0"},
                 {8, "Q5_0"},    {9, "Q5_1"},    {10, "Q2_K"},   {11, "Q3_K_S"}, {12, "Q3_K_M"},
                 {13, "Q3_K_L"}, {14, "Q4_K_S"}, {15, "Q4_K_M"}, {16, "Q5_K_S"}, {17, "Q5_K_M"},
                 {18, "Q6_K"},   {32, "BF16"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].id == ftype) return names[i].name;
    return "unknown";
}

/* Formats a scalar or short array value into buf (arrays as "[a, b, ...]"). */
static void format_value(const gguf_value *v, char *buf, size_t cap)
{
    switch (v->type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_UINT64: snprintf(buf, cap, "%" PRIu64, v->v.u64); break;
    case GGUF_TYPE_BOOL: snprintf(buf, cap, "%s", v->v.u64 ? "true" : "false"); break;
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_INT16:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_INT64: snprintf(buf, cap, "%" PRId64, v->v.i64); break;
    case GGUF_TYPE_FLOAT32: snprintf(buf, cap, "%.7g", v->v.f64); break;
    case GGUF_TYPE_FLOAT64: snprintf(buf, cap, "%.15g", v->v.f64); break;
    case GGUF_TYPE_STRING:
        snprintf(buf, cap, "%.*s", (int)(v->v.str.len > 200 ? 200 : v->v.str.len), v->v.str.data);
        break;
    case GGUF_TYPE_ARRAY: {
        const gguf_array *a = &v->v.arr;
        size_t used = (size_t)snprintf(buf, cap, "[");
        for (uint64_t i = 0; i < a->count && i < 8 && used < cap; i++) {
            const char *sep = i ? ", " : "";
            if (a->elem_type == GGUF_TYPE_FLOAT32 || a->elem_type == GGUF_TYPE_FLOAT64)
                used += (size_t)snprintf(buf + used, cap - used, "%s%g", sep,
                                         gguf_array_get_float(a, i));
            else if (gguf_type_size(a->elem_type))
                used += (size_t)snprintf(buf + used, cap - used, "%s%" PRId64, sep,
                                         gguf_array_get_int(a, i));
            else
                used += (size_t)snprintf(buf + used, cap - used, "%s...", sep);
        }
        if (used < cap)
            snprintf(buf + used, cap - used, "%s]%s", a->count > 8 ? ", ..." : "",
                     a->count > 8 ? " (per layer)" : "");
        break;
    }
    default: snprintf(buf, cap, "?"); break;
    }
}

static void json_write_value(FILE *f, const gguf_value *v)
{
    switch (v->type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_UINT64: fprintf(f, "%" PRIu64, v->v.u64); break;
    case GGUF_TYPE_BOOL: fputs(v->v.u64 ? "true" : "false", f); break;
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_INT16:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_INT64: fprintf(f, "%" PRId64, v->v.i64); break;
    case GGUF_TYPE_FLOAT32:
    case GGUF_TYPE_FLOAT64: json_write_num(f, v->v.f64); break;
    case GGUF_TYPE_STRING: json_write_str(f, v->v.str.data, v->v.str.len); break;
    case GGUF_TYPE_ARRAY: {
        const gguf_array *a = &v->v.arr;
        fputc('[', f);
        for (uint64_t i = 0; i < a->count; i++) {
            if (i) fputc(',', f);
            if (a->elem_type == GGUF_TYPE_FLOAT32 || a->elem_type == GGUF_TYPE_FLOAT64)
                json_write_num(f, gguf_array_get_float(a, i));
            else if (a->elem_type == GGUF_TYPE_STRING)
                json_write_str(f, a->strs[i].data, a->strs[i].len);
            else if (a->elem_type == GGUF_TYPE_ARRAY)
                json_write_value(f, &a->items[i]);
            else
                fprintf(f, "%" PRId64, gguf_array_get_int(a, i));
        }
        fputc(']', f);
        break;
    }
    default: fputs("null", f); break;
    }
}

/* The metadata value "<arch>.<suffix>", or NULL. */
static const gguf_value *arch_value(const gguf_file *g, const char *arch, const char *suffix)
{
    char key[256];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return gguf_get(g, key);
}

static uint64_t array_count(const gguf_file *g, const char *key)
{
    const gguf_array *a = gguf_get_array(g, key);
    return a ? a->count : 0;
}

/* Totals over all tensors. */
typedef struct tensor_totals {
    uint64_t n_params;
    uint64_t n_bytes;
} tensor_totals;

static tensor_totals count_tensors(const gguf_file *g)
{
    tensor_totals t = {0, 0};
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        uint64_t n = 1;
        for (uint32_t d = 0; d < g->tensors[i].n_dims; d++) n *= (uint64_t)g->tensors[i].ne[d];
        t.n_params += n;
        t.n_bytes += g->tensors[i].nbytes;
    }
    return t;
}

static const char *type_name(uint32_t type)
{
    const loft_type_traits *tt = loft_type_get(type);
    return tt ? tt->name : "?";
}

static void format_shape(const gguf_tensor_info *t, char *buf, size_t cap)
{
    size_t used = 0;
    for (uint32_t d = 0; d < t->n_dims && used < cap; d++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%" PRId64, d ? " x " : "", t->ne[d]);
}

static void format_bytes(uint64_t n, char *buf, size_t cap)
{
    if (n >= (1ull << 30))
        snprintf(buf, cap, "%.2f GiB", (double)n / (double)(1ull << 30));
    else if (n >= (1ull << 20))
        snprintf(buf, cap, "%.2f MiB", (double)n / (double)(1ull << 20));
    else if (n >= 1024)
        snprintf(buf, cap, "%.1f KiB", (double)n / 1024.0);
    else
        snprintf(buf, cap, "%" PRIu64 " B", n);
}

static void print_text(const gguf_file *g, const char *arch, bool show_tensors)
{
    char buf[512], size_buf[32];
    gguf_str s;
    format_bytes(g->file_size, size_buf, sizeof size_buf);
    printf("file          %s (%s, GGUF v%u, %" PRIu64 " keys, %" PRIu64 " tensors)\n", g->path,
           size_buf, g->version, g->n_kv, g->n_tensors);
    printf("architecture  %s\n", arch);
    if (gguf_get_str(g, "general.name", &s)) printf("name          %.*s\n", (int)s.len, s.data);
    uint64_t ftype;
    if (gguf_get_uint(g, "general.file_type", &ftype))
        printf("file type     %s (%" PRIu64 ")\n", file_type_name(ftype), ftype);

    printf("\nhyperparameters\n");
    for (size_t i = 0; i < sizeof hparam_keys / sizeof hparam_keys[0]; i++) {
        const gguf_value *v = arch_value(g, arch, hparam_keys[i].suffix);
        if (!v) continue;
        format_value(v, buf, sizeof buf);
        printf("  %-20s %s\n", hparam_keys[i].label, buf);
    }
    const gguf_value *heads = arch_value(g, arch, "attention.head_count");
    const gguf_value *embd = arch_value(g, arch, "embedding_length");
    if (heads && embd && !arch_value(g, arch, "attention.key_length") &&
        heads->type != GGUF_TYPE_ARRAY && heads->v.u64 > 0)
        printf("  %-20s %" PRIu64 " (embedding size / heads)\n", "head dim",
               embd->v.u64 / heads->v.u64);

    printf("\ntokenizer\n");
    if (gguf_get_str(g, "tokenizer.ggml.model", &s))
        printf("  %-20s %.*s\n", "model", (int)s.len, s.data);
    if (gguf_get_str(g, "tokenizer.ggml.pre", &s))
        printf("  %-20s %.*s\n", "pre-tokenizer", (int)s.len, s.data);
    printf("  %-20s %" PRIu64 "\n", "vocab size", array_count(g, "tokenizer.ggml.tokens"));
    if (gguf_get(g, "tokenizer.ggml.merges"))
        printf("  %-20s %" PRIu64 "\n", "merges", array_count(g, "tokenizer.ggml.merges"));
    static const char *const special[][2] = {
        {"tokenizer.ggml.bos_token_id", "bos id"}, {"tokenizer.ggml.eos_token_id", "eos id"},
        {"tokenizer.ggml.eot_token_id", "eot id"}, {"tokenizer.ggml.unknown_token_id", "unk id"},
        {"tokenizer.ggml.padding_token_id", "pad id"}};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) {
        uint64_t id;
        if (gguf_get_uint(g, special[i][0], &id)) printf("  %-20s %" PRIu64 "\n", special[i][1], id);
    }
    bool add_bos;
    if (gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos))
        printf("  %-20s %s\n", "adds bos", add_bos ? "yes" : "no");
    printf("  %-20s %s\n", "chat template",
           gguf_get(g, "tokenizer.chat_template") ? "present" : "absent");

    tensor_totals tot = count_tensors(g);
    if (show_tensors) {
        printf("\n  %-34s %-6s %-18s %10s\n", "tensor", "type", "shape", "bytes");
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const gguf_tensor_info *t = &g->tensors[i];
            char shape[96];
            format_shape(t, shape, sizeof shape);
            format_bytes(t->nbytes, size_buf, sizeof size_buf);
            printf("  %-34.*s %-6s %-18s %10s\n", (int)(t->name.len > 34 ? 34 : t->name.len),
                   t->name.data, type_name(t->type), shape, size_buf);
        }
    }
    format_bytes(tot.n_bytes, size_buf, sizeof size_buf);
    printf("\nparameters    %.2f M in %" PRIu64 " tensors (%s of tensor data)\n",
           (double)tot.n_params / 1e6, g->n_tensors, size_buf);
    if (tot.n_params)
        printf("bytes/param   %.3f (%.2f bits per weight, whole file %.3f)\n",
               (double)tot.n_bytes / (double)tot.n_params,
               8.0 * (double)tot.n_bytes / (double)tot.n_params,
               (double)g->file_size / (double)tot.n_params);
}

static void print_json(const gguf_file *g, const char *arch)
{
    FILE *f = stdout;
    tensor_totals tot = count_tensors(g);
    fputs("{\"file\":", f);
    json_write_str(f, g->path, strlen(g->path));
    fprintf(f, ",\"gguf_version\":%u,\"file_size\":%" PRIu64 ",\"architecture\":", g->version,
            g->file_size);
    json_write_str(f, arch, strlen(arch));
    gguf_str s;
    if (gguf_get_str(g, "general.name", &s)) {
        fputs(",\"name\":", f);
        json_write_str(f, s.data, s.len);
    }
    fputs(",\"hparams\":{", f);
    bool first = true;
    for (size_t i = 0; i < sizeof hparam_keys / sizeof hparam_keys[0]; i++) {
        const gguf_value *v = arch_value(g, arch, hparam_keys[i].suffix);
        if (!v) continue;
        fprintf(f, "%s\"%s\":", first ? "" : ",", hparam_keys[i].json_name);
        json_write_value(f, v);
        first = false;
    }
    fputs("},\"tokenizer\":{", f);
    first = true;
    if (gguf_get_str(g, "tokenizer.ggml.model", &s)) {
        fputs("\"model\":", f);
        json_write_str(f, s.data, s.len);
        first = false;
    }
    if (gguf_get_str(g, "tokenizer.ggml.pre", &s)) {
        fprintf(f, "%s\"pre\":", first ? "" : ",");
        json_write_str(f, s.data, s.len);
        first = false;
    }
    fprintf(f, "%s\"vocab_size\":%" PRIu64 ",\"chat_template\":%s}", first ? "" : ",",
            array_count(g, "tokenizer.ggml.tokens"),
            gguf_get(g, "tokenizer.chat_template") ? "true" : "false");
    fprintf(f, ",\"n_params\":%" PRIu64 ",\"tensor_bytes\":%" PRIu64 ",\"bytes_per_param\":",
            tot.n_params, tot.n_bytes);
    json_write_num(f, tot.n_params ? (double)tot.n_bytes / (double)tot.n_params : 0.0);
    fputs(",\"tensors\":[", f);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor_info *t = &g->tensors[i];
        fputs(i ? ",{\"name\":" : "{\"name\":", f);
        json_write_str(f, t->name.data, t->name.len);
        fprintf(f, ",\"type\":\"%s\",\"shape\":[", type_name(t->type));
        for (uint32_t d = 0; d < t->n_dims; d++) fprintf(f, "%s%" PRId64, d ? "," : "", t->ne[d]);
        fprintf(f, "],\"bytes\":%" PRIu64 "}", t->nbytes);
    }
    fputs("]}\n", f);
}

static void info_usage(FILE *out)
{
    fprintf(out, "usage: loft info MODEL.gguf [--json] [--no-tensors]\n"
                 "  --json        machine-readable output\n"
                 "  --no-tensors  omit the tensor table\n");
}

int cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    bool json = false, show_tensors = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = true;
        else if (!strcmp(argv[i], "--no-tensors"))
            show_tensors = false;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            info_usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-m") && i + 1 < argc && !path)
            path = argv[++i];
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else {
            fprintf(stderr, "loft info: unexpected argument '%s'\n", argv[i]);
            info_usage(stderr);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "loft info: no model file given\n");
        info_usage(stderr);
        return 2;
    }
    loft_status st;
    gguf_file *g = NULL;
    if (gguf_open(&g, path, &st) != LOFT_OK) {
        fprintf(stderr, "loft info: %s\n", st.msg);
        return 1;
    }
    gguf_str arch_str;
    char arch[128] = "unknown";
    if (gguf_get_str(g, "general.architecture", &arch_str))
        snprintf(arch, sizeof arch, "%.*s", (int)(arch_str.len > 100 ? 100 : arch_str.len),
                 arch_str.data);
    if (json)
        print_json(g, arch);
    else
        print_text(g, arch, show_tensors);
    gguf_close(g);
    return 0;
}
