/*
 * fp16.h — IEEE half and bfloat16 conversions, bit-exact with ggml's scalar
 * code (round-to-nearest-even, NaN kept quiet, subnormals handled).
 */
#ifndef LB_FP16_H
#define LB_FP16_H

#include <stdint.h>
#include <string.h>

typedef uint16_t lb_fp16; // IEEE 754 binary16 bits
typedef uint16_t lb_bf16; // bfloat16 bits

static inline uint32_t lb_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float lb_f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

// From Maratos's fp16 library, as ggml uses it: exact for every half value.
static inline float lb_fp16_to_f32(lb_fp16 h) {
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w;
    const uint32_t exp_offset = 0xE0u << 23;
    const float exp_scale = 0x1.0p-112f;
    const float normalized = lb_f32_from_bits((two_w >> 4) + exp_offset) * exp_scale;
    const uint32_t magic_mask = 126u << 23;
    const float magic_bias = 0.5f;
    const float denormalized = lb_f32_from_bits((two_w >> 17) | magic_mask) - magic_bias;
    const uint32_t denormalized_cutoff = 1u << 27;
    const uint32_t result = sign |
        (two_w < denormalized_cutoff ? lb_f32_bits(denormalized) : lb_f32_bits(normalized));
    return lb_f32_from_bits(result);
}

static inline lb_fp16 lb_f32_to_fp16(float f) {
    const float scale_to_inf = 0x1.0p+112f;
    const float scale_to_zero = 0x1.0p-110f;
    float base = (f < 0 ? -f : f) * scale_to_inf * scale_to_zero;
    const uint32_t w = lb_f32_bits(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    base = lb_f32_from_bits((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = lb_f32_bits(base);
    const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
    const uint32_t mantissa_bits = bits & 0x00000FFFu;
    const uint32_t nonsign = exp_bits + mantissa_bits;
    return (lb_fp16)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

static inline float lb_bf16_to_f32(lb_bf16 h) { return lb_f32_from_bits((uint32_t)h << 16); }

// Round to nearest even; NaN stays a quiet NaN (as ggml_compute_fp32_to_bf16).
static inline lb_bf16 lb_f32_to_bf16(float f) {
    uint32_t u = lb_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (lb_bf16)((u >> 16) | 64);
    return (lb_bf16)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

#endif
