/*
 * test_fallback.c — rows that do not fit a profile's group size (grid.h,
 * lb_grid_fallback; quantize.c, fallback_type). lowbit's integer grid types
 * step down to the largest smaller group of the same bits and symmetry that
 * divides the row, and GPTQ / AWQ still calibrate such tensors at that grid:
 *   - the type each g128 profile gives rows of 172, 64, 96, 128 and 160;
 *     a profile's explicit fallback and llama.cpp's chain for ggml types
 *     are unchanged;
 *   - stories260K (dim 64, FFN 172) with gptq-4bit-g128: no F16 matrix but
 *     the 172-wide ffn_down (no 4-bit type holds rows that are not a
 *     multiple of 32), every other layer matrix made by GPTQ, with
 *     act-order's static groups fitted on groups of 64 (each group's scale
 *     and zero are round-to-nearest's on the unquantized weights), and a
 *     file smaller than the Q8_0 one;
 *   - GPTQ and AWQ at the fallback grid have a lower mean KL divergence
 *     from the source model than round-to-nearest at the same grid, on a
 *     text they were not calibrated on (tests/test_perplexity.sh's).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "blocks.h"
#include "fp16.h"
#include "gguf.h"
#include "gptq.h"
#include "grid.h"
#include "lbtest.h"
#include "lowbit.h"
#include "profile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *srcdir(void) { return getenv("top_srcdir") ? getenv("top_srcdir") : "."; }

static lb_profile *shipped(const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/profiles/%s.yaml", srcdir(), name);
    lb_profile *p = NULL;
    lb_error err = {0};
    if (lb_profile_load(&p, path, &err) != LB_OK) fail_msg("%s", err.msg);
    return p;
}

static lb_profile *from_text(const char *text) {
    FILE *fp = fopen(tmp_path("p.yaml"), "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    lb_profile *p = NULL;
    lb_error err = {0};
    if (lb_profile_load(&p, tmp_path("p.yaml"), &err) != LB_OK) fail_msg("%s", err.msg);
    return p;
}

// The type a layer matrix with rows of ne0 gets, and its rule.
static lb_type type_for(const lb_profile *p, int64_t ne0, enum lb_quant_rule *rule) {
    const struct lb_quant_model qm = {.n_layer = 5, .n_gqa = 1};
    return lb_quant_tensor_type(p, &qm, "blk.1.ffn_up.weight", 2, ne0, LB_TYPE_F32, rule);
}

// ----------------------------------------------------------------------------

static void test_types_for_row_lengths(void **state) {
    (void)state;
    enum { N_ROWS = 5 };
    static const int64_t widths[N_ROWS] = {172, 64, 96, 128, 160};
    static const struct {
        const char *profile;
        lb_type want[N_ROWS];
    } cases[] = {
        {"gptq-4bit-g128", {LB_TYPE_F16, LB_TYPE_INT4Z_G64, LB_TYPE_Q4_1, LB_TYPE_INT4Z_G128, LB_TYPE_Q4_1}},
        {"gptq-3bit-g128", {LB_TYPE_F16, LB_TYPE_INT3Z_G64, LB_TYPE_INT3Z_G32, LB_TYPE_INT3Z_G128, LB_TYPE_INT3Z_G32}},
        {"awq-4bit-g128", {LB_TYPE_F16, LB_TYPE_INT4Z_G64, LB_TYPE_Q4_1, LB_TYPE_INT4Z_G128, LB_TYPE_Q4_1}},
        {"int4-g128", {LB_TYPE_F16, LB_TYPE_INT4_G64, LB_TYPE_Q4_0, LB_TYPE_INT4_G128, LB_TYPE_Q4_0}},
        {"int4-zp-g128", {LB_TYPE_F16, LB_TYPE_INT4Z_G64, LB_TYPE_Q4_1, LB_TYPE_INT4Z_G128, LB_TYPE_Q4_1}},
        {"int3-g128", {LB_TYPE_F16, LB_TYPE_INT3Z_G64, LB_TYPE_INT3Z_G32, LB_TYPE_INT3Z_G128, LB_TYPE_INT3Z_G32}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lb_profile *p = shipped(cases[i].profile);
        for (int k = 0; k < N_ROWS; k++) {
            enum lb_quant_rule rule;
            const lb_type t = type_for(p, widths[k], &rule);
            if (t != cases[i].want[k])
                fail_msg("%s, rows of %lld: %s (expected %s)", cases[i].profile, (long long)widths[k],
                         lb_type_name(t), lb_type_name(cases[i].want[k]));
            assert_int_equal(rule, widths[k] == 128 ? LB_RULE_METHOD : LB_RULE_FALLBACK);
        }
        lb_profile_free(p);
    }

    // 8 bits, groups of 128: 64 → INT8_G64, 96 → Q8_0 (the 32-group grid);
    // a 64-group type steps down to 32 and never up.
    lb_profile *p = from_text("name: x\nmethod: rtn\nbits: 8\ngranularity: group\ngroup_size: 128\n");
    enum lb_quant_rule rule;
    assert_int_equal(type_for(p, 64, &rule), LB_TYPE_INT8_G64);
    assert_int_equal(type_for(p, 96, &rule), LB_TYPE_Q8_0);
    lb_profile_free(p);
    p = from_text("name: x\nmethod: rtn\nbits: 3\ngranularity: group\ngroup_size: 64\nsymmetric: true\n");
    assert_int_equal(type_for(p, 96, &rule), LB_TYPE_INT3_G32);
    assert_int_equal(type_for(p, 172, &rule), LB_TYPE_F16);
    lb_profile_free(p);
    // The chain below the 32-group: one scale per row, where a row is a
    // multiple of 32 (no shipped type lacks the 32-group, so straight from the table).
    assert_int_equal(lb_grid_fallback(LB_TYPE_INT4_G128, 96), LB_TYPE_Q4_0);
    assert_int_equal(lb_grid_fallback(LB_TYPE_INT4Z_C, 96), LB_TYPE_INT4Z_C);
    assert_int_equal(lb_grid_fallback(LB_TYPE_INT4Z_C, 172), LB_TYPE_COUNT);
    assert_int_equal(lb_grid_fallback(LB_TYPE_Q4_0, 64), LB_TYPE_COUNT); // ggml types: llama.cpp's rules

    // A profile's explicit fallback still wins.
    p = from_text("name: x\nmethod: rtn\nbits: 4\ngranularity: group\ngroup_size: 128\nfallback: q8_0\n");
    assert_int_equal(type_for(p, 64, &rule), LB_TYPE_Q8_0);
    assert_int_equal(rule, LB_RULE_FALLBACK);
    assert_int_equal(type_for(p, 172, &rule), LB_TYPE_F16);
    lb_profile_free(p);
    // ggml types keep llama.cpp's chain: Q4_0 has none (F16), NF4 → Q5_0 (its profile's), Q4_K → Q5_0.
    p = from_text("name: x\nmethod: q4_0\n");
    assert_int_equal(type_for(p, 48, &rule), LB_TYPE_F16);
    lb_profile_free(p);
    p = from_text("name: x\nmethod: q4_k\npure: true\n");
    assert_int_equal(type_for(p, 64, &rule), LB_TYPE_Q5_0);
    assert_int_equal(type_for(p, 96, &rule), LB_TYPE_Q5_0);
    lb_profile_free(p);
}

// ----------------------------------------------------------------------------
// stories260K

// Calibration text, unlike the evaluation text below.
static const char *calib_text =
    "Once upon a time, there was a little girl named Mia. Mia had a red kite. Every morning she ran to the hill "
    "behind her house and let the kite fly high. One windy day the string slipped from her hand. The kite went up "
    "and up, over the trees. Mia was sad. Her brother Sam said, \"Do not cry. We will find it.\" They walked to "
    "the pond and looked in the reeds. At last they saw the kite in an old apple tree. Sam climbed up and got it "
    "down. Mia hugged him and said, \"Thank you, Sam!\" They flew the kite together until the sun went down.\n"
    "Tim had a small green frog. The frog liked to jump on the bed. One day the frog jumped out of the window "
    "and into the garden. Tim looked under the big leaves and behind the flower pots. He heard a little sound "
    "by the water can. It was the frog! Tim laughed and took his frog back inside.\n"
    "Lucy and her dog Spot went to the beach. Spot ran into the waves and barked at a crab. The crab pinched "
    "his nose, and Spot ran back to Lucy. Lucy laughed and gave him a hug. They built a big sand castle with a "
    "flag on top. When the sun was low, they walked home, tired and happy.\n";

enum { CALIB_CTX = 128, CALIB_SAMPLES = 8, EVAL_CTX = 128 };

static void quantize(const lb_profile *p, const char *out, lb_quantize_stats *st) {
    char calib[4096];
    snprintf(calib, sizeof calib, "%s", tmp_path("calib.txt"));
    FILE *fp = fopen(calib, "w");
    assert_non_null(fp);
    for (int i = 0; i < 4; i++) fputs(calib_text, fp);
    fclose(fp);
    lb_quantize_params qp = {.profile = p, .n_threads = 2, .calib_path = calib, .calib_samples = CALIB_SAMPLES,
                             .calib_ctx = CALIB_CTX};
    lb_error err = {0};
    if (lb_quantize_file(model_path("stories260K.gguf"), tmp_path(out), &qp, st, &err) != LB_OK)
        fail_msg("%s", err.msg);
}

static long file_size(const char *path) {
    struct stat s;
    assert_int_equal(stat(path, &s), 0);
    return (long)s.st_size;
}

// GPTQ with act_order and static groups fits every group's scale and zero on
// the unquantized weights before the loop: in the file, each group of 64 of
// tensor `name` must carry exactly round-to-nearest's parameters of the source
// weights (gptq_rtn at 4 bits, asymmetric, groups of 64).
static void check_static_groups(const char *name) {
    struct gguf_file *src = NULL, *out = NULL;
    lb_error err = {0};
    if (gguf_open(&src, model_path("stories260K.gguf"), &err) || gguf_open(&out, tmp_path("gptq.gguf"), &err))
        fail_msg("%s", err.msg);
    const struct gguf_tensor *a = gguf_find_tensor(src, name), *b = gguf_find_tensor(out, name);
    assert_non_null(a), assert_non_null(b);
    assert_int_equal(a->type, LB_TYPE_F32);
    assert_int_equal(b->type, LB_TYPE_INT4Z_G64);
    const int64_t cols = a->ne[0], rows = a->ne[1];
    const struct lb_grid g = {4, 64, false};
    struct gptq_codes rtn;
    if (gptq_codes_alloc(&rtn, rows, cols, g, &err)) fail_msg("%s", err.msg);
    gptq_rtn(g, GPTQ_SCALE_MINMAX, rows, cols, (const float *)a->data, &rtn);
    const block_int4z_g64 *blk = (const block_int4z_g64 *)b->data;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < rtn.n_groups; k++) {
            const block_int4z_g64 *x = &blk[r * rtn.n_groups + k];
            const float d = lb_fp16_to_f32(x->d), z = x->z;
            if (d != rtn.scale[r * rtn.n_groups + k] || z != rtn.zero[r * rtn.n_groups + k])
                fail_msg("%s row %lld group %lld: scale %g zero %g (static groups: %g, %g)", name, (long long)r,
                         (long long)k, (double)d, (double)z, (double)rtn.scale[r * rtn.n_groups + k],
                         (double)rtn.zero[r * rtn.n_groups + k]);
        }
    gptq_codes_free(&rtn);
    gguf_close(src);
    gguf_close(out);
}

static void test_gptq_file_has_no_f16_matrices(void **state) {
    (void)state;
    REQUIRE_SHARED();
    lb_profile *p = shipped("gptq-4bit-g128");
    lb_quantize_stats st;
    quantize(p, "gptq.gguf", &st);
    int gptq = 0;
    for (int i = 0; i < st.n_tensors; i++) {
        const lb_quantize_tensor *t = &st.tensors[i];
        if (t->n_dims < 2) continue;
        // F16 only where no 4-bit type holds the rows: not a multiple of 32.
        if (t->type_out == LB_TYPE_F16 && t->ne[0] % 32 == 0)
            fail_msg("%s (rows of %lld) written as F16", t->name, (long long)t->ne[0]);
        if (t->ne[0] % 32 != 0) assert_int_equal(t->type_out, LB_TYPE_F16);
        // Every layer matrix on a 4-bit grid is GPTQ's, fallback or not.
        const bool layer = !strncmp(t->name, "blk.", 4), on_grid = t->ne[0] % 32 == 0;
        if (layer && on_grid) {
            if (!t->method || strcmp(t->method, "gptq")) fail_msg("%s: not made by GPTQ (rule %s)", t->name, t->rule);
            assert_int_equal(t->type_out, LB_TYPE_INT4Z_G64);
            assert_true(t->fallback);
            assert_true(t->out_error >= 0 && t->out_error <= t->out_error_rtn);
            gptq++;
        }
    }
    assert_int_equal(gptq, 5 * 6); // q, k, v, o, gate, up of 5 layers
    lb_quantize_stats_free(&st);
    check_static_groups("blk.0.attn_q.weight");
    check_static_groups("blk.3.ffn_up.weight");
    lb_profile_free(p);

    lb_profile *q8 = shipped("q8_0");
    quantize(q8, "q8.gguf", &st);
    lb_quantize_stats_free(&st);
    lb_profile_free(q8);
    const long s_gptq = file_size(tmp_path("gptq.gguf")), s_q8 = file_size(tmp_path("q8.gguf"));
    print_message("gptq-4bit-g128 %ld bytes, q8_0 %ld bytes\n", s_gptq, s_q8);
    assert_true(s_gptq < s_q8);
}

// The text of tests/test_perplexity.sh (between its heredoc markers).
static char *eval_text(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/test_perplexity.sh", srcdir());
    FILE *fp = fopen(path, "rb");
    if (!fp) fail_msg("%s: cannot open", path);
    static char buf[1 << 16];
    const size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    char *a = strstr(buf, "<<'EOF'\n"), *b = a ? strstr(a, "\nEOF\n") : NULL;
    if (!a || !b) fail_msg("%s: no <<'EOF' ... EOF text", path);
    *b = 0;
    return a + 8;
}

// Mean KL(source ‖ model) over the second half of each EVAL_CTX chunk of
// tokens, as `lowbit perplexity --kld-base` scores it.
static double mean_kld(const char *path, const int32_t *tokens, int n_tok, const float *base_lp, int n_vocab,
                       float *save_lp) {
    lb_model *m = open_model(path, NULL);
    lb_context *c = open_context(m, EVAL_CTX, LB_TYPE_F32, 2);
    const int first = EVAL_CTX / 2, n_scored = EVAL_CTX - 1 - first, n_chunk = n_tok / EVAL_CTX;
    float *logits = malloc(sizeof(float) * (size_t)n_scored * n_vocab), *lp = malloc(sizeof(float) * n_vocab);
    int32_t pos[EVAL_CTX];
    bool want[EVAL_CTX];
    for (int j = 0; j < EVAL_CTX; j++) pos[j] = j, want[j] = j >= first && j < EVAL_CTX - 1;
    lb_error err = {0};
    double sum = 0;
    int count = 0;
    const lb_hparams *hp = lb_model_hparams(m);
    for (int k = 0; k < n_chunk; k++) {
        int32_t batch[EVAL_CTX];
        memcpy(batch, tokens + k * EVAL_CTX, sizeof batch);
        if (hp->add_bos) batch[0] = hp->bos_id;
        if (lb_kv_cache_truncate(c, 0, &err) != LB_OK ||
            lb_forward(c, batch, pos, EVAL_CTX, want, logits, &err) != LB_OK)
            fail_msg("%s", err.msg);
        for (int j = 0; j < n_scored; j++, count++) {
            lb_log_softmax(logits + (size_t)j * n_vocab, n_vocab, lp);
            if (save_lp) memcpy(save_lp + (size_t)count * n_vocab, lp, sizeof(float) * n_vocab);
            else sum += lb_kl_divergence(base_lp + (size_t)count * n_vocab, lp, n_vocab);
        }
    }
    free(logits), free(lp);
    lb_context_free(c);
    lb_model_free(m);
    return count ? sum / count : -1;
}

// Both files must hold the same types, tensor by tensor: the same grid.
static void same_types(const lb_quantize_stats *a, const lb_quantize_stats *b) {
    assert_int_equal(a->n_tensors, b->n_tensors);
    for (int i = 0; i < a->n_tensors; i++) {
        assert_string_equal(a->tensors[i].name, b->tensors[i].name);
        if (a->tensors[i].type_out != b->tensors[i].type_out)
            fail_msg("%s: %s and %s", a->tensors[i].name, lb_type_name(a->tensors[i].type_out),
                     lb_type_name(b->tensors[i].type_out));
    }
}

static void test_calibrated_beat_rtn_at_fallback_grid(void **state) {
    (void)state;
    REQUIRE_SHARED();
    lb_model *src = open_model(model_path("stories260K.gguf"), NULL);
    const int n_vocab = lb_model_hparams(src)->n_vocab;
    int32_t *tokens = malloc(sizeof(int32_t) * 4096);
    const int n_tok = lb_tokenize(src, eval_text(), -1, true, false, tokens, 4096);
    lb_model_free(src);
    assert_true(n_tok >= 8 * EVAL_CTX);
    const int n_scored = (n_tok / EVAL_CTX) * (EVAL_CTX - 1 - EVAL_CTX / 2);
    float *base = malloc(sizeof(float) * (size_t)n_scored * n_vocab);
    mean_kld(model_path("stories260K.gguf"), tokens, n_tok, NULL, n_vocab, base);

    // Each calibrated profile against round-to-nearest on the same grid and
    // head: int4-zp-g128 for GPTQ; awq-4bit-g128's Q8_0 head overrides for AWQ.
    static const struct {
        const char *calibrated, *rtn_yaml;
    } pairs[] = {
        {"gptq-4bit-g128", NULL},
        {"awq-4bit-g128", "name: rtn-awq-twin\nmethod: rtn\nbits: 4\ngranularity: group\ngroup_size: 128\n"
                          "symmetric: false\noverrides:\n  - pattern: output.weight\n    type: q8_0\n"
                          "  - pattern: token_embd.weight\n    type: q8_0\n"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        lb_profile *cal = shipped(pairs[i].calibrated);
        lb_profile *rtn = pairs[i].rtn_yaml ? from_text(pairs[i].rtn_yaml) : shipped("int4-zp-g128");
        lb_quantize_stats sc, sr;
        quantize(cal, "cal.gguf", &sc);
        quantize(rtn, "rtn.gguf", &sr);
        same_types(&sc, &sr);
        int at_fallback = 0;
        for (int k = 0; k < sc.n_tensors; k++) at_fallback += sc.tensors[k].type_out == LB_TYPE_INT4Z_G64;
        assert_true(at_fallback >= 5 * 6);
        lb_quantize_stats_free(&sc);
        lb_quantize_stats_free(&sr);
        const double k_cal = mean_kld(tmp_path("cal.gguf"), tokens, n_tok, base, n_vocab, NULL);
        const double k_rtn = mean_kld(tmp_path("rtn.gguf"), tokens, n_tok, base, n_vocab, NULL);
        print_message("%s: mean KLD %.5f, round-to-nearest at the same grid %.5f (%d tokens scored)\n",
                      pairs[i].calibrated, k_cal, k_rtn, n_scored);
        assert_true(k_cal > 0 && k_rtn > 0);
        assert_true(k_cal < k_rtn);
        lb_profile_free(cal);
        lb_profile_free(rtn);
    }
    free(base);
    free(tokens);
}

int main(void) {
    if (!lbtest_init("fallback")) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types_for_row_lengths),
        cmocka_unit_test(test_gptq_file_has_no_f16_matrices),
        cmocka_unit_test(test_calibrated_beat_rtn_at_fallback_grid),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    lbtest_cleanup();
    return r;
}
