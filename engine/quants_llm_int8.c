/*
 * quants_llm_int8.c — the LLM_INT8 type's row quantizer and scalar dot
 * product (llm_int8.h), for the traits table. The AVX2 versions in
 * kernels_avx2.c give the same bytes and, up to float rounding, the same sums.
 */
#include "llm_int8.h"

#include "blocks.h"
#include "fp16.h"

#include <math.h>

enum { QK = 32 };

void lb_quantize_row_llm_int8_ref(const float *src, void *dst, int64_t n) {
    block_llm_int8 *y = dst;
    float amax = 0.0f;
    for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(src[i]));
    // Codes are computed with the scale as stored, so decoding gives d·q exactly.
    const uint16_t d16 = lb_f32_to_fp16(amax / 127.0f);
    const float d = lb_fp16_to_f32(d16);
    const float id = d > 0 ? 1.0f / d : 0.0f;
    for (int64_t b = 0; b < n / QK; b++) {
        y[b].d = d16;
        for (int j = 0; j < QK; j++) {
            // Nearest, ties to even (bitsandbytes' __float2int_rn); fp16 rounding of d may put
            // the extreme a hair above 127.
            const float v = nearbyintf(src[b * QK + j] * id);
            y[b].qs[j] = (int8_t)(v > 127.0f ? 127 : v < -127.0f ? -127 : v);
        }
    }
}

float lb_vec_dot_llm_int8(int64_t n, const void *w, const void *a) {
    const block_llm_int8 *x = w, *y = a;
    int64_t sum = 0;
    for (int64_t b = 0; b < n / QK; b++) {
        int s = 0;
        for (int j = 0; j < QK; j++) s += x[b].qs[j] * y[b].qs[j];
        sum += s;
    }
    return n >= QK ? (float)sum * (lb_fp16_to_f32(x[0].d) * lb_fp16_to_f32(y[0].d)) : 0.0f;
}

