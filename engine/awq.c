/*
 * awq.c — AWQ and round-to-nearest on a grid (awq.h).
 *
 * The calibration activations of one layer are kept in f32 for all tokens
 * (samples × ctx rows of each width); the layer is evaluated here with its
 * own small float implementation (OpenBLAS sgemm for the products, the
 * attention per chunk and head on the thread pool) because the search runs
 * single modules of one layer many times with trial weights, which the
 * engine's forward pass (whole model, KV cache, quantized types) is not
 * built for. tests/test_awq.c checks this implementation against the
 * engine's forward pass.
 *
 * Where the time goes: the 20 trial quantizations of each group times a
 * module's forward over every calibration token; the FFN group dominates.
 */
#include "awq.h"

#include "fp16.h"
#include "internal.h"
#include "model.h"
#include "threadpool.h"
#include "types.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

extern void openblas_set_num_threads(int num_threads);

enum { CLIP_SAMPLE_TOKENS = 512, CLIP_STEPS = 10 }; // llm-awq: n_sample_token, max_shrink 0.5 × n_grid 20

// ----------------------------------------------------------------------------
// The grid (llm-awq's pseudo_quantize_tensor, with the fp16 scale a packed
// type stores)

static float fp16_round(float x) { return lb_fp16_to_f32(lb_f32_to_fp16(x)); }

void awq_grid_row(struct lb_grid g, const float *w, int64_t n, uint8_t *q, float *scale, float *zero, float *deq) {
    const int64_t gs = g.group > 0 ? g.group : n;
    const int max_q = (1 << g.bits) - 1;
    for (int64_t b = 0; b < n / gs; b++) {
        const float *x = w + b * gs;
        float d, z;
        if (g.symmetric) {
            // codes −2^(b−1) .. 2^(b−1) − 1, the largest |w| at 2^(b−1) − 1
            float amax = 0.0f;
            for (int64_t i = 0; i < gs; i++) amax = fmaxf(amax, fabsf(x[i]));
            d = fp16_round(fmaxf(amax, 1e-5f) / (float)((1 << (g.bits - 1)) - 1));
            z = (float)(1 << (g.bits - 1));
        } else {
            // The range always holds 0 (as GPTQ's quantizer forces; llm-awq does not): with an
            // integer zero point in [0, 2^b − 1], a group whose values all have one sign would
            // otherwise have its zero clamped and its far end cut off.
            float mn = 0.0f, mx = 0.0f;
            for (int64_t i = 0; i < gs; i++) {
                mn = fminf(mn, x[i]);
                mx = fmaxf(mx, x[i]);
            }
            d = fp16_round(fmaxf(mx - mn, 1e-5f) / (float)max_q);
            z = fminf(fmaxf(-nearbyintf(mn / d), 0.0f), (float)max_q);
        }
        scale[b] = d;
        zero[b] = z;
        for (int64_t i = 0; i < gs; i++) {
            const float c = fminf(fmaxf(nearbyintf(x[i] / d) + z, 0.0f), (float)max_q);
            q[b * gs + i] = (uint8_t)c;
            if (deq) deq[b * gs + i] = d * (c - z);
        }
    }
}

// out = Qgrid(W·diag(s)) / diag(s), row by row (s NULL: plain rounding).
static void fake_quant(struct lb_grid g, const float *W, int64_t rows, int64_t cols, const float *s, float *out,
                       uint8_t *qbuf, float *sbuf, float *zbuf, float *row) {
    for (int64_t r = 0; r < rows; r++) {
        const float *w = W + r * cols;
        for (int64_t j = 0; j < cols; j++) row[j] = s ? w[j] * s[j] : w[j];
        awq_grid_row(g, row, cols, qbuf, sbuf, zbuf, out + r * cols);
        if (s)
            for (int64_t j = 0; j < cols; j++) out[r * cols + j] /= s[j];
    }
}

// ----------------------------------------------------------------------------
// Layer weights

static lb_status load_matrix(const struct lb_weight *w, float **out, lb_error *err) {
    *out = malloc((size_t)(w->rows * w->cols) * sizeof(float));
    if (!*out) return lb_fail(err, LB_ERR_NOMEM, "awq: out of memory for '%s'", w->name ? w->name : "?");
    const size_t rb = lb_type_row_bytes(w->type, w->cols);
    for (int64_t r = 0; r < w->rows; r++)
        lb_type_to_float(w->type, (const char *)w->data + (size_t)r * rb, *out + r * w->cols, w->cols);
    return LB_OK;
}

static lb_status copy_vector(const float *v, int64_t n, float **out, lb_error *err) {
    *out = NULL;
    if (!v) return LB_OK;
    if (!(*out = malloc((size_t)n * sizeof(float)))) return lb_fail(err, LB_ERR_NOMEM, "awq: out of memory");
    memcpy(*out, v, (size_t)n * sizeof(float));
    return LB_OK;
}

void awq_layer_free(struct awq_layer *L) {
    float *all[] = {L->wq, L->wk, L->wv, L->wo, L->wg, L->wu, L->wd, L->attn_norm, L->ffn_norm, L->bq, L->bk, L->bv};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    memset(L, 0, sizeof *L);
}

lb_status awq_layer_load(const struct lb_model *m, int il, struct awq_layer *L, lb_error *err) {
    memset(L, 0, sizeof *L);
    const struct lb_layer *l = &m->src_layers[il];
    const lb_hparams *hp = &m->hp;
    const int64_t dq = (int64_t)hp->n_head * hp->head_dim, dkv = (int64_t)hp->n_head_kv * hp->head_dim;
    lb_status st;
    if ((st = load_matrix(&l->wq, &L->wq, err)) || (st = load_matrix(&l->wk, &L->wk, err)) ||
        (st = load_matrix(&l->wv, &L->wv, err)) || (st = load_matrix(&l->wo, &L->wo, err)) ||
        (st = load_matrix(&l->w_gate, &L->wg, err)) || (st = load_matrix(&l->w_up, &L->wu, err)) ||
        (st = load_matrix(&l->w_down, &L->wd, err)) || (st = copy_vector(l->attn_norm, hp->n_embd, &L->attn_norm, err)) ||
        (st = copy_vector(l->ffn_norm, hp->n_embd, &L->ffn_norm, err)) || (st = copy_vector(l->bq, dq, &L->bq, err)) ||
        (st = copy_vector(l->bk, dkv, &L->bk, err)) || (st = copy_vector(l->bv, dkv, &L->bv, err))) {
        awq_layer_free(L);
        return st;
    }
    return LB_OK;
}

static void scale_columns(float *W, int64_t rows, int64_t cols, const float *s) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++) W[r * cols + j] *= s[j];
}

static void divide_rows(float *W, int64_t rows, int64_t cols, const float *s) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++) W[r * cols + j] /= s[r];
}

void awq_fold(const lb_hparams *hp, struct awq_layer *L, float *const s[AWQ_GROUPS]) {
    const int64_t d = hp->n_embd, ff = hp->n_ff, hd = hp->head_dim;
    const int64_t dq = (int64_t)hp->n_head * hd, dkv = (int64_t)hp->n_head_kv * hd;
    if (s[0]) {
        for (int64_t j = 0; j < d; j++) L->attn_norm[j] /= s[0][j];
        scale_columns(L->wq, dq, d, s[0]);
        scale_columns(L->wk, dkv, d, s[0]);
        scale_columns(L->wv, dkv, d, s[0]);
    }
    if (s[1]) {
        divide_rows(L->wv, dkv, d, s[1]);
        if (L->bv)
            for (int64_t r = 0; r < dkv; r++) L->bv[r] /= s[1][r];
        // Output column j of the attention holds query head j / hd, which reads KV head (j / hd) / n_gqa.
        const int64_t gqa = hp->n_head / hp->n_head_kv;
        for (int64_t r = 0; r < d; r++)
            for (int64_t j = 0; j < dq; j++) L->wo[r * dq + j] *= s[1][(j / hd / gqa) * hd + j % hd];
    }
    if (s[2]) {
        for (int64_t j = 0; j < d; j++) L->ffn_norm[j] /= s[2][j];
        scale_columns(L->wg, ff, d, s[2]);
        scale_columns(L->wu, ff, d, s[2]);
    }
    if (s[3]) {
        divide_rows(L->wu, ff, d, s[3]);
        scale_columns(L->wd, d, ff, s[3]);
    }
}

// ----------------------------------------------------------------------------
// The float layer, over N = n_chunks × T tokens (each chunk at positions 0..T−1)

struct acts {
    const lb_hparams *hp;
    struct lb_threadpool *pool;
    int64_t N;
    int T, n_chunks;
    float *cos, *sin;                    // (T, n_rot/2)
    // The float model's activations of the current layer.
    float *x;                            // (N, d) layer input; becomes the next layer's input
    float *xn, *q, *k, *v, *att, *o;     // normed input (N, d), q (N, dq), k, v (N, dkv), attention (N, dq), o (N, d)
    float *xn2, *g, *u, *h, *dn;         // FFN: normed input (N, d), gate, up, silu(gate)·up (N, ff), down (N, d)
    // Trial outputs of the search.
    float *q2, *k2, *v2, *att2, *o2, *g2, *u2, *h2, *d2;
};

static void rmsnorm_rows(float *out, const float *x, const float *w, int64_t N, int64_t d, float eps) {
    for (int64_t t = 0; t < N; t++) {
        const float *xt = x + t * d;
        float ss = 0.0f;
        for (int64_t i = 0; i < d; i++) ss += xt[i] * xt[i];
        const float scale = 1.0f / sqrtf(ss / (float)d + eps);
        for (int64_t i = 0; i < d; i++) out[t * d + i] = xt[i] * scale * w[i];
    }
}

// Y (N, rows) = X (N, cols) · Wᵀ (+ b).
static void linear(const struct acts *a, float *Y, const float *X, const float *W, const float *b, int64_t rows,
                   int64_t cols) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)a->N, (int)rows, (int)cols, 1.0f, X, (int)cols, W,
                (int)cols, 0.0f, Y, (int)rows);
    if (b)
        for (int64_t t = 0; t < a->N; t++)
            for (int64_t r = 0; r < rows; r++) Y[t * rows + r] += b[r];
}

// RoPE as forward.c: NORMAL pairs (2i, 2i+1), NEOX pairs (i, i + n_rot/2).
static void rope_rows(const struct acts *a, float *x, int n_heads) {
    const lb_hparams *hp = a->hp;
    const int half = hp->n_rot / 2, width = n_heads * hp->head_dim;
    for (int64_t t = 0; t < a->N; t++) {
        const float *cs = a->cos + (t % a->T) * half, *sn = a->sin + (t % a->T) * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + t * width + (int64_t)h * hp->head_dim;
            for (int i = 0; i < half; i++) {
                const int i0 = hp->rope_style == LB_ROPE_NEOX ? i : 2 * i;
                const int i1 = hp->rope_style == LB_ROPE_NEOX ? i + half : 2 * i + 1;
                const float x0 = v[i0], x1 = v[i1];
                v[i0] = x0 * cs[i] - x1 * sn[i];
                v[i1] = x0 * sn[i] + x1 * cs[i];
            }
        }
    }
}

struct attn_task {
    const struct acts *a;
    const float *q, *k, *v;
    float *out;
};

// Causal softmax attention of one (chunk, query head).
static void attn_one(void *arg, int64_t task) {
    const struct attn_task *at = arg;
    const struct acts *a = at->a;
    const lb_hparams *hp = a->hp;
    const int hd = hp->head_dim, dq = hp->n_head * hd, dkv = hp->n_head_kv * hd;
    const int64_t c = task / hp->n_head;
    const int h = (int)(task % hp->n_head), kvh = h / (hp->n_head / hp->n_head_kv);
    const float scale = 1.0f / sqrtf((float)hd);
    float *scores = malloc((size_t)a->T * sizeof *scores);
    if (!scores) return; // leaves zeros: the loss becomes large, never chosen; allocation is 4·T bytes
    const int64_t base = c * a->T;
    for (int t = 0; t < a->T; t++) {
        const float *q = at->q + (base + t) * dq + (int64_t)h * hd;
        float max = -INFINITY;
        for (int p = 0; p <= t; p++) {
            const float *k = at->k + (base + p) * dkv + (int64_t)kvh * hd;
            float s = 0.0f;
            for (int i = 0; i < hd; i++) s += q[i] * k[i];
            scores[p] = s * scale;
            max = fmaxf(max, scores[p]);
        }
        float sum = 0.0f;
        for (int p = 0; p <= t; p++) sum += (scores[p] = expf(scores[p] - max));
        float *out = at->out + (base + t) * dq + (int64_t)h * hd;
        memset(out, 0, (size_t)hd * sizeof *out);
        for (int p = 0; p <= t; p++) {
            const float *v = at->v + (base + p) * dkv + (int64_t)kvh * hd;
            const float w = scores[p] / sum;
            for (int i = 0; i < hd; i++) out[i] += w * v[i];
        }
    }
    free(scores);
}

// The attention module from its normed input: q, k, v (written to qb, kb,
// vb), RoPE, attention (attb), output projection (ob).
static void attention_module(const struct acts *a, const struct awq_layer *L, const float *wq, const float *wk,
                             const float *wv, const float *wo, float *qb, float *kb, float *vb, float *attb, float *ob) {
    const lb_hparams *hp = a->hp;
    const int64_t d = hp->n_embd, dq = (int64_t)hp->n_head * hp->head_dim, dkv = (int64_t)hp->n_head_kv * hp->head_dim;
    linear(a, qb, a->xn, wq, L->bq, dq, d);
    linear(a, kb, a->xn, wk, L->bk, dkv, d);
    linear(a, vb, a->xn, wv, L->bv, dkv, d);
    rope_rows(a, qb, hp->n_head);
    rope_rows(a, kb, hp->n_head_kv);
    struct attn_task at = {a, qb, kb, vb, attb};
    threadpool_run(a->pool, attn_one, &at, (int64_t)a->n_chunks * hp->n_head);
    linear(a, ob, attb, wo, NULL, d, dq);
}

// The FFN from its normed input: gate (gb), up (ub), silu(gate)·up (hb), down (db).
static void ffn_module(const struct acts *a, const float *wg, const float *wu, const float *wd, float *gb, float *ub,
                       float *hb, float *db) {
    const int64_t d = a->hp->n_embd, ff = a->hp->n_ff;
    linear(a, gb, a->xn2, wg, NULL, ff, d);
    linear(a, ub, a->xn2, wu, NULL, ff, d);
    for (int64_t i = 0; i < a->N * ff; i++) hb[i] = gb[i] / (1.0f + expf(-gb[i])) * ub[i];
    linear(a, db, hb, wd, NULL, d, ff);
}

// The float layer on a->x: every intermediate kept, a->x advanced to the layer's output.
static void layer_forward(struct acts *a, const struct awq_layer *L) {
    const lb_hparams *hp = a->hp;
    const int64_t d = hp->n_embd;
    rmsnorm_rows(a->xn, a->x, L->attn_norm, a->N, d, hp->rms_eps);
    attention_module(a, L, L->wq, L->wk, L->wv, L->wo, a->q, a->k, a->v, a->att, a->o);
    for (int64_t i = 0; i < a->N * d; i++) a->x[i] += a->o[i];
    rmsnorm_rows(a->xn2, a->x, L->ffn_norm, a->N, d, hp->rms_eps);
    ffn_module(a, L->wg, L->wu, L->wd, a->g, a->u, a->h, a->dn);
    for (int64_t i = 0; i < a->N * d; i++) a->x[i] += a->dn[i];
}

static void free_acts(struct acts *a) {
    float *all[] = {a->cos, a->sin, a->x, a->xn, a->q, a->k, a->v, a->att, a->o, a->xn2, a->g, a->u, a->h, a->dn,
                    a->q2, a->k2, a->v2, a->att2, a->o2, a->g2, a->u2, a->h2, a->d2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

static lb_status alloc_acts(struct acts *a, const lb_hparams *hp, int n_chunks, int T, lb_error *err) {
    const int64_t N = (int64_t)n_chunks * T, d = hp->n_embd, ff = hp->n_ff;
    const int64_t dq = (int64_t)hp->n_head * hp->head_dim, dkv = (int64_t)hp->n_head_kv * hp->head_dim;
    a->hp = hp;
    a->N = N;
    a->T = T;
    a->n_chunks = n_chunks;
    struct { float **p; int64_t n; } bufs[] = {
        {&a->cos, (int64_t)T * (hp->n_rot / 2)}, {&a->sin, (int64_t)T * (hp->n_rot / 2)},
        {&a->x, N * d}, {&a->xn, N * d}, {&a->q, N * dq}, {&a->k, N * dkv}, {&a->v, N * dkv}, {&a->att, N * dq},
        {&a->o, N * d}, {&a->xn2, N * d}, {&a->g, N * ff}, {&a->u, N * ff}, {&a->h, N * ff}, {&a->dn, N * d},
        {&a->q2, N * dq}, {&a->k2, N * dkv}, {&a->v2, N * dkv}, {&a->att2, N * dq}, {&a->o2, N * d},
        {&a->g2, N * ff}, {&a->u2, N * ff}, {&a->h2, N * ff}, {&a->d2, N * d},
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        total += (size_t)bufs[i].n * sizeof(float);
        if (!(*bufs[i].p = malloc((size_t)(bufs[i].n > 0 ? bufs[i].n : 1) * sizeof(float))))
            return lb_fail(err, LB_ERR_NOMEM, "awq: out of memory for the activations of %lld calibration tokens "
                           "(%.0f MiB; use fewer --calib-samples)", (long long)N, (double)total / 1048576.0);
    }
    const int half = hp->n_rot / 2;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            const float inv_freq = (float)pow(hp->rope_base, -2.0 * i / hp->n_rot);
            const float theta = (float)t / hp->rope_scale * inv_freq;
            a->cos[t * half + i] = cosf(theta);
            a->sin[t * half + i] = sinf(theta);
        }
    return LB_OK;
}

// ----------------------------------------------------------------------------
// The scale search

static double mse(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return s / (double)n;
}

static void mean_abs(const float *x, int64_t N, int64_t cols, float *out) {
    double *acc = calloc((size_t)cols, sizeof *acc);
    if (!acc) { // fall back to float accumulation rather than fail the whole run over 8·cols bytes
        for (int64_t j = 0; j < cols; j++) out[j] = 0.0f;
        for (int64_t t = 0; t < N; t++)
            for (int64_t j = 0; j < cols; j++) out[j] += fabsf(x[t * cols + j]) / (float)N;
        return;
    }
    for (int64_t t = 0; t < N; t++)
        for (int64_t j = 0; j < cols; j++) acc[j] += fabsf(x[t * cols + j]);
    for (int64_t j = 0; j < cols; j++) out[j] = (float)(acc[j] / (double)N);
    free(acc);
}

// s = max(x_mean^α, 1e-4) / sqrt(max s · min s)  (llm-awq auto_scale.py)
static void make_scales(const float *x_mean, int64_t n, float alpha, float *s) {
    float mx = 0.0f, mn = FLT_MAX;
    for (int64_t j = 0; j < n; j++) {
        s[j] = fmaxf(powf(x_mean[j], alpha), 1e-4f);
        mx = fmaxf(mx, s[j]);
        mn = fminf(mn, s[j]);
    }
    const float norm = sqrtf(mx * mn);
    for (int64_t j = 0; j < n; j++) s[j] /= norm;
}

struct scratch {
    float *w[3];        // trial weights, each sized for the largest matrix
    uint8_t *q;         // codes of one row
    float *gs, *gz;     // one row's group scales and zeros
    float *row;
};

// Which matrices of a layer are written on the grid, and on which: the
// method's, or the smaller group its fallback holds for rows that do not fit
// it (grid.h, lb_grid_row_grid).
struct on_grid {
    bool q, k, v, o, g, u, d;
    struct lb_grid gq, gk, gv, go, gg, gu, gd;
};

// One group's search: for each α, fake-quantize the group's grid matrices
// (n of them, W[i] rows[i] × cols) with s, evaluate, keep the best α.
typedef double (*eval_fn)(struct acts *a, const struct awq_layer *L, float *const trial[3]);

static void search_group(struct acts *a, const struct awq_layer *L, const struct lb_grid grid[3], const float *x, int64_t cols,
                         const float *const W[3], const int64_t rows[3], const bool quant[3], int n, eval_fn eval,
                         struct scratch *sc, float *best_s, float *alpha_out, double *loss_out, double *loss_rtn) {
    float *x_mean = malloc((size_t)cols * sizeof *x_mean), *s = malloc((size_t)cols * sizeof *s);
    if (!x_mean || !s) { // keep s = 1 (round to nearest): correct, only not searched
        for (int64_t j = 0; j < cols; j++) best_s[j] = 1.0f;
        *alpha_out = 0.0f;
        *loss_out = *loss_rtn = NAN;
        free(x_mean);
        free(s);
        return;
    }
    mean_abs(x, a->N, cols, x_mean);
    double best = INFINITY;
    for (int i = 0; i < AWQ_N_GRID; i++) {
        const float alpha = (float)i / AWQ_N_GRID;
        make_scales(x_mean, cols, alpha, s);
        float *trial[3] = {NULL, NULL, NULL};
        for (int k = 0; k < n; k++) {
            trial[k] = (float *)W[k];
            if (!quant[k]) continue;
            fake_quant(grid[k], W[k], rows[k], cols, s, sc->w[k], sc->q, sc->gs, sc->gz, sc->row);
            trial[k] = sc->w[k];
        }
        const double loss = eval(a, L, trial);
        if (i == 0) *loss_rtn = loss;
        if (loss < best) {
            best = loss;
            *alpha_out = alpha;
            memcpy(best_s, s, (size_t)cols * sizeof *s);
        }
    }
    *loss_out = best;
    free(x_mean);
    free(s);
}

static double eval_qkv(struct acts *a, const struct awq_layer *L, float *const t[3]) {
    attention_module(a, L, t[0], t[1], t[2], L->wo, a->q2, a->k2, a->v2, a->att2, a->o2);
    return mse(a->o, a->o2, a->N * a->hp->n_embd);
}

static double eval_o(struct acts *a, const struct awq_layer *L, float *const t[3]) {
    (void)L;
    const int64_t d = a->hp->n_embd, dq = (int64_t)a->hp->n_head * a->hp->head_dim;
    linear(a, a->o2, a->att, t[0], NULL, d, dq);
    return mse(a->o, a->o2, a->N * d);
}

static double eval_gate_up(struct acts *a, const struct awq_layer *L, float *const t[3]) {
    ffn_module(a, t[0], t[1], L->wd, a->g2, a->u2, a->h2, a->d2);
    return mse(a->dn, a->d2, a->N * a->hp->n_embd);
}

static double eval_down(struct acts *a, const struct awq_layer *L, float *const t[3]) {
    (void)L;
    const int64_t d = a->hp->n_embd, ff = a->hp->n_ff;
    linear(a, a->d2, a->h, t[0], NULL, d, ff);
    return mse(a->dn, a->d2, a->N * d);
}

// ----------------------------------------------------------------------------
// The clipping search (llm-awq auto_clip.py), with the error of a group's
// partial dot products written as a quadratic form: mean_t (Σ_j x_tj δ_j)² =
// δᵀ G δ / T with G the group's Gram matrix over the sampled tokens, which
// gives the same numbers without re-reading the tokens for every trial.

static lb_status clip_matrix(struct lb_grid grid, float *W, int64_t rows, int64_t cols, const float *x, int64_t N,
                             lb_error *err) {
    const int64_t gs = grid.group > 0 ? grid.group : cols, n_groups = cols / gs;
    const int64_t stride = N / CLIP_SAMPLE_TOKENS > 0 ? N / CLIP_SAMPLE_TOKENS : 1;
    const int64_t n_tok = (N + stride - 1) / stride;
    double *G = calloc((size_t)(n_groups * gs * gs), sizeof *G);
    float *trial = malloc((size_t)gs * sizeof *trial), *deq = malloc((size_t)gs * sizeof *deq);
    double *delta = malloc((size_t)gs * sizeof *delta);
    uint8_t *q = malloc((size_t)gs);
    if (!G || !trial || !deq || !delta || !q) {
        free(G), free(trial), free(deq), free(delta), free(q);
        return lb_fail(err, LB_ERR_NOMEM, "awq: out of memory for the clipping search (%lld columns)", (long long)cols);
    }
    for (int64_t t = 0; t < N; t += stride) {
        const float *xt = x + t * cols;
        for (int64_t b = 0; b < n_groups; b++) {
            double *Gb = G + b * gs * gs;
            const float *xb = xt + b * gs;
            for (int64_t i = 0; i < gs; i++)
                for (int64_t j = 0; j < gs; j++) Gb[i * gs + j] += (double)xb[i] * xb[j];
        }
    }
    const struct lb_grid one = {grid.bits, (int)gs, grid.symmetric};
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t b = 0; b < n_groups; b++) {
            float *w = W + r * cols + b * gs;
            const double *Gb = G + b * gs * gs;
            float org_max = 0.0f;
            for (int64_t i = 0; i < gs; i++) org_max = fmaxf(org_max, fabsf(w[i]));
            double best_err = INFINITY;
            float best_max = org_max;
            for (int step = 0; step < CLIP_STEPS; step++) {
                const float max_val = org_max * (1.0f - (float)step / AWQ_N_GRID);
                for (int64_t i = 0; i < gs; i++) trial[i] = fminf(fmaxf(w[i], -max_val), max_val);
                float sc, zr;
                awq_grid_row(one, trial, gs, q, &sc, &zr, deq);
                for (int64_t i = 0; i < gs; i++) delta[i] = (double)deq[i] - w[i];
                double e = 0;
                for (int64_t i = 0; i < gs; i++) {
                    double row = 0;
                    for (int64_t j = 0; j < gs; j++) row += Gb[i * gs + j] * delta[j];
                    e += delta[i] * row;
                }
                e /= (double)n_tok;
                if (e < best_err) {
                    best_err = e;
                    best_max = max_val;
                }
            }
            for (int64_t i = 0; i < gs; i++) w[i] = fminf(fmaxf(w[i], -best_max), best_max);
        }
    }
    free(G), free(trial), free(deq), free(delta), free(q);
    return LB_OK;
}

// ----------------------------------------------------------------------------
// Writing a layer

struct writer {
    struct lb_grid grid;
    awq_type_fn type_of;
    awq_emit_fn emit;
    void *user;
};

// Quantize matrix W (the scaled weights) as `type` and emit it under `name`;
// the relative error is measured against `orig` after undoing the column
// scales cs (may be NULL) and the row scales rs (may be NULL).
static lb_status write_matrix(const struct writer *wr, const struct lb_weight *src, const float *W, const float *orig,
                              const float *cs, const float *rs, lb_error *err) {
    const int64_t rows = src->rows, cols = src->cols;
    const lb_type type = wr->type_of(wr->user, src->name, cols);
    const size_t rb = lb_type_row_bytes(type, cols);
    char *out = malloc(rb * (size_t)rows);
    float *deq = malloc((size_t)cols * sizeof *deq), *sc = malloc((size_t)cols * sizeof *sc),
          *zr = malloc((size_t)cols * sizeof *zr);
    uint8_t *q = malloc((size_t)cols);
    lb_status st = LB_OK;
    if (!out || !deq || !sc || !zr || !q || rb == 0) {
        st = lb_fail(err, LB_ERR_NOMEM, "awq: out of memory writing '%s'", src->name);
        goto done;
    }
    struct lb_grid g;
    const bool grid = lb_grid_row_grid(wr->grid, type, cols, &g) && cols % (g.group > 0 ? g.group : 32) == 0;
    double e2 = 0, n2 = 0;
    for (int64_t r = 0; r < rows; r++) {
        const float *w = W + r * cols;
        char *dst = out + (size_t)r * rb;
        if (grid) {
            awq_grid_row(g, w, cols, q, sc, zr, NULL);
            if ((st = lb_grid_pack_row(type, g, cols, q, sc, zr, dst, err))) goto done;
        } else {
            lb_type_from_float(type, w, dst, cols);
        }
        lb_type_to_float(type, dst, deq, cols);
        for (int64_t j = 0; j < cols; j++) {
            const double eff = (double)deq[j] / (cs ? cs[j] : 1.0f) * (rs ? rs[r] : 1.0f);
            const double o = orig[r * cols + j];
            e2 += (eff - o) * (eff - o);
            n2 += o * o;
        }
    }
    st = wr->emit(wr->user, src->name, type, 2, (const int64_t[]){cols, rows}, out, rb * (size_t)rows,
                  n2 > 0 ? sqrt(e2 / n2) : 0, err);
    out = NULL; // emitted: the callee owns it, even on failure
done:
    free(out), free(deq), free(sc), free(zr), free(q);
    return st;
}

static lb_status write_vector(const struct writer *wr, const char *fmt, int il, const float *v, int64_t n,
                              lb_error *err) {
    char name[96];
    snprintf(name, sizeof name, fmt, il);
    float *copy = malloc((size_t)n * sizeof *copy);
    if (!copy) return lb_fail(err, LB_ERR_NOMEM, "awq: out of memory writing '%s'", name);
    memcpy(copy, v, (size_t)n * sizeof *copy);
    return wr->emit(wr->user, name, LB_TYPE_F32, 1, (const int64_t[]){n}, copy, (size_t)n * sizeof *copy, 0, err);
}

// The embeddings of tokens[0..N) into a->x.
static void embed(struct acts *a, const struct lb_model *m, const int32_t *tokens) {
    const int64_t d = m->hp.n_embd;
    const size_t emb_row = lb_type_row_bytes(m->src_tok_embd.type, d);
    for (int64_t t = 0; t < a->N; t++)
        lb_type_to_float(m->src_tok_embd.type, (const char *)m->src_tok_embd.data + (size_t)tokens[t] * emb_row,
                         a->x + t * d, d);
}

lb_status awq_hidden_states(struct lb_model *m, const int32_t *tokens, int T, struct lb_threadpool *pool,
                            float *out, lb_error *err) {
    struct acts a = {.pool = pool};
    struct awq_layer L = {0};
    openblas_set_num_threads(threadpool_size(pool));
    lb_status st = alloc_acts(&a, &m->hp, 1, T, err);
    if (!st) embed(&a, m, tokens);
    for (int il = 0; !st && il < m->hp.n_layer; il++) {
        if (!(st = awq_layer_load(m, il, &L, err))) layer_forward(&a, &L);
        awq_layer_free(&L);
    }
    if (!st) memcpy(out, a.x, (size_t)T * (size_t)m->hp.n_embd * sizeof *out);
    free_acts(&a);
    return st;
}

// ----------------------------------------------------------------------------
// The whole model

lb_status awq_quantize(struct lb_model *m, const struct awq_params *p, awq_type_fn type_of, awq_emit_fn emit,
                       void *user, struct lb_threadpool *pool, struct awq_layer_report *report, lb_error *err) {
    const lb_hparams *hp = &m->hp;
    const int64_t d = hp->n_embd, ff = hp->n_ff;
    const int64_t dq = (int64_t)hp->n_head * hp->head_dim, dkv = (int64_t)hp->n_head_kv * hp->head_dim;
    const struct writer wr = {p->grid, type_of, emit, user};
    struct acts a = {.pool = pool};
    struct awq_layer L = {0}, O = {0};
    struct scratch sc = {0};
    float *s[AWQ_GROUPS] = {0};
    int32_t *tokens = NULL;
    int n_chunks = 0;
    openblas_set_num_threads(threadpool_size(pool));
    lb_status st = LB_OK;
    // Round to nearest needs no activations.
    if (p->search && (st = calib_tokens(m, &p->calib, &tokens, &n_chunks, err))) return st;
    if (p->search && (st = alloc_acts(&a, hp, n_chunks, p->calib.n_ctx, err))) goto done;
    const int64_t wmax = dq * d > ff * d ? dq * d : ff * d, cmax = d > ff ? d : ff;
    for (int k = 0; k < 3; k++) sc.w[k] = malloc((size_t)(wmax > dkv * d ? wmax : dkv * d) * sizeof(float));
    sc.q = malloc((size_t)cmax);
    sc.gs = malloc((size_t)cmax * sizeof(float));
    sc.gz = malloc((size_t)cmax * sizeof(float));
    sc.row = malloc((size_t)cmax * sizeof(float));
    s[0] = malloc((size_t)d * sizeof(float));
    s[1] = malloc((size_t)dkv * sizeof(float));
    s[2] = malloc((size_t)d * sizeof(float));
    s[3] = malloc((size_t)ff * sizeof(float));
    if (!sc.w[0] || !sc.w[1] || !sc.w[2] || !sc.q || !sc.gs || !sc.gz || !sc.row || !s[0] || !s[1] || !s[2] || !s[3]) {
        st = lb_fail(err, LB_ERR_NOMEM, "awq: out of memory");
        goto done;
    }
    if (p->search) embed(&a, m, tokens); // the first layer's input

    for (int il = 0; il < hp->n_layer; il++) {
        const struct lb_layer *src = &m->src_layers[il];
        if ((st = awq_layer_load(m, il, &L, err)) || (st = awq_layer_load(m, il, &O, err))) goto done;
        struct on_grid og = {0};
#define ON_GRID(w, g) lb_grid_row_grid(p->grid, type_of(user, (w).name, (w).cols), (w).cols, &(g))
        og.q = ON_GRID(src->wq, og.gq), og.k = ON_GRID(src->wk, og.gk), og.v = ON_GRID(src->wv, og.gv);
        og.o = ON_GRID(src->wo, og.go), og.g = ON_GRID(src->w_gate, og.gg), og.u = ON_GRID(src->w_up, og.gu);
        og.d = ON_GRID(src->w_down, og.gd);
#undef ON_GRID
        if (p->search) layer_forward(&a, &L); // a.x: the next layer's input, from the float layer (as llm-awq)
        struct awq_layer_report rep = {0};
        float *use[AWQ_GROUPS] = {NULL, NULL, NULL, NULL};
        if (p->search) {
            if (og.q || og.k || og.v) {
                const float *W[3] = {L.wq, L.wk, L.wv};
                const int64_t rows[3] = {dq, dkv, dkv};
                const bool quant[3] = {og.q, og.k, og.v};
                search_group(&a, &L, (const struct lb_grid[3]){og.gq, og.gk, og.gv}, a.xn, d, W, rows, quant, 3, eval_qkv, &sc, s[0], &rep.alpha[0],
                             &rep.loss[0], &rep.loss_rtn[0]);
                use[0] = s[0], rep.done[0] = true;
            }
            if (og.o && dq == dkv) { // llm-awq scales v → o only when the shapes match (no GQA)
                const float *W[3] = {L.wo};
                const int64_t rows[3] = {d};
                const bool quant[3] = {true};
                search_group(&a, &L, (const struct lb_grid[3]){og.go}, a.att, dq, W, rows, quant, 1, eval_o, &sc, s[1], &rep.alpha[1],
                             &rep.loss[1], &rep.loss_rtn[1]);
                use[1] = s[1], rep.done[1] = true;
            }
            if (og.g || og.u) {
                const float *W[3] = {L.wg, L.wu};
                const int64_t rows[3] = {ff, ff};
                const bool quant[3] = {og.g, og.u};
                search_group(&a, &L, (const struct lb_grid[3]){og.gg, og.gu}, a.xn2, d, W, rows, quant, 2, eval_gate_up, &sc, s[2], &rep.alpha[2],
                             &rep.loss[2], &rep.loss_rtn[2]);
                use[2] = s[2], rep.done[2] = true;
            }
            if (og.d) {
                const float *W[3] = {L.wd};
                const int64_t rows[3] = {d};
                const bool quant[3] = {true};
                search_group(&a, &L, (const struct lb_grid[3]){og.gd}, a.h, ff, W, rows, quant, 1, eval_down, &sc, s[3], &rep.alpha[3],
                             &rep.loss[3], &rep.loss_rtn[3]);
                use[3] = s[3], rep.done[3] = true;
            }
            awq_fold(hp, &L, use);
        }
        if (p->search && p->clip) {
            // The inputs as the scaled layer sees them.
            const int64_t cols[4] = {d, dq, d, ff};
            float *inputs[4] = {a.xn, a.att, a.xn2, a.h};
            for (int g = 0; g < AWQ_GROUPS; g++)
                if (use[g])
                    for (int64_t t = 0; t < a.N; t++)
                        for (int64_t j = 0; j < cols[g]; j++) inputs[g][t * cols[g] + j] /= use[g][j];
            // Not q and k: their errors pass through the softmax (llm-awq skips them too).
            if ((og.v && (st = clip_matrix(og.gv, L.wv, dkv, d, a.xn, a.N, err))) ||
                (og.o && (st = clip_matrix(og.go, L.wo, d, dq, a.att, a.N, err))) ||
                (og.g && (st = clip_matrix(og.gg, L.wg, ff, d, a.xn2, a.N, err))) ||
                (og.u && (st = clip_matrix(og.gu, L.wu, ff, d, a.xn2, a.N, err))) ||
                (og.d && (st = clip_matrix(og.gd, L.wd, d, ff, a.h, a.N, err))))
                goto done;
        }
        // The output-column scale of attn_output under s[1], expanded over query heads.
        float *s_o = NULL;
        if (use[1] && !(s_o = malloc((size_t)dq * sizeof *s_o))) {
            st = lb_fail(err, LB_ERR_NOMEM, "awq: out of memory");
            goto done;
        }
        for (int64_t j = 0; use[1] && j < dq; j++)
            s_o[j] = use[1][(j / hp->head_dim / (hp->n_head / hp->n_head_kv)) * hp->head_dim + j % hp->head_dim];
        if ((st = write_matrix(&wr, &src->wq, L.wq, O.wq, use[0], NULL, err)) ||
            (st = write_matrix(&wr, &src->wk, L.wk, O.wk, use[0], NULL, err)) ||
            (st = write_matrix(&wr, &src->wv, L.wv, O.wv, use[0], use[1], err)) ||
            (st = write_matrix(&wr, &src->wo, L.wo, O.wo, s_o, NULL, err)) ||
            (st = write_matrix(&wr, &src->w_gate, L.wg, O.wg, use[2], NULL, err)) ||
            (st = write_matrix(&wr, &src->w_up, L.wu, O.wu, use[2], use[3], err)) ||
            (st = write_matrix(&wr, &src->w_down, L.wd, O.wd, use[3], NULL, err))) {
            free(s_o);
            goto done;
        }
        free(s_o);
        if ((use[0] && (st = write_vector(&wr, "blk.%d.attn_norm.weight", il, L.attn_norm, d, err))) ||
            (use[2] && (st = write_vector(&wr, "blk.%d.ffn_norm.weight", il, L.ffn_norm, d, err))) ||
            (use[1] && L.bv && (st = write_vector(&wr, "blk.%d.attn_v.bias", il, L.bv, dkv, err))))
            goto done;
        if (report) report[il] = rep;
        awq_layer_free(&L);
        awq_layer_free(&O);
        if (p->progress && !p->progress((float)(il + 1) / (float)hp->n_layer, p->user)) {
            st = lb_fail(err, LB_ERR_CANCELLED, "awq: cancelled after %d of %d layers", il + 1, hp->n_layer);
            goto done;
        }
    }
done:
    awq_layer_free(&L);
    awq_layer_free(&O);
    free_acts(&a);
    for (int k = 0; k < 3; k++) free(sc.w[k]);
    free(sc.q), free(sc.gs), free(sc.gz), free(sc.row);
    for (int g = 0; g < AWQ_GROUPS; g++) free(s[g]);
    free(tokens);
    return st;
}
