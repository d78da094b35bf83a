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
    assert_true(lb_session_set_draft(s, "self", "q4_0"));
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
    assert_string_equal(a->draft, b->draft);
    assert_string_equal(a->draft_profile, b->draft_profile);
    assert_int_equal(a->n_msgs, b->n_msgs);
    for (int i = 0; i < a->n_msgs; i++) {
        assert_string_equal(a->msgs[i].role, b->msgs[i].role);
        assert_string_equal(a->msgs[i].content, b->msgs[i].content);
        assert_int_equal(a->path[i], b->path[i]);
    }
    assert_int_equal(a->n_nodes, b->n_nodes);
    for (int k = 0; k < a->n_nodes; k++) {
        const lb_session_node *x = &a->nodes[k], *y = &b->nodes[k];
        assert_string_equal(x->role, y->role);
        assert_string_equal(x->content, y->content);
        assert_int_equal(x->parent, y->parent);
        assert_int_equal(x->compare, y->compare);
        assert_int_equal(x->has_stats, y->has_stats);
        if (!x->has_stats) continue;
        assert_string_equal(x->stats.profile, y->stats.profile);
        assert_int_equal(x->stats.n_tokens, y->stats.n_tokens);
        assert_int_equal(x->stats.n_measured, y->stats.n_measured);
        assert_true(x->stats.seed == y->stats.seed);
        assert_true(x->stats.ttft_s == y->stats.ttft_s && x->stats.decode_tps == y->stats.decode_tps);
        assert_true(x->stats.spec_accept == y->stats.spec_accept && x->stats.bpw == y->stats.bpw);
        assert_true(x->stats.kld == y->stats.kld && x->stats.top1 == y->stats.top1);
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
        {"lowbit-session 3\nend 0\n", "line 1"},
        {"lowbit-session 2\nnode 0 user hi\nend 1\n", "node parent '0'"},
        {"lowbit-session 2\nnode -1 user hi\nnode 0 robot hi\nend 2\n", "role 'robot'"},
        {"lowbit-session 2\nstats tokens=1\nend 0\n", "stats before any node"},
        {"lowbit-session 2\nnode -1 user hi\nnode 0 assistant a\nstats tokens=x ttft=1 profile=q\nend 2\n",
         "stats: bad or missing 'tokens'"},
        {"lowbit-session 2\nnode -1 user hi\nnode 0 assistant a\nstats tokens=3 ttft=1 profile=q\nend 2\n",
         "stats: bad or missing 'tps'"},
        {"lowbit-session 2\nnode -1 user hi\nnode 0 assistant a\ncompare 0\nend 2\n", "compare '0'"},
        {"lowbit-session 2\nnode -1 user hi\nshown 4\nend 1\n", "shown '4'"},
        {"lowbit-session 2\nnode -1 user hi\nend 2\n", "but 1 nodes were read"},
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

static lb_reply_stats footer(const char *profile, int tokens, double kld) {
    lb_reply_stats r = {.n_tokens = tokens, .ttft_s = 0.0123, .decode_tps = 351.25, .spec_accept = tokens % 2 ? 0.75 : -1,
                        .seed = 18446744073709551557ull, .kld = kld, .top1 = kld < 0 ? -1 : 0.875,
                        .n_measured = kld < 0 ? 0 : tokens, .bpw = 4.5};
    snprintf(r.profile, sizeof r.profile, "%s", profile);
    return r;
}

// A tree: message 1 edited once (two first messages), the answer to the
// second regenerated (two siblings), the last one compared with a sibling
// written under another profile. Saved and loaded, every node, link, footer
// and the branch shown come back; showing another branch and saving again too.
static void test_tree_round_trip(void **state) {
    char path[300];
    path_of(path, sizeof path, "tree.session");
    lb_session *s = sample(0), *r = NULL;
    lb_error err = {0};
    assert_true(lb_session_add(s, "user", "Once upon a time"));
    assert_true(lb_session_add(s, "assistant", " there was a dog."));
    assert_true(lb_session_add(s, "user", "What did the dog do?"));
    assert_true(lb_session_add(s, "assistant", "It ran."));
    lb_session_set_stats(s, s->path[3], &(lb_reply_stats){0});
    lb_reply_stats f1 = footer("q8_0", 12, -1);
    lb_session_set_stats(s, s->path[1], &f1);
    // /regen: a sibling of message 4, shown.
    const int old4 = s->path[3];
    const int regen = lb_session_branch(s, 3, "It jumped.");
    assert_true(regen > old4);
    assert_int_equal(s->n_msgs, 4);
    assert_string_equal(s->msgs[3].content, "It jumped.");
    int pos;
    assert_int_equal(lb_session_siblings(s, regen, &pos), 2);
    assert_int_equal(pos, 2);
    assert_int_equal(lb_session_sibling(s, regen, -1), old4);
    assert_int_equal(lb_session_sibling(s, regen, 1), -1);
    lb_reply_stats f2 = footer("q8_0", 7, 0.0);
    lb_session_set_stats(s, regen, &f2);
    // /compare: a sibling that is not shown, linked both ways.
    const int cmp = lb_session_add_node(s, s->nodes[regen].parent, "assistant", "It slept under a tree.");
    assert_true(cmp > regen);
    s->nodes[cmp].compare = regen;
    s->nodes[regen].compare = cmp;
    lb_reply_stats f3 = footer("q4_0", 9, 0.0421);
    lb_session_set_stats(s, cmp, &f3);
    assert_int_equal(s->path[3], regen); // still the shown one
    assert_int_equal(lb_session_siblings(s, regen, NULL), 3);
    // /edit 1: a new first message; the branch shown ends there.
    const int edit = lb_session_branch(s, 0, "Long ago");
    assert_int_equal(s->n_msgs, 1);
    assert_int_equal(s->first, edit);
    assert_true(lb_session_add(s, "assistant", " a cat sat."));
    assert_int_equal(s->n_msgs, 2);

    assert_int_equal(lb_session_save(s, path, &err), LB_OK);
    assert_int_equal(lb_session_load(&r, path, &err), LB_OK);
    assert_same(s, r);
    assert_string_equal(r->msgs[0].content, "Long ago");
    lb_session_free(r);

    // Back to the first branch: shown goes down through the remembered children.
    const int first0 = lb_session_sibling(s, edit, -1);
    assert_true(lb_session_show(s, first0));
    assert_int_equal(s->n_msgs, 4);
    assert_string_equal(s->msgs[3].content, "It jumped.");
    assert_int_equal(lb_session_save(s, path, &err), LB_OK);
    assert_int_equal(lb_session_load(&r, path, &err), LB_OK);
    assert_same(s, r);
    assert_int_equal(r->nodes[cmp].compare, regen);
    assert_int_equal(r->nodes[regen].compare, cmp);
    assert_string_equal(r->nodes[cmp].stats.profile, "q4_0");
    assert_true(r->nodes[cmp].stats.kld == 0.0421);
    lb_session_free(r);

    // Removing the first turn of the shown branch keeps the other branches'
    // nodes out (they hung below it) and renumbers the rest.
    lb_session_remove(s, 0, 2);
    assert_int_equal(s->n_msgs, 2);
    assert_string_equal(s->msgs[0].content, "What did the dog do?");
    assert_int_equal(s->nodes[s->path[0]].parent, -1);
    assert_int_equal(s->n_nodes, 6); // Long ago + its answer, and message 3 with its three answers
    assert_int_equal(s->nodes[s->path[1]].compare, s->path[1] + 1);
    assert_int_equal(lb_session_save(s, path, &err), LB_OK);
    assert_int_equal(lb_session_load(&r, path, &err), LB_OK);
    assert_same(s, r);
    lb_session_free(r);
    lb_session_free(s);
}

// Files of format 1 (one branch of msg records) still load.
static void test_format1_loads(void **state) {
    char path[300];
    path_of(path, sizeof path, "old.session");
    write_file(path, "lowbit-session 1\nname old\ntemplate raw\nprofile q8_0\nsystem \ntemp 0.5\ntop_k 40\n"
                     "top_p 0.95\nmin_p 0.05\nrepeat_penalty 1\nseed 42\nmsg user Hi\\nthere\n"
                     "msg assistant Hello.\nmsg user Bye\nend 3\n");
    lb_session *s;
    lb_error err = {0};
    assert_int_equal(lb_session_load(&s, path, &err), LB_OK);
    assert_string_equal(s->name, "old");
    assert_int_equal(s->n_msgs, 3);
    assert_int_equal(s->n_nodes, 3);
    assert_string_equal(s->msgs[0].content, "Hi\nthere");
    assert_string_equal(s->msgs[2].content, "Bye");
    assert_int_equal(s->nodes[2].parent, 1);
    assert_string_equal(s->draft, "");
    assert_false(s->seed_random);
    lb_session_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_damaged_files),
        cmocka_unit_test(test_tree_round_trip),
        cmocka_unit_test(test_format1_loads),
        cmocka_unit_test(test_sigkill_during_save),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
