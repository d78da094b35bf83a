/*
 * cmd_run.c — `lowbit run`: complete a prompt. The completion streams to
 * stdout as it is generated; everything else goes to stderr. With --json
 * nothing streams and stdout is one JSON object.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAX_STOPS = 16 };

static void usage(FILE *out) {
    fprintf(out,
            "usage: lowbit run [-m MODEL] -p PROMPT [options]\n"
            "  -m, --model FILE          GGUF, HF directory or llama2.c .bin (default: $LOWBIT_MODEL, then the newest\n"
            "                            .gguf in $XDG_DATA_HOME/lowbit/models)\n"
            "      --tokenizer FILE      tokenizer.bin for llama2.c checkpoints (default: beside the model)\n"
            "  -p, --prompt TEXT         the prompt\n"
            "  -n, --n-predict N         tokens to generate (default 128)\n"
            "  -c, --ctx-size N          context size (default: prompt + n, at most the trained length)\n"
            "      --temp T              temperature, 0 = greedy (default 0.8)\n"
            "      --top-k K             (default 40, 0 = off)\n"
            "      --top-p P             (default 0.95, 1 = off)\n"
            "      --min-p P             (default 0.05, 0 = off)\n"
            "      --repeat-penalty R    (default 1.0 = off)\n"
            "      --repeat-last-n N     penalty window (default 64, -1 = everything)\n"
            "      --presence-penalty X  (default 0)\n"
            "      --frequency-penalty X (default 0)\n"
            "      --seed S              (default: from the clock, printed to stderr)\n"
            "      --stop STR            stop before STR (repeatable)\n"
            "      --ignore-eos          keep generating past end-of-generation tokens\n"
            "      --kv-type T           KV cache elements: f16 (default, or the profile's), f32, q8_0, fp8\n"
            "      --profile NAME|FILE   quantize the weights at load time (see lowbit-profile(5))\n"
            "  -t, --threads N           (default: the machine's cores)\n"
            "      --json                print one JSON object instead of streaming\n"
            "speculative decoding (output distribution unchanged; greedy output identical):\n"
            "      --draft FILE          draft model with the same vocabulary\n"
            "      --draft-tokenizer FILE  tokenizer.bin for a llama2.c draft (default: --tokenizer, then\n"
            "                            beside the draft)\n"
            "      --draft-profile NAME  quantize the draft (default: the model itself) with a profile\n"
            "                            or tensor type: q8_0, q4_0, q4_k, q2_k ... (self-speculation)\n"
            "      --draft-max K         most tokens drafted per step (default 8)\n"
            "      --draft-fixed         always draft K tokens (default: adapt K to the acceptance)\n"
            "      --draft-min-p P       stop drafting below draft probability P (default 0 = off)\n");
}

struct run_opts {
    const char *model, *tokenizer, *prompt, *profile;
    long n_predict, n_ctx, threads;
    lb_sampler_params sp;
    bool seed_given, json, ignore_eos, kv_type_given;
    lb_type kv_type;
    const char *stops[MAX_STOPS];
    int n_stops;
    const char *draft, *draft_profile;  // speculative decoding when either is given
    const char *draft_tokenizer;
    lb_speculative_params spec;
};

static int parse(int argc, char **argv, struct run_opts *o) {
    const char *C = "run";
    o->n_predict = 128;
    o->kv_type = LB_TYPE_F16;
    o->sp = lb_sampler_default_params();
    o->spec = lb_speculative_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        double f;
        long n;
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
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            VALUE();
            o->prompt = v;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            VALUE();
            if (!cli_int(C, a, v, 0, 1 << 24, &o->n_predict)) return 2;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            VALUE();
            if (!cli_int(C, a, v, 1, 1 << 24, &o->n_ctx)) return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            VALUE();
            if (!cli_int(C, a, v, 1, 1024, &o->threads)) return 2;
        } else if (!strcmp(a, "--temp")) {
            VALUE();
            if (!cli_float(C, a, v, 0, 100, &f)) return 2;
            o->sp.temp = (float)f;
        } else if (!strcmp(a, "--top-k")) {
            VALUE();
            if (!cli_int(C, a, v, 0, 1 << 24, &n)) return 2;
            o->sp.top_k = (int32_t)n;
        } else if (!strcmp(a, "--top-p")) {
            VALUE();
            if (!cli_float(C, a, v, 0, 1, &f)) return 2;
            o->sp.top_p = (float)f;
        } else if (!strcmp(a, "--min-p")) {
            VALUE();
            if (!cli_float(C, a, v, 0, 1, &f)) return 2;
            o->sp.min_p = (float)f;
        } else if (!strcmp(a, "--repeat-penalty")) {
            VALUE();
            if (!cli_float(C, a, v, 0.01, 100, &f)) return 2;
            o->sp.repeat_penalty = (float)f;
        } else if (!strcmp(a, "--repeat-last-n")) {
            VALUE();
            if (!cli_int(C, a, v, -1, 1 << 24, &n)) return 2;
            o->sp.repeat_last_n = (int32_t)n;
        } else if (!strcmp(a, "--presence-penalty")) {
            VALUE();
            if (!cli_float(C, a, v, -100, 100, &f)) return 2;
            o->sp.presence_penalty = (float)f;
        } else if (!strcmp(a, "--frequency-penalty")) {
            VALUE();
            if (!cli_float(C, a, v, -100, 100, &f)) return 2;
            o->sp.frequency_penalty = (float)f;
        } else if (!strcmp(a, "--seed")) {
            VALUE();
            char *end;
            unsigned long long s = strtoull(v, &end, 10);
            if (end == v || *end || *v == '-') {
                fprintf(stderr, "lowbit run: --seed: '%s' is not a non-negative integer\n", v);
                return 2;
            }
            o->sp.seed = s;
            o->seed_given = true;
        } else if (!strcmp(a, "--stop")) {
            VALUE();
            if (o->n_stops == MAX_STOPS || !*v) {
                fprintf(stderr, "lowbit run: --stop: at most %d non-empty stop strings\n", MAX_STOPS);
                return 2;
            }
            o->stops[o->n_stops++] = v;
        } else if (!strcmp(a, "--kv-type")) {
            VALUE();
            o->kv_type_given = true;
            const int kv = lb_kv_type_from_name(v);
            if (kv < 0) {
                fprintf(stderr, "lowbit run: --kv-type: '%s' (expected %s)\n", v, lb_kv_type_names());
                return 2;
            }
            o->kv_type = (lb_type)kv;
        } else if (!strcmp(a, "--draft")) {
            VALUE();
            o->draft = v;
        } else if (!strcmp(a, "--draft-tokenizer")) {
            VALUE();
            o->draft_tokenizer = v;
        } else if (!strcmp(a, "--draft-profile")) {
            VALUE();
            o->draft_profile = v;
        } else if (!strcmp(a, "--draft-max")) {
            VALUE();
            if (!cli_int(C, a, v, 0, LB_SPECULATIVE_MAX_DRAFT, &n)) return 2;
            o->spec.draft_max = (int32_t)n;
        } else if (!strcmp(a, "--draft-fixed")) {
            o->spec.adaptive = false;
        } else if (!strcmp(a, "--draft-min-p")) {
            VALUE();
            if (!cli_float(C, a, v, 0, 1, &f)) return 2;
            o->spec.draft_min_p = (float)f;
        } else if (!strcmp(a, "--profile")) {
            VALUE();
            o->profile = v;
        } else if (!strcmp(a, "--json")) {
            o->json = true;
        } else if (!strcmp(a, "--ignore-eos")) {
            o->ignore_eos = true;
        } else {
            fprintf(stderr, "lowbit run: unknown option '%s' (see lowbit run --help)\n", a);
            return 2;
        }
#undef VALUE
    }
    if (!o->prompt) {
        fprintf(stderr, "lowbit run: no prompt: pass -p TEXT\n");
        return 2;
    }
    if (!o->seed_given) o->sp.seed = (uint64_t)time(NULL);
    return -1;
}

// --- output with stop strings ---------------------------------------------------
// Generated text is kept whole; what may still become a stop string is held
// back from the stream until it can no longer match.

struct output {
    char *text;
    size_t len, cap, emitted;
    bool stream;
};

static bool output_append(struct output *o, const char *s, size_t n) {
    if (o->len + n + 1 > o->cap) {
        size_t cap = (o->len + n + 1) * 2;
        char *p = realloc(o->text, cap);
        if (!p) return false;
        o->text = p;
        o->cap = cap;
    }
    memcpy(o->text + o->len, s, n);
    o->len += n;
    o->text[o->len] = 0;
    return true;
}

// Returns true when a stop string was found (the text is cut before it).
static bool output_flush(struct output *o, const struct run_opts *opt, bool final) {
    size_t safe = o->len;
    bool stopped = false;
    // Text before `emitted` holds no stop string and no start of one (that
    // would have been held back), so only the tail is searched: each token
    // costs O(tail), not O(whole answer).
    for (int i = 0; i < opt->n_stops; i++) {
        const char *hit = strstr(o->text + o->emitted, opt->stops[i]);
        if (hit && (size_t)(hit - o->text) < safe) {
            safe = (size_t)(hit - o->text);
            stopped = true;
        }
    }
    if (stopped) {
        o->len = safe;
        o->text[safe] = 0;
    } else if (!final) {
        // Hold back the longest tail that is a prefix of some stop string.
        for (int i = 0; i < opt->n_stops; i++) {
            size_t sl = strlen(opt->stops[i]);
            for (size_t k = sl - 1; k > 0; k--)
                if (k <= o->len && !memcmp(o->text + o->len - k, opt->stops[i], k)) {
                    if (o->len - k < safe) safe = o->len - k;
                    break;
                }
        }
    }
    if (o->stream && safe > o->emitted) {
        fwrite(o->text + o->emitted, 1, safe - o->emitted, stdout);
        fflush(stdout);
    }
    if (safe > o->emitted) o->emitted = safe;
    return stopped;
}

// --- speculative decoding --------------------------------------------------------

// The draft: --draft FILE, else the model's own file; re-quantized when
// --draft-profile names a profile (lb_profile_find) or a tensor type. A
// llama2.c draft reads --draft-tokenizer, else the target's --tokenizer (the
// vocabularies must be the same), else tokenizer.bin beside it.
static lb_model *open_draft(const struct run_opts *o, const lb_model *target) {
    const char *tok = o->draft && o->draft_tokenizer ? o->draft_tokenizer : o->tokenizer;
    lb_model *d = cli_open_model(o->draft ? o->draft : lb_model_path(target), tok);
    if (!d || !o->draft_profile) return d;
    if (!cli_apply_profile("run --draft-profile", d, o->draft_profile)) {
        lb_model_free(d);
        return NULL;
    }
    return d;
}

// Plain decoding speed of the target over the first tokens just generated
// (at most 64), for the speedup figure: the cache is cut back to the prompt.
static double plain_decode_tps(lb_context *ctx, int n_prompt, const int32_t *gen, int n_gen) {
    const int m = n_gen < 64 ? n_gen : 64;
    if (m == 0 || lb_kv_cache_truncate(ctx, n_prompt, NULL) != LB_OK) return 0;
    const lb_hparams *hp = lb_model_hparams(lb_context_model(ctx));
    float *logits = malloc((size_t)hp->n_vocab * sizeof *logits);
    if (!logits) return 0;
    double t = lb_time_s();
    for (int i = 0; i < m; i++)
        if (lb_decode(ctx, &gen[i], 1, logits, NULL) != LB_OK) break;
    t = lb_time_s() - t;
    free(logits);
    return t > 0 ? m / t : 0;
}

// Generate with a draft, then print as the plain path does plus the
// speculative statistics. Returns the exit status.
static int run_speculative(const struct run_opts *o, lb_model *model, lb_context *ctx, const lb_context_params *cp,
                           const int32_t *ids, int n_prompt, double load_s, struct output *out, int32_t *gen) {
    lb_error err = {0};
    lb_context *dctx = NULL;
    lb_speculative *spec = NULL;
    int rc = 1, n_gen = 0;
    double t0 = lb_time_s();
    lb_model *draft = open_draft(o, model);
    if (!draft) return 1;
    const double draft_load_s = lb_time_s() - t0;
    if (lb_context_new(&dctx, draft, cp, &err) != LB_OK ||
        lb_speculative_new(&spec, ctx, dctx, &o->sp, &o->spec, &err) != LB_OK) {
        fprintf(stderr, "lowbit run: %s\n", err.msg);
        goto done;
    }
    if (!o->seed_given) fprintf(stderr, "lowbit run: seed %llu\n", (unsigned long long)o->sp.seed);
    double tp = lb_time_s();
    if (lb_speculative_feed(spec, ids, n_prompt, &err) != LB_OK) {
        fprintf(stderr, "lowbit run: %s\n", err.msg);
        goto done;
    }
    const double prefill_s = lb_time_s() - tp;

    const long limit = o->n_predict < cp->n_ctx - n_prompt ? o->n_predict : cp->n_ctx - n_prompt;
    int32_t prev = ids[n_prompt - 1];
    bool stopped = false;
    while (n_gen < limit && !stopped) {
        int32_t toks[LB_SPECULATIVE_MAX_DRAFT + 1];
        int n = 0;
        if (lb_speculative_step(spec, toks, (int)(limit - n_gen), &n, &err) != LB_OK) {
            fprintf(stderr, "lowbit run: %s\n", err.msg);
            goto done;
        }
        for (int i = 0; i < n && !stopped; i++) {
            if (!o->ignore_eos && lb_token_is_eog(model, toks[i])) {
                stopped = true;
                break;
            }
            gen[n_gen++] = toks[i];
            char piece[256];
            int len = lb_token_decode(model, prev, toks[i], piece, sizeof piece);
            if (len > 0 && !output_append(out, piece, (size_t)len)) goto done;
            prev = toks[i];
            stopped = output_flush(out, o, false);
        }
    }
    output_flush(out, o, true);
    const lb_speculative_stats st = lb_speculative_get_stats(spec);
    lb_speculative_free(spec);
    spec = NULL;
    const double plain_tps = plain_decode_tps(ctx, n_prompt, gen, n_gen);
    const double prefill_tps = prefill_s > 0 ? n_prompt / prefill_s : 0;
    const double decode_tps = st.step_s > 0 ? st.n_generated / st.step_s : 0;
    const double acceptance = st.n_drafted ? (double)st.n_accepted / (double)st.n_drafted : 0;
    const double mean_accepted = st.n_steps ? (double)st.n_accepted / (double)st.n_steps : 0;
    const double speedup = plain_tps > 0 ? decode_tps / plain_tps : 0;

    if (o->json) {
        printf("{\"text\": ");
        json_string(stdout, out->text ? out->text : "", out->len);
        printf(", \"ids\": [");
        for (int i = 0; i < n_gen; i++) printf("%s%d", i ? ", " : "", gen[i]);
        printf("], \"prompt_tokens\": %d, \"gen_tokens\": %d, \"prefill_tps\": %.3f, \"decode_tps\": %.3f, "
               "\"load_s\": %.4f, \"peak_rss_bytes\": %zu, \"seed\": %llu, \"speculative\": {\"draft\": ",
               n_prompt, n_gen, prefill_tps, decode_tps, load_s, lb_peak_rss_bytes(), (unsigned long long)o->sp.seed);
        const char *dpath = lb_model_path(draft);
        json_string(stdout, dpath, strlen(dpath));
        printf(", \"draft_profile\": ");
        if (o->draft_profile) json_string(stdout, o->draft_profile, strlen(o->draft_profile));
        else printf("null");
        printf(", \"draft_load_s\": %.4f, \"draft_max\": %d, \"adaptive\": %s, \"draft_min_p\": %g, "
               "\"steps\": %lld, \"drafted\": %lld, \"accepted\": %lld, \"generated\": %lld, "
               "\"acceptance_rate\": %.4f, \"mean_accepted\": %.3f, \"tokens_per_step\": %.3f, "
               "\"draft_s\": %.4f, \"target_s\": %.4f, \"plain_decode_tps\": %.3f, \"speedup\": %.3f}}\n",
               draft_load_s, (int)o->spec.draft_max, o->spec.adaptive ? "true" : "false",
               (double)o->spec.draft_min_p, (long long)st.n_steps, (long long)st.n_drafted,
               (long long)st.n_accepted, (long long)st.n_generated, acceptance, mean_accepted,
               st.n_steps ? (double)st.n_generated / (double)st.n_steps : 0.0, st.draft_s, st.target_s, plain_tps,
               speedup);
    } else {
        printf("\n");
        fflush(stdout);
        fprintf(stderr, "lowbit run: load %.2f s + draft %.2f s; prompt %d tokens, %.1f tok/s; generated %d tokens, "
                "%.1f tok/s; peak RSS %.1f MiB\n", load_s, draft_load_s, n_prompt, prefill_tps, n_gen, decode_tps,
                lb_peak_rss_bytes() / 1048576.0);
        fprintf(stderr, "lowbit run: speculative: %lld drafted, %lld accepted (acceptance %.1f%%), mean accepted "
                "length %.2f, %.2f tokens per target pass; draft %.2f s, target %.2f s; plain decoding "
                "%.1f tok/s, speedup %.2fx\n", (long long)st.n_drafted, (long long)st.n_accepted,
                100.0 * acceptance, mean_accepted, st.n_steps ? (double)st.n_generated / (double)st.n_steps : 0.0,
                st.draft_s, st.target_s, plain_tps, speedup);
    }
    rc = 0;
done:
    lb_speculative_free(spec);
    lb_context_free(dctx);
    lb_model_free(draft);
    return rc;
}

// --- the run ------------------------------------------------------------------

int cmd_run(int argc, char **argv) {
    struct run_opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc >= 0) return rc;

    char *path = cli_find_model("run", o.model);
    if (!path) return 1;
    double t0 = lb_time_s();
    lb_model *model = cli_open_model(path, o.tokenizer);
    free(path);
    if (!model) return 1;
    if (o.profile) {
        // Quantize at load time; the profile also sets the KV cache type unless --kv-type did.
        lb_error perr = {0};
        lb_profile *profile = NULL;
        if (lb_profile_find(&profile, o.profile, &perr) != LB_OK ||
            lb_model_requantize_profile(model, profile, NULL, NULL, &perr) != LB_OK) {
            fprintf(stderr, "lowbit run: %s\n", perr.msg);
            lb_profile_free(profile);
            lb_model_free(model);
            return 1;
        }
        if (!o.kv_type_given) o.kv_type = lb_profile_kv_type(profile);
        lb_profile_free(profile);
    }
    const double load_s = lb_time_s() - t0;
    const lb_hparams *hp = lb_model_hparams(model);

    lb_error err = {0};
    lb_context *ctx = NULL;
    lb_sampler *smp = NULL;
    float *logits = NULL;
    int32_t *ids = NULL, *gen = NULL;
    struct output out = {.stream = !o.json};
    rc = 1;

    int n_prompt = lb_tokenize(model, o.prompt, -1, hp->add_bos, false, NULL, 0);
    n_prompt = n_prompt < 0 ? -n_prompt : n_prompt;
    ids = malloc((size_t)(n_prompt + 1) * sizeof *ids);
    if (!ids) goto done;
    n_prompt = lb_tokenize(model, o.prompt, -1, hp->add_bos, false, ids, n_prompt + 1);
    if (n_prompt <= 0) {
        fprintf(stderr, "lowbit run: the prompt has no tokens\n");
        goto done;
    }

    lb_context_params cp = lb_context_default_params();
    long want_ctx = o.n_ctx ? o.n_ctx : n_prompt + o.n_predict;
    if (!o.n_ctx && want_ctx > hp->n_ctx_train) want_ctx = hp->n_ctx_train;
    if (n_prompt >= want_ctx) {
        fprintf(stderr, "lowbit run: the prompt has %d tokens but the context holds %ld\n", n_prompt, want_ctx);
        goto done;
    }
    cp.n_ctx = (int32_t)want_ctx;
    cp.n_threads = (int32_t)o.threads;
    cp.kv_type = o.kv_type;
    if (lb_context_new(&ctx, model, &cp, &err) != LB_OK || lb_sampler_new(&smp, &o.sp, hp->n_vocab, &err) != LB_OK) {
        fprintf(stderr, "lowbit run: %s\n", err.msg);
        goto done;
    }
    logits = malloc((size_t)hp->n_vocab * sizeof *logits);
    gen = malloc((size_t)(o.n_predict + 1) * sizeof *gen);
    if (!logits || !gen) goto done;
    if (o.draft || o.draft_profile) {
        rc = run_speculative(&o, model, ctx, &cp, ids, n_prompt, load_s, &out, gen);
        goto done;
    }
    if (!o.seed_given) fprintf(stderr, "lowbit run: seed %llu\n", (unsigned long long)o.sp.seed);

    for (int i = 0; i < n_prompt; i++) lb_sampler_accept(smp, ids[i]);
    double tp = lb_time_s();
    if (lb_decode(ctx, ids, n_prompt, logits, &err) != LB_OK) {
        fprintf(stderr, "lowbit run: %s\n", err.msg);
        goto done;
    }
    const double prefill_s = lb_time_s() - tp;

    int n_gen = 0, n_decoded = 0;
    int32_t prev = ids[n_prompt - 1];
    double decode_s = 0;
    const long limit = o.n_predict < cp.n_ctx - n_prompt ? o.n_predict : cp.n_ctx - n_prompt;
    bool stopped = false;
    while (n_gen < limit && !stopped) {
        int32_t tok = lb_sampler_sample(smp, logits);
        if (!o.ignore_eos && lb_token_is_eog(model, tok)) break;
        gen[n_gen++] = tok;
        lb_sampler_accept(smp, tok);
        char piece[256];
        int n = lb_token_decode(model, prev, tok, piece, sizeof piece);
        if (n > 0 && !output_append(&out, piece, (size_t)n)) goto done;
        prev = tok;
        if (output_flush(&out, &o, false)) break;
        if (n_gen == limit) break;
        double td = lb_time_s();
        if (lb_decode(ctx, &tok, 1, logits, &err) != LB_OK) {
            fprintf(stderr, "lowbit run: %s\n", err.msg);
            goto done;
        }
        decode_s += lb_time_s() - td;
        n_decoded++;
    }
    output_flush(&out, &o, true);
    const double prefill_tps = prefill_s > 0 ? n_prompt / prefill_s : 0;
    const double decode_tps = decode_s > 0 ? n_decoded / decode_s : 0;

    if (o.json) {
        printf("{\"text\": ");
        json_string(stdout, out.text ? out.text : "", out.len);
        printf(", \"ids\": [");
        for (int i = 0; i < n_gen; i++) printf("%s%d", i ? ", " : "", gen[i]);
        printf("], \"prompt_tokens\": %d, \"gen_tokens\": %d, \"prefill_tps\": %.3f, \"decode_tps\": %.3f, "
               "\"load_s\": %.4f, \"peak_rss_bytes\": %zu, \"seed\": %llu}\n",
               n_prompt, n_gen, prefill_tps, decode_tps, load_s, lb_peak_rss_bytes(),
               (unsigned long long)o.sp.seed);
    } else {
        printf("\n");
        fflush(stdout);
        fprintf(stderr, "lowbit run: load %.2f s; prompt %d tokens, %.1f tok/s; generated %d tokens, %.1f tok/s; "
                "peak RSS %.1f MiB\n", load_s, n_prompt, prefill_tps, n_gen, decode_tps,
                lb_peak_rss_bytes() / 1048576.0);
    }
    rc = 0;
done:
    free(out.text);
    free(gen);
    free(ids);
    free(logits);
    lb_sampler_free(smp);
    lb_context_free(ctx);
    lb_model_free(model);
    return rc;
}
