/*
 * gguf.c — GGUF v2/v3 reader (over mmap or a caller's buffer) and v3 writer.
 * The layout is described in gguf.h.
 *
 * The reader trusts nothing in the file: every count is compared with the
 * bytes left before anything is allocated for it (an item takes at least its
 * smallest encoding, so a hostile count is rejected instead of becoming a huge
 * malloc), every size and offset is computed with overflow checks, nested
 * arrays are limited in depth, and every failure is one line naming the file,
 * the key or tensor, what was found and what was expected.
 *
 * Sections: helpers, reader, getters, formatting, writer.
 */
#include "gguf.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_ALIGNMENT_KEY "general.alignment"
// lb_fail with the status as a constant the compiler can see, so that it
// knows `if (st) return st;` left nothing unset on the way to success.
#define FAIL(err, status, ...) (lb_fail((err), (status), __VA_ARGS__), (status))
// Arrays of arrays deeper than this are rejected; real files nest at most once.
#define GGUF_MAX_DEPTH 8

// ----------------------------------------------------------------------------
// Helpers

static const char *const vtype_names[GGUF_VTYPE_COUNT] = {
    [GGUF_UINT8] = "uint8",     [GGUF_INT8] = "int8",       [GGUF_UINT16] = "uint16",
    [GGUF_INT16] = "int16",     [GGUF_UINT32] = "uint32",   [GGUF_INT32] = "int32",
    [GGUF_FLOAT32] = "float32", [GGUF_BOOL] = "bool",       [GGUF_STRING] = "string",
    [GGUF_ARRAY] = "array",     [GGUF_UINT64] = "uint64",   [GGUF_INT64] = "int64",
    [GGUF_FLOAT64] = "float64",
};

// The fewest bytes one value of each type takes in a file: a string is at
// least its u64 length, an array at least its item type and count.
static const uint8_t vtype_min_bytes[GGUF_VTYPE_COUNT] = {
    [GGUF_UINT8] = 1,   [GGUF_INT8] = 1,    [GGUF_UINT16] = 2,  [GGUF_INT16] = 2,
    [GGUF_UINT32] = 4,  [GGUF_INT32] = 4,   [GGUF_FLOAT32] = 4, [GGUF_BOOL] = 1,
    [GGUF_STRING] = 8,  [GGUF_ARRAY] = 12,  [GGUF_UINT64] = 8,  [GGUF_INT64] = 8,
    [GGUF_FLOAT64] = 8,
};

const char *gguf_vtype_name(enum gguf_vtype t) {
    return (unsigned)t < GGUF_VTYPE_COUNT ? vtype_names[t] : "unknown";
}

static bool vtype_is_unsigned(enum gguf_vtype t) {
    return t == GGUF_UINT8 || t == GGUF_UINT16 || t == GGUF_UINT32 || t == GGUF_UINT64;
}
static bool vtype_is_signed(enum gguf_vtype t) {
    return t == GGUF_INT8 || t == GGUF_INT16 || t == GGUF_INT32 || t == GGUF_INT64;
}

// Copy a name from a file into `dst` so that it prints on one line: control
// bytes, quotes, backslashes and non-ASCII bytes become \xNN, and a long name
// is cut with "...". A hostile key must not break the one-line message.
static const char *printable(char *dst, size_t cap, const char *s, uint64_t len) {
    size_t o = 0;
    for (uint64_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool plain = c >= 0x20 && c < 0x7f && c != '\'' && c != '\\';
        size_t w = plain ? 1 : 4;
        if (o + w + 4 > cap) {
            if (o + 4 <= cap) memcpy(dst + o, "...", 3), o += 3;
            break;
        }
        if (plain) dst[o++] = (char)c;
        else o += (size_t)snprintf(dst + o, cap - o, "\\x%02x", c);
    }
    dst[o] = '\0';
    return dst;
}

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

static bool is_pow2(uint64_t x) { return x && !(x & (x - 1)); }

static bool str_eq(const struct gguf_str *s, const char *key, size_t key_len) {
    return s->len == key_len && memcmp(s->data, key, key_len) == 0;
}

// A set of names for duplicate detection: open addressing, FNV-1a hash.
// Slots hold (data, len); data == NULL marks an empty slot.
struct name_set {
    struct gguf_str *slots;
    size_t cap; // a power of two, at least twice the number of names
};

static uint64_t fnv1a(const void *p, uint64_t n) {
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint64_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static bool name_set_init(struct name_set *s, uint64_t n) {
    s->cap = 16;
    while (s->cap < 2 * n) s->cap *= 2;
    s->slots = calloc(s->cap, sizeof *s->slots);
    return s->slots != NULL;
}

// Adds the name; false when it was already there.
static bool name_set_add(struct name_set *s, const char *data, uint64_t len) {
    size_t i = (size_t)fnv1a(data, len) & (s->cap - 1);
    while (s->slots[i].data) {
        if (str_eq(&s->slots[i], data, len)) return false;
        i = (i + 1) & (s->cap - 1);
    }
    s->slots[i] = (struct gguf_str){ .len = len, .data = data };
    return true;
}

static void value_free(struct gguf_value *v) {
    if (v->type == GGUF_ARRAY) {
        for (uint64_t i = 0; i < v->arr.n; i++) value_free(&v->arr.items[i]);
        free(v->arr.items);
    }
}

// ----------------------------------------------------------------------------
// Reader

// A gguf_file and what only the reader needs to release it.
struct gguf_owned {
    struct gguf_file f;   // first member: gguf_close casts back
    void *mapping;        // from mmap, or NULL when the caller owns the buffer
    size_t mapping_size;
    void (*release)(void *owner); // gguf_new_virtual: frees what the maker owns
    void *owner;
};

// A cursor over the file with what is being read, for messages.
struct reader {
    const uint8_t *buf;
    size_t size, pos;
    const char *name;     // file name in messages
    lb_error *err;
    char what[128];       // "key 'general.name'", "tensor #3 name", ...
};

static lb_status truncated(struct reader *r, uint64_t need) {
    return FAIL(r->err, LB_ERR_FORMAT,
                   "%s: truncated at byte %" PRIu64 " while reading %s (file has %zu bytes)",
                   r->name, (uint64_t)r->pos + need, r->what, r->size);
}

static lb_status take(struct reader *r, size_t n, const uint8_t **p) {
    if (n > r->size - r->pos) return truncated(r, n);
    *p = r->buf + r->pos;
    r->pos += n;
    return LB_OK;
}

// Reads a little-endian unsigned integer of n bytes (1, 2, 4 or 8).
static lb_status read_uint(struct reader *r, size_t n, uint64_t *out) {
    const uint8_t *p = NULL;
    lb_status st = take(r, n, &p);
    if (st) return st;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    *out = v;
    return LB_OK;
}

static lb_status read_u32(struct reader *r, uint32_t *out) {
    uint64_t v = 0;
    lb_status st = read_uint(r, 4, &v);
    *out = (uint32_t)v;
    return st;
}

static lb_status read_str(struct reader *r, struct gguf_str *s) {
    uint64_t len;
    lb_status st = read_uint(r, 8, &len);
    if (st) return st;
    if (len > r->size - r->pos)
        return FAIL(r->err, LB_ERR_FORMAT,
                       "%s: %s: string length %" PRIu64 " at byte %zu runs past the end "
                       "(expected at most %zu, the bytes left in a file of %zu)",
                       r->name, r->what, len, r->pos - 8, r->size - r->pos, r->size);
    s->len = len;
    s->data = (const char *)r->buf + r->pos;
    r->pos += len;
    return LB_OK;
}

static lb_status read_vtype(struct reader *r, enum gguf_vtype *t) {
    uint32_t raw;
    lb_status st = read_u32(r, &raw);
    if (st) return st;
    if (raw >= GGUF_VTYPE_COUNT)
        return FAIL(r->err, LB_ERR_FORMAT, "%s: %s: value type %" PRIu32 " at byte %zu unknown (expected 0..%d)",
                       r->name, r->what, raw, r->pos - 4, GGUF_VTYPE_COUNT - 1);
    *t = (enum gguf_vtype)raw;
    return LB_OK;
}

static lb_status read_value(struct reader *r, enum gguf_vtype type, struct gguf_value *v, int depth);

// The array is filled in place so that gguf_close frees a partly read one:
// arr.n counts the items read so far.
static lb_status read_array(struct reader *r, struct gguf_value *v, int depth) {
    if (depth >= GGUF_MAX_DEPTH)
        return FAIL(r->err, LB_ERR_FORMAT, "%s: %s: arrays nested %d deep at byte %zu (expected at most %d)",
                       r->name, r->what, depth + 1, r->pos, GGUF_MAX_DEPTH);
    enum gguf_vtype item;
    uint64_t n;
    lb_status st = read_vtype(r, &item);
    if (!st) st = read_uint(r, 8, &n);
    if (st) return st;
    uint64_t left = r->size - r->pos;
    if (n > left / vtype_min_bytes[item])
        return FAIL(r->err, LB_ERR_FORMAT,
                       "%s: %s: array of %" PRIu64 " %s items at byte %zu needs at least %" PRIu64
                       " bytes per item (expected at most %" PRIu64 " items in the %" PRIu64 " bytes left)",
                       r->name, r->what, n, vtype_names[item], r->pos - 12, (uint64_t)vtype_min_bytes[item],
                       left / vtype_min_bytes[item], left);
    struct gguf_value *items = NULL;
    if (n > 0 && !(items = calloc(n, sizeof *items)))
        return FAIL(r->err, LB_ERR_NOMEM, "%s: %s: out of memory for %" PRIu64 " array items",
                       r->name, r->what, n);
    v->type = GGUF_ARRAY;
    v->arr.type = item;
    v->arr.items = items;
    v->arr.n = 0;
    for (uint64_t i = 0; i < n; i++) {
        v->arr.n = i + 1;
        st = read_value(r, item, &items[i], depth + 1);
        if (st) return st;
    }
    return LB_OK;
}

static lb_status read_value(struct reader *r, enum gguf_vtype type, struct gguf_value *v, int depth) {
    uint64_t u;
    lb_status st = LB_OK;
    v->type = type;
    switch (type) {
    case GGUF_UINT8: case GGUF_UINT16: case GGUF_UINT32: case GGUF_UINT64:
        st = read_uint(r, vtype_min_bytes[type], &v->u64);
        break;
    case GGUF_INT8:
        if (!(st = read_uint(r, 1, &u))) v->i64 = (int8_t)u;
        break;
    case GGUF_INT16:
        if (!(st = read_uint(r, 2, &u))) v->i64 = (int16_t)u;
        break;
    case GGUF_INT32:
        if (!(st = read_uint(r, 4, &u))) v->i64 = (int32_t)u;
        break;
    case GGUF_INT64:
        if (!(st = read_uint(r, 8, &u))) v->i64 = (int64_t)u;
        break;
    case GGUF_FLOAT32:
        if (!(st = read_uint(r, 4, &u))) {
            uint32_t bits = (uint32_t)u;
            float f;
            memcpy(&f, &bits, 4);
            v->f64 = f;
        }
        break;
    case GGUF_FLOAT64:
        if (!(st = read_uint(r, 8, &u))) memcpy(&v->f64, &u, 8);
        break;
    case GGUF_BOOL:
        if ((st = read_uint(r, 1, &u))) break;
        if (u > 1)
            return FAIL(r->err, LB_ERR_FORMAT, "%s: %s: bool %" PRIu64 " at byte %zu (expected 0 or 1)",
                           r->name, r->what, u, r->pos - 1);
        v->u64 = u;
        break;
    case GGUF_STRING:
        st = read_str(r, &v->str);
        break;
    case GGUF_ARRAY:
        v->type = GGUF_UINT8; // becomes ARRAY once its items are allocated
        st = read_array(r, v, depth);
        break;
    case GGUF_VTYPE_COUNT:
        break; // read_vtype never returns it
    }
    return st;
}

// Magic, version and counts; allocates the kv and tensor arrays for the counts.
static lb_status read_header(struct reader *r, struct gguf_file *f, uint64_t *n_kv_out, uint64_t *n_tensors_out) {
    const uint8_t *magic = NULL;
    snprintf(r->what, sizeof r->what, "the header");
    lb_status st = take(r, 4, &magic);
    if (st) return st;
    if (memcmp(magic, "GGUF", 4) != 0) {
        char shown[24];
        return FAIL(r->err, LB_ERR_FORMAT, "%s: magic '%s' (expected 'GGUF'; not a GGUF file)",
                       r->name, printable(shown, sizeof shown, (const char *)magic, 4));
    }
    if ((st = read_u32(r, &f->version))) return st;
    if (f->version == 1)
        return FAIL(r->err, LB_ERR_UNSUPPORTED,
                       "%s: GGUF version 1 is no longer supported (expected 2 or 3; convert it with a current llama.cpp)",
                       r->name);
    if (f->version != 2 && f->version != 3)
        return FAIL(r->err, LB_ERR_UNSUPPORTED, "%s: GGUF version %" PRIu32 " unsupported (expected 2 or 3%s)",
                       r->name, f->version,
                       (f->version & 0xffff) == 0 ? "; a big-endian file?" : "");
    uint64_t n_tensors, n_kv;
    if ((st = read_uint(r, 8, &n_tensors)) || (st = read_uint(r, 8, &n_kv))) return st;
    // Each key takes at least 13 bytes (length, type, one byte of value) and
    // each tensor info 32 (length, n_dims, one dim, type, offset).
    uint64_t left = r->size - r->pos;
    if (n_kv > left / 13)
        return FAIL(r->err, LB_ERR_FORMAT,
                       "%s: header: %" PRIu64 " keys (expected at most %" PRIu64 " in the %" PRIu64 " bytes left)",
                       r->name, n_kv, left / 13, left);
    if (n_tensors > left / 32)
        return FAIL(r->err, LB_ERR_FORMAT,
                       "%s: header: %" PRIu64 " tensors (expected at most %" PRIu64 " in the %" PRIu64 " bytes left)",
                       r->name, n_tensors, left / 32, left);
    if ((n_kv && !(f->kv = calloc(n_kv, sizeof *f->kv))) ||
        (n_tensors && !(f->tensors = calloc(n_tensors, sizeof *f->tensors))))
        return FAIL(r->err, LB_ERR_NOMEM, "%s: out of memory for %" PRIu64 " keys and %" PRIu64 " tensors",
                       r->name, n_kv, n_tensors);
    *n_kv_out = n_kv;
    *n_tensors_out = n_tensors;
    return LB_OK;
}

static lb_status read_kvs(struct reader *r, struct gguf_file *f, uint64_t n_kv) {
    struct name_set seen;
    if (!name_set_init(&seen, n_kv))
        return FAIL(r->err, LB_ERR_NOMEM, "%s: out of memory for %" PRIu64 " keys", r->name, n_kv);
    lb_status st = LB_OK;
    for (uint64_t i = 0; i < n_kv && !st; i++) {
        struct gguf_kv *kv = &f->kv[i];
        char key[80];
        snprintf(r->what, sizeof r->what, "key #%" PRIu64, i);
        size_t at = r->pos;
        if ((st = read_str(r, &kv->key))) break;
        printable(key, sizeof key, kv->key.data, kv->key.len);
        snprintf(r->what, sizeof r->what, "key '%s'", key);
        if (!name_set_add(&seen, kv->key.data, kv->key.len)) {
            st = FAIL(r->err, LB_ERR_FORMAT, "%s: key '%s' at byte %zu appears twice (expected unique keys)",
                         r->name, key, at);
            break;
        }
        enum gguf_vtype type;
        if ((st = read_vtype(r, &type))) break;
        f->n_kv = i + 1; // from here gguf_close frees the value
        st = read_value(r, type, &kv->value, 0);
    }
    free(seen.slots);
    return st;
}

// general.alignment, when present, must be a uint32 power of two (as in
// llama.cpp and the gguf package, which reject any other type).
static lb_status read_alignment(struct reader *r, struct gguf_file *f) {
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const struct gguf_kv *kv = gguf_find(f, GGUF_ALIGNMENT_KEY);
    if (!kv) return LB_OK;
    if (kv->value.type != GGUF_UINT32)
        return FAIL(r->err, LB_ERR_FORMAT, "%s: key '" GGUF_ALIGNMENT_KEY "': type %s (expected uint32)",
                       r->name, gguf_vtype_name(kv->value.type));
    if (!is_pow2(kv->value.u64))
        return FAIL(r->err, LB_ERR_FORMAT,
                       "%s: key '" GGUF_ALIGNMENT_KEY "': %" PRIu64 " (expected a nonzero power of two)",
                       r->name, kv->value.u64);
    f->alignment = kv->value.u64;
    return LB_OK;
}

// One tensor info; the data range is checked once the data offset is known.
static lb_status read_tensor_info(struct reader *r, struct gguf_file *f, struct gguf_tensor *t, uint64_t i) {
    struct gguf_str name;
    snprintf(r->what, sizeof r->what, "tensor #%" PRIu64 " name", i);
    lb_status st = read_str(r, &name);
    if (st) return st;
    char shown[80];
    printable(shown, sizeof shown, name.data, name.len);
    if (memchr(name.data, '\0', name.len))
        return FAIL(r->err, LB_ERR_FORMAT, "%s: tensor '%s': name contains a NUL byte (expected a C string)",
                       r->name, shown);
    if (!(t->name = malloc(name.len + 1)))
        return FAIL(r->err, LB_ERR_NOMEM, "%s: tensor '%s': out of memory for its name", r->name, shown);
    memcpy(t->name, name.data, name.len);
    t->name[name.len] = '\0';
    f->n_tensors = i + 1;
    snprintf(r->what, sizeof r->what, "tensor '%s'", shown);

    if ((st = read_u32(r, &t->n_dims))) return st;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return FAIL(r->err, LB_ERR_FORMAT, "%s: tensor '%s': n_dims %" PRIu32 " (expected 1..%d)",
                       r->name, shown, t->n_dims, GGUF_MAX_DIMS);
    int64_t n_elems = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t ne;
        if ((st = read_uint(r, 8, &ne))) return st;
        if (ne == 0 || ne > INT64_MAX)
            return FAIL(r->err, LB_ERR_FORMAT, "%s: tensor '%s': ne[%" PRIu32 "] = %" PRIu64
                           " (expected 1..%" PRId64 ")", r->name, shown, d, ne, INT64_MAX);
        if (__builtin_mul_overflow(n_elems, (int64_t)ne, &n_elems))
            return FAIL(r->err, LB_ERR_FORMAT,
                           "%s: tensor '%s': element count overflows at ne[%" PRIu32 "] = %" PRIu64
                           " (expected a product of dims below 2^63)", r->name, shown, d, ne);
        t->ne[d] = (int64_t)ne;
    }

    uint32_t type;
    if ((st = read_u32(r, &type))) return st;
    if (type >= LB_TYPE_COUNT || lb_type_block_size((lb_type)type) <= 0) {
        char known[256];
        size_t o = 0;
        for (int k = 0; k < LB_TYPE_COUNT && o < sizeof known; k++) {
            const char *tn = lb_type_name((lb_type)k);
            if (tn && lb_type_block_size((lb_type)k) > 0)
                o += (size_t)snprintf(known + o, sizeof known - o, "%s%d=%s", o ? " " : "", k, tn);
        }
        if (o == 0) snprintf(known, sizeof known, "none known");
        return FAIL(r->err, LB_ERR_UNSUPPORTED,
                       "%s: tensor '%s': type %" PRIu32 " unknown (expected a type id lowbit knows: %s)",
                       r->name, shown, type, known);
    }
    t->type = (lb_type)type;
    int block = lb_type_block_size(t->type);
    if (t->ne[0] % block != 0)
        return FAIL(r->err, LB_ERR_FORMAT,
                       "%s: tensor '%s': ne[0] = %" PRId64 " (expected a multiple of the %s block size %d)",
                       r->name, shown, t->ne[0], lb_type_name(t->type), block);
    uint64_t nbytes = lb_type_row_bytes(t->type, t->ne[0]);
    if (!lb_mul_ok(nbytes, (uint64_t)(n_elems / t->ne[0]), &nbytes) || nbytes > SIZE_MAX)
        return FAIL(r->err, LB_ERR_FORMAT,
                       "%s: tensor '%s': size in bytes overflows (%" PRId64 " elements of %s)",
                       r->name, shown, n_elems, lb_type_name(t->type));
    t->nbytes = (size_t)nbytes;

    if ((st = read_uint(r, 8, &t->offset))) return st;
    if (t->offset % f->alignment != 0)
        return FAIL(r->err, LB_ERR_FORMAT,
                       "%s: tensor '%s': offset %" PRIu64 " (expected a multiple of the alignment %" PRIu64 ")",
                       r->name, shown, t->offset, f->alignment);
    return LB_OK;
}

static lb_status read_tensors(struct reader *r, struct gguf_file *f, uint64_t n_tensors) {
    struct name_set seen;
    if (!name_set_init(&seen, n_tensors))
        return FAIL(r->err, LB_ERR_NOMEM, "%s: out of memory for %" PRIu64 " tensors", r->name, n_tensors);
    lb_status st = LB_OK;
    for (uint64_t i = 0; i < n_tensors && !st; i++) {
        struct gguf_tensor *t = &f->tensors[i];
        if ((st = read_tensor_info(r, f, t, i))) break;
        if (!name_set_add(&seen, t->name, strlen(t->name))) {
            char shown[80];
            st = FAIL(r->err, LB_ERR_FORMAT, "%s: tensor '%s' appears twice (expected unique names)",
                         r->name, printable(shown, sizeof shown, t->name, strlen(t->name)));
        }
    }
    free(seen.slots);
    if (st) return st;

    f->data_offset = align_up(r->pos, f->alignment);
    // A file without tensors may end before the padding; one with tensors may not.
    uint64_t data_size = f->data_offset <= r->size ? r->size - f->data_offset : 0;
    for (uint64_t i = 0; i < n_tensors; i++) {
        struct gguf_tensor *t = &f->tensors[i];
        uint64_t end;
        if (!lb_add_ok(t->offset, t->nbytes, &end) || end > data_size) {
            char shown[80];
            return FAIL(r->err, LB_ERR_FORMAT,
                           "%s: tensor '%s': data at offset %" PRIu64 " + %zu bytes runs past the end "
                           "(expected within the %" PRIu64 " bytes of data from byte %" PRIu64 ")",
                           r->name, printable(shown, sizeof shown, t->name, strlen(t->name)),
                           t->offset, t->nbytes, data_size, f->data_offset);
        }
        t->data = r->buf + f->data_offset + t->offset;
    }
    return LB_OK;
}

static lb_status parse(struct gguf_owned *o, const char *name, const void *buf, size_t size, lb_error *err) {
    struct gguf_file *f = &o->f;
    struct reader r = { .buf = buf, .size = size, .name = name, .err = err };
    f->map = buf;
    f->size = size;
    // f->n_kv and f->n_tensors count what has been read so far, so that
    // gguf_close frees a partly read file.
    uint64_t n_kv = 0, n_tensors = 0;
    lb_status st = read_header(&r, f, &n_kv, &n_tensors);
    if (st) return st;
    if ((st = read_kvs(&r, f, n_kv))) return st;
    if ((st = read_alignment(&r, f))) return st;
    return read_tensors(&r, f, n_tensors);
}

static struct gguf_owned *owned_new(const char *name, lb_error *err) {
    struct gguf_owned *o = calloc(1, sizeof *o);
    if (o && (o->f.path = strdup(name))) return o;
    free(o);
    lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", name);
    return NULL;
}

struct gguf_file *gguf_new_virtual(const char *path, void (*release)(void *owner), void *owner) {
    struct gguf_owned *o = owned_new(path, NULL);
    if (!o) return NULL;
    o->f.version = 3;
    o->f.alignment = GGUF_DEFAULT_ALIGNMENT;
    o->release = release;
    o->owner = owner;
    return &o->f;
}

lb_status gguf_parse(struct gguf_file **out, const char *name, const void *buf, size_t size, lb_error *err) {
    *out = NULL;
    if (!name) name = "(buffer)";
    if (!buf && size) return FAIL(err, LB_ERR_ARG, "%s: NULL buffer of %zu bytes", name, size);
    struct gguf_owned *o = owned_new(name, err);
    if (!o) return LB_ERR_NOMEM;
    static const uint8_t empty[1];
    lb_status st = parse(o, name, buf ? buf : empty, size, err);
    if (st) {
        gguf_close(&o->f);
        return st;
    }
    *out = &o->f;
    return LB_OK;
}

lb_status gguf_open(struct gguf_file **out, const char *path, lb_error *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return FAIL(err, LB_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return FAIL(err, LB_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return FAIL(err, LB_ERR_IO, "%s: not a regular file (expected a GGUF file)", path);
    }
    struct gguf_owned *o = owned_new(path, err);
    if (!o) {
        close(fd);
        return LB_ERR_NOMEM;
    }
    size_t size = (size_t)sb.st_size;
    void *map = NULL;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            gguf_close(&o->f);
            return FAIL(err, LB_ERR_IO, "%s: cannot map %zu bytes: %s", path, size, strerror(e));
        }
        o->mapping = map;
        o->mapping_size = size;
    }
    close(fd); // the mapping keeps the file
    static const uint8_t empty[1];
    lb_status st = parse(o, path, map ? map : empty, size, err);
    if (st) {
        gguf_close(&o->f);
        return st;
    }
    *out = &o->f;
    return LB_OK;
}

void gguf_close(struct gguf_file *f) {
    if (!f) return;
    struct gguf_owned *o = (struct gguf_owned *)f;
    for (uint64_t i = 0; i < f->n_kv; i++) value_free(&f->kv[i].value);
    free(f->kv);
    for (uint64_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    free(f->path);
    if (o->mapping) munmap(o->mapping, o->mapping_size);
    if (o->release) o->release(o->owner);
    free(o);
}

const struct gguf_kv *gguf_find(const struct gguf_file *f, const char *key) {
    size_t len = strlen(key);
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (str_eq(&f->kv[i].key, key, len)) return &f->kv[i];
    return NULL;
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *f, const char *name) {
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

// ----------------------------------------------------------------------------
// Typed getters

static lb_status find_typed(const struct gguf_file *f, const char *key, const struct gguf_value **v,
                            lb_error *err) {
    const struct gguf_kv *kv = gguf_find(f, key);
    if (!kv) return FAIL(err, LB_ERR_MISSING, "%s: key '%s' missing", f->path, key);
    *v = &kv->value;
    return LB_OK;
}

static lb_status wrong_type(const struct gguf_file *f, const char *key, const struct gguf_value *v,
                            const char *expected, lb_error *err) {
    return FAIL(err, LB_ERR_FORMAT, "%s: key '%s': type %s (expected %s)", f->path, key,
                   gguf_vtype_name(v->type), expected);
}

lb_status gguf_get_u64(const struct gguf_file *f, const char *key, uint64_t *out, lb_error *err) {
    const struct gguf_value *v;
    lb_status st = find_typed(f, key, &v, err);
    if (st) return st;
    if (vtype_is_unsigned(v->type)) {
        *out = v->u64;
        return LB_OK;
    }
    if (!vtype_is_signed(v->type)) return wrong_type(f, key, v, "an integer", err);
    if (v->i64 < 0)
        return FAIL(err, LB_ERR_FORMAT, "%s: key '%s': %" PRId64 " (expected a value >= 0)", f->path, key, v->i64);
    *out = (uint64_t)v->i64;
    return LB_OK;
}

lb_status gguf_get_i64(const struct gguf_file *f, const char *key, int64_t *out, lb_error *err) {
    const struct gguf_value *v;
    lb_status st = find_typed(f, key, &v, err);
    if (st) return st;
    if (vtype_is_signed(v->type)) {
        *out = v->i64;
        return LB_OK;
    }
    if (!vtype_is_unsigned(v->type)) return wrong_type(f, key, v, "an integer", err);
    if (v->u64 > INT64_MAX)
        return FAIL(err, LB_ERR_FORMAT, "%s: key '%s': %" PRIu64 " (expected at most %" PRId64 ")",
                       f->path, key, v->u64, INT64_MAX);
    *out = (int64_t)v->u64;
    return LB_OK;
}

lb_status gguf_get_f64(const struct gguf_file *f, const char *key, double *out, lb_error *err) {
    const struct gguf_value *v;
    lb_status st = find_typed(f, key, &v, err);
    if (st) return st;
    if (v->type != GGUF_FLOAT32 && v->type != GGUF_FLOAT64) return wrong_type(f, key, v, "float32 or float64", err);
    *out = v->f64;
    return LB_OK;
}

lb_status gguf_get_bool(const struct gguf_file *f, const char *key, bool *out, lb_error *err) {
    const struct gguf_value *v;
    lb_status st = find_typed(f, key, &v, err);
    if (st) return st;
    if (v->type != GGUF_BOOL) return wrong_type(f, key, v, "bool", err);
    *out = v->u64 != 0;
    return LB_OK;
}

lb_status gguf_get_str(const struct gguf_file *f, const char *key, struct gguf_str *out, lb_error *err) {
    const struct gguf_value *v;
    lb_status st = find_typed(f, key, &v, err);
    if (st) return st;
    if (v->type != GGUF_STRING) return wrong_type(f, key, v, "string", err);
    *out = v->str;
    return LB_OK;
}

lb_status gguf_get_arr(const struct gguf_file *f, const char *key, enum gguf_vtype item_type,
                       const struct gguf_value **out, lb_error *err) {
    const struct gguf_value *v;
    lb_status st = find_typed(f, key, &v, err);
    if (st) return st;
    if (v->type != GGUF_ARRAY || v->arr.type != item_type) {
        char found[32], expected[32];
        if (v->type == GGUF_ARRAY) snprintf(found, sizeof found, "array of %s", gguf_vtype_name(v->arr.type));
        else snprintf(found, sizeof found, "%s", gguf_vtype_name(v->type));
        snprintf(expected, sizeof expected, "array of %s", gguf_vtype_name(item_type));
        return FAIL(err, LB_ERR_FORMAT, "%s: key '%s': type %s (expected %s)", f->path, key, found, expected);
    }
    *out = v;
    return LB_OK;
}

// ----------------------------------------------------------------------------
// Formatting

// Appends to a fixed buffer; once it is full, the rest is dropped and the
// text ends in "...".
struct sbuf {
    char *buf;
    size_t cap, len;
    bool full;
};

static void sb_put(struct sbuf *s, const char *p, size_t n) {
    if (s->full) return;
    if (s->cap == 0 || n > s->cap - 1 - s->len) {
        s->full = true;
        return;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
}

static void sb_printf(struct sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *s, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) sb_put(s, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

// The shortest %g form that reads back as the same float (or double).
static void sb_float(struct sbuf *s, double x, bool single) {
    char tmp[40];
    for (int prec = single ? 6 : 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, x);
        double back = strtod(tmp, NULL);
        if (single ? (float)back == (float)x : back == x) break;
    }
    sb_put(s, tmp, strlen(tmp));
}

// A quoted string: control bytes escaped, UTF-8 kept as it is.
static void sb_quoted(struct sbuf *s, const struct gguf_str *str) {
    sb_put(s, "\"", 1);
    for (uint64_t i = 0; i < str->len && !s->full; i++) {
        unsigned char c = (unsigned char)str->data[i];
        if (c == '"' || c == '\\') {
            char esc[2] = { '\\', (char)c };
            sb_put(s, esc, 2);
        } else if (c == '\n') {
            sb_put(s, "\\n", 2);
        } else if (c < 0x20 || c == 0x7f) {
            sb_printf(s, "\\x%02x", c);
        } else {
            sb_put(s, (const char *)&c, 1);
        }
    }
    sb_put(s, "\"", 1);
}

enum { FORMAT_MAX_ITEMS = 8 };

// Scalars as they are, strings quoted, arrays as "[type × n] a, b, ..." with
// at most FORMAT_MAX_ITEMS items; a nested array is put in parentheses.
static void sb_value(struct sbuf *s, const struct gguf_value *v) {
    switch (v->type) {
    case GGUF_UINT8: case GGUF_UINT16: case GGUF_UINT32: case GGUF_UINT64:
        sb_printf(s, "%" PRIu64, v->u64);
        break;
    case GGUF_INT8: case GGUF_INT16: case GGUF_INT32: case GGUF_INT64:
        sb_printf(s, "%" PRId64, v->i64);
        break;
    case GGUF_FLOAT32: case GGUF_FLOAT64:
        sb_float(s, v->f64, v->type == GGUF_FLOAT32);
        break;
    case GGUF_BOOL:
        sb_printf(s, "%s", v->u64 ? "true" : "false");
        break;
    case GGUF_STRING:
        sb_quoted(s, &v->str);
        break;
    case GGUF_ARRAY:
        sb_printf(s, "[%s \xc3\x97 %" PRIu64 "]", gguf_vtype_name(v->arr.type), v->arr.n);
        for (uint64_t i = 0; i < v->arr.n && !s->full; i++) {
            if (i == FORMAT_MAX_ITEMS) {
                sb_put(s, ", ...", 5);
                break;
            }
            sb_put(s, i ? ", " : " ", i ? 2 : 1);
            bool nested = v->arr.items[i].type == GGUF_ARRAY;
            if (nested) sb_put(s, "(", 1);
            sb_value(s, &v->arr.items[i]);
            if (nested) sb_put(s, ")", 1);
        }
        break;
    default:
        sb_printf(s, "<type %u>", (unsigned)v->type);
        break;
    }
}

void gguf_value_format(const struct gguf_value *v, char *buf, size_t cap) {
    if (cap == 0) return;
    struct sbuf s = { .buf = buf, .cap = cap };
    sb_value(&s, v);
    if (s.full && cap >= 4) {
        // Cut at a character boundary so that "..." never splits a UTF-8 sequence.
        size_t at = s.len < cap - 4 ? s.len : cap - 4;
        while (at > 0 && at < s.len && ((unsigned char)buf[at] & 0xc0) == 0x80) at--;
        memcpy(buf + at, "...", 3);
        s.len = at + 3;
    }
    buf[s.len < cap ? s.len : cap - 1] = '\0';
}

// ----------------------------------------------------------------------------
// Writer

struct writer_tensor {
    char *name;
    lb_type type;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    const void *data;     // the caller's, until gguf_writer_write returns
    size_t nbytes;
    uint64_t offset;      // set by gguf_writer_write
};

struct gguf_writer {
    struct gguf_kv *kv;   // keys NUL-terminated and owned, values deep copies
    size_t n_kv, cap_kv;
    struct writer_tensor *tensors;
    size_t n_tensors, cap_tensors;
};

struct gguf_writer *gguf_writer_new(void) {
    return calloc(1, sizeof(struct gguf_writer));
}

static void owned_value_free(struct gguf_value *v) {
    if (v->type == GGUF_STRING) free((char *)v->str.data);
    if (v->type == GGUF_ARRAY) {
        for (uint64_t i = 0; i < v->arr.n; i++) owned_value_free(&v->arr.items[i]);
        free(v->arr.items);
    }
}

void gguf_writer_free(struct gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free((char *)w->kv[i].key.data);
        owned_value_free(&w->kv[i].value);
    }
    free(w->kv);
    for (size_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->tensors);
    free(w);
}

// Checks that `src` can be written as it claims (numbers fit their type,
// array items match the item type, nesting is bounded) and deep-copies it.
// On failure nothing is left allocated.
static lb_status value_copy(struct gguf_value *dst, const struct gguf_value *src, const char *key, int depth,
                            lb_error *err) {
    static const uint64_t umax[GGUF_VTYPE_COUNT] = {
        [GGUF_UINT8] = UINT8_MAX, [GGUF_UINT16] = UINT16_MAX, [GGUF_UINT32] = UINT32_MAX,
        [GGUF_UINT64] = UINT64_MAX, [GGUF_BOOL] = 1,
    };
    static const int64_t imin[GGUF_VTYPE_COUNT] = {
        [GGUF_INT8] = INT8_MIN, [GGUF_INT16] = INT16_MIN, [GGUF_INT32] = INT32_MIN, [GGUF_INT64] = INT64_MIN,
    };
    static const int64_t imax[GGUF_VTYPE_COUNT] = {
        [GGUF_INT8] = INT8_MAX, [GGUF_INT16] = INT16_MAX, [GGUF_INT32] = INT32_MAX, [GGUF_INT64] = INT64_MAX,
    };
    enum gguf_vtype t = src->type;
    if ((unsigned)t >= GGUF_VTYPE_COUNT)
        return FAIL(err, LB_ERR_ARG, "gguf writer: key '%s': value type %u unknown (expected 0..%d)", key,
                       (unsigned)t, GGUF_VTYPE_COUNT - 1);
    *dst = *src;
    if (vtype_is_unsigned(t) || t == GGUF_BOOL) {
        if (src->u64 > umax[t])
            return FAIL(err, LB_ERR_ARG, "gguf writer: key '%s': %" PRIu64 " (expected a %s, at most %" PRIu64 ")",
                           key, src->u64, vtype_names[t], umax[t]);
    } else if (vtype_is_signed(t)) {
        if (src->i64 < imin[t] || src->i64 > imax[t])
            return FAIL(err, LB_ERR_ARG, "gguf writer: key '%s': %" PRId64 " (expected a %s)", key, src->i64,
                           vtype_names[t]);
    } else if (t == GGUF_STRING) {
        char *p = malloc(src->str.len + 1);
        if (!p) return FAIL(err, LB_ERR_NOMEM, "gguf writer: key '%s': out of memory", key);
        if (src->str.len) memcpy(p, src->str.data, src->str.len);
        p[src->str.len] = '\0';
        dst->str.data = p;
    } else if (t == GGUF_ARRAY) {
        if (depth >= GGUF_MAX_DEPTH)
            return FAIL(err, LB_ERR_ARG, "gguf writer: key '%s': arrays nested deeper than %d", key,
                           GGUF_MAX_DEPTH);
        if ((unsigned)src->arr.type >= GGUF_VTYPE_COUNT)
            return FAIL(err, LB_ERR_ARG, "gguf writer: key '%s': array item type %u unknown (expected 0..%d)",
                           key, (unsigned)src->arr.type, GGUF_VTYPE_COUNT - 1);
        if (src->arr.n && !src->arr.items)
            return FAIL(err, LB_ERR_ARG, "gguf writer: key '%s': array of %" PRIu64 " items has no items",
                           key, src->arr.n);
        dst->arr.n = 0;
        dst->arr.items = NULL;
        if (src->arr.n && !(dst->arr.items = calloc(src->arr.n, sizeof *dst->arr.items)))
            return FAIL(err, LB_ERR_NOMEM, "gguf writer: key '%s': out of memory for %" PRIu64 " items", key,
                           src->arr.n);
        for (uint64_t i = 0; i < src->arr.n; i++) {
            const struct gguf_value *item = &src->arr.items[i];
            lb_status st = LB_OK;
            if (item->type != src->arr.type)
                st = FAIL(err, LB_ERR_ARG, "gguf writer: key '%s': item %" PRIu64 " has type %s (expected %s)",
                             key, i, gguf_vtype_name(item->type), vtype_names[src->arr.type]);
            if (!st) st = value_copy(&dst->arr.items[i], item, key, depth + 1, err);
            if (st) {
                owned_value_free(dst);
                return st;
            }
            dst->arr.n = i + 1;
        }
    }
    return LB_OK;
}

static lb_status writer_set(struct gguf_writer *w, const char *key, size_t key_len, const struct gguf_value *v,
                            lb_error *err) {
    char shown[80];
    printable(shown, sizeof shown, key, key_len);
    if (key_len == strlen(GGUF_ALIGNMENT_KEY) && memcmp(key, GGUF_ALIGNMENT_KEY, key_len) == 0 &&
        (v->type != GGUF_UINT32 || !is_pow2(v->u64)))
        return FAIL(err, LB_ERR_ARG, "gguf writer: key '" GGUF_ALIGNMENT_KEY "': %s (expected a uint32 power of two)",
                       v->type == GGUF_UINT32 ? "not a power of two" : gguf_vtype_name(v->type));
    struct gguf_value copy;
    lb_status st = value_copy(&copy, v, shown, 0, err);
    if (st) return st;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (str_eq(&w->kv[i].key, key, key_len)) { // replace in place, keeping the key's position
            owned_value_free(&w->kv[i].value);
            w->kv[i].value = copy;
            return LB_OK;
        }
    }
    char *k = malloc(key_len + 1);
    if (k && w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? 2 * w->cap_kv : 16;
        struct gguf_kv *grown = realloc(w->kv, cap * sizeof *grown);
        if (grown) w->kv = grown, w->cap_kv = cap;
    }
    if (!k || w->n_kv == w->cap_kv) {
        free(k);
        owned_value_free(&copy);
        return FAIL(err, LB_ERR_NOMEM, "gguf writer: key '%s': out of memory", shown);
    }
    memcpy(k, key, key_len);
    k[key_len] = '\0';
    w->kv[w->n_kv++] = (struct gguf_kv){ .key = { .len = key_len, .data = k }, .value = copy };
    return LB_OK;
}

lb_status gguf_writer_set(struct gguf_writer *w, const char *key, const struct gguf_value *v, lb_error *err) {
    return writer_set(w, key, strlen(key), v, err);
}

lb_status gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v, lb_error *err) {
    struct gguf_value val = { .type = GGUF_UINT32, .u64 = v };
    return gguf_writer_set(w, key, &val, err);
}

lb_status gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v, lb_error *err) {
    struct gguf_value val = { .type = GGUF_FLOAT32, .f64 = v };
    return gguf_writer_set(w, key, &val, err);
}

lb_status gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *v, lb_error *err) {
    struct gguf_value val = { .type = GGUF_STRING, .str = { .len = strlen(v), .data = v } };
    return gguf_writer_set(w, key, &val, err);
}

lb_status gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_file *f, lb_error *err) {
    for (uint64_t i = 0; i < f->n_kv; i++) {
        lb_status st = writer_set(w, f->kv[i].key.data, f->kv[i].key.len, &f->kv[i].value, err);
        if (st) return st;
    }
    return LB_OK;
}

lb_status gguf_writer_add_tensor(struct gguf_writer *w, const char *name, lb_type type, uint32_t n_dims,
                                 const int64_t *ne, const void *data, size_t nbytes, lb_error *err) {
    if (!name || !*name) return FAIL(err, LB_ERR_ARG, "gguf writer: tensor name empty (expected a name)");
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return FAIL(err, LB_ERR_ARG, "gguf writer: tensor '%s': n_dims %" PRIu32 " (expected 1..%d)", name,
                       n_dims, GGUF_MAX_DIMS);
    int block = lb_type_block_size(type);
    if (block <= 0)
        return FAIL(err, LB_ERR_ARG, "gguf writer: tensor '%s': type %d unknown (expected a type id lowbit knows)", name,
                       (int)type);
    int64_t rows = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] <= 0 || (d > 0 && __builtin_mul_overflow(rows, ne[d], &rows)))
            return FAIL(err, LB_ERR_ARG, "gguf writer: tensor '%s': ne[%" PRIu32 "] = %" PRId64
                           " (expected > 0, product below 2^63)", name, d, ne[d]);
    }
    int64_t n_elems;
    if (__builtin_mul_overflow(rows, ne[0], &n_elems))
        return FAIL(err, LB_ERR_ARG, "gguf writer: tensor '%s': element count overflows (expected below 2^63)",
                       name);
    uint64_t expected;
    if (ne[0] % block != 0 || !lb_mul_ok(lb_type_row_bytes(type, ne[0]), (uint64_t)rows, &expected) ||
        expected != nbytes || (nbytes && !data))
        return FAIL(err, LB_ERR_ARG,
                       "gguf writer: tensor '%s': %zu bytes of %s with ne[0] = %" PRId64 " (expected ne[0] a multiple "
                       "of %d and row bytes × rows bytes of data)", name, nbytes, lb_type_name(type), ne[0], block);
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return FAIL(err, LB_ERR_ARG, "gguf writer: tensor '%s' added twice (expected unique names)", name);
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? 2 * w->cap_tensors : 16;
        struct writer_tensor *grown = realloc(w->tensors, cap * sizeof *grown);
        if (!grown) return FAIL(err, LB_ERR_NOMEM, "gguf writer: tensor '%s': out of memory", name);
        w->tensors = grown;
        w->cap_tensors = cap;
    }
    struct writer_tensor *t = &w->tensors[w->n_tensors];
    *t = (struct writer_tensor){ .name = strdup(name), .type = type, .n_dims = n_dims, .data = data, .nbytes = nbytes };
    if (!t->name) return FAIL(err, LB_ERR_NOMEM, "gguf writer: tensor '%s': out of memory", name);
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = (uint32_t)d < n_dims ? ne[d] : 1;
    w->n_tensors++;
    return LB_OK;
}

// A FILE with a sticky error flag and a byte count, so that the writing code
// reads straight and checks once.
struct out {
    FILE *fp;
    uint64_t pos;
    bool failed;
};

static void put(struct out *o, const void *p, size_t n) {
    if (o->failed || n == 0) return;
    if (fwrite(p, 1, n, o->fp) != n) o->failed = true;
    o->pos += n;
}

static void put_uint(struct out *o, uint64_t v, size_t n) {
    uint8_t b[8];
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(v >> (8 * i));
    put(o, b, n);
}

static void put_str(struct out *o, const struct gguf_str *s) {
    put_uint(o, s->len, 8);
    put(o, s->data, s->len);
}

static void put_zeros(struct out *o, uint64_t n) {
    static const uint8_t zeros[256];
    while (n > 0) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        put(o, zeros, k);
        n -= k;
    }
}

// The value's payload, without its type (arrays carry their item type).
static void put_value(struct out *o, const struct gguf_value *v) {
    switch (v->type) {
    case GGUF_UINT8: case GGUF_UINT16: case GGUF_UINT32: case GGUF_UINT64: case GGUF_BOOL:
        put_uint(o, v->u64, vtype_min_bytes[v->type]);
        break;
    case GGUF_INT8: case GGUF_INT16: case GGUF_INT32: case GGUF_INT64:
        put_uint(o, (uint64_t)v->i64, vtype_min_bytes[v->type]);
        break;
    case GGUF_FLOAT32: {
        float f = (float)v->f64;
        uint32_t bits;
        memcpy(&bits, &f, 4);
        put_uint(o, bits, 4);
        break;
    }
    case GGUF_FLOAT64: {
        uint64_t bits;
        memcpy(&bits, &v->f64, 8);
        put_uint(o, bits, 8);
        break;
    }
    case GGUF_STRING:
        put_str(o, &v->str);
        break;
    case GGUF_ARRAY:
        put_uint(o, v->arr.type, 4);
        put_uint(o, v->arr.n, 8);
        for (uint64_t i = 0; i < v->arr.n; i++) put_value(o, &v->arr.items[i]);
        break;
    case GGUF_VTYPE_COUNT:
        break; // value_copy never stores it
    }
}

static void put_file(struct out *o, const struct gguf_writer *w, uint64_t alignment) {
    put(o, "GGUF", 4);
    put_uint(o, 3, 4);
    put_uint(o, w->n_tensors, 8);
    put_uint(o, w->n_kv, 8);
    for (size_t i = 0; i < w->n_kv; i++) {
        put_str(o, &w->kv[i].key);
        put_uint(o, w->kv[i].value.type, 4);
        put_value(o, &w->kv[i].value);
    }
    for (size_t i = 0; i < w->n_tensors; i++) {
        const struct writer_tensor *t = &w->tensors[i];
        struct gguf_str name = { .len = strlen(t->name), .data = t->name };
        put_str(o, &name);
        put_uint(o, t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims; d++) put_uint(o, (uint64_t)t->ne[d], 8);
        put_uint(o, (uint64_t)t->type, 4);
        put_uint(o, t->offset, 8);
    }
    put_zeros(o, align_up(o->pos, alignment) - o->pos);
    // Each tensor is padded, the last one too, as llama.cpp and gguf-py do.
    for (size_t i = 0; i < w->n_tensors; i++) {
        put(o, w->tensors[i].data, w->tensors[i].nbytes);
        put_zeros(o, align_up(w->tensors[i].nbytes, alignment) - w->tensors[i].nbytes);
    }
}

lb_status gguf_writer_write(struct gguf_writer *w, const char *path, lb_error *err) {
    uint64_t alignment = GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++)
        if (str_eq(&w->kv[i].key, GGUF_ALIGNMENT_KEY, strlen(GGUF_ALIGNMENT_KEY)))
            alignment = w->kv[i].value.u64; // a uint32 power of two, checked by writer_set
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        w->tensors[i].offset = offset;
        if (!lb_add_ok(offset, align_up(w->tensors[i].nbytes, alignment), &offset))
            return FAIL(err, LB_ERR_ARG, "%s: tensor data overflows 2^64 bytes", path);
    }

    // Write beside the target and rename over it, so that a reader (or a
    // mapping of the old file, which may be where the tensor data comes
    // from) never sees a half-written file.
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof ".tmp.XXXXXX");
    if (!tmp) return FAIL(err, LB_ERR_NOMEM, "%s: out of memory", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return FAIL(err, LB_ERR_IO, "%s: cannot create a temporary file beside it: %s", path, strerror(e));
    }
    struct out o = { .fp = fdopen(fd, "wb") };
    const char *step = NULL;
    int e = 0;
    if (!o.fp) {
        e = errno, step = "open";
        close(fd);
    } else {
        (void)fchmod(fd, 0644); // mkstemp makes it 0600
        put_file(&o, w, alignment);
        if (o.failed) e = errno, step = "write";
        else if (fflush(o.fp) != 0) e = errno, step = "flush";
        else if (fsync(fd) != 0) e = errno, step = "fsync";
        if (fclose(o.fp) != 0 && !step) e = errno, step = "close";
        if (!step && rename(tmp, path) != 0) e = errno, step = "rename";
    }
    if (step) {
        unlink(tmp);
        free(tmp);
        return FAIL(err, LB_ERR_IO, "%s: cannot %s: %s", path, step, strerror(e ? e : EIO));
    }
    free(tmp);
    return LB_OK;
}
