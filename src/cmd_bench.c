/*
 * cmd_bench.c — `lowbit bench`: prompt processing (pp) and text generation
 * (tg) speed per profile, measured like llama-bench: pp evaluates P tokens
 * in one batch from an empty cache, tg generates N tokens one at a time from
 * an empty cache; each is repeated R times after one warm-up run. With -d D
 * the cache already holds D positions when each run starts (llama-bench's
 * --n-depth): decoding deep into a context, where attention reads D rows.
 */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { MAX_PROFILES = 32 };

static void usage(FILE *out) {
    fprintf(out,
            "usage: lowbit bench [-m MODEL] [--profile a,b,...] [-p 512] [-n 128] [-t N] [-r 5] [-d 0]\n"
            "                    [--kv-type T] [--membw] [--json]\n"
            "  --profile LIST   comma-separated: 'source' (the file as it is), a profile (q4_k_m, FILE.yaml ...)\n"
            "                   or a tensor type (f16, q8_0, q4_0, q2_k ...) to re-quantize the weights to\n"
            "  -p N             prompt tokens for pp (0 skips pp; default 512)\n"
            "  -n N             generated tokens for tg (0 skips tg; default 128)\n"
            "  -t N             threads (default: the machine's cores)\n"
            "  -r N             repetitions after one warm-up (default 5)\n"
            "  -d N             start each run with N positions already in the cache (default 0)\n"
            "  --kv-type T      KV cache elements: f16 (default), f32, q8_0, fp8; the KV bytes are reported\n"
            "  --membw          measure memory read bandwidth and report tg as a %% of its limit\n"
            "  --json           print a JSON list, one object per profile\n");
}

struct bench_result {
    const char *profile;
    double pp_tps, pp_std, tg_tps, tg_std;
    size_t size_bytes, bytes_per_token, peak_rss;
    double bpw;
};

static void mean_std(const double *x, int n, double *mean, double *std) {
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *std = n > 1 ? sqrt(ss / (n - 1)) : 0;
}

// Tokens per second of one pp or tg run from a cache of `depth` positions
// (filled once by fill_depth; rows past it are dropped before each run).
static bool run_once(lb_context *ctx, int depth, const int32_t *tokens, int n, bool batch, float *logits,
                     double *tps) {
    lb_error err = {0};
    if (lb_kv_cache_truncate(ctx, depth, &err) != LB_OK) return false;
    const double t0 = lb_time_s();
    if (batch) {
        if (lb_decode(ctx, tokens, n, logits, &err) != LB_OK) goto fail;
    } else {
        for (int i = 0; i < n; i++)
            if (lb_decode(ctx, &tokens[i], 1, logits, &err) != LB_OK) goto fail;
    }
    *tps = n / (lb_time_s() - t0);
    return true;
fail:
    fprintf(stderr, "lowbit bench: %s\n", err.msg);
    return false;
}

static bool measure(lb_context *ctx, int depth, const int32_t *tokens, int n, bool batch, int reps, float *logits,
                    double *mean, double *std) {
    double tps[64];
    if (!run_once(ctx, depth, tokens, n, batch, logits, &tps[0])) return false; // warm-up
    for (int r = 0; r < reps; r++)
        if (!run_once(ctx, depth, tokens, n, batch, logits, &tps[r])) return false;
    mean_std(tps, reps, mean, std);
    return true;
}

// The first `depth` positions of the cache, from the token list's tail (untimed).
static bool fill_depth(lb_context *ctx, const int32_t *tokens, int depth) {
    lb_error err = {0};
    if (lb_kv_cache_truncate(ctx, 0, &err) != LB_OK) return false;
    if (depth > 0 && lb_forward(ctx, tokens, NULL, depth, NULL, NULL, &err) != LB_OK) {
        fprintf(stderr, "lowbit bench: -d: %s\n", err.msg);
        return false;
    }
    return true;
}

static bool apply_profile(lb_model *m, const char *name) {
    return !strcmp(name, "source") || cli_apply_profile("bench --profile", m, name);
}

int cmd_bench(int argc, char **argv) {
    const char *C = "bench", *model_path = NULL;
    char *profile_list = NULL;
    long n_prompt = 512, n_gen = 128, threads = 0, reps = 5, depth = 0;
    bool json = false, membw = false;
    lb_type kv_type = LB_TYPE_F16;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(model_path = cli_value(C, argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--profile")) {
            if (!(v = cli_value(C, argc, argv, &i))) return 2;
            profile_list = strdup(v);
        } else if (!strcmp(a, "-p")) {
            if (!(v = cli_value(C, argc, argv, &i)) || !cli_int(C, a, v, 0, 1 << 16, &n_prompt)) return 2;
        } else if (!strcmp(a, "-n")) {
            if (!(v = cli_value(C, argc, argv, &i)) || !cli_int(C, a, v, 0, 1 << 16, &n_gen)) return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!(v = cli_value(C, argc, argv, &i)) || !cli_int(C, a, v, 1, 1024, &threads)) return 2;
        } else if (!strcmp(a, "-d") || !strcmp(a, "--n-depth")) {
            if (!(v = cli_value(C, argc, argv, &i)) || !cli_int(C, a, v, 0, 1 << 20, &depth)) return 2;
        } else if (!strcmp(a, "-r")) {
            if (!(v = cli_value(C, argc, argv, &i)) || !cli_int(C, a, v, 1, 64, &reps)) return 2;
        } else if (!strcmp(a, "--kv-type")) {
            if (!(v = cli_value(C, argc, argv, &i))) return 2;
            const int kv = lb_kv_type_from_name(v);
            if (kv < 0) {
                fprintf(stderr, "lowbit bench: --kv-type: '%s' (expected %s)\n", v, lb_kv_type_names());
                return 2;
            }
            kv_type = (lb_type)kv;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--membw")) {
            membw = true;
        } else {
            fprintf(stderr, "lowbit bench: unknown option '%s' (see lowbit bench --help)\n", a);
            return 2;
        }
    }
    const char *profiles[MAX_PROFILES];
    int n_profiles = 0;
    if (!profile_list) profile_list = strdup("source");
    for (char *save = NULL, *tok = strtok_r(profile_list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n_profiles == MAX_PROFILES) {
            fprintf(stderr, "lowbit bench: --profile: at most %d profiles\n", MAX_PROFILES);
            return 2;
        }
        profiles[n_profiles++] = tok;
    }

    if (threads == 0) threads = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
    char *path = cli_find_model(C, model_path);
    if (!path) return 1;
    lb_model *m = cli_open_model(path, NULL);
    if (!m) return 1;
    const lb_hparams *hp = lb_model_hparams(m);
    const int n_ctx = (int)depth + (int)(n_prompt > n_gen ? n_prompt : n_gen) + 1;
    lb_context_params cp = lb_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_threads = (int32_t)threads;
    cp.kv_type = kv_type;
    lb_context *ctx = NULL;
    lb_error err = {0};
    int rc = 1;
    struct bench_result res[MAX_PROFILES] = {{0}};
    float *logits = malloc(sizeof(float) * (size_t)hp->n_vocab);
    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)n_ctx);
    if (!logits || !tokens) goto done;
    uint64_t x = 88172645463325252ull; // xorshift: random tokens, as llama-bench uses
    for (int i = 0; i < n_ctx; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        tokens[i] = (int32_t)(x % (uint64_t)hp->n_vocab);
    }
    if (lb_context_new(&ctx, m, &cp, &err) != LB_OK) {
        fprintf(stderr, "lowbit bench: %s\n", err.msg);
        goto done;
    }

    for (int p = 0; p < n_profiles; p++) {
        struct bench_result *r = &res[p];
        r->profile = profiles[p];
        if (!apply_profile(m, profiles[p])) goto done;
        // The runs take tokens from the list's start, the depth its tail.
        if (!fill_depth(ctx, tokens + n_ctx - depth, (int)depth)) goto done;
        if (n_prompt > 0 &&
            !measure(ctx, (int)depth, tokens, (int)n_prompt, true, (int)reps, logits, &r->pp_tps, &r->pp_std))
            goto done;
        if (n_gen > 0 && !measure(ctx, (int)depth, tokens, (int)n_gen, false, (int)reps, logits, &r->tg_tps, &r->tg_std))
            goto done;
        r->size_bytes = lb_model_weight_bytes(m);
        r->bytes_per_token = lb_model_bytes_per_token(m);
        r->bpw = 8.0 * (double)r->size_bytes / (double)lb_model_n_params(m);
        r->peak_rss = lb_peak_rss_bytes();
        if (!json) fprintf(stderr, "lowbit bench: %s done\n", profiles[p]);
    }

    // Measured last: its 1 GiB buffer must not count in the profiles' peak RSS.
    const double bandwidth = membw ? lb_read_bandwidth((int)threads, (size_t)1 << 30) : 0;
    if (membw && bandwidth <= 0) {
        fprintf(stderr, "lowbit bench: --membw: could not measure the read bandwidth\n");
        goto done;
    }
    const size_t kv_bytes = lb_kv_cache_bytes_allocated(ctx);
    if (json) {
        printf("[");
        for (int p = 0; p < n_profiles; p++) {
            const struct bench_result *r = &res[p];
            printf("%s\n  {\"profile\": ", p ? "," : "");
            json_string(stdout, r->profile, strlen(r->profile));
            printf(", \"pp_tps\": %.3f, \"pp_std\": %.3f, \"tg_tps\": %.3f, \"tg_std\": %.3f, \"size_bytes\": %zu, "
                   "\"bpw\": %.4f, \"peak_rss_bytes\": %zu, \"threads\": %d, \"n_prompt\": %ld, \"n_gen\": %ld, "
                   "\"n_depth\": %ld, \"kv_type\": \"%s\", \"kv_bytes\": %zu",
                   r->pp_tps, r->pp_std, r->tg_tps, r->tg_std, r->size_bytes, r->bpw, r->peak_rss,
                   cp.n_threads, n_prompt, n_gen, depth, lb_type_name(kv_type), kv_bytes);
            if (membw)
                printf(", \"membw_bytes_per_s\": %.0f, \"tg_bandwidth_fraction\": %.4f", bandwidth,
                       r->tg_tps * (double)r->bytes_per_token / bandwidth);
            printf("}");
        }
        printf("\n]\n");
    } else {
        printf("| model | profile | size | bpw | threads | test | t/s |%s\n", membw ? " % of bw limit |" : "");
        printf("|---|---|---:|---:|---:|---|---:|%s\n", membw ? "---:|" : "");
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        char at[32] = ""; // " @ d512", as llama-bench names tests at a depth
        if (depth > 0) snprintf(at, sizeof at, " @ d%ld", depth);
        for (int p = 0; p < n_profiles; p++) {
            const struct bench_result *r = &res[p];
            if (n_prompt > 0)
                printf("| %s | %s | %.2f MiB | %.2f | %ld | pp%ld%s | %.2f ± %.2f |%s\n", base, r->profile,
                       r->size_bytes / 1048576.0, r->bpw, threads, n_prompt, at, r->pp_tps, r->pp_std,
                       membw ? " |" : "");
            if (n_gen > 0) {
                printf("| %s | %s | %.2f MiB | %.2f | %ld | tg%ld%s | %.2f ± %.2f |", base, r->profile,
                       r->size_bytes / 1048576.0, r->bpw, threads, n_gen, at, r->tg_tps, r->tg_std);
                if (membw) printf(" %.1f%% |", 100.0 * r->tg_tps * (double)r->bytes_per_token / bandwidth);
                printf("\n");
            }
        }
        if (membw) printf("\nread bandwidth: %.2f GB/s\n", bandwidth / 1e9);
        printf("peak RSS: %.1f MiB\n", res[n_profiles - 1].peak_rss / 1048576.0);
        printf("KV cache: %s, %.2f MiB for %d positions\n", lb_type_name(kv_type), kv_bytes / 1048576.0, n_ctx);
    }
    rc = 0;
done:
    lb_context_free(ctx);
    lb_model_free(m);
    free(logits);
    free(tokens);
    free(path);
    free(profile_list);
    return rc;
}
