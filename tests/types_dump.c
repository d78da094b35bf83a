/*
 * types_dump — the engine's block codecs on raw files, for the Python
 * reference checks (tests/test_dequant.py). Uses only lowbit.h.
 *
 *   types_dump list                          one "NAME block_size type_size" per line
 *   types_dump quantize TYPE IN.f32 OUT.bin  float32 values -> one row (reference quantizer)
 *   types_dump dequantize TYPE IN.bin OUT.f32  one row -> float32 values
 * A file is one row: for per-channel types (a row header holding the
 * scale) the whole file shares one scale.
 *
 * TYPE is a name as lb_type_name gives it ("Q4_K"), any case. Exit status 0
 * on success, 1 with a one-line message on stderr otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lowbit.h"

// Reads a whole file; returns NULL (and a message) on failure.
static void *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "types_dump: %s: cannot open\n", path);
        return NULL;
    }
    void *data = NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0) len = ftell(f);
    if (len >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        data = malloc(len > 0 ? (size_t)len : 1);
        if (data && fread(data, 1, (size_t)len, f) != (size_t)len) {
            free(data);
            data = NULL;
        }
    }
    fclose(f);
    if (!data) fprintf(stderr, "types_dump: %s: cannot read\n", path);
    *size = (size_t)len;
    return data;
}

static int write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        fprintf(stderr, "types_dump: %s: cannot write\n", path);
        return 1;
    }
    return 0;
}

static int list_types(void) {
    for (int t = 0; t < LB_TYPE_COUNT; t++) {
        const char *name = lb_type_name((lb_type)t);
        if (name) printf("%s %d %zu\n", name, lb_type_block_size((lb_type)t), lb_type_block_bytes((lb_type)t));
    }
    return 0;
}

static int quantize(lb_type type, const char *in, const char *out) {
    size_t size;
    float *x = read_file(in, &size);
    if (!x) return 1;
    const int64_t n = (int64_t)(size / sizeof(float));
    const size_t bytes = lb_type_row_bytes(type, n);
    if (size % sizeof(float) != 0 || (n > 0 && bytes == 0)) {
        fprintf(stderr, "types_dump: %s: %zu bytes is not a whole number of %s blocks of floats\n", in, size,
                lb_type_name(type));
        free(x);
        return 1;
    }
    void *q = malloc(bytes ? bytes : 1);
    lb_status st = lb_type_from_float(type, x, q, n);
    int rc = st == LB_OK ? write_file(out, q, bytes) : 1;
    if (st != LB_OK) fprintf(stderr, "types_dump: quantize %s: %s\n", lb_type_name(type), lb_status_name(st));
    free(x);
    free(q);
    return rc;
}

static int dequantize(lb_type type, const char *in, const char *out) {
    size_t size;
    void *q = read_file(in, &size);
    if (!q) return 1;
    // The file is one row: the row header (lb_type_row_bytes(type, 0), 0 for
    // ggml types), then whole blocks.
    const size_t block_bytes = lb_type_block_bytes(type), header = lb_type_row_bytes(type, 0);
    if (size < header || (size - header) % block_bytes != 0) {
        fprintf(stderr, "types_dump: %s: %zu bytes is not a %zu-byte row header and whole %zu-byte %s blocks\n", in,
                size, header, block_bytes, lb_type_name(type));
        free(q);
        return 1;
    }
    const int64_t n = (int64_t)((size - header) / block_bytes) * lb_type_block_size(type);
    float *y = malloc(n > 0 ? (size_t)n * sizeof *y : 1);
    lb_status st = lb_type_to_float(type, q, y, n);
    int rc = st == LB_OK ? write_file(out, y, (size_t)n * sizeof *y) : 1;
    if (st != LB_OK) fprintf(stderr, "types_dump: dequantize %s: %s\n", lb_type_name(type), lb_status_name(st));
    free(q);
    free(y);
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "list") == 0) return list_types();
    if (argc == 5 && (strcmp(argv[1], "quantize") == 0 || strcmp(argv[1], "dequantize") == 0)) {
        const int type = lb_type_from_name(argv[2]);
        if (type < 0) {
            fprintf(stderr, "types_dump: unknown type '%s' (see 'types_dump list')\n", argv[2]);
            return 1;
        }
        return argv[1][0] == 'q' ? quantize((lb_type)type, argv[3], argv[4])
                                 : dequantize((lb_type)type, argv[3], argv[4]);
    }
    fprintf(stderr, "usage: types_dump list | quantize TYPE IN.f32 OUT.bin | dequantize TYPE IN.bin OUT.f32\n");
    return 1;
}
