/*
 * extedit.h — editing the message in the user's editor (Ctrl-X Ctrl-E or
 * Ctrl-G): $VISUAL, else $EDITOR, else vi, run by /bin/sh so that an editor
 * with arguments ("code --wait") works, on a temporary file that is removed
 * afterwards. The caller leaves the screen first (ui_term_suspend) and comes
 * back after (ui_term_resume).
 */
#ifndef LB_UI_EXTEDIT_H
#define LB_UI_EXTEDIT_H

#include <stddef.h>

// The edited text (malloc'd; the one newline editors add at the end removed),
// or NULL with a one-line message in err: the temporary file could not be
// written or read, or the editor failed (its exit status), the text unchanged.
char *extedit_run(const char *text, char *err, size_t cap);

#endif
