/*
 * forward.c — the LLaMA-family transformer, one chunk of tokens at a time:
 * embeddings, then per layer RMSNorm → Q/K/V (+ qwen2 biases) → RoPE →
 * grouped-query attention over the KV cache → output projection → residual,
 * RMSNorm → SwiGLU FFN → residual; finally RMSNorm and the output head.
 *
 * Activations are f32 and every reduction accumulates in f32 (the dot products
 * of quantized types accumulate integers per block). The matrix products go
 * through matmul.c; the rest is cheap and written to read like the math.
 */
#include "model.h"

#include "attention.h"
#include "internal.h"
#include "kv.h"
#include "types.h"

#include <math.h>
#include <string.h>

// --- elementwise pieces --------------------------------------------------------

// out = x / sqrt(mean(x²) + eps) · w
static void rmsnorm(float *out, const float *x, const float *w, int n, float eps) {
    float ss = 0.0f;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    const float scale = 1.0f / sqrtf(ss / (float)n + eps);
    for (int i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
}

static void add_bias(float *x, const float *b, int rows, int n) {
    for (int t = 0; t < rows; t++)
        for (int i = 0; i < n; i++) x[(size_t)t * n + i] += b[i];
}

// cos/sin of pos/scale · base^(-2i/n_rot) for every position of the chunk.
static void rope_angles(struct lb_context *c, int32_t pos, int n) {
    const lb_hparams *hp = &c->model->hp;
    const int half = hp->n_rot / 2;
    for (int t = 0; t < n; t++) {
        const float p = (float)(pos + t) / hp->rope_scale;
        for (int i = 0; i < half; i++) {
            const float theta = p * c->inv_freq[i];
            c->rope_cos[t * half + i] = cosf(theta);
            c->rope_sin[t * half + i] = sinf(theta);
        }
    }
}

// Rotate the first n_rot dimensions of each of n_heads heads of one token.
// NORMAL pairs (x[2i], x[2i+1]); NEOX pairs (x[i], x[i + n_rot/2]).
static void rope(float *x, int n_heads, const lb_hparams *hp, const float *cs, const float *sn) {
    const int half = hp->n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * hp->head_dim;
        for (int i = 0; i < half; i++) {
            const int a = hp->rope_style == LB_ROPE_NEOX ? i : 2 * i;
            const int b = hp->rope_style == LB_ROPE_NEOX ? i + half : 2 * i + 1;
            const float x0 = v[a], x1 = v[b];
            v[a] = x0 * cs[i] - x1 * sn[i];
            v[b] = x0 * sn[i] + x1 * cs[i];
        }
    }
}

// --- one layer ------------------------------------------------------------------

// y = W·x, shown first to a calibration observer when one watches.
static lb_status linear(struct lb_context *c, int il, const struct lb_weight *w, const float *x, float *y, int n,
                        lb_error *err) {
    if (c->observer) c->observer->input(c->observer->user, il, w, x, n);
    return matmul(c->pool, &c->mm, w, x, y, n, err);
}

static lb_status attention_block(struct lb_context *c, int il, int32_t pos, int n, lb_error *err) {
    const struct lb_model *m = c->model;
    const lb_hparams *hp = &m->hp;
    const struct lb_layer *l = &m->layers[il];
    const int d = hp->n_embd, dq = hp->n_head * hp->head_dim, dkv = hp->n_head_kv * hp->head_dim;
    lb_status st;

    for (int t = 0; t < n; t++) rmsnorm(c->xb + (size_t)t * d, c->x + (size_t)t * d, l->attn_norm, d, hp->rms_eps);
    if ((st = linear(c, il, &l->wq, c->xb, c->q, n, err)) ||
        (st = linear(c, il, &l->wk, c->xb, c->k, n, err)) ||
        (st = linear(c, il, &l->wv, c->xb, c->v, n, err)))
        return st;
    if (l->bq) {
        add_bias(c->q, l->bq, n, dq);
        add_bias(c->k, l->bk, n, dkv);
        add_bias(c->v, l->bv, n, dkv);
    }
    const int half = hp->n_rot / 2;
    for (int t = 0; t < n; t++) {
        rope(c->q + (size_t)t * dq, hp->n_head, hp, c->rope_cos + t * half, c->rope_sin + t * half);
        rope(c->k + (size_t)t * dkv, hp->n_head_kv, hp, c->rope_cos + t * half, c->rope_sin + t * half);
        kv_store_row(c->kv_type, kv_key_row(c, il, pos + t), c->k + (size_t)t * dkv, dkv);
        kv_store_row(c->kv_type, kv_value_row(c, il, pos + t), c->v + (size_t)t * dkv, dkv);
    }
    attention(c, il, pos, n); // attention.c

    if ((st = linear(c, il, &l->wo, c->att, c->xb, n, err))) return st;
    for (size_t i = 0; i < (size_t)n * d; i++) c->x[i] += c->xb[i];
    return LB_OK;
}

static lb_status ffn_block(struct lb_context *c, int il, int n, lb_error *err) {
    const lb_hparams *hp = &c->model->hp;
    const struct lb_layer *l = &c->model->layers[il];
    const int d = hp->n_embd;
    lb_status st;

    for (int t = 0; t < n; t++) rmsnorm(c->xb + (size_t)t * d, c->x + (size_t)t * d, l->ffn_norm, d, hp->rms_eps);
    if ((st = linear(c, il, &l->w_gate, c->xb, c->hb, n, err)) ||
        (st = linear(c, il, &l->w_up, c->xb, c->hb2, n, err)))
        return st;
    // SwiGLU: silu(gate) · up
    for (size_t i = 0; i < (size_t)n * hp->n_ff; i++) {
        const float g = c->hb[i];
        c->hb[i] = g / (1.0f + expf(-g)) * c->hb2[i];
    }
    if ((st = linear(c, il, &l->w_down, c->hb, c->xb, n, err))) return st;
    for (size_t i = 0; i < (size_t)n * d; i++) c->x[i] += c->xb[i];
    return LB_OK;
}

// --- whole model -------------------------------------------------------------------

lb_status forward_chunk(struct lb_context *c, const int32_t *tokens, int32_t pos, int n, lb_error *err) {
    const struct lb_model *m = c->model;
    const int d = m->hp.n_embd;
    const size_t emb_row = lb_type_row_bytes(m->tok_embd.type, d);
    for (int t = 0; t < n; t++)
        lb_type_traits[m->tok_embd.type].to_float((const char *)m->tok_embd.data + (size_t)tokens[t] * emb_row,
                                                  c->x + (size_t)t * d, d);
    rope_angles(c, pos, n);
    for (int il = 0; il < m->hp.n_layer; il++) {
        lb_status st;
        if ((st = attention_block(c, il, pos, n, err)) || (st = ffn_block(c, il, n, err))) return st;
    }
    return LB_OK;
}

lb_status forward_attention(struct lb_context *c, int il, int32_t pos, int n, lb_error *err) {
    rope_angles(c, pos, n);
    return attention_block(c, il, pos, n, err);
}

lb_status forward_ffn(struct lb_context *c, int il, int n, lb_error *err) { return ffn_block(c, il, n, err); }

lb_status forward_logits(struct lb_context *c, const int *rows, int n_rows, float *logits, lb_error *err) {
    const struct lb_model *m = c->model;
    const int d = m->hp.n_embd;
    // xb is free now: gather the wanted rows, normed, at its front.
    for (int i = 0; i < n_rows; i++)
        rmsnorm(c->xb + (size_t)i * d, c->x + (size_t)rows[i] * d, m->output_norm, d, m->hp.rms_eps);
    if (c->observer) c->observer->input(c->observer->user, m->hp.n_layer, &m->output, c->xb, n_rows);
    return matmul(c->pool, &c->mm, &m->output, c->xb, logits, n_rows, err);
}
