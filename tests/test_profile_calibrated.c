/*
 * test_profile_calibrated.c — the profile keys of the calibrated methods
 * (awq, llm-int8, importance), through lowbit.h only: the shipped
 * profiles parse with the file types they promise, each misuse gives the
 * message a user sees with file:line:column, and a profile that needs
 * calibration is refused by live re-quantization and by a quantize call
 * without calibration text, naming what is missing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lowbit.h"
#include "lbtest.h"

#include <string.h>

static const char *parse_text(const char *text, lb_error *err) {
    FILE *fp = fopen(tmp_path("p.yaml"), "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    lb_profile *p = NULL;
    memset(err, 0, sizeof *err);
    if (lb_profile_load(&p, tmp_path("p.yaml"), err) == LB_OK) err->msg[0] = 0;
    lb_profile_free(p);
    return err->msg;
}

static void test_shipped(void **state) {
    (void)state;
    static const struct {
        const char *name, *method;
        int file_type;
    } shipped[] = {
        {"awq-4bit-g32", "awq", 3},       // groups of 32 with a zero point: Q4_1's file type
        {"awq-4bit-g128", "awq", 144},    // groups of 128 with a zero point: INT4Z_G128, lowbit's id as file type
        {"llm-int8", "llm-int8", 164},
        {"q4_k_m-imatrix", "q4_k_m", 15},
    };
    const char *src = getenv("top_srcdir");
    for (size_t i = 0; i < sizeof shipped / sizeof shipped[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/profiles/%s.yaml", src ? src : ".", shipped[i].name);
        lb_error err = {0};
        lb_profile *p = NULL;
        if (lb_profile_load(&p, path, &err) != LB_OK) fail_msg("%s", err.msg);
        assert_string_equal(lb_profile_name(p), shipped[i].name);
        assert_string_equal(lb_profile_method(p), shipped[i].method);
        if (shipped[i].file_type >= 0) assert_int_equal(lb_profile_file_type(p), shipped[i].file_type);
        lb_profile_free(p);
    }
}

static void test_misuse(void **state) {
    (void)state;
    static const struct {
        const char *text, *message; // message: the part after "FILE:"
    } cases[] = {
        {"name: a\nmethod: q4_0\nbits: 4\n",
         "3:7: 'bits' with method q4_0 (expected bits, group_size and symmetric only with methods rtn and awq)"},
        {"name: a\nmethod: awq\nimportance: calibration\n",
         "3:13: importance applies to methods that are tensor types (q4_k_m, q4_0 ...), not to 'awq' (expected no "
         "importance key)"},
        {"name: a\nmethod: q4_k_m\nimportance: yes\n", "3:13: importance 'yes' (expected calibration or none)"},
        {"name: a\nmethod: awq\nbits: 12\n", "3:7: bits 12 (expected 2 to 8)"},
        {"name: a\nmethod: awq\ngroup_size: many\n", "3:13: 'group_size' is 'many' (expected a whole number)"},
        {"name: a\nmethod: awq\ngranularity: tensor\n", "3:14: granularity tensor with method awq (expected group or channel)"},
        {"name: a\nmethod: awq\ngranularity: channel\ngroup_size: 32\n",
         "4:13: group_size with granularity channel (expected group_size only with granularity group)"},
        {"name: a\nmethod: q4_0\nclip: true\n", "3:1: clip applies to method awq, not to 'q4_0'"},
        {"name: a\nmethod: q8_0\noutlier_threshold: 6\n",
         "3:1: outlier_threshold applies to method llm-int8, not to 'q8_0'"},
        {"name: a\nmethod: llm-int8\noutlier_threshold: -1\n",
         "3:20: 'outlier_threshold' is '-1' (expected a number from 0.001 to 1e+30)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lb_error err;
        const char *msg = parse_text(cases[i].text, &err);
        const char *colon = strstr(msg, "p.yaml:");
        print_message("%s\n", msg);
        assert_non_null(colon);
        assert_string_equal(colon + strlen("p.yaml:"), cases[i].message);
    }
    lb_error err;
    assert_string_equal(parse_text("name: a\nmethod: awq\nbits: 3\ngranularity: channel\nsymmetric: true\n"
                                   "clip: false\n", &err), "");
}

static void test_needs_calibration(void **state) {
    (void)state;
    REQUIRE_SHARED();
    lb_model *m = open_model(model_path("stories260K.gguf"), NULL);
    static const char *names[] = {"awq-4bit-g32", "llm-int8", "q4_k_m-imatrix"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        lb_error err = {0};
        lb_profile *p = NULL;
        assert_int_equal(lb_profile_find(&p, names[i], &err), LB_OK);
        assert_int_equal(lb_model_requantize_profile(m, p, NULL, NULL, &err), LB_ERR_UNSUPPORTED);
        print_message("%s\n", err.msg);
        assert_non_null(strstr(err.msg, "needs calibration"));
        lb_quantize_params qp = {.profile = p, .n_threads = 1};
        lb_quantize_stats st;
        assert_int_equal(lb_quantize_file(model_path("stories260K.gguf"), tmp_path("x.gguf"), &qp, &st, &err),
                         LB_ERR_ARG);
        print_message("%s\n", err.msg);
        assert_non_null(strstr(err.msg, "needs calibration text (--calib FILE)"));
        assert_int_equal(access(tmp_path("x.gguf"), F_OK), -1);
        lb_profile_free(p);
    }
    lb_model_free(m);
}

int main(void) {
    if (!lbtest_init("profile-calibrated")) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_needs_calibration),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    lbtest_cleanup();
    return r;
}
