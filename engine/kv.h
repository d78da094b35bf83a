/*
 * kv.h — the KV cache's element types: how a row of keys or values is
 * stored and read back.
 *
 * A context's cache holds, per layer, n_ctx rows of kv_dim = n_head_kv ·
 * head_dim elements for keys and as many for values (model.h). The element
 * type is a context setting (lb_context_params.kv_type, `kv_cache:` in
 * profiles, --kv-type on the command line):
 *   F16  (default) 2 bytes per element;
 *   F32            4 bytes, exact;
 *   Q8_0           ggml's 32-element blocks with an fp16 scale, 1.0625 bytes:
 *                  rows of whole blocks (kv_dim % 32 == 0); a head narrower
 *                  than a block is read from the blocks that cover it;
 *   E4M3           FP8 (1 sign, 4 exponent bits with bias 7, 3 mantissa bits;
 *                  finite range ±448, no infinities), 1 byte, no scale:
 *                  values beyond ±448 saturate. Rounding is to nearest even.
 * Rows are written once per token (kv_store_row) and read back one head at a
 * time as f32 (kv_load_head) by the attention (attention.c).
 */
#ifndef LB_KV_H
#define LB_KV_H

#include "lowbit.h"

#include <stddef.h>
#include <stdint.h>

// NULL when `type` can be the element type of cache rows of kv_dim
// elements, else what is expected instead (for "expected ..." messages).
const char *kv_type_check(lb_type type, int64_t kv_dim);
// Bytes of one cache row of n elements.
size_t kv_row_bytes(lb_type type, int64_t n);
// Store n floats as one cache row.
void kv_store_row(lb_type type, void *dst, const float *src, int64_t n);
// Elements [h·head_dim, (h+1)·head_dim) of a cache row, as floats.
void kv_load_head(lb_type type, const void *row, int h, int head_dim, float *out);

// FP8 E4M3 conversions (exact decoding; encoding rounds to nearest even and
// saturates to ±448; NaN becomes 0x7F).
float lb_e4m3_to_f32(uint8_t code);
uint8_t lb_f32_to_e4m3(float x);
// Rows of E4M3 codes, for the traits table.
void lb_dequantize_row_e4m3(const void *src, float *dst, int64_t n);
void lb_quantize_row_e4m3_ref(const float *src, void *dst, int64_t n);

#endif
