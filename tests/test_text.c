/*
 * test_text.c — wrapping by display width (ui/text.c) at widths 40 and 100:
 * CJK, combining marks, emoji (with skin tones, joined with U+200D, flags).
 *
 * Every wrapped text is checked for the same properties: each line fits the
 * width, the lines and the spaces or newlines between them give back the
 * text byte for byte, no line starts inside a character cluster, and no word
 * that would fit on a line is cut. Then exact line breaks for small cases.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "text.h"

#include <locale.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Code point at byte i (i at a code point start).
static wchar_t cp_at(const char *s, size_t n, size_t i) {
    wchar_t c;
    text_decode(s + i, n - i, &c);
    return c;
}

static size_t prev_cp(const char *s, size_t i) {
    do i--;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80);
    return i;
}

// True when a cluster may start at byte i of s: not in the middle of a UTF-8
// sequence, not before a combining mark, a variation selector, a skin tone or
// after a zero-width joiner, not between the two halves of a flag.
static bool cluster_start(const char *s, size_t n, size_t i) {
    if (i == 0 || i >= n) return true;
    if (((unsigned char)s[i] & 0xC0) == 0x80) return false;
    wchar_t c = cp_at(s, n, i), p = cp_at(s, n, prev_cp(s, i));
    if (c == '\n' || p == '\n') return true;
    if (wcwidth(c) == 0 || (c >= 0x1F3FB && c <= 0x1F3FF) || p == 0x200D) return false;
    if (c >= 0x1F1E6 && c <= 0x1F1FF && p >= 0x1F1E6 && p <= 0x1F1FF) {
        // Count the regional indicators before c: an odd count means p opens a pair with c.
        int k = 0;
        for (size_t j = i; j > 0;) {
            j = prev_cp(s, j);
            wchar_t q = cp_at(s, n, j);
            if (q < 0x1F1E6 || q > 0x1F1FF) break;
            k++;
        }
        if (k % 2 == 1) return false;
    }
    return true;
}

// The properties every wrap has; returns the number of lines.
static int check_wrap(const char *s, int width) {
    const size_t n = strlen(s);
    const int count = text_wrap(s, n, width, NULL, 0);
    assert_true(count >= 1);
    struct text_span *sp = calloc((size_t)count, sizeof *sp);
    assert_non_null(sp);
    assert_int_equal(text_wrap(s, n, width, sp, count), count);
    size_t pos = 0;
    for (int i = 0; i < count; i++) {
        // Between two lines only spaces and at most one newline are left out.
        assert_true(sp[i].start >= pos);
        int newlines = 0;
        for (size_t k = pos; k < sp[i].start; k++) {
            assert_true(s[k] == ' ' || s[k] == '\n');
            newlines += s[k] == '\n';
        }
        assert_true(newlines <= 1);
        assert_true(sp[i].start + sp[i].len <= n);
        assert_true(cluster_start(s, n, sp[i].start));
        assert_true(cluster_start(s, n, sp[i].start + sp[i].len));
        for (size_t k = sp[i].start; k < sp[i].start + sp[i].len; k++) assert_int_not_equal(s[k], '\n');
        const int cols = text_columns(s + sp[i].start, sp[i].len);
        if (cols > width) {
            // Only a single cluster wider than the line may stick out.
            int w;
            assert_int_equal(text_cluster(s + sp[i].start, sp[i].len, &w), sp[i].len);
        }
        // A word cut at the end of a line did not fit on the line it went to.
        if (i + 1 < count && sp[i + 1].start == sp[i].start + sp[i].len && sp[i].len > 0) {
            const size_t e = sp[i].start + sp[i].len;
            const bool latin_cut = s[e] != ' ' && (unsigned char)s[e] < 0x80 && s[e - 1] != ' ' &&
                                   (unsigned char)s[e - 1] < 0x80;
            if (latin_cut) {
                size_t ws = e;
                while (ws > sp[i].start && s[ws - 1] != ' ') ws--;
                // The word begins at the line's start: it was too long for any line.
                assert_int_equal(ws, sp[i].start);
            }
        }
        pos = sp[i].start + sp[i].len;
    }
    for (size_t k = pos; k < n; k++) assert_true(s[k] == ' ' || s[k] == '\n');
    free(sp);
    return count;
}

static char *repeat(const char *unit, int times) {
    size_t u = strlen(unit);
    char *s = malloc(u * (size_t)times + 1);
    assert_non_null(s);
    for (int i = 0; i < times; i++) memcpy(s + u * (size_t)i, unit, u);
    s[u * (size_t)times] = 0;
    return s;
}

// Lines of s wrapped at width, each as a malloc'd string in out; returns the count.
static int lines_of(const char *s, int width, char out[][512], int cap) {
    struct text_span sp[64];
    int n = text_wrap(s, strlen(s), width, sp, 64);
    assert_true(n <= cap);
    for (int i = 0; i < n; i++) snprintf(out[i], 512, "%.*s", (int)sp[i].len, s + sp[i].start);
    return n;
}

static const char *samples[] = {
    // Chinese with no spaces at all, with ASCII words and punctuation mixed in.
    "量化会让模型变小，但每一位都有代价。我们在终端里比较两个配置的回答，看看 KL 散度和 top-1 一致率怎样变化。"
    "长的中文段落没有空格，所以换行必须落在两个汉字之间，而不是在一个汉字的字节中间。",
    // Japanese and Korean.
    "日本語の文章も同じです。ひらがなとカタカナ、漢字が混ざっています。한국어 문장은 띄어쓰기가 있습니다 그래서 단어 사이에서 줄을 바꿉니다.",
    // Combining marks: decomposed accents and stacked marks.
    "Cafe\xcc\x81 na\xc3\xafve re\xcc\x81sume\xcc\x81 e\xcc\x81le\xcc\x80ve a\xcc\x8a\xcc\x81ngstro\xcc\x88m "
    "Zalgo: z\xcc\x8d\xcc\x8e\xcc\x84" "a\xcc\x8d\xcc\x8el\xcc\x8dg\xcc\x8e\xcc\x84o\xcc\x8d and then a rather long tail of "
    "ordinary English words to make the paragraph wrap several times over.",
    // Emoji: plain, with a skin tone, a family joined with U+200D, flags, a heart with VS16.
    "Emoji \xf0\x9f\x98\x80\xf0\x9f\x98\x80 thumbs \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd family "
    "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7 flags "
    "\xf0\x9f\x87\xaf\xf0\x9f\x87\xb5\xf0\x9f\x87\xab\xf0\x9f\x87\xb7\xf0\x9f\x87\xa9\xf0\x9f\x87\xaa heart "
    "\xe2\x9d\xa4\xef\xb8\x8f and more \xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
    "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
    "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
    "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80 end.",
    // Lines, blank lines, trailing and runs of spaces, a word longer than any line.
    "first line\n\nthird line after a blank one    with spaces   \n"
    "Pneumonoultramicroscopicsilicovolcanoconiosis-and-even-longer-words-that-do-not-fit-on-any-line-at-all "
    "x\n",
};

static void test_properties_at_40_and_100(void **state) {
    (void)state;
    static const int widths[] = {40, 100, 1, 2, 3, 7};
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++)
        for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) check_wrap(samples[i], widths[w]);
    // Everything at once, and every cut of it (a half-streamed reply).
    size_t total = 0;
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) total += strlen(samples[i]);
    char *all = malloc(total + 1), *p = all;
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) p += sprintf(p, "%s", samples[i]);
    for (size_t cut = 0; cut <= total; cut++) {
        if (cut < total && ((unsigned char)all[cut] & 0xC0) == 0x80) continue;
        char keep = all[cut];
        all[cut] = 0;
        check_wrap(all, 40);
        check_wrap(all, 100);
        all[cut] = keep;
    }
    free(all);
}

static void test_cjk_exact(void **state) {
    (void)state;
    char lines[64][512];
    // 20 ideographs fill 40 columns exactly; the 21st goes to the next line.
    char *s = repeat("中", 20);
    assert_int_equal(text_columns(s, strlen(s)), 40);
    assert_int_equal(lines_of(s, 40, lines, 64), 1);
    free(s);
    s = repeat("中", 21);
    assert_int_equal(lines_of(s, 40, lines, 64), 2);
    assert_string_equal(lines[1], "中");
    free(s);
    // An odd width: 19 ideographs (38 columns) per line at width 39, never half of one.
    s = repeat("文", 50);
    int n = lines_of(s, 39, lines, 64);
    assert_int_equal(n, 3);
    assert_int_equal(text_columns(lines[0], strlen(lines[0])), 38);
    assert_int_equal(text_columns(lines[2], strlen(lines[2])), 24);
    free(s);
    // 50 ideographs at width 100: one line.
    s = repeat("字", 50);
    assert_int_equal(lines_of(s, 100, lines, 64), 1);
    free(s);
    // ASCII then CJK: the break falls before the ideograph, not back at the space.
    assert_int_equal(lines_of("ab cdefgh中文", 10, lines, 64), 2);
    assert_string_equal(lines[0], "ab cdefgh");
    assert_string_equal(lines[1], "中文");
}

static void test_combining_exact(void **state) {
    (void)state;
    char lines[64][512];
    // e + U+0301 is one column: 40 of them fit a 40-column line.
    char *s = repeat("e\xcc\x81", 40);
    assert_int_equal(text_columns(s, strlen(s)), 40);
    assert_int_equal(lines_of(s, 40, lines, 64), 1);
    free(s);
    // The 41st moves whole, mark and all.
    s = repeat("e\xcc\x81", 41);
    assert_int_equal(lines_of(s, 40, lines, 64), 2);
    assert_string_equal(lines[1], "e\xcc\x81");
    free(s);
    // Two stacked marks stay on their base too.
    s = repeat("a\xcc\x8a\xcc\x81", 101);
    assert_int_equal(lines_of(s, 100, lines, 64), 2);
    assert_string_equal(lines[1], "a\xcc\x8a\xcc\x81");
    free(s);
}

static void test_emoji_exact(void **state) {
    (void)state;
    char lines[64][512];
    // 39 columns of text leave one: a two-column emoji goes to the next line.
    char *s = malloc(64);
    snprintf(s, 64, "%s\xf0\x9f\x98\x80", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert_int_equal(lines_of(s, 40, lines, 64), 2);
    assert_string_equal(lines[1], "\xf0\x9f\x98\x80");
    free(s);
    // A thumb with a skin tone is one cluster (4 columns as curses counts).
    int w;
    assert_int_equal(text_cluster("\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbdx", 9, &w), 8);
    assert_int_equal(w, 4);
    // A family joined with U+200D: one cluster of three emoji.
    const char *fam = "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7";
    assert_int_equal(text_cluster(fam, strlen(fam), &w), strlen(fam));
    // A flag is a pair of regional indicators; three flags are three clusters.
    const char *flags = "\xf0\x9f\x87\xaf\xf0\x9f\x87\xb5\xf0\x9f\x87\xab\xf0\x9f\x87\xb7\xf0\x9f\x87\xa9\xf0\x9f\x87\xaa";
    assert_int_equal(text_cluster(flags, strlen(flags), &w), 8);
    // At width 3 the flags come one per line (each is 2 columns).
    assert_int_equal(lines_of(flags, 3, lines, 64), 3);
    assert_string_equal(lines[1], "\xf0\x9f\x87\xab\xf0\x9f\x87\xb7");
    // 50 emoji at width 100: one line; 51: two.
    s = repeat("\xf0\x9f\x98\x80", 51);
    assert_int_equal(lines_of(s, 100, lines, 64), 2);
    assert_string_equal(lines[1], "\xf0\x9f\x98\x80");
    free(s);
}

static void test_words_and_lines(void **state) {
    (void)state;
    char lines[64][512];
    // Words move whole; the spaces at a break are dropped.
    assert_int_equal(lines_of("the quick brown fox jumps", 10, lines, 64), 3);
    assert_string_equal(lines[0], "the quick");
    assert_string_equal(lines[1], "brown fox");
    assert_string_equal(lines[2], "jumps");
    // A word longer than the line is cut.
    assert_int_equal(lines_of("abcdefghijkl", 5, lines, 64), 3);
    assert_string_equal(lines[2], "kl");
    // Newlines end lines; a final newline gives an empty last line.
    assert_int_equal(lines_of("a\n\nb\n", 40, lines, 64), 4);
    assert_string_equal(lines[1], "");
    assert_string_equal(lines[3], "");
    assert_int_equal(lines_of("", 40, lines, 64), 1);
    // Leading spaces (indented code) are kept.
    assert_int_equal(lines_of("    return x;", 40, lines, 64), 1);
    assert_string_equal(lines[0], "    return x;");
}

int main(void) {
    if (!setlocale(LC_ALL, "C.UTF-8") && !setlocale(LC_ALL, "en_US.UTF-8")) {
        printf("skip: no UTF-8 locale\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_properties_at_40_and_100),
        cmocka_unit_test(test_cjk_exact),
        cmocka_unit_test(test_combining_exact),
        cmocka_unit_test(test_emoji_exact),
        cmocka_unit_test(test_words_and_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
