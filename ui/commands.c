/*
 * commands.c — the slash commands. Each one validates its argument and says
 * what it expected when the argument is wrong.
 */
#include "commands.h"
#include "clipboard.h"
#include "markdown.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static bool parse_num(const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    while (*end == ' ') end++;
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return false;
    *out = v;
    return true;
}

static bool is_int(double v) { return v == (double)(long long)v; }

#define NEED_ARG(usage)                                                       \
    if (!*arg) {                                                              \
        snprintf(msg, cap, "%s", usage);                                      \
        return CMD_ERROR;                                                     \
    }

static cmd_result c_help(struct app *a, const char *arg, char *msg, size_t cap) { return CMD_HELP; }
static cmd_result c_quit(struct app *a, const char *arg, char *msg, size_t cap) { return CMD_QUIT; }

static cmd_result c_new(struct app *a, const char *arg, char *msg, size_t cap) {
    if (!app_new_session(a, arg)) return CMD_ERROR;
    snprintf(msg, cap, "new session '%s'", app_session(a)->name);
    return CMD_DONE;
}

static cmd_result c_rename(struct app *a, const char *arg, char *msg, size_t cap) {
    NEED_ARG("/rename NAME: give the new name");
    lb_session_set_name(app_session(a), arg);
    app_save(a);
    snprintf(msg, cap, "renamed to '%s'", arg);
    return CMD_DONE;
}

static cmd_result c_delete(struct app *a, const char *arg, char *msg, size_t cap) {
    char name[128];
    snprintf(name, sizeof name, "%s", app_session(a)->name);
    if (*arg && strcmp(arg, name)) {
        snprintf(msg, cap, "/delete: the active session is '%s'; type /delete alone or with its name", name);
        return CMD_ERROR;
    }
    if (!app_delete_session(a, a->active)) return CMD_ERROR;
    snprintf(msg, cap, "deleted '%s'", name);
    return CMD_DONE;
}

static cmd_result c_system(struct app *a, const char *arg, char *msg, size_t cap) {
    lb_session_set_system(app_session(a), arg);
    app_save(a);
    snprintf(msg, cap, *arg ? "system prompt set" : "system prompt cleared");
    return CMD_DONE;
}

static cmd_result c_template(struct app *a, const char *arg, char *msg, size_t cap) {
    if (!*arg) {
        snprintf(msg, cap, "template: %s (model's own: %s)", lb_chat_template_name(app_template(a)),
                 a->model_template >= 0 ? lb_chat_template_name(a->model_template) : "none");
        return CMD_DONE;
    }
    if (lb_chat_template_from_name(arg) < 0 && strcmp(arg, "auto")) {
        size_t n = (size_t)snprintf(msg, cap, "/template: '%s' unknown (expected auto", arg);
        for (int i = 0; i < LB_CHAT_TEMPLATE_COUNT && n < cap; i++)
            n += (size_t)snprintf(msg + n, cap - n, ", %s", lb_chat_template_name(i));
        if (n < cap) snprintf(msg + n, cap - n, ")");
        return CMD_ERROR;
    }
    lb_session_set_template(app_session(a), strcmp(arg, "auto") ? arg : "");
    app_save(a);
    snprintf(msg, cap, "template: %s", lb_chat_template_name(app_template(a)));
    return CMD_DONE;
}

static cmd_result c_temp(struct app *a, const char *arg, char *msg, size_t cap) {
    double v;
    if (!parse_num(arg, 0, 100, &v)) {
        snprintf(msg, cap, "/temp: '%s' is not a number in 0..100 (0 = greedy)", arg);
        return CMD_ERROR;
    }
    app_session(a)->sampling.temp = (float)v;
    app_save(a);
    snprintf(msg, cap, "temperature %g", v);
    return CMD_DONE;
}

static cmd_result c_top_p(struct app *a, const char *arg, char *msg, size_t cap) {
    double v;
    if (!parse_num(arg, 0, 1, &v)) {
        snprintf(msg, cap, "/top-p: '%s' is not a number in 0..1 (1 = off)", arg);
        return CMD_ERROR;
    }
    app_session(a)->sampling.top_p = (float)v;
    app_save(a);
    snprintf(msg, cap, "top-p %g", v);
    return CMD_DONE;
}

static cmd_result c_top_k(struct app *a, const char *arg, char *msg, size_t cap) {
    double v;
    if (!parse_num(arg, 0, 1 << 24, &v) || !is_int(v)) {
        snprintf(msg, cap, "/top-k: '%s' is not an integer in 0..16777216 (0 = off)", arg);
        return CMD_ERROR;
    }
    app_session(a)->sampling.top_k = (int32_t)v;
    app_save(a);
    snprintf(msg, cap, "top-k %d", (int)v);
    return CMD_DONE;
}

static cmd_result c_min_p(struct app *a, const char *arg, char *msg, size_t cap) {
    double v;
    if (!parse_num(arg, 0, 1, &v)) {
        snprintf(msg, cap, "/min-p: '%s' is not a number in 0..1 (0 = off)", arg);
        return CMD_ERROR;
    }
    app_session(a)->sampling.min_p = (float)v;
    app_save(a);
    snprintf(msg, cap, "min-p %g", v);
    return CMD_DONE;
}

static cmd_result c_penalty(struct app *a, const char *arg, char *msg, size_t cap) {
    double v;
    if (!parse_num(arg, 0.01, 100, &v)) {
        snprintf(msg, cap, "/penalty: '%s' is not a number in 0.01..100 (1 = off)", arg);
        return CMD_ERROR;
    }
    app_session(a)->sampling.repeat_penalty = (float)v;
    app_save(a);
    snprintf(msg, cap, "repetition penalty %g", v);
    return CMD_DONE;
}

static cmd_result c_seed(struct app *a, const char *arg, char *msg, size_t cap) {
    lb_session *s = app_session(a);
    if (!strcmp(arg, "random")) {
        s->seed_random = true;
        app_save(a);
        snprintf(msg, cap, "a new seed for every reply");
        return CMD_DONE;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    if (!*arg || errno || *end || *arg == '-') {
        snprintf(msg, cap, "/seed: '%s' is neither 'random' nor a non-negative integer", arg);
        return CMD_ERROR;
    }
    s->sampling.seed = v;
    s->seed_random = false;
    app_save(a);
    snprintf(msg, cap, "seed %llu", v);
    return CMD_DONE;
}

static cmd_result c_profile(struct app *a, const char *arg, char *msg, size_t cap) {
    if (!*arg) return CMD_PICKER;
    if (!app_switch_profile(a, arg)) {
        app_take_notice(a, msg, cap);
        return CMD_ERROR;
    }
    snprintf(msg, cap, "switching to %s in the background; the current weights keep answering", arg);
    return CMD_DONE;
}

// /draft MODEL [PROFILE], /draft self PROFILE, /draft off; alone: the state.
// MODEL is the whole argument when that names a file, else all before the last space.
static cmd_result c_draft(struct app *a, const char *arg, char *msg, size_t cap) {
    lb_stats st;
    if (!*arg) {
        lb_chat_stats(a->chat, &st);
        if (!*st.draft) snprintf(msg, cap, "no draft (/draft MODEL [PROFILE], /draft self PROFILE)");
        else snprintf(msg, cap, "draft %s: %.1f%% of %lld drafted tokens accepted, %.2f per step", st.draft,
                      100.0 * st.spec_accept, (long long)st.spec_drafted, st.spec_mean_accepted);
        return CMD_DONE;
    }
    if (a->generating) {
        snprintf(msg, cap, "/draft: a reply is being written: press Esc first");
        return CMD_ERROR;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s", arg);
    const char *profile = NULL;
    char *sp = strrchr(path, ' ');
    if (access(path, R_OK) != 0 && sp) {
        *sp = 0;
        profile = sp + 1;
    }
    const bool off = !strcmp(path, "off") && !profile, self = !strcmp(path, "self");
    if (self && !profile) {
        snprintf(msg, cap, "/draft self: give a profile or type for the draft (/draft self q4_0)");
        return CMD_ERROR;
    }
    // The setting belongs to the session (saved with it); the chat follows it.
    lb_session *s = app_session(a);
    char old[4096], old_profile[64];
    snprintf(old, sizeof old, "%s", s->draft);
    snprintf(old_profile, sizeof old_profile, "%s", s->draft_profile);
    lb_session_set_draft(s, off ? "" : self ? "self" : path, off ? "" : profile);
    if (!app_apply_draft(a)) {
        lb_session_set_draft(s, old, old_profile);
        app_take_notice(a, msg, cap);
        return CMD_ERROR;
    }
    app_save(a);
    lb_chat_stats(a->chat, &st);
    if (off) snprintf(msg, cap, "draft off: plain decoding");
    else snprintf(msg, cap, "draft %s: speculative decoding on", st.draft);
    return CMD_DONE;
}

static cmd_result c_clear(struct app *a, const char *arg, char *msg, size_t cap) {
    if (a->generating) {
        snprintf(msg, cap, "/clear: a reply is being written: press Esc first");
        return CMD_ERROR;
    }
    lb_session_clear(app_session(a));
    a->ctx_first = 0;
    lb_chat_reset(a->chat);
    app_save(a);
    snprintf(msg, cap, "conversation cleared");
    return CMD_DONE;
}

static cmd_result c_regen(struct app *a, const char *arg, char *msg, size_t cap) {
    if (!app_send(a, NULL)) {
        app_take_notice(a, msg, cap);
        return CMD_ERROR;
    }
    return CMD_DONE;
}

// A shown message's number (1-based) at the start of arg; *rest after it.
static bool message_number(struct app *a, const char *arg, int *i, const char **rest) {
    char *end;
    errno = 0;
    long n = strtol(arg, &end, 10);
    if (errno || end == arg || n < 1 || n > app_session(a)->n_msgs || (*end && *end != ' ')) return false;
    while (*end == ' ') end++;
    *i = (int)n - 1;
    *rest = end;
    return true;
}

// /edit N TEXT: a new branch from message N; /edit N: its text into the input box to change.
static cmd_result c_edit(struct app *a, const char *arg, char *msg, size_t cap) {
    lb_session *s = app_session(a);
    int i;
    const char *text;
    if (!message_number(a, arg, &i, &text) || strcmp(s->msgs[i].role, "user")) {
        snprintf(msg, cap, "/edit: '%s' is not the number of one of your messages (1..%d, shown as #N)", arg,
                 s->n_msgs);
        return CMD_ERROR;
    }
    if (!*text) {
        free(a->input);
        if (asprintf(&a->input, "/edit %d %s", i + 1, s->msgs[i].content) < 0) a->input = NULL;
        snprintf(msg, cap, "message %d to edit", i + 1);
        return a->input ? CMD_INPUT : CMD_ERROR;
    }
    if (!app_edit(a, i, text)) {
        app_take_notice(a, msg, cap);
        return CMD_ERROR;
    }
    int pos, n = lb_session_siblings(s, s->path[i], &pos);
    snprintf(msg, cap, "message %d: branch %d/%d", i + 1, pos, n);
    return CMD_DONE;
}

// /branch N prev|next|K: show another branch at message N; /branch: where there are some.
static cmd_result c_branch(struct app *a, const char *arg, char *msg, size_t cap) {
    lb_session *s = app_session(a);
    size_t len = 0;
    int i, pos, n;
    const char *how;
    if (!*arg) {
        msg[0] = 0;
        for (int k = 0; k < s->n_msgs && len < cap; k++)
            if ((n = lb_session_siblings(s, s->path[k], &pos)) > 1)
                len += (size_t)snprintf(msg + len, cap - len, "%s#%d %d/%d", len ? ", " : "branches: ", k + 1, pos, n);
        if (!len) snprintf(msg, cap, "no branches: /edit N or /regen make one");
        return CMD_DONE;
    }
    if (!message_number(a, arg, &i, &how)) {
        snprintf(msg, cap, "/branch: '%s' does not start with a message number (1..%d)", arg, s->n_msgs);
        return CMD_ERROR;
    }
    n = lb_session_siblings(s, s->path[i], &pos);
    int delta;
    char *end;
    long want = strtol(how, &end, 10);
    if (!strcmp(how, "next") || !strcmp(how, ">") || !*how) delta = 1;
    else if (!strcmp(how, "prev") || !strcmp(how, "<")) delta = -1;
    else if (end != how && !*end && want >= 1 && want <= n) delta = (int)want - pos;
    else {
        snprintf(msg, cap, "/branch %d: '%s' (expected prev, next or 1..%d)", i + 1, how, n);
        return CMD_ERROR;
    }
    if (delta && !app_browse(a, i, delta)) {
        app_take_notice(a, msg, cap);
        return CMD_ERROR;
    }
    n = lb_session_siblings(s, s->path[i], &pos);
    snprintf(msg, cap, "message %d: branch %d/%d", i + 1, pos, n);
    return CMD_DONE;
}

static cmd_result c_compare(struct app *a, const char *arg, char *msg, size_t cap) {
    if (!*arg) return CMD_COMPARE;
    if (!app_compare(a, arg)) {
        app_take_notice(a, msg, cap);
        return CMD_ERROR;
    }
    snprintf(msg, cap, "comparing with %s: building the copy", arg);
    return CMD_DONE;
}

// /stats: the panel's figures on one line (for the REPL and scripts).
static cmd_result c_stats(struct app *a, const char *arg, char *msg, size_t cap) {
    lb_stats st;
    lb_chat_stats(a->chat, &st);
    snprintf(msg, cap, "rss %zu peak %zu weights %zu kv %zu/%zu ctx %d/%d reused %d prefilled %d profile %s "
             "bpw %.2f kld %.6f top1 %.4f decode %.1f", st.rss_bytes, st.peak_rss_bytes, st.weight_bytes,
             st.kv_bytes_used, st.kv_bytes_allocated, st.n_ctx_used, st.n_ctx, st.reused_tokens, st.prefill_tokens,
             st.profile, st.bpw, st.kld, st.top1, st.decode_tps);
    return CMD_DONE;
}

static cmd_result c_export(struct app *a, const char *arg, char *msg, size_t cap) {
    char path[4096];
    if (*arg) {
        snprintf(path, sizeof path, "%s", arg);
    } else {
        snprintf(path, sizeof path, "%s.md", app_session(a)->name);
        for (char *p = path; *p; p++)
            if (*p == '/' || *p == ' ') *p = '_';
    }
    bool ok = app_export(a, path);
    app_take_notice(a, msg, cap);
    return ok ? CMD_DONE : CMD_ERROR;
}

// /copy: the last answer, /copy N: its N-th fenced code block (clipboard.c).
static cmd_result c_copy(struct app *a, const char *arg, char *msg, size_t cap) {
    lb_session *s = app_session(a);
    int last = s->n_msgs - 1;
    while (last >= 0 && strcmp(s->msgs[last].role, "assistant")) last--;
    if (last < 0 || !*s->msgs[last].content) {
        snprintf(msg, cap, "/copy: no answer to copy yet");
        return CMD_ERROR;
    }
    const char *text = s->msgs[last].content;
    size_t start = 0, len = strlen(text);
    char what[48] = "the last answer";
    if (*arg) {
        double v;
        if (!parse_num(arg, 1, 1e6, &v) || !is_int(v)) {
            snprintf(msg, cap, "/copy: '%s' is not a code block number (1 for the first)", arg);
            return CMD_ERROR;
        }
        if (!md_code_block(text, len, (int)v, &start, &len)) {
            int n = 0;
            size_t s0, l0;
            while (md_code_block(text, strlen(text), n + 1, &s0, &l0)) n++;
            snprintf(msg, cap, "/copy: only %d code block%s in the last answer", n, n == 1 ? "" : "s");
            return CMD_ERROR;
        }
        snprintf(what, sizeof what, "code block %d", (int)v);
    }
    return clip_copy(text + start, len, what, msg, cap) ? CMD_DONE : CMD_ERROR;
}

const struct command commands[] = {
    {"/help", "", "keys and commands", c_help},
    {"/new", "[NAME]", "start a new session", c_new},
    {"/rename", "NAME", "rename this session", c_rename},
    {"/delete", "[NAME]", "delete this session and its file", c_delete},
    {"/system", "[TEXT]", "set (or clear) the system prompt", c_system},
    {"/template", "[NAME|auto]", "prompt template: raw llama2 llama3 chatml zephyr mistral gemma phi3 alpaca", c_template},
    {"/temp", "T", "sampling temperature, 0 = greedy", c_temp},
    {"/top-p", "P", "nucleus sampling, 1 = off", c_top_p},
    {"/top-k", "K", "keep the K likeliest tokens, 0 = off", c_top_k},
    {"/min-p", "P", "drop tokens below P x the likeliest, 0 = off", c_min_p},
    {"/penalty", "R", "repetition penalty, 1 = off", c_penalty},
    {"/seed", "N|random", "fixed seed, or a new one per reply", c_seed},
    {"/profile", "[NAME]", "switch quantization profile (no name: picker)", c_profile},
    {"/draft", "[MODEL|self] [PROFILE]|off", "speculative decoding with a draft model", c_draft},
    {"/clear", "", "forget the conversation, keep the settings", c_clear},
    {"/regen", "", "answer the last message again, as a new branch (the old answer stays)", c_regen},
    {"/retry", "", "same as /regen", c_regen},
    {"/edit", "N [TEXT]", "change your message N as a new branch and answer it", c_edit},
    {"/branch", "[N prev|next|K]", "show another branch at message N (alone: where they are)", c_branch},
    {"/compare", "PROFILE", "answer the last message again under PROFILE, side by side", c_compare},
    {"/stats", "", "the live panel's figures on one line", c_stats},
    {"/export", "[FILE]", "write the conversation as Markdown (default NAME.md)", c_export},
    {"/copy", "[N]", "copy the last answer (N: its N-th code block) with OSC 52", c_copy},
    {"/quit", "", "save and leave", c_quit},
};
const int n_commands = sizeof commands / sizeof commands[0];

cmd_result cmd_run_line(struct app *a, const char *line, char *msg, size_t cap) {
    msg[0] = 0;
    size_t n = strcspn(line, " \t");
    const char *arg = line + n;
    while (*arg == ' ' || *arg == '\t') arg++;
    char *argbuf = strdup(arg); // whole: /edit carries a message of any length
    if (!argbuf) {
        snprintf(msg, cap, "out of memory");
        return CMD_ERROR;
    }
    for (size_t k = strlen(argbuf); k > 0 && (argbuf[k - 1] == ' ' || argbuf[k - 1] == '\n'); k--) argbuf[k - 1] = 0;
    for (int i = 0; i < n_commands; i++)
        if (strlen(commands[i].name) == n && !strncmp(commands[i].name, line, n)) {
            cmd_result r = commands[i].run(a, argbuf, msg, cap);
            free(argbuf);
            return r;
        }
    free(argbuf);
    snprintf(msg, cap, "unknown command '%.*s' (/help lists them)", (int)(n > 60 ? 60 : n), line);
    return CMD_ERROR;
}

int cmd_complete(struct app *a, const char *line, char out[][128], int cap) {
    int k = 0;
    const char *sp = strchr(line, ' ');
    if (!sp) {
        for (int i = 0; i < n_commands && k < cap; i++)
            if (!strncmp(commands[i].name, line, strlen(line))) snprintf(out[k++], 128, "%s ", commands[i].name);
        return k;
    }
    const char *arg = sp + 1;
    size_t cmdlen = (size_t)(sp - line);
    if (cmdlen == 9 && !strncmp(line, "/template", 9)) {
        for (int i = -1; i < LB_CHAT_TEMPLATE_COUNT && k < cap; i++) {
            const char *name = i < 0 ? "auto" : lb_chat_template_name(i);
            if (!strncmp(name, arg, strlen(arg))) snprintf(out[k++], 128, "/template %s", name);
        }
    } else if ((cmdlen == 8 && !strncmp(line, "/profile", 8)) || (cmdlen == 8 && !strncmp(line, "/compare", 8))) {
        lb_profile_choice ch[32];
        int n = lb_chat_profiles(a->model, ch, 32);
        for (int i = 0; i < n && k < cap; i++)
            if (!strncmp(ch[i].name, arg, strlen(arg))) snprintf(out[k++], 128, "%.8s %.31s", line, ch[i].name);
    } else if (cmdlen == 5 && !strncmp(line, "/seed", 5)) {
        if (!strncmp("random", arg, strlen(arg))) snprintf(out[k++], 128, "/seed random");
    }
    return k;
}
