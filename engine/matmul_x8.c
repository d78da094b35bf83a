/*
 * matmul_x8.c — Y = X·Wᵀ for a weight packed in 8-row groups (repack.h).
 *
 * The activations are quantized once to the type's vec_dot_type (plus, for
 * Q4_0, the per-block code sums its kernel needs). Threads take chunks of
 * groups from the pool; a chunk's weights are read from memory once:
 * - decoding (few tokens): a chunk is a run of groups streamed once for all
 *   tokens, about CHUNKS_PER_THREAD of them per thread: each claim is an
 *   atomic on a line the threads share (~0.1 µs when it moves between cores),
 *   and a TinyLlama token at 2 groups a chunk made 25 000 of them;
 * - prompt processing: a chunk is up to 4 groups (≤ 100 KiB, kept in L2), and
 *   the tokens go through it in blocks small enough that a block of
 *   activations also stays in L2; the kernel reuses each weight vector from
 *   registers for 4 tokens at a time.
 * Rows past the last whole group (rows % 8) are plain rows at the end of the
 * matrix and take the type's one-row dot product.
 */
#include "repack.h"

#include "blocks.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

enum {
    DECODE_GROUPS = 2,          // fewest groups per chunk when n is small
    CHUNKS_PER_THREAD = 8,      // decode: enough to even out a slow thread
    PREFILL_GROUPS = 4,         // groups per chunk for prompt processing
    PREFILL_MIN_TOKENS = 8,     // from here on the prefill blocking applies
    ACT_BLOCK_BYTES = 192 << 10 // activations per token block (half of a 512 KiB L2 with the weights)
};

struct x8_task {
    const struct lb_weight *w;
    size_t row_bytes;           // of the plain row
    const char *act;            // n rows in vec_dot_type
    size_t act_stride;
    const int32_t *aux;         // Q4_0: n rows of cols/32 int32s; else NULL
    size_t aux_stride;
    float *y;                   // (n, rows)
    int n;
    int token_block;            // tokens per block (the whole batch when decoding)
    int64_t groups, groups_per_chunk, chunks; // chunks of groups; one more chunk for the plain tail
    lb_gemm_x8_fn gemm;
    lb_vec_dot_fn dot;          // for the tail rows
};

static void x8_chunk(void *arg, int64_t chunk) {
    const struct x8_task *t = arg;
    const struct lb_weight *w = t->w;
    if (chunk == t->chunks) { // the rows % 8 plain rows
        for (int64_t r = t->groups * 8; r < w->rows; r++) {
            const char *row = (const char *)w->data + (size_t)r * t->row_bytes;
            for (int i = 0; i < t->n; i++)
                t->y[(size_t)i * w->rows + r] = t->dot(w->cols, row, t->act + (size_t)i * t->act_stride);
        }
        return;
    }
    const int64_t g0 = chunk * t->groups_per_chunk;
    const int64_t g1 = g0 + t->groups_per_chunk < t->groups ? g0 + t->groups_per_chunk : t->groups;
    const size_t group_bytes = 8 * t->row_bytes;
    for (int i0 = 0; i0 < t->n; i0 += t->token_block) {
        const int nt = t->n - i0 < t->token_block ? t->n - i0 : t->token_block;
        for (int64_t g = g0; g < g1; g++)
            t->gemm(w->cols, (const char *)w->data + (size_t)g * group_bytes, t->act + (size_t)i0 * t->act_stride,
                    t->act_stride, t->aux ? t->aux + (size_t)i0 * t->aux_stride : NULL, t->aux_stride, nt,
                    t->y + (size_t)i0 * w->rows + (size_t)g * 8, (size_t)w->rows);
    }
}

struct quantize_task {
    const float *x;
    int64_t cols;
    char *act;
    size_t act_stride;
    int32_t *aux;               // NULL unless Q4_0
    size_t aux_stride;
    lb_from_float_fn quantize;
};

static void quantize_row(void *arg, int64_t i) {
    const struct quantize_task *q = arg;
    char *row = q->act + (size_t)i * q->act_stride;
    q->quantize(q->x + i * q->cols, row, q->cols);
    if (q->aux) repack_q4_0_aux(row, q->cols, q->aux + (size_t)i * q->aux_stride);
}

lb_status matmul_x8(struct lb_threadpool *pool, struct lb_matmul_scratch *s, const struct lb_weight *w,
                    const float *x, float *y, int n, lb_error *err) {
    const lb_type vt = lb_type_traits[w->type].vec_dot_type;
    const size_t act_stride = lb_type_row_bytes(vt, w->cols);
    const bool need_aux = w->type == LB_TYPE_Q4_0;
    const size_t aux_stride = need_aux ? (size_t)(w->cols / QK8_0) : 0;
    // Activations first, then the aux rows, in one scratch buffer (64-byte aligned start for the aux).
    const size_t act_bytes = (act_stride * (size_t)n + 63) & ~(size_t)63;
    const size_t need = act_bytes + aux_stride * (size_t)n * sizeof(int32_t);
    if (s->act_cap < need) {
        void *p = realloc(s->act, need);
        if (!p) return lb_fail(err, LB_ERR_NOMEM, "matmul: out of memory for activations");
        s->act = p;
        s->act_cap = need;
    }
    struct quantize_task q = {x, w->cols, s->act, act_stride, need_aux ? (int32_t *)((char *)s->act + act_bytes) : NULL,
                              aux_stride, lb_kernel_from_float(vt)};
    threadpool_run(pool, quantize_row, &q, n);

    struct x8_task t = {
        .w = w, .row_bytes = lb_type_row_bytes(w->type, w->cols), .act = s->act, .act_stride = act_stride,
        .aux = q.aux, .aux_stride = aux_stride, .y = y, .n = n, .token_block = n, .groups = w->rows / 8,
        .groups_per_chunk = DECODE_GROUPS, .gemm = lb_kernels()->gemm_x8[w->type], .dot = lb_kernel_vec_dot(w->type)};
    if (n >= PREFILL_MIN_TOKENS) {
        t.groups_per_chunk = PREFILL_GROUPS;
        int tb = (int)(ACT_BLOCK_BYTES / act_stride) & ~3;
        t.token_block = tb < 4 ? 4 : tb;
    }
    else {
        const int64_t even = t.groups / ((int64_t)threadpool_size(pool) * CHUNKS_PER_THREAD);
        if (even > t.groups_per_chunk) t.groups_per_chunk = even;
    }
    t.chunks = (t.groups + t.groups_per_chunk - 1) / t.groups_per_chunk;
    threadpool_run(pool, x8_chunk, &t, t.chunks + (w->rows % 8 ? 1 : 0));
    return LB_OK;
}
