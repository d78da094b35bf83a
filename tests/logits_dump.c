/*
 * logits_dump — evaluate token ids with the engine and write every position's logits,
 * for tests/test_forward.py to compare with the numpy reference (tests/reference_forward.py).
 *
 *     logits_dump [--threads N] [--batch N] [--kv f32|f16] [--greedy N] MODEL OUT.f32 ID...
 *
 * The ids are fed with lb_forward in chunks of --batch tokens (default: all in one
 * call; --batch 1 is one token at a time), asking for the logits of every position.
 * OUT.f32 receives n_ids x n_vocab float32, row i being the logits after id i.
 * With --greedy N, N tokens are then generated greedily (lb_argmax of the last row,
 * then one lb_forward per token) and printed space-separated on stdout.
 * Errors print err.msg (or a usage line) on stderr and exit 1.
 *
 * Uses only engine/lowbit.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lowbit.h"

static void usage(void) {
    fprintf(stderr, "usage: logits_dump [--threads N] [--batch N] [--kv f32|f16] [--greedy N] MODEL OUT.f32 ID...\n");
}

// A non-negative int from `s`, or -1 when `s` is not one.
static long parse_count(const char *s) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < 0 || v > 1000000000L)
        return -1;
    return v;
}

int main(int argc, char **argv) {
    long n_threads = 0, batch = 0, n_greedy = 0;
    lb_type kv_type = LB_TYPE_F32;
    int argi = 1;
    for (; argi < argc && strncmp(argv[argi], "--", 2) == 0; argi += 2) {
        const char *opt = argv[argi];
        if (argi + 1 >= argc) {
            usage();
            return 1;
        }
        const char *val = argv[argi + 1];
        long *dst = NULL;
        if (strcmp(opt, "--threads") == 0)
            dst = &n_threads;
        else if (strcmp(opt, "--batch") == 0)
            dst = &batch;
        else if (strcmp(opt, "--greedy") == 0)
            dst = &n_greedy;
        else if (strcmp(opt, "--kv") == 0) {
            if (strcmp(val, "f32") == 0)
                kv_type = LB_TYPE_F32;
            else if (strcmp(val, "f16") == 0)
                kv_type = LB_TYPE_F16;
            else {
                fprintf(stderr, "logits_dump: --kv '%s' (expected f32 or f16)\n", val);
                return 1;
            }
            continue;
        } else {
            fprintf(stderr, "logits_dump: unknown option '%s'\n", opt);
            usage();
            return 1;
        }
        if ((*dst = parse_count(val)) < 0) {
            fprintf(stderr, "logits_dump: %s '%s' (expected a non-negative integer)\n", opt, val);
            return 1;
        }
    }
    if (argc - argi < 3) {
        usage();
        return 1;
    }
    const char *model_path = argv[argi];
    const char *out_path = argv[argi + 1];
    int n = argc - argi - 2;

    int rc = 1;
    lb_error err = {0};
    lb_model *model = NULL;
    lb_context *ctx = NULL;
    int32_t *ids = NULL, *pos = NULL;
    bool *want = NULL;
    float *logits = NULL;
    FILE *out = NULL;

    if (lb_model_open(&model, model_path, NULL, &err) != LB_OK) {
        fprintf(stderr, "%s\n", err.msg);
        goto done;
    }
    const int32_t n_vocab = lb_model_hparams(model)->n_vocab;

    ids = malloc(sizeof(int32_t) * (size_t)n);
    pos = malloc(sizeof(int32_t) * (size_t)n);
    want = malloc(sizeof(bool) * (size_t)n);
    logits = malloc(sizeof(float) * (size_t)n * (size_t)n_vocab); // [n][n_vocab]
    if (!ids || !pos || !want || !logits) {
        fprintf(stderr, "logits_dump: out of memory for %d x %d logits\n", n, n_vocab);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        long id = parse_count(argv[argi + 2 + i]);
        if (id < 0 || id >= n_vocab) {
            fprintf(stderr, "logits_dump: token id '%s' (expected 0..%d)\n", argv[argi + 2 + i], n_vocab - 1);
            goto done;
        }
        ids[i] = (int32_t)id;
        pos[i] = i;
        want[i] = true;
    }

    lb_context_params cp = lb_context_default_params();
    cp.n_ctx = n + (int32_t)n_greedy;
    cp.n_threads = (int32_t)n_threads;
    cp.kv_type = kv_type;
    if (lb_context_new(&ctx, model, &cp, &err) != LB_OK) {
        fprintf(stderr, "%s\n", err.msg);
        goto done;
    }

    // Prompt, in chunks of `batch` tokens; each chunk writes its rows in place.
    int step = batch > 0 ? (int)batch : n;
    for (int i = 0; i < n; i += step) {
        int m = n - i < step ? n - i : step;
        if (lb_forward(ctx, ids + i, pos + i, m, want + i, logits + (size_t)i * (size_t)n_vocab, &err) != LB_OK) {
            fprintf(stderr, "%s\n", err.msg);
            goto done;
        }
    }

    out = fopen(out_path, "wb");
    if (!out) {
        fprintf(stderr, "logits_dump: %s: %s\n", out_path, strerror(errno));
        goto done;
    }
    if (fwrite(logits, sizeof(float) * (size_t)n_vocab, (size_t)n, out) != (size_t)n || fclose(out) != 0) {
        out = NULL;
        fprintf(stderr, "logits_dump: %s: write failed\n", out_path);
        goto done;
    }
    out = NULL;

    // Greedy continuation: the last prompt row picks the first token.
    float *last = logits + (size_t)(n - 1) * (size_t)n_vocab;
    for (long g = 0; g < n_greedy; g++) {
        int32_t next = lb_argmax(last, n_vocab);
        printf("%s%d", g ? " " : "", (int)next);
        if (g + 1 == n_greedy)
            break;
        int32_t p = lb_context_n_past(ctx);
        bool yes = true;
        if (lb_forward(ctx, &next, &p, 1, &yes, last, &err) != LB_OK) {
            printf("\n");
            fprintf(stderr, "%s\n", err.msg);
            goto done;
        }
    }
    if (n_greedy)
        printf("\n");
    rc = 0;

done:
    if (out)
        fclose(out);
    free(logits);
    free(want);
    free(pos);
    free(ids);
    lb_context_free(ctx);
    lb_model_free(model);
    return rc;
}
