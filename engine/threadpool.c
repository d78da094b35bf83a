/*
 * threadpool.c — workers wait on a condition variable for a new "generation"
 * of work, then pull indices from a shared atomic counter. The caller works
 * too, and waits until every index has been finished.
 *
 * Why the claim word packs the generation with the next index: a worker that
 * finishes its last task of one dispatch may try to claim again while the
 * caller is already publishing the next one. Claiming is a compare-and-swap on
 * (generation << 32 | next index), so a claim made against a stale generation
 * fails instead of stealing an index of the new dispatch. Workers spin briefly
 * before sleeping because decode runs hundreds of small loops per token and a
 * futex wake costs ~10 µs.
 */
#include "threadpool.h"

#include "internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

// Index field of a claim word that no task count reaches: nothing can be claimed.
#define CLAIM_CLOSED 0xffffffffu

struct lb_threadpool {
    int n_threads;              // including the caller
    pthread_t *workers;         // n_threads - 1
    pthread_mutex_t lock;
    pthread_cond_t work_ready;
    pthread_cond_t work_done;

    // The current dispatch; written under `lock` before generation is bumped.
    lb_task_fn fn;
    void *arg;
    _Atomic int64_t n_tasks;    // atomic: a stale worker may read it while the next dispatch is published
    _Atomic uint64_t claim;     // generation << 32 | next index to hand out
    atomic_int_fast64_t done;   // indices finished in this generation
    atomic_uint generation;
    atomic_int started;         // workers that have taken their index (threadpool_thread_index)
    bool stop;
};

static void run_tasks(struct lb_threadpool *p, unsigned gen) {
    for (;;) {
        uint64_t w = atomic_load_explicit(&p->claim, memory_order_acquire);
        int64_t i;
        for (;;) {
            if ((unsigned)(w >> 32) != gen) return;     // a newer dispatch: not ours
            i = (int64_t)(w & 0xffffffffu);
            if (i >= p->n_tasks) return;
            if (atomic_compare_exchange_weak_explicit(&p->claim, &w, w + 1, memory_order_acq_rel,
                                                      memory_order_acquire))
                break;
        }
        p->fn(p->arg, i);
        if (atomic_fetch_add_explicit(&p->done, 1, memory_order_acq_rel) + 1 == p->n_tasks) {
            pthread_mutex_lock(&p->lock);
            pthread_cond_broadcast(&p->work_done);
            pthread_mutex_unlock(&p->lock);
        }
    }
}

// This thread's index in its pool (0: not a worker, i.e. a caller).
static __thread int thread_index;

int threadpool_thread_index(void) { return thread_index; }

static void *worker_main(void *arg) {
    struct lb_threadpool *p = arg;
    thread_index = atomic_fetch_add(&p->started, 1) + 1;
    unsigned seen = 0;
    for (;;) {
        // Spin a little: the next dispatch usually follows within microseconds.
        for (int spin = 0; spin < 2000; spin++) {
            if (atomic_load_explicit(&p->generation, memory_order_acquire) != seen) break;
            __builtin_ia32_pause();
        }
        pthread_mutex_lock(&p->lock);
        while (!p->stop && atomic_load(&p->generation) == seen)
            pthread_cond_wait(&p->work_ready, &p->lock);
        if (p->stop) {
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        seen = atomic_load(&p->generation);
        pthread_mutex_unlock(&p->lock);
        run_tasks(p, seen);
    }
}

struct lb_threadpool *threadpool_new(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    struct lb_threadpool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_threads = n_threads;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work_ready, NULL);
    pthread_cond_init(&p->work_done, NULL);
    p->workers = calloc((size_t)n_threads, sizeof *p->workers);
    if (!p->workers) {
        threadpool_free(p);
        return NULL;
    }
    for (int i = 0; i < n_threads - 1; i++) {
        if (pthread_create(&p->workers[i], NULL, worker_main, p) != 0) {
            p->n_threads = i + 1; // free joins only the threads that exist
            threadpool_free(p);
            return NULL;
        }
    }
    return p;
}

void threadpool_free(struct lb_threadpool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_broadcast(&p->work_ready);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; p->workers && i < p->n_threads - 1; i++) pthread_join(p->workers[i], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->work_ready);
    pthread_cond_destroy(&p->work_done);
    free(p->workers);
    free(p);
}

int threadpool_size(const struct lb_threadpool *p) { return p ? p->n_threads : 1; }

void threadpool_run(struct lb_threadpool *p, lb_task_fn fn, void *arg, int64_t n) {
    if (n <= 0) return;
    if (LB_NEVER(n >= CLAIM_CLOSED)) { // callers pass chunks; a count this large is a bug upstream
        for (int64_t i = 0; i < n; i++) fn(arg, i);
        return;
    }
    if (!p || p->n_threads == 1 || n == 1) {
        for (int64_t i = 0; i < n; i++) fn(arg, i);
        return;
    }
    pthread_mutex_lock(&p->lock);
    // Close the claim word first. A worker still looping on the previous
    // dispatch may have loaded the old word and then read the new n_tasks;
    // its compare-and-swap must fail, so the word changes before n_tasks does.
    // (Without this, such a worker ran one task too many and `done` overshot.)
    unsigned gen = atomic_load(&p->generation) + 1;
    atomic_store(&p->claim, (uint64_t)gen << 32 | CLAIM_CLOSED);
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n;
    atomic_store(&p->done, 0);
    atomic_store_explicit(&p->claim, (uint64_t)gen << 32, memory_order_release);
    atomic_store_explicit(&p->generation, gen, memory_order_release);
    pthread_cond_broadcast(&p->work_ready);
    pthread_mutex_unlock(&p->lock);

    run_tasks(p, gen);

    // Wait for the stragglers: spin first, then sleep.
    for (int spin = 0; spin < 20000; spin++) {
        if (atomic_load_explicit(&p->done, memory_order_acquire) == n) return;
        __builtin_ia32_pause();
    }
    pthread_mutex_lock(&p->lock);
    while (atomic_load(&p->done) != n) pthread_cond_wait(&p->work_done, &p->lock);
    pthread_mutex_unlock(&p->lock);
}
