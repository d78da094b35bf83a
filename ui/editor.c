/*
 * editor.c — the input box's text and history (see editor.h).
 */
#include "editor.h"

#include <stdlib.h>
#include <string.h>

static bool reserve(struct editor *e, size_t n) {
    if (n + 1 <= e->cap && e->buf) return true;
    size_t cap = e->cap ? e->cap : 64;
    while (cap < n + 1) cap *= 2;
    char *b = realloc(e->buf, cap);
    if (!b) return false;
    if (!e->buf) b[0] = 0;
    e->buf = b;
    e->cap = cap;
    return true;
}

void ed_free(struct editor *e) {
    free(e->buf);
    for (int i = 0; i < e->n_hist; i++) free(e->hist[i]);
    free(e->hist);
    free(e->draft);
    memset(e, 0, sizeof *e);
}

void ed_set(struct editor *e, const char *s) {
    size_t n = strlen(s);
    if (!reserve(e, n)) return;
    memcpy(e->buf, s, n + 1);
    e->len = e->cur = n;
}

void ed_insert(struct editor *e, const char *s, size_t n) {
    if (!reserve(e, e->len + n)) return;
    memmove(e->buf + e->cur + n, e->buf + e->cur, e->len - e->cur + 1);
    memcpy(e->buf + e->cur, s, n);
    e->len += n;
    e->cur += n;
}

void ed_insert_char(struct editor *e, int c) {
    char b[4];
    size_t n;
    if (c < 0x80) b[0] = (char)c, n = 1;
    else if (c < 0x800) b[0] = (char)(0xC0 | c >> 6), b[1] = (char)(0x80 | (c & 0x3F)), n = 2;
    else if (c < 0x10000)
        b[0] = (char)(0xE0 | c >> 12), b[1] = (char)(0x80 | ((c >> 6) & 0x3F)), b[2] = (char)(0x80 | (c & 0x3F)), n = 3;
    else
        b[0] = (char)(0xF0 | c >> 18), b[1] = (char)(0x80 | ((c >> 12) & 0x3F)),
        b[2] = (char)(0x80 | ((c >> 6) & 0x3F)), b[3] = (char)(0x80 | (c & 0x3F)), n = 4;
    ed_insert(e, b, n);
}

static size_t prev_char(const struct editor *e, size_t i) {
    if (i == 0) return 0;
    i--;
    while (i > 0 && ((unsigned char)e->buf[i] & 0xC0) == 0x80) i--;
    return i;
}

static size_t next_char(const struct editor *e, size_t i) {
    if (i >= e->len) return e->len;
    i++;
    while (i < e->len && ((unsigned char)e->buf[i] & 0xC0) == 0x80) i++;
    return i;
}

static void erase(struct editor *e, size_t from, size_t to) {
    if (to <= from) return;
    memmove(e->buf + from, e->buf + to, e->len - to + 1);
    e->len -= to - from;
    e->cur = from;
}

void ed_backspace(struct editor *e) {
    if (e->buf) erase(e, prev_char(e, e->cur), e->cur);
}
void ed_delete(struct editor *e) {
    if (e->buf) {
        size_t c = e->cur;
        erase(e, c, next_char(e, c));
        e->cur = c;
    }
}
void ed_left(struct editor *e) { e->cur = e->buf ? prev_char(e, e->cur) : 0; }
void ed_right(struct editor *e) { e->cur = e->buf ? next_char(e, e->cur) : 0; }

static size_t line_start(const struct editor *e, size_t i) {
    while (i > 0 && e->buf[i - 1] != '\n') i--;
    return i;
}
static size_t line_end(const struct editor *e, size_t i) {
    while (i < e->len && e->buf[i] != '\n') i++;
    return i;
}

void ed_home(struct editor *e) { e->cur = e->buf ? line_start(e, e->cur) : 0; }
void ed_end(struct editor *e) { e->cur = e->buf ? line_end(e, e->cur) : 0; }
void ed_kill_to_start(struct editor *e) {
    if (e->buf) erase(e, line_start(e, e->cur), e->cur);
}
void ed_kill_to_end(struct editor *e) {
    if (e->buf) {
        size_t c = e->cur;
        erase(e, c, line_end(e, c));
        e->cur = c;
    }
}
void ed_kill_word(struct editor *e) {
    if (!e->buf) return;
    size_t i = e->cur;
    while (i > 0 && e->buf[i - 1] == ' ') i--;
    while (i > 0 && e->buf[i - 1] != ' ' && e->buf[i - 1] != '\n') i--;
    erase(e, i, e->cur);
}

static void history_go(struct editor *e, int pos) {
    if (pos < 0 || pos > e->n_hist || pos == e->hist_pos) return;
    if (e->hist_pos == e->n_hist) {
        free(e->draft);
        e->draft = strdup(e->buf ? e->buf : "");
    }
    e->hist_pos = pos;
    ed_set(e, pos == e->n_hist ? (e->draft ? e->draft : "") : e->hist[pos]);
}

void ed_up(struct editor *e) {
    if (!e->buf) ed_set(e, "");
    size_t s = line_start(e, e->cur);
    if (s == 0) {
        history_go(e, e->hist_pos - 1);
        return;
    }
    size_t col = e->cur - s, ps = line_start(e, s - 1), pe = s - 1;
    e->cur = ps + (col < pe - ps ? col : pe - ps);
    while (e->cur > 0 && ((unsigned char)e->buf[e->cur] & 0xC0) == 0x80) e->cur--;
}

void ed_down(struct editor *e) {
    if (!e->buf) ed_set(e, "");
    size_t end = line_end(e, e->cur);
    if (end == e->len) {
        history_go(e, e->hist_pos + 1);
        return;
    }
    size_t col = e->cur - line_start(e, e->cur), ns = end + 1, ne = line_end(e, ns);
    e->cur = ns + (col < ne - ns ? col : ne - ns);
    while (e->cur > 0 && ((unsigned char)e->buf[e->cur] & 0xC0) == 0x80) e->cur--;
}

char *ed_take(struct editor *e) {
    char *s = strdup(e->buf ? e->buf : "");
    if (s && *s) {
        char **h = realloc(e->hist, (size_t)(e->n_hist + 1) * sizeof *h);
        char *copy = strdup(s);
        if (h && copy) {
            e->hist = h;
            e->hist[e->n_hist++] = copy;
        } else {
            free(copy);
            if (h) e->hist = h;
        }
    }
    e->hist_pos = e->n_hist;
    free(e->draft);
    e->draft = NULL;
    ed_set(e, "");
    return s;
}
