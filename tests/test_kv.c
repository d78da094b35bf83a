/*
 * test_kv.c — the KV cache element types on the real stories260K model
 * (public API only; skipped when ../shared/models is absent).
 *
 *   - names: lb_kv_type_from_name knows f16/f32/q8_0/fp8, rejects others;
 *     a context refuses a type that cannot be a cache element, naming it;
 *   - size: the cache takes 2 (F16), 4 (F32), 34/32 (Q8_0) and 1 (E4M3)
 *     bytes per element;
 *   - quality: the logits of every position of a 200-token text, with the
 *     cache in each type, against the F16 cache: mean and largest KL
 *     divergence and top-1 agreement within bounds (below): about 3x the
 *     KLD measured here (see print_message output), loose enough for other
 *     ISAs' rounding, tight enough that a wrong scale or an element read
 *     from the wrong head (mean KLD ≫ 0.1) fails.
 *   - forced dispatch: the same holds with LOWBIT_CPU=scalar's kernels.
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

#include "lowbit.h"
#include "lbtest.h"

static const char *TEXT =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her "
    "friends. One day, she saw a big red ball under a tree. She ran to the ball and picked it up. It was shiny "
    "and new. Lily's mom said, \"Lily, you can play with the ball, but you must share it with your friends.\" "
    "Lily nodded and smiled. She threw the ball to her friend Tom. Tom caught the ball and laughed. They "
    "played all day until the sun went down. One day, a little boy named Tim went to the store with his dad. "
    "He wanted to buy a toy car. His dad said, \"Tim, you have to be good and wait.\" Tim waited and waited.";

enum { MAX_TOK = 256 };

// Logits of every position of TEXT with the cache in `kv`; the number of
// positions in *n, the cache's bytes in *bytes.
static float *run_text(lb_model *m, lb_type kv, int *n, size_t *bytes) {
    int32_t ids[MAX_TOK];
    *n = lb_tokenize(m, TEXT, -1, true, false, ids, MAX_TOK);
    assert_true(*n > 150 && *n <= MAX_TOK);
    lb_context_params cp = lb_context_default_params();
    cp.n_ctx = 256;
    cp.n_threads = 2;
    cp.kv_type = kv;
    lb_context *ctx = NULL;
    lb_error err = {0};
    assert_int_equal(lb_context_new(&ctx, m, &cp, &err), LB_OK);
    *bytes = lb_kv_cache_bytes_allocated(ctx);
    const int nv = lb_model_hparams(m)->n_vocab;
    float *logits = malloc((size_t)*n * nv * sizeof *logits);
    bool want[MAX_TOK];
    for (int i = 0; i < *n; i++) want[i] = true;
    // Two batches, so the second reads cache rows the first wrote.
    const int half = *n / 2;
    assert_int_equal(lb_forward(ctx, ids, NULL, half, want, logits, &err), LB_OK);
    assert_int_equal(lb_forward(ctx, ids + half, NULL, *n - half, want, logits + (size_t)half * nv, &err), LB_OK);
    lb_context_free(ctx);
    return logits;
}

static void test_names(void **state) {
    (void)state;
    assert_int_equal(lb_kv_type_from_name("f16"), LB_TYPE_F16);
    assert_int_equal(lb_kv_type_from_name("F32"), LB_TYPE_F32);
    assert_int_equal(lb_kv_type_from_name("q8_0"), LB_TYPE_Q8_0);
    assert_int_equal(lb_kv_type_from_name("fp8"), LB_TYPE_E4M3);
    assert_int_equal(lb_kv_type_from_name("e4m3"), LB_TYPE_E4M3);
    assert_int_equal(lb_kv_type_from_name("q4_0"), -1);
    assert_int_equal(lb_kv_type_from_name(NULL), -1);
    REQUIRE_SHARED();
    lb_model *m = NULL;
    lb_error err = {0};
    assert_int_equal(lb_model_open(&m, model_path("stories260K.gguf"), NULL, &err), LB_OK);
    lb_context_params cp = lb_context_default_params();
    cp.kv_type = LB_TYPE_Q4_0;
    lb_context *ctx = NULL;
    assert_int_equal(lb_context_new(&ctx, m, &cp, &err), LB_ERR_UNSUPPORTED);
    assert_null(ctx);
    assert_non_null(strstr(err.msg, "KV cache type Q4_0"));
    lb_model_free(m);
}

static void test_quality(void **state) {
    (void)state;
    REQUIRE_SHARED();
    const char *isas[] = {"avx2", "scalar", "avx512", "avx512vnni", "avx512-emulated", "avx512vnni-emulated"};
    // Measured (avx2): F32 9.2e-7 / 1.5e-5 / 246 of 246; Q8_0 2.0e-3 / 2.9e-2 / 240;
    // E4M3 1.35e-2 / 0.22 / 234 (3 mantissa bits: ~2.7 % RMS error per
    // element against Q8_0's ~0.5 %, see test_types' round trips).
    const struct { lb_type type; double bytes_per_elem, kld_mean, kld_max, top1; } kinds[] = {
        {LB_TYPE_F32, 4.0, 1e-5, 1e-4, 1.0},
        {LB_TYPE_Q8_0, 34.0 / 32.0, 0.006, 0.1, 0.95},
        {LB_TYPE_E4M3, 1.0, 0.04, 0.6, 0.9},
    };
    for (size_t s = 0; s < sizeof isas / sizeof isas[0]; s++) {
        if (!lb_cpu_select(isas[s])) continue; // not on this CPU, or not built
        lb_model *m = NULL;
        lb_error err = {0};
        assert_int_equal(lb_model_open(&m, model_path("stories260K.gguf"), NULL, &err), LB_OK);
        const lb_hparams *hp = lb_model_hparams(m);
        const int nv = hp->n_vocab;
        int n;
        size_t base_bytes;
        float *base = run_text(m, LB_TYPE_F16, &n, &base_bytes);
        const size_t elems = 2 * (size_t)hp->n_layer * 256 * hp->n_head_kv * hp->head_dim;
        assert_int_equal(base_bytes, 2 * elems);
        float *lp = malloc(nv * sizeof *lp), *blp = malloc(nv * sizeof *blp);
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
            int n2;
            size_t bytes;
            float *got = run_text(m, kinds[k].type, &n2, &bytes);
            assert_int_equal(n2, n);
            assert_int_equal(bytes, (size_t)(kinds[k].bytes_per_elem * elems));
            double sum = 0, worst = 0;
            int same = 0;
            for (int i = 0; i < n; i++) {
                lb_log_softmax(base + (size_t)i * nv, nv, blp);
                lb_log_softmax(got + (size_t)i * nv, nv, lp);
                const double kld = lb_kl_divergence(blp, lp, nv);
                sum += kld;
                if (kld > worst) worst = kld;
                same += lb_argmax(base + (size_t)i * nv, nv) == lb_argmax(got + (size_t)i * nv, nv);
            }
            print_message("%-6s KV %-4s: %zu bytes, KLD mean %.2e max %.2e vs F16, top-1 same %d/%d\n", isas[s],
                          lb_type_name(kinds[k].type), bytes, sum / n, worst, same, n);
            assert_true(sum / n <= kinds[k].kld_mean);
            assert_true(worst <= kinds[k].kld_max);
            assert_true(same >= kinds[k].top1 * n);
            free(got);
        }
        free(lp), free(blp), free(base);
        lb_model_free(m);
    }
    assert_true(lb_cpu_select("auto"));
}

int main(void) {
    if (!lbtest_init("test_kv")) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_quality),
    };
    const int n = (int)(sizeof tests / sizeof tests[0]);
    const int failed = cmocka_run_group_tests(tests, NULL, NULL);
    lbtest_cleanup();
    printf("%d passed, %d failed\n", n - failed, failed);
    return failed ? 1 : 0;
}
