/*
 * test_matmul.c — the batched float paths of matmul (engine/matmul_float.c):
 * F16 weights through the kernel table's gemm_f16, F32 and BF16 through
 * OpenBLAS on per-thread tiles, against a double-precision reference.
 *
 * For every ISA (forced dispatch, as LOWBIT_CPU does), 1 and 2 threads, row
 * counts that are not multiples of the kernel's 4-row tiles, column counts
 * that are not multiples of its 8-lane vectors, and batches of 16 to 35
 * tokens (not multiples of its 3-token tiles): |y - y_ref| ≤ (k + 2) · 2^-23
 * · Σ|w·x|, the bound on a float sum of k products in any order (the
 * reference sums exactly, in double, the same f16-rounded weights).
 * Uses the engine's private headers (model.h, types.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lowbit.h"
#include "model.h"
#include "threadpool.h"
#include "types.h"

static uint64_t rng_state = 99;
static float frand(void) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (float)((rng_state >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

static void test_float_gemm(void **state) {
    (void)state;
    const lb_type types[] = {LB_TYPE_F16, LB_TYPE_F32, LB_TYPE_BF16};
    const int64_t shapes[][2] = {{13, 264}, {70, 512}, {4, 37}};
    const int batches[] = {16, 17, 35};
    const char *isas[] = {"scalar", "avx2", "avx512", "avx512vnni", "avx512-emulated", "avx512vnni-emulated"};
    for (size_t ty = 0; ty < sizeof types / sizeof types[0]; ty++) {
        double worst = 0;
        for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
            const lb_type t = types[ty];
            const int64_t rows = shapes[sh][0], cols = shapes[sh][1];
            const size_t rb = lb_type_row_bytes(t, cols);
            char *w = malloc(rb * rows);
            float *wf = malloc((size_t)(rows * cols) * sizeof *wf), *row = malloc(cols * sizeof *row);
            for (int64_t r = 0; r < rows; r++) {
                for (int64_t c = 0; c < cols; c++) row[c] = frand() * (1 + r % 3);
                assert_int_equal(lb_type_from_float(t, row, w + r * rb, cols), LB_OK);
                assert_int_equal(lb_type_to_float(t, w + r * rb, wf + r * cols, cols), LB_OK); // what the kernels see
            }
            const int max_n = 35;
            float *x = malloc((size_t)(max_n * cols) * sizeof *x), *y = malloc((size_t)(max_n * rows) * sizeof *y);
            for (int64_t i = 0; i < max_n * cols; i++) x[i] = frand();
            struct lb_weight wt = {.name = "w", .type = t, .rows = rows, .cols = cols, .data = w};
            for (int th = 1; th <= 2; th++) {
                struct lb_threadpool *pool = threadpool_new(th);
                for (size_t is = 0; is < sizeof isas / sizeof isas[0]; is++) {
                    if (!lb_cpu_select(isas[is])) continue; // not on this CPU, or not built
                    for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
                        const int n = batches[b];
                        struct lb_matmul_scratch s = {0};
                        lb_error err = {0};
                        assert_int_equal(matmul(pool, &s, &wt, x, y, n, &err), LB_OK);
                        matmul_scratch_free(&s);
                        for (int i = 0; i < n; i++)
                            for (int64_t r = 0; r < rows; r++) {
                                double ref = 0, mag = 0;
                                for (int64_t c = 0; c < cols; c++) {
                                    ref += (double)wf[r * cols + c] * x[i * cols + c];
                                    mag += fabs((double)wf[r * cols + c] * x[i * cols + c]);
                                }
                                const double bound = (double)(cols + 2) * FLT_EPSILON * mag;
                                const double d = fabs(y[i * rows + r] - ref);
                                if (d > bound)
                                    fail_msg("%s %s %d threads %lldx%lld n %d: y[%d][%lld] %.9g ref %.9g bound %.3g", isas[is],
                                             lb_type_name(t), th, (long long)rows, (long long)cols, n, i, (long long)r,
                                             y[i * rows + r], ref, bound);
                                if (bound > 0 && d / bound > worst) worst = d / bound;
                            }
                    }
                }
                threadpool_free(pool);
            }
            free(w), free(wf), free(row), free(x), free(y);
        }
        print_message("%-4s batched: within the reassociation bound, worst %.3f of it\n", lb_type_name(types[ty]), worst);
    }
    assert_true(lb_cpu_select("auto"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_float_gemm),
    };
    const int n = (int)(sizeof tests / sizeof tests[0]);
    const int failed = cmocka_run_group_tests(tests, NULL, NULL);
    printf("%d passed, %d failed\n", n - failed, failed);
    return failed ? 1 : 0;
}
