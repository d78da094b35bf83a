/*
 * term.h — the terminal: curses setup, keys as one integer, and putting the
 * terminal back on every way out.
 *
 * ui_term_restore() is idempotent and runs from atexit too. SIGINT and SIGTERM
 * only set a flag the loop reads (ui_term_quit_requested). A fatal signal
 * (SEGV, BUS, ILL, FPE, ABRT) restores the terminal with async-signal-safe
 * calls only, then re-raises to the handler that was there before, so a
 * sanitizer's report still prints on a sane terminal.
 */
#ifndef LB_UI_TERM_H
#define LB_UI_TERM_H

#include <stdbool.h>

// Keys: a character is its code point; a curses function key is UI_FKEY | code.
#define UI_FKEY 0x40000000
#define UI_KEY_ESC 27
#define UI_KEY_ALT_ENTER (UI_FKEY | 0x3fff0001) // Esc followed by Enter

bool ui_term_init(void);
void ui_term_restore(void);
bool ui_term_quit_requested(void);
// The next key, waiting at most timeout_ms; -1 when none came.
int ui_term_read_key(int timeout_ms);

#endif
