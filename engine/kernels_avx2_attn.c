/*
 * kernels_avx2_attn.c — AVX2 (+FMA) inner kernels of the tiled attention
 * (attention.c; scalar references there). d is a multiple of 8.
 *
 * Scores: two query rows against four key rows at a time, eight
 * accumulators of 8 lanes over d, then one hadd tree per row turns four
 * accumulators into four scores. A key left over (nk % 4) or a query left
 * over (nq odd) goes through the same per-lane FMA chain and the same
 * reduction tree ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7)), so a score never
 * depends on which keys or queries share its tile: attention stays
 * batch-independent.
 */
#if defined(__x86_64__) || defined(__i386__)

#include "attention.h"

#include <immintrin.h>

// [hsum a0, hsum a1, hsum a2, hsum a3], each in the order above.
static inline __m128 reduce4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

static inline float reduce1(__m256 a) {
    const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a, a), _mm256_hadd_ps(a, a));
    return _mm_cvtss_f32(_mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)));
}

// Rows q[0..nr) (nr = 1 or 2, a constant after inlining) against keys k[0..4).
static inline __attribute__((always_inline)) void scores_4keys(int d, int nr, const float *q, const float *k, float *s, int lds) {
    __m256 acc[2][4];
#pragma GCC unroll 2
    for (int r = 0; r < 2; r++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) acc[r][j] = _mm256_setzero_ps();
    for (int x = 0; x < d; x += 8) {
        __m256 kv[4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) kv[j] = _mm256_loadu_ps(k + (size_t)j * d + x);
#pragma GCC unroll 2
        for (int r = 0; r < nr; r++) {
            const __m256 qv = _mm256_loadu_ps(q + (size_t)r * d + x);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) acc[r][j] = _mm256_fmadd_ps(qv, kv[j], acc[r][j]);
        }
    }
#pragma GCC unroll 2
    for (int r = 0; r < nr; r++) _mm_storeu_ps(s + (size_t)r * lds, reduce4(acc[r][0], acc[r][1], acc[r][2], acc[r][3]));
}

void lb_attn_scores_avx2(int d, int nq, const float *q, int nk, const float *k, float *s, int lds) {
    for (int i = 0; i < nq; i += 2) {
        const int nr = nq - i < 2 ? 1 : 2;
        const float *qi = q + (size_t)i * d;
        float *si = s + (size_t)i * lds;
        int j = 0;
        for (; j + 4 <= nk; j += 4) {
            if (nr == 2) scores_4keys(d, 2, qi, k + (size_t)j * d, si + j, lds);
            else scores_4keys(d, 1, qi, k + (size_t)j * d, si + j, lds);
        }
        for (; j < nk; j++)
            for (int r = 0; r < nr; r++) {
                __m256 acc = _mm256_setzero_ps();
                for (int x = 0; x < d; x += 8)
                    acc = _mm256_fmadd_ps(_mm256_loadu_ps(qi + (size_t)r * d + x), _mm256_loadu_ps(k + (size_t)j * d + x), acc);
                si[(size_t)r * lds + j] = reduce1(acc);
            }
    }
}

// o = o·alpha + Σ_j p[j]·v_j, 64 dimensions (8 vectors) at a time in
// registers; a rest of fewer than 64 one vector at a time (same operations
// per element).
void lb_attn_accum_avx2(int d, int nk, const float *p, const float *v, float alpha, float *o) {
    const __m256 va = _mm256_set1_ps(alpha);
    int x0 = 0;
    for (; x0 + 64 <= d; x0 += 64) {
        __m256 acc[8];
#pragma GCC unroll 8
        for (int u = 0; u < 8; u++) acc[u] = _mm256_mul_ps(_mm256_loadu_ps(o + x0 + 8 * u), va);
        for (int j = 0; j < nk; j++) {
            const __m256 pj = _mm256_set1_ps(p[j]);
            const float *vj = v + (size_t)j * d + x0;
#pragma GCC unroll 8
            for (int u = 0; u < 8; u++) acc[u] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 8 * u), acc[u]);
        }
#pragma GCC unroll 8
        for (int u = 0; u < 8; u++) _mm256_storeu_ps(o + x0 + 8 * u, acc[u]);
    }
    for (; x0 < d; x0 += 8) {
        __m256 acc = _mm256_mul_ps(_mm256_loadu_ps(o + x0), va);
        for (int j = 0; j < nk; j++) acc = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), _mm256_loadu_ps(v + (size_t)j * d + x0), acc);
        _mm256_storeu_ps(o + x0, acc);
    }
}

#endif
