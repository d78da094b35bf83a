/*
 * test_profile.c — quantization profiles, through lowbit.h only.
 *
 * Every profile shipped in profiles/ parses and says what its name says; each
 * kind of mistake in a profile gives exactly the message a user sees,
 * file:line:column included; and lookup by name prefers the user's directory
 * ($XDG_CONFIG_HOME/lowbit/profiles) to the shipped one.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "lowbit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// ----------------------------------------------------------------------------
// Helpers

static char tmpdir[64];

static void write_text(const char *path, const char *text) {
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

// Parse `text` as a profile file and return the error message ("" when it parsed).
static const char *parse_text(const char *text, char *path, size_t cap, lb_error *err) {
    snprintf(path, cap, "%s/bad.yaml", tmpdir);
    write_text(path, text);
    lb_profile *p = NULL;
    memset(err, 0, sizeof *err);
    if (lb_profile_load(&p, path, err) == LB_OK) err->msg[0] = 0;
    lb_profile_free(p);
    return err->msg;
}

// ----------------------------------------------------------------------------
// Shipped profiles

static void test_shipped_profiles_parse(void **state) {
    (void)state;
    static const struct {
        const char *name;
        int file_type; // llama.cpp's LLAMA_FTYPE
    } shipped[] = {
        {"f16", 1}, {"bf16", 32}, {"q8_0", 7}, {"q4_0", 2}, {"q4_1", 3}, {"q5_0", 8},
        {"q5_1", 9}, {"q6_k", 18}, {"q5_k_m", 17}, {"q4_k_m", 15}, {"q3_k_m", 12}, {"q2_k", 10},
        {"nf4", 128}, {"fp4", 129}, // lowbit's own file types
    };
    const char *src = getenv("top_srcdir");
    for (size_t i = 0; i < sizeof shipped / sizeof shipped[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/profiles/%s.yaml", src ? src : ".", shipped[i].name);
        lb_error err = {0};
        lb_profile *p = NULL;
        if (lb_profile_load(&p, path, &err) != LB_OK) fail_msg("%s", err.msg);
        assert_string_equal(lb_profile_name(p), shipped[i].name);
        assert_string_equal(lb_profile_method(p), shipped[i].name);
        assert_int_equal(lb_profile_file_type(p), shipped[i].file_type);
        assert_int_equal(lb_profile_kv_type(p), LB_TYPE_F16);
        assert_true(strlen(lb_profile_description(p)) > 0);
        lb_profile_free(p);
    }
}

// lowbit's own profiles: the method's parameters choose the type, and the
// file type written is that type's id (or llama.cpp's for a ggml type).
static void test_shipped_lowbit_profiles(void **state) {
    (void)state;
    const char *src = getenv("top_srcdir");
    static const struct {
        const char *name, *method;
        lb_type type;
    } shipped[] = {
        {"int8-absmax", "rtn", LB_TYPE_INT8_C},          {"int8-absmax-tensor", "rtn", LB_TYPE_INT8_T},
        {"int8-zeropoint", "rtn", LB_TYPE_INT8Z_C},      {"int4-absmax", "rtn", LB_TYPE_INT4_C},
        {"int4-absmax-tensor", "rtn", LB_TYPE_INT4_T},   {"int4-g128", "rtn", LB_TYPE_INT4_G128},
        {"int4-zp-g128", "rtn", LB_TYPE_INT4Z_G128},     {"int3-g128", "rtn", LB_TYPE_INT3Z_G128},
        {"nf4-double-quant", "nf4", LB_TYPE_NF4_DQ},     {"fp8-e4m3", "fp8_e4m3", LB_TYPE_FP8_E4M3},
        {"fp8-e5m2", "fp8_e5m2", LB_TYPE_FP8_E5M2},
    };
    for (size_t i = 0; i < sizeof shipped / sizeof shipped[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/profiles/%s.yaml", src ? src : ".", shipped[i].name);
        lb_error err = {0};
        lb_profile *p = NULL;
        if (lb_profile_load(&p, path, &err) != LB_OK) fail_msg("%s", err.msg);
        assert_string_equal(lb_profile_name(p), shipped[i].name);
        assert_string_equal(lb_profile_method(p), shipped[i].method);
        assert_int_equal(lb_profile_type(p), shipped[i].type);
        assert_int_equal(lb_profile_file_type(p), (int)shipped[i].type);
        assert_true(strlen(lb_profile_description(p)) > 0);
        lb_profile_free(p);
    }
    // rtn on a grid a ggml type holds keeps llama.cpp's type and file type.
    lb_error err;
    char path[128];
    lb_profile *p = NULL;
    const char *text = "name: x\nmethod: rtn\nbits: 4\ngranularity: group\ngroup_size: 32\nsymmetric: false\n";
    assert_string_equal(parse_text(text, path, sizeof path, &err), "");
    assert_int_equal(lb_profile_load(&p, path, &err), LB_OK);
    assert_int_equal(lb_profile_type(p), LB_TYPE_Q4_1);
    assert_int_equal(lb_profile_file_type(p), 3); // LLAMA_FTYPE_MOSTLY_Q4_1
    lb_profile_free(p);
}

// The GPTQ profiles: calibrated, and a file type from their grid (Q4_0's
// where group 32 symmetric 4-bit makes the file a Q4_0 one).
static void test_shipped_gptq_profiles(void **state) {
    (void)state;
    static const char *const names[] = {"gptq-4bit-g32", "gptq-4bit-g128", "gptq-3bit-g128"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        lb_error err = {0};
        lb_profile *p = NULL;
        if (lb_profile_find(&p, names[i], &err) != LB_OK) fail_msg("%s", err.msg);
        assert_string_equal(lb_profile_name(p), names[i]);
        assert_string_equal(lb_profile_method(p), "gptq");
        assert_true(lb_profile_needs_calibration(p));
        if (i == 0) assert_int_equal(lb_profile_file_type(p), 2); // LLAMA_FTYPE_MOSTLY_Q4_0
        lb_profile_free(p);
    }
    lb_error err = {0};
    lb_profile *p = NULL;
    if (lb_profile_find(&p, "q4_0", &err) != LB_OK) fail_msg("%s", err.msg);
    assert_false(lb_profile_needs_calibration(p));
    lb_profile_free(p);
}

// kv_cache takes every KV cache element type (kv.h), in any case.
static void test_kv_cache_types(void **state) {
    (void)state;
    static const struct { const char *text; lb_type type; } cases[] = {
        {"name: x\nmethod: q4_0\nkv_cache: q8_0\n", LB_TYPE_Q8_0},
        {"name: x\nmethod: q4_0\nkv_cache: FP8\n", LB_TYPE_E4M3},
        {"name: x\nmethod: q4_0\nkv_cache: f32\n", LB_TYPE_F32},
        {"name: x\nmethod: q4_0\n", LB_TYPE_F16},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[300];
        snprintf(path, sizeof path, "%s/kv.yaml", tmpdir);
        write_text(path, cases[i].text);
        lb_error err = {0};
        lb_profile *p = NULL;
        if (lb_profile_load(&p, path, &err) != LB_OK) fail_msg("%s", err.msg);
        assert_int_equal(lb_profile_kv_type(p), cases[i].type);
        lb_profile_free(p);
        unlink(path);
    }
}

// By name, the shipped profile is found (the source tree is searched last).
static void test_find_by_name(void **state) {
    (void)state;
    lb_error err = {0};
    lb_profile *p = NULL;
    if (lb_profile_find(&p, "Q4_K_M", &err) != LB_OK) fail_msg("%s", err.msg);
    assert_string_equal(lb_profile_name(p), "q4_k_m");
    lb_profile_free(p);
}

// ----------------------------------------------------------------------------
// Mistakes, each with the exact message

#define KEYS \
    "name, description, method, bits, granularity, group_size, symmetric, double_quant, pure, overrides, fallback, " \
    "kv_cache, gptq, calibration, importance, clip, outlier_threshold"
#define GPTQ_KEYS "bits, group_size, symmetric, scale, damp_percent, act_order, desc_act, static_groups, " \
                  "block_size, true_sequential"
#define G "name: x\nmethod: gptq\n"  // the start of a GPTQ profile
#define TYPES \
    "f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k, nf4, fp4, nf4_dq, fp8_e4m3, " \
    "fp8_e5m2, llm_int8, or an integer grid type int<2|3|4|8>[z]_<c|g32|g64|g128>, int8_t, int4_t"

static void test_bad_profiles(void **state) {
    (void)state;
    static const struct {
        const char *text;
        const char *msg; // after "PATH:"
    } cases[] = {
        {"name: x\nmethod: q4_k_m\ntypo: 1\n", "3:1: unknown key 'typo' (expected one of " KEYS ")"},
        {"name: [a, b]\nmethod: q4_0\n", "1:7: 'name' is a list (expected a string)"},
        {"name: x\nmethod: q4_k_x\n",
         "2:9: method 'q4_k_x' unknown (expected one of f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, "
         "q3_k, q4_k, q5_k, q6_k, q3_k_s, q3_k_m, q4_k_s, q4_k_m, q5_k_s, q5_k_m, nf4, fp4, fp8_e4m3, fp8_e5m2, rtn, "
         "gptq, awq, llm-int8)"},
        {"name: x\nmethod: q4_k_m\noverrides:\n  - pattern: \"output.weight\"\n    type: q7_k\n",
         "5:11: type 'q7_k' is not a weight type (expected one of " TYPES ")"},
        {"name: x\nmethod: q4_k_m\noverrides:\n  - pattern: \"output.weight\"\n    type: q8_k\n",
         "5:11: type 'q8_k' is not a weight type (expected one of " TYPES ")"},
        {"name: x\nmethod: q4_k_m\noverrides:\n  - pattern: \"output.weight\"\n",
         "4:5: override has no 'type' (expected pattern and type)"},
        {"name: x\nmethod: q4_k_m\noverrides:\n  - pattern: \"output.weight\"\n    typ: q8_0\n",
         "5:5: unknown key 'typ' (expected one of pattern, type)"},
        {"name: x\nmethod: q4_k_m\noverrides:\n  - q8_0\n",
         "4:5: an override is a scalar (expected a mapping with pattern and type)"},
        {"name: x\nmethod: q4_k_m\noverrides: q8_0\n",
         "3:12: 'overrides' is a scalar (expected a list of {pattern, type})"},
        {"name: x\nmethod: q4_k_m\npure: true\n",
         "3:7: pure: true contradicts method 'q4_k_m', a mix of types (expected a single-type method such as "
         "'q4_k')"},
        {"name: x\nmethod: q4_k\npure: yes\n", "3:7: 'pure' is 'yes' (expected true or false)"},
        {"name: x\nmethod: q4_k_m\nfallback: q4_k\n",
         "3:11: fallback Q4_K has blocks of 256: it would not fit rows that the method's blocks do not fit "
         "(expected a type with blocks of 32 or less)"},
        {"name: x\nmethod: f16\nfallback: q8_0\n",
         "3:11: fallback Q8_0 is never used: method 'f16' and the overrides have no blocks (expected no "
         "fallback)"},
        {"name: x\nmethod: q4_0\nkv_cache: q4_0\n", "3:11: kv_cache 'q4_0' (expected f16, f32, q8_0 or fp8)"},
        {"name: a\nname: b\nmethod: f16\n", "2:1: key 'name' given twice (first at line 1)"},
        {"name: x\n", "1:1: no 'method' (required)"},
        {"method: f16\n", "1:1: no 'name' (required)"},
        {"name: a/b\nmethod: f16\n", "1:7: name 'a/b' (expected letters, digits, '_', '-' and '.')"},
        {"", "1:1: the file is empty (expected a mapping with keys " KEYS ")"},
        {"- a\n", "1:1: the profile is a list (expected a mapping with keys " KEYS ")"},
        // Method parameters: each given key must mean something for the method.
        {"name: x\nmethod: rtn\nbits: 5\ngranularity: channel\n", "3:7: bits 5 (expected 2, 3, 4 or 8)"},
        {"name: x\nmethod: rtn\ngranularity: channel\n", "1:1: method rtn needs 'bits' (expected 2, 3, 4 or 8)"},
        {"name: x\nmethod: rtn\nbits: 4\n",
         "1:1: method rtn needs 'granularity' (expected tensor, channel or group)"},
        {"name: x\nmethod: rtn\nbits: 4\ngranularity: group\n",
         "4:14: granularity group needs 'group_size' (expected 32, 64 or 128)"},
        {"name: x\nmethod: rtn\nbits: 4\ngranularity: group\ngroup_size: 96\n",
         "5:13: group_size 96 (expected 32, 64 or 128)"},
        {"name: x\nmethod: rtn\nbits: 4\ngranularity: channel\ngroup_size: 64\n",
         "5:13: group_size with granularity channel (expected group_size only with granularity group)"},
        {"name: x\nmethod: rtn\nbits: 8\ngranularity: tensor\nsymmetric: false\n",
         "4:14: granularity tensor with 8-bit zero-point grids (expected symmetric 8 or 4 bits: INT8_T, INT4_T)"},
        {"name: x\nmethod: rtn\nbits: four\ngranularity: channel\n",
         "3:7: 'bits' is 'four' (expected a whole number)"},
        {"name: x\nmethod: rtn\nbits: 4\ngranularity: row\n",
         "4:14: granularity 'row' (expected tensor, channel or group)"},
        {"name: x\nmethod: q4_0\nbits: 4\n",
         "3:7: 'bits' with method q4_0 (expected bits, group_size and symmetric only with methods rtn and awq)"},
        {"name: x\nmethod: fp8_e4m3\ngranularity: group\n",
         "3:14: granularity with method fp8_e4m3 (expected it with methods rtn and awq, or 'channel' with fp8_e4m3 / "
         "fp8_e5m2, whose scales are per channel)"},
        {"name: x\nmethod: q4_0\ndouble_quant: true\n",
         "3:15: double_quant with method q4_0 (expected it only with method nf4)"},
        {"name: x\nmethod: rtn\nbits: 8\ngranularity: channel\nfallback: int8_t\n",
         "5:11: fallback INT8_T is a per-tensor type (expected a type whose rows are quantized on their own)"},
        // method gptq: its mapping, each key's values, and the combinations no type can store.
        {G, "1:1: method 'gptq' needs a 'gptq' mapping (expected at least bits and group_size)"},
        {G "gptq: 4\n", "3:7: 'gptq' is a scalar (expected a mapping with keys " GPTQ_KEYS ")"},
        {G "gptq:\n  bits: 4\n  groups: 32\n", "5:3: unknown key 'groups' (expected one of " GPTQ_KEYS ")"},
        {G "gptq:\n  group_size: 32\n", "4:3: 'gptq' has no 'bits' (expected 2 to 8)"},
        {G "gptq:\n  bits: 4\n", "4:3: 'gptq' has no 'group_size' (expected 32, 64, 128, ... or channel)"},
        {G "gptq:\n  bits: 9\n  group_size: 32\n", "4:9: 'bits' is '9' (expected an integer from 2 to 8)"},
        {G "gptq:\n  bits: four\n  group_size: 32\n", "4:9: 'bits' is 'four' (expected an integer from 2 to 8)"},
        {G "gptq:\n  bits: 4\n  group_size: 48\n",
         "5:15: 'group_size' is '48' (expected 16, 32, 64, 128, ... 4096, or channel)"},
        {G "gptq:\n  bits: 4\n  group_size: 32\n  damp_percent: 2\n",
         "6:17: 'damp_percent' is '2' (expected a number from 0 to 1)"},
        {G "gptq:\n  bits: 4\n  group_size: 32\n  scale: absmax\n",
         "6:10: 'scale' is 'absmax' (expected minmax or signed_max)"},
        {G "gptq:\n  bits: 4\n  group_size: 32\n  scale: signed_max\n",
         "6:10: scale: signed_max with symmetric: false (expected symmetric: true; asymmetric groups use their "
         "min-max range)"},
        {G "gptq:\n  bits: 4\n  group_size: 128\n  act_order: true\n",
         "6:14: act_order: true with group_size 128 needs static_groups: true (the tensor types store contiguous "
         "groups; without static groups a column's group follows the activation order)"},
        {G "gptq:\n  bits: 4\n  group_size: channel\n  static_groups: true\n",
         "6:18: static_groups: true with group_size channel (expected a group size: per channel there is one "
         "group per row)"},
        {G "gptq:\n  bits: 4\n  group_size: 32\n  act_order: true\n  desc_act: true\n",
         "7:3: 'desc_act' repeats 'act_order' at line 6 (desc_act is another name for act_order; expected one of "
         "them)"},
        {"name: x\nmethod: q4_0\ngptq:\n  bits: 4\n  group_size: 32\n",
         "3:1: 'gptq' settings with method 'q4_0' (expected method: gptq)"},
        {"name: x\nmethod: q4_0\ncalibration:\n  samples: 0\n",
         "4:12: 'samples' is '0' (expected an integer from 1 to 1000000)"},
        {"name: x\nmethod: q4_0\ncalibration:\n  tokens: 5\n", "4:3: unknown key 'tokens' (expected one of samples, ctx)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[128], want[1024];
        lb_error err;
        const char *got = parse_text(cases[i].text, path, sizeof path, &err);
        snprintf(want, sizeof want, "%s:%s", path, cases[i].msg);
        if (strcmp(got, want) != 0) fail_msg("case %zu:\n  got  %s\n  want %s", i, got, want);
        assert_true(err.status == LB_ERR_FORMAT || err.status == LB_ERR_MISSING);
        printf("           %s\n", got + strlen(tmpdir) + 1);
    }
}

// YAML syntax errors come from libyaml, placed by line and column.
static void test_yaml_syntax_error(void **state) {
    (void)state;
    char path[128], prefix[160];
    lb_error err;
    const char *got = parse_text("name: [x\nmethod: f16\n", path, sizeof path, &err);
    snprintf(prefix, sizeof prefix, "%s:2:7: ", path);
    if (strncmp(got, prefix, strlen(prefix)) != 0) fail_msg("got %s (expected it to start %s)", got, prefix);
    assert_int_equal(err.status, LB_ERR_FORMAT);
}

static void test_missing_file(void **state) {
    (void)state;
    lb_error err = {0};
    lb_profile *p = (lb_profile *)&err; // must be reset to NULL
    assert_int_equal(lb_profile_load(&p, "/nonexistent/x.yaml", &err), LB_ERR_IO);
    assert_null(p);
    assert_non_null(strstr(err.msg, "/nonexistent/x.yaml: cannot open"));
}

// ----------------------------------------------------------------------------
// Lookup order

static void test_user_profile_shadows_shipped(void **state) {
    (void)state;
    char dir[256], path[300];
    snprintf(dir, sizeof dir, "%s/lowbit", tmpdir);
    mkdir(dir, 0755);
    snprintf(dir, sizeof dir, "%s/lowbit/profiles", tmpdir);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/q4_0.yaml", dir);
    write_text(path, "name: q4_0\ndescription: mine\nmethod: q4_0\nkv_cache: f32\n");
    setenv("XDG_CONFIG_HOME", tmpdir, 1);

    lb_error err = {0};
    lb_profile *p = NULL;
    if (lb_profile_find(&p, "q4_0", &err) != LB_OK) fail_msg("%s", err.msg);
    assert_string_equal(lb_profile_description(p), "mine");
    assert_int_equal(lb_profile_kv_type(p), LB_TYPE_F32);
    assert_string_equal(lb_profile_path(p), path);
    lb_profile_free(p);

    p = NULL;
    assert_int_equal(lb_profile_find(&p, "no_such_profile", &err), LB_ERR_MISSING);
    assert_null(p);
    char want[400];
    snprintf(want, sizeof want, "profile 'no_such_profile' not found (looked for no_such_profile.yaml in %s, ", dir);
    if (strncmp(err.msg, want, strlen(want)) != 0) fail_msg("got %s", err.msg);

    assert_int_equal(lb_profile_find(&p, "../etc/passwd", &err), LB_ERR_IO); // a path: read as given
    unsetenv("XDG_CONFIG_HOME");
    unlink(path);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lb_profile_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_profiles_parse),
        cmocka_unit_test(test_shipped_lowbit_profiles),
        cmocka_unit_test(test_find_by_name),
        cmocka_unit_test(test_shipped_gptq_profiles),
        cmocka_unit_test(test_kv_cache_types),
        cmocka_unit_test(test_bad_profiles),
        cmocka_unit_test(test_yaml_syntax_error),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_user_profile_shadows_shipped),
    };
    int failed = cmocka_run_group_tests_name("profile", tests, NULL, NULL);
    int total = (int)(sizeof tests / sizeof tests[0]);
    printf("%d passed, %d failed\n", total - failed, failed);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) return 1;
    return failed ? 1 : 0;
}
