/*
 * threadpool.h — a fixed pool of worker threads for data-parallel loops.
 *
 * threadpool_run(pool, fn, arg, n) calls fn(arg, i) for every i in [0, n)
 * across the workers and the calling thread, and returns when all are done.
 * Work is handed out one index at a time from an atomic counter, so callers
 * pass chunks (e.g. blocks of 16 rows), not single elements.
 */
#ifndef LB_THREADPOOL_H
#define LB_THREADPOOL_H

#include <stdint.h>

struct lb_threadpool;
typedef void (*lb_task_fn)(void *arg, int64_t index);

// n_threads counts the caller: 1 means no worker threads. NULL on failure.
struct lb_threadpool *threadpool_new(int n_threads);
void threadpool_free(struct lb_threadpool *pool);
int threadpool_size(const struct lb_threadpool *pool);
void threadpool_run(struct lb_threadpool *pool, lb_task_fn fn, void *arg, int64_t n);
// Inside a task: 0 on the thread that called threadpool_run, i + 1 on the
// pool's worker i; always < threadpool_size. For per-thread scratch buffers.
int threadpool_thread_index(void);

#endif
