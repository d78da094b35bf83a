/*
 * ui.h — what src/cmd_chat.c calls: the chat screen on a terminal, the line
 * REPL otherwise. Both return the process exit status.
 */
#ifndef LB_UI_H
#define LB_UI_H

#include "app.h"

int ui_tui_run(const struct app_options *opt);  // ncurses screen (tui.c)
int ui_repl_run(const struct app_options *opt); // plain lines on stdin/stdout (repl.c)

#endif
