/*
 * tui.h — the chat screen's state, its panels and its key table.
 *
 * Layers, as in htop: term.c owns the terminal, panels.c draws panels (each a
 * const vtable) from the app's state and the engine's lb_stats snapshot and
 * never computes a figure, keys.c maps every key to a handler through one
 * table, and tui.c runs the loop. A handler returns what the loop does next.
 */
#ifndef LB_UI_TUI_H
#define LB_UI_TUI_H

#include "app.h"
#include "editor.h"

// What the loop does after a key.
typedef enum ui_action {
    UI_NONE = 0,
    UI_REDRAW = 1 << 0,   // draw again
    UI_RELAYOUT = 1 << 1, // sizes changed: lay out, then draw
    UI_QUIT = 1 << 2,
    UI_IGNORED = 1 << 3,  // an overlay did not want the key: use the key table
} ui_action;

struct tui;
struct mdview;

struct ui_panel;
typedef struct ui_panel_class {
    const char *name;
    void (*draw)(const struct ui_panel *p, struct tui *t);
    ui_action (*on_key)(const struct ui_panel *p, struct tui *t, int key); // NULL: keys go to the table
} ui_panel_class;

struct ui_panel {
    const ui_panel_class *cls;
    int y, x, h, w;
    bool visible;
};

enum { P_SESSIONS, P_TRANSCRIPT, P_INPUT, P_STATS, P_STATUS, P_HELP, P_PICKER, P_COUNT };

struct tui {
    struct app app;
    struct editor ed;
    struct ui_panel panels[P_COUNT];
    int rows, cols;
    int scroll;                 // transcript lines above the bottom
    int help_scroll;
    bool show_sessions, show_stats;
    bool raw_text;              // the transcript without Markdown (F7)
    struct mdview *views;       // the transcript's messages laid out, kept across frames (mdview.h)
    int cap_views;
    bool interrupt_armed;       // a Ctrl-C at an empty prompt: the next one quits
    bool ctrl_x;                // Ctrl-X pressed: Ctrl-E next edits in $EDITOR
    char *history_path;         // the input history file; NULL: not kept
    int picker_sel;
    bool picker_compare;        // the picker chooses a profile for /compare, not a switch
    int sel;                    // the shown message selected (F7), -1: none
    lb_profile_choice choices[32];
    int n_choices;
    lb_stats stats;             // the snapshot panels draw from
    char status[APP_NOTICE_MAX];
    double status_time;
    char completion[8][128];    // last Tab candidates
    int n_completion, completion_idx;
};

extern const ui_panel_class sessions_panel, transcript_panel, input_panel, stats_panel, status_panel,
    help_panel, picker_panel;

void ui_layout(struct tui *t);
void ui_draw(struct tui *t);
void ui_set_status(struct tui *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Keys (keys.c).
struct key_binding {
    int key;
    const char *name;   // for the help
    const char *help;   // NULL: not listed
    ui_action (*run)(struct tui *t, int key);
};
extern const struct key_binding key_table[];
extern const int n_key_bindings;
ui_action ui_handle_key(struct tui *t, int key);
// The input box's title: what Enter does now, or the history search's state.
const char *ui_input_title(const struct tui *t, char *buf, size_t cap);
void ui_open_picker(struct tui *t);

#endif
