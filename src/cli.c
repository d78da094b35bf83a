/*
 * cli.c — option values, model discovery and JSON strings for the subcommands.
 */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

bool cli_int(const char *cmd, const char *opt, const char *val, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(val, &end, 10);
    if (errno || end == val || *end || v < lo || v > hi) {
        fprintf(stderr, "lowbit %s: %s: '%s' is not an integer in %ld..%ld\n", cmd, opt, val, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

bool cli_float(const char *cmd, const char *opt, const char *val, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    if (errno || end == val || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "lowbit %s: %s: '%s' is not a number in %g..%g\n", cmd, opt, val, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

const char *cli_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "lowbit %s: %s needs a value\n", cmd, argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

static char *newest_gguf(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char *best = NULL;
    time_t best_time = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".gguf")) continue;
        char *path = malloc(strlen(dir) + n + 2);
        if (!path) break;
        sprintf(path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && (!best || sb.st_mtime > best_time)) {
            free(best);
            best = path;
            best_time = sb.st_mtime;
        } else {
            free(path);
        }
    }
    closedir(d);
    return best;
}

char *cli_find_model(const char *cmd, const char *given) {
    if (given) return strdup(given);
    const char *env = getenv("LOWBIT_MODEL");
    if (env && *env) return strdup(env);
    char dir[4096];
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(dir, sizeof dir, "%s/lowbit/models", xdg);
    else
        snprintf(dir, sizeof dir, "%s/.local/share/lowbit/models", home ? home : ".");
    char *found = newest_gguf(dir);
    if (found) return found;
    fprintf(stderr,
            "lowbit %s: no model given: pass -m MODEL.gguf, set LOWBIT_MODEL, or put a .gguf file in %s\n"
            "  (for example TinyLlama-1.1B-Chat in GGUF form, downloaded from Hugging Face)\n",
            cmd, dir);
    return NULL;
}

lb_model *cli_open_model(const char *path, const char *tokenizer_path) {
    lb_error err = {0};
    lb_model *m;
    lb_model_params p = {.tokenizer_path = tokenizer_path};
    if (lb_model_open(&m, path, &p, &err) != LB_OK) {
        fprintf(stderr, "lowbit: %s\n", err.msg);
        return NULL;
    }
    return m;
}

bool cli_apply_profile(const char *cmd, lb_model *model, const char *name) {
    lb_error err = {0};
    lb_profile *prof = NULL;
    lb_status st = lb_profile_find(&prof, name, &err);
    if (st == LB_OK) {
        st = lb_model_requantize_profile(model, prof, NULL, NULL, &err);
        lb_profile_free(prof);
    } else if (lb_type_from_name(name) >= 0) {
        st = lb_model_requantize(model, (lb_type)lb_type_from_name(name), NULL, NULL, &err);
    }
    if (st != LB_OK)
        fprintf(stderr, "lowbit %s: %s: %s%s\n", cmd, name, err.msg,
                st == LB_ERR_MISSING ? "; not a tensor type either (q8_0, q4_0, q4_k, q2_k ...)" : "");
    return st == LB_OK;
}

// Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid.
static size_t utf8_len(const unsigned char *s, size_t n) {
    if (s[0] < 0x80) return 1;
    size_t len = s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 && s[0] < 0xE0 ? 2 : 0;
    if (!len || len > n) return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (len == 3 && s[0] == 0xE0 && s[1] < 0xA0) return 0;  // overlong
    if (len == 3 && s[0] == 0xED && s[1] >= 0xA0) return 0; // surrogate
    if (len == 4 && s[0] == 0xF0 && s[1] < 0x90) return 0;  // overlong
    if (len == 4 && s[0] == 0xF4 && s[1] >= 0x90) return 0; // > U+10FFFF
    return len;
}

void json_string(FILE *out, const char *str, size_t len) {
    const unsigned char *s = (const unsigned char *)str;
    fputc('"', out);
    for (size_t i = 0; i < len;) {
        unsigned char ch = s[i];
        if (ch == '"' || ch == '\\') {
            fputc('\\', out);
            fputc(ch, out);
            i++;
        } else if (ch == '\n') {
            fputs("\\n", out), i++;
        } else if (ch == '\t') {
            fputs("\\t", out), i++;
        } else if (ch == '\r') {
            fputs("\\r", out), i++;
        } else if (ch < 0x20) {
            fprintf(out, "\\u%04x", ch), i++;
        } else {
            size_t n = utf8_len(s + i, len - i);
            if (n == 0) {
                fputs("\\ufffd", out);
                i++;
            } else {
                fwrite(s + i, 1, n, out);
                i += n;
            }
        }
    }
    fputc('"', out);
}
