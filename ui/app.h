/*
 * app.h — the chat application under both front ends (the ncurses screen in
 * tui.c and the line REPL in repl.c): the model, the sessions on disk, and a
 * generating thread that streams a reply into the active session.
 *
 * Threads: the front end's thread owns everything here. The worker thread
 * only reads its own copy of the prompt and writes `pending` under `mu`;
 * app_poll() moves that text into the session node the turn writes.
 *
 * A turn is a reply (a new answer, or a regenerated one as a sibling), or a
 * /compare: the last answer measured against the source precision, a copy of
 * the model re-quantized to another profile, the same turn answered by it
 * with the same seed and sampling, that answer measured, the copy freed.
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
    bool ignore_eos;           // --ignore-eos
    const char *draft;         // --draft: draft model file (NULL: the model's own with draft_profile)
    const char *draft_profile; // --draft-profile: re-quantize the draft
};

enum { APP_NOTICE_MAX = 512 };

typedef enum app_turn { TURN_REPLY, TURN_COMPARE } app_turn;

// What a /compare is doing, for the screen.
typedef enum app_compare_phase {
    CMP_NONE,
    CMP_MEASURE_A,  // the shown answer against the source
    CMP_BUILD,      // re-quantizing the copy (cmp_progress)
    CMP_WRITE,      // the copy answers
    CMP_MEASURE_B,  // its answer against the source
} app_compare_phase;

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
    app_turn turn_kind;
    int turn_node;             // the session node the turn's text goes to
    lb_reply_stats turn_stats; // (mu) the answer's footer, when have_turn_stats
    bool have_turn_stats;      // (mu)
    // /compare: the answer compared (a node of the session) and its text (the worker's copy).
    int cmp_a_node;
    char *cmp_a_text;
    bool cmp_measure_a;        // A was written with the active profile: measure it
    char cmp_profile[32];
    app_compare_phase cmp_phase; // (mu)
    float cmp_progress;        // (mu) of CMP_BUILD
    lb_reply_stats cmp_a_stats; // (mu) kld/top1 of A, when cmp_a_measured
    bool cmp_a_measured;       // (mu) until app_poll puts them into A's footer
    unsigned seed_counter;
    unsigned token_delay_us;   // $LOWBIT_TEST_TOKEN_DELAY_MS: slow replies down so tests can watch them stream
    unsigned switch_delay_us;  // $LOWBIT_TEST_SWITCH_DELAY_MS: the same, per matrix of a profile switch
    char draft_on[4096], draft_profile_on[64]; // the draft set in the chat now (session fields' values)

    char *input;               // text a command (CMD_INPUT) offers for the input box; the front end takes it

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

// Start a reply to `text` (a new user message) or, with text NULL, answer
// the last message again (/regen): a new sibling of the last answer, the old
// one kept. False with a notice when busy.
bool app_send(struct app *a, const char *text);
// Regenerate shown message i (an answer) as a new sibling, answering the
// messages before it; the branch shown then ends with it.
bool app_regen(struct app *a, int i);
// Edit shown message i (a user message): a new sibling holding `text`, then
// answered. The old branch stays.
bool app_edit(struct app *a, int i, const char *text);
// Show the sibling `delta` places from shown message i (and below it the
// branch last shown there). False with a notice when there is none.
bool app_browse(struct app *a, int i, int delta);
// /compare: answer the last message again under `profile` beside the shown
// answer (see above). False with a notice when it cannot start.
bool app_compare(struct app *a, const char *profile);
// The compare's phase and, while building, its progress.
app_compare_phase app_compare_state(struct app *a, float *progress);
// One line: "q8_0 · 40 tok · TTFT 12 ms · 351.2 tok/s[ · draft 78% accepted][ · KL 0.0123]".
void app_footer(const lb_reply_stats *r, bool with_profile, char *buf, size_t cap);
// Apply the session's draft setting to the chat when it differs from what is
// set. False with a notice when the draft cannot be opened (nothing changes).
bool app_apply_draft(struct app *a);
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
