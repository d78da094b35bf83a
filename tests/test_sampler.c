/*
 * test_sampler.c — the sampler and process statistics, through lowbit.h only.
 *
 * Each test is a small example of one knob: hand-computed distributions for
 * top-p, min-p, temperature and the penalties; a naive full-sort reference for
 * random rows; and 200k draws checked against lb_sampler_probs by chi-square.
 * Seeds are fixed, so every run is the same.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "lowbit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// Helpers

// Parameters with every truncation and penalty off: plain softmax at temp 1.
static lb_sampler_params plain_params(void) {
    lb_sampler_params p = lb_sampler_default_params();
    p.temp = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    p.presence_penalty = 0.0f;
    p.frequency_penalty = 0.0f;
    p.seed = 1234;
    return p;
}

static lb_sampler *new_sampler(const lb_sampler_params *p, int32_t n_vocab) {
    lb_error err = {0};
    lb_sampler *s = NULL;
    lb_status st = lb_sampler_new(&s, p, n_vocab, &err);
    if (st != LB_OK) fail_msg("lb_sampler_new: %s", err.msg);
    return s;
}

// Small reproducible generator for test data, independent of the sampler's.
static uint64_t test_rng = 88172645463325252ull;
static double test_uniform(void) {
    test_rng ^= test_rng << 13;
    test_rng ^= test_rng >> 7;
    test_rng ^= test_rng << 17;
    return (double)(test_rng >> 11) * 0x1.0p-53;
}
static void random_logits(float *x, int n, float scale) {
    for (int i = 0; i < n; i++) x[i] = (float)((test_uniform() * 2.0 - 1.0) * scale);
}

static double entropy(const float *p, int n) {
    double h = 0.0;
    for (int i = 0; i < n; i++)
        if (p[i] > 0.0f) h -= p[i] * log(p[i]);
    return h;
}

static double sum(const float *p, int n) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += p[i];
    return s;
}

// Logits whose softmax at temp 1 is exactly `probs` (up to a constant).
static void logits_of(const double *probs, int n, float *logits) {
    for (int i = 0; i < n; i++) logits[i] = (float)log(probs[i]);
}

// ----------------------------------------------------------------------------
// Greedy and determinism

static void test_greedy_picks_first_argmax(void **state) {
    lb_sampler_params p = plain_params();
    p.temp = 0.0f;
    lb_sampler *s = new_sampler(&p, 4);
    const float logits[4] = {1.0f, 3.0f, 2.0f, 3.0f}; // tie: the first max wins
    float probs[4];
    lb_sampler_probs(s, logits, probs);
    assert_float_equal(probs[1], 1.0f, 0.0f);
    assert_float_equal(probs[0] + probs[2] + probs[3], 0.0f, 0.0f);
    for (int i = 0; i < 10; i++) assert_int_equal(lb_sampler_sample(s, logits), 1);
    assert_int_equal(lb_argmax(logits, 4), 1);
    lb_sampler_free(s);
}

static void test_same_seed_same_sequence(void **state) {
    enum { V = 50, N = 1000 };
    float logits[V];
    random_logits(logits, V, 2.0f);
    lb_sampler_params p = plain_params();
    p.seed = 7;
    lb_sampler *a = new_sampler(&p, V), *b = new_sampler(&p, V);
    p.seed = 8;
    lb_sampler *c = new_sampler(&p, V);
    int32_t first[N];
    int differ = 0;
    for (int i = 0; i < N; i++) {
        first[i] = lb_sampler_sample(a, logits);
        assert_int_equal(first[i], lb_sampler_sample(b, logits));
        differ += first[i] != lb_sampler_sample(c, logits);
    }
    assert_true(differ > N / 2); // another seed, another sequence
    // Reset re-seeds: the same sequence again.
    lb_sampler_reset(a);
    for (int i = 0; i < N; i++) assert_int_equal(lb_sampler_sample(a, logits), first[i]);
    lb_sampler_free(a);
    lb_sampler_free(b);
    lb_sampler_free(c);
}

static void test_top_k_1_is_greedy(void **state) {
    enum { V = 1000 };
    float logits[V];
    lb_sampler_params p = plain_params();
    p.top_k = 1;
    p.temp = 1.5f;
    lb_sampler *s = new_sampler(&p, V);
    for (int r = 0; r < 50; r++) {
        random_logits(logits, V, 5.0f);
        assert_int_equal(lb_sampler_sample(s, logits), lb_argmax(logits, V));
    }
    lb_sampler_free(s);
}

static void test_uniform_in_unit_interval(void **state) {
    lb_sampler *s = new_sampler(NULL, 10); // NULL: the default parameters
    double mean = 0.0;
    for (int i = 0; i < 10000; i++) {
        double u = lb_sampler_uniform(s);
        assert_true(u >= 0.0 && u < 1.0);
        mean += u / 10000;
    }
    assert_true(fabs(mean - 0.5) < 0.02);
    lb_sampler_free(s);
}

// ----------------------------------------------------------------------------
// Truncations on hand-computed distributions

static void test_top_p_keeps_smallest_prefix(void **state) {
    // Probabilities 0.5, 0.2, 0.15, 0.1, 0.05, shuffled over the ids.
    const double base[5] = {0.1, 0.5, 0.05, 0.15, 0.2};
    float logits[5], probs[5];
    logits_of(base, 5, logits);
    lb_sampler_params p = plain_params();

    // 0.5 + 0.2 = 0.7 < 0.8 <= 0.85: ids 1, 4, 3 stay, renormalised over 0.85.
    p.top_p = 0.8f;
    lb_sampler *s = new_sampler(&p, 5);
    lb_sampler_probs(s, logits, probs);
    assert_float_equal(probs[1], 0.5 / 0.85, 1e-6);
    assert_float_equal(probs[4], 0.2 / 0.85, 1e-6);
    assert_float_equal(probs[3], 0.15 / 0.85, 1e-6);
    assert_float_equal(probs[0], 0.0f, 0.0f);
    assert_float_equal(probs[2], 0.0f, 0.0f);
    lb_sampler_free(s);

    // 0.69: two tokens.
    p.top_p = 0.69f;
    s = new_sampler(&p, 5);
    lb_sampler_probs(s, logits, probs);
    assert_float_equal(probs[1], 0.5 / 0.7, 1e-6);
    assert_float_equal(probs[4], 0.2 / 0.7, 1e-6);
    assert_float_equal(probs[0] + probs[2] + probs[3], 0.0f, 0.0f);
    lb_sampler_free(s);

    // 0: never fewer than one token.
    p.top_p = 0.0f;
    s = new_sampler(&p, 5);
    lb_sampler_probs(s, logits, probs);
    assert_float_equal(probs[1], 1.0f, 0.0f);
    lb_sampler_free(s);
}

static void test_top_p_after_top_k_uses_candidates_softmax(void **state) {
    // top-k 3 leaves 0.5, 0.2, 0.15, which renormalise to 0.588, 0.235, 0.176.
    // top-p 0.8 on those keeps two (0.824 >= 0.8); on the full row it would keep three.
    const double base[5] = {0.5, 0.2, 0.15, 0.1, 0.05};
    float logits[5], probs[5];
    logits_of(base, 5, logits);
    lb_sampler_params p = plain_params();
    p.top_k = 3;
    p.top_p = 0.8f;
    lb_sampler *s = new_sampler(&p, 5);
    lb_sampler_probs(s, logits, probs);
    assert_float_equal(probs[0], 0.5 / 0.7, 1e-6);
    assert_float_equal(probs[1], 0.2 / 0.7, 1e-6);
    assert_float_equal(probs[2], 0.0f, 0.0f);
    lb_sampler_free(s);
}

static void test_top_p_flat_row_ties_by_id(void **state) {
    // 1000 equal logits: the nucleus needs more than the first 256 ranked, and
    // ties go to the lower id. 0.5005 is reached by the 501st token.
    enum { V = 1000 };
    float logits[V], probs[V];
    for (int i = 0; i < V; i++) logits[i] = 0.25f;
    lb_sampler_params p = plain_params();
    p.top_p = 0.5005f;
    lb_sampler *s = new_sampler(&p, V);
    lb_sampler_probs(s, logits, probs);
    for (int i = 0; i < V; i++) assert_float_equal(probs[i], i < 501 ? 1.0 / 501 : 0.0, 1e-7);
    lb_sampler_free(s);
}

static void test_top_k_ties_by_id(void **state) {
    float logits[6] = {1, 2, 2, 2, 2, 0}, probs[6];
    lb_sampler_params p = plain_params();
    p.top_k = 3;
    lb_sampler *s = new_sampler(&p, 6);
    lb_sampler_probs(s, logits, probs);
    const float want[6] = {0, 1.0f / 3, 1.0f / 3, 1.0f / 3, 0, 0};
    for (int i = 0; i < 6; i++) assert_float_equal(probs[i], want[i], 1e-7);
    lb_sampler_free(s);
}

static void test_min_p_relative_to_max(void **state) {
    // p_max 0.5: min_p 0.15 keeps p >= 0.075, min_p 0.25 keeps p >= 0.125.
    const double base[5] = {0.06, 0.5, 0.04, 0.3, 0.1};
    float logits[5], probs[5];
    logits_of(base, 5, logits);
    lb_sampler_params p = plain_params();
    p.min_p = 0.15f;
    lb_sampler *s = new_sampler(&p, 5);
    lb_sampler_probs(s, logits, probs);
    const double want[5] = {0, 0.5 / 0.9, 0, 0.3 / 0.9, 0.1 / 0.9};
    for (int i = 0; i < 5; i++) assert_float_equal(probs[i], want[i], 1e-6);
    lb_sampler_free(s);

    p.min_p = 0.25f;
    s = new_sampler(&p, 5);
    lb_sampler_probs(s, logits, probs);
    const double want2[5] = {0, 0.5 / 0.8, 0, 0.3 / 0.8, 0};
    for (int i = 0; i < 5; i++) assert_float_equal(probs[i], want2[i], 1e-6);
    lb_sampler_free(s);
}

static void test_min_p_before_temperature(void **state) {
    // min-p looks at the logits before temperature (llama.cpp order): at temp 4
    // the 0.06 token would be above 0.15 * p_max, but it was already cut.
    const double base[3] = {0.5, 0.3, 0.06};
    float logits[3], probs[3];
    logits_of(base, 3, logits);
    lb_sampler_params p = plain_params();
    p.min_p = 0.15f;
    p.temp = 4.0f;
    lb_sampler *s = new_sampler(&p, 3);
    lb_sampler_probs(s, logits, probs);
    assert_float_equal(probs[2], 0.0f, 0.0f);
    // The two survivors at temp 4: weights 0.5^0.25 and 0.3^0.25.
    double a = pow(0.5, 0.25), b = pow(0.3, 0.25);
    assert_float_equal(probs[0], a / (a + b), 1e-6);
    assert_float_equal(probs[1], b / (a + b), 1e-6);
    lb_sampler_free(s);
}

static void test_temperature_scales_entropy(void **state) {
    // Logits 0 and ln 2: temp 1 gives 1/3, 2/3; temp 0.5 doubles them, 1/5, 4/5.
    float logits[2] = {0.0f, logf(2.0f)}, probs[2];
    lb_sampler_params p = plain_params();
    lb_sampler *s = new_sampler(&p, 2);
    lb_sampler_probs(s, logits, probs);
    assert_float_equal(probs[0], 1.0 / 3, 1e-6);
    assert_float_equal(probs[1], 2.0 / 3, 1e-6);
    lb_sampler_free(s);
    p.temp = 0.5f;
    s = new_sampler(&p, 2);
    lb_sampler_probs(s, logits, probs);
    assert_float_equal(probs[0], 1.0 / 5, 1e-6);
    assert_float_equal(probs[1], 4.0 / 5, 1e-6);
    lb_sampler_free(s);

    // On a random row, entropy grows with temperature.
    enum { V = 200 };
    float row[V], pr[V];
    random_logits(row, V, 4.0f);
    const float temps[4] = {0.25f, 0.5f, 1.0f, 2.0f};
    double last = 0.0;
    for (int t = 0; t < 4; t++) {
        p.temp = temps[t];
        s = new_sampler(&p, V);
        lb_sampler_probs(s, row, pr);
        double h = entropy(pr, V);
        assert_true(h > last);
        last = h;
        lb_sampler_free(s);
    }
    assert_true(last < log(V));
}

// ----------------------------------------------------------------------------
// Penalties

static void test_repeat_penalty_divides_positive_multiplies_negative(void **state) {
    // Token 0 (logit 2) and token 1 (logit -1) were seen; penalty 2 makes them
    // 1 and -2. Tokens 2 and 3 are untouched.
    const float logits[4] = {2.0f, -1.0f, 0.5f, 3.0f};
    float probs[4];
    lb_sampler_params p = plain_params();
    p.repeat_penalty = 2.0f;
    p.repeat_last_n = 64;
    lb_sampler *s = new_sampler(&p, 4);
    lb_sampler_accept(s, 0);
    lb_sampler_accept(s, 1);
    lb_sampler_accept(s, 1); // repeats do not compound the repetition penalty
    lb_sampler_probs(s, logits, probs);
    const double e[4] = {exp(1.0), exp(-2.0), exp(0.5), exp(3.0)};
    double z = e[0] + e[1] + e[2] + e[3];
    for (int i = 0; i < 4; i++) assert_float_equal(probs[i], e[i] / z, 1e-6);
    lb_sampler_free(s);

    // Greedy sees the penalised logits: 2/2 = 1 < 1.5.
    const float g[3] = {2.0f, -1.0f, 1.5f};
    p.temp = 0.0f;
    s = new_sampler(&p, 3);
    assert_int_equal(lb_sampler_sample(s, g), 0);
    lb_sampler_accept(s, 0);
    assert_int_equal(lb_sampler_sample(s, g), 2);
    lb_sampler_free(s);
}

static void test_repeat_window_forgets_old_tokens(void **state) {
    const float logits[3] = {1.0f, 1.0f, 1.0f};
    float probs[3];
    lb_sampler_params p = plain_params();
    p.repeat_penalty = 4.0f; // 1 -> 0.25
    p.repeat_last_n = 2;
    lb_sampler *s = new_sampler(&p, 3);
    lb_sampler_accept(s, 0);
    lb_sampler_accept(s, 1);
    lb_sampler_accept(s, 2); // token 0 leaves the window
    lb_sampler_probs(s, logits, probs);
    double z = exp(1.0) + 2 * exp(0.25);
    assert_float_equal(probs[0], exp(1.0) / z, 1e-6);
    assert_float_equal(probs[1], exp(0.25) / z, 1e-6);
    assert_float_equal(probs[2], exp(0.25) / z, 1e-6);

    // reset clears the history: plain softmax again.
    lb_sampler_reset(s);
    lb_sampler_probs(s, logits, probs);
    for (int i = 0; i < 3; i++) assert_float_equal(probs[i], 1.0 / 3, 1e-6);
    lb_sampler_free(s);
}

static void test_presence_and_frequency_penalties(void **state) {
    // OpenAI: logit -= count * frequency + (count > 0) * presence, after the
    // repetition penalty. Token 0 seen 3 times, token 1 once, token 2 never.
    const float logits[3] = {4.0f, -1.0f, 0.0f};
    float probs[3];
    lb_sampler_params p = plain_params();
    p.repeat_penalty = 2.0f;
    p.frequency_penalty = 0.5f;
    p.presence_penalty = 1.0f;
    p.repeat_last_n = -1; // the whole history
    lb_sampler *s = new_sampler(&p, 3);
    for (int i = 0; i < 3; i++) lb_sampler_accept(s, 0);
    lb_sampler_accept(s, 1);
    lb_sampler_probs(s, logits, probs);
    // token 0: 4/2 - 3*0.5 - 1 = -0.5; token 1: -1*2 - 0.5 - 1 = -3.5; token 2: 0.
    const double e[3] = {exp(-0.5), exp(-3.5), exp(0.0)};
    double z = e[0] + e[1] + e[2];
    for (int i = 0; i < 3; i++) assert_float_equal(probs[i], e[i] / z, 1e-6);
    lb_sampler_free(s);

    // Unbounded history keeps counting: 100 times 0.01 is a full logit.
    lb_sampler_params q = plain_params();
    q.frequency_penalty = 0.01f;
    q.repeat_last_n = -1;
    s = new_sampler(&q, 2);
    const float two[2] = {1.0f, 0.0f};
    for (int i = 0; i < 100; i++) lb_sampler_accept(s, 0);
    lb_sampler_probs(s, two, probs);
    assert_float_equal(probs[0], 0.5, 1e-5);

    // repeat_last_n 0 turns every penalty off.
    q.repeat_last_n = 0;
    lb_sampler_free(s);
    s = new_sampler(&q, 2);
    for (int i = 0; i < 100; i++) lb_sampler_accept(s, 0);
    lb_sampler_probs(s, two, probs);
    assert_float_equal(probs[0], exp(1.0) / (exp(1.0) + 1.0), 1e-6);
    lb_sampler_free(s);
}

// ----------------------------------------------------------------------------
// Against a naive reference, and against the draws

typedef struct ref_tok {
    float logit;
    int id;
} ref_tok;

static int ref_cmp(const void *a, const void *b) {
    const ref_tok *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return x->id - y->id;
}

// The chain written the obvious way: full sort, then cut a prefix.
static void ref_probs(const lb_sampler_params *p, const float *logits, int n, float *probs) {
    ref_tok *t = malloc(sizeof *t * n);
    for (int i = 0; i < n; i++) t[i] = (ref_tok){logits[i], i};
    qsort(t, n, sizeof *t, ref_cmp);
    int keep = n;
    if (p->top_k > 0 && p->top_k < keep) keep = p->top_k;
    if (p->top_p < 1.0f) {
        double z = 0.0, cum = 0.0;
        for (int i = 0; i < keep; i++) z += exp(t[i].logit - t[0].logit);
        for (int i = 0; i < keep; i++) {
            cum += exp(t[i].logit - t[0].logit) / z;
            if (cum >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    if (p->min_p > 0.0f) {
        int i = 1;
        while (i < keep && t[i].logit >= t[0].logit + logf(p->min_p)) i++;
        keep = i;
    }
    memset(probs, 0, sizeof *probs * n);
    double z = 0.0;
    for (int i = 0; i < keep; i++) z += exp((t[i].logit - t[0].logit) / p->temp);
    for (int i = 0; i < keep; i++) probs[t[i].id] = (float)(exp((t[i].logit - t[0].logit) / p->temp) / z);
    free(t);
}

static void test_matches_full_sort_reference(void **state) {
    enum { V = 32000 };
    float *logits = malloc(sizeof(float) * V), *got = malloc(sizeof(float) * V),
          *want = malloc(sizeof(float) * V);
    const struct { int top_k; float top_p, min_p, temp; } cases[] = {
        {40, 0.95f, 0.05f, 0.8f}, // llama.cpp's defaults
        {0, 0.9f, 0.0f, 1.0f},    // top-p on the whole vocabulary
        {0, 0.3f, 0.2f, 0.9f},    // top-p then min-p, both unsorted
        {0, 1.0f, 0.1f, 1.3f},    // min-p alone
        {500, 1.0f, 0.0f, 0.7f},  // top-k alone, past the small-k range
        {0, 1.0f, 0.0f, 1.0f},    // nothing: plain softmax
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        lb_sampler_params p = plain_params();
        p.top_k = cases[c].top_k;
        p.top_p = cases[c].top_p;
        p.min_p = cases[c].min_p;
        p.temp = cases[c].temp;
        lb_sampler *s = new_sampler(&p, V);
        for (int r = 0; r < 3; r++) {
            random_logits(logits, V, 8.0f);
            lb_sampler_probs(s, logits, got);
            ref_probs(&p, logits, V, want);
            for (int i = 0; i < V; i++) {
                if ((got[i] == 0.0f) != (want[i] == 0.0f))
                    fail_msg("case %zu row %d token %d: kept %d, reference kept %d", c, r, i, got[i] != 0.0f,
                             want[i] != 0.0f);
                assert_float_equal(got[i], want[i], 1e-6);
            }
            assert_float_equal(sum(got, V), 1.0, 1e-5);
        }
        lb_sampler_free(s);
    }
    free(logits);
    free(got);
    free(want);
}

static void test_draws_follow_probs(void **state) {
    // 200k draws with a fixed seed against lb_sampler_probs: chi-square under
    // the 99.9% quantile, and nothing outside the kept set.
    enum { V = 12, N = 200000 };
    float logits[V], probs[V];
    for (int i = 0; i < V; i++) logits[i] = 0.3f * (float)((i * 5) % V);
    lb_sampler_params p = plain_params();
    p.top_k = 10;
    p.top_p = 0.97f;
    p.temp = 0.9f;
    p.seed = 2024;
    lb_sampler *s = new_sampler(&p, V);
    lb_sampler_probs(s, logits, probs);
    assert_float_equal(sum(probs, V), 1.0, 1e-6);

    long counts[V] = {0};
    for (int i = 0; i < N; i++) {
        int32_t t = lb_sampler_sample(s, logits);
        assert_true(t >= 0 && t < V);
        counts[t]++;
    }
    double chi2 = 0.0;
    int df = -1;
    for (int i = 0; i < V; i++) {
        if (probs[i] == 0.0f) {
            assert_int_equal(counts[i], 0);
            continue;
        }
        double e = (double)N * probs[i];
        chi2 += (counts[i] - e) * (counts[i] - e) / e;
        df++;
    }
    assert_true(df >= 4); // the truncations left something to test
    // Wilson-Hilferty: the 99.9% quantile of chi-square with df degrees.
    double k = 2.0 / (9.0 * df), q = df * pow(1.0 - k + 3.09 * sqrt(k), 3);
    if (chi2 >= q) fail_msg("chi-square %.2f >= %.2f (df %d)", chi2, q, df);
    lb_sampler_free(s);
}

static void test_probs_sum_to_one(void **state) {
    enum { V = 4096 };
    float logits[V], probs[V];
    lb_sampler_params p = lb_sampler_default_params();
    p.repeat_penalty = 1.1f;
    p.presence_penalty = 0.3f;
    lb_sampler *s = new_sampler(&p, V);
    for (int r = 0; r < 20; r++) {
        random_logits(logits, V, 10.0f);
        lb_sampler_probs(s, logits, probs);
        assert_float_equal(sum(probs, V), 1.0, 1e-5);
        int32_t t = lb_sampler_sample(s, logits);
        assert_true(probs[t] > 0.0f); // every draw is from the kept set
        lb_sampler_accept(s, t);
    }
    lb_sampler_free(s);
}

// ----------------------------------------------------------------------------
// Odd logits and bad parameters

static void test_inf_and_nan_logits(void **state) {
    float probs[4];
    lb_sampler_params p = plain_params();
    lb_sampler *s = new_sampler(&p, 4);

    // -inf has probability 0 and is never drawn; NaN counts as -inf.
    const float some[4] = {-INFINITY, 0.0f, NAN, 0.0f};
    lb_sampler_probs(s, some, probs);
    assert_float_equal(probs[0], 0.0f, 0.0f);
    assert_float_equal(probs[2], 0.0f, 0.0f);
    assert_float_equal(probs[1], 0.5f, 1e-7);
    for (int i = 0; i < 1000; i++) {
        int32_t t = lb_sampler_sample(s, some);
        assert_true(t == 1 || t == 3);
    }
    assert_int_equal(lb_argmax(some, 4), 1);

    // All -inf: one-hot on token 0, as lb_argmax says.
    const float none[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    lb_sampler_probs(s, none, probs);
    assert_float_equal(probs[0], 1.0f, 0.0f);
    assert_int_equal(lb_sampler_sample(s, none), 0);
    assert_int_equal(lb_argmax(none, 4), 0);
    const float nans[3] = {NAN, NAN, NAN};
    assert_int_equal(lb_argmax(nans, 3), 0);

    // +inf takes all the mass, shared between equals.
    const float big[4] = {INFINITY, 1.0f, INFINITY, 2.0f};
    lb_sampler_probs(s, big, probs);
    assert_float_equal(probs[0], 0.5f, 1e-7);
    assert_float_equal(probs[2], 0.5f, 1e-7);
    assert_float_equal(probs[1] + probs[3], 0.0f, 0.0f);
    lb_sampler_free(s);
}

static void expect_arg_error(lb_sampler_params p, int32_t n_vocab, const char *field) {
    lb_error err = {0};
    lb_sampler *s = (lb_sampler *)&err; // must come back NULL
    assert_int_equal(lb_sampler_new(&s, &p, n_vocab, &err), LB_ERR_ARG);
    assert_null(s);
    assert_int_equal(err.status, LB_ERR_ARG);
    if (!strstr(err.msg, field)) fail_msg("message '%s' does not name '%s'", err.msg, field);
}

static void test_bad_params(void **state) {
    lb_sampler_params p = plain_params();
    p.temp = NAN;
    expect_arg_error(p, 10, "temp");
    p = plain_params();
    p.top_p = -0.1f;
    expect_arg_error(p, 10, "top_p");
    p = plain_params();
    p.min_p = 1.5f;
    expect_arg_error(p, 10, "min_p");
    p = plain_params();
    p.repeat_penalty = 0.0f;
    expect_arg_error(p, 10, "repeat_penalty");
    p = plain_params();
    p.repeat_last_n = -2;
    expect_arg_error(p, 10, "repeat_last_n");
    p = plain_params();
    p.frequency_penalty = INFINITY;
    expect_arg_error(p, 10, "frequency_penalty");
    expect_arg_error(plain_params(), 0, "n_vocab");
    expect_arg_error(plain_params(), -5, "n_vocab");
    lb_sampler_free(NULL); // accepted, like every _free
}

static void test_default_params(void **state) {
    // llama.cpp's common defaults.
    lb_sampler_params p = lb_sampler_default_params();
    assert_float_equal(p.temp, 0.8f, 0.0f);
    assert_int_equal(p.top_k, 40);
    assert_float_equal(p.top_p, 0.95f, 0.0f);
    assert_float_equal(p.min_p, 0.05f, 0.0f);
    assert_float_equal(p.repeat_penalty, 1.0f, 0.0f);
    assert_int_equal(p.repeat_last_n, 64);
}

// ----------------------------------------------------------------------------
// Process statistics

static void test_stats(void **state) {
    size_t rss = lb_rss_bytes();
    assert_true(rss > 0);
    // Touch 32 MiB: the resident set and the high-water mark see it.
    size_t n = 32u << 20;
    char *block = malloc(n);
    assert_non_null(block);
    memset(block, 1, n);
    size_t rss2 = lb_rss_bytes();
    assert_true(rss2 >= rss + n / 2);
    assert_true(lb_peak_rss_bytes() + (1u << 20) >= rss2); // the peak is kept in kB: allow slack
    free(block);

    double t0 = lb_time_s(), t1 = lb_time_s();
    assert_true(t0 > 0.0 && t1 >= t0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_picks_first_argmax),
        cmocka_unit_test(test_same_seed_same_sequence),
        cmocka_unit_test(test_top_k_1_is_greedy),
        cmocka_unit_test(test_uniform_in_unit_interval),
        cmocka_unit_test(test_top_p_keeps_smallest_prefix),
        cmocka_unit_test(test_top_p_after_top_k_uses_candidates_softmax),
        cmocka_unit_test(test_top_p_flat_row_ties_by_id),
        cmocka_unit_test(test_top_k_ties_by_id),
        cmocka_unit_test(test_min_p_relative_to_max),
        cmocka_unit_test(test_min_p_before_temperature),
        cmocka_unit_test(test_temperature_scales_entropy),
        cmocka_unit_test(test_repeat_penalty_divides_positive_multiplies_negative),
        cmocka_unit_test(test_repeat_window_forgets_old_tokens),
        cmocka_unit_test(test_presence_and_frequency_penalties),
        cmocka_unit_test(test_matches_full_sort_reference),
        cmocka_unit_test(test_draws_follow_probs),
        cmocka_unit_test(test_probs_sum_to_one),
        cmocka_unit_test(test_inf_and_nan_logits),
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_default_params),
        cmocka_unit_test(test_stats),
    };
    int failed = cmocka_run_group_tests_name("sampler", tests, NULL, NULL);
    int total = (int)(sizeof tests / sizeof tests[0]);
    printf("%d passed, %d failed\n", total - failed, failed);
    return failed ? 1 : 0;
}
