/*
 * session.c — a chat session in memory and on disk.
 *
 * In memory a conversation is a tree of nodes (lowbit.h); msgs/path mirror
 * the branch shown and are rebuilt after every change by show_path().
 *
 * File format (documented for users in lowbit(1), FILES): UTF-8 text, one
 * record per line, "KEY VALUE". Values escape backslash, newline, carriage
 * return and tab as \\ \n \r \t, so every record is exactly one line.
 *
 *     lowbit-session 2
 *     name Stories
 *     template raw
 *     profile q8_0
 *     draft self
 *     draft_profile q4_0
 *     system You are a storyteller.
 *     temp 0.8
 *     top_k 40
 *     top_p 0.95
 *     min_p 0.05
 *     repeat_penalty 1
 *     seed random
 *     node -1 user Once upon a time
 *     node 0 assistant , there was a girl.\nShe ...
 *     stats tokens=40 ttft=0.012 tps=351.2 accept=-1 seed=7 kld=-1 top1=-1 measured=0 bpw=8.5 profile=q8_0
 *     node 0 assistant , a dog lived in a house.
 *     stats ...
 *     compare 1
 *     shown 2
 *     end 3
 *
 * Nodes are numbered from 0 in file order; `node PARENT ROLE TEXT` names a
 * parent written before it (-1: a first message). `stats` and `compare` apply
 * to the node just written; `compare N` links it with the earlier node N.
 * `shown LEAF` is the last message of the branch shown (without it: the most
 * recent child at each step). The `end` line carries the node count: a file
 * without it, or with a count that does not match, is truncated or damaged
 * and fails to load. Unknown keys are skipped, so newer files stay readable.
 * Format 1 (`lowbit-session 1`) had `msg ROLE TEXT` records, one branch; it
 * still loads, as a tree without branches.
 *
 * Saving is atomic: write "PATH.tmp", fsync, rename over PATH, fsync the
 * directory. A crash at any moment leaves either the old file or the new one.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
    s->first = -1;
    if (!set_str(&s->name, name) || !set_str(&s->system, "") || !set_str(&s->template_name, "") ||
        !set_str(&s->profile, "") || !set_str(&s->draft, "") || !set_str(&s->draft_profile, "")) {
        lb_session_free(s);
        return NULL;
    }
    return s;
}

void lb_session_clear(lb_session *s) {
    for (int i = 0; i < s->n_nodes; i++) {
        free(s->nodes[i].role);
        free(s->nodes[i].content);
    }
    s->n_nodes = 0;
    s->n_msgs = 0;
    s->first = -1;
}

void lb_session_free(lb_session *s) {
    if (!s) return;
    lb_session_clear(s);
    free(s->nodes);
    free(s->msgs);
    free(s->path);
    free(s->name);
    free(s->system);
    free(s->template_name);
    free(s->profile);
    free(s->draft);
    free(s->draft_profile);
    free(s);
}

bool lb_session_set_name(lb_session *s, const char *v) { return set_str(&s->name, v); }
bool lb_session_set_system(lb_session *s, const char *v) { return set_str(&s->system, v); }
bool lb_session_set_template(lb_session *s, const char *v) { return set_str(&s->template_name, v); }
bool lb_session_set_profile(lb_session *s, const char *v) { return set_str(&s->profile, v); }
bool lb_session_set_draft(lb_session *s, const char *model, const char *profile) {
    char *m = strdup(model ? model : ""), *p = strdup(profile ? profile : "");
    if (!m || !p) {
        free(m);
        free(p);
        return false;
    }
    free(s->draft);
    free(s->draft_profile);
    s->draft = m;
    s->draft_profile = p;
    return true;
}

// Rebuild msgs/path: from `first` down through each node's child. The arrays
// grow to the node count up front, so that this cannot fail once they have.
static bool show_path(lb_session *s) {
    if (s->cap_msgs < s->n_nodes) {
        int cap = s->cap_msgs ? s->cap_msgs : 8;
        while (cap < s->n_nodes) cap *= 2;
        lb_chat_message *m = realloc(s->msgs, (size_t)cap * sizeof *m);
        if (!m) return false;
        s->msgs = m;
        int32_t *p = realloc(s->path, (size_t)cap * sizeof *p);
        if (!p) return false;
        s->path = p;
        s->cap_msgs = cap;
    }
    s->n_msgs = 0;
    // A path visits each node at most once; the bound also stops a cycle in a damaged tree.
    for (int k = s->first; k >= 0 && k < s->n_nodes && s->n_msgs < s->n_nodes; k = s->nodes[k].child) {
        s->path[s->n_msgs] = k;
        s->msgs[s->n_msgs++] = (lb_chat_message){s->nodes[k].role, s->nodes[k].content};
    }
    return true;
}

int lb_session_add_node(lb_session *s, int parent, const char *role, const char *content) {
    if (parent < -1 || parent >= s->n_nodes) return -1;
    if (s->n_nodes == s->cap_nodes) {
        int cap = s->cap_nodes ? 2 * s->cap_nodes : 8;
        lb_session_node *n = realloc(s->nodes, (size_t)cap * sizeof *n);
        if (!n) return -1;
        s->nodes = n;
        s->cap_nodes = cap;
    }
    char *r = strdup(role), *c = strdup(content ? content : "");
    if (!r || !c) {
        free(r);
        free(c);
        return -1;
    }
    const int k = s->n_nodes++;
    s->nodes[k] = (lb_session_node){.role = r, .content = c, .parent = parent, .child = -1, .compare = -1};
    if (!show_path(s)) { // cannot grow the view: the node is not kept
        free(r);
        free(c);
        s->n_nodes--;
        return -1;
    }
    return k;
}

bool lb_session_show(lb_session *s, int node) {
    if (node < 0 || node >= s->n_nodes) return false;
    for (int k = node, up = 0; up <= s->n_nodes; up++) {
        const int p = s->nodes[k].parent;
        if (p < 0) {
            s->first = k;
            break;
        }
        s->nodes[p].child = k;
        k = p;
    }
    return show_path(s);
}

bool lb_session_add(lb_session *s, const char *role, const char *content) {
    const int last = s->n_msgs ? s->path[s->n_msgs - 1] : -1;
    const int k = lb_session_add_node(s, last, role, content);
    return k >= 0 && lb_session_show(s, k);
}

int lb_session_branch(lb_session *s, int i, const char *content) {
    if (i < 0 || i >= s->n_msgs) return -1;
    const lb_session_node *old = &s->nodes[s->path[i]];
    const int k = lb_session_add_node(s, old->parent, old->role, content);
    if (k < 0) return -1;
    lb_session_show(s, k); // cannot fail: the view has room for every node
    return k;
}

int lb_session_siblings(const lb_session *s, int node, int *pos) {
    if (node < 0 || node >= s->n_nodes) return 0;
    int count = 0;
    for (int k = 0; k < s->n_nodes; k++)
        if (s->nodes[k].parent == s->nodes[node].parent) {
            count++;
            if (k == node && pos) *pos = count;
        }
    return count;
}

int lb_session_sibling(const lb_session *s, int node, int delta) {
    if (node < 0 || node >= s->n_nodes) return -1;
    const int parent = s->nodes[node].parent, step = delta < 0 ? -1 : 1;
    int k = node;
    for (int left = delta < 0 ? -delta : delta; left > 0; left--) {
        do k += step;
        while (k >= 0 && k < s->n_nodes && s->nodes[k].parent != parent);
        if (k < 0 || k >= s->n_nodes) return -1;
    }
    return k;
}

void lb_session_set_stats(lb_session *s, int node, const lb_reply_stats *st) {
    if (node < 0 || node >= s->n_nodes) return;
    s->nodes[node].stats = *st;
    s->nodes[node].has_stats = true;
}

bool lb_session_node_append(lb_session *s, int node, const char *text, size_t n) {
    if (node < 0 || node >= s->n_nodes) return false;
    lb_session_node *m = &s->nodes[node];
    size_t old = strlen(m->content);
    char *c = realloc(m->content, old + n + 1);
    if (!c) return false;
    memcpy(c + old, text, n);
    c[old + n] = 0;
    m->content = c;
    show_path(s); // the view points at the content: refresh it (no growth, cannot fail)
    return true;
}

bool lb_session_append(lb_session *s, const char *text, size_t n) {
    return s->n_msgs > 0 && lb_session_node_append(s, s->path[s->n_msgs - 1], text, n);
}

void lb_session_remove(lb_session *s, int first, int n) {
    if (first < 0 || n <= 0 || first >= s->n_msgs) return;
    if (first + n > s->n_msgs) n = s->n_msgs - first;
    // The shown node after the cut moves up to the node before it.
    const int before = first > 0 ? s->path[first - 1] : -1;
    const int after = first + n < s->n_msgs ? s->path[first + n] : -1;
    if (after >= 0) s->nodes[after].parent = before;
    if (before >= 0) s->nodes[before].child = after;
    else s->first = after;
    // Doomed: the cut nodes and everything below them (after moved out already).
    // Parents come before children, so one pass in index order finds them all.
    int *map = malloc((size_t)s->n_nodes * sizeof *map);
    if (!map) return; // out of memory: the cut is only unlinked from the shown branch
    bool *dead = calloc((size_t)s->n_nodes, sizeof *dead);
    if (!dead) {
        free(map);
        return;
    }
    for (int i = first; i < first + n; i++) dead[s->path[i]] = true;
    for (int k = 0; k < s->n_nodes; k++)
        if (s->nodes[k].parent >= 0 && dead[s->nodes[k].parent]) dead[k] = true;
    int m = 0;
    for (int k = 0; k < s->n_nodes; k++) {
        if (dead[k]) {
            free(s->nodes[k].role);
            free(s->nodes[k].content);
            map[k] = -1;
        } else {
            map[k] = m;
            s->nodes[m++] = s->nodes[k];
        }
    }
    s->n_nodes = m;
    for (int k = 0; k < m; k++) {
        lb_session_node *d = &s->nodes[k];
        if (d->parent >= 0) d->parent = map[d->parent];
        if (d->child >= 0) d->child = map[d->child];
        if (d->compare >= 0) d->compare = map[d->compare];
    }
    if (s->first >= 0) s->first = map[s->first];
    free(map);
    free(dead);
    show_path(s);
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
    fprintf(f, "lowbit-session 2\n");
    put_record(f, "name", s->name);
    put_record(f, "template", s->template_name);
    put_record(f, "profile", s->profile);
    put_record(f, "draft", s->draft);
    put_record(f, "draft_profile", s->draft_profile);
    put_record(f, "system", s->system);
    fprintf(f, "temp %.9g\ntop_k %d\ntop_p %.9g\nmin_p %.9g\nrepeat_penalty %.9g\n", p->temp, p->top_k, p->top_p,
            p->min_p, p->repeat_penalty);
    if (s->seed_random) fprintf(f, "seed random\n");
    else fprintf(f, "seed %llu\n", (unsigned long long)p->seed);
    for (int k = 0; k < s->n_nodes; k++) {
        const lb_session_node *d = &s->nodes[k];
        fprintf(f, "node %d %s ", (int)d->parent, d->role);
        put_escaped(f, d->content);
        fputc('\n', f);
        if (d->has_stats) {
            const lb_reply_stats *r = &d->stats;
            fprintf(f, "stats tokens=%d ttft=%.9g tps=%.9g accept=%.9g seed=%llu kld=%.9g top1=%.9g measured=%d "
                       "bpw=%.9g profile=", (int)r->n_tokens, r->ttft_s, r->decode_tps, r->spec_accept,
                    (unsigned long long)r->seed, r->kld, r->top1, (int)r->n_measured, r->bpw);
            put_escaped(f, r->profile);
            fputc('\n', f);
        }
        if (d->compare >= 0 && d->compare < k) fprintf(f, "compare %d\n", (int)d->compare);
    }
    if (s->n_msgs) fprintf(f, "shown %d\n", (int)s->path[s->n_msgs - 1]);
    fprintf(f, "end %d\n", s->n_nodes);

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

// "tokens=40 ttft=0.01 ... profile=NAME" into *r (profile: the rest of the
// line). Returns NULL, or the name of the first field that is bad or missing.
static const char *parse_stats(char *v, lb_reply_stats *r) {
    static const char *keys[] = {"tokens", "ttft", "tps", "accept", "seed", "kld", "top1", "measured", "bpw"};
    enum { N_KEYS = sizeof keys / sizeof keys[0] };
    double val[N_KEYS];
    bool seen[N_KEYS] = {false};
    memset(r, 0, sizeof *r);
    char *p = v;
    for (;;) {
        while (*p == ' ') p++;
        if (!strncmp(p, "profile=", 8)) {
            snprintf(r->profile, sizeof r->profile, "%s", p + 8);
            break;
        }
        char *eq = strchr(p, '='), *sp = strchr(p, ' ');
        if (!eq || !sp || sp < eq) return "profile";
        *eq = *sp = 0;
        int i = 0;
        while (i < N_KEYS && strcmp(keys[i], p)) i++;
        if (i < N_KEYS) {
            if (!strcmp(keys[i], "seed")) { // 64 bits: not through a double
                char *end;
                errno = 0;
                r->seed = strtoull(eq + 1, &end, 10);
                if (errno || end == eq + 1 || *end) return keys[i];
                val[i] = 0;
            } else if (!parse_double(eq + 1, -1e300, 1e300, &val[i])) {
                return keys[i];
            }
            seen[i] = true;
        }
        p = sp + 1;
    }
    for (int i = 0; i < N_KEYS; i++)
        if (!seen[i]) return keys[i];
    if (val[0] != (int32_t)val[0] || val[0] < 0) return "tokens";
    if (val[7] != (int32_t)val[7]) return "measured";
    r->n_tokens = (int32_t)val[0];
    r->ttft_s = val[1];
    r->decode_tps = val[2];
    r->spec_accept = val[3];
    r->kld = val[5];
    r->top1 = val[6];
    r->n_measured = (int32_t)val[7];
    r->bpw = val[8];
    return NULL;
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
    int version = 0, shown = -1;
    lb_status st = LB_OK;
#define BAD(...) do { st = lb_fail(err, LB_ERR_FORMAT, __VA_ARGS__); goto done; } while (0)
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (len == 0 || line[len - 1] != '\n') BAD("%s: line %d: no end of line (file truncated?)", path, lineno);
        line[len - 1] = 0;
        if (lineno == 1) {
            if (!strcmp(line, "lowbit-session 1")) version = 1;
            else if (!strcmp(line, "lowbit-session 2")) version = 2;
            else BAD("%s: line 1: found '%.40s', expected 'lowbit-session 2' (or 1)", path, line);
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
        else if (!strcmp(key, "draft")) ok = lb_session_set_draft(s, v, s->draft_profile);
        else if (!strcmp(key, "draft_profile")) ok = lb_session_set_draft(s, s->draft, v);
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
        } else if (!strcmp(key, "msg")) { // format 1: the next message of the one branch
            char *sp2 = strchr(v, ' ');
            if (!sp2) BAD("%s: line %d: msg without text (expected 'msg ROLE TEXT')", path, lineno);
            *sp2 = 0;
            if (strcmp(v, "user") && strcmp(v, "assistant"))
                BAD("%s: line %d: role '%s' (expected user or assistant)", path, lineno, v);
            ok = lb_session_add(s, v, sp2 + 1);
        } else if (!strcmp(key, "node")) {
            char *end, *role;
            errno = 0;
            long parent = strtol(v, &end, 10);
            if (errno || end == v || *end != ' ' || parent < -1 || parent >= s->n_nodes)
                BAD("%s: line %d: node parent '%.*s' (expected -1..%d, a node written before)", path, lineno,
                    (int)strcspn(v, " "), v, s->n_nodes - 1);
            role = end + 1;
            char *sp2 = strchr(role, ' ');
            if (!sp2) BAD("%s: line %d: node without text (expected 'node PARENT ROLE TEXT')", path, lineno);
            *sp2 = 0;
            if (strcmp(role, "user") && strcmp(role, "assistant"))
                BAD("%s: line %d: role '%s' (expected user or assistant)", path, lineno, role);
            const int k = lb_session_add_node(s, (int)parent, role, sp2 + 1);
            ok = k >= 0;
            if (ok && parent >= 0) s->nodes[parent].child = k; // the most recent child, unless `shown` says
            else if (ok) s->first = k;
        } else if (!strcmp(key, "stats")) {
            if (s->n_nodes == 0) BAD("%s: line %d: stats before any node", path, lineno);
            lb_reply_stats r;
            const char *bad = parse_stats(v, &r);
            if (bad) BAD("%s: line %d: stats: bad or missing '%s' (expected KEY=NUMBER ... profile=NAME)", path,
                         lineno, bad);
            lb_session_set_stats(s, s->n_nodes - 1, &r);
        } else if (!strcmp(key, "compare")) {
            const int k = s->n_nodes - 1;
            if (!parse_double(v, 0, k - 1, &d) || d != (int)d || s->nodes[(int)d].parent != s->nodes[k].parent)
                BAD("%s: line %d: compare '%s' (expected an earlier sibling of node %d)", path, lineno, v, k);
            s->nodes[k].compare = (int)d;
            s->nodes[(int)d].compare = k;
        } else if (!strcmp(key, "shown")) {
            if (!parse_double(v, 0, s->n_nodes - 1, &d) || d != (int)d)
                BAD("%s: line %d: shown '%s' (expected a node 0..%d)", path, lineno, v, s->n_nodes - 1);
            shown = (int)d;
        } else if (!strcmp(key, "end")) {
            if (!parse_double(v, 0, 1e9, &d) || (int)d != s->n_nodes)
                BAD("%s: line %d: end count '%s' but %d %s were read", path, lineno, v, s->n_nodes,
                    version == 1 ? "messages" : "nodes");
            if (shown < 0 && s->first >= 0) { // the most recent child at each step
                shown = s->first;
                while (s->nodes[shown].child >= 0) shown = s->nodes[shown].child; // child > parent: ends
            }
            if (shown >= 0 && !lb_session_show(s, shown)) ok = false;
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
