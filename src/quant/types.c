/*
 * types.c - the type table (ggml's ids, block sizes and block bytes) and
 * the row-level dispatch to each family's reference routines.
 */
#include <stdint.h>

#include "quant/quant.h"
#include "quant/quant_impl.h"

typedef void (*quant_dequant_fn)(const void *src, float *dst, int64_t nb);
typedef void (*quant_quant_fn)(const float *src, void *dst, int64_t nb);

typedef struct quant_type_entry {
    loft_type_traits traits;
    quant_dequant_fn dequantize;
    quant_quant_fn quantize;
} quant_type_entry;

/* Every type has a dequantizer; QT names a quantizer too, QT_DEQ none. */
#define QT(id, nm, bs, ts, dq, q) [id] = {{nm, bs, ts, true, true}, dq, q}
#define QT_DEQ(id, nm, bs, ts, dq) [id] = {{nm, bs, ts, true, false}, dq, NULL}

/* Block bytes follow ggml's block structs (ggml-common.h). Q8_1 is
 * half d + half s + 32 int8 = 36 bytes as ggml lays it out; the gguf Python
 * package's table still says 40 (an older float layout). Q8_K is
 * float d + 256 int8 + 16 int16 bsums = 292. */
static const quant_type_entry quant_types[LOFT_TYPE_COUNT] = {
    QT(LOFT_TYPE_F32, "F32", 1, 4, quant_dequantize_f32, quant_quantize_f32),
    QT(LOFT_TYPE_F16, "F16", 1, 2, quant_dequantize_f16, quant_quantize_f16),
    QT(LOFT_TYPE_Q4_0, "Q4_0", 32, 2 + 16, quant_dequantize_q4_0, quant_quantize_q4_0),
    QT(LOFT_TYPE_Q4_1, "Q4_1", 32, 2 + 2 + 16, quant_dequantize_q4_1, quant_quantize_q4_1),
    QT(LOFT_TYPE_Q5_0, "Q5_0", 32, 2 + 4 + 16, quant_dequantize_q5_0, quant_quantize_q5_0),
    QT(LOFT_TYPE_Q5_1, "Q5_1", 32, 2 + 2 + 4 + 16, quant_dequantize_q5_1, quant_quantize_q5_1),
    QT(LOFT_TYPE_Q8_0, "Q8_0", 32, 2 + 32, quant_dequantize_q8_0, quant_quantize_q8_0),
    QT(LOFT_TYPE_Q8_1, "Q8_1", 32, 2 + 2 + 32, quant_dequantize_q8_1, quant_quantize_q8_1),
    QT(LOFT_TYPE_Q2_K, "Q2_K", QK_K, 2 + 2 + QK_K / 16 + QK_K / 4, quant_dequantize_q2_k,
       quant_quantize_q2_k),
    QT(LOFT_TYPE_Q3_K, "Q3_K", QK_K, 2 + QK_K / 4 + QK_K / 8 + 12, quant_dequantize_q3_k,
       quant_quantize_q3_k),
    QT(LOFT_TYPE_Q4_K, "Q4_K", QK_K, 2 + 2 + 12 + QK_K / 2, quant_dequantize_q4_k,
       quant_quantize_q4_k),
    QT(LOFT_TYPE_Q5_K, "Q5_K", QK_K, 2 + 2 + 12 + QK_K / 2 + QK_K / 8, quant_dequantize_q5_k,
       quant_quantize_q5_k),
    QT(LOFT_TYPE_Q6_K, "Q6_K", QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16, quant_dequantize_q6_k,
       quant_quantize_q6_k),
    QT(LOFT_TYPE_Q8_K, "Q8_K", QK_K, 4 + QK_K + QK_K / 16 * 2, quant_dequantize_q8_k,
       quant_quantize_q8_k),
    QT_DEQ(LOFT_TYPE_I8, "I8", 1, 1, quant_dequantize_i8),
    QT_DEQ(LOFT_TYPE_I16, "I16", 1, 2, quant_dequantize_i16),
    QT_DEQ(LOFT_TYPE_I32, "I32", 1, 4, quant_dequantize_i32),
    QT_DEQ(LOFT_TYPE_I64, "I64", 1, 8, quant_dequantize_i64),
    QT_DEQ(LOFT_TYPE_F64, "F64", 1, 8, quant_dequantize_f64),
    QT(LOFT_TYPE_BF16, "BF16", 1, 2, quant_dequantize_bf16, quant_quantize_bf16),
};

static const quant_type_entry *quant_entry(uint32_t t)
{
    if (t >= LOFT_TYPE_COUNT || quant_types[t].traits.name == NULL) return NULL;
    return &quant_types[t];
}

const loft_type_traits *loft_type_get(uint32_t t)
{
    const quant_type_entry *e = quant_entry(t);
    return e ? &e->traits : NULL;
}

/* ASCII case-insensitive equality (type names are plain ASCII). */
static bool quant_name_eq(const char *a, const char *b)
{
    for (;; a++, b++) {
        char ca = *a, cb = *b;
        if (ca >= 'a' && ca <= 'z') ca = (char)(ca - 'a' + 'A');
        if (cb >= 'a' && cb <= 'z') cb = (char)(cb - 'a' + 'A');
        if (ca != cb) return false;
        if (ca == '\0') return true;
    }
}

int loft_type_from_name(const char *name)
{
    if (name == NULL) return -1;
    for (int t = 0; t < LOFT_TYPE_COUNT; t++) {
        const char *nm = quant_types[t].traits.name;
        if (nm != NULL && quant_name_eq(nm, name)) return t;
    }
    return -1;
}

size_t loft_type_row_size(uint32_t t, int64_t n)
{
    const quant_type_entry *e = quant_entry(t);
    if (e == NULL || n < 0) return 0;
    int64_t bs = e->traits.block_size;
    if (n % bs != 0) return 0;
    uint64_t nb = (uint64_t)(n / bs);
    uint64_t ts = e->traits.type_size;
    if (nb > SIZE_MAX / ts) return 0;
    return (size_t)(nb * ts);
}

/* Number of blocks in n values of entry e, or -1 when n does not split. */
static int64_t quant_blocks(const quant_type_entry *e, int64_t n)
{
    if (n < 0 || n % (int64_t)e->traits.block_size != 0) return -1;
    return n / (int64_t)e->traits.block_size;
}

bool loft_dequantize_row(uint32_t t, const void *src, float *dst, int64_t n)
{
    const quant_type_entry *e = quant_entry(t);
    if (e == NULL || e->dequantize == NULL) return false;
    int64_t nb = quant_blocks(e, n);
    if (nb < 0) return false;
    e->dequantize(src, dst, nb);
    return true;
}

bool loft_quantize_row(uint32_t t, const float *src, void *dst, int64_t n)
{
    const quant_type_entry *e = quant_entry(t);
    if (e == NULL || e->quantize == NULL) return false;
    int64_t nb = quant_blocks(e, n);
    if (nb < 0) return false;
    e->quantize(src, dst, nb);
    return true;
}
