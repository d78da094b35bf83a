/*
 * panels.c — layout and drawing of the chat screen's panels.
 *
 *   +- sessions -+- transcript ------------------+- lowbit ---------+
 *   | > chat 1   | You                           | Memory           |
 *   |   chat 2   |   Once upon a time            |  RSS  ...        |
 *   |            | lowbit                        | Speed  ...       |
 *   |            |   there was a little girl ... | ...              |
 *   |            +- message ---------------------+                  |
 *   |            | _                             |                  |
 *   +------------+-------------------------------+------------------+
 *    status line
 *
 * Every panel draws from the app's sessions and the lb_stats snapshot taken
 * once per frame; nothing here computes a statistic.
 */
#define _XOPEN_SOURCE_EXTENDED 1
#include "tui.h"
#include "commands.h"
#include "mdview.h"
#include "term.h"
#include "text.h"

#include <curses.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// --- drawing helpers ----------------------------------------------------------------

// Draw s[0..n) at (y, x), at most `width` columns; control characters as spaces.
static void put_text(int y, int x, const char *s, size_t n, int width) {
    int col = 0;
    move(y, x);
    for (size_t i = 0; i < n;) {
        wchar_t wc;
        int len = text_decode(s + i, n - i, &wc);
        int w = text_width(wc);
        if (col + w > width) break;
        if (wc < 0x20 || wc == 0x7F) addch(' ');
        else if (w > 0 || col > 0) addnstr(s + i, len);
        col += w;
        i += (size_t)len;
    }
}

static void put_str(int y, int x, const char *s, int width) { put_text(y, x, s, strlen(s), width); }

// Box lines as UTF-8 text rather than the alternate character set, so that
// they survive copy and paste (and tmux capture-pane) as what they show.
static void rule(int y, int x, int n, const char *ch) {
    for (int i = 0; i < n; i++) mvaddstr(y, x + i, ch);
}

static void box_at(const struct ui_panel *p, const char *title, bool focus) {
    if (p->h < 2 || p->w < 2) return;
    attr_t a = focus ? A_BOLD : A_NORMAL;
    attron(a);
    rule(p->y, p->x + 1, p->w - 2, "─");
    rule(p->y + p->h - 1, p->x + 1, p->w - 2, "─");
    for (int r = 1; r < p->h - 1; r++) {
        mvaddstr(p->y + r, p->x, "│");
        mvaddstr(p->y + r, p->x + p->w - 1, "│");
    }
    mvaddstr(p->y, p->x, "┌");
    mvaddstr(p->y, p->x + p->w - 1, "┐");
    mvaddstr(p->y + p->h - 1, p->x, "└");
    mvaddstr(p->y + p->h - 1, p->x + p->w - 1, "┘");
    if (title && p->w > 6) {
        attron(COLOR_PAIR(1));
        mvaddch(p->y, p->x + 2, ' ');
        put_str(p->y, p->x + 3, title, p->w - 6);
        addch(' ');
        attroff(COLOR_PAIR(1));
    }
    attroff(a);
}

static void clear_rect(int y, int x, int h, int w) {
    for (int r = 0; r < h; r++) mvhline(y + r, x, ' ', w);
}

static void format_bytes(char *buf, size_t cap, size_t b) {
    if (b >= (size_t)1 << 30) snprintf(buf, cap, "%.2f GiB", b / 1073741824.0);
    else if (b >= (size_t)1 << 20) snprintf(buf, cap, "%.1f MiB", b / 1048576.0);
    else snprintf(buf, cap, "%.1f KiB", b / 1024.0);
}

// Context use in whole percent, for the 90% warning (a display figure, not a statistic).
static int ctx_percent(const lb_stats *s) { return s->n_ctx > 0 ? (int)(100LL * s->n_ctx_used / s->n_ctx) : 0; }

// "turn 1", "turns 1-3": the turns (question and answer) of the first n messages.
static const char *turns_label(char *buf, size_t cap, int n_msgs) {
    const int n = (n_msgs + 1) / 2;
    if (n == 1) snprintf(buf, cap, "turn 1");
    else snprintf(buf, cap, "turns 1-%d", n);
    return buf;
}

void ui_set_status(struct tui *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->status, sizeof t->status, fmt, ap);
    va_end(ap);
    t->status_time = lb_time_s();
}

// --- layout -------------------------------------------------------------------------

static int input_lines(struct tui *t, int width) {
    struct text_span sp[1];
    int n = text_wrap(t->ed.buf ? t->ed.buf : "", t->ed.len, width > 1 ? width - 1 : 1, sp, 0);
    return n < 1 ? 1 : n > 6 ? 6 : n;
}

void ui_layout(struct tui *t) {
    getmaxyx(stdscr, t->rows, t->cols);
    struct ui_panel *P = t->panels;
    const ui_panel_class *cls[P_COUNT] = {&sessions_panel, &transcript_panel, &input_panel, &stats_panel,
                                          &status_panel, &help_panel, &picker_panel};
    for (int i = 0; i < P_COUNT; i++) P[i].cls = cls[i];
    const int body = t->rows - 1;
    int left = t->show_sessions && t->cols >= 60 ? 20 : 0;
    int right = t->show_stats && t->cols >= 80 ? 36 : 0;
    P[P_SESSIONS] = (struct ui_panel){&sessions_panel, 0, 0, body, left, left > 0};
    P[P_STATS] = (struct ui_panel){&stats_panel, 0, t->cols - right, body, right, right > 0};
    const int mid = t->cols - left - right;
    const int ih = input_lines(t, mid - 2) + 2;
    P[P_INPUT] = (struct ui_panel){&input_panel, body - ih, left, ih, mid, true};
    P[P_TRANSCRIPT] = (struct ui_panel){&transcript_panel, 0, left, body - ih, mid, true};
    P[P_STATUS] = (struct ui_panel){&status_panel, t->rows - 1, 0, 1, t->cols, true};
    // Overlays: centred, visibility kept.
    const int ow = t->cols - 8 < 84 ? t->cols - 8 : 84, oh = t->rows - 4;
    P[P_HELP].y = 2, P[P_HELP].x = (t->cols - ow) / 2, P[P_HELP].h = oh, P[P_HELP].w = ow;
    const int pw = 60 < t->cols - 4 ? 60 : t->cols - 4, ph = t->n_choices + 4 < t->rows - 2 ? t->n_choices + 4 : t->rows - 2;
    P[P_PICKER].y = (t->rows - ph) / 2, P[P_PICKER].x = (t->cols - pw) / 2, P[P_PICKER].h = ph, P[P_PICKER].w = pw;
}

void ui_draw(struct tui *t) {
    lb_chat_stats(t->app.chat, &t->stats);
    // Re-layout when the input grew or shrank a line.
    const struct ui_panel *in = &t->panels[P_INPUT];
    if (input_lines(t, in->w - 2) + 2 != in->h) ui_layout(t);
    erase();
    for (int i = 0; i < P_COUNT; i++)
        if (t->panels[i].visible && i != P_INPUT) t->panels[i].cls->draw(&t->panels[i], t);
    // The input last: it places the cursor (unless an overlay is open).
    if (!t->panels[P_HELP].visible && !t->panels[P_PICKER].visible) {
        curs_set(1);
        t->panels[P_INPUT].cls->draw(&t->panels[P_INPUT], t);
    } else {
        curs_set(0);
    }
    refresh();
}

// --- sessions -----------------------------------------------------------------------

static void sessions_draw(const struct ui_panel *p, struct tui *t) {
    box_at(p, "sessions F2", false);
    for (int i = 0; i < t->app.n_sessions && i < p->h - 2; i++) {
        // Most recent first.
        int k = t->app.n_sessions - 1 - i;
        bool active = k == t->app.active;
        if (active) attron(COLOR_PAIR(4));
        mvhline(p->y + 1 + i, p->x + 1, ' ', p->w - 2);
        mvaddch(p->y + 1 + i, p->x + 1, active ? '>' : ' ');
        put_str(p->y + 1 + i, p->x + 3, t->app.sessions[k]->name, p->w - 4);
        if (active) attroff(COLOR_PAIR(4));
    }
}

const ui_panel_class sessions_panel = {"sessions", sessions_draw, NULL};

// --- transcript ---------------------------------------------------------------------
//
// Every shown message has a header ("You #3 <2/3>": its number for /edit and
// /branch, and its place among its siblings when it has any), its text, and
// for answers a footer. An answer with a /compare partner is drawn beside it:
// two columns from 100 terminal columns up, else one above the other.

struct tline {
    const char *s;
    size_t n;
    int attr, indent;
    const struct mdview *view; // a message's row: drawn by mdview (s and n unused)
    int row;
    int w1;            // the left column's width; 0: the whole line
    const char *s2;    // the right column, from column x2 (NULL: none)
    size_t n2;
    int attr2, x2;
};

// Lines of text formatted for one frame (headers, footers); freed after drawing.
struct pool {
    char **s;
    int n, cap;
};

static const char *pool_printf(struct pool *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *pool_printf(struct pool *p, const char *fmt, ...) {
    if (p->n == p->cap) {
        int c = p->cap ? 2 * p->cap : 32;
        char **s = realloc(p->s, (size_t)c * sizeof *s);
        if (!s) return "";
        p->s = s;
        p->cap = c;
    }
    char *buf = malloc(256);
    if (!buf) return "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, 256, fmt, ap);
    va_end(ap);
    return p->s[p->n++] = buf;
}

static void pool_free(struct pool *p) {
    for (int i = 0; i < p->n; i++) free(p->s[i]);
    free(p->s);
}

static int add_line(struct tline **ls, int *n, int *cap, struct tline l) {
    if (*n == *cap) {
        int c = *cap ? *cap * 2 : 256;
        struct tline *p = realloc(*ls, (size_t)c * sizeof *p);
        if (!p) return -1;
        *ls = p;
        *cap = c;
    }
    (*ls)[(*n)++] = l;
    return 0;
}

static void add_wrapped(struct tline **ls, int *n, int *cap, const char *s, int width, int attr) {
    size_t len = strlen(s);
    int count = text_wrap(s, len, width - 2, NULL, 0);
    struct text_span *sp = malloc((size_t)count * sizeof *sp);
    if (!sp) return;
    text_wrap(s, len, width - 2, sp, count);
    for (int i = 0; i < count; i++) add_line(ls, n, cap, (struct tline){.s = s + sp[i].start, .n = sp[i].len, .attr = attr, .indent = 2});
    free(sp);
}

// A message: Markdown (or raw text) laid out by mdview, a row per line.
static void add_view(struct tline **ls, int *n, int *cap, struct mdview *v, const char *text, int width, bool raw,
                     bool streaming, int attr) {
    mdview_layout(v, text, width - 2, raw, streaming);
    for (int r = 0; r < v->n_rows; r++) add_line(ls, n, cap, (struct tline){.s = "", .attr = attr, .indent = 2, .view = v, .row = r});
}

// One side of a compare: header, text (or what the compare is doing), footer lines.
struct side {
    struct tline *l;
    int n, cap;
};

static void side_text(struct side *sd, const char *s, int width, int attr) {
    add_wrapped(&sd->l, &sd->n, &sd->cap, s, width + 2, attr);
}

static void compare_side(struct tui *t, struct pool *pool, struct side *sd, const lb_session_node *d, bool other,
                         int width) {
    const lb_reply_stats *r = &d->stats;
    float progress = 0;
    const app_compare_phase ph = app_compare_state(&t->app, &progress);
    const char *name = d->has_stats ? r->profile : other ? t->app.cmp_profile : "?";
    if (d->has_stats) side_text(sd, pool_printf(pool, "%s · %.2f bpw", name, r->bpw), width, COLOR_PAIR(1) | A_BOLD);
    else side_text(sd, pool_printf(pool, "%s", name), width, COLOR_PAIR(1) | A_BOLD);
    if (other && ph == CMP_BUILD) {
        char bar[64];
        int bw = width - 24 > 30 ? 30 : width - 24 > 4 ? width - 24 : 4, fill = (int)(progress * (float)bw + 0.5f), k = 0;
        bar[k++] = '[';
        for (int i = 0; i < bw; i++) bar[k++] = i < fill ? '#' : '.';
        bar[k++] = ']';
        bar[k] = 0;
        side_text(sd, pool_printf(pool, "building the copy %s %3.0f%%", bar, 100.0 * progress), width, A_DIM);
    } else if (other && ph == CMP_MEASURE_A) {
        side_text(sd, "waiting: the shown answer is being measured", width, A_DIM);
    } else if (!*d->content && other && t->app.generating) {
        side_text(sd, "...", width, A_DIM);
    } else {
        side_text(sd, d->content, width, 0);
    }
    if (!d->has_stats) {
        if (!other && ph == CMP_MEASURE_A) side_text(sd, "KL measuring against the source ...", width, A_DIM);
        return;
    }
    side_text(sd, pool_printf(pool, "%d tok · TTFT %.1f ms · %.1f tok/s", (int)r->n_tokens, 1e3 * r->ttft_s,
                              r->decode_tps), width, A_DIM);
    if (r->spec_accept >= 0)
        side_text(sd, pool_printf(pool, "draft %.0f%% accepted", 100.0 * r->spec_accept), width, A_DIM);
    if (r->kld >= 0)
        side_text(sd, pool_printf(pool, "KL %.4f nats · top-1 %.1f%% (%d tok)", r->kld, 100.0 * r->top1,
                                  (int)r->n_measured), width, A_DIM);
    else if ((other && ph == CMP_MEASURE_B) || (!other && ph == CMP_MEASURE_A))
        side_text(sd, "KL measuring against the source ...", width, A_DIM);
    else
        side_text(sd, "KL not measured", width, A_DIM);
}

static void add_compare(struct tui *t, struct pool *pool, struct tline **ls, int *n, int *cap,
                        const lb_session_node *shown, const lb_session_node *other, int w) {
    struct side a = {0}, b = {0};
    if (t->cols >= 100) {
        const int cw = (w - 5) / 2; // "  " left | " │ " | right
        compare_side(t, pool, &a, shown, false, cw);
        compare_side(t, pool, &b, other, true, cw);
        for (int i = 0; i < a.n || i < b.n; i++) {
            struct tline l = {.indent = 2, .w1 = cw, .x2 = 2 + cw + 3};
            if (i < a.n) l.s = a.l[i].s, l.n = a.l[i].n, l.attr = a.l[i].attr;
            else l.s = "", l.n = 0;
            if (i < b.n) l.s2 = b.l[i].s, l.n2 = b.l[i].n, l.attr2 = b.l[i].attr;
            else l.s2 = "", l.n2 = 0;
            add_line(ls, n, cap, l);
        }
    } else {
        compare_side(t, pool, &a, shown, false, w - 2);
        compare_side(t, pool, &b, other, true, w - 2);
        for (int i = 0; i < a.n; i++) add_line(ls, n, cap, a.l[i]);
        add_line(ls, n, cap, (struct tline){.s = "", .n = 0, .attr = 0, .indent = 0});
        for (int i = 0; i < b.n; i++) add_line(ls, n, cap, b.l[i]);
    }
    free(a.l);
    free(b.l);
}

static void transcript_draw(const struct ui_panel *p, struct tui *t) {
    lb_session *s = app_session(&t->app);
    char title[160];
    snprintf(title, sizeof title, "%s — %s", s->name, lb_chat_template_name(app_template(&t->app)));
    box_at(p, title, t->sel >= 0);
    const int w = p->w - 2, h = p->h - 2;
    if (w < 4 || h < 1) return;
    if (t->sel >= s->n_msgs) t->sel = s->n_msgs - 1;
    struct tline *ls = NULL;
    struct pool pool = {0};
    int n = 0, cap = 0, sel_line = -1;
    if (!mdview_reserve(&t->views, &t->cap_views, s->n_msgs)) return;
    struct mdview *views = t->views;
    if (*s->system) {
        add_line(&ls, &n, &cap, (struct tline){.s = "System", .n = 6, .attr = COLOR_PAIR(1) | A_BOLD});
        add_wrapped(&ls, &n, &cap, s->system, w, A_DIM);
    }
    char out_note[96], turns[32];
    snprintf(out_note, sizeof out_note, "-- %s above: out of the model's view (context full) --",
             turns_label(turns, sizeof turns, t->app.ctx_first));
    static const char thinking[] = "...";
    for (int i = 0; i < s->n_msgs; i++) {
        const lb_session_node *d = &s->nodes[s->path[i]];
        const bool user = !strcmp(d->role, "user");
        const int dim = i < t->app.ctx_first ? A_DIM : 0;
        if (i == t->app.ctx_first && i > 0)
            add_line(&ls, &n, &cap, (struct tline){.s = out_note, .n = strlen(out_note), .attr = COLOR_PAIR(5)});
        int pos = 1, sibs = lb_session_siblings(s, s->path[i], &pos);
        // "> " marks the selection in plain text too (copy and paste, capture-pane).
        const char *mark = i == t->sel ? "> " : "";
        const char *head = sibs > 1 ? pool_printf(&pool, "%s%s #%d  <%d/%d>", mark, user ? "You" : "lowbit", i + 1, pos, sibs)
                                    : pool_printf(&pool, "%s%s #%d", mark, user ? "You" : "lowbit", i + 1);
        int hattr = (user ? COLOR_PAIR(2) : COLOR_PAIR(3)) | A_BOLD | dim;
        if (i == t->sel) {
            hattr |= A_REVERSE;
            sel_line = n;
        }
        add_line(&ls, &n, &cap, (struct tline){.s = head, .n = strlen(head), .attr = hattr, .indent = 0});
        const bool writing = t->app.generating && t->app.turn_node == s->path[i];
        if (!user && d->compare >= 0 && d->compare < s->n_nodes) {
            add_compare(t, &pool, &ls, &n, &cap, d, &s->nodes[d->compare], w);
        } else if (!user && !*d->content && writing) {
            add_line(&ls, &n, &cap, (struct tline){.s = thinking, .n = 3, .attr = A_DIM, .indent = 2});
        } else {
            add_view(&ls, &n, &cap, &views[i], d->content, w, user || t->raw_text, writing, dim);
            if (!user && d->has_stats && !writing) {
                char foot[200];
                app_footer(&d->stats, true, foot, sizeof foot);
                const char *f = pool_printf(&pool, "%s", foot);
                add_line(&ls, &n, &cap, (struct tline){.s = f, .n = strlen(f), .attr = A_DIM, .indent = 2});
            }
        }
        add_line(&ls, &n, &cap, (struct tline){.s = "", .n = 0, .attr = 0, .indent = 0});
    }
    // Keep the selected message's header on screen.
    if (sel_line >= 0) {
        int first = n - h - t->scroll;
        if (sel_line < first) t->scroll = n - h - sel_line;
        else if (sel_line >= first + h) t->scroll = n - h - (sel_line - h + 2 < sel_line ? sel_line - h + 2 : sel_line);
        if (t->scroll < 0) t->scroll = 0;
    }
    if (t->scroll > n - h) t->scroll = n - h > 0 ? n - h : 0;
    int first = n - h - t->scroll;
    if (first < 0) first = 0;
    for (int r = 0; r < h && first + r < n; r++) {
        const struct tline *l = &ls[first + r];
        if (l->view) {
            mdview_draw_row(l->view, l->row, p->y + 1 + r, p->x + 1 + l->indent, w - l->indent, (attr_t)l->attr);
            continue;
        }
        const int lw = l->w1 ? l->w1 : w - l->indent;
        attron(l->attr);
        put_text(p->y + 1 + r, p->x + 1 + l->indent, l->s, l->n, lw);
        attroff(l->attr);
        if (l->s2) {
            mvaddstr(p->y + 1 + r, p->x + 1 + l->x2 - 2, "│");
            attron(l->attr2);
            put_text(p->y + 1 + r, p->x + 1 + l->x2, l->s2, l->n2, w - l->x2);
            attroff(l->attr2);
        }
    }
    if (t->scroll > 0) {
        char more[48];
        snprintf(more, sizeof more, " %d more below (PgDn) ", t->scroll);
        attron(A_REVERSE);
        put_str(p->y + p->h - 1, p->x + p->w - 2 - (int)strlen(more), more, (int)strlen(more));
        attroff(A_REVERSE);
    }
    free(ls);
    pool_free(&pool);
}

// While a message is selected (F7) the transcript takes the keys: Up/Down
// move, </> (or Left/Right) show its other branches, e puts one of your
// messages into the input box as /edit N, r regenerates an answer, c
// compares the last answer, Esc ends. Other keys are kept from the input box.
static ui_action transcript_key(const struct ui_panel *p, struct tui *t, int key) {
    if (t->sel < 0) return UI_IGNORED;
    lb_session *s = app_session(&t->app);
    if (s->n_msgs == 0) {
        t->sel = -1;
        return UI_IGNORED;
    }
    if (t->sel >= s->n_msgs) t->sel = s->n_msgs - 1;
    const int i = t->sel;
    const bool user = !strcmp(s->msgs[i].role, "user");
    switch (key) {
    case UI_FKEY | KEY_UP: case 'k':
        if (t->sel > 0) t->sel--;
        return UI_REDRAW;
    case UI_FKEY | KEY_DOWN: case 'j':
        if (t->sel + 1 < s->n_msgs) t->sel++;
        return UI_REDRAW;
    case UI_FKEY | KEY_LEFT: case '<': case ',':
    case UI_FKEY | KEY_RIGHT: case '>': case '.': {
        const int delta = key == '<' || key == ',' || key == (UI_FKEY | KEY_LEFT) ? -1 : 1;
        if (app_browse(&t->app, i, delta)) {
            int pos, count = lb_session_siblings(s, s->path[i], &pos);
            ui_set_status(t, "message %d: branch %d/%d", i + 1, pos, count);
        }
        return UI_REDRAW;
    }
    case 'e': case '\r': case '\n': case UI_FKEY | KEY_ENTER:
        if (!user) {
            ui_set_status(t, "e edits your messages; r regenerates an answer");
            return UI_REDRAW;
        }
        char *line;
        if (asprintf(&line, "/edit %d %s", i + 1, s->msgs[i].content) < 0) return UI_NONE;
        ed_set(&t->ed, line);
        free(line);
        t->sel = -1;
        ui_set_status(t, "change the text; Enter answers it as a new branch (the old one stays)");
        return UI_RELAYOUT;
    case 'r':
        if (user) {
            ui_set_status(t, "r regenerates an answer; e edits your messages");
            return UI_REDRAW;
        }
        if (app_regen(&t->app, i)) {
            t->sel = -1;
            t->scroll = 0;
        }
        return UI_REDRAW;
    case 'c':
        if (i != s->n_msgs - 1 || user) {
            ui_set_status(t, "c compares the last answer");
            return UI_REDRAW;
        }
        t->sel = -1;
        t->picker_compare = true;
        ui_open_picker(t);
        return UI_REDRAW;
    case UI_KEY_ESC: case 'q': case UI_FKEY | KEY_F(7):
        t->sel = -1;
        return UI_REDRAW;
    default: // function and control keys (F1, Ctrl-L, Ctrl-D) still work; text is not typed
        return key & UI_FKEY || key < 0x20 ? UI_IGNORED : UI_NONE;
    }
}

const ui_panel_class transcript_panel = {"transcript", transcript_draw, transcript_key};

// --- input ----------------------------------------------------------------------------

static void input_draw(const struct ui_panel *p, struct tui *t) {
    char title[400];
    box_at(p, ui_input_title(t, title, sizeof title), true);
    const int w = p->w - 3, h = p->h - 2;
    if (w < 1 || h < 1) return;
    const char *buf = t->ed.buf ? t->ed.buf : "";
    int count = text_wrap(buf, t->ed.len, w, NULL, 0);
    struct text_span *sp = malloc((size_t)count * sizeof *sp);
    if (!sp) return;
    text_wrap(buf, t->ed.len, w, sp, count);
    // The cursor's line: the last span starting at or before it.
    int cl = 0;
    for (int i = 0; i < count; i++)
        if (sp[i].start <= t->ed.cur) cl = i;
    int first = cl - h + 1 > 0 ? cl - h + 1 : 0;
    for (int r = 0; r < h && first + r < count; r++)
        put_text(p->y + 1 + r, p->x + 1, buf + sp[first + r].start, sp[first + r].len, w);
    const int cx = text_columns(buf + sp[cl].start, t->ed.cur - sp[cl].start);
    move(p->y + 1 + cl - first, p->x + 1 + (cx < w ? cx : w));
    free(sp);
}

const ui_panel_class input_panel = {"input", input_draw, NULL};

// --- the live panel -------------------------------------------------------------------

static void sparkline(char *out, size_t cap, const float *v, int n, int width) {
    static const char *bars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
    out[0] = 0;
    int from = n > width ? n - width : 0;
    float mx = 0;
    for (int i = from; i < n; i++)
        if (v[i] > mx) mx = v[i];
    size_t len = 0;
    for (int i = from; i < n && len + 4 < cap; i++) {
        int k = mx > 0 ? (int)(v[i] / mx * 7.0f + 0.5f) : 0;
        len += (size_t)snprintf(out + len, cap - len, "%s", bars[k < 0 ? 0 : k > 7 ? 7 : k]);
    }
}

static void stats_draw(const struct ui_panel *p, struct tui *t) {
    const lb_stats *s = &t->stats;
    box_at(p, "lowbit F3", false);
    const int x = p->x + 2, w = p->w - 4;
    int y = p->y + 1;
    char a[64], b[64], line[160];
#define ROW(...) do { if (y < p->y + p->h - 1) { snprintf(line, sizeof line, __VA_ARGS__); put_str(y++, x, line, w); } } while (0)
#define HEAD(title) do { if (y < p->y + p->h - 1) { attron(COLOR_PAIR(1) | A_BOLD); put_str(y++, x - 1, title, w); attroff(COLOR_PAIR(1) | A_BOLD); } } while (0)
    HEAD("Memory");
    format_bytes(a, sizeof a, s->rss_bytes);
    format_bytes(b, sizeof b, s->peak_rss_bytes);
    ROW("RSS      %s, peak %s", a, b);
    format_bytes(a, sizeof a, s->weight_bytes);
    ROW("weights  %s", a);
    format_bytes(a, sizeof a, s->kv_bytes_used);
    format_bytes(b, sizeof b, s->kv_bytes_allocated);
    ROW("KV cache %s / %s", a, b);
    HEAD("Speed (tok/s)");
    ROW("prefill  %.1f", s->prefill_tps);
    ROW("decode   %.1f%s", s->decode_tps, s->generating ? " (now)" : "");
    float hist[LB_STATS_HISTORY + 1];
    int nh = s->n_history;
    memcpy(hist, s->decode_history, sizeof(float) * (size_t)nh);
    if (s->generating && s->decode_tps > 0) hist[nh++] = (float)s->decode_tps;
    char spark[LB_STATS_HISTORY * 4 + 1];
    sparkline(spark, sizeof spark, hist, nh, w - 9);
    ROW("history  %s", nh ? spark : "-");
    HEAD("Context");
    ROW("used     %d / %d tokens (%d%%)", s->n_ctx_used, s->n_ctx, ctx_percent(s));
    if (ctx_percent(s) >= 90) {
        attron(COLOR_PAIR(5) | A_BOLD);
        ROW("nearly full: old turns go next");
        attroff(COLOR_PAIR(5) | A_BOLD);
    }
    ROW("reused   %d, prefilled %d", s->reused_tokens, s->prefill_tokens);
    if (t->app.ctx_first > 0) ROW("unseen   %s (still shown)", turns_label(a, sizeof a, t->app.ctx_first));
    HEAD("Profile");
    ROW("active   %s, %.2f bpw", s->profile, s->bpw);
    HEAD("Quantization error");
    ROW("weights  %.3f%% rel. (applied)", 100.0 * s->weight_error);
    if (s->kld_every <= 0) ROW("live KL  off");
    else if (s->weight_error == 0) ROW("live KL  0 (source weights)");
    else if (s->kld < 0) ROW("live KL  waiting for a sample");
    else {
        ROW("live KL  %.4f nats (n=%d)", s->kld, s->kld_samples);
        ROW("top-1    %.1f%% agree", 100.0 * s->top1);
    }
    HEAD("Speculative");
    if (s->spec_accept < 0) ROW("no draft model");
    else {
        ROW("draft    %s", s->draft);
        ROW("accepted %.1f%% of %lld", 100.0 * s->spec_accept, (long long)s->spec_drafted);
        ROW("mean     %.2f per step, K %d", s->spec_mean_accepted, (int)s->spec_k);
    }
    float cmp_progress;
    const app_compare_phase ph = app_compare_state(&t->app, &cmp_progress);
    if (ph != CMP_NONE) {
        static const char *what[] = {"", "measuring the shown answer", "building the copy", "the copy answers",
                                     "measuring its answer"};
        HEAD("Compare");
        ROW("with %s: %s", t->app.cmp_profile, what[ph]);
        if (ph == CMP_BUILD) ROW("%3.0f%% of the matrices", 100.0 * cmp_progress);
    }
    if (s->switching) {
        HEAD("Switching profile");
        int bw = w - 12 > 4 ? w - 12 : 4, fill = (int)(s->switch_progress * (float)bw + 0.5f);
        char bar[128];
        int k = 0;
        bar[k++] = '[';
        for (int i = 0; i < bw && k < 120; i++) bar[k++] = i < fill ? '#' : '.';
        bar[k++] = ']';
        bar[k] = 0;
        ROW("%s %3.0f%%", bar, 100.0 * s->switch_progress);
        ROW("to %s; %s still answers", s->switch_to, s->profile);
    } else if (s->have_switch) {
        HEAD("Last switch: before -> after");
        ROW("profile %s -> %s", s->before.profile, s->after.profile);
        ROW("bpw     %.2f -> %.2f", s->before.bpw, s->after.bpw);
        format_bytes(a, sizeof a, s->before.weight_bytes);
        format_bytes(b, sizeof b, s->after.weight_bytes);
        ROW("weights %s -> %s", a, b);
        format_bytes(a, sizeof a, s->before.rss_bytes);
        format_bytes(b, sizeof b, s->after.rss_bytes);
        ROW("RSS     %s -> %s", a, b);
        if (s->after.decode_tps > 0) ROW("decode  %.1f -> %.1f tok/s", s->before.decode_tps, s->after.decode_tps);
        else ROW("decode  %.1f -> (next reply)", s->before.decode_tps);
        ROW("error   %.3f%% -> %.3f%%", 100.0 * s->before.weight_error, 100.0 * s->after.weight_error);
    }
#undef ROW
#undef HEAD
}

const ui_panel_class stats_panel = {"stats", stats_draw, NULL};

// --- status line ----------------------------------------------------------------------

static void status_draw(const struct ui_panel *p, struct tui *t) {
    attron(COLOR_PAIR(4));
    mvhline(p->y, 0, ' ', p->w);
    char left[256];
    snprintf(left, sizeof left, " %s | %s | %s %.2f bpw | ctx %d/%d%s ", app_session(&t->app)->name,
             lb_chat_template_name(app_template(&t->app)), t->stats.profile, t->stats.bpw, t->stats.n_ctx_used,
             t->stats.n_ctx, ctx_percent(&t->stats) >= 90 ? " NEARLY FULL" : "");
    put_str(p->y, 0, left, p->w);
    const char *right = t->app.generating ? " generating - Esc stops | F1 help " : " F1 help | /quit ";
    int rl = (int)strlen(right), ll = text_columns(left, strlen(left));
    if (t->status[0] && lb_time_s() - t->status_time < 8) put_str(p->y, ll + 1, t->status, p->w - ll - rl - 2);
    if (p->w > rl) put_str(p->y, p->w - rl, right, rl);
    attroff(COLOR_PAIR(4));
}

const ui_panel_class status_panel = {"status", status_draw, NULL};

// --- help overlay -----------------------------------------------------------------------

static void help_draw(const struct ui_panel *p, struct tui *t) {
    clear_rect(p->y, p->x, p->h, p->w);
    box_at(p, "help - Esc or F1 closes, Up/Down scroll", true);
    char lines[128][160];
    int n = 0;
    snprintf(lines[n++], 160, "Keys");
    for (int i = 0; i < n_key_bindings && n < 100; i++)
        if (key_table[i].help) snprintf(lines[n++], 160, "  %-14s %s", key_table[i].name, key_table[i].help);
    snprintf(lines[n++], 160, " ");
    snprintf(lines[n++], 160, "Commands (Tab completes)");
    for (int i = 0; i < n_commands && n < 124; i++)
        snprintf(lines[n++], 160, "  %-9s %-12s %s", commands[i].name, commands[i].args, commands[i].help);
    if (n < 126) snprintf(lines[n++], 160, " ");
    static const char *sel_help[] = {
        "Selecting messages (F7)",
        "  Up/Down        another message",
        "  < > Left/Right its other branches (edits and regenerations), shown as <2/3>",
        "  e Enter        edit your message: /edit N in the input box, sent as a new branch",
        "  r              regenerate this answer as a new branch",
        "  c              compare the last answer under another profile (also F8)",
        "  Esc            done",
        " ",
    };
    for (size_t i = 0; i < sizeof sel_help / sizeof sel_help[0] && n < 120; i++) snprintf(lines[n++], 160, "%s", sel_help[i]);
    if (t->stats.kld_every > 0 && n < 124) {
        snprintf(lines[n++], 160, "Live KL divergence: every %d generated tokens (--kld-every N)", t->stats.kld_every);
        snprintf(lines[n++], 160, "  a background thread (1 core, lowest priority) runs the source-precision");
        snprintf(lines[n++], 160, "  model over the new tokens beside the reply, in the cores' idle time, and");
        snprintf(lines[n++], 160, "  compares next-token distributions; the last sample took %.1f ms", t->stats.kld_cost_ms);
    } else if (n < 127) {
        snprintf(lines[n++], 160, "Live KL divergence: off (--kld-every 0)");
    }
    const int h = p->h - 2;
    if (t->help_scroll > n - h) t->help_scroll = n - h > 0 ? n - h : 0;
    for (int r = 0; r < h && t->help_scroll + r < n; r++) {
        const char *l = lines[t->help_scroll + r];
        bool head = l[0] != ' ';
        if (head) attron(COLOR_PAIR(1) | A_BOLD);
        put_str(p->y + 1 + r, p->x + 2, l, p->w - 4);
        if (head) attroff(COLOR_PAIR(1) | A_BOLD);
    }
}

static ui_action help_key(const struct ui_panel *p, struct tui *t, int key) {
    struct ui_panel *self = &t->panels[P_HELP];
    if (key == UI_KEY_ESC || key == (UI_FKEY | KEY_F(1)) || key == 'q') {
        self->visible = false;
        return UI_REDRAW;
    }
    if (key == (UI_FKEY | KEY_UP)) t->help_scroll = t->help_scroll > 0 ? t->help_scroll - 1 : 0;
    else if (key == (UI_FKEY | KEY_DOWN)) t->help_scroll++;
    else if (key == (UI_FKEY | KEY_PPAGE)) t->help_scroll = t->help_scroll > 10 ? t->help_scroll - 10 : 0;
    else if (key == (UI_FKEY | KEY_NPAGE)) t->help_scroll += 10;
    else if (key == (UI_FKEY | KEY_RESIZE)) return UI_IGNORED;
    return UI_REDRAW;
}

const ui_panel_class help_panel = {"help", help_draw, help_key};

// --- profile picker -----------------------------------------------------------------------

static void picker_draw(const struct ui_panel *p, struct tui *t) {
    clear_rect(p->y, p->x, p->h, p->w);
    box_at(p, t->picker_compare ? "compare with - Enter answers again under it, Esc cancels"
                                : "profile - Enter switches, Esc cancels", true);
    char line[160], size[32];
    snprintf(line, sizeof line, "%-8s %9s %12s", "name", "bpw", "est. weights");
    attron(A_BOLD);
    put_str(p->y + 1, p->x + 3, line, p->w - 4);
    attroff(A_BOLD);
    int first = t->picker_sel - (p->h - 4) + 1 > 0 ? t->picker_sel - (p->h - 4) + 1 : 0;
    for (int r = 0; r < p->h - 3 && first + r < t->n_choices; r++) {
        const lb_profile_choice *c = &t->choices[first + r];
        format_bytes(size, sizeof size, c->weight_bytes);
        bool cur = !strcmp(c->name, t->stats.profile);
        snprintf(line, sizeof line, "%-8s %9.2f %12s %s%s", c->name, c->bpw, size, cur ? "(active) " : "",
                 c->no_gain ? "no gain over the source" : "");
        bool sel = first + r == t->picker_sel;
        if (sel) attron(COLOR_PAIR(4));
        mvhline(p->y + 2 + r, p->x + 1, ' ', p->w - 2);
        put_str(p->y + 2 + r, p->x + 1, sel ? ">" : " ", 1);
        put_str(p->y + 2 + r, p->x + 3, line, p->w - 4);
        if (sel) attroff(COLOR_PAIR(4));
    }
}

static ui_action picker_key(const struct ui_panel *p, struct tui *t, int key) {
    struct ui_panel *self = &t->panels[P_PICKER];
    if (key == UI_KEY_ESC || key == (UI_FKEY | KEY_F(4)) || key == (UI_FKEY | KEY_F(8))) {
        self->visible = false;
        t->picker_compare = false;
        return UI_REDRAW;
    }
    if (key == (UI_FKEY | KEY_UP) && t->picker_sel > 0) t->picker_sel--;
    else if (key == (UI_FKEY | KEY_DOWN) && t->picker_sel + 1 < t->n_choices) t->picker_sel++;
    else if (key == '\r' || key == '\n' || key == (UI_FKEY | KEY_ENTER)) {
        self->visible = false;
        const char *name = t->choices[t->picker_sel].name;
        if (t->picker_compare) {
            if (app_compare(&t->app, name)) ui_set_status(t, "comparing with %s", name);
            t->picker_compare = false;
            t->scroll = 0;
        } else if (app_switch_profile(&t->app, name)) {
            ui_set_status(t, "switching to %s in the background", name);
        }
        return UI_REDRAW;
    } else if (key == (UI_FKEY | KEY_RESIZE)) {
        return UI_IGNORED;
    }
    return UI_REDRAW;
}

const ui_panel_class picker_panel = {"picker", picker_draw, picker_key};
