/*
 * editor.h — the input box's text: a UTF-8 buffer with a cursor, the usual
 * editing operations, a history of sent messages and its incremental search
 * (Ctrl-R, as readline's reverse-i-search). No curses, no files here: the
 * history file is history.c's.
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

    // Reverse incremental search. While `searching`, buf shows the match (or
    // the text as it was, before a first match) with the cursor on it.
    bool searching;
    bool search_failed; // the query (as typed so far) matches nothing older
    char query[256];
    int match;          // history index shown; n_hist: none yet
    char *saved;        // the text before the search, for cancel
    size_t saved_cur;
};

void ed_free(struct editor *e);
void ed_set(struct editor *e, const char *s);     // replace the text, cursor at the end
void ed_insert(struct editor *e, const char *s, size_t n);
void ed_insert_char(struct editor *e, int codepoint);
size_t ed_utf8(int codepoint, char out[4]);       // its UTF-8 bytes: 1..4
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
// Append to the history (not when equal to the newest entry, nor empty).
// False when out of memory, the history unchanged.
bool ed_history_add(struct editor *e, const char *s);

// Search: start (the text is kept for cancel), type into the query, erase
// its last character, step to the next older match, and end.
void ed_search_start(struct editor *e);
void ed_search_type(struct editor *e, const char *s, size_t n);
void ed_search_erase(struct editor *e);
void ed_search_older(struct editor *e);
void ed_search_accept(struct editor *e); // keep the match as the text to edit
void ed_search_cancel(struct editor *e); // back to the text before the search
// The newest history index below `below` whose text contains q; -1 when none.
int ed_history_find(const struct editor *e, const char *q, int below);

#endif
