/*
 * gguf.h — GGUF v2/v3 reader (over mmap) and writer, as llama.cpp's gguf.cpp
 * and the `gguf` Python package read and write them.
 *
 * File layout (little-endian):
 *   magic "GGUF", u32 version (2 or 3), u64 n_tensors, u64 n_kv,
 *   n_kv × { string key, u32 value_type, value },
 *   n_tensors × { string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset },
 *   padding to `general.alignment` (default 32), tensor data (offsets relative
 *   to the start of this region, each aligned).
 *   string = u64 length + bytes (no NUL). array = u32 item type, u64 count, items.
 * Every count, size and offset is checked for overflow and against the file
 * length before use.
 */
#ifndef LB_GGUF_H
#define LB_GGUF_H

#include "lowbit.h"

enum gguf_vtype {
    GGUF_UINT8 = 0, GGUF_INT8 = 1, GGUF_UINT16 = 2, GGUF_INT16 = 3,
    GGUF_UINT32 = 4, GGUF_INT32 = 5, GGUF_FLOAT32 = 6, GGUF_BOOL = 7,
    GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_UINT64 = 10, GGUF_INT64 = 11,
    GGUF_FLOAT64 = 12,
    GGUF_VTYPE_COUNT
};

struct gguf_str {
    uint64_t len;
    const char *data;        // not NUL-terminated; points into the mapping (reader) or owned (writer)
};

struct gguf_value {
    enum gguf_vtype type;
    union {
        uint64_t u64;        // UINT8..UINT64, BOOL (zero-extended)
        int64_t i64;         // INT8..INT64 (sign-extended)
        double f64;          // FLOAT32, FLOAT64
        struct gguf_str str;
        struct {
            enum gguf_vtype type;     // item type (ARRAY for nested arrays)
            uint64_t n;
            struct gguf_value *items; // n items
        } arr;
    };
};

struct gguf_kv {
    struct gguf_str key;
    struct gguf_value value;
};

#define GGUF_MAX_DIMS 4

struct gguf_tensor {
    char *name;              // NUL-terminated copy
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; // unused dims are 1; ne[0] is the row length
    lb_type type;
    uint64_t offset;         // relative to the data region
    size_t nbytes;
    const void *data;        // into the mapping
};

struct gguf_file {
    char *path;
    uint32_t version;
    uint64_t n_kv;
    struct gguf_kv *kv;
    uint64_t n_tensors;
    struct gguf_tensor *tensors;
    uint64_t alignment;
    uint64_t data_offset;    // file offset of the data region
    const uint8_t *map;      // whole file
    size_t size;
};

// ----------------------------------------------------------------------------
// Reader

// Map and parse `path`. Errors name the file and the key or tensor:
// "m.gguf: tensor 'blk.0.attn_q.weight': type 41 unknown (expected a type id lowbit knows: ...)".
lb_status gguf_open(struct gguf_file **out, const char *path, lb_error *err);
// Parse a buffer already in memory (the fuzzer's entry point). `name` is used
// in messages. The buffer must outlive the result.
lb_status gguf_parse(struct gguf_file **out, const char *name, const void *buf, size_t size, lb_error *err);
void gguf_close(struct gguf_file *f);
// An empty file built in memory by another loader (hf.c: a Hugging Face
// directory as the GGUF file llama.cpp's converter would write from it). The
// maker fills kv (a malloc'd array; array values' items malloc'd, strings
// pointing into memory it owns) and tensors (a malloc'd array, each name
// malloc'd, data in memory it owns); gguf_close frees those arrays and names,
// then calls release(owner). NULL when out of memory.
struct gguf_file *gguf_new_virtual(const char *path, void (*release)(void *owner), void *owner);

const struct gguf_kv *gguf_find(const struct gguf_file *f, const char *key);
const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *f, const char *name);

// Typed getters. Integers accept any integer type whose value fits; floats
// accept FLOAT32/FLOAT64. A missing key is LB_ERR_MISSING, a wrong type
// LB_ERR_FORMAT, both with a message naming file and key.
lb_status gguf_get_u64(const struct gguf_file *f, const char *key, uint64_t *out, lb_error *err);
lb_status gguf_get_i64(const struct gguf_file *f, const char *key, int64_t *out, lb_error *err);
lb_status gguf_get_f64(const struct gguf_file *f, const char *key, double *out, lb_error *err);
lb_status gguf_get_bool(const struct gguf_file *f, const char *key, bool *out, lb_error *err);
lb_status gguf_get_str(const struct gguf_file *f, const char *key, struct gguf_str *out, lb_error *err);
// An array whose items have type `item_type`.
lb_status gguf_get_arr(const struct gguf_file *f, const char *key, enum gguf_vtype item_type,
                       const struct gguf_value **out, lb_error *err);

const char *gguf_vtype_name(enum gguf_vtype t);
// Printable summary of a value (arrays: type and count, first items).
void gguf_value_format(const struct gguf_value *v, char *buf, size_t cap);

// ----------------------------------------------------------------------------
// Writer. Values are copied; tensor data is referenced until gguf_writer_write
// returns. Writes v3, alignment from `general.alignment` if set (default 32),
// atomically: temp file in the same directory, fsync, rename.

struct gguf_writer;
struct gguf_writer *gguf_writer_new(void);
void gguf_writer_free(struct gguf_writer *w);
lb_status gguf_writer_set(struct gguf_writer *w, const char *key, const struct gguf_value *v, lb_error *err);
lb_status gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v, lb_error *err);
lb_status gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v, lb_error *err);
lb_status gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *v, lb_error *err);
// Copy every key/value of an open file (e.g. when quantizing).
lb_status gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_file *f, lb_error *err);
lb_status gguf_writer_add_tensor(struct gguf_writer *w, const char *name, lb_type type, uint32_t n_dims,
                                 const int64_t *ne, const void *data, size_t nbytes, lb_error *err);
lb_status gguf_writer_write(struct gguf_writer *w, const char *path, lb_error *err);

#endif
