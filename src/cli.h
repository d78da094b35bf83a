/*
 * cli.h — what the subcommands share: option parsing, finding the model,
 * JSON output. Subcommands use the engine only through lowbit.h.
 */
#ifndef LB_CLI_H
#define LB_CLI_H

#include "lowbit.h"

#include <stdio.h>

int cmd_run(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_chat(int argc, char **argv);

// Parse a number option value; on error print "lowbit CMD: OPT: ..." and return false.
bool cli_int(const char *cmd, const char *opt, const char *val, long lo, long hi, long *out);
bool cli_float(const char *cmd, const char *opt, const char *val, double lo, double hi, double *out);
// The value of an option taking one argument: argv[*i + 1], advancing *i.
const char *cli_value(const char *cmd, int argc, char **argv, int *i);

// -m, else $LOWBIT_MODEL, else the newest *.gguf in $XDG_DATA_HOME/lowbit/models.
// Returns a malloc'd path, or NULL after printing how to get a model.
char *cli_find_model(const char *cmd, const char *given);

// Print s as a JSON string literal (with quotes), escaping as RFC 8259 requires;
// bytes that are not valid UTF-8 become U+FFFD.
void json_string(FILE *out, const char *s, size_t len);

// Re-quantize `model` to a profile (lb_profile_find: a name or a YAML file)
// or, when no profile has that name, to the tensor type it names (q8_0 ...).
// Prints "lowbit CMD: NAME: message" and returns false on failure.
bool cli_apply_profile(const char *cmd, lb_model *model, const char *name);

// Open a model with the error printed as "lowbit: <message>".
lb_model *cli_open_model(const char *path, const char *tokenizer_path);

#endif
