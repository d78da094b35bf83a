/*
 * file.c — reading a small file whole (a tokenizer.bin, a config.json), so
 * its parser works on one buffer where every bound check is one comparison.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lb_status lb_read_file(const char *path, const char *name, char **out, size_t *out_size, lb_error *err) {
    *out = NULL;
    *out_size = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return lb_fail(err, LB_ERR_IO, "%s: cannot open: %s", name, strerror(errno));
    char *buf = NULL;
    size_t size = 0, cap = 0;
    for (;;) {
        if (size == cap) {
            cap = cap ? cap * 2 : 1 << 16;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(fp);
                return lb_fail(err, LB_ERR_NOMEM, "%s: out of memory reading %zu bytes", name, cap);
            }
            buf = nb;
        }
        size_t got = fread(buf + size, 1, cap - size, fp);
        size += got;
        if (got == 0) break;
    }
    const bool read_error = ferror(fp);
    fclose(fp);
    if (read_error) {
        free(buf);
        return lb_fail(err, LB_ERR_IO, "%s: read error", name);
    }
    *out = buf;
    *out_size = size;
    return LB_OK;
}
