/*
 * app.c — model, sessions on disk, and the generating thread (see app.h).
 */
#include "app.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// --- notices ---------------------------------------------------------------------

void app_notice(struct app *a, const char *fmt, ...) {
    if (a->n_notices == (int)(sizeof a->notices / sizeof a->notices[0])) {
        memmove(a->notices[0], a->notices[1], sizeof a->notices - sizeof a->notices[0]);
        a->n_notices--;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->notices[a->n_notices++], APP_NOTICE_MAX, fmt, ap);
    va_end(ap);
}

bool app_take_notice(struct app *a, char *buf, size_t cap) {
    if (a->n_notices == 0) return false;
    snprintf(buf, cap, "%s", a->notices[0]);
    memmove(a->notices[0], a->notices[1], sizeof a->notices - sizeof a->notices[0]);
    a->n_notices--;
    return true;
}

// --- the sessions directory --------------------------------------------------------

static bool mkdirs(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0700) != 0 && errno != EEXIST) return false;
            *p = '/';
        }
    return mkdir(buf, 0700) == 0 || errno == EEXIST;
}

static char *sessions_dir(const char *given) {
    char buf[4096];
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    if (given) snprintf(buf, sizeof buf, "%s", given);
    else if (xdg && *xdg) snprintf(buf, sizeof buf, "%s/lowbit/sessions", xdg);
    else snprintf(buf, sizeof buf, "%s/.local/share/lowbit/sessions", home ? home : ".");
    return strdup(buf);
}

struct entry {
    char *path;
    time_t mtime;
};

static int by_mtime(const void *x, const void *y) {
    const struct entry *a = x, *b = y;
    if (a->mtime != b->mtime) return a->mtime < b->mtime ? -1 : 1;
    return strcmp(a->path, b->path);
}

static bool add_session(struct app *a, lb_session *s, char *path) {
    lb_session **ss = realloc(a->sessions, (size_t)(a->n_sessions + 1) * sizeof *ss);
    if (!ss) return false;
    a->sessions = ss;
    char **pp = realloc(a->paths, (size_t)(a->n_sessions + 1) * sizeof *pp);
    if (!pp) return false;
    a->paths = pp;
    a->sessions[a->n_sessions] = s;
    a->paths[a->n_sessions++] = path;
    return true;
}

// Read every *.session file. A damaged one is renamed to FILE.corrupt-TIME,
// kept for the user and never written again; the user is told.
static void load_sessions(struct app *a) {
    DIR *d = opendir(a->dir);
    if (!d) return;
    struct entry *es = NULL;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 9 || strcmp(e->d_name + len - 8, ".session")) continue;
        struct entry *ne = realloc(es, (size_t)(n + 1) * sizeof *ne);
        if (!ne) break;
        es = ne;
        size_t plen = strlen(a->dir) + len + 2;
        es[n].path = malloc(plen);
        if (!es[n].path) break;
        snprintf(es[n].path, plen, "%s/%s", a->dir, e->d_name);
        struct stat sb;
        es[n].mtime = stat(es[n].path, &sb) == 0 ? sb.st_mtime : 0;
        n++;
    }
    closedir(d);
    if (n > 1) qsort(es, (size_t)n, sizeof *es, by_mtime);
    for (int i = 0; i < n; i++) {
        lb_error err = {0};
        lb_session *s;
        lb_status st = lb_session_load(&s, es[i].path, &err);
        if (st == LB_OK) {
            if (!add_session(a, s, es[i].path)) {
                lb_session_free(s);
                free(es[i].path);
            }
            continue;
        }
        if (st == LB_ERR_FORMAT) {
            char aside[4200];
            snprintf(aside, sizeof aside, "%s.corrupt-%ld", es[i].path, (long)time(NULL));
            if (rename(es[i].path, aside) == 0)
                app_notice(a, "damaged session file kept aside as %s: %s", aside, err.msg);
            else
                app_notice(a, "damaged session file %s left in place: %s", es[i].path, err.msg);
        } else {
            app_notice(a, "session not loaded: %s", err.msg);
        }
        free(es[i].path);
    }
    free(es);
}

static char *new_session_path(struct app *a) {
    char stamp[32];
    time_t now = time(NULL);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&now));
    size_t cap = strlen(a->dir) + 64;
    char *p = malloc(cap);
    for (int i = 0; p; i++) {
        snprintf(p, cap, "%s/%s-%d.session", a->dir, stamp, i);
        if (access(p, F_OK) != 0) break;
    }
    return p;
}

bool app_save(struct app *a) {
    if (a->active < 0) return false;
    lb_error err = {0};
    if (lb_session_save(a->sessions[a->active], a->paths[a->active], &err) != LB_OK) {
        app_notice(a, "not saved: %s", err.msg);
        return false;
    }
    return true;
}

lb_session *app_session(struct app *a) { return a->active >= 0 ? a->sessions[a->active] : NULL; }

lb_chat_template app_template(struct app *a) {
    lb_session *s = app_session(a);
    int t = s && *s->template_name ? lb_chat_template_from_name(s->template_name) : -1;
    if (t < 0) t = a->model_template;
    return t < 0 ? LB_CHAT_RAW : (lb_chat_template)t;
}

const char *app_profile(struct app *a) {
    static lb_stats st;
    lb_chat_stats(a->chat, &st);
    return st.profile;
}

bool app_new_session(struct app *a, const char *name) {
    if (a->generating) {
        app_notice(a, "a reply is being written: press Esc first");
        return false;
    }
    char auto_name[64];
    if (!name || !*name) {
        snprintf(auto_name, sizeof auto_name, "chat %d", a->n_sessions + 1);
        name = auto_name;
    }
    lb_session *s = lb_session_new(name);
    char *path = new_session_path(a);
    if (!s || !path || !add_session(a, s, path)) {
        lb_session_free(s);
        free(path);
        app_notice(a, "out of memory");
        return false;
    }
    if (a->opt.template_name) lb_session_set_template(s, a->opt.template_name);
    lb_session_set_profile(s, app_profile(a));
    lb_session_set_draft(s, a->draft_on, a->draft_profile_on); // a new session goes on as the last one
    a->active = a->n_sessions - 1;
    a->ctx_first = 0;
    return app_save(a);
}

bool app_switch_session(struct app *a, int index) {
    if (index < 0 || index >= a->n_sessions) return false;
    if (a->generating) {
        app_notice(a, "a reply is being written: press Esc first");
        return false;
    }
    a->active = index;
    a->ctx_first = 0;
    lb_session *s = app_session(a);
    if (*s->profile && strcmp(s->profile, app_profile(a)) && !lb_chat_switching(a->chat)) {
        lb_error err = {0};
        if (lb_chat_switch(a->chat, s->profile, &err) != LB_OK) app_notice(a, "%s", err.msg);
    }
    app_apply_draft(a);
    return true;
}

bool app_delete_session(struct app *a, int index) {
    if (index < 0 || index >= a->n_sessions) return false;
    if (a->generating) {
        app_notice(a, "a reply is being written: press Esc first");
        return false;
    }
    if (unlink(a->paths[index]) != 0 && errno != ENOENT) {
        app_notice(a, "cannot delete %s: %s", a->paths[index], strerror(errno));
        return false;
    }
    lb_session_free(a->sessions[index]);
    free(a->paths[index]);
    memmove(a->sessions + index, a->sessions + index + 1, (size_t)(a->n_sessions - index - 1) * sizeof *a->sessions);
    memmove(a->paths + index, a->paths + index + 1, (size_t)(a->n_sessions - index - 1) * sizeof *a->paths);
    a->n_sessions--;
    if (a->n_sessions == 0) {
        a->active = -1;
        return app_new_session(a, NULL);
    }
    if (a->active >= a->n_sessions) a->active = a->n_sessions - 1;
    a->ctx_first = 0;
    return true;
}

bool app_switch_profile(struct app *a, const char *name) {
    lb_error err = {0};
    if (a->generating && a->turn_kind == TURN_COMPARE) { // the compare reads these weights and their reference
        app_notice(a, "a /compare is running: wait for it or press Esc");
        return false;
    }
    if (lb_chat_switch(a->chat, name, &err) != LB_OK) {
        app_notice(a, "%s", err.msg);
        return false;
    }
    lb_session_set_profile(app_session(a), name);
    app_save(a);
    return true;
}

// --- open / close ------------------------------------------------------------------

// Tests watch the progress bar: each matrix of a switch then takes this long.
static bool slow_switch(float fraction, void *user) {
    const struct app *a = user;
    (void)fraction;
    usleep(a->switch_delay_us);
    return true;
}

bool app_apply_draft(struct app *a) {
    lb_session *s = app_session(a);
    if (!s || (!strcmp(s->draft, a->draft_on) && !strcmp(s->draft_profile, a->draft_profile_on))) return true;
    const bool off = !*s->draft, self = !strcmp(s->draft, "self");
    lb_error err = {0};
    if (lb_chat_set_draft(a->chat, off || self ? NULL : s->draft, a->opt.tokenizer_path,
                          off || !*s->draft_profile ? NULL : s->draft_profile, &err) != LB_OK) {
        app_notice(a, "draft %s %s not set: %s", s->draft, s->draft_profile, err.msg);
        return false;
    }
    snprintf(a->draft_on, sizeof a->draft_on, "%s", s->draft);
    snprintf(a->draft_profile_on, sizeof a->draft_profile_on, "%s", s->draft_profile);
    return true;
}

bool app_open(struct app *a, const struct app_options *opt) {
    memset(a, 0, sizeof *a);
    a->opt = *opt;
    a->active = -1;
    pthread_mutex_init(&a->mu, NULL);
    const char *delay = getenv("LOWBIT_TEST_TOKEN_DELAY_MS");
    if (delay) a->token_delay_us = (unsigned)atoi(delay) * 1000u;
    delay = getenv("LOWBIT_TEST_SWITCH_DELAY_MS");
    if (delay) a->switch_delay_us = (unsigned)atoi(delay) * 1000u;
    lb_error err = {0};
    lb_model_params mp = {.tokenizer_path = opt->tokenizer_path};
    if (lb_model_open(&a->model, opt->model_path, &mp, &err) != LB_OK) {
        fprintf(stderr, "lowbit chat: %s\n", err.msg);
        return false;
    }
    a->model_template = lb_model_chat_template(a->model);
    lb_chat_params cp = lb_chat_default_params();
    if (opt->n_ctx) cp.n_ctx = opt->n_ctx;
    cp.n_threads = opt->n_threads;
    if (opt->n_predict) cp.n_predict = opt->n_predict;
    if (opt->kld_every >= 0) cp.kld_every = opt->kld_every;
    cp.ignore_eos = opt->ignore_eos;
    if (a->switch_delay_us) {
        cp.on_switch_progress = slow_switch;
        cp.on_switch_user = a;
    }
    if (lb_chat_new(&a->chat, a->model, &cp, &err) != LB_OK) {
        fprintf(stderr, "lowbit chat: %s\n", err.msg);
        lb_model_free(a->model);
        a->model = NULL;
        return false;
    }
    a->dir = sessions_dir(opt->sessions_dir);
    if (!a->dir || !mkdirs(a->dir)) {
        fprintf(stderr, "lowbit chat: cannot create the sessions directory %s: %s\n", a->dir ? a->dir : "",
                strerror(errno));
        app_close(a);
        return false;
    }
    load_sessions(a);
    if (opt->session) {
        for (int i = 0; i < a->n_sessions; i++)
            if (!strcmp(a->sessions[i]->name, opt->session)) a->active = i;
        if (a->active < 0 && !app_new_session(a, opt->session)) {
            app_close(a);
            return false;
        }
    } else if (a->n_sessions > 0) {
        a->active = a->n_sessions - 1; // the most recently saved
    } else if (!app_new_session(a, NULL)) {
        app_close(a);
        return false;
    }
    lb_session *s = app_session(a);
    if (opt->template_name) {
        lb_session_set_template(s, opt->template_name);
        app_save(a);
    }
    // The draft: the command line's, recorded in the session; else the session's own.
    if (opt->draft || opt->draft_profile) {
        lb_session_set_draft(s, opt->draft ? opt->draft : "self", opt->draft_profile);
        if (!app_apply_draft(a)) {
            char msg[APP_NOTICE_MAX];
            while (app_take_notice(a, msg, sizeof msg)) fprintf(stderr, "lowbit chat: %s\n", msg);
            app_close(a);
            return false;
        }
        app_save(a);
    } else {
        app_apply_draft(a);
    }
    const char *profile = opt->profile ? opt->profile : s->profile;
    if (profile && *profile && strcmp(profile, app_profile(a))) {
        if (lb_chat_switch(a->chat, profile, &err) != LB_OK) app_notice(a, "%s", err.msg);
        else if (opt->profile) lb_session_set_profile(s, opt->profile);
    }
    return true;
}

static void free_turn(struct app *a) {
    for (int i = 0; i < a->turn_n; i++) {
        free((char *)a->turn_msgs[i].role);
        free((char *)a->turn_msgs[i].content);
    }
    free(a->turn_msgs);
    a->turn_msgs = NULL;
    a->turn_n = 0;
    free(a->cmp_a_text);
    a->cmp_a_text = NULL;
}

void app_close(struct app *a) {
    if (a->generating) {
        app_stop(a);
        app_wait(a, NULL, NULL);
    }
    if (a->active >= 0) app_save(a);
    for (int i = 0; i < a->n_sessions; i++) {
        lb_session_free(a->sessions[i]);
        free(a->paths[i]);
    }
    free(a->sessions);
    free(a->paths);
    free(a->dir);
    free(a->pending);
    free(a->input);
    a->input = NULL;
    free_turn(a);
    lb_chat_free(a->chat);
    lb_model_free(a->model);
    pthread_mutex_destroy(&a->mu);
    a->sessions = NULL;
    a->paths = NULL;
    a->n_sessions = 0;
    a->active = -1;
    a->chat = NULL;
    a->model = NULL;
}

// --- a turn -------------------------------------------------------------------------

// Hand a piece of the answer to the front end (app_poll moves it into the session).
static void push_pending(struct app *a, const char *piece, size_t n) {
    pthread_mutex_lock(&a->mu);
    if (a->pending_len + n + 1 > a->pending_cap) {
        size_t cap = (a->pending_len + n + 1) * 2;
        char *p = realloc(a->pending, cap);
        if (p) a->pending = p, a->pending_cap = cap;
    }
    if (a->pending_len + n + 1 <= a->pending_cap) {
        memcpy(a->pending + a->pending_len, piece, n);
        a->pending_len += n;
    }
    pthread_mutex_unlock(&a->mu);
}

// Stream one reply of `chat` to the front end; with `keep`, also collect it
// there (a malloc'd string, for measuring it). Ends the reply.
static lb_status stream_reply(struct app *a, lb_chat *chat, int *dropped, char **keep, lb_error *err) {
    lb_status st = lb_chat_begin(chat, a->turn_template, a->turn_msgs, a->turn_n, &a->turn_sampling, dropped, err);
    size_t kept = 0;
    bool done = st != LB_OK;
    while (!done && !a->stop) {
        char piece[512];
        st = lb_chat_step(chat, piece, sizeof piece, &done, err);
        if (st != LB_OK) break;
        size_t n = strlen(piece);
        if (a->token_delay_us) usleep(a->token_delay_us);
        if (!n) continue;
        push_pending(a, piece, n);
        if (keep) {
            char *k = realloc(*keep, kept + n + 1);
            if (k) {
                memcpy(k + kept, piece, n + 1);
                kept += n;
                *keep = k;
            }
        }
    }
    lb_chat_end(chat);
    return st;
}

static void set_phase(struct app *a, app_compare_phase ph) {
    pthread_mutex_lock(&a->mu);
    a->cmp_phase = ph;
    pthread_mutex_unlock(&a->mu);
}

static bool on_compare_progress(float fraction, void *u) {
    struct app *a = u;
    pthread_mutex_lock(&a->mu);
    a->cmp_progress = fraction;
    pthread_mutex_unlock(&a->mu);
    if (a->switch_delay_us) usleep(a->switch_delay_us);
    return !a->stop; // Esc cancels the copy
}

// /compare on the worker thread (see app.h). A's figures come first: the
// chat's cache holds A's turn then, as it would after writing it.
static lb_status compare_turn(struct app *a, lb_reply_stats *rb, bool *have, lb_error *err) {
    lb_status st = LB_OK;
    if (a->cmp_measure_a) {
        set_phase(a, CMP_MEASURE_A);
        lb_reply_stats ra = {0};
        st = lb_chat_measure(a->chat, a->turn_template, a->turn_msgs, a->turn_n, a->cmp_a_text, &ra, err);
        if (st != LB_OK) return st;
        pthread_mutex_lock(&a->mu);
        a->cmp_a_stats = ra;
        a->cmp_a_measured = true;
        pthread_mutex_unlock(&a->mu);
    }
    set_phase(a, CMP_BUILD);
    lb_chat *cmp;
    if ((st = lb_chat_new_compare(&cmp, a->chat, a->cmp_profile, on_compare_progress, a, err)) != LB_OK) return st;
    set_phase(a, CMP_WRITE);
    char *text = NULL;
    st = stream_reply(a, cmp, NULL, &text, err);
    lb_chat_reply_stats(cmp, rb);
    *have = true;
    if (st == LB_OK && !a->stop) {
        set_phase(a, CMP_MEASURE_B);
        st = lb_chat_measure(cmp, a->turn_template, a->turn_msgs, a->turn_n, text ? text : "", rb, err);
    }
    free(text);
    lb_chat_free(cmp); // the copy goes here
    return st;
}

static void *worker_main(void *arg) {
    struct app *a = arg;
    lb_error err = {0};
    int dropped = 0;
    lb_reply_stats rs;
    bool have = false;
    lb_status st;
    if (a->turn_kind == TURN_COMPARE) {
        st = compare_turn(a, &rs, &have, &err);
    } else {
        st = stream_reply(a, a->chat, &dropped, NULL, &err);
        lb_chat_reply_stats(a->chat, &rs);
        have = true;
    }
    pthread_mutex_lock(&a->mu);
    a->turn_dropped = dropped;
    a->turn_stats = rs;
    a->have_turn_stats = have;
    a->turn_status = st;
    snprintf(a->turn_err, sizeof a->turn_err, "%s", st == LB_OK ? "" : err.msg);
    a->turn_done = true;
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

// The worker's copy of the prompt: system prompt, then shown messages
// [ctx_first, upto) (those still in the context).
static bool copy_prompt(struct app *a, int upto) {
    lb_session *s = app_session(a);
    free_turn(a);
    if (a->ctx_first > upto - 1) a->ctx_first = 0;
    int n = (*s->system ? 1 : 0) + upto - a->ctx_first;
    a->turn_msgs = calloc((size_t)n, sizeof *a->turn_msgs);
    if (!a->turn_msgs) return false;
    if (*s->system) a->turn_msgs[a->turn_n++] = (lb_chat_message){strdup("system"), strdup(s->system)};
    for (int i = a->ctx_first; i < upto; i++)
        a->turn_msgs[a->turn_n++] = (lb_chat_message){strdup(s->msgs[i].role), strdup(s->msgs[i].content)};
    for (int i = 0; i < a->turn_n; i++)
        if (!a->turn_msgs[i].role || !a->turn_msgs[i].content) {
            free_turn(a);
            return false;
        }
    a->turn_template = app_template(a);
    a->turn_sampling = s->sampling;
    if (s->seed_random) a->turn_sampling.seed = (uint64_t)time(NULL) * 1000003u + a->seed_counter++;
    return true;
}

static bool start_worker(struct app *a, app_turn kind, int node) {
    a->turn_kind = kind;
    a->turn_node = node;
    a->pending_len = 0;
    a->turn_done = false;
    a->have_turn_stats = false;
    a->cmp_a_measured = false;
    a->cmp_phase = CMP_NONE;
    a->cmp_progress = 0;
    a->stop = 0;
    if (pthread_create(&a->worker, NULL, worker_main, a) != 0) {
        app_notice(a, "cannot start the generating thread");
        return false;
    }
    a->generating = true;
    return true;
}

static bool busy(struct app *a) {
    if (!a->generating) return false;
    app_notice(a, "a reply is being written: press Esc to stop it first");
    return true;
}

// Answer the shown messages [0, upto): into a new sibling of shown message
// `upto` when it exists (a regeneration), else into a new last message.
static bool answer(struct app *a, int upto) {
    lb_session *s = app_session(a);
    if (upto < 1 || strcmp(s->msgs[upto - 1].role, "user")) {
        app_notice(a, "nothing to answer: the message before is not yours");
        return false;
    }
    if (!copy_prompt(a, upto)) {
        app_notice(a, "out of memory");
        return false;
    }
    int node = upto < s->n_msgs ? lb_session_branch(s, upto, "") : lb_session_add(s, "assistant", "") ? s->path[upto] : -1;
    if (node < 0) {
        app_notice(a, "out of memory");
        return false;
    }
    if (!start_worker(a, TURN_REPLY, node)) {
        lb_session_remove(s, upto, 1); // the empty answer; a regenerated one's sibling is still there
        return false;
    }
    return true;
}

bool app_send(struct app *a, const char *text) {
    lb_session *s = app_session(a);
    if (busy(a)) return false;
    if (!text) { // /regen: the last answer again, or an unanswered last message
        if (s->n_msgs == 0) {
            app_notice(a, "/regen: no message to answer yet");
            return false;
        }
        return answer(a, strcmp(s->msgs[s->n_msgs - 1].role, "assistant") ? s->n_msgs : s->n_msgs - 1);
    }
    // A user message after an unanswered one replaces nothing: both are kept
    // as one message, so roles keep alternating.
    if (s->n_msgs > 0 && !strcmp(s->msgs[s->n_msgs - 1].role, "user")) {
        lb_session_append(s, "\n", 1);
        lb_session_append(s, text, strlen(text));
    } else if (!lb_session_add(s, "user", text)) {
        app_notice(a, "out of memory");
        return false;
    }
    return answer(a, s->n_msgs);
}

bool app_regen(struct app *a, int i) {
    lb_session *s = app_session(a);
    if (busy(a)) return false;
    if (i < 0 || i >= s->n_msgs || strcmp(s->msgs[i].role, "assistant")) {
        app_notice(a, "regenerate: message %d is not an answer", i + 1);
        return false;
    }
    a->ctx_first = 0; // the new branch's own view: lb_chat_begin says again what does not fit
    return answer(a, i);
}

bool app_edit(struct app *a, int i, const char *text) {
    lb_session *s = app_session(a);
    if (busy(a)) return false;
    if (i < 0 || i >= s->n_msgs || strcmp(s->msgs[i].role, "user")) {
        app_notice(a, "/edit: message %d is not one of yours (1..%d, odd numbers are yours)", i + 1, s->n_msgs);
        return false;
    }
    if (lb_session_branch(s, i, text) < 0) {
        app_notice(a, "out of memory");
        return false;
    }
    a->ctx_first = 0;
    return answer(a, i + 1);
}

bool app_browse(struct app *a, int i, int delta) {
    lb_session *s = app_session(a);
    if (busy(a)) return false;
    if (i < 0 || i >= s->n_msgs) return false;
    int pos, n = lb_session_siblings(s, s->path[i], &pos);
    int k = lb_session_sibling(s, s->path[i], delta);
    if (k < 0) {
        app_notice(a, "message %d: branch %d/%d is the %s", i + 1, pos, n, delta < 0 ? "first" : "last");
        return false;
    }
    lb_session_show(s, k);
    a->ctx_first = 0;
    app_save(a);
    return true;
}

bool app_compare(struct app *a, const char *profile) {
    lb_session *s = app_session(a);
    if (busy(a)) return false;
    if (lb_chat_switching(a->chat)) {
        app_notice(a, "/compare: a profile switch is running: wait for it");
        return false;
    }
    const int last = s->n_msgs - 1;
    if (last < 1 || strcmp(s->msgs[last].role, "assistant") || !*s->msgs[last].content) {
        app_notice(a, "/compare: no answer to compare yet");
        return false;
    }
    const int an = s->path[last];
    if (!copy_prompt(a, last) || !(a->cmp_a_text = strdup(s->msgs[last].content))) {
        app_notice(a, "out of memory");
        return false;
    }
    // Same seed and sampling as the answer compared.
    const lb_session_node *A = &s->nodes[an];
    if (A->has_stats) a->turn_sampling.seed = A->stats.seed;
    // A is measured with the weights that wrote it, or not at all.
    a->cmp_measure_a = !A->has_stats || !strcmp(A->stats.profile, app_profile(a));
    if (!a->cmp_measure_a)
        app_notice(a, "/compare: the answer was written with %s and %s is active: it is not measured again",
                   A->stats.profile, app_profile(a));
    snprintf(a->cmp_profile, sizeof a->cmp_profile, "%s", profile);
    const int b = lb_session_add_node(s, A->parent, "assistant", "");
    if (b < 0) {
        app_notice(a, "out of memory");
        return false;
    }
    if (s->nodes[an].compare >= 0) s->nodes[s->nodes[an].compare].compare = -1; // one partner at a time
    s->nodes[an].compare = b;
    s->nodes[b].compare = an;
    a->cmp_a_node = an;
    if (!start_worker(a, TURN_COMPARE, b)) {
        lb_session_show(s, b); // take the empty node out again: it is the last node, so nothing renumbers
        lb_session_remove(s, s->n_msgs - 1, 1);
        lb_session_show(s, an);
        s->nodes[an].compare = -1;
        return false;
    }
    return true;
}

app_compare_phase app_compare_state(struct app *a, float *progress) {
    pthread_mutex_lock(&a->mu);
    app_compare_phase ph = a->generating && a->turn_kind == TURN_COMPARE ? a->cmp_phase : CMP_NONE;
    if (progress) *progress = a->cmp_progress;
    pthread_mutex_unlock(&a->mu);
    return ph;
}

void app_footer(const lb_reply_stats *r, bool with_profile, char *buf, size_t cap) {
    size_t n = 0;
#define PUT(...) do { if (n < cap) n += (size_t)snprintf(buf + n, cap - n, __VA_ARGS__); } while (0)
    buf[0] = 0;
    if (with_profile) PUT("%s · ", r->profile);
    PUT("%d tok · TTFT %.*f ms · %.1f tok/s", (int)r->n_tokens, r->ttft_s < 0.01 ? 1 : 0, 1e3 * r->ttft_s,
        r->decode_tps);
    if (r->spec_accept >= 0) PUT(" · draft %.0f%% accepted", 100.0 * r->spec_accept);
    if (r->kld >= 0) PUT(" · KL %.4f", r->kld);
#undef PUT
}

void app_stop(struct app *a) { a->stop = 1; }

bool app_poll(struct app *a, bool *finished) {
    *finished = false;
    if (!a->generating) return false;
    lb_session *s = app_session(a);
    pthread_mutex_lock(&a->mu);
    bool changed = a->pending_len > 0;
    if (a->pending_len) lb_session_node_append(s, a->turn_node, a->pending, a->pending_len);
    a->pending_len = 0;
    bool done = a->turn_done;
    int dropped = a->turn_dropped;
    a->turn_dropped = 0;
    lb_status st = a->turn_status;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", a->turn_err);
    // A compare's figures for the shown answer come first: show them at once.
    const bool a_measured = a->turn_kind == TURN_COMPARE && a->cmp_a_measured;
    a->cmp_a_measured = false;
    const lb_reply_stats a_stats = a->cmp_a_stats;
    pthread_mutex_unlock(&a->mu);
    if (a_measured) {
        lb_session_node *A = &s->nodes[a->cmp_a_node];
        if (!A->has_stats) { // an answer from before footers: what is known now
            lb_reply_stats r = {.spec_accept = -1};
            lb_stats cs;
            lb_chat_stats(a->chat, &cs);
            snprintf(r.profile, sizeof r.profile, "%s", cs.profile);
            r.bpw = cs.bpw;
            lb_session_set_stats(s, a->cmp_a_node, &r);
        }
        A->stats.kld = a_stats.kld;
        A->stats.top1 = a_stats.top1;
        A->stats.n_measured = a_stats.n_measured;
        changed = true;
    }
    if (dropped) {
        // Turn k is messages 2k-2 and 2k-1 (a question and its answer).
        const int t0 = a->ctx_first / 2 + 1, t1 = (a->ctx_first + dropped - 1) / 2 + 1;
        a->ctx_first += dropped;
        if (t0 == t1) app_notice(a, "context full: turn %d left the model's view; it stays in the transcript", t0);
        else app_notice(a, "context full: turns %d-%d left the model's view; they stay in the transcript", t0, t1);
    }
    if (!done) return changed;
    pthread_join(a->worker, NULL);
    a->generating = false;
    free_turn(a);
    const int node = a->turn_node;
    if (a->have_turn_stats) lb_session_set_stats(s, node, &a->turn_stats);
    if (a->turn_kind == TURN_COMPARE && st == LB_OK && a->have_turn_stats && a->turn_stats.kld >= 0) {
        const lb_reply_stats *b = &a->turn_stats, *x = &s->nodes[a->cmp_a_node].stats;
        if (s->nodes[a->cmp_a_node].has_stats && x->kld >= 0)
            app_notice(a, "compared: %s KL %.4f nats, top-1 %.1f%%; %s KL %.4f nats, top-1 %.1f%%", x->profile, x->kld,
                       100.0 * x->top1, b->profile, b->kld, 100.0 * b->top1);
        else
            app_notice(a, "compared: %s KL %.4f nats, top-1 %.1f%%", b->profile, b->kld, 100.0 * b->top1);
    }
    if (st != LB_OK) {
        app_notice(a, "%s failed: %s", a->turn_kind == TURN_COMPARE ? "/compare" : "reply", msg);
        // An empty failed answer is not kept. It is the last node (nothing was added since).
        if (!*s->nodes[node].content && node == s->n_nodes - 1) {
            const int shown = s->n_msgs ? s->path[s->n_msgs - 1] : -1;
            lb_session_show(s, node);
            if (s->nodes[node].compare >= 0) s->nodes[s->nodes[node].compare].compare = -1;
            lb_session_remove(s, s->n_msgs - 1, 1);
            if (shown != node && shown >= 0) lb_session_show(s, shown);
        }
    }
    app_save(a);
    *finished = true;
    return true;
}

void app_wait(struct app *a, void (*on_text)(const char *s, size_t n, void *u), void *u) {
    lb_session *s = app_session(a);
    while (a->generating) {
        const int node = a->turn_node;
        size_t before = strlen(s->nodes[node].content);
        bool finished;
        app_poll(a, &finished);
        if (on_text && node < s->n_nodes) {
            const char *c = s->nodes[node].content;
            size_t now = strlen(c);
            if (now > before) on_text(c + before, now - before, u);
        }
        if (!finished) usleep(10000);
    }
}

// --- export ----------------------------------------------------------------------------

bool app_export(struct app *a, const char *path) {
    lb_session *s = app_session(a);
    FILE *f = fopen(path, "w");
    if (!f) {
        app_notice(a, "/export: cannot write %s: %s", path, strerror(errno));
        return false;
    }
    fprintf(f, "# %s\n\n", s->name);
    fprintf(f, "_template %s, profile %s_\n\n", lb_chat_template_name(app_template(a)), app_profile(a));
    if (*s->system) fprintf(f, "**System:** %s\n\n", s->system);
    for (int i = 0; i < s->n_msgs; i++) {
        fprintf(f, "**%s:** %s\n\n", strcmp(s->msgs[i].role, "user") ? "Assistant" : "You", s->msgs[i].content);
        const lb_session_node *d = &s->nodes[s->path[i]];
        if (d->has_stats) {
            char foot[256];
            app_footer(&d->stats, true, foot, sizeof foot);
            fprintf(f, "_%s_\n\n", foot);
        }
    }
    bool ok = fclose(f) == 0;
    if (ok) app_notice(a, "exported to %s", path);
    return ok;
}
