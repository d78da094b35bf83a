/*
 * grid.c — packing weights that already lie on a quantization grid (grid.h)
 * into the tensor types that can hold that grid.
 *
 * The ggml types whose blocks are one group of 32:
 *   Q4_0  4 bits, symmetric:  x = d·(q − 8)
 *   Q5_0  5 bits, symmetric:  x = d·(q − 16)
 *   Q8_0  8 bits, symmetric:  x = d·qs, qs = q − 128 (ggml's int8)
 *   Q4_1  4 bits, min:        x = d·q + m, m = −d·zero
 *   Q5_1  5 bits, min:        x = d·q + m
 * d and m are fp16, so the packed weights equal the grid's up to that
 * rounding; the codes q are stored unchanged, which is what keeps a GPTQ
 * result GPTQ's after packing.
 */
#include <string.h>

#include "blocks.h"
#include "fp16.h"
#include "grid.h"
#include "internal.h"

lb_type lb_grid_type(struct lb_grid g) {
    if (g.group != 32) return LB_TYPE_COUNT;
    switch (g.bits) {
    case 4: return g.symmetric ? LB_TYPE_Q4_0 : LB_TYPE_Q4_1;
    case 5: return g.symmetric ? LB_TYPE_Q5_0 : LB_TYPE_Q5_1;
    case 8: return g.symmetric ? LB_TYPE_Q8_0 : LB_TYPE_COUNT;
    default: return LB_TYPE_COUNT;
    }
}

static void pack_nibbles(const uint8_t *q, uint8_t *qs) {
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
}

static void pack_fifth_bits(const uint8_t *q, uint8_t qh[4]) {
    uint32_t h = 0;
    for (int j = 0; j < 32; j++) h |= (uint32_t)(q[j] >> 4 & 1) << j;
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(h >> 8 * k);
}

lb_status lb_grid_pack_row(lb_type t, struct lb_grid g, int64_t n, const uint8_t *q,
                           const float *scale, const float *zero, void *dst, lb_error *err) {
    // t == LB_TYPE_COUNT is lb_grid_type's "no type holds this grid".
    if (t == LB_TYPE_COUNT || lb_grid_type(g) != t || n % 32 != 0)
        return lb_fail(err, LB_ERR_ARG, "grid %d-bit group %d %s does not fit type %s at row length %lld",
                            g.bits, g.group, g.symmetric ? "symmetric" : "asymmetric",
                            lb_type_name(t) ? lb_type_name(t) : "(none)", (long long)n);
    const int max_q = (1 << g.bits) - 1;
    for (int64_t i = 0; i < n; i++)
        if (q[i] > max_q) return lb_fail(err, LB_ERR_ARG, "grid code %d at %lld exceeds %d bits", q[i], (long long)i, g.bits);
    for (int64_t b = 0; b < n / 32; b++) {
        const uint8_t *qb = q + 32 * b;
        const lb_fp16 d = lb_f32_to_fp16(scale[b]);
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
            o->m = lb_f32_to_fp16(-scale[b] * zero[b]);
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
            o->m = lb_f32_to_fp16(-scale[b] * zero[b]);
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
    return LB_OK;
}
