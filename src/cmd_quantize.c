/*
 * cmd_quantize.c — `lowbit quantize`: write a GGUF file quantized by a
 * profile. The per-tensor table and the totals go to stdout; the progress
 * bar (only when stderr is a terminal) and errors to stderr.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: lowbit quantize -m IN.gguf|DIR --profile NAME|FILE -o OUT.gguf [options]\n"
            "  -m, --model FILE|DIR      input GGUF, or Hugging Face model directory, with F32, F16 or BF16 weights\n"
            "  -o, --output FILE         the quantized GGUF (written atomically; may be the input)\n"
            "      --profile NAME|FILE   q4_k_m, q8_0, ... or a profile .yaml (see lowbit-profile(5))\n"
            "  -t, --threads N           (default: the machine's cores)\n"
            "      --calib TEXTFILE      calibration text: required by profiles that look at activations\n"
            "                            (gptq, awq, llm-int8, importance: calibration); with any other\n"
            "                            profile the table adds each matrix's output error on it\n"
            "      --calib-samples N     chunks of the text to use (default: the profile's, else 128)\n"
            "      --calib-ctx N         tokens per chunk, BOS included (default: the profile's, else 512)\n"
            "      --imatrix FILE        quantize with this importance matrix (llama.cpp's imatrix, GGUF or .dat)\n"
            "      --imatrix-out FILE    save the importance matrix collected from --calib (llama.cpp's GGUF format)\n"
            "      --allow-requantize    quantize tensors that are already quantized (loses accuracy)\n"
            "  -q, --quiet               no per-tensor table, only the totals\n");
}

// A bar of 40 cells redrawn in place on stderr.
static bool progress_bar(float fraction, void *user) {
    (void)user;
    int cells = (int)(fraction * 40.0f + 0.5f);
    fprintf(stderr, "\r[%.*s%*s] %3d%%", cells, "########################################", 40 - cells, "",
            (int)(fraction * 100.0f + 0.5f));
    fflush(stderr);
    return true;
}

static void print_shape(char *buf, size_t cap, const lb_quantize_tensor *t) {
    size_t n = (size_t)snprintf(buf, cap, "%lld", (long long)t->ne[0]);
    for (int d = 1; d < t->n_dims && n < cap; d++) n += (size_t)snprintf(buf + n, cap - n, "x%lld", (long long)t->ne[d]);
}

int cmd_quantize(int argc, char **argv) {
    const char *C = "quantize", *in = NULL, *out = NULL, *profile_name = NULL, *calib = NULL;
    const char *calib_opt = NULL;  // the first --calib-* option given, for the message when --calib is not
    const char *imatrix = NULL, *imatrix_out = NULL;
    long threads = 0, calib_samples = 0, calib_ctx = 0;
    bool allow_requantize = false, quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(in = cli_value(C, argc, argv, &i))) return 2;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!(out = cli_value(C, argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--profile")) {
            if (!(profile_name = cli_value(C, argc, argv, &i))) return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            const char *v = cli_value(C, argc, argv, &i);
            if (!v || !cli_int(C, a, v, 1, 1024, &threads)) return 2;
        } else if (!strcmp(a, "--calib")) {
            if (!(calib = cli_value(C, argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--calib-samples")) {
            const char *v = cli_value(C, argc, argv, &i);
            if (!v || !cli_int(C, a, v, 1, 1000000, &calib_samples)) return 2;
            if (!calib_opt) calib_opt = a;
        } else if (!strcmp(a, "--calib-ctx")) {
            const char *v = cli_value(C, argc, argv, &i);
            if (!v || !cli_int(C, a, v, 2, 1 << 20, &calib_ctx)) return 2;
            if (!calib_opt) calib_opt = a;
        } else if (!strcmp(a, "--imatrix")) {
            if (!(imatrix = cli_value(C, argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--imatrix-out")) {
            if (!(imatrix_out = cli_value(C, argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--allow-requantize")) {
            allow_requantize = true;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = true;
        } else {
            fprintf(stderr, "lowbit quantize: unknown option '%s' (see lowbit quantize --help)\n", a);
            return 2;
        }
    }
    if (!in || !out || !profile_name) {
        fprintf(stderr, "lowbit quantize: %s is required (see lowbit quantize --help)\n",
                !in ? "-m IN.gguf|DIR" : !out ? "-o OUT.gguf" : "--profile NAME");
        return 2;
    }

    if (calib_opt && !calib) {
        fprintf(stderr, "lowbit quantize: %s needs --calib TEXTFILE\n", calib_opt);
        return 2;
    }

    lb_error err = {0};
    lb_profile *profile;
    if (lb_profile_find(&profile, profile_name, &err) != LB_OK) {
        fprintf(stderr, "lowbit quantize: %s\n", err.msg);
        return 1;
    }
    // (`importance: calibration` may take its importance from --imatrix instead;
    // the library refuses --imatrix where it does not stand in for the text.)
    if (lb_profile_needs_calibration(profile) && !calib && !imatrix) {
        fprintf(stderr, "lowbit quantize: profile '%s' (method %s) needs calibration text: pass --calib TEXTFILE "
                "(plain text of the kind the model will see; --calib-samples N and --calib-ctx N choose how much)\n",
                lb_profile_name(profile), lb_profile_method(profile));
        lb_profile_free(profile);
        return 2;
    }
    const bool tty = isatty(STDERR_FILENO);
    lb_quantize_params qp = {
        .profile = profile, .n_threads = (int32_t)threads, .allow_requantize = allow_requantize,
        .progress = tty ? progress_bar : NULL,
        .calib_path = calib, .calib_samples = (int32_t)calib_samples, .calib_ctx = (int32_t)calib_ctx,
        .imatrix = imatrix, .imatrix_out = imatrix_out,
    };
    lb_quantize_stats st;
    lb_status s = lb_quantize_file(in, out, &qp, &st, &err);
    if (tty) fprintf(stderr, "\r%50s\r", "");
    if (s != LB_OK) {
        fprintf(stderr, "lowbit quantize: %s\n", err.msg);
        lb_profile_free(profile);
        return 1;
    }

    // With calibration: the output error on it, and round-to-nearest's on the
    // same inputs where GPTQ made the tensor; "-" where not measured.
    const bool calibrated = st.calib_samples > 0;
    if (!quiet) {
        printf("%-32s %-14s %-5s    %-10s %7s %10s", "tensor", "shape", "from", "to", "bpw", "rel.err");
        if (calibrated) printf(" %10s %10s", "out.err", "rtn.out");
        printf("  %s\n", "rule");
        for (int i = 0; i < st.n_tensors; i++) {
            const lb_quantize_tensor *t = &st.tensors[i];
            char shape[64];
            print_shape(shape, sizeof shape, t);
            printf("%-32s %-14s %-5s -> %-10s %7.3f %10.3e", t->name, shape, lb_type_name(t->type_in),
                   lb_type_name(t->type_out), 8.0 * (double)t->bytes_out / (double)t->n_elements, t->rel_error);
            if (calibrated) {
                char o[16] = "-", r[16] = "-";
                if (t->out_error >= 0) snprintf(o, sizeof o, "%.3e", t->out_error);
                if (t->out_error_rtn >= 0) snprintf(r, sizeof r, "%.3e", t->out_error_rtn);
                printf(" %10s %10s", o, r);
            }
            // A fallback that GPTQ still made (at the fallback's grid) says both.
            if (t->method && t->fallback) printf("  %s (%s)\n", t->rule, t->method);
            else printf("  %s\n", t->method ? t->method : t->rule);
        }
    }
    if (calibrated)
        printf("calibration: %d samples of %d tokens from %s\n", st.calib_samples, st.calib_ctx, calib);
    printf("%s: profile %s (%s: %s), file type %d: %.2f MiB -> %.2f MiB, %.3f bits per weight, "
           "%d fallback tensor%s, %.2f s\n",
           out, lb_profile_name(profile), lb_profile_method(profile), lb_type_name(lb_profile_type(profile)),
           lb_profile_file_type(profile),
           (double)st.bytes_in / 1048576.0, (double)st.bytes_out / 1048576.0,
           8.0 * (double)st.bytes_out / (double)(st.n_elements ? st.n_elements : 1), st.n_fallback,
           st.n_fallback == 1 ? "" : "s", st.seconds);
    lb_quantize_stats_free(&st);
    lb_profile_free(profile);
    return 0;
}
