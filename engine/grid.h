/*
 * grid.h — a quantization grid, and writing weights that lie on it as a
 * tensor type.
 *
 * GPTQ, AWQ and round-to-nearest all end in the same place: every group of
 * `group` consecutive weights of a row has a scale and a zero point, and
 * every weight is w = scale · (q − zero) with an integer code q in
 * [0, 2^bits − 1]. A symmetric grid has zero = 2^(bits−1) in every group.
 * The algorithms choose (q, scale, zero); this file knows which tensor type
 * stores that grid exactly and packs it, so the algorithms never see a block
 * layout.
 */
#ifndef LB_GRID_H
#define LB_GRID_H

#include <stdbool.h>
#include <stdint.h>

#include "lowbit.h"

enum { LB_GRID_PER_CHANNEL = 0 };  // group == 0: one group per row

struct lb_grid {
    int bits;        // 2..8
    int group;       // weights per group along a row; LB_GRID_PER_CHANNEL for whole rows
    bool symmetric;  // zero fixed at 2^(bits-1)
};

// The tensor type that stores weights on grid g exactly (up to the type's
// fp16 scale rounding), or LB_TYPE_COUNT when no type in the table does.
// Every grid with bits in {2, 3, 4, 8}, group in {32, 64, 128, per channel},
// symmetric or not, has one (and 5 bits at group 32): a ggml type where one
// holds it (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 at group 32), else lowbit's
// INTb_Gg / INTbZ_Gg / INTb_C / INTbZ_C (grid.c lists the mapping).
lb_type lb_grid_type(struct lb_grid g);

// The grid type t stores: true and *g when t is in the table above.
bool lb_type_grid(lb_type t, struct lb_grid *g);

// Where a row of n weights goes when it does not fit lowbit's integer grid
// type t (an INTb[Z]_* type; not the ggml types, whose fallbacks are
// llama.cpp's, nor the per-tensor INT8_T/INT4_T): the type of the same bits
// and symmetry with the largest smaller group that divides n (128 → 64 → 32,
// where a ggml type such as Q4_0 holds the 32-group grid), then the
// per-channel type (rows a multiple of 32). t itself when n fits it;
// LB_TYPE_COUNT when no type of those bits and symmetry fits n.
lb_type lb_grid_fallback(lb_type t, int64_t n);

// Whether a matrix of type t with rows of n weights is written on method
// grid g: t holds g, or t is g's fallback for n (lb_grid_fallback). *out
// gets t's grid, which GPTQ and AWQ then use for that matrix.
bool lb_grid_row_grid(struct lb_grid g, lb_type t, int64_t n, struct lb_grid *out);

// Pack one row of n weights on grid g into type t (t == lb_grid_type(g)).
// q[i] in [0, 2^bits − 1]; scale[k] and zero[k] belong to group k (one of
// each for a per-channel grid). zero is integer-valued, in [0, 2^bits − 1]
// for lowbit's types (checked), and ignored (may be NULL) for symmetric
// grids. n must be a multiple of the group and of 32. dst receives
// lb_type_row_bytes(t, n) bytes. Fails with LB_ERR_ARG, writing nothing
// useful, on a mismatch.
lb_status lb_grid_pack_row(lb_type t, struct lb_grid g, int64_t n, const uint8_t *q,
                           const float *scale, const float *zero, void *dst, lb_error *err);

#endif
