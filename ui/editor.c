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
    free(e->saved);
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

size_t ed_utf8(int c, char b[4]) {
    if (c < 0x80) {
        b[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        b[0] = (char)(0xC0 | c >> 6), b[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        b[0] = (char)(0xE0 | c >> 12), b[1] = (char)(0x80 | ((c >> 6) & 0x3F)), b[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    b[0] = (char)(0xF0 | c >> 18), b[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    b[2] = (char)(0x80 | ((c >> 6) & 0x3F)), b[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

void ed_insert_char(struct editor *e, int c) {
    char b[4];
    ed_insert(e, b, ed_utf8(c, b));
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

bool ed_history_add(struct editor *e, const char *s) {
    if (!*s || (e->n_hist > 0 && !strcmp(e->hist[e->n_hist - 1], s))) return true;
    char **h = realloc(e->hist, (size_t)(e->n_hist + 1) * sizeof *h);
    if (!h) return false;
    e->hist = h;
    char *copy = strdup(s);
    if (!copy) return false;
    const bool at_end = e->hist_pos == e->n_hist;
    e->hist[e->n_hist++] = copy;
    if (at_end) e->hist_pos = e->n_hist;
    return true;
}

char *ed_take(struct editor *e) {
    char *s = strdup(e->buf ? e->buf : "");
    if (s) ed_history_add(e, s);
    e->hist_pos = e->n_hist;
    free(e->draft);
    e->draft = NULL;
    ed_set(e, "");
    return s;
}

// --- reverse incremental search ------------------------------------------------------

int ed_history_find(const struct editor *e, const char *q, int below) {
    if (below > e->n_hist) below = e->n_hist;
    for (int i = below - 1; i >= 0; i--)
        if (strstr(e->hist[i], q)) return i;
    return -1;
}

// Show history entry i with the cursor at the first place the query is found.
static void show_match(struct editor *e, int i) {
    e->match = i;
    ed_set(e, e->hist[i]);
    const char *at = *e->query ? strstr(e->buf, e->query) : NULL;
    if (at) e->cur = (size_t)(at - e->buf);
}

// Search from the entry shown (inclusive: it may still match the longer query).
static void research(struct editor *e, int from_below) {
    if (!*e->query) {
        e->search_failed = false;
        return;
    }
    int i = ed_history_find(e, e->query, from_below);
    e->search_failed = i < 0;
    if (i >= 0) show_match(e, i);
}

void ed_search_start(struct editor *e) {
    if (e->searching) return;
    free(e->saved);
    e->saved = strdup(e->buf ? e->buf : "");
    e->saved_cur = e->cur;
    e->searching = true;
    e->search_failed = false;
    e->query[0] = 0;
    e->match = e->n_hist;
}

void ed_search_type(struct editor *e, const char *s, size_t n) {
    if (!e->searching) return;
    size_t q = strlen(e->query);
    if (q + n >= sizeof e->query) return;
    memcpy(e->query + q, s, n);
    e->query[q + n] = 0;
    research(e, e->match < e->n_hist ? e->match + 1 : e->n_hist);
}

void ed_search_erase(struct editor *e) {
    if (!e->searching) return;
    size_t q = strlen(e->query);
    if (q == 0) return;
    q--;
    while (q > 0 && ((unsigned char)e->query[q] & 0xC0) == 0x80) q--;
    e->query[q] = 0;
    // A shorter query: the newest match again, from the top.
    if (!*e->query) {
        e->search_failed = false;
        return;
    }
    research(e, e->n_hist);
}

void ed_search_older(struct editor *e) {
    if (!e->searching) return;
    if (!*e->query) {
        // Ctrl-R Ctrl-R with nothing typed: as readline, the last query searched.
        return;
    }
    int i = ed_history_find(e, e->query, e->match);
    if (i >= 0) {
        e->search_failed = false;
        show_match(e, i);
    } else {
        e->search_failed = true;
    }
}

void ed_search_accept(struct editor *e) {
    if (!e->searching) return;
    e->searching = false;
    e->search_failed = false;
    if (e->match < e->n_hist) {
        // Down from here walks to newer messages, then back to the text
        // there was before the search.
        e->hist_pos = e->match;
        free(e->draft);
        e->draft = e->saved;
    } else {
        free(e->saved);
    }
    e->saved = NULL;
}

void ed_search_cancel(struct editor *e) {
    if (!e->searching) return;
    e->searching = false;
    e->search_failed = false;
    ed_set(e, e->saved ? e->saved : "");
    e->cur = e->saved_cur <= e->len ? e->saved_cur : e->len;
    free(e->saved);
    e->saved = NULL;
}
