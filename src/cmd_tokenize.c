/*
 * cmd_tokenize.c — `lowbit tokenize -m MODEL -p TEXT`: the ids and pieces.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out, "usage: lowbit tokenize [-m MODEL] -p TEXT [--tokenizer FILE] [--no-bos] [--special] [--json]\n"
                 "  --no-bos    do not add the BOS token even if the model adds one\n"
                 "  --special   recognise special tokens written in the text (<|im_start|>, </s> ...)\n"
                 "  --json      print {\"ids\": [...], \"pieces\": [...]}\n");
}

int cmd_tokenize(int argc, char **argv) {
    const char *model_path = NULL, *tokenizer = NULL, *text = NULL;
    bool json = false, no_bos = false, special = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(model_path = cli_value("tokenize", argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--tokenizer")) {
            if (!(tokenizer = cli_value("tokenize", argc, argv, &i))) return 2;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (!(text = cli_value("tokenize", argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--no-bos")) {
            no_bos = true;
        } else if (!strcmp(a, "--special")) {
            special = true;
        } else {
            fprintf(stderr, "lowbit tokenize: unknown option '%s'\n", a);
            return 2;
        }
    }
    if (!text) {
        fprintf(stderr, "lowbit tokenize: no text: pass -p TEXT\n");
        return 2;
    }
    char *path = cli_find_model("tokenize", model_path);
    if (!path) return 1;
    lb_model *m = cli_open_model(path, tokenizer);
    free(path);
    if (!m) return 1;
    const bool bos = lb_model_hparams(m)->add_bos && !no_bos;
    int n = lb_tokenize(m, text, -1, bos, special, NULL, 0);
    n = n < 0 ? -n : n;
    int32_t *ids = malloc((size_t)(n + 1) * sizeof *ids);
    if (!ids) {
        lb_model_free(m);
        return 1;
    }
    n = lb_tokenize(m, text, -1, bos, special, ids, n + 1);
    if (json) {
        printf("{\"ids\": [");
        for (int i = 0; i < n; i++) printf("%s%d", i ? ", " : "", ids[i]);
        printf("], \"pieces\": [");
        for (int i = 0; i < n; i++) {
            const char *p = lb_token_piece(m, ids[i]);
            printf("%s", i ? ", " : "");
            json_string(stdout, p ? p : "", p ? strlen(p) : 0);
        }
        printf("]}\n");
    } else {
        for (int i = 0; i < n; i++) printf("%6d  %s\n", ids[i], lb_token_piece(m, ids[i]));
    }
    free(ids);
    lb_model_free(m);
    return 0;
}
