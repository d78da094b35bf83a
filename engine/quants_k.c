/*
 * quants_k.c — k-quants (Q2_K .. Q6_K) and their activation type Q8_K:
 * dequantizers, reference quantizers and scalar dot products.
 *
 * k-quants work on super-blocks of 256 elements cut into sub-blocks of 16 or
 * 32. Each sub-block gets its own scale (and min), found by a small search;
 * then the sub-block scales are quantized to 4 or 6 bits against one fp16
 * super-block scale, and the elements are re-quantized with the scales as
 * they will be decoded. The searches below follow ggml's *_ref quantizers
 * step for step (same grids, same weights, same float order), because the
 * point of a reference quantizer is that every implementation produces the
 * same bytes; none of this code is on the inference path.
 *
 * The dot products accumulate each sub-block in integers, apply the integer
 * sub-block scales in integers, and touch floats once per super-block.
 */
#include "quants.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "fp16.h"

// Below this a group counts as all zero (ggml's GROUP_MAX_EPS).
#define GROUP_MAX_EPS 1e-15f

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int iclamp(int v, int lo, int hi) { return imax(lo, imin(hi, v)); }

// Round to nearest, ties to even, for |f| < 2^22: adding 1.5 * 2^23 pushes
// the fraction out of the mantissa, so the FPU's own rounding does the work.
// ggml uses this instead of lrintf; it is part of the reference rounding.
static inline int nearest_int(float f) {
    float biased = f + 12582912.0f;
    int32_t bits;
    memcpy(&bits, &biased, sizeof bits);
    return (bits & 0x007fffff) - 0x00400000;
}

// ---------------------------------------------------------------------------
// Scale searches (ggml's make_qx_quants, make_q3_quants, make_qkx2_quants)

// The value of largest magnitude (the first one on ties), sign kept: the
// symmetric searches map it to -nmax.
static float signed_extreme(const float *x, int n) {
    float max = 0.0f, amax = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    return max;
}

// Symmetric codes in [-nmax, nmax-1] for n values; writes L[i] = code + nmax
// and returns the scale. The starting scale maps the signed extreme to -nmax;
// with rmse_type 1 it then tries 18 nearby scales and keeps the one with the
// best weighted least-squares fit (weight x^2, favouring large values).
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L, int rmse_type) {
    const float max = signed_extreme(x, n);
    if (fabsf(max) < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -nmax / max;
    if (rmse_type == 0) {
        for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + iclamp(nearest_int(iscale * x[i]), -nmax, nmax - 1));
        return 1 / iscale;
    }
    // Only rmse_type 1 (weight x^2) is used by the reference quantizers.
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = iclamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = iclamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        // sumlx^2 / suml2 is the fit's explained energy; compare without dividing.
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + iclamp(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// Symmetric codes for q3_K: start from the extreme as make_qx_quants, then
// (do_rmse) move single codes while that improves the x^2-weighted fit, up
// to 5 passes. Writes L[i] = code + nmax and returns the scale.
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L, bool do_rmse) {
    const float max = signed_extreme(x, n);
    if (fabsf(max) < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    const float iscale = -nmax / max;
    if (!do_rmse) {
        for (int i = 0; i < n; i++) L[i] = (int8_t)(iclamp(nearest_int(iscale * x[i]), -nmax, nmax - 1) + nmax);
        return 1 / iscale;
    }
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = iclamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int pass = 0; pass < 5; pass++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                const int new_l = iclamp(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Asymmetric codes in [0, nmax] with x ~ scale * L - min: starts from the
// range [min(x, 0), max(x)], then tries nstep+1 scales around nmax/(max-min),
// each with the least-squares (scale, min) for its codes, keeping the one
// with the smallest weighted error (absolute with use_mad, else squared).
// Returns the scale and writes the (positive) min to *the_min.
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                              float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                              bool use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += weights[i];
        sum_x += weights[i] * x[i];
    }
    if (min > 0) min = 0; // keep zero representable: codes only go up from min
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.0f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0.0f;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)iclamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = iclamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            const float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float error = 0.0f;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                error += weights[i] * diff;
            }
            if (error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

// Packs 2-bit codes of 256 elements: per 128-element half, byte l holds
// elements l, l+32, l+64, l+96 (shared by q2_K and the low bits of q3_K).
static void pack_2bit(const uint8_t *L, uint8_t qs[QK_K / 4]) {
    for (int j = 0; j < QK_K; j += 128) {
        for (int l = 0; l < 32; l++) {
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
        }
    }
}

// Packs the 6-bit scale and min of sub-block j of a q4_K / q5_K block
// (the inverse of lb_get_scale_min_k4). scales[] must start zeroed for j >= 4.
static void put_scale_min_k4(int j, uint8_t ls, uint8_t lm, uint8_t scales[K_SCALE_SIZE]) {
    if (j < 4) {
        scales[j] = ls;
        scales[j + 4] = lm;
    } else {
        scales[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
        scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
        scales[j] |= (uint8_t)((lm >> 4) << 6);
    }
}

// ---------------------------------------------------------------------------
// Q2_K

void lb_dequantize_row_q2_K(const void *src, float *dst, int64_t n) {
    const block_q2_K *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = lb_fp16_to_f32(x[i].d);
        const float dmin = lb_fp16_to_f32(x[i].dmin);
        for (int e = 0; e < QK_K; e++) {
            const uint8_t sc = x[i].scales[e / 16];
            const int q = (x[i].qs[(e / 128) * 32 + e % 32] >> (2 * ((e % 128) / 32))) & 3;
            const float dl = d * (float)(sc & 0xF);
            const float ml = dmin * (float)(sc >> 4);
            *dst++ = dl * (float)q - ml;
        }
    }
}

void lb_quantize_row_q2_K_ref(const float *src, void *dst, int64_t n) {
    block_q2_K *y = dst;
    const float q4scale = 15.0f;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        uint8_t L[QK_K], Laux[16];
        float weights[16], mins[QK_K / 16], scales[QK_K / 16];
        float max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < QK_K / 16; j++) {
            for (int l = 0; l < 16; l++) weights[l] = fabsf(src[16 * j + l]);
            scales[j] = make_qkx2_quants(16, 3, src + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f,
                                         15, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        // 4-bit sub-block scales and mins against two fp16 super-block scales.
        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < QK_K / 16; j++) y[i].scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
            y[i].d = lb_f32_to_fp16(max_scale / q4scale);
        } else {
            memset(y[i].scales, 0, sizeof y[i].scales);
            y[i].d = lb_f32_to_fp16(0.0f);
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < QK_K / 16; j++) y[i].scales[j] |= (uint8_t)(nearest_int(iscale * mins[j]) << 4);
            y[i].dmin = lb_f32_to_fp16(max_min / q4scale);
        } else {
            y[i].dmin = lb_f32_to_fp16(0.0f);
        }
        // Re-quantize against the scales as the decoder will see them.
        for (int j = 0; j < QK_K / 16; j++) {
            const float d = lb_fp16_to_f32(y[i].d) * (y[i].scales[j] & 0xF);
            if (!d) continue;
            const float dm = lb_fp16_to_f32(y[i].dmin) * (y[i].scales[j] >> 4);
            for (int l = 0; l < 16; l++) L[16 * j + l] = (uint8_t)iclamp(nearest_int((src[16 * j + l] + dm) / d), 0, 3);
        }
        pack_2bit(L, y[i].qs);
    }
}

float lb_vec_dot_q2_K_q8_K(int64_t n, const void *w, const void *a) {
    const block_q2_K *x = w;
    const block_q8_K *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int summs = 0; // sum of min code * activation sum, per sub-block
        int isum = 0;  // sum of scale code * integer dot, per sub-block
        for (int j = 0; j < QK_K / 16; j++) {
            summs += y[i].bsums[j] * (x[i].scales[j] >> 4);
            int dot = 0;
            for (int e = 16 * j; e < 16 * j + 16; e++) {
                const int q = (x[i].qs[(e / 128) * 32 + e % 32] >> (2 * ((e % 128) / 32))) & 3;
                dot += q * y[i].qs[e];
            }
            isum += (x[i].scales[j] & 0xF) * dot;
        }
        const float dall = y[i].d * lb_fp16_to_f32(x[i].d);
        const float dmin = y[i].d * lb_fp16_to_f32(x[i].dmin);
        sum += dall * (float)isum - dmin * (float)summs;
    }
    return sum;
}

// ---------------------------------------------------------------------------
// Q3_K

// Element e's code in [-4, 3]: 2 low bits from qs, and 4 subtracted unless
// its bit in hmask is set.
static inline int q3_K_code(const block_q3_K *b, int e) {
    const int low = (b->qs[(e / 128) * 32 + e % 32] >> (2 * ((e % 128) / 32))) & 3;
    const int high = (b->hmask[e % 32] >> (e / 32)) & 1;
    return low - (high ? 0 : 4);
}

void lb_dequantize_row_q3_K(const void *src, float *dst, int64_t n) {
    const block_q3_K *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d_all = lb_fp16_to_f32(x[i].d);
        int8_t scales[16];
        lb_q3_K_scales(x[i].scales, scales);
        for (int e = 0; e < QK_K; e++) {
            const float dl = d_all * (float)scales[e / 16];
            *dst++ = dl * (float)q3_K_code(&x[i], e);
        }
    }
}

void lb_quantize_row_q3_K_ref(const float *src, void *dst, int64_t n) {
    block_q3_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        int8_t L[QK_K];
        float scales[QK_K / 16];
        float max_scale = 0.0f, amax = 0.0f;
        for (int j = 0; j < QK_K / 16; j++) {
            scales[j] = make_q3_quants(16, 4, src + 16 * j, L + 16 * j, true);
            if (fabsf(scales[j]) > amax) {
                amax = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        // 6-bit signed sub-block scales: the extreme maps to -32, as above.
        memset(y[i].scales, 0, sizeof y[i].scales);
        if (max_scale) {
            const float iscale = -32.0f / max_scale;
            for (int j = 0; j < QK_K / 16; j++) {
                int l = iclamp((int8_t)nearest_int(iscale * scales[j]), -32, 31) + 32;
                if (j < 8) y[i].scales[j] = (uint8_t)(l & 0xF);
                else y[i].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
                y[i].scales[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            y[i].d = lb_f32_to_fp16(1 / iscale);
        } else {
            y[i].d = lb_f32_to_fp16(0.0f);
        }
        int8_t sc[16];
        lb_q3_K_scales(y[i].scales, sc);
        for (int j = 0; j < QK_K / 16; j++) {
            const float d = lb_fp16_to_f32(y[i].d) * sc[j];
            if (!d) continue;
            for (int l = 0; l < 16; l++) L[16 * j + l] = (int8_t)(iclamp(nearest_int(src[16 * j + l] / d), -4, 3) + 4);
        }
        // Codes 4..7 keep their third bit in hmask: element e at hmask[e % 32] bit e / 32.
        memset(y[i].hmask, 0, sizeof y[i].hmask);
        uint8_t low[QK_K];
        for (int e = 0; e < QK_K; e++) {
            if (L[e] > 3) y[i].hmask[e % 32] |= (uint8_t)(1 << (e / 32));
            low[e] = (uint8_t)(L[e] & 3);
        }
        pack_2bit(low, y[i].qs);
    }
}

float lb_vec_dot_q3_K_q8_K(int64_t n, const void *w, const void *a) {
    const block_q3_K *x = w;
    const block_q8_K *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int8_t scales[16];
        lb_q3_K_scales(x[i].scales, scales);
        int isum = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            int dot = 0;
            for (int e = 16 * j; e < 16 * j + 16; e++) dot += q3_K_code(&x[i], e) * y[i].qs[e];
            isum += scales[j] * dot;
        }
        sum += lb_fp16_to_f32(x[i].d) * y[i].d * (float)isum;
    }
    return sum;
}

// ---------------------------------------------------------------------------
// Q4_K and Q5_K share the scale search and the 6-bit scale packing.

// Fits 8 sub-blocks of 32 with codes in [0, nmax], writes the packed 6-bit
// scales and mins and the fp16 super-block scales into (scales, d, dmin), and
// the final codes (re-quantized with the decoded scales) into L.
static void quantize_k4_scales(const float *x, int nmax, float rmin, int nstep, uint8_t scales_out[K_SCALE_SIZE],
                               uint16_t *d_out, uint16_t *dmin_out, uint8_t L[QK_K]) {
    uint8_t Laux[32];
    float weights[32], mins[QK_K / 32], scales[QK_K / 32];
    float max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < QK_K / 32; j++) {
        // Weight each element by the sub-block's RMS plus its own magnitude:
        // large values matter more, but small ones are not ignored.
        float sum_x2 = 0.0f;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep,
                                     false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    memset(scales_out, 0, K_SCALE_SIZE);
    for (int j = 0; j < QK_K / 32; j++) {
        // Through uint8_t first, as ggml: nearest_int of a non-negative value.
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        put_scale_min_k4(j, ls < 63 ? ls : 63, lm < 63 ? lm : 63, scales_out);
    }
    *d_out = lb_f32_to_fp16(max_scale / 63.0f);
    *dmin_out = lb_f32_to_fp16(max_min / 63.0f);
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t sc, m;
        lb_get_scale_min_k4(j, scales_out, &sc, &m);
        const float d = lb_fp16_to_f32(*d_out) * sc;
        if (!d) continue;
        const float dm = lb_fp16_to_f32(*dmin_out) * m;
        for (int l = 0; l < 32; l++) L[32 * j + l] = (uint8_t)iclamp(nearest_int((x[32 * j + l] + dm) / d), 0, nmax);
    }
}

void lb_dequantize_row_q4_K(const void *src, float *dst, int64_t n) {
    const block_q4_K *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = lb_fp16_to_f32(x[i].d);
        const float dmin = lb_fp16_to_f32(x[i].dmin);
        for (int j = 0; j < QK_K / 32; j++) {
            uint8_t sc, m;
            lb_get_scale_min_k4(j, x[i].scales, &sc, &m);
            const float dl = d * sc, ml = dmin * m;
            const uint8_t *q = x[i].qs + 32 * (j / 2);
            const int shift = 4 * (j % 2); // even sub-blocks in low nibbles
            for (int l = 0; l < 32; l++) *dst++ = dl * (float)((q[l] >> shift) & 0xF) - ml;
        }
    }
}

void lb_quantize_row_q4_K_ref(const float *src, void *dst, int64_t n) {
    block_q4_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        uint8_t L[QK_K];
        quantize_k4_scales(src, 15, -1.0f, 20, y[i].scales, &y[i].d, &y[i].dmin, L);
        for (int c = 0; c < QK_K / 64; c++) {
            for (int l = 0; l < 32; l++) y[i].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
        }
    }
}

// Shared by q4_K and q5_K: sum over sub-blocks of min code * activation sum.
static int k4_min_sum(const uint8_t scales[K_SCALE_SIZE], const int16_t bsums[16]) {
    int summs = 0;
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t sc, m;
        lb_get_scale_min_k4(j, scales, &sc, &m);
        summs += m * (bsums[2 * j] + bsums[2 * j + 1]);
    }
    return summs;
}

float lb_vec_dot_q4_K_q8_K(int64_t n, const void *w, const void *a) {
    const block_q4_K *x = w;
    const block_q8_K *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int isum = 0;
        for (int j = 0; j < QK_K / 32; j++) {
            uint8_t sc, m;
            lb_get_scale_min_k4(j, x[i].scales, &sc, &m);
            const uint8_t *q = x[i].qs + 32 * (j / 2);
            const int shift = 4 * (j % 2);
            int dot = 0;
            for (int l = 0; l < 32; l++) dot += ((q[l] >> shift) & 0xF) * y[i].qs[32 * j + l];
            isum += sc * dot;
        }
        const int summs = k4_min_sum(x[i].scales, y[i].bsums);
        const float d = y[i].d * lb_fp16_to_f32(x[i].d);
        const float dmin = y[i].d * lb_fp16_to_f32(x[i].dmin);
        sum += d * (float)isum - dmin * (float)summs;
    }
    return sum;
}

// ---------------------------------------------------------------------------
// Q5_K

// Element 32*j + l (sub-block j): nibble as q4_K plus bit j of qh[l].
static inline int q5_K_code(const block_q5_K *b, int j, int l) {
    const int nibble = (b->qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0xF;
    return nibble | (((b->qh[l] >> j) & 1) << 4);
}

void lb_dequantize_row_q5_K(const void *src, float *dst, int64_t n) {
    const block_q5_K *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = lb_fp16_to_f32(x[i].d);
        const float dmin = lb_fp16_to_f32(x[i].dmin);
        for (int j = 0; j < QK_K / 32; j++) {
            uint8_t sc, m;
            lb_get_scale_min_k4(j, x[i].scales, &sc, &m);
            const float dl = d * sc, ml = dmin * m;
            for (int l = 0; l < 32; l++) *dst++ = dl * (float)q5_K_code(&x[i], j, l) - ml;
        }
    }
}

void lb_quantize_row_q5_K_ref(const float *src, void *dst, int64_t n) {
    block_q5_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        uint8_t L[QK_K];
        quantize_k4_scales(src, 31, -0.5f, 15, y[i].scales, &y[i].d, &y[i].dmin, L);
        memset(y[i].qh, 0, sizeof y[i].qh);
        for (int j = 0; j < QK_K / 32; j++) {
            for (int l = 0; l < 32; l++) {
                const int code = L[32 * j + l];
                if (code > 15) y[i].qh[l] |= (uint8_t)(1 << j);
                if (j % 2 == 0) y[i].qs[32 * (j / 2) + l] = (uint8_t)(code & 0xF);
                else y[i].qs[32 * (j / 2) + l] |= (uint8_t)((code & 0xF) << 4);
            }
        }
    }
}

float lb_vec_dot_q5_K_q8_K(int64_t n, const void *w, const void *a) {
    const block_q5_K *x = w;
    const block_q8_K *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int isum = 0;
        for (int j = 0; j < QK_K / 32; j++) {
            uint8_t sc, m;
            lb_get_scale_min_k4(j, x[i].scales, &sc, &m);
            int dot = 0;
            for (int l = 0; l < 32; l++) dot += q5_K_code(&x[i], j, l) * y[i].qs[32 * j + l];
            isum += sc * dot;
        }
        const int summs = k4_min_sum(x[i].scales, y[i].bsums);
        const float d = y[i].d * lb_fp16_to_f32(x[i].d);
        const float dmin = y[i].d * lb_fp16_to_f32(x[i].dmin);
        sum += d * (float)isum - dmin * (float)summs;
    }
    return sum;
}

// ---------------------------------------------------------------------------
// Q6_K

// Element e's code in [-32, 31] (layout at block_q6_K in blocks.h).
static inline int q6_K_code(const block_q6_K *b, int e) {
    const int half = e / 128, r = e % 128, l = r % 32, quarter = r / 32;
    const uint8_t ql = b->ql[64 * half + l + 32 * (quarter & 1)];
    const int low = (ql >> (4 * (quarter >> 1))) & 0xF;
    const int high = (b->qh[32 * half + l] >> (2 * quarter)) & 3;
    return (low | (high << 4)) - 32;
}

void lb_dequantize_row_q6_K(const void *src, float *dst, int64_t n) {
    const block_q6_K *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = lb_fp16_to_f32(x[i].d);
        // (d * scale) * code, in that order, as ggml.
        for (int e = 0; e < QK_K; e++) *dst++ = d * (float)x[i].scales[e / 16] * (float)q6_K_code(&x[i], e);
    }
}

void lb_quantize_row_q6_K_ref(const float *src, void *dst, int64_t n) {
    block_q6_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        int8_t L[QK_K];
        float scales[QK_K / 16];
        float max_scale = 0.0f, max_abs_scale = 0.0f;
        for (int j = 0; j < QK_K / 16; j++) {
            scales[j] = make_qx_quants(16, 32, src + 16 * j, L + 16 * j, 1);
            if (fabsf(scales[j]) > max_abs_scale) {
                max_abs_scale = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        // int8 sub-block scales; the extreme maps to -128.
        const float iscale = -128.0f / max_scale;
        y[i].d = lb_f32_to_fp16(1 / iscale);
        for (int j = 0; j < QK_K / 16; j++) y[i].scales[j] = (int8_t)imin(127, nearest_int(iscale * scales[j]));
        for (int j = 0; j < QK_K / 16; j++) {
            const float d = lb_fp16_to_f32(y[i].d) * y[i].scales[j];
            if (!d) continue;
            for (int l = 0; l < 16; l++) L[16 * j + l] = (int8_t)(iclamp(nearest_int(src[16 * j + l] / d), -32, 31) + 32);
        }
        for (int half = 0; half < 2; half++) {
            const int8_t *Lh = L + 128 * half;
            uint8_t *ql = y[i].ql + 64 * half, *qh = y[i].qh + 32 * half;
            for (int l = 0; l < 32; l++) {
                ql[l] = (uint8_t)((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
                ql[l + 32] = (uint8_t)((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
                qh[l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) |
                                  ((Lh[l + 96] >> 4) << 6));
            }
        }
    }
}

float lb_vec_dot_q6_K_q8_K(int64_t n, const void *w, const void *a) {
    const block_q6_K *x = w;
    const block_q8_K *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int isum = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            int dot = 0;
            for (int e = 16 * j; e < 16 * j + 16; e++) dot += q6_K_code(&x[i], e) * y[i].qs[e];
            isum += x[i].scales[j] * dot;
        }
        sum += lb_fp16_to_f32(x[i].d) * y[i].d * (float)isum;
    }
    return sum;
}

// ---------------------------------------------------------------------------
// Q8_K: x = d * q with a float d; the extreme maps to -127 (not -128, so
// SIMD dot products can negate any code without overflow).

void lb_dequantize_row_q8_K(const void *src, float *dst, int64_t n) {
    const block_q8_K *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        for (int j = 0; j < QK_K; j++) *dst++ = x[i].d * (float)x[i].qs[j];
    }
}

void lb_quantize_row_q8_K_ref(const float *src, void *dst, int64_t n) {
    block_q8_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float max = 0.0f, amax = 0.0f;
        for (int j = 0; j < QK_K; j++) {
            if (fabsf(src[j]) > amax) {
                amax = fabsf(src[j]);
                max = src[j];
            }
        }
        if (!amax) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) y[i].qs[j] = (int8_t)imin(127, nearest_int(iscale * src[j]));
        for (int j = 0; j < QK_K / 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += y[i].qs[16 * j + l];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}
