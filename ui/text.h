/*
 * text.h — UTF-8 text on a character grid: display widths (wcwidth, so CJK
 * and emoji take two columns, combining marks none) and wrapping.
 *
 * Widths are what curses uses to place characters (wcwidth of each code
 * point, summed), so that a line cut here fits where curses draws it. A line
 * is never cut inside a character cluster: a base and the combining marks,
 * variation selectors and skin tones after it, an emoji joined with U+200D,
 * a pair of regional indicators (a flag). Needs a UTF-8 locale (setlocale).
 */
#ifndef LB_UI_TEXT_H
#define LB_UI_TEXT_H

#include <stddef.h>
#include <wchar.h>

// Decode the character at s (n bytes left): its length in bytes (1 for an
// invalid byte, which decodes to U+FFFD).
int text_decode(const char *s, size_t n, wchar_t *wc);
// Columns the character takes: 0..2. Control characters count 1 (drawn as a space).
int text_width(wchar_t wc);
// Columns of s[0..n).
int text_columns(const char *s, size_t n);
// The cluster starting at s (n > 0 bytes left): its length in bytes, and its
// columns in *cols. A newline is a cluster of its own.
size_t text_cluster(const char *s, size_t n, int *cols);

// The first screen line of s[0..n) at most `width` columns wide (at least one
// cluster, however wide): returns its length in bytes, without the newline
// that ends it; *next is where the following line starts (after that newline,
// or after the spaces where the line was broken). The line breaks after a
// space, or before or after a wide (CJK) character, where it can; else inside
// a word.
size_t text_line(const char *s, size_t n, int width, size_t *next);

struct text_span {
    size_t start, len; // bytes of one screen line, without the newline
};
// Cut s[0..n) into lines with text_line. Writes up to cap spans; returns how
// many lines there are (which may be more than cap). "" is one empty line,
// and a text ending in a newline ends with an empty line.
int text_wrap(const char *s, size_t n, int width, struct text_span *out, int cap);

#endif
