/*
 * test_markdown.c — the transcript's Markdown (ui/markdown.c): what each
 * construct renders to, that every prefix of a streamed reply renders as the
 * finished reply does as far as it goes, wrapping of the styled lines, and
 * the N-th code block that /copy N takes.
 *
 * A rendering is written as text to compare: one line per line, the line's
 * style first ("H|" heading, "K|" code block, "F|" fence label, "R|" rule,
 * "  " plain), then its runs, a styled run as {FLAGS:text} with B bold,
 * I italic, c inline code, L list marker, Q quote bar.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "markdown.h"
#include "text.h"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dumped[8192];

static const char *dump(const struct md_doc *d) {
    size_t k = 0;
    dumped[0] = 0;
    for (int i = 0; i < d->n_lines; i++) {
        const struct md_line *l = &d->lines[i];
        const char *tag = l->style & MD_HEADING ? "H|" : l->style & MD_CODE_BLOCK ? "K|" : l->style & MD_FENCE ? "F|"
                        : l->style & MD_RULE    ? "R|" : "  ";
        k += (size_t)snprintf(dumped + k, sizeof dumped - k, "%s%s", i ? "\n" : "", tag);
        for (int r = l->first_run; r < l->first_run + l->n_runs; r++) {
            const struct md_run *u = &d->runs[r];
            const unsigned st = u->style & ~(unsigned)(MD_HEADING | MD_CODE_BLOCK | MD_FENCE);
            char flags[8];
            int f = 0;
            if (st & MD_BOLD) flags[f++] = 'B';
            if (st & MD_ITALIC) flags[f++] = 'I';
            if (st & MD_CODE) flags[f++] = 'c';
            if (st & MD_BULLET) flags[f++] = 'L';
            if (st & MD_QUOTE) flags[f++] = 'Q';
            flags[f] = 0;
            if (f) k += (size_t)snprintf(dumped + k, sizeof dumped - k, "{%s:%.*s}", flags, (int)u->len, d->text + u->start);
            else k += (size_t)snprintf(dumped + k, sizeof dumped - k, "%.*s", (int)u->len, d->text + u->start);
        }
    }
    return dumped;
}

static const char *render(const char *src, bool streaming) {
    struct md_doc d = {0};
    assert_true(md_render(&d, src, strlen(src), false, streaming));
    // The runs of each line cover its bytes exactly, in order.
    for (int i = 0; i < d.n_lines; i++) {
        size_t at = d.lines[i].start;
        for (int r = d.lines[i].first_run; r < d.lines[i].first_run + d.lines[i].n_runs; r++) {
            assert_int_equal(d.runs[r].start, at);
            at += d.runs[r].len;
        }
        assert_int_equal(at, d.lines[i].start + d.lines[i].len);
    }
    dump(&d);
    md_free(&d);
    return dumped;
}

#define RENDERS(src, want) assert_string_equal(render(src, false), want)

static void test_inline(void **state) {
    (void)state;
    RENDERS("plain text", "  plain text");
    RENDERS("a **bold** word", "  a {B:bold} word");
    RENDERS("an *italic* and _also_ one", "  an {I:italic} and {I:also} one");
    RENDERS("***both*** at once", "  {BI:both} at once");
    RENDERS("**bold with *italic* inside**", "  {B:bold with }{BI:italic}{B: inside}");
    RENDERS("call `f(*x*)` now", "  call {c:f(*x*)} now");
    RENDERS("``a ` b``", "  {c:a ` b}");
    // Not emphasis: arithmetic, snake_case, an escaped star, an unclosed marker.
    RENDERS("2 * 3 * 4", "  2 * 3 * 4");
    RENDERS("snake_case_name stays", "  snake_case_name stays");
    RENDERS("\\*not italic\\*", "  *not italic*");
    RENDERS("a **never closed", "  a **never closed");
    RENDERS("a `never closed", "  a `never closed");
    // Tabs go to the next multiple of four columns.
    RENDERS("a\tb", "  a   b");
}

static void test_blocks(void **state) {
    (void)state;
    RENDERS("# Title\n## Sub **b**", "H|Title\nH|Sub {B:b}");
    RENDERS("#hashtag", "  #hashtag");
    RENDERS("- one\n* two\n  + nested\n3. three", "  {L:•} one\n  {L:•} two\n    {L:•} nested\n  {L:3.} three");
    RENDERS("> quoted *text*", "  {Q:│ }quoted {I:text}");
    RENDERS("above\n---\nbelow", "  above\nR|\n  below");
    RENDERS("```python\nx = 1  # **not bold**\n\tindented\n```\nafter",
            "F|code 1 · python\nK|x = 1  # **not bold**\nK|    indented\n  after");
    RENDERS("~~~\na\n~~~\n```c\nb\n```", "F|code 1\nK|a\nF|code 2 · c\nK|b");
    // A closing fence must be as long as the opening one.
    RENDERS("````\n```\n````", "F|code 1\nK|```");
}

static void test_line_styles(void **state) {
    (void)state;
    struct md_doc d = {0};
    const char *src = "# H\n- item text\n```\ncode\n";
    assert_true(md_render(&d, src, strlen(src), false, false));
    assert_int_equal(d.n_lines, 5);
    assert_int_equal(d.lines[0].style, MD_HEADING);
    assert_int_equal(d.lines[1].hang, 2);
    assert_int_equal(d.lines[2].style, MD_FENCE);
    assert_int_equal(d.lines[2].block, 1);
    assert_int_equal(d.lines[3].style, MD_CODE_BLOCK);
    assert_int_equal(d.lines[3].block, 1);
    assert_int_equal(d.n_blocks, 1);
    // Raw: the text as it is, markers and all.
    assert_true(md_render(&d, src, strlen(src), true, false));
    assert_string_equal(dump(&d), "  # H\n  - item text\n  ```\n  code\n  ");
    md_free(&d);
}

// Every prefix of a reply, rendered while streaming: a half-written fence is
// already code, an unclosed marker on the last line already styles the rest,
// and the lines before the last render exactly as in the finished reply.
static void test_streaming_prefixes(void **state) {
    (void)state;
    const char *reply = "# Plan\nUse **bold** and `code`.\n- first *step*\n```sh\nmake -j2\nmake check\n```\nDone.";
    char full_dump[8192];
    snprintf(full_dump, sizeof full_dump, "%s", render(reply, false));
    const size_t n = strlen(reply);
    for (size_t cut = 0; cut <= n; cut++) {
        char prefix[512];
        memcpy(prefix, reply, cut);
        prefix[cut] = 0;
        const char *got = render(prefix, true);
        // Every line but the last (the one still being written) is as in the
        // finished reply.
        const char *a = got, *b = full_dump, *ea;
        while ((ea = strchr(a, '\n'))) {
            const char *eb = strchr(b, '\n');
            assert_non_null(eb);
            assert_int_equal(ea - a, eb - b);
            assert_memory_equal(a, b, (size_t)(ea - a));
            a = ea + 1, b = eb + 1;
        }
    }
    // The half-streamed fence: code so far, label and all.
    assert_string_equal(render("text\n```py\nprint(1)\npri", true), "  text\nF|code 1 · py\nK|print(1)\nK|pri");
    // Unclosed markers on the last line while streaming style what is there.
    assert_string_equal(render("a **bo", true), "  a {B:bo}");
    assert_string_equal(render("see `mak", true), "  see {c:mak}");
    assert_string_equal(render("**bold *it", true), "  {B:bold }{BI:it}");
    // ... but not on a line already ended, nor in a finished reply.
    assert_string_equal(render("a **bo\nnext", true), "  a **bo\n  next");
    assert_string_equal(render("2*3", false), "  2*3");
}

static void test_wrap_hang_and_cjk(void **state) {
    (void)state;
    struct md_doc d = {0};
    struct md_row rows[64];
    // A list item's continuation rows start under its text.
    const char *src = "- the quick brown fox jumps over the lazy dog";
    assert_true(md_render(&d, src, strlen(src), false, false));
    int n = md_wrap(&d, 20, rows, 64);
    assert_int_equal(n, 3);
    assert_int_equal(rows[0].indent, 0);
    assert_int_equal(rows[1].indent, 2);
    assert_int_equal(rows[2].indent, 2);
    for (int i = 0; i < n; i++) assert_true(text_columns(d.text + rows[i].start, rows[i].len) + rows[i].indent <= 20);
    // CJK under bold: 30 ideographs at width 40 wrap at 20 per row, the bold run split across rows.
    char cjk[256] = "**";
    for (int i = 0; i < 30; i++) strcat(cjk, "中");
    strcat(cjk, "**");
    assert_true(md_render(&d, cjk, strlen(cjk), false, false));
    assert_int_equal(d.n_runs, 1);
    assert_int_equal(d.runs[0].style, MD_BOLD);
    n = md_wrap(&d, 40, rows, 64);
    assert_int_equal(n, 2);
    assert_int_equal(text_columns(d.text + rows[0].start, rows[0].len), 40);
    assert_int_equal(text_columns(d.text + rows[1].start, rows[1].len), 20);
    // At width 100 it is one row.
    assert_int_equal(md_wrap(&d, 100, rows, 64), 1);
    // Empty lines and rules are one row each.
    assert_true(md_render(&d, "a\n\n---", 7, false, false));
    assert_int_equal(md_wrap(&d, 40, rows, 64), 3);
    md_free(&d);
}

static void test_code_block(void **state) {
    (void)state;
    const char *src = "Two ways:\n```python\nprint('a')\nprint('b')\n```\nor\n~~~\n$ echo b\n~~~\n```\nopen to the end";
    size_t s, n;
    assert_true(md_code_block(src, strlen(src), 1, &s, &n));
    assert_int_equal(n, strlen("print('a')\nprint('b')"));
    assert_memory_equal(src + s, "print('a')\nprint('b')", n);
    assert_true(md_code_block(src, strlen(src), 2, &s, &n));
    assert_memory_equal(src + s, "$ echo b", n);
    assert_int_equal(n, 8);
    assert_true(md_code_block(src, strlen(src), 3, &s, &n));
    assert_memory_equal(src + s, "open to the end", n);
    assert_int_equal(n, 15);
    assert_false(md_code_block(src, strlen(src), 4, &s, &n));
    assert_false(md_code_block(src, strlen(src), 0, &s, &n));
    // An empty block.
    assert_true(md_code_block("```\n```", 7, 1, &s, &n));
    assert_int_equal(n, 0);
    assert_false(md_code_block("no code here", 12, 1, &s, &n));
}

int main(void) {
    if (!setlocale(LC_ALL, "C.UTF-8") && !setlocale(LC_ALL, "en_US.UTF-8")) {
        printf("skip: no UTF-8 locale\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inline),
        cmocka_unit_test(test_blocks),
        cmocka_unit_test(test_line_styles),
        cmocka_unit_test(test_streaming_prefixes),
        cmocka_unit_test(test_wrap_hang_and_cjk),
        cmocka_unit_test(test_code_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
