/*
 * matvec.c — micro-benchmark of the matrix-vector product (decode's kernel)
 * for every weight type in the traits table, at ROWS × COLS (default 4096 ×
 * 4096), against the F32 path in the same run.
 *
 *     bench/matvec [-t THREADS] [-r REPS] [--rows N] [--cols N] [-n TOKENS]
 *                  [--isa scalar|avx2] [--types Q4_0,Q8_0,...] [--alternate]
 *
 * --types limits the run to the named types (F32 is always measured first).
 * --alternate times F32 and the type in turn, rep by rep, and gives the
 * speed-up as the ratio of those two medians: on a machine shared with other
 * work, both see the same load, where a single F32 run at the start does not.
 * For each type: quantize one random matrix, then time y = W·x through the
 * engine's matmul (activation conversion included), best and median of REPS.
 * Types with a packed layout (repack.h) are timed twice, as the file has them
 * ("rows") and packed in 8-row groups ("x8"). With -n > 1 the product takes
 * that many activation rows (prompt processing) and GMAC/s is printed too.
 * Prints a Markdown table: µs per product, weight GB/s, speed-up over F32.
 * A dev tool, so it uses the engine's private headers.
 */
#include "model.h"
#include "repack.h"
#include "threadpool.h"
#include "types.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int threads = (int)sysconf(_SC_NPROCESSORS_ONLN), reps = 50, n_tok = 1;
    int64_t rows = 4096, cols = 4096;
    const char *only = NULL; // comma-separated type names, or NULL for all
    bool alternate = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rows") && i + 1 < argc) rows = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--cols") && i + 1 < argc) cols = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) n_tok = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--types") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--alternate")) alternate = true;
        else if (!strcmp(argv[i], "--isa") && i + 1 < argc) {
            if (!lb_cpu_select(argv[++i])) {
                fprintf(stderr, "matvec: ISA '%s' unknown or not supported here\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: matvec [-t THREADS] [-r REPS] [--rows N] [--cols N] [-n TOKENS] "
                            "[--isa scalar|avx2] [--types A,B] [--alternate]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > 1000 || threads < 1 || rows < 1 || cols < 256 || cols % 256 || n_tok < 1 || n_tok > 4096) {
        fprintf(stderr, "matvec: bad arguments (cols must be a multiple of 256)\n");
        return 2;
    }
    struct lb_threadpool *pool = threadpool_new(threads);
    float *src = malloc((size_t)(rows * cols) * sizeof(float));
    float *x = malloc((size_t)(cols * n_tok) * sizeof(float)), *y = malloc((size_t)(rows * n_tok) * sizeof(float));
    double *t = malloc((size_t)reps * sizeof(double)), *t32 = malloc((size_t)reps * sizeof(double));
    if (!pool || !src || !x || !y || !t || !t32) return 1;
    // The F32 matrix, kept for --alternate.
    const struct lb_weight w32 = {.name = "f32", .type = LB_TYPE_F32, .rows = rows, .cols = cols, .data = src};
    struct lb_matmul_scratch scratch32 = {0};
    uint64_t s = 1;
    for (int64_t i = 0; i < rows * cols; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        src[i] = ((float)(s % 20001) - 10000.0f) / 10000.0f;
    }
    for (int64_t i = 0; i < cols * n_tok; i++) x[i] = src[i * 7 % (rows * cols)];

    printf("matrix product %lld x %lld by %d activation rows, %d threads, isa %s, best / median of %d%s\n\n",
           (long long)rows, (long long)cols, n_tok, threads, lb_cpu_name(), reps,
           alternate ? "; speed-up = F32 median / type median, timed alternately" : "");
    printf("| type | layout | bpw | weight MiB | best µs | median µs | weight GB/s | GMAC/s (best) | speed-up vs F32 |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    double f32_median = 0;
    for (int pass = 0; pass < 2 * LB_TYPE_COUNT; pass++) {
        const int ty = pass / 2;
        const bool packed = pass % 2;
        const struct lb_type_traits *tr = lb_traits((lb_type)ty);
        if (!tr || !tr->vec_dot || !tr->from_float_ref || ty == LB_TYPE_Q8_1 || ty == LB_TYPE_Q8_K) continue;
        if (packed && !repack_eligible((lb_type)ty, rows, cols)) continue;
        if (only && (ty != LB_TYPE_F32 || strstr(only, "-F32"))) { // F32 runs unless -F32: the speed-up is against it
            const char *p = strstr(only, tr->name);
            const size_t len = strlen(tr->name);
            if (!p || (p != only && p[-1] != ',') || (p[len] && p[len] != ',')) continue;
        }
        const size_t row_bytes = lb_type_row_bytes((lb_type)ty, cols);
        void *data = malloc(row_bytes * (size_t)rows);
        if (!data) return 1;
        lb_type_from_float_rows((lb_type)ty, src, data, rows, cols); // per-tensor types: one scale
        struct lb_weight w = {.name = "bench", .type = (lb_type)ty, .rows = rows, .cols = cols, .data = data};
        if (packed && !weight_pack_inplace(&w)) return 1;
        struct lb_matmul_scratch scratch = {0};
        lb_error err = {0};
        matmul(pool, &scratch, &w, x, y, n_tok, &err); // warm-up: caches, scratch
        for (int i = 0; i < reps; i++) {
            if (alternate) {
                double t0 = lb_time_s();
                matmul(pool, &scratch32, &w32, x, y, n_tok, &err);
                t32[i] = lb_time_s() - t0;
            }
            double t0 = lb_time_s();
            if (matmul(pool, &scratch, &w, x, y, n_tok, &err) != LB_OK) {
                fprintf(stderr, "matvec: %s\n", err.msg);
                return 1;
            }
            t[i] = lb_time_s() - t0;
        }
        qsort(t, (size_t)reps, sizeof *t, cmp_double);
        const double median = t[reps / 2];
        if (ty == LB_TYPE_F32) f32_median = median;
        if (alternate) {
            qsort(t32, (size_t)reps, sizeof *t32, cmp_double);
            f32_median = t32[reps / 2];
        }
        const double mib = (double)(row_bytes * (size_t)rows) / 1048576.0;
        // bits per weight of the row as stored: blocks and, for per-row scales, the header
        printf("| %s | %s | %.3f | %.1f | %.0f | %.0f | %.1f | %.1f | %s%.2fx |\n", tr->name, packed ? "x8" : "rows",
               8.0 * (double)row_bytes / (double)cols, mib, t[0] * 1e6, median * 1e6,
               (double)(row_bytes * (size_t)rows) / median / 1e9,
               (double)rows * (double)cols * n_tok / t[0] / 1e9, f32_median ? "" : "(F32 first) ",
               f32_median ? f32_median / median : 0.0);
        matmul_scratch_free(&scratch);
        free(data);
    }
    matmul_scratch_free(&scratch32);
    free(src), free(x), free(y), free(t), free(t32);
    threadpool_free(pool);
    return 0;
}
