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
