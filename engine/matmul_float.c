/*
 * matmul_float.c — Y = X·Wᵀ for float weights (F32, F16, BF16) and a batch of
 * tokens (prompt processing).
 *
 * F16: the kernel table's gemm_f16 (kernels_avx2_gemm.c: register tiles that
 * convert the weights in registers) on tasks of rows whose weights fit in
 * half an L2 (256 KiB), so a task reads them from memory once and from L2
 * once per 3 tokens.
 *
 * F32 and BF16: OpenBLAS sgemm.
 * The pool's threads take tiles of weight rows. A thread converts its tile
 * to f32 into its own scratch (F16/BF16; F32 rows are used in place) and
 * multiplies it with the whole batch in one single-threaded sgemm call, so
 * the conversion of each weight is paid once per batch, and nothing else
 * runs besides the pool: OpenBLAS's own threads would spin on the same cores
 * between calls. Each sgemm call packs the whole batch of activations again
 * (15 % of the time with 128-row tiles at 2048 columns), so tiles are as
 * large as 4 MiB of f32 (an eighth of the L3) allows, up to 512 rows, but
 * small enough to give every thread two tiles.
 */
#include "model.h"

#include "internal.h"
#include "quants.h"
#include "types.h"

#include <cblas.h>
#include <stdlib.h>

extern void openblas_set_num_threads(int num_threads);

enum { TILE_FLOATS = 1 << 20, TILE_MIN_ROWS = 16, TILE_MAX_ROWS = 512 };

struct float_task {
    const struct lb_weight *w;
    size_t row_bytes;
    const float *x;     // (n, cols)
    float *y;           // (n, rows)
    int n;
    int64_t tile;       // rows per tile
    float *scratch;     // tile × cols floats per thread
    lb_to_float_fn to_float;
};

static void float_tile(void *arg, int64_t t) {
    const struct float_task *f = arg;
    const int64_t rows = f->w->rows, cols = f->w->cols, r0 = t * f->tile;
    const int64_t nr = r0 + f->tile < rows ? f->tile : rows - r0;
    const float *b;
    if (f->w->type == LB_TYPE_F32) {
        b = (const float *)f->w->data + r0 * cols;
    } else {
        float *buf = f->scratch + (size_t)threadpool_thread_index() * (size_t)(f->tile * cols);
        for (int64_t r = 0; r < nr; r++)
            f->to_float((const char *)f->w->data + (size_t)(r0 + r) * f->row_bytes, buf + r * cols, cols);
        b = buf;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, f->n, (int)nr, (int)cols, 1.0f, f->x, (int)cols, b,
                (int)cols, 0.0f, f->y + r0, (int)rows);
}

enum { F16_TASK_BYTES = 256 << 10 };

struct f16_task {
    const struct lb_weight *w;
    size_t row_bytes;
    const float *x;
    float *y;
    int n;
    int64_t task_rows;
    lb_gemm_f16_fn gemm;
};

static void f16_rows(void *arg, int64_t i) {
    const struct f16_task *f = arg;
    const int64_t r0 = i * f->task_rows;
    const int64_t nr = r0 + f->task_rows < f->w->rows ? f->task_rows : f->w->rows - r0;
    f->gemm(f->w->cols, (int)nr, (const char *)f->w->data + (size_t)r0 * f->row_bytes, f->row_bytes, f->n, f->x,
            (size_t)f->w->cols, f->y + r0, (size_t)f->w->rows);
}

lb_status matmul_float_gemm(struct lb_threadpool *pool, struct lb_matmul_scratch *s, const struct lb_weight *w,
                            const float *x, float *y, int n, lb_error *err) {
    if (w->type == LB_TYPE_F16) {
        struct f16_task f = {.w = w, .row_bytes = lb_type_row_bytes(w->type, w->cols), .x = x, .y = y, .n = n,
                             .gemm = lb_kernels()->gemm_f16 ? lb_kernels()->gemm_f16 : lb_gemm_f16_ref};
        f.task_rows = (int64_t)(F16_TASK_BYTES / f.row_bytes) / 4 * 4;
        if (f.task_rows < 4) f.task_rows = 4;
        threadpool_run(pool, f16_rows, &f, (w->rows + f.task_rows - 1) / f.task_rows);
        return LB_OK;
    }
    int64_t tile = TILE_FLOATS / w->cols;
    const int64_t balanced = (w->rows + 2 * threadpool_size(pool) - 1) / (2 * threadpool_size(pool));
    if (tile > balanced) tile = balanced;
    tile = (tile + TILE_MIN_ROWS - 1) / TILE_MIN_ROWS * TILE_MIN_ROWS;
    tile = tile < TILE_MIN_ROWS ? TILE_MIN_ROWS : tile > TILE_MAX_ROWS ? TILE_MAX_ROWS : tile;
    struct float_task f = {.w = w, .row_bytes = lb_type_row_bytes(w->type, w->cols), .x = x, .y = y, .n = n,
                           .tile = tile, .to_float = lb_kernel_to_float(w->type)};
    if (w->type != LB_TYPE_F32) {
        const size_t need = (size_t)threadpool_size(pool) * (size_t)(tile * w->cols) * sizeof(float);
        if (s->deq_cap < need) {
            float *p = realloc(s->deq, need);
            if (!p) return lb_fail(err, LB_ERR_NOMEM, "matmul: out of memory for %zu bytes of f32 tiles", need);
            s->deq = p;
            s->deq_cap = need;
        }
        f.scratch = s->deq;
    }
    openblas_set_num_threads(1); // the pool is the parallelism
    threadpool_run(pool, float_tile, &f, (w->rows + tile - 1) / tile);
    return LB_OK;
}
