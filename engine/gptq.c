/*
 * gptq.c — GPTQ on one weight matrix (gptq.h).
 *
 * Notation as in the reference (IST-DASLab/gptq, gptq.py fasterquant):
 * W is rows × cols, H is cols × cols, U is the upper Cholesky factor of
 * H⁻¹. For each block of `block_size` columns [i1, i2):
 *   for each column i of the block, in order:
 *     q_i = quantize(w_i);  e_i = (w_i − q_i) / U_ii
 *     w_j −= e_i · U_ij  for the later columns j of the block
 *   then, once: W[:, i2:] −= E · U[i1:i2, i2:]   (E = the block's e_i)
 * The per-column updates touch only the block (the reference's W1 copy);
 * the rest of W is corrected by one matrix product per block. That product
 * and the per-column updates are where the time goes: rows · cols² / 2
 * multiply-adds each. The product runs in OpenBLAS; the column loop runs in
 * the thread pool, rows split into chunks (rows are independent).
 *
 * Layout choice: a block's columns are copied transposed (count × rows), so
 * that column i is a contiguous vector and each update is an axpy.
 *
 * Precision: H is accumulated, damped and factored in float64; W, U and the
 * errors are float32, as in the reference (torch float32).
 */
#include "gptq.h"

#include "config.h"
#include "fp16.h"
#include "internal.h"
#include "threadpool.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

// OpenBLAS's thread count is process-wide state of its own (matmul.c sets it too).
extern void openblas_set_num_threads(int num_threads);

#if defined(HAVE_DPOTRF_) && defined(HAVE_DPOTRI_)
// LAPACK's Fortran entry points (OpenBLAS carries LAPACK; its headers may
// not). The trailing length is gfortran's hidden length of the `uplo` string.
extern void dpotrf_(const char *uplo, const blasint *n, double *a, const blasint *lda, blasint *info, size_t);
extern void dpotri_(const char *uplo, const blasint *n, double *a, const blasint *lda, blasint *info, size_t);
const bool gptq_have_lapack = true;
#else
const bool gptq_have_lapack = false;
#endif

// --- codes ---------------------------------------------------------------------

static int64_t group_of(struct lb_grid g, int64_t cols) { return g.group > 0 ? g.group : cols; }

lb_status gptq_codes_alloc(struct gptq_codes *c, int64_t rows, int64_t cols, struct lb_grid g, lb_error *err) {
    const int64_t gs = group_of(g, cols);
    memset(c, 0, sizeof *c);
    c->rows = rows;
    c->cols = cols;
    c->group = gs;
    c->n_groups = cols > 0 ? (cols + gs - 1) / gs : 0;
    c->q = malloc((size_t)(rows * cols) + 1);
    c->scale = malloc(sizeof(float) * (size_t)(rows * c->n_groups + 1));
    c->zero = malloc(sizeof(float) * (size_t)(rows * c->n_groups + 1));
    if (!c->q || !c->scale || !c->zero) {
        gptq_codes_free(c);
        return lb_fail(err, LB_ERR_NOMEM, "gptq: out of memory for the codes of a %lld x %lld matrix",
                       (long long)rows, (long long)cols);
    }
    return LB_OK;
}

void gptq_codes_free(struct gptq_codes *c) {
    free(c->q);
    free(c->scale);
    free(c->zero);
    memset(c, 0, sizeof *c);
}

void gptq_codes_values(const struct gptq_codes *c, float *w) {
    for (int64_t r = 0; r < c->rows; r++)
        for (int64_t j = 0; j < c->cols; j++) {
            const int64_t k = r * c->n_groups + j / c->group;
            w[r * c->cols + j] = c->scale[k] * ((float)c->q[r * c->cols + j] - c->zero[k]);
        }
}

// --- the grid ----------------------------------------------------------------------

// An fp16 scale for the types, kept normal-range and non-zero (weights of
// magnitude above 65504·2^bits or below 2^-24 are not seen in practice; they
// clip rather than divide by zero).
static float fp16_scale(float s) {
    const float sign = s < 0.0f ? -1.0f : 1.0f;
    float a = lb_fp16_to_f32(lb_f32_to_fp16(fabsf(s)));
    if (!(a >= 0x1p-24f)) a = 0x1p-24f;
    if (a > 65504.0f) a = 65504.0f;
    return sign * a;
}

void gptq_grid_params(struct lb_grid g, enum gptq_scale_rule rule, const float *x, int64_t n, int64_t stride,
                      float *scale, float *zero) {
    const int max_q = (1 << g.bits) - 1;
    if (rule == GPTQ_SCALE_SIGNED_MAX && g.symmetric) {
        // ggml's Q4_0/Q5_0 rule: the weight of largest magnitude lands exactly
        // on the grid's lone extreme code 0, −2^(bits−1)·scale; the scale is
        // negative when that weight is positive.
        float m = 0.0f;
        for (int64_t i = 0; i < n; i++)
            if (fabsf(x[i * stride]) > fabsf(m)) m = x[i * stride];
        const int half = 1 << (g.bits - 1);
        *scale = m != 0.0f ? fp16_scale(m / -(float)half) : 1.0f;
        *zero = (float)half;
        return;
    }
    float lo = 0.0f, hi = 0.0f;  // the range always holds 0
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i * stride];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    // The reference mirrors the range only when the group has a negative
    // weight, so an all-positive group clips at half its maximum; we always
    // mirror, which is the intent (and equal whenever min < 0).
    if (g.symmetric) {
        hi = fmaxf(-lo, hi);
        lo = -hi;
    }
    if (lo == 0.0f && hi == 0.0f) {
        lo = -1.0f;
        hi = 1.0f;
    }
    // The stored scale is fp16: quantize with exactly that value, so the codes
    // are the best ones for what the file will hold.
    const float s = fp16_scale((hi - lo) / (float)max_q);
    *scale = s;
    if (g.symmetric) {
        *zero = (float)((max_q + 1) / 2);
    } else {
        float z = rintf(-lo / s);
        *zero = z < 0.0f ? 0.0f : z > (float)max_q ? (float)max_q : z;
    }
}

void gptq_rtn(struct lb_grid g, enum gptq_scale_rule rule, int64_t rows, int64_t cols, const float *w,
              struct gptq_codes *c) {
    const int64_t gs = group_of(g, cols);
    const int max_q = (1 << g.bits) - 1;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < c->n_groups; k++) {
            const int64_t j0 = k * gs, n = cols - j0 < gs ? cols - j0 : gs;
            float *s = &c->scale[r * c->n_groups + k], *z = &c->zero[r * c->n_groups + k];
            gptq_grid_params(g, rule, w + r * cols + j0, n, 1, s, z);
            for (int64_t j = j0; j < j0 + n; j++) c->q[r * cols + j] = gptq_grid_code(w[r * cols + j], *s, *z, max_q);
        }
}

// --- the Hessian -----------------------------------------------------------------------

lb_status gptq_hessian_init(struct gptq_hessian *h, int64_t n, lb_error *err) {
    memset(h, 0, sizeof *h);
    h->n = n;
    h->h = calloc((size_t)(n * n) + 1, sizeof(double));
    if (!h->h) return lb_fail(err, LB_ERR_NOMEM, "gptq: out of memory for a %lld x %lld Hessian", (long long)n, (long long)n);
    return LB_OK;
}

lb_status gptq_hessian_add(struct gptq_hessian *h, const float *x, int rows, lb_error *err) {
    if (rows <= 0) return LB_OK;
    if (rows > h->xd_rows) {
        double *p = realloc(h->xd, sizeof(double) * (size_t)rows * (size_t)h->n);
        if (!p) return lb_fail(err, LB_ERR_NOMEM, "gptq: out of memory for %d input rows", rows);
        h->xd = p;
        h->xd_rows = rows;
    }
    for (size_t i = 0; i < (size_t)rows * (size_t)h->n; i++) h->xd[i] = x[i];
    // H += Xᵀ·X, upper triangle (row-major X is rows × n).
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (blasint)h->n, rows, 1.0, h->xd, (blasint)h->n, 1.0, h->h,
                (blasint)h->n);
    return LB_OK;
}

void gptq_hessian_finish(struct gptq_hessian *h, int n_samples) {
    const int64_t n = h->n;
    const double f = n_samples > 0 ? 2.0 / n_samples : 2.0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i; j < n; j++) h->h[j * n + i] = h->h[i * n + j] *= f;
    free(h->xd);
    h->xd = NULL;
    h->xd_rows = 0;
}

void gptq_hessian_free(struct gptq_hessian *h) {
    free(h->h);
    free(h->xd);
    memset(h, 0, sizeof *h);
}

// --- H → U -------------------------------------------------------------------------------

static lb_status not_positive_definite(lb_error *err, int64_t col, int64_t n) {
    return lb_fail(err, LB_ERR_ARG,
                   "gptq: the dampened Hessian is not positive definite (pivot %lld of %lld); raise damp_percent "
                   "(default 0.01) or calibrate on more tokens", (long long)col + 1, (long long)n);
}

// a (n × n, row-major, upper triangle read) = RᵀR: R overwrites the upper
// triangle. Right-looking, so the inner loop runs along contiguous rows.
static lb_status cholesky_upper(double *a, int64_t n, lb_error *err) {
    for (int64_t k = 0; k < n; k++) {
        const double d = a[k * n + k];
        if (!(d > 0.0) || !isfinite(d)) return not_positive_definite(err, k, n);
        const double r = sqrt(d);
        double *rk = a + k * n;
        rk[k] = r;
        for (int64_t j = k + 1; j < n; j++) rk[j] /= r;
        for (int64_t i = k + 1; i < n; i++) {
            const double f = rk[i];
            double *ai = a + i * n;
            for (int64_t j = i; j < n; j++) ai[j] -= f * rk[j];
        }
    }
    return LB_OK;
}

// lowbit's own route to U. With J the order reversal, let JHJ = R'ᵀR' (R'
// upper). Then H = A·Aᵀ with A = J·R'ᵀ·J upper, so H⁻¹ = (A⁻¹)ᵀ·A⁻¹ and
// U = A⁻¹: one Cholesky and one triangular inverse, no explicit H⁻¹.
static lb_status inverse_factor_own(double *h, int64_t n, lb_error *err) {
    double *m = malloc(sizeof(double) * (size_t)(n * n + n) + 1);
    if (!m) return lb_fail(err, LB_ERR_NOMEM, "gptq: out of memory for a %lld x %lld factor", (long long)n, (long long)n);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) m[i * n + j] = h[(n - 1 - i) * n + (n - 1 - j)];
    lb_status st = cholesky_upper(m, n, err);
    if (st) {
        free(m);
        return st;
    }
    // A[i][j] = R'[n-1-j][n-1-i] (upper), into h.
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) h[i * n + j] = j >= i ? m[(n - 1 - j) * n + (n - 1 - i)] : 0.0;
    // Invert the upper triangular A in place, last row first: row i of A⁻¹ is
    // (e_i − Σ_{k>i} A[i][k]·row k of A⁻¹) / A[i][i].
    double *acc = m + n * n;
    for (int64_t i = n - 1; i >= 0; i--) {
        double *ai = h + i * n;
        memset(acc, 0, sizeof(double) * (size_t)n);
        for (int64_t k = i + 1; k < n; k++) {
            const double f = ai[k];
            const double *xk = h + k * n;
            for (int64_t j = k; j < n; j++) acc[j] += f * xk[j];
        }
        const double inv = 1.0 / ai[i];
        ai[i] = inv;
        for (int64_t j = i + 1; j < n; j++) ai[j] = -acc[j] * inv;
    }
    free(m);
    return LB_OK;
}

lb_status gptq_inverse_factor(double *h, int64_t n, bool own, lb_error *err) {
#if defined(HAVE_DPOTRF_) && defined(HAVE_DPOTRI_)
    if (!own) {
        // LAPACK is column-major: its lower triangle is our upper one, and a
        // factor L it leaves there reads as Lᵀ here. So 'L' throughout: H =
        // LLᵀ, then H⁻¹, then H⁻¹ = L'L'ᵀ, which reads as U = L'ᵀ.
        const blasint nn = (blasint)n;
        blasint info = 0;
        dpotrf_("L", &nn, h, &nn, &info, 1);
        if (info > 0) return not_positive_definite(err, info - 1, n);
        dpotri_("L", &nn, h, &nn, &info, 1);
        if (info > 0) return not_positive_definite(err, info - 1, n);
        dpotrf_("L", &nn, h, &nn, &info, 1);
        if (info > 0) return not_positive_definite(err, info - 1, n);
        if (info < 0) return lb_fail(err, LB_ERR_ARG, "gptq: LAPACK argument %d rejected", (int)-info);
        for (int64_t i = 1; i < n; i++) memset(h + i * n, 0, sizeof(double) * (size_t)i);
        return LB_OK;
    }
#endif
    (void)own;
    return inverse_factor_own(h, n, err);
}

// --- the algorithm ---------------------------------------------------------------------------

enum { ROWS_PER_TASK = 64 };

struct block_task {
    struct lb_grid grid;
    enum gptq_scale_rule rule;
    bool static_groups;
    int64_t rows, cols, gs, i1, count;
    const int64_t *perm;   // position → column of the matrix
    const float *w;        // rows × cols, columns in quantization order, lazily updated
    const float *u;        // cols × cols, upper, in quantization order
    float *b, *e;          // count × rows: the block's columns (updated in place) and scaled errors
    struct gptq_codes *c;
};

// One block for rows [r0, r1): the reference's inner loop over i.
static void block_rows(void *arg, int64_t task) {
    const struct block_task *t = arg;
    const int64_t r0 = task * ROWS_PER_TASK, r1 = r0 + ROWS_PER_TASK < t->rows ? r0 + ROWS_PER_TASK : t->rows;
    const int64_t rows = t->rows, cols = t->cols, ng = t->c->n_groups;
    const int max_q = (1 << t->grid.bits) - 1;
    for (int64_t r = r0; r < r1; r++)
        for (int64_t i = 0; i < t->count; i++) t->b[i * rows + r] = t->w[r * cols + t->i1 + i];
    for (int64_t i = 0; i < t->count; i++) {
        const int64_t pos = t->i1 + i, col = t->perm[pos];
        int64_t k = 0;
        if (t->grid.group > 0) {
            k = t->static_groups ? col / t->gs : pos / t->gs;  // without static groups, pos == col (no act-order)
            if (!t->static_groups && pos % t->gs == 0) {
                // The reference fits the group on W, not on the block copy: the
                // lazy updates of earlier blocks are in, this block's are not.
                const int64_t n = cols - pos < t->gs ? cols - pos : t->gs;
                for (int64_t r = r0; r < r1; r++)
                    gptq_grid_params(t->grid, t->rule, t->w + r * cols + pos, n, 1, &t->c->scale[r * ng + k],
                                     &t->c->zero[r * ng + k]);
            }
        }
        const float d = t->u[pos * cols + pos];
        float *bi = t->b + i * rows, *ei = t->e + i * rows;
        for (int64_t r = r0; r < r1; r++) {
            const float s = t->c->scale[r * ng + k], z = t->c->zero[r * ng + k];
            const uint8_t q = gptq_grid_code(bi[r], s, z, max_q);
            t->c->q[r * cols + col] = q;
            ei[r] = (bi[r] - s * ((float)q - z)) / d;
        }
        const float *urow = t->u + pos * cols + t->i1;
        for (int64_t j = i + 1; j < t->count; j++) {
            const float f = urow[j];
            float *bj = t->b + j * rows;
            for (int64_t r = r0; r < r1; r++) bj[r] -= ei[r] * f;
        }
    }
}

static void run_tasks(struct lb_threadpool *pool, lb_task_fn fn, void *arg, int64_t n) {
    if (pool) {
        threadpool_run(pool, fn, arg, n);
    } else {
        for (int64_t i = 0; i < n; i++) fn(arg, i);
    }
}

struct by_diag {
    double d;
    int64_t i;
};

// Decreasing diag(H); ties keep column order (the reference's torch.argsort
// does not promise an order for ties; a stable one makes identity H a no-op).
static int cmp_by_diag(const void *a, const void *b) {
    const struct by_diag *x = a, *y = b;
    if (x->d != y->d) return x->d > y->d ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

lb_status gptq_quantize(struct lb_threadpool *pool, const struct lb_gptq_params *p, int64_t rows, int64_t cols,
                        const float *w_in, double *h, struct gptq_codes *c, lb_error *err) {
    const struct lb_grid g = p->grid;
    if (g.bits < 2 || g.bits > 8 || g.group < 0 || p->block_size < 1 || !(p->damp_percent >= 0))
        return lb_fail(err, LB_ERR_ARG, "gptq: bits %d (expected 2..8), group %d, block %d, damp %g", g.bits, g.group,
                       p->block_size, p->damp_percent);
    if (p->act_order && g.group > 0 && !p->static_groups)
        return lb_fail(err, LB_ERR_ARG, "gptq: act_order with groups of %d needs static_groups (the tensor types "
                       "store contiguous groups)", g.group);
    const int64_t gs = group_of(g, cols), ng = c->n_groups;
    float *w = malloc(sizeof(float) * (size_t)(rows * cols) + 1);
    float *u = malloc(sizeof(float) * (size_t)(cols * cols) + 1);
    double *hp = p->act_order ? malloc(sizeof(double) * (size_t)(cols * cols) + 1) : NULL;
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)cols + 1);
    struct by_diag *order = malloc(sizeof *order * (size_t)cols + 1);
    const int64_t bs = p->block_size < cols ? p->block_size : (cols > 0 ? cols : 1);
    float *b = malloc(sizeof(float) * (size_t)(bs * rows) + 1), *e = malloc(sizeof(float) * (size_t)(bs * rows) + 1);
    lb_status st = LB_OK;
    if (!w || !u || (p->act_order && !hp) || !perm || !order || !b || !e) {
        st = lb_fail(err, LB_ERR_NOMEM, "gptq: out of memory for a %lld x %lld matrix", (long long)rows, (long long)cols);
        goto done;
    }
    memcpy(w, w_in, sizeof(float) * (size_t)(rows * cols));

    // Per channel: one group per row, fitted on W as given (the reference
    // does this before zeroing dead columns).
    if (g.group == 0)
        for (int64_t r = 0; r < rows; r++)
            gptq_grid_params(g, p->scale_rule, w + r * cols, cols, 1, &c->scale[r], &c->zero[r]);
    // Inputs never seen: H_ii = 1 keeps H invertible; their weights cannot
    // matter on the calibration data, and are quantized as 0.
    for (int64_t j = 0; j < cols; j++)
        if (h[j * cols + j] == 0.0) {
            h[j * cols + j] = 1.0;
            for (int64_t r = 0; r < rows; r++) w[r * cols + j] = 0.0f;
        }
    if (g.group > 0 && p->static_groups)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t k = 0; k < ng; k++) {
                const int64_t j0 = k * gs, n = cols - j0 < gs ? cols - j0 : gs;
                gptq_grid_params(g, p->scale_rule, w + r * cols + j0, n, 1, &c->scale[r * ng + k],
                                 &c->zero[r * ng + k]);
            }

    // Quantization order: the columns as they are, or by decreasing H_ii.
    for (int64_t j = 0; j < cols; j++) order[j] = (struct by_diag){h[j * cols + j], j};
    if (p->act_order) qsort(order, (size_t)cols, sizeof *order, cmp_by_diag);
    for (int64_t j = 0; j < cols; j++) perm[j] = order[j].i;
    double *hq = h;
    if (p->act_order) {
        for (int64_t i = 0; i < cols; i++)
            for (int64_t j = 0; j < cols; j++) hp[i * cols + j] = h[perm[i] * cols + perm[j]];
        for (int64_t r = 0; r < rows; r++) {  // u (cols² floats) is free until U: a row's scratch
            float *wr = w + r * cols;
            for (int64_t j = 0; j < cols; j++) u[j] = wr[perm[j]];
            memcpy(wr, u, sizeof(float) * (size_t)cols);
        }
        hq = hp;
    }

    // Dampening, relative to the mean curvature, then U.
    double mean = 0.0;
    for (int64_t j = 0; j < cols; j++) mean += hq[j * cols + j];
    mean /= cols > 0 ? (double)cols : 1.0;
    for (int64_t j = 0; j < cols; j++) hq[j * cols + j] += p->damp_percent * mean;
    if ((st = gptq_inverse_factor(hq, cols, false, err))) goto done;
    if (hq != h) memcpy(h, hq, sizeof(double) * (size_t)(cols * cols));
    for (int64_t i = 0; i < cols * cols; i++) u[i] = (float)h[i];

    openblas_set_num_threads(pool ? threadpool_size(pool) : 1);
    for (int64_t i1 = 0; i1 < cols; i1 += bs) {
        const int64_t count = cols - i1 < bs ? cols - i1 : bs, i2 = i1 + count;
        struct block_task t = {
            .grid = g, .rule = p->scale_rule, .static_groups = p->static_groups, .rows = rows, .cols = cols, .gs = gs, .i1 = i1,
            .count = count, .perm = perm, .w = w, .u = u, .b = b, .e = e, .c = c,
        };
        run_tasks(pool, block_rows, &t, (rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK);
        // W[:, i2:] −= Eᵀ·U[i1:i2, i2:]; E is count × rows.
        if (i2 < cols && rows > 0)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)rows, (blasint)(cols - i2), (blasint)count,
                        -1.0f, e, (blasint)rows, u + i1 * cols + i2, (blasint)cols, 1.0f, w + i2, (blasint)cols);
    }
done:
    free(w);
    free(u);
    free(hp);
    free(perm);
    free(order);
    free(b);
    free(e);
    return st;
}

// --- measuring ---------------------------------------------------------------------------------

enum { ERROR_ROWS = 64 };

double gptq_output_error(const float *w, const float *w_hat, int64_t rows, int64_t cols, const double *h) {
    double *d = malloc(sizeof(double) * (size_t)(2 * ERROR_ROWS * cols) + 1);
    double *dh = malloc(sizeof(double) * (size_t)(2 * ERROR_ROWS * cols) + 1);
    if (!d || !dh) {
        free(d);
        free(dh);
        return NAN;
    }
    double num = 0.0, den = 0.0;
    for (int64_t r0 = 0; r0 < rows; r0 += ERROR_ROWS) {
        const int64_t n = rows - r0 < ERROR_ROWS ? rows - r0 : ERROR_ROWS;
        // Rows 0..n-1: ΔW; rows n..2n-1: W. One product with H for both.
        for (int64_t r = 0; r < n; r++)
            for (int64_t j = 0; j < cols; j++) {
                const size_t k = (size_t)((r0 + r) * cols + j);
                d[r * cols + j] = (double)w[k] - (double)w_hat[k];
                d[(n + r) * cols + j] = w[k];
            }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)(2 * n), (blasint)cols, (blasint)cols, 1.0, d,
                    (blasint)cols, h, (blasint)cols, 0.0, dh, (blasint)cols);
        for (int64_t i = 0; i < n * cols; i++) num += d[i] * dh[i];
        for (int64_t i = n * cols; i < 2 * n * cols; i++) den += d[i] * dh[i];
    }
    free(d);
    free(dh);
    return den > 0.0 ? sqrt(fmax(num, 0.0) / den) : 0.0;
}
