/*
 * cmd_chat.c — `lowbit chat`: parse the options and hand over to ui/: the
 * ncurses screen when stdin and stdout are terminals, the line REPL otherwise.
 */
#include "cli.h"
#include "../ui/ui.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: lowbit chat [-m MODEL] [options]\n"
            "  -m, --model FILE        GGUF, HF directory or llama2.c .bin (default: $LOWBIT_MODEL, then the newest\n"
            "                          .gguf in $XDG_DATA_HOME/lowbit/models)\n"
            "      --tokenizer FILE    tokenizer.bin for llama2.c checkpoints\n"
            "      --template NAME     raw llama2 llama3 chatml zephyr mistral gemma phi3 alpaca\n"
            "                          (default: detected from the model's chat template, else raw)\n"
            "      --profile NAME      quantization profile or type to switch to at start (q8_0, q4_k_m...)\n"
            "      --draft FILE        speculative decoding with a draft model of the same vocabulary\n"
            "      --draft-profile NAME  quantize the draft (default: the model itself) with a profile or type\n"
            "      --session NAME      open the session with this name (created when missing)\n"
            "      --sessions-dir DIR  where sessions are kept (default $XDG_DATA_HOME/lowbit/sessions)\n"
            "  -c, --ctx-size N        context size (default: trained length, at most 4096)\n"
            "  -n, --n-predict N       most tokens per reply (default 512)\n"
            "      --ignore-eos        keep writing past end-of-generation tokens, up to -n\n"
            "      --kld-every N       sample the live KL divergence every N tokens, 0 = off (default 16)\n"
            "  -t, --threads N         (default: the machine's cores)\n"
            "      --plain             line REPL even on a terminal\n");
}

int cmd_chat(int argc, char **argv) {
    const char *C = "chat";
    struct app_options o = {.kld_every = -1};
    const char *model = NULL;
    bool plain = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long n;
#define VALUE() if (!(v = cli_value(C, argc, argv, &i))) return 2
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            VALUE();
            model = v;
        } else if (!strcmp(a, "--tokenizer")) {
            VALUE();
            o.tokenizer_path = v;
        } else if (!strcmp(a, "--template")) {
            VALUE();
            if (lb_chat_template_from_name(v) < 0) {
                fprintf(stderr, "lowbit chat: --template: '%s' unknown (expected raw, llama2, llama3, chatml, "
                                "zephyr, mistral, gemma, phi3 or alpaca)\n", v);
                return 2;
            }
            o.template_name = v;
        } else if (!strcmp(a, "--profile")) {
            VALUE();
            o.profile = v;
        } else if (!strcmp(a, "--draft")) {
            VALUE();
            o.draft = v;
        } else if (!strcmp(a, "--draft-profile")) {
            VALUE();
            o.draft_profile = v;
        } else if (!strcmp(a, "--session")) {
            VALUE();
            o.session = v;
        } else if (!strcmp(a, "--sessions-dir")) {
            VALUE();
            o.sessions_dir = v;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            VALUE();
            if (!cli_int(C, a, v, 16, 1 << 20, &n)) return 2;
            o.n_ctx = (int)n;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            VALUE();
            if (!cli_int(C, a, v, 1, 1 << 20, &n)) return 2;
            o.n_predict = (int)n;
        } else if (!strcmp(a, "--kld-every")) {
            VALUE();
            if (!cli_int(C, a, v, 0, 1 << 20, &n)) return 2;
            o.kld_every = (int)n;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            VALUE();
            if (!cli_int(C, a, v, 1, 1024, &n)) return 2;
            o.n_threads = (int)n;
        } else if (!strcmp(a, "--ignore-eos")) {
            o.ignore_eos = true;
        } else if (!strcmp(a, "--plain")) {
            plain = true;
        } else {
            fprintf(stderr, "lowbit chat: unknown option '%s' (see lowbit chat --help)\n", a);
            return 2;
        }
#undef VALUE
    }
    char *path = cli_find_model(C, model);
    if (!path) return 1;
    o.model_path = path;
    int rc = !plain && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO) ? ui_tui_run(&o) : ui_repl_run(&o);
    free(path);
    return rc;
}
