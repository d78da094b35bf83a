/*
 * term.c — curses setup and teardown, signals, key reading (see term.h).
 */
#define _XOPEN_SOURCE_EXTENDED 1
#include "term.h"

#include <curses.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static bool active;
static bool have_termios;
static struct termios saved_termios;
static volatile sig_atomic_t quit_signal;

static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
static struct sigaction prev_fatal[sizeof fatal_signals / sizeof fatal_signals[0]];

// Mouse reporting off, cursor on, back to the main screen; then the saved
// terminal modes. Only write() and tcsetattr(): safe inside a signal handler.
static void restore_raw(void) {
    static const char seq[] = "\033[?1000l\033[?1002l\033[?1006l\033[?25h\033[0m\033[?1049l\r\n";
    ssize_t r = write(STDOUT_FILENO, seq, sizeof seq - 1);
    (void)r;
    if (have_termios) tcsetattr(STDIN_FILENO, TCSANOW, &saved_termios);
}

static void on_fatal(int sig) {
    if (active) restore_raw();
    active = false;
    for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++)
        if (fatal_signals[i] == sig) sigaction(sig, &prev_fatal[i], NULL);
    raise(sig);
}

static void on_quit(int sig) { quit_signal = sig; }

void ui_term_restore(void) {
    if (!active) return;
    active = false;
    mousemask(0, NULL);
    endwin();
    restore_raw();
}

bool ui_term_quit_requested(void) { return quit_signal != 0; }

bool ui_term_init(void) {
    have_termios = tcgetattr(STDIN_FILENO, &saved_termios) == 0;
    if (!initscr()) return false;
    active = true;
    atexit(ui_term_restore);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_quit;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_fatal;
    for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++)
        sigaction(fatal_signals[i], &sa, &prev_fatal[i]);
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    set_escdelay(25);
    curs_set(1);
    mousemask(BUTTON4_PRESSED | BUTTON5_PRESSED, NULL);
    mouseinterval(0);
    if (has_colors()) {
        start_color();
        use_default_colors();
        init_pair(1, COLOR_CYAN, -1);    // headers
        init_pair(2, COLOR_GREEN, -1);   // the user
        init_pair(3, COLOR_YELLOW, -1);  // the model
        init_pair(4, COLOR_BLACK, COLOR_CYAN); // status line, selection
        init_pair(5, COLOR_RED, -1);     // warnings
        // Code (Markdown): light text on a background of its own, dark grey
        // where there are 256 colors, blue where there are 8.
        if (COLORS >= 256) init_pair(7, 252, 236);
        else init_pair(7, COLOR_WHITE, COLOR_BLUE);
    }
    return true;
}

int ui_term_read_key(int timeout_ms) {
    wint_t wc;
    wtimeout(stdscr, timeout_ms);
    int r = wget_wch(stdscr, &wc);
    if (r == ERR) return -1;
    if (r == KEY_CODE_YES) return UI_FKEY | (int)wc;
    if (wc == 27) {
        // Esc alone, or Alt-key: the terminal sends Esc then the key at once.
        wtimeout(stdscr, 30);
        wint_t next;
        int r2 = wget_wch(stdscr, &next);
        if (r2 == ERR) return UI_KEY_ESC;
        if (r2 == OK && (next == '\r' || next == '\n')) return UI_KEY_ALT_ENTER;
        return r2 == KEY_CODE_YES ? (UI_FKEY | (int)next) : (int)next; // Alt-x: x
    }
    return (int)wc;
}
