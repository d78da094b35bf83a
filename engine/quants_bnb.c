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
 * NF4 and FP4 keep an fp16 absmax per block: 0.25 bits per weight (4.25 bpw
 * in all). NF4_DQ (id 163) is NF4 with bitsandbytes' double quantization,
 * at the end of this file.
 */
#include "quants.h"

#include <math.h>
#include <string.h>

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

// ---------------------------------------------------------------------------
// NF4 with double quantization (NF4_DQ, bitsandbytes' compress_statistics /
// bnb_4bit_use_double_quant; bnb functional.py quantize_4bit): the block
// absmax values are themselves quantized to 8 bits. bitsandbytes subtracts
// their mean (the offset), then quantizes them blockwise, 256 to a block
// with an fp32 absmax, onto its 8-bit dynamic map; decoding adds the offset
// back. Layout in blocks.h (lb_row_header_dq, block_nf4_dq).
//
// Deviations from bitsandbytes, both forced or invited by rows being
// self-contained in lowbit (a matrix is read and requantized row by row):
//   - the second-level block is the row, not a run of 256 absmax values of
//     the flattened tensor, and the offset is the row's mean, not the
//     tensor's: one float offset and one float scale per row (a 4096-wide
//     row has 64 absmax values: 8 bytes per 4096 weights, 0.016 bpw). So
//     that no second-level block holds more than bitsandbytes' 256 absmax
//     values, rows wider than 256 × 64 = 16384 weights fall back to NF4
//     (quantize.c, fallback_type: the same codes, the absmax in fp16) rather
//     than being given one offset and scale for more; splitting them would
//     change the row layout that the kernels read. lb_quant_check_row refuses
//     such a row should any other path ask for it.
//   - the 4-bit codes are chosen against the absmax as decoded (double
//     quantized), as the NF4 type does with its fp16-rounded absmax; bnb
//     picks them against the exact absmax and decodes with the approximate
//     one. A block whose decoded absmax is <= 0 (possible only for blocks
//     far smaller than the row's largest) is written as zeros.

// bnb functional.py create_dynamic_map(signed=True, max_exponent_bits=7,
// total_bits=8), sorted: for i = 0..6 the 2^i midpoints of
// linspace(0.1, 1, 2^i + 1), times ±10^(i−6); then 0 and 1. Computed from
// that formula in double and rounded to float; bnb evaluates it in float32
// torch arithmetic, so an entry may differ from its table in the last bit.
const float lb_bnb_dynamic_map[256] = {
    -0.992968738f, -0.978906274f, -0.96484375f, -0.950781226f, -0.936718762f, -0.922656238f,
    -0.908593774f, -0.89453125f, -0.880468726f, -0.866406262f, -0.852343738f, -0.838281274f,
    -0.82421875f, -0.810156226f, -0.796093762f, -0.782031238f, -0.767968774f, -0.75390625f,
    -0.739843726f, -0.725781262f, -0.711718738f, -0.697656274f, -0.68359375f, -0.669531226f,
    -0.655468762f, -0.641406238f, -0.627343774f, -0.61328125f, -0.599218726f, -0.585156262f,
    -0.571093738f, -0.557031274f, -0.54296875f, -0.528906226f, -0.514843762f, -0.500781238f,
    -0.486718744f, -0.47265625f, -0.458593756f, -0.444531262f, -0.430468738f, -0.416406244f,
    -0.40234375f, -0.388281256f, -0.374218762f, -0.360156238f, -0.346093744f, -0.33203125f,
    -0.317968756f, -0.303906262f, -0.289843738f, -0.275781244f, -0.26171875f, -0.247656256f,
    -0.233593747f, -0.219531253f, -0.205468744f, -0.19140625f, -0.177343756f, -0.163281247f,
    -0.149218753f, -0.135156244f, -0.12109375f, -0.107031249f, -0.0985937491f, -0.0957812518f,
    -0.092968747f, -0.0901562497f, -0.0873437524f, -0.0845312476f, -0.0817187503f, -0.078906253f,
    -0.0760937482f, -0.0732812509f, -0.0704687536f, -0.0676562488f, -0.0648437515f, -0.0620312504f,
    -0.0592187494f, -0.0564062484f, -0.053593751f, -0.05078125f, -0.047968749f, -0.0451562516f,
    -0.0423437506f, -0.0395312496f, -0.0367187485f, -0.0339062512f, -0.0310937501f, -0.0282812491f,
    -0.0254687499f, -0.0226562507f, -0.0198437497f, -0.0170312505f, -0.0142187504f, -0.0114062503f,
    -0.00971874967f, -0.00915625039f, -0.00859375019f, -0.00803124998f, -0.00746874977f, -0.00690625003f,
    -0.00634374982f, -0.00578125007f, -0.00521874987f, -0.00465625012f, -0.00409374991f, -0.00353124994f,
    -0.00296874996f, -0.00240624999f, -0.00184375001f, -0.00128125004f, -0.000943750027f, -0.000831249985f,
    -0.000718750001f, -0.000606250018f, -0.000493749976f, -0.000381249993f, -0.000268750009f, -0.000156249997f,
    -8.87499991e-05f, -6.62500024e-05f, -4.37499984e-05f, -2.12499999e-05f, -7.7499999e-06f, -3.24999996e-06f,
    -5.49999982e-07f, 0.0f, 5.49999982e-07f, 3.24999996e-06f, 7.7499999e-06f, 2.12499999e-05f,
    4.37499984e-05f, 6.62500024e-05f, 8.87499991e-05f, 0.000156249997f, 0.000268750009f, 0.000381249993f,
    0.000493749976f, 0.000606250018f, 0.000718750001f, 0.000831249985f, 0.000943750027f, 0.00128125004f,
    0.00184375001f, 0.00240624999f, 0.00296874996f, 0.00353124994f, 0.00409374991f, 0.00465625012f,
    0.00521874987f, 0.00578125007f, 0.00634374982f, 0.00690625003f, 0.00746874977f, 0.00803124998f,
    0.00859375019f, 0.00915625039f, 0.00971874967f, 0.0114062503f, 0.0142187504f, 0.0170312505f,
    0.0198437497f, 0.0226562507f, 0.0254687499f, 0.0282812491f, 0.0310937501f, 0.0339062512f,
    0.0367187485f, 0.0395312496f, 0.0423437506f, 0.0451562516f, 0.047968749f, 0.05078125f,
    0.053593751f, 0.0564062484f, 0.0592187494f, 0.0620312504f, 0.0648437515f, 0.0676562488f,
    0.0704687536f, 0.0732812509f, 0.0760937482f, 0.078906253f, 0.0817187503f, 0.0845312476f,
    0.0873437524f, 0.0901562497f, 0.092968747f, 0.0957812518f, 0.0985937491f, 0.107031249f,
    0.12109375f, 0.135156244f, 0.149218753f, 0.163281247f, 0.177343756f, 0.19140625f,
    0.205468744f, 0.219531253f, 0.233593747f, 0.247656256f, 0.26171875f, 0.275781244f,
    0.289843738f, 0.303906262f, 0.317968756f, 0.33203125f, 0.346093744f, 0.360156238f,
    0.374218762f, 0.388281256f, 0.40234375f, 0.416406244f, 0.430468738f, 0.444531262f,
    0.458593756f, 0.47265625f, 0.486718744f, 0.500781238f, 0.514843762f, 0.528906226f,
    0.54296875f, 0.557031274f, 0.571093738f, 0.585156262f, 0.599218726f, 0.61328125f,
    0.627343774f, 0.641406238f, 0.655468762f, 0.669531226f, 0.68359375f, 0.697656274f,
    0.711718738f, 0.725781262f, 0.739843726f, 0.75390625f, 0.767968774f, 0.782031238f,
    0.796093762f, 0.810156226f, 0.82421875f, 0.838281274f, 0.852343738f, 0.866406262f,
    0.880468726f, 0.89453125f, 0.908593774f, 0.922656238f, 0.936718762f, 0.950781226f,
    0.96484375f, 0.978906274f, 0.992968738f, 1.0f,
};

// The map code nearest to r (ties to the lower value, as NF4's bucketize).
static int dynamic_code(float r) {
    int lo = 0, hi = 255; // map[lo] <= r <= map[hi] once clamped
    if (r <= lb_bnb_dynamic_map[0]) return 0;
    if (r >= lb_bnb_dynamic_map[255]) return 255;
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (lb_bnb_dynamic_map[mid] <= r) lo = mid;
        else hi = mid;
    }
    return r - lb_bnb_dynamic_map[lo] <= lb_bnb_dynamic_map[hi] - r ? lo : hi;
}

static inline float dq_absmax(const lb_row_header_dq *h, uint8_t code) {
    return lb_bnb_dynamic_map[code] * h->scale + h->offset;
}

void lb_quantize_row_nf4_dq_ref(const float *src, void *dst, int64_t n) {
    const int64_t nb = n / QK_BNB4;
    lb_row_header_dq h = {0.0f, 0.0f};
    double mean = 0;
    for (int64_t i = 0; i < nb; i++) {
        float amax = 0.0f;
        for (int j = 0; j < QK_BNB4; j++) amax = fmaxf(amax, fabsf(src[i * QK_BNB4 + j]));
        mean += amax;
    }
    h.offset = nb ? (float)(mean / (double)nb) : 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        float amax = 0.0f;
        for (int j = 0; j < QK_BNB4; j++) amax = fmaxf(amax, fabsf(src[i * QK_BNB4 + j]));
        h.scale = fmaxf(h.scale, fabsf(amax - h.offset));
    }
    memcpy(dst, &h, sizeof h);
    block_nf4_dq *y = (block_nf4_dq *)((char *)dst + sizeof h);
    for (int64_t i = 0; i < nb; i++, src += QK_BNB4) {
        float amax = 0.0f;
        for (int j = 0; j < QK_BNB4; j++) amax = fmaxf(amax, fabsf(src[j]));
        y[i].absmax = (uint8_t)(h.scale > 0 ? dynamic_code((amax - h.offset) / h.scale) : dynamic_code(0.0f));
        const float d = dq_absmax(&h, y[i].absmax);
        for (int j = 0; j < QK_BNB4 / 2; j++) {
            float r0 = d > 0 ? src[2 * j] / d : 0.0f, r1 = d > 0 ? src[2 * j + 1] / d : 0.0f;
            r0 = fminf(1.0f, fmaxf(-1.0f, r0));
            r1 = fminf(1.0f, fmaxf(-1.0f, r1));
            y[i].qs[j] = (uint8_t)(nearest_code(&nf4_search, r0) << 4 | nearest_code(&nf4_search, r1));
        }
    }
}

void lb_dequantize_row_nf4_dq(const void *src, float *dst, int64_t n) {
    lb_row_header_dq h;
    memcpy(&h, src, sizeof h);
    const block_nf4_dq *x = (const block_nf4_dq *)((const char *)src + sizeof h);
    for (int64_t i = 0; i < n / QK_BNB4; i++, dst += QK_BNB4) {
        const float d = dq_absmax(&h, x[i].absmax);
        for (int j = 0; j < QK_BNB4 / 2; j++) {
            dst[2 * j] = lb_nf4_table[x[i].qs[j] >> 4] * d;
            dst[2 * j + 1] = lb_nf4_table[x[i].qs[j] & 0x0F] * d;
        }
    }
}

float lb_vec_dot_nf4_dq_f32(int64_t n, const void *w, const void *a) {
    lb_row_header_dq h;
    memcpy(&h, w, sizeof h);
    const block_nf4_dq *x = (const block_nf4_dq *)((const char *)w + sizeof h);
    const float *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_BNB4; i++, y += QK_BNB4) {
        float block = 0.0f;
        for (int j = 0; j < QK_BNB4 / 2; j++)
            block += lb_nf4_table[x[i].qs[j] >> 4] * y[2 * j] + lb_nf4_table[x[i].qs[j] & 0x0F] * y[2 * j + 1];
        sum += block * dq_absmax(&h, x[i].absmax);
    }
    return sum;
}
