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
    if (!f) return lb_peak_rss_bytes(); // best effort where /proc is absent
    unsigned long long size = 0, resident = 0;
    int got = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    if (got != 2 || page <= 0) return 0;
    return (size_t)resident * (size_t)page;
}

size_t lb_peak_rss_bytes(void) {
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
