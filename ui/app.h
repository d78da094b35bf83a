/*
 * app.h — the chat application under both front ends (the ncurses screen in
 * tui.c and the line REPL in repl.c): the model, the sessions on disk, and a
 * generating thread that streams a reply into the active session.
 *
 * Threads: the front end's thread owns everything here. The worker thread
 * only reads its own copy of the prompt and writes `pending` under `mu`;
 * app_poll() moves that text into the session.
 */
#ifndef LB_UI_APP_H
#define LB_UI_APP_H

#include "lowbit.h"

#include <pthread.h>
#include <signal.h>

struct app_options {
    const char *model_path;
    const char *tokenizer_path;
    const char *template_name; // --template: NULL = session's, else the model's
    const char *profile;       // --profile: switch at start
    const char *session;       // --session NAME: open (or create) this one
    const char *sessions_dir;  // NULL: $XDG_DATA_HOME/lowbit/sessions
    int n_ctx, n_threads, n_predict, kld_every;
    const char *draft;         // --draft: draft model file (NULL: the model's own with draft_profile)
    const char *draft_profile; // --draft-profile: re-quantize the draft
};

enum { APP_NOTICE_MAX = 512 };

struct app {
    struct app_options opt;
    lb_model *model;
    lb_chat *chat;
    int model_template;        // from tokenizer.chat_template; -1 when unknown

    char *dir;                 // sessions directory
    lb_session **sessions;     // n_sessions, oldest first
    char **paths;              // file of each session
    int n_sessions, active;
    int ctx_first;             // messages of the active session before this are out of the context

    // The generating thread.
    pthread_t worker;
    bool generating;           // a worker was started and not yet joined
    volatile sig_atomic_t stop;
    pthread_mutex_t mu;
    char *pending;             // (mu) reply text not yet in the session
    size_t pending_len, pending_cap;
    bool turn_done;            // (mu)
    lb_status turn_status;     // (mu)
    char turn_err[512];        // (mu)
    int turn_dropped;          // (mu)
    lb_chat_message *turn_msgs; // the worker's copy of the prompt
    int turn_n;
    lb_sampler_params turn_sampling;
    lb_chat_template turn_template;
    unsigned seed_counter;
    unsigned token_delay_us;   // $LOWBIT_TEST_TOKEN_DELAY_MS: slow replies down so tests can watch them stream

    // Messages for the user ("saved", "session file X was damaged ..."),
    // appended by the app and drained by the front end.
    char notices[8][APP_NOTICE_MAX];
    int n_notices;
};

// Open the model, the chat and the sessions; prints errors to stderr and
// returns false on failure (everything opened is closed again).
bool app_open(struct app *a, const struct app_options *opt);
void app_close(struct app *a);  // stops a reply, saves, frees

lb_session *app_session(struct app *a);
lb_chat_template app_template(struct app *a); // the active session's, else the model's, else raw
const char *app_profile(struct app *a);

void app_notice(struct app *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Take the oldest notice into buf; false when none.
bool app_take_notice(struct app *a, char *buf, size_t cap);

// Start a reply to `text` (a new user message) or, with text NULL, a new reply
// to the last user message (/retry). False with a notice when busy.
bool app_send(struct app *a, const char *text);
void app_stop(struct app *a); // ask the reply to end; the partial answer stays
// Move streamed text into the session. Returns true when anything changed;
// sets *finished when a reply ended (it is then saved).
bool app_poll(struct app *a, bool *finished);
// Block until the reply ends (REPL), calling on_text with each new piece.
void app_wait(struct app *a, void (*on_text)(const char *s, size_t n, void *u), void *u);

// Sessions. The new one becomes active. Every change is saved at once.
bool app_new_session(struct app *a, const char *name);
bool app_switch_session(struct app *a, int index);
bool app_delete_session(struct app *a, int index);
bool app_save(struct app *a);

// Switch the weights to a profile (in the background); also recorded in the session.
bool app_switch_profile(struct app *a, const char *name);

// Write the active session as Markdown.
bool app_export(struct app *a, const char *path);

#endif
