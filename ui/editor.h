/*
 * editor.h — the input box's text: a UTF-8 buffer with a cursor, the usual
 * editing operations and a history of sent messages.
 */
#ifndef LB_UI_EDITOR_H
#define LB_UI_EDITOR_H

#include <stdbool.h>
#include <stddef.h>

struct editor {
    char *buf;          // NUL-terminated
    size_t len, cap;
    size_t cur;         // cursor, a byte offset at a character boundary
    char **hist;        // sent messages, oldest first
    int n_hist;
    int hist_pos;       // n_hist: editing a new message
    char *draft;        // the new message while browsing the history
};

void ed_free(struct editor *e);
void ed_set(struct editor *e, const char *s);     // replace the text, cursor at the end
void ed_insert(struct editor *e, const char *s, size_t n);
void ed_insert_char(struct editor *e, int codepoint);
void ed_backspace(struct editor *e);
void ed_delete(struct editor *e);
void ed_left(struct editor *e);
void ed_right(struct editor *e);
void ed_home(struct editor *e);                    // start of the cursor's line
void ed_end(struct editor *e);
void ed_kill_to_start(struct editor *e);
void ed_kill_to_end(struct editor *e);
void ed_kill_word(struct editor *e);
// Up/Down: move between the lines of a multi-line text; on the first (last)
// line, step through the history instead.
void ed_up(struct editor *e);
void ed_down(struct editor *e);
// Take the text for sending: adds it to the history and empties the box.
// Returns a malloc'd string.
char *ed_take(struct editor *e);

#endif
