/*
 * mdview.h — one message of the transcript laid out for the screen: its text
 * rendered (Markdown, or raw) and wrapped to the panel's width, then drawn
 * row by row with curses attributes. Asked again on every frame; laid out
 * again from the stored text whenever the text (a new token), the width (a
 * resize) or the mode changed, else kept: a long transcript costs a hash of
 * its text per frame, not a layout (about 70 ms per MB of text).
 */
#ifndef LB_UI_MDVIEW_H
#define LB_UI_MDVIEW_H

#include "markdown.h"

#include <curses.h>

struct mdview {
    struct md_doc doc;
    struct md_row *rows;
    int n_rows, cap_rows;
    // What the layout was made from.
    bool valid, raw, streaming;
    int width;
    size_t len;
    unsigned long long hash; // FNV-1a of the text
};

// Lay out text (trailing newlines left out) at `width` columns; raw: no
// Markdown; streaming: the text is a reply still being written. False when
// out of memory (the view is then empty).
bool mdview_layout(struct mdview *v, const char *text, int width, bool raw, bool streaming);
// Draw row `row` at (y, x), clipped to width, every attribute or'ed with `extra`.
void mdview_draw_row(const struct mdview *v, int row, int y, int x, int width, attr_t extra);
void mdview_free(struct mdview *v);

// A growing array of views, one per message, kept across frames: *views has
// at least n after the call (new ones zeroed). False when out of memory.
bool mdview_reserve(struct mdview **views, int *cap, int n);
void mdview_free_all(struct mdview *views, int cap);

#endif
