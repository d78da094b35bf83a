/*
 * kernels_batch.c — the scalar small-batch kernels (the reference for the
 * AVX2 ones in kernels_avx2_batch.c) and the choice of table.
 *
 * Each kernel unpacks one weight block (or converts a piece of an F16 row)
 * into plain numbers once, then runs every activation row over it, keeping a
 * running sum per token. Per token it does exactly what the scalar vec_dot in
 * quants_*.c does: the same integer sum per block, the same float expression
 * to add it, blocks in the same order; so the results are bit-identical to n
 * separate calls of vec_dot (kernels_batch.h states the contract).
 */
#include "kernels_batch.h"

#include "blocks.h"
#include "fp16.h"
#include "quants.h"

enum {
    MAX_TOKENS = 64,   // tokens per pass over a row; larger batches take several passes
    F16_PIECE = 256,   // F16 elements converted at a time (a 1 KiB f32 buffer)
};

// Tokens [t0, t0 + nt) of a batch, nt <= MAX_TOKENS, so sums fit on the stack.
#define FOR_TOKEN_GROUPS(n, t0, nt) \
    for (int t0 = 0, nt; t0 < (n) && ((nt = (n) - t0 < MAX_TOKENS ? (n) - t0 : MAX_TOKENS), 1); t0 += nt)

// --- F16 × f32: as lb_vec_dot_f16_f32, one sum per token in element order ---------

static void dot_batch_f16(int64_t cols, const void *w, size_t w_stride, int rows, int quad, const void *a,
                          size_t a_stride, int n, float *y, size_t ldy) {
    (void)quad;
    float wf[F16_PIECE];
    for (int r = 0; r < rows; r++) {
        const lb_fp16 *x = (const lb_fp16 *)((const char *)w + (size_t)r * w_stride);
        FOR_TOKEN_GROUPS(n, t0, nt) {
            float sum[MAX_TOKENS] = {0};
            for (int64_t i0 = 0; i0 < cols; i0 += F16_PIECE) {
                const int len = cols - i0 < F16_PIECE ? (int)(cols - i0) : F16_PIECE;
                for (int i = 0; i < len; i++) wf[i] = lb_fp16_to_f32(x[i0 + i]);
                for (int t = 0; t < nt; t++) {
                    const float *yt = (const float *)((const char *)a + (size_t)(t0 + t) * a_stride) + i0;
                    float s = sum[t];
                    for (int i = 0; i < len; i++) s += wf[i] * yt[i];
                    sum[t] = s;
                }
            }
            for (int t = 0; t < nt; t++) y[(size_t)(t0 + t) * ldy + r] = sum[t];
        }
    }
}

// --- 32-element blocks against Q8_0 -------------------------------------------------

// Codes q[32] and scale d of one weight block against block i of every
// activation row: sum[t] += (float)Σ q·y_t · (d · d_t), as the scalar vec_dot.
static inline void q8_block_into(const int8_t q[QK8_0], float d, const void *a, size_t a_stride, int64_t i, int t0,
                                 int nt, float *sum) {
    for (int t = 0; t < nt; t++) {
        const block_q8_0 *yb = (const block_q8_0 *)((const char *)a + (size_t)(t0 + t) * a_stride) + i;
        int sumi = 0;
        for (int j = 0; j < QK8_0; j++) sumi += q[j] * yb->qs[j];
        sum[t] += (float)sumi * (d * lb_fp16_to_f32(yb->d));
    }
}

static void dot_batch_q8_0(int64_t cols, const void *w, size_t w_stride, int rows, int quad, const void *a,
                           size_t a_stride, int n, float *y, size_t ldy) {
    (void)quad;
    for (int r = 0; r < rows; r++) {
        const block_q8_0 *x = (const block_q8_0 *)((const char *)w + (size_t)r * w_stride);
        FOR_TOKEN_GROUPS(n, t0, nt) {
            float sum[MAX_TOKENS] = {0};
            for (int64_t i = 0; i < cols / QK8_0; i++)
                q8_block_into(x[i].qs, lb_fp16_to_f32(x[i].d), a, a_stride, i, t0, nt, sum);
            for (int t = 0; t < nt; t++) y[(size_t)(t0 + t) * ldy + r] = sum[t];
        }
    }
}

static void dot_batch_q4_0(int64_t cols, const void *w, size_t w_stride, int rows, int quad, const void *a,
                           size_t a_stride, int n, float *y, size_t ldy) {
    (void)quad;
    for (int r = 0; r < rows; r++) {
        const block_q4_0 *x = (const block_q4_0 *)((const char *)w + (size_t)r * w_stride);
        FOR_TOKEN_GROUPS(n, t0, nt) {
            float sum[MAX_TOKENS] = {0};
            for (int64_t i = 0; i < cols / QK4_0; i++) {
                int8_t q[QK4_0]; // low nibbles are elements 0-15, high nibbles 16-31
                for (int j = 0; j < QK4_0 / 2; j++) {
                    q[j] = (int8_t)((x[i].qs[j] & 0x0F) - 8);
                    q[j + QK4_0 / 2] = (int8_t)((x[i].qs[j] >> 4) - 8);
                }
                q8_block_into(q, lb_fp16_to_f32(x[i].d), a, a_stride, i, t0, nt, sum);
            }
            for (int t = 0; t < nt; t++) y[(size_t)(t0 + t) * ldy + r] = sum[t];
        }
    }
}

// --- k-quants against Q8_K ----------------------------------------------------------

static const block_q8_K *q8_K_row(const void *a, size_t a_stride, int t) {
    return (const block_q8_K *)((const char *)a + (size_t)t * a_stride);
}

static void dot_batch_q4_K(int64_t cols, const void *w, size_t w_stride, int rows, int quad, const void *a,
                           size_t a_stride, int n, float *y, size_t ldy) {
    (void)quad;
    for (int r = 0; r < rows; r++) {
        const block_q4_K *x = (const block_q4_K *)((const char *)w + (size_t)r * w_stride);
        FOR_TOKEN_GROUPS(n, t0, nt) {
            float sum[MAX_TOKENS] = {0};
            for (int64_t i = 0; i < cols / QK_K; i++) {
                uint8_t sc[8], m[8], q[QK_K]; // sub-block j: elements 32j..32j+31
                for (int j = 0; j < 8; j++) {
                    lb_get_scale_min_k4(j, x[i].scales, &sc[j], &m[j]);
                    for (int l = 0; l < 32; l++) q[32 * j + l] = (x[i].qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0xF;
                }
                const float xd = lb_fp16_to_f32(x[i].d), xdmin = lb_fp16_to_f32(x[i].dmin);
                for (int t = 0; t < nt; t++) {
                    const block_q8_K *yb = q8_K_row(a, a_stride, t0 + t) + i;
                    int isum = 0, summs = 0;
                    for (int j = 0; j < 8; j++) {
                        int dot = 0;
                        for (int l = 0; l < 32; l++) dot += q[32 * j + l] * yb->qs[32 * j + l];
                        isum += sc[j] * dot;
                        summs += m[j] * (yb->bsums[2 * j] + yb->bsums[2 * j + 1]);
                    }
                    const float d = yb->d * xd, dmin = yb->d * xdmin;
                    sum[t] += d * (float)isum - dmin * (float)summs;
                }
            }
            for (int t = 0; t < nt; t++) y[(size_t)(t0 + t) * ldy + r] = sum[t];
        }
    }
}

static void dot_batch_q6_K(int64_t cols, const void *w, size_t w_stride, int rows, int quad, const void *a,
                           size_t a_stride, int n, float *y, size_t ldy) {
    (void)quad;
    for (int r = 0; r < rows; r++) {
        const block_q6_K *x = (const block_q6_K *)((const char *)w + (size_t)r * w_stride);
        FOR_TOKEN_GROUPS(n, t0, nt) {
            float sum[MAX_TOKENS] = {0};
            for (int64_t i = 0; i < cols / QK_K; i++) {
                int8_t q[QK_K];
                for (int e = 0; e < QK_K; e++) { // as q6_K_code in quants_k.c
                    const int half = e / 128, rr = e % 128, l = rr % 32, quarter = rr / 32;
                    const int low = (x[i].ql[64 * half + l + 32 * (quarter & 1)] >> (4 * (quarter >> 1))) & 0xF;
                    const int high = (x[i].qh[32 * half + l] >> (2 * quarter)) & 3;
                    q[e] = (int8_t)((low | (high << 4)) - 32);
                }
                const float xd = lb_fp16_to_f32(x[i].d);
                for (int t = 0; t < nt; t++) {
                    const block_q8_K *yb = q8_K_row(a, a_stride, t0 + t) + i;
                    int isum = 0;
                    for (int j = 0; j < QK_K / 16; j++) {
                        int dot = 0;
                        for (int e = 16 * j; e < 16 * j + 16; e++) dot += q[e] * yb->qs[e];
                        isum += x[i].scales[j] * dot;
                    }
                    sum[t] += xd * yb->d * (float)isum;
                }
            }
            for (int t = 0; t < nt; t++) y[(size_t)(t0 + t) * ldy + r] = sum[t];
        }
    }
}

const lb_dot_batch_fn lb_dot_batch_scalar[LB_TYPE_COUNT] = {
    [LB_TYPE_F16] = dot_batch_f16,
    [LB_TYPE_Q8_0] = dot_batch_q8_0,
    [LB_TYPE_Q4_0] = dot_batch_q4_0,
    [LB_TYPE_Q4_K] = dot_batch_q4_K,
    [LB_TYPE_Q6_K] = dot_batch_q6_K,
};

#if !(defined(__x86_64__) || defined(__i386__))
const lb_dot_batch_fn lb_dot_batch_avx2[LB_TYPE_COUNT] = {0};
#endif

lb_dot_batch_fn lb_kernel_dot_batch(lb_type t) {
    if ((unsigned)t >= LB_TYPE_COUNT) return NULL;
    const struct lb_kernels *k = lb_kernels();
    return k->dot_batch ? k->dot_batch[t] : NULL;
}
