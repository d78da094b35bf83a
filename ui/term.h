/*
 * term.h — the terminal: curses setup, keys as one integer, bracketed paste,
 * leaving the screen for an editor, and putting the terminal back on every
 * way out.
 *
 * ui_term_restore() is idempotent and runs from atexit too. SIGINT (Ctrl-C,
 * or kill -INT) never ends the program: each one is counted and comes back as
 * the key UI_KEY_INTERRUPT, for the key table to decide (stop the reply, or
 * quit). SIGTERM and SIGHUP only set a flag the loop reads
 * (ui_term_quit_requested). A fatal signal (SEGV, BUS, ILL, FPE, ABRT)
 * restores the terminal with async-signal-safe calls only, then re-raises to
 * the handler that was there before, so a sanitizer's report still prints on
 * a sane terminal.
 */
#ifndef LB_UI_TERM_H
#define LB_UI_TERM_H

#include <stdbool.h>
#include <stddef.h>

// Keys: a character is its code point; a curses function key is UI_FKEY | code.
#define UI_FKEY 0x40000000
#define UI_KEY_ESC 27
#define UI_KEY_ALT_ENTER (UI_FKEY | 0x3fff0001) // Esc followed by Enter
#define UI_KEY_INTERRUPT (UI_FKEY | 0x3fff0002) // Ctrl-C (SIGINT)
#define UI_KEY_PASTE (UI_FKEY | 0x3fff0003)     // a bracketed paste: its text is ui_term_paste()

bool ui_term_init(void);
void ui_term_restore(void);
bool ui_term_quit_requested(void);
// The next key, waiting at most timeout_ms; -1 when none came.
int ui_term_read_key(int timeout_ms);
// The text of the last UI_KEY_PASTE: UTF-8, newlines as "\n" (the terminal's
// carriage returns converted), valid until the next ui_term_read_key.
const char *ui_term_paste(size_t *len);

// Leave the screen for another program (the $EDITOR) and come back: the
// terminal is in its normal modes in between. resume redraws from scratch.
void ui_term_suspend(void);
void ui_term_resume(void);

#endif
