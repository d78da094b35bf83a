/*
 * clipboard.c — OSC 52 (see clipboard.h).
 */
#include "clipboard.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

size_t clip_base64(const unsigned char *in, size_t n, char *out, size_t cap) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const size_t len = (n + 2) / 3 * 4;
    size_t k = 0;
#define OUT(c) do { if (k + 1 < cap) out[k] = (c); k++; } while (0)
    for (size_t i = 0; i < n; i += 3) {
        const unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        OUT(tab[v >> 18 & 63]);
        OUT(tab[v >> 12 & 63]);
        OUT(i + 1 < n ? tab[v >> 6 & 63] : '=');
        OUT(i + 2 < n ? tab[v & 63] : '=');
    }
#undef OUT
    if (cap) out[k < cap ? k : cap - 1] = 0;
    return len;
}

size_t clip_osc52(const char *text, size_t n, bool in_tmux, char *out, size_t cap) {
    static const char head[] = "\033]52;c;", tail[] = "\a";
    static const char wrap_head[] = "\033Ptmux;\033\033]52;c;", wrap_tail[] = "\a\033\\";
    const size_t b64 = (n + 2) / 3 * 4;
    const size_t plain = sizeof head - 1 + b64 + sizeof tail - 1;
    const size_t total = plain + (in_tmux ? sizeof wrap_head - 1 + b64 + sizeof wrap_tail - 1 : 0);
    if (cap <= total) {
        if (cap) out[0] = 0;
        return total;
    }
    char *p = out;
    p += sprintf(p, "%s", head);
    p += clip_base64((const unsigned char *)text, n, p, b64 + 1);
    p += sprintf(p, "%s", tail);
    if (in_tmux) {
        p += sprintf(p, "%s", wrap_head);
        p += clip_base64((const unsigned char *)text, n, p, b64 + 1);
        p += sprintf(p, "%s", wrap_tail);
    }
    return (size_t)(p - out);
}

bool clip_copy(const char *text, size_t n, const char *what, char *msg, size_t cap) {
    const char *term = getenv("TERM");
    if (n > CLIP_MAX_BYTES) {
        snprintf(msg, cap, "/copy: %s is %zu bytes, more than the %d a terminal takes; use /export", what, n,
                 CLIP_MAX_BYTES);
        return false;
    }
    if (!term || !strcmp(term, "dumb") || !strcmp(term, "linux")) {
        snprintf(msg, cap, "/copy: the terminal (TERM=%s) has no clipboard escape (OSC 52); use /export", term ? term : "");
        return false;
    }
    int fd = open("/dev/tty", O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(msg, cap, "/copy: no terminal to copy through (/dev/tty: %s); use /export", strerror(errno));
        return false;
    }
    const bool in_tmux = getenv("TMUX") && *getenv("TMUX");
    const size_t len = clip_osc52(text, n, in_tmux, NULL, 0);
    char *seq = malloc(len + 1);
    if (!seq) {
        close(fd);
        snprintf(msg, cap, "/copy: out of memory");
        return false;
    }
    clip_osc52(text, n, in_tmux, seq, len + 1);
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, seq + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        done += (size_t)w;
    }
    free(seq);
    close(fd);
    if (done < len) {
        snprintf(msg, cap, "/copy: writing to the terminal failed: %s", strerror(errno));
        return false;
    }
    snprintf(msg, cap, "copied %s (%zu bytes, OSC 52)%s", what, n,
             in_tmux ? "; nothing pasted? tmux: set -g set-clipboard on" : "; nothing pasted? the terminal refuses OSC 52");
    return true;
}
