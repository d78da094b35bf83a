/*
 * test_history.c — the input history: the reverse incremental search of the
 * message box (ui/editor.c) and the history file (ui/history.c): escaping of
 * multi-line messages, duplicates, the HISTORY_MAX newest kept, a damaged
 * file named with its line, and an append killed with SIGKILL leaving the old
 * or the new file, never a mix.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "editor.h"
#include "history.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[256];

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/lowbit-test-history-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *path_of(const char *name) {
    static char buf[2][400];
    static int k;
    char *p = buf[k++ % 2];
    snprintf(p, 400, "%s/%s", dir, name);
    return p;
}

static struct editor with_history(const char **items, int n) {
    struct editor e = {0};
    for (int i = 0; i < n; i++) assert_true(ed_history_add(&e, items[i]));
    e.hist_pos = e.n_hist;
    ed_set(&e, "");
    return e;
}

static void type(struct editor *e, const char *s) { ed_search_type(e, s, strlen(s)); }

static void test_search(void **state) {
    (void)state;
    const char *items[] = {"make check", "git status", "make -j2", "ls", "remake the docs"};
    struct editor e = with_history(items, 5);
    ed_set(&e, "half typed");
    ed_search_start(&e);
    // Incremental: each character narrows the search from the entry shown.
    type(&e, "m");
    assert_string_equal(e.buf, "remake the docs");
    assert_int_equal(e.cur, 2); // on the match
    type(&e, "ake");
    assert_string_equal(e.buf, "remake the docs");
    type(&e, " ");
    assert_string_equal(e.buf, "remake the docs");
    type(&e, "-");
    assert_string_equal(e.buf, "make -j2");
    assert_int_equal(e.cur, 0);
    assert_false(e.search_failed);
    // Erasing goes back to the newest match of the shorter query.
    ed_search_erase(&e);
    assert_string_equal(e.buf, "remake the docs");
    // Ctrl-R: older matches, then a failure that keeps the last match shown.
    ed_search_older(&e);
    assert_string_equal(e.buf, "make -j2");
    ed_search_older(&e);
    assert_string_equal(e.buf, "make check");
    ed_search_older(&e);
    assert_true(e.search_failed);
    assert_string_equal(e.buf, "make check");
    // A query matching nothing fails; cancel brings back the text and cursor.
    type(&e, "zzz");
    assert_true(e.search_failed);
    ed_search_cancel(&e);
    assert_false(e.searching);
    assert_string_equal(e.buf, "half typed");
    assert_int_equal(e.cur, strlen("half typed"));
    // Accept keeps the match to edit; Down walks newer, then to the text from before.
    ed_search_start(&e);
    type(&e, "status");
    assert_string_equal(e.buf, "git status");
    ed_search_accept(&e);
    assert_false(e.searching);
    assert_string_equal(e.buf, "git status");
    ed_down(&e);
    assert_string_equal(e.buf, "make -j2");
    ed_down(&e);
    ed_down(&e);
    ed_down(&e);
    assert_string_equal(e.buf, "half typed");
    // Multi-byte queries and entries.
    assert_true(ed_history_add(&e, "量化の質問"));
    ed_search_start(&e);
    type(&e, "量化");
    assert_string_equal(e.buf, "量化の質問");
    ed_search_erase(&e); // one character, all its bytes
    assert_string_equal(e.query, "量");
    ed_search_cancel(&e);
    ed_free(&e);
}

static void test_history_add(void **state) {
    (void)state;
    struct editor e = {0};
    assert_true(ed_history_add(&e, "a"));
    assert_true(ed_history_add(&e, "a")); // the same as the newest: not added
    assert_true(ed_history_add(&e, ""));
    assert_true(ed_history_add(&e, "b"));
    assert_true(ed_history_add(&e, "a"));
    assert_int_equal(e.n_hist, 3);
    ed_set(&e, "sent");
    char *s = ed_take(&e);
    assert_string_equal(s, "sent");
    free(s);
    assert_int_equal(e.n_hist, 4);
    assert_int_equal(ed_history_find(&e, "a", e.n_hist), 2);
    assert_int_equal(ed_history_find(&e, "a", 2), 0);
    assert_int_equal(ed_history_find(&e, "nope", e.n_hist), -1);
    ed_free(&e);
}

static void test_file(void **state) {
    (void)state;
    const char *path = path_of("sub/dir/history");
    char err[512];
    char **v;
    int n;
    // Missing: empty, not an error.
    assert_true(history_load(path, &v, &n, err, sizeof err));
    assert_int_equal(n, 0);
    // Multi-line messages, tabs and backslashes survive; the directory is created.
    const char *msgs[] = {"first", "line one\nline two\n\tindented \\ backslash\r", "third"};
    for (int i = 0; i < 3; i++) assert_true(history_append(path, msgs[i], err, sizeof err));
    assert_true(history_append(path, "third", err, sizeof err)); // a repeat of the newest
    assert_true(history_load(path, &v, &n, err, sizeof err));
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) assert_string_equal(v[i], msgs[i]);
    history_free(v, n);
    assert_int_equal(access(path_of("sub/dir/history.tmp"), F_OK), -1);
    // One entry per line on disk.
    FILE *f = fopen(path, "r");
    char buf[256];
    int lines = 0;
    while (fgets(buf, sizeof buf, f)) lines++;
    fclose(f);
    assert_int_equal(lines, 3);

    // Only the newest HISTORY_MAX are kept.
    const char *big = path_of("big");
    f = fopen(big, "w");
    for (int i = 0; i < HISTORY_MAX; i++) fprintf(f, "entry %d\n", i);
    fclose(f);
    for (int i = 0; i < 5; i++) {
        snprintf(buf, sizeof buf, "new %d", i);
        assert_true(history_append(big, buf, err, sizeof err));
    }
    assert_true(history_load(big, &v, &n, err, sizeof err));
    assert_int_equal(n, HISTORY_MAX);
    assert_string_equal(v[0], "entry 5");
    assert_string_equal(v[n - 1], "new 4");
    history_free(v, n);

    // A bad escape: the file and the line are named, nothing is returned or overwritten.
    const char *bad = path_of("bad");
    f = fopen(bad, "w");
    fputs("ok\nalso ok\nbroken \\x escape\n", f);
    fclose(f);
    assert_false(history_load(bad, &v, &n, err, sizeof err));
    assert_null(v);
    assert_non_null(strstr(err, bad));
    assert_non_null(strstr(err, "line 3"));
    assert_false(history_append(bad, "more", err, sizeof err));
    f = fopen(bad, "r");
    lines = 0;
    while (fgets(buf, sizeof buf, f)) lines++;
    fclose(f);
    assert_int_equal(lines, 3);
}

// An append killed at a random moment leaves a file that loads, holding
// either the entries before or those after.
static void test_sigkill_during_append(void **state) {
    (void)state;
    const char *path = path_of("killed");
    char err[512];
    srand((unsigned)time(NULL));
    int kept_old = 0, kept_new = 0;
    for (int round = 0; round < 12; round++) {
        char **v;
        int before;
        assert_true(history_load(path, &v, &before, err, sizeof err));
        history_free(v, before);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            char e[512], entry[64];
            for (int i = 0;; i++) {
                snprintf(entry, sizeof entry, "round %d entry %d\nsecond line", round, i);
                if (!history_append(path, entry, e, sizeof e)) _exit(1);
            }
        }
        usleep(1000 + (useconds_t)(rand() % 20000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        assert_true(WIFSIGNALED(status));
        int after;
        assert_true(history_load(path, &v, &after, err, sizeof err));
        // Every entry is whole: two lines joined, as written.
        for (int i = 0; i < after; i++) assert_non_null(strstr(v[i], "\nsecond line"));
        history_free(v, after);
        if (after == before) kept_old++;
        else kept_new++;
        assert_true(after <= HISTORY_MAX);
    }
    fprintf(stderr, "sigkill: %d rounds ended with new entries, %d with none\n", kept_new, kept_old);
    assert_true(kept_new > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_search),
        cmocka_unit_test(test_history_add),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_sigkill_during_append),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
