/*
 * gguf_dump.c — a canonical text dump of a GGUF file, for tests/test_gguf_py.py.
 *
 *   gguf_dump FILE               print the dump below; exit 1 with the error on stderr
 *   gguf_dump --write-test FILE  write FILE with our writer: every value type,
 *                                nested arrays, F32/F16/Q8_0 tensors (see write_test)
 *
 * Dump, one record a line, fields separated by tabs:
 *   version      <2|3>
 *   alignment    <bytes>
 *   data_offset  <file offset of the data region>
 *   n_kv         <count>
 *   n_tensors    <count>
 *   kv           <key> <type> <value as JSON>
 *   tensor       <name> <type name> <ne0,ne1,..> <offset> <FNV-1a 64 of the data, hex>
 * <type> is the value type's name ("uint32"), or "array<item type>". Values are
 * JSON: integers exact, float32 with 9 significant digits and float64 with 17
 * (both read back exactly), NaN/Infinity as Python's json module writes them,
 * strings with ", \ and control bytes escaped (other bytes as they are), and an
 * array a list whose items, when they are arrays themselves, are written as
 * ["<item type>", [items...]] because each nested array has its own item type.
 */
#include "gguf.h"
#include "fp16.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// Dump

static void put_json_str(const char *s, uint64_t len) {
    putchar('"');
    for (uint64_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20 || c == 0x7f) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static void put_json_float(double x, bool single) {
    if (isnan(x)) fputs("NaN", stdout);
    else if (isinf(x)) fputs(x > 0 ? "Infinity" : "-Infinity", stdout);
    else printf("%.*g", single ? 9 : 17, x);
}

static void put_json_value(const struct gguf_value *v) {
    switch (v->type) {
    case GGUF_UINT8: case GGUF_UINT16: case GGUF_UINT32: case GGUF_UINT64:
        printf("%llu", (unsigned long long)v->u64);
        break;
    case GGUF_INT8: case GGUF_INT16: case GGUF_INT32: case GGUF_INT64:
        printf("%lld", (long long)v->i64);
        break;
    case GGUF_FLOAT32: case GGUF_FLOAT64:
        put_json_float(v->f64, v->type == GGUF_FLOAT32);
        break;
    case GGUF_BOOL:
        fputs(v->u64 ? "true" : "false", stdout);
        break;
    case GGUF_STRING:
        put_json_str(v->str.data, v->str.len);
        break;
    case GGUF_ARRAY:
        putchar('[');
        for (uint64_t i = 0; i < v->arr.n; i++) {
            const struct gguf_value *item = &v->arr.items[i];
            if (i) putchar(',');
            if (item->type == GGUF_ARRAY) printf("[\"%s\",", gguf_vtype_name(item->arr.type));
            put_json_value(item);
            if (item->type == GGUF_ARRAY) putchar(']');
        }
        putchar(']');
        break;
    default:
        fputs("null", stdout);
        break;
    }
}

static uint64_t fnv1a64(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static int dump(const char *path) {
    lb_error err = {0};
    struct gguf_file *f;
    if (gguf_open(&f, path, &err) != LB_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    printf("version\t%u\nalignment\t%llu\ndata_offset\t%llu\nn_kv\t%llu\nn_tensors\t%llu\n", f->version,
           (unsigned long long)f->alignment, (unsigned long long)f->data_offset, (unsigned long long)f->n_kv,
           (unsigned long long)f->n_tensors);
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const struct gguf_kv *kv = &f->kv[i];
        printf("kv\t%.*s\t", (int)kv->key.len, kv->key.data);
        if (kv->value.type == GGUF_ARRAY) printf("array<%s>\t", gguf_vtype_name(kv->value.arr.type));
        else printf("%s\t", gguf_vtype_name(kv->value.type));
        put_json_value(&kv->value);
        putchar('\n');
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        printf("tensor\t%s\t%s\t", t->name, lb_type_name(t->type));
        for (uint32_t d = 0; d < t->n_dims; d++) printf("%s%lld", d ? "," : "", (long long)t->ne[d]);
        printf("\t%llu\t%016llx\n", (unsigned long long)t->offset, (unsigned long long)fnv1a64(t->data, t->nbytes));
    }
    gguf_close(f);
    return ferror(stdout) ? 1 : 0;
}

// ----------------------------------------------------------------------------
// Test file. tests/test_gguf_py.py rebuilds the same values and tensor bytes
// from the formulas in the comments; keep the two in step.

#define ARR(t, items_) (struct gguf_value){ .type = GGUF_ARRAY, \
    .arr = { .type = (t), .n = sizeof(items_) / sizeof((items_)[0]), .items = (items_) } }
#define U(t, x) { .type = (t), .u64 = (x) }
#define I(t, x) { .type = (t), .i64 = (x) }
#define F(t, x) { .type = (t), .f64 = (x) }
#define S(x) { .type = GGUF_STRING, .str = { .len = sizeof(x) - 1, .data = (x) } }

static int write_test(const char *path) {
    lb_error err = {0};
    struct gguf_writer *w = gguf_writer_new();
    if (!w) return 1;

    struct gguf_value scalars[] = {
        U(GGUF_UINT8, 200), I(GGUF_INT8, -100), U(GGUF_UINT16, 60000), I(GGUF_INT16, -30000),
        U(GGUF_UINT32, 4000000000u), I(GGUF_INT32, -2000000000), F(GGUF_FLOAT32, 0.15625),
        U(GGUF_BOOL, 1), S("h\xc3\xa9llo \"world\"\n\\tab\t"), U(GGUF_UINT64, UINT64_MAX),
        I(GGUF_INT64, INT64_MIN), F(GGUF_FLOAT64, 3.141592653589793),
    };
    static const char *const scalar_keys[] = {
        "test.uint8", "test.int8", "test.uint16", "test.int16", "test.uint32", "test.int32", "test.float32",
        "test.bool", "test.string", "test.uint64", "test.int64", "test.float64",
    };
    struct gguf_value a_u8[] = { U(GGUF_UINT8, 0), U(GGUF_UINT8, 1), U(GGUF_UINT8, 255) };
    struct gguf_value a_i8[] = { I(GGUF_INT8, -128), I(GGUF_INT8, 0), I(GGUF_INT8, 127) };
    struct gguf_value a_u16[] = { U(GGUF_UINT16, 65535), U(GGUF_UINT16, 7) };
    struct gguf_value a_i16[] = { I(GGUF_INT16, -32768), I(GGUF_INT16, 32767) };
    struct gguf_value a_u32[] = { U(GGUF_UINT32, 1), U(GGUF_UINT32, 4294967295u) };
    struct gguf_value a_i32[] = { I(GGUF_INT32, -1), I(GGUF_INT32, 2), I(GGUF_INT32, -3), I(GGUF_INT32, 4) };
    struct gguf_value a_f32[] = { F(GGUF_FLOAT32, 1.5), F(GGUF_FLOAT32, -0.25), F(GGUF_FLOAT32, 1e-5) };
    struct gguf_value a_bool[] = { U(GGUF_BOOL, 1), U(GGUF_BOOL, 0), U(GGUF_BOOL, 1) };
    struct gguf_value a_str[] = { S("<unk>"), S("<s>"), S("\xe2\x96\x81the"), S("") };
    struct gguf_value a_u64[] = { U(GGUF_UINT64, 0), U(GGUF_UINT64, 1ull << 63) };
    struct gguf_value a_i64[] = { I(GGUF_INT64, INT64_MAX), I(GGUF_INT64, -5) };
    struct gguf_value a_f64[] = { F(GGUF_FLOAT64, 0.1), F(GGUF_FLOAT64, -2.5e300) };
    struct gguf_value in1[] = { I(GGUF_INT32, 1), I(GGUF_INT32, 2), I(GGUF_INT32, 3) };
    struct gguf_value in2[] = { I(GGUF_INT32, 4), I(GGUF_INT32, 5) };
    struct gguf_value nested[] = { ARR(GGUF_INT32, in1), ARR(GGUF_INT32, in2) };
    struct gguf_value s1[] = { S("a"), S("bc") };
    struct gguf_value s2[] = { S("def") };
    struct gguf_value nested_str[] = { ARR(GGUF_STRING, s1), ARR(GGUF_STRING, s2) };
    struct gguf_value deep_inner[] = { ARR(GGUF_INT32, in2) };
    struct gguf_value deep[] = { ARR(GGUF_ARRAY, deep_inner) };
    struct { const char *key; struct gguf_value v; } arrays[] = {
        { "test.arr.uint8", ARR(GGUF_UINT8, a_u8) },     { "test.arr.int8", ARR(GGUF_INT8, a_i8) },
        { "test.arr.uint16", ARR(GGUF_UINT16, a_u16) },  { "test.arr.int16", ARR(GGUF_INT16, a_i16) },
        { "test.arr.uint32", ARR(GGUF_UINT32, a_u32) },  { "test.arr.int32", ARR(GGUF_INT32, a_i32) },
        { "test.arr.float32", ARR(GGUF_FLOAT32, a_f32) }, { "test.arr.bool", ARR(GGUF_BOOL, a_bool) },
        { "test.arr.string", ARR(GGUF_STRING, a_str) },  { "test.arr.uint64", ARR(GGUF_UINT64, a_u64) },
        { "test.arr.int64", ARR(GGUF_INT64, a_i64) },    { "test.arr.float64", ARR(GGUF_FLOAT64, a_f64) },
        { "test.arr.nested", ARR(GGUF_ARRAY, nested) },  { "test.arr.nested_string", ARR(GGUF_ARRAY, nested_str) },
        { "test.arr.deep", ARR(GGUF_ARRAY, deep) },
    };

    lb_status st = gguf_writer_set_str(w, "general.architecture", "llama", &err);
    if (!st) st = gguf_writer_set_u32(w, "general.alignment", 64, &err);
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0] && !st; i++)
        st = gguf_writer_set(w, scalar_keys[i], &scalars[i], &err);
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0] && !st; i++)
        st = gguf_writer_set(w, arrays[i].key, &arrays[i].v, &err);

    // t.f32: F32 [8, 3, 2], element i = i * 0.25 - 2.
    float f32[8 * 3 * 2];
    for (int i = 0; i < 48; i++) f32[i] = (float)i * 0.25f - 2.0f;
    // t.f16: F16 [16, 2], element i = (i - 8) * 0.5.
    lb_fp16 f16[16 * 2];
    for (int i = 0; i < 32; i++) f16[i] = lb_f32_to_fp16((float)(i - 8) * 0.5f);
    // t.q8_0: Q8_0 [64, 2], four blocks; block b has d = fp16((b + 1) / 8) and
    // qs[j] = ((b * 32 + j) * 7) % 255 - 127.
    uint8_t q8[4 * 34];
    for (int b = 0; b < 4; b++) {
        lb_fp16 d = lb_f32_to_fp16((float)(b + 1) / 8.0f);
        memcpy(q8 + 34 * b, &d, 2);
        for (int j = 0; j < 32; j++) q8[34 * b + 2 + j] = (uint8_t)(int8_t)(((b * 32 + j) * 7) % 255 - 127);
    }
    // t.vec: F32 [5], element i = 1 / (i + 1).
    float vec[5];
    for (int i = 0; i < 5; i++) vec[i] = 1.0f / (float)(i + 1);
    if (!st) st = gguf_writer_add_tensor(w, "t.f32", LB_TYPE_F32, 3, (int64_t[]){ 8, 3, 2 }, f32, sizeof f32, &err);
    if (!st) st = gguf_writer_add_tensor(w, "t.f16", LB_TYPE_F16, 2, (int64_t[]){ 16, 2 }, f16, sizeof f16, &err);
    if (!st) st = gguf_writer_add_tensor(w, "t.q8_0", LB_TYPE_Q8_0, 2, (int64_t[]){ 64, 2 }, q8, sizeof q8, &err);
    if (!st) st = gguf_writer_add_tensor(w, "t.vec", LB_TYPE_F32, 1, (int64_t[]){ 5 }, vec, sizeof vec, &err);
    if (!st) st = gguf_writer_write(w, path, &err);
    gguf_writer_free(w);
    if (st) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--write-test") == 0) return write_test(argv[2]);
    if (argc == 2 && argv[1][0] != '-') return dump(argv[1]);
    fprintf(stderr, "usage: gguf_dump FILE | gguf_dump --write-test FILE\n");
    return 2;
}
