/*
 * internal.h — helpers shared by the engine's files. Never installed.
 */
#ifndef LB_INTERNAL_H
#define LB_INTERNAL_H

#include "lowbit.h"

#include <stdarg.h>

// Record an error in `err` (may be NULL) and return `status`. The message is
// one line: callers pass "file: field: found X, expected Y".
lb_status lb_fail(lb_error *err, lb_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// file.c: the whole file at PATH in a malloc'd buffer (*out, *size); errors
// name the file as NAME.
lb_status lb_read_file(const char *path, const char *name, char **out, size_t *size, lb_error *err);

// Overflow-checked size arithmetic: false when the result does not fit.
static inline bool lb_mul_ok(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool lb_add_ok(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

// Defensive checks, marked as such (SQLite's ALWAYS/NEVER): a condition that
// holds unless an invariant elsewhere is broken.
#define LB_ALWAYS(x) (__builtin_expect(!!(x), 1))
#define LB_NEVER(x) (__builtin_expect(!!(x), 0))

#endif
