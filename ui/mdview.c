/*
 * mdview.c — Markdown rows on the curses screen (see mdview.h). Styles map to
 * attributes here and nowhere else: headings cyan and bold, code on its own
 * background (color pair 7, set up in term.c; reverse video without colors),
 * list markers yellow, quotes dim.
 */
#define _XOPEN_SOURCE_EXTENDED 1
#include "mdview.h"
#include "text.h"

#include <stdlib.h>
#include <string.h>

static unsigned long long fnv1a(const char *s, size_t n) {
    unsigned long long h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

bool mdview_layout(struct mdview *v, const char *text, int width, bool raw, bool streaming) {
    size_t n = strlen(text);
    while (n > 0 && text[n - 1] == '\n') n--;
    const unsigned long long h = fnv1a(text, n);
    if (v->valid && v->len == n && v->hash == h && v->width == width && v->raw == raw && v->streaming == streaming)
        return true;
    v->valid = false;
    v->n_rows = 0;
    if (!md_render(&v->doc, text, n, raw, streaming)) return false;
    int need = md_wrap(&v->doc, width, v->rows, v->cap_rows);
    if (need > v->cap_rows) {
        struct md_row *r = realloc(v->rows, (size_t)need * sizeof *r);
        if (!r) return false;
        v->rows = r;
        v->cap_rows = need;
        md_wrap(&v->doc, width, v->rows, v->cap_rows);
    }
    v->n_rows = need;
    v->valid = true;
    v->len = n, v->hash = h, v->width = width, v->raw = raw, v->streaming = streaming;
    return true;
}

bool mdview_reserve(struct mdview **views, int *cap, int n) {
    if (n <= *cap) return true;
    int c = *cap ? *cap : 16;
    while (c < n) c *= 2;
    struct mdview *v = realloc(*views, (size_t)c * sizeof *v);
    if (!v) return false;
    memset(v + *cap, 0, (size_t)(c - *cap) * sizeof *v);
    *views = v;
    *cap = c;
    return true;
}

void mdview_free_all(struct mdview *views, int cap) {
    for (int i = 0; i < cap; i++) mdview_free(&views[i]);
    free(views);
}

void mdview_free(struct mdview *v) {
    md_free(&v->doc);
    free(v->rows);
    memset(v, 0, sizeof *v);
}

static attr_t code_attr(void) { return has_colors() ? COLOR_PAIR(7) : A_REVERSE; }

// One color pair per cell: code's background wins over a heading's or a
// marker's color.
static attr_t attr_of(unsigned style) {
    attr_t a = A_NORMAL;
    if (style & MD_BOLD) a |= A_BOLD;
#ifdef A_ITALIC
    if (style & MD_ITALIC) a |= A_ITALIC;
#else
    if (style & MD_ITALIC) a |= A_UNDERLINE;
#endif
    if (style & MD_QUOTE) a |= A_DIM;
    if (style & MD_FENCE) a |= A_DIM;
    if (style & (MD_CODE | MD_CODE_BLOCK | MD_FENCE)) return a | code_attr();
    if (style & MD_HEADING) return a | COLOR_PAIR(1) | A_BOLD;
    if (style & MD_BULLET) return a | COLOR_PAIR(3) | A_BOLD;
    return a;
}

// Draw s[0..n) from column *col on, stopping at width; control characters as spaces.
static void draw_bytes(int y, int x, int *col, int width, const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        wchar_t wc;
        const int len = text_decode(s + i, n - i, &wc);
        const int w = text_width(wc);
        if (*col + w > width) break;
        if (wc < 0x20 || wc == 0x7F) mvaddch(y, x + *col, ' ');
        else if (w > 0) mvaddnstr(y, x + *col, s + i, len);
        else if (*col > 0) addnstr(s + i, len); // a combining mark joins the character before it
        *col += w;
        i += (size_t)len;
    }
}

void mdview_draw_row(const struct mdview *v, int row, int y, int x, int width, attr_t extra) {
    if (row < 0 || row >= v->n_rows || width < 1) return;
    const struct md_row *r = &v->rows[row];
    const struct md_line *l = &v->doc.lines[r->line];
    if (l->style & MD_RULE) {
        attrset(A_DIM | extra);
        for (int i = 0; i < width; i++) mvaddstr(y, x + i, "\xe2\x94\x80"); // ─
        attrset(A_NORMAL);
        return;
    }
    if (l->style & (MD_CODE_BLOCK | MD_FENCE)) {
        // The block's background runs across the whole row.
        attrset(code_attr() | extra);
        for (int i = 0; i < width; i++) mvaddch(y, x + i, ' ');
    }
    int col = r->indent;
    const size_t from = r->start, to = r->start + r->len;
    for (int k = l->first_run; k < l->first_run + l->n_runs; k++) {
        const struct md_run *u = &v->doc.runs[k];
        const size_t a = u->start > from ? u->start : from, b = u->start + u->len < to ? u->start + u->len : to;
        if (a >= b) continue;
        const attr_t at = attr_of(u->style | l->style) | extra;
        attrset(at);
        draw_bytes(y, x, &col, width, v->doc.text + a, b - a);
    }
    attrset(A_NORMAL);
}
