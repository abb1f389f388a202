/*
 * x86_ops.h - attention and gated activations for the x86 kernel sets: the
 * second half of x86_body.h (included from there, after the dot products
 * it uses; same KX_* settings, everything static).
 */
/* ---- attention ------------------------------------------------------------ */

/* 8 value elements at p as floats (F32 or F16 rows). */
KX_INLINE __m256 kx_load_v8(const void *p, const int f16)
{
    if (f16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    return _mm256_loadu_ps((const float *)p);
}

KX_INLINE float kx_v1(const void *p, const int f16)
{
    return f16 ? kx_h2f(*(const uint16_t *)p) : *(const float *)p;
}

/* out row (hdv floats) = sum over i < np of s[i] * value row i; the rows are
 * walked 32 (then 8, then 1) output dims at a time so sums stay in
 * registers. */
KX_INLINE void kx_attn_values(float *oh, const float *s, int32_t np, const char *vb, size_t vrow,
                              int32_t hdv, const int f16)
{
    const size_t esz = f16 ? 2 : 4;
    int32_t d0 = 0;
    for (; d0 + 32 <= hdv; d0 += 32) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int32_t i = 0; i < np; i++) {
            const char *vp = vb + (size_t)i * vrow + (size_t)d0 * esz;
            const __m256 wv = _mm256_set1_ps(s[i]);
            a0 = _mm256_fmadd_ps(wv, kx_load_v8(vp, f16), a0);
            a1 = _mm256_fmadd_ps(wv, kx_load_v8(vp + 8 * esz, f16), a1);
            a2 = _mm256_fmadd_ps(wv, kx_load_v8(vp + 16 * esz, f16), a2);
            a3 = _mm256_fmadd_ps(wv, kx_load_v8(vp + 24 * esz, f16), a3);
        }
        _mm256_storeu_ps(oh + d0, a0);
        _mm256_storeu_ps(oh + d0 + 8, a1);
        _mm256_storeu_ps(oh + d0 + 16, a2);
        _mm256_storeu_ps(oh + d0 + 24, a3);
    }
    for (; d0 + 8 <= hdv; d0 += 8) {
        __m256 a0 = _mm256_setzero_ps();
        for (int32_t i = 0; i < np; i++)
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(s[i]),
                                 kx_load_v8(vb + (size_t)i * vrow + (size_t)d0 * esz, f16), a0);
        _mm256_storeu_ps(oh + d0, a0);
    }
    for (; d0 < hdv; d0++) {
        float a = 0.0f;
        for (int32_t i = 0; i < np; i++) a += s[i] * kx_v1(vb + (size_t)i * vrow + (size_t)d0 * esz, f16);
        oh[d0] = a;
    }
}

/* ref_attn_group's sequence with vector dot products (the weight-row
 * kernels, a key row standing for the weight row) and vector value sums;
 * the softmax denominator is summed in float. */
static void kx_attn_group(float *out, const float *q, int ng, const void *K, size_t k_stride,
                          const void *V, size_t v_stride, uint32_t kv_type, int32_t first,
                          int32_t last, const kernels_attn *as, float *scores)
{
    const int f16 = kv_type == LOFT_TYPE_F16;
    const size_t esz = f16 ? 2 : 4;
    const int32_t np = last - first + 1;
    const int32_t hd = as->head_dim, hdv = as->head_dim_v;
    float sc[KERNELS_MAX_NX], mx[KERNELS_MAX_NX];
    for (int h = 0; h < ng; h++) mx[h] = -INFINITY;
    for (int32_t p = first; p <= last; p++) {
        const char *kp = (const char *)K + (size_t)p * k_stride * esz;
        if (f16)
            kx_dot_f16(hd, kp, q, (size_t)hd * sizeof(float), ng, sc);
        else
            kx_dot_f32(hd, kp, q, (size_t)hd * sizeof(float), ng, sc);
        for (int h = 0; h < ng; h++) {
            float v = sc[h] * as->scale;
            if (as->softcap > 0.0f) v = as->softcap * tanhf(v / as->softcap);
            scores[(size_t)h * (size_t)np + (size_t)(p - first)] = v;
            if (v > mx[h]) mx[h] = v;
        }
    }
    const char *vb = (const char *)V + (size_t)first * v_stride * esz;
    for (int h = 0; h < ng; h++) {
        float *s = scores + (size_t)h * (size_t)np;
        float sum = 0.0f;
        for (int32_t i = 0; i < np; i++) {
            s[i] = expf(s[i] - mx[h]);
            sum += s[i];
        }
        const float inv = 1.0f / sum;
        for (int32_t i = 0; i < np; i++) s[i] *= inv;
        float *oh = out + (size_t)h * (size_t)hdv;
        if (f16)
            kx_attn_values(oh, s, np, vb, v_stride * esz, hdv, 1);
        else
            kx_attn_values(oh, s, np, vb, v_stride * esz, hdv, 0);
    }
}

/* ---- gated activations ---------------------------------------------------- */

/* e^x for x clamped to [-87, 87]: x = n ln2 + r with |r| <= ln2 / 2
 * (ln2 split in two parts so r is exact), e^r by its degree-6 Taylor
 * polynomial (relative error below 2e-7 on that range), 2^n through the
 * exponent bits. */
KX_INLINE __m256 kx_exp(__m256 x)
{
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(87.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* silu(g) = g / (1 + e^-g); gelu(g) = g / (1 + e^-2z) with z the tanh
 * argument (0.5 (1 + tanh z) = 1 / (1 + e^-2z)). */
KX_INLINE __m256 kx_act(__m256 g, const int gelu)
{
    __m256 t;
    if (gelu) {
        const __m256 g2 = _mm256_mul_ps(g, g);
        const __m256 inner = _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), g2, _mm256_set1_ps(1.0f));
        t = _mm256_mul_ps(_mm256_mul_ps(g, inner), _mm256_set1_ps(-2.0f * 0.79788456080286535588f));
    } else {
        t = _mm256_sub_ps(_mm256_setzero_ps(), g);
    }
    return _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), kx_exp(t)));
}

KX_INLINE void kx_glu(float *out, const float *gate, const float *up, int64_t n, const int gelu)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(kx_act(_mm256_loadu_ps(gate + i), gelu),
                                                _mm256_loadu_ps(up + i)));
    if (i < n) {
        float g[8] = {0}, u[8] = {0};
        memcpy(g, gate + i, (size_t)(n - i) * sizeof(float));
        memcpy(u, up + i, (size_t)(n - i) * sizeof(float));
        _mm256_storeu_ps(g, _mm256_mul_ps(kx_act(_mm256_loadu_ps(g), gelu), _mm256_loadu_ps(u)));
        memcpy(out + i, g, (size_t)(n - i) * sizeof(float));
    }
}

static void kx_swiglu(float *out, const float *gate, const float *up, int64_t n)
{
    kx_glu(out, gate, up, n, 0);
}

static void kx_geglu(float *out, const float *gate, const float *up, int64_t n)
{
    kx_glu(out, gate, up, n, 1);
}

/* loft_kernels.geglu_f16, 8 values at a time: F16C rounding (nearest
 * even, as ggml's conversion), the table read lane by lane. */
static void kx_geglu_f16(float *out, const float *gate, const float *up, int64_t n)
{
    const uint16_t *tab = kernels_gelu_f16_table();
    const __m256 lo = _mm256_set1_ps(-10.0f), hi = _mm256_set1_ps(10.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i), u = _mm256_loadu_ps(up + i);
        _Alignas(16) uint16_t h[8];
        _mm_store_si128((__m128i *)h, _mm256_cvtps_ph(g, _MM_FROUND_TO_NEAREST_INT));
        for (int k = 0; k < 8; k++) h[k] = tab[h[k]];
        const __m256 t = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)h));
        __m256 r = _mm256_mul_ps(t, u);
        r = _mm256_blendv_ps(r, _mm256_mul_ps(g, u), _mm256_cmp_ps(g, hi, _CMP_GE_OQ));
        r = _mm256_andnot_ps(_mm256_cmp_ps(g, lo, _CMP_LE_OQ), r);
        _mm256_storeu_ps(out + i, r);
    }
    for (; i < n; i++) {
        const float g = gate[i];
        out[i] = g <= -10.0f ? 0.0f
                 : g >= 10.0f ? g * up[i]
                              : _cvtsh_ss(tab[_cvtss_sh(g, _MM_FROUND_TO_NEAREST_INT)]) * up[i];
    }
}
