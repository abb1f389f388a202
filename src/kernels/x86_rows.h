/*
 * x86_rows.h - the row steps of a forward pass for the x86 kernel sets:
 * activation quantization, the F32 -> F16 row conversion and rope, each
 * bit for bit its ref.c counterpart. Included from x86_body.h (same KX_*
 * settings, everything static).
 */
/* ---- activation quantization ------------------------------------------- */

/* Rounds 32 floats times id to int8 (nearest, ties to even) into q and
 * returns their sum. */
KX_INLINE int32_t kx_round32(const float *x, __m256 id, int8_t *q)
{
    const __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), id));
    const __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), id));
    const __m256i c = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), id));
    const __m256i d = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), id));
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    _mm256_storeu_si256((__m256i *)q, _mm256_permutevar8x32_epi32(p, perm));
    const __m256i s = _mm256_add_epi32(_mm256_add_epi32(a, b), _mm256_add_epi32(c, d));
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xB1));
    return _mm_cvtsi128_si32(h);
}

KX_INLINE __m256 kx_absmax8(__m256 m, const float *x)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    return _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x)));
}

KX_INLINE float kx_hmax(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* v rounded to F16 and back, lane by lane as loft_f16_to_f32(loft_f32_to_f16(v))
 * gives it: F16C both ways (nearest even, exact subnormals), NaN lanes by
 * the scalar pair, since F16C quiets signalling NaNs. */
KX_INLINE __m256 kx_f16_round(__m256 v)
{
    __m256 r = _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q))) {
        _Alignas(32) float t[8];
        _mm256_store_ps(t, v);
        for (int k = 0; k < 8; k++) t[k] = loft_f16_to_f32(loft_f32_to_f16(t[k]));
        r = _mm256_load_ps(t);
    }
    return r;
}

/* ref_quantize_q8's values, eight blocks at a time: the block maxima go
 * into one vector, so the two divisions and the two F16 roundings per
 * block are one vector instruction each for all eight. */
static void kx_quantize_q8(const float *x, void *y, int64_t n)
{
    kernels_q8 *b = y;
    const int64_t nb = n / 32;
    for (int64_t i0 = 0; i0 < nb; i0 += 8, x += 256) {
        const int m = nb - i0 < 8 ? (int)(nb - i0) : 8;
        _Alignas(32) float amax[8] = {0}, id[8], d[8], s[8];
        _Alignas(32) int32_t sum[8] = {0};
        for (int j = 0; j < m; j++) {
            __m256 mx = _mm256_setzero_ps();
            for (int k = 0; k < 32; k += 8) mx = kx_absmax8(mx, x + 32 * j + k);
            amax[j] = kx_hmax(mx);
        }
        const __m256 av = _mm256_load_ps(amax);
        /* amax > 0 ? 127 / amax : 0 */
        _mm256_store_ps(id, _mm256_and_ps(_mm256_div_ps(_mm256_set1_ps(127.0f), av),
                                          _mm256_cmp_ps(av, _mm256_setzero_ps(), _CMP_GT_OQ)));
        for (int j = 0; j < m; j++)
            sum[j] = b[i0 + j].sum = kx_round32(x + 32 * j, _mm256_set1_ps(id[j]), b[i0 + j].qs);
        /* F16 scale and scaled sum, as ggml's Q8_0 / Q8_1 (see ref.c). */
        const __m256 dv = _mm256_div_ps(av, _mm256_set1_ps(127.0f));
        _mm256_store_ps(d, kx_f16_round(dv));
        const __m256 sv = _mm256_cvtepi32_ps(_mm256_load_si256((const __m256i *)sum));
        _mm256_store_ps(s, kx_f16_round(_mm256_mul_ps(dv, sv)));
        for (int j = 0; j < m; j++) {
            b[i0 + j].d = d[j];
            b[i0 + j].s = s[j];
        }
    }
}

static void kx_quantize_q8k(const float *x, void *y, int64_t n)
{
    kernels_q8k *b = y;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < QK_K; k += 8) m = kx_absmax8(m, x + k);
        const float amax = kx_hmax(m);
        const float ids = amax > 0.0f ? 127.0f / amax : 0.0f;
        const __m256 id = _mm256_set1_ps(ids);
        for (int k = 0; k < QK_K; k += 32) kx_round32(x + k, id, b[i].qs + k);
        for (int g = 0; g < 16; g++) {
            /* sign-extend and sum 16 int8 values */
            const __m256i v = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b[i].qs + 16 * g)));
            const __m256i s32 = _mm256_madd_epi16(v, _mm256_set1_epi16(1));
            __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
            h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
            h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xB1));
            b[i].bsums[g] = (int16_t)_mm_cvtsi128_si32(h);
        }
        b[i].d = amax > 0.0f ? 1.0f / ids : 0.0f; /* as ggml's Q8_K (see ref.c) */
    }
}

/* ---- per-token steps of a forward pass ------------------------------------ */

/* loft_kernels.f32_to_f16: F16C's conversion (nearest even, overflow to
 * infinity, exact subnormals: loft_f32_to_f16's bits) 8 lanes at a time; a
 * group with a NaN lane is redone by loft_f32_to_f16, since F16C quiets a
 * signalling NaN that loft keeps as it is. */
static void kx_f32_to_f16(uint16_t *dst, const float *x, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
        if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)))
            for (int k = 0; k < 8; k++) dst[i + k] = loft_f32_to_f16(x[i + k]);
    }
    for (; i < n; i++) dst[i] = loft_f32_to_f16(x[i]);
}

/* One rotated pair, scalar (fmaf is one instruction under -mfma). */
KX_INLINE void kx_rope_pair(float *xa, float *xb, float c, float s)
{
    const float x0 = *xa, x1 = *xb;
    *xa = fmaf(x0, c, -(x1 * s));
    *xb = fmaf(x0, s, x1 * c);
}

/* loft_kernels.rope, 4 pairs per vector. Adjacent pairs: lanes (2i, 2i+1)
 * are (a, b) = (x0, x1); the rounded product x1 * (s, c) is negated in the
 * even lanes (a sign flip, exact) and the fused product x0 * (c, s) added,
 * which is the scalar sequence lane for lane. Halves: 8 pairs per step,
 * the cosines and sines deinterleaved from cs once for all heads. */
static void kx_rope(float *x, int32_t n_heads, int32_t head_dim, int32_t n_rot, int neox,
                    const float *cs)
{
    const size_t hd = (size_t)head_dim;
    const __m256 neg = _mm256_set1_ps(-0.0f);
    int32_t i = 0;
    if (!neox) {
        const __m256 neg_even = _mm256_setr_ps(-0.0f, 0.0f, -0.0f, 0.0f, -0.0f, 0.0f, -0.0f, 0.0f);
        for (; i + 8 <= n_rot; i += 8) {
            const __m256 cv = _mm256_loadu_ps(cs + i);
            const __m256 sc = _mm256_permute_ps(cv, 0xB1); /* (s, c) per pair */
            for (int32_t h = 0; h < n_heads; h++) {
                float *p = x + (size_t)h * hd + (size_t)i;
                const __m256 v = _mm256_loadu_ps(p);
                const __m256 t = _mm256_xor_ps(_mm256_mul_ps(_mm256_movehdup_ps(v), sc), neg_even);
                _mm256_storeu_ps(p, _mm256_fmadd_ps(_mm256_moveldup_ps(v), cv, t));
            }
        }
        for (int32_t h = 0; h < n_heads; h++)
            for (int32_t k = i; k < n_rot; k += 2) {
                float *p = x + (size_t)h * hd + (size_t)k;
                kx_rope_pair(p, p + 1, cs[k], cs[k + 1]);
            }
        return;
    }
    const int32_t half = n_rot / 2;
    for (; i + 8 <= half; i += 8) {
        const __m256 lo = _mm256_loadu_ps(cs + 2 * i), hi = _mm256_loadu_ps(cs + 2 * i + 8);
        /* shuffle gives pairs (0 1 4 5 | 2 3 6 7); the 64-bit permute
         * puts them in order */
        const __m256 c = _mm256_castpd_ps(
            _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0x88)), 0xD8));
        const __m256 s = _mm256_castpd_ps(
            _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0xDD)), 0xD8));
        for (int32_t h = 0; h < n_heads; h++) {
            float *pa = x + (size_t)h * hd + (size_t)i, *pb = pa + half;
            const __m256 a = _mm256_loadu_ps(pa), b = _mm256_loadu_ps(pb);
            const __m256 nb = _mm256_xor_ps(_mm256_mul_ps(b, s), neg);
            const __m256 bc = _mm256_mul_ps(b, c);
            _mm256_storeu_ps(pa, _mm256_fmadd_ps(a, c, nb));
            _mm256_storeu_ps(pb, _mm256_fmadd_ps(a, s, bc));
        }
    }
    for (int32_t h = 0; h < n_heads; h++)
        for (int32_t k = i; k < half; k++) {
            float *pa = x + (size_t)h * hd + (size_t)k;
            kx_rope_pair(pa, pa + half, cs[2 * k], cs[2 * k + 1]);
        }
}
