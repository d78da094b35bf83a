/*
 * quants_legacy.c — float types (F32, F16, BF16) and the 32-element block
 * types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1): dequantizers, reference
 * quantizers and scalar dot products.
 *
 * The quantizers reproduce ggml's quantize_row_*_ref bit for bit (including
 * its truncating casts), so a model quantized here is byte-identical to one
 * made by llama-quantize and by gguf-py (tests/test_dequant.py checks both).
 * The dequantizers do the same float operations in the same order as ggml,
 * so their outputs are bit-identical too.
 */
#include "quants.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "fp16.h"

// ---------------------------------------------------------------------------
// Float types

void lb_dequantize_row_f32(const void *src, float *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void lb_dequantize_row_f16(const void *src, float *dst, int64_t n) {
    const lb_fp16 *x = src;
    for (int64_t i = 0; i < n; i++) dst[i] = lb_fp16_to_f32(x[i]);
}

void lb_dequantize_row_bf16(const void *src, float *dst, int64_t n) {
    const lb_bf16 *x = src;
    for (int64_t i = 0; i < n; i++) dst[i] = lb_bf16_to_f32(x[i]);
}

void lb_quantize_row_f32_ref(const float *src, void *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void lb_quantize_row_f16_ref(const float *src, void *dst, int64_t n) {
    lb_fp16 *y = dst;
    for (int64_t i = 0; i < n; i++) y[i] = lb_f32_to_fp16(src[i]);
}

void lb_quantize_row_bf16_ref(const float *src, void *dst, int64_t n) {
    lb_bf16 *y = dst;
    for (int64_t i = 0; i < n; i++) y[i] = lb_f32_to_bf16(src[i]);
}

// The float dot products accumulate in float, one running sum, in element
// order: the simplest order to reason about; the AVX2 versions differ from it
// only by rounding.
float lb_vec_dot_f32_f32(int64_t n, const void *w, const void *a) {
    const float *x = w, *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += x[i] * y[i];
    return sum;
}

float lb_vec_dot_f16_f32(int64_t n, const void *w, const void *a) {
    const lb_fp16 *x = w;
    const float *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += lb_fp16_to_f32(x[i]) * y[i];
    return sum;
}

float lb_vec_dot_bf16_f32(int64_t n, const void *w, const void *a) {
    const lb_bf16 *x = w;
    const float *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += lb_bf16_to_f32(x[i]) * y[i];
    return sum;
}

// ---------------------------------------------------------------------------
// Block helpers

// The value of largest magnitude, with its sign: symmetric types map it to
// the most negative code (-8 or -16), which has no positive counterpart, so
// the extreme value keeps one more level of precision than amax would give.
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void min_max(const float *x, int n, float *min_out, float *max_out) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    *min_out = min;
    *max_out = max;
}

static uint32_t load_qh(const uint8_t qh[4]) {
    uint32_t bits;
    memcpy(&bits, qh, sizeof bits); // ggml stores it little-endian; so do all hosts we build for
    return bits;
}

// The 5-bit code of element j (0..31) of a q5 block: nibble plus bit j of qh.
static inline int q5_code(const uint8_t *qs, uint32_t qh, int j) {
    int nibble = j < 16 ? qs[j] & 0x0F : qs[j - 16] >> 4;
    return nibble | (int)(((qh >> j) & 1) << 4);
}

// ---------------------------------------------------------------------------
// Q4_0: x = d * (q - 8)

void lb_dequantize_row_q4_0(const void *src, float *dst, int64_t n) {
    const block_q4_0 *x = src;
    for (int64_t i = 0; i < n / QK4_0; i++, dst += QK4_0) {
        const float d = lb_fp16_to_f32(x[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            dst[j] = (float)((x[i].qs[j] & 0x0F) - 8) * d;
            dst[j + QK4_0 / 2] = (float)((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void lb_quantize_row_q4_0_ref(const float *src, void *dst, int64_t n) {
    block_q4_0 *y = dst;
    for (int64_t i = 0; i < n / QK4_0; i++, src += QK4_0) {
        const float d = signed_absmax(src, QK4_0) / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = lb_f32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            // ggml truncates x + 8.5 through int8_t: rounds half up, and the
            // extreme value lands on exactly 0.5 -> code 0.
            const int q0 = (int8_t)(src[j] * id + 8.5f);
            const int q1 = (int8_t)(src[j + QK4_0 / 2] * id + 8.5f);
            y[i].qs[j] = (uint8_t)((q0 < 15 ? q0 : 15) | ((q1 < 15 ? q1 : 15) << 4));
        }
    }
}

float lb_vec_dot_q4_0_q8_0(int64_t n, const void *w, const void *a) {
    const block_q4_0 *x = w;
    const block_q8_0 *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int sumi = 0;
        for (int j = 0; j < QK8_0 / 2; j++) {
            sumi += ((x[i].qs[j] & 0x0F) - 8) * y[i].qs[j];
            sumi += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + QK8_0 / 2];
        }
        sum += (float)sumi * (lb_fp16_to_f32(x[i].d) * lb_fp16_to_f32(y[i].d));
    }
    return sum;
}

// ---------------------------------------------------------------------------
// Q4_1: x = d * q + m

void lb_dequantize_row_q4_1(const void *src, float *dst, int64_t n) {
    const block_q4_1 *x = src;
    for (int64_t i = 0; i < n / QK4_1; i++, dst += QK4_1) {
        const float d = lb_fp16_to_f32(x[i].d);
        const float m = lb_fp16_to_f32(x[i].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            dst[j] = (float)(x[i].qs[j] & 0x0F) * d + m;
            dst[j + QK4_1 / 2] = (float)(x[i].qs[j] >> 4) * d + m;
        }
    }
}

void lb_quantize_row_q4_1_ref(const float *src, void *dst, int64_t n) {
    block_q4_1 *y = dst;
    for (int64_t i = 0; i < n / QK4_1; i++, src += QK4_1) {
        float min, max;
        min_max(src, QK4_1, &min, &max);
        const float d = (max - min) / 15;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = lb_f32_to_fp16(d);
        y[i].m = lb_f32_to_fp16(min);
        for (int j = 0; j < QK4_1 / 2; j++) {
            const int q0 = (int8_t)((src[j] - min) * id + 0.5f);
            const int q1 = (int8_t)((src[j + QK4_1 / 2] - min) * id + 0.5f);
            y[i].qs[j] = (uint8_t)((q0 < 15 ? q0 : 15) | ((q1 < 15 ? q1 : 15) << 4));
        }
    }
}

// The min term needs no per-element work: sum(m * a) = m * (d_a * sum(q_a)),
// and q8_1 carries d_a * sum(q_a) precomputed in s (rounded to fp16, as ggml).
float lb_vec_dot_q4_1_q8_1(int64_t n, const void *w, const void *a) {
    const block_q4_1 *x = w;
    const block_q8_1 *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        int sumi = 0;
        for (int j = 0; j < QK8_1 / 2; j++) {
            sumi += (x[i].qs[j] & 0x0F) * y[i].qs[j];
            sumi += (x[i].qs[j] >> 4) * y[i].qs[j + QK8_1 / 2];
        }
        sum += (lb_fp16_to_f32(x[i].d) * lb_fp16_to_f32(y[i].d)) * (float)sumi +
               lb_fp16_to_f32(x[i].m) * lb_fp16_to_f32(y[i].s);
    }
    return sum;
}

// ---------------------------------------------------------------------------
// Q5_0: x = d * (q - 16)

void lb_dequantize_row_q5_0(const void *src, float *dst, int64_t n) {
    const block_q5_0 *x = src;
    for (int64_t i = 0; i < n / QK5_0; i++, dst += QK5_0) {
        const float d = lb_fp16_to_f32(x[i].d);
        const uint32_t qh = load_qh(x[i].qh);
        for (int j = 0; j < QK5_0; j++) dst[j] = (float)(q5_code(x[i].qs, qh, j) - 16) * d;
    }
}

// Packs 32 five-bit codes: low nibbles into qs, bit 4 of code j into bit j of qh.
static void pack_q5(const int code[32], uint8_t qs[16], uint8_t qh_out[4]) {
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((code[j] & 0x0F) | ((code[j + 16] & 0x0F) << 4));
        qh |= (uint32_t)((code[j] >> 4) & 1) << j;
        qh |= (uint32_t)((code[j + 16] >> 4) & 1) << (j + 16);
    }
    memcpy(qh_out, &qh, sizeof qh);
}

void lb_quantize_row_q5_0_ref(const float *src, void *dst, int64_t n) {
    block_q5_0 *y = dst;
    for (int64_t i = 0; i < n / QK5_0; i++, src += QK5_0) {
        const float d = signed_absmax(src, QK5_0) / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = lb_f32_to_fp16(d);
        int code[QK5_0];
        for (int j = 0; j < QK5_0; j++) {
            const int q = (int8_t)(src[j] * id + 16.5f);
            code[j] = q < 31 ? q : 31;
        }
        pack_q5(code, y[i].qs, y[i].qh);
    }
}

float lb_vec_dot_q5_0_q8_0(int64_t n, const void *w, const void *a) {
    const block_q5_0 *x = w;
    const block_q8_0 *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const uint32_t qh = load_qh(x[i].qh);
        int sumi = 0;
        for (int j = 0; j < QK8_0; j++) sumi += (q5_code(x[i].qs, qh, j) - 16) * y[i].qs[j];
        sum += (lb_fp16_to_f32(x[i].d) * lb_fp16_to_f32(y[i].d)) * (float)sumi;
    }
    return sum;
}

// ---------------------------------------------------------------------------
// Q5_1: x = d * q + m

void lb_dequantize_row_q5_1(const void *src, float *dst, int64_t n) {
    const block_q5_1 *x = src;
    for (int64_t i = 0; i < n / QK5_1; i++, dst += QK5_1) {
        const float d = lb_fp16_to_f32(x[i].d);
        const float m = lb_fp16_to_f32(x[i].m);
        const uint32_t qh = load_qh(x[i].qh);
        for (int j = 0; j < QK5_1; j++) dst[j] = (float)q5_code(x[i].qs, qh, j) * d + m;
    }
}

void lb_quantize_row_q5_1_ref(const float *src, void *dst, int64_t n) {
    block_q5_1 *y = dst;
    for (int64_t i = 0; i < n / QK5_1; i++, src += QK5_1) {
        float min, max;
        min_max(src, QK5_1, &min, &max);
        const float d = (max - min) / 31;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = lb_f32_to_fp16(d);
        y[i].m = lb_f32_to_fp16(min);
        int code[QK5_1];
        // ggml does not clamp here: (max - min) * id + 0.5 stays below 32.
        for (int j = 0; j < QK5_1; j++) code[j] = (uint8_t)((src[j] - min) * id + 0.5f);
        pack_q5(code, y[i].qs, y[i].qh);
    }
}

float lb_vec_dot_q5_1_q8_1(int64_t n, const void *w, const void *a) {
    const block_q5_1 *x = w;
    const block_q8_1 *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        const uint32_t qh = load_qh(x[i].qh);
        int sumi = 0;
        for (int j = 0; j < QK8_1; j++) sumi += q5_code(x[i].qs, qh, j) * y[i].qs[j];
        sum += (lb_fp16_to_f32(x[i].d) * lb_fp16_to_f32(y[i].d)) * (float)sumi +
               lb_fp16_to_f32(x[i].m) * lb_fp16_to_f32(y[i].s);
    }
    return sum;
}

// ---------------------------------------------------------------------------
// Q8_0 and Q8_1: x = d * q, d = amax / 127, q rounded half away from zero

void lb_dequantize_row_q8_0(const void *src, float *dst, int64_t n) {
    const block_q8_0 *x = src;
    for (int64_t i = 0; i < n / QK8_0; i++, dst += QK8_0) {
        const float d = lb_fp16_to_f32(x[i].d);
        for (int j = 0; j < QK8_0; j++) dst[j] = (float)x[i].qs[j] * d;
    }
}

void lb_dequantize_row_q8_1(const void *src, float *dst, int64_t n) {
    const block_q8_1 *x = src;
    for (int64_t i = 0; i < n / QK8_1; i++, dst += QK8_1) {
        const float d = lb_fp16_to_f32(x[i].d);
        for (int j = 0; j < QK8_1; j++) dst[j] = (float)x[i].qs[j] * d;
    }
}

// Quantizes one block of 32 to int8; returns the float scale (before fp16).
static float quantize_block_q8(const float *x, int8_t qs[32]) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; j++) qs[j] = (int8_t)roundf(x[j] * id);
    return d;
}

void lb_quantize_row_q8_0_ref(const float *src, void *dst, int64_t n) {
    block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / QK8_0; i++, src += QK8_0) {
        y[i].d = lb_f32_to_fp16(quantize_block_q8(src, y[i].qs));
    }
}

void lb_quantize_row_q8_1_ref(const float *src, void *dst, int64_t n) {
    block_q8_1 *y = dst;
    for (int64_t i = 0; i < n / QK8_1; i++, src += QK8_1) {
        const float d = quantize_block_q8(src, y[i].qs);
        int sum = 0;
        for (int j = 0; j < QK8_1; j++) sum += y[i].qs[j];
        y[i].d = lb_f32_to_fp16(d);
        y[i].s = lb_f32_to_fp16((float)sum * d); // the unrounded d, as ggml
    }
}

float lb_vec_dot_q8_0_q8_0(int64_t n, const void *w, const void *a) {
    const block_q8_0 *x = w;
    const block_q8_0 *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int sumi = 0;
        for (int j = 0; j < QK8_0; j++) sumi += x[i].qs[j] * y[i].qs[j];
        sum += (float)sumi * (lb_fp16_to_f32(x[i].d) * lb_fp16_to_f32(y[i].d));
    }
    return sum;
}

// F16 rows times f32 rows, every pair (the gemm_f16 of the kernel table, types.h).
void lb_gemm_f16_ref(int64_t k, int nr, const void *w, size_t ws, int n, const float *x, size_t xs, float *y,
                     size_t ldy) {
    for (int t = 0; t < n; t++)
        for (int r = 0; r < nr; r++) {
            const lb_fp16 *wr = (const lb_fp16 *)((const char *)w + (size_t)r * ws);
            float sum = 0.0f;
            for (int64_t c = 0; c < k; c++) sum += lb_fp16_to_f32(wr[c]) * x[(size_t)t * xs + c];
            y[(size_t)t * ldy + r] = sum;
        }
}
