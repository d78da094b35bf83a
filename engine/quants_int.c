/*
 * quants_int.c — lowbit's integer grid types (ids 130-160): absmax
 * (symmetric) and zero-point (asymmetric, min-max) int8/int4/int3/int2, per
 * tensor, per output channel (row) and per group of 32, 64 or 128.
 * Dequantizers, round-to-nearest reference quantizers and scalar dot
 * products against Q8_0 activations. Block layouts are in blocks.h.
 *
 * Every type stores w = d · (q − z), the grid of grid.h, with the codes q as
 * they are; only where d and z live differs:
 *   groups        an fp16 d (and an integer z) at the start of each group;
 *   per channel   a float d (and z) in the row header;
 *   per tensor    the per-channel layout, with the same d in every row,
 *                 computed by a tensor-level quantizer from max |x| over all
 *                 rows (lb_type_from_float_rows; types.c).
 *
 * One set of generic functions, parameterized by (bits, group, zp), is
 * instantiated for each type with constant arguments, so the compiler
 * specializes each (LB_INT_TYPES in quants.h).
 *
 * The reference quantizers (round to nearest, ties to even as torch.round):
 *   absmax:     d = max|x| / (2^(b−1) − 1), q = round(x / d) + 2^(b−1).
 *               The code 0 (−2^(b−1)) is never written by absmax, but it is
 *               on the grid and grid.c may store it (GPTQ's symmetric grid
 *               uses it). For 2 bits this is ternary: {−d, 0, d}.
 *   zero point: xmin = min(0, min x), xmax = max(0, max x) (so 0.0 is on
 *               the grid), d = (xmax − xmin) / (2^b − 1),
 *               z = clamp(round(−xmin / d), 0, 2^b − 1),
 *               q = clamp(round(x / d) + z, 0, 2^b − 1): GPTQ's and AWQ's.
 * fp16 scales are rounded *up* to the next fp16, so the grid still covers
 * [xmin, xmax] and every element is within d/2 of its code (a scale rounded
 * down would push the extremes past the last code). Float per-row scales are
 * used as computed; q is clamped, which changes nothing but float rounding.
 */
#include "quants.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "fp16.h"

// ---------------------------------------------------------------------------
// Chunks of 32 codes (layout in blocks.h)

static inline void unpack_chunk(int bits, const uint8_t *p, uint8_t q[32]) {
    switch (bits) {
    case 8:
        memcpy(q, p, 32);
        break;
    case 4:
        for (int j = 0; j < 16; j++) q[j] = p[j] & 15, q[j + 16] = p[j] >> 4;
        break;
    case 3: {
        uint32_t h;
        memcpy(&h, p + 8, 4);
        for (int j = 0; j < 8; j++)
            for (int k = 0; k < 4; k++) q[j + 8 * k] = (uint8_t)((p[j] >> 2 * k & 3) | (h >> (j + 8 * k) & 1) << 2);
        break;
    }
    case 2:
        for (int j = 0; j < 8; j++)
            for (int k = 0; k < 4; k++) q[j + 8 * k] = p[j] >> 2 * k & 3;
        break;
    }
}

static inline void pack_chunk(int bits, const uint8_t q[32], uint8_t *p) {
    switch (bits) {
    case 8:
        memcpy(p, q, 32);
        break;
    case 4:
        for (int j = 0; j < 16; j++) p[j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
        break;
    case 3:
    case 2: {
        uint32_t h = 0;
        for (int j = 0; j < 8; j++) {
            p[j] = 0;
            for (int k = 0; k < 4; k++) p[j] |= (uint8_t)((q[j + 8 * k] & 3) << 2 * k);
        }
        if (bits == 3) {
            for (int j = 0; j < 32; j++) h |= (uint32_t)(q[j] >> 2 & 1) << j;
            memcpy(p + 8, &h, 4);
        }
        break;
    }
    }
}

// Where a row's groups are: for group types each block is [fp16 d, (z, pad),
// chunks]; for per-channel types there is one group, the row, whose d and z
// are in the row header.
struct int_fmt {
    int bits, group; // group 0: per channel
    bool zp;
};

static inline size_t group_header(struct int_fmt f) { return f.zp ? 4 : 2; }
static inline size_t group_bytes(struct int_fmt f) {
    return group_header(f) + (size_t)(f.group / QK_INT_CHUNK) * LB_INT_CHUNK_BYTES(f.bits);
}
static inline size_t row_header(struct int_fmt f) { return f.zp ? sizeof(lb_row_header_zp) : sizeof(lb_row_header_sym); }

// Group k of a row: its scale, zero and first chunk. Per channel k is 0 and
// the group is the whole row.
static inline const uint8_t *group_at(struct int_fmt f, const uint8_t *row, int64_t k, float *d, int *z) {
    if (f.group == 0) {
        lb_row_header_zp h = {0};
        memcpy(&h, row, row_header(f));
        *d = h.d;
        *z = f.zp ? h.z : 1 << (f.bits - 1);
        return row + row_header(f);
    }
    const uint8_t *b = row + (size_t)k * group_bytes(f);
    uint16_t d16;
    memcpy(&d16, b, 2);
    *d = lb_fp16_to_f32(d16);
    *z = f.zp ? b[2] : 1 << (f.bits - 1);
    return b + group_header(f);
}

static inline void int_dequantize(struct int_fmt f, const void *src, float *dst, int64_t n) {
    const int64_t g = f.group ? f.group : n;
    uint8_t q[32];
    for (int64_t k = 0; k < n / g; k++) {
        float d;
        int z;
        const uint8_t *c = group_at(f, src, k, &d, &z);
        for (int64_t j = 0; j < g; j += 32, c += LB_INT_CHUNK_BYTES(f.bits)) {
            unpack_chunk(f.bits, c, q);
            for (int i = 0; i < 32; i++) *dst++ = (float)(q[i] - z) * d;
        }
    }
}

// ---------------------------------------------------------------------------
// Reference quantizers

// The smallest fp16 >= s (s >= 0, below fp16's largest finite value).
static inline uint16_t fp16_round_up(float s) {
    uint16_t h = lb_f32_to_fp16(s);
    if (lb_fp16_to_f32(h) < s) h++;
    return h;
}

// The codes of g elements on scale d and zero z, clamped to the grid.
static inline void codes(const float *x, int64_t g, float d, int z, int max_q, uint8_t *q) {
    for (int64_t i = 0; i < g; i++) {
        const float r = d > 0 ? nearbyintf(x[i] / d) : 0.0f;
        const float v = fminf(fmaxf(r + (float)z, 0.0f), (float)max_q);
        q[i] = (uint8_t)v;
    }
}

// Scale and zero of one group: *d is the exact scale the caller then rounds
// (fp16 up, or kept as float), and the zero is computed from the rounded one
// by `finish_zero`.
static inline float group_scale(struct int_fmt f, const float *x, int64_t g, float *xmin_out) {
    const int max_q = (1 << f.bits) - 1;
    if (!f.zp) {
        float amax = 0.0f;
        for (int64_t i = 0; i < g; i++) amax = fmaxf(amax, fabsf(x[i]));
        return amax / (float)((1 << (f.bits - 1)) - 1);
    }
    float lo = 0.0f, hi = 0.0f;
    for (int64_t i = 0; i < g; i++) lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
    *xmin_out = lo;
    return (hi - lo) / (float)max_q;
}

static inline int zero_for(struct int_fmt f, float d, float xmin) {
    if (!f.zp) return 1 << (f.bits - 1);
    const int max_q = (1 << f.bits) - 1;
    if (!(d > 0)) return 0;
    const float z = nearbyintf(-xmin / d);
    return (int)fminf(fmaxf(z, 0.0f), (float)max_q);
}

static inline void int_quantize(struct int_fmt f, const float *src, void *dst, int64_t n) {
    const int max_q = (1 << f.bits) - 1;
    uint8_t q[128];
    uint8_t *out = dst;
    if (f.group == 0) {
        float xmin = 0.0f;
        const float d = group_scale(f, src, n, &xmin);
        const int z = zero_for(f, d, xmin);
        lb_row_header_zp h = {.d = d, .z = (uint8_t)z};
        memcpy(out, &h, row_header(f));
        out += row_header(f);
        for (int64_t j = 0; j < n; j += 32, out += LB_INT_CHUNK_BYTES(f.bits)) {
            codes(src + j, 32, d, z, max_q, q);
            pack_chunk(f.bits, q, out);
        }
        return;
    }
    for (int64_t k = 0; k < n / f.group; k++, src += f.group, out += group_bytes(f)) {
        float xmin = 0.0f;
        const uint16_t d16 = fp16_round_up(group_scale(f, src, f.group, &xmin));
        const float d = lb_fp16_to_f32(d16);
        const int z = zero_for(f, d, xmin);
        memcpy(out, &d16, 2);
        if (f.zp) out[2] = (uint8_t)z, out[3] = 0;
        codes(src, f.group, d, z, max_q, q);
        for (int j = 0; j < f.group / 32; j++) pack_chunk(f.bits, q + 32 * j, out + group_header(f) + j * LB_INT_CHUNK_BYTES(f.bits));
    }
}

// A per-channel symmetric row against a given absmax (per-tensor types).
static inline void int_quantize_amax(int bits, const float *src, void *dst, int64_t n, float amax) {
    const struct int_fmt f = {bits, 0, false};
    const float d = amax / (float)((1 << (bits - 1)) - 1);
    lb_row_header_sym h = {.d = d};
    uint8_t *out = dst, q[32];
    memcpy(out, &h, sizeof h);
    out += sizeof h;
    for (int64_t j = 0; j < n; j += 32, out += LB_INT_CHUNK_BYTES(bits)) {
        codes(src + j, 32, d, 1 << (bits - 1), (1 << bits) - 1, q);
        pack_chunk(f.bits, q, out);
    }
}

void lb_int_pack_chunk(int bits, const uint8_t q[32], uint8_t *out) { pack_chunk(bits, q, out); }

void lb_quantize_row_int8_t_amax(const float *src, void *dst, int64_t n, float amax) {
    int_quantize_amax(8, src, dst, n, amax);
}
void lb_quantize_row_int4_t_amax(const float *src, void *dst, int64_t n, float amax) {
    int_quantize_amax(4, src, dst, n, amax);
}

// ---------------------------------------------------------------------------
// Dot products with Q8_0 activations: per 32-element chunk an exact integer
// sum of (q − z)·a, scaled by the activation block's d; per group (or row)
// scaled by the weight's d.

static inline float int_vec_dot(struct int_fmt f, int64_t n, const void *w, const void *a) {
    const block_q8_0 *y = a;
    const int64_t g = f.group ? f.group : n;
    uint8_t q[32];
    float sum = 0.0f;
    for (int64_t k = 0; k < n / g; k++) {
        float d;
        int z;
        const uint8_t *c = group_at(f, w, k, &d, &z);
        float gsum = 0.0f;
        for (int64_t j = 0; j < g; j += 32, c += LB_INT_CHUNK_BYTES(f.bits), y++) {
            unpack_chunk(f.bits, c, q);
            int isum = 0;
            for (int i = 0; i < 32; i++) isum += (q[i] - z) * y->qs[i];
            gsum += (float)isum * lb_fp16_to_f32(y->d);
        }
        sum += gsum * d;
    }
    return sum;
}

#define LB_INT_DEFINE(ID, fn, bits, group, zp)                                                                   \
    void lb_dequantize_row_##fn(const void *src, float *dst, int64_t n) {                                       \
        int_dequantize((struct int_fmt){bits, group, zp}, src, dst, n);                                          \
    }                                                                                                            \
    void lb_quantize_row_##fn##_ref(const float *src, void *dst, int64_t n) {                                   \
        int_quantize((struct int_fmt){bits, group, zp}, src, dst, n);                                            \
    }                                                                                                            \
    float lb_vec_dot_##fn##_q8_0(int64_t n, const void *w, const void *a) {                                     \
        return int_vec_dot((struct int_fmt){bits, group, zp}, n, w, a);                                          \
    }
LB_INT_TYPES(LB_INT_DEFINE)
