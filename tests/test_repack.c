/*
 * test_repack.c — the x8 layouts and their kernels (engine/repack.h).
 *
 *   - layout: packing then unpacking gives back every row byte for byte, and
 *     weight_row_to_float reads packed and tail rows as the plain row would;
 *   - kernels, through forced dispatch (lb_cpu_select, as LOWBIT_CPU does) and
 *     the real driver (matmul → matmul_x8), for row counts that are not a
 *     multiple of 8, odd batch sizes, 1 and 2 threads:
 *       * scalar, AVX2 and AVX-512 (native where the CPU has it, emulated
 *         through SIMDe where the build has it) packed results are
 *         bit-identical (the kernels are specified to do the same integer
 *         and float operations);
 *       * a token's result does not depend on the batch it is in (bit-identical
 *         to the same token alone), so speculative verification and decoding agree;
 *       * packed results equal the plain one-row dot products within float
 *         reassociation: both compute each block's integer sum exactly and
 *         scale it by the same float product, and differ only in the order
 *         the per-block terms are added. For m terms, two orders differ by at
 *         most 2·(m-1)·u·Σ|term| (u = 2^-24), and Σ|term| ≤ Σ_i |w_i|·|a_i|
 *         over dequantized weights and activations (for Q4_K the scale and
 *         min parts are separate terms, so their magnitudes are summed
 *         separately). The test allows (m + 2)·2^-23·Σ.
 * Uses the engine's private headers (model.h, repack.h, types.h).
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

#include "blocks.h"
#include "lowbit.h"
#include "model.h"
#include "repack.h"
#include "threadpool.h"
#include "types.h"

static const lb_type TYPES[] = {LB_TYPE_Q4_0, LB_TYPE_Q8_0, LB_TYPE_Q4_K, LB_TYPE_Q6_K};
enum { N_TYPES = sizeof TYPES / sizeof TYPES[0] };

static uint64_t rng_state = 12345;
static float frand(void) { // uniform in [-1, 1)
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (float)((rng_state >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

// A quantized rows × cols matrix of random values with uneven row scales.
static void *make_matrix(lb_type t, int64_t rows, int64_t cols) {
    const size_t rb = lb_type_row_bytes(t, cols);
    char *data = malloc(rb * (size_t)rows);
    float *row = malloc((size_t)cols * sizeof *row);
    for (int64_t r = 0; r < rows; r++) {
        const float scale = 0.5f + (float)(r % 5);
        for (int64_t j = 0; j < cols; j++) row[j] = scale * frand() * (j % 97 == 0 ? 4.0f : 1.0f);
        assert_int_equal(lb_type_from_float(t, row, data + (size_t)r * rb, cols), LB_OK);
    }
    free(row);
    return data;
}

static void test_layout_round_trip(void **state) {
    (void)state;
    for (int k = 0; k < N_TYPES; k++) {
        const lb_type t = TYPES[k];
        const int64_t rows = 21, cols = 512;
        const size_t rb = lb_type_row_bytes(t, cols);
        char *plain = make_matrix(t, rows, cols);
        char *packed = malloc(rb * rows);
        memcpy(packed, plain, rb * rows);
        struct lb_weight w = {.name = "w", .type = t, .rows = rows, .cols = cols, .data = packed};
        assert_true(weight_pack_inplace(&w));
        assert_int_equal(w.layout, LB_LAYOUT_X8);
        // The groups changed, the 5 tail rows did not.
        assert_true(memcmp(packed, plain, 16 * rb) != 0);
        assert_memory_equal(packed + 16 * rb, plain + 16 * rb, 5 * rb);
        char *row = malloc(rb);
        float *a = malloc(cols * sizeof *a), *b = malloc(cols * sizeof *b);
        for (int64_t r = 0; r < rows; r++) {
            if (r < 16) {
                repack_unpack_row(t, cols, packed + (r / 8) * 8 * rb, (int)(r % 8), row);
                assert_memory_equal(row, plain + r * rb, rb);
            }
            weight_row_to_float(&w, r, a);
            assert_int_equal(lb_type_to_float(t, plain + r * rb, b, cols), LB_OK);
            assert_memory_equal(a, b, cols * sizeof *a);
        }
        print_message("%-5s: pack/unpack exact for 16 packed and 5 plain rows\n", lb_type_name(t));
        free(row), free(a), free(b), free(plain), free(packed);
    }
}

// Σ_i |w_i|·|a_i| over dequantized values for one row (Q4_K: scale and min
// parts separately), the scale of the reassociation bound.
static double abs_dot(lb_type t, const void *wrow, const void *arow, int64_t cols) {
    const lb_type vt = lb_type_traits[t].vec_dot_type;
    float *w = malloc(cols * sizeof *w), *a = malloc(cols * sizeof *a), *w2 = NULL;
    lb_type_traits[t].to_float(wrow, w, cols);
    lb_type_traits[vt].to_float(arow, a, cols);
    if (t == LB_TYPE_Q4_K) { // split d·sc·q and dmin·m: dequantize with dmin = 0, then with d = 0
        const size_t rb = lb_type_row_bytes(t, cols);
        block_q4_K *c = malloc(rb);
        memcpy(c, wrow, rb);
        w2 = malloc(cols * sizeof *w2);
        for (int64_t b = 0; b < cols / QK_K; b++) c[b].dmin = 0;
        lb_type_traits[t].to_float(c, w, cols);
        memcpy(c, wrow, rb);
        for (int64_t b = 0; b < cols / QK_K; b++) c[b].d = 0;
        lb_type_traits[t].to_float(c, w2, cols);
        free(c);
    }
    double s = 0;
    for (int64_t i = 0; i < cols; i++) s += (fabs(w[i]) + (w2 ? fabs(w2[i]) : 0)) * fabs(a[i]);
    free(w), free(a), free(w2);
    return s;
}

// y = W·x for n tokens through matmul, on a packed or a plain copy of `plain`.
static void run_matmul(struct lb_threadpool *pool, lb_type t, int64_t rows, int64_t cols, const void *plain,
                       bool packed, const float *x, int n, float *y) {
    const size_t bytes = lb_type_row_bytes(t, cols) * rows;
    void *data = malloc(bytes);
    memcpy(data, plain, bytes);
    struct lb_weight w = {.name = "w", .type = t, .rows = rows, .cols = cols, .data = data};
    if (packed) assert_true(weight_pack_inplace(&w));
    struct lb_matmul_scratch s = {0};
    lb_error err = {0};
    assert_int_equal(matmul(pool, &s, &w, x, y, n, &err), LB_OK);
    matmul_scratch_free(&s);
    free(data);
}

static void test_kernels(void **state) {
    (void)state;
    // Scalar first: the others are compared with it. The emulated AVX-512
    // tables run kernels_avx512.c through SIMDe on AVX2 (tests only).
    const char *isas[] = {"scalar", "avx2", "avx512", "avx512vnni", "avx512-emulated", "avx512vnni-emulated"};
    const int n_isas = (int)(sizeof isas / sizeof isas[0]);
    bool ran[sizeof isas / sizeof isas[0]] = {0};
    const int64_t shapes[][2] = {{13, 256}, {35, 768}, {8, 512}};
    const int batches[] = {1, 2, 3, 5, 9, 17};
    const int threads[] = {1, 2};
    for (int k = 0; k < N_TYPES; k++) {
        const lb_type t = TYPES[k];
        const lb_type vt = lb_type_traits[t].vec_dot_type;
        double worst = 0;
        for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
            const int64_t rows = shapes[sh][0], cols = shapes[sh][1];
            const int64_t nb = cols / lb_type_block_size(t);
            void *plain = make_matrix(t, rows, cols);
            const int max_n = 17;
            float *x = malloc((size_t)(max_n * cols) * sizeof *x);
            for (int64_t i = 0; i < max_n * cols; i++) x[i] = 2.0f * frand();
            float *ref = malloc((size_t)(max_n * rows) * sizeof *ref), *y = malloc((size_t)(max_n * rows) * sizeof *y);
            float *y_scalar = malloc((size_t)(max_n * rows) * sizeof *y), *one = malloc(rows * sizeof *one);
            // Quantized activations, for the bound.
            const size_t ab = lb_type_row_bytes(vt, cols);
            char *act = malloc(ab * max_n);
            for (int i = 0; i < max_n; i++) lb_type_traits[vt].from_float_ref(x + i * cols, act + i * ab, cols);
            for (size_t th = 0; th < sizeof threads / sizeof threads[0]; th++) {
                struct lb_threadpool *pool = threadpool_new(threads[th]);
                for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
                    const int n = batches[bi];
                    for (int is = 0; is < n_isas; is++) {
                        if (!lb_cpu_select(isas[is])) continue; // not on this CPU, or not built
                        ran[is] = true;
                        run_matmul(pool, t, rows, cols, plain, false, x, n, ref);
                        run_matmul(pool, t, rows, cols, plain, true, x, n, y);
                        for (int i = 0; i < n; i++)
                            for (int64_t r = 0; r < rows; r++) {
                                const double bound = (double)(nb + 2) * FLT_EPSILON *
                                    abs_dot(t, (const char *)plain + r * lb_type_row_bytes(t, cols), act + i * ab, cols);
                                const double d = fabs((double)y[i * rows + r] - ref[i * rows + r]);
                                if (d > bound)
                                    fail_msg("%s %s rows %lld n %d token %d row %lld: packed %.9g plain %.9g bound %.3g",
                                             isas[is], lb_type_name(t), (long long)rows, n, i, (long long)r,
                                             y[i * rows + r], ref[i * rows + r], bound);
                                if (bound > 0 && d / bound > worst) worst = d / bound;
                            }
                        // Rows of whole groups: bit-identical across ISAs (the rows % 8
                        // tail rows take each ISA's plain dot product, checked above).
                        if (is == 0) memcpy(y_scalar, y, (size_t)(n * rows) * sizeof *y);
                        else
                            for (int i = 0; i < n; i++)
                                assert_memory_equal(y + i * rows, y_scalar + i * rows, rows / 8 * 8 * sizeof *y);
                        // Batch independence: the last token alone gives the same bits.
                        run_matmul(pool, t, rows, cols, plain, true, x + (n - 1) * cols, 1, one);
                        assert_memory_equal(one, y + (n - 1) * rows, rows * sizeof *one);
                    }
                }
                threadpool_free(pool);
            }
            free(plain), free(x), free(ref), free(y), free(y_scalar), free(one), free(act);
        }
        print_message("%-5s: packed bit-identical to scalar, batch-independent; "
                      "worst |packed - plain| = %.2f of the bound\n", lb_type_name(t), worst);
    }
    for (int is = 0; is < n_isas; is++)
        print_message("%-20s %s\n", isas[is], ran[is] ? "checked" : "not on this CPU or not built: skipped");
    assert_true(ran[0]);
    assert_true(lb_cpu_select("auto"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_round_trip),
        cmocka_unit_test(test_kernels),
    };
    const int n = (int)(sizeof tests / sizeof tests[0]);
    const int failed = cmocka_run_group_tests(tests, NULL, NULL);
    printf("%d passed, %d failed\n", n - failed, failed);
    return failed ? 1 : 0;
}
