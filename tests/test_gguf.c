/*
 * test_gguf.c — the GGUF reader and writer (engine/gguf.c).
 *
 * - round trip: a file with every value type, nested arrays and several
 *   tensors is written, read back and compared; copying its keys into a new
 *   writer gives the same bytes.
 * - every prefix of a small file is refused (until the last tensor's data is
 *   complete), never a crash; under ASan the buffer is exactly that long.
 * - hand-made broken files: each gives the right status and a message naming
 *   the file and the key or tensor.
 * - typed getters, value formatting, writer argument checks, atomic writes.
 * - stories260K.gguf from $SHARED_MODELS, skipped when absent.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "gguf.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// ----------------------------------------------------------------------------
// Helpers

// A scratch directory for the test's files, removed at the end.
static char tmpdir[256];

static const char *tmp_path(const char *name) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    return path;
}

static void *read_all(const char *path, size_t *size) {
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    void *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *size = (size_t)n;
    return buf;
}

// A growing byte buffer for hand-made files.
struct buf {
    uint8_t *p;
    size_t n, cap;
};

static void b_put(struct buf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void b_u32(struct buf *b, uint32_t v) { b_put(b, &v, 4); }
static void b_u64(struct buf *b, uint64_t v) { b_put(b, &v, 8); }
static void b_str(struct buf *b, const char *s) {
    b_u64(b, strlen(s));
    b_put(b, s, strlen(s));
}
static void b_header(struct buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    b_put(b, "GGUF", 4);
    b_u32(b, version);
    b_u64(b, n_tensors);
    b_u64(b, n_kv);
}
static void b_tensor(struct buf *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                     uint64_t offset) {
    b_str(b, name);
    b_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) b_u64(b, ne[d]);
    b_u32(b, type);
    b_u64(b, offset);
}
static void b_pad(struct buf *b, size_t align, size_t data_bytes) {
    while (b->n % align) b_put(b, "", 1);
    for (size_t i = 0; i < data_bytes; i++) b_put(b, "\x5a", 1);
}

// A valid little file: one string key, one F32 tensor of 8 elements.
#define TENSOR "blk.0.attn_q.weight"
static void b_good(struct buf *b, uint32_t version) {
    b_header(b, version, 1, 1);
    b_str(b, "general.name");
    b_u32(b, GGUF_STRING);
    b_str(b, "tiny");
    b_tensor(b, TENSOR, 1, (uint64_t[]){ 8 }, LB_TYPE_F32, 0);
    b_pad(b, 32, 32);
}

// Parse `size` bytes copied into a buffer of exactly that size (so that ASan
// sees any read past it) and expect `status` with a message holding the file
// name and every string in `needles` (NULL-terminated).
static void expect_parse(const void *data, size_t size, lb_status status, const char *const *needles) {
    uint8_t *copy = malloc(size ? size : 1);
    assert_non_null(copy);
    if (size) memcpy(copy, data, size);
    lb_error err = {0};
    struct gguf_file *f = (struct gguf_file *)1;
    lb_status st = gguf_parse(&f, "hand.gguf", copy, size, &err);
    if (st != status) fail_msg("status %s, expected %s; message: %s", lb_status_name(st), lb_status_name(status), err.msg);
    if (status == LB_OK) {
        assert_non_null(f);
        gguf_close(f);
    } else {
        assert_null(f);
        if (!strstr(err.msg, "hand.gguf")) fail_msg("message does not name the file: %s", err.msg);
        for (const char *const *n = needles; n && *n; n++)
            if (!strstr(err.msg, *n)) fail_msg("message lacks '%s': %s", *n, err.msg);
        if (strchr(err.msg, '\n')) fail_msg("message is not one line: %s", err.msg);
    }
    free(copy);
}

#define NEEDLES(...) ((const char *const[]){ __VA_ARGS__, NULL })

// ----------------------------------------------------------------------------
// Round trip

#define U(t, x) { .type = (t), .u64 = (x) }
#define I(t, x) { .type = (t), .i64 = (x) }
#define F(t, x) { .type = (t), .f64 = (x) }
#define S(x) { .type = GGUF_STRING, .str = { .len = sizeof(x) - 1, .data = (x) } }
#define ARR(t, items_) { .type = GGUF_ARRAY, \
    .arr = { .type = (t), .n = sizeof(items_) / sizeof((items_)[0]), .items = (items_) } }

static struct gguf_value a_u8[] = { U(GGUF_UINT8, 0), U(GGUF_UINT8, 255) };
static struct gguf_value a_str[] = { S("<unk>"), S("<s>"), S("\xe2\x96\x81the") };
static struct gguf_value a_f32[] = { F(GGUF_FLOAT32, 0.5), F(GGUF_FLOAT32, -2) };
static struct gguf_value a_i64[] = { I(GGUF_INT64, INT64_MIN), I(GGUF_INT64, 3) };
static struct gguf_value in1[] = { I(GGUF_INT32, 1), I(GGUF_INT32, 2), I(GGUF_INT32, 3) };
static struct gguf_value in2[] = { S("x") };
static struct gguf_value a_nested[] = { ARR(GGUF_INT32, in1), ARR(GGUF_STRING, in2) };
static struct gguf_value a_deep[] = { ARR(GGUF_ARRAY, a_nested) };

static const struct { const char *key; struct gguf_value v; } kvs[] = {
    { "general.architecture", S("llama") },
    { "general.alignment", U(GGUF_UINT32, 64) },
    { "t.uint8", U(GGUF_UINT8, 255) },           { "t.int8", I(GGUF_INT8, -128) },
    { "t.uint16", U(GGUF_UINT16, 65535) },       { "t.int16", I(GGUF_INT16, -32768) },
    { "t.uint32", U(GGUF_UINT32, 4294967295u) }, { "t.int32", I(GGUF_INT32, INT32_MIN) },
    { "t.float32", F(GGUF_FLOAT32, 1e-5f) },     { "t.bool", U(GGUF_BOOL, 1) },
    { "t.string", S("h\xc3\xa9llo\n") },         { "t.empty", S("") },
    { "t.uint64", U(GGUF_UINT64, UINT64_MAX) },  { "t.int64", I(GGUF_INT64, INT64_MIN) },
    { "t.float64", F(GGUF_FLOAT64, 0.1) },
    { "t.arr.uint8", ARR(GGUF_UINT8, a_u8) },    { "t.arr.string", ARR(GGUF_STRING, a_str) },
    { "t.arr.float32", ARR(GGUF_FLOAT32, a_f32) }, { "t.arr.int64", ARR(GGUF_INT64, a_i64) },
    { "t.arr.nested", ARR(GGUF_ARRAY, a_nested) }, { "t.arr.deep", ARR(GGUF_ARRAY, a_deep) },
    { "t.arr.empty", { .type = GGUF_ARRAY, .arr = { .type = GGUF_INT32, .n = 0, .items = NULL } } },
};
enum { N_KVS = sizeof kvs / sizeof kvs[0] };

static bool value_equal(const struct gguf_value *a, const struct gguf_value *b) {
    if (a->type != b->type) return false;
    switch (a->type) {
    case GGUF_FLOAT32: return (float)a->f64 == (float)b->f64;
    case GGUF_FLOAT64: return a->f64 == b->f64;
    case GGUF_STRING: return a->str.len == b->str.len && memcmp(a->str.data, b->str.data, a->str.len) == 0;
    case GGUF_ARRAY:
        if (a->arr.type != b->arr.type || a->arr.n != b->arr.n) return false;
        for (uint64_t i = 0; i < a->arr.n; i++)
            if (!value_equal(&a->arr.items[i], &b->arr.items[i])) return false;
        return true;
    default: return a->u64 == b->u64;
    }
}

// Tensors: F32 [16, 3], F16 [32], Q8_0 [64, 2, 2], Q4_K [256], patterned bytes.
static const struct { const char *name; lb_type type; uint32_t n_dims; int64_t ne[4]; } tensors[] = {
    { "token_embd.weight", LB_TYPE_F32, 2, { 16, 3 } },
    { "output_norm.weight", LB_TYPE_F16, 1, { 32 } },
    { "blk.0.attn_q.weight", LB_TYPE_Q8_0, 3, { 64, 2, 2 } },
    { "blk.0.ffn_up.weight", LB_TYPE_Q4_K, 4, { 256, 1, 1, 1 } },
};
enum { N_TENSORS = sizeof tensors / sizeof tensors[0] };
static uint8_t tensor_data[N_TENSORS][512];

static size_t tensor_nbytes(int i) {
    int64_t rows = 1;
    for (uint32_t d = 1; d < tensors[i].n_dims; d++) rows *= tensors[i].ne[d];
    return lb_type_row_bytes(tensors[i].type, tensors[i].ne[0]) * (size_t)rows;
}

static void fill_writer(struct gguf_writer *w, bool with_kvs) {
    lb_error err = {0};
    for (int i = 0; with_kvs && i < N_KVS; i++)
        if (gguf_writer_set(w, kvs[i].key, &kvs[i].v, &err)) fail_msg("%s", err.msg);
    for (int i = 0; i < N_TENSORS; i++) {
        for (size_t j = 0; j < sizeof tensor_data[i]; j++) tensor_data[i][j] = (uint8_t)(j * 31 + i * 7);
        assert_true(tensor_nbytes(i) <= sizeof tensor_data[i]);
        if (gguf_writer_add_tensor(w, tensors[i].name, tensors[i].type, tensors[i].n_dims, tensors[i].ne,
                                   tensor_data[i], tensor_nbytes(i), &err))
            fail_msg("%s", err.msg);
    }
}

static void write_full(const char *path) {
    lb_error err = {0};
    struct gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    fill_writer(w, true);
    if (gguf_writer_write(w, path, &err)) fail_msg("%s", err.msg);
    gguf_writer_free(w);
}

static void test_round_trip(void **state) {
    const char *path = tmp_path("full.gguf");
    write_full(path);
    lb_error err = {0};
    struct gguf_file *f;
    if (gguf_open(&f, path, &err)) fail_msg("%s", err.msg);
    assert_int_equal(f->version, 3);
    assert_int_equal(f->alignment, 64);
    assert_int_equal(f->data_offset % 64, 0);
    assert_int_equal(f->n_kv, N_KVS);
    for (int i = 0; i < N_KVS; i++) {
        const struct gguf_kv *kv = gguf_find(f, kvs[i].key);
        assert_non_null(kv);
        assert_ptr_equal(kv, &f->kv[i]); // order kept
        if (!value_equal(&kv->value, &kvs[i].v)) fail_msg("key '%s' differs after the round trip", kvs[i].key);
    }
    assert_null(gguf_find(f, "t.absent"));
    assert_int_equal(f->n_tensors, N_TENSORS);
    for (int i = 0; i < N_TENSORS; i++) {
        const struct gguf_tensor *t = gguf_find_tensor(f, tensors[i].name);
        assert_non_null(t);
        assert_string_equal(t->name, tensors[i].name);
        assert_int_equal(t->type, tensors[i].type);
        assert_int_equal(t->n_dims, tensors[i].n_dims);
        for (int d = 0; d < GGUF_MAX_DIMS; d++)
            assert_int_equal(t->ne[d], (uint32_t)d < tensors[i].n_dims ? tensors[i].ne[d] : 1);
        assert_int_equal(t->nbytes, tensor_nbytes(i));
        assert_int_equal(t->offset % 64, 0);
        assert_memory_equal(t->data, tensor_data[i], t->nbytes);
    }
    assert_null(gguf_find_tensor(f, "absent.weight"));

    // Copying the keys and adding the same tensors gives the same bytes.
    struct gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    if (gguf_writer_copy_kv(w, f, &err)) fail_msg("%s", err.msg);
    fill_writer(w, false);
    const char *copy = tmp_path("copy.gguf");
    if (gguf_writer_write(w, copy, &err)) fail_msg("%s", err.msg);
    gguf_writer_free(w);
    size_t n1, n2;
    void *b1 = read_all(path, &n1), *b2 = read_all(copy, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    assert_int_equal(n1, f->size);
    free(b1);
    free(b2);
    gguf_close(f);
}

// Every prefix of the file fails cleanly until the last tensor's data is
// whole (only the final padding may be missing).
static void test_truncated_prefixes(void **state) {
    const char *path = tmp_path("full.gguf");
    write_full(path);
    size_t size;
    uint8_t *bytes = read_all(path, &size);
    lb_error err = {0};
    struct gguf_file *f;
    if (gguf_parse(&f, "hand.gguf", bytes, size, &err)) fail_msg("%s", err.msg);
    uint64_t needed = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        uint64_t end = f->data_offset + f->tensors[i].offset + f->tensors[i].nbytes;
        if (end > needed) needed = end;
    }
    gguf_close(f);
    for (size_t n = 0; n <= size; n++) expect_parse(bytes, n, n < needed ? LB_ERR_FORMAT : LB_OK, NULL);
    free(bytes);
}

// ----------------------------------------------------------------------------
// Broken files

static void test_good_hand_file(void **state) {
    struct buf b = {0};
    b_good(&b, 3);
    expect_parse(b.p, b.n, LB_OK, NULL);
    b.n = 0;
    b_good(&b, 2);
    expect_parse(b.p, b.n, LB_OK, NULL);
    free(b.p);
}

static void test_bad_magic(void **state) {
    struct buf b = {0};
    b_good(&b, 3);
    memcpy(b.p, "GGML", 4);
    expect_parse(b.p, b.n, LB_ERR_FORMAT, NEEDLES("magic", "GGML"));
    free(b.p);
}

static void test_versions(void **state) {
    struct buf b = {0};
    b_good(&b, 1);
    expect_parse(b.p, b.n, LB_ERR_UNSUPPORTED, NEEDLES("version 1"));
    b.n = 0;
    b_good(&b, 4);
    expect_parse(b.p, b.n, LB_ERR_UNSUPPORTED, NEEDLES("version 4", "expected 2 or 3"));
    b.n = 0;
    b_good(&b, 3u << 24); // a big-endian v3 file read as little-endian
    expect_parse(b.p, b.n, LB_ERR_UNSUPPORTED, NEEDLES("big-endian"));
    free(b.p);
}

// One tensor whose info is given, after a header and no keys.
static void expect_tensor(uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t offset, size_t data,
                          lb_status status, const char *const *needles) {
    struct buf b = {0};
    b_header(&b, 3, 1, 0);
    b_tensor(&b, TENSOR, n_dims, ne, type, offset);
    b_pad(&b, 32, data);
    expect_parse(b.p, b.n, status, needles);
    free(b.p);
}

static void test_bad_tensors(void **state) {
    expect_tensor(1, (uint64_t[]){ 8 }, 41, 0, 32, LB_ERR_UNSUPPORTED, NEEDLES("tensor '" TENSOR "'", "type 41 unknown"));
    expect_tensor(1, (uint64_t[]){ 8 }, 4, 0, 32, LB_ERR_UNSUPPORTED, NEEDLES(TENSOR, "type 4 unknown")); // retired Q4_2
    expect_tensor(1, (uint64_t[]){ 8 }, LB_TYPE_F32, 4, 64, LB_ERR_FORMAT, NEEDLES(TENSOR, "offset 4", "alignment 32"));
    expect_tensor(2, (uint64_t[]){ 1ull << 40, 1ull << 40 }, LB_TYPE_F32, 0, 32, LB_ERR_FORMAT,
                  NEEDLES(TENSOR, "overflow"));
    expect_tensor(2, (uint64_t[]){ 1ull << 30, 1ull << 31 }, LB_TYPE_F32, 0, 32, LB_ERR_FORMAT,
                  NEEDLES(TENSOR, "runs past the end")); // 2^63 bytes fit uint64 but not the file
    expect_tensor(2, (uint64_t[]){ 1ull << 61, 2 }, LB_TYPE_F32, 0, 32, LB_ERR_FORMAT,
                  NEEDLES(TENSOR, "overflow")); // 2^62 elements, 2^64 bytes
    expect_tensor(1, (uint64_t[]){ 0 }, LB_TYPE_F32, 0, 32, LB_ERR_FORMAT, NEEDLES(TENSOR, "ne[0] = 0"));
    expect_tensor(5, (uint64_t[]){ 1, 1, 1, 1, 1 }, LB_TYPE_F32, 0, 32, LB_ERR_FORMAT, NEEDLES(TENSOR, "n_dims 5"));
    expect_tensor(1, (uint64_t[]){ 33 }, LB_TYPE_Q8_0, 0, 64, LB_ERR_FORMAT, NEEDLES(TENSOR, "ne[0] = 33", "32"));
    expect_tensor(1, (uint64_t[]){ 16 }, LB_TYPE_F32, 0, 32, LB_ERR_FORMAT, NEEDLES(TENSOR, "runs past the end"));
    expect_tensor(1, (uint64_t[]){ 8 }, LB_TYPE_F32, UINT64_MAX - 31, 32, LB_ERR_FORMAT,
                  NEEDLES(TENSOR, "runs past the end"));
}

static void test_duplicate_tensor(void **state) {
    struct buf b = {0};
    b_header(&b, 3, 2, 0);
    b_tensor(&b, TENSOR, 1, (uint64_t[]){ 8 }, LB_TYPE_F32, 0);
    b_tensor(&b, TENSOR, 1, (uint64_t[]){ 8 }, LB_TYPE_F32, 32);
    b_pad(&b, 32, 64);
    expect_parse(b.p, b.n, LB_ERR_FORMAT, NEEDLES("tensor '" TENSOR "'", "twice"));
    free(b.p);
}

// A file with one key whose type and payload the caller writes.
static struct buf key_file(const char *key, uint32_t type) {
    struct buf b = {0};
    b_header(&b, 3, 0, 1);
    b_str(&b, key);
    b_u32(&b, type);
    return b;
}

static void test_bad_keys(void **state) {
    // An array count far beyond the file must be refused before allocating.
    struct buf b = key_file("tokenizer.ggml.tokens", GGUF_ARRAY);
    b_u32(&b, GGUF_STRING);
    b_u64(&b, 1ull << 62);
    b_str(&b, "<unk>");
    expect_parse(b.p, b.n, LB_ERR_FORMAT, NEEDLES("key 'tokenizer.ggml.tokens'", "4611686018427387904"));
    free(b.p);

    b = key_file("tokenizer.ggml.scores", GGUF_ARRAY);
    b_u32(&b, GGUF_FLOAT32);
    b_u64(&b, 3); // 12 bytes promised, 8 given
    b_u64(&b, 0);
    expect_parse(b.p, b.n, LB_ERR_FORMAT, NEEDLES("key 'tokenizer.ggml.scores'"));
    free(b.p);

    b = key_file("general.name", GGUF_STRING);
    b_u64(&b, UINT64_MAX);
    expect_parse(b.p, b.n, LB_ERR_FORMAT, NEEDLES("key 'general.name'", "string length 18446744073709551615"));
    free(b.p);

    b = key_file("general.name", 13);
    expect_parse(b.p, b.n, LB_ERR_FORMAT, NEEDLES("key 'general.name'", "value type 13"));
    free(b.p);

    b = key_file("t.flag", GGUF_BOOL);
    b_put(&b, "\x02", 1);
    expect_parse(b.p, b.n, LB_ERR_FORMAT, NEEDLES("key 't.flag'", "bool 2"));
    free(b.p);

    b = key_file("general.alignment", GGUF_UINT32);
    b_u32(&b, 24);
    expect_parse(b.p, b.n, LB_ERR_FORMAT, NEEDLES("general.alignment", "24", "power of two"));
    free(b.p);

    b = key_file("general.alignment", GGUF_UINT64);
    b_u64(&b, 32);
    expect_parse(b.p, b.n, LB_ERR_FORMAT, NEEDLES("general.alignment", "uint64", "expected uint32"));
    free(b.p);

    // Arrays nested 100 deep: refused at the limit, not by running out of stack.
    b = key_file("t.deep", GGUF_ARRAY);
    for (int i = 0; i < 100; i++) {
        b_u32(&b, GGUF_ARRAY);
        b_u64(&b, 1);
    }
    b_u32(&b, GGUF_UINT8);
    b_u64(&b, 0);
    expect_parse(b.p, b.n, LB_ERR_FORMAT, NEEDLES("key 't.deep'", "nested"));
    free(b.p);

    // A key with control bytes is escaped, keeping the message on one line.
    b = key_file("bad\nkey", 13);
    expect_parse(b.p, b.n, LB_ERR_FORMAT, NEEDLES("bad\\x0akey"));
    free(b.p);

    // Counts in the header beyond what the file could hold.
    b = (struct buf){0};
    b_header(&b, 3, 0, UINT64_MAX);
    expect_parse(b.p, b.n, LB_ERR_FORMAT, NEEDLES("keys"));
    b.n = 0;
    b_header(&b, 3, 1ull << 60, 0);
    expect_parse(b.p, b.n, LB_ERR_FORMAT, NEEDLES("tensors"));
    free(b.p);
}

static void test_duplicate_key(void **state) {
    struct buf b = {0};
    b_header(&b, 3, 0, 2);
    for (int i = 0; i < 2; i++) {
        b_str(&b, "llama.block_count");
        b_u32(&b, GGUF_UINT32);
        b_u32(&b, 5);
    }
    expect_parse(b.p, b.n, LB_ERR_FORMAT, NEEDLES("key 'llama.block_count'", "twice"));
    free(b.p);
}

static void test_open_errors(void **state) {
    lb_error err = {0};
    struct gguf_file *f;
    assert_int_equal(gguf_open(&f, tmp_path("absent.gguf"), &err), LB_ERR_IO);
    assert_null(f);
    assert_non_null(strstr(err.msg, "absent.gguf"));
    assert_int_equal(gguf_open(&f, tmpdir, &err), LB_ERR_IO);
    FILE *fp = fopen(tmp_path("empty.gguf"), "wb");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(gguf_open(&f, tmp_path("empty.gguf"), &err), LB_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "empty.gguf"));
    assert_non_null(strstr(err.msg, "truncated"));
}

// ----------------------------------------------------------------------------
// Getters and formatting

static void test_getters(void **state) {
    const char *path = tmp_path("full.gguf");
    write_full(path);
    lb_error err = {0};
    struct gguf_file *f;
    if (gguf_open(&f, path, &err)) fail_msg("%s", err.msg);
    uint64_t u;
    int64_t i;
    double d;
    bool b;
    struct gguf_str s;
    const struct gguf_value *arr;

    assert_int_equal(gguf_get_u64(f, "t.uint8", &u, &err), LB_OK);
    assert_int_equal(u, 255);
    assert_int_equal(gguf_get_u64(f, "t.uint64", &u, &err), LB_OK);
    assert_true(u == UINT64_MAX);
    assert_int_equal(gguf_get_i64(f, "t.uint64", &i, &err), LB_ERR_FORMAT); // does not fit
    assert_int_equal(gguf_get_u64(f, "t.int8", &u, &err), LB_ERR_FORMAT);   // negative
    assert_non_null(strstr(err.msg, "t.int8"));
    assert_int_equal(gguf_get_i64(f, "t.int32", &i, &err), LB_OK);
    assert_int_equal(i, INT32_MIN);
    assert_int_equal(gguf_get_i64(f, "t.uint16", &i, &err), LB_OK);
    assert_int_equal(i, 65535);
    assert_int_equal(gguf_get_f64(f, "t.float32", &d, &err), LB_OK);
    assert_true((float)d == 1e-5f);
    assert_int_equal(gguf_get_f64(f, "t.uint8", &d, &err), LB_ERR_FORMAT);
    assert_int_equal(gguf_get_bool(f, "t.bool", &b, &err), LB_OK);
    assert_true(b);
    assert_int_equal(gguf_get_u64(f, "t.bool", &u, &err), LB_ERR_FORMAT);
    assert_int_equal(gguf_get_str(f, "general.architecture", &s, &err), LB_OK);
    assert_int_equal(s.len, 5);
    assert_memory_equal(s.data, "llama", 5);
    assert_int_equal(gguf_get_str(f, "t.uint8", &s, &err), LB_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "type uint8 (expected string)"));
    assert_int_equal(gguf_get_arr(f, "t.arr.string", GGUF_STRING, &arr, &err), LB_OK);
    assert_int_equal(arr->arr.n, 3);
    assert_int_equal(gguf_get_arr(f, "t.arr.string", GGUF_INT32, &arr, &err), LB_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "array of string"));

    assert_int_equal(gguf_get_u64(f, "llama.block_count", &u, &err), LB_ERR_MISSING);
    assert_non_null(strstr(err.msg, "full.gguf"));
    assert_non_null(strstr(err.msg, "'llama.block_count'"));
    assert_int_equal(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_STRING, &arr, &err), LB_ERR_MISSING);
    gguf_close(f);
}

static void expect_format(const struct gguf_value *v, const char *want) {
    char buf[256];
    gguf_value_format(v, buf, sizeof buf);
    assert_string_equal(buf, want);
    // Every smaller buffer gets a NUL-terminated prefix, never an overrun.
    for (size_t cap = 1; cap <= strlen(want) + 1; cap++) {
        char *small = malloc(cap);
        assert_non_null(small);
        gguf_value_format(v, small, cap);
        assert_true(strlen(small) < cap);
        free(small);
    }
}

static void test_format(void **state) {
    struct gguf_value v = U(GGUF_UINT32, 42);
    expect_format(&v, "42");
    v = (struct gguf_value)I(GGUF_INT8, -5);
    expect_format(&v, "-5");
    v = (struct gguf_value)F(GGUF_FLOAT32, 1e-5f);
    expect_format(&v, "1e-05");
    v = (struct gguf_value)F(GGUF_FLOAT64, 0.1);
    expect_format(&v, "0.1");
    v = (struct gguf_value)U(GGUF_BOOL, 0);
    expect_format(&v, "false");
    v = (struct gguf_value)S("say \"hi\"\n");
    expect_format(&v, "\"say \\\"hi\\\"\\n\"");
    v = (struct gguf_value)ARR(GGUF_STRING, a_str);
    expect_format(&v, "[string \xc3\x97 3] \"<unk>\", \"<s>\", \"\xe2\x96\x81the\"");
    v = (struct gguf_value)ARR(GGUF_ARRAY, a_nested);
    expect_format(&v, "[array \xc3\x97 2] ([int32 \xc3\x97 3] 1, 2, 3), ([string \xc3\x97 1] \"x\")");

    struct gguf_value many[20];
    for (int k = 0; k < 20; k++) many[k] = (struct gguf_value)U(GGUF_UINT8, (uint64_t)k);
    v = (struct gguf_value)ARR(GGUF_UINT8, many);
    expect_format(&v, "[uint8 \xc3\x97 20] 0, 1, 2, 3, 4, 5, 6, 7, ...");
    char small[16];
    gguf_value_format(&v, small, sizeof small);
    assert_string_equal(small, "[uint8 \xc3\x97 20...");
}

// ----------------------------------------------------------------------------
// Writer

static void test_writer_args(void **state) {
    lb_error err = {0};
    struct gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    float data[64] = {0};
    assert_int_equal(gguf_writer_add_tensor(w, "a", LB_TYPE_F32, 1, (int64_t[]){ 64 }, data, 100, &err), LB_ERR_ARG);
    assert_int_equal(gguf_writer_add_tensor(w, "a", LB_TYPE_Q8_0, 1, (int64_t[]){ 48 }, data, 51, &err), LB_ERR_ARG);
    assert_int_equal(gguf_writer_add_tensor(w, "a", (lb_type)41, 1, (int64_t[]){ 8 }, data, 32, &err), LB_ERR_ARG);
    assert_int_equal(gguf_writer_add_tensor(w, "a", LB_TYPE_F32, 0, (int64_t[]){ 8 }, data, 32, &err), LB_ERR_ARG);
    assert_int_equal(gguf_writer_add_tensor(w, "a", LB_TYPE_F32, 1, (int64_t[]){ 64 }, data, 256, &err), LB_OK);
    assert_int_equal(gguf_writer_add_tensor(w, "a", LB_TYPE_F32, 1, (int64_t[]){ 64 }, data, 256, &err), LB_ERR_ARG);
    assert_non_null(strstr(err.msg, "'a'"));

    assert_int_equal(gguf_writer_set_u32(w, "general.alignment", 48, &err), LB_ERR_ARG);
    struct gguf_value v = U(GGUF_UINT8, 300);
    assert_int_equal(gguf_writer_set(w, "t.u8", &v, &err), LB_ERR_ARG);
    assert_non_null(strstr(err.msg, "t.u8"));
    v = (struct gguf_value)I(GGUF_INT16, 40000);
    assert_int_equal(gguf_writer_set(w, "t.i16", &v, &err), LB_ERR_ARG);
    struct gguf_value mixed[] = { U(GGUF_UINT8, 1), I(GGUF_INT32, 2) };
    v = (struct gguf_value)ARR(GGUF_UINT8, mixed);
    assert_int_equal(gguf_writer_set(w, "t.mixed", &v, &err), LB_ERR_ARG);
    assert_non_null(strstr(err.msg, "item 1"));

    // Setting a key twice replaces the value in place.
    assert_int_equal(gguf_writer_set_str(w, "general.name", "first", &err), LB_OK);
    assert_int_equal(gguf_writer_set_f32(w, "t.eps", 1e-6f, &err), LB_OK);
    assert_int_equal(gguf_writer_set_str(w, "general.name", "second", &err), LB_OK);
    const char *path = tmp_path("args.gguf");
    assert_int_equal(gguf_writer_write(w, path, &err), LB_OK);
    gguf_writer_free(w);
    struct gguf_file *f;
    if (gguf_open(&f, path, &err)) fail_msg("%s", err.msg);
    assert_int_equal(f->n_kv, 2);
    assert_int_equal(f->n_tensors, 1);
    struct gguf_str s;
    assert_int_equal(gguf_get_str(f, "general.name", &s, &err), LB_OK);
    assert_int_equal(s.len, 6);
    assert_memory_equal(s.data, "second", 6);
    gguf_close(f);
    gguf_writer_free(NULL);
    gguf_close(NULL);
}

static int count_temp_files(void) {
    DIR *dir = opendir(tmpdir);
    assert_non_null(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(dir));) n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(dir);
    return n;
}

static void test_writer_atomic(void **state) {
    lb_error err = {0};
    struct gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    assert_int_equal(gguf_writer_set_str(w, "general.name", "atomic", &err), LB_OK);
    assert_int_equal(gguf_writer_write(w, tmp_path("no/such/dir/x.gguf"), &err), LB_ERR_IO);
    assert_non_null(strstr(err.msg, "x.gguf"));
    // Overwriting replaces the file whole and leaves no temporary behind.
    const char *path = tmp_path("atomic.gguf");
    assert_int_equal(gguf_writer_write(w, path, &err), LB_OK);
    assert_int_equal(gguf_writer_write(w, path, &err), LB_OK);
    assert_int_equal(count_temp_files(), 0);
    // A directory where the file should go: rename fails, the temp is removed.
    mkdir(tmp_path("isdir.gguf"), 0755);
    mkdir(tmp_path("isdir.gguf/sub"), 0755);
    assert_int_equal(gguf_writer_write(w, tmp_path("isdir.gguf"), &err), LB_ERR_IO);
    assert_non_null(strstr(err.msg, "rename"));
    assert_int_equal(count_temp_files(), 0);
    rmdir(tmp_path("isdir.gguf/sub"));
    rmdir(tmp_path("isdir.gguf"));
    gguf_writer_free(w);
}

// ----------------------------------------------------------------------------
// A real model

static void test_stories260k(void **state) {
    const char *dir = getenv("SHARED_MODELS");
    char path[512];
    snprintf(path, sizeof path, "%s/stories260K.gguf", dir ? dir : "../shared/models");
    if (access(path, R_OK) != 0) {
        print_message("skipping: %s not found (set SHARED_MODELS)\n", path);
        skip();
    }
    lb_error err = {0};
    struct gguf_file *f;
    if (gguf_open(&f, path, &err)) fail_msg("%s", err.msg);
    assert_int_equal(f->version, 3);
    assert_int_equal(f->n_kv, 19);
    assert_int_equal(f->n_tensors, 48);
    assert_int_equal(f->alignment, 32);
    assert_int_equal(f->data_offset, 14176);
    struct gguf_str arch;
    assert_int_equal(gguf_get_str(f, "general.architecture", &arch, &err), LB_OK);
    assert_int_equal(arch.len, 5);
    assert_memory_equal(arch.data, "llama", 5);
    const struct gguf_value *tokens;
    assert_int_equal(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_STRING, &tokens, &err), LB_OK);
    assert_int_equal(tokens->arr.n, 512);
    char buf[64];
    gguf_value_format(tokens, buf, sizeof buf);
    assert_true(strncmp(buf, "[string \xc3\x97 512] \"<unk>\", \"<s>\"", 29) == 0);
    const struct gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
    assert_non_null(t);
    assert_int_equal(t->type, LB_TYPE_F32);
    assert_int_equal(t->ne[0], 64);
    assert_int_equal(t->ne[1], 512);
    gguf_close(f);
}

// ----------------------------------------------------------------------------

static int setup(void **state) {
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/test_gguf.XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    DIR *dir = opendir(tmpdir);
    if (dir) {
        for (struct dirent *e; (e = readdir(dir));)
            if (e->d_name[0] != '.') unlink(tmp_path(e->d_name));
        closedir(dir);
    }
    rmdir(tmpdir);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_truncated_prefixes),
        cmocka_unit_test(test_good_hand_file),
        cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_bad_tensors),
        cmocka_unit_test(test_duplicate_tensor),
        cmocka_unit_test(test_bad_keys),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_getters),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_writer_args),
        cmocka_unit_test(test_writer_atomic),
        cmocka_unit_test(test_stories260k),
    };
    int n = (int)(sizeof tests / sizeof tests[0]);
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    printf("%d passed, %d failed\n", n - failed, failed);
    return failed ? 1 : 0;
}
