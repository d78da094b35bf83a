/*
 * kv.c — KV cache element types (kv.h): row stores and head loads, and the
 * FP8 E4M3 conversions the E4M3 row of the traits table uses.
 */
#include "kv.h"

#include "blocks.h"
#include "model.h"
#include "types.h"

#include <math.h>
#include <string.h>
#include <strings.h>

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

// --- names -------------------------------------------------------------------------

int lb_kv_type_from_name(const char *name) {
    static const struct { const char *name; lb_type type; } names[] = {
        {"f16", LB_TYPE_F16}, {"f32", LB_TYPE_F32}, {"q8_0", LB_TYPE_Q8_0}, {"fp8", LB_TYPE_E4M3}, {"e4m3", LB_TYPE_E4M3},
    };
    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++)
        if (!strcasecmp(name, names[i].name)) return names[i].type;
    return -1;
}

const char *lb_kv_type_names(void) { return "f16, f32, q8_0 or fp8"; }

// --- cache rows --------------------------------------------------------------------

const char *kv_type_check(lb_type type, int64_t kv_dim) {
    switch (type) {
    case LB_TYPE_F32:
    case LB_TYPE_F16:
    case LB_TYPE_E4M3: return NULL;
    case LB_TYPE_Q8_0: return kv_dim % QK8_0 ? "F16, F32 or E4M3: Q8_0 needs rows of whole 32-element blocks" : NULL;
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
    const int bs = lb_type_block_size(type);
    const int64_t first = (int64_t)h * head_dim;
    if (first % bs == 0 && head_dim % bs == 0) {
        lb_kernel_to_float(type)((const char *)row + (size_t)(first / bs) * lb_type_block_bytes(type), out, head_dim);
        return;
    }
    // Heads narrower than a block (Q8_0 with head_dim 8, say): decode the
    // blocks that cover the head, then take its part.
    float buf[LB_MAX_HEAD_DIM + 2 * QK8_0];
    const int64_t b0 = first / bs, b1 = (first + head_dim + bs - 1) / bs;
    lb_kernel_to_float(type)((const char *)row + (size_t)b0 * lb_type_block_bytes(type), buf, (b1 - b0) * bs);
    memcpy(out, buf + (first - b0 * bs), (size_t)head_dim * sizeof(float));
}
