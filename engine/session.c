/*
 * session.c — a chat session in memory and on disk.
 *
 * File format (documented for users in lowbit(1), FILES): UTF-8 text, one
 * record per line, "KEY VALUE". Values escape backslash, newline, carriage
 * return and tab as \\ \n \r \t, so every record is exactly one line.
 *
 *     lowbit-session 1
 *     name Stories
 *     template raw
 *     profile q8_0
 *     system You are a storyteller.
 *     temp 0.8
 *     top_k 40
 *     top_p 0.95
 *     min_p 0.05
 *     repeat_penalty 1
 *     seed random
 *     msg user Once upon a time
 *     msg assistant , there was a girl.\nShe ...
 *     end 2
 *
 * The `end` line carries the message count: a file without it, or with a
 * count that does not match, is truncated or damaged and fails to load.
 * Unknown keys are skipped, so newer files stay readable.
 *
 * Saving is atomic: write "PATH.tmp", fsync, rename over PATH, fsync the
 * directory. A crash at any moment leaves either the old file or the new one.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// --- in memory ----------------------------------------------------------------

static bool set_str(char **field, const char *value) {
    char *s = strdup(value ? value : "");
    if (!s) return false;
    free(*field);
    *field = s;
    return true;
}

lb_session *lb_session_new(const char *name) {
    lb_session *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->sampling = lb_sampler_default_params();
    s->seed_random = true;
    if (!set_str(&s->name, name) || !set_str(&s->system, "") || !set_str(&s->template_name, "") ||
        !set_str(&s->profile, "")) {
        lb_session_free(s);
        return NULL;
    }
    return s;
}

void lb_session_clear(lb_session *s) {
    for (int i = 0; i < s->n_msgs; i++) {
        free((char *)s->msgs[i].role);
        free((char *)s->msgs[i].content);
    }
    s->n_msgs = 0;
}

void lb_session_free(lb_session *s) {
    if (!s) return;
    lb_session_clear(s);
    free(s->msgs);
    free(s->name);
    free(s->system);
    free(s->template_name);
    free(s->profile);
    free(s);
}

bool lb_session_set_name(lb_session *s, const char *v) { return set_str(&s->name, v); }
bool lb_session_set_system(lb_session *s, const char *v) { return set_str(&s->system, v); }
bool lb_session_set_template(lb_session *s, const char *v) { return set_str(&s->template_name, v); }
bool lb_session_set_profile(lb_session *s, const char *v) { return set_str(&s->profile, v); }

bool lb_session_add(lb_session *s, const char *role, const char *content) {
    if (s->n_msgs == s->cap_msgs) {
        int cap = s->cap_msgs ? 2 * s->cap_msgs : 8;
        lb_chat_message *m = realloc(s->msgs, (size_t)cap * sizeof *m);
        if (!m) return false;
        s->msgs = m;
        s->cap_msgs = cap;
    }
    char *r = strdup(role), *c = strdup(content ? content : "");
    if (!r || !c) {
        free(r);
        free(c);
        return false;
    }
    s->msgs[s->n_msgs++] = (lb_chat_message){r, c};
    return true;
}

bool lb_session_append(lb_session *s, const char *text, size_t n) {
    if (s->n_msgs == 0) return false;
    lb_chat_message *m = &s->msgs[s->n_msgs - 1];
    size_t old = strlen(m->content);
    char *c = realloc((char *)m->content, old + n + 1);
    if (!c) return false;
    memcpy(c + old, text, n);
    c[old + n] = 0;
    m->content = c;
    return true;
}

void lb_session_remove(lb_session *s, int first, int n) {
    if (first < 0 || n <= 0 || first >= s->n_msgs) return;
    if (first + n > s->n_msgs) n = s->n_msgs - first;
    for (int i = first; i < first + n; i++) {
        free((char *)s->msgs[i].role);
        free((char *)s->msgs[i].content);
    }
    memmove(s->msgs + first, s->msgs + first + n, (size_t)(s->n_msgs - first - n) * sizeof *s->msgs);
    s->n_msgs -= n;
}

// --- writing --------------------------------------------------------------------

static void put_escaped(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default: fputc(*s, f);
        }
    }
}

static void put_record(FILE *f, const char *key, const char *value) {
    fputs(key, f);
    fputc(' ', f);
    put_escaped(f, value);
    fputc('\n', f);
}

static lb_status fsync_dir(const char *path, lb_error *err) {
    char *copy = strdup(path);
    if (!copy) return lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    if (fd < 0) return LB_OK; // best effort: some file systems do not open directories
    fsync(fd);
    close(fd);
    return LB_OK;
}

lb_status lb_session_save(const lb_session *s, const char *path, lb_error *err) {
    size_t n = strlen(path);
    char *tmp = malloc(n + 5);
    if (!tmp) return lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", path);
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);

    lb_status st = LB_OK;
    FILE *f = fopen(tmp, "w");
    if (!f) {
        st = lb_fail(err, LB_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    const lb_sampler_params *p = &s->sampling;
    fprintf(f, "lowbit-session 1\n");
    put_record(f, "name", s->name);
    put_record(f, "template", s->template_name);
    put_record(f, "profile", s->profile);
    put_record(f, "system", s->system);
    fprintf(f, "temp %.9g\ntop_k %d\ntop_p %.9g\nmin_p %.9g\nrepeat_penalty %.9g\n", p->temp, p->top_k, p->top_p,
            p->min_p, p->repeat_penalty);
    if (s->seed_random) fprintf(f, "seed random\n");
    else fprintf(f, "seed %llu\n", (unsigned long long)p->seed);
    for (int i = 0; i < s->n_msgs; i++) {
        fprintf(f, "msg %s ", s->msgs[i].role);
        put_escaped(f, s->msgs[i].content);
        fputc('\n', f);
    }
    fprintf(f, "end %d\n", s->n_msgs);

    bool ok = fflush(f) == 0 && !ferror(f) && fsync(fileno(f)) == 0;
    int saved_errno = errno;
    if (fclose(f) != 0) ok = false;
    if (!ok) {
        st = lb_fail(err, LB_ERR_IO, "%s: write failed: %s", tmp, strerror(saved_errno));
        unlink(tmp);
    } else if (rename(tmp, path) != 0) {
        st = lb_fail(err, LB_ERR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
    } else {
        st = fsync_dir(path, err);
    }
    free(tmp);
    return st;
}

// --- reading --------------------------------------------------------------------

// Undo put_escaped in place. False on a dangling or unknown escape.
static bool unescape(char *s) {
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r != '\\') {
            *w++ = *r;
            continue;
        }
        switch (*++r) {
        case '\\': *w++ = '\\'; break;
        case 'n': *w++ = '\n'; break;
        case 'r': *w++ = '\r'; break;
        case 't': *w++ = '\t'; break;
        default: return false;
        }
    }
    *w = 0;
    return true;
}

static bool parse_double(const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !(d >= lo && d <= hi)) return false;
    *out = d;
    return true;
}

lb_status lb_session_load(lb_session **out, const char *path, lb_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) return lb_fail(err, LB_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    lb_session *s = lb_session_new("");
    if (!s) {
        fclose(f);
        return lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", path);
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0;
    bool ended = false;
    lb_status st = LB_OK;
#define BAD(...) do { st = lb_fail(err, LB_ERR_FORMAT, __VA_ARGS__); goto done; } while (0)
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (len == 0 || line[len - 1] != '\n') BAD("%s: line %d: no end of line (file truncated?)", path, lineno);
        line[len - 1] = 0;
        if (lineno == 1) {
            if (strcmp(line, "lowbit-session 1"))
                BAD("%s: line 1: found '%.40s', expected 'lowbit-session 1'", path, line);
            continue;
        }
        if (ended) BAD("%s: line %d: text after the 'end' line", path, lineno);
        char *sp = strchr(line, ' ');
        if (!sp) BAD("%s: line %d: found '%.40s', expected 'KEY VALUE'", path, lineno, line);
        *sp = 0;
        const char *key = line;
        char *v = sp + 1;
        if (!unescape(v)) BAD("%s: line %d: %s: bad escape (expected \\\\ \\n \\r or \\t)", path, lineno, key);
        double d;
        bool ok = true;
        if (!strcmp(key, "name")) ok = lb_session_set_name(s, v);
        else if (!strcmp(key, "template")) ok = lb_session_set_template(s, v);
        else if (!strcmp(key, "profile")) ok = lb_session_set_profile(s, v);
        else if (!strcmp(key, "system")) ok = lb_session_set_system(s, v);
        else if (!strcmp(key, "temp")) {
            if (!parse_double(v, 0, 100, &d)) BAD("%s: line %d: temp '%s' (expected 0..100)", path, lineno, v);
            s->sampling.temp = (float)d;
        } else if (!strcmp(key, "top_k")) {
            if (!parse_double(v, 0, 1 << 24, &d) || d != (int32_t)d)
                BAD("%s: line %d: top_k '%s' (expected an integer 0..16777216)", path, lineno, v);
            s->sampling.top_k = (int32_t)d;
        } else if (!strcmp(key, "top_p")) {
            if (!parse_double(v, 0, 1, &d)) BAD("%s: line %d: top_p '%s' (expected 0..1)", path, lineno, v);
            s->sampling.top_p = (float)d;
        } else if (!strcmp(key, "min_p")) {
            if (!parse_double(v, 0, 1, &d)) BAD("%s: line %d: min_p '%s' (expected 0..1)", path, lineno, v);
            s->sampling.min_p = (float)d;
        } else if (!strcmp(key, "repeat_penalty")) {
            if (!parse_double(v, 0.01, 100, &d))
                BAD("%s: line %d: repeat_penalty '%s' (expected 0.01..100)", path, lineno, v);
            s->sampling.repeat_penalty = (float)d;
        } else if (!strcmp(key, "seed")) {
            if (!strcmp(v, "random")) {
                s->seed_random = true;
            } else {
                char *end;
                errno = 0;
                unsigned long long seed = strtoull(v, &end, 10);
                if (errno || end == v || *end || *v == '-')
                    BAD("%s: line %d: seed '%s' (expected 'random' or a non-negative integer)", path, lineno, v);
                s->sampling.seed = seed;
                s->seed_random = false;
            }
        } else if (!strcmp(key, "msg")) {
            char *sp2 = strchr(v, ' ');
            if (!sp2) BAD("%s: line %d: msg without text (expected 'msg ROLE TEXT')", path, lineno);
            *sp2 = 0;
            if (strcmp(v, "user") && strcmp(v, "assistant"))
                BAD("%s: line %d: role '%s' (expected user or assistant)", path, lineno, v);
            ok = lb_session_add(s, v, sp2 + 1);
        } else if (!strcmp(key, "end")) {
            if (!parse_double(v, 0, 1e9, &d) || (int)d != s->n_msgs)
                BAD("%s: line %d: end count '%s' but %d messages were read", path, lineno, v, s->n_msgs);
            ended = true;
        }
        if (!ok) {
            st = lb_fail(err, LB_ERR_NOMEM, "%s: line %d: out of memory", path, lineno);
            goto done;
        }
    }
    if (ferror(f)) {
        st = lb_fail(err, LB_ERR_IO, "%s: read failed: %s", path, strerror(errno));
        goto done;
    }
    if (lineno == 0) BAD("%s: empty file (expected 'lowbit-session 1')", path);
    if (!ended) BAD("%s: no 'end' line after line %d (file truncated?)", path, lineno);
#undef BAD
done:
    free(line);
    fclose(f);
    if (st != LB_OK) {
        lb_session_free(s);
        return st;
    }
    *out = s;
    return LB_OK;
}
