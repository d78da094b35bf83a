/*
 * stats.c — process statistics for `run --json`, `bench` and the chat panel.
 *
 * Linux-first: the resident set comes from /proc/self/statm; elsewhere the
 * calls fall back to getrusage, which only knows the high-water mark.
 */
#include "internal.h"

#include <stdio.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

size_t lb_rss_bytes(void) {
    // statm: size resident shared text lib data dt, in pages.
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0; // no /proc: unknown
    unsigned long long size = 0, resident = 0;
    int got = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    if (got != 2 || page <= 0) return 0;
    return (size_t)resident * (size_t)page;
}

// getrusage's ru_maxrss lags: the kernel folds the current RSS into the
// high-water mark only at some events, so it can read below lb_rss_bytes().
// /proc/self/status's VmHWM takes the maximum when read.
size_t lb_peak_rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        unsigned long long kb = 0;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "VmHWM: %llu kB", &kb) == 1) break;
        fclose(f);
        if (kb) return (size_t)kb * 1024;
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0 || ru.ru_maxrss < 0) return 0;
#ifdef __APPLE__
    return (size_t)ru.ru_maxrss; // bytes on macOS
#else
    return (size_t)ru.ru_maxrss * 1024; // kilobytes on Linux and the BSDs
#endif
}

double lb_time_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

// --- memory read bandwidth ---------------------------------------------------------
// Decoding reads every weight once per token, so its speed limit is
// bytes per token / read bandwidth. This measures the bandwidth the way decode
// uses memory: several threads streaming disjoint slices of a buffer far
// larger than the caches.

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct read_slice {
    const uint64_t *p;
    size_t n;
    uint64_t sum; // returned so the compiler cannot drop the loads
};

static void *read_slice_main(void *arg) {
    struct read_slice *s = arg;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i + 4 <= s->n; i += 4) {
        a += s->p[i];
        b += s->p[i + 1];
        c += s->p[i + 2];
        d += s->p[i + 3];
    }
    s->sum = a + b + c + d;
    return NULL;
}

double lb_read_bandwidth(int n_threads, size_t bytes) {
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 256) n_threads = 256;
    const size_t n = bytes / sizeof(uint64_t);
    uint64_t *buf = malloc(n * sizeof *buf);
    if (!buf) return 0;
    memset(buf, 1, n * sizeof *buf); // fault every page in before timing
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        pthread_t th[256];
        struct read_slice sl[256];
        const size_t per = n / (size_t)n_threads;
        const double t0 = lb_time_s();
        for (int i = 0; i < n_threads; i++) {
            sl[i] = (struct read_slice){buf + (size_t)i * per, per, 0};
            if (i > 0) pthread_create(&th[i], NULL, read_slice_main, &sl[i]);
        }
        read_slice_main(&sl[0]);
        for (int i = 1; i < n_threads; i++) pthread_join(th[i], NULL);
        const double dt = lb_time_s() - t0;
        uint64_t sum = 0;
        for (int i = 0; i < n_threads; i++) sum += sl[i].sum;
        if (sum == 42) best += 0; // keeps `sum` live
        const double bw = (double)(per * (size_t)n_threads * sizeof *buf) / dt;
        if (bw > best) best = bw;
    }
    free(buf);
    return best;
}
