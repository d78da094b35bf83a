/*
 * json.c — the strict JSON reader described in json.h.
 *
 * Recursive descent over the buffer with a depth limit. Children of arrays
 * and objects are collected on one scratch stack shared by the whole parse
 * and copied into the arena, contiguous, when their container closes, so a
 * document costs one arena plus one stack whatever its shape. Every read is
 * bounded by the buffer's length: the input need not end in a NUL, and a
 * truncated file is an "unexpected end of input" at its length.
 *
 * Sections: arena, errors, lexing helpers, values, public calls.
 */
#include "json.h"

#include "internal.h"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// Arena: blocks chained through their first word, 8-byte aligned pieces.

struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    _Alignas(8) unsigned char data[];
};

struct arena {
    struct arena_block *head;
    size_t next_cap;   // blocks grow 4 KiB, 8 KiB, ... 1 MiB: small documents stay small
};

static void *arena_alloc(struct arena *a, size_t n) {
    n = (n + 7) & ~(size_t)7;
    struct arena_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = a->next_cap ? a->next_cap : 4096;
        if (cap < (1u << 20)) a->next_cap = cap * 2;
        if (cap < n) cap = n; // a bigger piece gets a block of its own
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->used = 0;
        b->cap = cap;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

static void arena_free(struct arena *a) {
    struct arena_block *b = a->head;
    while (b) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

// ----------------------------------------------------------------------------
// Parser state and errors

struct parser {
    const unsigned char *p, *end, *start;
    const char *name;
    lb_error *err;
    struct arena arena;
    struct json_member *stack;   // children of the open containers
    size_t top, cap;
    locale_t c_locale;           // for strtod_l: numbers never depend on the user's locale
};

static size_t pos(const struct parser *ps, const unsigned char *at) { return (size_t)(at - ps->start); }

// What is at `at`, for messages: 'c', byte 0xNN, or end of input.
static const char *found(const struct parser *ps, const unsigned char *at, char *buf, size_t cap) {
    if (at >= ps->end) return "end of input";
    if (*at >= 0x20 && *at < 0x7f) snprintf(buf, cap, "'%c'", *at);
    else snprintf(buf, cap, "byte 0x%02x", *at);
    return buf;
}

static lb_status expected(struct parser *ps, const unsigned char *at, const char *what) {
    char buf[16];
    lb_fail(ps->err, LB_ERR_FORMAT, "%s: byte %zu: expected %s, found %s", ps->name, pos(ps, at), what,
            found(ps, at, buf, sizeof buf));
    return LB_ERR_FORMAT;
}

static lb_status nomem(struct parser *ps) {
    lb_fail(ps->err, LB_ERR_NOMEM, "%s: byte %zu: out of memory", ps->name, pos(ps, ps->p));
    return LB_ERR_NOMEM;
}

// ----------------------------------------------------------------------------
// Lexing helpers

static void skip_ws(struct parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static int hex4(const unsigned char *s) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int c = s[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t put_utf8(unsigned char *d, uint32_t cp) {
    if (cp < 0x80) return d[0] = (unsigned char)cp, 1;
    if (cp < 0x800) return d[0] = (unsigned char)(0xC0 | cp >> 6), d[1] = (unsigned char)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000) {
        d[0] = (unsigned char)(0xE0 | cp >> 12);
        d[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        d[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (unsigned char)(0xF0 | cp >> 18);
    d[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    d[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    d[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

// Length of the well-formed UTF-8 sequence at s (at most n bytes), 0 if
// ill-formed: overlong forms, surrogates and code points past U+10FFFF are refused.
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; // allowed range of the second byte
    if (c < 0x80) return 1;
    else if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) len = 3, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC) len = 3;
    else if (c == 0xED) len = 3, hi = 0x9F;
    else if (c >= 0xEE && c <= 0xEF) len = 3;
    else if (c == 0xF0) len = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) len = 4, hi = 0x8F;
    else return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return len;
}

// A string starting at the opening quote. The decoded text is never longer
// than the raw one (an escape shrinks or keeps its length), so one arena piece
// of the raw length + 1 holds it.
static lb_status parse_string(struct parser *ps, const char **out, size_t *out_len) {
    const unsigned char *q = ps->p + 1;
    // Find the closing quote, skipping escaped characters.
    while (q < ps->end && *q != '"') q += (*q == '\\' && q + 1 < ps->end) ? 2 : 1;
    if (q >= ps->end) return expected(ps, ps->end, "'\"' closing the string");
    unsigned char *dst = arena_alloc(&ps->arena, (size_t)(q - ps->p));
    if (!dst) return nomem(ps);
    size_t n = 0;
    const unsigned char *s = ps->p + 1;
    while (s < q) {
        if (*s == '\\') {
            const unsigned char *esc = s;
            switch (s[1]) {
            case '"': dst[n++] = '"'; break;
            case '\\': dst[n++] = '\\'; break;
            case '/': dst[n++] = '/'; break;
            case 'b': dst[n++] = '\b'; break;
            case 'f': dst[n++] = '\f'; break;
            case 'n': dst[n++] = '\n'; break;
            case 'r': dst[n++] = '\r'; break;
            case 't': dst[n++] = '\t'; break;
            case 'u': {
                int u = q - s >= 6 ? hex4(s + 2) : -1;
                if (u < 0) return expected(ps, s + 2, "four hex digits after \\u");
                uint32_t cp = (uint32_t)u;
                if (cp >= 0xDC00 && cp <= 0xDFFF) return expected(ps, esc, "a high surrogate before a low one");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    int lo = q - s >= 12 && s[6] == '\\' && s[7] == 'u' ? hex4(s + 8) : -1;
                    if (lo < 0xDC00 || lo > 0xDFFF) return expected(ps, s + 6, "a \\u low surrogate after a high one");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
                    s += 6;
                }
                n += put_utf8(dst + n, cp);
                s += 4;
                break;
            }
            default:
                return expected(ps, s + 1, "an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u)");
            }
            s += 2;
        } else if (*s < 0x20) {
            return expected(ps, s, "a character (control characters must be escaped)");
        } else {
            size_t k = utf8_seq(s, (size_t)(q - s));
            if (!k) return expected(ps, s, "valid UTF-8");
            memcpy(dst + n, s, k);
            n += k;
            s += k;
        }
    }
    dst[n] = 0;
    *out = (const char *)dst;
    *out_len = n;
    ps->p = q + 1;
    return LB_OK;
}

static lb_status parse_number(struct parser *ps, struct json_value *v) {
    const unsigned char *s = ps->p, *q = s;
    if (q < ps->end && *q == '-') q++;
    if (q >= ps->end || *q < '0' || *q > '9') return expected(ps, q, "a digit");
    bool integral = true;
    if (*q == '0') {
        q++;
        if (q < ps->end && *q >= '0' && *q <= '9') return expected(ps, q, "'.', 'e' or the end of the number after 0");
    } else {
        while (q < ps->end && *q >= '0' && *q <= '9') q++;
    }
    if (q < ps->end && *q == '.') {
        integral = false;
        q++;
        if (q >= ps->end || *q < '0' || *q > '9') return expected(ps, q, "a digit after '.'");
        while (q < ps->end && *q >= '0' && *q <= '9') q++;
    }
    if (q < ps->end && (*q == 'e' || *q == 'E')) {
        integral = false;
        q++;
        if (q < ps->end && (*q == '+' || *q == '-')) q++;
        if (q >= ps->end || *q < '0' || *q > '9') return expected(ps, q, "a digit in the exponent");
        while (q < ps->end && *q >= '0' && *q <= '9') q++;
    }
    v->type = JSON_NUMBER;
    v->is_int = false;
    if (integral) {
        // Exact int64 when it fits (token ids, sizes, offsets must not pass through a double).
        bool neg = *s == '-';
        uint64_t mag = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        bool fits = true;
        for (const unsigned char *d = s + neg; d < q && fits; d++) {
            uint64_t digit = (uint64_t)(*d - '0');
            if (mag > (limit - digit) / 10) fits = false;
            else mag = mag * 10 + digit;
        }
        if (fits) {
            v->is_int = true;
            v->num.i = neg ? (int64_t)(0 - mag) : (int64_t)mag;
        }
    }
    // The grammar above was checked, so strtod_l reads exactly q - s bytes;
    // copy them to be NUL-terminated.
    char small[64], *buf = small;
    size_t n = (size_t)(q - s);
    if (n >= sizeof small && !(buf = malloc(n + 1))) return nomem(ps);
    memcpy(buf, s, n);
    buf[n] = 0;
    if (!ps->c_locale && !(ps->c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0))) {
        if (buf != small) free(buf);
        return nomem(ps);
    }
    v->num.f = strtod_l(buf, NULL, ps->c_locale); // out of range: ±HUGE_VAL or 0, as json.loads does
    if (buf != small) free(buf);
    ps->p = q;
    return LB_OK;
}

static lb_status push(struct parser *ps, const struct json_member *m) {
    if (ps->top == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 256;
        struct json_member *s = realloc(ps->stack, cap * sizeof *s);
        if (!s) return nomem(ps);
        ps->stack = s;
        ps->cap = cap;
    }
    ps->stack[ps->top++] = *m;
    return LB_OK;
}

static int cmp_member_ptr(const void *a, const void *b) {
    const struct json_member *x = *(struct json_member *const *)a, *y = *(struct json_member *const *)b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    if (c) return c;
    return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

// A key seen twice: sort pointers to the members (small objects compare pairwise).
static lb_status check_duplicates(struct parser *ps, const struct json_member *m, size_t n) {
    const struct json_member *dup = NULL;
    if (n <= 16) {
        for (size_t i = 1; i < n && !dup; i++)
            for (size_t j = 0; j < i && !dup; j++)
                if (m[i].key_len == m[j].key_len && !memcmp(m[i].key, m[j].key, m[i].key_len)) dup = &m[i];
    } else {
        const struct json_member **idx = malloc(n * sizeof *idx);
        if (!idx) return nomem(ps);
        for (size_t i = 0; i < n; i++) idx[i] = &m[i];
        qsort(idx, n, sizeof *idx, cmp_member_ptr);
        for (size_t i = 1; i < n && !dup; i++)
            if (!cmp_member_ptr(&idx[i - 1], &idx[i])) dup = idx[i] > idx[i - 1] ? idx[i] : idx[i - 1];
        free(idx);
    }
    if (!dup) return LB_OK;
    lb_fail(ps->err, LB_ERR_FORMAT, "%s: byte %zu: key \"%.*s\" appears twice in one object (expected unique keys)",
            ps->name, dup->value.offset, (int)(dup->key_len > 64 ? 64 : dup->key_len), dup->key);
    return LB_ERR_FORMAT;
}

// ----------------------------------------------------------------------------
// Values

static lb_status parse_value(struct parser *ps, struct json_value *v, int depth);

// Copy the children pushed since `base` into the arena and pop them.
static lb_status close_container(struct parser *ps, struct json_value *v, size_t base) {
    size_t n = ps->top - base;
    if (v->type == JSON_ARRAY) {
        v->arr.n = n;
        v->arr.items = n ? arena_alloc(&ps->arena, n * sizeof *v->arr.items) : NULL;
        if (n && !v->arr.items) return nomem(ps);
        for (size_t i = 0; i < n; i++) v->arr.items[i] = ps->stack[base + i].value;
    } else {
        v->obj.n = n;
        v->obj.items = n ? arena_alloc(&ps->arena, n * sizeof *v->obj.items) : NULL;
        if (n && !v->obj.items) return nomem(ps);
        if (n) memcpy(v->obj.items, ps->stack + base, n * sizeof *v->obj.items);
        lb_status st = check_duplicates(ps, v->obj.items, n);
        if (st) return st;
    }
    ps->top = base;
    return LB_OK;
}

static lb_status parse_container(struct parser *ps, struct json_value *v, int depth) {
    const bool is_obj = *ps->p == '{';
    const char close = is_obj ? '}' : ']';
    v->type = is_obj ? JSON_OBJECT : JSON_ARRAY;
    if (depth >= JSON_MAX_DEPTH) {
        lb_fail(ps->err, LB_ERR_FORMAT, "%s: byte %zu: nesting deeper than %d (expected at most %d levels)", ps->name,
                pos(ps, ps->p), JSON_MAX_DEPTH, JSON_MAX_DEPTH);
        return LB_ERR_FORMAT;
    }
    size_t base = ps->top;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return close_container(ps, v, base);
    }
    for (;;) {
        struct json_member m = {0};
        lb_status st;
        if (is_obj) {
            if (ps->p >= ps->end || *ps->p != '"') return expected(ps, ps->p, "'\"' starting an object key");
            if ((st = parse_string(ps, &m.key, &m.key_len))) return st;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') return expected(ps, ps->p, "':' after an object key");
            ps->p++;
            skip_ws(ps);
        }
        if ((st = parse_value(ps, &m.value, depth + 1)) || (st = push(ps, &m))) return st;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            skip_ws(ps);
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            return close_container(ps, v, base);
        }
        return expected(ps, ps->p, is_obj ? "',' or '}' after an object member" : "',' or ']' after an array item");
    }
}

static lb_status parse_literal(struct parser *ps, const char *word, enum json_type t, struct json_value *v) {
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) return expected(ps, ps->p, "a JSON value");
    v->type = t;
    ps->p += n;
    return LB_OK;
}

static lb_status parse_value(struct parser *ps, struct json_value *v, int depth) {
    memset(v, 0, sizeof *v);
    v->offset = pos(ps, ps->p);
    if (ps->p >= ps->end) return expected(ps, ps->p, "a JSON value");
    switch (*ps->p) {
    case '{':
    case '[':
        return parse_container(ps, v, depth);
    case '"':
        v->type = JSON_STRING;
        return parse_string(ps, &v->str.s, &v->str.len);
    case 't': return parse_literal(ps, "true", JSON_TRUE, v);
    case 'f': return parse_literal(ps, "false", JSON_FALSE, v);
    case 'n': return parse_literal(ps, "null", JSON_NULL, v);
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) return parse_number(ps, v);
        return expected(ps, ps->p, "a JSON value");
    }
}

// ----------------------------------------------------------------------------
// Public calls

lb_status json_parse(struct json_doc **out, const char *name, const char *buf, size_t len, lb_error *err) {
    *out = NULL;
    struct parser ps = {
        .p = (const unsigned char *)buf, .end = (const unsigned char *)buf + len, .start = (const unsigned char *)buf,
        .name = name ? name : "(json)", .err = err,
    };
    struct json_doc *doc = calloc(1, sizeof *doc);
    if (!doc) return lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", ps.name);
    // A UTF-8 byte order mark is not JSON (RFC 8259 §8.1 lets a reader ignore
    // it; Python's json refuses it): refused too, with the usual message.
    skip_ws(&ps);
    lb_status st = parse_value(&ps, &doc->root, 0);
    if (!st) {
        skip_ws(&ps);
        if (ps.p < ps.end) st = expected(&ps, ps.p, "the end of input after the top-level value");
    }
    free(ps.stack);
    if (ps.c_locale) freelocale(ps.c_locale);
    if (st) {
        arena_free(&ps.arena);
        free(doc);
        return st;
    }
    struct arena *a = malloc(sizeof *a);
    if (!a) {
        arena_free(&ps.arena);
        free(doc);
        return lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", ps.name);
    }
    *a = ps.arena;
    doc->arena = a;
    *out = doc;
    return LB_OK;
}

lb_status json_parse_file(struct json_doc **out, const char *path, const char *name, lb_error *err) {
    *out = NULL;
    if (!name) name = path;
    char *buf;
    size_t size;
    lb_status st = lb_read_file(path, name, &buf, &size, err);
    if (st == LB_OK) st = json_parse(out, name, buf, size, err);
    free(buf);
    return st;
}

void json_free(struct json_doc *doc) {
    if (!doc) return;
    if (doc->arena) {
        arena_free(doc->arena);
        free(doc->arena);
    }
    free(doc);
}

const struct json_value *json_get(const struct json_value *v, const char *key) {
    if (!v || v->type != JSON_OBJECT) return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < v->obj.n; i++)
        if (v->obj.items[i].key_len == n && !memcmp(v->obj.items[i].key, key, n)) return &v->obj.items[i].value;
    return NULL;
}

const char *json_type_name(enum json_type t) {
    static const char *const names[] = {"null", "false", "true", "number", "string", "array", "object"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}
