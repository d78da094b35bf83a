/*
 * text.c — UTF-8 decoding, display widths, clusters and line breaking (see text.h).
 */
#include "text.h"

#include <stdbool.h>

int text_decode(const char *str, size_t n, wchar_t *wc) {
    const unsigned char *s = (const unsigned char *)str;
    if (s[0] < 0x80) {
        *wc = s[0];
        return 1;
    }
    int len = s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 && s[0] < 0xE0 ? 2 : 0;
    if (len == 0 || (size_t)len > n) {
        *wc = 0xFFFD;
        return 1;
    }
    unsigned v = s[0] & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *wc = 0xFFFD;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    *wc = (wchar_t)v;
    return len;
}

int text_width(wchar_t wc) {
    if (wc < 0x20 || wc == 0x7F) return 1;
    int w = wcwidth(wc);
    return w < 0 ? 1 : w;
}

int text_columns(const char *s, size_t n) {
    int cols = 0;
    for (size_t i = 0; i < n;) {
        wchar_t wc;
        i += (size_t)text_decode(s + i, n - i, &wc);
        cols += text_width(wc);
    }
    return cols;
}

// --- clusters ------------------------------------------------------------------------

static bool is_regional(wchar_t c) { return c >= 0x1F1E6 && c <= 0x1F1FF; }
static bool is_skin_tone(wchar_t c) { return c >= 0x1F3FB && c <= 0x1F3FF; }

// What stays with the character before it: combining marks and other
// zero-width code points (variation selectors, U+200D itself), skin tones.
static bool extends(wchar_t c) { return c >= 0x20 && c != 0x7F && (wcwidth(c) == 0 || is_skin_tone(c)); }

size_t text_cluster(const char *s, size_t n, int *cols) {
    wchar_t c;
    size_t i = (size_t)text_decode(s, n, &c);
    int w = text_width(c);
    if (c == '\n') {
        *cols = 0;
        return i;
    }
    bool joined = false;                   // the last code point was U+200D
    bool flag_open = is_regional(c);       // a first regional indicator waits for its pair
    while (i < n) {
        wchar_t d;
        int len = text_decode(s + i, n - i, &d);
        if (d == '\n') break;
        if (joined || extends(d)) {
            joined = d == 0x200D;
        } else if (flag_open && is_regional(d)) {
            flag_open = false;
        } else {
            break;
        }
        w += text_width(d);
        i += (size_t)len;
    }
    *cols = w;
    return i;
}

// --- lines ---------------------------------------------------------------------------

size_t text_line(const char *s, size_t n, int width, size_t *next) {
    if (width < 1) width = 1;
    size_t i = 0;
    size_t brk = 0, brk_next = 0; // the last break opportunity: line end and next start (0: none)
    bool prev_space = false, prev_wide = false;
    int cols = 0;
    while (i < n) {
        if (s[i] == '\n') {
            *next = i + 1;
            return i;
        }
        int w;
        const size_t len = text_cluster(s + i, n - i, &w);
        const bool space = s[i] == ' ' && len == 1;
        if (cols + w > width && i > 0) {
            if (space) {
                // Break in a run of spaces: the line ends where the run began,
                // the next one starts after it (and after a newline ending it).
                size_t end = prev_space ? brk : i, j = i;
                while (j < n && s[j] == ' ') j++;
                if (j < n && s[j] == '\n') j++;
                if (end == 0) end = i;
                *next = j;
                return end;
            }
            if (w == 2 || prev_wide || brk == 0) {
                *next = i;
                return i;
            }
            *next = brk_next;
            return brk;
        }
        if (space) {
            if (!prev_space) brk = i;
            brk_next = i + 1;
        } else if (w == 2 || prev_wide) {
            brk = brk_next = i;
        }
        cols += w;
        i += len;
        prev_space = space;
        prev_wide = w == 2;
    }
    *next = n;
    return n;
}

int text_wrap(const char *s, size_t n, int width, struct text_span *out, int cap) {
    int lines = 0;
    size_t pos = 0;
    for (;;) {
        size_t next;
        const size_t len = text_line(s + pos, n - pos, width, &next);
        if (lines < cap) out[lines] = (struct text_span){pos, len};
        lines++;
        if (pos + next >= n) break;
        pos += next;
    }
    if (n > 0 && s[n - 1] == '\n') {
        if (lines < cap) out[lines] = (struct text_span){n, 0};
        lines++;
    }
    return lines;
}
