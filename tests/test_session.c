/*
 * test_session.c — sessions on disk, through lowbit.h only: a round trip of
 * every field, damaged files reported with their line, and a save killed with
 * SIGKILL at a random moment leaving a complete file behind.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "lowbit.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[256];

static int setup(void **state) {
    snprintf(dir, sizeof dir, "/tmp/lowbit-test-session-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void path_of(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", dir, name); }

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static lb_session *sample(int n_turns) {
    lb_session *s = lb_session_new("Stories \\ tests\tand\nnewlines");
    assert_non_null(s);
    assert_true(lb_session_set_system(s, "You are a storyteller.\nBe brief."));
    assert_true(lb_session_set_template(s, "chatml"));
    assert_true(lb_session_set_profile(s, "q8_0"));
    s->sampling.temp = 0.25f;
    s->sampling.top_k = 7;
    s->sampling.top_p = 0.5f;
    s->sampling.min_p = 0.125f;
    s->sampling.repeat_penalty = 1.5f;
    s->sampling.seed = 18446744073709551615ull;
    s->seed_random = false;
    for (int i = 0; i < n_turns; i++) {
        char text[64];
        snprintf(text, sizeof text, "question %d: ünïcödé 漢字 🙂", i);
        assert_true(lb_session_add(s, "user", text));
        snprintf(text, sizeof text, "answer %d\r\nwith \\n escapes", i);
        assert_true(lb_session_add(s, "assistant", text));
    }
    return s;
}

static void assert_same(const lb_session *a, const lb_session *b) {
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->system, b->system);
    assert_string_equal(a->template_name, b->template_name);
    assert_string_equal(a->profile, b->profile);
    assert_true(a->sampling.temp == b->sampling.temp);
    assert_int_equal(a->sampling.top_k, b->sampling.top_k);
    assert_true(a->sampling.top_p == b->sampling.top_p);
    assert_true(a->sampling.min_p == b->sampling.min_p);
    assert_true(a->sampling.repeat_penalty == b->sampling.repeat_penalty);
    assert_true(a->sampling.seed == b->sampling.seed);
    assert_int_equal(a->seed_random, b->seed_random);
    assert_int_equal(a->n_msgs, b->n_msgs);
    for (int i = 0; i < a->n_msgs; i++) {
        assert_string_equal(a->msgs[i].role, b->msgs[i].role);
        assert_string_equal(a->msgs[i].content, b->msgs[i].content);
    }
}

static void test_round_trip(void **state) {
    char path[300];
    path_of(path, sizeof path, "a.session");
    lb_session *s = sample(3), *r = NULL;
    lb_error err = {0};
    assert_int_equal(lb_session_save(s, path, &err), LB_OK);
    assert_int_equal(lb_session_load(&r, path, &err), LB_OK);
    assert_same(s, r);
    // Editing: append to the last message, remove a turn, save again.
    assert_true(lb_session_append(s, " more", 5));
    lb_session_remove(s, 0, 2);
    assert_int_equal(lb_session_save(s, path, &err), LB_OK);
    lb_session_free(r);
    assert_int_equal(lb_session_load(&r, path, &err), LB_OK);
    assert_same(s, r);
    assert_int_equal(r->n_msgs, 4);
    lb_session_free(r);
    lb_session_free(s);
}

static void test_damaged_files(void **state) {
    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"", "empty file"},
        {"lowbit-session 2\nend 0\n", "line 1"},
        {"lowbit-session 1\nname x\nmsg user hi\n", "no 'end' line"},
        {"lowbit-session 1\nmsg user hi\nend 2\n", "end count"},
        {"lowbit-session 1\nmsg robot hi\nend 1\n", "role 'robot'"},
        {"lowbit-session 1\ntemp hot\nend 0\n", "line 2: temp"},
        {"lowbit-session 1\nname bad\\q\nend 0\n", "bad escape"},
        {"lowbit-session 1\nname x\nend 0", "no end of line"},
        {"lowbit-session 1\nend 0\nname late\n", "after the 'end' line"},
    };
    char path[300];
    path_of(path, sizeof path, "bad.session");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(path, bad[i].text);
        lb_session *s = (lb_session *)1;
        lb_error err = {0};
        assert_int_equal(lb_session_load(&s, path, &err), LB_ERR_FORMAT);
        assert_null(s);
        if (!strstr(err.msg, bad[i].msg)) fprintf(stderr, "case %zu: %s\n", i, err.msg);
        assert_non_null(strstr(err.msg, bad[i].msg));
        assert_non_null(strstr(err.msg, path));
    }
    lb_session *s;
    lb_error err = {0};
    path_of(path, sizeof path, "missing.session");
    assert_int_equal(lb_session_load(&s, path, &err), LB_ERR_IO);
    // Unknown keys are skipped (files from newer versions).
    path_of(path, sizeof path, "newer.session");
    write_file(path, "lowbit-session 1\nname n\nfuture_key 42\nmsg user hi\nend 1\n");
    assert_int_equal(lb_session_load(&s, path, &err), LB_OK);
    assert_string_equal(s->name, "n");
    lb_session_free(s);
}

// A child saves version after version of a growing session in a tight loop;
// the parent kills it with SIGKILL at a random moment. The file must then be
// one complete version: it loads, and equals the version its message count names.
static void test_sigkill_during_save(void **state) {
    char path[300];
    path_of(path, sizeof path, "killed.session");
    lb_error err = {0};
    lb_session *first = sample(1);
    assert_int_equal(lb_session_save(first, path, &err), LB_OK);
    lb_session_free(first);
    srand((unsigned)time(NULL));
    int mid_write = 0;
    for (int round = 0; round < 20; round++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            lb_session *s = sample(1);
            for (int v = 0;; v++) {
                // Version v has 2 + 2·(v mod 200) messages and a large last one.
                lb_session_free(s);
                s = sample(1 + v % 200);
                lb_session_save(s, path, NULL);
            }
        }
        usleep(2000 + (useconds_t)(rand() % 30000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        char tmp[310];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        if (access(tmp, F_OK) == 0) mid_write++; // killed between writing the temporary file and renaming it
        lb_session *got = NULL;
        lb_status st = lb_session_load(&got, path, &err);
        if (st != LB_OK) fprintf(stderr, "round %d: %s\n", round, err.msg);
        assert_int_equal(st, LB_OK);
        lb_session *want = sample(got->n_msgs / 2);
        assert_same(want, got);
        lb_session_free(want);
        lb_session_free(got);
    }
    fprintf(stderr, "sigkill: %d of 20 kills landed during a save\n", mid_write);
    assert_true(mid_write > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_damaged_files),
        cmocka_unit_test(test_sigkill_during_save),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
