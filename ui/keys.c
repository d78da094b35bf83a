/*
 * keys.c — every key of the chat screen, in one table. An open overlay
 * (help, profile picker) sees a key first; what it ignores comes here. A key
 * not in the table that is a printable character goes into the input box.
 */
#define _XOPEN_SOURCE_EXTENDED 1
#include "tui.h"
#include "commands.h"
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

static ui_action k_toggle_sessions(struct tui *t, int key) {
    t->show_sessions = !t->show_sessions;
    return UI_RELAYOUT;
}

static ui_action k_toggle_stats(struct tui *t, int key) {
    t->show_stats = !t->show_stats;
    return UI_RELAYOUT;
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
    {CTRL('n'), "Ctrl-N", "new session (also /new)", k_new_session},
    {CTRL('l'), "Ctrl-L", "redraw the screen", k_redraw},
    {FK(KEY_RESIZE), "resize", NULL, k_resize},
    {CTRL('d'), "Ctrl-D", "quit when the message is empty (also /quit, Ctrl-C)", k_quit},
};
const int n_key_bindings = sizeof key_table / sizeof key_table[0];

ui_action ui_handle_key(struct tui *t, int key) {
    for (int i = P_COUNT - 1; i >= 0; i--) {
        const struct ui_panel *p = &t->panels[i];
        if (p->visible && p->cls->on_key) {
            ui_action a = p->cls->on_key(p, t, key);
            if (!(a & UI_IGNORED)) return a;
            break;
        }
    }
    for (int i = 0; i < n_key_bindings; i++)
        if (key_table[i].key == key) return key_table[i].run(t, key);
    if (key >= 0x20 && !(key & UI_FKEY)) {
        ed_insert_char(&t->ed, key);
        t->n_completion = 0;
        return UI_RELAYOUT;
    }
    return UI_NONE;
}
