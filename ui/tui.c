/*
 * tui.c — the chat screen's loop: read a key (waiting at most 100 ms), let
 * the key table act, move streamed text into the session, and draw. While a
 * reply or a profile switch runs, the screen is drawn at least every 250 ms,
 * so the live panel refreshes four times a second.
 */
#define _XOPEN_SOURCE_EXTENDED 1
#include "ui.h"
#include "history.h"
#include "mdview.h"
#include "term.h"
#include "tui.h"

#include <curses.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The messages of earlier runs, for Up and Ctrl-R. A file that does not load
// is left alone (and not written) this run.
static void load_history(struct tui *t) {
    t->history_path = history_default_path();
    if (!t->history_path) return;
    char **items, err[600];
    int n;
    if (!history_load(t->history_path, &items, &n, err, sizeof err)) {
        ui_set_status(t, "%s; the history is not kept this run", err);
        free(t->history_path);
        t->history_path = NULL;
        return;
    }
    for (int i = 0; i < n; i++) ed_history_add(&t->ed, items[i]);
    t->ed.hist_pos = t->ed.n_hist;
    history_free(items, n);
}

int ui_tui_run(const struct app_options *opt) {
    setlocale(LC_ALL, "");
    static struct tui t; // large; static keeps it off the stack
    memset(&t, 0, sizeof t);
    if (!app_open(&t.app, opt)) return 1;
    if (!ui_term_init()) {
        fprintf(stderr, "lowbit chat: cannot start the terminal screen (TERM=%s); try --plain\n", "?");
        app_close(&t.app);
        return 1;
    }
    t.show_sessions = true;
    t.sel = -1;
    t.show_stats = true;
    load_history(&t);
    ui_layout(&t);
    ui_draw(&t);
    uint32_t event_seq = t.stats.event_seq;
    double last_draw = lb_time_s();
    for (;;) {
        if (ui_term_quit_requested()) break;
        int key = ui_term_read_key(100);
        ui_action act = key >= 0 ? ui_handle_key(&t, key) : UI_NONE;
        if (act & UI_QUIT) break;
        bool finished;
        if (app_poll(&t.app, &finished)) act |= UI_REDRAW;
        // The engine's events (a switch done or failed, a reply cut by a full
        // context) go to the status line, before the app's notices. Messages
        // left out of the context are the app's notice, which names the turns.
        if (t.stats.event_seq != event_seq) {
            event_seq = t.stats.event_seq;
            if (strncmp(t.stats.event, "context full: left out", 22)) ui_set_status(&t, "%s", t.stats.event);
            act |= UI_REDRAW;
        }
        char notice[APP_NOTICE_MAX];
        while (app_take_notice(&t.app, notice, sizeof notice)) {
            ui_set_status(&t, "%s", notice);
            act |= UI_REDRAW;
        }
        const bool busy = t.app.generating || t.stats.switching || lb_chat_switching(t.app.chat);
        const double now = lb_time_s();
        if (busy && now - last_draw >= 0.25) act |= UI_REDRAW;
        if (!act && now - last_draw >= 2.0) act |= UI_REDRAW; // RSS and the status clock drift
        if (act & UI_RELAYOUT) ui_layout(&t);
        if (act & (UI_REDRAW | UI_RELAYOUT)) {
            ui_draw(&t);
            last_draw = now;
        }
    }
    ui_term_restore();
    app_close(&t.app);
    char notice[APP_NOTICE_MAX];
    while (app_take_notice(&t.app, notice, sizeof notice)) fprintf(stderr, "lowbit chat: %s\n", notice);
    ed_free(&t.ed);
    free(t.history_path);
    mdview_free_all(t.views, t.cap_views);
    return 0;
}
