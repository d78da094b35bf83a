/*
 * cmd_info.c — `lowbit info MODEL`: what a model file holds.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out, "usage: lowbit info [-m] MODEL [--tokenizer FILE] [--no-tensors] [--no-meta]\n"
                 "  Architecture, hyperparameters, tokenizer, metadata, every tensor's type and shape,\n"
                 "  total size and bits per weight.\n");
}

static void print_size(size_t bytes) {
    if (bytes >= (size_t)1 << 30) printf("%.2f GiB", bytes / 1073741824.0);
    else if (bytes >= (size_t)1 << 20) printf("%.2f MiB", bytes / 1048576.0);
    else printf("%.1f KiB", bytes / 1024.0);
}

int cmd_info(int argc, char **argv) {
    const char *model_path = NULL, *tokenizer = NULL;
    bool tensors = true, meta = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) {
            if (!(model_path = cli_value("info", argc, argv, &i))) return 2;
        } else if (!strcmp(argv[i], "--tokenizer")) {
            if (!(tokenizer = cli_value("info", argc, argv, &i))) return 2;
        } else if (!strcmp(argv[i], "--no-tensors")) {
            tensors = false;
        } else if (!strcmp(argv[i], "--no-meta")) {
            meta = false;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "lowbit info: unknown option '%s'\n", argv[i]);
            return 2;
        } else {
            model_path = argv[i];
        }
    }
    char *path = cli_find_model("info", model_path);
    if (!path) return 1;
    lb_model *m = cli_open_model(path, tokenizer);
    if (!m) {
        free(path);
        return 1;
    }
    const lb_hparams *hp = lb_model_hparams(m);
    printf("file:            %s (%s)\n", path, hp->format);
    printf("architecture:    %s\n", hp->arch);
    printf("vocabulary:      %d tokens (%s tokenizer; bos %d, eos %d, eot %d; %s BOS)\n", hp->n_vocab,
           lb_tokenizer_kind(m), hp->bos_id, hp->eos_id, hp->eot_id, hp->add_bos ? "adds" : "no");
    printf("embedding:       %d\n", hp->n_embd);
    printf("layers:          %d\n", hp->n_layer);
    printf("heads:           %d (kv heads %d%s), head dim %d\n", hp->n_head, hp->n_head_kv,
           hp->n_head_kv < hp->n_head ? ", grouped-query attention" : "", hp->head_dim);
    printf("feed-forward:    %d\n", hp->n_ff);
    printf("context:         %d (trained)\n", hp->n_ctx_train);
    printf("rope:            %s, %d dims, base %g, linear scale %g\n",
           hp->rope_style == LB_ROPE_NEOX ? "neox" : "normal", hp->n_rot, hp->rope_base, hp->rope_scale);
    printf("rms epsilon:     %g\n", hp->rms_eps);
    printf("output head:     %s%s\n", hp->tied_output ? "tied to token embeddings" : "separate",
           hp->has_qkv_bias ? "; q/k/v biases" : "");

    if (meta && lb_model_n_meta(m) > 0) {
        printf("\nmetadata (%d keys):\n", lb_model_n_meta(m));
        for (int i = 0; i < lb_model_n_meta(m); i++) {
            char key[256], value[200];
            if (lb_model_meta(m, i, key, sizeof key, value, sizeof value)) printf("  %-40s %s\n", key, value);
        }
    }

    size_t total = 0;
    int64_t params = 0;
    bool own[LB_TYPE_COUNT] = {false}; // lowbit's own types the file holds
    if (tensors) printf("\ntensors (%d):\n", lb_model_n_tensors(m));
    for (int i = 0; i < lb_model_n_tensors(m); i++) {
        lb_tensor_info t;
        if (!lb_model_tensor(m, i, &t)) continue;
        total += t.nbytes;
        if ((unsigned)t.type < LB_TYPE_COUNT && lb_type_description(t.type)) own[t.type] = true;
        int64_t n = t.ne[0] * t.ne[1] * t.ne[2] * t.ne[3];
        params += n;
        if (!tensors) continue;
        char shape[96];
        int k = snprintf(shape, sizeof shape, "[%lld", (long long)t.ne[0]);
        for (int d = 1; d < t.n_dims; d++) k += snprintf(shape + k, sizeof shape - (size_t)k, ", %lld", (long long)t.ne[d]);
        snprintf(shape + k, sizeof shape - (size_t)k, "]");
        printf("  %-32s %-5s %-20s %10zu bytes  %.2f bpw\n", t.name, lb_type_name(t.type), shape, t.nbytes,
               n ? 8.0 * (double)t.nbytes / (double)n : 0.0);
    }
    printf("\ntotal:           %lld parameters, ", (long long)params);
    print_size(total);
    printf(", %.3f bits per weight\n", params ? 8.0 * (double)total / (double)params : 0.0);
    bool header = false;
    for (int t = 0; t < LB_TYPE_COUNT; t++) {
        if (!own[t]) continue;
        if (!header) printf("\nlowbit's own types (not ggml types: llama.cpp and other GGUF readers refuse this file):\n");
        header = true;
        printf("  %-4d %-5s %s\n", t, lb_type_name((lb_type)t), lb_type_description((lb_type)t));
    }
    lb_model_free(m);
    free(path);
    return 0;
}
