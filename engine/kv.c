/*
 * kv.c — KV cache element types (kv.h): row stores and head loads, and the
 * FP8 E4M3 conversions the E4M3 row of the traits table uses.
 */
#include "kv.h"

#include "blocks.h"
#include "types.h"

#include <math.h>
#include <string.h>

// --- FP8 E4M3 ---------------------------------------------------------------------
// Bits s eeee mmm: exponent bias 7; e = 0 is subnormal (m · 2^-9); e = 15,
// m = 7 is NaN; no infinities. Largest finite value 1.75 · 2^8 = 448.

float lb_e4m3_to_f32(uint8_t code) {
    const int e = (code >> 3) & 15, m = code & 7;
    float v;
    if (e == 15 && m == 7) v = NAN;
    else if (e == 0) v = ldexpf((float)m, -9);
    else v = ldexpf((float)(8 + m), e - 10);
    return code & 0x80 ? -v : v;
}

uint8_t lb_f32_to_e4m3(float x) {
    if (isnan(x)) return 0x7F;
    const uint8_t sign = signbit(x) ? 0x80 : 0;
    const float a = fabsf(x);
    if (a >= 448.0f) return sign | 0x7E; // saturate (infinities included)
    if (a < 0x1p-6f) // subnormals: multiples of 2^-9; rintf rounds ties to even, and 8 · 2^-9 is code 0x08
        return sign | (uint8_t)rintf(a * 0x1p9f);
    int E;
    frexpf(a, &E); // a = f · 2^E, f in [0.5, 1): the leading bit is 2^(E-1)
    // Mantissa steps are 2^(E-1-3); scaling by a power of two is exact.
    int q = (int)rintf(ldexpf(a, 4 - E)); // 8..16
    if (q == 16) q = 8, E++;
    const int e = E - 1 + 7;
    if (e > 15 || (e == 15 && q - 8 == 7)) return sign | 0x7E; // saturate to 448
    return sign | (uint8_t)(e << 3 | (q - 8));
}

// Rows of E4M3 for the traits table (block size 1).
void lb_dequantize_row_e4m3(const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = lb_e4m3_to_f32(s[i]);
}

void lb_quantize_row_e4m3_ref(const float *src, void *dst, int64_t n) {
    uint8_t *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = lb_f32_to_e4m3(src[i]);
}

// --- cache rows --------------------------------------------------------------------

const char *kv_type_check(lb_type type, int head_dim) {
    switch (type) {
    case LB_TYPE_F32:
    case LB_TYPE_F16:
    case LB_TYPE_E4M3: return NULL;
    case LB_TYPE_Q8_0: return head_dim % QK8_0 ? "a head dimension that is a multiple of 32 for Q8_0" : NULL;
    default: return "F16, F32, Q8_0 or E4M3";
    }
}

size_t kv_row_bytes(lb_type type, int64_t n) { return lb_type_row_bytes(type, n); }

void kv_store_row(lb_type type, void *dst, const float *src, int64_t n) {
    if (type == LB_TYPE_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
    } else if (type == LB_TYPE_Q8_0) {
        lb_kernel_from_float(LB_TYPE_Q8_0)(src, dst, n); // the activation quantizer: same blocks, SIMD
    } else {
        lb_type_traits[type].from_float_ref(src, dst, n);
    }
}

void kv_load_head(lb_type type, const void *row, int h, int head_dim, float *out) {
    const char *p = (const char *)row + (size_t)h * lb_type_row_bytes(type, head_dim);
    lb_kernel_to_float(type)(p, out, head_dim);
}
