/*
 * types.h — the table of tensor-type traits (ggml's discipline: every type is
 * described once, in one row). Loaders, the matmul, `info`, the quantizer and
 * the tests all read this table; adding a type means adding one row.
 */
#ifndef LB_TYPES_H
#define LB_TYPES_H

#include "lowbit.h"

// Convert n elements (a multiple of block_size) of this type to float. For
// types with a row header (row_header > 0) the n elements are one whole row,
// header first: these functions, from_float_ref and vec_dot are never called
// on part of a row or on several rows at once.
typedef void (*lb_to_float_fn)(const void *src, float *dst, int64_t n);
// Quantize n floats (a multiple of block_size) into this type.
typedef void (*lb_from_float_fn)(const float *src, void *dst, int64_t n);
// Per-tensor types: quantize a row against the absmax of the whole tensor
// (the tensor-level quantizer finds it first; see lb_type_from_float_rows).
typedef void (*lb_from_float_amax_fn)(const float *src, void *dst, int64_t n, float amax);
// Dot product of n elements: w is a row of this type, a is the activation row
// already converted to the row's vec_dot_type.
typedef float (*lb_vec_dot_fn)(int64_t n, const void *w, const void *a);
// Four rows at once: rows w, w + stride, w + 2·stride, w + 3·stride against
// one activation row; out[k] is row k's dot product. Decode is bound by cache
// misses in flight, and four rows read at once are four memory streams.
typedef void (*lb_vec_dot4_fn)(int64_t n, const void *w, size_t stride, const void *a, float out[4]);
// Attention blocks (attention.c), all f32, d a multiple of 8 for SIMD tables:
// s[i·lds + j] = q_i · k_j for i < nq, j < nk (q, k rows of d, contiguous);
typedef void (*lb_attn_scores_fn)(int d, int nq, const float *q, int nk, const float *k, float *s, int lds);
// o = o · alpha + Σ_{j < nk} p[j] · v_j (v rows of d, contiguous).
typedef void (*lb_attn_accum_fn)(int d, int nk, const float *p, const float *v, float alpha, float *o);
// F16 weights times f32 activations (matmul_float.c): y[t·ldy + r] = w_r · x_t
// for r < nr (rows ws bytes apart), t < n (rows xs floats apart), k columns.
typedef void (*lb_gemm_f16_fn)(int64_t k, int nr, const void *w, size_t ws, int n, const float *x, size_t xs,
                               float *y, size_t ldy);
// A few weight rows against n activation rows (kernels_batch.h states the
// contract: bit-identical to the same table's single-token kernels).
typedef void (*lb_dot_batch_fn)(int64_t cols, const void *w, size_t w_stride, int rows, int quad,
                                const void *a, size_t a_stride, int n, float *y, size_t ldy);
// Eight interleaved rows (one x8 group, repack.h) against n activation rows.
typedef void (*lb_gemm_x8_fn)(int64_t cols, const void *group, const void *act, size_t act_stride,
                              const int32_t *aux, size_t aux_stride, int n, float *y, size_t ldy);

struct lb_type_traits {
    const char *name;           // NULL: no type has this id
    int block_size;             // elements per block
    size_t type_size;           // bytes per block
    size_t row_header;          // bytes before a row's first block (per-row scales); 0 for ggml types
    float bpw;                  // bits per weight of the blocks = 8 * type_size / block_size (headers excluded)
    lb_to_float_fn to_float;
    lb_from_float_fn from_float_ref; // reference quantizer (ggml's *_ref); NULL when none
    lb_from_float_amax_fn from_float_amax; // per-tensor types only: a row against the tensor's absmax
    lb_vec_dot_fn vec_dot;      // scalar reference dot product
    lb_type vec_dot_type;       // format the activation is converted to
    float tolerance;            // round-trip RMS error / RMS(x) allowed on Gaussian data (tests)
    bool exact_requant;         // from_float_ref(to_float(b)) == b for blocks from_float_ref made (tests)
    const char *description;    // lowbit's own types only: one line on the format (lb_type_description)
};

extern const struct lb_type_traits lb_type_traits[LB_TYPE_COUNT];

static inline const struct lb_type_traits *lb_traits(lb_type t) {
    if ((unsigned)t >= LB_TYPE_COUNT || !lb_type_traits[t].name) return 0;
    return &lb_type_traits[t];
}

// Per-ISA kernels, chosen once (cpuid, LOWBIT_CPU=scalar|avx2) or forced by
// lb_cpu_select. A NULL entry falls back to the scalar row of the traits table.
struct lb_kernels {
    const char *isa;
    lb_vec_dot_fn vec_dot[LB_TYPE_COUNT];
    lb_from_float_fn from_float[LB_TYPE_COUNT]; // activation quantizers (Q8_0, Q8_1, Q8_K)
    lb_to_float_fn to_float[LB_TYPE_COUNT];     // row conversions on hot paths (F16 KV cache, F16 GEMM tiles)
    lb_vec_dot4_fn vec_dot4[LB_TYPE_COUNT];     // optional 4-row dot products (NULL: use vec_dot per row)
    lb_gemm_x8_fn gemm_x8[LB_TYPE_COUNT];       // packed 8-row groups (repack.h); every ISA has all of them
    lb_gemm_f16_fn gemm_f16;                    // matmul_float.c; NULL: the scalar reference
    lb_attn_scores_fn attn_scores;              // attention.c; NULL: the scalar reference
    lb_attn_accum_fn attn_accum;
    const lb_dot_batch_fn *dot_batch;           // small batches, per type (kernels_batch.h); NULL: none
};
const struct lb_kernels *lb_kernels(void);

// The AVX2 table, defined in kernels_avx2.c (compiled with -mavx2 -mfma -mf16c).
extern const struct lb_kernels lb_kernels_avx2;
extern const struct lb_kernels lb_kernels_scalar;

// The chosen ISA's dot product for weights of type t, falling back to the
// scalar reference where that ISA has no kernel; NULL only for types that
// have no dot product (activation formats). t must have a row.
static inline lb_vec_dot_fn lb_kernel_vec_dot(lb_type t) {
    lb_vec_dot_fn fn = lb_kernels()->vec_dot[t];
    return fn ? fn : lb_type_traits[t].vec_dot;
}
// The chosen ISA's conversion of a row of type t to float, falling back to
// the traits table.
static inline lb_to_float_fn lb_kernel_to_float(lb_type t) {
    lb_to_float_fn fn = lb_kernels()->to_float[t];
    return fn ? fn : lb_type_traits[t].to_float;
}
// The chosen ISA's quantizer for activations of type t (Q8_0, Q8_1, Q8_K),
// falling back to the reference quantizer.
static inline lb_from_float_fn lb_kernel_from_float(lb_type t) {
    lb_from_float_fn fn = lb_kernels()->from_float[t];
    return fn ? fn : lb_type_traits[t].from_float_ref;
}

#endif
