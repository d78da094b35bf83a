/*
 * keys.c — every key of the chat screen, in one table. Ctrl-C comes first
 * (it must work whatever is open); then an open overlay (help, profile
 * picker) sees a key; then the history search, while it runs; what they
 * ignore comes to the table. A key not in the table that is a printable
 * character goes into the input box.
 */
#define _XOPEN_SOURCE_EXTENDED 1
#include "tui.h"
#include "commands.h"
#include "extedit.h"
#include "history.h"
#include "term.h"

#include <curses.h>
#include <stdlib.h>
#include <string.h>

#define FK(k) (UI_FKEY | (k))
#define CTRL(c) ((c) & 0x1f)

static ui_action k_help(struct tui *t, int key) {
    t->panels[P_HELP].visible = true;
    t->help_scroll = 0;
    return UI_REDRAW;
}

void ui_open_picker(struct tui *t) {
    t->n_choices = lb_chat_profiles(t->app.model, t->choices, 32);
    t->picker_sel = 0;
    for (int i = 0; i < t->n_choices; i++)
        if (!strcmp(t->choices[i].name, t->stats.profile)) t->picker_sel = i;
    ui_layout(t);
    t->panels[P_PICKER].visible = t->n_choices > 0;
}

static ui_action k_picker(struct tui *t, int key) {
    ui_open_picker(t);
    return UI_REDRAW;
}

static ui_action k_select(struct tui *t, int key) {
    const int n = app_session(&t->app)->n_msgs;
    if (n == 0) {
        ui_set_status(t, "no messages yet");
        return UI_REDRAW;
    }
    t->sel = n - 1;
    ui_set_status(t, "Up/Down select, </> branches, e edit, r regenerate, c compare, Esc done");
    return UI_REDRAW;
}

static ui_action k_compare(struct tui *t, int key) {
    t->picker_compare = true;
    ui_open_picker(t);
    return UI_REDRAW;
}

static ui_action k_escape(struct tui *t, int key) {
    if (t->app.generating) {
        app_stop(&t->app);
        ui_set_status(t, "stopped; the partial answer is kept");
    }
    return UI_REDRAW;
}

// Ctrl-C, as in a shell: stop what runs (the reply, the search), else clear
// the message; at an empty prompt a second Ctrl-C quits. Any other key in
// between disarms it (ui_handle_key).
static ui_action k_interrupt(struct tui *t, int key) {
    t->panels[P_HELP].visible = t->panels[P_PICKER].visible = false;
    if (t->ed.searching) {
        ed_search_cancel(&t->ed);
        return UI_RELAYOUT;
    }
    if (t->app.generating) {
        app_stop(&t->app);
        t->interrupt_armed = t->ed.len == 0;
        ui_set_status(t, "stopped; the partial answer is kept%s", t->ed.len == 0 ? " (Ctrl-C again quits)" : "");
        return UI_REDRAW;
    }
    if (t->ed.len > 0) {
        free(ed_take(&t->ed)); // kept in this run's history: Up brings it back
        t->interrupt_armed = true;
        ui_set_status(t, "message cleared (Up brings it back; Ctrl-C again quits)");
        return UI_RELAYOUT;
    }
    if (t->interrupt_armed) return UI_QUIT;
    t->interrupt_armed = true;
    ui_set_status(t, "Ctrl-C again (or Ctrl-D) quits");
    return UI_REDRAW;
}

// A bracketed paste: all of it goes into the message, newlines included, so
// that it is sent as one message.
static ui_action k_paste(struct tui *t, int key) {
    size_t n;
    const char *s = ui_term_paste(&n);
    ed_insert(&t->ed, s, n);
    t->n_completion = 0;
    int lines = n > 0 && s[n - 1] != '\n';
    for (size_t i = 0; i < n; i++) lines += s[i] == '\n';
    if (lines > 1) ui_set_status(t, "pasted %d lines; Enter sends them as one message", lines);
    return UI_RELAYOUT;
}

static ui_action k_external_edit(struct tui *t, int key) {
    char err[600];
    ui_term_suspend();
    char *s = extedit_run(t->ed.buf ? t->ed.buf : "", err, sizeof err);
    ui_term_resume();
    if (!s) {
        ui_set_status(t, "%s", err);
    } else {
        ed_set(&t->ed, s);
        free(s);
        ui_set_status(t, "message edited; Enter sends it");
    }
    return UI_RELAYOUT;
}

static ui_action k_ctrl_x(struct tui *t, int key) {
    t->ctrl_x = true;
    ui_set_status(t, "Ctrl-X: Ctrl-E edits the message in $EDITOR");
    return UI_REDRAW;
}

static ui_action k_search(struct tui *t, int key) {
    if (!t->ed.searching) ed_search_start(&t->ed);
    else ed_search_older(&t->ed);
    return UI_RELAYOUT;
}

static bool is_enter(int key) { return key == '\r' || key == '\n' || key == FK(KEY_ENTER); }
static bool is_backspace(int key) { return key == FK(KEY_BACKSPACE) || key == 127 || key == CTRL('h'); }

// While searching: typing narrows, Backspace widens, Ctrl-R goes older,
// Esc or Ctrl-G cancels, Enter takes the match into the box (to edit or
// send); any other key takes it too and then does what it does.
static ui_action search_key(struct tui *t, int key) {
    struct editor *e = &t->ed;
    if (key == CTRL('r')) ed_search_older(e);
    else if (key == UI_KEY_ESC || key == CTRL('g')) ed_search_cancel(e);
    else if (is_backspace(key)) ed_search_erase(e);
    else if (is_enter(key)) ed_search_accept(e);
    else if (key >= 0x20 && !(key & UI_FKEY)) {
        char b[4];
        ed_search_type(e, b, ed_utf8(key, b));
    } else if (key == FK(KEY_RESIZE)) {
        return UI_IGNORED;
    } else {
        ed_search_accept(e);
        return UI_IGNORED;
    }
    return UI_RELAYOUT;
}

const char *ui_input_title(const struct tui *t, char *buf, size_t cap) {
    const struct editor *e = &t->ed;
    if (e->searching)
        snprintf(buf, cap, "%sreverse-i-search '%s' (Ctrl-R older, Enter takes, Esc cancels)",
                 e->search_failed ? "failing " : "", e->query);
    else if (t->app.generating)
        snprintf(buf, cap, "message (Esc or Ctrl-C stops the reply)");
    else
        snprintf(buf, cap, "message (Enter sends, Alt-Enter new line)");
    return buf;
}

static ui_action k_toggle_sessions(struct tui *t, int key) {
    t->show_sessions = !t->show_sessions;
    return UI_RELAYOUT;
}

static ui_action k_toggle_stats(struct tui *t, int key) {
    t->show_stats = !t->show_stats;
    return UI_RELAYOUT;
}

static ui_action k_raw_text(struct tui *t, int key) {
    t->raw_text = !t->raw_text;
    ui_set_status(t, t->raw_text ? "raw text (F9: Markdown)" : "Markdown (F9: raw text)");
    return UI_REDRAW;
}

static ui_action k_prev_session(struct tui *t, int key) {
    // The list shows the most recent first: "up" is the next newer one.
    if (t->app.active + 1 < t->app.n_sessions) app_switch_session(&t->app, t->app.active + 1);
    t->scroll = 0;
    return UI_REDRAW;
}

static ui_action k_next_session(struct tui *t, int key) {
    if (t->app.active > 0) app_switch_session(&t->app, t->app.active - 1);
    t->scroll = 0;
    return UI_REDRAW;
}

static ui_action k_new_session(struct tui *t, int key) {
    if (app_new_session(&t->app, NULL)) ui_set_status(t, "new session '%s'", app_session(&t->app)->name);
    t->scroll = 0;
    return UI_REDRAW;
}

static ui_action k_page_up(struct tui *t, int key) {
    t->scroll += t->panels[P_TRANSCRIPT].h > 4 ? t->panels[P_TRANSCRIPT].h - 3 : 1;
    return UI_REDRAW;
}

static ui_action k_page_down(struct tui *t, int key) {
    t->scroll -= t->panels[P_TRANSCRIPT].h > 4 ? t->panels[P_TRANSCRIPT].h - 3 : 1;
    if (t->scroll < 0) t->scroll = 0;
    return UI_REDRAW;
}

static ui_action k_mouse(struct tui *t, int key) {
    MEVENT ev;
    if (getmouse(&ev) != OK) return UI_NONE;
    if (ev.bstate & BUTTON4_PRESSED) t->scroll += 3;
#ifdef BUTTON5_PRESSED
    else if (ev.bstate & BUTTON5_PRESSED) t->scroll = t->scroll > 3 ? t->scroll - 3 : 0;
#endif
    return UI_REDRAW;
}

static ui_action k_resize(struct tui *t, int key) { return UI_RELAYOUT; }
static ui_action k_redraw(struct tui *t, int key) {
    clearok(curscr, TRUE);
    return UI_RELAYOUT;
}

static ui_action k_quit(struct tui *t, int key) {
    if (key == CTRL('d') && t->ed.len > 0) {
        ed_delete(&t->ed);
        return UI_REDRAW;
    }
    return UI_QUIT;
}

static ui_action run_command(struct tui *t, const char *line) {
    char msg[1024];
    cmd_result r = cmd_run_line(&t->app, line, msg, sizeof msg);
    switch (r) {
    case CMD_QUIT: return UI_QUIT;
    case CMD_HELP: return k_help(t, 0);
    case CMD_PICKER: return k_picker(t, 0);
    case CMD_COMPARE: return k_compare(t, 0);
    case CMD_INPUT:
        ed_set(&t->ed, t->app.input ? t->app.input : "");
        free(t->app.input);
        t->app.input = NULL;
        return UI_RELAYOUT;
    default: break;
    }
    if (*msg) ui_set_status(t, "%s", msg);
    t->scroll = 0;
    return UI_RELAYOUT;
}

static ui_action k_enter(struct tui *t, int key) {
    if (t->ed.len == 0) return UI_NONE;
    if (t->ed.buf[0] != '/' && t->app.generating) {
        ui_set_status(t, "a reply is being written: Esc stops it");
        return UI_REDRAW;
    }
    char *text = ed_take(&t->ed);
    if (!text) return UI_NONE;
    char err[600];
    if (t->history_path && !history_append(t->history_path, text, err, sizeof err)) ui_set_status(t, "history: %s", err);
    ui_action a;
    if (text[0] == '/') {
        a = run_command(t, text);
    } else {
        app_send(&t->app, text);
        t->scroll = 0;
        a = UI_RELAYOUT;
    }
    free(text);
    t->n_completion = 0;
    return a;
}

static ui_action k_newline(struct tui *t, int key) {
    ed_insert(&t->ed, "\n", 1);
    return UI_RELAYOUT;
}

static ui_action k_complete(struct tui *t, int key) {
    const char *buf = t->ed.buf ? t->ed.buf : "";
    if (buf[0] != '/') return UI_NONE;
    // Tab again cycles through the candidates of the first Tab.
    if (t->n_completion > 1 && t->completion_idx >= 0 && !strcmp(buf, t->completion[t->completion_idx])) {
        t->completion_idx = (t->completion_idx + 1) % t->n_completion;
        ed_set(&t->ed, t->completion[t->completion_idx]);
        return UI_REDRAW;
    }
    t->n_completion = cmd_complete(&t->app, buf, t->completion, 8);
    t->completion_idx = 0;
    if (t->n_completion == 0) {
        ui_set_status(t, "no completion");
        return UI_REDRAW;
    }
    ed_set(&t->ed, t->completion[0]);
    if (t->n_completion > 1) {
        char list[512];
        size_t n = 0;
        for (int i = 0; i < t->n_completion && n < sizeof list - 1; i++)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s ", t->completion[i]);
        ui_set_status(t, "%s", list);
    }
    return UI_REDRAW;
}

static ui_action k_edit(struct tui *t, int key) {
    struct editor *e = &t->ed;
    switch (key) {
    case FK(KEY_LEFT): ed_left(e); break;
    case FK(KEY_RIGHT): ed_right(e); break;
    case FK(KEY_HOME): case CTRL('a'): ed_home(e); break;
    case FK(KEY_END): case CTRL('e'): ed_end(e); break;
    case FK(KEY_BACKSPACE): case 127: case CTRL('h'): ed_backspace(e); break;
    case FK(KEY_DC): ed_delete(e); break;
    case CTRL('u'): ed_kill_to_start(e); break;
    case CTRL('k'): ed_kill_to_end(e); break;
    case CTRL('w'): ed_kill_word(e); break;
    case FK(KEY_UP): ed_up(e); break;
    case FK(KEY_DOWN): ed_down(e); break;
    }
    return UI_RELAYOUT;
}

const struct key_binding key_table[] = {
    {FK(KEY_F(1)), "F1", "this help (also /help)", k_help},
    {UI_KEY_ESC, "Esc", "stop the reply, keep the partial answer; close a window", k_escape},
    {UI_KEY_INTERRUPT, "Ctrl-C", "stop the reply (kept) or clear the message; twice: quit", k_interrupt},
    {'\r', "Enter", "send the message or run the /command", k_enter},
    {'\n', "Enter", NULL, k_enter},
    {FK(KEY_ENTER), "Enter", NULL, k_enter},
    {UI_KEY_ALT_ENTER, "Alt-Enter", "new line in the message", k_newline},
    {'\t', "Tab", "complete a /command or its argument", k_complete},
    {FK(KEY_UP), "Up/Down", "previous/next line, then message history", k_edit},
    {FK(KEY_DOWN), "Down", NULL, k_edit},
    {FK(KEY_LEFT), "Left/Right", "move the cursor", k_edit},
    {FK(KEY_RIGHT), "Right", NULL, k_edit},
    {FK(KEY_HOME), "Home/End", "start/end of line (also Ctrl-A/Ctrl-E)", k_edit},
    {FK(KEY_END), "End", NULL, k_edit},
    {CTRL('a'), "Ctrl-A", NULL, k_edit},
    {CTRL('e'), "Ctrl-E", NULL, k_edit},
    {FK(KEY_BACKSPACE), "Backspace", "delete before the cursor (Delete: after)", k_edit},
    {127, "Backspace", NULL, k_edit},
    {CTRL('h'), "Backspace", NULL, k_edit},
    {FK(KEY_DC), "Delete", NULL, k_edit},
    {CTRL('u'), "Ctrl-U/Ctrl-K", "delete to the start/end of the line", k_edit},
    {CTRL('k'), "Ctrl-K", NULL, k_edit},
    {CTRL('w'), "Ctrl-W", "delete the word before the cursor", k_edit},
    {FK(KEY_PPAGE), "PgUp/PgDn", "scroll the conversation (also the mouse wheel)", k_page_up},
    {FK(KEY_NPAGE), "PgDn", NULL, k_page_down},
    {FK(KEY_MOUSE), "wheel", NULL, k_mouse},
    {FK(KEY_F(2)), "F2", "show/hide the session list", k_toggle_sessions},
    {FK(KEY_F(3)), "F3", "show/hide the live panel", k_toggle_stats},
    {FK(KEY_F(4)), "F4", "pick a quantization profile (also /profile)", k_picker},
    {FK(KEY_F(7)), "F7", "select a message: </> its branches, e edit, r regenerate, c compare", k_select},
    {FK(KEY_F(8)), "F8", "compare the last answer under another profile (also /compare)", k_compare},
    {FK(KEY_F(5)), "F5/F6", "previous/next session", k_prev_session},
    {FK(KEY_F(6)), "F6", NULL, k_next_session},
    {FK(KEY_F(9)), "F9", "show replies as raw text / as Markdown", k_raw_text},
    {CTRL('n'), "Ctrl-N", "new session (also /new)", k_new_session},
    {CTRL('r'), "Ctrl-R", "search the message history (again: older)", k_search},
    {CTRL('x'), "Ctrl-X Ctrl-E", "edit the message in $EDITOR (also Ctrl-G)", k_ctrl_x},
    {CTRL('g'), "Ctrl-G", NULL, k_external_edit},
    {UI_KEY_PASTE, "paste", NULL, k_paste},
    {CTRL('l'), "Ctrl-L", "redraw the screen", k_redraw},
    {FK(KEY_RESIZE), "resize", NULL, k_resize},
    {CTRL('d'), "Ctrl-D", "quit when the message is empty (also /quit)", k_quit},
};
const int n_key_bindings = sizeof key_table / sizeof key_table[0];

static ui_action run_binding(struct tui *t, int key) {
    for (int i = 0; i < n_key_bindings; i++)
        if (key_table[i].key == key) return key_table[i].run(t, key);
    return UI_IGNORED;
}

ui_action ui_handle_key(struct tui *t, int key) {
    if (key == UI_KEY_INTERRUPT) return k_interrupt(t, key);
    if (key != FK(KEY_RESIZE) && key != FK(KEY_MOUSE)) t->interrupt_armed = false;
    if (t->ctrl_x) {
        t->ctrl_x = false;
        if (key == CTRL('e')) return k_external_edit(t, key);
    }
    for (int i = P_COUNT - 1; i >= 0; i--) {
        const struct ui_panel *p = &t->panels[i];
        if (p->visible && p->cls->on_key) {
            ui_action a = p->cls->on_key(p, t, key);
            if (!(a & UI_IGNORED)) return a;
            break;
        }
    }
    if (t->ed.searching) {
        ui_action a = search_key(t, key);
        if (!(a & UI_IGNORED)) return a;
    }
    ui_action a = run_binding(t, key);
    if (!(a & UI_IGNORED)) return a;
    if (key >= 0x20 && !(key & UI_FKEY)) {
        ed_insert_char(&t->ed, key);
        t->n_completion = 0;
        return UI_RELAYOUT;
    }
    return UI_NONE;
}
