/*
 * kernels_avx2_int.c — AVX2 dot products for lowbit's integer grid types,
 * FP8 and NF4_DQ (quants_int.c, quants_fp8.c, quants_bnb.c hold the scalar
 * references they are tested against). Compiled, like kernels_avx2.c, with
 * -mavx2 -mfma -mf16c and called only after cpuid said so; the entries join
 * the lb_kernels_avx2 table through LB_AVX2_INT_VEC_DOTS (kernels_avx2_int.h).
 *
 * Versions:
 *   integer grids (8/4/3/2 bits, symmetric or zero point, per channel or per
 *     group): each 32-code chunk is unpacked to 32 bytes, its integer dot
 *     with the Q8_0 activation block is exact (8 int32 lanes), then scaled in
 *     8 float lanes with FMA, as Q4_0's kernel does. Codes minus zero fit an
 *     int8 up to 4 bits; for 8-bit codes with a zero point, q − z does not, so
 *     the kernel uses (q − 128)·a + (128 − z)·Σa, both exact.
 *   FP8: codes become fp16 bit patterns (E5M2 is the top byte of an fp16;
 *     E4M3 re-biased by a shift and a power-of-two factor folded into the row
 *     scale, its NaN code patched in), converted with F16C and multiplied
 *     into f32 activations with FMA.
 *   NF4_DQ: the 16-entry NF4 table in two registers (as the NF4 kernel in
 *     kernels_avx2.c), per block one decoded absmax.
 * Only the float accumulation order differs from the scalar code. The small
 * helpers at the top repeat kernels_avx2.c's (they are static there, and that
 * file is kept as it is).
 *
 * The integer grids' AVX-512 versions are in kernels_avx512.c.
 */
#if defined(__x86_64__) || defined(__i386__)

#include "kernels_avx2_int.h"

#include <immintrin.h>

#include "simd_avx2.h"
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "fp16.h"
#include "quants.h"

// ---------------------------------------------------------------------------
// Helpers

// Sums of 4 adjacent products of unsigned bytes u (at most 128 here) and
// signed bytes s (> −128, as every Q8_0 quantizer writes them): 8 int32.
static inline __m256i dot_u8_i8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

static inline __m256i dot_i8_i8(__m256i x, __m256i y) {
    return dot_u8_i8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

// ---------------------------------------------------------------------------
// Integer grids


// Exact Σ (q − z)·a over one chunk, as 8 int32 lanes.
static inline __m256i chunk_dot(int bits, bool zp, const uint8_t *p, int z, const int8_t *a) {
    const __m256i q = unpack_chunk(bits, p), y = load256(a);
    if (bits < 8) return dot_i8_i8(_mm256_sub_epi8(q, _mm256_set1_epi8((char)z)), y);
    const __m256i centred = dot_i8_i8(_mm256_xor_si256(q, _mm256_set1_epi8((char)0x80)), y); // (q − 128)·a
    if (!zp) return centred;
    const __m256i sum_a = dot_u8_i8(_mm256_set1_epi8(1), y);
    return _mm256_add_epi32(centred, _mm256_mullo_epi32(sum_a, _mm256_set1_epi32(128 - z)));
}

static inline float int_dot(int bits, int group, bool zp, int64_t n, const void *w, const void *a) {
    const block_q8_0 *y = a;
    const uint8_t *p = w;
    const int chunk = LB_INT_CHUNK_BYTES(bits);
    __m256 acc = _mm256_setzero_ps();
    if (group == 0) { // per channel: d and z in the row header, d applied once
        lb_row_header_zp h = {0};
        memcpy(&h, p, zp ? sizeof(lb_row_header_zp) : sizeof(lb_row_header_sym));
        const int z = zp ? h.z : 1 << (bits - 1);
        p += zp ? sizeof(lb_row_header_zp) : sizeof(lb_row_header_sym);
        for (int64_t j = 0; j < n / 32; j++, p += chunk) {
            const __m256i dot = chunk_dot(bits, zp, p, z, y[j].qs);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(fp16_to_f32(y[j].d)), _mm256_cvtepi32_ps(dot), acc);
        }
        return hsum_f32x8(acc) * h.d;
    }
    const int header = zp ? 4 : 2;
    for (int64_t k = 0; k < n / group; k++) {
        uint16_t d16;
        memcpy(&d16, p, 2);
        const float d = fp16_to_f32(d16);
        const int z = zp ? p[2] : 1 << (bits - 1);
        p += header;
        for (int j = 0; j < group / 32; j++, p += chunk, y++) {
            const __m256i dot = chunk_dot(bits, zp, p, z, y->qs);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * fp16_to_f32(y->d)), _mm256_cvtepi32_ps(dot), acc);
        }
    }
    return hsum_f32x8(acc);
}

#define LB_AVX2_INT_DEFINE(ID, fn, bits, group, zp)                                                \
    float lb_avx2_vec_dot_##fn(int64_t n, const void *w, const void *a) {                         \
        return int_dot(bits, group, zp, n, w, a);                                                 \
    }
LB_INT_TYPES(LB_AVX2_INT_DEFINE)

// ---------------------------------------------------------------------------
// FP8

// Eight codes as fp16 bit patterns. E5M2 is exactly the top byte of an fp16.
// E4M3's magnitude shifted left 7 is an fp16 of the same mantissa whose
// exponent is biased by 15 instead of 7: value · 2^−8, subnormals included
// (E4M3's smallest, 2^−9, becomes 2^−17, an fp16 subnormal); the caller
// multiplies by 2^8. Its NaN (magnitude 0x7F) becomes an fp16 NaN.
static inline __m128i fp8_to_fp16_bits(bool e4m3, const uint8_t *p) {
    const __m128i c = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)p));
    if (!e4m3) return _mm_slli_epi16(c, 8);
    const __m128i mag = _mm_and_si128(c, _mm_set1_epi16(0x7F));
    const __m128i sign = _mm_slli_epi16(_mm_and_si128(c, _mm_set1_epi16(0x80)), 8);
    const __m128i bits = _mm_or_si128(sign, _mm_slli_epi16(mag, 7));
    const __m128i nan = _mm_cmpeq_epi16(mag, _mm_set1_epi16(0x7F));
    return _mm_blendv_epi8(bits, _mm_or_si128(sign, _mm_set1_epi16(0x7E00)), nan);
}

static inline float fp8_dot(bool e4m3, int64_t n, const void *w, const void *a) {
    lb_row_header_sym h;
    memcpy(&h, w, sizeof h);
    const uint8_t *q = (const uint8_t *)w + sizeof h;
    const float *y = a;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_cvtph_ps(fp8_to_fp16_bits(e4m3, q + i)), _mm256_loadu_ps(y + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtph_ps(fp8_to_fp16_bits(e4m3, q + i + 8)), _mm256_loadu_ps(y + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(_mm256_cvtph_ps(fp8_to_fp16_bits(e4m3, q + i)), _mm256_loadu_ps(y + i), acc0);
    float sum = hsum_f32x8(_mm256_add_ps(acc0, acc1));
    if (e4m3) sum *= 256.0f;
    for (; i < n; i++) sum += (e4m3 ? lb_fp8_e4m3_to_f32(q[i]) : lb_fp8_e5m2_to_f32(q[i])) * y[i];
    return sum * h.d;
}

float lb_avx2_vec_dot_fp8_e4m3(int64_t n, const void *w, const void *a) { return fp8_dot(true, n, w, a); }
float lb_avx2_vec_dot_fp8_e5m2(int64_t n, const void *w, const void *a) { return fp8_dot(false, n, w, a); }

// ---------------------------------------------------------------------------
// NF4_DQ

// Elements 8k..8k+7 of a block through the NF4 table held in two registers:
// element 2i is the high nibble of byte i, so lane l shifts by 8(l/2) + 4·!(l&1).
static inline __m256 nf4_lookup8(const uint8_t *qs, __m256 lo, __m256 hi) {
    uint32_t bytes;
    memcpy(&bytes, qs, sizeof bytes);
    const __m256i shift = _mm256_setr_epi32(4, 0, 12, 8, 20, 16, 28, 24);
    const __m256i idx = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)bytes), shift), _mm256_set1_epi32(15));
    const __m256 from_lo = _mm256_permutevar8x32_ps(lo, idx), from_hi = _mm256_permutevar8x32_ps(hi, idx);
    return _mm256_blendv_ps(from_lo, from_hi, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

float lb_avx2_vec_dot_nf4_dq(int64_t n, const void *w, const void *a) {
    lb_row_header_dq h;
    memcpy(&h, w, sizeof h);
    const block_nf4_dq *x = (const block_nf4_dq *)((const char *)w + sizeof h);
    const float *y = a;
    const __m256 lo = _mm256_loadu_ps(lb_nf4_table), hi = _mm256_loadu_ps(lb_nf4_table + 8);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_BNB4; i++, y += QK_BNB4) {
        __m256 block = _mm256_setzero_ps();
        for (int k = 0; k < QK_BNB4 / 8; k++)
            block = _mm256_fmadd_ps(nf4_lookup8(x[i].qs + 4 * k, lo, hi), _mm256_loadu_ps(y + 8 * k), block);
        const float d = lb_bnb_dynamic_map[x[i].absmax] * h.scale + h.offset;
        acc = _mm256_fmadd_ps(block, _mm256_set1_ps(d), acc);
    }
    return hsum_f32x8(acc);
}

#endif // x86
