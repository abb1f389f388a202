/*
 * dispatch.c - picks the kernel set for this CPU once (cpuid + XCR0), and
 * the threaded matrix product that every forward pass calls.
 *
 * A build that leaves the instruction-set files out (the clang fuzz build
 * filters them) defines LOFT_NO_ISA_KERNELS and gets the ref set only.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "kernels/kernels.h"

#if (defined(__x86_64__) || defined(__i386__)) && !defined(LOFT_NO_ISA_KERNELS)
#include <cpuid.h>
#define KD_X86 1
#else
#define KD_X86 0
#endif

#if defined(__aarch64__) && !defined(LOFT_NO_ISA_KERNELS)
#define KD_HAVE_NEON 1
#else
#define KD_HAVE_NEON 0
#endif

/* ---- cpu features -------------------------------------------------------- */

typedef struct kd_features {
    int avx2;   /* AVX2 + FMA + F16C, OS saves ymm */
    int avx512; /* + AVX512 F/BW/VL/DQ/VNNI, OS saves zmm and opmasks */
} kd_features;

#if KD_X86
static uint64_t kd_xgetbv(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

static kd_features kd_detect(void)
{
    kd_features f = {0, 0};
#if KD_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    const int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    const int fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return f;
    const uint64_t xcr0 = kd_xgetbv();
    const int os_ymm = (xcr0 & 0x6) == 0x6;      /* SSE + AVX state */
    const int os_zmm = (xcr0 & 0xE6) == 0xE6;    /* + opmask, zmm0-15 high, zmm16-31 */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
    const int avx2 = (b >> 5) & 1;
    const int f512 = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    const int vnni = (c >> 11) & 1;
    f.avx2 = os_ymm && avx2 && fma && f16c;
    f.avx512 = f.avx2 && os_zmm && f512 && dq && bw && vl && vnni;
#endif
    return f;
}

/* ---- tables ---------------------------------------------------------------- */

enum { KD_REF, KD_AVX2, KD_AVX512, KD_NEON, KD_N };
static const char *const kd_names[KD_N] = {"ref", "avx2", "avx512", "neon"};

static loft_kernels kd_tables[KD_N];
static int kd_ok[KD_N];
static int kd_best;
static pthread_once_t kd_once = PTHREAD_ONCE_INIT;

static void kd_init(void)
{
    const kd_features f = kd_detect();
    kernels_fill_ref(&kd_tables[KD_REF]);
    kd_ok[KD_REF] = 1;
    kd_best = KD_REF;
#if KD_X86
    if (f.avx2) {
        kernels_fill_ref(&kd_tables[KD_AVX2]);
        kernels_fill_avx2(&kd_tables[KD_AVX2]);
        kernels_fill_avx2_packed(&kd_tables[KD_AVX2]);
        kd_ok[KD_AVX2] = 1;
        kd_best = KD_AVX2;
    }
    if (f.avx512) {
        kernels_fill_ref(&kd_tables[KD_AVX512]);
        kernels_fill_avx512(&kd_tables[KD_AVX512]);
        kernels_fill_avx512_packed(&kd_tables[KD_AVX512]);
        kd_ok[KD_AVX512] = 1;
        kd_best = KD_AVX512;
    }
#else
    (void)f;
#endif
#if KD_HAVE_NEON
    {
        kernels_fill_ref(&kd_tables[KD_NEON]);
        kernels_fill_neon(&kd_tables[KD_NEON]);
        kd_ok[KD_NEON] = 1;
        kd_best = KD_NEON;
    }
#endif
    const char *want = getenv("LOFT_ISA");
    if (want)
        for (int i = 0; i < KD_N; i++)
            if (strcmp(want, kd_names[i]) == 0 && kd_ok[i]) kd_best = i;
}

const loft_kernels *kernels_get(void)
{
    pthread_once(&kd_once, kd_init);
    return &kd_tables[kd_best];
}

const loft_kernels *kernels_get_isa(const char *name)
{
    pthread_once(&kd_once, kd_init);
    for (int i = 0; i < KD_N; i++)
        if (strcmp(name, kd_names[i]) == 0) return kd_ok[i] ? &kd_tables[i] : NULL;
    return NULL;
}

/* ---- activation formats ------------------------------------------------ */

kernels_xfmt kernels_x_format(uint32_t t)
{
    switch (t) {
    case LOFT_TYPE_F32:
    case LOFT_TYPE_F16:
    case LOFT_TYPE_BF16: return KERNELS_X_F32;
    case LOFT_TYPE_Q4_0:
    case LOFT_TYPE_Q4_1:
    case LOFT_TYPE_Q5_0:
    case LOFT_TYPE_Q5_1:
    case LOFT_TYPE_Q8_0: return KERNELS_X_Q8;
    case LOFT_TYPE_Q2_K:
    case LOFT_TYPE_Q3_K:
    case LOFT_TYPE_Q4_K:
    case LOFT_TYPE_Q5_K:
    case LOFT_TYPE_Q6_K: return KERNELS_X_Q8K;
    default: return KERNELS_X_NONE;
    }
}

size_t kernels_x_row_size(uint32_t t, int64_t k)
{
    if (k <= 0 || k > INT64_MAX / 8) return 0;
    switch (kernels_x_format(t)) {
    case KERNELS_X_F32: return (size_t)k * sizeof(float);
    case KERNELS_X_Q8: return k % 32 ? 0 : (size_t)(k / 32) * sizeof(kernels_q8);
    case KERNELS_X_Q8K: return k % QK_K ? 0 : (size_t)(k / QK_K) * sizeof(kernels_q8k);
    default: return 0;
    }
}

void kernels_quantize_x(const loft_kernels *kt, uint32_t t, const float *x, int64_t T, int64_t k,
                        void *xq)
{
    const size_t rs = kernels_x_row_size(t, k);
    const kernels_xfmt f = kernels_x_format(t);
    for (int64_t r = 0; r < T; r++) {
        char *dst = (char *)xq + (size_t)r * rs;
        const float *src = x + (size_t)r * (size_t)k;
        if (f == KERNELS_X_F32)
            memcpy(dst, src, rs);
        else if (f == KERNELS_X_Q8)
            kt->quantize_q8(src, dst, k);
        else
            kt->quantize_q8k(src, dst, k);
    }
}

/* ---- matrix product ------------------------------------------------------ */

typedef struct kd_matmul_job {
    const loft_kernels *kt;
    float *y;
    const void *xq;
    size_t x_row_bytes;
    int64_t T;
    const kernels_weight *w;
} kd_matmul_job;

/* Fewest tokens worth a gemm tile (below, the 1..4-token dot products). */
#define KD_GEMM_MIN_NX 8

/* The packed path: thread ith takes groups [G*ith/nth, G*(ith+1)/nth) of
 * the G full groups, up to KERNELS_GEMM_NX tokens per call; the last thread
 * also takes the rows past the last group, through the dot products. */
static void kd_matmul_packed(const kd_matmul_job *jb, int ith, int nth)
{
    const kernels_weight *w = jb->w;
    const int64_t N = w->n_out, G = N / KERNELS_PACK_ROWS;
    const int64_t g0 = G * ith / nth, g1 = G * (ith + 1) / nth;
    const size_t gb = kernels_pack_group_bytes(w->type, w->n_in);
    const kernels_packed_fn packed = jb->kt->packed[w->type];
    const kernels_dot_fn dot = jb->kt->dot[w->type];
    float out[KERNELS_MAX_NX];
    for (int64_t t0 = 0; t0 < jb->T;) {
        const int gx = jb->T - t0 < KERNELS_GEMM_NX ? (int)(jb->T - t0) : KERNELS_GEMM_NX;
        const char *xt = (const char *)jb->xq + (size_t)t0 * jb->x_row_bytes;
        float *yt = jb->y + (size_t)t0 * (size_t)N;
        if (g1 > g0)
            packed(w->n_in, (const char *)w->packed + (size_t)g0 * gb, g1 - g0, xt,
                   jb->x_row_bytes, gx, yt + g0 * KERNELS_PACK_ROWS, (size_t)N);
        if (ith == nth - 1)
            for (int t = 0; t < gx; t += KERNELS_MAX_NX) {
                const int nx = gx - t < KERNELS_MAX_NX ? gx - t : KERNELS_MAX_NX;
                for (int64_t r = G * KERNELS_PACK_ROWS; r < N; r++) {
                    dot(w->n_in, (const char *)w->data + (size_t)r * w->row_bytes,
                        xt + (size_t)t * jb->x_row_bytes, jb->x_row_bytes, nx, out);
                    for (int j = 0; j < nx; j++) yt[(size_t)(t + j) * (size_t)N + (size_t)r] = out[j];
                }
            }
        t0 += gx;
    }
}

/* Thread ith takes weight rows [N*ith/nth, N*(ith+1)/nth) and, for each
 * group of up to KERNELS_GEMM_NX tokens (gemm) or KERNELS_MAX_NX tokens
 * (dot products), walks its rows once. */
static void kd_matmul_part(void *arg, int ith, int nth)
{
    const kd_matmul_job *jb = arg;
    const kernels_weight *w = jb->w;
    if (w->packed && jb->kt->packed[w->type]) {
        kd_matmul_packed(jb, ith, nth);
        return;
    }
    const int64_t N = w->n_out;
    const int64_t pairs = (N + 1) / 2;
    const int64_t r0 = pairs * ith / nth * 2;
    const int64_t r1e = pairs * (ith + 1) / nth * 2, r1 = r1e < N ? r1e : N;
    const kernels_dot_fn dot = jb->kt->dot[w->type];
    const kernels_dot2_fn dot2 = jb->kt->dot2[w->type];
    const char *wbase = w->data;
    const kernels_gemm_fn gemm = jb->kt->gemm[w->type];
    const kernels_dot_fn dotb = jb->kt->dotb[w->type];
    /* tokens [0, Tb) in the batch order (see loft_kernels.dotb) */
    const uint8_t rule = dotb ? jb->kt->dotb_rule[w->type] : 0;
    const int64_t Tb = rule == KERNELS_DOTB_FOURS   ? jb->T - jb->T % 4
                       : rule == KERNELS_DOTB_FROM8 ? (jb->T >= 8 ? jb->T : 0)
                                                    : 0;
    float out[2 * KERNELS_MAX_NX];
    for (int64_t t0 = 0; t0 < jb->T;) {
        const char *xt = (const char *)jb->xq + (size_t)t0 * jb->x_row_bytes;
        float *yt = jb->y + (size_t)t0 * (size_t)N;
        const bool batch = t0 < Tb;
        const int64_t end = batch ? Tb : jb->T;
        /* Tiles of many tokens where enough are left; the tokens each pass
         * takes depend on T only, never on the thread count. A type with a
         * batch order tiles only the tokens that take it. */
        if (gemm && (batch || !dotb) && end - t0 >= KD_GEMM_MIN_NX) {
            const int gx = end - t0 < KERNELS_GEMM_NX ? (int)(end - t0) : KERNELS_GEMM_NX;
            if (r1 > r0)
                gemm(w->n_in, wbase + (size_t)r0 * w->row_bytes, w->row_bytes, r1 - r0, xt,
                     jb->x_row_bytes, gx, yt + r0, (size_t)N);
            t0 += gx;
            continue;
        }
        const int nx = end - t0 < KERNELS_MAX_NX ? (int)(end - t0) : KERNELS_MAX_NX;
        const kernels_dot_fn d1 = batch ? dotb : dot;
        t0 += nx;
        if (nx == 1 && !batch && jb->kt->gemv[w->type]) {
            if (r1 > r0)
                jb->kt->gemv[w->type](w->n_in, wbase + (size_t)r0 * w->row_bytes, w->row_bytes,
                                      r1 - r0, xt, jb->x_row_bytes, 1, yt + r0, (size_t)N);
            continue;
        }
        int64_t r = r0;
        /* Pairs only for several tokens: with one token the product streams
         * weights from memory, and two interleaved row streams measured up to
         * 3x slower (Q8_0 decode) than one. */
        if (dot2 && !dotb && nx > 1)
            for (; r + 2 <= r1; r += 2) {
                dot2(w->n_in, wbase + (size_t)r * w->row_bytes, w->row_bytes, xt, jb->x_row_bytes,
                     nx, out);
                for (int j = 0; j < nx; j++) {
                    yt[(size_t)j * (size_t)N + (size_t)r] = out[j];
                    yt[(size_t)j * (size_t)N + (size_t)r + 1] = out[KERNELS_MAX_NX + j];
                }
            }
        for (; r < r1; r++) {
            d1(w->n_in, wbase + (size_t)r * w->row_bytes, xt, jb->x_row_bytes, nx, out);
            for (int j = 0; j < nx; j++) yt[(size_t)j * (size_t)N + (size_t)r] = out[j];
        }
    }
}


typedef struct kd_many_job {
    const loft_kernels *kt;
    int n;
    const kernels_matmul_item *items;
} kd_many_job;

static void kd_many_part(void *arg, int ith, int nth)
{
    const kd_many_job *jb = arg;
    for (int i = 0; i < jb->n; i++) {
        const kernels_matmul_item *it = &jb->items[i];
        const kd_matmul_job one = {jb->kt, it->y, it->xq, it->x_row_bytes, it->T, &it->w};
        kd_matmul_part((void *)&one, ith, nth);
    }
}

void kernels_matmul_xq_many(const loft_kernels *kt, threadpool *pool, int n,
                            const kernels_matmul_item *items)
{
    int64_t work = 0;
    for (int i = 0; i < n; i++) work += items[i].T * items[i].w.n_out * items[i].w.n_in;
    kd_many_job jb = {kt, n, items};
    if (work < 4096 || threadpool_size(pool) == 1)
        kd_many_part(&jb, 0, 1);
    else
        threadpool_run(pool, kd_many_part, &jb);
}

void kernels_matmul_xq(const loft_kernels *kt, threadpool *pool, float *y, const void *xq,
                       size_t x_row_bytes, int64_t T, const kernels_weight *w)
{
    const kernels_matmul_item one = {y, xq, x_row_bytes, T, *w};
    kernels_matmul_xq_many(kt, pool, 1, &one);
}

typedef struct kd_f32_job {
    const loft_kernels *kt;
    float *y;
    const float *x;
    int64_t T;
    const kernels_weight *w;
    float *row_buf;
} kd_f32_job;

static void kd_f32_part(void *arg, int ith, int nth)
{
    const kd_f32_job *jb = arg;
    const kernels_weight *w = jb->w;
    const int64_t N = w->n_out, K = w->n_in;
    const int64_t r0 = N * ith / nth, r1 = N * (ith + 1) / nth;
    const kernels_dot_fn dot = jb->kt->dot[LOFT_TYPE_F32];
    float *row = jb->row_buf + (size_t)ith * (size_t)K;
    float out[KERNELS_MAX_NX];
    for (int64_t r = r0; r < r1; r++) {
        const void *src = (const char *)w->data + (size_t)r * w->row_bytes;
        const float *wr = src;
        if (w->type != LOFT_TYPE_F32) {
            loft_dequantize_row(w->type, src, row, K);
            wr = row;
        }
        for (int64_t t0 = 0; t0 < jb->T; t0 += KERNELS_MAX_NX) {
            const int nx = jb->T - t0 < KERNELS_MAX_NX ? (int)(jb->T - t0) : KERNELS_MAX_NX;
            dot(K, wr, jb->x + (size_t)t0 * (size_t)K, (size_t)K * sizeof(float), nx, out);
            for (int j = 0; j < nx; j++) jb->y[(size_t)(t0 + j) * (size_t)N + (size_t)r] = out[j];
        }
    }
}

void kernels_matmul_f32(const loft_kernels *kt, threadpool *pool, float *y, const float *x,
                        int64_t T, const kernels_weight *w, float *row_buf)
{
    kd_f32_job jb = {kt, y, x, T, w, row_buf};
    if (threadpool_size(pool) == 1)
        kd_f32_part(&jb, 0, 1);
    else
        threadpool_run(pool, kd_f32_part, &jb);
}

loft_code kernels_matmul(const loft_kernels *kt, threadpool *pool, float *y, const float *x,
                         int64_t T, const kernels_weight *w, void *scratch, size_t scratch_bytes,
                         loft_status *st)
{
    const size_t rs = kernels_x_row_size(w->type, w->n_in);
    if (rs == 0 || !kt->dot[w->type]) {
        const loft_type_traits *tr = loft_type_get(w->type);
        return loft_fail(st, LOFT_ERR_UNSUPPORTED,
                         "matmul: weight type %s with %lld inputs has no dot product",
                         tr ? tr->name : "?", (long long)w->n_in);
    }
    if (T < 0 || (T > 0 && rs > scratch_bytes / (size_t)T))
        return loft_fail(st, LOFT_ERR_ARG, "matmul: scratch of %zu bytes is short of %lld rows of %zu",
                         scratch_bytes, (long long)T, rs);
    kernels_quantize_x(kt, w->type, x, T, w->n_in, scratch);
    kernels_matmul_xq(kt, pool, y, scratch, rs, T, w);
    return LOFT_OK;
}

/* ---- attention ----------------------------------------------------------- */

typedef struct kd_attn_job {
    const loft_kernels *kt;
    float *out;
    const float *q;
    const void *K, *V;
    uint32_t kv_type;
    int32_t T, pos0;
    const kernels_attn *as;
    float *scores;
    size_t scores_per_thread;
} kd_attn_job;

static void kd_attn_part(void *arg, int ith, int nth)
{
    const kd_attn_job *jb = arg;
    const kernels_attn *as = jb->as;
    const int32_t group = as->n_head / as->n_head_kv;
    const int32_t per_kv = (group + KERNELS_MAX_NX - 1) / KERNELS_MAX_NX;
    const bool ggml = as->f16_products != KERNELS_ATTN_OWN && jb->kv_type == LOFT_TYPE_F16 &&
                      as->head_dim <= KERNELS_ATTN_GGML_MAX_HD;
    /* an item is a run of consecutive tokens (several on the ggml path,
     * which shares each key and value row among them) and a group of up to
     * KERNELS_MAX_NX heads of one kv head; items go round-robin, so every
     * thread gets runs from the whole causal triangle */
    const int32_t run = ggml ? KERNELS_ATTN_GGML_MAX_TOKENS : 1;
    const int64_t per_run = (int64_t)as->n_head_kv * per_kv;
    const int64_t n_items = ((int64_t)jb->T + run - 1) / run * per_run;
    const size_t k_stride = (size_t)as->n_head_kv * (size_t)as->head_dim;
    const size_t v_stride = (size_t)as->n_head_kv * (size_t)as->head_dim_v;
    const size_t qw = (size_t)as->n_head * (size_t)as->head_dim;
    const size_t ow = (size_t)as->n_head * (size_t)as->head_dim_v;
    float *scores = jb->scores + (size_t)ith * jb->scores_per_thread;
    const size_t esz = jb->kv_type == LOFT_TYPE_F16 ? 2 : 4;
    for (int64_t it = ith; it < n_items; it += nth) {
        const int32_t t0 = (int32_t)(it / per_run) * run;
        const int32_t rest = (int32_t)(it % per_run);
        const int32_t hk = rest / per_kv, part = rest % per_kv;
        const int32_t h0 = hk * group + part * KERNELS_MAX_NX;
        const int32_t left = (hk + 1) * group - h0;
        const int ng = left < KERNELS_MAX_NX ? (int)left : KERNELS_MAX_NX;
        const int nt = jb->T - t0 < run ? (int)(jb->T - t0) : (int)run;
        int32_t first[KERNELS_ATTN_GGML_MAX_TOKENS], last[KERNELS_ATTN_GGML_MAX_TOKENS];
        for (int i = 0; i < nt; i++) {
            last[i] = jb->pos0 + t0 + i;
            first[i] = 0;
            if (as->window > 0 && last[i] - as->window + 1 > 0) first[i] = last[i] - as->window + 1;
        }
        float *o = jb->out + (size_t)t0 * ow + (size_t)h0 * (size_t)as->head_dim_v;
        const float *qt = jb->q + (size_t)t0 * qw + (size_t)h0 * (size_t)as->head_dim;
        const char *Kh = (const char *)jb->K + (size_t)hk * (size_t)as->head_dim * esz;
        const char *Vh = (const char *)jb->V + (size_t)hk * (size_t)as->head_dim_v * esz;
        if (ggml)
            kernels_attn_tokens_ggml(o, ow, qt, qw, nt, ng, Kh, k_stride, Vh, v_stride, first, last,
                                     as, scores);
        else
            jb->kt->attn_group(o, qt, ng, Kh, k_stride, Vh, v_stride, jb->kv_type, first[0],
                               last[0], as, scores);
    }
}

size_t kernels_attention_scratch(const threadpool *pool, int32_t n_pos)
{
    /* enough for either kind of item: ng * n_pos floats (one token) or
     * kernels_attn_tokens_scratch (a run of tokens) */
    const size_t per_thread =
        kernels_attn_tokens_scratch(KERNELS_ATTN_GGML_MAX_TOKENS, KERNELS_MAX_NX, n_pos > 0 ? n_pos : 1);
    const size_t n_threads = (size_t)threadpool_size(pool);
    if (per_thread > SIZE_MAX / n_threads) return SIZE_MAX;
    return n_threads * per_thread;
}

void kernels_attention(const loft_kernels *kt, threadpool *pool, float *out, const float *q,
                       int32_t T, int32_t pos0, const void *K, const void *V, uint32_t kv_type,
                       const kernels_attn *as, float *scores)
{
    kd_attn_job jb = {kt, out, q, K, V, kv_type, T, pos0, as, scores,
                      kernels_attn_tokens_scratch(KERNELS_ATTN_GGML_MAX_TOKENS, KERNELS_MAX_NX,
                                                  pos0 + T)};
    if (threadpool_size(pool) == 1 || (int64_t)T * (pos0 + T) * as->n_head * as->head_dim < 8192)
        kd_attn_part(&jb, 0, 1);
    else
        threadpool_run(pool, kd_attn_part, &jb);
}

/* ---- gated activations --------------------------------------------------- */

static uint16_t kd_gelu_f16[1 << 16];
static pthread_once_t kd_gelu_f16_once = PTHREAD_ONCE_INIT;

static void kd_gelu_f16_build(void)
{
    const float c = 0.79788456080286535587989211986876f; /* sqrt(2/pi) */
    for (uint32_t h = 0; h < (1u << 16); h++) {
        const float x = loft_f16_to_f32((uint16_t)h);
        kd_gelu_f16[h] =
            loft_f32_to_f16(0.5f * x * (1.0f + tanhf(c * x * fmaf(0.044715f * x, x, 1.0f))));
    }
}

const uint16_t *kernels_gelu_f16_table(void)
{
    pthread_once(&kd_gelu_f16_once, kd_gelu_f16_build);
    return kd_gelu_f16;
}

typedef struct kd_glu_job {
    kernels_glu_fn fn;
    float *out;
    const float *gate, *up;
    int64_t n;
} kd_glu_job;

/* Ranges are cut at multiples of 64 values so no two threads share a cache
 * line of out. */
static void kd_glu_part(void *arg, int ith, int nth)
{
    const kd_glu_job *jb = arg;
    const int64_t units = (jb->n + 63) / 64;
    const int64_t a = units * ith / nth * 64, b0 = units * (ith + 1) / nth * 64;
    const int64_t b = b0 < jb->n ? b0 : jb->n;
    if (b > a) jb->fn(jb->out + a, jb->gate + a, jb->up + a, b - a);
}

void kernels_glu(const loft_kernels *kt, threadpool *pool, int kind, float *out, const float *gate,
                 const float *up, int64_t n)
{
    kd_glu_job jb = {kind == KERNELS_GEGLU       ? kt->geglu
                     : kind == KERNELS_GEGLU_F16 ? kt->geglu_f16
                                                 : kt->swiglu,
                     out, gate, up, n};
    if (kind == KERNELS_GEGLU_F16) (void)kernels_gelu_f16_table(); /* built before threads share it */
    if (threadpool_size(pool) == 1 || n < 4096)
        kd_glu_part(&jb, 0, 1);
    else
        threadpool_run(pool, kd_glu_part, &jb);
}
