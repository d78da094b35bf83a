/*
 * error.c — error values with messages.
 */
#include "internal.h"

#include <stdio.h>

lb_status lb_fail(lb_error *err, lb_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

const char *lb_status_name(lb_status status) {
    switch (status) {
    case LB_OK: return "ok";
    case LB_ERR_IO: return "i/o error";
    case LB_ERR_FORMAT: return "bad format";
    case LB_ERR_UNSUPPORTED: return "unsupported";
    case LB_ERR_MISSING: return "missing";
    case LB_ERR_ARG: return "bad argument";
    case LB_ERR_NOMEM: return "out of memory";
    case LB_ERR_CANCELLED: return "cancelled";
    }
    return "unknown status";
}
