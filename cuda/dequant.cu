/*
 * dequant.cu — GPU dequantization of weight blocks to float.
 *
 * Versions here: one kernel per type, one CUDA thread block per quantized
 * block (32 threads for the 32-element types, 256 for k-quants), each thread
 * writing one output element. That is the plain port of the CPU decoders;
 * dequantization is bandwidth-bound, so the simple mapping is close to what
 * the memory system allows.
 *   F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K
 *
 * The block layouts come from engine/blocks.h, shared with the CPU code.
 * The reference for every formula is the CPU decoder of the same type
 * (lb_dequantize_row_* in engine/quants_legacy.c and engine/quants_k.c),
 * which tests/test_types.c and tests/test_dequant.py check against ggml's
 * numpy reference bit for bit. To stay bit-identical to it, the float math
 * uses __fmul_rn / __fadd_rn / __fsub_rn: nvcc would otherwise contract
 * d * q - m into one FMA, which rounds once instead of twice.
 *
 * Build: nvcc -O2 -I engine -c cuda/dequant.cu
 */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "blocks.h"

// The ggml type ids (lowbit.h's lb_type), repeated here so this file needs
// no engine header beyond blocks.h.
enum {
    TYPE_F16 = 1,
    TYPE_Q4_0 = 2,
    TYPE_Q4_1 = 3,
    TYPE_Q5_0 = 6,
    TYPE_Q5_1 = 7,
    TYPE_Q8_0 = 8,
    TYPE_Q4_K = 12,
    TYPE_Q5_K = 13,
    TYPE_Q6_K = 14,
};

static __device__ __forceinline__ float half_bits_to_float(uint16_t bits) {
    return __half2float(__ushort_as_half(bits)); // exact, as lb_fp16_to_f32
}

// d * q + m with two roundings, as the CPU decoder.
static __device__ __forceinline__ float scale_add(float d, float q, float m) {
    return __fadd_rn(__fmul_rn(d, q), m);
}
static __device__ __forceinline__ float scale_sub(float d, float q, float m) {
    return __fsub_rn(__fmul_rn(d, q), m);
}

// ---------------------------------------------------------------------------
// 32-element blocks: thread j decodes element j of block blockIdx.x.
// Element j < 16 is the low nibble of qs[j], j >= 16 the high nibble of qs[j-16].

static __device__ __forceinline__ int nibble(const uint8_t *qs, int j) {
    return j < 16 ? qs[j] & 0x0F : qs[j - 16] >> 4;
}

static __device__ __forceinline__ int q5_high_bit(const uint8_t qh[4], int j) {
    return (qh[j / 8] >> (j % 8)) & 1; // bit j of the little-endian uint32
}

__global__ void dequantize_f16(const uint16_t *x, float *y, long n) {
    const long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = half_bits_to_float(x[i]);
}

__global__ void dequantize_q4_0(const block_q4_0 *x, float *y) {
    const block_q4_0 *b = x + blockIdx.x;
    const int j = threadIdx.x;
    const float d = half_bits_to_float(b->d);
    y[(long)blockIdx.x * QK4_0 + j] = __fmul_rn((float)(nibble(b->qs, j) - 8), d);
}

__global__ void dequantize_q4_1(const block_q4_1 *x, float *y) {
    const block_q4_1 *b = x + blockIdx.x;
    const int j = threadIdx.x;
    y[(long)blockIdx.x * QK4_1 + j] =
        scale_add((float)nibble(b->qs, j), half_bits_to_float(b->d), half_bits_to_float(b->m));
}

__global__ void dequantize_q5_0(const block_q5_0 *x, float *y) {
    const block_q5_0 *b = x + blockIdx.x;
    const int j = threadIdx.x;
    const int q = nibble(b->qs, j) | (q5_high_bit(b->qh, j) << 4);
    y[(long)blockIdx.x * QK5_0 + j] = __fmul_rn((float)(q - 16), half_bits_to_float(b->d));
}

__global__ void dequantize_q5_1(const block_q5_1 *x, float *y) {
    const block_q5_1 *b = x + blockIdx.x;
    const int j = threadIdx.x;
    const int q = nibble(b->qs, j) | (q5_high_bit(b->qh, j) << 4);
    y[(long)blockIdx.x * QK5_1 + j] = scale_add((float)q, half_bits_to_float(b->d), half_bits_to_float(b->m));
}

__global__ void dequantize_q8_0(const block_q8_0 *x, float *y) {
    const block_q8_0 *b = x + blockIdx.x;
    const int j = threadIdx.x;
    y[(long)blockIdx.x * QK8_0 + j] = __fmul_rn((float)b->qs[j], half_bits_to_float(b->d));
}

// ---------------------------------------------------------------------------
// k-quants: thread e decodes element e (0..255) of super-block blockIdx.x.

// Sub-block j's 6-bit scale and min (as lb_get_scale_min_k4 in quants.h).
static __device__ __forceinline__ void scale_min_k4(int j, const uint8_t *q, int *scale, int *min) {
    if (j < 4) {
        *scale = q[j] & 63;
        *min = q[j + 4] & 63;
    } else {
        *scale = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

__global__ void dequantize_q4_K(const block_q4_K *x, float *y) {
    const block_q4_K *b = x + blockIdx.x;
    const int e = threadIdx.x, j = e / 32, l = e % 32;
    int sc, m;
    scale_min_k4(j, b->scales, &sc, &m);
    const float dl = __fmul_rn(half_bits_to_float(b->d), (float)sc);
    const float ml = __fmul_rn(half_bits_to_float(b->dmin), (float)m);
    const int q = (b->qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0xF; // even sub-blocks: low nibbles
    y[(long)blockIdx.x * QK_K + e] = scale_sub(dl, (float)q, ml);
}

__global__ void dequantize_q5_K(const block_q5_K *x, float *y) {
    const block_q5_K *b = x + blockIdx.x;
    const int e = threadIdx.x, j = e / 32, l = e % 32;
    int sc, m;
    scale_min_k4(j, b->scales, &sc, &m);
    const float dl = __fmul_rn(half_bits_to_float(b->d), (float)sc);
    const float ml = __fmul_rn(half_bits_to_float(b->dmin), (float)m);
    const int q = ((b->qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0xF) | (((b->qh[l] >> j) & 1) << 4);
    y[(long)blockIdx.x * QK_K + e] = scale_sub(dl, (float)q, ml);
}

__global__ void dequantize_q6_K(const block_q6_K *x, float *y) {
    const block_q6_K *b = x + blockIdx.x;
    const int e = threadIdx.x;
    const int half = e / 128, r = e % 128, l = r % 32, quarter = r / 32;
    const uint8_t ql = b->ql[64 * half + l + 32 * (quarter & 1)];
    const int low = (ql >> (4 * (quarter >> 1))) & 0xF;
    const int high = (b->qh[32 * half + l] >> (2 * quarter)) & 3;
    const int q = (low | (high << 4)) - 32;
    // (d * scale) * q, in the CPU decoder's order.
    const float ds = __fmul_rn(half_bits_to_float(b->d), (float)b->scales[e / 16]);
    y[(long)blockIdx.x * QK_K + e] = __fmul_rn(ds, (float)q);
}

// ---------------------------------------------------------------------------
// Host launcher

// Decodes n elements (a multiple of the type's block size) of `type` from
// device memory src_dev into dst_dev on `stream` (a cudaStream_t, or NULL for
// the default stream). Returns 0 when the kernel was queued, -1 for a type
// with no GPU decoder or an n that is not a whole number of blocks, else the
// cudaError_t of the launch. Errors inside the kernel surface at the next
// synchronisation, as usual for CUDA.
extern "C" int lb_cuda_dequantize(int type, const void *src_dev, float *dst_dev, long n, void *stream) {
    cudaStream_t s = (cudaStream_t)stream;
    if (n < 0) return -1;
    if (n == 0) return 0;
    switch (type) {
    case TYPE_F16: {
        const int threads = 256;
        dequantize_f16<<<(unsigned)((n + threads - 1) / threads), threads, 0, s>>>((const uint16_t *)src_dev, dst_dev, n);
        break;
    }
    case TYPE_Q4_0:
        if (n % QK4_0) return -1;
        dequantize_q4_0<<<(unsigned)(n / QK4_0), QK4_0, 0, s>>>((const block_q4_0 *)src_dev, dst_dev);
        break;
    case TYPE_Q4_1:
        if (n % QK4_1) return -1;
        dequantize_q4_1<<<(unsigned)(n / QK4_1), QK4_1, 0, s>>>((const block_q4_1 *)src_dev, dst_dev);
        break;
    case TYPE_Q5_0:
        if (n % QK5_0) return -1;
        dequantize_q5_0<<<(unsigned)(n / QK5_0), QK5_0, 0, s>>>((const block_q5_0 *)src_dev, dst_dev);
        break;
    case TYPE_Q5_1:
        if (n % QK5_1) return -1;
        dequantize_q5_1<<<(unsigned)(n / QK5_1), QK5_1, 0, s>>>((const block_q5_1 *)src_dev, dst_dev);
        break;
    case TYPE_Q8_0:
        if (n % QK8_0) return -1;
        dequantize_q8_0<<<(unsigned)(n / QK8_0), QK8_0, 0, s>>>((const block_q8_0 *)src_dev, dst_dev);
        break;
    case TYPE_Q4_K:
        if (n % QK_K) return -1;
        dequantize_q4_K<<<(unsigned)(n / QK_K), QK_K, 0, s>>>((const block_q4_K *)src_dev, dst_dev);
        break;
    case TYPE_Q5_K:
        if (n % QK_K) return -1;
        dequantize_q5_K<<<(unsigned)(n / QK_K), QK_K, 0, s>>>((const block_q5_K *)src_dev, dst_dev);
        break;
    case TYPE_Q6_K:
        if (n % QK_K) return -1;
        dequantize_q6_K<<<(unsigned)(n / QK_K), QK_K, 0, s>>>((const block_q6_K *)src_dev, dst_dev);
        break;
    default:
        return -1;
    }
    const cudaError_t err = cudaGetLastError();
    return err == cudaSuccess ? 0 : (int)err;
}
