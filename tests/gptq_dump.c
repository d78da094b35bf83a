/*
 * gptq_dump — GPTQ on raw files, for the numpy reference check
 * (tests/test_gptq.py).
 *
 *   gptq_dump W.f32 H.f64 ROWS COLS BITS GROUP SYM SCALE ACT STATIC BLOCK DAMP OUT
 *
 * W is ROWS × COLS float32, H is COLS × COLS float64 (row-major). GROUP 0 is
 * per channel; SYM, ACT and STATIC are 0 or 1; SCALE is minmax or signed_max.
 * Writes OUT.q (uint8 codes, ROWS × COLS), OUT.scale and OUT.zero (float32,
 * ROWS × groups). Exit 0, or 1 with a one-line message on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gptq.h"
#include "threadpool.h"

static void *read_all(const char *path, size_t want) {
    FILE *f = fopen(path, "rb");
    void *p = malloc(want + 1);
    if (!f || !p || fread(p, 1, want, f) != want) {
        fprintf(stderr, "gptq_dump: %s: cannot read %zu bytes\n", path, want);
        exit(1);
    }
    fclose(f);
    return p;
}

static void write_all(const char *prefix, const char *ext, const void *p, size_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s.%s", prefix, ext);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
        fprintf(stderr, "gptq_dump: %s: cannot write\n", path);
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc != 14) {
        fprintf(stderr, "usage: gptq_dump W.f32 H.f64 ROWS COLS BITS GROUP SYM SCALE ACT STATIC BLOCK DAMP OUT\n");
        return 1;
    }
    const long rows = atol(argv[3]), cols = atol(argv[4]);
    struct lb_gptq_params p = {
        .grid = {atoi(argv[5]), atoi(argv[6]), atoi(argv[7]) != 0},
        .scale_rule = !strcmp(argv[8], "signed_max") ? GPTQ_SCALE_SIGNED_MAX : GPTQ_SCALE_MINMAX,
        .act_order = atoi(argv[9]) != 0, .static_groups = atoi(argv[10]) != 0,
        .block_size = atoi(argv[11]), .damp_percent = atof(argv[12]),
    };
    float *w = read_all(argv[1], sizeof(float) * (size_t)(rows * cols));
    double *h = read_all(argv[2], sizeof(double) * (size_t)(cols * cols));
    struct lb_threadpool *pool = threadpool_new(2);
    struct gptq_codes c;
    lb_error err = {0};
    if (gptq_codes_alloc(&c, rows, cols, p.grid, &err) || gptq_quantize(pool, &p, rows, cols, w, h, &c, &err)) {
        fprintf(stderr, "gptq_dump: %s\n", err.msg);
        return 1;
    }
    write_all(argv[13], "q", c.q, (size_t)(rows * cols));
    write_all(argv[13], "scale", c.scale, sizeof(float) * (size_t)(rows * c.n_groups));
    write_all(argv[13], "zero", c.zero, sizeof(float) * (size_t)(rows * c.n_groups));
    gptq_codes_free(&c);
    threadpool_free(pool);
    free(w);
    free(h);
    return 0;
}
