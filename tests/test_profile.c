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

#define KEYS "name, description, method, pure, overrides, fallback, kv_cache"
#define TYPES "f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k, nf4, fp4"

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
         "q3_k, q4_k, q5_k, q6_k, q3_k_s, q3_k_m, q4_k_s, q4_k_m, q5_k_s, q5_k_m, nf4, fp4)"},
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
        cmocka_unit_test(test_find_by_name),
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
