/*
 * types.c — the tensor-type traits table and the public lb_type_* calls.
 *
 * One row per type, indexed by its ggml id. A row says how big a block is,
 * how to decode it, how the reference quantizer encodes it and which dot
 * product and activation format the matmul uses. Everything else (loaders,
 * `info`, the quantizer, the tests) reads this table instead of switching on
 * the type.
 *
 * tolerance: RMS round-trip error divided by RMS(x) that tests/test_types.c
 * allows on N(0,1) data. Measured values are about 0.8x these.
 * exact_requant: quantizing the decoded values of a block this quantizer
 * produced gives back the same bytes (F16: the decode is exact; Q4_0/Q5_0:
 * d = max/-8 and max/-16 are exact divisions by powers of two; NF4/FP4: the
 * decoded block's absmax is the stored one, since ±1 are codes).
 */
#include "types.h"

#include <math.h>
#include <strings.h>

#include "blocks.h"
#include "kv.h"
#include "llm_int8.h"
#include "quants.h"

// One integer grid type (LB_INT_TYPES in quants.h): group types are blocks of
// one group; per-channel types (group 0) are chunks of 32 codes after a row
// header holding the scale (and zero).
#define INT_ROW(ID, fn, bits, group, zp, tol, exact, desc)                                                   \
    [LB_TYPE_##ID] = {                                                                                        \
        .name = #ID, .block_size = (group) ? (group) : QK_INT_CHUNK,                                          \
        .type_size = (group) ? ((zp) ? 4 : 2) + (group) * (bits) / 8 : LB_INT_CHUNK_BYTES(bits),              \
        .row_header = (group) ? 0 : (zp) ? sizeof(lb_row_header_zp) : sizeof(lb_row_header_sym),              \
        .bpw = 8.0f * ((group) ? ((zp) ? 4 : 2) + (group) * (bits) / 8 : LB_INT_CHUNK_BYTES(bits)) /            \
               ((group) ? (group) : QK_INT_CHUNK),                                                            \
        .to_float = lb_dequantize_row_##fn, .from_float_ref = lb_quantize_row_##fn##_ref,                     \
        .vec_dot = lb_vec_dot_##fn##_q8_0, .vec_dot_type = LB_TYPE_Q8_0,                                      \
        .tolerance = (tol), .exact_requant = (exact), .description = desc,                                    \
    },
// A per-tensor type: the per-channel layout and kernels of `fn`, with the
// tensor-level quantizer of `t`.
#define INT_TENSOR_ROW(ID, fn, t, bits, tol, desc)                                                            \
    [LB_TYPE_##ID] = {                                                                                        \
        .name = #ID, .block_size = QK_INT_CHUNK, .type_size = LB_INT_CHUNK_BYTES(bits),                       \
        .row_header = sizeof(lb_row_header_sym), .bpw = 8.0f * LB_INT_CHUNK_BYTES(bits) / QK_INT_CHUNK,        \
        .to_float = lb_dequantize_row_##fn, .from_float_ref = lb_quantize_row_##fn##_ref,                     \
        .from_float_amax = lb_quantize_row_##t##_amax,                                                        \
        .vec_dot = lb_vec_dot_##fn##_q8_0, .vec_dot_type = LB_TYPE_Q8_0,                                      \
        .tolerance = (tol), .description = desc,                                                              \
    },

const struct lb_type_traits lb_type_traits[LB_TYPE_COUNT] = {
    [LB_TYPE_F32] = {
        .name = "F32", .block_size = 1, .type_size = sizeof(float), .bpw = 32.0f,
        .to_float = lb_dequantize_row_f32, .from_float_ref = lb_quantize_row_f32_ref,
        .vec_dot = lb_vec_dot_f32_f32, .vec_dot_type = LB_TYPE_F32,
        .tolerance = 0.0f, .exact_requant = true,
    },
    [LB_TYPE_F16] = {
        .name = "F16", .block_size = 1, .type_size = sizeof(uint16_t), .bpw = 16.0f,
        .to_float = lb_dequantize_row_f16, .from_float_ref = lb_quantize_row_f16_ref,
        .vec_dot = lb_vec_dot_f16_f32, .vec_dot_type = LB_TYPE_F32,
        .tolerance = 0.0003f, .exact_requant = true,
    },
    [LB_TYPE_BF16] = {
        .name = "BF16", .block_size = 1, .type_size = sizeof(uint16_t), .bpw = 16.0f,
        .to_float = lb_dequantize_row_bf16, .from_float_ref = lb_quantize_row_bf16_ref,
        .vec_dot = lb_vec_dot_bf16_f32, .vec_dot_type = LB_TYPE_F32,
        .tolerance = 0.003f, .exact_requant = true,
    },
    [LB_TYPE_Q4_0] = {
        .name = "Q4_0", .block_size = QK4_0, .type_size = sizeof(block_q4_0), .bpw = 4.5f,
        .to_float = lb_dequantize_row_q4_0, .from_float_ref = lb_quantize_row_q4_0_ref,
        .vec_dot = lb_vec_dot_q4_0_q8_0, .vec_dot_type = LB_TYPE_Q8_0,
        .tolerance = 0.11f, .exact_requant = true,
    },
    [LB_TYPE_Q4_1] = {
        .name = "Q4_1", .block_size = QK4_1, .type_size = sizeof(block_q4_1), .bpw = 5.0f,
        .to_float = lb_dequantize_row_q4_1, .from_float_ref = lb_quantize_row_q4_1_ref,
        .vec_dot = lb_vec_dot_q4_1_q8_1, .vec_dot_type = LB_TYPE_Q8_1,
        .tolerance = 0.10f,
    },
    [LB_TYPE_Q5_0] = {
        .name = "Q5_0", .block_size = QK5_0, .type_size = sizeof(block_q5_0), .bpw = 5.5f,
        .to_float = lb_dequantize_row_q5_0, .from_float_ref = lb_quantize_row_q5_0_ref,
        .vec_dot = lb_vec_dot_q5_0_q8_0, .vec_dot_type = LB_TYPE_Q8_0,
        .tolerance = 0.055f, .exact_requant = true,
    },
    [LB_TYPE_Q5_1] = {
        .name = "Q5_1", .block_size = QK5_1, .type_size = sizeof(block_q5_1), .bpw = 6.0f,
        .to_float = lb_dequantize_row_q5_1, .from_float_ref = lb_quantize_row_q5_1_ref,
        .vec_dot = lb_vec_dot_q5_1_q8_1, .vec_dot_type = LB_TYPE_Q8_1,
        .tolerance = 0.048f,
    },
    [LB_TYPE_Q8_0] = {
        .name = "Q8_0", .block_size = QK8_0, .type_size = sizeof(block_q8_0), .bpw = 8.5f,
        .to_float = lb_dequantize_row_q8_0, .from_float_ref = lb_quantize_row_q8_0_ref,
        .vec_dot = lb_vec_dot_q8_0_q8_0, .vec_dot_type = LB_TYPE_Q8_0,
        .tolerance = 0.007f,
    },
    // Activation format only: no dot product has Q8_1 weights.
    [LB_TYPE_Q8_1] = {
        .name = "Q8_1", .block_size = QK8_1, .type_size = sizeof(block_q8_1), .bpw = 9.0f,
        .to_float = lb_dequantize_row_q8_1, .from_float_ref = lb_quantize_row_q8_1_ref,
        .vec_dot = NULL, .vec_dot_type = LB_TYPE_Q8_1,
        .tolerance = 0.007f,
    },
    [LB_TYPE_Q2_K] = {
        .name = "Q2_K", .block_size = QK_K, .type_size = sizeof(block_q2_K), .bpw = 2.625f,
        .to_float = lb_dequantize_row_q2_K, .from_float_ref = lb_quantize_row_q2_K_ref,
        .vec_dot = lb_vec_dot_q2_K_q8_K, .vec_dot_type = LB_TYPE_Q8_K,
        .tolerance = 0.36f,
    },
    [LB_TYPE_Q3_K] = {
        .name = "Q3_K", .block_size = QK_K, .type_size = sizeof(block_q3_K), .bpw = 3.4375f,
        .to_float = lb_dequantize_row_q3_K, .from_float_ref = lb_quantize_row_q3_K_ref,
        .vec_dot = lb_vec_dot_q3_K_q8_K, .vec_dot_type = LB_TYPE_Q8_K,
        .tolerance = 0.19f,
    },
    [LB_TYPE_Q4_K] = {
        .name = "Q4_K", .block_size = QK_K, .type_size = sizeof(block_q4_K), .bpw = 4.5f,
        .to_float = lb_dequantize_row_q4_K, .from_float_ref = lb_quantize_row_q4_K_ref,
        .vec_dot = lb_vec_dot_q4_K_q8_K, .vec_dot_type = LB_TYPE_Q8_K,
        .tolerance = 0.09f,
    },
    [LB_TYPE_Q5_K] = {
        .name = "Q5_K", .block_size = QK_K, .type_size = sizeof(block_q5_K), .bpw = 5.5f,
        .to_float = lb_dequantize_row_q5_K, .from_float_ref = lb_quantize_row_q5_K_ref,
        .vec_dot = lb_vec_dot_q5_K_q8_K, .vec_dot_type = LB_TYPE_Q8_K,
        .tolerance = 0.045f,
    },
    [LB_TYPE_Q6_K] = {
        .name = "Q6_K", .block_size = QK_K, .type_size = sizeof(block_q6_K), .bpw = 6.5625f,
        .to_float = lb_dequantize_row_q6_K, .from_float_ref = lb_quantize_row_q6_K_ref,
        .vec_dot = lb_vec_dot_q6_K_q8_K, .vec_dot_type = LB_TYPE_Q8_K,
        .tolerance = 0.023f,
    },
    // Activation format only: no dot product has Q8_K weights.
    [LB_TYPE_Q8_K] = {
        .name = "Q8_K", .block_size = QK_K, .type_size = sizeof(block_q8_K), .bpw = 9.125f,
        .to_float = lb_dequantize_row_q8_K, .from_float_ref = lb_quantize_row_q8_K_ref,
        .vec_dot = NULL, .vec_dot_type = LB_TYPE_Q8_K,
        .tolerance = 0.009f,
    },
    // lowbit's own types (ids 128 and up): bitsandbytes' 4-bit formats.
    [LB_TYPE_NF4] = {
        .name = "NF4", .block_size = QK_BNB4, .type_size = sizeof(block_bnb4), .bpw = 4.25f,
        .to_float = lb_dequantize_row_nf4, .from_float_ref = lb_quantize_row_nf4_ref,
        .vec_dot = lb_vec_dot_nf4_f32, .vec_dot_type = LB_TYPE_F32,
        .tolerance = 0.115f, .exact_requant = true,
        .description = "NF4: blocks of 64, fp16 absmax, bitsandbytes NF4 code table (QLoRA NormalFloat)",
    },
    [LB_TYPE_FP4] = {
        .name = "FP4", .block_size = QK_BNB4, .type_size = sizeof(block_bnb4), .bpw = 4.25f,
        .to_float = lb_dequantize_row_fp4, .from_float_ref = lb_quantize_row_fp4_ref,
        .vec_dot = lb_vec_dot_fp4_f32, .vec_dot_type = LB_TYPE_F32,
        .tolerance = 0.15f, .exact_requant = true,
        .description = "FP4: blocks of 64, fp16 absmax, bitsandbytes FP4 (E2M1, no inf/nan) code table",
    },
    // lowbit's integer grid types (ids 130-160, quants_int.c): INT_ROW(ID, fn,
    // bits, group (0: per row), zero point, tolerance, exact_requant, description).
    // Symmetric group types requantize exactly: their fp16 scale is rounded up,
    // so the largest element keeps the extreme code and the decoded block gives
    // back the same scale.
    INT_TENSOR_ROW(INT8_T, int8_c, int8_t, 8, 0.014f, "INT8_T: int8 absmax, one float scale per tensor (repeated in each row's header), x = d*(q - 128), 8-bit codes")
    INT_TENSOR_ROW(INT4_T, int4_c, int4_t, 4, 0.26f, "INT4_T: int4 absmax, one float scale per tensor (repeated in each row's header), x = d*(q - 8), 4-bit codes")
    INT_ROW(INT8_C, int8_c, 8, 0, 0, 0.014f, false,
            "INT8_C: int8 absmax, per row: float scale in a row header, x = d*(q - 128), 8-bit codes in chunks of 32")
    INT_ROW(INT8_G64, int8_g64, 8, 64, 0, 0.0075f, true,
            "INT8_G64: int8 absmax, groups of 64: fp16 scale per group, x = d*(q - 128), 8-bit codes in chunks of 32")
    INT_ROW(INT8_G128, int8_g128, 8, 128, 0, 0.0081f, true,
            "INT8_G128: int8 absmax, groups of 128: fp16 scale per group, x = d*(q - 128), 8-bit codes in chunks of 32")
    INT_ROW(INT8Z_C, int8z_c, 8, 0, 1, 0.0125f, false,
            "INT8Z_C: int8 zero-point (min-max), per row: float scale and uint8 zero in a row header, x = d*(q - z), 8-bit codes in chunks of 32")
    INT_ROW(INT8Z_G32, int8z_g32, 8, 32, 1, 0.0059f, false,
            "INT8Z_G32: int8 zero-point (min-max), groups of 32: fp16 scale and uint8 zero per group, x = d*(q - z), 8-bit codes in chunks of 32")
    INT_ROW(INT8Z_G64, int8z_g64, 8, 64, 1, 0.0067f, false,
            "INT8Z_G64: int8 zero-point (min-max), groups of 64: fp16 scale and uint8 zero per group, x = d*(q - z), 8-bit codes in chunks of 32")
    INT_ROW(INT8Z_G128, int8z_g128, 8, 128, 1, 0.0075f, false,
            "INT8Z_G128: int8 zero-point (min-max), groups of 128: fp16 scale and uint8 zero per group, x = d*(q - z), 8-bit codes in chunks of 32")
    INT_ROW(INT4_C, int4_c, 4, 0, 0, 0.26f, false,
            "INT4_C: int4 absmax, per row: float scale in a row header, x = d*(q - 8), 4-bit codes in chunks of 32")
    INT_ROW(INT4_G64, int4_g64, 4, 64, 0, 0.135f, true,
            "INT4_G64: int4 absmax, groups of 64: fp16 scale per group, x = d*(q - 8), 4-bit codes in chunks of 32")
    INT_ROW(INT4_G128, int4_g128, 4, 128, 0, 0.148f, true,
            "INT4_G128: int4 absmax, groups of 128: fp16 scale per group, x = d*(q - 8), 4-bit codes in chunks of 32")
    INT_ROW(INT4Z_C, int4z_c, 4, 0, 1, 0.215f, false,
            "INT4Z_C: int4 zero-point (min-max), per row: float scale and uint8 zero in a row header, x = d*(q - z), 4-bit codes in chunks of 32")
    INT_ROW(INT4Z_G64, int4z_g64, 4, 64, 1, 0.114f, false,
            "INT4Z_G64: int4 zero-point (min-max), groups of 64: fp16 scale and uint8 zero per group, x = d*(q - z), 4-bit codes in chunks of 32")
    INT_ROW(INT4Z_G128, int4z_g128, 4, 128, 1, 0.127f, false,
            "INT4Z_G128: int4 zero-point (min-max), groups of 128: fp16 scale and uint8 zero per group, x = d*(q - z), 4-bit codes in chunks of 32")
    INT_ROW(INT3_C, int3_c, 3, 0, 0, 0.6f, false,
            "INT3_C: int3 absmax, per row: float scale in a row header, x = d*(q - 4), 3-bit codes in chunks of 32")
    INT_ROW(INT3_G32, int3_g32, 3, 32, 0, 0.283f, true,
            "INT3_G32: int3 absmax, groups of 32: fp16 scale per group, x = d*(q - 4), 3-bit codes in chunks of 32")
    INT_ROW(INT3_G64, int3_g64, 3, 64, 0, 0.314f, true,
            "INT3_G64: int3 absmax, groups of 64: fp16 scale per group, x = d*(q - 4), 3-bit codes in chunks of 32")
    INT_ROW(INT3_G128, int3_g128, 3, 128, 0, 0.342f, true,
            "INT3_G128: int3 absmax, groups of 128: fp16 scale per group, x = d*(q - 4), 3-bit codes in chunks of 32")
    INT_ROW(INT3Z_C, int3z_c, 3, 0, 1, 0.455f, false,
            "INT3Z_C: int3 zero-point (min-max), per row: float scale and uint8 zero in a row header, x = d*(q - z), 3-bit codes in chunks of 32")
    INT_ROW(INT3Z_G32, int3z_g32, 3, 32, 1, 0.216f, false,
            "INT3Z_G32: int3 zero-point (min-max), groups of 32: fp16 scale and uint8 zero per group, x = d*(q - z), 3-bit codes in chunks of 32")
    INT_ROW(INT3Z_G64, int3z_g64, 3, 64, 1, 0.245f, false,
            "INT3Z_G64: int3 zero-point (min-max), groups of 64: fp16 scale and uint8 zero per group, x = d*(q - z), 3-bit codes in chunks of 32")
    INT_ROW(INT3Z_G128, int3z_g128, 3, 128, 1, 0.27f, false,
            "INT3Z_G128: int3 zero-point (min-max), groups of 128: fp16 scale and uint8 zero per group, x = d*(q - z), 3-bit codes in chunks of 32")
    INT_ROW(INT2_C, int2_c, 2, 0, 0, 1.0f, false,
            "INT2_C: int2 absmax, per row: float scale in a row header, x = d*(q - 2), 2-bit codes in chunks of 32")
    INT_ROW(INT2_G32, int2_g32, 2, 32, 0, 0.825f, true,
            "INT2_G32: int2 absmax, groups of 32: fp16 scale per group, x = d*(q - 2), 2-bit codes in chunks of 32")
    INT_ROW(INT2_G64, int2_g64, 2, 64, 0, 0.9f, true,
            "INT2_G64: int2 absmax, groups of 64: fp16 scale per group, x = d*(q - 2), 2-bit codes in chunks of 32")
    INT_ROW(INT2_G128, int2_g128, 2, 128, 0, 0.96f, true,
            "INT2_G128: int2 absmax, groups of 128: fp16 scale per group, x = d*(q - 2), 2-bit codes in chunks of 32")
    INT_ROW(INT2Z_C, int2z_c, 2, 0, 1, 1.0f, false,
            "INT2Z_C: int2 zero-point (min-max), per row: float scale and uint8 zero in a row header, x = d*(q - z), 2-bit codes in chunks of 32")
    INT_ROW(INT2Z_G32, int2z_g32, 2, 32, 1, 0.5f, false,
            "INT2Z_G32: int2 zero-point (min-max), groups of 32: fp16 scale and uint8 zero per group, x = d*(q - z), 2-bit codes in chunks of 32")
    INT_ROW(INT2Z_G64, int2z_g64, 2, 64, 1, 0.566f, false,
            "INT2Z_G64: int2 zero-point (min-max), groups of 64: fp16 scale and uint8 zero per group, x = d*(q - z), 2-bit codes in chunks of 32")
    INT_ROW(INT2Z_G128, int2z_g128, 2, 128, 1, 0.63f, false,
            "INT2Z_G128: int2 zero-point (min-max), groups of 128: fp16 scale and uint8 zero per group, x = d*(q - z), 2-bit codes in chunks of 32")
    [LB_TYPE_FP8_E4M3] = {
        .name = "FP8_E4M3", .block_size = 1, .type_size = 1, .row_header = sizeof(lb_row_header_sym), .bpw = 8.0f,
        .to_float = lb_dequantize_row_fp8_e4m3, .from_float_ref = lb_quantize_row_fp8_e4m3_ref,
        .vec_dot = lb_vec_dot_fp8_e4m3_f32, .vec_dot_type = LB_TYPE_F32,
        .tolerance = 0.033f,
        .description = "FP8_E4M3: per row a float scale d = max|x|/448 in a row header, then OCP FP8 E4M3 (fn) codes, "
                       "x = d*fp8(q); round to nearest even, saturating",
    },
    [LB_TYPE_FP8_E5M2] = {
        .name = "FP8_E5M2", .block_size = 1, .type_size = 1, .row_header = sizeof(lb_row_header_sym), .bpw = 8.0f,
        .to_float = lb_dequantize_row_fp8_e5m2, .from_float_ref = lb_quantize_row_fp8_e5m2_ref,
        .vec_dot = lb_vec_dot_fp8_e5m2_f32, .vec_dot_type = LB_TYPE_F32,
        .tolerance = 0.067f,
        .description = "FP8_E5M2: per row a float scale d = max|x|/57344 in a row header, then OCP FP8 E5M2 codes, "
                       "x = d*fp8(q); round to nearest even, saturating",
    },
    [LB_TYPE_NF4_DQ] = {
        .name = "NF4_DQ", .block_size = QK_BNB4, .type_size = sizeof(block_nf4_dq),
        .row_header = sizeof(lb_row_header_dq), .bpw = 4.125f,
        .to_float = lb_dequantize_row_nf4_dq, .from_float_ref = lb_quantize_row_nf4_dq_ref,
        .vec_dot = lb_vec_dot_nf4_dq_f32, .vec_dot_type = LB_TYPE_F32,
        .tolerance = 0.115f,
        .description = "NF4_DQ: NF4 blocks of 64 whose absmax is double-quantized (bitsandbytes double quant): "
                       "8-bit dynamic-map code per block, float offset (mean absmax) and scale per row",
    },
    // LLM.int8: a quantizer call is one row (one absmax scale); the activations
    // take the same layout, one scale per token. Blocks are Q8_0's, so Q8_0's
    // decoder reads them.
    [LB_TYPE_LLM_INT8] = {
        .name = "LLM_INT8", .block_size = 32, .type_size = sizeof(block_llm_int8), .bpw = 8.5f,
        .to_float = lb_dequantize_row_q8_0, .from_float_ref = lb_quantize_row_llm_int8_ref,
        .vec_dot = lb_vec_dot_llm_int8, .vec_dot_type = LB_TYPE_LLM_INT8,
        .tolerance = 0.013f, .exact_requant = true,
        .description = "LLM_INT8: LLM.int8() vector-wise int8, one absmax scale per row (fp16, repeated in each "
                       "block of 32); input columns that are outliers in calibration activations are kept in F16 "
                       "as NAME.outlier_w [k, rows] with their indices in NAME.outlier_cols [k]",
    },
    // A KV cache element type (kv.h): no dot product, so no weight can have it.
    [LB_TYPE_E4M3] = {
        .name = "E4M3", .block_size = 1, .type_size = 1, .bpw = 8.0f,
        .to_float = lb_dequantize_row_e4m3, .from_float_ref = lb_quantize_row_e4m3_ref,
        .tolerance = 0.04f, .exact_requant = true,
        .description = "FP8 E4M3 (bias 7, saturating at 448, no scale): KV cache elements",
    },
};

// ---------------------------------------------------------------------------
// Public calls (lowbit.h)

const char *lb_type_name(lb_type type) {
    const struct lb_type_traits *t = lb_traits(type);
    return t ? t->name : NULL;
}

int lb_type_from_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < LB_TYPE_COUNT; i++) {
        if (lb_type_traits[i].name && strcasecmp(lb_type_traits[i].name, name) == 0) return i;
    }
    return -1;
}

const char *lb_type_description(lb_type type) {
    const struct lb_type_traits *t = lb_traits(type);
    return t ? t->description : NULL;
}

int lb_type_block_size(lb_type type) {
    const struct lb_type_traits *t = lb_traits(type);
    return t ? t->block_size : 0;
}

size_t lb_type_block_bytes(lb_type type) {
    const struct lb_type_traits *t = lb_traits(type);
    return t ? t->type_size : 0;
}

// The one place a row's size is computed: its header, then its blocks.
size_t lb_type_row_bytes(lb_type type, int64_t n) {
    const struct lb_type_traits *t = lb_traits(type);
    if (!t || n < 0 || n % t->block_size != 0) return 0;
    uint64_t bytes;
    if (__builtin_mul_overflow((uint64_t)(n / t->block_size), (uint64_t)t->type_size, &bytes) ||
        __builtin_add_overflow(bytes, (uint64_t)t->row_header, &bytes) || bytes > SIZE_MAX)
        return 0;
    return (size_t)bytes;
}

lb_status lb_type_to_float(lb_type type, const void *src, float *dst, int64_t n) {
    const struct lb_type_traits *t = lb_traits(type);
    if (!t) return LB_ERR_UNSUPPORTED;
    if (n < 0 || n % t->block_size != 0 || (n > 0 && (!src || !dst))) return LB_ERR_ARG;
    t->to_float(src, dst, n);
    return LB_OK;
}

lb_status lb_type_from_float(lb_type type, const float *src, void *dst, int64_t n) {
    const struct lb_type_traits *t = lb_traits(type);
    if (!t || !t->from_float_ref) return LB_ERR_UNSUPPORTED;
    if (n < 0 || n % t->block_size != 0 || (n > 0 && (!src || !dst))) return LB_ERR_ARG;
    t->from_float_ref(src, dst, n);
    return LB_OK;
}

lb_status lb_type_from_float_rows(lb_type type, const float *src, void *dst, int64_t rows, int64_t n) {
    const struct lb_type_traits *t = lb_traits(type);
    if (!t || !t->from_float_ref) return LB_ERR_UNSUPPORTED;
    if (rows < 0 || n < 0 || n % t->block_size != 0 || (rows > 0 && n > 0 && (!src || !dst))) return LB_ERR_ARG;
    const size_t row = lb_type_row_bytes(type, n);
    if (t->from_float_amax) {
        // Per tensor: one pass for the absmax of every row, one to quantize.
        float amax = 0.0f;
        for (int64_t i = 0; i < rows * n; i++) amax = fmaxf(amax, fabsf(src[i]));
        for (int64_t r = 0; r < rows; r++) t->from_float_amax(src + r * n, (char *)dst + (size_t)r * row, n, amax);
    } else {
        for (int64_t r = 0; r < rows; r++) t->from_float_ref(src + r * n, (char *)dst + (size_t)r * row, n);
    }
    return LB_OK;
}
