/*
 * quants.h — the per-type reference functions behind the traits table
 * (engine/types.c). Private to the engine; callers go through lb_traits()
 * and lb_kernels().
 *
 * Three kinds, with the signatures of types.h:
 *   lb_dequantize_row_T(src, dst, n)    blocks of T -> n floats (bit-exact with ggml)
 *   lb_quantize_row_T_ref(src, dst, n)  n floats -> blocks of T (ggml's *_ref rounding)
 *   lb_vec_dot_T_A(n, w, a)             scalar dot of a T row with an A row
 * n is always a multiple of the type's block size; the callers check it.
 * These scalar functions are also the reference the AVX2 kernels
 * (kernels_avx2.c) and the CUDA dequantizers (cuda/dequant.cu) are tested against.
 */
#ifndef LB_QUANTS_H
#define LB_QUANTS_H

#include <stddef.h>
#include <stdint.h>

#include "blocks.h"

// --- quants_legacy.c -------------------------------------------------------

void lb_dequantize_row_f32(const void *src, float *dst, int64_t n);
void lb_dequantize_row_f16(const void *src, float *dst, int64_t n);
void lb_dequantize_row_bf16(const void *src, float *dst, int64_t n);
void lb_dequantize_row_q4_0(const void *src, float *dst, int64_t n);
void lb_dequantize_row_q4_1(const void *src, float *dst, int64_t n);
void lb_dequantize_row_q5_0(const void *src, float *dst, int64_t n);
void lb_dequantize_row_q5_1(const void *src, float *dst, int64_t n);
void lb_dequantize_row_q8_0(const void *src, float *dst, int64_t n);
void lb_dequantize_row_q8_1(const void *src, float *dst, int64_t n);

void lb_quantize_row_f32_ref(const float *src, void *dst, int64_t n);
void lb_quantize_row_f16_ref(const float *src, void *dst, int64_t n);
void lb_quantize_row_bf16_ref(const float *src, void *dst, int64_t n);
void lb_quantize_row_q4_0_ref(const float *src, void *dst, int64_t n);
void lb_quantize_row_q4_1_ref(const float *src, void *dst, int64_t n);
void lb_quantize_row_q5_0_ref(const float *src, void *dst, int64_t n);
void lb_quantize_row_q5_1_ref(const float *src, void *dst, int64_t n);
void lb_quantize_row_q8_0_ref(const float *src, void *dst, int64_t n);
void lb_quantize_row_q8_1_ref(const float *src, void *dst, int64_t n);

float lb_vec_dot_f32_f32(int64_t n, const void *w, const void *a);
float lb_vec_dot_f16_f32(int64_t n, const void *w, const void *a);
float lb_vec_dot_bf16_f32(int64_t n, const void *w, const void *a);
float lb_vec_dot_q4_0_q8_0(int64_t n, const void *w, const void *a);
float lb_vec_dot_q4_1_q8_1(int64_t n, const void *w, const void *a);
float lb_vec_dot_q5_0_q8_0(int64_t n, const void *w, const void *a);
float lb_vec_dot_q5_1_q8_1(int64_t n, const void *w, const void *a);
float lb_vec_dot_q8_0_q8_0(int64_t n, const void *w, const void *a);
void lb_gemm_f16_ref(int64_t k, int nr, const void *w, size_t ws, int n, const float *x, size_t xs, float *y,
                     size_t ldy);

// --- quants_k.c ------------------------------------------------------------

void lb_dequantize_row_q2_K(const void *src, float *dst, int64_t n);
void lb_dequantize_row_q3_K(const void *src, float *dst, int64_t n);
void lb_dequantize_row_q4_K(const void *src, float *dst, int64_t n);
void lb_dequantize_row_q5_K(const void *src, float *dst, int64_t n);
void lb_dequantize_row_q6_K(const void *src, float *dst, int64_t n);
void lb_dequantize_row_q8_K(const void *src, float *dst, int64_t n);

void lb_quantize_row_q2_K_ref(const float *src, void *dst, int64_t n);
void lb_quantize_row_q3_K_ref(const float *src, void *dst, int64_t n);
void lb_quantize_row_q4_K_ref(const float *src, void *dst, int64_t n);
void lb_quantize_row_q5_K_ref(const float *src, void *dst, int64_t n);
void lb_quantize_row_q6_K_ref(const float *src, void *dst, int64_t n);
void lb_quantize_row_q8_K_ref(const float *src, void *dst, int64_t n);

float lb_vec_dot_q2_K_q8_K(int64_t n, const void *w, const void *a);
float lb_vec_dot_q3_K_q8_K(int64_t n, const void *w, const void *a);
float lb_vec_dot_q4_K_q8_K(int64_t n, const void *w, const void *a);
float lb_vec_dot_q5_K_q8_K(int64_t n, const void *w, const void *a);
float lb_vec_dot_q6_K_q8_K(int64_t n, const void *w, const void *a);

// --- quants_bnb.c (lowbit's own NF4 / FP4) --------------------------------

// bitsandbytes' code tables: x = table[q] * absmax.
extern const float lb_nf4_table[16];
extern const float lb_fp4_table[16];

void lb_dequantize_row_nf4(const void *src, float *dst, int64_t n);
void lb_dequantize_row_fp4(const void *src, float *dst, int64_t n);

void lb_quantize_row_nf4_ref(const float *src, void *dst, int64_t n);
void lb_quantize_row_fp4_ref(const float *src, void *dst, int64_t n);

float lb_vec_dot_nf4_f32(int64_t n, const void *w, const void *a);
float lb_vec_dot_fp4_f32(int64_t n, const void *w, const void *a);

// --- quants_int.c (lowbit's integer grid types, blocks.h) ------------------

// Every integer grid type with its own row layout: X(ID, fn, bits, group, zp),
// group 0 meaning one group per row (the scale in the row header). The
// per-tensor types INT8_T / INT4_T share INT8_C / INT4_C's layout and
// functions; only their quantizer differs (lb_quantize_row_int*_t_amax).
// Every one takes Q8_0 activations.
#define LB_INT_TYPES(X)                                                                                        \
    X(INT8_C, int8_c, 8, 0, 0) X(INT8_G64, int8_g64, 8, 64, 0) X(INT8_G128, int8_g128, 8, 128, 0)              \
    X(INT8Z_C, int8z_c, 8, 0, 1) X(INT8Z_G32, int8z_g32, 8, 32, 1) X(INT8Z_G64, int8z_g64, 8, 64, 1)            \
    X(INT8Z_G128, int8z_g128, 8, 128, 1)                                                                        \
    X(INT4_C, int4_c, 4, 0, 0) X(INT4_G64, int4_g64, 4, 64, 0) X(INT4_G128, int4_g128, 4, 128, 0)              \
    X(INT4Z_C, int4z_c, 4, 0, 1) X(INT4Z_G64, int4z_g64, 4, 64, 1) X(INT4Z_G128, int4z_g128, 4, 128, 1)         \
    X(INT3_C, int3_c, 3, 0, 0) X(INT3_G32, int3_g32, 3, 32, 0) X(INT3_G64, int3_g64, 3, 64, 0)                 \
    X(INT3_G128, int3_g128, 3, 128, 0)                                                                          \
    X(INT3Z_C, int3z_c, 3, 0, 1) X(INT3Z_G32, int3z_g32, 3, 32, 1) X(INT3Z_G64, int3z_g64, 3, 64, 1)            \
    X(INT3Z_G128, int3z_g128, 3, 128, 1)                                                                        \
    X(INT2_C, int2_c, 2, 0, 0) X(INT2_G32, int2_g32, 2, 32, 0) X(INT2_G64, int2_g64, 2, 64, 0)                 \
    X(INT2_G128, int2_g128, 2, 128, 0)                                                                          \
    X(INT2Z_C, int2z_c, 2, 0, 1) X(INT2Z_G32, int2z_g32, 2, 32, 1) X(INT2Z_G64, int2z_g64, 2, 64, 1)            \
    X(INT2Z_G128, int2z_g128, 2, 128, 1)

#define LB_INT_DECLARE(ID, fn, bits, group, zp)                                  \
    void lb_dequantize_row_##fn(const void *src, float *dst, int64_t n);         \
    void lb_quantize_row_##fn##_ref(const float *src, void *dst, int64_t n);     \
    float lb_vec_dot_##fn##_q8_0(int64_t n, const void *w, const void *a);
LB_INT_TYPES(LB_INT_DECLARE)
#undef LB_INT_DECLARE

// Pack 32 codes (each < 2^bits) into one chunk of 4·bits bytes (blocks.h);
// for grid.c, which writes codes chosen elsewhere.
void lb_int_pack_chunk(int bits, const uint8_t q[32], uint8_t *out);

// Per-tensor quantizers: a row against the absmax of the whole tensor.
void lb_quantize_row_int8_t_amax(const float *src, void *dst, int64_t n, float amax);
void lb_quantize_row_int4_t_amax(const float *src, void *dst, int64_t n, float amax);

// The scalar kernel table's entries for these types (kernels.c).
#define LB_INT_SCALAR_ENTRY(ID, fn, bits, group, zp) [LB_TYPE_##ID] = lb_vec_dot_##fn##_q8_0,
#define LB_INT_SCALAR_VEC_DOTS                                                                          \
    LB_INT_TYPES(LB_INT_SCALAR_ENTRY)[LB_TYPE_INT8_T] = lb_vec_dot_int8_c_q8_0,                         \
                                     [LB_TYPE_INT4_T] = lb_vec_dot_int4_c_q8_0,

// --- quants_fp8.c (FP8 E4M3 / E5M2 with a per-row scale) ------------------

// Exact conversions of one code, and round-to-nearest-even encoding with
// saturation to the largest finite value (NaN stays NaN: 0x7F for E4M3,
// 0x7E for E5M2, sign kept).
float lb_fp8_e4m3_to_f32(uint8_t code);
float lb_fp8_e5m2_to_f32(uint8_t code);
uint8_t lb_f32_to_fp8_e4m3(float x);
uint8_t lb_f32_to_fp8_e5m2(float x);

void lb_dequantize_row_fp8_e4m3(const void *src, float *dst, int64_t n);
void lb_dequantize_row_fp8_e5m2(const void *src, float *dst, int64_t n);
void lb_quantize_row_fp8_e4m3_ref(const float *src, void *dst, int64_t n);
void lb_quantize_row_fp8_e5m2_ref(const float *src, void *dst, int64_t n);
float lb_vec_dot_fp8_e4m3_f32(int64_t n, const void *w, const void *a);
float lb_vec_dot_fp8_e5m2_f32(int64_t n, const void *w, const void *a);

// --- quants_bnb.c: NF4 with double quantization ---------------------------

// bitsandbytes' 8-bit dynamic map (create_dynamic_map(signed=True)), sorted.
extern const float lb_bnb_dynamic_map[256];

void lb_dequantize_row_nf4_dq(const void *src, float *dst, int64_t n);
void lb_quantize_row_nf4_dq_ref(const float *src, void *dst, int64_t n);
// The most absmax values one NF4_DQ row double-quantizes together: bitsandbytes'
// second-level block size. Rows of more than 256 × 64 weights fall back to NF4
// (quantize.c) and are refused by lb_quant_check_row, not split: the row header
// holds one offset and scale.
enum { LB_NF4_DQ_MAX_ABSMAX = 256 };
float lb_vec_dot_nf4_dq_f32(int64_t n, const void *w, const void *a);

// --- shared unpacking helpers (used by quants_k.c and kernels_avx2.c) ----

// Scale and min of sub-block j (0..7) of a q4_K / q5_K block: 6 bits each.
// Sub-blocks 0-3 keep theirs in the low 6 bits of bytes j and j+4; 4-7 split
// theirs between byte j+4's nibbles and the top 2 bits of bytes j-4 and j.
static inline void lb_get_scale_min_k4(int j, const uint8_t *q, uint8_t *scale, uint8_t *min) {
    if (j < 4) {
        *scale = q[j] & 63;
        *min = q[j + 4] & 63;
    } else {
        *scale = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *min = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// The 16 signed scales of a q3_K block (each stored as 6 bits + 32): the low
// 4 bits of scale j sit in byte j%8 (low nibble for j < 8, high for j >= 8),
// the high 2 bits in byte 8 + j%4 at bit 2*(j/4).
static inline void lb_q3_K_scales(const uint8_t packed[12], int8_t out[16]) {
    for (int j = 0; j < 16; j++) {
        int low = j < 8 ? packed[j] & 0xF : packed[j - 8] >> 4;
        int high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
        out[j] = (int8_t)((low | (high << 4)) - 32);
    }
}

#endif // LB_QUANTS_H
