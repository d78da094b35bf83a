/*
 * repack.h — weight matrices re-laid out in memory for the matrix kernels.
 *
 * Why: decoding reads every weight once per token, and a one-row dot product
 * spends most of its instructions on per-block overhead (the scale, the
 * horizontal sum) rather than on the bytes. In the x8 layout, eight
 * consecutive rows are interleaved block by block, four bytes of each row at a
 * time, so one 32-byte vector holds four codes of each of eight rows. Against
 * four activation bytes broadcast to every lane, one maddubs/madd gives eight
 * row sums in eight int32 lanes: no horizontal sums, one scale vector per
 * block for eight rows, and each weight byte is loaded once for every
 * activation row of a tile (prompt processing reuses it from L1 for 4 tokens).
 *
 * The layout is an in-memory form only: GGUF files keep ggml's row layout
 * (the file stays the one llama.cpp reads). A packed group of 8 rows takes
 * exactly the bytes of its 8 plain rows, so a matrix can be packed in place;
 * a matrix whose row count is not a multiple of 8 keeps its last rows % 8
 * rows plain, after the groups.
 *
 * Group layouts (one "column" per block of the row type, columns in order;
 * "[s][r]" means index 8·s + r, r the row within the group):
 *
 *   Q4_0 (144 B per 32 columns):  d[8] fp16 | qs[128]
 *        qs[32k + 4r + j] = row r's qs[4k + j]  (k, j < 4): low nibbles are
 *        elements 4k..4k+3, high nibbles 16+4k..16+4k+3.
 *   Q8_0 (272 B per 32 columns):  d[8] fp16 | qs[256]
 *        qs[32g + 4r + j] = row r's qs[4g + j]  (g < 8, j < 4).
 *   Q4_K (1152 B per 256 columns): d[8] | dmin[8] (fp16) | sc[64] | mn[32] | qs[1024]
 *        sc[s][r] = scale(r, s) | (min(r, s) >> 4) << 6       (6-bit scale, 2 high bits of the min)
 *        mn[s][r] = (min(r, s) & 15) | (min(r, s + 4) & 15) << 4  (s < 4)
 *        qs[256c + 32g + 4r + j] = row r's qs[32c + 4g + j]  (c < 4, g < 8): low nibbles
 *        are elements 64c + 4g + j (sub-block 2c), high ones 64c + 32 + 4g + j (2c+1).
 *   Q6_K (1680 B per 256 columns): d[8] fp16 | sc[128] int8 ([s][r], s < 16) | qs[1536]
 *        for half h < 2 and g < 8, three vectors at qs + 96·(8h + g):
 *        row r's ql[64h + 4g + j], ql[64h + 32 + 4g + j] and qh[32h + 4g + j] at 4r + j.
 *
 * Kernels (lb_kernels()->gemm_x8, scalar references in repack.c, AVX2 in
 * kernels_avx2_x8.c) compute the integer part of every block exactly and
 * then do the same float operations in the same order (one fmaf per block
 * and row), so the scalar and AVX2 results are bit-identical, and a token's
 * result does not depend on how many tokens share the call.
 */
#ifndef LB_REPACK_H
#define LB_REPACK_H

#include "model.h"
#include "types.h"

enum { LB_X8_ROWS = 8 };

// lb_gemm_x8_fn (types.h): Y[t·ldy + k] = (row k of the group) · (activation
// row t), for k < 8, t < n. group: one packed group; act: n rows of the type's
// vec_dot_type, act_stride bytes apart; aux: for Q4_0, per activation row
// cols/32 int32s (8 × the sum of each block's codes: the kernel works on
// unsigned nibbles and takes the 8 offset out through it), aux_stride int32s
// apart; NULL for other types.

// Decoding streams each group once, block after block. The hardware
// prefetcher alone left TinyLlama Q4_0 decode at 2 threads at two thirds of
// the measured read bandwidth; the kernels ask for the lines
// LB_X8_PREFETCH_DISTANCE bytes ahead of each block they multiply, which took
// it 10 % further (2048 measured best against 1024 and 4096). Past the end of
// a group the lines are the next group's, which the same chunk usually takes
// next; a prefetch never faults. Only the first pass over a group streams it
// (a call with fewer than LB_X8_STREAM_MAX_TOKENS tokens: decoding, or a
// verification batch): prompt processing reuses a chunk from L2 for many
// tokens, where the prefetches cost ~2 % of pp speed (Q4_K_M, TinyLlama).
enum { LB_X8_PREFETCH_DISTANCE = 2048, LB_X8_STREAM_MAX_TOKENS = 8 };
static inline void lb_x8_prefetch(const void *block, size_t bytes) {
    for (size_t i = 0; i < bytes; i += 64) __builtin_prefetch((const char *)block + LB_X8_PREFETCH_DISTANCE + i, 0, 3);
}

// Scalar references (repack.c).
void lb_gemm_x8_q4_0_ref(int64_t cols, const void *group, const void *act, size_t act_stride, const int32_t *aux,
                         size_t aux_stride, int n, float *y, size_t ldy);
void lb_gemm_x8_q8_0_ref(int64_t cols, const void *group, const void *act, size_t act_stride, const int32_t *aux,
                         size_t aux_stride, int n, float *y, size_t ldy);
void lb_gemm_x8_q4_K_ref(int64_t cols, const void *group, const void *act, size_t act_stride, const int32_t *aux,
                         size_t aux_stride, int n, float *y, size_t ldy);
void lb_gemm_x8_q6_K_ref(int64_t cols, const void *group, const void *act, size_t act_stride, const int32_t *aux,
                         size_t aux_stride, int n, float *y, size_t ldy);

// AVX2 kernels (kernels_avx2_x8.c), bit-identical to the references.
void lb_gemm_x8_q4_0_avx2(int64_t cols, const void *group, const void *act, size_t act_stride, const int32_t *aux,
                          size_t aux_stride, int n, float *y, size_t ldy);
void lb_gemm_x8_q8_0_avx2(int64_t cols, const void *group, const void *act, size_t act_stride, const int32_t *aux,
                          size_t aux_stride, int n, float *y, size_t ldy);
void lb_gemm_x8_q4_K_avx2(int64_t cols, const void *group, const void *act, size_t act_stride, const int32_t *aux,
                          size_t aux_stride, int n, float *y, size_t ldy);
void lb_gemm_x8_q6_K_avx2(int64_t cols, const void *group, const void *act, size_t act_stride, const int32_t *aux,
                          size_t aux_stride, int n, float *y, size_t ldy);

// False when LOWBIT_REPACK=0 is set (benchmarks and tests compare both):
// matrices then stay in the file's row layout.
bool repack_enabled(void);

// True when `type` has an x8 layout and kernels.
bool repack_has_x8(lb_type type);
// Whether a matrix of this type and shape gets packed (at least one group).
bool repack_eligible(lb_type type, int64_t rows, int64_t cols);

// Pack 8 plain rows (row_bytes apart from `rows`) into one group at dst, or
// unpack row k of a group back into plain bytes. dst must not overlap src.
void repack_pack_group(lb_type type, int64_t cols, const void *rows, void *dst);
void repack_unpack_row(lb_type type, int64_t cols, const void *group, int k, void *row);

// Row r of a weight, in either layout, as floats (cols of them).
void weight_row_to_float(const struct lb_weight *w, int64_t r, float *out);

// Pack a plain matrix in place (its data must be writable). Needs a scratch
// of 8 rows; false only when that cannot be allocated (w is then unchanged).
bool weight_pack_inplace(struct lb_weight *w);

// Q4_0's aux row for one activation row (cols/32 int32s), see lb_gemm_x8_fn.
void repack_q4_0_aux(const void *act_row, int64_t cols, int32_t *aux);

// Pack the model's live matrices that still point into the file mapping:
// copied into one anonymous buffer (m->pack_buf), after which the pages of
// the file they came from are dropped from memory (madvise DONTNEED), so
// resident memory stays about the file size. The token embeddings stay
// plain (rows are looked up, and a tied output head shares them). Idempotent.
lb_status model_pack_weights(struct lb_model *m, lb_error *err);
void model_pack_free(struct lb_model *m);
// Drop the pages of [p, p + n) from memory when the range lies in the model
// file's mapping (a no-op elsewhere): for source matrices that the live
// weights no longer point at after a re-quantization.
void model_drop_file_pages(const struct lb_model *m, const void *p, size_t n);

// matmul for a packed weight (called by matmul() in matmul.c).
lb_status matmul_x8(struct lb_threadpool *pool, struct lb_matmul_scratch *s, const struct lb_weight *w,
                    const float *x, float *y, int n, lb_error *err);

#endif
