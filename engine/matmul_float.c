/*
 * matmul_float.c — Y = X·Wᵀ for float weights (F32, F16, BF16) and a batch of
 * tokens (prompt processing), through OpenBLAS sgemm.
 *
 * The pool's threads take tiles of weight rows. A thread converts its tile
 * to f32 into its own scratch (F16/BF16; F32 rows are used in place) and
 * multiplies it with the whole batch in one single-threaded sgemm call, so
 * the conversion of each weight is paid once per batch, and nothing else
 * runs besides the pool: OpenBLAS's own threads would spin on the same cores
 * between calls. Tiles are about 1 MiB of f32, about an L2's worth.
 */
#include "model.h"

#include "internal.h"
#include "types.h"

#include <cblas.h>
#include <stdlib.h>

extern void openblas_set_num_threads(int num_threads);

enum { TILE_FLOATS = 1 << 18, TILE_MIN_ROWS = 16, TILE_MAX_ROWS = 256 };

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

lb_status matmul_float_gemm(struct lb_threadpool *pool, struct lb_matmul_scratch *s, const struct lb_weight *w,
                            const float *x, float *y, int n, lb_error *err) {
    int64_t tile = TILE_FLOATS / w->cols / TILE_MIN_ROWS * TILE_MIN_ROWS;
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
