/*
 * test_model.c — opening models and running the forward pass, through
 * lowbit.h only. Uses the real stories260K model in ../shared/models (skipped
 * when absent) and files derived from it in a temp directory.
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

// Greedy continuation of `ids[0..n)` for `steps` tokens, appended to ids.
static void greedy(lb_context *c, int32_t *ids, int n, int steps) {
    const lb_model *m = lb_context_model(c);
    const int V = lb_model_hparams(m)->n_vocab;
    float *logits = malloc(sizeof(float) * V);
    lb_error err = {0};
    assert_int_equal(lb_decode(c, ids, n, logits, &err), LB_OK);
    for (int i = 0; i < steps; i++) {
        ids[n + i] = lb_argmax(logits, V);
        assert_int_equal(lb_decode(c, &ids[n + i], 1, logits, &err), LB_OK);
    }
    free(logits);
}

static void decode_text(const lb_model *m, const int32_t *ids, int n, char *out, size_t cap) {
    size_t len = 0;
    out[0] = 0;
    for (int i = 1; i < n; i++) {
        char piece[64];
        int k = lb_token_decode(m, ids[i - 1], ids[i], piece, sizeof piece);
        if (k > 0 && len + (size_t)k < cap) {
            memcpy(out + len, piece, (size_t)k);
            len += (size_t)k;
            out[len] = 0;
        }
    }
}

// --- the real model produces llama2.c's reference text ---------------------------

static const char *REFERENCE = "Once upon a time, there was a little girl named Lily. She loved to play outside in "
                               "the park. One day, she saw a big, red ball. She wanted to play with it, but it was "
                               "too high.";

static void test_gguf_greedy_matches_llama2c(void **state) {
    REQUIRE_SHARED();
    lb_model *m = open_model(model_path("stories260K.gguf"), NULL);
    const lb_hparams *hp = lb_model_hparams(m);
    assert_string_equal(hp->arch, "llama");
    assert_int_equal(hp->n_embd, 64);
    assert_int_equal(hp->n_head, 8);
    assert_int_equal(hp->n_head_kv, 4); // grouped-query attention
    assert_int_equal(hp->n_vocab, 512);
    assert_int_equal(hp->bos_id, 1);
    lb_context *c = open_context(m, 256, LB_TYPE_F32, 1);
    int32_t ids[128] = {hp->bos_id};
    greedy(c, ids, 1, 48);
    char text[1024];
    decode_text(m, ids, 49, text, sizeof text);
    assert_int_equal(strncmp(text, REFERENCE, strlen(text) < strlen(REFERENCE) ? strlen(text) : strlen(REFERENCE)), 0);
    assert_true(strlen(text) > 100);
    lb_context_free(c);
    lb_model_free(m);
}

static void test_llama2c_bin_matches_gguf(void **state) {
    REQUIRE_SHARED();
    lb_model *g = open_model(model_path("stories260K.gguf"), NULL);
    lb_model *b = open_model(model_path("stories260K.bin"), model_path("tok512.bin"));
    assert_string_equal(lb_model_hparams(b)->format, "llama2.c");
    assert_true(lb_model_hparams(b)->tied_output);
    lb_context *cg = open_context(g, 128, LB_TYPE_F32, 2), *cb = open_context(b, 128, LB_TYPE_F32, 2);
    int32_t a[80] = {1}, z[80] = {1};
    greedy(cg, a, 1, 60);
    greedy(cb, z, 1, 60);
    assert_memory_equal(a, z, sizeof a);
    lb_context_free(cg);
    lb_context_free(cb);
    lb_model_free(g);
    lb_model_free(b);
}

// Write `path` = stories260K.bin with a separate classifier: header vocab
// negated, a copy of the embeddings appended as wcls.
static void write_separate_classifier(const char *path) {
    FILE *in = fopen(model_path("stories260K.bin"), "rb");
    assert_non_null(in);
    fseek(in, 0, SEEK_END);
    long size = ftell(in);
    rewind(in);
    char *buf = malloc((size_t)size);
    assert_int_equal(fread(buf, 1, (size_t)size, in), (size_t)size);
    fclose(in);
    int32_t h[7];
    memcpy(h, buf, sizeof h);
    const size_t emb_bytes = (size_t)h[5] * (size_t)h[0] * sizeof(float);
    h[5] = -h[5];
    memcpy(buf, h, sizeof h);
    FILE *out = fopen(path, "wb");
    assert_non_null(out);
    fwrite(buf, 1, (size_t)size, out);
    fwrite(buf + 28, 1, emb_bytes, out); // wcls = token embeddings
    fclose(out);
    free(buf);
}

static void test_llama2c_separate_classifier(void **state) {
    REQUIRE_SHARED();
    char path[512];
    snprintf(path, sizeof path, "%s", tmp_path("separate.bin"));
    write_separate_classifier(path);
    lb_model *s = open_model(path, model_path("tok512.bin"));
    lb_model *b = open_model(model_path("stories260K.bin"), model_path("tok512.bin"));
    assert_false(lb_model_hparams(s)->tied_output);
    lb_context *cs = open_context(s, 64, LB_TYPE_F32, 1), *cb = open_context(b, 64, LB_TYPE_F32, 1);
    int32_t a[40] = {1}, z[40] = {1};
    greedy(cs, a, 1, 30);
    greedy(cb, z, 1, 30);
    assert_memory_equal(a, z, sizeof a);
    lb_context_free(cs);
    lb_context_free(cb);
    lb_model_free(s);
    lb_model_free(b);
    unlink(path);
}

// --- the forward call -------------------------------------------------------------

static double max_rel_diff(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return num / den;
}

// A batch gives the same logits at every position as one token at a time.
static void test_batch_equals_sequential(void **state) {
    REQUIRE_SHARED();
    lb_model *m = open_model(model_path("stories260K.gguf"), NULL);
    const int V = 512, n = 20;
    int32_t ids[20];
    int got = lb_tokenize(m, "Once upon a time, there was a dog named Max who loved", -1, true, false, ids, 20);
    assert_true(got > 10 && got <= n);
    float *batch = malloc(sizeof(float) * V * got), *seq = malloc(sizeof(float) * V * got);
    bool want[20];
    for (int i = 0; i < got; i++) want[i] = true;
    int32_t pos[20];
    for (int i = 0; i < got; i++) pos[i] = i;
    lb_error err = {0};
    lb_context *c1 = open_context(m, 64, LB_TYPE_F32, 2), *c2 = open_context(m, 64, LB_TYPE_F32, 1);
    assert_int_equal(lb_forward(c1, ids, pos, got, want, batch, &err), LB_OK);
    for (int i = 0; i < got; i++) assert_int_equal(lb_decode(c2, &ids[i], 1, seq + (size_t)i * V, &err), LB_OK);
    assert_true(max_rel_diff(batch, seq, (size_t)V * got) < 1e-5);
    assert_int_equal(lb_context_n_past(c1), got);
    lb_context_free(c1);
    lb_context_free(c2);
    free(batch);
    free(seq);
    lb_model_free(m);
}

// Below 16 tokens a batch takes the same arithmetic path as single tokens, so
// verifying drafted tokens gives exactly the logits of decoding them in turn.
static void test_small_batch_bit_identical(void **state) {
    REQUIRE_SHARED();
    lb_model *m = open_model(model_path("stories260K.gguf"), NULL);
    const int V = 512, n = 9;
    int32_t ids[9] = {1, 403, 407, 261, 378, 432, 383, 286, 261};
    bool want[9];
    for (int i = 0; i < n; i++) want[i] = true;
    float *batch = malloc(sizeof(float) * V * n), *seq = malloc(sizeof(float) * V * n);
    lb_error err = {0};
    lb_context *c1 = open_context(m, 64, LB_TYPE_F16, 2), *c2 = open_context(m, 64, LB_TYPE_F16, 2);
    assert_int_equal(lb_forward(c1, ids, NULL, n, want, batch, &err), LB_OK);
    for (int i = 0; i < n; i++) assert_int_equal(lb_decode(c2, &ids[i], 1, seq + (size_t)i * V, &err), LB_OK);
    assert_memory_equal(batch, seq, sizeof(float) * V * n);
    lb_context_free(c1);
    lb_context_free(c2);
    free(batch);
    free(seq);
    lb_model_free(m);
}

// Rolling the cache back and replaying gives the same logits as the first time.
static void test_kv_cache_rollback(void **state) {
    REQUIRE_SHARED();
    lb_model *m = open_model(model_path("stories260K.gguf"), NULL);
    lb_context *c = open_context(m, 64, LB_TYPE_F16, 1);
    int32_t ids[8] = {1, 403, 407, 261, 378, 432, 383, 286};
    float first[512], again[512], other[512];
    lb_error err = {0};
    assert_int_equal(lb_decode(c, ids, 5, first, &err), LB_OK);
    assert_int_equal(lb_decode(c, ids + 5, 3, first, &err), LB_OK);
    assert_int_equal(lb_kv_cache_truncate(c, 5, &err), LB_OK);
    assert_int_equal(lb_context_n_past(c), 5);
    int32_t wrong[3] = {300, 301, 302};
    assert_int_equal(lb_decode(c, wrong, 3, other, &err), LB_OK);
    assert_true(max_rel_diff(other, first, 512) > 1e-3); // a different continuation
    assert_int_equal(lb_kv_cache_truncate(c, 5, &err), LB_OK);
    assert_int_equal(lb_decode(c, ids + 5, 3, again, &err), LB_OK);
    assert_memory_equal(first, again, sizeof first);
    // Truncating forward is an error.
    assert_int_equal(lb_kv_cache_truncate(c, 9, &err), LB_ERR_ARG);
    assert_non_null(strstr(err.msg, "cache holds 8"));
    assert_int_equal(lb_kv_cache_bytes_used(c) * 64, lb_kv_cache_bytes_allocated(c) * 8);
    lb_context_free(c);
    lb_model_free(m);
}

static void test_forward_rejects_bad_batches(void **state) {
    REQUIRE_SHARED();
    lb_model *m = open_model(model_path("stories260K.gguf"), NULL);
    lb_context *c = open_context(m, 4, LB_TYPE_F32, 1);
    float logits[512];
    lb_error err = {0};
    int32_t bad = 512;
    assert_int_equal(lb_decode(c, &bad, 1, logits, &err), LB_ERR_ARG);
    assert_non_null(strstr(err.msg, "outside the vocabulary"));
    int32_t five[5] = {1, 2, 3, 4, 5};
    assert_int_equal(lb_decode(c, five, 5, logits, &err), LB_ERR_ARG);
    assert_non_null(strstr(err.msg, "do not fit"));
    int32_t pos = 3, tok = 1;
    assert_int_equal(lb_forward(c, &tok, &pos, 1, NULL, logits, &err), LB_ERR_ARG);
    assert_int_equal(lb_context_n_past(c), 0); // nothing was evaluated
    lb_context_free(c);
    lb_model_free(m);
}

// Two contexts on one model, and two models in one process, do not interfere.
static void test_contexts_are_independent(void **state) {
    REQUIRE_SHARED();
    lb_model *m = open_model(model_path("stories260K.gguf"), NULL);
    lb_model *d = open_model(model_path("stories260K.bin"), model_path("tok512.bin"));
    lb_context *a = open_context(m, 64, LB_TYPE_F32, 1), *b = open_context(m, 64, LB_TYPE_F32, 1);
    lb_context *x = open_context(d, 64, LB_TYPE_F32, 1);
    int32_t s1[30] = {1}, s2[30] = {1}, s3[30] = {1};
    greedy(a, s1, 1, 10);
    greedy(x, s3, 1, 10);
    greedy(b, s2, 1, 20);
    greedy(a, s1, 11, 9);
    assert_memory_equal(s1, s2, sizeof(int32_t) * 20);
    assert_memory_equal(s1, s3, sizeof(int32_t) * 11);
    lb_context_free(a);
    lb_context_free(b);
    lb_context_free(x);
    lb_model_free(m);
    lb_model_free(d);
}

// --- live re-quantization ------------------------------------------------------------

static bool count_progress(float f, void *user) {
    int *calls = user;
    (*calls)++;
    return f >= 0 && f <= 1;
}

static bool cancel_at_half(float f, void *user) { return f < 0.5f; }

static void test_requantize(void **state) {
    REQUIRE_SHARED();
    lb_model *m = open_model(model_path("stories260K.gguf"), NULL);
    const size_t f32_bytes = lb_model_weight_bytes(m);
    assert_int_equal(lb_model_weight_type(m), LB_TYPE_F32);
    lb_error err = {0};
    int calls = 0;
    assert_int_equal(lb_model_requantize(m, LB_TYPE_Q8_0, count_progress, &calls, &err), LB_OK);
    assert_true(calls > 10);
    assert_int_equal(lb_model_weight_type(m), LB_TYPE_Q8_0);
    assert_true(lb_model_weight_bytes(m) < f32_bytes / 2); // ffn_down rows (172) do not fit 32-blocks: they stay F32
    // Q8_0 greedy text stays on the reference for its first sentence.
    lb_context *c = open_context(m, 64, LB_TYPE_F32, 1);
    int32_t ids[40] = {1};
    greedy(c, ids, 1, 12);
    char text[512];
    decode_text(m, ids, 13, text, sizeof text);
    assert_int_equal(strncmp(text, "Once upon a time, there was a little girl", 41), 0);
    lb_context_free(c);
    // A cancelled switch leaves the model as it was.
    assert_int_equal(lb_model_requantize(m, LB_TYPE_F16, cancel_at_half, NULL, &err), LB_ERR_CANCELLED);
    assert_int_equal(lb_model_weight_type(m), LB_TYPE_Q8_0);
    // Back to the source precision: bytes return to where they started.
    assert_int_equal(lb_model_requantize(m, LB_TYPE_F32, NULL, NULL, &err), LB_OK);
    assert_int_equal(lb_model_weight_bytes(m), f32_bytes);
    lb_model_free(m);
}

// --- bad files ---------------------------------------------------------------------------

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(data, 1, n, f);
    fclose(f);
}

static void expect_open_error(const char *path, const char *tokenizer, lb_status want, const char *needle) {
    lb_error err = {0};
    lb_model *m = (lb_model *)1;
    lb_model_params p = {.tokenizer_path = tokenizer};
    lb_status st = lb_model_open(&m, path, &p, &err);
    if (st != want || !strstr(err.msg, needle)) print_error("status %d, message: %s\n", st, err.msg);
    assert_int_equal(st, want);
    assert_null(m);
    assert_non_null(strstr(err.msg, needle));
    assert_null(strchr(err.msg, '\n'));
}

static void test_bad_files(void **state) {
    char path[512];
    snprintf(path, sizeof path, "%s", tmp_path("missing.gguf"));
    expect_open_error(path, NULL, LB_ERR_IO, "missing.gguf");

    snprintf(path, sizeof path, "%s", tmp_path("short.bin"));
    write_bytes(path, "abc", 3);
    expect_open_error(path, NULL, LB_ERR_FORMAT, "short.bin");

    int32_t h[7] = {64, 172, 5, 8, 3, 512, 512}; // 8 heads not a multiple of 3 kv heads
    snprintf(path, sizeof path, "%s", tmp_path("heads.bin"));
    write_bytes(path, h, sizeof h);
    expect_open_error(path, NULL, LB_ERR_FORMAT, "kv_heads 3");

    int32_t ok[7] = {64, 172, 5, 8, 4, 512, 512};
    write_bytes(path, ok, sizeof ok); // header only: far too short for its shapes
    expect_open_error(path, NULL, LB_ERR_FORMAT, "expected");

    if (!have_shared()) return;
    // A truncated GGUF names the file.
    FILE *in = fopen(model_path("stories260K.gguf"), "rb");
    char buf[20000];
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    snprintf(path, sizeof path, "%s", tmp_path("truncated.gguf"));
    write_bytes(path, buf, n);
    expect_open_error(path, NULL, LB_ERR_FORMAT, "truncated.gguf");
    // A llama2.c model whose tokenizer has the wrong size.
    expect_open_error(model_path("stories260K.bin"), model_path("tokenizer.bin"), LB_ERR_FORMAT,
                      "not this model's tokenizer");
}

int main(void) {
    if (!lbtest_init("test-model")) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gguf_greedy_matches_llama2c),
        cmocka_unit_test(test_llama2c_bin_matches_gguf),
        cmocka_unit_test(test_llama2c_separate_classifier),
        cmocka_unit_test(test_batch_equals_sequential),
        cmocka_unit_test(test_small_batch_bit_identical),
        cmocka_unit_test(test_kv_cache_rollback),
        cmocka_unit_test(test_forward_rejects_bad_batches),
        cmocka_unit_test(test_contexts_are_independent),
        cmocka_unit_test(test_requantize),
        cmocka_unit_test(test_bad_files),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    lbtest_cleanup();
    return failed;
}
