/*
 * test_threadpool.c — the pool runs every index exactly once per dispatch,
 * across many back-to-back dispatches of changing sizes (the pattern of a
 * forward pass: dozens of loops per token, each a different size).
 *
 * A regression test: a worker finishing one dispatch could claim an index of
 * the next with a stale claim word, run one task too many and leave the
 * caller waiting forever. alarm() turns such a hang into a failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "threadpool.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct counts {
    _Atomic int hits[4096];
};

static void count_index(void *arg, int64_t i) {
    struct counts *c = arg;
    atomic_fetch_add_explicit(&c->hits[i], 1, memory_order_relaxed);
}

static void run_dispatches(int n_threads, int rounds) {
    struct lb_threadpool *pool = threadpool_new(n_threads);
    assert_non_null(pool);
    assert_int_equal(threadpool_size(pool), n_threads);
    struct counts *c = calloc(1, sizeof *c);
    uint32_t x = 12345;
    for (int r = 0; r < rounds; r++) {
        x = x * 1664525u + 1013904223u;
        // Mostly small counts with occasional large ones, sizes changing every time.
        const int64_t n = (x >> 8) % 8 == 0 ? 1 + (x >> 12) % 4096 : 1 + (x >> 12) % 40;
        memset(c, 0, sizeof *c);
        threadpool_run(pool, count_index, c, n);
        for (int64_t i = 0; i < n; i++)
            if (atomic_load(&c->hits[i]) != 1) fail_msg("round %d: index %lld of %lld ran %d times", r, (long long)i,
                                                        (long long)n, atomic_load(&c->hits[i]));
        if (atomic_load(&c->hits[n]) != 0) fail_msg("round %d: index %lld past the end ran", r, (long long)n);
    }
    free(c);
    threadpool_free(pool);
}

static void test_every_index_once_two_threads(void **state) { run_dispatches(2, 200000); }
static void test_every_index_once_more_threads_than_cores(void **state) { run_dispatches(5, 50000); }
static void test_one_thread_runs_inline(void **state) { run_dispatches(1, 1000); }

static void test_free_null(void **state) { threadpool_free(NULL); }

int main(void) {
    alarm(240); // a lost wakeup or an overshooting count hangs: fail instead
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_index_once_two_threads),
        cmocka_unit_test(test_every_index_once_more_threads_than_cores),
        cmocka_unit_test(test_one_thread_runs_inline),
        cmocka_unit_test(test_free_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
