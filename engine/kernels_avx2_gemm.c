/*
 * kernels_avx2_gemm.c — the F16-weight GEMM of prompt processing (AVX2 +
 * FMA + F16C), called by matmul_float.c; the scalar reference is
 * lb_gemm_f16_ref there.
 *
 * Register tiles of 4 weight rows × 3 tokens: per 8 columns, 4 F16 loads
 * converted in the register (vcvtph2ps), 3 activation loads and 12 FMAs
 * into 12 accumulators, so the FMA units are the limit, and no converted
 * copy of the weights or packed copy of the activations is ever written
 * (OpenBLAS on converted tiles spent 30 % of its time on those). Edge tiles
 * (fewer rows or tokens) run the same code with smaller constants, so every
 * output is the same 8-lane FMA chain over the columns followed by the same
 * reduction, whatever tile it falls in.
 */
#if defined(__x86_64__) || defined(__i386__)

#include "model.h"
#include "types.h"

#include <immintrin.h>

#include "fp16.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

static ALWAYS_INLINE float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// RM rows (w, ws bytes apart) × RN tokens (x, xs floats apart) over k columns.
static ALWAYS_INLINE void tile(const int RM, const int RN, int64_t k, const uint16_t *w, size_t ws, const float *x,
                               size_t xs, float *y, size_t ldy) {
    __m256 acc[4][3];
#pragma GCC unroll 4
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 3
        for (int t = 0; t < RN; t++) acc[r][t] = _mm256_setzero_ps();
    const uint16_t *wr[4];
#pragma GCC unroll 4
    for (int r = 0; r < RM; r++) wr[r] = (const uint16_t *)((const char *)w + (size_t)r * ws);
    int64_t c = 0;
    for (; c + 8 <= k; c += 8) {
        __m256 xv[3];
#pragma GCC unroll 3
        for (int t = 0; t < RN; t++) xv[t] = _mm256_loadu_ps(x + (size_t)t * xs + c);
#pragma GCC unroll 4
        for (int r = 0; r < RM; r++) {
            const __m256 wv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(wr[r] + c)));
#pragma GCC unroll 3
            for (int t = 0; t < RN; t++) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 3
        for (int t = 0; t < RN; t++) {
            float s = hsum8(acc[r][t]);
            for (int64_t j = c; j < k; j++) s += _cvtsh_ss(wr[r][j]) * x[(size_t)t * xs + j];
            y[(size_t)t * ldy + r] = s;
        }
}

#define TILE_ROWS(RN)                                                                                   \
    do {                                                                                                \
        int r = 0;                                                                                      \
        for (; r + 4 <= nr; r += 4) tile(4, RN, k, (const uint16_t *)(wb + (size_t)r * ws), ws, xt, xs, yt + r, ldy); \
        for (; r < nr; r++) tile(1, RN, k, (const uint16_t *)(wb + (size_t)r * ws), ws, xt, xs, yt + r, ldy);      \
    } while (0)

void lb_gemm_f16_avx2(int64_t k, int nr, const void *w, size_t ws, int n, const float *x, size_t xs, float *y,
                      size_t ldy) {
    const char *wb = w;
    int t = 0;
    for (; t + 3 <= n; t += 3) {
        const float *xt = x + (size_t)t * xs;
        float *yt = y + (size_t)t * ldy;
        TILE_ROWS(3);
    }
    for (; t < n; t++) {
        const float *xt = x + (size_t)t * xs;
        float *yt = y + (size_t)t * ldy;
        TILE_ROWS(1);
    }
}

#endif
