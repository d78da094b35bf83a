/*
 * kernels_avx2_batch.c — AVX2 small-batch kernels (kernels_batch.h): weight
 * rows against n activation rows, each weight block loaded and unpacked once.
 * Compiled with -mavx2 -mfma -mf16c into libkernels_avx2.a and only called
 * when lb_kernels() is the AVX2 table.
 *
 * Versions, each bit-identical per (row, token) to the AVX2 single-token
 * kernel named (tests/test_matmul_batch.c compares them):
 *   F16   vec_dot_f16's four 8-lane chains per row (elements 32i+8k..+7 in
 *         chain k); each vector of 8 weights is converted once and multiplied
 *         into up to 3 tokens' chains, all 12 accumulators in registers.
 *         Columns go in spans of 256 so that the activations, packed per
 *         span, are read from L1. Rows whose length is not a multiple of 32
 *         call the single-token kernel per token.
 *   Q8_0, Q4_0   vec_dot_q8_0 / vec_dot_q4_0: |w| and the codes of a block are
 *         made once; per token the sign trick, maddubs, one FMA per block.
 *   Q4_K, Q6_K   vec_dot_q4_K / vec_dot_q6_K: scales and codes of a
 *         super-block unpacked once to the stack; per token the integer sums
 *         and the same scalar float epilogue.
 * Where the time goes: with the weights unpacked once, a token costs only its
 * multiply-adds (F16: one FMA, with its activation load, per 8 weights; about
 * 3.5 G FMA/s on one core here, 70% of what FMAs with a memory operand reach).
 * On this project's 2-core machine that makes an F16 token of a 1.2 GB model
 * cost about a fifth of reading its weights, so a verification batch of 4
 * costs 1.3-1.9 decodes (bench/matbatch; BENCHMARKS.md): compute and the
 * memory reads overlap only in part.
 */
#if defined(__x86_64__) || defined(__i386__)

#include "kernels_batch.h"

#include <immintrin.h>

#include "simd_avx2.h"
#include <math.h>

#include "blocks.h"
#include "fp16.h"
#include "quants.h"

// ---------------------------------------------------------------------------
// Helpers (the shared ones are in simd_avx2.h).

// Token groups: n tokens in ceil(n / max) groups of nearly equal size.
static inline int group_size(int n, int max) {
    const int groups = (n + max - 1) / max;
    return (n + groups - 1) / groups;
}

// ---------------------------------------------------------------------------
// F16 × f32

enum {
    F16_TOKENS = 3,   // 4 chains × 3 tokens + a weight vector: 13 of 16 registers
    F16_SPAN = 256,   // columns per pass: 16 rows' weights (8 KiB) and a group of
                      // tokens' packed activations (3 KiB) stay in L1 for the pass
    F16_ROWS = 16,    // rows and tokens whose chains are kept between passes
    F16_BATCH = 16,
};

// Columns [c0, c0 + 32·steps) of one row into T tokens' chains, vec_dot_f16's
// arithmetic: chain k of a token takes elements 32i+8k..32i+8k+7, and its dot
// product is hsum((chain 0 + chain 1) + (chain 2 + chain 3)). The activations
// come packed (see f16_block): step s of token t is the 32 floats at
// ys + 32·(T·s + t).
static inline __attribute__((always_inline)) void f16_span(const uint16_t *x, int steps, const float *ys, int T,
                                                           __m256 (*acc)[4]) {
    __m256 c[F16_TOKENS][4];
#pragma GCC unroll 16
    for (int t = 0; t < T; t++)
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) c[t][k] = acc[t][k];
    for (int s = 0; s < steps; s++, x += 32, ys += 32 * T) {
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            const __m256 w = load_f16x8(x + 8 * k);
#pragma GCC unroll 16
            for (int t = 0; t < T; t++) c[t][k] = _mm256_fmadd_ps(w, _mm256_loadu_ps(ys + 32 * t + 8 * k), c[t][k]);
        }
    }
#pragma GCC unroll 16
    for (int t = 0; t < T; t++)
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) acc[t][k] = c[t][k];
}

// T as a constant, so that the chains live in registers during a span.
static void f16_span_tokens(const uint16_t *x, int steps, const float *ys, int T, __m256 (*acc)[4]) {
    switch (T) {
    case 1: f16_span(x, steps, ys, 1, acc); break;
    case 2: f16_span(x, steps, ys, 2, acc); break;
    default: f16_span(x, steps, ys, 3, acc); break;
    }
}

// Rows [0, rows) (at most F16_ROWS, length a multiple of 32) against tokens
// [0, n) (at most F16_BATCH). Columns go in spans; for each span and group of
// tokens the activations are first copied into one small buffer in the
// order the span reads them (activation rows sit a multiple of 4 KiB apart,
// and reading several at once thrashes L1's sets). The chains wait in `acc`
// between spans, which leaves each chain's sequence of FMAs, and so its
// result, unchanged.
static void f16_block(int64_t cols, const void *w, size_t w_stride, int rows, const char *a, size_t a_stride, int n,
                      float *y, size_t ldy) {
    __m256 acc[F16_ROWS][F16_BATCH][4];
    float ys[F16_SPAN * F16_TOKENS] __attribute__((aligned(32)));
    for (int r = 0; r < rows; r++)
        for (int t = 0; t < n; t++)
            for (int k = 0; k < 4; k++) acc[r][t][k] = _mm256_setzero_ps();
    const int g = group_size(n, F16_TOKENS);
    for (int64_t c0 = 0; c0 < cols; c0 += F16_SPAN) {
        const int steps = (int)((c0 + F16_SPAN < cols ? F16_SPAN : cols - c0) / 32);
        for (int t0 = 0; t0 < n; t0 += g) {
            const int T = n - t0 < g ? n - t0 : g;
            for (int t = 0; t < T; t++) {
                const float *src = (const float *)(a + (size_t)(t0 + t) * a_stride) + c0;
                for (int s = 0; s < steps; s++)
                    for (int k = 0; k < 4; k++)
                        _mm256_store_ps(ys + 32 * (T * s + t) + 8 * k, _mm256_loadu_ps(src + 32 * s + 8 * k));
            }
            for (int r = 0; r < rows; r++)
                f16_span_tokens((const uint16_t *)((const char *)w + (size_t)r * w_stride) + c0, steps, ys, T,
                                acc[r] + t0);
        }
    }
    for (int r = 0; r < rows; r++)
        for (int t = 0; t < n; t++)
            y[(size_t)t * ldy + r] = hsum_f32x8(_mm256_add_ps(_mm256_add_ps(acc[r][t][0], acc[r][t][1]),
                                                              _mm256_add_ps(acc[r][t][2], acc[r][t][3])));
}

// F16 has no 4-row kernel, so quad is 0 and every row is vec_dot_f16's.
static void dot_batch_f16(int64_t cols, const void *w, size_t w_stride, int rows, int quad, const void *a,
                          size_t a_stride, int n, float *y, size_t ldy) {
    (void)quad;
    int r = 0;
    if (cols % 32 == 0) {
        for (; r < rows; r += F16_ROWS) {
            const int nr = rows - r < F16_ROWS ? rows - r : F16_ROWS;
            for (int t0 = 0; t0 < n; t0 += F16_BATCH)
                f16_block(cols, (const char *)w + (size_t)r * w_stride, w_stride, nr,
                          (const char *)a + (size_t)t0 * a_stride, a_stride, n - t0 < F16_BATCH ? n - t0 : F16_BATCH,
                          y + (size_t)t0 * ldy + r, ldy);
        }
    }
    // Rows whose length is not a multiple of 32: the single-token kernel per token.
    for (; r < rows; r++) {
        const char *x = (const char *)w + (size_t)r * w_stride;
        for (int t = 0; t < n; t++)
            y[(size_t)t * ldy + r] = lb_kernels_avx2.vec_dot[LB_TYPE_F16](cols, x, (const char *)a + (size_t)t * a_stride);
    }
}

// ---------------------------------------------------------------------------
// 32-element blocks against Q8_0: per block and token, as vec_dot_q8_0 does,
// acc = fma(d_w · d_y, (float)Σ w·y, acc); the sum of w·y with the sign
// trick, maddubs(|w|, sign(y, w)), where |w| is computed once per block.

enum { Q8_TOKENS = 8 };

static inline __attribute__((always_inline)) void q8_block_tokens(__m256i q, float xd, const char *a, size_t a_stride,
                                                                  int64_t i, int T, __m256 *acc) {
    const __m256i aq = _mm256_sign_epi8(q, q), ones = _mm256_set1_epi16(1);
    #pragma GCC unroll 16
    for (int t = 0; t < T; t++) {
        const block_q8_0 *yb = (const block_q8_0 *)(a + (size_t)t * a_stride) + i;
        const __m256 d = _mm256_set1_ps(xd * fp16_to_f32(yb->d));
        const __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, _mm256_sign_epi8(load256(yb->qs), q)), ones);
        acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), acc[t]);
    }
}

// One row of Q8_0 (is_q4 0) or Q4_0 (is_q4 1) blocks against T tokens.
static inline __attribute__((always_inline)) void q8_row(int64_t cols, const void *x, int is_q4, const char *a,
                                                         size_t a_stride, int T, float *out, size_t ldy) {
    __m256 acc[Q8_TOKENS];
    #pragma GCC unroll 16
    for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < cols / QK8_0; i++) {
        if (is_q4) {
            const block_q4_0 *b = (const block_q4_0 *)x + i;
            const __m256i q = _mm256_sub_epi8(unpack_nibbles_32(b->qs), _mm256_set1_epi8(8));
            q8_block_tokens(q, fp16_to_f32(b->d), a, a_stride, i, T, acc);
        } else {
            const block_q8_0 *b = (const block_q8_0 *)x + i;
            q8_block_tokens(load256(b->qs), fp16_to_f32(b->d), a, a_stride, i, T, acc);
        }
    }
    #pragma GCC unroll 16
    for (int t = 0; t < T; t++) out[(size_t)t * ldy] = hsum_f32x8(acc[t]);
}

#define Q8_ROW_CASES(is_q4)                                                  \
    switch (T) {                                                             \
    case 1: q8_row(cols, x, is_q4, a, a_stride, 1, out, ldy); break;         \
    case 2: q8_row(cols, x, is_q4, a, a_stride, 2, out, ldy); break;         \
    case 3: q8_row(cols, x, is_q4, a, a_stride, 3, out, ldy); break;         \
    case 4: q8_row(cols, x, is_q4, a, a_stride, 4, out, ldy); break;         \
    case 5: q8_row(cols, x, is_q4, a, a_stride, 5, out, ldy); break;         \
    case 6: q8_row(cols, x, is_q4, a, a_stride, 6, out, ldy); break;         \
    case 7: q8_row(cols, x, is_q4, a, a_stride, 7, out, ldy); break;         \
    default: q8_row(cols, x, is_q4, a, a_stride, 8, out, ldy); break;        \
    }

static void q8_0_row_tokens(int64_t cols, const void *x, const char *a, size_t a_stride, int T, float *out,
                            size_t ldy) {
    Q8_ROW_CASES(0)
}

static void q4_0_row_tokens(int64_t cols, const void *x, const char *a, size_t a_stride, int T, float *out,
                            size_t ldy) {
    Q8_ROW_CASES(1)
}

typedef void (*row_tokens_fn)(int64_t cols, const void *x, const char *a, size_t a_stride, int T, float *out,
                              size_t ldy);

// Every row against every token, in groups of at most max_t tokens.
static inline void rows_by_groups(row_tokens_fn fn, int max_t, int64_t cols, const void *w, size_t w_stride,
                                  int rows, const void *a, size_t a_stride, int n, float *y, size_t ldy) {
    const int g = group_size(n, max_t);
    for (int r = 0; r < rows; r++) {
        const char *x = (const char *)w + (size_t)r * w_stride;
        for (int t0 = 0; t0 < n; t0 += g)
            fn(cols, x, (const char *)a + (size_t)t0 * a_stride, a_stride, n - t0 < g ? n - t0 : g,
               y + (size_t)t0 * ldy + r, ldy);
    }
}

static void dot_batch_q8_0(int64_t cols, const void *w, size_t w_stride, int rows, int quad, const void *a,
                           size_t a_stride, int n, float *y, size_t ldy) {
    (void)quad;
    rows_by_groups(q8_0_row_tokens, Q8_TOKENS, cols, w, w_stride, rows, a, a_stride, n, y, ldy);
}

static void dot_batch_q4_0(int64_t cols, const void *w, size_t w_stride, int rows, int quad, const void *a,
                           size_t a_stride, int n, float *y, size_t ldy) {
    (void)quad;
    rows_by_groups(q4_0_row_tokens, Q8_TOKENS, cols, w, w_stride, rows, a, a_stride, n, y, ldy);
}

// ---------------------------------------------------------------------------
// k-quants against Q8_K. A super-block's 8 code vectors and their scales are
// unpacked to the stack once; per token each is one maddubs + madd. The
// integer sums equal the single-token kernels' exactly, and the float
// epilogue is written as theirs is, so the compiler emits the same operations.

enum { K_TOKENS = 16 };

struct k_unpacked {
    __m256i codes[8];  // unsigned codes of 32 elements each, in activation order
    __m256i scales[8]; // int16 multipliers for the maddubs pairs of each code vector
};

// As q4_K_block in kernels_avx2.c: d·isum − dmin·summs, which gcc compiles
// there (-mfma) to one fused d·isum − (dmin·summs), the sum then added
// separately. Written out with fmaf so that no compiler choice can differ.
static inline void q4_K_epilogue(const block_q4_K *x, const block_q8_K *y, int isum, int summs, float *sum) {
    const float d = y->d * fp16_to_f32(x->d);
    const float dmin = y->d * fp16_to_f32(x->dmin);
    *sum += fmaf(d, (float)isum, -(dmin * (float)summs));
}

static void q4_K_row_tokens(int64_t cols, const void *xv, const char *a, size_t a_stride, int T, float *out,
                            size_t ldy) {
    const block_q4_K *x = xv;
    const __m256i mask4 = _mm256_set1_epi8(0x0F);
    float sum[K_TOKENS] = {0};
    struct k_unpacked u;
    for (int64_t i = 0; i < cols / QK_K; i++) {
        uint8_t sc[8], m[8];
        for (int j = 0; j < 8; j++) lb_get_scale_min_k4(j, x[i].scales, &sc[j], &m[j]);
        for (int c = 0; c < 4; c++) { // sub-blocks 2c (low nibbles) and 2c+1 (high)
            const __m256i q = load256(x[i].qs + 32 * c);
            u.codes[2 * c] = _mm256_and_si256(q, mask4);
            u.codes[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(q, 4), mask4);
            u.scales[2 * c] = _mm256_set1_epi16((short)sc[2 * c]);
            u.scales[2 * c + 1] = _mm256_set1_epi16((short)sc[2 * c + 1]);
        }
        // m[j] against the pair bsums[2j], bsums[2j+1]: one madd gives the 8 terms.
        const __m256i mins = _mm256_setr_epi16(m[0], m[0], m[1], m[1], m[2], m[2], m[3], m[3], m[4], m[4], m[5], m[5],
                                               m[6], m[6], m[7], m[7]);
    #pragma GCC unroll 16
    for (int t = 0; t < T; t++) {
            const block_q8_K *yb = (const block_q8_K *)(a + (size_t)t * a_stride) + i;
            __m256i acc = _mm256_setzero_si256();
            for (int j = 0; j < 8; j++)
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u.codes[j], load256(yb->qs + 32 * j)),
                                                              u.scales[j]));
            const int summs = hsum_i32x8(_mm256_madd_epi16(load256(yb->bsums), mins));
            q4_K_epilogue(&x[i], yb, hsum_i32x8(acc), summs, &sum[t]);
        }
    }
    #pragma GCC unroll 16
    for (int t = 0; t < T; t++) out[(size_t)t * ldy] = sum[t];
}

// As q6_K_block in kernels_avx2.c: sum += d_w · d_y · isum, the last product
// fused with the add (as gcc compiles it there).
static inline void q6_K_epilogue(const block_q6_K *x, const block_q8_K *y, int isum, float *sum) {
    *sum = fmaf(fp16_to_f32(x->d) * y->d, (float)isum, *sum);
}

static void q6_K_row_tokens(int64_t cols, const void *xv, const char *a, size_t a_stride, int T, float *out,
                            size_t ldy) {
    const block_q6_K *x = xv;
    const __m256i mask4 = _mm256_set1_epi8(0x0F);
    float sum[K_TOKENS] = {0};
    struct k_unpacked u;
    for (int64_t i = 0; i < cols / QK_K; i++) {
        const int8_t *sc = x[i].scales;
        for (int half = 0; half < 2; half++) {
            const __m256i ql0 = load256(x[i].ql + 64 * half);
            const __m256i ql1 = load256(x[i].ql + 64 * half + 32);
            const __m256i qh = load256(x[i].qh + 32 * half);
            __m256i *codes = u.codes + 4 * half; // code + 32 in 0..63, quarters of this half
            codes[0] = _mm256_or_si256(_mm256_and_si256(ql0, mask4),
                                       _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x03)), 4));
            codes[1] = _mm256_or_si256(_mm256_and_si256(ql1, mask4),
                                       _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x0C)), 2));
            codes[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), mask4),
                                       _mm256_and_si256(qh, _mm256_set1_epi8(0x30)));
            codes[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), mask4),
                                       _mm256_srli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8((char)0xC0)), 2));
            for (int k = 0; k < 4; k++) { // 16-element sub-blocks j and j+1 in the two lanes
                const int j = 8 * half + 2 * k;
                u.scales[4 * half + k] = _mm256_set_m128i(_mm_set1_epi16(sc[j + 1]), _mm_set1_epi16(sc[j]));
            }
        }
        // The offset of 32 in the codes comes back out through Σ sc[j]·bsums[j].
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
    #pragma GCC unroll 16
    for (int t = 0; t < T; t++) {
            const block_q8_K *yb = (const block_q8_K *)(a + (size_t)t * a_stride) + i;
            __m256i acc = _mm256_setzero_si256();
            for (int j = 0; j < 8; j++)
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u.codes[j], load256(yb->qs + 32 * j)),
                                                              u.scales[j]));
            const int offset = hsum_i32x8(_mm256_madd_epi16(load256(yb->bsums), sc16));
            q6_K_epilogue(&x[i], yb, hsum_i32x8(acc) - 32 * offset, &sum[t]);
        }
    }
    #pragma GCC unroll 16
    for (int t = 0; t < T; t++) out[(size_t)t * ldy] = sum[t];
}

static void dot_batch_q4_K(int64_t cols, const void *w, size_t w_stride, int rows, int quad, const void *a,
                           size_t a_stride, int n, float *y, size_t ldy) {
    (void)quad;
    rows_by_groups(q4_K_row_tokens, K_TOKENS, cols, w, w_stride, rows, a, a_stride, n, y, ldy);
}

static void dot_batch_q6_K(int64_t cols, const void *w, size_t w_stride, int rows, int quad, const void *a,
                           size_t a_stride, int n, float *y, size_t ldy) {
    (void)quad;
    rows_by_groups(q6_K_row_tokens, K_TOKENS, cols, w, w_stride, rows, a, a_stride, n, y, ldy);
}

const lb_dot_batch_fn lb_dot_batch_avx2[LB_TYPE_COUNT] = {
    [LB_TYPE_F16] = dot_batch_f16,
    [LB_TYPE_Q8_0] = dot_batch_q8_0,
    [LB_TYPE_Q4_0] = dot_batch_q4_0,
    [LB_TYPE_Q4_K] = dot_batch_q4_K,
    [LB_TYPE_Q6_K] = dot_batch_q6_K,
};

#endif // x86
