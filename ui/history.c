/*
 * history.c — the input history file (see history.h).
 */
#include "history.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *history_default_path(void) {
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    char buf[4096];
    if (xdg && *xdg) snprintf(buf, sizeof buf, "%s/lowbit/history", xdg);
    else snprintf(buf, sizeof buf, "%s/.local/share/lowbit/history", home && *home ? home : ".");
    return strdup(buf);
}

void history_free(char **items, int n) {
    for (int i = 0; i < n; i++) free(items[i]);
    free(items);
}

// In place; false on a backslash not followed by \ n r t.
static bool unescape(char *s) {
    char *w = s;
    for (const char *r = s; *r; r++) {
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
    fputc('\n', f);
}

bool history_load(const char *path, char ***items, int *n, char *err, size_t cap) {
    *items = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT) return true;
        snprintf(err, cap, "%s: cannot read: %s", path, strerror(errno));
        return false;
    }
    char *line = NULL, **v = NULL;
    size_t lcap = 0;
    ssize_t len;
    int count = 0, vcap = 0, lineno = 0;
    bool ok = true;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        if (len > 0 && line[len - 1] == '\n') line[--len] = 0;
        if (!unescape(line)) {
            snprintf(err, cap, "%s: line %d: bad escape (expected \\\\ \\n \\r or \\t after a backslash)", path, lineno);
            ok = false;
            break;
        }
        if (!*line) continue;
        if (count == vcap) {
            vcap = vcap ? vcap * 2 : 64;
            char **nv = realloc(v, (size_t)vcap * sizeof *nv);
            if (!nv) {
                snprintf(err, cap, "%s: out of memory", path);
                ok = false;
                break;
            }
            v = nv;
        }
        if (!(v[count] = strdup(line))) {
            snprintf(err, cap, "%s: out of memory", path);
            ok = false;
            break;
        }
        count++;
    }
    if (ok && ferror(f)) {
        snprintf(err, cap, "%s: read failed: %s", path, strerror(errno));
        ok = false;
    }
    free(line);
    fclose(f);
    if (!ok) {
        history_free(v, count);
        return false;
    }
    *items = v;
    *n = count;
    return true;
}

static bool make_parent(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf) return true;
    *slash = 0;
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0700) != 0 && errno != EEXIST) return false;
            *p = '/';
        }
    return mkdir(buf, 0700) == 0 || errno == EEXIST;
}

bool history_append(const char *path, const char *entry, char *err, size_t cap) {
    char **v;
    int n;
    if (!history_load(path, &v, &n, err, cap)) return false;
    const bool dup = !*entry || (n > 0 && !strcmp(v[n - 1], entry));
    if (dup) {
        history_free(v, n);
        return true;
    }
    if (!make_parent(path)) {
        snprintf(err, cap, "%s: cannot create its directory: %s", path, strerror(errno));
        history_free(v, n);
        return false;
    }
    size_t plen = strlen(path) + 5;
    char *tmp = malloc(plen);
    if (!tmp) {
        snprintf(err, cap, "%s: out of memory", path);
        history_free(v, n);
        return false;
    }
    snprintf(tmp, plen, "%s.tmp", path);
    // Private, as the messages in it are.
    const int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (fd >= 0 && !f) close(fd);
    bool ok = f != NULL;
    if (ok) {
        // The newest HISTORY_MAX, counting the new entry.
        const int from = n + 1 > HISTORY_MAX ? n + 1 - HISTORY_MAX : 0;
        for (int i = from; i < n; i++) put_escaped(f, v[i]);
        put_escaped(f, entry);
        ok = fflush(f) == 0 && !ferror(f) && fsync(fileno(f)) == 0;
        ok = fclose(f) == 0 && ok;
        ok = ok && rename(tmp, path) == 0;
    }
    if (ok) {
        // The rename itself reaches the disk with the directory.
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
    }
    if (!ok) {
        snprintf(err, cap, "%s: not saved: %s", path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    history_free(v, n);
    return ok;
}
