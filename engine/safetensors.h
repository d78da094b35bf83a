/*
 * safetensors.h — reader for Hugging Face's safetensors files (over mmap),
 * as the `safetensors` Rust crate and Python package write and check them.
 *
 * File layout:
 *   u64 N (little-endian), the length of the header;
 *   N bytes of JSON: an object mapping each tensor name to
 *     {"dtype": "F32"|"F16"|"BF16"|..., "shape": [d0, d1, ...], "data_offsets": [begin, end]}
 *   and optionally "__metadata__": an object of string → string;
 *   the data region: offsets are relative to its start (byte 8 + N).
 * The writers pad the header with spaces so that the data region starts on
 * an 8-byte boundary. The crate's checks are made here too: every tensor's
 * byte length is its element count times the dtype's size, and the tensors,
 * sorted by offset, tile the data region exactly (no gap, no overlap, nothing
 * after the last one). Row-major order, shape[0] the slowest dimension.
 */
#ifndef LB_SAFETENSORS_H
#define LB_SAFETENSORS_H

#include "lowbit.h"

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER (100u << 20) // the crate's limit on N: 100 MB

// dtypes by the names the format uses; sizes in bits (F4 packs two per byte).
enum st_dtype {
    ST_BOOL, ST_U8, ST_I8, ST_F8_E5M2, ST_F8_E4M3, ST_I16, ST_U16, ST_F16, ST_BF16,
    ST_I32, ST_U32, ST_F32, ST_F64, ST_I64, ST_U64, ST_DTYPE_COUNT
};

struct st_tensor {
    char *name;                  // NUL-terminated copy
    enum st_dtype dtype;
    int n_dims;                  // 0 for a scalar
    int64_t shape[ST_MAX_DIMS];  // shape[0] slowest (row-major), as PyTorch
    int64_t n_elements;
    uint64_t begin;              // offsets in the data region
    size_t nbytes;
    const void *data;            // into the mapping (or the caller's buffer)
};

struct st_file {
    char *path;
    int n_tensors;
    struct st_tensor *tensors;   // in header order
    int n_meta;
    char **meta_keys, **meta_values; // "__metadata__", NUL-terminated copies
    const uint8_t *data;         // start of the data region
    size_t data_size;
    void *map;                   // the mapping, NULL when the caller owns the buffer
    size_t map_size;
};

// Map and check `path`; messages name it by `name` (NULL: the path):
// "model.safetensors: tensor 'model.norm.weight': data_offsets [0, 12] hold 12 bytes (expected 16 for F32 [4])".
lb_status st_open(struct st_file **out, const char *path, const char *name, lb_error *err);
// The same checks over a buffer (the fuzzer's entry point), which must outlive the result.
lb_status st_parse(struct st_file **out, const char *name, const void *buf, size_t size, lb_error *err);
void st_close(struct st_file *f);

const struct st_tensor *st_find(const struct st_file *f, const char *name);
const char *st_dtype_name(enum st_dtype t);
// The engine type holding this dtype's values as they are (F32, F16, BF16), or -1.
int st_dtype_lb_type(enum st_dtype t);

#endif
