/*
 * sequential.c — layer-by-layer calibrated quantization (sequential.h).
 */
#include "sequential.h"

#include "internal.h"
#include "threadpool.h"
#include "types.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LAYER_MATRICES = 7 };

// The matrices of a layer, in a fixed order, and the input each one reads.
static struct lb_weight *matrix(struct lb_layer *l, int k) {
    struct lb_weight *all[LAYER_MATRICES] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->w_gate, &l->w_up, &l->w_down};
    return all[k];
}
static const enum seq_input matrix_input[LAYER_MATRICES] = {
    SEQ_ATTN_IN, SEQ_ATTN_IN, SEQ_ATTN_IN, SEQ_ATTN_OUT, SEQ_FFN_IN, SEQ_FFN_IN, SEQ_FFN_DOWN_IN};

struct seq_state {
    struct lb_model *m;
    struct lb_context *c;
    const struct seq_params *p;
    struct seq_tensor *t;
    int n_t;
    // Hidden states at the current layer's input: n_chunks × n_ctx × n_embd.
    float *cache;
    int n_chunks, n_ctx;
    // Ŵ in f32 for the current layer's matrices (rows × cols), used by its
    // later passes; freed when the layer is done.
    float *w_hat[LAYER_MATRICES];
    // The observer: which layer and inputs it collects.
    int layer;
    unsigned mask;                              // bit i: collect input i
    struct gptq_hessian h[SEQ_N_INPUTS];
    lb_status obs_st;                           // first failure inside the observer
    lb_error obs_err;
};

static struct seq_tensor *find(struct seq_state *S, const char *name) {
    for (int i = 0; i < S->n_t; i++)
        if (name && !strcmp(S->t[i].name, name)) return &S->t[i];
    return NULL;
}

// Called before every matrix product. q/k/v and gate/up share an input: it
// is counted once, on the first of them.
static void observe(void *user, int layer, const struct lb_weight *w, const float *x, int n) {
    struct seq_state *S = user;
    if (layer != S->layer || S->obs_st) return;
    struct lb_layer *l = &S->m->layers[layer];
    int in = w == &l->wq ? SEQ_ATTN_IN : w == &l->wo ? SEQ_ATTN_OUT : w == &l->w_gate ? SEQ_FFN_IN
           : w == &l->w_down ? SEQ_FFN_DOWN_IN : -1;
    if (in < 0 || !(S->mask & 1u << in)) return;
    S->obs_st = gptq_hessian_add(&S->h[in], x, n, &S->obs_err);
}

// What a pass over the cache runs, and what it leaves there.
enum pass {
    PASS_ATTN,        // attention only; the cache is kept
    PASS_ATTN_STORE,  // attention, whose output replaces the cache; then the FFN, whose output is dropped
    PASS_FFN,         // the FFN on the cache (attention's output); the cache is kept
    PASS_FFN_STORE,   // the FFN, whose output replaces the cache: the next layer's input
    PASS_LAYER,       // both halves; the cache is kept
    PASS_LAYER_STORE, // both halves, whose output replaces the cache
};

// Run (part of) layer il over every cached sample.
static lb_status run_layer(struct seq_state *S, int il, enum pass what, lb_error *err) {
    struct lb_context *c = S->c;
    const int d = S->m->hp.n_embd;
    const bool attn = what != PASS_FFN && what != PASS_FFN_STORE;
    const bool ffn = what != PASS_ATTN;
    for (int s = 0; s < S->n_chunks; s++) {
        float *hs = S->cache + (size_t)s * S->n_ctx * d;
        for (int pos = 0; pos < S->n_ctx; pos += c->n_batch) {
            const int nb = S->n_ctx - pos < c->n_batch ? S->n_ctx - pos : c->n_batch;
            const size_t bytes = sizeof(float) * (size_t)nb * d;
            memcpy(c->x, hs + (size_t)pos * d, bytes);
            lb_status st = attn ? forward_attention(c, il, pos, nb, err) : LB_OK;
            if (!st && what == PASS_ATTN_STORE) memcpy(hs + (size_t)pos * d, c->x, bytes);
            if (!st && ffn) st = forward_ffn(c, il, nb, err);
            if (st) return st;
            if (S->obs_st) return lb_fail(err, S->obs_st, "%s", S->obs_err.msg);
            if (what == PASS_FFN_STORE || what == PASS_LAYER_STORE) memcpy(hs + (size_t)pos * d, c->x, bytes);
        }
    }
    return LB_OK;
}

// Collect the Hessians of the inputs in `mask` for layer il over a pass.
static lb_status collect(struct seq_state *S, int il, unsigned mask, enum pass what, lb_error *err) {
    lb_status st = LB_OK;
    for (int i = 0; i < SEQ_N_INPUTS && !st; i++)
        if (mask & 1u << i) {
            gptq_hessian_free(&S->h[i]);
            const struct lb_weight *w = matrix(&S->m->layers[il], i == SEQ_ATTN_IN ? 0 : i == SEQ_ATTN_OUT ? 3
                                                                   : i == SEQ_FFN_IN ? 4 : 6);
            st = gptq_hessian_init(&S->h[i], w->cols, err);
        }
    if (st) return st;
    const struct lb_observer obs = {observe, S};
    S->layer = il;
    S->mask = mask;
    S->c->observer = &obs;
    st = run_layer(S, il, what, err);
    S->c->observer = NULL;
    S->mask = 0;
    if (st) return st;
    for (int i = 0; i < SEQ_N_INPUTS; i++)
        if (mask & 1u << i) {
            gptq_hessian_finish(&S->h[i], S->n_chunks);
            if (S->p->hessian_hook) S->p->hessian_hook(S->p->hook_user, il, (enum seq_input)i, S->h[i].h, S->h[i].n);
        }
    return LB_OK;
}

// Decode a whole matrix of any type into rows × cols floats.
static lb_status decode(const struct lb_weight *w, lb_type type, const void *data, float *out, lb_error *err) {
    const size_t row_bytes = lb_type_row_bytes(type, w->cols);
    for (int64_t r = 0; r < w->rows; r++)
        if (lb_type_to_float(type, (const char *)data + (size_t)r * row_bytes, out + r * w->cols, w->cols))
            return lb_fail(err, LB_ERR_UNSUPPORTED, "tensor '%s': type %s cannot be decoded", w->name,
                           lb_type_name(type));
    return LB_OK;
}

static double rel_error(const float *w, const float *w_hat, size_t n) {
    double e = 0.0, s = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)w[i] - w_hat[i];
        e += d * d;
        s += (double)w[i] * w[i];
    }
    return s > 0.0 ? sqrt(e / s) : 0.0;
}

// Write w (rows × cols floats) as `type` with its reference quantizer.
static lb_status quantize_rtn(const struct lb_weight *src, lb_type type, const float *w, void *out, lb_error *err) {
    const size_t row_bytes = lb_type_row_bytes(type, src->cols);
    for (int64_t r = 0; r < src->rows; r++)
        if (lb_type_from_float(type, w + r * src->cols, (char *)out + (size_t)r * row_bytes, src->cols))
            return lb_fail(err, LB_ERR_UNSUPPORTED, "tensor '%s': no quantizer writes %s rows of %lld", src->name,
                           lb_type_name(type), (long long)src->cols);
    return LB_OK;
}

// GPTQ on w with Hessian h (copied: it is shared), packed into t->type.
static lb_status quantize_gptq(struct seq_state *S, const struct lb_weight *src, struct seq_tensor *t, const float *w,
                               const double *h, lb_error *err) {
    // The profile's settings on this tensor's grid (act_order's static
    // groups then follow its group size).
    struct lb_gptq_params params = *S->p->gptq;
    if (t->grid.bits) params.grid = t->grid;
    const struct lb_gptq_params *gp = &params;
    const int64_t rows = src->rows, cols = src->cols;
    struct gptq_codes codes;
    lb_status st = gptq_codes_alloc(&codes, rows, cols, gp->grid, err);
    if (st) return st;
    double *hc = malloc(sizeof(double) * (size_t)(cols * cols));
    if (!hc) {
        gptq_codes_free(&codes);
        return lb_fail(err, LB_ERR_NOMEM, "tensor '%s': out of memory for its Hessian", src->name);
    }
    memcpy(hc, h, sizeof(double) * (size_t)(cols * cols));
    st = gptq_quantize(S->c->pool, gp, rows, cols, w, hc, &codes, err);
    free(hc);
    const size_t row_bytes = lb_type_row_bytes(t->type, cols);
    for (int64_t r = 0; !st && r < rows; r++)
        st = lb_grid_pack_row(t->type, gp->grid, cols, codes.q + r * cols, codes.scale + r * codes.n_groups,
                              codes.zero + r * codes.n_groups, (char *)t->data + (size_t)r * row_bytes, err);
    gptq_codes_free(&codes);
    if (st) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        return lb_fail(err, st, "tensor '%s': %s", src->name, msg);
    }
    return LB_OK;
}

// Quantize matrix k of layer il (its input's Hessian is collected) and put
// its Ŵ in place for the layer's later passes.
static lb_status quantize_matrix(struct seq_state *S, int il, int k, lb_error *err) {
    struct lb_model *m = S->m;
    const struct lb_weight *src = matrix(&m->src_layers[il], k);
    struct seq_tensor *t = find(S, src->name);
    if (LB_NEVER(!t)) return lb_fail(err, LB_ERR_ARG, "calibration: tensor '%s' has no plan", src->name);
    const int64_t rows = src->rows, cols = src->cols;
    const size_t n = (size_t)(rows * cols), row_bytes = lb_type_row_bytes(t->type, cols);
    const double *h = S->h[matrix_input[k]].h;
    float *w = malloc(sizeof(float) * n + 1), *w_hat = malloc(sizeof(float) * n + 1);
    t->data = malloc((size_t)rows * row_bytes + 1);
    lb_status st = LB_OK;
    if (!w || !w_hat || !t->data) {
        st = lb_fail(err, LB_ERR_NOMEM, "tensor '%s': out of memory", src->name);
        goto done;
    }
    if ((st = decode(src, src->type, src->data, w, err))) goto done;
    if (t->gptq) st = quantize_gptq(S, src, t, w, h, err);
    else if (t->type == src->type) memcpy(t->data, src->data, (size_t)rows * row_bytes);
    else st = quantize_rtn(src, t->type, w, t->data, err);
    if (st || (st = decode(src, t->type, t->data, w_hat, err))) goto done;
    t->rel_error = rel_error(w, w_hat, n);
    t->out_error = gptq_output_error(w, w_hat, rows, cols, h);
    t->out_error_rtn = -1.0;
    if (t->gptq && lb_traits(t->type)->from_float_ref) {
        // The same type by round-to-nearest, on the same inputs: GPTQ's gain.
        void *rtn = malloc((size_t)rows * row_bytes + 1);
        float *w_rtn = malloc(sizeof(float) * n + 1);
        if (rtn && w_rtn && !quantize_rtn(src, t->type, w, rtn, err) && !decode(src, t->type, rtn, w_rtn, err))
            t->out_error_rtn = gptq_output_error(w, w_rtn, rows, cols, h);
        free(rtn);
        free(w_rtn);
    }
    *matrix(&m->layers[il], k) =
        (struct lb_weight){.name = src->name, .type = LB_TYPE_F32, .rows = rows, .cols = cols, .data = w_hat};
    free(S->w_hat[k]);
    S->w_hat[k] = w_hat;
    w_hat = NULL;
done:
    free(w);
    free(w_hat);
    return st;
}

static lb_status quantize_input_group(struct seq_state *S, int il, enum seq_input in, lb_error *err) {
    for (int k = 0; k < LAYER_MATRICES; k++)
        if (matrix_input[k] == in) {
            lb_status st = quantize_matrix(S, il, k, err);
            if (st) return st;
        }
    return LB_OK;
}

// The passes, true_sequential: attention twice (q/k/v's input, o's input),
// attention a third time with every attention weight quantized, its output
// kept in the cache while the FFN sees gate/up's input, the FFN again for
// down's input, and once more to make the next layer's input: three
// attention and three FFN passes. Otherwise one full pass collects all four
// inputs and one more makes the next layer's.
static lb_status quantize_layer(struct seq_state *S, int il, lb_error *err) {
    lb_status st = LB_OK;
    if (S->p->true_sequential) {
        static const enum pass passes[SEQ_N_INPUTS] = {PASS_ATTN, PASS_ATTN, PASS_ATTN_STORE, PASS_FFN};
        for (int in = 0; in < SEQ_N_INPUTS && !st; in++)
            if (!(st = collect(S, il, 1u << in, passes[in], err)))
                st = quantize_input_group(S, il, (enum seq_input)in, err);
        if (!st) st = run_layer(S, il, PASS_FFN_STORE, err);
    } else {
        st = collect(S, il, (1u << SEQ_N_INPUTS) - 1, PASS_LAYER, err);
        for (int in = 0; in < SEQ_N_INPUTS && !st; in++) st = quantize_input_group(S, il, (enum seq_input)in, err);
        if (!st) st = run_layer(S, il, PASS_LAYER_STORE, err);
    }
    // Back to the file's weights; the quantized ones are in the plan's buffers.
    memcpy(&S->m->layers[il], &S->m->src_layers[il], sizeof S->m->layers[il]);
    for (int k = 0; k < LAYER_MATRICES; k++) {
        free(S->w_hat[k]);
        S->w_hat[k] = NULL;
    }
    for (int i = 0; i < SEQ_N_INPUTS; i++) gptq_hessian_free(&S->h[i]);
    return st;
}

// token_embd by its reference quantizer; the layers see it as the file will have it.
static lb_status quantize_embeddings(struct seq_state *S, lb_error *err) {
    struct lb_model *m = S->m;
    const struct lb_weight *src = &m->src_tok_embd;
    struct seq_tensor *t = find(S, src->name);
    if (!t) return LB_OK;
    const size_t n = (size_t)(src->rows * src->cols), row_bytes = lb_type_row_bytes(t->type, src->cols);
    float *w = malloc(sizeof(float) * n + 1), *w_hat = malloc(sizeof(float) * n + 1);
    t->data = malloc((size_t)src->rows * row_bytes + 1);
    lb_status st = LB_OK;
    if (!w || !w_hat || !t->data) st = lb_fail(err, LB_ERR_NOMEM, "tensor '%s': out of memory", src->name);
    if (!st) st = decode(src, src->type, src->data, w, err);
    if (!st) {
        if (t->type == src->type) memcpy(t->data, src->data, (size_t)src->rows * row_bytes);
        else st = quantize_rtn(src, t->type, w, t->data, err);
    }
    if (!st && !(st = decode(src, t->type, t->data, w_hat, err))) {
        t->rel_error = rel_error(w, w_hat, n);
        t->out_error = t->out_error_rtn = -1.0;
        m->tok_embd = (struct lb_weight){.name = src->name, .type = t->type, .rows = src->rows, .cols = src->cols,
                                         .data = t->data};
    }
    free(w);
    free(w_hat);
    return st;
}

// The embeddings of every calibration token: layer 0's input.
static void fill_cache(struct seq_state *S, const int32_t *tokens) {
    const struct lb_weight *e = &S->m->tok_embd;
    const int d = S->m->hp.n_embd;
    const size_t row_bytes = lb_type_row_bytes(e->type, d);
    for (size_t i = 0; i < (size_t)S->n_chunks * S->n_ctx; i++)
        lb_type_to_float(e->type, (const char *)e->data + (size_t)tokens[i] * row_bytes, S->cache + i * d, d);
}

lb_status seq_quantize(struct lb_model *m, struct seq_tensor *t, int n, const struct seq_params *p, int *n_samples,
                       lb_error *err) {
    struct seq_state S = {.m = m, .p = p, .t = t, .n_t = n, .n_ctx = p->calib.n_ctx};
    for (int i = 0; i < n; i++) t[i].data = NULL;
    for (int i = 0; i < n; i++)
        if (t[i].gptq && (!p->gptq || lb_grid_type(t[i].grid.bits ? t[i].grid : p->gptq->grid) != t[i].type))
            return lb_fail(err, LB_ERR_ARG, "calibration: tensor '%s' is planned as GPTQ into %s, which does not "
                           "hold the grid", t[i].name, lb_type_name(t[i].type) ? lb_type_name(t[i].type) : "no type");
    int32_t *tokens = NULL;
    lb_status st = calib_tokens(m, &p->calib, &tokens, &S.n_chunks, err);
    if (st) return st;
    lb_context_params cp = {.n_ctx = p->calib.n_ctx, .n_threads = p->calib.n_threads, .kv_type = LB_TYPE_F32};
    if ((st = lb_context_new(&S.c, m, &cp, err))) goto done;
    S.cache = malloc(sizeof(float) * (size_t)S.n_chunks * S.n_ctx * m->hp.n_embd + 1);
    if (!S.cache) {
        st = lb_fail(err, LB_ERR_NOMEM, "calibration: out of memory for %d x %d hidden states of %d", S.n_chunks,
                     S.n_ctx, m->hp.n_embd);
        goto done;
    }
    if ((st = quantize_embeddings(&S, err))) goto done;
    fill_cache(&S, tokens);
    for (int il = 0; il < m->hp.n_layer && !st; il++) {
        st = quantize_layer(&S, il, err);
        if (!st && p->progress && !p->progress((float)(il + 1) / (float)m->hp.n_layer, p->user))
            st = lb_fail(err, LB_ERR_CANCELLED, "calibration cancelled after %d of %d layers", il + 1, m->hp.n_layer);
    }
done:
    m->tok_embd = m->src_tok_embd;
    memcpy(m->layers, m->src_layers, sizeof *m->layers * (size_t)m->hp.n_layer);
    lb_context_free(S.c);
    free(S.cache);
    free(tokens);
    if (st) {
        for (int i = 0; i < n; i++) {
            free(t[i].data);
            t[i].data = NULL;
        }
        return st;
    }
    *n_samples = S.n_chunks;
    return LB_OK;
}
