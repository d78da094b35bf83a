/*
 * kernels_avx2_x8.c — AVX2 kernels for weights packed in 8-row groups
 * (layouts in repack.h, scalar references in repack.c). Compiled with
 * -mavx2 -mfma -mf16c and called only when cpuid says so (kernels.c).
 *
 * One 32-byte vector of a packed group holds 4 consecutive codes of each of
 * the 8 rows (row r in int32 lane r). Four activation bytes broadcast to all
 * lanes, maddubs and madd give the 8 rows' partial sums in 8 int32 lanes,
 * so a block ends with one scale vector and one FMA for 8 rows, and there is
 * no horizontal sum anywhere. Codes are kept unsigned for maddubs (its first
 * operand); offsets (Q4_0: 8, Q6_K: 32) come back out through activation sums.
 *
 * Tokens go 4 at a time ("tiles"): each weight vector is unpacked once and
 * multiplied into 4 activation rows. Every token gets the same operations in
 * the same order whatever the tile, so results are bit-identical to the
 * scalar references (repack.c) and independent of the batch size.
 *
 * int16 headroom (maddubs sums two products into int16):
 *   Q4_0, Q4_K: codes ≤ 15, |a| ≤ 127: a pair ≤ 3810, 8 pairs summed ≤ 30480;
 *   Q6_K: codes ≤ 63: a pair ≤ 16002, two pairs summed ≤ 32004;
 *   Q8_0: signed codes by the sign trick, pair ≤ 32258: straight to int32.
 */
#if defined(__x86_64__) || defined(__i386__)

#include "repack.h"

#include <immintrin.h>
#include <string.h>

#include "blocks.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

// Loops over the tokens of a tile are unrolled, so per-token accumulators
// live in registers; the loops over a block's vectors stay rolled (fully
// unrolled, gcc hoists every load and spills). Checked with llvm-mca.
#define EACH_TOKEN(t) _Pragma("GCC unroll 4") for (int t = 0; t < T; t++)

static ALWAYS_INLINE __m256i load256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

// Four activation bytes in every int32 lane.
static ALWAYS_INLINE __m256i bcast4(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

static ALWAYS_INLINE __m256 fp16x8(const void *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

static ALWAYS_INLINE const void *act_row(const void *act, size_t stride, int t) {
    return (const char *)act + (size_t)t * stride;
}

// ---------------------------------------------------------------------------
// Q4_0 × Q8_0

static ALWAYS_INLINE void q4_0_tile(const int T, const bool stream, int64_t nb, const uint8_t *group, const void *act,
                                    size_t stride, const int32_t *aux, size_t aux_stride, float *y, size_t ldy) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    const block_q8_0 *a[4];
    __m256 acc[4];
    EACH_TOKEN(t) {
        a[t] = act_row(act, stride, t);
        acc[t] = _mm256_setzero_ps();
    }
    const uint8_t *col = group;
    for (int64_t b = 0; b < nb; b++, col += 8 * sizeof(block_q4_0)) {
        if (stream) lb_x8_prefetch(col, 8 * sizeof(block_q4_0));
        __m256i s16[4];
        EACH_TOKEN(t) s16[t] = _mm256_setzero_si256();
        for (int k = 0; k < 4; k++) {
            const __m256i v = load256(col + 16 + 32 * k);
            const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            EACH_TOKEN(t) {
                const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, bcast4(a[t][b].qs + 4 * k)),
                                                   _mm256_maddubs_epi16(hi, bcast4(a[t][b].qs + 16 + 4 * k)));
                s16[t] = _mm256_add_epi16(s16[t], p);
            }
        }
        const __m256 dw = fp16x8(col);
        EACH_TOKEN(t) {
            const __m256i isum = _mm256_sub_epi32(_mm256_madd_epi16(s16[t], ones),
                                                  _mm256_set1_epi32(aux[(size_t)t * aux_stride + b]));
            const __m256 d = _mm256_mul_ps(dw, _mm256_set1_ps(_cvtsh_ss(a[t][b].d)));
            acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(isum), acc[t]);
        }
    }
    EACH_TOKEN(t) _mm256_storeu_ps(y + (size_t)t * ldy, acc[t]);
}

void lb_gemm_x8_q4_0_avx2(int64_t cols, const void *group, const void *act, size_t stride, const int32_t *aux,
                         size_t aux_stride, int n, float *y, size_t ldy) {
    const int64_t nb = cols / QK4_0;
    const bool stream = n < LB_X8_STREAM_MAX_TOKENS; // see lb_x8_prefetch
    int t = 0;
    for (; t + 4 <= n; t += 4)
        q4_0_tile(4, stream && t == 0, nb, group, act_row(act, stride, t), stride, aux + (size_t)t * aux_stride,
                  aux_stride, y + (size_t)t * ldy, ldy);
    for (; t < n; t++)
        q4_0_tile(1, stream && t == 0, nb, group, act_row(act, stride, t), stride, aux + (size_t)t * aux_stride,
                  aux_stride, y + (size_t)t * ldy, ldy);
}

// ---------------------------------------------------------------------------
// Q8_0 × Q8_0

static ALWAYS_INLINE void q8_0_tile(const int T, const bool stream, int64_t nb, const uint8_t *group, const void *act,
                                    size_t stride,
                                    float *y, size_t ldy) {
    const __m256i ones = _mm256_set1_epi16(1);
    const block_q8_0 *a[4];
    __m256 acc[4];
    EACH_TOKEN(t) {
        a[t] = act_row(act, stride, t);
        acc[t] = _mm256_setzero_ps();
    }
    const uint8_t *col = group;
    for (int64_t b = 0; b < nb; b++, col += 8 * sizeof(block_q8_0)) {
        if (stream) lb_x8_prefetch(col, 8 * sizeof(block_q8_0));
        __m256i s32[4];
        EACH_TOKEN(t) s32[t] = _mm256_setzero_si256();
        for (int g = 0; g < 8; g++) {
            const __m256i w = load256(col + 16 + 32 * g);
            const __m256i aw = _mm256_sign_epi8(w, w);
            EACH_TOKEN(t) {
                const __m256i p = _mm256_madd_epi16(
                    _mm256_maddubs_epi16(aw, _mm256_sign_epi8(bcast4(a[t][b].qs + 4 * g), w)), ones);
                s32[t] = _mm256_add_epi32(s32[t], p);
            }
        }
        const __m256 dw = fp16x8(col);
        EACH_TOKEN(t) {
            const __m256 d = _mm256_mul_ps(dw, _mm256_set1_ps(_cvtsh_ss(a[t][b].d)));
            acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s32[t]), acc[t]);
        }
    }
    EACH_TOKEN(t) _mm256_storeu_ps(y + (size_t)t * ldy, acc[t]);
}

void lb_gemm_x8_q8_0_avx2(int64_t cols, const void *group, const void *act, size_t stride, const int32_t *aux,
                         size_t aux_stride, int n, float *y, size_t ldy) {
    const int64_t nb = cols / QK8_0;
    const bool stream = n < LB_X8_STREAM_MAX_TOKENS; // see lb_x8_prefetch
    int t = 0;
    for (; t + 4 <= n; t += 4)
        q8_0_tile(4, stream && t == 0, nb, group, act_row(act, stride, t), stride, y + (size_t)t * ldy, ldy);
    for (; t < n; t++)
        q8_0_tile(1, stream && t == 0, nb, group, act_row(act, stride, t), stride, y + (size_t)t * ldy, ldy);
}

// ---------------------------------------------------------------------------
// Scale vectors from [s][r] bytes: 16 bytes (sub-blocks s and s+1, 8 rows
// each) broadcast to both 128-bit lanes, then shuffled so that int32 lane r
// holds two int16s.

#define Z -1
// (x[s][r], x[s][r]) zero-extended, from bytes 0-7 (SUB0) or 8-15 (SUB1).
static const int8_t SUB0[32] = {0, Z, 0, Z, 1, Z, 1, Z, 2, Z, 2, Z, 3, Z, 3, Z,
                                4, Z, 4, Z, 5, Z, 5, Z, 6, Z, 6, Z, 7, Z, 7, Z};
static const int8_t SUB1[32] = {8, Z, 8, Z, 9, Z, 9, Z, 10, Z, 10, Z, 11, Z, 11, Z,
                                12, Z, 12, Z, 13, Z, 13, Z, 14, Z, 14, Z, 15, Z, 15, Z};
// (x[s][r], x[s+1][r]) zero-extended.
static const int8_t PAIR[32] = {0, Z, 8, Z, 1, Z, 9, Z, 2, Z, 10, Z, 3, Z, 11, Z,
                                4, Z, 12, Z, 5, Z, 13, Z, 6, Z, 14, Z, 7, Z, 15, Z};
// The same with the byte in the high half of each int16 (sign-extended by a
// later arithmetic shift right by 8).
static const int8_t SUB0_HI[32] = {Z, 0, Z, 0, Z, 1, Z, 1, Z, 2, Z, 2, Z, 3, Z, 3,
                                   Z, 4, Z, 4, Z, 5, Z, 5, Z, 6, Z, 6, Z, 7, Z, 7};
static const int8_t SUB1_HI[32] = {Z, 8, Z, 8, Z, 9, Z, 9, Z, 10, Z, 10, Z, 11, Z, 11,
                                   Z, 12, Z, 12, Z, 13, Z, 13, Z, 14, Z, 14, Z, 15, Z, 15};
static const int8_t PAIR_HI[32] = {Z, 0, Z, 8, Z, 1, Z, 9, Z, 2, Z, 10, Z, 3, Z, 11,
                                   Z, 4, Z, 12, Z, 5, Z, 13, Z, 6, Z, 14, Z, 7, Z, 15};
#undef Z

static ALWAYS_INLINE __m256i ctrl(const int8_t *c) { return load256(c); }
static ALWAYS_INLINE __m256i bcast16(const void *p) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
}

// ---------------------------------------------------------------------------
// Q4_K × Q8_K

enum { Q4K_COL = 8 * sizeof(block_q4_K), Q4K_DMIN = 16, Q4K_SC = 32, Q4K_MN = 96, Q4K_QS = 128 };

static ALWAYS_INLINE void q4_K_tile(const int T, const bool stream, int64_t nb, const uint8_t *group, const void *act,
                                    size_t stride,
                                    float *y, size_t ldy) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m6 = _mm256_set1_epi8(0x3F), m30 = _mm256_set1_epi8(0x30);
    const block_q8_K *a[4];
    __m256 acc[4];
    EACH_TOKEN(t) {
        a[t] = act_row(act, stride, t);
        acc[t] = _mm256_setzero_ps();
    }
    const uint8_t *col = group;
    for (int64_t b = 0; b < nb; b++, col += Q4K_COL) {
        if (stream) lb_x8_prefetch(col, Q4K_COL);
        __m256i isum[4];
        EACH_TOKEN(t) isum[t] = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i lo16[4], hi16[4];
            EACH_TOKEN(t) lo16[t] = hi16[t] = _mm256_setzero_si256();
            for (int g = 0; g < 8; g++) {
                const __m256i v = load256(col + Q4K_QS + 256 * c + 32 * g);
                const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                EACH_TOKEN(t) {
                    const __m256i pl = _mm256_maddubs_epi16(lo, bcast4(a[t][b].qs + 64 * c + 4 * g));
                    const __m256i ph = _mm256_maddubs_epi16(hi, bcast4(a[t][b].qs + 64 * c + 32 + 4 * g));
                    lo16[t] = _mm256_add_epi16(lo16[t], pl);
                    hi16[t] = _mm256_add_epi16(hi16[t], ph);
                }
            }
            const __m256i scb = _mm256_and_si256(bcast16(col + Q4K_SC + 16 * c), m6);
            const __m256i sc_lo = _mm256_shuffle_epi8(scb, ctrl(SUB0)), sc_hi = _mm256_shuffle_epi8(scb, ctrl(SUB1));
            EACH_TOKEN(t) {
                const __m256i p = _mm256_add_epi32(_mm256_madd_epi16(lo16[t], sc_lo), _mm256_madd_epi16(hi16[t], sc_hi));
                isum[t] = _mm256_add_epi32(isum[t], p);
            }
        }
        // Mins: 6 bits from the mn nibbles and the top 2 bits of the sc bytes.
        const __m256i mn = load256(col + Q4K_MN);
        const __m256i min03 = _mm256_or_si256(_mm256_and_si256(mn, m4),
                                              _mm256_and_si256(_mm256_srli_epi16(load256(col + Q4K_SC), 2), m30));
        const __m256i min47 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(mn, 4), m4),
                                              _mm256_and_si256(_mm256_srli_epi16(load256(col + Q4K_SC + 32), 2), m30));
        __m256i mpair[4]; // (min[r][2p], min[r][2p+1]) in int32 lane r
        mpair[0] = _mm256_shuffle_epi8(_mm256_permute2x128_si256(min03, min03, 0x00), ctrl(PAIR));
        mpair[1] = _mm256_shuffle_epi8(_mm256_permute2x128_si256(min03, min03, 0x11), ctrl(PAIR));
        mpair[2] = _mm256_shuffle_epi8(_mm256_permute2x128_si256(min47, min47, 0x00), ctrl(PAIR));
        mpair[3] = _mm256_shuffle_epi8(_mm256_permute2x128_si256(min47, min47, 0x11), ctrl(PAIR));
        const __m256 dw = fp16x8(col), dm = fp16x8(col + Q4K_DMIN);
        EACH_TOKEN(t) {
            // Sums of each 32-element sub-block of the activation: (s, s+1) pairs as int32s.
            const __m128i bs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)a[t][b].bsums),
                                              _mm_loadu_si128((const __m128i *)(a[t][b].bsums + 8)));
            const __m256i bsp = _mm256_broadcastsi128_si256(bs);
            __m256i msum = _mm256_madd_epi16(mpair[0], _mm256_shuffle_epi32(bsp, 0x00));
            msum = _mm256_add_epi32(msum, _mm256_madd_epi16(mpair[1], _mm256_shuffle_epi32(bsp, 0x55)));
            msum = _mm256_add_epi32(msum, _mm256_madd_epi16(mpair[2], _mm256_shuffle_epi32(bsp, 0xAA)));
            msum = _mm256_add_epi32(msum, _mm256_madd_epi16(mpair[3], _mm256_shuffle_epi32(bsp, 0xFF)));
            const __m256 da = _mm256_set1_ps(a[t][b].d);
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(da, dw), _mm256_cvtepi32_ps(isum[t]), acc[t]);
            acc[t] = _mm256_fnmadd_ps(_mm256_mul_ps(da, dm), _mm256_cvtepi32_ps(msum), acc[t]);
        }
    }
    EACH_TOKEN(t) _mm256_storeu_ps(y + (size_t)t * ldy, acc[t]);
}

void lb_gemm_x8_q4_K_avx2(int64_t cols, const void *group, const void *act, size_t stride, const int32_t *aux,
                         size_t aux_stride, int n, float *y, size_t ldy) {
    const int64_t nb = cols / QK_K;
    const bool stream = n < LB_X8_STREAM_MAX_TOKENS; // see lb_x8_prefetch
    int t = 0;
    for (; t + 4 <= n; t += 4)
        q4_K_tile(4, stream && t == 0, nb, group, act_row(act, stride, t), stride, y + (size_t)t * ldy, ldy);
    for (; t < n; t++)
        q4_K_tile(1, stream && t == 0, nb, group, act_row(act, stride, t), stride, y + (size_t)t * ldy, ldy);
}

// ---------------------------------------------------------------------------
// Q6_K × Q8_K

enum { Q6K_COL = 8 * sizeof(block_q6_K), Q6K_SC = 16, Q6K_QS = 144 };

static ALWAYS_INLINE void q6_K_tile(const int T, const bool stream, int64_t nb, const uint8_t *group, const void *act,
                                    size_t stride,
                                    float *y, size_t ldy) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(0x03);
    const block_q8_K *a[4];
    __m256 acc[4];
    EACH_TOKEN(t) {
        a[t] = act_row(act, stride, t);
        acc[t] = _mm256_setzero_ps();
    }
    const uint8_t *col = group;
    for (int64_t b = 0; b < nb; b++, col += Q6K_COL) {
        if (stream) lb_x8_prefetch(col, Q6K_COL);
        __m256i isum[4];
        EACH_TOKEN(t) isum[t] = _mm256_setzero_si256();
        // Quarter k of half h (elements 128h + 32k .. +31, sub-blocks 8h+2k
        // for groups 0-3 and 8h+2k+1 for 4-7): low bits in ql vector k & 1,
        // nibble k >> 1; high bits at 2k in the qh vector. The loops stay
        // rolled with the shifts as variables: fully unrolled, the compiler
        // hoists every load and spills.
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 4; k++) {
                const __m128i lshift = _mm_cvtsi32_si128(4 * (k >> 1)), hshift = _mm_cvtsi32_si128(2 * k);
                const uint8_t *qv = col + Q6K_QS + 96 * 8 * h;
                const int8_t *sc = (const int8_t *)col + Q6K_SC + 8 * (8 * h + 2 * k);
                const __m256i scb = bcast16(sc);
                for (int half = 0; half < 2; half++) {
                    const __m256i scv = _mm256_srai_epi16(_mm256_shuffle_epi8(scb, ctrl(half ? SUB1_HI : SUB0_HI)), 8);
                    for (int gp = 2 * half; gp < 2 * half + 2; gp++) {
                        __m256i p16[4];
                        EACH_TOKEN(t) p16[t] = _mm256_setzero_si256();
                        for (int gg = 0; gg < 2; gg++) {
                            const int g = 2 * gp + gg;
                            const __m256i ql = load256(qv + 96 * g + 32 * (k & 1)), qh = load256(qv + 96 * g + 64);
                            const __m256i low = _mm256_and_si256(_mm256_srl_epi16(ql, lshift), m4);
                            const __m256i high = _mm256_and_si256(_mm256_srl_epi16(qh, hshift), m3);
                            const __m256i code = _mm256_or_si256(low, _mm256_slli_epi16(high, 4));
                            EACH_TOKEN(t) {
                                const __m256i x = _mm256_maddubs_epi16(code, bcast4(a[t][b].qs + 128 * h + 32 * k + 4 * g));
                                p16[t] = _mm256_add_epi16(p16[t], x);
                            }
                        }
                        EACH_TOKEN(t) isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(p16[t], scv));
                    }
                }
            }
        // The 32 offset: 32 · Σ_s sc[r][s] · bsums[s], over pairs of sub-blocks.
        __m256i off[4];
        EACH_TOKEN(t) off[t] = _mm256_setzero_si256();
        for (int q = 0; q < 4; q++) { // bytes 32q .. 32q+31 of sc: sub-blocks 4q .. 4q+3 in 16-byte halves
            const __m256i sc_lo = bcast16(col + Q6K_SC + 32 * q), sc_hi = bcast16(col + Q6K_SC + 32 * q + 16);
            const __m256i pair0 = _mm256_srai_epi16(_mm256_shuffle_epi8(sc_lo, ctrl(PAIR_HI)), 8);
            const __m256i pair1 = _mm256_srai_epi16(_mm256_shuffle_epi8(sc_hi, ctrl(PAIR_HI)), 8);
            EACH_TOKEN(t) {
                off[t] = _mm256_add_epi32(off[t], _mm256_madd_epi16(pair0, bcast4(a[t][b].bsums + 4 * q)));
                off[t] = _mm256_add_epi32(off[t], _mm256_madd_epi16(pair1, bcast4(a[t][b].bsums + 4 * q + 2)));
            }
        }
        const __m256 dw = fp16x8(col);
        EACH_TOKEN(t) {
            const __m256i total = _mm256_sub_epi32(isum[t], _mm256_slli_epi32(off[t], 5));
            const __m256 d = _mm256_mul_ps(_mm256_set1_ps(a[t][b].d), dw);
            acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(total), acc[t]);
        }
    }
    EACH_TOKEN(t) _mm256_storeu_ps(y + (size_t)t * ldy, acc[t]);
}

void lb_gemm_x8_q6_K_avx2(int64_t cols, const void *group, const void *act, size_t stride, const int32_t *aux,
                         size_t aux_stride, int n, float *y, size_t ldy) {
    const int64_t nb = cols / QK_K;
    const bool stream = n < LB_X8_STREAM_MAX_TOKENS; // see lb_x8_prefetch
    int t = 0;
    for (; t + 4 <= n; t += 4)
        q6_K_tile(4, stream && t == 0, nb, group, act_row(act, stride, t), stride, y + (size_t)t * ldy, ldy);
    for (; t < n; t++)
        q6_K_tile(1, stream && t == 0, nb, group, act_row(act, stride, t), stride, y + (size_t)t * ldy, ldy);
}


#endif // x86
