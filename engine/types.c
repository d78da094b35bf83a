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

#include <strings.h>

#include "blocks.h"
#include "kv.h"
#include "quants.h"

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

size_t lb_type_row_bytes(lb_type type, int64_t n) {
    const struct lb_type_traits *t = lb_traits(type);
    if (!t || n < 0 || n % t->block_size != 0) return 0;
    uint64_t bytes;
    if (__builtin_mul_overflow((uint64_t)(n / t->block_size), (uint64_t)t->type_size, &bytes) || bytes > SIZE_MAX)
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
