/*
 * commands.h — the slash commands, one table shared by the screen and the REPL.
 */
#ifndef LB_UI_COMMANDS_H
#define LB_UI_COMMANDS_H

#include "app.h"

#include <stddef.h>

// What the front end does after a command.
typedef enum cmd_result {
    CMD_DONE,     // done; the message (if any) is for the user
    CMD_ERROR,    // bad arguments; the message says what was expected
    CMD_QUIT,
    CMD_PICKER,   // open the profile picker (the screen) / list profiles (the REPL)
    CMD_HELP,     // show the help
    CMD_INPUT,    // app->input is text for the input box (/edit N without text: the old one to change)
    CMD_COMPARE,  // open the profile picker to choose what /compare runs
} cmd_result;

struct command {
    const char *name;       // "/temp"
    const char *args;       // "T" — shown in the help
    const char *help;
    cmd_result (*run)(struct app *a, const char *arg, char *msg, size_t cap);
};

extern const struct command commands[];
extern const int n_commands;

// Run a line starting with '/'. msg receives a one-line message ("" if none).
cmd_result cmd_run_line(struct app *a, const char *line, char *msg, size_t cap);

// Completions of the line typed so far: a command name, or the argument of
// /template and /profile. Writes up to cap full-line candidates (static or
// owned by `store`, valid until the next call); returns how many.
int cmd_complete(struct app *a, const char *line, char out[][128], int cap);

#endif
