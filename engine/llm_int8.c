/*
 * llm_int8.c — LLM.int8(): quantizing a matrix with its outlier columns,
 * loading the outlier tensors, and the mixed-precision matrix product
 * (llm_int8.h). The type's row quantizer and dot product are in
 * quants_llm_int8.c (scalar) and kernels_avx2.c.
 */
#include "llm_int8.h"

#include "blocks.h"
#include "fp16.h"
#include "gguf.h"
#include "internal.h"
#include "threadpool.h"
#include "types.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ROWS_PER_CHUNK = 16 };

int llm_int8_outliers(const float *absmax, int64_t cols, float threshold, int32_t *cols_out) {
    int k = 0;
    for (int64_t j = 0; j < cols; j++)
        if (absmax[j] >= threshold) cols_out[k++] = (int32_t)j;
    return k;
}

double llm_int8_quantize(const float *W, int64_t rows, int64_t cols, const int32_t *oc, int k, void *q, uint16_t *ow) {
    const size_t rb = lb_type_row_bytes(LB_TYPE_LLM_INT8, cols);
    float *row = malloc((size_t)cols * sizeof *row), *back = malloc((size_t)cols * sizeof *back);
    if (!row || !back) {
        free(row), free(back);
        return NAN;
    }
    double e2 = 0, n2 = 0;
    for (int64_t r = 0; r < rows; r++) {
        const float *w = W + r * cols;
        memcpy(row, w, (size_t)cols * sizeof *row);
        for (int i = 0; i < k; i++) {
            ow[r * k + i] = lb_f32_to_fp16(w[oc[i]]);
            row[oc[i]] = 0.0f;
        }
        lb_quantize_row_llm_int8_ref(row, (char *)q + (size_t)r * rb, cols);
        lb_type_to_float(LB_TYPE_LLM_INT8, (const char *)q + (size_t)r * rb, back, cols);
        for (int i = 0; i < k; i++) back[oc[i]] += lb_fp16_to_f32(ow[r * k + i]);
        for (int64_t j = 0; j < cols; j++) {
            e2 += ((double)w[j] - back[j]) * ((double)w[j] - back[j]);
            n2 += (double)w[j] * w[j];
        }
    }
    free(row), free(back);
    return n2 > 0 ? sqrt(e2 / n2) : 0;
}

// ----------------------------------------------------------------------------
// Loading

lb_status llm_int8_attach(struct lb_model *m, const struct gguf_file *f, struct lb_weight *w, lb_error *err) {
    w->n_outliers = 0;
    w->outlier_cols = NULL;
    w->outlier_w = NULL;
    if (w->type != LB_TYPE_LLM_INT8) return LB_OK;
    char name[320];
    snprintf(name, sizeof name, "%s" LLM_INT8_COLS_SUFFIX, w->name);
    const struct gguf_tensor *tc = gguf_find_tensor(f, name);
    snprintf(name, sizeof name, "%s" LLM_INT8_W_SUFFIX, w->name);
    const struct gguf_tensor *tw = gguf_find_tensor(f, name);
    if (!tc && !tw) return LB_OK; // no outliers: plain vector-wise int8
    if (!tc || !tw)
        return lb_fail(err, LB_ERR_FORMAT, "%s: tensor '%s' has %s but not %s (expected both or neither)", f->path,
                       w->name, tc ? LLM_INT8_COLS_SUFFIX : LLM_INT8_W_SUFFIX, tc ? LLM_INT8_W_SUFFIX : LLM_INT8_COLS_SUFFIX);
    const int64_t k = tc->ne[0];
    if (tc->type != LB_TYPE_F32 || tc->n_dims != 1 || k < 1 || k > w->cols)
        return lb_fail(err, LB_ERR_FORMAT, "%s: tensor '%s" LLM_INT8_COLS_SUFFIX "' is %s with %lld values "
                       "(expected F32, 1 to %lld column indices)", f->path, w->name, lb_type_name(tc->type),
                       (long long)k, (long long)w->cols);
    if (tw->type != LB_TYPE_F16 || tw->n_dims != 2 || tw->ne[0] != k || tw->ne[1] != w->rows)
        return lb_fail(err, LB_ERR_FORMAT, "%s: tensor '%s" LLM_INT8_W_SUFFIX "' is %s [%lld, %lld] (expected F16 "
                       "[%lld, %lld])", f->path, w->name, lb_type_name(tw->type), (long long)tw->ne[0],
                       (long long)tw->ne[1], (long long)k, (long long)w->rows);
    // The indices, as int32 in the model's vector pool (float-sized slots).
    int32_t *cols = (int32_t *)model_alloc_f32(m, (size_t)k);
    if (!cols) return lb_fail(err, LB_ERR_NOMEM, "%s: out of memory for '%s' outliers", f->path, w->name);
    const float *fc = tc->data;
    for (int64_t i = 0; i < k; i++) {
        if (!(fc[i] >= 0 && fc[i] < (float)w->cols && fc[i] == floorf(fc[i]) && (i == 0 || fc[i] > fc[i - 1])))
            return lb_fail(err, LB_ERR_FORMAT, "%s: tensor '%s" LLM_INT8_COLS_SUFFIX "' value %lld is %g (expected "
                           "ascending integers in 0..%lld)", f->path, w->name, (long long)i, fc[i],
                           (long long)w->cols - 1);
        cols[i] = (int32_t)fc[i];
    }
    w->n_outliers = (int32_t)k;
    w->outlier_cols = cols;
    w->outlier_w = tw->data;
    return LB_OK;
}

void llm_int8_add_outliers(const struct lb_weight *w, int64_t r, float *row) {
    const uint16_t *ow = (const uint16_t *)w->outlier_w + r * w->n_outliers;
    for (int i = 0; i < w->n_outliers; i++) row[w->outlier_cols[i]] += lb_fp16_to_f32(ow[i]);
}

// ----------------------------------------------------------------------------
// The matrix product

struct i8_task {
    const struct lb_weight *w;
    size_t w_row_bytes, act_row_bytes;
    const char *act;          // n token rows, int8 part (outlier columns zeroed), LLM_INT8 layout
    const float *x_out;       // (n, k) the tokens' outlier features
    float *y;                 // (n, rows)
    int n;
    lb_vec_dot_fn dot, dot_f16;
};

static void rows_chunk(void *arg, int64_t chunk) {
    const struct i8_task *t = arg;
    const struct lb_weight *w = t->w;
    const int k = w->n_outliers;
    const int64_t r1 = (chunk + 1) * ROWS_PER_CHUNK < w->rows ? (chunk + 1) * ROWS_PER_CHUNK : w->rows;
    for (int64_t r = chunk * ROWS_PER_CHUNK; r < r1; r++) {
        const char *wr = (const char *)w->data + (size_t)r * t->w_row_bytes;
        const uint16_t *ow = (const uint16_t *)w->outlier_w + r * k;
        for (int i = 0; i < t->n; i++)
            t->y[(size_t)i * w->rows + r] = t->dot(w->cols, wr, t->act + (size_t)i * t->act_row_bytes) +
                                            t->dot_f16(k, ow, t->x_out + (size_t)i * k);
    }
}

struct split_task {
    const struct lb_weight *w;
    const float *x;
    float *x_in, *x_out;
    char *act;
    size_t act_row_bytes;
    lb_from_float_fn quantize;
};

// One token: gather the outlier features, zero them, quantize the rest.
static void split_token(void *arg, int64_t i) {
    const struct split_task *s = arg;
    const struct lb_weight *w = s->w;
    float *xi = s->x_in + i * w->cols, *xo = s->x_out + i * w->n_outliers;
    memcpy(xi, s->x + i * w->cols, (size_t)w->cols * sizeof *xi);
    for (int k = 0; k < w->n_outliers; k++) {
        xo[k] = xi[w->outlier_cols[k]];
        xi[w->outlier_cols[k]] = 0.0f;
    }
    s->quantize(xi, s->act + (size_t)i * s->act_row_bytes, w->cols);
}

static bool grow(void **buf, size_t *cap, size_t need) {
    if (*cap >= need) return true;
    void *p = realloc(*buf, need);
    if (!p) return false;
    *buf = p;
    *cap = need;
    return true;
}

lb_status llm_int8_matmul(struct lb_threadpool *pool, struct lb_matmul_scratch *s, const struct lb_weight *w,
                          const float *x, float *y, int n, lb_error *err) {
    const size_t act_row = lb_type_row_bytes(LB_TYPE_LLM_INT8, w->cols);
    const size_t floats = (size_t)n * (size_t)(w->cols + w->n_outliers);
    if (!grow(&s->act, &s->act_cap, act_row * (size_t)n) ||
        !grow((void **)&s->deq, &s->deq_cap, floats * sizeof(float)))
        return lb_fail(err, LB_ERR_NOMEM, "matmul: out of memory for LLM.int8 activations of '%s'", w->name);
    struct split_task sp = {w, x, s->deq, s->deq + (size_t)n * w->cols, s->act, act_row,
                            lb_kernel_from_float(LB_TYPE_LLM_INT8)};
    threadpool_run(pool, split_token, &sp, n);
    struct i8_task t = {
        .w = w, .w_row_bytes = lb_type_row_bytes(w->type, w->cols), .act_row_bytes = act_row, .act = s->act,
        .x_out = sp.x_out, .y = y, .n = n, .dot = lb_kernel_vec_dot(LB_TYPE_LLM_INT8),
        .dot_f16 = lb_kernel_vec_dot(LB_TYPE_F16),
    };
    threadpool_run(pool, rows_chunk, &t, (w->rows + ROWS_PER_CHUNK - 1) / ROWS_PER_CHUNK);
    return LB_OK;
}
