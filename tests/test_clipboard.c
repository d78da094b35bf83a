/*
 * test_clipboard.c — the OSC 52 escape of /copy (ui/clipboard.c): base64
 * against the RFC 4648 test vectors, the exact bytes of the escape as it is
 * and wrapped for tmux, snprintf-style lengths, and clip_copy's refusals
 * (no terminal, TERM=dumb or linux, too large) with their messages.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "clipboard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_base64(void **state) {
    (void)state;
    static const char *vectors[][2] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
    };
    char out[64];
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        size_t n = clip_base64((const unsigned char *)vectors[i][0], strlen(vectors[i][0]), out, sizeof out);
        assert_int_equal(n, strlen(vectors[i][1]));
        assert_string_equal(out, vectors[i][1]);
    }
    // Every byte value, UTF-8 and high bits included.
    unsigned char all[256];
    for (int i = 0; i < 256; i++) all[i] = (unsigned char)i;
    char big[400];
    assert_int_equal(clip_base64(all, 256, big, sizeof big), 344);
    assert_memory_equal(big, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v", 64);
    assert_string_equal(big + 340, "/w==");
    // Too small a buffer: the full length, a truncated NUL-terminated prefix.
    assert_int_equal(clip_base64((const unsigned char *)"foobar", 6, out, 5), 8);
    assert_string_equal(out, "Zm9v");
}

static void test_escape_bytes(void **state) {
    (void)state;
    char out[256];
    // "héllo\n" in UTF-8 is 7 bytes: aMOpbGxvCg== .
    const char *text = "h\xc3\xa9llo\n";
    size_t n = clip_osc52(text, strlen(text), false, out, sizeof out);
    static const char plain[] = "\033]52;c;aMOpbGxvCg==\a";
    assert_int_equal(n, sizeof plain - 1);
    assert_memory_equal(out, plain, n);
    // In tmux: the same escape, then the passthrough wrapper with its ESC doubled.
    n = clip_osc52(text, strlen(text), true, out, sizeof out);
    static const char tmux[] = "\033]52;c;aMOpbGxvCg==\a"
                               "\033Ptmux;\033\033]52;c;aMOpbGxvCg==\a\033\\";
    assert_int_equal(n, sizeof tmux - 1);
    assert_memory_equal(out, tmux, n);
    // Length first (snprintf style): NULL, 0 writes nothing.
    assert_int_equal(clip_osc52(text, strlen(text), true, NULL, 0), sizeof tmux - 1);
    assert_int_equal(clip_osc52(text, strlen(text), false, out, 5), sizeof plain - 1);
    assert_string_equal(out, "");
    // Empty text: an escape that clears the clipboard.
    n = clip_osc52("", 0, false, out, sizeof out);
    assert_memory_equal(out, "\033]52;c;\a", n);
}

// clip_copy in a child without a controlling terminal (setsid): it must say
// so, not write anywhere.
static void test_refusals(void **state) {
    (void)state;
    char msg[512];
    setenv("TERM", "dumb", 1);
    assert_false(clip_copy("x", 1, "the last answer", msg, sizeof msg));
    assert_non_null(strstr(msg, "TERM=dumb"));
    setenv("TERM", "linux", 1);
    assert_false(clip_copy("x", 1, "the last answer", msg, sizeof msg));
    assert_non_null(strstr(msg, "OSC 52"));
    setenv("TERM", "xterm-256color", 1);
    char *big = calloc(CLIP_MAX_BYTES + 1, 1);
    assert_false(clip_copy(big, CLIP_MAX_BYTES + 1, "the last answer", msg, sizeof msg));
    assert_non_null(strstr(msg, "/export"));
    free(big);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        setsid(); // no controlling terminal: /dev/tty cannot be opened
        char m[512];
        bool ok = clip_copy("x", 1, "code block 1", m, sizeof m);
        dprintf(fds[1], "%d %s", ok, m);
        _exit(0);
    }
    close(fds[1]);
    char got[600] = {0};
    ssize_t r = read(fds[0], got, sizeof got - 1);
    close(fds[0]);
    waitpid(pid, NULL, 0);
    assert_true(r > 0);
    assert_int_equal(got[0], '0');
    assert_non_null(strstr(got, "no terminal"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_escape_bytes),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
