/*
 * test_types.c — every row of the tensor-type traits table, every ISA.
 *
 * Like ggml's test-quantize-fns, each test is one loop over the table, so a
 * new type is tested by adding its row:
 *   - round trip: quantize N(0,1) data and decode it; RMS error / RMS(x)
 *     must stay within the row's tolerance;
 *   - re-quantizing decoded data: byte-identical where the row says it is
 *     exact, and no worse than the first round trip elsewhere;
 *   - vec_dot of every ISA against a double-precision dot of the decoded
 *     weights and decoded activations, on single blocks (tight: an integer
 *     off by one fails) and on long rows;
 *   - AVX2 against scalar: dot products agree, activation quantizers are
 *     byte-identical (including rounding ties);
 *   - odd inputs: all-zero and constant blocks, huge values, one outlier;
 *   - the public lb_type_* calls and forced dispatch.
 * Uses lowbit.h, plus types.h for the table and blocks.h to read the one
 * block field a reference needs (q4_1/q5_1 mins, see dot_reference).
 */
#include "config.h"
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "fp16.h"
#include "lowbit.h"
#include "types.h"

// ---------------------------------------------------------------------------
// Helpers

// Deterministic N(0,1) samples (splitmix64 + Box-Muller), so a failure
// reproduces exactly.
typedef struct { uint64_t state; } rng;

static uint64_t rng_next(rng *r) {
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_uniform(rng *r) { return ((rng_next(r) >> 11) + 0.5) * 0x1.0p-53; }

static void fill_gaussian(rng *r, float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) {
        const double u = rng_uniform(r), v = rng_uniform(r);
        x[i] = (float)(scale * sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v));
    }
}

static double rms(const float *x, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s / (double)n);
}

static double rms_diff(const float *x, const float *y, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
    return sqrt(s / (double)n);
}

// Types with a row, in id order; returns how many.
static int all_types(lb_type out[LB_TYPE_COUNT]) {
    int n = 0;
    for (int t = 0; t < LB_TYPE_COUNT; t++)
        if (lb_traits((lb_type)t)) out[n++] = (lb_type)t;
    return n;
}

// Quantize then decode through the public API; returns RMS error / RMS(x).
static double round_trip(lb_type t, const float *x, float *y, int64_t n) {
    void *q = malloc(lb_type_row_bytes(t, n));
    assert_non_null(q);
    assert_int_equal(lb_type_from_float(t, x, q, n), LB_OK);
    assert_int_equal(lb_type_to_float(t, q, y, n), LB_OK);
    free(q);
    const double r = rms(x, n);
    return r > 0 ? rms_diff(x, y, n) / r : rms_diff(x, y, n);
}

// Every ISA a build can have; those this CPU (or build) lacks are skipped.
// The emulated ones run the AVX-512 source through SIMDe on AVX2.
static const char *const isas[] = {"scalar", "avx2", "avx512", "avx512vnni", "avx512-emulated", "avx512vnni-emulated"};

// ---------------------------------------------------------------------------
// Round trip and re-quantization

static void test_round_trip(void **state) {
    (void)state;
    lb_type types[LB_TYPE_COUNT];
    const int n_types = all_types(types);
    const int64_t n = 64 * QK_K;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    rng r = {1};
    fill_gaussian(&r, x, n, 1.0f);
    for (int k = 0; k < n_types; k++) {
        const struct lb_type_traits *tt = lb_traits(types[k]);
        const double err = round_trip(types[k], x, y, n);
        print_message("round trip %-5s rms error %.5f (tolerance %.5f, %.4g bpw)\n", tt->name, err, tt->tolerance,
                      tt->bpw);
        assert_true(err <= tt->tolerance);
        assert_float_equal(tt->bpw, 8.0 * tt->type_size / tt->block_size, 1e-6);
    }
    free(x);
    free(y);
}

static void test_requantize(void **state) {
    (void)state;
    lb_type types[LB_TYPE_COUNT];
    const int n_types = all_types(types);
    const int64_t n = 16 * QK_K;
    float *x = malloc(n * sizeof *x), *y1 = malloc(n * sizeof *y1), *y2 = malloc(n * sizeof *y2);
    rng r = {2};
    fill_gaussian(&r, x, n, 1.0f);
    for (int k = 0; k < n_types; k++) {
        const lb_type t = types[k];
        const struct lb_type_traits *tt = lb_traits(t);
        const size_t bytes = lb_type_row_bytes(t, n);
        uint8_t *q1 = malloc(bytes), *q2 = malloc(bytes);
        assert_int_equal(lb_type_from_float(t, x, q1, n), LB_OK);
        assert_int_equal(lb_type_to_float(t, q1, y1, n), LB_OK);
        assert_int_equal(lb_type_from_float(t, y1, q2, n), LB_OK);
        assert_int_equal(lb_type_to_float(t, q2, y2, n), LB_OK);
        if (tt->exact_requant) {
            assert_memory_equal(q1, q2, bytes);
        } else {
            // Decoded data is already on the grid: a second pass may move
            // values, but by less than the first pass did.
            const double drift = rms_diff(y1, y2, n) / rms(y1, n);
            print_message("requantize %-5s drift %.5f\n", tt->name, drift);
            assert_true(drift <= tt->tolerance);
        }
        free(q1);
        free(q2);
    }
    free(x);
    free(y1);
    free(y2);
}

// ---------------------------------------------------------------------------
// Dot products

// Activations in the row's vec_dot_type, quantized by the chosen ISA.
static void *quantize_activation(lb_type t, const float *x, int64_t n) {
    const lb_type at = lb_traits(t)->vec_dot_type;
    void *a = malloc(lb_type_row_bytes(at, n));
    lb_kernel_from_float(at)(x, a, n);
    return a;
}

// The dot product the kernels approximate, in double. For q4_1 / q5_1 the
// activation's share of the weight min comes from the block's s field
// (fp16 of d * sum(q), as in ggml), not from the decoded activations, so
// the reference uses it too: sum((w - m) * a) + m * s per block.
static double dot_reference(lb_type t, int64_t n, const void *w, const void *a, double *abs_sum) {
    const struct lb_type_traits *tt = lb_traits(t);
    const lb_type at = tt->vec_dot_type;
    float *wf = malloc(n * sizeof *wf), *af = malloc(n * sizeof *af);
    tt->to_float(w, wf, n);
    lb_traits(at)->to_float(a, af, n);
    double sum = 0, abs = 0;
    for (int64_t i = 0; i < n; i++) {
        sum += (double)wf[i] * af[i];
        abs += fabs((double)wf[i] * af[i]);
    }
    if (at == LB_TYPE_Q8_1) {
        const block_q8_1 *ab = a;
        for (int64_t b = 0; b < n / QK8_1; b++) {
            const uint16_t m16 = t == LB_TYPE_Q4_1 ? ((const block_q4_1 *)w)[b].m : ((const block_q5_1 *)w)[b].m;
            const double m = lb_fp16_to_f32(m16);
            double asum = 0;
            for (int i = 0; i < QK8_1; i++) asum += af[b * QK8_1 + i];
            sum += m * (lb_fp16_to_f32(ab[b].s) - asum);
        }
    }
    free(wf);
    free(af);
    *abs_sum = abs;
    return sum;
}

// Row lengths: several blocks for the block types; odd lengths exercise the
// scalar tails of the float kernels.
static int dot_lengths(lb_type t, int64_t out[8]) {
    const int bs = lb_type_block_size(t);
    if (bs == 1) {
        const int64_t lens[] = {1, 7, 8, 31, 33, 100, 4096};
        memcpy(out, lens, sizeof lens);
        return 7;
    }
    const int64_t lens[] = {bs, 2 * bs, 3 * bs, 8 * bs, 4096 / bs * bs > 0 ? (4096 / bs) * bs : bs};
    memcpy(out, lens, sizeof lens);
    return 5;
}

// For each ISA this CPU runs, vec_dot against the double reference on
// single blocks with a tolerance tight enough that one integer product off by
// one fails (it would move the result by about 1e-4 of sum |w*a|), then on
// longer rows with room for float accumulation order.
static void test_vec_dot(void **state) {
    (void)state;
    lb_type types[LB_TYPE_COUNT];
    const int n_types = all_types(types);
    rng r = {3};
    for (size_t s = 0; s < sizeof isas / sizeof isas[0]; s++) {
        if (!lb_cpu_select(isas[s])) {
            print_message("vec_dot: %s not supported on this CPU, skipped\n", isas[s]);
            continue;
        }
        assert_string_equal(lb_cpu_name(), isas[s]);
        for (int k = 0; k < n_types; k++) {
            const lb_type t = types[k];
            const struct lb_type_traits *tt = lb_traits(t);
            if (!tt->vec_dot) continue; // activation formats
            const lb_vec_dot_fn dot = lb_kernel_vec_dot(t);
            assert_non_null(dot);
            int64_t lens[8];
            const int n_lens = dot_lengths(t, lens);
            double worst = 0;
            for (int li = 0; li < n_lens; li++) {
                const int64_t n = lens[li];
                const int trials = n <= QK_K ? 32 : 4;
                for (int trial = 0; trial < trials; trial++) {
                    float *wx = malloc(n * sizeof *wx), *ax = malloc(n * sizeof *ax);
                    fill_gaussian(&r, wx, n, 1.0f);
                    fill_gaussian(&r, ax, n, 2.0f);
                    void *w = malloc(lb_type_row_bytes(t, n));
                    tt->from_float_ref(wx, w, n);
                    void *a = quantize_activation(t, ax, n);
                    double abs_sum;
                    const double ref = dot_reference(t, n, w, a, &abs_sum);
                    const double got = dot(n, w, a);
                    const double rel = fabs(got - ref) / (abs_sum > 0 ? abs_sum : 1);
                    const double tol = n <= tt->block_size ? 4e-6 : 3e-5;
                    if (rel > tol)
                        print_message("vec_dot %s %s n=%lld: got %.9g, reference %.9g (rel %.3g)\n", isas[s],
                                      tt->name, (long long)n, got, ref, rel);
                    assert_true(rel <= tol);
                    if (rel > worst) worst = rel;
                    free(wx);
                    free(ax);
                    free(w);
                    free(a);
                }
            }
            print_message("vec_dot %-6s %-5s worst rel error %.3g\n", isas[s], tt->name, worst);
        }
    }
    assert_true(lb_cpu_select("auto"));
}

// A SIMD table against scalar on the same inputs: dot products agree to
// float rounding, activation quantizers byte for byte, row conversions bit
// for bit. False when this CPU (or build) has no such table.
static bool simd_matches_scalar(const char *isa) {
    if (!lb_cpu_select(isa)) {
        print_message("%s: not supported on this CPU or not built, skipped\n", isa);
        return false;
    }
    const struct lb_kernels *kt = lb_kernels();
    assert_string_equal(kt->isa, isa);
    lb_type types[LB_TYPE_COUNT];
    const int n_types = all_types(types);
    const int64_t n = 16 * QK_K;
    float *wx = malloc(n * sizeof *wx), *ax = malloc(n * sizeof *ax);
    rng r = {4};
    fill_gaussian(&r, wx, n, 1.0f);
    fill_gaussian(&r, ax, n, 3.0f);
    // Rounding ties for the q8 quantizers: a block whose extreme is 127 has
    // d = 1 (and Q8_K's iscale = 1), so x.5 values land exactly on ties.
    for (int i = 0; i < 64; i++) ax[i] = (float)(i % 7) - 3.5f;
    ax[0] = 127.0f, ax[32] = -127.0f;
    for (int k = 0; k < n_types; k++) {
        const lb_type t = types[k];
        const struct lb_type_traits *tt = lb_traits(t);
        lb_from_float_fn avx2_quant = kt->from_float[t];
        if (avx2_quant) {
            const size_t bytes = lb_type_row_bytes(t, n);
            uint8_t *q_ref = malloc(bytes), *q_simd = malloc(bytes);
            tt->from_float_ref(ax, q_ref, n);
            avx2_quant(ax, q_simd, n);
            assert_memory_equal(q_ref, q_simd, bytes);
            print_message("from_float %s %-5s byte-identical to reference\n", isa, tt->name);
            free(q_ref);
            free(q_simd);
        }
        lb_to_float_fn avx2_to_float = kt->to_float[t];
        if (avx2_to_float) {
            // n + 3 elements exercise the scalar tail after the 8-wide loop.
            const int64_t m = tt->block_size == 1 ? n + 3 : n;
            void *q = malloc(lb_type_row_bytes(t, m));
            float *ref = malloc(m * sizeof *ref), *simd = malloc(m * sizeof *simd);
            float *src = malloc(m * sizeof *src);
            fill_gaussian(&r, src, m, 1000.0f);
            src[1] = 1e-7f; // a half subnormal
            tt->from_float_ref(src, q, m);
            tt->to_float(q, ref, m);
            avx2_to_float(q, simd, m);
            assert_memory_equal(ref, simd, m * sizeof *ref);
            print_message("to_float %s %-5s bit-identical to reference\n", isa, tt->name);
            free(q), free(ref), free(simd), free(src);
        }
        if (!tt->vec_dot) continue;
        const lb_vec_dot_fn avx2_dot = kt->vec_dot[t];
        if (!avx2_dot) {
            print_message("vec_dot %s %-5s: no SIMD kernel (scalar fallback)\n", isa, tt->name);
            continue;
        }
        void *w = malloc(lb_type_row_bytes(t, n));
        tt->from_float_ref(wx, w, n);
        void *a = malloc(lb_type_row_bytes(tt->vec_dot_type, n));
        lb_traits(tt->vec_dot_type)->from_float_ref(ax, a, n);
        double abs_sum;
        dot_reference(t, n, w, a, &abs_sum);
        const double s = lb_kernels_scalar.vec_dot[t](n, w, a);
        const double v = avx2_dot(n, w, a);
        print_message("vec_dot %s %-5s vs scalar: %.9g vs %.9g\n", isa, tt->name, v, s);
        assert_true(fabs(v - s) <= 3e-5 * abs_sum);
        const lb_vec_dot4_fn avx2_dot4 = kt->vec_dot4[t];
        if (avx2_dot4) {
            // Four rows: the same row at four strides, each checked against the scalar dot.
            const size_t row = lb_type_row_bytes(t, n);
            char *w4 = malloc(4 * row);
            for (int k = 0; k < 4; k++) {
                float *shifted = malloc(n * sizeof *shifted);
                for (int64_t j = 0; j < n; j++) shifted[j] = wx[(j + 97 * k) % n];
                tt->from_float_ref(shifted, w4 + k * row, n);
                free(shifted);
            }
            float out[4];
            avx2_dot4(n, w4, row, a, out);
            for (int k = 0; k < 4; k++) {
                double sum_k;
                dot_reference(t, n, w4 + k * row, a, &sum_k);
                const double ref = lb_kernels_scalar.vec_dot[t](n, w4 + k * row, a);
                assert_true(fabs(out[k] - ref) <= 3e-5 * sum_k);
            }
            print_message("vec_dot4 %s %-5s: four rows agree with scalar\n", isa, tt->name);
            free(w4);
        }
        free(w);
        free(a);
    }
    free(wx);
    free(ax);
    assert_true(lb_cpu_select("auto"));
    return true;
}

static void test_avx2_matches_scalar(void **state) {
    (void)state;
    if (!simd_matches_scalar("avx2")) skip();
}

// The AVX-512 source: natively where the CPU has it, and through SIMDe
// (compiled for AVX2) everywhere the build has SIMDe, so its layouts,
// shuffles, masks and the VNNI accumulation are checked on this machine.
static void test_avx512_matches_scalar(void **state) {
    (void)state;
    int ran = 0;
    for (size_t s = 2; s < sizeof isas / sizeof isas[0]; s++) ran += simd_matches_scalar(isas[s]);
    if (!ran) skip();
}

// ---------------------------------------------------------------------------
// Odd inputs

static void test_odd_inputs(void **state) {
    (void)state;
    lb_type types[LB_TYPE_COUNT];
    const int n_types = all_types(types);
    const int64_t n = 4 * QK_K;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    rng r = {5};
    for (int k = 0; k < n_types; k++) {
        const lb_type t = types[k];
        const struct lb_type_traits *tt = lb_traits(t);

        // All zero: decodes to exact zeros, not NaN (no 0/0 in any scale).
        memset(x, 0, n * sizeof *x);
        round_trip(t, x, y, n);
        for (int64_t i = 0; i < n; i++) assert_true(y[i] == 0.0f);
        if (tt->vec_dot) {
            void *w = malloc(lb_type_row_bytes(t, n));
            tt->from_float_ref(x, w, n);
            void *a = quantize_activation(t, x, n);
            for (size_t s = 0; s < sizeof isas / sizeof isas[0]; s++) {
                if (!lb_cpu_select(isas[s])) continue;
                assert_true(lb_kernel_vec_dot(t)(n, w, a) == 0.0f);
            }
            free(w);
            free(a);
        }

        // Constant blocks (zero range for the _1 types and k-quant mins).
        for (int64_t i = 0; i < n; i++) x[i] = 0.75f;
        assert_true(round_trip(t, x, y, n) <= tt->tolerance);

        // Huge values, still inside fp16 range for every scale field: the
        // relative error must not change with the scale. (E4M3 has no scale:
        // it saturates at 448 by design; tests/test_kv.c checks that.)
        fill_gaussian(&r, x, n, 1e4f);
        const double err = round_trip(t, x, y, n);
        if (t != LB_TYPE_E4M3) assert_true(err <= tt->tolerance);

        // One outlier 50 sigma out: it must survive (the scale follows it)
        // and nothing may overflow.
        fill_gaussian(&r, x, n, 1.0f);
        x[77] = 50.0f;
        round_trip(t, x, y, n);
        for (int64_t i = 0; i < n; i++) assert_true(isfinite(y[i]));
        print_message("outlier %-5s 50 -> %.4f\n", tt->name, y[77]);
        assert_true(fabsf(y[77] - 50.0f) <= 0.1f * 50.0f);
    }
    assert_true(lb_cpu_select("auto"));
    free(x);
    free(y);
}

// ---------------------------------------------------------------------------
// lowbit's own NF4 / FP4: the code tables are bitsandbytes', and each element
// lands on its nearest code.

// bitsandbytes (bnb @95f9af30) bitsandbytes/functional.py get_4bit_type, l.789-804:
// the NF4 levels as published in the source, and l.806-823 + 854-855: FP4 in
// bit-pattern order, then divided by its absmax (12) in float32.
static const float bnb_nf4[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
};
static const float bnb_fp4_raw[16] = {0, 0.0625f, 8, 12, 4, 6, 2, 3, -0.0f, -0.0625f, -8, -12, -4, -6, -2, -3};

// Half the largest gap between adjacent values of a table.
static float half_max_gap(const float table[16]) {
    float v[16];
    memcpy(v, table, sizeof v);
    for (int i = 1; i < 16; i++) // insertion sort
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            const float t = v[j];
            v[j] = v[j - 1], v[j - 1] = t;
        }
    float gap = 0;
    for (int i = 1; i < 16; i++) gap = fmaxf(gap, v[i] - v[i - 1]);
    return gap / 2;
}

static void test_bnb4(void **state) {
    (void)state;
    float fp4[16];
    for (int i = 0; i < 16; i++) fp4[i] = bnb_fp4_raw[i] / 12.0f;
    const struct { lb_type type; const float *table; } cases[] = {{LB_TYPE_NF4, bnb_nf4}, {LB_TYPE_FP4, fp4}};
    rng r = {6};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const lb_type t = cases[c].type;
        assert_int_equal(lb_type_block_size(t), 64);
        assert_int_equal(lb_type_block_bytes(t), 34);
        assert_non_null(lb_type_description(t));

        // The table through the public decoder: absmax 1.0, codes 0..15 twice.
        block_bnb4 b = {.absmax = lb_f32_to_fp16(1.0f)};
        for (int j = 0; j < 32; j++) b.qs[j] = (uint8_t)(((2 * j) % 16) << 4 | (2 * j + 1) % 16);
        float y[64];
        assert_int_equal(lb_type_to_float(t, &b, y, 64), LB_OK);
        for (int j = 0; j < 64; j++) assert_true(y[j] == cases[c].table[j % 16]);

        // Round trip: every element within half the largest code gap × absmax
        // (absmax as stored in fp16, which the decoder multiplies by; if fp16
        // rounded it down, the largest element clamps to ±absmax, off by at
        // most 2^-11 of it).
        const float half_gap = half_max_gap(cases[c].table);
        const int64_t n = 64 * 256;
        float *x = malloc(n * sizeof *x), *back = malloc(n * sizeof *back);
        fill_gaussian(&r, x, n, 1.0f);
        const double err = round_trip(t, x, back, n);
        double worst = 0;
        for (int64_t blk = 0; blk < n / 64; blk++) {
            float amax = 0;
            for (int j = 0; j < 64; j++) amax = fmaxf(amax, fabsf(x[blk * 64 + j]));
            const float d = lb_fp16_to_f32(lb_f32_to_fp16(amax));
            for (int j = 0; j < 64; j++) {
                const double e = fabs((double)x[blk * 64 + j] - back[blk * 64 + j]);
                assert_true(e <= (half_gap + 0x1p-11f) * d * (1 + 1e-6));
                if (e / d > worst) worst = e / d;
            }
        }
        print_message("%s: rms error %.5f of rms(x); worst |x - y| / absmax %.5f (bound %.5f)\n", lb_type_name(t),
                      err, worst, half_gap);
        free(x);
        free(back);
    }
    assert_null(lb_type_description(LB_TYPE_Q4_0)); // ggml types have none
}

// ---------------------------------------------------------------------------
// Public API

static void test_public_api(void **state) {
    (void)state;
    assert_string_equal(lb_type_name(LB_TYPE_Q4_K), "Q4_K");
    assert_int_equal(lb_type_from_name("q4_k"), LB_TYPE_Q4_K);
    assert_int_equal(lb_type_from_name("BF16"), LB_TYPE_BF16);
    assert_int_equal(lb_type_from_name("Q4_2"), -1);
    assert_int_equal(lb_type_from_name(NULL), -1);
    assert_null(lb_type_name((lb_type)4)); // retired ggml id (Q4_2): no row
    assert_null(lb_type_name((lb_type)LB_TYPE_COUNT));
    assert_int_equal(lb_type_block_size((lb_type)5), 0);

    // Sizes every GGUF reader depends on (ggml's type_size table).
    assert_int_equal(lb_type_block_bytes(LB_TYPE_Q4_0), 18);
    assert_int_equal(lb_type_block_bytes(LB_TYPE_Q4_1), 20);
    assert_int_equal(lb_type_block_bytes(LB_TYPE_Q5_0), 22);
    assert_int_equal(lb_type_block_bytes(LB_TYPE_Q5_1), 24);
    assert_int_equal(lb_type_block_bytes(LB_TYPE_Q8_0), 34);
    assert_int_equal(lb_type_block_bytes(LB_TYPE_Q8_1), 36);
    assert_int_equal(lb_type_block_bytes(LB_TYPE_Q2_K), 84);
    assert_int_equal(lb_type_block_bytes(LB_TYPE_Q3_K), 110);
    assert_int_equal(lb_type_block_bytes(LB_TYPE_Q4_K), 144);
    assert_int_equal(lb_type_block_bytes(LB_TYPE_Q5_K), 176);
    assert_int_equal(lb_type_block_bytes(LB_TYPE_Q6_K), 210);
    assert_int_equal(lb_type_block_bytes(LB_TYPE_Q8_K), 292);
    assert_int_equal(LB_TYPE_NF4, 128); // lowbit's own ids: outside ggml's range
    assert_int_equal(LB_TYPE_FP4, 129);
    assert_int_equal(lb_type_from_name("nf4"), LB_TYPE_NF4);

    assert_int_equal(lb_type_row_bytes(LB_TYPE_Q4_K, 4096), 16 * 144);
    assert_int_equal(lb_type_row_bytes(LB_TYPE_Q4_K, 100), 0);
    assert_int_equal(lb_type_row_bytes(LB_TYPE_F16, 3), 6);
    assert_int_equal(lb_type_row_bytes(LB_TYPE_F32, -1), 0);

    float x[64] = {0}, y[64];
    uint8_t q[512];
    assert_int_equal(lb_type_from_float(LB_TYPE_Q8_0, x, q, 33), LB_ERR_ARG);
    assert_int_equal(lb_type_to_float(LB_TYPE_Q8_0, q, y, 31), LB_ERR_ARG);
    assert_int_equal(lb_type_to_float((lb_type)4, q, y, 32), LB_ERR_UNSUPPORTED);
    assert_int_equal(lb_type_from_float((lb_type)39, x, q, 32), LB_ERR_UNSUPPORTED);
    assert_int_equal(lb_type_from_float(LB_TYPE_Q8_0, x, q, 0), LB_OK);

    assert_false(lb_cpu_select("sse9"));
    assert_false(lb_cpu_select(NULL));
#if defined(__x86_64__) || defined(__i386__)
    // Native AVX-512 tables only where cpuid has the ISA (never an illegal
    // instruction); the emulated ones wherever the build has SIMDe.
    __builtin_cpu_init();
    const bool avx512 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                        __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx512f") &&
                        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                        __builtin_cpu_supports("avx512dq");
#ifdef LB_HAVE_AVX512
    assert_true(lb_cpu_select("avx512") == avx512);
#else
    assert_false(lb_cpu_select("avx512"));
#endif
#ifdef LB_HAVE_AVX512VNNI
    assert_true(lb_cpu_select("avx512vnni") == (avx512 && __builtin_cpu_supports("avx512vnni")));
#else
    assert_false(lb_cpu_select("avx512vnni"));
#endif
#ifdef LB_HAVE_SIMDE
    assert_true(lb_cpu_select("avx512-emulated") == (bool)__builtin_cpu_supports("avx2"));
    if (__builtin_cpu_supports("avx2")) assert_string_equal(lb_cpu_name(), "avx512-emulated");
#endif
    // auto never picks an emulated table.
    assert_true(lb_cpu_select("auto"));
    assert_null(strstr(lb_cpu_name(), "emulated"));
    print_message("auto: %s (avx512 on this CPU: %s)\n", lb_cpu_name(), avx512 ? "yes" : "no");
#endif
    assert_true(lb_cpu_select("scalar"));
    assert_string_equal(lb_cpu_name(), "scalar");
    assert_true(lb_cpu_select("auto"));
    assert_non_null(lb_cpu_name());
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_public_api),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_requantize),
        cmocka_unit_test(test_vec_dot),
        cmocka_unit_test(test_avx2_matches_scalar),
        cmocka_unit_test(test_avx512_matches_scalar),
        cmocka_unit_test(test_odd_inputs),
        cmocka_unit_test(test_bnb4),
    };
    const int n = (int)(sizeof tests / sizeof tests[0]);
    const int failed = cmocka_run_group_tests(tests, NULL, NULL);
    printf("%d passed, %d failed\n", n - failed, failed);
    return failed ? 1 : 0;
}
