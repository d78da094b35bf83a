/*
 * kernels_avx2.c — AVX2 (+FMA, F16C) dot products and activation quantizers.
 * Compiled with -mavx2 -mfma -mf16c, called only when cpuid says the CPU has
 * them (kernels.c), so nothing here may run before that check.
 *
 * What is SIMD here (everything else is NULL and falls back to the scalar
 * reference in quants_*.c through lb_kernel_vec_dot / lb_kernel_from_float):
 *   vec_dot:    F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
 *               Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, NF4, FP4
 *   from_float: Q8_0, Q8_1, Q8_K (bit-identical to the reference quantizers)
 *
 * How results relate to the scalar reference: the integer part of every dot
 * product is computed exactly (per block for the 32-element types, per
 * super-block for k-quants), so only the float accumulation order differs.
 * The legacy types accumulate block results in 8 float lanes with FMA, as
 * ggml does; the k-quants reduce each super-block's integers exactly and then
 * do the same float operations as the scalar code.
 *
 * One limit shared with ggml: the signed 8-bit products use the
 * sign/maddubs trick, which needs activation codes > -128. Our Q8
 * quantizers never produce -128.
 */
#if defined(__x86_64__) || defined(__i386__)

#include "types.h"

#include <immintrin.h>

#include "simd_avx2.h"
#include <math.h>
#include <string.h>

#include "fp16.h"
#include "kernels_avx2_int.h"
#include "quants.h"
#include "attention.h"
#include "model.h"
#include "repack.h"
#include "kernels_batch.h"

// ---------------------------------------------------------------------------
// Helpers

static inline float hmax_f32x8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// 0xFF in each byte of v whose `bit` is set.
static inline __m256i test_bit_bytes(__m256i v, int bit) {
    const __m256i m = _mm256_set1_epi8((char)(1 << bit));
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, m), m);
}

// Sums of 4 adjacent products of unsigned bytes u (<= 127 in practice:
// maddubs saturates pairs above 32767) and signed bytes s: 8 int32.
static inline __m256i dot_u8_i8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// The same for two signed operands: move x's sign onto y, then use |x|.
static inline __m256i dot_i8_i8(__m256i x, __m256i y) {
    return dot_u8_i8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

// maddubs pairs p (16 int16, elements of two 16-element sub-blocks: lane 0
// is the first) weighted by those sub-blocks' scales: 8 int32.
static inline __m256i scale_pairs(__m256i p, int scale_lo, int scale_hi) {
    const __m256i scales = _mm256_set_m128i(_mm_set1_epi16((short)scale_hi), _mm_set1_epi16((short)scale_lo));
    return _mm256_madd_epi16(p, scales);
}

// ---------------------------------------------------------------------------
// Float types: 4 accumulators hide the FMA latency; the tail is scalar.
// Loops over accumulator arrays carry `#pragma GCC unroll`: the build's -O2
// does not unroll them on its own and would keep the accumulators in memory,
// a store-to-load chain per FMA (F16 decode ran at 58 % of bandwidth).

static float vec_dot_f32(int64_t n, const void *w, const void *a) {
    const float *x = w, *y = a;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        #pragma GCC unroll 4
        for (int k = 0; k < 4; k++)
            acc[k] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8 * k), _mm256_loadu_ps(y + i + 8 * k), acc[k]);
    }
    for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc[0]);
    float sum = hsum_f32x8(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++) sum += x[i] * y[i];
    return sum;
}

static inline __m256 load_bf16x8(const uint16_t *p) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}

// F16 decode reads a matrix row after row, each thread through a long run of
// rows (matmul.c): one stream, with the lines F16_PREFETCH_DISTANCE bytes
// ahead asked for, and four 8-lane FMA chains per row (elements 32i+8k..+7
// in chain k) so that FMA latency never bounds one core. It replaced a 4-row
// kernel (four streams 4 KiB apart, two chains per row): TinyLlama F16 tg at
// 1 thread 8.0 -> 8.8 tok/s, at 2 threads 13.1 -> 14.1; 7B at 2 threads
// 2.24 -> 2.33. The F16 small-batch kernel (kernels_avx2_batch.c) repeats
// this arithmetic bit for bit. 768-1024 measured best against 512 and 1536.
enum { F16_PREFETCH_DISTANCE = 1024 };
static float vec_dot_f16(int64_t n, const void *w, const void *a) {
    const uint16_t *x = w;
    const float *y = a;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        _mm_prefetch((const char *)(x + i) + F16_PREFETCH_DISTANCE, _MM_HINT_T0);
        #pragma GCC unroll 4
        for (int k = 0; k < 4; k++)
            acc[k] = _mm256_fmadd_ps(load_f16x8(x + i + 8 * k), _mm256_loadu_ps(y + i + 8 * k), acc[k]);
    }
    for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(load_f16x8(x + i), _mm256_loadu_ps(y + i), acc[0]);
    float sum = hsum_f32x8(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++) sum += fp16_to_f32(x[i]) * y[i];
    return sum;
}

static float vec_dot_bf16(int64_t n, const void *w, const void *a) {
    const uint16_t *x = w;
    const float *y = a;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        #pragma GCC unroll 4
        for (int k = 0; k < 4; k++)
            acc[k] = _mm256_fmadd_ps(load_bf16x8(x + i + 8 * k), _mm256_loadu_ps(y + i + 8 * k), acc[k]);
    }
    for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(load_bf16x8(x + i), _mm256_loadu_ps(y + i), acc[0]);
    float sum = hsum_f32x8(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++) sum += lb_f32_from_bits((uint32_t)x[i] << 16) * y[i];
    return sum;
}

// ---------------------------------------------------------------------------
// 32-element blocks: one exact int32x8 dot per block, scaled into 8 float lanes.

// One block of a dot product.
static inline void q8_0_block(const block_q8_0 *x, const block_q8_0 *y, __m256 *acc) {
    const __m256 d = _mm256_set1_ps(fp16_to_f32(x->d) * fp16_to_f32(y->d));
    const __m256i dot = dot_i8_i8(load256(x->qs), load256(y->qs));
    *acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), *acc);
}

static float vec_dot_q8_0(int64_t n, const void *w, const void *a) {
    const block_q8_0 *x = w;
    const block_q8_0 *y = a;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK8_0; i++) q8_0_block(&x[i], &y[i], &acc);
    return hsum_f32x8(acc);
}


static inline void q4_0_block(const block_q4_0 *x, const block_q8_0 *y, __m256 *acc) {
    const __m256 d = _mm256_set1_ps(fp16_to_f32(x->d) * fp16_to_f32(y->d));
    const __m256i q = _mm256_sub_epi8(unpack_nibbles_32(x->qs), _mm256_set1_epi8(8));
    *acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8_i8(q, load256(y->qs))), *acc);
}

static float vec_dot_q4_0(int64_t n, const void *w, const void *a) {
    const block_q4_0 *x = w;
    const block_q8_0 *y = a;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK8_0; i++) q4_0_block(&x[i], &y[i], &acc);
    return hsum_f32x8(acc);
}


static float vec_dot_q4_1(int64_t n, const void *w, const void *a) {
    const block_q4_1 *x = w;
    const block_q8_1 *y = a;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f; // sum of m * s: the min term, once per block
    for (int64_t i = 0; i < n / QK8_1; i++) {
        const __m256 d = _mm256_set1_ps(fp16_to_f32(x[i].d) * fp16_to_f32(y[i].d));
        summs += fp16_to_f32(x[i].m) * fp16_to_f32(y[i].s);
        const __m256i dot = dot_u8_i8(unpack_nibbles_32(x[i].qs), load256(y[i].qs));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), acc);
    }
    return hsum_f32x8(acc) + summs;
}

// The 5-bit codes of a q5 block, 0..31: nibbles plus bit 4 from qh.
static inline __m256i unpack_q5(const uint8_t *qs, const uint8_t qh_bytes[4]) {
    uint32_t qh;
    memcpy(&qh, qh_bytes, sizeof qh);
    const __m256i high = _mm256_and_si256(expand_bits_32(qh), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(unpack_nibbles_32(qs), high);
}

static float vec_dot_q5_0(int64_t n, const void *w, const void *a) {
    const block_q5_0 *x = w;
    const block_q8_0 *y = a;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const __m256 d = _mm256_set1_ps(fp16_to_f32(x[i].d) * fp16_to_f32(y[i].d));
        const __m256i q = _mm256_sub_epi8(unpack_q5(x[i].qs, x[i].qh), _mm256_set1_epi8(16));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8_i8(q, load256(y[i].qs))), acc);
    }
    return hsum_f32x8(acc);
}

static float vec_dot_q5_1(int64_t n, const void *w, const void *a) {
    const block_q5_1 *x = w;
    const block_q8_1 *y = a;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        const __m256 d = _mm256_set1_ps(fp16_to_f32(x[i].d) * fp16_to_f32(y[i].d));
        summs += fp16_to_f32(x[i].m) * fp16_to_f32(y[i].s);
        const __m256i dot = dot_u8_i8(unpack_q5(x[i].qs, x[i].qh), load256(y[i].qs));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), acc);
    }
    return hsum_f32x8(acc) + summs;
}

// ---------------------------------------------------------------------------
// k-quants against Q8_K. Codes are kept unsigned for maddubs; a constant
// offset (q3_K: 4, q6_K: 32) is taken back out through the activation block
// sums: sum(sc * (u - k) * y) = sum(sc * u * y) - k * sum(sc * bsum).

static float vec_dot_q2_K(int64_t n, const void *w, const void *a) {
    const block_q2_K *x = w;
    const block_q8_K *y = a;
    const __m256i mask2 = _mm256_set1_epi8(3);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *sc = x[i].scales;
        __m256i acc = _mm256_setzero_si256();
        for (int half = 0; half < 2; half++) {
            const __m256i q = load256(x[i].qs + 32 * half);
            for (int s = 0; s < 4; s++) { // elements 128*half + 32*s .. +31
                const __m256i codes = _mm256_and_si256(_mm256_srli_epi16(q, 2 * s), mask2);
                const __m256i p = _mm256_maddubs_epi16(codes, load256(y[i].qs + 128 * half + 32 * s));
                const int j = 8 * half + 2 * s;
                acc = _mm256_add_epi32(acc, scale_pairs(p, sc[j] & 0xF, sc[j + 1] & 0xF));
            }
        }
        int summs = 0;
        for (int j = 0; j < QK_K / 16; j++) summs += y[i].bsums[j] * (sc[j] >> 4);
        const int isum = hsum_i32x8(acc);
        const float dall = y[i].d * fp16_to_f32(x[i].d);
        const float dmin = y[i].d * fp16_to_f32(x[i].dmin);
        sum += dall * (float)isum - dmin * (float)summs;
    }
    return sum;
}

static float vec_dot_q3_K(int64_t n, const void *w, const void *a) {
    const block_q3_K *x = w;
    const block_q8_K *y = a;
    const __m256i mask2 = _mm256_set1_epi8(3);
    const __m256i four = _mm256_set1_epi8(4);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int8_t sc[16];
        lb_q3_K_scales(x[i].scales, sc);
        const __m256i hmask = load256(x[i].hmask);
        __m256i acc = _mm256_setzero_si256();
        for (int half = 0; half < 2; half++) {
            const __m256i q = load256(x[i].qs + 32 * half);
            for (int s = 0; s < 4; s++) {
                // code + 4 in 0..7: two low bits, plus 4 where the hmask bit is set.
                const __m256i low = _mm256_and_si256(_mm256_srli_epi16(q, 2 * s), mask2);
                const __m256i high = _mm256_and_si256(test_bit_bytes(hmask, 4 * half + s), four);
                const __m256i p = _mm256_maddubs_epi16(_mm256_or_si256(low, high),
                                                       load256(y[i].qs + 128 * half + 32 * s));
                const int j = 8 * half + 2 * s;
                acc = _mm256_add_epi32(acc, scale_pairs(p, sc[j], sc[j + 1]));
            }
        }
        int offset = 0;
        for (int j = 0; j < QK_K / 16; j++) offset += sc[j] * y[i].bsums[j];
        const int isum = hsum_i32x8(acc) - 4 * offset;
        sum += fp16_to_f32(x[i].d) * y[i].d * (float)isum;
    }
    return sum;
}

// q4_K / q5_K: 8 sub-blocks of 32, each one 32-byte vector of codes.
static inline __m256i scale_sub32(__m256i codes, const int8_t *yq, int scale) {
    const __m256i p = _mm256_maddubs_epi16(codes, load256(yq));
    return _mm256_madd_epi16(p, _mm256_set1_epi16((short)scale));
}

static inline float q4_K_block(const block_q4_K *x, const block_q8_K *y) {
    const __m256i mask4 = _mm256_set1_epi8(0x0F);
    uint8_t sc[8], m[8];
    for (int j = 0; j < 8; j++) lb_get_scale_min_k4(j, x->scales, &sc[j], &m[j]);
    __m256i acc = _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) { // sub-blocks 2c (low nibbles) and 2c+1 (high)
        const __m256i q = load256(x->qs + 32 * c);
        const __m256i lo = _mm256_and_si256(q, mask4);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), mask4);
        acc = _mm256_add_epi32(acc, scale_sub32(lo, y->qs + 64 * c, sc[2 * c]));
        acc = _mm256_add_epi32(acc, scale_sub32(hi, y->qs + 64 * c + 32, sc[2 * c + 1]));
    }
    int summs = 0;
    for (int j = 0; j < 8; j++) summs += m[j] * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
    const int isum = hsum_i32x8(acc);
    const float d = y->d * fp16_to_f32(x->d);
    const float dmin = y->d * fp16_to_f32(x->dmin);
    return d * (float)isum - dmin * (float)summs;
}

static float vec_dot_q4_K(int64_t n, const void *w, const void *a) {
    const block_q4_K *x = w;
    const block_q8_K *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) sum += q4_K_block(&x[i], &y[i]);
    return sum;
}


static float vec_dot_q5_K(int64_t n, const void *w, const void *a) {
    const block_q5_K *x = w;
    const block_q8_K *y = a;
    const __m256i mask4 = _mm256_set1_epi8(0x0F);
    const __m256i bit4 = _mm256_set1_epi8(0x10);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t sc[8], m[8];
        for (int j = 0; j < 8; j++) lb_get_scale_min_k4(j, x[i].scales, &sc[j], &m[j]);
        const __m256i qh = load256(x[i].qh); // bit j of qh[l]: fifth bit of sub-block j, element l
        __m256i acc = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            const __m256i q = load256(x[i].qs + 32 * c);
            __m256i lo = _mm256_and_si256(q, mask4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), mask4);
            lo = _mm256_or_si256(lo, _mm256_and_si256(test_bit_bytes(qh, 2 * c), bit4));
            hi = _mm256_or_si256(hi, _mm256_and_si256(test_bit_bytes(qh, 2 * c + 1), bit4));
            acc = _mm256_add_epi32(acc, scale_sub32(lo, y[i].qs + 64 * c, sc[2 * c]));
            acc = _mm256_add_epi32(acc, scale_sub32(hi, y[i].qs + 64 * c + 32, sc[2 * c + 1]));
        }
        int summs = 0;
        for (int j = 0; j < 8; j++) summs += m[j] * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        const int isum = hsum_i32x8(acc);
        const float d = y[i].d * fp16_to_f32(x[i].d);
        const float dmin = y[i].d * fp16_to_f32(x[i].dmin);
        sum += d * (float)isum - dmin * (float)summs;
    }
    return sum;
}

static inline float q6_K_block(const block_q6_K *x, const block_q8_K *y) {
    const __m256i mask4 = _mm256_set1_epi8(0x0F);
    const int8_t *sc = x->scales;
    __m256i acc = _mm256_setzero_si256();
    for (int half = 0; half < 2; half++) {
        const __m256i ql0 = load256(x->ql + 64 * half);
        const __m256i ql1 = load256(x->ql + 64 * half + 32);
        const __m256i qh = load256(x->qh + 32 * half);
        // code + 32 in 0..63 for the four 32-element quarters of this half
        // (masks before the 16-bit shifts keep bits from crossing bytes).
        __m256i codes[4];
        codes[0] = _mm256_or_si256(_mm256_and_si256(ql0, mask4),
                                   _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x03)), 4));
        codes[1] = _mm256_or_si256(_mm256_and_si256(ql1, mask4),
                                   _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x0C)), 2));
        codes[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), mask4),
                                   _mm256_and_si256(qh, _mm256_set1_epi8(0x30)));
        codes[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), mask4),
                                   _mm256_srli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8((char)0xC0)), 2));
        #pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            const __m256i p = _mm256_maddubs_epi16(codes[k], load256(y->qs + 128 * half + 32 * k));
            const int j = 8 * half + 2 * k;
            acc = _mm256_add_epi32(acc, scale_pairs(p, sc[j], sc[j + 1]));
        }
    }
    int offset = 0;
    for (int j = 0; j < QK_K / 16; j++) offset += sc[j] * y->bsums[j];
    const int isum = hsum_i32x8(acc) - 32 * offset;
    return fp16_to_f32(x->d) * y->d * (float)isum;
}

static float vec_dot_q6_K(int64_t n, const void *w, const void *a) {
    const block_q6_K *x = w;
    const block_q8_K *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) sum += q6_K_block(&x[i], &y[i]);
    return sum;
}

// ---------------------------------------------------------------------------
// NF4 / FP4 (lowbit's own types) against f32 activations: codes become floats
// through a 16-entry table held in two registers (codes 0-7 and 8-15);
// _mm256_permutevar8x32_ps looks up the low 3 bits in both and bit 3, moved
// to the sign bit, picks one. Per block one 8-lane FMA sum, scaled by absmax.

// Elements 8k..8k+7 of a block: 4 bytes of qs, element 2i in the high nibble
// of byte i, so lane l shifts by 8*(l/2) + 4*!(l&1).
static inline __m256 bnb4_lookup8(const uint8_t *qs, __m256 lo, __m256 hi) {
    uint32_t bytes;
    memcpy(&bytes, qs, sizeof bytes);
    const __m256i shift = _mm256_setr_epi32(4, 0, 12, 8, 20, 16, 28, 24);
    const __m256i idx = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)bytes), shift), _mm256_set1_epi32(15));
    const __m256 from_lo = _mm256_permutevar8x32_ps(lo, idx), from_hi = _mm256_permutevar8x32_ps(hi, idx);
    return _mm256_blendv_ps(from_lo, from_hi, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

static inline float vec_dot_bnb4(const float table[16], int64_t n, const void *w, const void *a) {
    const block_bnb4 *x = w;
    const float *y = a;
    const __m256 lo = _mm256_loadu_ps(table), hi = _mm256_loadu_ps(table + 8);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_BNB4; i++, y += QK_BNB4) {
        __m256 block = _mm256_setzero_ps();
        for (int k = 0; k < QK_BNB4 / 8; k++)
            block = _mm256_fmadd_ps(bnb4_lookup8(x[i].qs + 4 * k, lo, hi), _mm256_loadu_ps(y + 8 * k), block);
        acc = _mm256_fmadd_ps(block, _mm256_set1_ps(fp16_to_f32(x[i].absmax)), acc);
    }
    return hsum_f32x8(acc);
}

static float vec_dot_nf4(int64_t n, const void *w, const void *a) { return vec_dot_bnb4(lb_nf4_table, n, w, a); }
static float vec_dot_fp4(int64_t n, const void *w, const void *a) { return vec_dot_bnb4(lb_fp4_table, n, w, a); }

// ---------------------------------------------------------------------------
// Activation quantizers, bit-identical to the references in quants_*.c.

// roundf: round half away from zero. a - trunc(a) is exact in float, so the
// comparison with 0.5 decides ties exactly as roundf does.
static inline __m256 round_half_away(__m256 v) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 a = _mm256_andnot_ps(sign, v);
    const __m256 t = _mm256_round_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 up = _mm256_cmp_ps(_mm256_sub_ps(a, t), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    const __m256 r = _mm256_add_ps(t, _mm256_and_ps(up, _mm256_set1_ps(1.0f)));
    return _mm256_or_ps(r, _mm256_and_ps(sign, v));
}

// Four int32x8 (elements 0-7, 8-15, 16-23, 24-31) -> 32 int8 in order. The
// packs work within 128-bit lanes, so the dwords come out as 0,2,4,6,1,3,5,7.
static inline __m256i pack_i32_to_i8(__m256i i0, __m256i i1, __m256i i2, __m256i i3) {
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// One 32-element q8 block: writes qs, returns the unrounded scale, and the
// sum of the codes through *sum (for q8_1).
static inline float quantize_q8_block(const float *x, int8_t *qs, int *sum) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    #pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_loadu_ps(x + 8 * k);
        amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[k]));
    }
    const float d = hmax_f32x8(amax) / 127;
    const __m256 id = _mm256_set1_ps(d ? 1.0f / d : 0.0f);
    __m256i q[4];
    #pragma GCC unroll 4
    for (int k = 0; k < 4; k++) q[k] = _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(v[k], id)));
    _mm256_storeu_si256((__m256i *)qs, pack_i32_to_i8(q[0], q[1], q[2], q[3]));
    if (sum) *sum = hsum_i32x8(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
    return d;
}

static void quantize_q8_0(const float *src, void *dst, int64_t n) {
    block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / QK8_0; i++) y[i].d = _cvtss_sh(quantize_q8_block(src + QK8_0 * i, y[i].qs, NULL), 0);
}

static void quantize_q8_1(const float *src, void *dst, int64_t n) {
    block_q8_1 *y = dst;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        int sum;
        const float d = quantize_q8_block(src + QK8_1 * i, y[i].qs, &sum);
        y[i].d = _cvtss_sh(d, 0);
        y[i].s = _cvtss_sh((float)sum * d, 0);
    }
}

static void quantize_q8_K(const float *src, void *dst, int64_t n) {
    block_q8_K *y = dst;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        __m256 amax8 = _mm256_setzero_ps();
        for (int k = 0; k < QK_K; k += 8) amax8 = _mm256_max_ps(amax8, _mm256_andnot_ps(sign, _mm256_loadu_ps(src + k)));
        const float amax = hmax_f32x8(amax8);
        if (!amax) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        // The reference keeps the first element of largest magnitude, with its sign.
        float max = 0.0f;
        for (int j = 0; j < QK_K; j++) {
            if (fabsf(src[j]) == amax) {
                max = src[j];
                break;
            }
        }
        const float iscale = -127.0f / max;
        const __m256 vscale = _mm256_set1_ps(iscale);
        const __m256i top = _mm256_set1_epi32(127);
        for (int k = 0; k < QK_K; k += 32) {
            __m256i q[4];
            // cvtps rounds to nearest even, which is what nearest_int does.
            #pragma GCC unroll 4
            for (int t = 0; t < 4; t++)
                q[t] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(src + k + 8 * t), vscale)), top);
            _mm256_storeu_si256((__m256i *)(y[i].qs + k), pack_i32_to_i8(q[0], q[1], q[2], q[3]));
        }
        for (int j = 0; j < QK_K / 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += y[i].qs[16 * j + l];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

// LLM.int8's vector-wise int8 (llm_int8.c): one scale for the whole row.
static void quantize_llm_int8(const float *src, void *dst, int64_t n) {
    block_llm_int8 *y = dst;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 amax8 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) amax8 = _mm256_max_ps(amax8, _mm256_andnot_ps(sign, _mm256_loadu_ps(src + i)));
    float amax = hmax_f32x8(amax8);
    for (; i < n; i++) amax = fmaxf(amax, fabsf(src[i]));
    const uint16_t d16 = _cvtss_sh(amax / 127.0f, 0);
    const float d = fp16_to_f32(d16);
    const __m256 id = _mm256_set1_ps(d > 0 ? 1.0f / d : 0.0f);
    const __m256i top = _mm256_set1_epi32(127), bottom = _mm256_set1_epi32(-127);
    for (int64_t b = 0; b < n / 32; b++) {
        __m256i q[4];
        // cvtps rounds to nearest even, as the reference's nearbyintf.
        for (int t = 0; t < 4; t++)
            q[t] = _mm256_max_epi32(_mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(src + 32 * b + 8 * t),
                                                                                       id)), top), bottom);
        _mm256_storeu_si256((__m256i *)y[b].qs, pack_i32_to_i8(q[0], q[1], q[2], q[3]));
        y[b].d = d16;
    }
}

static float vec_dot_llm_int8(int64_t n, const void *w, const void *a) {
    const block_llm_int8 *x = w, *y = a;
    if (n < 32) return 0.0f;
    // int32 lanes: each adds 4 products (at most 4·127²) per block, so rows up to ~10^6 columns fit.
    __m256i acc = _mm256_setzero_si256();
    for (int64_t b = 0; b < n / 32; b++) acc = _mm256_add_epi32(acc, dot_i8_i8(load256(x[b].qs), load256(y[b].qs)));
    int32_t lanes[8];
    _mm256_storeu_si256((__m256i *)lanes, acc);
    int64_t sum = 0;
    for (int k = 0; k < 8; k++) sum += lanes[k];
    return (float)sum * (fp16_to_f32(x[0].d) * fp16_to_f32(y[0].d));
}

// ---------------------------------------------------------------------------

// --- row conversions -------------------------------------------------------------
// F16 → F32 with F16C (exact: every half is a float), BF16 → F32 by a shift.

static void to_float_f16(const void *src, float *dst, int64_t n) {
    const uint16_t *x = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++) dst[i] = lb_fp16_to_f32(x[i]);
}

static void to_float_bf16(const void *src, float *dst, int64_t n) {
    const uint16_t *x = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(x + i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    }
    for (; i < n; i++) dst[i] = lb_bf16_to_f32(x[i]);
}

const struct lb_kernels lb_kernels_avx2 = {
    .isa = "avx2",
    .vec_dot = {
        [LB_TYPE_F32] = vec_dot_f32,
        [LB_TYPE_F16] = vec_dot_f16,
        [LB_TYPE_BF16] = vec_dot_bf16,
        [LB_TYPE_Q4_0] = vec_dot_q4_0,
        [LB_TYPE_Q4_1] = vec_dot_q4_1,
        [LB_TYPE_Q5_0] = vec_dot_q5_0,
        [LB_TYPE_Q5_1] = vec_dot_q5_1,
        [LB_TYPE_Q8_0] = vec_dot_q8_0,
        [LB_TYPE_Q2_K] = vec_dot_q2_K,
        [LB_TYPE_Q3_K] = vec_dot_q3_K,
        [LB_TYPE_Q4_K] = vec_dot_q4_K,
        [LB_TYPE_Q5_K] = vec_dot_q5_K,
        [LB_TYPE_Q6_K] = vec_dot_q6_K,
        [LB_TYPE_NF4] = vec_dot_nf4,
        [LB_TYPE_FP4] = vec_dot_fp4,
        LB_AVX2_INT_VEC_DOTS // lowbit's integer grid, FP8 and NF4_DQ types (kernels_avx2_int.c)
        [LB_TYPE_LLM_INT8] = vec_dot_llm_int8,
    },
    .from_float = {
        [LB_TYPE_LLM_INT8] = quantize_llm_int8,
        [LB_TYPE_Q8_0] = quantize_q8_0,
        [LB_TYPE_Q8_1] = quantize_q8_1,
        [LB_TYPE_Q8_K] = quantize_q8_K,
    },
    .to_float = {
        [LB_TYPE_F16] = to_float_f16,
        [LB_TYPE_BF16] = to_float_bf16,
    },
    .gemm_x8 = { // kernels_avx2_x8.c
        [LB_TYPE_Q4_0] = lb_gemm_x8_q4_0_avx2,
        [LB_TYPE_Q8_0] = lb_gemm_x8_q8_0_avx2,
        [LB_TYPE_Q4_K] = lb_gemm_x8_q4_K_avx2,
        [LB_TYPE_Q6_K] = lb_gemm_x8_q6_K_avx2,
    },
    .gemm_f16 = lb_gemm_f16_avx2,       // kernels_avx2_gemm.c
    .attn_scores = lb_attn_scores_avx2, // kernels_avx2_attn.c
    .attn_accum = lb_attn_accum_avx2,
    .dot_batch = lb_dot_batch_avx2,     // kernels_avx2_batch.c
};

#endif // x86
