/*
 * kernels_batch.h — small-batch matrix products: a few weight rows against n
 * activation rows, each weight row read and unpacked once for all n.
 *
 * Why: a speculative verification batch is K + 1 tokens (2..16). Decoding one
 * token is bound by reading the weights; the single-token kernels, run once
 * per activation row, convert or unpack every weight again for every token,
 * which made a batch of 8 cost 5-13 decodes on two cores. Here the costly
 * part (F16 → f32, nibbles → bytes, k-quant scales) is done once per weight
 * block and only the multiply-adds are repeated per token, so a batch costs
 * little more than a decode while the weights come from memory.
 *
 * The contract, tested by tests/test_matmul_batch.c for every type and ISA:
 * y[t·ldy + r] is bit-identical to what the same ISA's single-token path in
 * matmul.c gives for activation row t alone (vec_dot, or vec_dot4 for F16
 * rows in groups of four). So a verification batch gives exactly the logits
 * of decoding its tokens one by one, and greedy speculative decoding gives
 * exactly the tokens of plain greedy decoding. Each kernel therefore repeats
 * its single-token kernel's arithmetic for every (row, token): the same
 * integer sums per block and the same float operations in the same order;
 * only the loop order (blocks outside, tokens inside) differs. A change to a
 * single-token kernel's accumulation order must be made here too.
 */
#ifndef LB_KERNELS_BATCH_H
#define LB_KERNELS_BATCH_H

#include "types.h"

#include <stddef.h>

// Rows w, w + w_stride, ..., (rows of them, `cols` elements each) against n
// activation rows a, a + a_stride, ... already converted to the weight type's
// vec_dot_type: y[t * ldy + r] = row r · activation t. The first `quad`
// rows (a multiple of 4) are those the single-token path computes with the
// ISA's vec_dot4 (its four-row kernel), the rest those it computes with
// vec_dot; quad is 0 where the ISA has no four-row kernel for the type.
// (lb_dot_batch_fn is declared in types.h, beside the kernel table that holds them.)

// The chosen ISA's small-batch kernel for weights of type t, or NULL when
// there is none (matmul then calls the single-token kernels per token).
lb_dot_batch_fn lb_kernel_dot_batch(lb_type t);

// The tables: scalar in kernels_batch.c, AVX2 in kernels_avx2_batch.c; the
// AVX-512 tables build theirs in kernels_avx512.c. A kernel table points at
// its own (lb_kernels.dot_batch).
extern const lb_dot_batch_fn lb_dot_batch_scalar[LB_TYPE_COUNT];
extern const lb_dot_batch_fn lb_dot_batch_avx2[LB_TYPE_COUNT];

#endif
