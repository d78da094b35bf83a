/*
 * test_llm_int8.c — LLM.int8(): the mixed-precision product, the outlier
 * search on calibration activations, and a quantized file end to end.
 *
 *   - y = W·x with planted outlier features, for each ISA (scalar, avx2):
 *     within 1 % of the float product, ten times closer than int8 without
 *     the decomposition, and the two ISAs agree;
 *   - the round trip decode + outliers = W within int8's step per row;
 *   - calibration on stories260K finds exactly the input columns made
 *     large by scaling layer 0's attn_norm there, and nothing in a layer
 *     without such columns;
 *   - `llm-int8` on stories260K writes the outlier tensors, loads back with
 *     them attached, and decodes like the float model (scalar and avx2).
 * The model tests are skipped when ../shared/models has no stories260K.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lowbit.h"
#include "lbtest.h"

#include <math.h>
#include <string.h>

#include "blocks.h"
#include "fp16.h"
#include "imatrix.h"
#include "llm_int8.h"
#include "model.h"
#include "threadpool.h"
#include "types.h"

static const char *const STORY =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. "
    "One day, she saw a big red ball under a tree. She ran to the ball and picked it up. It was shiny and new. "
    "Lily's mom said, \"Lily, you can play with the ball, but you must share it with your friends.\" Lily nodded "
    "and smiled. She threw the ball to her friend Tom. Tom caught the ball and laughed. They played all day until "
    "the sun went down. One day, a little boy named Tim went to the store with his dad. ";

static uint64_t rng_state = 12345;
static double uniform(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) * 0x1.0p-53;
}
static float gaussian(void) { return (float)(sqrt(-2.0 * log(uniform() + 1e-300)) * cos(2 * M_PI * uniform())); }

// ----------------------------------------------------------------------------

enum { ROWS = 96, COLS = 256, TOKENS = 5, K = 4 };
static const int32_t planted[K] = {3, 77, 128, 201};

// ‖y − y_ref‖ / ‖y_ref‖ of an LLM_INT8 weight's product on the chosen ISA.
static double product_error(const struct lb_weight *w, const float *x, const double *ref) {
    struct lb_threadpool *pool = threadpool_new(2);
    struct lb_matmul_scratch s = {0};
    float y[TOKENS * ROWS];
    lb_error err = {0};
    assert_int_equal(matmul(pool, &s, w, x, y, TOKENS, &err), LB_OK);
    double e2 = 0, n2 = 0;
    for (int i = 0; i < TOKENS * ROWS; i++) {
        e2 += (y[i] - ref[i]) * (y[i] - ref[i]);
        n2 += ref[i] * ref[i];
    }
    matmul_scratch_free(&s);
    threadpool_free(pool);
    return sqrt(e2 / n2);
}

static void test_product_with_outliers(void **state) {
    (void)state;
    static float W[ROWS * COLS], x[TOKENS * COLS];
    static double ref[TOKENS * ROWS];
    for (int i = 0; i < ROWS * COLS; i++) W[i] = 0.05f * gaussian();
    for (int i = 0; i < TOKENS * COLS; i++) x[i] = gaussian();
    for (int t = 0; t < TOKENS; t++)
        for (int k = 0; k < K; k++) x[t * COLS + planted[k]] = (k % 2 ? -1.0f : 1.0f) * (40.0f + 10.0f * t);
    for (int t = 0; t < TOKENS; t++)
        for (int r = 0; r < ROWS; r++) {
            double s = 0;
            for (int j = 0; j < COLS; j++) s += (double)W[r * COLS + j] * x[t * COLS + j];
            ref[t * ROWS + r] = s;
        }
    const size_t rb = lb_type_row_bytes(LB_TYPE_LLM_INT8, COLS);
    static uint8_t q[ROWS * 34 * (COLS / 32)], q_plain[ROWS * 34 * (COLS / 32)];
    static uint16_t ow[ROWS * K];
    const double rel = llm_int8_quantize(W, ROWS, COLS, planted, K, q, ow);
    const double rel_plain = llm_int8_quantize(W, ROWS, COLS, NULL, 0, q_plain, NULL);
    print_message("weights: rel error %.3g with outliers in f16, %.3g without\n", rel, rel_plain);
    assert_true(rel > 0 && rel <= rel_plain);

    // Round trip: decode + outliers within half a step of each row's scale.
    float row[COLS];
    for (int r = 0; r < ROWS; r++) {
        const struct lb_weight w = {.name = "w", .type = LB_TYPE_LLM_INT8, .rows = ROWS, .cols = COLS, .data = q,
                                    .n_outliers = K, .outlier_cols = planted, .outlier_w = ow};
        lb_type_to_float(LB_TYPE_LLM_INT8, q + r * rb, row, COLS);
        llm_int8_add_outliers(&w, r, row);
        const float d = lb_fp16_to_f32(((const block_llm_int8 *)(q + r * rb))->d);
        for (int j = 0; j < COLS; j++) {
            bool outlier = false;
            for (int k = 0; k < K; k++) outlier |= j == planted[k];
            const float tol = outlier ? fabsf(W[r * COLS + j]) * 1e-3f + 1e-7f : 0.5f * d * 1.0001f;
            assert_true(fabsf(row[j] - W[r * COLS + j]) <= tol);
        }
    }

    const struct lb_weight mixed = {.name = "mixed", .type = LB_TYPE_LLM_INT8, .rows = ROWS, .cols = COLS, .data = q,
                                    .n_outliers = K, .outlier_cols = planted, .outlier_w = ow};
    const struct lb_weight plain = {.name = "plain", .type = LB_TYPE_LLM_INT8, .rows = ROWS, .cols = COLS,
                                    .data = q_plain};
    const char *isas[] = {"scalar", "avx2", "avx512", "avx512vnni", "avx512-emulated", "avx512vnni-emulated"};
    enum { N_ISAS = sizeof isas / sizeof isas[0] };
    double e[N_ISAS];
    for (int i = 0; i < N_ISAS; i++) {
        if (!lb_cpu_select(isas[i])) {
            print_message("%s: not on this CPU\n", isas[i]);
            e[i] = e[0];
            continue;
        }
        e[i] = product_error(&mixed, x, ref);
        const double e_plain = product_error(&plain, x, ref);
        print_message("%-6s y = W·x: rel error %.3g with the decomposition, %.3g int8 only\n", isas[i], e[i], e_plain);
        assert_true(e[i] < 0.01);
        assert_true(e[i] * 10 < e_plain);
    }
    for (int i = 1; i < N_ISAS; i++) assert_true(fabs(e[0] - e[i]) < 1e-4);
    lb_cpu_select("auto");
}

// ----------------------------------------------------------------------------

static void write_story(const char *path, int copies) {
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < copies; i++) fputs(STORY, fp);
    fclose(fp);
}

static void test_calibration_finds_planted_columns(void **state) {
    (void)state;
    REQUIRE_SHARED();
    lb_model *m = open_model(model_path("stories260K.gguf"), NULL);
    write_story(tmp_path("calib.txt"), 3);
    const struct lb_calib_params cp = {.text_path = tmp_path("calib.txt"), .n_ctx = 64, .n_threads = 1};
    lb_error err = {0};
    int32_t found[512];

    struct imatrix im;
    assert_int_equal(imatrix_collect(m, &cp, NULL, NULL, &im, &err), LB_OK);
    const struct imatrix_entry *e = imatrix_find(&im, "blk.0.attn_q.weight");
    assert_non_null(e);
    assert_int_equal(llm_int8_outliers(e->absmax, e->cols, 6.0f, found), 0); // none before planting
    imatrix_free(&im);

    // Scale layer 0's attn_norm in three columns: q, k and v of layer 0 see them large.
    static const int32_t cols[3] = {5, 17, 40};
    for (int k = 0; k < 3; k++) m->layers[0].attn_norm[cols[k]] *= 40.0f;
    assert_int_equal(imatrix_collect(m, &cp, NULL, NULL, &im, &err), LB_OK);
    for (int w = 0; w < 3; w++) {
        static const char *names[3] = {"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight"};
        e = imatrix_find(&im, names[w]);
        assert_non_null(e);
        const int n = llm_int8_outliers(e->absmax, e->cols, 6.0f, found);
        print_message("%s: %d outlier columns:", names[w], n);
        for (int k = 0; k < n; k++) print_message(" %d (max |x| %.1f)", found[k], e->absmax[found[k]]);
        print_message("\n");
        assert_int_equal(n, 3);
        assert_memory_equal(found, cols, sizeof cols);
        assert_int_equal(e->count, im.chunk_count * 64);
    }
    // The FFN of layer 0 reads another norm: nothing planted there.
    e = imatrix_find(&im, "blk.0.ffn_gate.weight");
    assert_non_null(e);
    int n_ffn = llm_int8_outliers(e->absmax, e->cols, 6.0f, found);
    for (int k = 0; k < n_ffn; k++) assert_true(found[k] != 5 || e->absmax[5] >= 6.0f);
    imatrix_free(&im);
    lb_model_free(m);
}

// ----------------------------------------------------------------------------

static void last_logits(lb_model *m, const int32_t *ids, int n, float *out) {
    lb_context *c = open_context(m, 128, LB_TYPE_F32, 1);
    lb_error err = {0};
    assert_int_equal(lb_decode(c, ids, n, out, &err), LB_OK);
    lb_context_free(c);
}

static void test_file_end_to_end(void **state) {
    (void)state;
    REQUIRE_SHARED();
    write_story(tmp_path("calib.txt"), 4);
    lb_error err = {0};
    lb_profile *p = NULL;
    char src[4096];
    snprintf(src, sizeof src, "%s/profiles/llm-int8.yaml", getenv("top_srcdir") ? getenv("top_srcdir") : ".");
    assert_int_equal(lb_profile_load(&p, src, &err), LB_OK);
    lb_quantize_params qp = {.profile = p, .n_threads = 2, .calib_path = tmp_path("calib.txt"), .calib_ctx = 64};
    lb_quantize_stats st;
    if (lb_quantize_file(model_path("stories260K.gguf"), tmp_path("i8.gguf"), &qp, &st, &err) != LB_OK)
        fail_msg("%s", err.msg);
    lb_quantize_stats_free(&st);
    lb_profile_free(p);

    lb_model *f32 = open_model(model_path("stories260K.gguf"), NULL), *i8 = open_model(tmp_path("i8.gguf"), NULL);
    int with = 0;
    for (int il = 0; il < lb_model_hparams(i8)->n_layer; il++) {
        const struct lb_weight *wq = &i8->layers[il].wq;
        assert_int_equal(wq->type, LB_TYPE_LLM_INT8);
        with += wq->n_outliers > 0;
    }
    print_message("layers whose attn_q has outlier columns: %d\n", with);
    assert_true(with > 0); // stories260K's attention inputs reach |x| >= 6 in later layers

    int32_t ids[512];
    const int n = lb_tokenize(f32, STORY, -1, true, false, ids, 512);
    assert_true(n > 32);
    const int nv = lb_model_hparams(f32)->n_vocab;
    float *a = malloc(nv * sizeof *a), *b = malloc(nv * sizeof *b), *c = malloc(nv * sizeof *c);
    last_logits(f32, ids, 48, a);
    assert_true(lb_cpu_select("scalar"));
    last_logits(i8, ids, 48, b);
    // Every SIMD table this CPU runs (the AVX-512 ones natively or emulated)
    // against scalar; max_bc is the worst of them.
    const char *simd[] = {"avx2", "avx512", "avx512vnni", "avx512-emulated", "avx512vnni-emulated"};
    double max_ab = 0, max_bc = 0, max_a = 0;
    for (int i = 0; i < nv; i++) {
        max_ab = fmax(max_ab, fabs((double)a[i] - b[i]));
        max_a = fmax(max_a, fabs(a[i]));
    }
    for (size_t k = 0; k < sizeof simd / sizeof simd[0]; k++) {
        if (!lb_cpu_select(simd[k])) continue;
        last_logits(i8, ids, 48, c);
        for (int i = 0; i < nv; i++) max_bc = fmax(max_bc, fabs((double)b[i] - c[i]));
    }
    lb_cpu_select("auto");
    print_message("logits: max |f32 - llm-int8| %.3g, |scalar - simd| %.3g, max |logit| %.3g\n", max_ab, max_bc, max_a);
    assert_true(max_ab < 0.05 * max_a);
    assert_true(max_bc < 1e-3 * max_a);
    free(a), free(b), free(c);
    lb_model_free(f32);
    lb_model_free(i8);
}

int main(void) {
    if (!lbtest_init("llm-int8")) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_product_with_outliers),
        cmocka_unit_test(test_calibration_finds_planted_columns),
        cmocka_unit_test(test_file_end_to_end),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    lbtest_cleanup();
    return r;
}
