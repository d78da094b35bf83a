/*
 * mdview.h — one message of the transcript laid out for the screen: its text
 * rendered (Markdown, or raw) and wrapped to the panel's width, then drawn
 * row by row with curses attributes. Laid out again from the stored text on
 * every frame, so a resize or a new token reflows the whole message.
 */
#ifndef LB_UI_MDVIEW_H
#define LB_UI_MDVIEW_H

#include "markdown.h"

#include <curses.h>

struct mdview {
    struct md_doc doc;
    struct md_row *rows;
    int n_rows, cap_rows;
};

// Lay out text (trailing newlines left out) at `width` columns; raw: no
// Markdown; streaming: the text is a reply still being written. False when
// out of memory (the view is then empty).
bool mdview_layout(struct mdview *v, const char *text, int width, bool raw, bool streaming);
// Draw row `row` at (y, x), clipped to width, every attribute or'ed with `extra`.
void mdview_draw_row(const struct mdview *v, int row, int y, int x, int width, attr_t extra);
void mdview_free(struct mdview *v);

#endif
