/* fgemm.c - blocked F32 GEMM and the products through frozen weights (see
 * fgemm.h for the numerics contract). */
#include "train/fgemm.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "quant/quant.h"

/* A tile is FG_MR rows of C by FG_NR columns; B is read FG_KC rows at a
 * time so the (FG_KC, FG_NR) slice stays in L1 while every row tile of A
 * passes over it. */
#define FG_MR 8
#define FG_NR 32
#define FG_KC 128
/* Rows of W dequantized per block by the backward (its scratch is
 * FG_WKC * n_in floats). */
#define FG_WKC 128

/* C tile (mr, nr) (ldc) = or += A (mr, K) (lda) times B (K, nr) (ldb). */
typedef void (*tile_fn)(int mr, int nr, int64_t K, const float *A, int64_t lda, const float *B,
                        int64_t ldb, float *C, int64_t ldc, bool acc);

/* ---- portable body ------------------------------------------------------ */

static void tile_portable(int mr, int nr, int64_t K, const float *A, int64_t lda, const float *B,
                          int64_t ldb, float *C, int64_t ldc, bool acc)
{
    float c[FG_MR][FG_NR];
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++)
            c[i][j] = acc ? C[i * ldc + j] : 0.0f;
    for (int64_t k = 0; k < K; k++) {
        const float *b = B + k * ldb;
        for (int i = 0; i < mr; i++) {
            const float a = A[i * lda + k];
            for (int j = 0; j < nr; j++)
                c[i][j] += a * b[j];
        }
    }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++)
            C[i * ldc + j] = c[i][j];
}

/* ---- AVX-512 body ------------------------------------------------------- */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(LOFT_NO_ISA_KERNELS)
#include <immintrin.h>
#define FG_HAVE_AVX512 1

/* mr is a constant at every call site below, so the row conditions fold
 * away and the 2 * mr accumulators live in registers (written out row by
 * row: compilers keep arrays of vectors on the stack). Columns past nr are
 * masked off (loads give 0, stores skip them), so every column takes the
 * same path. */
#define FG_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define FG_LOAD(i)                                                                                 \
    __m512 c0_##i = _mm512_setzero_ps(), c1_##i = _mm512_setzero_ps();                             \
    if (mr > i && acc) {                                                                           \
        c0_##i = _mm512_maskz_loadu_ps(m0, C + i * ldc);                                           \
        if (wide) c1_##i = _mm512_maskz_loadu_ps(m1, C + i * ldc + 16);                            \
    }
#define FG_FMA(i)                                                                                  \
    if (mr > i) {                                                                                  \
        const __m512 a = _mm512_set1_ps(A[i * lda + k]);                                           \
        c0_##i = _mm512_fmadd_ps(a, b0, c0_##i);                                                   \
        if (wide) c1_##i = _mm512_fmadd_ps(a, b1, c1_##i);                                         \
    }
#define FG_STORE(i)                                                                                \
    if (mr > i) {                                                                                  \
        _mm512_mask_storeu_ps(C + i * ldc, m0, c0_##i);                                            \
        if (wide) _mm512_mask_storeu_ps(C + i * ldc + 16, m1, c1_##i);                             \
    }

__attribute__((target("avx512f"), always_inline)) static inline void
tile_avx512_body(const int mr, const bool wide, int nr, int64_t K, const float *A, int64_t lda,
                 const float *B, int64_t ldb, float *C, int64_t ldc, bool acc)
{
    const __mmask16 m0 = nr >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1u);
    const __mmask16 m1 = nr >= 32  ? (__mmask16)0xffff
                         : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1u)
                                   : 0;
    FG_ROWS(FG_LOAD)
    for (int64_t k = 0; k < K; k++) {
        const __m512 b0 = _mm512_maskz_loadu_ps(m0, B + k * ldb);
        const __m512 b1 = wide ? _mm512_maskz_loadu_ps(m1, B + k * ldb + 16) : b0;
        FG_ROWS(FG_FMA)
    }
    FG_ROWS(FG_STORE)
}

__attribute__((target("avx512f"))) static void tile_avx512(int mr, int nr, int64_t K,
                                                           const float *A, int64_t lda,
                                                           const float *B, int64_t ldb, float *C,
                                                           int64_t ldc, bool acc)
{
    /* wide: both column vectors; otherwise (nr <= 16) the first alone. */
#define FG_CASE(m)                                                                                 \
    case m:                                                                                        \
        if (nr > 16)                                                                               \
            tile_avx512_body(m, true, nr, K, A, lda, B, ldb, C, ldc, acc);                         \
        else                                                                                       \
            tile_avx512_body(m, false, nr, K, A, lda, B, ldb, C, ldc, acc);                        \
        break;
    switch (mr) {
        FG_CASE(8)
        FG_CASE(7)
        FG_CASE(6)
        FG_CASE(5)
        FG_CASE(4)
        FG_CASE(3)
        FG_CASE(2)
    default:
        FG_CASE(1)
    }
}

/* Dequantizers for the common weight types, bit-identical to the reference
 * ones (integers convert exactly; one multiply, then the offset added
 * separately as the reference does). Returns false for other types. */
static float rd_half(const uint8_t *p)
{
    return loft_f16_to_f32((uint16_t)(p[0] | (p[1] << 8)));
}

/* The half at p (little-endian) in all 16 lanes; the conversion is exact. */
__attribute__((target("avx512f"))) static inline __m512 half_splat(const uint8_t *p)
{
    return _mm512_cvtph_ps(_mm256_set1_epi16((short)(uint16_t)(p[0] | (p[1] << 8))));
}

__attribute__((target("avx512f"))) static bool dequant_avx512(uint32_t type, const uint8_t *b,
                                                              float *dst, int64_t n)
{
    switch (type) {
    case LOFT_TYPE_F16: {
        int64_t i = 0;
        for (; i + 16 <= n; i += 16)
            _mm512_storeu_ps(dst + i,
                             _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(b + 2 * i))));
        for (; i < n; i++)
            dst[i] = rd_half(b + 2 * i);
        return true;
    }
    case LOFT_TYPE_BF16: {
        int64_t i = 0;
        for (; i + 16 <= n; i += 16) {
            const __m512i v =
                _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(b + 2 * i)));
            _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
        }
        for (; i < n; i++)
            dst[i] = loft_bf16_to_f32((uint16_t)(b[2 * i] | (b[2 * i + 1] << 8)));
        return true;
    }
    case LOFT_TYPE_Q8_0:
        for (int64_t i = 0; i < n; i += 32, b += 34, dst += 32) {
            const __m512 d = half_splat(b);
            const __m512i q0 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 2)));
            const __m512i q1 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 18)));
            _mm512_storeu_ps(dst, _mm512_mul_ps(_mm512_cvtepi32_ps(q0), d));
            _mm512_storeu_ps(dst + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(q1), d));
        }
        return true;
    case LOFT_TYPE_Q4_0:
    case LOFT_TYPE_Q4_1: {
        const bool q41 = type == LOFT_TYPE_Q4_1;
        const size_t bytes = q41 ? 20 : 18, qoff = q41 ? 4 : 2;
        const __m512i lo = _mm512_set1_epi32(0x0f), eight = _mm512_set1_epi32(q41 ? 0 : 8);
        for (int64_t i = 0; i < n; i += 32, b += bytes, dst += 32) {
            const __m512 d = half_splat(b);
            const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + qoff)));
            const __m512i q0 = _mm512_sub_epi32(_mm512_and_si512(q, lo), eight);
            const __m512i q1 = _mm512_sub_epi32(_mm512_srli_epi32(q, 4), eight);
            __m512 y0 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(q0));
            __m512 y1 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(q1));
            if (q41) {
                const __m512 m = half_splat(b + 2);
                y0 = _mm512_add_ps(y0, m);
                y1 = _mm512_add_ps(y1, m);
            }
            _mm512_storeu_ps(dst, y0);
            _mm512_storeu_ps(dst + 16, y1);
        }
        return true;
    }
    default:
        return false;
    }
}
#endif

/* ---- dispatch ----------------------------------------------------------- */

static tile_fn g_tile = tile_portable;
#ifdef FG_HAVE_AVX512
static bool g_avx512 = false;
#endif
static const char *g_isa = "portable";
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void pick_isa(void)
{
#ifdef FG_HAVE_AVX512
    /* LOFT_ISA names the kernels' instruction set; anything but avx512
     * (when set) keeps the portable body, so the fallback can be tested. */
    const char *env = getenv("LOFT_ISA");
    if ((!env || !*env || !strcmp(env, "avx512")) && __builtin_cpu_supports("avx512f")) {
        g_tile = tile_avx512;
        g_avx512 = true;
        g_isa = "avx512";
    }
#endif
}

static tile_fn get_tile(void)
{
    pthread_once(&g_once, pick_isa);
    return g_tile;
}

/* n values of type t at src into dst (n a multiple of t's block size). */
static void dequant_row(uint32_t t, const void *src, float *dst, int64_t n)
{
#ifdef FG_HAVE_AVX512
    if (g_avx512 && dequant_avx512(t, src, dst, n)) return;
#endif
    loft_dequantize_row(t, src, dst, n);
}

const char *fgemm_isa(void)
{
    pthread_once(&g_once, pick_isa);
    return g_isa;
}

/* ---- generic GEMM ------------------------------------------------------- */

/* Columns [n0, n1) of C, k blocked by FG_KC, rows by FG_MR. */
static void gemm_cols(tile_fn tile, int64_t M, int64_t n0, int64_t n1, int64_t K, const float *A,
                      int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc,
                      bool accumulate)
{
    for (int64_t j = n0; j < n1; j += FG_NR) {
        const int nr = (int)(n1 - j < FG_NR ? n1 - j : FG_NR);
        for (int64_t k = 0; k < K || k == 0; k += FG_KC) {
            const int64_t kc = K - k < FG_KC ? K - k : FG_KC;
            const bool acc = accumulate || k > 0;
            for (int64_t i = 0; i < M; i += FG_MR) {
                const int mr = (int)(M - i < FG_MR ? M - i : FG_MR);
                tile(mr, nr, kc, A + i * lda + k, lda, B + k * ldb + j, ldb, C + i * ldc + j, ldc,
                     acc);
            }
            if (K == 0) break;
        }
    }
}

typedef struct gemm_job {
    tile_fn tile;
    int64_t M, N, K, lda, ldb, ldc;
    const float *A, *B;
    float *C;
    bool accumulate;
} gemm_job;

/* [*n0, *n1): part ith of nth of N, in whole units, as even as they go. */
static void split_cols(int64_t N, int64_t unit, int ith, int nth, int64_t *n0, int64_t *n1)
{
    const int64_t units = (N + unit - 1) / unit;
    const int64_t per = (units + nth - 1) / nth;
    *n0 = per * ith * unit;
    *n1 = per * (ith + 1) * unit;
    if (*n0 > N) *n0 = N;
    if (*n1 > N) *n1 = N;
}

/* Threads split the columns, or the rows when there is one column vector
 * (the rank-r products of LoRA); either way each element is one thread's. */
static void gemm_worker(void *p, int ith, int nth)
{
    const gemm_job *g = p;
    if (g->N <= 16) {
        int64_t m0, m1;
        split_cols(g->M, FG_MR, ith, nth, &m0, &m1);
        if (m0 < m1)
            gemm_cols(g->tile, m1 - m0, 0, g->N, g->K, g->A + m0 * g->lda, g->lda, g->B, g->ldb,
                      g->C + m0 * g->ldc, g->ldc, g->accumulate);
        return;
    }
    int64_t n0, n1;
    split_cols(g->N, 16, ith, nth, &n0, &n1);
    if (n0 < n1)
        gemm_cols(g->tile, g->M, n0, n1, g->K, g->A, g->lda, g->B, g->ldb, g->C, g->ldc,
                  g->accumulate);
}

void fgemm(threadpool *pool, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
           const float *B, int64_t ldb, float *C, int64_t ldc, bool accumulate)
{
    if (M <= 0 || N <= 0) return;
    gemm_job g = {.tile = get_tile(),
                  .M = M,
                  .N = N,
                  .K = K,
                  .lda = lda,
                  .ldb = ldb,
                  .ldc = ldc,
                  .A = A,
                  .B = B,
                  .C = C,
                  .accumulate = accumulate};
    /* Products below ~1M multiply-adds (tens of microseconds: the rank-r
     * LoRA products) are not worth a hand-off to the other threads, which
     * costs far more when the machine is oversubscribed. */
    if ((double)M * (double)N * (double)K < 1048576.0)
        gemm_worker(&g, 0, 1);
    else
        threadpool_run(pool, gemm_worker, &g);
}

/* ---- products through a frozen weight ----------------------------------- */

size_t fgemm_w_scratch(int64_t max_in)
{
    if (max_in <= 0 || (uint64_t)max_in > SIZE_MAX / sizeof(float) / (FG_WKC + FG_NR + 1)) return 0;
    const size_t fwd = (size_t)max_in * (FG_NR + 1);
    const size_t bwd = ((size_t)max_in + 32) * FG_WKC;
    return fwd > bwd ? fwd : bwd;
}

typedef struct wjob {
    tile_fn tile;
    const model_weight *w;
    int64_t T;
    const float *x; /* forward: x; backward: dy */
    float *y;       /* forward: y; backward: dx */
    float *scratch;
    size_t per_thread;
} wjob;

/* Row r of w as floats: the row itself for F32, else dequantized into buf. */
static const float *weight_row(const model_weight *w, int64_t r, float *buf)
{
    const uint8_t *src = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
    if (w->type == LOFT_TYPE_F32) return (const float *)src;
    dequant_row(w->type, src, buf, w->n_in);
    return buf;
}

/* Panels of FG_NR rows of W are transposed into (n_in, FG_NR) so the tile
 * kernel reads them as B. Threads take whole panels. */
static void wfwd_worker(void *p, int ith, int nth)
{
    const wjob *j = p;
    const model_weight *w = j->w;
    const int64_t n_in = w->n_in, n_out = w->n_out;
    float *panel = j->scratch + (size_t)ith * j->per_thread;
    float *rowbuf = panel + (size_t)n_in * FG_NR;
    int64_t o0, o1;
    split_cols(n_out, FG_NR, ith, nth, &o0, &o1);
    for (int64_t o = o0; o < o1; o += FG_NR) {
        const int nr = (int)(o1 - o < FG_NR ? o1 - o : FG_NR);
        for (int r = 0; r < nr; r++) {
            const float *row = weight_row(w, o + r, rowbuf);
            for (int64_t k = 0; k < n_in; k++)
                panel[k * FG_NR + r] = row[k];
        }
        gemm_cols(j->tile, j->T, 0, nr, n_in, j->x, n_in, panel, FG_NR, j->y + o, n_out, false);
    }
}

void fgemm_w_forward(threadpool *pool, float *y, const float *x, int64_t T, const model_weight *w,
                     float *scratch)
{
    if (T <= 0) return;
    wjob j = {.tile = get_tile(),
              .w = w,
              .T = T,
              .x = x,
              .y = y,
              .scratch = scratch,
              .per_thread = fgemm_w_scratch(w->n_in)};
    threadpool_run(pool, wfwd_worker, &j);
}

/* Column split unit for w: whole blocks, whole vectors. */
static int64_t col_unit(const model_weight *w)
{
    const loft_type_traits *tt = loft_type_get(w->type);
    const int64_t bs = tt && tt->block_size > 1 ? (int64_t)tt->block_size : 1;
    return bs > 16 ? bs : 16;
}

/* dx columns [c0, c1) += dy W for one weight, FG_WKC rows of W (their
 * columns [c0, c1) only) dequantized at a time into buf. */
static void wbwd_cols(tile_fn tile, const model_weight *w, float *dx, const float *dy, int64_t T,
                      int64_t c0, int64_t c1, float *buf)
{
    const int64_t n_in = w->n_in, n_out = w->n_out;
    const loft_type_traits *tt = loft_type_get(w->type);
    const int64_t bs = tt && tt->block_size > 1 ? (int64_t)tt->block_size : 1;
    const int64_t span = c1 - c0;
    /* Rows of buf an odd number of cache lines apart: a stride of an even
     * count (576 or 1536 floats) maps the FG_KC rows the kernel walks down
     * onto a few L1 sets, which then thrash. */
    int64_t ld = (span + 15) / 16 * 16;
    if ((ld / 16) % 2 == 0) ld += 16;
    const size_t src_off = (size_t)(c0 / bs) * (tt ? tt->type_size : sizeof(float));
    for (int64_t k = 0; k < n_out; k += FG_WKC) {
        const int64_t kc = n_out - k < FG_WKC ? n_out - k : FG_WKC;
        const float *B;
        int64_t ldb;
        if (w->type == LOFT_TYPE_F32) {
            B = (const float *)((const uint8_t *)w->data + (size_t)k * w->row_bytes) + c0;
            ldb = (int64_t)(w->row_bytes / sizeof(float));
        } else {
            for (int64_t r = 0; r < kc; r++) {
                const uint8_t *src = (const uint8_t *)w->data + (size_t)(k + r) * w->row_bytes;
                dequant_row(w->type, src + src_off, buf + r * ld, span);
            }
            B = buf;
            ldb = ld;
        }
        gemm_cols(tile, T, 0, span, kc, dy + k, n_out, B, ldb, dx + c0, n_in, true);
    }
}

typedef struct wbjob {
    tile_fn tile;
    int n;
    const model_weight *const *ws;
    const float *const *dys;
    float *dx;
    int64_t T, unit;
    float *scratch;
    size_t per_thread;
} wbjob;

/* Threads split the n_in columns at a unit every weight's blocks divide, so
 * each dequantizes only its own part of the rows, and a column gets the
 * weights' terms in list order whatever the thread count. */
static void wbwd_worker(void *p, int ith, int nth)
{
    const wbjob *j = p;
    int64_t c0, c1;
    split_cols(j->ws[0]->n_in, j->unit, ith, nth, &c0, &c1);
    if (c0 >= c1) return;
    float *buf = j->scratch + (size_t)ith * j->per_thread;
    for (int i = 0; i < j->n; i++)
        wbwd_cols(j->tile, j->ws[i], j->dx, j->dys[i], j->T, c0, c1, buf);
}

void fgemm_w_backward_multi(threadpool *pool, float *dx, int n, const float *const *dys,
                            const model_weight *const *ws, int64_t T, float *scratch)
{
    if (T <= 0 || n <= 0) return;
    wbjob j = {.tile = get_tile(),
               .n = n,
               .ws = ws,
               .dys = dys,
               .dx = dx,
               .T = T,
               .unit = 16,
               .scratch = scratch,
               .per_thread = fgemm_w_scratch(ws[0]->n_in)};
    /* Block sizes are powers of two, so the largest unit is a multiple of
     * every other. */
    for (int i = 0; i < n; i++)
        if (col_unit(ws[i]) > j.unit) j.unit = col_unit(ws[i]);
    threadpool_run(pool, wbwd_worker, &j);
}

void fgemm_w_backward(threadpool *pool, float *dx, const float *dy, int64_t T,
                      const model_weight *w, float *scratch)
{
    fgemm_w_backward_multi(pool, dx, 1, &dy, &w, T, scratch);
}
