/*
 * Checks `loft quantize` and the library behind it: the SmolLM2 model
 * quantized to Q8_0 (through the program), Q4_0 and F16 (through
 * quantize_model) re-opens with every tensor of the expected type, values
 * close to the source's (relative RMS error under a bound from the type's
 * step size), 1-D tensors copied byte for byte and all metadata kept;
 * requantizing is refused without --allow-requantize; and the Q4_K_M mix on
 * a small synthetic model gives llama.cpp's per-tensor choices (more bits
 * for attn_v / ffn_down on the first, last and every third layer, Q6_K
 * output, the 32-block fallback for odd row widths). Byte-for-byte
 * agreement with llama.cpp's own quantizer on the real models is checked by
 * scripts/check-quantized-with-llamacpp.py (needs llama-cpp-python).
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quant/quantize_model.h"
#include "gguf/gguf.h"
#include "quant/quant.h"
#include "test.h"

#define SMOL "smollm2-135m-instruct-q4_1.gguf"

static char tmp_dir[64];

static const char *tmp_path(const char *name)
{
    static char buf[256];
    if (!tmp_dir[0]) {
        snprintf(tmp_dir, sizeof tmp_dir, "/tmp/loft-test-quantize-XXXXXX");
        if (!mkdtemp(tmp_dir)) abort();
    }
    snprintf(buf, sizeof buf, "%s/%s", tmp_dir, name);
    return buf;
}

/* Relative RMS error of b against a over a whole tensor, both dequantized. */
static double rel_rms_error(const gguf_tensor_info *a, const gguf_tensor_info *b)
{
    int64_t n = a->ne[0], rows = a->ne[1] * a->ne[2] * a->ne[3];
    float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    size_t ra = loft_type_row_size(a->type, n), rb = loft_type_row_size(b->type, n);
    double se = 0, ss = 0;
    for (int64_t r = 0; x && y && r < rows; r++) {
        if (!loft_dequantize_row(a->type, (const uint8_t *)a->data + (size_t)r * ra, x, n) ||
            !loft_dequantize_row(b->type, (const uint8_t *)b->data + (size_t)r * rb, y, n)) {
            se = INFINITY;
            break;
        }
        for (int64_t i = 0; i < n; i++) {
            se += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
            ss += (double)x[i] * x[i];
        }
    }
    free(x);
    free(y);
    return ss > 0 ? sqrt(se / ss) : sqrt(se);
}

static bool values_equal(const gguf_value *a, const gguf_value *b)
{
    if (a->type != b->type) return false;
    switch (a->type) {
    case GGUF_TYPE_STRING:
        return a->v.str.len == b->v.str.len && !memcmp(a->v.str.data, b->v.str.data, a->v.str.len);
    case GGUF_TYPE_ARRAY:
        if (a->v.arr.elem_type != b->v.arr.elem_type || a->v.arr.count != b->v.arr.count)
            return false;
        if (a->v.arr.elem_type == GGUF_TYPE_STRING) {
            for (uint64_t i = 0; i < a->v.arr.count; i++)
                if (a->v.arr.strs[i].len != b->v.arr.strs[i].len ||
                    memcmp(a->v.arr.strs[i].data, b->v.arr.strs[i].data, a->v.arr.strs[i].len))
                    return false;
            return true;
        }
        if (a->v.arr.elem_type == GGUF_TYPE_ARRAY) return true;
        return !memcmp(a->v.arr.raw, b->v.arr.raw,
                       a->v.arr.count * gguf_type_size(a->v.arr.elem_type));
    case GGUF_TYPE_FLOAT32:
    case GGUF_TYPE_FLOAT64:
        return a->v.f64 == b->v.f64;
    default:
        return a->v.u64 == b->v.u64;
    }
}

/* Opens src and out and checks types, values and metadata. want_matrix is
 * the type of 2-D weights, want_embd that of the (tied) token embedding. */
static void check_output(const char *out, uint32_t want_matrix, uint32_t want_embd,
                         uint64_t want_ftype, double max_err)
{
    gguf_file *src = NULL, *dst = NULL;
    loft_status st;
    CHECKF(gguf_open(&src, test_model_path(SMOL), &st) == LOFT_OK, "%s", st.msg);
    if (gguf_open(&dst, out, &st) != LOFT_OK) {
        gguf_close(src);
        CHECKF(false, "%s", st.msg);
    }
    char msg[512] = "";
    if (dst->n_tensors != src->n_tensors) snprintf(msg, sizeof msg, "tensor count differs");
    double worst = 0;
    for (uint64_t i = 0; !msg[0] && i < src->n_tensors; i++) {
        const gguf_tensor_info *a = &src->tensors[i];
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)a->name.len, a->name.data);
        const gguf_tensor_info *b = gguf_find_tensor(dst, name);
        if (!b) {
            snprintf(msg, sizeof msg, "%s missing", name);
            break;
        }
        bool matrix = a->ne[1] > 1;
        uint32_t want = !matrix                              ? a->type
                        : !strcmp(name, "token_embd.weight") ? want_embd
                                                             : want_matrix;
        if (b->type != want) {
            snprintf(msg, sizeof msg, "%s has type %u, expected %u", name, b->type, want);
        } else if (memcmp(a->ne, b->ne, sizeof a->ne)) {
            snprintf(msg, sizeof msg, "%s changed shape", name);
        } else if (!matrix && (a->nbytes != b->nbytes || memcmp(a->data, b->data, a->nbytes))) {
            snprintf(msg, sizeof msg, "1-D tensor %s was not copied unchanged", name);
        } else if (matrix) {
            double e = rel_rms_error(a, b);
            if (e > worst) worst = e;
            if (!(e <= max_err))
                snprintf(msg, sizeof msg, "%s: relative RMS error %.4g > %.4g", name, e, max_err);
        }
    }
    for (uint64_t i = 0; !msg[0] && i < src->n_kv; i++) {
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)src->kv[i].key.len, src->kv[i].key.data);
        const gguf_value *v = gguf_get(dst, key);
        if (!v)
            snprintf(msg, sizeof msg, "metadata key %s was dropped", key);
        else if (strcmp(key, "general.file_type") && !values_equal(&src->kv[i].value, v))
            snprintf(msg, sizeof msg, "metadata key %s changed", key);
    }
    uint64_t ft = 0;
    if (!msg[0] && (!gguf_get_uint(dst, "general.file_type", &ft) || ft != want_ftype))
        snprintf(msg, sizeof msg, "general.file_type is %llu, expected %llu",
                 (unsigned long long)ft, (unsigned long long)want_ftype);
    fprintf(stderr, "    %s: worst relative RMS error %.3g\n", out, worst);
    gguf_close(src);
    gguf_close(dst);
    CHECKF(!msg[0], "%s", msg);
}

static void test_q8_0_via_program(void)
{
    char cmd[1024];
    const char *out = tmp_path("q8_0.gguf");
    snprintf(cmd, sizeof cmd, "%s quantize -q --allow-requantize %s %s Q8_0 2 2>&1",
             test_loft_bin(), test_model_path(SMOL), out);
    char *text = NULL;
    int rc = test_run(cmd, &text);
    CHECKF(rc == 0, "exit %d: %s", rc, text ? text : "");
    bool says = text && strstr(text, "already quantized");
    free(text);
    CHECKF(says, "no warning about requantizing a lossy input");
    /* Step 1/127 of a block's max: errors near 0.6%% of the RMS. */
    check_output(out, LOFT_TYPE_Q8_0, LOFT_TYPE_Q8_0, 7, 0.01);
}

/* n_conv: tensors whose type changes (all 211 matrices, less the token
 * embedding when it is already Q8_0, the source's type for it). */
static void run_quantize(const char *name, const char *type, double max_err, uint32_t matrix,
                         uint32_t embd, int n_conv)
{
    quantize_params p = {
        .ftype = quantize_ftype_from_name(type), .allow_requantize = true, .n_threads = 2};
    CHECK(p.ftype);
    quantize_summary sum;
    loft_status st;
    const char *out = tmp_path(name);
    char path[256];
    snprintf(path, sizeof path, "%s", out);
    CHECKF(quantize_model(test_model_path(SMOL), path, &p, &sum, &st) == LOFT_OK, "%s", st.msg);
    CHECKF(sum.n_tensors == 272 && sum.n_converted == n_conv && sum.n_requantized == n_conv,
           "%d tensors, %d converted, %d requantized", sum.n_tensors, sum.n_converted,
           sum.n_requantized);
    check_output(path, matrix, embd, p.ftype->ftype, max_err);
}

static void test_q4_0(void)
{
    /* The tied embedding is the output: Q6_K by the mix, which 576-wide rows
     * cannot hold, so Q8_0. Step 1/8 of a block's max: ~9%% RMS error. */
    run_quantize("q4_0.gguf", "Q4_0", 0.15, LOFT_TYPE_Q4_0, LOFT_TYPE_Q8_0, 210);
}

static void test_f16(void)
{
    run_quantize("f16.gguf", "F16", 1e-3, LOFT_TYPE_F16, LOFT_TYPE_F16, 211);
}

static void test_refuses_requantize(void)
{
    quantize_params p = {.ftype = quantize_ftype_from_name("Q8_0"), .n_threads = 1};
    loft_status st;
    char path[256];
    snprintf(path, sizeof path, "%s", tmp_path("refused.gguf"));
    loft_code rc = quantize_model(test_model_path(SMOL), path, &p, NULL, &st);
    struct stat sb;
    CHECK(rc == LOFT_ERR_ARG);
    CHECK(strstr(st.msg, "--allow-requantize") && strstr(st.msg, "Q4_1"));
    CHECK(stat(path, &sb) != 0);
    char cmd[1024], *text = NULL;
    snprintf(cmd, sizeof cmd, "%s quantize %s %s Q9_9 2>&1", test_loft_bin(), test_model_path(SMOL),
             path);
    int status = test_run(cmd, &text);
    bool named = text && strstr(text, "unknown type 'Q9_9'");
    free(text);
    CHECK(status == 2 && named);
}

/* ---- the K-quant mix on a synthetic model ------------------------------- */

#define SYN_LAYERS 8

static bool write_synthetic(const char *path, bool tied)
{
    gguf_writer *w = gguf_writer_init(0);
    if (!w) return false;
    static float zeros[512 * 8];
    int bad = 0;
    bad |= gguf_writer_set_str(w, "general.architecture", "llama");
    bad |= gguf_writer_set_uint(w, "llama.block_count", GGUF_TYPE_UINT32, SYN_LAYERS);
    bad |= gguf_writer_set_uint(w, "llama.attention.head_count", GGUF_TYPE_UINT32, 8);
    bad |= gguf_writer_set_uint(w, "llama.attention.head_count_kv", GGUF_TYPE_UINT32, 8);
    int64_t mat[2] = {256, 4}, down[2] = {512, 4}, odd[2] = {96, 4}, vec[1] = {256};
    bad |=
        gguf_writer_add_tensor(w, "token_embd.weight", LOFT_TYPE_F32, 2, mat, zeros, 256 * 4 * 4);
    if (!tied)
        bad |=
            gguf_writer_add_tensor(w, "output.weight", LOFT_TYPE_F32, 2, mat, zeros, 256 * 4 * 4);
    bad |= gguf_writer_add_tensor(w, "output_norm.weight", LOFT_TYPE_F32, 1, vec, zeros, 256 * 4);
    static char names[SYN_LAYERS][6][48];
    for (int l = 0; l < SYN_LAYERS; l++) {
        static const char *const parts[6] = {"attn_v",   "attn_k",   "attn_output",
                                             "ffn_down", "ffn_gate", "attn_norm"};
        for (int k = 0; k < 6; k++) {
            snprintf(names[l][k], sizeof names[l][k], "blk.%d.%s.weight", l, parts[k]);
            const int64_t *ne = k == 3 ? down : k == 4 ? odd : k == 5 ? vec : mat;
            uint32_t nd = k == 5 ? 1 : 2;
            uint64_t nb = (uint64_t)ne[0] * (nd == 2 ? (uint64_t)ne[1] : 1) * 4;
            bad |= gguf_writer_add_tensor(w, names[l][k], LOFT_TYPE_F32, nd, ne, zeros, nb);
        }
    }
    loft_status st;
    bool ok = !bad && gguf_writer_write(w, path, &st) == LOFT_OK;
    gguf_writer_free(w);
    return ok;
}

static uint32_t planned(const gguf_file *g, const uint32_t *types, const char *name)
{
    const gguf_tensor_info *t = gguf_find_tensor(g, name);
    return t ? types[t - g->tensors] : 9999;
}

static void check_mix(bool tied, bool pure)
{
    char path[256];
    snprintf(path, sizeof path, "%s", tmp_path(tied ? "syn-tied.gguf" : "syn.gguf"));
    CHECK(write_synthetic(path, tied));
    gguf_file *g = NULL;
    loft_status st;
    CHECKF(gguf_open(&g, path, &st) == LOFT_OK, "%s", st.msg);
    uint32_t types[64];
    int fallback = 0;
    quantize_params p = {.ftype = quantize_ftype_from_name("Q4_K_M"), .pure = pure};
    loft_code rc = quantize_plan(g, &p, types, &fallback, &st);
    char msg[256] = "";
    if (rc != LOFT_OK) snprintf(msg, sizeof msg, "%s", st.msg);
    for (int l = 0; l < SYN_LAYERS && !msg[0]; l++) {
        /* llama.cpp: layers < n/8, >= 7n/8, and every third from n/8. */
        bool more = l < 1 || l >= 7 || (l - 1) % 3 == 2;
        uint32_t want_more = pure ? LOFT_TYPE_Q4_K : more ? LOFT_TYPE_Q6_K : LOFT_TYPE_Q4_K;
        char name[64];
        static const char *const parts[5] = {"attn_v", "ffn_down", "attn_k", "attn_output",
                                             "ffn_gate"};
        const uint32_t want[5] = {want_more, want_more, LOFT_TYPE_Q4_K, LOFT_TYPE_Q4_K,
                                  LOFT_TYPE_Q5_0 /* 96 columns: Q4_K's fallback */};
        for (int k = 0; k < 5 && !msg[0]; k++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, parts[k]);
            uint32_t got = planned(g, types, name);
            if (got != want[k])
                snprintf(msg, sizeof msg, "%s: type %u, expected %u", name, got, want[k]);
        }
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        if (!msg[0] && planned(g, types, name) != LOFT_TYPE_F32)
            snprintf(msg, sizeof msg, "%s was not left F32", name);
    }
    uint32_t embd = planned(g, types, "token_embd.weight");
    uint32_t want_embd = pure ? LOFT_TYPE_Q4_K : tied ? LOFT_TYPE_Q6_K : LOFT_TYPE_Q4_K;
    if (!msg[0] && embd != want_embd)
        snprintf(msg, sizeof msg, "token_embd: %u, expected %u", embd, want_embd);
    if (!msg[0] && !tied &&
        planned(g, types, "output.weight") != (pure ? LOFT_TYPE_Q4_K : LOFT_TYPE_Q6_K))
        snprintf(msg, sizeof msg, "output.weight: %u", planned(g, types, "output.weight"));
    if (!msg[0] && fallback != SYN_LAYERS)
        snprintf(msg, sizeof msg, "%d fallbacks, expected %d", fallback, SYN_LAYERS);
    gguf_close(g);
    CHECKF(!msg[0], "%s%s: %s", tied ? "tied" : "untied", pure ? " pure" : "", msg);
}

static void test_mix_q4_k_m(void)
{
    check_mix(false, false);
}

static void test_mix_q4_k_m_tied(void)
{
    check_mix(true, false);
}

static void test_mix_pure(void)
{
    check_mix(false, true);
}

static void test_ftype_names(void)
{
    const quantize_ftype *f = quantize_ftype_from_name("q4_k_m");
    CHECK(f && f->ftype == 15 && f->default_type == LOFT_TYPE_Q4_K);
    f = quantize_ftype_from_name("Q4_K");
    CHECK(f && f->ftype == 15);
    CHECK(quantize_ftype_from_name("Q8_0")->ftype == 7);
    CHECK(quantize_ftype_from_name("BF16")->ftype == 32);
    CHECK(quantize_ftype_from_name("IQ2_XXS") == NULL);
    CHECK(!strcmp(quantize_ftype_name(15), "Q4_K_M") && !strcmp(quantize_ftype_name(0), "F32"));
    CHECK(quantize_ftype_name(999) == NULL);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"ftype_names", test_ftype_names},
        {"mix_q4_k_m", test_mix_q4_k_m},
        {"mix_q4_k_m_tied", test_mix_q4_k_m_tied},
        {"mix_pure", test_mix_pure},
        {"refuses_requantize", test_refuses_requantize},
        {"q8_0_via_program", test_q8_0_via_program},
        {"q4_0", test_q4_0},
        {"f16", test_f16},
    };
    int rc = test_main(argc, argv, cases, TEST_COUNT(cases));
    if (tmp_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
    }
    return rc;
}
