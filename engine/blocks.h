/*
 * blocks.h — the byte layout of every quantized block, bit-exact with ggml's
 * ggml-common.h, because GGUF files store these blocks verbatim.
 *
 * Included by the engine (C) and by the CUDA sources in cuda/ (nvcc, C++), so it uses only
 * syntax both accept: fp16 fields are uint16_t bits (convert with fp16.h on
 * the CPU, __half on the GPU), and LB_BLOCK_ASSERT picks static_assert or
 * _Static_assert. Every struct is followed by a size check: a padding byte
 * the compiler slipped in would silently shift every block after the first.
 *
 * Element order inside a block is part of the format and is spelled out at
 * each struct; the dequantizers in quants_legacy.c / quants_k.c are the
 * reference for it.
 */
#ifndef LB_BLOCKS_H
#define LB_BLOCKS_H

#include <stdint.h>

#ifdef __cplusplus
#define LB_BLOCK_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define LB_BLOCK_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

// ---------------------------------------------------------------------------
// Legacy blocks: 32 elements, one scale (and for _1 types one min).
// Nibble order: qs[j] low nibble is element j, high nibble element j + 16.

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32

// x = d * (q - 8), q in [0, 15]. 4.5 bits per weight.
typedef struct {
    uint16_t d;            // fp16 scale
    uint8_t qs[QK4_0 / 2]; // nibbles
} block_q4_0;
LB_BLOCK_ASSERT(sizeof(block_q4_0) == 2 + QK4_0 / 2, "block_q4_0 size");

// x = d * q + m, q in [0, 15]. 5 bits per weight.
typedef struct {
    uint16_t d;            // fp16 scale
    uint16_t m;            // fp16 min (the block's smallest value)
    uint8_t qs[QK4_1 / 2]; // nibbles
} block_q4_1;
LB_BLOCK_ASSERT(sizeof(block_q4_1) == 4 + QK4_1 / 2, "block_q4_1 size");

// x = d * (q - 16), q in [0, 31]; bit 4 of element j is bit j of qh
// (qh is a little-endian uint32 stored as bytes). 5.5 bits per weight.
typedef struct {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[QK5_0 / 2];
} block_q5_0;
LB_BLOCK_ASSERT(sizeof(block_q5_0) == 2 + 4 + QK5_0 / 2, "block_q5_0 size");

// x = d * q + m, q in [0, 31]; qh as in q5_0. 6 bits per weight.
typedef struct {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
} block_q5_1;
LB_BLOCK_ASSERT(sizeof(block_q5_1) == 4 + 4 + QK5_1 / 2, "block_q5_1 size");

// x = d * q, q in [-127, 127] as the quantizer writes them. 8.5 bits per weight.
typedef struct {
    uint16_t d;
    int8_t qs[QK8_0];
} block_q8_0;
LB_BLOCK_ASSERT(sizeof(block_q8_0) == 2 + QK8_0, "block_q8_0 size");

// Activation format for q4_1 / q5_1 dot products: s = d * sum(qs) lets the
// dot product apply the weight's min once per block instead of per element.
typedef struct {
    uint16_t d;
    uint16_t s; // fp16 of d * sum(qs)
    int8_t qs[QK8_1];
} block_q8_1;
LB_BLOCK_ASSERT(sizeof(block_q8_1) == 4 + QK8_1, "block_q8_1 size");

// ---------------------------------------------------------------------------
// k-quants: super-blocks of 256 elements split into sub-blocks of 16 or 32,
// whose scales are themselves quantized against the fp16 super-block scale.

#define QK_K 256
#define K_SCALE_SIZE 12

// x = d * (scales[s] & 15) * q - dmin * (scales[s] >> 4), 16 sub-blocks of 16,
// q in [0, 3]. qs: per 128-element half, byte l holds elements l, l+32, l+64,
// l+96 in bits 0-1, 2-3, 4-5, 6-7. 2.625 bits per weight.
typedef struct {
    uint8_t scales[QK_K / 16]; // low nibble scale, high nibble min
    uint8_t qs[QK_K / 4];
    uint16_t d;    // fp16 super-block scale for the scales
    uint16_t dmin; // fp16 super-block scale for the mins
} block_q2_K;
LB_BLOCK_ASSERT(sizeof(block_q2_K) == 2 * 2 + QK_K / 16 + QK_K / 4, "block_q2_K size");

// x = d * (sc[s] - 32) * (q - 4 * !hbit), 16 sub-blocks of 16, 6-bit scales
// packed in 12 bytes. Low 2 bits in qs as in q2_K; the third bit of element
// e is bit e/32 of hmask[e % 32]. 3.4375 bits per weight.
typedef struct {
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[12];
    uint16_t d;
} block_q3_K;
LB_BLOCK_ASSERT(sizeof(block_q3_K) == 2 + QK_K / 4 + QK_K / 8 + 12, "block_q3_K size");

// x = d * sc[s] * q - dmin * m[s], 8 sub-blocks of 32, 6-bit scale and min
// per sub-block packed in 12 bytes (see lb_get_scale_min_k4). qs: per
// 64-element chunk, 32 bytes; low nibbles elements 0-31, high 32-63.
// 4.5 bits per weight.
typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qs[QK_K / 2];
} block_q4_K;
LB_BLOCK_ASSERT(sizeof(block_q4_K) == 2 * 2 + K_SCALE_SIZE + QK_K / 2, "block_q4_K size");

// As q4_K with a fifth bit: bit 4 of element 64c + l is bit 2c of qh[l],
// of element 64c + 32 + l bit 2c+1. 5.5 bits per weight.
typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
} block_q5_K;
LB_BLOCK_ASSERT(sizeof(block_q5_K) == 2 * 2 + K_SCALE_SIZE + QK_K / 2 + QK_K / 8, "block_q5_K size");

// x = d * scales[s] * (q - 32), 16 sub-blocks of 16, q in [0, 63]. Per
// 128-element half: ql[0..63] and qh[0..31]; element l (l < 32) takes ql[l]
// low nibble, l+32 ql[l+32] low, l+64 ql[l] high, l+96 ql[l+32] high, with
// their top two bits at qh[l] bits 0-1, 2-3, 4-5, 6-7. 6.5625 bits per weight.
typedef struct {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    uint16_t d;
} block_q6_K;
LB_BLOCK_ASSERT(sizeof(block_q6_K) == 2 + QK_K / 16 + 3 * QK_K / 4, "block_q6_K size");

// Activation format for k-quant dot products: a float scale (activations have
// a wider range than weights) and the sums of each 16 quants, which the dot
// products use to apply the weights' mins without touching the elements.
typedef struct {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
} block_q8_K;
LB_BLOCK_ASSERT(sizeof(block_q8_K) == 4 + QK_K + QK_K / 16 * 2, "block_q8_K size");

// ---------------------------------------------------------------------------
// lowbit's own blocks (type ids 128 and up; no ggml counterpart).

#define QK_BNB4 64

// bitsandbytes' 4-bit blockwise formats, NF4 and FP4 (one layout, two code
// tables, see quants_bnb.c): x = table[q] * absmax, q in [0, 15]. As in
// bitsandbytes, element 2i is the high nibble of qs[i] and element 2i+1 the
// low nibble. 4.25 bits per weight.
typedef struct {
    uint16_t absmax;        // fp16 of the block's largest |x|
    uint8_t qs[QK_BNB4 / 2];
} block_bnb4;
LB_BLOCK_ASSERT(sizeof(block_bnb4) == 2 + QK_BNB4 / 2, "block_bnb4 size");

// ---------------------------------------------------------------------------
// lowbit's integer grid types (quants_int.c): w = d · (q − z) with an integer
// code q in [0, 2^bits − 1]. Symmetric ("absmax") types fix z = 2^(bits−1),
// so they store no zero; zero-point types store z as an integer, so 0.0 is
// exactly the code z. The codes are those of grid.h, stored unchanged.
//
// Codes come in chunks of 32 elements, laid out for 32-lane SIMD unpacking:
//   8 bits: 32 bytes, byte j = q_j.
//   4 bits: 16 bytes, byte j = q_j | q_{j+16} << 4 (ggml's nibble order).
//   2 bits:  8 bytes, bits 2k..2k+1 of byte j = q_{j+8k}.
//   3 bits: the low two bits as a 2-bit chunk (8 bytes), then 4 bytes of a
//           little-endian uint32 whose bit j is bit 2 of q_j.
// So a chunk is 4·bits bytes.
//
// Group types (groups of 32, 64 or 128 along a row) are blocks of one group:
// an fp16 scale (and for zero-point types the zero and a pad byte) followed
// by group/32 chunks. Per-channel and per-tensor types keep their scale in a
// header at the start of each row (lb_row_header_sym / _zp), followed by
// n/32 chunks; the traits row says how big the header is (row_header), and
// lb_type_row_bytes is the one place a row's size is computed.

#define QK_INT_CHUNK 32
#define LB_INT_CHUNK_BYTES(bits) (4 * (bits))

#define LB_INT_BLOCKS(bits, g)                                                                               \
    typedef struct {                                                                                         \
        uint16_t d;                                  /* fp16 scale */                                        \
        uint8_t qs[(g) / QK_INT_CHUNK * LB_INT_CHUNK_BYTES(bits)];                                           \
    } block_int##bits##_g##g;                                                                                \
    LB_BLOCK_ASSERT(sizeof(block_int##bits##_g##g) == 2 + (g) * (bits) / 8, "block_int" #bits "_g" #g " size"); \
    typedef struct {                                                                                         \
        uint16_t d;                                  /* fp16 scale */                                        \
        uint8_t z;                                   /* zero point, 0 .. 2^bits − 1 */                       \
        uint8_t pad;                                 /* written 0 */                                         \
        uint8_t qs[(g) / QK_INT_CHUNK * LB_INT_CHUNK_BYTES(bits)];                                           \
    } block_int##bits##z_g##g;                                                                               \
    LB_BLOCK_ASSERT(sizeof(block_int##bits##z_g##g) == 4 + (g) * (bits) / 8, "block_int" #bits "z_g" #g " size");

LB_INT_BLOCKS(8, 32)
LB_INT_BLOCKS(8, 64)
LB_INT_BLOCKS(8, 128)
LB_INT_BLOCKS(4, 32)
LB_INT_BLOCKS(4, 64)
LB_INT_BLOCKS(4, 128)
LB_INT_BLOCKS(3, 32)
LB_INT_BLOCKS(3, 64)
LB_INT_BLOCKS(3, 128)
LB_INT_BLOCKS(2, 32)
LB_INT_BLOCKS(2, 64)
LB_INT_BLOCKS(2, 128)

// Row headers of the per-channel and per-tensor types. A float scale: one per
// row costs nothing, and it keeps the scale exact where fp16 would round it.
typedef struct {
    float d;
} lb_row_header_sym;
LB_BLOCK_ASSERT(sizeof(lb_row_header_sym) == 4, "lb_row_header_sym size");

typedef struct {
    float d;
    uint8_t z;      // zero point, 0 .. 2^bits − 1
    uint8_t pad[3]; // written 0
} lb_row_header_zp;
LB_BLOCK_ASSERT(sizeof(lb_row_header_zp) == 8, "lb_row_header_zp size");

// ---------------------------------------------------------------------------
// FP8 weights (quants_fp8.c): per row a float scale (lb_row_header_sym), then
// one byte per element, an OCP FP8 code (E4M3 "fn": no infinities, NaN
// 0x7F/0xFF, largest 448; or E5M2: IEEE-like, largest 57344):
// x = d · fp8(code). Blocks of 1 element: any row length fits.

// ---------------------------------------------------------------------------
// NF4 with double quantization (quants_bnb.c, bitsandbytes'
// bnb_4bit_use_double_quant). Row header: the offset (mean of the row's block
// absmax values) and the second-level scale (largest |absmax − offset|);
// then one block per 64 weights: an 8-bit code of the block's absmax in
// bitsandbytes' dynamic map, absmax = map[code] · scale + offset, and the
// 4-bit NF4 codes in bitsandbytes' order (as block_bnb4). 4.125 bits per
// weight plus 64 bits per row.
typedef struct {
    float offset;
    float scale;
} lb_row_header_dq;
LB_BLOCK_ASSERT(sizeof(lb_row_header_dq) == 8, "lb_row_header_dq size");

typedef struct {
    uint8_t absmax;         // code in the dynamic map
    uint8_t qs[QK_BNB4 / 2];
} block_nf4_dq;
LB_BLOCK_ASSERT(sizeof(block_nf4_dq) == 1 + QK_BNB4 / 2, "block_nf4_dq size");
// LLM.int8()'s vector-wise int8 weights (llm_int8.h): x = d * qs, q in
// [-127, 127], where d = absmax(row) / 127 is one scale for the whole row,
// repeated in every block so that a row decodes block by block like every
// other type (bitsandbytes keeps it once per row; this costs 0.5 bit per
// weight). Activations use the same layout: one scale per token.
typedef struct {
    uint16_t d;            // fp16 of the row's scale; equal in every block of a row
    int8_t qs[32];
} block_llm_int8;
LB_BLOCK_ASSERT(sizeof(block_llm_int8) == 2 + 32, "block_llm_int8 size");

#endif // LB_BLOCKS_H
