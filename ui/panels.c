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

struct tline {
    const char *s;
    size_t n;
    int attr, indent;
    const struct mdview *view; // a message's row: drawn by mdview (s and n unused)
    int row;
};

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

static void transcript_draw(const struct ui_panel *p, struct tui *t) {
    lb_session *s = app_session(&t->app);
    char title[160];
    snprintf(title, sizeof title, "%s — %s", s->name, lb_chat_template_name(app_template(&t->app)));
    box_at(p, title, false);
    const int w = p->w - 2, h = p->h - 2;
    if (w < 4 || h < 1) return;
    struct tline *ls = NULL;
    int n = 0, cap = 0;
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
        const bool user = !strcmp(s->msgs[i].role, "user");
        const int dim = i < t->app.ctx_first ? A_DIM : 0;
        if (i == t->app.ctx_first && i > 0)
            add_line(&ls, &n, &cap, (struct tline){.s = out_note, .n = strlen(out_note), .attr = COLOR_PAIR(5)});
        add_line(&ls, &n, &cap,
                 (struct tline){.s = user ? "You" : "lowbit", .n = user ? 3u : 6u, .attr = (user ? COLOR_PAIR(2) : COLOR_PAIR(3)) | A_BOLD | dim});
        if (!user && !*s->msgs[i].content && t->app.generating && i == s->n_msgs - 1)
            add_line(&ls, &n, &cap, (struct tline){.s = thinking, .n = 3, .attr = A_DIM, .indent = 2});
        else
            add_view(&ls, &n, &cap, &views[i], s->msgs[i].content, w, user || t->raw_text,
                     t->app.generating && i == s->n_msgs - 1, dim);
        add_line(&ls, &n, &cap, (struct tline){.s = ""});
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
        attron(l->attr);
        put_text(p->y + 1 + r, p->x + 1 + l->indent, l->s, l->n, w - l->indent);
        attroff(l->attr);
    }
    if (t->scroll > 0) {
        char more[48];
        snprintf(more, sizeof more, " %d more below (PgDn) ", t->scroll);
        attron(A_REVERSE);
        put_str(p->y + p->h - 1, p->x + p->w - 2 - (int)strlen(more), more, (int)strlen(more));
        attroff(A_REVERSE);
    }
    free(ls);
}

const ui_panel_class transcript_panel = {"transcript", transcript_draw, NULL};

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
    if (t->stats.kld_every > 0 && n < 124) {
        snprintf(lines[n++], 160, "Live KL divergence: every %d generated tokens (--kld-every N)", t->stats.kld_every);
        snprintf(lines[n++], 160, "  a background thread (1 core) runs the source-precision model over the new");
        snprintf(lines[n++], 160, "  tokens, between two tokens of the reply, and compares next-token");
        snprintf(lines[n++], 160, "  distributions; the last sample took %.1f ms", t->stats.kld_cost_ms);
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
    box_at(p, "profile - Enter switches, Esc cancels", true);
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
    if (key == UI_KEY_ESC || key == (UI_FKEY | KEY_F(4))) {
        self->visible = false;
        return UI_REDRAW;
    }
    if (key == (UI_FKEY | KEY_UP) && t->picker_sel > 0) t->picker_sel--;
    else if (key == (UI_FKEY | KEY_DOWN) && t->picker_sel + 1 < t->n_choices) t->picker_sel++;
    else if (key == '\r' || key == '\n' || key == (UI_FKEY | KEY_ENTER)) {
        self->visible = false;
        const char *name = t->choices[t->picker_sel].name;
        if (app_switch_profile(&t->app, name)) ui_set_status(t, "switching to %s in the background", name);
        return UI_REDRAW;
    } else if (key == (UI_FKEY | KEY_RESIZE)) {
        return UI_IGNORED;
    }
    return UI_REDRAW;
}

const ui_panel_class picker_panel = {"picker", picker_draw, picker_key};
