/*
 * term.c — curses setup and teardown, signals, key reading, bracketed paste
 * (see term.h).
 */
#define _XOPEN_SOURCE_EXTENDED 1
#include "term.h"

#include <curses.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static bool active;     // curses is on (not ended, not suspended)
static bool have_termios;
static struct termios saved_termios;
static volatile sig_atomic_t quit_signal;
static volatile sig_atomic_t interrupts; // SIGINTs not yet read as keys

static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
static struct sigaction prev_fatal[sizeof fatal_signals / sizeof fatal_signals[0]];

// Bracketed paste: the terminal wraps pasted text in these, once asked to
// with ESC[?2004h; curses reports each as the key code given here.
#define PASTE_ON "\033[?2004h"
#define PASTE_OFF "\033[?2004l"
enum { KEY_PASTE_BEGIN = KEY_MAX + 1, KEY_PASTE_END = KEY_MAX + 2 };

static char *paste;
static size_t paste_len, paste_cap;

static void put_raw(const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        s += w, n -= (size_t)w;
    }
}

// Bracketed paste and mouse reporting off, cursor on, back to the main
// screen; then the saved terminal modes. Only write() and tcsetattr(): safe
// inside a signal handler.
static void restore_raw(void) {
    static const char seq[] = PASTE_OFF "\033[?1000l\033[?1002l\033[?1006l\033[?25h\033[0m\033[?1049l\r\n";
    put_raw(seq, sizeof seq - 1);
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
static void on_interrupt(int sig) {
    (void)sig;
    if (interrupts < 100) interrupts++;
}

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
    sa.sa_flags = SA_RESTART; // the generating thread's file calls are not cut short
    sa.sa_handler = on_interrupt;
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_quit;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_flags = 0;
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
    define_key("\033[200~", KEY_PASTE_BEGIN);
    define_key("\033[201~", KEY_PASTE_END);
    put_raw(PASTE_ON, sizeof PASTE_ON - 1);
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

void ui_term_suspend(void) {
    if (!active) return;
    put_raw(PASTE_OFF, sizeof PASTE_OFF - 1);
    def_prog_mode();
    endwin();
}

void ui_term_resume(void) {
    if (!active) return;
    reset_prog_mode();
    interrupts = 0; // Ctrl-C meant for the editor
    put_raw(PASTE_ON, sizeof PASTE_ON - 1);
    clearok(curscr, TRUE);
    refresh();
}

// --- keys ------------------------------------------------------------------------

static bool paste_add(const char *s, size_t n) {
    if (paste_len + n + 1 > paste_cap) {
        size_t cap = paste_cap ? paste_cap * 2 : 4096;
        while (cap < paste_len + n + 1) cap *= 2;
        char *p = realloc(paste, cap);
        if (!p) return false;
        paste = p;
        paste_cap = cap;
    }
    memcpy(paste + paste_len, s, n);
    paste_len += n;
    paste[paste_len] = 0;
    return true;
}

// Everything up to the end marker is text, Enter included. A terminal that
// never sends the end marker is given up on after a second of silence.
static void read_paste(void) {
    paste_len = 0;
    paste_add("", 0);
    bool cr = false;
    for (;;) {
        wint_t wc;
        wtimeout(stdscr, 1000);
        int r = wget_wch(stdscr, &wc);
        if (r == ERR) {
            if (errno == EINTR) continue;
            break;
        }
        if (r == KEY_CODE_YES) {
            if (wc == KEY_PASTE_END) break;
            if (wc == KEY_ENTER) wc = '\r';
            else continue; // a key sequence inside pasted text: dropped
        }
        if (wc == '\n' && cr) { // CR LF: one newline
            cr = false;
            continue;
        }
        cr = wc == '\r';
        if (wc == '\r') wc = '\n';
        if (wc == 27 || (wc < 0x20 && wc != '\n' && wc != '\t')) continue;
        char b[MB_LEN_MAX];
        mbstate_t st;
        memset(&st, 0, sizeof st);
        size_t n = wcrtomb(b, (wchar_t)wc, &st);
        if (n != (size_t)-1) paste_add(b, n);
    }
}

const char *ui_term_paste(size_t *len) {
    *len = paste_len;
    return paste ? paste : "";
}

int ui_term_read_key(int timeout_ms) {
    if (interrupts > 0) {
        interrupts--;
        return UI_KEY_INTERRUPT;
    }
    wint_t wc;
    wtimeout(stdscr, timeout_ms);
    int r = wget_wch(stdscr, &wc);
    if (r == ERR) {
        if (interrupts > 0) { // the wait was cut short by Ctrl-C
            interrupts--;
            return UI_KEY_INTERRUPT;
        }
        return -1;
    }
    if (r == KEY_CODE_YES) {
        if (wc == KEY_PASTE_BEGIN) {
            read_paste();
            return UI_KEY_PASTE;
        }
        if (wc == KEY_PASTE_END) return -1; // an end without a beginning
        return UI_FKEY | (int)wc;
    }
    if (wc == 3) return UI_KEY_INTERRUPT; // Ctrl-C as a key (the terminal in raw mode)
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
