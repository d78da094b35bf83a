/*
 * grid.c — packing weights that already lie on a quantization grid (grid.h)
 * into the tensor types that can hold that grid.
 *
 * The ggml types whose blocks are one group of 32 (llama.cpp runs them):
 *   Q4_0  4 bits, symmetric:  x = d·(q − 8)
 *   Q5_0  5 bits, symmetric:  x = d·(q − 16)
 *   Q8_0  8 bits, symmetric:  x = d·qs, qs = q − 128 (ggml's int8)
 *   Q4_1  4 bits, min:        x = d·q + m, m = −d·zero
 *   Q5_1  5 bits, min:        x = d·q + m
 * d and m are fp16, so the packed weights equal the grid's up to that
 * rounding (for Q4_1/Q5_1 the zero becomes the fp16 m, so 0.0 is exact only
 * up to it).
 *
 * Every other grid with 2, 3, 4 or 8 bits, groups of 32, 64, 128 or whole
 * rows, symmetric or not, goes to one of lowbit's integer grid types
 * (INTb[Z]_Gg, INTb[Z]_C; quants_int.c), which store exactly
 * w = scale·(q − zero): the integer zero as it is, the scale as fp16 for
 * groups and as a float for rows. In every case the codes q are stored
 * unchanged, which is what keeps a GPTQ result GPTQ's after packing.
 */
#include <math.h>
#include <string.h>

#include "blocks.h"
#include "fp16.h"
#include "grid.h"
#include "internal.h"
#include "quants.h"

// Grid -> type. A ggml type where one stores the grid (llama.cpp can run the
// file), else lowbit's own.
static const struct grid_type {
    int bits, group;
    bool symmetric;
    lb_type type;
} grid_types[] = {
    {4, 32, true, LB_TYPE_Q4_0},          {4, 32, false, LB_TYPE_Q4_1},
    {5, 32, true, LB_TYPE_Q5_0},          {5, 32, false, LB_TYPE_Q5_1},
    {8, 32, true, LB_TYPE_Q8_0},          {8, 32, false, LB_TYPE_INT8Z_G32},
    {8, 64, true, LB_TYPE_INT8_G64},      {8, 64, false, LB_TYPE_INT8Z_G64},
    {8, 128, true, LB_TYPE_INT8_G128},    {8, 128, false, LB_TYPE_INT8Z_G128},
    {8, 0, true, LB_TYPE_INT8_C},         {8, 0, false, LB_TYPE_INT8Z_C},
    {4, 64, true, LB_TYPE_INT4_G64},      {4, 64, false, LB_TYPE_INT4Z_G64},
    {4, 128, true, LB_TYPE_INT4_G128},    {4, 128, false, LB_TYPE_INT4Z_G128},
    {4, 0, true, LB_TYPE_INT4_C},         {4, 0, false, LB_TYPE_INT4Z_C},
    {3, 32, true, LB_TYPE_INT3_G32},      {3, 32, false, LB_TYPE_INT3Z_G32},
    {3, 64, true, LB_TYPE_INT3_G64},      {3, 64, false, LB_TYPE_INT3Z_G64},
    {3, 128, true, LB_TYPE_INT3_G128},    {3, 128, false, LB_TYPE_INT3Z_G128},
    {3, 0, true, LB_TYPE_INT3_C},         {3, 0, false, LB_TYPE_INT3Z_C},
    {2, 32, true, LB_TYPE_INT2_G32},      {2, 32, false, LB_TYPE_INT2Z_G32},
    {2, 64, true, LB_TYPE_INT2_G64},      {2, 64, false, LB_TYPE_INT2Z_G64},
    {2, 128, true, LB_TYPE_INT2_G128},    {2, 128, false, LB_TYPE_INT2Z_G128},
    {2, 0, true, LB_TYPE_INT2_C},         {2, 0, false, LB_TYPE_INT2Z_C},
};

lb_type lb_grid_type(struct lb_grid g) {
    for (size_t i = 0; i < sizeof grid_types / sizeof grid_types[0]; i++)
        if (grid_types[i].bits == g.bits && grid_types[i].group == g.group && grid_types[i].symmetric == g.symmetric)
            return grid_types[i].type;
    return LB_TYPE_COUNT;
}

static bool is_ggml(lb_type t) { return t < LB_TYPE_NF4; }

bool lb_type_grid(lb_type t, struct lb_grid *g) {
    for (size_t i = 0; i < sizeof grid_types / sizeof grid_types[0]; i++)
        if (grid_types[i].type == t) {
            *g = (struct lb_grid){grid_types[i].bits, grid_types[i].group, grid_types[i].symmetric};
            return true;
        }
    return false;
}

// Groups from the largest down, then whole rows: the order of the fallback.
static const int fallback_groups[] = {128, 64, 32, LB_GRID_PER_CHANNEL};

lb_type lb_grid_fallback(lb_type t, int64_t n) {
    struct lb_grid g;
    if (is_ggml(t) || !lb_type_grid(t, &g)) return LB_TYPE_COUNT;
    if (n > 0 && n % lb_type_block_size(t) == 0) return t;
    for (size_t i = 0; i < sizeof fallback_groups / sizeof fallback_groups[0]; i++) {
        const int k = fallback_groups[i];
        if (g.group == LB_GRID_PER_CHANNEL || (k != LB_GRID_PER_CHANNEL && k >= g.group)) continue;
        const lb_type f = lb_grid_type((struct lb_grid){g.bits, k, g.symmetric});
        if (f != LB_TYPE_COUNT && n > 0 && n % lb_type_block_size(f) == 0) return f;
    }
    return LB_TYPE_COUNT;
}

bool lb_grid_row_grid(struct lb_grid g, lb_type t, int64_t n, struct lb_grid *out) {
    const lb_type gt = lb_grid_type(g);
    if (gt == LB_TYPE_COUNT || (t != gt && t != lb_grid_fallback(gt, n))) return false;
    return lb_type_grid(t, out);
}

static void pack_nibbles(const uint8_t *q, uint8_t *qs) {
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
}

static void pack_fifth_bits(const uint8_t *q, uint8_t qh[4]) {
    uint32_t h = 0;
    for (int j = 0; j < 32; j++) h |= (uint32_t)(q[j] >> 4 & 1) << j;
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(h >> 8 * k);
}

static void pack_ggml_block(lb_type t, const uint8_t *qb, float scale, float zero, void *dst, int64_t b) {
    const lb_fp16 d = lb_f32_to_fp16(scale);
    switch (t) {
    case LB_TYPE_Q4_0: {
        block_q4_0 *o = (block_q4_0 *)dst + b;
        o->d = d;
        pack_nibbles(qb, o->qs);
        break;
    }
    case LB_TYPE_Q4_1: {
        block_q4_1 *o = (block_q4_1 *)dst + b;
        o->d = d;
        o->m = lb_f32_to_fp16(-scale * zero);
        pack_nibbles(qb, o->qs);
        break;
    }
    case LB_TYPE_Q5_0: {
        block_q5_0 *o = (block_q5_0 *)dst + b;
        o->d = d;
        pack_fifth_bits(qb, o->qh);
        pack_nibbles(qb, o->qs);
        break;
    }
    case LB_TYPE_Q5_1: {
        block_q5_1 *o = (block_q5_1 *)dst + b;
        o->d = d;
        o->m = lb_f32_to_fp16(-scale * zero);
        pack_fifth_bits(qb, o->qh);
        pack_nibbles(qb, o->qs);
        break;
    }
    case LB_TYPE_Q8_0: {
        block_q8_0 *o = (block_q8_0 *)dst + b;
        o->d = d;
        for (int j = 0; j < 32; j++) o->qs[j] = (int8_t)(qb[j] - 128);
        break;
    }
    default: break;
    }
}

// One of lowbit's integer grid types (layout in blocks.h).
static void pack_int_row(struct lb_grid g, int64_t n, const uint8_t *q, const float *scale, const float *zero,
                         uint8_t *out) {
    const int chunk = LB_INT_CHUNK_BYTES(g.bits);
    if (g.group == LB_GRID_PER_CHANNEL) {
        lb_row_header_zp h = {.d = scale[0], .z = (uint8_t)(g.symmetric ? 0 : zero[0])};
        const size_t header = g.symmetric ? sizeof(lb_row_header_sym) : sizeof(lb_row_header_zp);
        memcpy(out, &h, header);
        out += header;
        for (int64_t j = 0; j < n; j += 32, out += chunk) lb_int_pack_chunk(g.bits, q + j, out);
        return;
    }
    for (int64_t k = 0; k < n / g.group; k++) {
        const lb_fp16 d = lb_f32_to_fp16(scale[k]);
        memcpy(out, &d, 2);
        out += 2;
        if (!g.symmetric) *out++ = (uint8_t)zero[k], *out++ = 0;
        for (int j = 0; j < g.group; j += 32, out += chunk) lb_int_pack_chunk(g.bits, q + k * g.group + j, out);
    }
}

lb_status lb_grid_pack_row(lb_type t, struct lb_grid g, int64_t n, const uint8_t *q,
                           const float *scale, const float *zero, void *dst, lb_error *err) {
    // t == LB_TYPE_COUNT is lb_grid_type's "no type holds this grid".
    const int64_t group = g.group == LB_GRID_PER_CHANNEL ? 32 : g.group;
    if (t == LB_TYPE_COUNT || lb_grid_type(g) != t || n <= 0 || n % group != 0 || n % 32 != 0)
        return lb_fail(err, LB_ERR_ARG, "grid %d-bit group %d %s does not fit type %s at row length %lld",
                       g.bits, g.group, g.symmetric ? "symmetric" : "asymmetric",
                       lb_type_name(t) ? lb_type_name(t) : "(none)", (long long)n);
    const int max_q = (1 << g.bits) - 1;
    for (int64_t i = 0; i < n; i++)
        if (q[i] > max_q) return lb_fail(err, LB_ERR_ARG, "grid code %d at %lld exceeds %d bits", q[i], (long long)i, g.bits);
    const int64_t n_groups = g.group == LB_GRID_PER_CHANNEL ? 1 : n / g.group;
    // lowbit's types store the zero as an integer code: it must be one.
    if (!is_ggml(t) && !g.symmetric)
        for (int64_t k = 0; k < n_groups; k++)
            if (!(zero[k] >= 0 && zero[k] <= max_q && zero[k] == floorf(zero[k])))
                return lb_fail(err, LB_ERR_ARG, "grid zero %g of group %lld (expected an integer in 0..%d)",
                               (double)zero[k], (long long)k, max_q);
    if (is_ggml(t)) {
        for (int64_t b = 0; b < n / 32; b++) pack_ggml_block(t, q + 32 * b, scale[b], zero ? zero[b] : 0, dst, b);
        return LB_OK;
    }
    pack_int_row(g, n, q, scale, zero, dst);
    return LB_OK;
}
