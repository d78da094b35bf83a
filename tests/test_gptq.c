/*
 * test_gptq.c — GPTQ (engine/gptq.h) and the sequential calibration driver
 * (engine/sequential.h).
 *
 *   - With an identity Hessian GPTQ is round-to-nearest, code for code, on
 *     every kind of grid (an RTN written here from the reference's formulas);
 *   - on correlated inputs GPTQ cuts ‖(W − Ŵ)X‖ well below RTN's, and the
 *     error gptq_output_error reports from H equals the one measured on X;
 *   - act-order with static groups keeps every group's scale and zero those
 *     of the unquantized weights (the same grid as RTN), and is no worse
 *     than plain GPTQ where the channels differ in scale;
 *   - a singular H is handled as the reference does (dead inputs, relative
 *     dampening), and without dampening it is refused with what to change;
 *   - our own Cholesky route to U agrees with LAPACK's and inverts H;
 *   - codes pack into Q4_0 / Q4_1 (and a grid without a type is an error
 *     naming it);
 *   - on stories260K, layer 1's inputs change when layer 0 is quantized,
 *     layer 0's do not, and they equal a plain forward pass's when layer 0
 *     is kept; true_sequential re-collects after q/k/v.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lowbit.h"
#include "lbtest.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib.h"
#include "fp16.h"
#include "gptq.h"
#include "grid.h"
#include "sequential.h"
#include "threadpool.h"

// ---------------------------------------------------------------------------
// Helpers

typedef struct { uint64_t state; } rng;

static uint64_t rng_next(rng *r) {
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_uniform(rng *r) { return ((rng_next(r) >> 11) + 0.5) * 0x1.0p-53; }

static double rng_gauss(rng *r) {
    const double u = rng_uniform(r), v = rng_uniform(r);
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

static float *gaussian(rng *r, int64_t n, double scale) {
    float *x = malloc(sizeof(float) * (size_t)n);
    assert_non_null(x);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(scale * rng_gauss(r));
    return x;
}

static struct lb_threadpool *pool;

// H = 2/n · XᵀX for X (n × cols), in double.
static double *hessian_of(const float *x, int n, int cols) {
    double *h = calloc((size_t)cols * cols, sizeof *h);
    assert_non_null(h);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < cols; i++)
            for (int j = 0; j < cols; j++) h[i * cols + j] += (double)x[t * cols + i] * x[t * cols + j];
    for (int i = 0; i < cols * cols; i++) h[i] *= 2.0 / n;
    return h;
}

// ‖(W − Ŵ)X‖ / ‖WX‖ measured on X itself.
static double output_error_on(const float *w, const float *wq, int rows, int cols, const float *x, int n) {
    double num = 0, den = 0;
    for (int t = 0; t < n; t++)
        for (int r = 0; r < rows; r++) {
            double y = 0, yq = 0;
            for (int j = 0; j < cols; j++) {
                y += (double)w[r * cols + j] * x[t * cols + j];
                yq += (double)wq[r * cols + j] * x[t * cols + j];
            }
            num += (y - yq) * (y - yq);
            den += y * y;
        }
    return sqrt(num / den);
}

// Round to nearest as the reference's quant.py has it, written out here
// independently of gptq_rtn: per group, range [min(x,0), max(x,0)] (mirrored
// to ±max|x| when symmetric), scale = range / (2^bits − 1) rounded to fp16,
// zero = round(−min/scale) or 2^(bits−1); or ggml's signed max. Codes
// clamp(round(x/scale) + zero).
static void rtn_reference(struct lb_grid g, enum gptq_scale_rule rule, const float *w, int rows, int cols,
                          uint8_t *q, float *scale, float *zero) {
    const int gs = g.group ? g.group : cols, ng = (cols + gs - 1) / gs, max_q = (1 << g.bits) - 1;
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < ng; k++) {
            const float *x = w + r * cols + k * gs;
            const int n = cols - k * gs < gs ? cols - k * gs : gs;
            float s, z;
            if (g.symmetric && rule == GPTQ_SCALE_SIGNED_MAX) {
                float m = 0;
                for (int i = 0; i < n; i++)
                    if (fabsf(x[i]) > fabsf(m)) m = x[i];
                s = lb_fp16_to_f32(lb_f32_to_fp16(m / -(float)(1 << (g.bits - 1))));
                z = (float)(1 << (g.bits - 1));
            } else {
                float lo = 0, hi = 0;
                for (int i = 0; i < n; i++) lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
                if (g.symmetric) hi = fmaxf(hi, -lo), lo = -hi;
                s = lb_fp16_to_f32(lb_f32_to_fp16((hi - lo) / (float)max_q));
                z = g.symmetric ? (float)((max_q + 1) / 2) : fminf(fmaxf(rintf(-lo / s), 0), (float)max_q);
            }
            scale[r * ng + k] = s;
            zero[r * ng + k] = z;
            for (int i = 0; i < n; i++) {
                const float c = fminf(fmaxf(rintf(x[i] / s) + z, 0), (float)max_q);
                q[r * cols + k * gs + i] = (uint8_t)c;
            }
        }
}

static lb_status run_gptq(const struct lb_gptq_params *p, int rows, int cols, const float *w, const double *h,
                          struct gptq_codes *c, lb_error *err) {
    double *hc = malloc(sizeof(double) * (size_t)cols * cols);
    assert_non_null(hc);
    memcpy(hc, h, sizeof(double) * (size_t)cols * cols);
    if (gptq_codes_alloc(c, rows, cols, p->grid, err)) fail_msg("%s", err->msg);
    lb_status st = gptq_quantize(pool, p, rows, cols, w, hc, c, err);
    free(hc);
    return st;
}

static float *values_of(const struct gptq_codes *c) {
    float *v = malloc(sizeof(float) * (size_t)(c->rows * c->cols));
    assert_non_null(v);
    gptq_codes_values(c, v);
    return v;
}

// ---------------------------------------------------------------------------
// GPTQ on one matrix

struct variant {
    struct lb_grid grid;
    enum gptq_scale_rule rule;
    bool act_order, static_groups;
};

static const struct variant variants[] = {
    {{4, 32, true}, GPTQ_SCALE_MINMAX, false, false},
    {{4, 32, true}, GPTQ_SCALE_SIGNED_MAX, true, true},
    {{4, 32, false}, GPTQ_SCALE_MINMAX, false, false},
    {{3, 128, false}, GPTQ_SCALE_MINMAX, true, true},
    {{2, 64, false}, GPTQ_SCALE_MINMAX, false, true},
    {{8, 64, true}, GPTQ_SCALE_MINMAX, false, false},
    {{4, LB_GRID_PER_CHANNEL, false}, GPTQ_SCALE_MINMAX, true, false},
    {{5, 16, true}, GPTQ_SCALE_SIGNED_MAX, false, false},
};

// With H = c·I the inverse factor is diagonal: no error reaches another
// column, and GPTQ must be RTN exactly — codes, scales and zeros.
static void test_identity_hessian_is_rtn(void **state) {
    (void)state;
    rng r = {1};
    const int rows = 23, cols = 256;  // 256 = two lazy blocks of 128
    float *w = gaussian(&r, rows * cols, 0.05);
    w[5] = 0.3f;  // an outlier in group 0 of row 0
    double *h = calloc((size_t)cols * cols, sizeof *h);
    for (int j = 0; j < cols; j++) h[j * cols + j] = 3.0;
    uint8_t *q = malloc((size_t)rows * cols);
    float *s = malloc(sizeof(float) * rows * cols), *z = malloc(sizeof(float) * rows * cols);
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        const struct variant *V = &variants[v];
        struct lb_gptq_params p = {V->grid, V->rule, 0.01, V->act_order, V->static_groups, 128};
        struct gptq_codes c, rtn;
        lb_error err = {0};
        if (run_gptq(&p, rows, cols, w, h, &c, &err)) fail_msg("variant %zu: %s", v, err.msg);
        rtn_reference(V->grid, V->rule, w, rows, cols, q, s, z);
        assert_memory_equal(c.q, q, (size_t)rows * cols);
        assert_memory_equal(c.scale, s, sizeof(float) * rows * c.n_groups);
        assert_memory_equal(c.zero, z, sizeof(float) * rows * c.n_groups);
        // and the engine's RTN is the same thing
        if (gptq_codes_alloc(&rtn, rows, cols, V->grid, &err)) fail_msg("%s", err.msg);
        gptq_rtn(V->grid, V->rule, rows, cols, w, &rtn);
        assert_memory_equal(rtn.q, q, (size_t)rows * cols);
        assert_memory_equal(rtn.scale, s, sizeof(float) * rows * rtn.n_groups);
        gptq_codes_free(&rtn);
        gptq_codes_free(&c);
    }
    free(w), free(h), free(q), free(s), free(z);
}

// Inputs with correlated channels of very different scales: what GPTQ is for.
// x = (z·M) ∘ σ with M mixing every channel with a few shared factors, σ
// log-uniform over 1/8..8.
static float *correlated_inputs(rng *r, int n, int cols) {
    float *x = malloc(sizeof(float) * (size_t)n * cols);
    float *m = gaussian(r, 4 * cols, 1.0), *sigma = malloc(sizeof(float) * cols);
    for (int j = 0; j < cols; j++) sigma[j] = (float)exp((rng_uniform(r) * 2 - 1) * log(8.0));
    for (int t = 0; t < n; t++) {
        double f[4];
        for (int k = 0; k < 4; k++) f[k] = rng_gauss(r);
        for (int j = 0; j < cols; j++) {
            double v = 0.5 * rng_gauss(r);
            for (int k = 0; k < 4; k++) v += f[k] * m[k * cols + j];
            x[t * cols + j] = (float)(v * sigma[j]);
        }
    }
    free(m), free(sigma);
    return x;
}

static void test_gptq_beats_rtn_on_correlated_inputs(void **state) {
    (void)state;
    rng r = {7};
    const int rows = 64, cols = 256, n = 2048;
    float *x = correlated_inputs(&r, n, cols), *w = gaussian(&r, rows * cols, 0.02);
    double *h = hessian_of(x, n, cols);
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        const struct variant *V = &variants[v];
        struct lb_gptq_params p = {V->grid, V->rule, 0.01, V->act_order, V->static_groups, 128};
        struct gptq_codes c, rtn;
        lb_error err = {0};
        if (run_gptq(&p, rows, cols, w, h, &c, &err)) fail_msg("variant %zu: %s", v, err.msg);
        if (gptq_codes_alloc(&rtn, rows, cols, V->grid, &err)) fail_msg("%s", err.msg);
        gptq_rtn(V->grid, V->rule, rows, cols, w, &rtn);
        float *wg = values_of(&c), *wr = values_of(&rtn);
        const double eg = output_error_on(w, wg, rows, cols, x, n), er = output_error_on(w, wr, rows, cols, x, n);
        // The error from H equals the one measured on X.
        assert_float_equal(gptq_output_error(w, wg, rows, cols, h), eg, 1e-6 * eg);
        assert_float_equal(gptq_output_error(w, wr, rows, cols, h), er, 1e-6 * er);
        print_message("  %d-bit group %3d %s%s%s: RTN %.4f  GPTQ %.4f (%.2fx)\n", V->grid.bits, V->grid.group,
                      V->grid.symmetric ? "sym" : "asym", V->rule == GPTQ_SCALE_SIGNED_MAX ? " signed-max" : "",
                      V->act_order ? " act-order" : "", er, eg, er / eg);
        if (!(eg < 0.4 * er)) fail_msg("variant %zu: GPTQ %.4f is not below 0.4 x RTN %.4f", v, eg, er);
        free(wg), free(wr);
        gptq_codes_free(&rtn);
        gptq_codes_free(&c);
    }
    free(x), free(w), free(h);
}

// act-order with static groups: every group keeps the scale and zero of the
// unquantized weights (RTN's), so codes lie on the same grid as RTN; the
// order only changes which codes. Where channels differ in scale, it is no
// worse than the natural order.
static void test_act_order_static_groups(void **state) {
    (void)state;
    rng r = {11};
    const int rows = 48, cols = 256, n = 2048;
    float *x = correlated_inputs(&r, n, cols), *w = gaussian(&r, rows * cols, 0.02);
    double *h = hessian_of(x, n, cols);
    const struct lb_grid grids[] = {{4, 32, true}, {4, 64, false}, {3, 128, false}};
    for (size_t gi = 0; gi < sizeof grids / sizeof grids[0]; gi++) {
        struct lb_gptq_params plain = {grids[gi], GPTQ_SCALE_MINMAX, 0.01, false, false, 128};
        struct lb_gptq_params act = {grids[gi], GPTQ_SCALE_MINMAX, 0.01, true, true, 128};
        struct gptq_codes cp, ca, rtn;
        lb_error err = {0};
        if (run_gptq(&plain, rows, cols, w, h, &cp, &err) || run_gptq(&act, rows, cols, w, h, &ca, &err))
            fail_msg("%s", err.msg);
        if (gptq_codes_alloc(&rtn, rows, cols, grids[gi], &err)) fail_msg("%s", err.msg);
        gptq_rtn(grids[gi], GPTQ_SCALE_MINMAX, rows, cols, w, &rtn);
        assert_memory_equal(ca.scale, rtn.scale, sizeof(float) * rows * rtn.n_groups);
        assert_memory_equal(ca.zero, rtn.zero, sizeof(float) * rows * rtn.n_groups);
        // the codes did change (GPTQ moved them) and stay in range
        size_t moved = 0;
        for (int i = 0; i < rows * cols; i++) {
            moved += ca.q[i] != rtn.q[i];
            assert_true(ca.q[i] < (1 << grids[gi].bits));
        }
        assert_true(moved > (size_t)rows * cols / 20);
        float *wp = values_of(&cp), *wa = values_of(&ca);
        const double ep = gptq_output_error(w, wp, rows, cols, h), ea = gptq_output_error(w, wa, rows, cols, h);
        print_message("  %d-bit group %3d: GPTQ %.4f, act-order + static groups %.4f\n", grids[gi].bits,
                      grids[gi].group, ep, ea);
        if (!(ea <= ep)) fail_msg("act-order %.4f worse than natural order %.4f", ea, ep);
        free(wp), free(wa);
        gptq_codes_free(&cp), gptq_codes_free(&ca), gptq_codes_free(&rtn);
    }
    free(x), free(w), free(h);
}

// A singular H: 16 tokens for 64 inputs, channel 1 a copy of channel 0 (and
// 63 of 62), channel 9 never non-zero. The values are ±1 and 16 tokens make
// sqrt exact, so the copy's pivot is exactly 0 without dampening, in either
// Cholesky's order.
static void test_singular_hessian(void **state) {
    (void)state;
    rng r = {5};
    const int rows = 8, cols = 64, n = 16;
    float *x = malloc(sizeof(float) * n * cols), *w = gaussian(&r, rows * cols, 0.02);
    for (int t = 0; t < n; t++)
        for (int j = 0; j < cols; j++) x[t * cols + j] = rng_uniform(&r) < 0.5 ? -1.0f : 1.0f;
    for (int t = 0; t < n; t++) {
        x[t * cols + 1] = x[t * cols + 0];
        x[t * cols + 63] = x[t * cols + 62];
        x[t * cols + 9] = 0.0f;
    }
    double *h = hessian_of(x, n, cols);
    struct gptq_codes c;
    lb_error err = {0};

    struct lb_gptq_params p = {{4, 32, false}, GPTQ_SCALE_MINMAX, 0.01, false, false, 128};
    if (run_gptq(&p, rows, cols, w, h, &c, &err)) fail_msg("damp 0.01: %s", err.msg);
    float *wq = values_of(&c);
    for (int i = 0; i < rows * cols; i++) assert_true(isfinite(wq[i]));
    for (int rr = 0; rr < rows; rr++) assert_true(wq[rr * cols + 9] == 0.0f);  // a dead input's weight is 0
    const double e = gptq_output_error(w, wq, rows, cols, h);
    assert_true(e < 0.5);
    free(wq);
    gptq_codes_free(&c);

    p.damp_percent = 0.0;
    assert_int_equal(run_gptq(&p, rows, cols, w, h, &c, &err), LB_ERR_ARG);
    assert_non_null(strstr(err.msg, "not positive definite"));
    assert_non_null(strstr(err.msg, "raise damp_percent"));
    gptq_codes_free(&c);
    free(x), free(w), free(h);
}

// Both routes to U: UᵀU = H⁻¹ (checked as UᵀU·H = I) and, with LAPACK, the
// same U.
static void test_inverse_factor(void **state) {
    (void)state;
    rng r = {3};
    const int n = 150, k = 400;
    float *x = gaussian(&r, k * n, 1.0);
    double *h = hessian_of(x, k, n), *a = malloc(sizeof(double) * n * n), *b = malloc(sizeof(double) * n * n);
    lb_error err = {0};
    memcpy(a, h, sizeof(double) * n * n);
    if (gptq_inverse_factor(a, n, true, &err)) fail_msg("%s", err.msg);
    double worst = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            if (j < i) assert_true(a[i * n + j] == 0.0);
            double v = 0;  // (UᵀU·H)[i][j]
            for (int m = 0; m < n; m++) {
                double uu = 0;
                for (int l = 0; l <= (m < i ? m : i); l++) uu += a[l * n + i] * a[l * n + m];
                v += uu * h[m * n + j];
            }
            worst = fmax(worst, fabs(v - (i == j)));
        }
    if (worst > 1e-9) fail_msg("U^T U H differs from I by %g", worst);
    if (gptq_have_lapack) {
        memcpy(b, h, sizeof(double) * n * n);
        if (gptq_inverse_factor(b, n, false, &err)) fail_msg("%s", err.msg);
        for (int i = 0; i < n * n; i++) assert_float_equal(a[i], b[i], 1e-9 * (fabs(b[i]) + 1e-3));
    } else {
        print_message("  no LAPACK in this OpenBLAS: only lowbit's own Cholesky tested\n");
    }
    free(x), free(h), free(a), free(b);
}

// Codes pack into the type that holds the grid and decode to the grid's values.
static void test_pack(void **state) {
    (void)state;
    rng r = {9};
    const int rows = 4, cols = 128;
    float *w = gaussian(&r, rows * cols, 0.1), *back = malloc(sizeof(float) * cols);
    const struct { struct lb_grid g; enum gptq_scale_rule rule; lb_type t; double tol; } cases[] = {
        {{4, 32, true}, GPTQ_SCALE_SIGNED_MAX, LB_TYPE_Q4_0, 0},
        {{4, 32, true}, GPTQ_SCALE_MINMAX, LB_TYPE_Q4_0, 0},
        {{5, 32, true}, GPTQ_SCALE_SIGNED_MAX, LB_TYPE_Q5_0, 0},
        {{8, 32, true}, GPTQ_SCALE_MINMAX, LB_TYPE_Q8_0, 0},
        // min = −d·zero is stored as fp16 of its own: exact up to that rounding
        {{4, 32, false}, GPTQ_SCALE_MINMAX, LB_TYPE_Q4_1, 1e-3},
        {{5, 32, false}, GPTQ_SCALE_MINMAX, LB_TYPE_Q5_1, 1e-3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct gptq_codes c;
        lb_error err = {0};
        assert_int_equal(lb_grid_type(cases[i].g), cases[i].t);
        if (gptq_codes_alloc(&c, rows, cols, cases[i].g, &err)) fail_msg("%s", err.msg);
        gptq_rtn(cases[i].g, cases[i].rule, rows, cols, w, &c);
        float *v = values_of(&c);
        char *row = malloc(lb_type_row_bytes(cases[i].t, cols));
        for (int rr = 0; rr < rows; rr++) {
            if (lb_grid_pack_row(cases[i].t, cases[i].g, cols, c.q + rr * cols, c.scale + rr * c.n_groups,
                                 c.zero + rr * c.n_groups, row, &err))
                fail_msg("%s", err.msg);
            assert_int_equal(lb_type_to_float(cases[i].t, row, back, cols), LB_OK);
            for (int j = 0; j < cols; j++) {
                const double tol = cases[i].tol * fabs(c.scale[rr * c.n_groups + j / 32]) * 16;
                if (fabs(back[j] - v[rr * cols + j]) > tol)
                    fail_msg("%s row %d col %d: file %g, grid %g", lb_type_name(cases[i].t), rr, j, back[j],
                             v[rr * cols + j]);
            }
        }
        free(row), free(v);
        gptq_codes_free(&c);
    }
    // g128: until a type holds it, packing says which grid has no type.
    const struct lb_grid g128 = {4, 128, false};
    const lb_type t = lb_grid_type(g128);
    struct gptq_codes c;
    lb_error err = {0};
    if (gptq_codes_alloc(&c, rows, cols, g128, &err)) fail_msg("%s", err.msg);
    gptq_rtn(g128, GPTQ_SCALE_MINMAX, rows, cols, w, &c);
    if (t == LB_TYPE_COUNT) {
        char buf[256];
        assert_int_equal(lb_grid_pack_row(t, g128, cols, c.q, c.scale, c.zero, buf, &err), LB_ERR_ARG);
        assert_non_null(strstr(err.msg, "grid 4-bit group 128 asymmetric does not fit type (none)"));
    } else {
        char *row = malloc(lb_type_row_bytes(t, cols));
        if (lb_grid_pack_row(t, g128, cols, c.q, c.scale, c.zero, row, &err)) fail_msg("%s", err.msg);
        assert_int_equal(lb_type_to_float(t, row, back, cols), LB_OK);
        float *v = values_of(&c);
        for (int j = 0; j < cols; j++) assert_float_equal(back[j], v[j], 1e-3 * fabs(c.scale[0]) * 16);
        free(v), free(row);
    }
    gptq_codes_free(&c);
    free(w), free(back);
}

// ---------------------------------------------------------------------------
// Sequential calibration on stories260K

static const char *calib_text =
    "Once upon a time, there was a little girl named Mia. Mia had a red kite. Every morning she ran to the hill "
    "behind her house and let the kite fly high. One windy day the string slipped from her hand. The kite went up "
    "and up, over the trees. Mia was sad. Her brother Sam said, \"Do not cry. We will find it.\" They walked to "
    "the pond and looked in the reeds. They walked to the farm and asked the cow. At last they saw the kite in "
    "an old apple tree. Sam climbed up and got it down. Mia hugged him and said, \"Thank you, Sam!\" They flew "
    "the kite together until the sun went down.\n"
    "Tim had a small green frog. The frog liked to jump on the bed. One day the frog jumped out of the window "
    "and into the garden. Tim looked under the big leaves and behind the flower pots. He heard a little sound "
    "by the water can. It was the frog! Tim laughed and took his frog back inside. From then on he kept the "
    "window shut.\n";

struct captured {
    double *h[2][SEQ_N_INPUTS];  // layers 0 and 1
    int64_t n[2][SEQ_N_INPUTS];
};

static void capture(void *user, int layer, enum seq_input input, const double *h, int64_t n) {
    struct captured *c = user;
    if (layer > 1) return;
    free(c->h[layer][input]);
    c->h[layer][input] = malloc(sizeof(double) * (size_t)(n * n));
    memcpy(c->h[layer][input], h, sizeof(double) * (size_t)(n * n));
    c->n[layer][input] = n;
}

static void captured_free(struct captured *c) {
    for (int l = 0; l < 2; l++)
        for (int i = 0; i < SEQ_N_INPUTS; i++) free(c->h[l][i]);
}

static const char *const matrix_names[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                                           "ffn_down"};

// Quantize every layer matrix of stories260K to Q8_0 where rows allow (Q4_0
// grid by GPTQ when `gptq`), except layer 0's when keep_layer0; token_embd
// stays F32. Returns the Hessians of layers 0 and 1.
static void run_sequential(lb_model *m, const char *text_path, bool gptq, bool keep_layer0, bool true_seq,
                           struct captured *cap) {
    struct seq_tensor t[5 * 7 + 1];
    char names[5 * 7][64];
    int n = 0;
    t[n++] = (struct seq_tensor){.name = "token_embd.weight", .type = LB_TYPE_F32};
    for (int l = 0; l < 5; l++)
        for (int k = 0; k < 7; k++) {
            snprintf(names[l * 7 + k], sizeof names[0], "blk.%d.%s.weight", l, matrix_names[k]);
            const bool down = k == 6;  // 172 columns: no 32-groups, F16 as the fallback
            const bool keep = keep_layer0 && l == 0;
            t[n++] = (struct seq_tensor){.name = names[l * 7 + k],
                                         .type = keep ? LB_TYPE_F32 : down ? LB_TYPE_F16 : LB_TYPE_Q4_0,
                                         .gptq = gptq && !keep && !down};
        }
    const struct lb_gptq_params gp = {{4, 32, true}, GPTQ_SCALE_SIGNED_MAX, 0.01, true, true, 128};
    const struct seq_params sp = {
        .gptq = &gp, .true_sequential = true_seq,
        .calib = {.text_path = text_path, .n_samples = 4, .n_ctx = 64, .n_threads = 2},
        .hessian_hook = capture, .hook_user = cap,
    };
    lb_error err = {0};
    int samples = 0;
    if (seq_quantize(m, t, n, &sp, &samples, &err)) fail_msg("%s", err.msg);
    assert_int_equal(samples, 4);
    for (int i = 0; i < n; i++) {
        assert_non_null(t[i].data);
        if (i > 0) assert_true(t[i].out_error >= 0 && t[i].out_error < 0.5);
        assert_true(t[i].out_error_rtn >= 0 ? t[i].gptq : !t[i].gptq);
        // GPTQ's own objective: it should not lose to RTN on the inputs it saw
        if (t[i].gptq) assert_true(t[i].out_error <= t[i].out_error_rtn * 1.05);
        free(t[i].data);
    }
}

static double rel_diff(const double *a, const double *b, int64_t n) {
    double d = 0, s = 0;
    for (int64_t i = 0; i < n * n; i++) d += (a[i] - b[i]) * (a[i] - b[i]), s += b[i] * b[i];
    return sqrt(d / s);
}

// Σ x·xᵀ of layer 1's attention input over a plain forward pass (calib_run).
struct plain_obs {
    double *h;
    int n;
};
static void plain_observe(void *user, int layer, const struct lb_weight *w, const float *x, int n) {
    struct plain_obs *o = user;
    if (layer != 1 || strcmp(w->name, "blk.1.attn_q.weight")) return;
    for (int t = 0; t < n; t++)
        for (int i = 0; i < o->n; i++)
            for (int j = 0; j < o->n; j++) o->h[i * o->n + j] += (double)x[t * o->n + i] * x[t * o->n + j];
}

static void test_sequential_sees_quantized_layers(void **state) {
    (void)state;
    REQUIRE_SHARED();
    const char *text = tmp_path("calib.txt");
    FILE *fp = fopen(text, "w");
    assert_non_null(fp);
    for (int i = 0; i < 3; i++) fputs(calib_text, fp);
    fclose(fp);
    lb_model *m = open_model(model_path("stories260K.gguf"), NULL);
    struct captured quant = {0}, kept = {0}, quant_seq = {0};
    run_sequential(m, text, true, false, false, &quant);
    run_sequential(m, text, true, true, false, &kept);
    run_sequential(m, text, true, false, true, &quant_seq);
    const int64_t d = lb_model_hparams(m)->n_embd;

    // Layer 0's inputs come from the embeddings alone.
    assert_int_equal(quant.n[0][SEQ_ATTN_IN], d);
    assert_memory_equal(quant.h[0][SEQ_ATTN_IN], kept.h[0][SEQ_ATTN_IN], sizeof(double) * d * d);
    // Layer 1's are made by layer 0: quantized or not, they differ.
    const double diff = rel_diff(quant.h[1][SEQ_ATTN_IN], kept.h[1][SEQ_ATTN_IN], d);
    print_message("  layer 1 input Hessian, layer 0 quantized vs kept: relative difference %.3g\n", diff);
    assert_true(diff > 1e-3);

    // Kept, they are what a plain forward pass of the model gives.
    struct lb_calib_params cp = {.text_path = text, .n_samples = 4, .n_ctx = 64, .n_threads = 2};
    struct plain_obs po = {calloc((size_t)(d * d), sizeof(double)), (int)d};
    const struct lb_observer obs = {plain_observe, &po};
    lb_error err = {0};
    if (calib_run(m, &cp, &obs, NULL, NULL, &err)) fail_msg("%s", err.msg);
    for (int64_t i = 0; i < d * d; i++) po.h[i] *= 2.0 / 4;
    const double same = rel_diff(kept.h[1][SEQ_ATTN_IN], po.h, d);
    print_message("  layer 1 input Hessian, cached-state pass vs full forward: relative difference %.3g\n", same);
    assert_true(same < 1e-6);

    // true_sequential: o_proj's inputs are collected after q/k/v are quantized.
    assert_memory_equal(quant.h[0][SEQ_ATTN_IN], quant_seq.h[0][SEQ_ATTN_IN], sizeof(double) * d * d);
    assert_true(rel_diff(quant.h[0][SEQ_ATTN_OUT], quant_seq.h[0][SEQ_ATTN_OUT], quant.n[0][SEQ_ATTN_OUT]) > 1e-4);

    free(po.h);
    captured_free(&quant), captured_free(&kept), captured_free(&quant_seq);
    lb_model_free(m);
}

int main(void) {
    if (!lbtest_init("gptq")) return 1;
    pool = threadpool_new(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_hessian_is_rtn),
        cmocka_unit_test(test_gptq_beats_rtn_on_correlated_inputs),
        cmocka_unit_test(test_act_order_static_groups),
        cmocka_unit_test(test_singular_hessian),
        cmocka_unit_test(test_inverse_factor),
        cmocka_unit_test(test_pack),
        cmocka_unit_test(test_sequential_sees_quantized_layers),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    threadpool_free(pool);
    lbtest_cleanup();
    return failed;
}
