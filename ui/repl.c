/*
 * repl.c — `lowbit chat` without a terminal: one line in, one reply out, over
 * the same sessions and commands as the screen. Used by scripts and pipes.
 *
 * A line starting with '/' is a command; a line ending in '\' continues on
 * the next line. Replies stream to stdout and end with a newline; messages
 * about the session (notices, command results) go to stderr.
 *
 * Ctrl-C (SIGINT) stops a reply, which keeps what was written; at the
 * prompt it ends the REPL as end of input does, the session saved.
 */
#include "ui.h"
#include "commands.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct app *interrupted_app; // the app the SIGINT handler stops
static volatile sig_atomic_t interrupted;
static pthread_t main_thread;

// Async-signal-safe: sig_atomic_t stores and pthread_kill. app_send clears
// `stop` for the next reply, so a Ctrl-C at the prompt stops nothing later.
// A signal taken by one of the engine's threads is passed on to the main
// thread, whose getline it has to cut short.
static void on_interrupt(int sig) {
    interrupted = 1;
    if (interrupted_app) interrupted_app->stop = 1;
    if (!pthread_equal(pthread_self(), main_thread)) pthread_kill(main_thread, sig);
}

static void print_text(const char *s, size_t n, void *u) {
    fwrite(s, 1, n, stdout);
    fflush(stdout);
}

// After an answer: its footer, and for a /compare both sides, on stderr.
static void print_footers(struct app *a) {
    lb_session *s = app_session(a);
    const int node = a->turn_node;
    if (node < 0 || node >= s->n_nodes || !s->nodes[node].has_stats) return;
    char line[256];
    const lb_session_node *b = &s->nodes[node];
    if (a->turn_kind == TURN_COMPARE && b->compare >= 0 && s->nodes[b->compare].has_stats) {
        const lb_session_node *x = &s->nodes[b->compare];
        const lb_session_node *sides[2] = {x, b};
        for (int i = 0; i < 2; i++) {
            app_footer(&sides[i]->stats, false, line, sizeof line);
            fprintf(stderr, "lowbit chat: compare: %s  %s (%.2f bpw) · %s · top-1 %.1f%%\n", i ? "other" : "shown",
                    sides[i]->stats.profile, sides[i]->stats.bpw, line, 100.0 * sides[i]->stats.top1);
        }
        return;
    }
    app_footer(&b->stats, true, line, sizeof line);
    fprintf(stderr, "lowbit chat: [%s]\n", line);
}

static void flush_notices(struct app *a) {
    char msg[APP_NOTICE_MAX];
    while (app_take_notice(a, msg, sizeof msg)) fprintf(stderr, "lowbit chat: %s\n", msg);
}

static void print_help(void) {
    printf("Type a message and press Enter; end a line with \\ to continue it.\nCommands:\n");
    for (int i = 0; i < n_commands; i++)
        printf("  %-10s %-12s %s\n", commands[i].name, commands[i].args, commands[i].help);
    fflush(stdout);
}

static void print_profiles(struct app *a) {
    lb_profile_choice ch[32];
    int n = lb_chat_profiles(a->model, ch, 32);
    printf("profiles (name, bits per weight, estimated weights):\n");
    for (int i = 0; i < n; i++)
        printf("  %-8s %6.2f bpw %9.2f MiB%s\n", ch[i].name, ch[i].bpw, ch[i].weight_bytes / 1048576.0,
               ch[i].no_gain ? "  (no gain over the source)" : "");
    fflush(stdout);
}

// A profile switch runs in the background; a script expects it done when the
// command returns, and told how it went (the event), even when it was over
// before anyone looked.
static uint32_t event_seq(struct app *a) {
    lb_stats st;
    lb_chat_stats(a->chat, &st);
    return st.event_seq;
}

static void wait_switch(struct app *a, uint32_t seq_before) {
    while (lb_chat_switching(a->chat)) usleep(20000);
    lb_stats st;
    lb_chat_stats(a->chat, &st);
    if (st.event_seq != seq_before) fprintf(stderr, "lowbit chat: %s\n", st.event);
}

int ui_repl_run(const struct app_options *opt) {
    struct app a;
    if (!app_open(&a, opt)) return 1;
    interrupted_app = &a;
    main_thread = pthread_self();
    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_interrupt; // no SA_RESTART: a Ctrl-C at the prompt ends getline
    sigaction(SIGINT, &sa, &old_sa);
    wait_switch(&a, 0); // --profile or the session's profile, started by app_open
    flush_notices(&a);
    char *line = NULL, *buf = NULL;
    size_t cap = 0, len = 0;
    ssize_t n;
    int rc = 0;
    for (;;) {
        interrupted = 0;
        n = getline(&line, &cap, stdin);
        if (n < 0) {
            if (errno == EINTR && interrupted) fprintf(stderr, "\n");
            break;
        }
        if (n > 0 && line[n - 1] == '\n') line[--n] = 0;
        if (n > 0 && line[n - 1] == '\r') line[--n] = 0;
        bool more = n > 0 && line[n - 1] == '\\';
        if (more) line[--n] = 0;
        char *nb = realloc(buf, len + (size_t)n + 2);
        if (!nb) break;
        buf = nb;
        memcpy(buf + len, line, (size_t)n);
        len += (size_t)n;
        if (more) {
            buf[len++] = '\n';
            continue;
        }
        buf[len] = 0;
        len = 0;
        if (!*buf) continue;
        if (buf[0] == '/') {
            char msg[1024];
            const uint32_t seq = event_seq(&a);
            cmd_result r = cmd_run_line(&a, buf, msg, sizeof msg);
            if (r == CMD_QUIT) break;
            if (r == CMD_HELP) print_help();
            else if (r == CMD_PICKER || r == CMD_COMPARE) print_profiles(&a);
            else if (r == CMD_INPUT) {
                fprintf(stderr, "lowbit chat: %s  (type it with the new text)\n", a.input ? a.input : "");
                free(a.input);
                a.input = NULL;
            }
            else if (*msg) fprintf(stderr, "lowbit chat: %s\n", msg);
            if (!strncmp(buf, "/profile ", 9) || lb_chat_switching(a.chat)) wait_switch(&a, seq);
            if (a.generating) {
                app_wait(&a, print_text, NULL);
                printf("\n");
                fflush(stdout);
                print_footers(&a);
            }
        } else if (app_send(&a, buf)) {
            app_wait(&a, print_text, NULL);
            printf("\n");
            fflush(stdout);
            if (interrupted) fprintf(stderr, "lowbit chat: stopped; the partial answer is kept\n");
            print_footers(&a);
        }
        flush_notices(&a);
    }
    free(line);
    free(buf);
    app_close(&a);
    sigaction(SIGINT, &old_sa, NULL);
    interrupted_app = NULL;
    flush_notices(&a);
    return rc;
}
