/*
 * kernels.h - the compute kernels behind inference: dot products of weight
 * rows (any GGUF weight type) with activation rows, activation quantization,
 * and the threaded matrix product built from them.
 *
 * One function table per instruction set (ref.c is the scalar oracle;
 * avx2.c, avx512.c and neon.c each compile with their own flags). The table
 * of the best set this CPU and OS support is filled once at start-up;
 * LOFT_ISA=ref|avx2|avx512|neon forces one. A set fills only the entries it
 * speeds up; the others keep the ref entry.
 *
 * Activations reach a quantized weight's dot product in one of three
 * formats (kernels_x_format): F32 rows for F32/F16/BF16 weights, rows of
 * kernels_q8 blocks for the 32-value block types (Q4_0, Q4_1, Q5_0, Q5_1,
 * Q8_0), rows of kernels_q8k blocks for the K-quants. The 8-bit formats are
 * loft's own (not ggml's byte layout); they carry the integer block sums so
 * the offsets of Q4_0/Q4_1/Q5_x/K-quant weights are applied exactly in
 * integers or once per block.
 */
#ifndef LOFT_KERNELS_H
#define LOFT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "base/threadpool.h"
#include "loft.h"
#include "quant/quant.h"

/* 32 activations as d * qs[i]; sum = sum of qs, s = d * sum (in float). */
typedef struct kernels_q8 {
    float d;
    float s;
    int32_t sum;
    int8_t qs[32];
} kernels_q8;

/* 256 activations as d * qs[i]; bsums[j] = sum of qs[16j .. 16j+15]. */
typedef struct kernels_q8k {
    float d;
    int16_t bsums[16];
    int8_t qs[QK_K];
} kernels_q8k;

typedef enum kernels_xfmt {
    KERNELS_X_NONE = 0, /* the weight type has no dot product */
    KERNELS_X_F32,
    KERNELS_X_Q8,
    KERNELS_X_Q8K,
} kernels_xfmt;

/* Activation rows one dot-product call takes at most (one weight row is
 * unpacked once and used for all of them). */
#define KERNELS_MAX_NX 4

/* out[j] = dot(weight row w of n values, activation row j) for j < nx
 * (1 <= nx <= KERNELS_MAX_NX); activation row j starts x_stride bytes after
 * row j - 1 and is in the weight type's format. n is a multiple of the
 * weight type's block size. */
typedef void (*kernels_dot_fn)(int64_t n, const void *w, const void *x, size_t x_stride, int nx,
                               float *out);

/* The same for two weight rows at once (w and w + w_stride bytes): out[j]
 * for the first row, out[KERNELS_MAX_NX + j] for the second. Optional: a
 * set provides it where sharing the activation side between two rows pays. */
typedef void (*kernels_dot2_fn)(int64_t n, const void *w, size_t w_stride, const void *x,
                                size_t x_stride, int nx, float *out);

/* Tokens one gemm call takes at most. */
#define KERNELS_GEMM_NX 128

/* y[j * y_stride + r] = dot(weight row r, activation row j) for r < nrows
 * and j < nx (1 <= nx <= KERNELS_GEMM_NX): weight row r at w + r * w_stride
 * bytes, activation rows as for kernels_dot_fn. Optional: a set provides it
 * where tiles of several weight rows by many tokens pay (prefill). The value
 * of one (row, token) does not depend on nrows, nx or on which rows share a
 * call, so splitting rows across threads changes no bit. */
typedef void (*kernels_gemm_fn)(int64_t n, const void *w, size_t w_stride, int64_t nrows,
                                const void *x, size_t x_stride, int nx, float *y, size_t y_stride);

/* Rows of one group of a packed weight layout (kernels_pack). */
#define KERNELS_PACK_ROWS 16

/* y[j * y_stride + r] = dot(weight row r, activation row j) for
 * r < 16 * ngroups and j < nx (1 <= nx <= KERNELS_GEMM_NX), where wp holds
 * ngroups consecutive groups of KERNELS_PACK_ROWS rows as kernels_pack
 * lays them out (kernels_pack_group_bytes apart) and the activation rows
 * are as for kernels_dot_fn. One (row, token) value does not depend on
 * ngroups, nx or the group's place in the call. */
typedef void (*kernels_packed_fn)(int64_t n, const void *wp, int64_t ngroups, const void *x,
                                  size_t x_stride, int nx, float *y, size_t y_stride);

/* Quantizes n floats (a multiple of the block size: 32 or QK_K) into
 * n/32 kernels_q8 or n/QK_K kernels_q8k blocks. */
typedef void (*kernels_quant_fn)(const float *x, void *y, int64_t n);

/* The shape of an attention: query head h reads kv head h / (n_head /
 * n_head_kv); scores are scale * q.k, then softcap * tanh(s / softcap) when
 * softcap > 0, then a softmax over the causal range (the last `window`
 * positions when window > 0). */
typedef struct kernels_attn {
    int32_t n_head, n_head_kv;
    int32_t head_dim, head_dim_v;
    int32_t window; /* 0 = full causal */
    float scale;
    float softcap; /* 0 = none */
    /* KERNELS_ATTN_GGML_* (F16 caches, head_dim <= KERNELS_ATTN_GGML_MAX_HD
     * only; otherwise ignored): compute exactly as ggml's CPU backend does,
     * rounding for rounding (see kernels_attn_group_ggml). */
    int f16_products;
} kernels_attn;

enum {
    KERNELS_ATTN_OWN = 0,        /* loft's own sequence */
    KERNELS_ATTN_GGML_DECODE = 1, /* ggml with one query token per batch */
    KERNELS_ATTN_GGML_BATCH = 2,  /* ggml with several (its prompt path) */
};

#define KERNELS_ATTN_GGML_MAX_HD 1024
#define KERNELS_ATTN_GGML_MAX_TOKENS 4 /* query tokens per kernels_attn_tokens_ggml call */

/* e^x exactly as ggml's AVX-512 vector expf computes it (a polynomial
 * within about 1.5 ulp of e^x; 0 below about -88, infinity above 88). */
float kernels_expf_ggml(float x);

/* out[i] = (gate[i] / (1 + kernels_expf_ggml(-gate[i]))) * up[i] for
 * i < n, each value rounded exactly as that scalar expression rounds it
 * (vectorized where the avx512 set is in use); out may alias gate or up. */
void kernels_silu_mul_ggml(float *out, const float *gate, const float *up, int64_t n);

/* ggml's attention (no flash attention) over an F16 cache, with the same
 * arguments as kernels_attn_fn: each query element rounded to F16; q.k
 * summed in ggml's order (GGML_DECODE: its F16 dot product, four 16-lane
 * accumulators; GGML_BATCH: its llamafile gemm, one 16-lane accumulator);
 * scores times scale; exponentials by ggml's vector expf, summed per 16
 * cache cells in float then in double; probabilities times the float
 * reciprocal and rounded to F16; values summed in the same order as q.k.
 * With identical inputs the outputs are bit-identical to ggml's AVX-512
 * build. ng <= KERNELS_MAX_NX; scores: ng * (last + 1) floats. */
void kernels_attn_group_ggml(float *out, const float *q, int ng, const void *K, size_t k_stride,
                             const void *V, size_t v_stride, uint32_t kv_type, int32_t first,
                             int32_t last, const kernels_attn *as, float *scores);

/* kernels_attn_group_ggml for nt (1..KERNELS_ATTN_GGML_MAX_TOKENS) query
 * tokens of one kv-head group at once (the prompt's case; faster where
 * the avx512 set is in use): token t's ng query rows at q + t * q_stride
 * (head_dim apart), its outputs at out + t * out_stride (head_dim_v apart),
 * and it sees cells first[t]..last[t] (first[t] <= last[t]) of the F16
 * cache K, V. The outputs are bit-identical to nt calls of
 * kernels_attn_group_ggml, one per token. scores: scratch of
 * kernels_attn_tokens_scratch(nt, ng, max of last[t] + 1) floats. */
void kernels_attn_tokens_ggml(float *out, size_t out_stride, const float *q, size_t q_stride,
                              int nt, int ng, const void *K, size_t k_stride, const void *V,
                              size_t v_stride, const int32_t *first, const int32_t *last,
                              const kernels_attn *as, float *scores);

/* Floats of scores kernels_attn_tokens_ggml needs for nt tokens of ng
 * heads over cells below n_cells (0 for empty shapes, SIZE_MAX when the
 * count does not fit a size_t). */
size_t kernels_attn_tokens_scratch(int nt, int ng, int32_t n_cells);

/* Attention of ng (1..KERNELS_MAX_NX) query heads that share one kv head,
 * for one token over positions first..last:
 *   q: (ng, head_dim) rows, out: (ng, head_dim_v) rows;
 *   key p at K + p * k_stride elements (head_dim of them), value p at
 *   V + p * v_stride; K and V hold kv_type elements (LOFT_TYPE_F32 or
 *   LOFT_TYPE_F16, as the kv cache stores them);
 *   scores: scratch of ng * (last - first + 1) floats. */
typedef void (*kernels_attn_fn)(float *out, const float *q, int ng, const void *K,
                                size_t k_stride, const void *V, size_t v_stride, uint32_t kv_type,
                                int32_t first, int32_t last, const kernels_attn *as, float *scores);

/* out[i] = act(gate[i]) * up[i] for n values; out may alias gate or up. */
typedef void (*kernels_glu_fn)(float *out, const float *gate, const float *up, int64_t n);

/* dst[i] = x[i] rounded to F16 for i < n, bit for bit what
 * loft_f32_to_f16 gives: nearest, ties to even, overflow to infinity,
 * subnormal halves exact, NaN keeping its sign and top 10 payload bits
 * (never quieted, never infinity). */
typedef void (*kernels_f16_row_fn)(uint16_t *dst, const float *x, int64_t n);

/* RoPE in place on x: (n_heads, head_dim) by cs: n_rot floats, (cos, sin)
 * of each of the n_rot / 2 pair angles (n_rot even, <= head_dim). Pair i
 * is dims (2i, 2i + 1) for neox == 0 and (i, i + n_rot / 2) otherwise;
 * dims from n_rot on are left as they are. Each pair (a, b) becomes
 * (fma(a, c, -(b * s)), fma(a, s, b * c)): one product rounded, the other
 * fused, as ggml's compiled rope rounds; every set gives these bits for
 * every result that is not NaN. */
typedef void (*kernels_rope_fn)(float *x, int32_t n_heads, int32_t head_dim, int32_t n_rot,
                                int neox, const float *cs);

enum {
    KERNELS_DOTB_FOURS = 1, /* dotb for the first T - T % 4 of T tokens */
    KERNELS_DOTB_FROM8 = 2, /* dotb for all T tokens when T >= 8 */
};

typedef struct loft_kernels {
    const char *name; /* "ref", "avx2", "avx512", "neon" */
    kernels_quant_fn quantize_q8;
    kernels_quant_fn quantize_q8k;
    kernels_dot_fn dot[LOFT_TYPE_COUNT]; /* NULL: type has no dot product */
    kernels_dot2_fn dot2[LOFT_TYPE_COUNT]; /* NULL: use dot row by row */
    kernels_gemm_fn gemm[LOFT_TYPE_COUNT]; /* NULL: use dot2 / dot */
    kernels_packed_fn packed[LOFT_TYPE_COUNT]; /* NULL: no packed layout for the type */
    /* The gemm signature for one token (nx == 1, decoding): all rows of a
     * thread's range in one call, each row's value as dot[type] gives it.
     * Optional: NULL: dot row by row. */
    kernels_gemm_fn gemv[LOFT_TYPE_COUNT];
    /* Optional: the dot product in the order llama.cpp's CPU backend uses
     * for some tokens of a batch of T (product of T activation rows), which
     * dotb_rule says; the other tokens go through dot, and gemm, where set,
     * follows dotb. Q4_K (KERNELS_DOTB_FOURS): llama.cpp's repacked gemm
     * takes the first T - T % 4 tokens four at a time and rounds after
     * every 64 values, its gemv the rest, rounding after every 256. Q6_K
     * (KERNELS_DOTB_FROM8): its tiled K-quant matmul takes batches of 8
     * tokens or more, its vector dot product smaller ones. */
    kernels_dot_fn dotb[LOFT_TYPE_COUNT];
    uint8_t dotb_rule[LOFT_TYPE_COUNT];
    kernels_attn_fn attn_group;
    kernels_glu_fn swiglu; /* act = silu: x / (1 + e^-x) */
    kernels_glu_fn geglu;  /* act = gelu, tanh form: x / 2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    /* act = gelu as ggml's CPU backend computes it for F32 tensors: 0 for
     * x <= -10, x for x >= 10, else the kernels_gelu_f16_table entry of x
     * rounded to F16; the product with up in float. */
    kernels_glu_fn geglu_f16;
    kernels_f16_row_fn f32_to_f16; /* the F16 cache store's rounding */
    kernels_rope_fn rope;
} loft_kernels;

/* gelu of every F16 value (the index's bits), rounded to F16: ggml's
 * table, built once with the rounding its compiled gelu has (it fuses
 * 1 + 0.044715 x x into fma(0.044715 x, x, 1)). Never NULL. */
const uint16_t *kernels_gelu_f16_table(void);

/* The table in use: chosen once (thread-safe) from cpuid and LOFT_ISA.
 * An unknown or unsupported LOFT_ISA falls back to the best set. Never NULL. */
const loft_kernels *kernels_get(void);

/* The table of instruction set `name` ("ref", "avx2", "avx512", "neon"), or
 * NULL when it is not compiled in or this CPU/OS cannot run it. For tests. */
const loft_kernels *kernels_get_isa(const char *name);

/* Activation format for weights of type t. */
kernels_xfmt kernels_x_format(uint32_t t);

/* Bytes of one activation row of k values in the format for weight type t;
 * 0 when t has no dot product, k does not fit t's block size, or the size
 * overflows. */
size_t kernels_x_row_size(uint32_t t, int64_t k);

/* Converts x: (T, k) floats into T rows of the activation format for weight
 * type t at xq (T * kernels_x_row_size(t, k) bytes). F32 rows are copied. */
void kernels_quantize_x(const loft_kernels *kt, uint32_t t, const float *x, int64_t T, int64_t k,
                        void *xq);

/* A weight matrix: n_out rows of n_in values of type `type`, row_bytes
 * apart (a view; kernels never copy weights). packed, when not NULL, is
 * kernels_pack's copy of its first n_out / KERNELS_PACK_ROWS groups of
 * rows, made for this kernel set; the matrix product then reads those rows
 * from it and only the rows past the last full group from data. */
typedef struct kernels_weight {
    const void *data;
    uint32_t type;
    int64_t n_in;
    int64_t n_out;
    size_t row_bytes;
    const void *packed;
} kernels_weight;

/* Bytes of one packed group of KERNELS_PACK_ROWS rows of n_in values of
 * type t; 0 when t has no packed layout, n_in does not fit its block size
 * or the size overflows. */
size_t kernels_pack_group_bytes(uint32_t t, int64_t n_in);

/* Bytes kernels_pack writes for an (n_out, n_in) matrix of type t, for use
 * with table kt: n_out / KERNELS_PACK_ROWS groups. 0 when kt has no packed
 * kernel for t, n_out < KERNELS_PACK_ROWS, or the size overflows size_t. */
size_t kernels_pack_size(const loft_kernels *kt, uint32_t t, int64_t n_in, int64_t n_out);

/* Copies the full groups of rows of w (row_bytes apart, GGUF layout) into
 * dst (kernels_pack_size bytes, 64-byte aligned for aligned loads) in the
 * packed layout of type t, group after group. Q4_0: a group is one run of
 * pairs of blocks, 576 bytes a pair (the last pair of an odd block count
 * holds one block): a 64-byte line of F16 scales (block 2p's 16 rows, then
 * block 2p+1's), then per block 256 bytes of nibbles: 4 runs of 64 bytes,
 * run c holding bytes 4c..4c+3 of each row's 16 nibble bytes, row by row.
 * One sequential stream: a separate stream of scales a few KiB away measured
 * 1.5x slower from DRAM. */
void kernels_pack(uint32_t t, const void *w, size_t row_bytes, int64_t n_in, int64_t n_out,
                  void *dst);

/* y: (T, w.n_out) = xq: (T, w.n_in) times w transposed, where xq holds T
 * activation rows made by kernels_quantize_x for w.type, x_row_bytes
 * apart. Rows of w are split into contiguous ranges, one per pool thread
 * (pool may be NULL: the caller alone), cut at even rows so rows pair up
 * for dot2 the same way whatever the thread count; each thread takes up to
 * KERNELS_GEMM_NX activation rows per gemm call where the set has a gemm
 * for the type and at least 8 rows are left, else up to KERNELS_MAX_NX
 * per pass of dot products over its weight rows. The result does not
 * depend on the thread count. The type must have a dot product. */
void kernels_matmul_xq(const loft_kernels *kt, threadpool *pool, float *y, const void *xq,
                       size_t x_row_bytes, int64_t T, const kernels_weight *w);

/* One product of kernels_matmul_xq's kind, for kernels_matmul_xq_many. */
typedef struct kernels_matmul_item {
    float *y;
    const void *xq;
    size_t x_row_bytes;
    int64_t T;
    kernels_weight w;
} kernels_matmul_item;

/* kernels_matmul_xq for each of items[0..n) in one pool run: each thread
 * takes its rows of every product in turn (the same rows a single call
 * gives it), so n independent products cost one wake-up and one wait
 * instead of n. The results equal n kernels_matmul_xq calls. */
void kernels_matmul_xq_many(const loft_kernels *kt, threadpool *pool, int n,
                            const kernels_matmul_item *items);

/* The same with F32 activations kept in F32: each thread dequantizes one
 * weight row at a time into its part of row_buf (threadpool_size(pool) *
 * w.n_in floats) and dots it with the T rows of x: (T, w.n_in) through the
 * F32 kernel. Slower than the 8-bit path for quantized weights, and as
 * close to a float reference as F32 sums get. Any type with a reference
 * dequantizer works. */
void kernels_matmul_f32(const loft_kernels *kt, threadpool *pool, float *y, const float *x,
                        int64_t T, const kernels_weight *w, float *row_buf);

/* The same from F32 activations x: (T, w.n_in): quantizes them into
 * scratch (at least T * kernels_x_row_size(w.type, w.n_in) bytes) first.
 * Fails with LOFT_ERR_UNSUPPORTED when w.type has no dot product and
 * LOFT_ERR_ARG when scratch is too small. */
loft_code kernels_matmul(const loft_kernels *kt, threadpool *pool, float *y, const float *x,
                         int64_t T, const kernels_weight *w, void *scratch, size_t scratch_bytes,
                         loft_status *st);

/* Causal attention of T query tokens at positions pos0.. over a cache:
 *   q: (T, n_head * head_dim), out: (T, n_head * head_dim_v),
 *   K: (n_pos, n_head_kv * head_dim), V: (n_pos, n_head_kv * head_dim_v)
 *   of kv_type (LOFT_TYPE_F32 or LOFT_TYPE_F16), n_pos >= pos0 + T (rows
 *   past a token's position are not read).
 * Work items (a token - on the ggml path a run of up to
 * KERNELS_ATTN_GGML_MAX_TOKENS consecutive tokens - and a group of up to
 * KERNELS_MAX_NX heads of one kv head) are dealt round-robin to the pool's
 * threads; the results do not depend on the thread count. scores: scratch
 * of kernels_attention_scratch(pool, pos0 + T) floats. */
void kernels_attention(const loft_kernels *kt, threadpool *pool, float *out, const float *q,
                       int32_t T, int32_t pos0, const void *K, const void *V, uint32_t kv_type,
                       const kernels_attn *as, float *scores);

/* Floats of scratch kernels_attention needs for n_pos positions (SIZE_MAX
 * when that count does not fit a size_t). */
size_t kernels_attention_scratch(const threadpool *pool, int32_t n_pos);

enum { KERNELS_SWIGLU, KERNELS_GEGLU, KERNELS_GEGLU_F16 };

/* out[i] = act(gate[i]) * up[i] for n values (act: KERNELS_SWIGLU,
 * KERNELS_GEGLU or KERNELS_GEGLU_F16, see loft_kernels), split across the
 * pool's threads in contiguous ranges.
 * out may alias gate or up. */
void kernels_glu(const loft_kernels *kt, threadpool *pool, int kind, float *out, const float *gate,
                 const float *up, int64_t n);

/* Fillers, one per instruction set: each overwrites the entries of *kt it
 * implements (kt starts as the ref table). Only those compiled in exist. */
void kernels_fill_ref(loft_kernels *kt);
#if defined(__x86_64__) || defined(__i386__)
void kernels_fill_avx2(loft_kernels *kt);
/* The avx2 set's products over packed layouts (avx2_packed.c). */
void kernels_fill_avx2_packed(loft_kernels *kt);
void kernels_fill_avx512(loft_kernels *kt);
/* The avx512 set's products over packed layouts (avx512_packed.c). */
void kernels_fill_avx512_packed(loft_kernels *kt);
#endif
#if defined(__aarch64__)
void kernels_fill_neon(loft_kernels *kt);
#endif

#endif
