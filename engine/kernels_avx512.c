/*
 * kernels_avx512.c — AVX-512 (BW/VL/DQ, and VNNI where present) kernels:
 * int8 dot products against activations quantized on the fly, the Q8
 * activation quantizers and the packed 8-row (x8) matrix kernels.
 *
 * One source, four builds (kernels_avx512.h, Makefile.am):
 *   native      -mavx512f -mavx512bw -mavx512vl -mavx512dq (-mavx512vnni):
 *               what a CPU with AVX-512 runs, chosen by cpuid (kernels.c);
 *   emulated    -mavx2 only, with LB_AVX512_EMULATED: the same _mm512_*
 *               calls resolved by SIMDe's portable versions, so this file's
 *               logic (layouts, shuffles, masks, the VNNI accumulation) runs
 *               and is tested on a CPU without AVX-512. It proves nothing
 *               about instruction encodings or speed.
 * LB_AVX512_VNNI selects vpdpbusd (_mm512_dpbusd_epi32) for u8 × s8 sums of
 * four; without it the same sums come from vpmaddubsw + vpmaddwd. Both are
 * exact here (maddubs' int16 pairs cannot saturate: codes ≤ 128, |a| ≤ 127).
 *
 * What is AVX-512 here (the rest of the table is lb_kernels_avx2's):
 *   vec_dot     F32; Q8_0, Q4_0, Q5_0 (× Q8_0); Q4_1, Q5_1 (× Q8_1); the integer grid
 *               types INT8/INT4/INT3/INT2 (per channel, per group, zero point)
 *   from_float  Q8_0, Q8_1 (byte-identical to the reference quantizers)
 *   to_float    F16 (exact)
 *   gemm_x8     Q4_0, Q8_0 (bit-identical to the references in repack.c)
 *   dot_batch   Q8_0, Q4_0 (kernels_batch.h: bit-identical to this file's
 *               vec_dot); AVX2's for the types whose single-token kernels
 *               are AVX2's
 * How results relate to the scalar references: integer parts exact, then for
 * the x8 kernels the same float operations in the same order (bit-identical);
 * the dot products scale two 32-element blocks per 16-lane FMA, so only their
 * float accumulation order differs (as AVX2's 8 lanes do).
 * Signed × signed products move the weight's sign onto the activation, so,
 * as in AVX2's kernels, activation codes must be > −128: the Q8 quantizers
 * never write −128.
 *
 * F16's vec_dot/vec_dot4 stay AVX2's on purpose: F16 decode is bound by
 * memory, and keeping them keeps the AVX2 small-batch kernel (kernels_batch.h
 * requires it to match the table's single-token kernels bit for bit), which
 * makes speculative verification cost a fraction of per-token decoding.
 */
#if defined(__x86_64__) || defined(__i386__)

#ifdef LB_AVX512_EMULATED
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
// SIMDe 0.7.4 aliases _mm512_madd_epi16 to its masked form (4 arguments).
#undef _mm512_madd_epi16
#define _mm512_madd_epi16 simde_mm512_madd_epi16
#else
#include <immintrin.h>
#endif

#if defined(__AVX512VNNI__) && !defined(LB_AVX512_VNNI)
#define LB_AVX512_VNNI 1
#endif

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "kernels_avx512.h"
#include "fp16.h"
#include "quants.h"
#include "repack.h"
#include "simd_avx2.h"

// This build's table name and fill function.
#if defined(LB_AVX512_EMULATED) && defined(LB_AVX512_VNNI)
#define ISA_NAME "avx512vnni-emulated"
#define FILL lb_kernels_fill_avx512vnni_emulated
#elif defined(LB_AVX512_EMULATED)
#define ISA_NAME "avx512-emulated"
#define FILL lb_kernels_fill_avx512_emulated
#elif defined(LB_AVX512_VNNI)
#define ISA_NAME "avx512vnni"
#define FILL lb_kernels_fill_avx512vnni
#else
#define ISA_NAME "avx512"
#define FILL lb_kernels_fill_avx512
#endif

#define ALWAYS_INLINE inline __attribute__((always_inline))

// ---------------------------------------------------------------------------
// Helpers. Halves of a 512-bit vector go through AVX512F's 64x4 extract and
// insert (SIMDe has no 32x8 extract). The three conversions SIMDe 0.7.4
// lacks are done by halves with AVX2 in the emulated build only.

static ALWAYS_INLINE __m256 lo_ps(__m512 v) { return _mm512_castps512_ps256(v); }
static ALWAYS_INLINE __m256 hi_ps(__m512 v) { return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)); }
static ALWAYS_INLINE __m256i lo_si(__m512i v) { return _mm512_castsi512_si256(v); }
static ALWAYS_INLINE __m256i hi_si(__m512i v) { return _mm512_extracti64x4_epi64(v, 1); }
static ALWAYS_INLINE __m512i join_si(__m256i lo, __m256i hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
static ALWAYS_INLINE __m512 join_ps(__m256 lo, __m256 hi) {
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1));
}

static ALWAYS_INLINE __m512 cvt_i32_ps(__m512i v) {
#ifdef LB_AVX512_EMULATED
    return join_ps(_mm256_cvtepi32_ps(lo_si(v)), _mm256_cvtepi32_ps(hi_si(v)));
#else
    return _mm512_cvtepi32_ps(v);
#endif
}

static ALWAYS_INLINE __m512i cvtt_ps_i32(__m512 v) {
#ifdef LB_AVX512_EMULATED
    return join_si(_mm256_cvttps_epi32(lo_ps(v)), _mm256_cvttps_epi32(hi_ps(v)));
#else
    return _mm512_cvttps_epi32(v);
#endif
}

// Sixteen fp16 values to float (exact).
static ALWAYS_INLINE __m512 cvt_ph_ps(__m256i h) {
#ifdef LB_AVX512_EMULATED
    return join_ps(_mm256_cvtph_ps(_mm256_castsi256_si128(h)), _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1)));
#else
    return _mm512_cvtph_ps(h);
#endif
}

static ALWAYS_INLINE float hsum_f32x16(__m512 v) { return hsum_f32x8(_mm256_add_ps(lo_ps(v), hi_ps(v))); }
static ALWAYS_INLINE __m256i fold_i32x16(__m512i v) { return _mm256_add_epi32(lo_si(v), hi_si(v)); }

static ALWAYS_INLINE __m512i load512(const void *p) { return _mm512_loadu_si512(p); }

// Two 32-byte vectors, p0 in the low half.
static ALWAYS_INLINE __m512i load2x256(const void *p0, const void *p1) { return join_si(load256(p0), load256(p1)); }

// Two scales, each in one half's 8 lanes.
static ALWAYS_INLINE __m512 set2_ps(float lo, float hi) { return join_ps(_mm256_set1_ps(lo), _mm256_set1_ps(hi)); }

// acc + sums of 4 adjacent products of unsigned bytes u and signed bytes s.
static ALWAYS_INLINE __m512i dpbusd(__m512i acc, __m512i u, __m512i s) {
#ifdef LB_AVX512_VNNI
    return _mm512_dpbusd_epi32(acc, u, s);
#else
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
#endif
}

// The same for two signed operands: |x| times y with x's sign moved onto it.
// AVX-512 has no vpsignb; a mask of x's sign bits negates y instead (where
// x is 0 the product is 0 either way).
static ALWAYS_INLINE __m512i dpbssd(__m512i acc, __m512i x, __m512i y) {
    const __mmask64 neg = _mm512_movepi8_mask(x);
    return dpbusd(acc, _mm512_abs_epi8(x), _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y));
}

// 16 bytes of nibbles (one Q4 block) -> 32 bytes: low nibbles (elements
// 0-15), then high (16-31); two blocks, p0 in the low half.
static ALWAYS_INLINE __m512i unpack_nibbles_2x32(const uint8_t *p0, const uint8_t *p1) {
    const __m128i b0 = _mm_loadu_si128((const __m128i *)p0), b1 = _mm_loadu_si128((const __m128i *)p1);
    __m512i v = _mm512_castsi128_si512(b0);
    v = _mm512_inserti32x4(v, b0, 1);
    v = _mm512_inserti32x4(v, b1, 2);
    v = _mm512_inserti32x4(v, b1, 3);
    v = _mm512_mask_blend_epi64(0xCC, v, _mm512_srli_epi16(v, 4)); // 128-bit lanes 1 and 3: high nibbles
    return _mm512_and_si512(v, _mm512_set1_epi8(0x0F));
}

// ---------------------------------------------------------------------------
// F32: 4 accumulators of 16 lanes; the tail is scalar.

static float vec_dot_f32(int64_t n, const void *w, const void *a) {
    const float *x = w, *y = a;
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        #pragma GCC unroll 4
        for (int k = 0; k < 4; k++)
            acc[k] = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16 * k), _mm512_loadu_ps(y + i + 16 * k), acc[k]);
    }
    for (; i + 16 <= n; i += 16) acc[0] = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), acc[0]);
    float sum = hsum_f32x16(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
    for (; i < n; i++) sum += x[i] * y[i];
    return sum;
}

static void to_float_f16(const void *src, float *dst, int64_t n) {
    const uint16_t *x = src;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, cvt_ph_ps(load256(x + i)));
    for (; i < n; i++) dst[i] = lb_fp16_to_f32(x[i]);
}

// ---------------------------------------------------------------------------
// 32-element blocks, two per 512-bit vector: one exact int32x8 dot per block
// (one half each), scaled by that block's d into 16 float lanes. An odd last
// block goes alone with a zero upper half (d = 0 there).

// The weights of blocks i and j (j = i + 1, or i again for an odd last block,
// whose half is then scaled by 0), ready for any number of activation rows.
struct q8_pair {
    __m512i abs;   // |codes|
    __mmask64 neg; // codes < 0
    float d0, d1;  // the blocks' scales
};

static ALWAYS_INLINE struct q8_pair q8_0_pair(const block_q8_0 *x, int64_t i, int64_t j) {
    const __m512i q = load2x256(x[i].qs, x[j].qs);
    return (struct q8_pair){_mm512_abs_epi8(q), _mm512_movepi8_mask(q), fp16_to_f32(x[i].d), fp16_to_f32(x[j].d)};
}

static ALWAYS_INLINE struct q8_pair q4_0_pair(const block_q4_0 *x, int64_t i, int64_t j) {
    const __m512i q = _mm512_sub_epi8(unpack_nibbles_2x32(x[i].qs, x[j].qs), _mm512_set1_epi8(8));
    return (struct q8_pair){_mm512_abs_epi8(q), _mm512_movepi8_mask(q), fp16_to_f32(x[i].d), fp16_to_f32(x[j].d)};
}

// acc + the pair's two block dot products with activation blocks i, j, each
// scaled by its d (the second by 0 when j == i). The one step every Q8_0 /
// Q4_0 dot product here is made of, so the batch kernels below give the
// single-token kernels' bits.
static ALWAYS_INLINE __m512 pair_step(__m512 acc, const struct q8_pair *w, const block_q8_0 *y, int64_t i, int64_t j) {
    const __m512i ya = load2x256(y[i].qs, y[j].qs);
    const __m512i dot = dpbusd(_mm512_setzero_si512(), w->abs, _mm512_mask_sub_epi8(ya, w->neg, _mm512_setzero_si512(), ya));
    const float d1 = j != i ? w->d1 * fp16_to_f32(y[j].d) : 0.0f;
    return _mm512_fmadd_ps(set2_ps(w->d0 * fp16_to_f32(y[i].d), d1), cvt_i32_ps(dot), acc);
}

static float vec_dot_q8_0(int64_t n, const void *w, const void *a) {
    const block_q8_0 *x = w, *y = a;
    const int64_t nb = n / QK8_0;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i += 2) {
        const int64_t j = i + 1 < nb ? i + 1 : i;
        const struct q8_pair p = q8_0_pair(x, i, j);
        acc = pair_step(acc, &p, y, i, j);
    }
    return hsum_f32x16(acc);
}

static float vec_dot_q4_0(int64_t n, const void *w, const void *a) {
    const block_q4_0 *x = w;
    const block_q8_0 *y = a;
    const int64_t nb = n / QK8_0;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i += 2) {
        const int64_t j = i + 1 < nb ? i + 1 : i;
        const struct q8_pair p = q4_0_pair(x, i, j);
        acc = pair_step(acc, &p, y, i, j);
    }
    return hsum_f32x16(acc);
}

// Small batches (kernels_batch.h): each row's block pairs unpacked once and
// stepped into up to BATCH_T tokens' accumulators, exactly as vec_dot_q8_0 /
// vec_dot_q4_0 step one token's.
enum { BATCH_T = 8 };

#define DOT_BATCH(name, block_t, make_pair)                                                                     \
    static void name(int64_t cols, const void *w, size_t w_stride, int rows, int quad, const void *a,          \
                     size_t a_stride, int n, float *y, size_t ldy) {                                           \
        (void)quad; /* no four-row kernel for these types */                                                  \
        const int64_t nb = cols / QK8_0;                                                                       \
        for (int r = 0; r < rows; r++) {                                                                       \
            const block_t *x = (const block_t *)((const char *)w + (size_t)r * w_stride);                      \
            for (int t0 = 0; t0 < n; t0 += BATCH_T) {                                                          \
                const int nt = n - t0 < BATCH_T ? n - t0 : BATCH_T;                                            \
                __m512 acc[BATCH_T];                                                                           \
                for (int t = 0; t < nt; t++) acc[t] = _mm512_setzero_ps();                                     \
                for (int64_t i = 0; i < nb; i += 2) {                                                          \
                    const int64_t j = i + 1 < nb ? i + 1 : i;                                                  \
                    const struct q8_pair p = make_pair(x, i, j);                                               \
                    for (int t = 0; t < nt; t++)                                                               \
                        acc[t] = pair_step(acc[t], &p, (const block_q8_0 *)((const char *)a + (size_t)(t0 + t) * a_stride), i, j); \
                }                                                                                              \
                for (int t = 0; t < nt; t++) y[(size_t)(t0 + t) * ldy + r] = hsum_f32x16(acc[t]);              \
            }                                                                                                  \
        }                                                                                                      \
    }
DOT_BATCH(dot_batch_q8_0, block_q8_0, q8_0_pair)
DOT_BATCH(dot_batch_q4_0, block_q4_0, q4_0_pair)
#undef DOT_BATCH

static float vec_dot_q4_1(int64_t n, const void *w, const void *a) {
    const block_q4_1 *x = w;
    const block_q8_1 *y = a;
    const int64_t nb = n / QK8_1;
    __m512 acc = _mm512_setzero_ps();
    float summs = 0.0f; // sum of m * s: the min term, once per block
    for (int64_t i = 0; i < nb; i += 2) {
        const bool pair = i + 1 < nb;
        const int64_t j = pair ? i + 1 : i;
        summs += fp16_to_f32(x[i].m) * fp16_to_f32(y[i].s);
        if (pair) summs += fp16_to_f32(x[j].m) * fp16_to_f32(y[j].s);
        const __m512i dot = dpbusd(_mm512_setzero_si512(), unpack_nibbles_2x32(x[i].qs, x[j].qs), load2x256(y[i].qs, y[j].qs));
        const float d1 = pair ? fp16_to_f32(x[j].d) * fp16_to_f32(y[j].d) : 0.0f;
        acc = _mm512_fmadd_ps(set2_ps(fp16_to_f32(x[i].d) * fp16_to_f32(y[i].d), d1), cvt_i32_ps(dot), acc);
    }
    return hsum_f32x16(acc) + summs;
}

// Q5_0 / Q5_1: the 5-bit codes of two blocks, 0..31 (nibbles plus bit 4 from qh).
static ALWAYS_INLINE __m512i unpack_q5_2x32(const uint8_t *qs0, const uint8_t *qh0, const uint8_t *qs1,
                                            const uint8_t *qh1) {
    uint32_t h0, h1;
    memcpy(&h0, qh0, 4);
    memcpy(&h1, qh1, 4);
    // Byte k of each half takes bit k of its block's qh: 64 mask bits, one per byte.
    const __mmask64 high = (__mmask64)h0 | (__mmask64)h1 << 32;
    return _mm512_or_si512(unpack_nibbles_2x32(qs0, qs1), _mm512_maskz_mov_epi8(high, _mm512_set1_epi8(0x10)));
}

static float vec_dot_q5_0(int64_t n, const void *w, const void *a) {
    const block_q5_0 *x = w;
    const block_q8_0 *y = a;
    const int64_t nb = n / QK8_0;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i += 2) {
        const int64_t j = i + 1 < nb ? i + 1 : i; // an odd last block pairs with itself, scaled by 0
        const __m512i q = _mm512_sub_epi8(unpack_q5_2x32(x[i].qs, x[i].qh, x[j].qs, x[j].qh), _mm512_set1_epi8(16));
        const __m512i dot = dpbssd(_mm512_setzero_si512(), q, load2x256(y[i].qs, y[j].qs));
        const float d1 = j != i ? fp16_to_f32(x[j].d) * fp16_to_f32(y[j].d) : 0.0f;
        acc = _mm512_fmadd_ps(set2_ps(fp16_to_f32(x[i].d) * fp16_to_f32(y[i].d), d1), cvt_i32_ps(dot), acc);
    }
    return hsum_f32x16(acc);
}

static float vec_dot_q5_1(int64_t n, const void *w, const void *a) {
    const block_q5_1 *x = w;
    const block_q8_1 *y = a;
    const int64_t nb = n / QK8_1;
    __m512 acc = _mm512_setzero_ps();
    float summs = 0.0f;
    for (int64_t i = 0; i < nb; i += 2) {
        const int64_t j = i + 1 < nb ? i + 1 : i;
        summs += fp16_to_f32(x[i].m) * fp16_to_f32(y[i].s);
        if (j != i) summs += fp16_to_f32(x[j].m) * fp16_to_f32(y[j].s);
        const __m512i q = unpack_q5_2x32(x[i].qs, x[i].qh, x[j].qs, x[j].qh);
        const __m512i dot = dpbusd(_mm512_setzero_si512(), q, load2x256(y[i].qs, y[j].qs));
        const float d1 = j != i ? fp16_to_f32(x[j].d) * fp16_to_f32(y[j].d) : 0.0f;
        acc = _mm512_fmadd_ps(set2_ps(fp16_to_f32(x[i].d) * fp16_to_f32(y[i].d), d1), cvt_i32_ps(dot), acc);
    }
    return hsum_f32x16(acc) + summs;
}

// ---------------------------------------------------------------------------
// Integer grids (quants_int.c, blocks.h): 32-code chunks unpacked to bytes
// with AVX2 (unpack_chunk, simd_avx2.h), two chunks per 512-bit dot.

// One chunk of a row: its codes, zero point, scale (the row's d is applied
// at the end for per-channel types) and activation block.
struct chunk {
    const uint8_t *p;
    int z;
    float d;
    const block_q8_0 *y;
};

// Exact Σ (q − z)·a over two chunks, one per half. For 8-bit codes q − z
// does not fit an int8: (q − 128)·a + (128 − z)·Σa instead, both exact.
static ALWAYS_INLINE __m512i chunk_pair_dot(int bits, bool zp, const struct chunk *c0, const struct chunk *c1) {
    const __m512i q = join_si(unpack_chunk(bits, c0->p), unpack_chunk(bits, c1->p));
    const __m512i y = load2x256(c0->y->qs, c1->y->qs);
    const __m512i z = join_si(_mm256_set1_epi8((char)c0->z), _mm256_set1_epi8((char)c1->z));
    if (bits < 8) return dpbssd(_mm512_setzero_si512(), _mm512_sub_epi8(q, z), y);
    const __m512i centred = dpbssd(_mm512_setzero_si512(), _mm512_xor_si512(q, _mm512_set1_epi8((char)0x80)), y);
    if (!zp) return centred;
    const __m512i sum_a = dpbusd(_mm512_setzero_si512(), _mm512_set1_epi8(1), y);
    const __m512i off = join_si(_mm256_set1_epi32(128 - c0->z), _mm256_set1_epi32(128 - c1->z));
    return _mm512_add_epi32(centred, _mm512_mullo_epi32(sum_a, off));
}

static ALWAYS_INLINE float int_dot(int bits, int group, bool zp, int64_t n, const void *w, const void *a) {
    const block_q8_0 *y = a;
    const uint8_t *p = w;
    const int chunk_bytes = LB_INT_CHUNK_BYTES(bits);
    const int64_t nc = n / QK_INT_CHUNK;
    float row_d = 1.0f;
    int row_z = 1 << (bits - 1);
    if (group == 0) { // per channel: d and z in the row header, d applied once
        lb_row_header_zp h = {0};
        memcpy(&h, p, zp ? sizeof(lb_row_header_zp) : sizeof(lb_row_header_sym));
        row_d = h.d;
        if (zp) row_z = h.z;
        p += zp ? sizeof(lb_row_header_zp) : sizeof(lb_row_header_sym);
    }
    const int per_group = group ? group / QK_INT_CHUNK : 1;
    const int header = zp ? 4 : 2;
    // Chunk c of the row.
    #define CHUNK(c, out)                                                                                  \
        do {                                                                                               \
            if (group == 0) {                                                                              \
                (out).p = p + (size_t)(c) * chunk_bytes, (out).z = row_z;                                  \
                (out).d = fp16_to_f32(y[c].d);                                                             \
            } else {                                                                                       \
                const uint8_t *g = p + (size_t)((c) / per_group) * (header + per_group * chunk_bytes);     \
                uint16_t d16;                                                                              \
                memcpy(&d16, g, 2);                                                                        \
                (out).p = g + header + ((c) % per_group) * chunk_bytes;                                    \
                (out).z = zp ? g[2] : row_z;                                                               \
                (out).d = fp16_to_f32(d16) * fp16_to_f32(y[c].d);                                          \
            }                                                                                              \
            (out).y = &y[c];                                                                               \
        } while (0)
    __m512 acc = _mm512_setzero_ps();
    for (int64_t c = 0; c < nc; c += 2) {
        struct chunk c0, c1;
        CHUNK(c, c0);
        if (c + 1 < nc) {
            CHUNK(c + 1, c1);
        } else { // an odd last chunk pairs with itself, scaled by 0
            c1 = c0;
            c1.d = 0.0f;
        }
        acc = _mm512_fmadd_ps(set2_ps(c0.d, c1.d), cvt_i32_ps(chunk_pair_dot(bits, zp, &c0, &c1)), acc);
    }
    #undef CHUNK
    const float sum = hsum_f32x16(acc);
    return group == 0 ? sum * row_d : sum;
}

#define INT_DEFINE(ID, fn, bits, group, zp)                                                        \
    static float vec_dot_##fn(int64_t n, const void *w, const void *a) {                           \
        return int_dot(bits, group, zp, n, w, a);                                                  \
    }
LB_INT_TYPES(INT_DEFINE)
#undef INT_DEFINE

// ---------------------------------------------------------------------------
// Activation quantizers, byte-identical to quants_legacy.c's references.

// roundf (half away from zero) of v, as int32: a − trunc(a) is exact, so the
// comparison with 0.5 decides ties exactly as roundf does.
static ALWAYS_INLINE __m512i round_half_away(__m512 v) {
    const __m512 a = _mm512_abs_ps(v);
    const __m512i t = cvtt_ps_i32(a);
    const __mmask16 up = _mm512_cmp_ps_mask(_mm512_sub_ps(a, cvt_i32_ps(t)), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    const __m512i r = _mm512_mask_add_epi32(t, up, t, _mm512_set1_epi32(1));
    const __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
    return _mm512_mask_sub_epi32(r, neg, _mm512_setzero_si512(), r);
}

// One 32-element q8 block: writes qs, returns the unrounded scale, and the
// sum of the codes through *sum (for q8_1).
static ALWAYS_INLINE float quantize_q8_block(const float *x, int8_t *qs, int *sum) {
    const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    const __m512 m = _mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1));
    __m256 m8 = _mm256_max_ps(lo_ps(m), hi_ps(m));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float d = _mm_cvtss_f32(m4) / 127;
    const __m512 id = _mm512_set1_ps(d ? 1.0f / d : 0.0f);
    const __m512i q0 = round_half_away(_mm512_mul_ps(v0, id)), q1 = round_half_away(_mm512_mul_ps(v1, id));
    // |q| ≤ 127, so the saturating narrowing is the plain one.
    _mm_storeu_si128((__m128i *)qs, _mm512_cvtsepi32_epi8(q0));
    _mm_storeu_si128((__m128i *)(qs + 16), _mm512_cvtsepi32_epi8(q1));
    if (sum) *sum = hsum_i32x8(fold_i32x16(_mm512_add_epi32(q0, q1)));
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

// ---------------------------------------------------------------------------
// x8 groups (repack.h). A packed 32-byte vector holds 4 codes of each of 8
// rows (row r in int32 lane r); a 512-bit vector holds two of them, so its
// int32 lanes r and 8 + r both belong to row r and are folded once per block.
// The activation's four bytes for each half are put in place by one
// vpermd over the block's 32 activation bytes. The float epilogue is
// AVX2's (8 lanes, one per row): d = dw · da, then one FMA, as repack.c.

// Lanes 0-7 take int32 k of the activation block, lanes 8-15 int32 k + 1.
static ALWAYS_INLINE __m512i pick_pair(__m512i act, int k) {
    return _mm512_permutexvar_epi32(join_si(_mm256_set1_epi32(k), _mm256_set1_epi32(k + 1)), act);
}

#define EACH_TOKEN(t) _Pragma("GCC unroll 4") for (int t = 0; t < T; t++)

static ALWAYS_INLINE const void *act_row(const void *act, size_t stride, int t) {
    return (const char *)act + (size_t)t * stride;
}

static ALWAYS_INLINE __m256 fp16x8(const void *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

static ALWAYS_INLINE void q4_0_tile(const int T, const bool stream, int64_t nb, const uint8_t *group, const void *act,
                                    size_t stride, const int32_t *aux, size_t aux_stride, float *y, size_t ldy) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const block_q8_0 *a[4];
    __m256 acc[4];
    EACH_TOKEN(t) {
        a[t] = act_row(act, stride, t);
        acc[t] = _mm256_setzero_ps();
    }
    const uint8_t *col = group;
    for (int64_t b = 0; b < nb; b++, col += 8 * sizeof(block_q4_0)) {
        if (stream) lb_x8_prefetch(col, 8 * sizeof(block_q4_0)); // repack.h
        // v0: codes 0-3 (k = 0) and 4-7 (k = 1) of each row's low and high nibbles; v1: k = 2, 3.
        const __m512i v0 = load512(col + 16), v1 = load512(col + 16 + 64);
        const __m512i lo0 = _mm512_and_si512(v0, m4), hi0 = _mm512_and_si512(_mm512_srli_epi16(v0, 4), m4);
        const __m512i lo1 = _mm512_and_si512(v1, m4), hi1 = _mm512_and_si512(_mm512_srli_epi16(v1, 4), m4);
        const __m256 dw = fp16x8(col);
        EACH_TOKEN(t) {
            // int32 k of the activation: bytes 4k..4k+3 (low nibbles' elements for k < 4, high ones' for k ≥ 4).
            const __m512i av = _mm512_castsi256_si512(load256(a[t][b].qs));
            __m512i s = dpbusd(_mm512_setzero_si512(), lo0, pick_pair(av, 0));
            s = dpbusd(s, lo1, pick_pair(av, 2));
            s = dpbusd(s, hi0, pick_pair(av, 4));
            s = dpbusd(s, hi1, pick_pair(av, 6));
            const __m256i isum = _mm256_sub_epi32(fold_i32x16(s), _mm256_set1_epi32(aux[(size_t)t * aux_stride + b]));
            const __m256 d = _mm256_mul_ps(dw, _mm256_set1_ps(_cvtsh_ss(a[t][b].d)));
            acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(isum), acc[t]);
        }
    }
    EACH_TOKEN(t) _mm256_storeu_ps(y + (size_t)t * ldy, acc[t]);
}

static void gemm_x8_q4_0(int64_t cols, const void *group, const void *act, size_t stride, const int32_t *aux,
                         size_t aux_stride, int n, float *y, size_t ldy) {
    const int64_t nb = cols / QK4_0;
    const bool stream = n < LB_X8_STREAM_MAX_TOKENS;
    int t = 0;
    for (; t + 4 <= n; t += 4)
        q4_0_tile(4, stream && t == 0, nb, group, act_row(act, stride, t), stride, aux + (size_t)t * aux_stride,
                  aux_stride, y + (size_t)t * ldy, ldy);
    for (; t < n; t++)
        q4_0_tile(1, stream && t == 0, nb, group, act_row(act, stride, t), stride, aux + (size_t)t * aux_stride,
                  aux_stride, y + (size_t)t * ldy, ldy);
}

static ALWAYS_INLINE void q8_0_tile(const int T, const bool stream, int64_t nb, const uint8_t *group, const void *act,
                                    size_t stride, float *y, size_t ldy) {
    const block_q8_0 *a[4];
    __m256 acc[4];
    EACH_TOKEN(t) {
        a[t] = act_row(act, stride, t);
        acc[t] = _mm256_setzero_ps();
    }
    const uint8_t *col = group;
    for (int64_t b = 0; b < nb; b++, col += 8 * sizeof(block_q8_0)) {
        if (stream) lb_x8_prefetch(col, 8 * sizeof(block_q8_0)); // repack.h
        // Vector g: 4-byte groups 2g (low half) and 2g + 1 (high half) of each row.
        __m512i aw[4];
        __mmask64 neg[4];
        #pragma GCC unroll 4
        for (int g = 0; g < 4; g++) {
            const __m512i w = load512(col + 16 + 64 * g);
            aw[g] = _mm512_abs_epi8(w);
            neg[g] = _mm512_movepi8_mask(w);
        }
        const __m256 dw = fp16x8(col);
        EACH_TOKEN(t) {
            const __m512i av = _mm512_castsi256_si512(load256(a[t][b].qs));
            __m512i s = _mm512_setzero_si512();
            #pragma GCC unroll 4
            for (int g = 0; g < 4; g++) {
                const __m512i x = pick_pair(av, 2 * g);
                s = dpbusd(s, aw[g], _mm512_mask_sub_epi8(x, neg[g], _mm512_setzero_si512(), x));
            }
            const __m256 d = _mm256_mul_ps(dw, _mm256_set1_ps(_cvtsh_ss(a[t][b].d)));
            acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(fold_i32x16(s)), acc[t]);
        }
    }
    EACH_TOKEN(t) _mm256_storeu_ps(y + (size_t)t * ldy, acc[t]);
}

static void gemm_x8_q8_0(int64_t cols, const void *group, const void *act, size_t stride, const int32_t *aux,
                         size_t aux_stride, int n, float *y, size_t ldy) {
    (void)aux, (void)aux_stride;
    const int64_t nb = cols / QK8_0;
    const bool stream = n < LB_X8_STREAM_MAX_TOKENS;
    int t = 0;
    for (; t + 4 <= n; t += 4)
        q8_0_tile(4, stream && t == 0, nb, group, act_row(act, stride, t), stride, y + (size_t)t * ldy, ldy);
    for (; t < n; t++)
        q8_0_tile(1, stream && t == 0, nb, group, act_row(act, stride, t), stride, y + (size_t)t * ldy, ldy);
}

// ---------------------------------------------------------------------------

void FILL(struct lb_kernels *k) {
    *k = lb_kernels_avx2;
    k->isa = ISA_NAME;
    k->vec_dot[LB_TYPE_F32] = vec_dot_f32;
    k->vec_dot[LB_TYPE_Q8_0] = vec_dot_q8_0;
    k->vec_dot[LB_TYPE_Q4_0] = vec_dot_q4_0;
    k->vec_dot[LB_TYPE_Q4_1] = vec_dot_q4_1;
    k->vec_dot[LB_TYPE_Q5_0] = vec_dot_q5_0;
    k->vec_dot[LB_TYPE_Q5_1] = vec_dot_q5_1;
#define INT_ENTRY(ID, fn, bits, group, zp) k->vec_dot[LB_TYPE_##ID] = vec_dot_##fn;
    LB_INT_TYPES(INT_ENTRY)
#undef INT_ENTRY
    // The per-tensor types share their per-channel twin's kernel (kernels_avx2_int.h).
    k->vec_dot[LB_TYPE_INT8_T] = vec_dot_int8_c;
    k->vec_dot[LB_TYPE_INT4_T] = vec_dot_int4_c;
    k->from_float[LB_TYPE_Q8_0] = quantize_q8_0;
    k->from_float[LB_TYPE_Q8_1] = quantize_q8_1;
    k->to_float[LB_TYPE_F16] = to_float_f16;
    k->gemm_x8[LB_TYPE_Q4_0] = gemm_x8_q4_0;
    k->gemm_x8[LB_TYPE_Q8_0] = gemm_x8_q8_0;
    // Small batches: AVX2's kernels where this table kept AVX2's single-token
    // kernels (they give those bits), this file's for Q8_0 and Q4_0.
    static lb_dot_batch_fn batch[LB_TYPE_COUNT];
    for (int t = 0; t < LB_TYPE_COUNT; t++)
        if (k->vec_dot[t] == lb_kernels_avx2.vec_dot[t] && k->vec_dot4[t] == lb_kernels_avx2.vec_dot4[t])
            batch[t] = lb_kernels_avx2.dot_batch[t];
    batch[LB_TYPE_Q8_0] = dot_batch_q8_0;
    batch[LB_TYPE_Q4_0] = dot_batch_q4_0;
    k->dot_batch = batch;
}

#endif // x86
