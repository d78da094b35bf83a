/*
 * test_speculative.c — speculative decoding, through lowbit.h only.
 *
 * The target is the real stories260K model (../shared/models, or
 * $SHARED_MODELS; the tests skip when it is absent). Drafts:
 * - self-drafts: the same file opened again and re-quantized to Q8_0 / Q4_0;
 * - separate drafts: stories260K.bin (the same weights in llama2.c format, so
 *   every draft is accepted) and perturbed copies of the GGUF written here
 *   (every weight times 1 + sigma·N(0,1), sigma 0.1 or 0.25, so drafts are
 *   often rejected).
 *
 * What is shown:
 * 0. A verification batch (F16, Q8_0, Q4_0 targets; scalar and AVX2) gives
 *    bit for bit the logits of decoding its tokens one at a time.
 * 1. Greedy output with any draft, at any K, with or without the adaptive K,
 *    with or without penalties, with an F32 or an F16 target, on both ISAs
 *    for the latter, is token-identical to plain greedy decoding.
 * 2. With temperature > 0 the first tokens follow the target's distribution:
 *    the exact joint probabilities are enumerated from the target, and
 *    thousands of seeded runs pass a chi-square test at the 0.1% level. Plain
 *    sampling passes the same test; the two deliberately broken rules fail it.
 * Seeds are fixed, so every run is the same.
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
#include <unistd.h>

// --- models -------------------------------------------------------------------------

static lb_model *self_draft(lb_type type) {
    lb_model *m = open_model(model_path("stories260K.gguf"), NULL);
    lb_error err = {0};
    if (lb_model_requantize(m, type, NULL, NULL, &err) != LB_OK) fail_msg("%s", err.msg);
    return m;
}

static char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    rewind(f);
    char *buf = malloc(*size);
    assert_int_equal(fread(buf, 1, *size, f), *size);
    fclose(f);
    return buf;
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

// Standard normal draws from a fixed xorshift stream (test data only).
static uint64_t noise_state = 0x2545f4914f6cdd1dull;
static double noise_uniform(void) {
    noise_state ^= noise_state << 13;
    noise_state ^= noise_state >> 7;
    noise_state ^= noise_state << 17;
    return ((double)(noise_state >> 11) + 0.5) * 0x1.0p-53;
}
static double noise_normal(void) {
    return sqrt(-2.0 * log(noise_uniform())) * cos(6.283185307179586 * noise_uniform());
}

// stories260K.gguf with every weight multiplied by 1 + sigma·N(0,1): another
// model with the same vocabulary. Its tensors are all F32 and packed at the
// end of the file, so the data is the last weight_bytes bytes.
static void write_perturbed(const char *path, double sigma) {
    lb_model *m = open_model(model_path("stories260K.gguf"), NULL);
    const size_t weight_bytes = lb_model_weight_bytes(m);
    assert_int_equal(lb_model_weight_type(m), LB_TYPE_F32);
    lb_model_free(m);
    size_t size;
    char *buf = read_file(model_path("stories260K.gguf"), &size);
    assert_true(size > weight_bytes);
    float *w = (float *)(buf + (size - weight_bytes));
    assert_int_equal((size - weight_bytes) % sizeof(float), 0);
    noise_state = 0x2545f4914f6cdd1dull;
    for (size_t i = 0; i < weight_bytes / sizeof(float); i++) w[i] *= (float)(1.0 + sigma * noise_normal());
    write_file(path, buf, size);
    free(buf);
}

// --- generation ------------------------------------------------------------------------

enum { N_CTX = 256, MAX_GEN = 128 };

// Tests here use one thread and an f32 cache, so greedy ties resolve identically.
static lb_context *new_context(lb_model *m, int n_ctx) { return open_context(m, n_ctx, LB_TYPE_F32, 1); }

static int tokenize(const lb_model *m, const char *text, int32_t *ids, int cap) {
    int n = lb_tokenize(m, text, -1, true, false, ids, cap);
    assert_true(n > 0);
    return n;
}

// Plain decoding: one token at a time, the sampler as `lowbit run` uses it.
static void plain_generate(lb_model *m, const lb_sampler_params *sp, const int32_t *prompt, int n_prompt,
                           int n_gen, int32_t *out) {
    const int V = lb_model_hparams(m)->n_vocab;
    lb_error err = {0};
    lb_context *c = new_context(m, N_CTX);
    lb_sampler *s = NULL;
    assert_int_equal(lb_sampler_new(&s, sp, V, &err), LB_OK);
    float *logits = malloc(sizeof(float) * V);
    for (int i = 0; i < n_prompt; i++) lb_sampler_accept(s, prompt[i]);
    assert_int_equal(lb_decode(c, prompt, n_prompt, logits, &err), LB_OK);
    for (int i = 0; i < n_gen; i++) {
        out[i] = lb_sampler_sample(s, logits);
        lb_sampler_accept(s, out[i]);
        if (i + 1 < n_gen) assert_int_equal(lb_decode(c, &out[i], 1, logits, &err), LB_OK);
    }
    free(logits);
    lb_sampler_free(s);
    lb_context_free(c);
}

// The same through lb_speculative; returns its statistics.
static lb_speculative_stats spec_generate(lb_model *target, lb_model *draft, const lb_sampler_params *sp,
                                          const lb_speculative_params *params, const int32_t *prompt, int n_prompt,
                                          int n_gen, int32_t *out) {
    lb_error err = {0};
    lb_context *tc = new_context(target, N_CTX), *dc = new_context(draft, N_CTX);
    lb_speculative *spec = NULL;
    if (lb_speculative_new(&spec, tc, dc, sp, params, &err) != LB_OK) fail_msg("%s", err.msg);
    assert_int_equal(lb_speculative_feed(spec, prompt, n_prompt, &err), LB_OK);
    int got = 0;
    while (got < n_gen) {
        int32_t toks[LB_SPECULATIVE_MAX_DRAFT + 1];
        int n = 0;
        if (lb_speculative_step(spec, toks, n_gen - got, &n, &err) != LB_OK) fail_msg("%s", err.msg);
        assert_true(n >= 1 && n <= n_gen - got);
        memcpy(out + got, toks, sizeof(int32_t) * (size_t)n);
        got += n;
        assert_int_equal(lb_speculative_n_past(spec), n_prompt + got);
    }
    lb_speculative_stats st = lb_speculative_get_stats(spec);
    lb_speculative_free(spec);
    lb_context_free(tc);
    lb_context_free(dc);
    return st;
}

static const char *PROMPTS[] = {
    "Once upon a time",
    "Once upon a time, there was a little girl named Lily.",
    "Tom and his dog went to the park",
    "The sun was hot and",
    "Max had a big red ball. He",
    "One day, a bird",
    "Sue liked to eat",
    "The cat sat on the",
    "Ben and Mia were friends. They",
    "There was a big tree in the garden",
    "Mom said,",
    "A little fish swam",
};
enum { N_PROMPTS = sizeof PROMPTS / sizeof PROMPTS[0] };

static lb_sampler_params greedy_params(void) {
    lb_sampler_params p = lb_sampler_default_params();
    p.temp = 0.0f;
    return p;
}

// Greedy with `draft` over every prompt and K: the same tokens as plain
// greedy. Returns the acceptance rate over all of it.
static double check_greedy_identity(lb_model *target, lb_model *draft, const lb_sampler_params *sp) {
    static const int KS[] = {1, 2, 3, 5, 8, 16};
    int64_t drafted = 0, accepted = 0;
    for (int pi = 0; pi < N_PROMPTS; pi++) {
        int32_t prompt[64], want[MAX_GEN], got[MAX_GEN];
        const int n_prompt = tokenize(target, PROMPTS[pi], prompt, 64);
        const int n_gen = 100;
        plain_generate(target, sp, prompt, n_prompt, n_gen, want);
        for (size_t ki = 0; ki < sizeof KS / sizeof KS[0]; ki++) {
            for (int adaptive = 0; adaptive <= 1; adaptive++) {
                lb_speculative_params params = lb_speculative_default_params();
                params.draft_max = KS[ki];
                params.adaptive = adaptive;
                lb_speculative_stats st = spec_generate(target, draft, sp, &params, prompt, n_prompt, n_gen, got);
                for (int i = 0; i < n_gen; i++)
                    if (got[i] != want[i])
                        fail_msg("prompt %d, K %d, adaptive %d: token %d is %d, plain greedy gives %d", pi, KS[ki],
                                 adaptive, i, got[i], want[i]);
                assert_int_equal(st.n_generated, n_gen);
                assert_int_equal(st.n_generated, st.n_accepted + st.n_steps);
                drafted += st.n_drafted;
                accepted += st.n_accepted;
            }
        }
    }
    return drafted ? (double)accepted / (double)drafted : 0.0;
}

// --- 0. a verification batch gives the logits of decoding one token at a time --------------

// The greedy guarantee rests on this: the target's K+1-token verification pass
// (matmul's small-batch kernels) computes, for each token, bit for bit what
// decoding it alone computes. For F16 and the quantized types that have such
// kernels, on every ISA.
static const lb_type BATCH_TYPES[] = {LB_TYPE_F16, LB_TYPE_Q8_0, LB_TYPE_Q4_0};
// The AVX-512 tables natively where the CPU has them; of the two emulated
// ones (SIMDe, slow) only the VNNI one, to keep this test's time down: the
// kernel tests (test_types, test_repack) run both.
static const char *const ISAS[] = {"scalar", "avx2", "avx512", "avx512vnni", "avx512vnni-emulated"};
enum { N_ISAS = sizeof ISAS / sizeof ISAS[0] };

static void test_batch_logits_bit_identical(void **state) {
    REQUIRE_SHARED();
    lb_error err = {0};
    int checked = 0;
    for (int isa = 0; isa < N_ISAS; isa++) {
        if (!lb_cpu_select(ISAS[isa])) continue;
        for (size_t ti = 0; ti < sizeof BATCH_TYPES / sizeof BATCH_TYPES[0]; ti++) {
            lb_model *m = self_draft(BATCH_TYPES[ti]);
            const int V = lb_model_hparams(m)->n_vocab;
            int32_t toks[64];
            const int n_tok = tokenize(m, "Once upon a time, there was a little girl named Lily. She loved", toks, 64);
            const int prefix = 4;
            assert_true(n_tok >= prefix + 15);
            float *batch = malloc(sizeof(float) * (size_t)V * 15), *one = malloc(sizeof(float) * (size_t)V * 15);
            int32_t pos[15];
            bool want[15];
            for (int n = 2; n <= 15; n++) {
                lb_context *a = open_context(m, N_CTX, LB_TYPE_F16, 2), *b = open_context(m, N_CTX, LB_TYPE_F16, 2);
                assert_int_equal(lb_decode(a, toks, prefix, one, &err), LB_OK);
                assert_int_equal(lb_decode(b, toks, prefix, one, &err), LB_OK);
                for (int i = 0; i < n; i++) pos[i] = prefix + i, want[i] = true;
                assert_int_equal(lb_forward(a, toks + prefix, pos, n, want, batch, &err), LB_OK);
                for (int i = 0; i < n; i++)
                    assert_int_equal(lb_decode(b, toks + prefix + i, 1, one + (size_t)i * V, &err), LB_OK);
                if (memcmp(batch, one, sizeof(float) * (size_t)V * (size_t)n) != 0)
                    fail_msg("%s, %s target: a batch of %d tokens differs from decoding them one by one", ISAS[isa],
                             lb_type_name(BATCH_TYPES[ti]), n);
                lb_context_free(a);
                lb_context_free(b);
                checked++;
            }
            free(batch);
            free(one);
            lb_model_free(m);
        }
    }
    print_message("%d batches bit-identical to one-token decoding\n", checked);
    assert_true(checked >= 14 * 3);
    lb_cpu_select("auto");
}

// --- 1. greedy is token-identical ------------------------------------------------------

static void test_greedy_self_draft_identical(void **state) {
    REQUIRE_SHARED();
    lb_model *target = open_model(model_path("stories260K.gguf"), NULL);
    const lb_type types[] = {LB_TYPE_Q8_0, LB_TYPE_Q4_0};
    for (int i = 0; i < 2; i++) {
        lb_model *draft = self_draft(types[i]);
        lb_sampler_params sp = greedy_params();
        double rate = check_greedy_identity(target, draft, &sp);
        print_message("self-draft %s: greedy identical, acceptance %.3f\n", lb_type_name(types[i]), rate);
        assert_true(rate > 0.5); // a close copy of the target mostly agrees with it
        lb_model_free(draft);
    }
    lb_model_free(target);
}

// An F16 target, so that every verification goes through the F16
// small-batch kernel (and its per-token fallback for the 172-wide rows), on
// both ISAs.
static void test_greedy_f16_target_identical(void **state) {
    REQUIRE_SHARED();
    lb_model *target = self_draft(LB_TYPE_F16);
    lb_model *draft = self_draft(LB_TYPE_Q4_0);
    lb_sampler_params sp = greedy_params();
    for (int isa = 0; isa < N_ISAS; isa++) {
        if (!lb_cpu_select(ISAS[isa])) continue;
        double rate = check_greedy_identity(target, draft, &sp);
        print_message("%s: F16 target, self-draft Q4_0: greedy identical, acceptance %.3f\n", ISAS[isa], rate);
        assert_true(rate > 0.5);
    }
    lb_cpu_select("auto");
    lb_model_free(draft);
    lb_model_free(target);
}

static void test_greedy_separate_draft_identical(void **state) {
    REQUIRE_SHARED();
    lb_model *target = open_model(model_path("stories260K.gguf"), NULL);
    write_perturbed(tmp_path("perturbed.gguf"), 0.1);
    lb_model *perturbed = open_model(tmp_path("perturbed.gguf"), NULL);
    lb_model *bin = open_model(model_path("stories260K.bin"), model_path("tok512.bin"));
    lb_sampler_params sp = greedy_params();
    double rate = check_greedy_identity(target, perturbed, &sp);
    print_message("perturbed draft: greedy identical, acceptance %.3f\n", rate);
    assert_true(rate > 0.05 && rate < 0.98); // both paths, accept and reject, are exercised
    rate = check_greedy_identity(target, bin, &sp);
    print_message("llama2.c draft (same weights): greedy identical, acceptance %.3f\n", rate);
    assert_true(rate > 0.99);
    lb_model_free(target);
    lb_model_free(perturbed);
    lb_model_free(bin);
}

// Penalties change the target's choice with every accepted token: the target
// must judge draft i with drafts 0..i-1 already in its history.
static void test_greedy_with_penalties_identical(void **state) {
    REQUIRE_SHARED();
    lb_model *target = open_model(model_path("stories260K.gguf"), NULL);
    lb_model *draft = self_draft(LB_TYPE_Q4_0);
    lb_sampler_params sp = greedy_params();
    sp.repeat_penalty = 1.3f;
    sp.repeat_last_n = 16;
    sp.presence_penalty = 0.3f;
    sp.frequency_penalty = 0.2f;
    double rate = check_greedy_identity(target, draft, &sp);
    print_message("self-draft Q4_0 with penalties: greedy identical, acceptance %.3f\n", rate);
    sp.repeat_last_n = -1; // the whole history
    check_greedy_identity(target, draft, &sp);
    lb_model_free(draft);
    lb_model_free(target);
}

// A chat-like session: generate, cut back, feed a new turn, go on. Each
// stretch matches plain greedy decoding over the same history.
static void test_truncate_and_feed(void **state) {
    REQUIRE_SHARED();
    lb_model *target = open_model(model_path("stories260K.gguf"), NULL);
    lb_model *draft = self_draft(LB_TYPE_Q4_0);
    lb_sampler_params sp = greedy_params();
    sp.repeat_penalty = 1.2f;
    lb_error err = {0};
    lb_context *tc = new_context(target, N_CTX), *dc = new_context(draft, N_CTX);
    lb_speculative *spec = NULL;
    assert_int_equal(lb_speculative_new(&spec, tc, dc, &sp, NULL, &err), LB_OK);
    int32_t hist[N_CTX];
    int n = tokenize(target, "Once upon a time", hist, N_CTX);
    assert_int_equal(lb_speculative_feed(spec, hist, n, &err), LB_OK);
    for (int round = 0; round < 4; round++) {
        // Generate 30 tokens, keep 20 of them, then feed a new "turn".
        const int base = n;
        while (n < base + 30) {
            int got = 0;
            assert_int_equal(lb_speculative_step(spec, hist + n, base + 30 - n, &got, &err), LB_OK);
            n += got;
        }
        int32_t want[30];
        plain_generate(target, &sp, hist, base, 30, want);
        assert_memory_equal(hist + base, want, sizeof want);
        n = base + 20;
        assert_int_equal(lb_speculative_truncate(spec, n, &err), LB_OK);
        int32_t turn[16];
        int k = lb_tokenize(target, " The end. Then", -1, false, false, turn, 16);
        assert_true(k > 0);
        assert_int_equal(lb_speculative_feed(spec, turn, k, &err), LB_OK);
        memcpy(hist + n, turn, sizeof(int32_t) * (size_t)k);
        n += k;
        assert_int_equal(lb_speculative_n_past(spec), n);
    }
    assert_int_equal(lb_speculative_truncate(spec, n + 1, &err), LB_ERR_ARG);
    lb_speculative_free(spec);
    lb_context_free(tc);
    lb_context_free(dc);
    lb_model_free(draft);
    lb_model_free(target);
}

// Generating until the context is full gives what plain decoding gives,
// then a clear error.
static void test_context_full(void **state) {
    REQUIRE_SHARED();
    lb_model *target = open_model(model_path("stories260K.gguf"), NULL);
    lb_model *draft = self_draft(LB_TYPE_Q8_0);
    lb_sampler_params sp = greedy_params();
    lb_error err = {0};
    const int n_ctx = 40;
    lb_context *tc = new_context(target, n_ctx), *dc = new_context(draft, n_ctx);
    lb_speculative *spec = NULL;
    assert_int_equal(lb_speculative_new(&spec, tc, dc, &sp, NULL, &err), LB_OK);
    int32_t hist[64];
    const int n_prompt = tokenize(target, "Once upon a time", hist, 64);
    assert_int_equal(lb_speculative_feed(spec, hist, n_prompt, &err), LB_OK);
    int n = n_prompt;
    lb_status st;
    int got;
    while ((st = lb_speculative_step(spec, hist + n, 64 - n, &got, &err)) == LB_OK) n += got;
    assert_int_equal(st, LB_ERR_ARG);
    assert_non_null(strstr(err.msg, "context is full"));
    assert_int_equal(got, 0);
    // Plain decoding fills n_ctx positions and samples one token more.
    assert_int_equal(n, n_ctx + 1);
    int32_t want[64];
    plain_generate(target, &sp, hist, n_prompt, n - n_prompt, want);
    assert_memory_equal(hist + n_prompt, want, sizeof(int32_t) * (size_t)(n - n_prompt));
    lb_speculative_free(spec);
    lb_context_free(tc);
    lb_context_free(dc);
    lb_model_free(draft);
    lb_model_free(target);
}

// The statistics add up, and a draft with the target's own weights is always right.
static void test_stats(void **state) {
    REQUIRE_SHARED();
    lb_model *target = open_model(model_path("stories260K.gguf"), NULL);
    lb_model *bin = open_model(model_path("stories260K.bin"), model_path("tok512.bin"));
    lb_sampler_params sp = greedy_params();
    lb_speculative_params params = lb_speculative_default_params();
    params.draft_max = 6;
    params.adaptive = false; // K fixed, so the step count is known
    int32_t prompt[64], out[MAX_GEN];
    const int n_prompt = tokenize(target, PROMPTS[1], prompt, 64);
    lb_speculative_stats st = spec_generate(target, bin, &sp, &params, prompt, n_prompt, 70, out);
    assert_int_equal(st.n_accepted, st.n_drafted);
    assert_int_equal(st.n_steps, 10); // 7 tokens a step: 6 drafts and the bonus
    assert_int_equal(st.n_generated, 70);
    assert_int_equal(st.draft_k, 6);
    assert_true(st.draft_s > 0 && st.target_s > 0 && st.step_s >= st.draft_s + st.target_s);
    // With drafting off every step is one plain decoding step.
    params.draft_max = 0;
    st = spec_generate(target, bin, &sp, &params, prompt, n_prompt, 20, out);
    assert_int_equal(st.n_steps, 20);
    assert_int_equal(st.n_drafted, 0);
    // A draft that is never confident enough drafts nothing.
    params.draft_max = 8;
    params.draft_min_p = 1.0f;
    st = spec_generate(target, bin, &sp, &params, prompt, n_prompt, 20, out);
    assert_int_equal(st.n_drafted, 0);
    lb_model_free(bin);
    lb_model_free(target);
}

// --- 2. sampling follows the target's distribution -----------------------------------

// The exact joint distribution of the first `depth` tokens after the prompt
// under plain sampling with `sp`: every prefix with non-zero probability is
// enumerated and its continuation distribution computed with the sampler.
typedef struct cells {
    uint32_t *key;  // t1·V^(depth-1) + ... + t_depth
    double *prob;
    int n, cap;
} cells;

static void cells_add(cells *c, uint32_t key, double prob) {
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 1024;
        c->key = realloc(c->key, sizeof *c->key * (size_t)c->cap);
        c->prob = realloc(c->prob, sizeof *c->prob * (size_t)c->cap);
        assert_non_null(c->key);
        assert_non_null(c->prob);
    }
    c->key[c->n] = key;
    c->prob[c->n++] = prob;
}

struct enumeration {
    lb_context *ctx;
    lb_sampler *s;
    int32_t hist[N_CTX];
    float *logits;   // [depth][V]
    float *probs;    // [depth][V]
    int V, depth;
    cells *out;
};

// hist[0..n) is evaluated; row `level` of logits holds the logits after it.
static void enumerate(struct enumeration *e, int n, int level, uint32_t key, double prob) {
    const int V = e->V;
    float *probs = e->probs + (size_t)level * V;
    lb_sampler_set_history(e->s, e->hist, n);
    lb_sampler_probs(e->s, e->logits + (size_t)level * V, probs);
    lb_error err = {0};
    for (int t = 0; t < V; t++) {
        if (probs[t] <= 0.0f) continue;
        const uint32_t k = key * (uint32_t)V + (uint32_t)t;
        if (level + 1 == e->depth) {
            cells_add(e->out, k, prob * probs[t]);
            continue;
        }
        e->hist[n] = t;
        int32_t tok = t;
        assert_int_equal(lb_decode(e->ctx, &tok, 1, e->logits + (size_t)(level + 1) * V, &err), LB_OK);
        enumerate(e, n + 1, level + 1, k, prob * probs[t]);
        assert_int_equal(lb_kv_cache_truncate(e->ctx, n, &err), LB_OK);
    }
}

static cells exact_joint(lb_model *m, const lb_sampler_params *sp, const int32_t *prompt, int n_prompt,
                         int depth) {
    cells out = {0};
    struct enumeration e = {.V = lb_model_hparams(m)->n_vocab, .depth = depth, .out = &out};
    lb_error err = {0};
    e.ctx = new_context(m, N_CTX);
    assert_int_equal(lb_sampler_new(&e.s, sp, e.V, &err), LB_OK);
    e.logits = malloc(sizeof(float) * (size_t)e.V * depth);
    e.probs = malloc(sizeof(float) * (size_t)e.V * depth);
    memcpy(e.hist, prompt, sizeof(int32_t) * (size_t)n_prompt);
    assert_int_equal(lb_decode(e.ctx, prompt, n_prompt, e.logits, &err), LB_OK);
    enumerate(&e, n_prompt, 0, 0, 1.0);
    free(e.logits);
    free(e.probs);
    lb_sampler_free(e.s);
    lb_context_free(e.ctx);
    double total = 0;
    for (int i = 0; i < out.n; i++) total += out.prob[i];
    assert_true(fabs(total - 1.0) < 1e-3);
    return out; // keys ascending: enumerated in order
}

static int find_cell(const cells *c, uint32_t key) {
    int lo = 0, hi = c->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (c->key[mid] == key) return mid;
        if (c->key[mid] < key) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

// Pearson's chi-square of observed keys against the exact cells. Cells
// expected fewer than 5 times are pooled (with any key outside the cells)
// into one bin. Returns the statistic divided by the 99.9% quantile
// (Wilson-Hilferty): below 1 passes at the 0.1% level.
static double chi_square_ratio(const cells *c, const uint32_t *keys, int n_samples, const char *what) {
    double *observed = calloc((size_t)c->n, sizeof(double));
    double rest_observed = 0;
    for (int i = 0; i < n_samples; i++) {
        int j = find_cell(c, keys[i]);
        if (j >= 0) observed[j]++;
        else rest_observed++;
    }
    double chi2 = 0, rest_expected = 0;
    int bins = 0;
    for (int j = 0; j < c->n; j++) {
        const double e = c->prob[j] * n_samples;
        if (e < 5) {
            rest_expected += e;
            rest_observed += observed[j];
            continue;
        }
        chi2 += (observed[j] - e) * (observed[j] - e) / e;
        bins++;
    }
    if (rest_expected > 0) {
        chi2 += (rest_observed - rest_expected) * (rest_observed - rest_expected) / rest_expected;
        bins++;
    } else if (rest_observed > 0) {
        chi2 = INFINITY; // a token sequence plain sampling cannot produce
    }
    free(observed);
    const int df = bins - 1;
    assert_true(df >= 3);
    const double h = 2.0 / (9.0 * df), z = 3.090232; // z of the 99.9% normal quantile
    const double q = df * pow(1.0 - h + z * sqrt(h), 3.0);
    print_message("%-40s chi-square %8.1f, df %3d, 99.9%% quantile %6.1f\n", what, chi2, df, q);
    return chi2 / q;
}

enum { N_SEEDS = 4000 };

// The first `depth` tokens of N_SEEDS runs, as keys.
static void sample_keys(lb_model *target, lb_model *draft, const lb_sampler_params *base,
                        const lb_speculative_params *params, const int32_t *prompt, int n_prompt, int depth,
                        uint32_t *keys) {
    const uint32_t V = (uint32_t)lb_model_hparams(target)->n_vocab;
    for (int i = 0; i < N_SEEDS; i++) {
        lb_sampler_params sp = *base;
        sp.seed = 1000003u * (uint64_t)i + 17;
        int32_t out[8 + LB_SPECULATIVE_MAX_DRAFT];
        // Speculative runs go on past `depth` so that K is not capped by it.
        if (draft) spec_generate(target, draft, &sp, params, prompt, n_prompt, depth + params->draft_max, out);
        else plain_generate(target, &sp, prompt, n_prompt, depth, out);
        uint32_t key = 0;
        for (int d = 0; d < depth; d++) key = key * V + (uint32_t)out[d];
        keys[i] = key;
    }
}

struct sampling_case {
    const char *name;
    lb_sampler_params sp;
    int depth;
};

static struct sampling_case sampling_cases(int i) {
    lb_sampler_params plain = lb_sampler_default_params();
    plain.temp = 1.0f;
    plain.top_k = 0;
    plain.top_p = 1.0f;
    plain.min_p = 0.0f;
    lb_sampler_params chain = lb_sampler_default_params(); // temp 0.8, top-k 40, top-p 0.95, min-p 0.05
    chain.repeat_penalty = 1.5f;
    chain.presence_penalty = 0.5f;
    chain.frequency_penalty = 0.3f;
    return i == 0 ? (struct sampling_case){"temp 1, nothing else", plain, 2}
                  : (struct sampling_case){"temp 0.8, top-k/p, min-p, penalties", chain, 3};
}

static void test_sampling_matches_target_distribution(void **state) {
    REQUIRE_SHARED();
    lb_model *target = open_model(model_path("stories260K.gguf"), NULL);
    lb_model *q4 = self_draft(LB_TYPE_Q4_0);
    write_perturbed(tmp_path("perturbed.gguf"), 0.25);
    lb_model *perturbed = open_model(tmp_path("perturbed.gguf"), NULL);
    int32_t prompt[64];
    const int n_prompt = tokenize(target, "Once upon a time, there was a", prompt, 64);
    uint32_t *keys = malloc(sizeof(uint32_t) * N_SEEDS);
    for (int ci = 0; ci < 2; ci++) {
        struct sampling_case c = sampling_cases(ci);
        print_message("%s, first %d tokens, %d seeds:\n", c.name, c.depth, N_SEEDS);
        cells exact = exact_joint(target, &c.sp, prompt, n_prompt, c.depth);
        // The check itself: plain sampling passes it.
        sample_keys(target, NULL, &c.sp, NULL, prompt, n_prompt, c.depth, keys);
        assert_true(chi_square_ratio(&exact, keys, N_SEEDS, "plain sampling") < 1.0);
        const int ks[] = {1, 4};
        for (int ki = 0; ki < 2; ki++) {
            lb_speculative_params params = lb_speculative_default_params();
            params.draft_max = ks[ki];
            char what[64];
            snprintf(what, sizeof what, "self-draft Q4_0, K %d", ks[ki]);
            sample_keys(target, q4, &c.sp, &params, prompt, n_prompt, c.depth, keys);
            assert_true(chi_square_ratio(&exact, keys, N_SEEDS, what) < 1.0);
            snprintf(what, sizeof what, "perturbed draft, K %d", ks[ki]);
            sample_keys(target, perturbed, &c.sp, &params, prompt, n_prompt, c.depth, keys);
            assert_true(chi_square_ratio(&exact, keys, N_SEEDS, what) < 1.0);
        }
        free(exact.key);
        free(exact.prob);
    }
    free(keys);
    lb_model_free(perturbed);
    lb_model_free(q4);
    lb_model_free(target);
}

// The same check fails when the rule is broken on purpose: it has the power
// to see a wrong rule, so its passing above means something.
static void test_broken_rules_fail_the_check(void **state) {
    REQUIRE_SHARED();
    lb_model *target = open_model(model_path("stories260K.gguf"), NULL);
    write_perturbed(tmp_path("perturbed.gguf"), 0.25);
    lb_model *perturbed = open_model(tmp_path("perturbed.gguf"), NULL);
    int32_t prompt[64];
    const int n_prompt = tokenize(target, "Once upon a time, there was a", prompt, 64);
    uint32_t *keys = malloc(sizeof(uint32_t) * N_SEEDS);
    for (int ci = 0; ci < 2; ci++) {
        struct sampling_case c = sampling_cases(ci);
        print_message("%s, first %d tokens, %d seeds, broken rules:\n", c.name, c.depth, N_SEEDS);
        cells exact = exact_joint(target, &c.sp, prompt, n_prompt, c.depth);
        const lb_speculative_rule rules[] = {LB_SPECULATIVE_TEST_ACCEPT_ALL, LB_SPECULATIVE_TEST_RESAMPLE_P};
        const char *names[] = {"accept every draft", "resample rejections from p"};
        for (int r = 0; r < 2; r++) {
            lb_speculative_params params = lb_speculative_default_params();
            params.draft_max = 4;
            params.rule = rules[r];
            sample_keys(target, perturbed, &c.sp, &params, prompt, n_prompt, c.depth, keys);
            assert_true(chi_square_ratio(&exact, keys, N_SEEDS, names[r]) > 1.0);
        }
        free(exact.key);
        free(exact.prob);
    }
    free(keys);
    lb_model_free(perturbed);
    lb_model_free(target);
}

// --- errors ---------------------------------------------------------------------------------

static void test_rejects_other_vocabulary(void **state) {
    REQUIRE_SHARED();
    // stories260K.gguf with one vocabulary piece changed: "<unk>" -> "<unK>".
    size_t size;
    char *buf = read_file(model_path("stories260K.gguf"), &size);
    char *hit = memmem(buf, size, "<unk>", 5);
    assert_non_null(hit);
    hit[3] = 'K';
    write_file(tmp_path("renamed.gguf"), buf, size);
    free(buf);
    lb_model *target = open_model(model_path("stories260K.gguf"), NULL);
    lb_model *other = open_model(tmp_path("renamed.gguf"), NULL);
    lb_context *tc = new_context(target, 32), *dc = new_context(other, 32);
    lb_error err = {0};
    lb_speculative *spec = (lb_speculative *)1;
    assert_int_equal(lb_speculative_new(&spec, tc, dc, NULL, NULL, &err), LB_ERR_ARG);
    assert_null(spec);
    assert_non_null(strstr(err.msg, "token 0 is '<unK>' (expected '<unk>'"));
    assert_non_null(strstr(err.msg, "renamed.gguf"));
    assert_null(strchr(err.msg, '\n'));
    lb_context_free(tc);
    lb_context_free(dc);
    lb_model_free(other);
    lb_model_free(target);
}

static void test_bad_arguments(void **state) {
    REQUIRE_SHARED();
    lb_model *target = open_model(model_path("stories260K.gguf"), NULL);
    lb_context *tc = new_context(target, 32), *dc = new_context(target, 32);
    lb_error err = {0};
    lb_speculative *spec = NULL;
    assert_int_equal(lb_speculative_new(&spec, tc, tc, NULL, NULL, &err), LB_ERR_ARG);
    assert_non_null(strstr(err.msg, "same context"));
    lb_speculative_params params = lb_speculative_default_params();
    params.draft_max = LB_SPECULATIVE_MAX_DRAFT + 1;
    assert_int_equal(lb_speculative_new(&spec, tc, dc, NULL, &params, &err), LB_ERR_ARG);
    assert_non_null(strstr(err.msg, "draft_max"));
    // Two contexts of one model are a valid pair (every draft is accepted).
    assert_int_equal(lb_speculative_new(&spec, tc, dc, NULL, NULL, &err), LB_OK);
    int32_t out[16];
    int n = -1;
    assert_int_equal(lb_speculative_step(spec, out, 16, &n, &err), LB_ERR_ARG);
    assert_non_null(strstr(err.msg, "empty history"));
    assert_int_equal(n, 0);
    int32_t bos = 1;
    assert_int_equal(lb_speculative_feed(spec, &bos, 1, &err), LB_OK);
    assert_int_equal(lb_speculative_step(spec, out, 0, &n, &err), LB_ERR_ARG);
    assert_int_equal(lb_speculative_step(spec, out, 1, &n, &err), LB_OK);
    assert_int_equal(n, 1); // cap 1: nothing drafted
    int32_t bad = 100000;
    assert_int_equal(lb_speculative_feed(spec, &bad, 1, &err), LB_ERR_ARG);
    assert_int_equal(lb_speculative_n_past(spec), 2); // unchanged
    assert_int_equal(lb_speculative_step(spec, out, 16, &n, &err), LB_OK);
    lb_speculative_free(spec);
    lb_speculative_free(NULL);
    lb_context_free(tc);
    lb_context_free(dc);
    lb_model_free(target);
}

int main(void) {
    if (!lbtest_init("test-speculative")) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_logits_bit_identical),
        cmocka_unit_test(test_greedy_self_draft_identical),
        cmocka_unit_test(test_greedy_f16_target_identical),
        cmocka_unit_test(test_greedy_separate_draft_identical),
        cmocka_unit_test(test_greedy_with_penalties_identical),
        cmocka_unit_test(test_truncate_and_feed),
        cmocka_unit_test(test_context_full),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_sampling_matches_target_distribution),
        cmocka_unit_test(test_broken_rules_fail_the_check),
        cmocka_unit_test(test_rejects_other_vocabulary),
        cmocka_unit_test(test_bad_arguments),
    };
    int failed = cmocka_run_group_tests_name("speculative", tests, NULL, NULL);
    lbtest_cleanup();
    int total = (int)(sizeof tests / sizeof tests[0]);
    printf("%d passed, %d failed\n", total - failed, failed);
    return failed ? 1 : 0;
}
