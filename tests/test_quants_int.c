/*
 * test_quants_int.c — lowbit's integer grid types (absmax and zero point,
 * per tensor, channel and group), FP8 and NF4_DQ, beyond what the
 * table-wide loop of test_types.c checks:
 *   - absmax: every element within d/2 of its value, d = max|x| / qmax of its
 *     group, row or tensor (fp16 group scales rounded up: d ≤ that · (1 + 2^−10));
 *   - zero point: the same bound with d = (max − min) / (2^b − 1) over a range
 *     holding 0, and 0.0 decodes to exactly 0.0 in every type;
 *   - per channel beats per tensor on rows of different magnitudes;
 *   - forced dispatch: scalar and AVX2 dot products agree for every new type
 *     at several row lengths;
 *   - FP8 codes: the conversion of all 256 codes and the encoder's rounding
 *     (ties to even), saturation, subnormals and NaN;
 *   - NF4_DQ rows of up to 256 absmax values (16384 weights) quantize, wider
 *     ones are refused naming the tensor;
 *   - grid.c: for every grid (2/3/4/8 bits, group 32/64/128/channel,
 *     symmetric or not, plus 5 bits at 32) pack → decode equals
 *     scale·(q − zero) up to the type's scale precision, and bad grids are
 *     refused;
 *   - stories260K requantized with each new profile decodes, 8-bit profiles
 *     agree with F32 on the greedy token at nearly every step, and per
 *     channel is closer to F32 than per tensor.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp16.h"
#include "gguf.h"
#include "grid.h"
#include "lowbit.h"
#include "lbtest.h"
#include "profile.h"
#include "quants.h"
#include "types.h"

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

static void fill_gaussian(rng *r, float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(scale * sqrt(-2.0 * log(rng_uniform(r))) * cos(2.0 * M_PI * rng_uniform(r)));
}

// The integer grid types: bits, group (0: per channel, -1: per tensor), zero point.
static const struct int_type {
    lb_type type;
    int bits, group;
    bool zp;
} int_types[] = {
    {LB_TYPE_INT8_T, 8, -1, false},     {LB_TYPE_INT8_C, 8, 0, false},      {LB_TYPE_INT8_G64, 8, 64, false},
    {LB_TYPE_INT8_G128, 8, 128, false}, {LB_TYPE_INT8Z_C, 8, 0, true},      {LB_TYPE_INT8Z_G32, 8, 32, true},
    {LB_TYPE_INT8Z_G64, 8, 64, true},   {LB_TYPE_INT8Z_G128, 8, 128, true}, {LB_TYPE_INT4_T, 4, -1, false},
    {LB_TYPE_INT4_C, 4, 0, false},      {LB_TYPE_INT4_G64, 4, 64, false},   {LB_TYPE_INT4_G128, 4, 128, false},
    {LB_TYPE_INT4Z_C, 4, 0, true},      {LB_TYPE_INT4Z_G64, 4, 64, true},   {LB_TYPE_INT4Z_G128, 4, 128, true},
    {LB_TYPE_INT3_C, 3, 0, false},      {LB_TYPE_INT3_G32, 3, 32, false},   {LB_TYPE_INT3_G64, 3, 64, false},
    {LB_TYPE_INT3_G128, 3, 128, false}, {LB_TYPE_INT3Z_C, 3, 0, true},      {LB_TYPE_INT3Z_G32, 3, 32, true},
    {LB_TYPE_INT3Z_G64, 3, 64, true},   {LB_TYPE_INT3Z_G128, 3, 128, true}, {LB_TYPE_INT2_C, 2, 0, false},
    {LB_TYPE_INT2_G32, 2, 32, false},   {LB_TYPE_INT2_G64, 2, 64, false},   {LB_TYPE_INT2_G128, 2, 128, false},
    {LB_TYPE_INT2Z_C, 2, 0, true},      {LB_TYPE_INT2Z_G32, 2, 32, true},   {LB_TYPE_INT2Z_G64, 2, 64, true},
    {LB_TYPE_INT2Z_G128, 2, 128, true},
};
enum { N_INT_TYPES = sizeof int_types / sizeof int_types[0] };

// Quantize a rows × n tensor with the public call and decode it row by row.
static void round_trip_rows(lb_type t, const float *x, float *y, int64_t rows, int64_t n) {
    const size_t row = lb_type_row_bytes(t, n);
    uint8_t *q = malloc(row * (size_t)rows);
    assert_int_equal(lb_type_from_float_rows(t, x, q, rows, n), LB_OK);
    for (int64_t r = 0; r < rows; r++) assert_int_equal(lb_type_to_float(t, q + (size_t)r * row, y + r * n, n), LB_OK);
    free(q);
}

static double rms_error(const float *x, const float *y, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
    return sqrt(s / (double)n);
}

// ---------------------------------------------------------------------------
// Error bounds and the zero point

// The step d of the span [lo, hi] of the elements sharing a scale.
static double step_of(const struct int_type *it, double lo, double hi) {
    const int qmax = it->zp ? (1 << it->bits) - 1 : (1 << (it->bits - 1)) - 1;
    const double span = it->zp ? fmax(hi, 0) - fmin(lo, 0) : fmax(fabs(lo), fabs(hi));
    const double d = span / qmax;
    return it->group > 0 ? d * (1 + 0x1p-10) : d; // fp16 group scales are rounded up
}

static void test_error_bound(void **state) {
    (void)state;
    const int64_t rows = 8, n = 512;
    float *x = malloc(rows * n * sizeof *x), *y = malloc(rows * n * sizeof *y);
    rng r = {11};
    for (int64_t k = 0; k < rows; k++) fill_gaussian(&r, x + k * n, n, (float)(k + 1)); // rows of different sizes
    for (int i = 0; i < 40; i++) x[7 * i + 3] = fabsf(x[7 * i + 3]) + 2; // some groups all-positive-heavy
    for (size_t t = 0; t < N_INT_TYPES; t++) {
        const struct int_type *it = &int_types[t];
        round_trip_rows(it->type, x, y, rows, n);
        const int64_t g = it->group > 0 ? it->group : it->group == 0 ? n : rows * n;
        double worst = 0;
        for (int64_t s = 0; s < rows * n; s += g) {
            double lo = INFINITY, hi = -INFINITY;
            for (int64_t i = s; i < s + g; i++) lo = fmin(lo, x[i]), hi = fmax(hi, x[i]);
            const double half = step_of(it, lo, hi) / 2;
            for (int64_t i = s; i < s + g; i++) {
                const double e = fabs((double)x[i] - y[i]);
                // float rounding of x / d and of (q − z) · d: a few ulp of |x|
                if (e > half * (1 + 1e-5) + 4e-7 * fabs(x[i]))
                    fail_msg("%s element %lld: |%.9g - %.9g| = %.9g > d/2 = %.9g", lb_type_name(it->type),
                             (long long)i, x[i], y[i], e, half);
                worst = fmax(worst, e / half);
            }
        }
        print_message("%-10s worst |x - y| / (d/2) = %.4f\n", lb_type_name(it->type), worst);
    }
    free(x);
    free(y);
}

static void test_zero_is_exact(void **state) {
    (void)state;
    const int64_t n = 256;
    float x[256], y[256];
    rng r = {12};
    // Mixed signs, all positive, all negative, and tiny: every exact 0.0 must decode to 0.0.
    for (int c = 0; c < 4; c++) {
        fill_gaussian(&r, x, n, c == 3 ? 1e-3f : 1.0f);
        for (int64_t i = 0; i < n; i++) {
            if (c == 1) x[i] = fabsf(x[i]) + 0.5f;
            if (c == 2) x[i] = -fabsf(x[i]) - 0.5f;
            if (i % 5 == 0) x[i] = 0.0f;
        }
        for (size_t t = 0; t < N_INT_TYPES; t++) {
            round_trip_rows(int_types[t].type, x, y, 1, n);
            for (int64_t i = 0; i < n; i += 5)
                if (y[i] != 0.0f) fail_msg("%s case %d: 0.0 decoded as %g", lb_type_name(int_types[t].type), c, y[i]);
        }
    }
}

// Rows spanning four orders of magnitude: one scale per tensor is set by the
// largest row and wastes the codes of the small ones.
static void test_per_channel_beats_per_tensor(void **state) {
    (void)state;
    const int64_t rows = 16, n = 256;
    float *x = malloc(rows * n * sizeof *x), *y = malloc(rows * n * sizeof *y);
    rng r = {13};
    for (int64_t k = 0; k < rows; k++) fill_gaussian(&r, x + k * n, n, powf(10.0f, (float)k / 4 - 2));
    const lb_type pairs[][2] = {{LB_TYPE_INT8_C, LB_TYPE_INT8_T}, {LB_TYPE_INT4_C, LB_TYPE_INT4_T}};
    for (int p = 0; p < 2; p++) {
        double e[2];
        for (int k = 0; k < 2; k++) {
            round_trip_rows(pairs[p][k], x, y, rows, n);
            // error relative to each row's size, averaged: what the small rows lose shows
            e[k] = 0;
            for (int64_t row = 0; row < rows; row++) {
                double s = 0;
                for (int64_t i = 0; i < n; i++) s += (double)x[row * n + i] * x[row * n + i];
                e[k] += rms_error(x + row * n, y + row * n, n) / sqrt(s / (double)n) / (double)rows;
            }
        }
        print_message("%s mean relative row error %.5f, %s %.5f\n", lb_type_name(pairs[p][0]), e[0],
                      lb_type_name(pairs[p][1]), e[1]);
        assert_true(e[0] < e[1] / 4);
    }
    // One row: a per-tensor type is per-channel of that row.
    round_trip_rows(LB_TYPE_INT8_T, x, y, 1, n);
    float y2[256];
    round_trip_rows(LB_TYPE_INT8_C, x, y2, 1, n);
    assert_memory_equal(y, y2, sizeof y2);
    free(x);
    free(y);
}

// ---------------------------------------------------------------------------
// Forced dispatch: scalar and AVX2 agree

// For one SIMD table: false when this CPU (or build) has none.
static bool scalar_vs_simd(const char *isa) {
    if (!lb_cpu_select(isa)) {
        print_message("%s: not supported on this CPU or not built, skipped\n", isa);
        return false;
    }
    const int64_t lens[] = {32, 128, 256, 4096, 4097};
    rng r = {14};
    int checked = 0;
    for (int t = LB_TYPE_INT8_T; t <= LB_TYPE_NF4_DQ; t++) {
        const struct lb_type_traits *tt = lb_traits((lb_type)t);
        assert_non_null(tt);
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            const int64_t n = lens[li];
            if (n % tt->block_size != 0) continue;
            float *wx = malloc(n * sizeof *wx), *ax = malloc(n * sizeof *ax);
            fill_gaussian(&r, wx, n, 0.05f);
            fill_gaussian(&r, ax, n, 3.0f);
            void *w = malloc(lb_type_row_bytes((lb_type)t, n));
            assert_int_equal(lb_type_from_float((lb_type)t, wx, w, n), LB_OK);
            const lb_type at = tt->vec_dot_type;
            void *a = malloc(at == LB_TYPE_F32 ? n * sizeof(float) : lb_type_row_bytes(at, n));
            if (at == LB_TYPE_F32) memcpy(a, ax, n * sizeof(float));
            else assert_int_equal(lb_type_from_float(at, ax, a, n), LB_OK);
            assert_true(lb_cpu_select("scalar"));
            const float s = lb_kernel_vec_dot((lb_type)t)(n, w, a);
            assert_true(lb_cpu_select(isa));
            assert_ptr_not_equal(lb_kernels()->vec_dot[t], NULL); // a SIMD kernel, not the fallback
            const float v = lb_kernel_vec_dot((lb_type)t)(n, w, a);
            // Both sums are of the same exact integers (or the same float
            // products); only the order of float additions differs.
            float *wf = malloc(n * sizeof *wf);
            lb_type_to_float((lb_type)t, w, wf, n);
            double abs_sum = 0;
            for (int64_t i = 0; i < n; i++) abs_sum += fabs((double)wf[i] * ax[i]);
            if (!(fabs((double)v - s) <= 2e-6 * abs_sum))
                fail_msg("%s n=%lld: %s %.9g scalar %.9g", tt->name, (long long)n, isa, v, s);
            checked++;
            free(wx), free(ax), free(w), free(a), free(wf);
        }
    }
    print_message("%s: %d (type, length) pairs agree\n", isa, checked);
    assert_true(lb_cpu_select("auto"));
    return true;
}

static void test_scalar_vs_avx2(void **state) {
    (void)state;
    if (!scalar_vs_simd("avx2")) skip();
}

// The AVX-512 source, natively or through SIMDe on AVX2 (kernels_avx512.c).
static void test_scalar_vs_avx512(void **state) {
    (void)state;
    const char *isas[] = {"avx512", "avx512vnni", "avx512-emulated", "avx512vnni-emulated"};
    int ran = 0;
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) ran += scalar_vs_simd(isas[i]);
    if (!ran) skip();
}

// ---------------------------------------------------------------------------
// FP8

// The codes from their definitions, independently of quants_fp8.c.
static double e4m3_value(int c) {
    const int s = c >> 7, e = c >> 3 & 15, m = c & 7;
    if (e == 15 && m == 7) return NAN;
    const double v = e ? ldexp(1 + m / 8.0, e - 7) : ldexp(m, -9);
    return s ? -v : v;
}

static double e5m2_value(int c) {
    const int s = c >> 7, e = c >> 2 & 31, m = c & 3;
    double v = e == 31 ? (m ? NAN : INFINITY) : e ? ldexp(1 + m / 4.0, e - 15) : ldexp(m, -16);
    return s ? -v : v;
}

static void test_fp8(void **state) {
    (void)state;
    for (int c = 0; c < 256; c++) {
        const double a = e4m3_value(c), b = e5m2_value(c);
        const float fa = lb_fp8_e4m3_to_f32((uint8_t)c), fb = lb_fp8_e5m2_to_f32((uint8_t)c);
        assert_true(isnan(a) ? isnan(fa) : fa == a && !signbit(fa) == !signbit(a));
        assert_true(isnan(b) ? isnan(fb) : fb == b && !signbit(fb) == !signbit(b));
        // Every finite code encodes back to itself (-0 included).
        if (!isnan(a)) assert_int_equal(lb_f32_to_fp8_e4m3(fa), c);
        if (isfinite(b)) assert_int_equal(lb_f32_to_fp8_e5m2(fb), c);
    }
    // Ties to even: halfway between 1 (mantissa 0) and 1.125 (mantissa 1) goes to 1;
    // between 1.125 and 1.25 to 1.25.
    assert_int_equal(lb_f32_to_fp8_e4m3(1.0625f), 0x38);
    assert_int_equal(lb_f32_to_fp8_e4m3(1.1875f), 0x3A);
    assert_int_equal(lb_f32_to_fp8_e5m2(1.125f), 0x3C);  // between 1 and 1.25
    assert_int_equal(lb_f32_to_fp8_e5m2(1.375f), 0x3E);  // between 1.25 and 1.5
    // Subnormals: 2^-9 is E4M3's smallest; half of it ties to 0, just above rounds up.
    assert_int_equal(lb_f32_to_fp8_e4m3(0x1p-9f), 0x01);
    assert_int_equal(lb_f32_to_fp8_e4m3(0x1p-10f), 0x00);
    assert_int_equal(lb_f32_to_fp8_e4m3(0x1.8p-10f), 0x01);
    assert_int_equal(lb_f32_to_fp8_e4m3(0x1.8p-9f), 0x02); // 1.5 ulp: tie to even (2)
    assert_int_equal(lb_f32_to_fp8_e4m3(0x1.ep-7f), 0x08); // 7.5 · 2^-9 rounds up to the smallest normal
    assert_int_equal(lb_f32_to_fp8_e5m2(0x1p-16f), 0x01);
    // Saturation: past the largest finite value, and infinities, give the largest.
    assert_int_equal(lb_f32_to_fp8_e4m3(448.0f), 0x7E);
    assert_int_equal(lb_f32_to_fp8_e4m3(470.0f), 0x7E);
    assert_int_equal(lb_f32_to_fp8_e4m3(1e30f), 0x7E);
    assert_int_equal(lb_f32_to_fp8_e4m3(-INFINITY), 0xFE);
    assert_int_equal(lb_f32_to_fp8_e5m2(57344.0f), 0x7B);
    assert_int_equal(lb_f32_to_fp8_e5m2(65536.0f), 0x7B);
    assert_int_equal(lb_f32_to_fp8_e5m2(INFINITY), 0x7B);
    // NaN stays NaN.
    assert_int_equal(lb_f32_to_fp8_e4m3(NAN) & 0x7F, 0x7F);
    assert_true(isnan(lb_fp8_e5m2_to_f32(lb_f32_to_fp8_e5m2(NAN))));

    // A row: its largest element is the largest code exactly.
    float x[64], y[64];
    rng r = {15};
    fill_gaussian(&r, x, 64, 3.0f);
    x[10] = 100.0f;
    uint8_t q[4 + 64];
    assert_int_equal(lb_type_from_float(LB_TYPE_FP8_E4M3, x, q, 64), LB_OK);
    assert_int_equal(q[4 + 10], 0x7E);
    assert_int_equal(lb_type_to_float(LB_TYPE_FP8_E4M3, q, y, 64), LB_OK);
    assert_true(fabsf(y[10] - 100.0f) <= 1e-4f);
    for (int i = 0; i < 64; i++) assert_true(fabsf(x[i] - y[i]) <= fabsf(x[i]) / 16 + 100.0f / 448 * 0x1p-9f);
}

// NF4_DQ: the absmax map is bitsandbytes' formula, and decoding follows it.
static void test_nf4_dq(void **state) {
    (void)state;
    // create_dynamic_map(signed=True): for i = 0..6, 2^i midpoints of
    // linspace(0.1, 1, 2^i + 1) times ±10^(i-6); plus 0 and 1; sorted.
    double want[256];
    int k = 0;
    for (int i = 0; i < 7; i++) {
        const int items = (1 << i) + 1;
        for (int j = 0; j + 1 < items; j++) {
            const double b0 = 0.1 + 0.9 * j / (items - 1), b1 = 0.1 + 0.9 * (j + 1) / (items - 1);
            want[k++] = pow(10, i - 6) * (b0 + b1) / 2;
            want[k++] = -pow(10, i - 6) * (b0 + b1) / 2;
        }
    }
    want[k++] = 0, want[k++] = 1;
    assert_int_equal(k, 256);
    for (int i = 1; i < 256; i++) // insertion sort
        for (int j = i; j > 0 && want[j - 1] > want[j]; j--) {
            const double t = want[j];
            want[j] = want[j - 1], want[j - 1] = t;
        }
    for (int i = 0; i < 256; i++) assert_true(lb_bnb_dynamic_map[i] == (float)want[i]);

    // Round trip on rows whose blocks differ in size: close to plain NF4's error.
    const int64_t n = 4096;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    rng r = {16};
    fill_gaussian(&r, x, n, 1.0f);
    for (int64_t i = 0; i < n; i++) x[i] *= 1 + (float)(i / 64 % 7);
    double e[2];
    const lb_type types[2] = {LB_TYPE_NF4, LB_TYPE_NF4_DQ};
    for (int t = 0; t < 2; t++) {
        round_trip_rows(types[t], x, y, 1, n);
        e[t] = rms_error(x, y, n);
    }
    print_message("NF4 rms error %.5f, NF4_DQ %.5f; bytes %zu vs %zu\n", e[0], e[1], lb_type_row_bytes(LB_TYPE_NF4, n),
                  lb_type_row_bytes(LB_TYPE_NF4_DQ, n));
    assert_true(e[1] < e[0] * 1.02);
    assert_int_equal(lb_type_row_bytes(LB_TYPE_NF4_DQ, n), 8 + 64 * 33);
    free(x);
    free(y);
}

// NF4_DQ rows: one second-level block of at most 256 absmax values each, as
// bitsandbytes' blocksize 256. A row of 256 × 64 weights quantizes (and
// decodes about as well as NF4); one block more is refused, naming the tensor.
static void test_nf4_dq_row_limit(void **state) {
    (void)state;
    const int64_t widths[2] = {256 * 64, 257 * 64}, rows = 2;
    lb_error err = {0};
    lb_profile *p = NULL;
    if (lb_profile_find(&p, "nf4-double-quant", &err) != LB_OK) fail_msg("%s", err.msg);
    float *x = malloc(sizeof(float) * (size_t)(widths[1] * rows));
    rng r = {17};
    fill_gaussian(&r, x, widths[1] * rows, 0.02f);
    for (int k = 0; k < 2; k++) {
        struct gguf_writer *w = gguf_writer_new();
        assert_non_null(w);
        char in[64], out[64];
        snprintf(in, sizeof in, "dq%d.gguf", k);
        snprintf(out, sizeof out, "dq%d-q.gguf", k);
        if (gguf_writer_set_str(w, "general.architecture", "llama", &err) ||
            gguf_writer_add_tensor(w, "blk.0.ffn_down.weight", LB_TYPE_F32, 2, (int64_t[]){widths[k], rows}, x,
                                   sizeof(float) * (size_t)(widths[k] * rows), &err) ||
            gguf_writer_write(w, tmp_path(in), &err))
            fail_msg("%s", err.msg);
        gguf_writer_free(w);
        char in_path[4096];
        snprintf(in_path, sizeof in_path, "%s", tmp_path(in));
        lb_quantize_params qp = {.profile = p, .n_threads = 1};
        lb_quantize_stats st;
        const lb_status s = lb_quantize_file(in_path, tmp_path(out), &qp, &st, &err);
        if (k == 0) {
            if (s != LB_OK) fail_msg("%s", err.msg);
            assert_int_equal(st.tensors[0].type_out, LB_TYPE_NF4_DQ);
            print_message("NF4_DQ, rows of %lld: rel. error %.4f\n", (long long)widths[k], st.tensors[0].rel_error);
            assert_true(st.tensors[0].rel_error > 0 && st.tensors[0].rel_error < 0.12); // NF4 is about 0.1 on N(0, 1)
            lb_quantize_stats_free(&st);
        } else { // 257 absmax values: NF4's codes with fp16 absmax, marked as a fallback
            if (s != LB_OK) fail_msg("%s", err.msg);
            assert_int_equal(st.tensors[0].type_out, LB_TYPE_NF4);
            assert_true(st.tensors[0].fallback);
            lb_quantize_stats_free(&st);
            // Asked for directly, such a row is refused with the tensor named.
            assert_int_equal(lb_quant_check_row(LB_TYPE_NF4_DQ, "f.gguf", "blk.0.ffn_down.weight", widths[k], &err),
                             LB_ERR_UNSUPPORTED);
            print_message("%s\n", err.msg);
            assert_non_null(strstr(err.msg, "blk.0.ffn_down.weight"));
            assert_non_null(strstr(err.msg, "rows of 16448 weights"));
            assert_non_null(strstr(err.msg, "at most 16384"));
        }
    }
    free(x);
    lb_profile_free(p);
}

// ---------------------------------------------------------------------------
// Grids

static void test_grid_pack(void **state) {
    (void)state;
    const int bits[] = {2, 3, 4, 5, 8}, groups[] = {32, 64, 128, LB_GRID_PER_CHANNEL};
    const int64_t n = 256;
    rng r = {17};
    int packed = 0;
    for (size_t b = 0; b < 5; b++)
        for (size_t g = 0; g < 4; g++)
            for (int sym = 0; sym < 2; sym++) {
                const struct lb_grid grid = {bits[b], groups[g], sym};
                const lb_type t = lb_grid_type(grid);
                if (bits[b] == 5 && groups[g] != 32) { // 5 bits: only ggml's Q5_0 / Q5_1
                    assert_int_equal(t, LB_TYPE_COUNT);
                    continue;
                }
                assert_int_not_equal(t, LB_TYPE_COUNT);
                const int max_q = (1 << bits[b]) - 1, gs = groups[g] ? groups[g] : (int)n;
                uint8_t q[256];
                float scale[8], zero[8], y[256];
                for (int64_t i = 0; i < n; i++) q[i] = (uint8_t)(rng_next(&r) % (uint64_t)(max_q + 1));
                q[0] = 0, q[1] = (uint8_t)max_q; // both ends of the grid
                for (int k = 0; k < n / gs; k++) {
                    scale[k] = (float)(0.001 + rng_uniform(&r) * 0.1);
                    zero[k] = sym ? (float)(1 << (bits[b] - 1)) : (float)(rng_next(&r) % (uint64_t)(max_q + 1));
                }
                void *dst = malloc(lb_type_row_bytes(t, n));
                lb_error err;
                if (lb_grid_pack_row(t, grid, n, q, scale, zero, dst, &err) != LB_OK) fail_msg("%s", err.msg);
                assert_int_equal(lb_type_to_float(t, dst, y, n), LB_OK);
                const bool fp16_scale = groups[g] != LB_GRID_PER_CHANNEL;
                for (int64_t i = 0; i < n; i++) {
                    const int k = (int)(i / gs);
                    const float d = fp16_scale ? lb_fp16_to_f32(lb_f32_to_fp16(scale[k])) : scale[k];
                    float want = d * (float)(q[i] - zero[k]);
                    if (t == LB_TYPE_Q4_1 || t == LB_TYPE_Q5_1) // x = d·q + m, m = fp16(−scale·zero)
                        want = d * (float)q[i] + lb_fp16_to_f32(lb_f32_to_fp16(-scale[k] * zero[k]));
                    if (y[i] != want)
                        fail_msg("%s (%d bits, group %d, %s) element %lld: %.9g, expected %.9g", lb_type_name(t),
                                 bits[b], groups[g], sym ? "symmetric" : "zero point", (long long)i, y[i], want);
                }
                packed++;
                free(dst);
            }
    print_message("%d grids packed and decoded to scale·(q − zero)\n", packed);
    assert_int_equal(packed, 34);

    // What is refused: a grid the type does not hold, a row that does not
    // fit its groups, a code past the bits, a zero that is not an integer code.
    uint8_t q[128] = {0}, out[256];
    float scale[4] = {1, 1, 1, 1}, zero[4] = {3, 3, 3, 3};
    lb_error err;
    const struct lb_grid g4 = {4, 64, false};
    assert_int_equal(lb_grid_pack_row(LB_TYPE_Q4_1, g4, 128, q, scale, zero, out, &err), LB_ERR_ARG);
    assert_int_equal(lb_grid_pack_row(LB_TYPE_INT4Z_G64, g4, 96, q, scale, zero, out, &err), LB_ERR_ARG);
    q[5] = 16;
    assert_int_equal(lb_grid_pack_row(LB_TYPE_INT4Z_G64, g4, 128, q, scale, zero, out, &err), LB_ERR_ARG);
    q[5] = 15;
    zero[1] = 2.5f;
    assert_int_equal(lb_grid_pack_row(LB_TYPE_INT4Z_G64, g4, 128, q, scale, zero, out, &err), LB_ERR_ARG);
    print_message("refused: %s\n", err.msg);
    zero[1] = 16;
    assert_int_equal(lb_grid_pack_row(LB_TYPE_INT4Z_G64, g4, 128, q, scale, zero, out, &err), LB_ERR_ARG);
    zero[1] = 15;
    assert_int_equal(lb_grid_pack_row(LB_TYPE_INT4Z_G64, g4, 128, q, scale, zero, out, &err), LB_OK);
}

// ---------------------------------------------------------------------------
// A real model requantized with each new profile

struct run {
    int agree;         // steps whose argmax matches F32's
    double mean_abs;   // mean |logit − F32 logit|
};

enum { STEPS = 24 };

// Teacher-forced decoding of `tokens` (STEPS + 1 of them): the argmax and
// logits after each prefix.
static void run_model(const char *path, const int32_t *tokens, int32_t *argmax, float *logits, int n_vocab) {
    lb_model *m = open_model(path, NULL);
    lb_context *c = open_context(m, 64, LB_TYPE_F32, 1);
    lb_error err;
    for (int s = 0; s < STEPS; s++) {
        float *l = logits + (size_t)s * n_vocab;
        if (lb_decode(c, &tokens[s], 1, l, &err) != LB_OK) fail_msg("%s", err.msg);
        for (int v = 0; v < n_vocab; v++) assert_true(isfinite(l[v]));
        argmax[s] = lb_argmax(l, n_vocab);
    }
    lb_context_free(c);
    lb_model_free(m);
}

static void test_stories_profiles(void **state) {
    (void)state;
    REQUIRE_SHARED();
    static const struct {
        const char *profile;
        int min_agree; // of STEPS greedy steps
    } profiles[] = {
        {"int8-absmax", STEPS - 1},   {"int8-absmax-tensor", 0}, {"int8-zeropoint", STEPS - 1},
        {"int4-absmax", 0},           {"int4-absmax-tensor", 0}, {"int4-g128", STEPS / 2},
        {"int4-zp-g128", STEPS / 2},  {"int3-g128", STEPS / 3},  {"nf4-double-quant", STEPS / 2},
        {"fp8-e4m3", STEPS - 2},      {"fp8-e5m2", STEPS / 2},
    };
    const char *f32 = model_path("stories260K.gguf");
    lb_model *m = open_model(f32, NULL);
    const int n_vocab = lb_model_hparams(m)->n_vocab;
    int32_t tokens[256];
    int n = lb_tokenize(m, "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
                           "park with her friends and her dog.", -1, true, false, tokens, 256);
    assert_true(n >= STEPS);
    lb_model_free(m);

    float *base = malloc((size_t)STEPS * n_vocab * sizeof *base), *logits = malloc((size_t)STEPS * n_vocab * sizeof *logits);
    int32_t base_top[STEPS], top[STEPS];
    run_model(f32, tokens, base_top, base, n_vocab);
    struct run runs[sizeof profiles / sizeof profiles[0]];
    for (size_t p = 0; p < sizeof profiles / sizeof profiles[0]; p++) {
        lb_error err;
        lb_profile *prof = NULL;
        if (lb_profile_find(&prof, profiles[p].profile, &err) != LB_OK) fail_msg("%s", err.msg);
        lb_quantize_params qp = {.profile = prof, .n_threads = 1};
        lb_quantize_stats st;
        char out[64];
        snprintf(out, sizeof out, "%s.gguf", profiles[p].profile);
        if (lb_quantize_file(f32, tmp_path(out), &qp, &st, &err) != LB_OK) fail_msg("%s", err.msg);
        int own = 0; // matrices stored in the profile's type
        for (int i = 0; i < st.n_tensors; i++) own += st.tensors[i].type_out == lb_profile_type(prof);
        run_model(tmp_path(out), tokens, top, logits, n_vocab);
        runs[p] = (struct run){0, 0};
        for (int s = 0; s < STEPS; s++) {
            runs[p].agree += top[s] == base_top[s];
            for (int v = 0; v < n_vocab; v++)
                runs[p].mean_abs += fabs((double)logits[(size_t)s * n_vocab + v] - base[(size_t)s * n_vocab + v]);
        }
        runs[p].mean_abs /= (double)STEPS * n_vocab;
        print_message("%-20s %-10s %2d matrices, %.3f bpw: top-1 %2d/%d, mean |dlogit| %.4f\n", profiles[p].profile,
                      lb_type_name(lb_profile_type(prof)), own,
                      8.0 * (double)st.bytes_out / (double)st.n_elements, runs[p].agree, STEPS, runs[p].mean_abs);
        assert_true(runs[p].agree >= profiles[p].min_agree);
        // int4-g128 & co. hold no matrix of this 64-wide model (they fall back); the rest must.
        if (strstr(profiles[p].profile, "g128") == NULL) assert_true(own > 0);
        lb_quantize_stats_free(&st);
        lb_profile_free(prof);
    }
    // Per channel is closer to F32 than per tensor, at 8 and at 4 bits.
    assert_true(runs[0].mean_abs < runs[1].mean_abs);
    assert_true(runs[3].mean_abs < runs[4].mean_abs);
    free(base);
    free(logits);
}

int main(void) {
    if (!lbtest_init("quants_int")) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_bound),
        cmocka_unit_test(test_zero_is_exact),
        cmocka_unit_test(test_per_channel_beats_per_tensor),
        cmocka_unit_test(test_scalar_vs_avx2),
        cmocka_unit_test(test_scalar_vs_avx512),
        cmocka_unit_test(test_fp8),
        cmocka_unit_test(test_nf4_dq),
        cmocka_unit_test(test_nf4_dq_row_limit),
        cmocka_unit_test(test_grid_pack),
        cmocka_unit_test(test_stories_profiles),
    };
    const int n = (int)(sizeof tests / sizeof tests[0]);
    const int failed = cmocka_run_group_tests(tests, NULL, NULL);
    lbtest_cleanup();
    printf("%d passed, %d failed\n", n - failed, failed);
    return failed ? 1 : 0;
}
