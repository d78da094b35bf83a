/*
 * simd_avx2.h — the small AVX2 helpers every kernels_avx2*.c file uses.
 * Included only by files compiled with -mavx2 -mfma -mf16c.
 */
#ifndef LB_SIMD_AVX2_H
#define LB_SIMD_AVX2_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

static inline float fp16_to_f32(uint16_t h) { return _cvtsh_ss(h); } // exact, as lb_fp16_to_f32

static inline float hsum_f32x8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int hsum_i32x8(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

static inline __m256i load256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

static inline __m256 load_f16x8(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

// 16 bytes of nibbles -> 32 bytes: low nibbles (elements 0-15), then high (16-31).
static inline __m256i unpack_nibbles_32(const uint8_t *p) {
    const __m128i b = _mm_loadu_si128((const __m128i *)p);
    const __m256i v = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

// 32 bits -> 32 bytes, 0xFF where the bit is set: byte k tests bit k.
static inline __m256i expand_bits_32(uint32_t bits) {
    // Byte k of the shuffle takes byte k/8 of `bits`, then tests bit k%8.
    const __m256i pick = _mm256_setr_epi64x(0, 0x0101010101010101LL, 0x0202020202020202LL, 0x0303030303030303LL);
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), pick);
    const __m256i mask = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, mask), mask);
}

// The 32 codes of an integer-grid chunk (blocks.h, quants_int.c) of 8, 4, 3 or
// 2 bits, one per byte, in element order.
static inline __m256i unpack_chunk(int bits, const uint8_t *p) {
    if (bits == 8) return load256(p);
    if (bits == 4) return unpack_nibbles_32(p);
    // 2 bits: the 8 bytes in each 64-bit lane, lane k shifted by 2k, so byte j
    // of lane k holds element j + 8k in its low two bits.
    uint64_t v;
    memcpy(&v, p, 8);
    const __m256i low = _mm256_and_si256(_mm256_srlv_epi64(_mm256_set1_epi64x((long long)v), _mm256_setr_epi64x(0, 2, 4, 6)),
                                         _mm256_set1_epi8(3));
    if (bits == 2) return low;
    uint32_t h; // 3 bits: the third bit of each code
    memcpy(&h, p + 8, 4);
    return _mm256_or_si256(low, _mm256_and_si256(expand_bits_32(h), _mm256_set1_epi8(4)));
}

#endif
