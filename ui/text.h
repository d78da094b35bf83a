/*
 * text.h — UTF-8 text on a character grid: display widths (wcwidth, so CJK
 * and emoji take two columns, combining marks none) and word wrapping.
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

struct text_span {
    size_t start, len; // bytes of one screen line, without the newline
};
// Cut s[0..n) into lines of at most `width` columns, at newlines and, where
// possible, after a space. Writes up to cap spans; returns how many lines
// there are (which may be more than cap).
int text_wrap(const char *s, size_t n, int width, struct text_span *out, int cap);

#endif
