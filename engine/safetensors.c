/*
 * safetensors.c — the safetensors reader described in safetensors.h.
 *
 * Nothing in the file is trusted: the header length is checked against the
 * file and the crate's 100 MB limit, the header must be strict JSON (json.c)
 * holding one object, each entry must have exactly the three fields with the
 * right types, shapes and offsets are computed with overflow checks, and the
 * tensors must tile the data region as the crate requires. Every refusal is
 * one line naming the file, the tensor and the field.
 */
#include "safetensors.h"

#include "internal.h"
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

// One row per dtype: the name in the header and the element size in bytes.
static const struct {
    const char *name;
    uint8_t size;
    int lb_type; // -1: not a type the engine computes with
} dtypes[ST_DTYPE_COUNT] = {
    [ST_BOOL] = {"BOOL", 1, -1},      [ST_U8] = {"U8", 1, -1},     [ST_I8] = {"I8", 1, -1},
    [ST_F8_E5M2] = {"F8_E5M2", 1, -1}, [ST_F8_E4M3] = {"F8_E4M3", 1, -1},
    [ST_I16] = {"I16", 2, -1},        [ST_U16] = {"U16", 2, -1},
    [ST_F16] = {"F16", 2, LB_TYPE_F16}, [ST_BF16] = {"BF16", 2, LB_TYPE_BF16},
    [ST_I32] = {"I32", 4, -1},        [ST_U32] = {"U32", 4, -1},   [ST_F32] = {"F32", 4, LB_TYPE_F32},
    [ST_F64] = {"F64", 8, -1},        [ST_I64] = {"I64", 8, -1},   [ST_U64] = {"U64", 8, -1},
};

const char *st_dtype_name(enum st_dtype t) { return (unsigned)t < ST_DTYPE_COUNT ? dtypes[t].name : "?"; }
int st_dtype_lb_type(enum st_dtype t) { return (unsigned)t < ST_DTYPE_COUNT ? dtypes[t].lb_type : -1; }

void st_close(struct st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    if (f->map) munmap(f->map, f->map_size);
    free(f->path);
    free(f);
}

const struct st_tensor *st_find(const struct st_file *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

// A tensor name cut to fit a message on one line.
#define NAME_FMT "'%.*s'"
#define NAME_ARG(m) (int)((m)->key_len > 96 ? 96 : (m)->key_len), (m)->key

// A non-negative integer that fits in int64.
static bool get_count(const struct json_value *v, int64_t *out) {
    if (!v || v->type != JSON_NUMBER || !v->is_int || v->num.i < 0) return false;
    *out = v->num.i;
    return true;
}

static lb_status read_tensor(const char *name, const struct json_member *m, struct st_tensor *t, lb_error *err) {
    const struct json_value *e = &m->value;
    if (e->type != JSON_OBJECT)
        return lb_fail(err, LB_ERR_FORMAT, "%s: tensor " NAME_FMT ": entry is a %s (expected an object)", name,
                       NAME_ARG(m), json_type_name(e->type));
    if (memchr(m->key, 0, m->key_len))
        return lb_fail(err, LB_ERR_FORMAT, "%s: tensor name at byte %zu holds a NUL character", name, e->offset);
    for (size_t i = 0; i < e->obj.n; i++) {
        const char *k = e->obj.items[i].key;
        if (strcmp(k, "dtype") && strcmp(k, "shape") && strcmp(k, "data_offsets"))
            return lb_fail(err, LB_ERR_FORMAT,
                           "%s: tensor " NAME_FMT ": field '%.32s' unknown (expected dtype, shape, data_offsets)", name,
                           NAME_ARG(m), k);
    }
    const struct json_value *dtype = json_get(e, "dtype"), *shape = json_get(e, "shape"),
                            *offs = json_get(e, "data_offsets");
    if (!dtype || dtype->type != JSON_STRING)
        return lb_fail(err, LB_ERR_FORMAT, "%s: tensor " NAME_FMT ": dtype %s (expected a string such as \"F32\")",
                       name, NAME_ARG(m), dtype ? json_type_name(dtype->type) : "missing");
    int d = 0;
    while (d < ST_DTYPE_COUNT && strcmp(dtype->str.s, dtypes[d].name)) d++;
    if (d == ST_DTYPE_COUNT)
        return lb_fail(err, LB_ERR_UNSUPPORTED,
                       "%s: tensor " NAME_FMT ": dtype \"%.16s\" unknown (expected F32, F16, BF16, F64, I64, I32, I16, "
                       "I8, U64, U32, U16, U8, BOOL, F8_E4M3 or F8_E5M2)",
                       name, NAME_ARG(m), dtype->str.s);
    if (!shape || shape->type != JSON_ARRAY || shape->arr.n > ST_MAX_DIMS)
        return lb_fail(err, LB_ERR_FORMAT, "%s: tensor " NAME_FMT ": shape %s (expected an array of at most %d sizes)",
                       name, NAME_ARG(m), shape ? json_type_name(shape->type) : "missing", ST_MAX_DIMS);
    t->dtype = (enum st_dtype)d;
    t->n_dims = (int)shape->arr.n;
    uint64_t n = 1;
    for (int i = 0; i < t->n_dims; i++) {
        int64_t v;
        if (!get_count(&shape->arr.items[i], &v))
            return lb_fail(err, LB_ERR_FORMAT, "%s: tensor " NAME_FMT ": shape[%d] is not a non-negative integer", name,
                           NAME_ARG(m), i);
        t->shape[i] = v;
        if (!lb_mul_ok(n, (uint64_t)v, &n) || n > INT64_MAX)
            return lb_fail(err, LB_ERR_FORMAT, "%s: tensor " NAME_FMT ": element count overflows", name, NAME_ARG(m));
    }
    t->n_elements = (int64_t)n;
    int64_t begin, end;
    if (!offs || offs->type != JSON_ARRAY || offs->arr.n != 2 || !get_count(&offs->arr.items[0], &begin) ||
        !get_count(&offs->arr.items[1], &end) || end < begin)
        return lb_fail(err, LB_ERR_FORMAT,
                       "%s: tensor " NAME_FMT ": data_offsets is not [begin, end] with 0 <= begin <= end", name,
                       NAME_ARG(m));
    uint64_t want;
    if (!lb_mul_ok(n, dtypes[d].size, &want) || want != (uint64_t)(end - begin))
        return lb_fail(err, LB_ERR_FORMAT,
                       "%s: tensor " NAME_FMT ": data_offsets [%lld, %lld] hold %lld bytes (expected %llu for %s of "
                       "%llu elements)",
                       name, NAME_ARG(m), (long long)begin, (long long)end, (long long)(end - begin),
                       (unsigned long long)want, dtypes[d].name, (unsigned long long)n);
    t->begin = (uint64_t)begin;
    t->nbytes = (size_t)want;
    if (!(t->name = malloc(m->key_len + 1)))
        return lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", name);
    memcpy(t->name, m->key, m->key_len + 1);
    return LB_OK;
}

static lb_status read_metadata(const char *name, const struct json_value *v, struct st_file *f, lb_error *err) {
    if (v->type != JSON_OBJECT)
        return lb_fail(err, LB_ERR_FORMAT, "%s: __metadata__ is a %s (expected an object of strings)", name,
                       json_type_name(v->type));
    f->meta_keys = calloc(v->obj.n + 1, sizeof *f->meta_keys);
    f->meta_values = calloc(v->obj.n + 1, sizeof *f->meta_values);
    if (!f->meta_keys || !f->meta_values) return lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", name);
    for (size_t i = 0; i < v->obj.n; i++) {
        const struct json_member *m = &v->obj.items[i];
        if (m->value.type != JSON_STRING)
            return lb_fail(err, LB_ERR_FORMAT, "%s: __metadata__: " NAME_FMT " is a %s (expected a string)", name,
                           NAME_ARG(m), json_type_name(m->value.type));
        f->meta_keys[i] = strdup(m->key);
        f->meta_values[i] = strdup(m->value.str.s);
        f->n_meta = (int)i + 1;
        if (!f->meta_keys[i] || !f->meta_values[i]) return lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", name);
    }
    return LB_OK;
}

static int cmp_begin(const void *a, const void *b) {
    const struct st_tensor *x = *(struct st_tensor *const *)a, *y = *(struct st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes; // empty tensors first at one offset
}

// The tensors, sorted by offset, must tile [0, data_size) exactly (the crate's
// "metadata incomplete buffer" / "invalid offset" checks).
static lb_status check_tiling(const char *name, struct st_file *f, lb_error *err) {
    struct st_tensor **order = malloc((size_t)(f->n_tensors ? f->n_tensors : 1) * sizeof *order);
    if (!order) return lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", name);
    for (int i = 0; i < f->n_tensors; i++) order[i] = &f->tensors[i];
    qsort(order, (size_t)f->n_tensors, sizeof *order, cmp_begin);
    uint64_t at = 0;
    lb_status st = LB_OK;
    for (int i = 0; i < f->n_tensors && !st; i++) {
        const struct st_tensor *t = order[i];
        if (t->begin != at)
            st = lb_fail(err, LB_ERR_FORMAT,
                         "%s: tensor '%.96s': data begins at %llu (expected %llu: tensors must follow each other "
                         "without gaps or overlap)",
                         name, t->name, (unsigned long long)t->begin, (unsigned long long)at);
        at = t->begin + t->nbytes;
    }
    if (!st && at != f->data_size)
        st = lb_fail(err, LB_ERR_FORMAT, "%s: tensors hold %llu bytes of data but the file has %zu after the header%s",
                     name, (unsigned long long)at, f->data_size, at > f->data_size ? " (truncated?)" : "");
    free(order);
    return st;
}

lb_status st_parse(struct st_file **out, const char *name, const void *buf, size_t size, lb_error *err) {
    *out = NULL;
    if (!name) name = "(safetensors)";
    if (size < 8)
        return lb_fail(err, LB_ERR_FORMAT, "%s: %zu bytes is too short for the 8-byte header length", name, size);
    const uint8_t *b = buf;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | b[i];
    if (n > ST_MAX_HEADER)
        return lb_fail(err, LB_ERR_FORMAT, "%s: header length %llu exceeds %u bytes (not a safetensors file?)", name,
                       (unsigned long long)n, ST_MAX_HEADER);
    if (n > size - 8)
        return lb_fail(err, LB_ERR_FORMAT, "%s: header length %llu but the file has %zu bytes after it (truncated?)",
                       name, (unsigned long long)n, size - 8);
    if (n < 2 || b[8] != '{')
        return lb_fail(err, LB_ERR_FORMAT, "%s: header does not start with '{' (not a safetensors file?)", name);

    // json.c counts bytes from the header's first one: say so in the name.
    char hname[300];
    snprintf(hname, sizeof hname, "%s: JSON header", name);
    struct json_doc *doc = NULL;
    struct st_file *f = calloc(1, sizeof *f);
    lb_status st = f ? json_parse(&doc, hname, (const char *)b + 8, (size_t)n, err)
                     : lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", name);
    if (st) goto fail;
    const struct json_value *root = &doc->root;
    if (root->type != JSON_OBJECT) {
        st = lb_fail(err, LB_ERR_FORMAT, "%s: header is a JSON %s (expected an object)", name, json_type_name(root->type));
        goto fail;
    }
    f->data = b + 8 + n;
    f->data_size = size - 8 - (size_t)n;
    f->tensors = calloc(root->obj.n + 1, sizeof *f->tensors);
    if (!f->tensors) {
        st = lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", name);
        goto fail;
    }
    for (size_t i = 0; i < root->obj.n; i++) {
        const struct json_member *m = &root->obj.items[i];
        if (!strcmp(m->key, "__metadata__") && m->key_len == 12) {
            if ((st = read_metadata(name, &m->value, f, err))) goto fail;
            continue;
        }
        struct st_tensor *t = &f->tensors[f->n_tensors];
        if ((st = read_tensor(name, m, t, err))) goto fail;
        f->n_tensors++;
        // The data must be aligned to its elements for the engine to read it
        // in place; the writers pad the header to 8 bytes so that it is.
        uint64_t file_off = 8 + n + t->begin;
        if (file_off % dtypes[t->dtype].size) {
            st = lb_fail(err, LB_ERR_UNSUPPORTED,
                         "%s: tensor '%.96s': data at file byte %llu is not aligned to its %u-byte elements", name,
                         t->name, (unsigned long long)file_off, dtypes[t->dtype].size);
            goto fail;
        }
        if (t->begin <= f->data_size && t->nbytes <= f->data_size - t->begin) t->data = f->data + t->begin;
    }
    if ((st = check_tiling(name, f, err))) goto fail;
    json_free(doc);
    *out = f;
    return LB_OK;
fail:
    json_free(doc);
    st_close(f);
    return st;
}

lb_status st_open(struct st_file **out, const char *path, const char *name, lb_error *err) {
    *out = NULL;
    if (!name) name = path;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return lb_fail(err, LB_ERR_IO, "%s: cannot open: %s", name, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return lb_fail(err, LB_ERR_IO, "%s: cannot stat: %s", name, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return lb_fail(err, LB_ERR_IO, "%s: not a regular file", name);
    }
    size_t size = (size_t)sb.st_size;
    void *map = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return lb_fail(err, LB_ERR_IO, "%s: mmap failed: %s", name, strerror(e));
    struct st_file *f;
    lb_status st = st_parse(&f, name, map ? map : "", size, err);
    if (st) {
        if (map) munmap(map, size);
        return st;
    }
    f->map = map;
    f->map_size = size;
    if (!(f->path = strdup(path))) {
        st_close(f);
        return lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", name);
    }
    *out = f;
    return LB_OK;
}
