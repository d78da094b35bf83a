/*
 * test_alloc.c — decoding allocates nothing per token.
 *
 * The test program defines malloc/calloc/realloc itself (glibc lets the
 * executable interpose them and forwards to __libc_*), counting the calls
 * from every thread. After a context has warmed up (its matmul scratch has
 * grown to the batch it serves), decoding 48 more tokens one at a time —
 * and evaluating a 16-token batch, after one warm-up batch of that size —
 * must make no allocation at all, on every weight layout (the file's F32
 * model, then re-quantized to Q4_0 and Q8_0, which are packed, and to Q5_0,
 * which is not) and every KV cache type.
 * Public API only; skipped without ../shared/models.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lowbit.h"
#include "lbtest.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

static atomic_long n_alloc;

void *malloc(size_t n) {
    atomic_fetch_add_explicit(&n_alloc, 1, memory_order_relaxed);
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
    atomic_fetch_add_explicit(&n_alloc, 1, memory_order_relaxed);
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
    atomic_fetch_add_explicit(&n_alloc, 1, memory_order_relaxed);
    return __libc_realloc(p, n);
}

static void decode_without_allocating(lb_model *m, lb_type kv) {
    lb_context_params cp = lb_context_default_params();
    cp.n_ctx = 128;
    cp.n_threads = 2;
    cp.kv_type = kv;
    lb_context *ctx = NULL;
    lb_error err = {0};
    assert_int_equal(lb_context_new(&ctx, m, &cp, &err), LB_OK);
    const int nv = lb_model_hparams(m)->n_vocab;
    float *logits = malloc((size_t)16 * nv * sizeof *logits);
    int32_t tok[16];
    for (int i = 0; i < 16; i++) tok[i] = 1 + (i * 37) % (nv - 1);
    bool want[16];
    for (int i = 0; i < 16; i++) want[i] = true;
    // Warm-up: one token, one 16-token batch.
    assert_int_equal(lb_decode(ctx, tok, 1, logits, &err), LB_OK);
    assert_int_equal(lb_forward(ctx, tok, NULL, 16, want, logits, &err), LB_OK);
    atomic_store(&n_alloc, 0);
    for (int i = 0; i < 48; i++) assert_int_equal(lb_decode(ctx, &tok[i % 16], 1, logits, &err), LB_OK);
    assert_int_equal(lb_forward(ctx, tok, NULL, 16, want, logits, &err), LB_OK);
    const long n = atomic_load(&n_alloc);
    print_message("%-5s weights, KV %-4s: %ld allocations in 48 decoded tokens and a 16-token batch\n",
                  lb_type_name(lb_model_weight_type(m)), lb_type_name(kv), n);
    assert_int_equal(n, 0);
    free(logits);
    lb_context_free(ctx);
}

static void test_no_allocation_per_token(void **state) {
    (void)state;
    REQUIRE_SHARED();
    lb_model *m = NULL;
    lb_error err = {0};
    assert_int_equal(lb_model_open(&m, model_path("stories260K.gguf"), NULL, &err), LB_OK);
    const lb_type weights[] = {LB_TYPE_F32, LB_TYPE_Q4_0, LB_TYPE_Q8_0, LB_TYPE_Q5_0};
    const lb_type kvs[] = {LB_TYPE_F16, LB_TYPE_Q8_0, LB_TYPE_E4M3};
    for (size_t w = 0; w < sizeof weights / sizeof weights[0]; w++) {
        if (weights[w] != LB_TYPE_F32)
            assert_int_equal(lb_model_requantize(m, weights[w], NULL, NULL, &err), LB_OK);
        for (size_t k = 0; k < sizeof kvs / sizeof kvs[0]; k++) decode_without_allocating(m, kvs[k]);
    }
    lb_model_free(m);
}

int main(void) {
    if (!lbtest_init("test_alloc")) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_allocation_per_token),
    };
    const int n = (int)(sizeof tests / sizeof tests[0]);
    const int failed = cmocka_run_group_tests(tests, NULL, NULL);
    lbtest_cleanup();
    printf("%d passed, %d failed\n", n - failed, failed);
    return failed ? 1 : 0;
}
