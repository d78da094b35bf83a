/*
 * cmd_perplexity.c — `lowbit perplexity`: llama.cpp's llama-perplexity
 * measurement, and the KL divergence against saved base log-probabilities.
 *
 * As llama-perplexity: the whole file is tokenized once (with BOS when the
 * model adds one), cut into chunks of --ctx tokens (a trailing partial chunk
 * is dropped), each chunk is evaluated from an empty cache with its first
 * token replaced by BOS (when the model adds one), and only the second half
 * is scored: the logits at positions ctx/2 .. ctx-2 against the next token.
 * PPL = exp(mean NLL), and its standard error is PPL · sqrt(var(NLL)/(N-1)).
 *
 * The logits file (--save-logits, read by --kld-base) is, little-endian:
 *   char magic[8] "LBLOGPR1"; u32 version (1); u32 n_vocab; u32 n_ctx;
 *   u32 n_chunk; u32 first (n_ctx/2); u32 reserved (0);
 *   i32 tokens[n_chunk · n_ctx]   (the text's tokens, before the BOS swap);
 *   then per chunk, per scored position: f32 log_softmax[n_vocab].
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: lowbit perplexity -m MODEL -f TEXTFILE [options]\n"
            "  -m, --model FILE          GGUF, Hugging Face model directory or llama2.c .bin\n"
            "      --tokenizer FILE      tokenizer.bin for llama2.c checkpoints\n"
            "  -f, --file FILE           the text to score\n"
            "      --profile NAME|FILE   quantize the weights at load time (see lowbit-profile(5))\n"
            "  -c, --ctx N               tokens per chunk (default 512); the second half is scored\n"
            "      --chunks N            score at most N chunks (default: all)\n"
            "      --save-logits FILE    save the log-probabilities, as the base for --kld-base\n"
            "      --kld-base FILE       compare with saved log-probabilities: KL divergence, top-1 agreement\n"
            "      --kv-type T           KV cache elements: f16 (default, or the profile's), f32, q8_0, fp8\n"
            "  -t, --threads N           (default: the machine's cores)\n"
            "      --json                print one JSON object: ppl, ppl_stderr, kld_mean, kld_p99,\n"
            "                            top1_agreement, tokens\n");
}

struct ppl_opts {
    const char *model, *tokenizer, *text, *profile, *save, *base;
    long n_ctx, chunks, threads;
    int kv_type;        // -1: the profile's (or f16)
    bool json;
};

static int parse(int argc, char **argv, struct ppl_opts *o) {
    const char *C = "perplexity";
    o->n_ctx = 512;
    o->kv_type = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
#define VALUE() if (!(v = cli_value(C, argc, argv, &i))) return 2
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            VALUE();
            o->model = v;
        } else if (!strcmp(a, "--tokenizer")) {
            VALUE();
            o->tokenizer = v;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            VALUE();
            o->text = v;
        } else if (!strcmp(a, "--profile")) {
            VALUE();
            o->profile = v;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx") || !strcmp(a, "--ctx-size")) {
            VALUE();
            if (!cli_int(C, a, v, 4, 1 << 20, &o->n_ctx)) return 2;
        } else if (!strcmp(a, "--chunks")) {
            VALUE();
            if (!cli_int(C, a, v, 1, 1 << 30, &o->chunks)) return 2;
        } else if (!strcmp(a, "--save-logits")) {
            VALUE();
            o->save = v;
        } else if (!strcmp(a, "--kld-base")) {
            VALUE();
            o->base = v;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            VALUE();
            if (!cli_int(C, a, v, 1, 1024, &o->threads)) return 2;
        } else if (!strcmp(a, "--kv-type")) {
            VALUE();
            if ((o->kv_type = lb_kv_type_from_name(v)) < 0) {
                fprintf(stderr, "lowbit perplexity: --kv-type: '%s' (expected %s)\n", v, lb_kv_type_names());
                return 2;
            }
        } else if (!strcmp(a, "--json")) {
            o->json = true;
        } else {
            fprintf(stderr, "lowbit perplexity: unknown option '%s' (see lowbit perplexity --help)\n", a);
            return 2;
        }
#undef VALUE
    }
    if (!o->text) {
        fprintf(stderr, "lowbit perplexity: no text: pass -f TEXTFILE\n");
        return 2;
    }
    if (o->save && o->base) {
        fprintf(stderr, "lowbit perplexity: --save-logits and --kld-base exclude each other\n");
        return 2;
    }
    return -1;
}

static char *read_file(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "lowbit perplexity: %s: cannot open: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n, fp)) > 0;) {
        n += got;
        if (n == cap) {
            char *p = realloc(buf, 2 * cap + 1);
            if (!p) free(buf);
            buf = p;
            cap *= 2;
        }
    }
    fclose(fp);
    if (!buf) fprintf(stderr, "lowbit perplexity: %s: out of memory\n", path);
    else buf[n] = 0;
    *len = n;
    return buf;
}

// --- the logits file ------------------------------------------------------------

enum { HEADER_WORDS = 6 };
static const char MAGIC[8] = {'L', 'B', 'L', 'O', 'G', 'P', 'R', '1'};

static bool write_header(FILE *fp, uint32_t n_vocab, uint32_t n_ctx, uint32_t n_chunk, const int32_t *tokens) {
    uint32_t h[HEADER_WORDS] = {1, n_vocab, n_ctx, n_chunk, n_ctx / 2, 0};
    return fwrite(MAGIC, 1, 8, fp) == 8 && fwrite(h, sizeof h, 1, fp) == 1 &&
           fwrite(tokens, sizeof *tokens, (size_t)n_chunk * n_ctx, fp) == (size_t)n_chunk * n_ctx;
}

// Checks that the base was made from the same tokens with the same shape.
static bool check_header(FILE *fp, const char *path, uint32_t n_vocab, uint32_t n_ctx, uint32_t n_chunk,
                         const int32_t *tokens) {
    char magic[8];
    uint32_t h[HEADER_WORDS];
    if (fread(magic, 1, 8, fp) != 8 || memcmp(magic, MAGIC, 8) || fread(h, sizeof h, 1, fp) != 1 || h[0] != 1) {
        fprintf(stderr, "lowbit perplexity: %s: not a lowbit logits file (expected magic LBLOGPR1, version 1)\n",
                path);
        return false;
    }
    if (h[1] != n_vocab || h[2] != n_ctx || h[3] < n_chunk) {
        fprintf(stderr, "lowbit perplexity: %s: n_vocab %u, ctx %u, %u chunks (expected %u, %u, at least %u: "
                "the same text, --ctx and vocabulary)\n", path, h[1], h[2], h[3], n_vocab, n_ctx, n_chunk);
        return false;
    }
    size_t n = (size_t)h[3] * n_ctx;
    int32_t *base = malloc(n * sizeof *base);
    bool same = base && fread(base, sizeof *base, n, fp) == n &&
                !memcmp(base, tokens, (size_t)n_chunk * n_ctx * sizeof *base);
    free(base);
    if (!same) fprintf(stderr, "lowbit perplexity: %s: made from other tokens (expected the same text)\n", path);
    return same;
}

// --- scoring ----------------------------------------------------------------------

struct score {
    double nll, nll2;     // Σ NLL and Σ NLL² over scored tokens
    long count;
    float *kld;           // per scored token, for the percentile
    long n_same_top;
};

static double percentile(const float *sorted, long n, double fraction) {
    double p = fraction * (double)(n - 1);
    long ip = (long)p;
    p -= (double)ip;
    return (1 - p) * sorted[ip] + p * sorted[ip + 1 < n ? ip + 1 : n - 1];
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int cmd_perplexity(int argc, char **argv) {
    struct ppl_opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc >= 0) return rc;

    size_t text_len;
    char *text = read_file(o.text, &text_len);
    if (!text) return 1;
    char *path = cli_find_model("perplexity", o.model);
    lb_model *model = path ? cli_open_model(path, o.tokenizer) : NULL;
    free(path);
    lb_error err = {0};
    lb_profile *profile = NULL;
    lb_context *ctx = NULL;
    int32_t *tokens = NULL, *batch = NULL, *pos = NULL;
    bool *want = NULL;
    float *logits = NULL, *lp = NULL, *base_lp = NULL;
    FILE *save = NULL, *base = NULL;
    struct score sc = {0};
    rc = 1;
    if (!model) goto done;
    const lb_hparams *hp = lb_model_hparams(model);
    const int n_vocab = hp->n_vocab, n_ctx = (int)o.n_ctx, first = n_ctx / 2;

    lb_type kv_type = LB_TYPE_F16;
    if (o.profile) {
        if (lb_profile_find(&profile, o.profile, &err) != LB_OK ||
            lb_model_requantize_profile(model, profile, NULL, NULL, &err) != LB_OK) {
            fprintf(stderr, "lowbit perplexity: %s\n", err.msg);
            goto done;
        }
        kv_type = lb_profile_kv_type(profile);
    }
    if (o.kv_type >= 0) kv_type = (lb_type)o.kv_type;

    // Tokenize the whole text, as llama.cpp's common_tokenize(..., add_special=true).
    int n_tok = lb_tokenize(model, text, (int)text_len, hp->add_bos, false, NULL, 0);
    n_tok = n_tok < 0 ? -n_tok : n_tok;
    tokens = malloc((size_t)(n_tok + 1) * sizeof *tokens);
    if (!tokens) goto nomem;
    n_tok = lb_tokenize(model, text, (int)text_len, hp->add_bos, false, tokens, n_tok + 1);
    if (n_tok < 2 * n_ctx) {
        fprintf(stderr, "lowbit perplexity: %s has %d tokens; a context of %d needs at least %d\n", o.text, n_tok,
                n_ctx, 2 * n_ctx);
        goto done;
    }
    int n_chunk = n_tok / n_ctx;
    if (o.chunks && o.chunks < n_chunk) n_chunk = (int)o.chunks;
    const int n_scored = n_ctx - 1 - first; // per chunk

    lb_context_params cp = lb_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_threads = (int32_t)o.threads;
    cp.kv_type = kv_type;
    if (lb_context_new(&ctx, model, &cp, &err) != LB_OK) {
        fprintf(stderr, "lowbit perplexity: %s\n", err.msg);
        goto done;
    }
    batch = malloc((size_t)n_ctx * sizeof *batch);
    pos = malloc((size_t)n_ctx * sizeof *pos);
    want = malloc((size_t)n_ctx * sizeof *want);
    logits = malloc((size_t)n_scored * n_vocab * sizeof *logits);
    lp = malloc((size_t)n_vocab * sizeof *lp);
    base_lp = malloc((size_t)n_vocab * sizeof *base_lp);
    sc.kld = o.base ? malloc((size_t)n_chunk * n_scored * sizeof *sc.kld) : NULL;
    if (!batch || !pos || !want || !logits || !lp || !base_lp || (o.base && !sc.kld)) goto nomem;
    for (int j = 0; j < n_ctx; j++) {
        pos[j] = j;
        want[j] = j >= first && j < n_ctx - 1;
    }

    if (o.save) {
        if (!(save = fopen(o.save, "wb")) ||
            !write_header(save, (uint32_t)n_vocab, (uint32_t)n_ctx, (uint32_t)n_chunk, tokens)) {
            fprintf(stderr, "lowbit perplexity: %s: cannot write: %s\n", o.save, strerror(errno));
            goto done;
        }
    }
    if (o.base) {
        if (!(base = fopen(o.base, "rb"))) {
            fprintf(stderr, "lowbit perplexity: %s: cannot open: %s\n", o.base, strerror(errno));
            goto done;
        }
        // Leaves the file at the first row of log-probabilities.
        if (!check_header(base, o.base, (uint32_t)n_vocab, (uint32_t)n_ctx, (uint32_t)n_chunk, tokens)) goto done;
    }

    if (!o.json)
        fprintf(stderr, "lowbit perplexity: %d tokens, %d chunks of %d, scoring %d per chunk%s%s\n", n_tok,
                n_chunk, n_ctx, n_scored, profile ? ", profile " : "", profile ? lb_profile_name(profile) : "");
    const double t0 = lb_time_s();
    for (int c = 0; c < n_chunk; c++) {
        memcpy(batch, tokens + (size_t)c * n_ctx, (size_t)n_ctx * sizeof *batch);
        if (hp->add_bos) batch[0] = hp->bos_id;
        if (lb_kv_cache_truncate(ctx, 0, &err) != LB_OK ||
            lb_forward(ctx, batch, pos, n_ctx, want, logits, &err) != LB_OK) {
            fprintf(stderr, "lowbit perplexity: chunk %d: %s\n", c + 1, err.msg);
            goto done;
        }
        for (int j = 0; j < n_scored; j++) {
            const float *row = logits + (size_t)j * n_vocab;
            const int32_t next = tokens[(size_t)c * n_ctx + first + j + 1];
            lb_log_softmax(row, n_vocab, lp);
            const double nll = -(double)lp[next];
            sc.nll += nll;
            sc.nll2 += nll * nll;
            if (save && fwrite(lp, sizeof *lp, (size_t)n_vocab, save) != (size_t)n_vocab) {
                fprintf(stderr, "lowbit perplexity: %s: cannot write: %s\n", o.save, strerror(errno));
                goto done;
            }
            if (base) {
                if (fread(base_lp, sizeof *base_lp, (size_t)n_vocab, base) != (size_t)n_vocab) {
                    fprintf(stderr, "lowbit perplexity: %s: truncated (expected %d scored rows of %d floats "
                            "per chunk)\n", o.base, n_scored, n_vocab);
                    goto done;
                }
                sc.kld[sc.count] = (float)lb_kl_divergence(base_lp, lp, n_vocab);
                sc.n_same_top += lb_argmax(base_lp, n_vocab) == lb_argmax(row, n_vocab);
            }
            sc.count++;
        }
        if (!o.json) fprintf(stderr, "[%d]%.4f,", c + 1, exp(sc.nll / (double)sc.count));
    }
    if (!o.json) fprintf(stderr, "\n");
    if (save && fclose(save) != 0) {
        save = NULL;
        fprintf(stderr, "lowbit perplexity: %s: cannot write: %s\n", o.save, strerror(errno));
        goto done;
    }
    save = NULL;

    const double mean = sc.nll / (double)sc.count, ppl = exp(mean);
    const double var = sc.nll2 / (double)sc.count - mean * mean;
    const double ppl_err = var > 0 && sc.count > 1 ? ppl * sqrt(var / (double)(sc.count - 1)) : 0;
    double kld_mean = 0, kld_p99 = 0, top1 = 0;
    if (base) {
        for (long i = 0; i < sc.count; i++) kld_mean += sc.kld[i];
        kld_mean /= (double)sc.count;
        qsort(sc.kld, (size_t)sc.count, sizeof *sc.kld, cmp_float);
        kld_p99 = percentile(sc.kld, sc.count, 0.99);
        top1 = (double)sc.n_same_top / (double)sc.count;
    }
    if (o.json) {
        printf("{\"ppl\": %.6f, \"ppl_stderr\": %.6f, ", ppl, ppl_err);
        if (base)
            printf("\"kld_mean\": %.8f, \"kld_p99\": %.8f, \"top1_agreement\": %.6f, ", kld_mean, kld_p99, top1);
        else
            printf("\"kld_mean\": null, \"kld_p99\": null, \"top1_agreement\": null, ");
        printf("\"tokens\": %ld}\n", sc.count);
    } else {
        printf("Final estimate: PPL = %.4f +/- %.5f (%ld tokens scored, %.2f s)\n", ppl, ppl_err, sc.count,
               lb_time_s() - t0);
        if (base)
            printf("Mean KLD: %.6f, 99.0%% KLD: %.6f, same top-1: %.3f%%\n", kld_mean, kld_p99, 100.0 * top1);
    }
    rc = 0;
    goto done;
nomem:
    fprintf(stderr, "lowbit perplexity: out of memory\n");
done:
    if (save) fclose(save);
    if (base) fclose(base);
    free(sc.kld);
    free(base_lp);
    free(lp);
    free(logits);
    free(want);
    free(pos);
    free(batch);
    free(tokens);
    free(text);
    lb_context_free(ctx);
    lb_profile_free(profile);
    lb_model_free(model);
    return rc;
}
