/*
 * test_matmul_batch.c — the small-batch kernels (engine/kernels_batch.h),
 * every type that has one, every ISA (LOWBIT_CPU=scalar|avx2 through
 * lb_cpu_select).
 *
 * What is shown:
 * 1. The kernel called directly gives, bit for bit, what the same ISA's
 *    single-token kernels give for each activation row alone (vec_dot, and
 *    vec_dot4 for the rows the single-token path takes four at a time), at
 *    many shapes: rows in and out of four-row groups, F16 rows whose length
 *    is and is not a multiple of 16, 2..15 tokens and a batch larger than the
 *    kernels' register blocks.
 * 2. The same through matmul(), with 1 and 2 threads: a batch of n < 16
 *    tokens gives exactly the outputs of n separate one-token products. This
 *    is the property greedy speculative decoding relies on.
 * 3. The AVX2 kernels agree with the scalar ones to float rounding (the
 *    integer part of every block is exact in both), and both with a
 *    double-precision product of the decoded weights and activations.
 * Uses the engine's private headers: the kernels are not public API.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "kernels_batch.h"
#include "lowbit.h"
#include "model.h"
#include "threadpool.h"
#include "types.h"

// The AVX-512 tables (native where the CPU has them, emulated through SIMDe
// where built) reuse AVX2's batch kernels for the types whose single-token
// kernels they kept, and have none for the others (matmul then goes token by
// token); either way a batch must equal its tokens one by one.
static const char *const isas[] = {"scalar", "avx2", "avx512", "avx512vnni", "avx512-emulated", "avx512vnni-emulated"};
enum { N_ISAS = 6, MAX_N = 24 };

// --- data ------------------------------------------------------------------------------

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static double uniform(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (((z ^ (z >> 31)) >> 11) + 0.5) * 0x1.0p-53;
}

static void fill_gaussian(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(sqrt(-2.0 * log(uniform())) * cos(6.283185307179586 * uniform()));
}

// A rows × cols matrix of type t from Gaussian data.
static void *make_weights(lb_type t, int rows, int64_t cols) {
    float *src = malloc(sizeof(float) * (size_t)cols);
    const size_t rb = lb_type_row_bytes(t, cols);
    char *w = malloc(rb * (size_t)rows);
    assert_non_null(src);
    assert_non_null(w);
    for (int r = 0; r < rows; r++) {
        fill_gaussian(src, cols);
        assert_int_equal(lb_type_from_float(t, src, w + (size_t)r * rb, cols), LB_OK);
    }
    free(src);
    return w;
}

// n activation rows converted to the weight type's vec_dot_type, as matmul does.
static void *convert_activations(lb_type t, const float *x, int n, int64_t cols, size_t *stride) {
    const lb_type vt = lb_type_traits[t].vec_dot_type;
    *stride = lb_type_row_bytes(vt, cols);
    char *a = malloc(*stride * (size_t)n);
    assert_non_null(a);
    for (int i = 0; i < n; i++) {
        if (vt == LB_TYPE_F32) memcpy(a + (size_t)i * *stride, x + (size_t)i * cols, *stride);
        else lb_kernel_from_float(vt)(x + (size_t)i * cols, a + (size_t)i * *stride, cols);
    }
    return a;
}

// Types for which some ISA has a small-batch kernel.
static int batch_types(lb_type *out) {
    int k = 0;
    for (int t = 0; t < LB_TYPE_COUNT; t++)
        if (lb_dot_batch_scalar[t] || lb_dot_batch_avx2[t]) out[k++] = (lb_type)t;
    return k;
}

// Row lengths to try for type t: multiples of its block, and for F16 lengths
// that are not multiples of 32 (the AVX2 kernel hands those back to the
// single-token kernel).
static int lengths(lb_type t, int64_t *out) {
    const int bs = lb_type_traits[t].block_size;
    if (bs == 1) {
        const int64_t f[] = {16, 48, 256, 272, 2048, 40, 172, 7};
        memcpy(out, f, sizeof f);
        return 8;
    }
    out[0] = bs;
    out[1] = 3 * bs;
    out[2] = bs >= 256 ? 8 * bs : 64 * bs;
    return 3;
}

// --- 1. the kernel against the single-token kernels ------------------------------------------

// What the single-token path gives for row r (of a chunk with `quad` rows in
// four-row groups) and one activation row.
static float single(lb_type t, int64_t cols, const char *w, size_t rb, int r, int quad, const char *a) {
    if (r < quad) {
        float out[4];
        lb_kernels()->vec_dot4[t](cols, w + (size_t)(r - r % 4) * rb, rb, a, out);
        return out[r % 4];
    }
    return lb_kernel_vec_dot(t)(cols, w + (size_t)r * rb, a);
}

static void test_kernel_matches_single_token(void **state) {
    (void)state;
    lb_type types[LB_TYPE_COUNT];
    const int n_types = batch_types(types);
    assert_true(n_types >= 5); // F16, Q8_0, Q4_0, Q4_K, Q6_K
    const int row_counts[] = {1, 3, 4, 7, 16};
    int checked = 0;
    for (int isa = 0; isa < N_ISAS; isa++) {
        if (!lb_cpu_select(isas[isa])) {
            print_message("%s: not supported here, skipped\n", isas[isa]);
            continue;
        }
        for (int k = 0; k < n_types; k++) {
            const lb_type t = types[k];
            const lb_dot_batch_fn kernel = lb_kernel_dot_batch(t);
            if (!kernel) continue;
            int64_t lens[8];
            const int n_lens = lengths(t, lens);
            for (int li = 0; li < n_lens; li++) {
                const int64_t cols = lens[li];
                float *x = malloc(sizeof(float) * (size_t)(MAX_N * cols));
                fill_gaussian(x, MAX_N * cols);
                size_t as;
                char *a = convert_activations(t, x, MAX_N, cols, &as);
                for (size_t ri = 0; ri < sizeof row_counts / sizeof row_counts[0]; ri++) {
                    const int rows = row_counts[ri];
                    const size_t rb = lb_type_row_bytes(t, cols);
                    char *w = make_weights(t, rows, cols);
                    const int quad = lb_kernels()->vec_dot4[t] ? rows / 4 * 4 : 0;
                    for (int n = 2; n <= MAX_N; n += n < 16 ? 1 : 8) {
                        const size_t ldy = (size_t)rows + 3; // a leading dimension wider than the rows
                        float *y = malloc(sizeof(float) * ldy * (size_t)n);
                        for (size_t i = 0; i < ldy * (size_t)n; i++) y[i] = NAN;
                        kernel(cols, w, rb, rows, quad, a, as, n, y, ldy);
                        for (int ti = 0; ti < n; ti++)
                            for (int r = 0; r < rows; r++) {
                                const float want = single(t, cols, w, rb, r, quad, a + (size_t)ti * as);
                                const float got = y[(size_t)ti * ldy + r];
                                if (memcmp(&want, &got, sizeof got) != 0)
                                    fail_msg("%s %s: %d x %lld, n %d: token %d row %d is %.9g, single-token %.9g",
                                             isas[isa], lb_type_name(t), rows, (long long)cols, n, ti, r, got,
                                             want);
                            }
                        for (int ti = 0; ti < n; ti++) // nothing written outside the rows
                            for (size_t r = (size_t)rows; r < ldy; r++) assert_true(isnan(y[(size_t)ti * ldy + r]));
                        free(y);
                        checked++;
                    }
                    free(w);
                }
                free(a);
                free(x);
            }
        }
    }
    print_message("%d (type, shape, n) cases bit-identical to the single-token kernels\n", checked);
    assert_true(checked > 0);
    lb_cpu_select("auto");
}

// --- 2. through matmul -----------------------------------------------------------------------

static void test_matmul_batch_equals_one_by_one(void **state) {
    (void)state;
    lb_type types[LB_TYPE_COUNT];
    const int n_types = batch_types(types);
    for (int isa = 0; isa < N_ISAS; isa++) {
        if (!lb_cpu_select(isas[isa])) continue;
        for (int threads = 1; threads <= 2; threads++) {
            struct lb_threadpool *pool = threadpool_new(threads);
            assert_non_null(pool);
            struct lb_matmul_scratch s = {0};
            lb_error err = {0};
            for (int k = 0; k < n_types; k++) {
                const lb_type t = types[k];
                const int64_t cols = lb_type_traits[t].block_size == 1 ? 272 : 2 * QK_K;
                const int rows = 53; // three full 16-row chunks and a ragged one
                struct lb_weight w = {.name = "test", .type = t, .rows = rows, .cols = cols,
                                      .data = make_weights(t, rows, cols)};
                float *x = malloc(sizeof(float) * 15 * (size_t)cols);
                float *yb = malloc(sizeof(float) * 15 * rows), *y1 = malloc(sizeof(float) * 15 * rows);
                fill_gaussian(x, 15 * cols);
                for (int n = 2; n < 16; n++) {
                    assert_int_equal(matmul(pool, &s, &w, x, yb, n, &err), LB_OK);
                    for (int i = 0; i < n; i++)
                        assert_int_equal(matmul(pool, &s, &w, x + (size_t)i * cols, y1 + (size_t)i * rows, 1, &err),
                                         LB_OK);
                    if (memcmp(yb, y1, sizeof(float) * (size_t)(n * rows)) != 0)
                        fail_msg("%s %s, %d threads: a batch of %d differs from %d one-token products", isas[isa],
                                 lb_type_name(t), threads, n, n);
                }
                free((void *)w.data);
                free(x);
                free(yb);
                free(y1);
            }
            matmul_scratch_free(&s);
            threadpool_free(pool);
        }
    }
    lb_cpu_select("auto");
}

// --- 3. AVX2 against scalar, both against double precision ------------------------------------

static void test_avx2_agrees_with_scalar(void **state) {
    (void)state;
    if (!lb_cpu_select("avx2")) {
        print_message("avx2: not supported here, skipped\n");
        skip();
    }
    lb_type types[LB_TYPE_COUNT];
    const int n_types = batch_types(types);
    const int rows = 12, n = 9;
    for (int k = 0; k < n_types; k++) {
        const lb_type t = types[k];
        const int64_t cols = lb_type_traits[t].block_size == 1 ? 512 : 4 * QK_K;
        const size_t rb = lb_type_row_bytes(t, cols);
        char *w = make_weights(t, rows, cols);
        float *x = malloc(sizeof(float) * (size_t)(n * cols)), *wf = malloc(sizeof(float) * (size_t)cols);
        float *af = malloc(sizeof(float) * (size_t)cols);
        fill_gaussian(x, n * cols);
        float y[2][rows * n];
        for (int isa = 0; isa < 2; isa++) { // scalar, avx2
            assert_true(lb_cpu_select(isas[isa]));
            size_t as;
            char *a = convert_activations(t, x, n, cols, &as);
            lb_kernel_dot_batch(t)(cols, w, rb, rows, lb_kernels()->vec_dot4[t] ? rows / 4 * 4 : 0, a, as, n, y[isa],
                                   rows);
            free(a);
        }
        // The reference: decoded weights times decoded activations, in double.
        const lb_type vt = lb_type_traits[t].vec_dot_type;
        size_t as;
        char *a = convert_activations(t, x, n, cols, &as);
        double worst = 0;
        for (int ti = 0; ti < n; ti++) {
            assert_int_equal(lb_type_to_float(vt, a + (size_t)ti * as, af, cols), LB_OK);
            for (int r = 0; r < rows; r++) {
                assert_int_equal(lb_type_to_float(t, w + (size_t)r * rb, wf, cols), LB_OK);
                double ref = 0, mag = 0;
                for (int64_t i = 0; i < cols; i++) {
                    ref += (double)wf[i] * af[i];
                    mag += fabs((double)wf[i] * af[i]);
                }
                for (int isa = 0; isa < 2; isa++) {
                    const double e = fabs(y[isa][ti * rows + r] - ref) / mag;
                    if (e > worst) worst = e;
                    // f32 accumulation over a few thousand terms, plus Q8_K's float
                    // scale applied per super-block: well inside 1e-5 of the magnitude.
                    if (e > 1e-5)
                        fail_msg("%s %s: token %d row %d is %.9g, double-precision reference %.9g", isas[isa],
                                 lb_type_name(t), ti, r, y[isa][ti * rows + r], ref);
                }
            }
        }
        print_message("%-5s scalar and avx2 within %.2e of the magnitude of the double-precision product\n",
                      lb_type_name(t), worst);
        free(a);
        free(w);
        free(x);
        free(wf);
        free(af);
    }
    lb_cpu_select("auto");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernel_matches_single_token),
        cmocka_unit_test(test_matmul_batch_equals_one_by_one),
        cmocka_unit_test(test_avx2_agrees_with_scalar),
    };
    int failed = cmocka_run_group_tests_name("matmul_batch", tests, NULL, NULL);
    int total = (int)(sizeof tests / sizeof tests[0]);
    printf("%d passed, %d failed\n", total - failed, failed);
    return failed ? 1 : 0;
}
