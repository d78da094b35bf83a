/*
 * kernels_avx2_int.h — the AVX2 dot products of kernels_avx2_int.c, and the
 * entries they add to the lb_kernels_avx2 table (kernels_avx2.c lists
 * LB_AVX2_INT_VEC_DOTS inside its .vec_dot initializer).
 */
#ifndef LB_KERNELS_AVX2_INT_H
#define LB_KERNELS_AVX2_INT_H

#include "types.h"
#include "quants.h"

#define LB_AVX2_INT_DECLARE(ID, fn, bits, group, zp) float lb_avx2_vec_dot_##fn(int64_t n, const void *w, const void *a);
LB_INT_TYPES(LB_AVX2_INT_DECLARE)
#undef LB_AVX2_INT_DECLARE
float lb_avx2_vec_dot_fp8_e4m3(int64_t n, const void *w, const void *a);
float lb_avx2_vec_dot_fp8_e5m2(int64_t n, const void *w, const void *a);
float lb_avx2_vec_dot_nf4_dq(int64_t n, const void *w, const void *a);

// Designated initializers for lb_kernels_avx2.vec_dot. The per-tensor types
// share their per-channel twin's kernel.
#define LB_AVX2_INT_ENTRY(ID, fn, bits, group, zp) [LB_TYPE_##ID] = lb_avx2_vec_dot_##fn,
#define LB_AVX2_INT_VEC_DOTS                                                                          \
    LB_INT_TYPES(LB_AVX2_INT_ENTRY)                                                                   \
    [LB_TYPE_INT8_T] = lb_avx2_vec_dot_int8_c, [LB_TYPE_INT4_T] = lb_avx2_vec_dot_int4_c,             \
    [LB_TYPE_FP8_E4M3] = lb_avx2_vec_dot_fp8_e4m3, [LB_TYPE_FP8_E5M2] = lb_avx2_vec_dot_fp8_e5m2,     \
    [LB_TYPE_NF4_DQ] = lb_avx2_vec_dot_nf4_dq,

#endif
