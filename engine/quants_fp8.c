/*
 * quants_fp8.c — FP8 weights with a per-row (output channel) float scale:
 * FP8_E4M3 (id 161) and FP8_E5M2 (id 162). x = d · fp8(code), d = max|x| /
 * (largest finite code), so each row's largest element lands on the largest
 * code. Layout in blocks.h; activations stay f32 (the codes go through a
 * conversion, not integer arithmetic).
 *
 * The two OCP 8-bit formats (as ml_dtypes float8_e4m3fn / float8_e5m2):
 *   E4M3 "fn": 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities;
 *              S.1111.111 is NaN; largest 448; subnormals m · 2^−9.
 *   E5M2:      1 sign, 5 exponent (bias 15), 2 mantissa bits; IEEE-like:
 *              exponent 31 is inf (m = 0) or NaN; largest 57344;
 *              subnormals m · 2^−16. (An E5M2 code is the top byte of an fp16.)
 * Encoding rounds to nearest, ties to even, and saturates: a finite value
 * (or an infinity) beyond the largest code becomes the largest code with its
 * sign, never NaN or inf, so a weight can never decode to a non-number.
 * NaN encodes as NaN (E4M3 0x7F, E5M2 0x7E, with the sign bit of the input).
 */
#include "quants.h"

#include <math.h>
#include <string.h>

#include "fp16.h"

struct fp8_format {
    int mbits;          // mantissa bits
    int bias;
    uint8_t max_code;   // largest finite magnitude code
    uint8_t nan_code;   // magnitude code written for NaN
};

static const struct fp8_format e4m3 = {3, 7, 0x7E, 0x7F};
static const struct fp8_format e5m2 = {2, 15, 0x7B, 0x7E};

// Normal codes move their exponent and mantissa into a float's fields with
// the bias changed (7 → 127, 15 → 127); subnormals are m times the smallest
// subnormal, exact in float. Bit assembly, not ldexp: the scalar dot product
// calls these per element.
float lb_fp8_e4m3_to_f32(uint8_t c) {
    const uint32_t mag = c & 0x7Fu, sign = (uint32_t)(c & 0x80) << 24;
    if (mag == 0x7F) return lb_f32_from_bits(sign | 0x7FC00000u); // NaN
    if (mag < 8) return lb_f32_from_bits(sign | lb_f32_bits((float)mag * 0x1p-9f));
    return lb_f32_from_bits(sign | ((mag >> 3) + 120) << 23 | (mag & 7) << 20);
}

float lb_fp8_e5m2_to_f32(uint8_t c) {
    const uint32_t mag = c & 0x7Fu, sign = (uint32_t)(c & 0x80) << 24;
    if (mag >= 0x7C) return lb_f32_from_bits(sign | (mag == 0x7C ? 0x7F800000u : 0x7FC00000u)); // inf, NaN
    if (mag < 4) return lb_f32_from_bits(sign | lb_f32_bits((float)mag * 0x1p-16f));
    return lb_f32_from_bits(sign | ((mag >> 2) + 112) << 23 | (mag & 3) << 21);
}

static uint8_t encode(const struct fp8_format *f, float x) {
    const uint8_t sign = signbit(x) ? 0x80 : 0;
    if (isnan(x)) return sign | f->nan_code;
    const float a = fabsf(x);
    int code;
    const float min_normal = ldexpf(1.0f, 1 - f->bias);
    if (a < min_normal) {
        // Subnormal range: an integer multiple of the smallest subnormal; a
        // result of 2^mbits is the smallest normal's code, as the bits carry.
        code = (int)nearbyintf(ldexpf(a, f->bias - 1 + f->mbits));
    } else if (isinf(a)) {
        code = f->max_code;
    } else {
        int exp;
        const float frac = frexpf(a, &exp); // a = frac · 2^exp, frac in [0.5, 1)
        int e = exp - 1 + f->bias;
        int m = (int)nearbyintf((frac * 2 - 1) * (float)(1 << f->mbits)); // exact scaling, RNE
        if (m == 1 << f->mbits) m = 0, e++;
        code = e > 0x7F >> f->mbits ? 0xFF : e << f->mbits | m;
    }
    if (code > f->max_code) code = f->max_code; // saturate (also past the NaN/inf codes)
    return sign | (uint8_t)code;
}

uint8_t lb_f32_to_fp8_e4m3(float x) { return encode(&e4m3, x); }
uint8_t lb_f32_to_fp8_e5m2(float x) { return encode(&e5m2, x); }

// ---------------------------------------------------------------------------
// Rows

static void quantize_fp8(const struct fp8_format *f, float (*decode)(uint8_t), const float *src, void *dst,
                         int64_t n) {
    float amax = 0.0f;
    for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(src[i]));
    lb_row_header_sym h = {.d = amax / decode(f->max_code)};
    memcpy(dst, &h, sizeof h);
    uint8_t *q = (uint8_t *)dst + sizeof h;
    for (int64_t i = 0; i < n; i++) q[i] = h.d > 0 ? encode(f, src[i] / h.d) : 0;
}

static void dequantize_fp8(float (*decode)(uint8_t), const void *src, float *dst, int64_t n) {
    lb_row_header_sym h;
    memcpy(&h, src, sizeof h);
    const uint8_t *q = (const uint8_t *)src + sizeof h;
    for (int64_t i = 0; i < n; i++) dst[i] = decode(q[i]) * h.d;
}

static float vec_dot_fp8(float (*decode)(uint8_t), int64_t n, const void *w, const void *a) {
    lb_row_header_sym h;
    memcpy(&h, w, sizeof h);
    const uint8_t *q = (const uint8_t *)w + sizeof h;
    const float *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += decode(q[i]) * y[i];
    return sum * h.d;
}

void lb_quantize_row_fp8_e4m3_ref(const float *src, void *dst, int64_t n) {
    quantize_fp8(&e4m3, lb_fp8_e4m3_to_f32, src, dst, n);
}
void lb_quantize_row_fp8_e5m2_ref(const float *src, void *dst, int64_t n) {
    quantize_fp8(&e5m2, lb_fp8_e5m2_to_f32, src, dst, n);
}
void lb_dequantize_row_fp8_e4m3(const void *src, float *dst, int64_t n) { dequantize_fp8(lb_fp8_e4m3_to_f32, src, dst, n); }
void lb_dequantize_row_fp8_e5m2(const void *src, float *dst, int64_t n) { dequantize_fp8(lb_fp8_e5m2_to_f32, src, dst, n); }
float lb_vec_dot_fp8_e4m3_f32(int64_t n, const void *w, const void *a) { return vec_dot_fp8(lb_fp8_e4m3_to_f32, n, w, a); }
float lb_vec_dot_fp8_e5m2_f32(int64_t n, const void *w, const void *a) { return vec_dot_fp8(lb_fp8_e5m2_to_f32, n, w, a); }
