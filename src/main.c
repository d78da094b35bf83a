/*
 * main.c — `lowbit COMMAND ...`: dispatch to a subcommand.
 */
#include "config.h"
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"run", cmd_run, "generate text from a prompt"},
    {"info", cmd_info, "show a model's architecture, hyperparameters and tensors"},
    {"tokenize", cmd_tokenize, "show the token ids and pieces of a text"},
    {"quantize", cmd_quantize, "write a GGUF file quantized by a profile"},
    {"perplexity", cmd_perplexity, "measure perplexity and KL divergence on a text file"},
    {"bench", cmd_bench, "measure prompt processing and generation speed per profile"},
    {"chat", cmd_chat, "chat in the terminal (a line REPL when not on a terminal)"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: lowbit COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\n`lowbit COMMAND --help` describes a command's options; see also lowbit(1).\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("lowbit %s (cpu: %s)\n", PACKAGE_VERSION, lb_cpu_name());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "lowbit: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
