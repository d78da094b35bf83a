/*
 * matmul.c — Y = X·Wᵀ for a batch of activations, where W is a weight matrix
 * of any type in the traits table. Nearly all of the time of a forward pass
 * is spent here.
 *
 * Two paths:
 * - Quantized weights (and float weights below 16 tokens): the activations
 *   are converted once to the type's vec_dot_type (Q8_0, Q8_1, Q8_K or f32),
 *   then each thread takes a chunk of weight rows and computes the dot
 *   product of each row with every activation row while the weight row is in
 *   cache. Decoding reads every weight byte exactly once. For 2..15 tokens
 *   (a speculative verification batch) types with a small-batch kernel
 *   (kernels_batch.h: F16, Q8_0, Q4_0, Q4_K, Q6_K) also convert or unpack
 *   each weight block once for all the tokens; their results are
 *   bit-identical to one token at a time.
 * - Float weights (F32, F16, BF16) with 16 or more tokens: matmul_float.c
 *   (F16 register tiles, OpenBLAS sgemm for F32/BF16).
 * - Weights packed in 8-row groups (repack.h): matmul_x8.c.
 */
#include "model.h"

#include "internal.h"
#include "kernels_batch.h"
#include "llm_int8.h"
#include "repack.h"
#include "types.h"

#include <stdlib.h>
#include <string.h>

// Decoding takes rows in runs of at least ROWS_PER_CHUNK, about
// CHUNKS_PER_THREAD runs per thread: each claim of a run is an atomic on a
// line the threads share, so hundreds of tiny runs per matrix cost more than
// the uneven finish a few large ones risk. The small-batch kernels take
// exactly ROWS_PER_CHUNK rows at a time.
enum { ROWS_PER_CHUNK = 16, CHUNKS_PER_THREAD = 8, SGEMM_MIN_BATCH = 16 };

static bool grow(void **buf, size_t *cap, size_t need) {
    if (*cap >= need) return true;
    void *p = realloc(*buf, need);
    if (!p) return false;
    *buf = p;
    *cap = need;
    return true;
}

void matmul_scratch_free(struct lb_matmul_scratch *s) {
    free(s->act);
    free(s->deq);
    memset(s, 0, sizeof *s);
}

// --- quantized path ----------------------------------------------------------

struct rows_task {
    const struct lb_weight *w;
    size_t w_row_bytes;
    const char *act;        // n activation rows in vec_dot_type
    size_t act_row_bytes;
    float *y;               // (n, rows)
    int n;
    lb_vec_dot_fn dot;
    lb_vec_dot4_fn dot4;    // NULL when the ISA has no 4-row kernel for the type
    lb_dot_batch_fn batch;  // small-batch kernel (kernels_batch.h), or NULL
    int64_t chunk_rows;     // rows per chunk (ROWS_PER_CHUNK for the batch kernels)
};

static void rows_chunk(void *arg, int64_t chunk) {
    const struct rows_task *t = arg;
    const int64_t r0 = chunk * t->chunk_rows;
    const int64_t r1 = r0 + t->chunk_rows < t->w->rows ? r0 + t->chunk_rows : t->w->rows;
    int64_t r = r0;
    if (t->dot4)
        for (; r + 4 <= r1; r += 4) {
            const char *wr = (const char *)t->w->data + (size_t)r * t->w_row_bytes;
            for (int i = 0; i < t->n; i++) {
                float out[4];
                t->dot4(t->w->cols, wr, t->w_row_bytes, t->act + (size_t)i * t->act_row_bytes, out);
                for (int k = 0; k < 4; k++) t->y[(size_t)i * t->w->rows + r + k] = out[k];
            }
        }
    for (; r < r1; r++) {
        const char *wr = (const char *)t->w->data + (size_t)r * t->w_row_bytes;
        for (int i = 0; i < t->n; i++)
            t->y[(size_t)i * t->w->rows + r] = t->dot(t->w->cols, wr, t->act + (size_t)i * t->act_row_bytes);
    }
}

// The same rows for 2..15 tokens: each weight row is read and unpacked once
// for all of them, with results bit-identical to rows_chunk's.
static void batch_chunk(void *arg, int64_t chunk) {
    const struct rows_task *t = arg;
    const int64_t r0 = chunk * ROWS_PER_CHUNK;
    const int rows = (int)(r0 + ROWS_PER_CHUNK < t->w->rows ? ROWS_PER_CHUNK : t->w->rows - r0);
    t->batch(t->w->cols, (const char *)t->w->data + (size_t)r0 * t->w_row_bytes, t->w_row_bytes, rows,
             t->dot4 ? rows / 4 * 4 : 0, t->act, t->act_row_bytes, t->n, t->y + r0, (size_t)t->w->rows);
}

struct quantize_task {
    const float *x;
    int64_t cols;
    char *act;
    size_t act_row_bytes;
    lb_from_float_fn quantize;
};

static void quantize_row_task(void *arg, int64_t i) {
    const struct quantize_task *q = arg;
    q->quantize(q->x + i * q->cols, q->act + (size_t)i * q->act_row_bytes, q->cols);
}

static lb_status matmul_rows(struct lb_threadpool *pool, struct lb_matmul_scratch *s, const struct lb_weight *w,
                             const float *x, float *y, int n, lb_error *err) {
    const lb_type vt = lb_type_traits[w->type].vec_dot_type;
    struct rows_task t = {
        .w = w, .w_row_bytes = lb_type_row_bytes(w->type, w->cols), .y = y, .n = n, .dot = lb_kernel_vec_dot(w->type),
        .dot4 = lb_kernels()->vec_dot4[w->type], .batch = n >= 2 && n < SGEMM_MIN_BATCH ? lb_kernel_dot_batch(w->type) : NULL};
    if (vt == LB_TYPE_F32) {
        t.act = (const char *)x;
        t.act_row_bytes = (size_t)w->cols * sizeof(float);
    } else {
        t.act_row_bytes = lb_type_row_bytes(vt, w->cols);
        if (!grow(&s->act, &s->act_cap, t.act_row_bytes * (size_t)n))
            return lb_fail(err, LB_ERR_NOMEM, "matmul: out of memory for activations");
        struct quantize_task q = {x, w->cols, s->act, t.act_row_bytes, lb_kernel_from_float(vt)};
        threadpool_run(pool, quantize_row_task, &q, n);
        t.act = s->act;
    }
    t.chunk_rows = ROWS_PER_CHUNK;
    if (!t.batch) {
        const int64_t even = w->rows / ((int64_t)threadpool_size(pool) * CHUNKS_PER_THREAD) / 4 * 4;
        if (even > t.chunk_rows) t.chunk_rows = even;
    }
    threadpool_run(pool, t.batch ? batch_chunk : rows_chunk, &t, (w->rows + t.chunk_rows - 1) / t.chunk_rows);
    return LB_OK;
}

lb_status matmul(struct lb_threadpool *pool, struct lb_matmul_scratch *s, const struct lb_weight *w, const float *x,
                 float *y, int n, lb_error *err) {
    if (w->n_outliers) return llm_int8_matmul(pool, s, w, x, y, n, err); // LLM.int8's decomposition
    if (w->layout == LB_LAYOUT_X8) return matmul_x8(pool, s, w, x, y, n, err); // matmul_x8.c
    const bool is_float = w->type == LB_TYPE_F32 || w->type == LB_TYPE_F16 || w->type == LB_TYPE_BF16;
    // Measured on a 512-wide F16 model: sgemm on converted tiles wins from 16
    // tokens on (2.1x at 32) and ties at 8. Below 16 the row path also keeps
    // the arithmetic of single-token decoding, so a speculative verification
    // batch (K + 1 <= 9 tokens) gives bit-identical logits to decoding them
    // one by one, and it reads each weight once instead of converting the
    // whole matrix to f32 (which made F16 verification 8x a decode step).
    if (is_float && n >= SGEMM_MIN_BATCH) return matmul_float_gemm(pool, s, w, x, y, n, err); // matmul_float.c
    return matmul_rows(pool, s, w, x, y, n, err);
}
