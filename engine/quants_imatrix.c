/*
 * quants_imatrix.c — the importance-weighted quantizers: llama.cpp's
 * quantize_row_*_impl paths, taken when llama-quantize is given an imatrix.
 *
 * An importance vector qw (one value per input column, the mean of x² over
 * calibration tokens, imatrix.h) says how much an error in each column of
 * a weight row costs at the matrix product's output. The searches below
 * fit every block minimising Σ w_i (x_i − scale·q_i)² with
 * w_i = qw_i · sqrt(σ² + x_i²) (σ² is the row's or the super-block's mean
 * square, so small weights still count), instead of the reference
 * quantizers' heuristics.
 *
 * Everything here follows ggml-quants.c step for step (same grids, same
 * float expressions in the same order, no fused multiply-adds), so the bytes
 * equal llama-quantize --imatrix's: tests/test_imatrix_llamacpp.py checks
 * every type. Q8_0 has no weighted path in ggml (the importance is ignored),
 * and neither do lowbit's own types.
 */
#include "imatrix.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "blocks.h"
#include "fp16.h"
#include "quants.h"

#define GROUP_MAX_EPS 1e-15f // as quants_k.c: below this a group counts as all zero

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int iclamp(int v, int lo, int hi) { return imax(lo, imin(hi, v)); }

// Round to nearest, ties to even (ggml's nearest_int; see quants_k.c).
static inline int nearest_int(float f) {
    float biased = f + 12582912.0f;
    int32_t bits;
    memcpy(&bits, &biased, sizeof bits);
    return (bits & 0x007fffff) - 0x00400000;
}

// ---------------------------------------------------------------------------
// Weighted scale searches (ggml's make_qx_quants with quant weights,
// make_qkx3_quants, make_qp_quants)

// Symmetric codes in [-nmax, nmax-1]: L[i] = code + nmax; returns the scale.
// Starts from the scale that maps the signed extreme to -nmax, then tries
// 18 scales around it, keeping the best weighted least-squares fit.
static float make_qx_quants_w(int n, int nmax, const float *x, int8_t *L, const float *w) {
    float max = 0.0f, amax = 0.0f;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -nmax / max;
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = iclamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        sumlx += w[i] * x[i] * l;
        suml2 += w[i] * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = iclamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            sumlx += w[i] * x[i] * l;
            suml2 += w[i] * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + iclamp(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// Asymmetric codes in [0, nmax], x ≈ scale·L − the_min: nstep+1 scales
// around nmax/(max − min), each with its weighted least-squares (scale, min),
// keeping the smallest weighted squared error. Returns the scale.
static float make_qkx3_quants(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max <= min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.0f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best = 0.0f;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)iclamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
        const float diff = scale * L[i] + min - x[i];
        best += w[i] * (diff * diff);
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = iclamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float err = 0.0f;
            for (int i = 0; i < n; i++) {
                const float diff = this_scale * Laux[i] + this_min - x[i];
                err += w[i] * (diff * diff);
            }
            if (err < best) {
                memcpy(L, Laux, (size_t)n);
                best = err;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

// Non-negative values (sub-block scales or mins) onto codes [0, nmax]: the
// scale mapping the largest to nmax and 8 around it by weighted squared
// error, then single codes moved while that improves the weighted fit (up to
// 5 passes). Returns the scale.
static float make_qp_quants(int n, int nmax, const float *x, uint8_t *L, const float *w) {
    float max = 0.0f;
    for (int i = 0; i < n; i++) max = max > x[i] ? max : x[i];
    if (max < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = nmax / max;
    for (int i = 0; i < n; i++) L[i] = (uint8_t)nearest_int(iscale * x[i]);
    const float scale = 1 / iscale;
    float best = 0.0f;
    for (int i = 0; i < n; i++) {
        const float diff = x[i] - scale * L[i];
        best += w[i] * diff * diff;
    }
    for (int is = -4; is <= 4; is++) {
        if (is == 0) continue;
        const float iscale_is = (0.1f * is + nmax) / max;
        const float scale_is = 1 / iscale_is;
        float mse = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = imin(nmax, nearest_int(iscale_is * x[i]));
            const float diff = x[i] - scale_is * l;
            mse += w[i] * diff * diff;
        }
        if (mse < best) {
            best = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = imin(nmax, nearest_int(iscale * x[i]));
        L[i] = (uint8_t)l;
        sumlx += w[i] * x[i] * l;
        suml2 += w[i] * l * l;
    }
    for (int pass = 0; pass < 5; pass++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            float slx = sumlx - w[i] * x[i] * L[i];
            float sl2 = suml2 - w[i] * L[i] * L[i];
            if (slx > 0 && sl2 > 0) {
                const int new_l = imin(nmax, nearest_int(x[i] * sl2 / slx));
                if (new_l != L[i]) {
                    slx += w[i] * x[i] * new_l;
                    sl2 += w[i] * new_l * new_l;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (uint8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// w_i = qw_i · sqrt(σ² + x_i²) for n values.
static void block_weights(const float *x, const float *qw, float sigma2, int n, float *w) {
    for (int i = 0; i < n; i++) w[i] = qw[i] * sqrtf(sigma2 + x[i] * x[i]);
}

static float mean_square(const float *x, int64_t n) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += x[i] * x[i];
    return sum / n;
}

// ---------------------------------------------------------------------------
// Legacy blocks: σ² is the mean square of the whole row.

static void pack_q5_bits(const uint8_t *L, uint8_t qs[16], uint8_t qh_out[4]) {
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((L[j] & 0x0F) | ((L[j + 16] & 0x0F) << 4));
        qh |= ((L[j] & 0x10u) >> 4) << j;
        qh |= ((L[j + 16] & 0x10u) >> 4) << (j + 16);
    }
    memcpy(qh_out, &qh, sizeof qh);
}

static void q4_0_imatrix(const float *x, void *dst, int64_t n, const float *qw) {
    block_q4_0 *y = dst;
    const float sigma2 = mean_square(x, n);
    float w[QK4_0];
    int8_t L[QK4_0];
    for (int64_t b = 0; b < n / QK4_0; b++) {
        const float *xb = x + QK4_0 * b;
        block_weights(xb, qw + QK4_0 * b, sigma2, QK4_0, w);
        y[b].d = lb_f32_to_fp16(make_qx_quants_w(QK4_0, 8, xb, L, w));
        for (int j = 0; j < 16; j++) y[b].qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
    }
}

static void q4_1_imatrix(const float *x, void *dst, int64_t n, const float *qw) {
    block_q4_1 *y = dst;
    const float sigma2 = mean_square(x, n);
    float w[QK4_1], min;
    uint8_t L[QK4_1], Laux[QK4_1];
    for (int64_t b = 0; b < n / QK4_1; b++) {
        const float *xb = x + QK4_1 * b;
        block_weights(xb, qw + QK4_1 * b, sigma2, QK4_1, w);
        const float d = make_qkx3_quants(QK4_1, 15, xb, w, L, &min, Laux, -0.9f, 0.05f, 36);
        y[b].d = lb_f32_to_fp16(d);
        y[b].m = lb_f32_to_fp16(-min);
        for (int j = 0; j < 16; j++) y[b].qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
    }
}

static void q5_0_imatrix(const float *x, void *dst, int64_t n, const float *qw) {
    block_q5_0 *y = dst;
    const float sigma2 = mean_square(x, n);
    float w[QK5_0];
    int8_t L[QK5_0];
    for (int64_t b = 0; b < n / QK5_0; b++) {
        const float *xb = x + QK5_0 * b;
        block_weights(xb, qw + QK5_0 * b, sigma2, QK5_0, w);
        y[b].d = lb_f32_to_fp16(make_qx_quants_w(QK5_0, 16, xb, L, w));
        pack_q5_bits((const uint8_t *)L, y[b].qs, y[b].qh);
    }
}

static void q5_1_imatrix(const float *x, void *dst, int64_t n, const float *qw) {
    block_q5_1 *y = dst;
    const float sigma2 = mean_square(x, n);
    float w[QK5_1], min;
    uint8_t L[QK5_1], Laux[QK5_1];
    for (int64_t b = 0; b < n / QK5_1; b++) {
        const float *xb = x + QK5_1 * b;
        block_weights(xb, qw + QK5_1 * b, sigma2, QK5_1, w);
        const float d = make_qkx3_quants(QK5_1, 31, xb, w, L, &min, Laux, -0.9f, 0.05f, 36);
        y[b].d = lb_f32_to_fp16(d);
        y[b].m = lb_f32_to_fp16(-min);
        pack_q5_bits(L, y[b].qs, y[b].qh);
    }
}

// ---------------------------------------------------------------------------
// k-quants: σ² is per super-block (Q2_K: mean square; Q3_K-Q5_K: twice it).

// Codes of 256 elements, 2 bits each: per 128-element half, byte l holds
// elements l, l+32, l+64, l+96.
static void pack_2bit(const uint8_t *L, uint8_t qs[QK_K / 4]) {
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

static void q2_K_imatrix(const float *x, void *dst, int64_t n, const float *qw) {
    block_q2_K *y = dst;
    uint8_t L[QK_K], Laux[16], Ls[QK_K / 16], Lm[QK_K / 16];
    float mins[QK_K / 16], scales[QK_K / 16], sw[QK_K / 16], w[16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, qw += QK_K) {
        const float sigma2 = mean_square(x, QK_K);
        for (int j = 0; j < QK_K / 16; j++) {
            block_weights(x + 16 * j, qw + 16 * j, sigma2, 16, w);
            sw[j] = 0;
            for (int l = 0; l < 16; l++) sw[j] += w[l];
            scales[j] = make_qkx3_quants(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.9f, 0.05f, 36);
        }
        const float dm = make_qp_quants(QK_K / 16, 15, scales, Ls, sw);
        const float mm = make_qp_quants(QK_K / 16, 15, mins, Lm, sw);
        y[i].d = lb_f32_to_fp16(dm);
        y[i].dmin = lb_f32_to_fp16(mm);
        for (int j = 0; j < QK_K / 16; j++) y[i].scales[j] = (uint8_t)(Ls[j] | (Lm[j] << 4));
        // Re-quantize against the scales as the decoder will see them.
        const float d_all = lb_fp16_to_f32(y[i].d), m_all = lb_fp16_to_f32(y[i].dmin);
        for (int j = 0; j < QK_K / 16; j++) {
            const float d = d_all * (y[i].scales[j] & 0xF);
            if (!d) continue;
            const float m = m_all * (y[i].scales[j] >> 4);
            for (int l = 0; l < 16; l++) L[16 * j + l] = (uint8_t)iclamp(nearest_int((x[16 * j + l] + m) / d), 0, 3);
        }
        pack_2bit(L, y[i].qs);
    }
}

static void q3_K_imatrix(const float *x, void *dst, int64_t n, const float *qw) {
    block_q3_K *y = dst;
    int8_t L[QK_K], Ls[QK_K / 16];
    float scales[QK_K / 16], sw[QK_K / 16], w[16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, qw += QK_K) {
        const float sigma2 = 2 * mean_square(x, QK_K);
        for (int j = 0; j < QK_K / 16; j++) {
            block_weights(x + 16 * j, qw + 16 * j, sigma2, 16, w);
            sw[j] = 0;
            for (int l = 0; l < 16; l++) sw[j] += w[l];
            scales[j] = make_qx_quants_w(16, 4, x + 16 * j, L + 16 * j, w);
        }
        // 6-bit signed sub-block scales, themselves fit by the weighted search.
        memset(y[i].scales, 0, sizeof y[i].scales);
        const float d_block = make_qx_quants_w(QK_K / 16, 32, scales, Ls, sw);
        for (int j = 0; j < QK_K / 16; j++) {
            const int l = Ls[j];
            if (j < 8) y[i].scales[j] = (uint8_t)(l & 0xF);
            else y[i].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
            y[i].scales[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
        }
        y[i].d = lb_f32_to_fp16(d_block);
        int8_t sc[16];
        lb_q3_K_scales(y[i].scales, sc);
        for (int j = 0; j < QK_K / 16; j++) {
            const float d = lb_fp16_to_f32(y[i].d) * sc[j];
            if (!d) continue;
            for (int l = 0; l < 16; l++) L[16 * j + l] = (int8_t)(iclamp(nearest_int(x[16 * j + l] / d), -4, 3) + 4);
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

// Packs the 6-bit scale and min of sub-block j of a q4_K / q5_K block (the
// inverse of lb_get_scale_min_k4). scales[] must start zeroed for j >= 4.
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

// Q4_K and Q5_K: fit 8 sub-blocks of 32 with codes in [0, nmax], then their
// scales and mins onto 6 bits with make_qp_quants weighted by each
// sub-block's total weight; L gets the codes re-quantized with the decoded
// scales.
static void k4_imatrix_scales(const float *x, const float *qw, int nmax, uint8_t scales_out[K_SCALE_SIZE],
                              uint16_t *d_out, uint16_t *dmin_out, uint8_t L[QK_K]) {
    uint8_t Laux[32], Ls[QK_K / 32], Lm[QK_K / 32];
    float w[32], sw[QK_K / 32], mins[QK_K / 32], scales[QK_K / 32];
    const float sigma2 = 2 * mean_square(x, QK_K);
    for (int j = 0; j < QK_K / 32; j++) {
        block_weights(x + 32 * j, qw + 32 * j, sigma2, 32, w);
        sw[j] = 0;
        for (int l = 0; l < 32; l++) sw[j] += w[l];
        scales[j] = make_qkx3_quants(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f, 36);
    }
    const float d_block = make_qp_quants(QK_K / 32, 63, scales, Ls, sw);
    const float m_block = make_qp_quants(QK_K / 32, 63, mins, Lm, sw);
    memset(scales_out, 0, K_SCALE_SIZE);
    for (int j = 0; j < QK_K / 32; j++) put_scale_min_k4(j, Ls[j] < 63 ? Ls[j] : 63, Lm[j] < 63 ? Lm[j] : 63, scales_out);
    *d_out = lb_f32_to_fp16(d_block);
    *dmin_out = lb_f32_to_fp16(m_block);
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t sc, m;
        lb_get_scale_min_k4(j, scales_out, &sc, &m);
        const float d = lb_fp16_to_f32(*d_out) * sc;
        if (!d) continue;
        const float dm = lb_fp16_to_f32(*dmin_out) * m;
        for (int l = 0; l < 32; l++) L[32 * j + l] = (uint8_t)iclamp(nearest_int((x[32 * j + l] + dm) / d), 0, nmax);
    }
}

static void q4_K_imatrix(const float *x, void *dst, int64_t n, const float *qw) {
    block_q4_K *y = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, qw += QK_K) {
        k4_imatrix_scales(x, qw, 15, y[i].scales, &y[i].d, &y[i].dmin, L);
        for (int c = 0; c < QK_K / 64; c++)
            for (int l = 0; l < 32; l++) y[i].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
}

static void q5_K_imatrix(const float *x, void *dst, int64_t n, const float *qw) {
    block_q5_K *y = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, qw += QK_K) {
        k4_imatrix_scales(x, qw, 31, y[i].scales, &y[i].d, &y[i].dmin, L);
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

// Q6_K passes the importance itself as the weight (no σ² term), as ggml.
static void q6_K_imatrix(const float *x, void *dst, int64_t n, const float *qw) {
    block_q6_K *y = dst;
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, qw += QK_K) {
        float max_scale = 0.0f, max_abs_scale = 0.0f;
        for (int j = 0; j < QK_K / 16; j++) {
            scales[j] = make_qx_quants_w(16, 32, x + 16 * j, L + 16 * j, qw + 16 * j);
            if (fabsf(scales[j]) > max_abs_scale) {
                max_abs_scale = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -128.0f / max_scale;
        y[i].d = lb_f32_to_fp16(1 / iscale);
        for (int j = 0; j < QK_K / 16; j++) y[i].scales[j] = (int8_t)imin(127, nearest_int(iscale * scales[j]));
        for (int j = 0; j < QK_K / 16; j++) {
            const float d = lb_fp16_to_f32(y[i].d) * y[i].scales[j];
            if (!d) continue;
            for (int l = 0; l < 16; l++) L[16 * j + l] = (int8_t)(iclamp(nearest_int(x[16 * j + l] / d), -32, 31) + 32);
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

// ---------------------------------------------------------------------------
// The table

static const lb_quantize_imatrix_fn imatrix_quantizers[LB_TYPE_COUNT] = {
    [LB_TYPE_Q4_0] = q4_0_imatrix, [LB_TYPE_Q4_1] = q4_1_imatrix,
    [LB_TYPE_Q5_0] = q5_0_imatrix, [LB_TYPE_Q5_1] = q5_1_imatrix,
    [LB_TYPE_Q2_K] = q2_K_imatrix, [LB_TYPE_Q3_K] = q3_K_imatrix, [LB_TYPE_Q4_K] = q4_K_imatrix,
    [LB_TYPE_Q5_K] = q5_K_imatrix, [LB_TYPE_Q6_K] = q6_K_imatrix,
};

lb_quantize_imatrix_fn lb_imatrix_quantizer(lb_type t) {
    return (unsigned)t < LB_TYPE_COUNT ? imatrix_quantizers[t] : NULL;
}
