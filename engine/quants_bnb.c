/*
 * quants_bnb.c — lowbit's own types NF4 and FP4 (ids 128, 129): the 4-bit
 * blockwise formats of bitsandbytes (QLoRA), with its block size of 64 and
 * absmax scaling. Dequantizers, reference quantizers and scalar dot products
 * against f32 activations.
 *
 * Both types share one block (block_bnb4 in blocks.h) and differ only in the
 * 16-entry code table: x = table[q] * absmax.
 *
 * Encoding a block, as bitsandbytes does it (bnb @95f9af30,
 * backends/default/ops.py l.226-256):
 *   1. absmax = max |x| over the 64 elements; stored as fp16. We divide by the
 *      fp16-rounded absmax (the one decoding multiplies by), where bnb keeps
 *      fp32; the ratio is clamped to [-1, 1] so a rounded-down absmax cannot
 *      push the largest element past the table's end.
 *   2. q = the code nearest to x / absmax, found as torch.bucketize(x,
 *      midpoints) does on the sorted codes: the index is the number of
 *      midpoints strictly below x, so a value exactly on a midpoint takes
 *      the lower code (bnb's CUDA kernels, dQuantizeNF4/FP4, compare with
 *      `>` too). Midpoints are (a + b) / 2 in float, as torch computes them.
 *   3. Element 2i goes to the high nibble of qs[i], element 2i+1 to the low.
 * An all-zero block has absmax 0: every ratio is taken as 0 (code for 0.0)
 * and decodes to exact zeros.
 *
 * bitsandbytes' double quantization of the absmax values is not carried:
 * the fp16 absmax costs 0.25 bits per weight (4.25 bpw in all).
 */
#include "quants.h"

#include <math.h>

#include "fp16.h"

// bitsandbytes functional.py l.789-804, get_4bit_type("nf4"): the NormalFloat
// levels, quantiles of N(0, 1) scaled to [-1, 1]; 7 negative and 8 positive
// non-zero levels plus an exact 0. Sorted ascending, so the code is the index.
const float lb_nf4_table[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
};

// bitsandbytes functional.py l.806-823, get_4bit_type("fp4"): E2M1 without
// inf/nan, in bit-pattern order (bit 3 the sign), divided in float by its
// absmax, 12 (l.854-855). Code 8 is -0; the encoder never writes it.
const float lb_fp4_table[16] = {
    0.0f, 0.0625f / 12, 8.0f / 12, 12.0f / 12, 4.0f / 12, 6.0f / 12, 2.0f / 12, 3.0f / 12,
    -0.0f, -0.0625f / 12, -8.0f / 12, -12.0f / 12, -4.0f / 12, -6.0f / 12, -2.0f / 12, -3.0f / 12,
};

// The codes of a table in ascending order of value, and the 14 or 15
// midpoints between neighbours: what bucketize searches.
struct code_search {
    int n;             // distinct values (16 for NF4, 15 for FP4: -0 is left out)
    uint8_t code[16];  // code of the k-th smallest value
    float mid[15];     // mid[k] = (value k + value k+1) / 2
};

static const struct code_search nf4_search = {
    .n = 16,
    .code = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    .mid = {
        (-1.0f + -0.6961928009986877f) / 2, (-0.6961928009986877f + -0.5250730514526367f) / 2,
        (-0.5250730514526367f + -0.39491748809814453f) / 2, (-0.39491748809814453f + -0.28444138169288635f) / 2,
        (-0.28444138169288635f + -0.18477343022823334f) / 2, (-0.18477343022823334f + -0.09105003625154495f) / 2,
        (-0.09105003625154495f + 0.0f) / 2, (0.0f + 0.07958029955625534f) / 2,
        (0.07958029955625534f + 0.16093020141124725f) / 2, (0.16093020141124725f + 0.24611230194568634f) / 2,
        (0.24611230194568634f + 0.33791524171829224f) / 2, (0.33791524171829224f + 0.44070982933044434f) / 2,
        (0.44070982933044434f + 0.5626170039176941f) / 2, (0.5626170039176941f + 0.7229568362236023f) / 2,
        (0.7229568362236023f + 1.0f) / 2,
    },
};

// FP4 sorted: -12 -8 -6 -4 -3 -2 -0.0625 0 0.0625 2 3 4 6 8 12 (all / 12).
static const struct code_search fp4_search = {
    .n = 15,
    .code = {11, 10, 13, 12, 15, 14, 9, 0, 1, 6, 7, 4, 5, 2, 3},
    .mid = {
        (-12.0f / 12 + -8.0f / 12) / 2, (-8.0f / 12 + -6.0f / 12) / 2, (-6.0f / 12 + -4.0f / 12) / 2,
        (-4.0f / 12 + -3.0f / 12) / 2, (-3.0f / 12 + -2.0f / 12) / 2, (-2.0f / 12 + -0.0625f / 12) / 2,
        (-0.0625f / 12 + 0.0f) / 2, (0.0f + 0.0625f / 12) / 2, (0.0625f / 12 + 2.0f / 12) / 2,
        (2.0f / 12 + 3.0f / 12) / 2, (3.0f / 12 + 4.0f / 12) / 2, (4.0f / 12 + 6.0f / 12) / 2,
        (6.0f / 12 + 8.0f / 12) / 2, (8.0f / 12 + 12.0f / 12) / 2,
    },
};

// The code nearest to r (in [-1, 1]): the number of midpoints strictly below
// r picks the sorted slot, so a tie goes to the lower value.
static inline int nearest_code(const struct code_search *s, float r) {
    int k = 0;
    for (int m = 0; m < s->n - 1; m++) k += s->mid[m] < r;
    return s->code[k];
}

static void dequantize_bnb4(const float table[16], const void *src, float *dst, int64_t n) {
    const block_bnb4 *x = src;
    for (int64_t i = 0; i < n / QK_BNB4; i++, dst += QK_BNB4) {
        const float d = lb_fp16_to_f32(x[i].absmax);
        for (int j = 0; j < QK_BNB4 / 2; j++) {
            dst[2 * j] = table[x[i].qs[j] >> 4] * d;
            dst[2 * j + 1] = table[x[i].qs[j] & 0x0F] * d;
        }
    }
}

static void quantize_bnb4(const struct code_search *s, const float *src, void *dst, int64_t n) {
    block_bnb4 *y = dst;
    for (int64_t i = 0; i < n / QK_BNB4; i++, src += QK_BNB4) {
        float amax = 0.0f;
        for (int j = 0; j < QK_BNB4; j++) amax = fmaxf(amax, fabsf(src[j]));
        y[i].absmax = lb_f32_to_fp16(amax);
        const float d = lb_fp16_to_f32(y[i].absmax);
        for (int j = 0; j < QK_BNB4 / 2; j++) {
            float r0 = d > 0 ? src[2 * j] / d : 0.0f, r1 = d > 0 ? src[2 * j + 1] / d : 0.0f;
            r0 = fminf(1.0f, fmaxf(-1.0f, r0));
            r1 = fminf(1.0f, fmaxf(-1.0f, r1));
            y[i].qs[j] = (uint8_t)(nearest_code(s, r0) << 4 | nearest_code(s, r1));
        }
    }
}

// One float running sum per block, scaled by the block's absmax once.
static float vec_dot_bnb4_f32(const float table[16], int64_t n, const void *w, const void *a) {
    const block_bnb4 *x = w;
    const float *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_BNB4; i++, y += QK_BNB4) {
        float block = 0.0f;
        for (int j = 0; j < QK_BNB4 / 2; j++)
            block += table[x[i].qs[j] >> 4] * y[2 * j] + table[x[i].qs[j] & 0x0F] * y[2 * j + 1];
        sum += block * lb_fp16_to_f32(x[i].absmax);
    }
    return sum;
}

void lb_dequantize_row_nf4(const void *src, float *dst, int64_t n) { dequantize_bnb4(lb_nf4_table, src, dst, n); }
void lb_dequantize_row_fp4(const void *src, float *dst, int64_t n) { dequantize_bnb4(lb_fp4_table, src, dst, n); }

void lb_quantize_row_nf4_ref(const float *src, void *dst, int64_t n) { quantize_bnb4(&nf4_search, src, dst, n); }
void lb_quantize_row_fp4_ref(const float *src, void *dst, int64_t n) { quantize_bnb4(&fp4_search, src, dst, n); }

float lb_vec_dot_nf4_f32(int64_t n, const void *w, const void *a) { return vec_dot_bnb4_f32(lb_nf4_table, n, w, a); }
float lb_vec_dot_fp4_f32(int64_t n, const void *w, const void *a) { return vec_dot_bnb4_f32(lb_fp4_table, n, w, a); }
