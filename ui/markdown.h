/*
 * markdown.h — the light Markdown of the transcript, as pure functions: a
 * reply's text in, styled lines out (md_render), those lines cut to a width
 * (md_wrap), and the N-th fenced code block of a text (md_code_block, for
 * /copy N). No curses here; mdview.c draws what these produce.
 *
 * What is understood: # headings, **bold**, *italic* (and __, _), `inline
 * code`, ``` and ~~~ fenced blocks, - * + and 1. lists, > quotes, --- rules,
 * backslash escapes. A line stays a line (LLM replies place their newlines on
 * purpose); nothing is reflowed across lines.
 *
 * Streaming: md_render of any prefix of a reply shows that prefix as the full
 * reply will show it, as far as it goes. An unclosed ``` block is code up to
 * the end; with `streaming` set, an unclosed **, * or ` on the last line
 * styles the rest of it (the closing marker is still to come). Without it
 * (a finished reply) unclosed markers are plain text.
 */
#ifndef LB_UI_MARKDOWN_H
#define LB_UI_MARKDOWN_H

#include <stdbool.h>
#include <stddef.h>

enum md_style {
    MD_BOLD = 1 << 0,
    MD_ITALIC = 1 << 1,
    MD_CODE = 1 << 2,       // `inline code`
    MD_HEADING = 1 << 3,    // a # heading line
    MD_CODE_BLOCK = 1 << 4, // a line inside a fenced block: drawn on its own background
    MD_FENCE = 1 << 5,      // the label "code N · lang" that replaces an opening fence
    MD_BULLET = 1 << 6,     // a list item's marker ("•", "2.")
    MD_QUOTE = 1 << 7,      // the bar of a > quote
    MD_RULE = 1 << 8,       // a --- line: drawn as a rule across the width (no text)
};

struct md_run {             // bytes [start, start + len) of md_doc.text, in one style
    size_t start, len;
    unsigned style;
};

struct md_line {
    size_t start, len;      // bytes of md_doc.text, without a newline
    unsigned style;         // of the whole line: MD_HEADING, MD_CODE_BLOCK, MD_FENCE, MD_RULE or 0
    int hang;               // columns a wrapped continuation is indented by (a list item's text)
    int first_run, n_runs;  // runs[first_run ..] cover the line's bytes in order
    int block;              // 1-based code block of a MD_CODE_BLOCK or MD_FENCE line, else 0
};

struct md_doc {
    char *text;             // the lines' text, markers removed, tabs expanded
    size_t len, cap;
    struct md_run *runs;
    int n_runs, cap_runs;
    struct md_line *lines;
    int n_lines, cap_lines;
    int n_blocks;           // fenced code blocks seen
};

// Render src[0..n) into d (which must be zeroed or md_free'd; reused buffers
// are kept). raw: no Markdown, one plain line per source line. Returns false
// when out of memory (d is then freed).
bool md_render(struct md_doc *d, const char *src, size_t n, bool raw, bool streaming);
void md_free(struct md_doc *d);

// One screen row: bytes [start, start + len) of d->text, part of line `line`,
// drawn `indent` columns in.
struct md_row {
    int line;
    size_t start, len;
    int indent;
};
// Cut every line to `width` columns (text_line); a list item's continuation
// rows are indented by its hang. Writes up to cap rows; returns how many there are.
int md_wrap(const struct md_doc *d, int width, struct md_row *out, int cap);

// The content of the index-th (1-based) fenced code block of src[0..n):
// bytes [*start, *start + *len), without its fences; an unclosed block runs to
// the end. False when there are fewer blocks.
bool md_code_block(const char *src, size_t n, int index, size_t *start, size_t *len);

#endif
