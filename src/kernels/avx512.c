/*
 * avx512.c - the AVX-512 kernel set (F, BW, VL, DQ, VNNI; compiled with the
 * flags in the Makefile's ISA_FLAGS). The integer dot products use the
 * 256-bit bodies of x86_body.h with vpdpbusd / vpdpwssd; the float-weight
 * products use 512-bit registers with masked tails. The prefill tiles
 * (gemm: several weight rows by up to 128 tokens, one token per 32-bit
 * lane) are here only: they need 512-bit vpdpbusd to pay.
 */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "kernels/kernels.h"

static void kx_extra_fill(loft_kernels *kt);

#define KX_VNNI 1
#define KX_FILL kernels_fill_avx512
#define KX_NAME "avx512"
#define KX_EXTRA_FILL 1
#include "kernels/x86_body.h"

/* 16 weights at w[i..i+16) (only the lanes set in m) as floats. */
static inline __attribute__((always_inline)) __m512 k5_load_w16(const void *w, int64_t i,
                                                                __mmask16 m, const int kind)
{
    if (kind == KX_W_F32) return _mm512_maskz_loadu_ps(m, (const float *)w + i);
    const __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)w + i);
    if (kind == KX_W_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

static inline __attribute__((always_inline)) void k5_dot_float(int64_t n, const void *w,
                                                               const void *x, size_t xs,
                                                               const int nx, float *out,
                                                               const int kind)
{
    const float *xr[KERNELS_MAX_NX];
    __m512 a0[KERNELS_MAX_NX], a1[KERNELS_MAX_NX];
    KX_UNROLL
    for (int j = 0; j < nx; j++) {
        xr[j] = (const float *)((const char *)x + (size_t)j * xs);
        a0[j] = a1[j] = _mm512_setzero_ps();
    }
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 w0 = k5_load_w16(w, i, 0xFFFF, kind);
        const __m512 w1 = k5_load_w16(w, i + 16, 0xFFFF, kind);
        KX_UNROLL
        for (int j = 0; j < nx; j++) {
            a0[j] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xr[j] + i), a0[j]);
            a1[j] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xr[j] + i + 16), a1[j]);
        }
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __m512 w0 = k5_load_w16(w, i, m, kind);
        KX_UNROLL
        for (int j = 0; j < nx; j++)
            a0[j] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m, xr[j] + i), a0[j]);
    }
    KX_UNROLL
    for (int j = 0; j < nx; j++)
        out[j] = _mm512_reduce_add_ps(_mm512_add_ps(a0[j], a1[j]));
}

/* Decoding (one token): y[r] = dot(row r, x) for nrows rows, each exactly
 * as k5_dot_float with one token sums it. One row after the other, in one
 * loop: the weights stream from memory in address order (interleaving rows
 * measured about 3x slower), and no call per row. */
static inline __attribute__((always_inline)) void k5_gemv_float(int64_t n, const void *w,
                                                                size_t ws, int64_t nrows,
                                                                const float *x, float *y,
                                                                const int kind)
{
    const int64_t n32 = n / 32 * 32;
    for (int64_t r = 0; r < nrows; r++) {
        const void *wr = (const char *)w + (size_t)r * ws;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;
        int64_t i = 0;
        for (; i < n32; i += 32) {
            a0 = _mm512_fmadd_ps(k5_load_w16(wr, i, 0xFFFF, kind), _mm512_loadu_ps(x + i), a0);
            a1 = _mm512_fmadd_ps(k5_load_w16(wr, i + 16, 0xFFFF, kind),
                                 _mm512_loadu_ps(x + i + 16), a1);
        }
        for (; i < n; i += 16) {
            const __mmask16 m =
                n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
            a0 = _mm512_fmadd_ps(k5_load_w16(wr, i, m, kind), _mm512_maskz_loadu_ps(m, x + i), a0);
        }
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    }
}

static void k5_gemv_f16(int64_t n, const void *w, size_t ws, int64_t nrows, const void *x,
                        size_t xs, int nx, float *y, size_t ys)
{
    (void)xs, (void)nx, (void)ys;
    k5_gemv_float(n, w, ws, nrows, x, y, KX_W_F16);
}

#define K5_F32_BODY(n, w, x, xs, nx, out) k5_dot_float(n, w, x, xs, nx, out, KX_W_F32)
#define K5_F16_BODY(n, w, x, xs, nx, out) k5_dot_float(n, w, x, xs, nx, out, KX_W_F16)
#define K5_BF16_BODY(n, w, x, xs, nx, out) k5_dot_float(n, w, x, xs, nx, out, KX_W_BF16)

static void k5_dot_f32(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    KX_NX_SWITCH(K5_F32_BODY, n, w, x, xs, nx, out);
}

static void k5_dot_f16(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    KX_NX_SWITCH(K5_F16_BODY, n, w, x, xs, nx, out);
}

static void k5_dot_bf16(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out)
{
    KX_NX_SWITCH(K5_BF16_BODY, n, w, x, xs, nx, out);
}

/* ---- prefill tiles: weight rows x 16 tokens, one token per 32-bit lane ---- *
 *
 * The activations of up to 16 tokens are transposed into a stack buffer so
 * that one zmm holds, for each token, the same 4 consecutive values; a weight
 * row's 4 matching values are broadcast to all lanes. One vpdpbusd then does
 * 4 multiply-adds for 16 tokens, each weight byte unpacked once serves 16
 * tokens, and the per-block float scaling is one multiply-add per 16 tokens.
 * The buffer covers K5_KC blocks (or floats) of the row at a time; longer
 * rows add their chunks' results into y in chunk order. */

/* Tile loops over rows and token lanes unrolled in full: their
 * accumulators must live in registers. */
#define K5_UNROLL _Pragma("GCC unroll 16")

#define K5_KC 32                     /* 32-value blocks per activation chunk */
#define K5_G 4                       /* groups of 16 tokens the 32-block tiles take per row pass */
#define K5_FG (KERNELS_GEMM_NX / 16) /* the same for float weights: all of a call */
/* Floats per activation chunk at most. Each chunk pass reads its part of
 * every weight row, so with short chunks the rows stream from memory in
 * pieces, which the hardware prefetcher follows badly: with the weights
 * out of cache, 576-value rows in one chunk ran at 42 GMAC/s against 28
 * in 2 chunks and 21 in 3. The transposed chunk lives on the stack:
 * K5_FG * K5_FKC * 64 bytes (384 KiB). */
#ifndef K5_FKC
#define K5_FKC 768
#endif
#define K5_R 4                       /* weight rows per integer tile */
#define K5_FR 8                      /* weight rows per float tile */

/* Makes the compiler forget what p's buffer holds, so the 4-byte
 * broadcasts that follow are loads from it (load ports) rather than
 * shuffles of the register just stored (which compete with the
 * multiply-adds for the vector ALUs). */
#define K5_FROM_MEMORY(p) __asm__ volatile("" : : "r"(p) : "memory")

/* Asks for bytes [off, off + len) of rows r0..r0+nr (ws apart) ahead of
 * use: the next row tile's part of the chunk arrives while this tile
 * computes. Prefetches past the matrix are harmless (they never fault). */
static inline __attribute__((always_inline)) void
k5_prefetch_rows(const void *w, size_t ws, int64_t nr, size_t off, size_t len)
{
    for (int64_t i = 0; i < nr; i++)
        for (size_t o = 0; o < len; o += 64)
            _mm_prefetch((const char *)w + (size_t)i * ws + off + o, _MM_HINT_T0);
}

/* k5_prefetch_rows into L2 only: for tiles that stream more activations
 * through L1 before the rows are used than L1 holds. */
static inline __attribute__((always_inline)) void
k5_prefetch_rows_l2(const void *w, size_t ws, int64_t nr, size_t off, size_t len)
{
    for (int64_t i = 0; i < nr; i++)
        for (size_t o = 0; o < len; o += 64)
            _mm_prefetch((const char *)w + (size_t)i * ws + off + o, _MM_HINT_T1);
}

/* Tokens in group g (16 tokens each) of nx. */
#define K5_GX(nx, g) ((nx)-16 * (g) < 16 ? (nx)-16 * (g) : 16)

/* One 32-value block of 16 tokens: q[c] lane j = token j's values
 * 4c..4c+3; off = -(weight offset) * (token's block sum), so the integer
 * sum starts from it; d and s as in kernels_q8. */
typedef struct k5_xblock {
    __m512i q[8];
    __m512i off;
    __m512 d;
    __m512 s;
} k5_xblock;

/* Transposes blocks [b0, b0 + nb) of nx activation rows (kernels_q8) into
 * xb; lanes past nx are zero, so they add nothing. */
static void k5_pack_q8(k5_xblock *xb, const void *x, size_t xs, int nx, int64_t b0, int64_t nb,
                       int32_t woff)
{
    for (int64_t b = 0; b < nb; b++) {
        int32_t q[8][16], off[16];
        float d[16], s[16];
        memset(q, 0, sizeof q);
        memset(off, 0, sizeof off);
        memset(d, 0, sizeof d);
        memset(s, 0, sizeof s);
        for (int j = 0; j < nx; j++) {
            const kernels_q8 *src = (const kernels_q8 *)((const char *)x + (size_t)j * xs) + b0 + b;
            for (int c = 0; c < 8; c++)
                memcpy(&q[c][j], src->qs + 4 * c, 4);
            off[j] = -woff * src->sum;
            d[j] = src->d;
            s[j] = src->s;
        }
        for (int c = 0; c < 8; c++)
            xb[b].q[c] = _mm512_loadu_si512(q[c]);
        xb[b].off = _mm512_loadu_si512(off);
        xb[b].d = _mm512_loadu_ps(d);
        xb[b].s = _mm512_loadu_ps(s);
    }
}

/* Lane j of v into y[j * ys] (j < nx), added to what is there when add. */
static inline __attribute__((always_inline)) void k5_store_lanes(float *y, size_t ys, int nx,
                                                                 __m512 v, int add)
{
    float l[16];
    _mm512_storeu_ps(l, v);
    if (add)
        for (int j = 0; j < nx; j++)
            y[(size_t)j * ys] += l[j];
    else
        for (int j = 0; j < nx; j++)
            y[(size_t)j * ys] = l[j];
}

/* R weight rows (at w, ws apart) by the packed blocks xb[0..nb), which are
 * blocks b0.. of the rows. Per row and block: the unsigned weight values
 * are stored once and broadcast 4 at a time. */
static inline __attribute__((always_inline)) void
k5_tile_b32(const void *w, size_t ws, const k5_xblock *xb, int64_t b0, int64_t nb, float *y,
            size_t ys, int nx, int add, const int R, const int kind)
{
    __m512 acc[K5_R];
    K5_UNROLL
    for (int r = 0; r < R; r++)
        acc[r] = _mm512_setzero_ps();
    _Alignas(32) uint32_t u[K5_R][8];
    for (int64_t b = 0; b < nb; b++) {
        const k5_xblock *x = &xb[b];
        float d[K5_R], m[K5_R];
        K5_UNROLL
        for (int r = 0; r < R; r++) {
            m[r] = 0.0f;
            const __m256i v =
                kx_unpack32((const char *)w + (size_t)r * ws, b0 + b, kind, &d[r], &m[r]);
            _mm256_store_si256((__m256i *)u[r], v);
        }
        K5_FROM_MEMORY(u);
        __m512i iacc[K5_R];
        K5_UNROLL
        for (int r = 0; r < R; r++)
            iacc[r] = x->off;
        K5_UNROLL
        for (int c = 0; c < 8; c++) {
            const __m512i xq = x->q[c];
            K5_UNROLL
            for (int r = 0; r < R; r++)
                iacc[r] = _mm512_dpbusd_epi32(iacc[r], _mm512_set1_epi32((int)u[r][c]), xq);
        }
        K5_UNROLL
        for (int r = 0; r < R; r++) {
            const __m512 scale = _mm512_mul_ps(x->d, _mm512_set1_ps(d[r]));
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(iacc[r]), scale, acc[r]);
            if (kind == KX_Q4_1) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(m[r]), x->s, acc[r]);
        }
    }
    K5_UNROLL
    for (int r = 0; r < R; r++)
        k5_store_lanes(y + r, ys, nx, acc[r], add);
}

static inline __attribute__((always_inline)) void k5_gemm_b32(int64_t n, const void *w, size_t ws,
                                                              int64_t nrows, const void *x,
                                                              size_t xs, int nx, float *y,
                                                              size_t ys, const int kind)
{
    _Alignas(64) k5_xblock xb[K5_G][K5_KC];
    const int32_t woff = kind == KX_Q4_0 ? 8 : kind == KX_Q5_0 ? 16 : kind == KX_Q8_0 ? 128 : 0;
    const int64_t nbt = n / 32;
    for (int t0 = 0; t0 < nx; t0 += 16 * K5_G) {
        const int tx = nx - t0 < 16 * K5_G ? nx - t0 : 16 * K5_G;
        const int G = (tx + 15) / 16;
        const char *xt = (const char *)x + (size_t)t0 * xs;
        float *yt = y + (size_t)t0 * ys;
        for (int64_t b0 = 0; b0 < nbt; b0 += K5_KC) {
            const int64_t nb = nbt - b0 < K5_KC ? nbt - b0 : K5_KC;
            const int add = b0 > 0;
            for (int g = 0; g < G; g++)
                k5_pack_q8(xb[g], xt + (size_t)(16 * g) * xs, xs, K5_GX(tx, g), b0, nb, woff);
            /* all token groups per row tile: its weights are read from memory once */
            const size_t bsz = kind == KX_Q4_0   ? sizeof(kq_block_q4_0)
                               : kind == KX_Q4_1 ? sizeof(kq_block_q4_1)
                               : kind == KX_Q5_0 ? sizeof(kq_block_q5_0)
                                                 : sizeof(kq_block_q8_0);
            int64_t r = 0;
            for (; r + K5_R <= nrows; r += K5_R) {
                if (r + 2 * K5_R <= nrows)
                    k5_prefetch_rows((const char *)w + (size_t)(r + K5_R) * ws, ws, K5_R,
                                     (size_t)b0 * bsz, (size_t)nb * bsz);
                for (int g = 0; g < G; g++)
                    k5_tile_b32((const char *)w + (size_t)r * ws, ws, xb[g], b0, nb,
                                yt + (size_t)(16 * g) * ys + r, ys, K5_GX(tx, g), add, K5_R, kind);
            }
            for (; r < nrows; r++)
                for (int g = 0; g < G; g++)
                    k5_tile_b32((const char *)w + (size_t)r * ws, ws, xb[g], b0, nb,
                                yt + (size_t)(16 * g) * ys + r, ys, K5_GX(tx, g), add, 1, kind);
        }
    }
}

#define K5_GEMM_B32(name, kind)                                                                    \
    static void name(int64_t n, const void *w, size_t ws, int64_t nrows, const void *x, size_t xs, \
                     int nx, float *y, size_t ys)                                                  \
    {                                                                                              \
        k5_gemm_b32(n, w, ws, nrows, x, xs, nx, y, ys, kind);                                      \
    }
K5_GEMM_B32(k5_gemm_q4_0, KX_Q4_0)

/* Q5_0 / Q8_0 tiles in llama.cpp's order (see kx_b32s_body in x86_body.h):
 * each (row, token) keeps ggml's eight 8-lane accumulators, here as eight
 * registers c = 0..7 holding lane c of 16 tokens, one token per 32-bit
 * lane; per block, acc_c = fma(dw dx, float(lane c's signed sum), acc_c),
 * and at the end ggml's horizontal-sum order ((a0+a4)+(a2+a6)) +
 * ((a1+a5)+(a3+a7)). The unsigned weights (offset `off`) meet the
 * activations in vpdpbusd starting from -off times the activations' 4-value
 * sums, so each lane's integer is exactly ggml's. A call packs the whole
 * row of each 16 tokens (K5_SMAXB blocks at most; longer rows go through
 * the dot product, which sums in the same order). */
#define K5_SMAXB 64 /* 32-value blocks a packed activation row holds */
#define K5_SR 3     /* weight rows per tile: 8 accumulators each */

typedef struct k5_xsblock {
    __m512i q[8];    /* lane j: token j's values 4c..4c+3 */
    __m512i init[8]; /* lane j: -off * (sum of those 4 values) */
    __m512 d;
} k5_xsblock;

static void k5_pack_q8s_scalar(k5_xsblock *xb, const void *x, size_t xs, int nx, int64_t nb, int32_t off)
{
    for (int64_t b = 0; b < nb; b++) {
        int32_t q[8][16], init[8][16];
        float d[16];
        memset(q, 0, sizeof q);
        memset(init, 0, sizeof init);
        memset(d, 0, sizeof d);
        for (int j = 0; j < nx; j++) {
            const kernels_q8 *src = (const kernels_q8 *)((const char *)x + (size_t)j * xs) + b;
            for (int c = 0; c < 8; c++) {
                memcpy(&q[c][j], src->qs + 4 * c, 4);
                const int8_t *v = src->qs + 4 * c;
                init[c][j] = -off * (v[0] + v[1] + v[2] + v[3]);
            }
            d[j] = src->d;
        }
        for (int c = 0; c < 8; c++) {
            xb[b].q[c] = _mm512_loadu_si512(q[c]);
            xb[b].init[c] = _mm512_loadu_si512(init[c]);
        }
        xb[b].d = _mm512_loadu_ps(d);
    }
}

/* k5_pack_q8s with gathers: lane j of each load is token j's 4 bytes (or
 * scale), and the 4-value sums come from vpdpbusd against ones. Token rows
 * must lie within 2^31 bytes of the first for the 32-bit gather offsets. */
static void k5_pack_q8s(k5_xsblock *xb, const void *x, size_t xs, int nx, int64_t nb, int32_t off)
{
    if (xs > (size_t)INT32_MAX / 16) {
        k5_pack_q8s_scalar(xb, x, xs, nx, nb, off);
        return;
    }
    const __mmask16 live = nx >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nx) - 1);
    const __m512i idx = _mm512_mullo_epi32(
        _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
        _mm512_set1_epi32((int)xs));
    const __m512i zero = _mm512_setzero_si512(), ones = _mm512_set1_epi8(1);
    const __m512i neg_off = _mm512_set1_epi32(-off);
    for (int64_t b = 0; b < nb; b++) {
        const kernels_q8 *blk = (const kernels_q8 *)x + b;
        for (int c = 0; c < 8; c++) {
            const __m512i q = _mm512_mask_i32gather_epi32(zero, live, idx, blk->qs + 4 * c, 1);
            xb[b].q[c] = q;
            xb[b].init[c] = _mm512_mullo_epi32(_mm512_dpbusd_epi32(zero, ones, q), neg_off);
        }
        xb[b].d = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, idx, &blk->d, 1);
    }
}

/* R weight rows, already unpacked (u[r][b]: block b's 32 unsigned values
 * as 8 4-byte groups, dw[r][b]: its scale), by the packed blocks of 16
 * tokens xb[0..nb). */
static inline __attribute__((always_inline)) void
k5_tile_s(const uint32_t (*u)[K5_SMAXB][8], const float (*dw)[K5_SMAXB], const k5_xsblock *xb,
          int64_t nb, float *y, size_t ys, int nx, const int R)
{
    __m512 acc[K5_SR][8];
    K5_UNROLL
    for (int r = 0; r < R; r++)
        K5_UNROLL
        for (int c = 0; c < 8; c++)
            acc[r][c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const k5_xsblock *x = &xb[b];
        __m512 scale[K5_SR];
        K5_UNROLL
        for (int r = 0; r < R; r++)
            scale[r] = _mm512_mul_ps(_mm512_set1_ps(dw[r][b]), x->d);
        K5_UNROLL
        for (int c = 0; c < 8; c++) {
            const __m512i xq = x->q[c], init = x->init[c];
            K5_UNROLL
            for (int r = 0; r < R; r++) {
                const __m512i p =
                    _mm512_dpbusd_epi32(init, _mm512_set1_epi32((int)u[r][b][c]), xq);
                acc[r][c] = _mm512_fmadd_ps(scale[r], _mm512_cvtepi32_ps(p), acc[r][c]);
            }
        }
    }
    K5_UNROLL
    for (int r = 0; r < R; r++) {
        const __m512 a04 = _mm512_add_ps(acc[r][0], acc[r][4]);
        const __m512 a26 = _mm512_add_ps(acc[r][2], acc[r][6]);
        const __m512 a15 = _mm512_add_ps(acc[r][1], acc[r][5]);
        const __m512 a37 = _mm512_add_ps(acc[r][3], acc[r][7]);
        const __m512 sum = _mm512_add_ps(_mm512_add_ps(a04, a26), _mm512_add_ps(a15, a37));
        k5_store_lanes(y + r, ys, nx, sum, 0);
    }
}

/* Rows [0, R) at w (ws apart), blocks [0, nb), into k5_tile_s's u and dw. */
static inline __attribute__((always_inline)) void k5_unpack_rows_s(const void *w, size_t ws,
                                                                   int64_t nb, int R,
                                                                   uint32_t (*u)[K5_SMAXB][8],
                                                                   float (*dw)[K5_SMAXB],
                                                                   const int kind)
{
    for (int r = 0; r < R; r++)
        for (int64_t b = 0; b < nb; b++) {
            float m = 0.0f;
            const __m256i v = kx_unpack32((const char *)w + (size_t)r * ws, b, kind, &dw[r][b], &m);
            _mm256_store_si256((__m256i *)u[r][b], v);
        }
}

/* The static tiles below are compiled apart so each keeps its own fully
 * unrolled body with the accumulators in registers. */
static __attribute__((noinline)) void k5_tile_s_full(const uint32_t (*u)[K5_SMAXB][8],
                                                     const float (*dw)[K5_SMAXB],
                                                     const k5_xsblock *xb, int64_t nb, float *y,
                                                     size_t ys, int nx)
{
    k5_tile_s(u, dw, xb, nb, y, ys, nx, K5_SR);
}

static __attribute__((noinline)) void k5_tile_s_one(const uint32_t (*u)[K5_SMAXB][8],
                                                    const float (*dw)[K5_SMAXB],
                                                    const k5_xsblock *xb, int64_t nb, float *y,
                                                    size_t ys, int nx)
{
    k5_tile_s(u, dw, xb, nb, y, ys, nx, 1);
}

/* Groups of 16 tokens a row tile's unpacked weights serve per pass: the
 * unpacking (for Q5_0 a good part of the work) is done once for all of
 * them. Their packed activations live on the stack: K5_SG * K5_SMAXB *
 * 1088 bytes (278 KiB). */
#define K5_SG 4

static inline __attribute__((always_inline)) void k5_gemm_s(int64_t n, const void *w, size_t ws,
                                                            int64_t nrows, const void *x,
                                                            size_t xs, int nx, float *y,
                                                            size_t ys, const int kind)
{
    const int64_t nb = n / 32;
    if (nb > K5_SMAXB) {
        for (int64_t r = 0; r < nrows; r++)
            for (int t0 = 0; t0 < nx; t0 += KERNELS_MAX_NX) {
                const int tx = nx - t0 < KERNELS_MAX_NX ? nx - t0 : KERNELS_MAX_NX;
                float out[KERNELS_MAX_NX];
                if (kind == KX_Q5_0)
                    kx_dot_q5_0(n, (const char *)w + (size_t)r * ws,
                                (const char *)x + (size_t)t0 * xs, xs, tx, out);
                else
                    kx_dot_q8_0(n, (const char *)w + (size_t)r * ws,
                                (const char *)x + (size_t)t0 * xs, xs, tx, out);
                for (int j = 0; j < tx; j++) y[(size_t)(t0 + j) * ys + (size_t)r] = out[j];
            }
        return;
    }
    _Alignas(64) k5_xsblock xb[K5_SG][K5_SMAXB];
    _Alignas(64) uint32_t u[K5_SR][K5_SMAXB][8];
    float dw[K5_SR][K5_SMAXB];
    const int32_t off = kind == KX_Q5_0 ? 16 : 128;
    const size_t bsz = kind == KX_Q5_0 ? sizeof(kq_block_q5_0) : sizeof(kq_block_q8_0);
    for (int t0 = 0; t0 < nx; t0 += 16 * K5_SG) {
        const int tx = nx - t0 < 16 * K5_SG ? nx - t0 : 16 * K5_SG;
        const int G = (tx + 15) / 16;
        for (int g = 0; g < G; g++)
            k5_pack_q8s(xb[g], (const char *)x + (size_t)(t0 + 16 * g) * xs, xs, K5_GX(tx, g), nb,
                        off);
        float *yt = y + (size_t)t0 * ys;
        for (int64_t r = 0; r < nrows;) {
            const int R = nrows - r >= K5_SR ? K5_SR : 1;
            if (R == K5_SR && r + 2 * K5_SR <= nrows)
                k5_prefetch_rows_l2((const char *)w + (size_t)(r + K5_SR) * ws, ws, K5_SR, 0,
                                    (size_t)nb * bsz);
            k5_unpack_rows_s((const char *)w + (size_t)r * ws, ws, nb, R, u, dw, kind);
            for (int g = 0; g < G; g++) {
                float *yg = yt + (size_t)(16 * g) * ys + r;
                if (R == K5_SR)
                    k5_tile_s_full((const uint32_t (*)[K5_SMAXB][8])u,
                                   (const float (*)[K5_SMAXB])dw, xb[g], nb, yg, ys,
                                   K5_GX(tx, g));
                else
                    k5_tile_s_one((const uint32_t (*)[K5_SMAXB][8])u,
                                  (const float (*)[K5_SMAXB])dw, xb[g], nb, yg, ys, K5_GX(tx, g));
            }
            r += R;
        }
    }
}

static void k5_gemm_q5_0(int64_t n, const void *w, size_t ws, int64_t nrows, const void *x,
                         size_t xs, int nx, float *y, size_t ys)
{
    k5_gemm_s(n, w, ws, nrows, x, xs, nx, y, ys, KX_Q5_0);
}

static void k5_gemm_q8_0(int64_t n, const void *w, size_t ws, int64_t nrows, const void *x,
                         size_t xs, int nx, float *y, size_t ys)
{
    k5_gemm_s(n, w, ws, nrows, x, xs, nx, y, ys, KX_Q8_0);
}

/* Q4_K activations: a super-block of 256 values of 16 tokens. q[c] lane j
 * = token j's values 4c..4c+3; p32[i] lane j = token j's 32-value sums 2i
 * and 2i+1 as two int16. */
typedef struct k5_xkblock {
    __m512i q[QK_K / 4];
    __m512i p16[8]; /* lane j: token j's 16-value sums 2i and 2i+1 as two int16 */
    __m512i p32[4];
    __m512 d;
} k5_xkblock;

#define K5_KKC 8 /* super-blocks per activation chunk */
#define K5_KG 2  /* groups of 16 tokens the K-quant tiles take per row pass */

static void k5_pack_q8k(k5_xkblock *xb, const void *x, size_t xs, int nx, int64_t b0, int64_t nb)
{
    for (int64_t b = 0; b < nb; b++) {
        int32_t q[QK_K / 4][16], p16[8][16], p32[4][16];
        float d[16];
        memset(q, 0, sizeof q);
        memset(p16, 0, sizeof p16);
        memset(p32, 0, sizeof p32);
        memset(d, 0, sizeof d);
        for (int j = 0; j < nx; j++) {
            const kernels_q8k *src =
                (const kernels_q8k *)((const char *)x + (size_t)j * xs) + b0 + b;
            for (int c = 0; c < QK_K / 4; c++)
                memcpy(&q[c][j], src->qs + 4 * c, 4);
            for (int i = 0; i < 8; i++)
                memcpy(&p16[i][j], src->bsums + 2 * i, 4);
            for (int i = 0; i < 4; i++) {
                const int16_t s2[2] = {(int16_t)(src->bsums[4 * i] + src->bsums[4 * i + 1]),
                                       (int16_t)(src->bsums[4 * i + 2] + src->bsums[4 * i + 3])};
                memcpy(&p32[i][j], s2, 4);
            }
            d[j] = src->d;
        }
        for (int c = 0; c < QK_K / 4; c++)
            xb[b].q[c] = _mm512_loadu_si512(q[c]);
        for (int i = 0; i < 8; i++)
            xb[b].p16[i] = _mm512_loadu_si512(p16[i]);
        for (int i = 0; i < 4; i++)
            xb[b].p32[i] = _mm512_loadu_si512(p32[i]);
        xb[b].d = _mm512_loadu_ps(d);
    }
}

/* Two int16 values as one broadcast dword. */
static inline __attribute__((always_inline)) __m512i k5_pair16(int a, int b)
{
    return _mm512_set1_epi32((int)(((uint32_t)(uint16_t)(int16_t)b << 16) | (uint16_t)(int16_t)a));
}

/* Q4_K in llama.cpp's batch order (see loft_kernels.dotb): per pair of
 * sub-blocks h, the exact integers S_h = sum sc_j (q . x)_j and
 * M_h = sum mn_j (32-value sum of x)_j over its two sub-blocks j, rounded
 * into two chains acc += S_h (dw dx), accm += M_h (dmin dx); the output is
 * acc - accm. The chains run over all of a row's super-blocks, so a row of
 * more than K5_KKC super-blocks (chunks added in y) is not in that order. */
static inline __attribute__((always_inline)) void k5_tile_k(const void *w, size_t ws,
                                                            const k5_xkblock *xb, int64_t b0,
                                                            int64_t nb, float *y, size_t ys, int nx,
                                                            int add, const int R)
{
    __m512 acc[K5_R], accm[K5_R];
    K5_UNROLL
    for (int r = 0; r < R; r++)
        acc[r] = accm[r] = _mm512_setzero_ps();
    _Alignas(32) uint32_t u[QK_K / 4];
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t b = 0; b < nb; b++) {
        const k5_xkblock *x = &xb[b];
        for (int r = 0; r < R; r++) {
            const kq_block_q4_k *wb =
                (const kq_block_q4_k *)((const char *)w + (size_t)r * ws) + b0 + b;
            uint8_t sc[8], mn[8];
            kq_q4k_scales(wb->scales, sc, mn);
            for (int c = 0; c < 4; c++) {
                const __m256i q = kx_load(wb->qs + 32 * c);
                _mm256_store_si256((__m256i *)(u + 16 * c), _mm256_and_si256(q, m4));
                _mm256_store_si256((__m256i *)(u + 16 * c + 8),
                                   _mm256_and_si256(_mm256_srli_epi16(q, 4), m4));
            }
            K5_FROM_MEMORY(u);
            const __m512 sd = _mm512_mul_ps(_mm512_set1_ps(kx_h2f(wb->d)), x->d);
            const __m512 sm = _mm512_mul_ps(_mm512_set1_ps(kx_h2f(wb->dmin)), x->d);
            K5_UNROLL
            for (int h = 0; h < 4; h++) {
                __m512i ipair = _mm512_setzero_si512();
                K5_UNROLL
                for (int j = 2 * h; j < 2 * h + 2; j++) {
                    __m512i is = _mm512_setzero_si512();
                    K5_UNROLL
                    for (int c = 0; c < 8; c++)
                        is = _mm512_dpbusd_epi32(is, _mm512_set1_epi32((int)u[8 * j + c]),
                                                 x->q[8 * j + c]);
                    ipair = _mm512_add_epi32(ipair, _mm512_mullo_epi32(is, _mm512_set1_epi32(sc[j])));
                }
                const __m512i imin = _mm512_dpwssd_epi32(_mm512_setzero_si512(), x->p32[h],
                                                         k5_pair16(mn[2 * h], mn[2 * h + 1]));
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ipair), sd, acc[r]);
                accm[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(imin), sm, accm[r]);
            }
        }
    }
    K5_UNROLL
    for (int r = 0; r < R; r++)
        k5_store_lanes(y + r, ys, nx, _mm512_sub_ps(acc[r], accm[r]), add);
}

/* Q6_K in the order of llama.cpp's tiled K-quant matmul (loft_kernels.dotb,
 * batches of 8 tokens or more): per super-block the exact integer
 * S = sum_g sc_g (q - 32) . x over its 16-value groups g, then
 * y = fma(S dw, dx, y). That single chain continues across activation
 * chunks: a later chunk starts from the y the earlier one left. */
static inline __attribute__((always_inline)) void k5_tile_q6(const void *w, size_t ws,
                                                             const k5_xkblock *xb, int64_t b0,
                                                             int64_t nb, float *y, size_t ys,
                                                             int nx, int add, const int R)
{
    __m512 acc[K5_R];
    K5_UNROLL
    for (int r = 0; r < R; r++) {
        acc[r] = _mm512_setzero_ps();
        if (add) {
            float l[16] = {0};
            for (int j = 0; j < nx; j++) l[j] = y[(size_t)j * ys + (size_t)r];
            acc[r] = _mm512_loadu_ps(l);
        }
    }
    _Alignas(32) uint32_t u[QK_K / 4];
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    for (int64_t b = 0; b < nb; b++) {
        const k5_xkblock *x = &xb[b];
        for (int r = 0; r < R; r++) {
            const kq_block_q6_k *wb =
                (const kq_block_q6_k *)((const char *)w + (size_t)r * ws) + b0 + b;
            for (int h = 0; h < 2; h++) {
                const __m256i qa = kx_load(wb->ql + 64 * h), qb = kx_load(wb->ql + 64 * h + 32);
                const __m256i hb = kx_load(wb->qh + 32 * h);
                uint32_t *uh = u + 32 * h;
                _mm256_store_si256((__m256i *)uh,
                                   _mm256_or_si256(_mm256_and_si256(qa, m4),
                                                   _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30)));
                _mm256_store_si256((__m256i *)(uh + 8),
                                   _mm256_or_si256(_mm256_and_si256(qb, m4),
                                                   _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30)));
                _mm256_store_si256((__m256i *)(uh + 16),
                                   _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), m4),
                                                   _mm256_and_si256(hb, m30)));
                _mm256_store_si256((__m256i *)(uh + 24),
                                   _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), m4),
                                                   _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30)));
            }
            K5_FROM_MEMORY(u);
            __m512i iblk = _mm512_setzero_si512(), icorr = _mm512_setzero_si512();
            K5_UNROLL
            for (int g = 0; g < 16; g++) {
                __m512i is = _mm512_setzero_si512();
                K5_UNROLL
                for (int c = 0; c < 4; c++)
                    is = _mm512_dpbusd_epi32(is, _mm512_set1_epi32((int)u[4 * g + c]),
                                             x->q[4 * g + c]);
                iblk = _mm512_add_epi32(iblk, _mm512_mullo_epi32(is, _mm512_set1_epi32(wb->scales[g])));
            }
            K5_UNROLL
            for (int i = 0; i < 8; i++)
                icorr = _mm512_dpwssd_epi32(icorr, x->p16[i],
                                            k5_pair16(wb->scales[2 * i], wb->scales[2 * i + 1]));
            iblk = _mm512_sub_epi32(iblk, _mm512_slli_epi32(icorr, 5));
            const __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(iblk), _mm512_set1_ps(kx_h2f(wb->d)));
            acc[r] = _mm512_fmadd_ps(t, x->d, acc[r]);
        }
    }
    K5_UNROLL
    for (int r = 0; r < R; r++)
        k5_store_lanes(y + r, ys, nx, acc[r], 0);
}

static inline __attribute__((always_inline)) void k5_gemm_k(int64_t n, const void *w, size_t ws,
                                                            int64_t nrows, const void *x, size_t xs,
                                                            int nx, float *y, size_t ys,
                                                            const int q6)
{
    _Alignas(64) k5_xkblock xb[K5_KG][K5_KKC];
    const int64_t nbt = n / QK_K;
    /* groups of K5_KG x 16 tokens, each a full pass over the rows */
    for (int t0 = 0; t0 < nx; t0 += 16 * K5_KG) {
        const int tx = nx - t0 < 16 * K5_KG ? nx - t0 : 16 * K5_KG;
        const int G = (tx + 15) / 16;
        const char *xt = (const char *)x + (size_t)t0 * xs;
        float *yt = y + (size_t)t0 * ys;
        for (int64_t b0 = 0; b0 < nbt; b0 += K5_KKC) {
            const int64_t nb = nbt - b0 < K5_KKC ? nbt - b0 : K5_KKC;
            const int add = b0 > 0;
            for (int g = 0; g < G; g++)
                k5_pack_q8k(xb[g], xt + (size_t)(16 * g) * xs, xs, K5_GX(tx, g), b0, nb);
            const size_t bsz = q6 ? sizeof(kq_block_q6_k) : sizeof(kq_block_q4_k);
            int64_t r = 0;
            for (; r + K5_R <= nrows; r += K5_R) {
                if (r + 2 * K5_R <= nrows)
                    k5_prefetch_rows((const char *)w + (size_t)(r + K5_R) * ws, ws, K5_R,
                                     (size_t)b0 * bsz, (size_t)nb * bsz);
                for (int g = 0; g < G; g++) {
                    const void *wr = (const char *)w + (size_t)r * ws;
                    float *yg = yt + (size_t)(16 * g) * ys + r;
                    if (q6)
                        k5_tile_q6(wr, ws, xb[g], b0, nb, yg, ys, K5_GX(tx, g), add, K5_R);
                    else
                        k5_tile_k(wr, ws, xb[g], b0, nb, yg, ys, K5_GX(tx, g), add, K5_R);
                }
            }
            for (; r < nrows; r++)
                for (int g = 0; g < G; g++) {
                    const void *wr = (const char *)w + (size_t)r * ws;
                    float *yg = yt + (size_t)(16 * g) * ys + r;
                    if (q6)
                        k5_tile_q6(wr, ws, xb[g], b0, nb, yg, ys, K5_GX(tx, g), add, 1);
                    else
                        k5_tile_k(wr, ws, xb[g], b0, nb, yg, ys, K5_GX(tx, g), add, 1);
                }
        }
    }
}

static void k5_gemm_q4_k(int64_t n, const void *w, size_t ws, int64_t nrows, const void *x,
                         size_t xs, int nx, float *y, size_t ys)
{
    k5_gemm_k(n, w, ws, nrows, x, xs, nx, y, ys, 0);
}

static void k5_gemm_q6_k(int64_t n, const void *w, size_t ws, int64_t nrows, const void *x,
                         size_t xs, int nx, float *y, size_t ys)
{
    k5_gemm_k(n, w, ws, nrows, x, xs, nx, y, ys, 1);
}


/* Float weights: the activations of a chunk of k values are transposed to
 * xt[k][16 tokens]; R weight rows of the chunk are converted to F32 once
 * into wt and broadcast one value at a time. Two accumulators per row (even
 * and odd k) halve the length of each chain of adds. */
static inline __attribute__((always_inline)) void k5_tile_float(const float *wt, const __m512 *xt,
                                                                int64_t kc, float *y, size_t ys,
                                                                int nx, int add, const int R)
{
    __m512 a0[K5_FR], a1[K5_FR];
    K5_UNROLL
    for (int r = 0; r < R; r++)
        a0[r] = a1[r] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 2 <= kc; k += 2) {
        const __m512 x0 = xt[k], x1 = xt[k + 1];
        K5_UNROLL
        for (int r = 0; r < R; r++) {
            a0[r] = _mm512_fmadd_ps(_mm512_set1_ps(wt[(size_t)r * K5_FKC + (size_t)k]), x0, a0[r]);
            a1[r] =
                _mm512_fmadd_ps(_mm512_set1_ps(wt[(size_t)r * K5_FKC + (size_t)k + 1]), x1, a1[r]);
        }
    }
    if (k < kc) {
        K5_UNROLL
        for (int r = 0; r < R; r++)
            a0[r] =
                _mm512_fmadd_ps(_mm512_set1_ps(wt[(size_t)r * K5_FKC + (size_t)k]), xt[k], a0[r]);
    }
    K5_UNROLL
    for (int r = 0; r < R; r++)
        k5_store_lanes(y + r, ys, nx, _mm512_add_ps(a0[r], a1[r]), add);
}

/* The tile for a full row group and for one row, compiled apart so each
 * gets its own fully unrolled body with accumulators in registers. */
static __attribute__((noinline)) void k5_tile_float_full(const float *wt, const __m512 *xt,
                                                         int64_t kc, float *y, size_t ys, int nx,
                                                         int add)
{
    k5_tile_float(wt, xt, kc, y, ys, nx, add, K5_FR);
}

static __attribute__((noinline)) void k5_tile_float_one(const float *wt, const __m512 *xt,
                                                        int64_t kc, float *y, size_t ys, int nx,
                                                        int add)
{
    k5_tile_float(wt, xt, kc, y, ys, nx, add, 1);
}

/* Values [k0, k0 + kc) of a float-type row as F32 into dst. */
static inline __attribute__((always_inline)) void
k5_row_to_f32(float *dst, const void *w, int64_t k0, int64_t kc, const int kind)
{
    int64_t i = 0;
    for (; i + 16 <= kc; i += 16)
        _mm512_storeu_ps(dst + i, k5_load_w16(w, k0 + i, 0xFFFF, kind));
    if (i < kc) {
        const __mmask16 m = (__mmask16)((1u << (kc - i)) - 1);
        _mm512_mask_storeu_ps(dst + i, m, k5_load_w16(w, k0 + i, m, kind));
    }
}

/* out[c] = column c of the 16 x 16 block whose rows are r[0..16). */
static inline __attribute__((always_inline)) void k5_transpose16(const __m512 r[16],
                                                                 __m512 out[16])
{
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) { /* per 128-bit lane: r_i, r_i+1 interleaved */
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) { /* u[i + e], lane L: column 4L + e of rows i..i+3 */
        u[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int e = 0; e < 4; e++) {
        const __m512 v0 = _mm512_shuffle_f32x4(u[e], u[4 + e], 0x88);
        const __m512 v1 = _mm512_shuffle_f32x4(u[e], u[4 + e], 0xDD);
        const __m512 w0 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0x88);
        const __m512 w1 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0xDD);
        out[e] = _mm512_shuffle_f32x4(v0, w0, 0x88);
        out[8 + e] = _mm512_shuffle_f32x4(v0, w0, 0xDD);
        out[4 + e] = _mm512_shuffle_f32x4(v1, w1, 0x88);
        out[12 + e] = _mm512_shuffle_f32x4(v1, w1, 0xDD);
    }
}

/* col[k] (k < kc) = values k0 + k of the nt (<= 16) float rows at x, xs
 * bytes apart, one token per lane; lanes past nt are 0. */
static inline __attribute__((always_inline)) void
k5_transpose_chunk(__m512 *col, const void *x, size_t xs, int nt, int64_t k0, int64_t kc)
{
    for (int64_t k = 0; k < kc; k += 16) {
        const int64_t left = kc - k;
        const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        __m512 r[16], c[16];
        for (int j = 0; j < 16; j++)
            r[j] = j < nt ? _mm512_maskz_loadu_ps(
                                m, (const float *)((const char *)x + (size_t)j * xs) + k0 + k)
                          : _mm512_setzero_ps();
        k5_transpose16(r, c);
        for (int i = 0; i < 16 && i < left; i++)
            _mm512_store_ps((float *)(col + k + i), c[i]);
    }
}

static inline __attribute__((always_inline)) void k5_gemm_float(int64_t n, const void *w, size_t ws,
                                                                int64_t nrows, const void *x,
                                                                size_t xs, int nx, float *y,
                                                                size_t ys, const int kind)
{
    _Alignas(64) __m512 xt[K5_FG][K5_FKC];
    _Alignas(64) float wt[K5_FR * K5_FKC];
    const int G = (nx + 15) / 16;
    /* chunks of equal length (a multiple of 16 but for the last): a short
     * last chunk would pay the per-chunk costs (the transpose, the adds
     * into y) for few multiply-adds */
    const int64_t n_chunks = (n + K5_FKC - 1) / K5_FKC;
    const int64_t step = ((n + n_chunks - 1) / n_chunks + 15) / 16 * 16;
    for (int64_t k0 = 0; k0 < n; k0 += step) {
        const int64_t kc = n - k0 < step ? n - k0 : step;
        const int add = k0 > 0;
        /* transpose: 16 tokens x kc values -> kc vectors of 16 tokens
         * (tokens past nx are zeros) */
        for (int g = 0; g < G; g++)
            k5_transpose_chunk(xt[g], (const char *)x + (size_t)(16 * g) * xs, xs, K5_GX(nx, g),
                               k0, kc);
        int64_t r = 0;
        for (; r < nrows; r += K5_FR) {
            const int rr = nrows - r < K5_FR ? (int)(nrows - r) : K5_FR;
            const size_t esz = kind == KX_W_F32 ? 4 : 2;
            /* the rows two tiles ahead, one per row converted, so the
             * requests spread out instead of filling the miss buffers */
            for (int i = 0; i < rr; i++) {
                if (r + 2 * K5_FR + i < nrows)
                    k5_prefetch_rows_l2((const char *)w + (size_t)(r + 2 * K5_FR + i) * ws, ws, 1,
                                     (size_t)k0 * esz, (size_t)kc * esz);
                k5_row_to_f32(wt + (size_t)i * K5_FKC, (const char *)w + (size_t)(r + i) * ws, k0,
                              kc, kind);
            }
            for (int g = 0; g < G; g++) {
                float *yg = y + (size_t)(16 * g) * ys + r;
                if (rr == K5_FR)
                    k5_tile_float_full(wt, xt[g], kc, yg, ys, K5_GX(nx, g), add);
                else
                    for (int i = 0; i < rr; i++)
                        k5_tile_float_one(wt + (size_t)i * K5_FKC, xt[g], kc, yg + i, ys,
                                          K5_GX(nx, g), add);
            }
        }
    }
}

#define K5_GEMM_FLOAT(name, kind)                                                                  \
    static void name(int64_t n, const void *w, size_t ws, int64_t nrows, const void *x, size_t xs, \
                     int nx, float *y, size_t ys)                                                  \
    {                                                                                              \
        k5_gemm_float(n, w, ws, nrows, x, xs, nx, y, ys, kind);                                    \
    }
K5_GEMM_FLOAT(k5_gemm_f32, KX_W_F32)
K5_GEMM_FLOAT(k5_gemm_f16, KX_W_F16)
K5_GEMM_FLOAT(k5_gemm_bf16, KX_W_BF16)

/* The 512-bit float-weight products replace the 256-bit ones. (A two-row
 * variant of these measured slower, about 8%, so they go row by row.) */
static void kx_extra_fill(loft_kernels *kt)
{
    kt->dot[LOFT_TYPE_F32] = k5_dot_f32;
    kt->dot[LOFT_TYPE_F16] = k5_dot_f16;
    kt->dot[LOFT_TYPE_BF16] = k5_dot_bf16;
    kt->gemm[LOFT_TYPE_Q4_0] = k5_gemm_q4_0;
    /* No Q4_1 tile: llama.cpp multiplies Q4_1 by its row-by-row dot product
     * even for prompts, and the dot product here sums in that same order
     * (8 lanes of 4-value sums, see x86_body.h), which test_model_logits
     * holds to llama.cpp's logits; a tile would reorder those sums. */
    kt->gemm[LOFT_TYPE_Q5_0] = k5_gemm_q5_0;
    kt->gemm[LOFT_TYPE_Q8_0] = k5_gemm_q8_0;
    kt->gemm[LOFT_TYPE_Q4_K] = k5_gemm_q4_k;
    kt->gemm[LOFT_TYPE_Q6_K] = k5_gemm_q6_k;
    kt->gemm[LOFT_TYPE_F32] = k5_gemm_f32;
    kt->gemm[LOFT_TYPE_F16] = k5_gemm_f16;
    kt->gemv[LOFT_TYPE_F16] = k5_gemv_f16;
    kt->gemm[LOFT_TYPE_BF16] = k5_gemm_bf16;
}

#else
typedef int kernels_avx512_unused; /* ISO C wants a non-empty unit */
#endif
