/*
 * matbatch.c — micro-benchmark of small-batch matrix products: Y = X·Wᵀ for n
 * activation rows (a speculative verification batch is K + 1 rows), against
 * n = 1 in the same run. Decode is memory-bound, so the question is how much
 * more than one token a batch of n costs.
 *
 *     bench/matbatch [-t THREADS] [-r REPS] [--rows N] [--cols N] [--mats M]
 *                    [--types F16,Q8_0,...] [--n 1,2,4,8,16] [--isa scalar|avx2]
 *
 * M matrices of ROWS × COLS (default 4 of 5632 × 2048, TinyLlama's FFN, 88 MiB
 * in F16) are used in turn, so that the weights come from memory and not from
 * the last-level cache, as they do in a forward pass. For each type and n,
 * each repetition times n = 1 and then n; printed: best and median of both
 * (µs per product), weight GB/s at n, and the batch's cost in decodes ("x one
 * token": 1 means the batch costs one decode, n as much as n separate ones),
 * as the median of the per-repetition ratios and as best over best (the
 * least disturbed runs, on a shared machine). A dev tool, so it uses the
 * engine's private headers.
 */
#include "model.h"
#include "threadpool.h"
#include "types.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { MAX_N = 64, MAX_MATS = 16 };

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// "1,2,4" -> ns[], returns the count (0 on a bad list).
static int parse_ns(const char *s, int *ns) {
    int k = 0;
    while (*s && k < MAX_N) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > MAX_N) return 0;
        ns[k++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return 0;
    }
    return k;
}

int main(int argc, char **argv) {
    int threads = (int)sysconf(_SC_NPROCESSORS_ONLN), reps = 10, mats = 4;
    int64_t rows = 5632, cols = 2048;
    const char *types = "F16,Q8_0,Q4_0,Q4_K,Q6_K";
    int ns[MAX_N], n_ns = parse_ns("1,2,4,6,8,9,12,16", ns);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rows") && i + 1 < argc) rows = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--cols") && i + 1 < argc) cols = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--mats") && i + 1 < argc) mats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--types") && i + 1 < argc) types = argv[++i];
        else if (!strcmp(argv[i], "--n") && i + 1 < argc) n_ns = parse_ns(argv[++i], ns);
        else if (!strcmp(argv[i], "--isa") && i + 1 < argc) {
            if (!lb_cpu_select(argv[++i])) {
                fprintf(stderr, "matbatch: ISA '%s' unknown or not supported here\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: matbatch [-t THREADS] [-r REPS] [--rows N] [--cols N] [--mats M] "
                            "[--types T,T] [--n 1,2,4] [--isa scalar|avx2]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > 1000 || threads < 1 || rows < 1 || cols < 256 || cols % 256 || mats < 1 ||
        mats > MAX_MATS || n_ns < 1) {
        fprintf(stderr, "matbatch: bad arguments (cols a multiple of 256, 1..%d matrices, n in 1..%d)\n", MAX_MATS,
                MAX_N);
        return 2;
    }
    struct lb_threadpool *pool = threadpool_new(threads);
    float *src = malloc((size_t)(rows * cols) * sizeof(float));
    float *x = malloc((size_t)(MAX_N * cols) * sizeof(float)), *y = malloc((size_t)(MAX_N * rows) * sizeof(float));
    double *t = malloc((size_t)reps * sizeof(double)), *t1 = malloc((size_t)reps * sizeof(double));
    double *ratio = malloc((size_t)reps * sizeof(double));
    if (!pool || !src || !x || !y || !t || !t1 || !ratio) return 1;
    uint64_t s = 1;
    for (int64_t i = 0; i < rows * cols; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        src[i] = ((float)(s % 20001) - 10000.0f) / 10000.0f;
    }
    for (int64_t i = 0; i < MAX_N * cols; i++) x[i] = src[(i * 7919) % (rows * cols)];

    printf("small-batch matrix products, %d x %lld x %lld, %d threads, isa %s, median of %d\n\n", mats,
           (long long)rows, (long long)cols, threads, lb_cpu_name(), reps);
    printf("| type | n | best µs n=1 | median µs n=1 | best µs | median µs | weight GB/s | x one token "
           "(median of ratios) | x one token (best / best) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    char list[256];
    snprintf(list, sizeof list, "%s", types);
    for (char *name = strtok(list, ","); name; name = strtok(NULL, ",")) {
        lb_type ty = LB_TYPE_COUNT;
        for (int k = 0; k < LB_TYPE_COUNT; k++)
            if (lb_traits((lb_type)k) && !strcmp(lb_type_traits[k].name, name)) ty = (lb_type)k;
        if (ty == LB_TYPE_COUNT || !lb_type_traits[ty].vec_dot) {
            fprintf(stderr, "matbatch: no weight type '%s'\n", name);
            return 2;
        }
        const size_t row_bytes = lb_type_row_bytes(ty, cols);
        struct lb_weight w[MAX_MATS];
        for (int m = 0; m < mats; m++) {
            void *data = malloc(row_bytes * (size_t)rows);
            if (!data) return 1;
            for (int64_t r = 0; r < rows; r++)
                lb_type_from_float(ty, src + ((r + 977 * m) % rows) * cols, (char *)data + (size_t)r * row_bytes,
                                   cols);
            w[m] = (struct lb_weight){.name = "bench", .type = ty, .rows = rows, .cols = cols, .data = data};
        }
        struct lb_matmul_scratch scratch = {0};
        lb_error err = {0};
        // Each repetition times n = 1, then n: the machine is shared and its
        // speed drifts, so the ratio is taken between neighbouring samples.
        for (int k = 0; k < n_ns; k++) {
            const int n = ns[k];
            for (int m = 0; m < mats; m++) matmul(pool, &scratch, &w[m], x, y, n, &err); // warm-up
            for (int i = 0; i < reps; i++) {
                for (int pass = 0; pass < 2; pass++) {
                    const int nn = pass ? n : 1;
                    double t0 = lb_time_s();
                    for (int m = 0; m < mats; m++)
                        if (matmul(pool, &scratch, &w[m], x, y, nn, &err) != LB_OK) {
                            fprintf(stderr, "matbatch: %s\n", err.msg);
                            return 1;
                        }
                    (pass ? t : t1)[i] = (lb_time_s() - t0) / mats;
                }
                ratio[i] = t[i] / t1[i];
            }
            qsort(t, (size_t)reps, sizeof *t, cmp_double);
            qsort(t1, (size_t)reps, sizeof *t1, cmp_double);
            qsort(ratio, (size_t)reps, sizeof *ratio, cmp_double);
            const double median = t[reps / 2];
            printf("| %s | %d | %.0f | %.0f | %.0f | %.0f | %.1f | %.2f | %.2f |\n", name, n, t1[0] * 1e6,
                   t1[reps / 2] * 1e6, t[0] * 1e6, median * 1e6, (double)(row_bytes * (size_t)rows) / median / 1e9,
                   ratio[reps / 2], t[0] / t1[0]);
            fflush(stdout);
        }
        matmul_scratch_free(&scratch);
        for (int m = 0; m < mats; m++) free((void *)w[m].data);
    }
    free(src), free(x), free(y), free(t), free(t1), free(ratio);
    threadpool_free(pool);
    return 0;
}
