/*
 * markdown.c — Markdown to styled lines, and their wrapping (see markdown.h).
 *
 * Two levels, as CommonMark has them: each source line is first classified
 * (fence, heading, rule, quote, list item, paragraph line), then the inline
 * markers of its text are matched within that line only. Keeping every
 * decision inside one line is what makes a half-streamed reply render as a
 * prefix of the finished one.
 */
#include "markdown.h"
#include "text.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// --- output buffers ----------------------------------------------------------------

struct out {
    struct md_doc *d;
    bool ok;
    size_t line_start; // text offset where the current line began (for tab stops)
};

static bool grow(void **p, int *cap, int need, size_t size) {
    if (need <= *cap) return true;
    int c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, (size_t)c * size);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

// Append bytes in a style, extending the last run when the style is the same.
static void put(struct out *o, const char *s, size_t n, unsigned style) {
    struct md_doc *d = o->d;
    if (!o->ok || n == 0) return;
    if (d->len + n + 1 > d->cap) {
        size_t c = d->cap ? d->cap : 256;
        while (c < d->len + n + 1) c *= 2;
        char *t = realloc(d->text, c);
        if (!t) {
            o->ok = false;
            return;
        }
        d->text = t;
        d->cap = c;
    }
    memcpy(d->text + d->len, s, n);
    d->text[d->len + n] = 0;
    struct md_line *l = &d->lines[d->n_lines - 1];
    struct md_run *last = l->n_runs ? &d->runs[d->n_runs - 1] : NULL;
    if (last && last->style == style) {
        last->len += n;
    } else if (grow((void **)&d->runs, &d->cap_runs, d->n_runs + 1, sizeof *d->runs)) {
        d->runs[d->n_runs++] = (struct md_run){d->len, n, style};
        l->n_runs++;
    } else {
        o->ok = false;
        return;
    }
    d->len += n;
    l->len += n;
}

// Plain text with tabs expanded to the next multiple of 4 columns.
static void put_text(struct out *o, const char *s, size_t n, unsigned style) {
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\t' && s[i] != '\r') continue;
        put(o, s + from, i - from, style);
        from = i + 1;
        if (s[i] == '\r') continue;
        if (!o->ok) return;
        const int col = text_columns(o->d->text + o->line_start, o->d->len - o->line_start);
        put(o, "    ", (size_t)(4 - col % 4), style);
    }
    put(o, s + from, n - from, style);
}

static void begin_line(struct out *o, unsigned style, int block) {
    struct md_doc *d = o->d;
    if (!o->ok) return;
    if (!grow((void **)&d->lines, &d->cap_lines, d->n_lines + 1, sizeof *d->lines)) {
        o->ok = false;
        return;
    }
    d->lines[d->n_lines++] = (struct md_line){d->len, 0, style, 0, d->n_runs, 0, block};
    o->line_start = d->len;
}

// --- inline markers -----------------------------------------------------------------

static bool is_space(char c) { return c == ' ' || c == '\t'; }
static bool is_alnum(char c) { return isalnum((unsigned char)c) || (unsigned char)c >= 0x80; }

// A run of k `c` (at s[i]) can open emphasis: something not a space follows,
// and an underscore is not inside a word (snake_case stays as it is).
static bool can_open(const char *s, size_t n, size_t i, size_t k, char c) {
    if (i + k >= n || is_space(s[i + k])) return false;
    return c == '*' || i == 0 || !is_alnum(s[i - 1]);
}

static bool can_close(const char *s, size_t n, size_t i, size_t k, char c) {
    if (i == 0 || is_space(s[i - 1])) return false;
    return c == '*' || i + k >= n || !is_alnum(s[i + k]);
}

static size_t run_length(const char *s, size_t n, size_t i) {
    size_t k = 1;
    while (i + k < n && s[i + k] == s[i]) k++;
    return k;
}

// Parse s[0..n) in `style`. open_end: an unclosed marker styles the rest.
static void inline_parse(struct out *o, const char *s, size_t n, unsigned style, bool open_end) {
    size_t plain = 0; // start of plain text not yet written
    size_t i = 0;
    while (i < n && o->ok) {
        const char c = s[i];
        if (c == '\\' && i + 1 < n && ispunct((unsigned char)s[i + 1])) {
            put_text(o, s + plain, i - plain, style);
            plain = i + 1; // the escaped character is written as plain text
            i += 2;
            continue;
        }
        if (c == '`') {
            const size_t k = run_length(s, n, i);
            size_t j = i + k;
            while (j < n && !(s[j] == '`' && run_length(s, n, j) == k)) j += s[j] == '`' ? run_length(s, n, j) : 1;
            if (j >= n && !open_end) {
                i += k; // no closing run: the backticks are text
                continue;
            }
            put_text(o, s + plain, i - plain, style);
            size_t a = i + k, b = j < n ? j : n;
            if (b - a >= 2 && s[a] == ' ' && s[b - 1] == ' ') a++, b--; // `` `x` `` shows `x`
            put_text(o, s + a, b - a, style | MD_CODE);
            i = plain = j < n ? j + k : n;
            continue;
        }
        if (c == '*' || c == '_') {
            const size_t k = run_length(s, n, i);
            if (k <= 3 && can_open(s, n, i, k, c)) {
                size_t j = i + k;
                while (j < n) {
                    if (s[j] == '`') { // a code span hides its markers
                        size_t kk = run_length(s, n, j), e = j + kk;
                        while (e < n && !(s[e] == '`' && run_length(s, n, e) == kk)) e++;
                        j = e < n ? e + kk : j + kk;
                        continue;
                    }
                    if (s[j] == '\\') {
                        j += 2;
                        continue;
                    }
                    if (s[j] == c) {
                        size_t kk = run_length(s, n, j);
                        if (kk == k && can_close(s, n, j, k, c)) break;
                        j += kk;
                        continue;
                    }
                    j++;
                }
                const unsigned add = k == 1 ? MD_ITALIC : k == 2 ? MD_BOLD : MD_BOLD | MD_ITALIC;
                if (j < n || open_end) {
                    put_text(o, s + plain, i - plain, style);
                    const size_t end = j < n ? j : n;
                    inline_parse(o, s + i + k, end - i - k, style | add, j >= n);
                    i = plain = j < n ? j + k : n;
                    continue;
                }
            }
            i += k; // not emphasis: the markers are text
            continue;
        }
        i++;
    }
    put_text(o, s + plain, n - plain, style);
}

// --- lines ---------------------------------------------------------------------------

static size_t indent_of(const char *s, size_t n) {
    size_t i = 0;
    while (i < n && s[i] == ' ') i++;
    return i;
}

// An opening fence: up to 3 spaces, 3 or more ` or ~, an info string (no `
// after backticks). Sets the fence character, its length and the info.
static bool fence_open(const char *s, size_t n, char *ch, size_t *count, size_t *info, size_t *info_len) {
    size_t i = indent_of(s, n);
    if (i > 3 || i >= n || (s[i] != '`' && s[i] != '~')) return false;
    const size_t k = run_length(s, n, i);
    if (k < 3) return false;
    size_t a = i + k, b = n;
    while (a < b && is_space(s[a])) a++;
    while (b > a && (is_space(s[b - 1]) || s[b - 1] == '\r')) b--;
    if (s[i] == '`' && memchr(s + a, '`', b - a)) return false;
    *ch = s[i];
    *count = k;
    *info = a;
    *info_len = b - a;
    return true;
}

static bool fence_close(const char *s, size_t n, char ch, size_t count) {
    size_t i = indent_of(s, n);
    if (i > 3 || i >= n || s[i] != ch) return false;
    const size_t k = run_length(s, n, i);
    if (k < count) return false;
    for (size_t j = i + k; j < n; j++)
        if (!is_space(s[j]) && s[j] != '\r') return false;
    return true;
}

// ---, ***, ___ (3 or more, spaces allowed between).
static bool is_rule(const char *s, size_t n) {
    size_t i = indent_of(s, n);
    if (i > 3 || i >= n || (s[i] != '-' && s[i] != '*' && s[i] != '_')) return false;
    int k = 0;
    for (size_t j = i; j < n; j++) {
        if (s[j] == s[i]) k++;
        else if (!is_space(s[j]) && s[j] != '\r') return false;
    }
    return k >= 3;
}

// A list item: indentation, a marker ("-", "*", "+", or 1-9 digits and "." or
// ")"), a space. Sets the marker's extent and where the text begins.
static bool list_item(const char *s, size_t n, size_t *mark, size_t *mark_len, size_t *text) {
    size_t i = indent_of(s, n), j = i;
    if (i >= n) return false;
    if (s[i] == '-' || s[i] == '*' || s[i] == '+') {
        j = i + 1;
    } else {
        while (j < n && j - i < 9 && isdigit((unsigned char)s[j])) j++;
        if (j == i || j >= n || (s[j] != '.' && s[j] != ')')) return false;
        j++;
    }
    if (j >= n || s[j] != ' ') return false;
    *mark = i;
    *mark_len = j - i;
    *text = j + 1;
    return true;
}

static void render_line(struct out *o, const char *s, size_t n, bool open_end) {
    struct md_doc *d = o->d;
    size_t a, b, c;
    if (is_rule(s, n)) {
        begin_line(o, MD_RULE, 0);
        return;
    }
    size_t i = indent_of(s, n);
    if (i <= 3 && i < n && s[i] == '#') {
        size_t k = run_length(s, n, i);
        if (k <= 6 && (i + k == n || s[i + k] == ' ')) {
            begin_line(o, MD_HEADING, 0);
            size_t from = i + k;
            while (from < n && s[from] == ' ') from++;
            inline_parse(o, s + from, n - from, MD_HEADING, open_end);
            return;
        }
    }
    if (i <= 3 && i < n && s[i] == '>') {
        begin_line(o, 0, 0);
        put(o, "\xe2\x94\x82 ", 4, MD_QUOTE); // "│ "
        size_t from = i + 1;
        if (from < n && s[from] == ' ') from++;
        if (o->ok) d->lines[d->n_lines - 1].hang = 2;
        inline_parse(o, s + from, n - from, 0, open_end);
        return;
    }
    if (list_item(s, n, &a, &b, &c)) {
        begin_line(o, 0, 0);
        put(o, s, a, 0); // the item's indentation (nesting)
        if (b == 1) put(o, "\xe2\x80\xa2", 3, MD_BULLET); // "•"
        else put(o, s + a, b, MD_BULLET);
        put(o, " ", 1, 0);
        if (o->ok) d->lines[d->n_lines - 1].hang = (int)a + (b == 1 ? 1 : (int)b) + 1;
        inline_parse(o, s + c, n - c, 0, open_end);
        return;
    }
    begin_line(o, 0, 0);
    inline_parse(o, s, n, 0, open_end);
}

void md_free(struct md_doc *d) {
    free(d->text);
    free(d->runs);
    free(d->lines);
    memset(d, 0, sizeof *d);
}

bool md_render(struct md_doc *d, const char *src, size_t n, bool raw, bool streaming) {
    struct out o = {d, true, 0};
    if (!d->text) {
        if (!(d->text = malloc(256))) return false;
        d->cap = 256;
    }
    d->text[0] = 0;
    d->len = 0;
    d->n_runs = d->n_lines = d->n_blocks = 0;
    bool in_fence = false;
    char fch = 0;
    size_t fcount = 0, findent = 0;
    for (size_t pos = 0;;) {
        const char *nl = memchr(src + pos, '\n', n - pos);
        const size_t end = nl ? (size_t)(nl - src) : n;
        const char *s = src + pos;
        const size_t len = end - pos;
        const bool last = !nl;
        if (raw) {
            begin_line(&o, 0, 0);
            put(&o, s, len, 0);
        } else if (in_fence) {
            if (fence_close(s, len, fch, fcount)) {
                in_fence = false;
            } else {
                begin_line(&o, MD_CODE_BLOCK, d->n_blocks);
                size_t drop = indent_of(s, len);
                if (drop > findent) drop = findent;
                put_text(&o, s + drop, len - drop, MD_CODE_BLOCK);
            }
        } else {
            size_t info, info_len;
            if (fence_open(s, len, &fch, &fcount, &info, &info_len)) {
                in_fence = true;
                findent = indent_of(s, len);
                d->n_blocks++;
                begin_line(&o, MD_FENCE, d->n_blocks);
                char label[96];
                int k = snprintf(label, sizeof label, "code %d%s%.*s", d->n_blocks, info_len ? " \xc2\xb7 " : "",
                                 (int)(info_len > 60 ? 60 : info_len), s + info);
                put(&o, label, (size_t)k, MD_FENCE);
            } else {
                render_line(&o, s, len, streaming && last);
            }
        }
        if (!o.ok) break;
        if (!nl) break;
        pos = end + 1;
    }
    if (!o.ok) md_free(d);
    return o.ok;
}

// --- wrapping --------------------------------------------------------------------------

int md_wrap(const struct md_doc *d, int width, struct md_row *out, int cap) {
    if (width < 1) width = 1;
    int rows = 0;
    for (int li = 0; li < d->n_lines; li++) {
        const struct md_line *l = &d->lines[li];
        const char *s = d->text + l->start;
        // A hang that leaves less than 8 columns is not worth it.
        const int hang = l->hang > 0 && width - l->hang >= 8 ? l->hang : 0;
        size_t pos = 0;
        int indent = 0;
        do {
            size_t next;
            const size_t len = text_line(s + pos, l->len - pos, width - indent, &next);
            if (rows < cap) out[rows] = (struct md_row){li, l->start + pos, len, indent};
            rows++;
            pos += next;
            indent = hang;
        } while (pos < l->len);
    }
    return rows;
}

// --- code blocks ----------------------------------------------------------------------

bool md_code_block(const char *src, size_t n, int index, size_t *start, size_t *len) {
    int seen = 0;
    bool in_fence = false;
    char fch = 0;
    size_t fcount = 0, body = 0;
    for (size_t pos = 0;;) {
        const char *nl = memchr(src + pos, '\n', n - pos);
        const size_t end = nl ? (size_t)(nl - src) : n;
        size_t info, info_len;
        if (in_fence) {
            if (fence_close(src + pos, end - pos, fch, fcount)) {
                in_fence = false;
                if (seen == index) {
                    *start = body;
                    *len = pos > body ? pos - 1 - body : 0; // without the newline before the fence
                    return true;
                }
            }
        } else if (fence_open(src + pos, end - pos, &fch, &fcount, &info, &info_len)) {
            in_fence = true;
            seen++;
            body = nl ? end + 1 : n;
        }
        if (!nl) break;
        pos = end + 1;
    }
    if (in_fence && seen == index) {
        *start = body;
        *len = n - body;
        return true;
    }
    return false;
}
