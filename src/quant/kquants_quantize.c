/*
 * kquants_quantize.c - reference quantizers for the super-block types,
 * following ggml's quantize_row_q*_K_ref (no importance weights): each
 * 16- or 32-value sub-block gets a scale (and for Q2/Q4/Q5_K a min) from a
 * small search that minimises a weighted squared (or absolute) error; the
 * sub-block scales are then quantized against the block's largest one, and
 * the values are re-quantized with the rounded scales actually stored.
 *
 * The searches evaluate the same float expressions in the same order as
 * ggml's (this file is built with -ffp-contract=off), so the bytes match
 * ggml's reference quantizers.
 */
#include <math.h>

#include "quant/quant_impl.h"

/* Below this magnitude a sub-block counts as all zero. */
#define KQ_GROUP_EPS 1e-15f

static int kq_clamp(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Weight of x in make_qx_quants' error for rmse_type 1: x^2. */
static float kq_sym_weight(float x)
{
    return x * x;
}

/*
 * Symmetric quantization of n values to L[i] in 0..2*nmax-1 (stored with
 * +nmax offset), scale returned. Starts from the scale that maps the
 * signed absmax to -nmax, then tries 18 nearby scales and keeps the one
 * with the best weighted (x^2) least-squares fit. (ggml's make_qx_quants
 * with rmse_type 1 and no importance weights.)
 */
static float kq_make_qx(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0.0f, amax = 0.0f;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < KQ_GROUP_EPS) {
        for (int i = 0; i < n; i++)
            L[i] = 0;
        return 0.0f;
    }
    float iscale = -(float)nmax / max;
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        int l = kq_clamp(quant_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        float w = kq_sym_weight(x[i]);
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0.0f;
        for (int i = 0; i < n; i++) {
            int l = kq_clamp(quant_nearest_int(iscale * x[i]), -nmax, nmax - 1);
            float w = kq_sym_weight(x[i]);
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                int l = kq_clamp(quant_nearest_int(iscale * x[i]), -nmax, nmax - 1);
                L[i] = (int8_t)(l + nmax);
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/*
 * Q3_K's symmetric search (ggml's make_q3_quants with do_rmse): start at
 * the absmax scale, then up to 5 sweeps of coordinate descent moving single
 * values to the level that improves the x^2-weighted fit. L[i] in 0..2*nmax-1.
 */
static float kq_make_q3(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0.0f, amax = 0.0f;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < KQ_GROUP_EPS) {
        for (int i = 0; i < n; i++)
            L[i] = 0;
        return 0.0f;
    }
    float iscale = -(float)nmax / max;
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        int l = kq_clamp(quant_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            if (!(slx > 0.0f)) continue;
            float sl2 = suml2 - w * (float)L[i] * (float)L[i];
            int nl = kq_clamp(quant_nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (nl == L[i]) continue;
            slx += w * x[i] * (float)nl;
            sl2 += w * (float)nl * (float)nl;
            if (sl2 > 0.0f && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)nl;
                sumlx = slx;
                suml2 = sl2;
                n_changed++;
            }
        }
        if (n_changed == 0) break;
    }
    for (int i = 0; i < n; i++)
        L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Weighted error of one value: absolute (use_mad) or squared. */
static float kq_err(float diff, bool use_mad)
{
    return use_mad ? fabsf(diff) : diff * diff;
}

/*
 * Asymmetric quantization x ~ scale * L - min_out, L in 0..nmax (ggml's
 * make_qkx2_quants). Starts from the [min(x, 0), max] range, then tries
 * nstep+1 scales (rmin + rdelta * is + nmax levels over the range), each
 * with the closed-form weighted least-squares scale and min for its levels,
 * keeping the lowest weighted error. Returns the scale; *min_out >= 0.
 */
static float kq_make_qkx2(int n, int nmax, const float *x, const float *w, uint8_t *L,
                          float *min_out, uint8_t *Laux, float rmin, float rdelta, int nstep,
                          bool use_mad)
{
    float min = x[0], max = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0.0f) min = 0.0f;
    if (max == min) {
        for (int i = 0; i < n; i++)
            L[i] = 0;
        *min_out = -min;
        return 0.0f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1.0f / iscale;
    float best_error = 0.0f;
    for (int i = 0; i < n; i++) {
        int l = kq_clamp(quant_nearest_int(iscale * (x[i] - min)), 0, nmax);
        L[i] = (uint8_t)l;
        float diff = scale * (float)L[i] + min - x[i];
        best_error += w[i] * kq_err(diff, use_mad);
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
        for (int i = 0; i < n; i++) {
            int l = kq_clamp(quant_nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            float fl = (float)l;
            sum_l += w[i] * fl;
            sum_l2 += w[i] * fl * fl;
            sum_xl += w[i] * fl * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (!(D > 0.0f)) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0.0f) {
            this_min = 0.0f;
            this_scale = sum_xl / sum_l2;
        }
        float cur_error = 0.0f;
        for (int i = 0; i < n; i++) {
            float diff = this_scale * (float)Laux[i] + this_min - x[i];
            cur_error += w[i] * kq_err(diff, use_mad);
        }
        if (cur_error < best_error) {
            memcpy(L, Laux, (size_t)n);
            best_error = cur_error;
            scale = this_scale;
            min = this_min;
        }
    }
    *min_out = -min;
    return scale;
}

/* ---- Q2_K ------------------------------------------------------------ */

void quant_quantize_q2_k(const float *x, void *dst, int64_t nb)
{
    uint8_t *b = dst;
    uint8_t L[QK_K], Laux[16];
    float w[16], mins[16], scales[16];
    for (int64_t i = 0; i < nb; i++, b += 84, x += QK_K) {
        uint8_t *bsc = b, *qs = b + 16;
        float max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++)
                w[l] = fabsf(x[16 * j + l]);
            scales[j] = kq_make_qkx2(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f,
                                     15, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        uint16_t d16 = 0, dmin16 = 0;
        memset(bsc, 0, 16);
        if (max_scale > 0.0f) {
            float iscale = 15.0f / max_scale;
            for (int j = 0; j < 16; j++)
                bsc[j] = (uint8_t)quant_nearest_int(iscale * scales[j]);
            d16 = loft_f32_to_f16(max_scale / 15.0f);
        }
        if (max_min > 0.0f) {
            float iscale = 15.0f / max_min;
            for (int j = 0; j < 16; j++) {
                bsc[j] = (uint8_t)(bsc[j] | (quant_nearest_int(iscale * mins[j]) << 4));
            }
            dmin16 = loft_f32_to_f16(max_min / 15.0f);
        }
        quant_wr16(b + 80, d16);
        quant_wr16(b + 82, dmin16);
        for (int j = 0; j < 16; j++) {
            float d = loft_f16_to_f32(d16) * (float)(bsc[j] & 0xF);
            if (d == 0.0f) continue;
            float dm = loft_f16_to_f32(dmin16) * (float)(bsc[j] >> 4);
            for (int l = 0; l < 16; l++) {
                L[16 * j + l] =
                    (uint8_t)kq_clamp(quant_nearest_int((x[16 * j + l] + dm) / d), 0, 3);
            }
        }
        for (int h = 0; h < QK_K; h += 128) {
            for (int l = 0; l < 32; l++) {
                qs[h / 4 + l] = (uint8_t)(L[h + l] | (L[h + l + 32] << 2) | (L[h + l + 64] << 4) |
                                          (L[h + l + 96] << 6));
            }
        }
    }
}

/* ---- Q3_K ------------------------------------------------------------ */

void quant_quantize_q3_k(const float *x, void *dst, int64_t nb)
{
    uint8_t *b = dst;
    int8_t L[QK_K];
    float scales[16];
    for (int64_t i = 0; i < nb; i++, b += 110, x += QK_K) {
        uint8_t *hmask = b, *qs = b + 32, *bsc = b + 96;
        float max_scale = 0.0f, amax = 0.0f;
        for (int j = 0; j < 16; j++) {
            scales[j] = kq_make_q3(16, 4, x + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > amax) {
                amax = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        memset(bsc, 0, 12);
        uint16_t d16 = 0;
        if (max_scale != 0.0f) {
            float iscale = -32.0f / max_scale;
            for (int j = 0; j < 16; j++) {
                int l = kq_clamp(quant_nearest_int(iscale * scales[j]), -32, 31) + 32;
                if (j < 8)
                    bsc[j] = (uint8_t)(l & 0xF);
                else
                    bsc[j - 8] = (uint8_t)(bsc[j - 8] | ((l & 0xF) << 4));
                bsc[8 + j % 4] = (uint8_t)(bsc[8 + j % 4] | ((l >> 4) << (2 * (j / 4))));
            }
            d16 = loft_f32_to_f16(1.0f / iscale);
        }
        quant_wr16(b + 108, d16);
        for (int j = 0; j < 16; j++) {
            int lo = j < 8 ? (bsc[j] & 0xF) : (bsc[j - 8] >> 4);
            int sc = (lo | (((bsc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
            float d = loft_f16_to_f32(d16) * (float)sc;
            if (d == 0.0f) continue;
            for (int l = 0; l < 16; l++) {
                L[16 * j + l] = (int8_t)(kq_clamp(quant_nearest_int(x[16 * j + l] / d), -4, 3) + 4);
            }
        }
        /* High bit of value p goes to bit p/32 of hmask[p%32]. */
        memset(hmask, 0, 32);
        for (int p = 0; p < QK_K; p++) {
            if (L[p] > 3) {
                hmask[p % 32] = (uint8_t)(hmask[p % 32] | (1u << (p / 32)));
                L[p] = (int8_t)(L[p] - 4);
            }
        }
        for (int h = 0; h < QK_K; h += 128) {
            for (int l = 0; l < 32; l++) {
                qs[h / 4 + l] = (uint8_t)(L[h + l] | (L[h + l + 32] << 2) | (L[h + l + 64] << 4) |
                                          (L[h + l + 96] << 6));
            }
        }
    }
}

/* ---- Q4_K / Q5_K ----------------------------------------------------- */

/* Shared by Q4_K (nmax 15) and Q5_K (nmax 31): writes d, dmin and the 12
 * packed scale/min bytes at head[0..16) (which must start zeroed) and fills
 * the levels L[256], re-quantized against the stored, rounded scales. */
static void kq_q45_block(const float *x, int nmax, float rmin, int nstep, uint8_t *head, uint8_t *L)
{
    uint8_t Laux[32];
    float w[32], mins[8], scales[8];
    uint8_t *sc12 = head + 4;
    float max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0.0f;
        for (int l = 0; l < 32; l++)
            sum_x2 += xs[l] * xs[l];
        float av_x = sqrtf(sum_x2 / 32.0f);
        for (int l = 0; l < 32; l++)
            w[l] = av_x + fabsf(xs[l]);
        scales[j] =
            kq_make_qkx2(32, nmax, xs, w, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
    float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)quant_nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)quant_nearest_int(inv_min * mins[j]);
        if (ls > 63) ls = 63;
        if (lm > 63) lm = 63;
        if (j < 4) {
            sc12[j] = ls;
            sc12[j + 4] = lm;
        } else {
            sc12[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            sc12[j - 4] = (uint8_t)(sc12[j - 4] | ((ls >> 4) << 6));
            sc12[j] = (uint8_t)(sc12[j] | ((lm >> 4) << 6));
        }
    }
    uint16_t d16 = loft_f32_to_f16(max_scale / 63.0f);
    uint16_t dmin16 = loft_f32_to_f16(max_min / 63.0f);
    quant_wr16(head, d16);
    quant_wr16(head + 2, dmin16);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        quant_k4_scale_min(j, sc12, &sc, &m);
        float d = loft_f16_to_f32(d16) * (float)sc;
        if (d == 0.0f) continue;
        float dm = loft_f16_to_f32(dmin16) * (float)m;
        for (int l = 0; l < 32; l++) {
            int q = quant_nearest_int((x[32 * j + l] + dm) / d);
            L[32 * j + l] = (uint8_t)kq_clamp(q, 0, nmax);
        }
    }
}

void quant_quantize_q4_k(const float *x, void *dst, int64_t nb)
{
    uint8_t *b = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; i++, b += 144, x += QK_K) {
        memset(b, 0, 144);
        kq_q45_block(x, 15, -1.0f, 20, b, L);
        uint8_t *q = b + 16;
        for (int h = 0; h < QK_K; h += 64, q += 32) {
            for (int l = 0; l < 32; l++)
                q[l] = (uint8_t)(L[h + l] | (L[h + l + 32] << 4));
        }
    }
}

void quant_quantize_q5_k(const float *x, void *dst, int64_t nb)
{
    uint8_t *b = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; i++, b += 176, x += QK_K) {
        memset(b, 0, 176);
        kq_q45_block(x, 31, -0.5f, 15, b, L);
        uint8_t *qh = b + 16, *ql = b + 48;
        for (int h = 0, sub = 0; h < QK_K; h += 64, sub += 2, ql += 32) {
            for (int l = 0; l < 32; l++) {
                int l1 = L[h + l], l2 = L[h + l + 32];
                qh[l] = (uint8_t)(qh[l] | ((l1 >> 4) << sub) | ((l2 >> 4) << (sub + 1)));
                ql[l] = (uint8_t)((l1 & 0xF) | ((l2 & 0xF) << 4));
            }
        }
    }
}

/* ---- Q6_K ------------------------------------------------------------ */

void quant_quantize_q6_k(const float *x, void *dst, int64_t nb)
{
    uint8_t *b = dst;
    int8_t L[QK_K];
    float scales[16];
    for (int64_t i = 0; i < nb; i++, b += 210, x += QK_K) {
        uint8_t *ql = b, *qh = b + 128;
        int8_t *bsc = (int8_t *)(b + 192);
        float max_scale = 0.0f, max_abs = 0.0f;
        for (int j = 0; j < 16; j++) {
            scales[j] = kq_make_qx(16, 32, x + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > max_abs) {
                max_abs = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        memset(b, 0, 210);
        if (max_abs < KQ_GROUP_EPS) continue;
        float iscale = -128.0f / max_scale;
        uint16_t d16 = loft_f32_to_f16(1.0f / iscale);
        quant_wr16(b + 208, d16);
        for (int j = 0; j < 16; j++) {
            int s = quant_nearest_int(iscale * scales[j]);
            bsc[j] = (int8_t)(s > 127 ? 127 : s);
        }
        for (int j = 0; j < 16; j++) {
            float d = loft_f16_to_f32(d16) * (float)bsc[j];
            if (d == 0.0f) continue;
            for (int l = 0; l < 16; l++) {
                L[16 * j + l] =
                    (int8_t)(kq_clamp(quant_nearest_int(x[16 * j + l] / d), -32, 31) + 32);
            }
        }
        for (int h = 0; h < QK_K; h += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; l++) {
                int q1 = L[h + l], q2 = L[h + l + 32], q3 = L[h + l + 64], q4 = L[h + l + 96];
                ql[l] = (uint8_t)((q1 & 0xF) | ((q3 & 0xF) << 4));
                ql[l + 32] = (uint8_t)((q2 & 0xF) | ((q4 & 0xF) << 4));
                qh[l] =
                    (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
            }
        }
    }
}

/* ---- Q8_K ------------------------------------------------------------ */

void quant_quantize_q8_k(const float *x, void *dst, int64_t nb)
{
    uint8_t *b = dst;
    for (int64_t i = 0; i < nb; i++, b += 292, x += QK_K) {
        float max = 0.0f, amax = 0.0f;
        for (int p = 0; p < QK_K; p++) {
            if (fabsf(x[p]) > amax) {
                amax = fabsf(x[p]);
                max = x[p];
            }
        }
        memset(b, 0, 292);
        if (amax == 0.0f) continue;
        /* ggml uses -127 (not -128) so that every q is in -127..127. */
        float iscale = -127.0f / max;
        int8_t *qs = (int8_t *)(b + 4);
        for (int p = 0; p < QK_K; p++) {
            int v = quant_nearest_int(iscale * x[p]);
            qs[p] = (int8_t)(v > 127 ? 127 : v);
        }
        for (int j = 0; j < 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++)
                sum += qs[16 * j + l];
            quant_wr16(b + 4 + QK_K + 2 * j, (uint16_t)(int16_t)sum);
        }
        float d = 1.0f / iscale;
        uint32_t bits;
        memcpy(&bits, &d, sizeof bits);
        quant_wr32(b, bits);
    }
}
