/*
 * llm_int8.h — LLM.int8() (Dettmers et al. 2022, bitsandbytes' load_in_8bit):
 * vector-wise int8 with the outlier input features kept in 16 bits.
 *
 * A few input features (hidden dimensions) of large transformers carry
 * activations far above the rest; quantizing them with the others would
 * spend the whole int8 range of every token on them. LLM.int8 splits the
 * matrix product by input column:
 *
 *     y = d_w · d_x · Σ_j∉O q_w[j] q_x[j]  +  Σ_j∈O W[j] x[j]
 *
 * where O are the outlier columns, q_w the weight row in int8 with one
 * absmax scale d_w per row, q_x the token's activations in int8 with one
 * absmax scale d_x per token taken after the outlier columns are zeroed (so
 * they do not inflate it), and the second sum in f16 weights × f32
 * activations. bitsandbytes finds O on every batch (any |x| ≥ 6.0); lowbit
 * finds it once, on calibration text: columns whose largest |x| reaches the
 * threshold (imatrix.h collects max |x|).
 *
 * Storage, as lowbit's own type (id 164) plus two companion tensors:
 *   NAME               LLM_INT8 [cols, rows]: the int8 rows (block_llm_int8,
 *                      blocks.h); the outlier columns hold code 0
 *   NAME.outlier_cols  F32 [k]: the outlier columns, ascending (exact integers)
 *   NAME.outlier_w     F16 [k, rows]: row r's weights in those columns
 * A matrix without outliers is the LLM_INT8 tensor alone (vector-wise int8).
 * The type id is outside ggml's range, so llama.cpp refuses such files
 * rather than computing without the outlier part.
 */
#ifndef LB_LLM_INT8_H
#define LB_LLM_INT8_H

#include "model.h"

#define LLM_INT8_COLS_SUFFIX ".outlier_cols"
#define LLM_INT8_W_SUFFIX ".outlier_w"

struct gguf_file;

// The traits-table functions (types.c, kernels.c). A call is one row: the
// scale is the absmax of all n values, written into every block.
void lb_quantize_row_llm_int8_ref(const float *src, void *dst, int64_t n);
// Weight row · activation row, both LLM_INT8 (one scale each): the integer
// dot product of the codes times the two scales.
float lb_vec_dot_llm_int8(int64_t n, const void *w, const void *a);

// The columns j of absmax[cols] with absmax[j] >= threshold, ascending, into
// cols_out (room for cols); returns how many.
int llm_int8_outliers(const float *absmax, int64_t cols, float threshold, int32_t *cols_out);

// Quantize W (rows × cols f32) with outlier columns oc[k]: the int8 rows into
// q (rows × lb_type_row_bytes(LLM_INT8, cols)), the outlier weights into
// ow (rows × k f16). Returns ‖W − Ŵ‖/‖W‖ of the whole decomposition.
double llm_int8_quantize(const float *W, int64_t rows, int64_t cols, const int32_t *oc, int k, void *q, uint16_t *ow);

// Model loading: when w is LLM_INT8, find NAME.outlier_cols / NAME.outlier_w
// in f and attach them to w (indices copied into the model's pool). Shapes
// and indices are checked: LB_ERR_FORMAT naming the tensor.
lb_status llm_int8_attach(struct lb_model *m, const struct gguf_file *f, struct lb_weight *w, lb_error *err);

// Add row r's outlier part to a row decoded from the int8 part (decode + this
// = the whole matrix row).
void llm_int8_add_outliers(const struct lb_weight *w, int64_t r, float *row);

// matmul for LLM_INT8 weights with outliers (matmul.c hands them over).
lb_status llm_int8_matmul(struct lb_threadpool *pool, struct lb_matmul_scratch *s, const struct lb_weight *w,
                          const float *x, float *y, int n, lb_error *err);

#endif
