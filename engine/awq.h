/*
 * awq.h — AWQ (activation-aware weight quantization, Lin et al. 2023, as
 * mit-han-lab/llm-awq does it) and plain round-to-nearest on the same grid.
 *
 * Per layer, on the layer's inputs from the float model over calibration
 * text:
 *   1. scale search: for each group of matrices that share an input, per
 *      input channel s = mean|x|^α (α ∈ {0, 0.05, …, 0.95}, floored at 1e-4,
 *      divided by sqrt(max s · min s)); each α quantizes W·diag(s) on the
 *      grid, divides by s again, runs the module that consumes the group
 *      and keeps the α with the smallest mean squared error of the module's
 *      output. α = 0 (s = 1) is plain round-to-nearest, so the search is
 *      never worse than it. Groups (llm-awq's for llama):
 *        0. attn_norm → q, k, v        (module: attention incl. attn_output)
 *        1. v rows → attn_output       (module: attn_output; only when
 *           n_head_kv == n_head, as llm-awq requires equal shapes)
 *        2. ffn_norm → gate, up        (module: the whole FFN)
 *        3. up rows → down             (module: down)
 *   2. the scales are folded: norm weights (and v / up rows) divided by s,
 *      the matrices' input columns multiplied by s: the float model computes
 *      the same function;
 *   3. clipping search (optional): per output row and group of every matrix
 *      but q and k, the largest |w| is shrunk by 0, 5, …, 45 % and the one
 *      with the smallest error of that group's partial dot products over
 *      512 sampled (scaled) input tokens is kept;
 *   4. round to nearest on the grid: w = scale·(q − zero) per group (grid.h).
 * The next layer sees the float model's output, as in llm-awq.
 */
#ifndef LB_AWQ_H
#define LB_AWQ_H

#include "calib.h"
#include "grid.h"

struct lb_threadpool;

enum { AWQ_N_GRID = 20, AWQ_GROUPS = 4 };

struct awq_params {
    struct lb_grid grid;
    bool search;                  // the scale search (false: round to nearest only, AWQ's baseline)
    bool clip;                    // the clipping search
    struct lb_calib_params calib;
    lb_progress_fn progress;      // after each layer, with the fraction of layers done; false cancels (may be NULL)
    void *user;
};

// The type a layer matrix is written as (the profile's choice). Matrices of
// the grid's type, or of its fallback for their row length (grid.h,
// lb_grid_fallback: the same bits and symmetry in a smaller group), are
// searched and quantized on that grid; the others (an override, a fallback
// of other bits) with their type's quantizer, from the scaled weights.
typedef lb_type (*awq_type_fn)(void *user, const char *name, int64_t cols);
// A finished tensor; the callee takes ownership of data (malloc'd).
typedef lb_status (*awq_emit_fn)(void *user, const char *name, lb_type type, uint32_t n_dims, const int64_t *ne,
                                 void *data, size_t nbytes, double rel_error, lb_error *err);

// What the search chose in one layer, for the report and the tests.
struct awq_layer_report {
    bool done[AWQ_GROUPS];        // false: the group was skipped (nothing on the grid, or v→o under GQA)
    float alpha[AWQ_GROUPS];      // the chosen α
    double loss[AWQ_GROUPS];      // module output MSE at that α
    double loss_rtn[AWQ_GROUPS];  // the same at α = 0: round to nearest
};

// Quantize every layer matrix of m and emit it, together with the folded
// norms (attn_norm, ffn_norm; attn_v.bias when v's rows were scaled).
// report (may be NULL) receives n_layer entries.
lb_status awq_quantize(struct lb_model *m, const struct awq_params *p, awq_type_fn type_of, awq_emit_fn emit,
                       void *user, struct lb_threadpool *pool, struct awq_layer_report *report, lb_error *err);

// ----------------------------------------------------------------------------
// The pieces, for the tests.

// One layer's weights as f32 copies, row-major (rows × cols as in model.h).
struct awq_layer {
    float *wq, *wk, *wv, *wo, *wg, *wu, *wd;
    float *attn_norm, *ffn_norm;
    float *bq, *bk, *bv;          // NULL without biases
};
lb_status awq_layer_load(const struct lb_model *m, int il, struct awq_layer *L, lb_error *err);
void awq_layer_free(struct awq_layer *L);

// Fold per-channel scales into a layer: s[0] (n_embd) into attn_norm and
// the columns of q, k, v; s[1] (n_head_kv·head_dim) into the rows of v (and
// its bias) and the columns of attn_output (a KV channel's scale applies to
// the output columns of every query head that reads it); s[2] (n_embd) into
// ffn_norm and gate, up; s[3] (n_ff) into the rows of up and the columns of
// down. A NULL s[g] leaves that group alone.
void awq_fold(const lb_hparams *hp, struct awq_layer *L, float *const s[AWQ_GROUPS]);

// Round one row of n weights to the grid (groups of g.group, or the whole
// row): codes q[n] and per-group scale/zero; deq[n] (may be NULL) gets
// scale·(q − zero) with the scale rounded to fp16 as the packed type stores it.
// The final hidden states (before the output norm) of tokens[0..T) at
// positions 0..T−1, computed with AWQ's float layer: out is (T, n_embd).
lb_status awq_hidden_states(struct lb_model *m, const int32_t *tokens, int T, struct lb_threadpool *pool,
                            float *out, lb_error *err);

void awq_grid_row(struct lb_grid g, const float *w, int64_t n, uint8_t *q, float *scale, float *zero, float *deq);

#endif
