/*
 * extedit.c — the message in $EDITOR (see extedit.h).
 */
#include "extedit.h"

#include <errno.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *editor_command(void) {
    const char *v = getenv("VISUAL");
    if (v && *v) return v;
    v = getenv("EDITOR");
    return v && *v ? v : "vi";
}

char *extedit_run(const char *text, char *err, size_t cap) {
    const char *tmpdir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/lowbit-message-XXXXXX.md", tmpdir && *tmpdir ? tmpdir : "/tmp");
    int fd = mkstemps(path, 3);
    if (fd < 0) {
        snprintf(err, cap, "editor: cannot create %s: %s", path, strerror(errno));
        return NULL;
    }
    const size_t n = strlen(text);
    FILE *f = fdopen(fd, "w");
    bool ok = f && fwrite(text, 1, n, f) == n;
    ok = f && fclose(f) == 0 && ok;
    if (!ok) {
        snprintf(err, cap, "editor: cannot write %s: %s", path, strerror(errno));
        unlink(path);
        return NULL;
    }
    const char *cmd = editor_command();
    char script[4200];
    snprintf(script, sizeof script, "%s \"$1\"", cmd);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, cap, "editor: cannot start '%s': %s", cmd, strerror(errno));
        unlink(path);
        return NULL;
    }
    if (pid == 0) {
        // The editor gets the terminal's Ctrl-C as it would from a shell.
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        execl("/bin/sh", "sh", "-c", script, "sh", path, (char *)NULL);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            status = -1;
            break;
        }
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 127)
            snprintf(err, cap, "editor: '%s' not found (set $VISUAL or $EDITOR); the message is unchanged", cmd);
        else if (status != -1 && WIFEXITED(status))
            snprintf(err, cap, "editor exited with status %d (%s); the message is unchanged", WEXITSTATUS(status), cmd);
        else
            snprintf(err, cap, "editor killed (%s); the message is unchanged", cmd);
        unlink(path);
        return NULL;
    }
    f = fopen(path, "r");
    char *out = NULL;
    size_t len = 0;
    if (f) {
        FILE *m = open_memstream(&out, &len);
        char buf[4096];
        size_t k;
        while (m && (k = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, k, m);
        ok = m && !ferror(f);
        if (m) fclose(m);
        fclose(f);
    } else {
        ok = false;
    }
    if (!ok || !out) {
        snprintf(err, cap, "editor: cannot read %s back: %s", path, strerror(errno));
        free(out);
        unlink(path);
        return NULL;
    }
    unlink(path);
    if (len > 0 && out[len - 1] == '\n') out[--len] = 0;
    if (len > 0 && out[len - 1] == '\r') out[--len] = 0;
    return out;
}
