/*
 * gptq.h — GPTQ (Frantar et al., "GPTQ: Accurate Post-Training Quantization
 * for Generative Pre-trained Transformers", 2022; reference implementation
 * IST-DASLab/gptq, gptq.py and quant.py) on one weight matrix.
 *
 * A layer y = W·x is quantized so that ‖W·X − Ŵ·X‖² over calibration inputs
 * X is small, not ‖W − Ŵ‖². With H = 2·X·Xᵀ (cols × cols), GPTQ quantizes W
 * one column at a time onto a grid (grid.h) and spreads each column's
 * rounding error over the columns not yet quantized, in proportion to the
 * upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU). Every row is independent: the
 * rows share H and nothing else.
 *
 * The pieces, each usable alone (tests/test_gptq.c):
 *   gptq_hessian_*       Σ x·xᵀ over input rows, accumulated in float64
 *   gptq_grid_params     the reference quantizer's scale and zero for a group
 *   gptq_rtn             round to nearest on the grid: GPTQ's baseline
 *   gptq_inverse_factor  H → U, the upper Cholesky factor of H⁻¹
 *   gptq_quantize        the algorithm
 *   gptq_output_error    ‖(W − Ŵ)·X‖ / ‖W·X‖ from H, without X
 * The layer-by-layer driver that feeds it calibration inputs is sequential.h.
 */
#ifndef LB_GPTQ_H
#define LB_GPTQ_H

#include <stdbool.h>
#include <stdint.h>

#include "grid.h"
#include "lowbit.h"

struct lb_threadpool;

// How a group's scale is chosen on a symmetric grid (asymmetric grids always
// use the min–max range).
enum gptq_scale_rule {
    GPTQ_SCALE_MINMAX,      // the reference's: ±max|x| in 2^bits − 1 steps
    GPTQ_SCALE_SIGNED_MAX,  // ggml's Q4_0/Q5_0: the largest-magnitude weight is −2^(bits−1)·scale exactly
};

struct lb_gptq_params {
    struct lb_grid grid;
    enum gptq_scale_rule scale_rule;
    double damp_percent;  // λ = damp_percent · mean(diag H) added to diag H (reference: 0.01; not absolute)
    bool act_order;       // desc_act: quantize columns in decreasing diag(H) order
    bool static_groups;   // group scale/zero fixed from the unquantized W before the loop (no g_idx)
    int block_size;       // columns per lazy batch update (reference: 128)
};

// Codes and group parameters of a quantized matrix, row-major. Weight (r, j)
// is scale[r·n_groups + k] · (q[r·cols + j] − zero[r·n_groups + k]) with
// k = j / group: groups are contiguous in the matrix's own
// column order, which is what the block types store.
struct gptq_codes {
    int64_t rows, cols;
    int64_t group;        // weights per group: the grid's, or cols per channel
    int64_t n_groups;     // ceil(cols / group)
    uint8_t *q;           // rows × cols
    float *scale, *zero;  // rows × n_groups; zero is integer-valued
};

// Allocate codes for a rows × cols matrix on grid g; LB_ERR_NOMEM on failure
// (with nothing left allocated).
lb_status gptq_codes_alloc(struct gptq_codes *c, int64_t rows, int64_t cols, struct lb_grid g, lb_error *err);
void gptq_codes_free(struct gptq_codes *c);  // accepts a zeroed struct
// The weights the codes stand for, rows × cols.
void gptq_codes_values(const struct gptq_codes *c, float *w);

// --- the grid ----------------------------------------------------------------

// Scale and zero of one group of n weights (x[0], x[stride], ...), as the
// reference's Quantizer.find_params: the range [min(x, 0), max(x, 0)] in
// 2^bits − 1 steps, zero = round(−min/scale); symmetric: the range ±max|x|
// and zero = 2^(bits−1). An all-zero group gets the range ±1. With
// GPTQ_SCALE_SIGNED_MAX on a symmetric grid, scale = m / −2^(bits−1) for
// the weight m of largest magnitude (1 for an all-zero group). The scale is
// rounded to fp16 (the types store it so), and the zero computed from it.
void gptq_grid_params(struct lb_grid g, enum gptq_scale_rule rule, const float *x, int64_t n, int64_t stride,
                      float *scale, float *zero);

// The code of x: clamp(round(x / scale) + zero, 0, 2^bits − 1), ties to even
// (torch.round).
static inline uint8_t gptq_grid_code(float x, float scale, float zero, int max_q) {
    float q = __builtin_rintf(x / scale) + zero;
    return (uint8_t)(q < 0.0f ? 0.0f : q > (float)max_q ? (float)max_q : q);
}

// Round to nearest: every group's parameters from its own weights, every
// weight to its nearest code. c must be allocated for (rows, cols, g).
void gptq_rtn(struct lb_grid g, enum gptq_scale_rule rule, int64_t rows, int64_t cols, const float *w,
              struct gptq_codes *c);

// --- the Hessian ---------------------------------------------------------------

// Σ x·xᵀ over every input row seen, in float64. H = 2/n_samples · Σ x·xᵀ
// after gptq_hessian_finish: the reference keeps a running mean of 2·X·Xᵀ over
// calibration sequences (its scale only matters relative to the dampening,
// which is relative too).
struct gptq_hessian {
    int64_t n;            // columns
    double *h;            // n × n; the upper triangle until finished, then full
    double *xd;           // scratch: input rows converted to double
    int64_t xd_rows;
};

lb_status gptq_hessian_init(struct gptq_hessian *h, int64_t n, lb_error *err);
// Add `rows` input rows x (rows × n, row-major).
lb_status gptq_hessian_add(struct gptq_hessian *h, const float *x, int rows, lb_error *err);
// Fill the lower triangle and scale by 2 / n_samples.
void gptq_hessian_finish(struct gptq_hessian *h, int n_samples);
void gptq_hessian_free(struct gptq_hessian *h);

// --- the algorithm ---------------------------------------------------------------

// Overwrite the symmetric positive definite n × n matrix h (row-major) with
// the upper Cholesky factor U of its inverse (h⁻¹ = UᵀU; the strictly lower
// triangle is zeroed). With LAPACK linked (gptq_have_lapack) and own ==
// false: dpotrf, dpotri, dpotrf, as the reference does with torch; otherwise
// lowbit's own: the reversed-order Cholesky factor, inverted (the same U,
// half the work, no LAPACK). Fails with LB_ERR_ARG, naming the column, when
// h is not positive definite.
lb_status gptq_inverse_factor(double *h, int64_t n, bool own, lb_error *err);
extern const bool gptq_have_lapack;

// GPTQ on the rows × cols matrix w (row-major, unchanged) with Hessian h
// (cols × cols, full, consumed: it holds U afterwards). Codes and group
// parameters go to c (allocated for rows, cols, p->grid). As the reference:
// inputs never seen (H_ii = 0) get H_ii = 1 and their weights are quantized as
// 0; λ is added to the diagonal; a group's parameters are fitted when its
// first column comes up, on the weights as the lazy updates have left them
// (static_groups: on the unquantized weights, before the loop). act_order
// with groups requires static_groups, since the types store contiguous
// groups (LB_ERR_ARG otherwise). Fails when H + λI is not positive
// definite (raise damp_percent) or on LB_ERR_NOMEM. pool may be NULL.
lb_status gptq_quantize(struct lb_threadpool *pool, const struct lb_gptq_params *p, int64_t rows, int64_t cols,
                        const float *w, double *h, struct gptq_codes *c, lb_error *err);

// ‖(W − Ŵ)·X‖_F / ‖W·X‖_F for the inputs behind H (any positive multiple of
// X·Xᵀ, full n × n): sqrt(tr(ΔW·H·ΔWᵀ) / tr(W·H·Wᵀ)). 0 when W·X = 0.
double gptq_output_error(const float *w, const float *w_hat, int64_t rows, int64_t cols, const double *h);

#endif
