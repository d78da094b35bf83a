/*
 * tok_dump — drive the tokenizer from the command line (for tests/test_tokenizer_py.py).
 *
 *   tok_dump VOCAB [--llama2c-vocab N] [--no-bos] [--special] < text
 *       print the ids of stdin's bytes, space-separated, on one line
 *   tok_dump VOCAB ... --nul < strings
 *       stdin holds strings each ended by a NUL byte; one line of ids per string
 *   tok_dump VOCAB ... --decode [IDS...]
 *       print the text of the ids (each decoded after the one before it; the
 *       first after -1). Without IDS, stdin has one line of ids per sequence
 *       and each sequence's text is printed followed by a NUL byte.
 *   tok_dump VOCAB ... --info
 *       kind, vocabulary size and the special ids
 *
 * VOCAB is a GGUF file, a Hugging Face model directory (its tokenizer.json), or
 * a llama2.c tokenizer.bin (then --llama2c-vocab N gives the vocabulary size,
 * default 32000).
 */
#include "gguf.h"
#include "hf.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_all(FILE *fp, size_t *size) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (got == 0)
            break;
        if (n == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb)
                free(buf);
            buf = nb;
        }
    }
    *size = n;
    return buf;
}

static int print_ids(const struct lb_tokenizer *t, const char *text, size_t len, bool bos, bool special) {
    int n = tokenizer_encode(t, text, len, bos, special, NULL, 0);
    if (n == 0 && (len > 0 || bos))
        n = -1; // need at least room for a retry to tell an empty result from out of memory
    int32_t *ids = malloc(sizeof *ids * (size_t)(n < 0 ? -n : 1));
    if (!ids)
        return 1;
    n = n < 0 ? tokenizer_encode(t, text, len, bos, special, ids, -n) : 0;
    for (int i = 0; i < n; i++)
        printf(i ? " %d" : "%d", ids[i]);
    putchar('\n');
    free(ids);
    return n < 0;
}

// Decode a sequence and write its bytes to stdout.
static void print_text(const struct lb_tokenizer *t, const int32_t *ids, int n) {
    char buf[256];
    int32_t prev = -1;
    for (int i = 0; i < n; i++) {
        int k = tokenizer_decode(t, prev, ids[i], buf, sizeof buf);
        if (k < 0) {
            char *big = malloc((size_t)-k);
            if (big && tokenizer_decode(t, prev, ids[i], big, -k) >= 0)
                fwrite(big, 1, (size_t)(-k - 1), stdout);
            free(big);
        } else {
            fwrite(buf, 1, (size_t)k, stdout);
        }
        prev = ids[i];
    }
}

int main(int argc, char **argv) {
    const char *path = NULL;
    int32_t llama2c_vocab = 32000;
    bool bos = true, special = false, nul = false, decode = false, info = false;
    int first_id = argc;
    for (int i = 1; i < argc; i++) {
        const char *digits = argv[i][0] == '-' ? argv[i] + 1 : argv[i]; // ids may be negative (-1)
        if (decode && *digits >= '0' && *digits <= '9') {
            first_id = i;
            break;
        }
        if (!strcmp(argv[i], "--llama2c-vocab") && i + 1 < argc)
            llama2c_vocab = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-bos"))
            bos = false;
        else if (!strcmp(argv[i], "--special"))
            special = true;
        else if (!strcmp(argv[i], "--nul"))
            nul = true;
        else if (!strcmp(argv[i], "--decode"))
            decode = true;
        else if (!strcmp(argv[i], "--info"))
            info = true;
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else {
            fprintf(stderr, "tok_dump: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: tok_dump VOCAB [--llama2c-vocab N] [--no-bos] [--special]\n"
                        "                [--nul | --decode [IDS...] | --info]\n");
        return 2;
    }

    lb_error err = {0};
    struct lb_tokenizer *t = NULL;
    struct gguf_file *f = NULL;
    char magic[4] = {0};
    FILE *fp = fopen(path, "rb");
    if (fp) {
        if (fread(magic, 1, 4, fp) != 4)
            memset(magic, 0, 4);
        fclose(fp);
    }
    lb_status st;
    if (hf_is_dir(path)) {
        st = hf_open(&f, path, &err);
        if (st == LB_OK)
            st = tokenizer_from_gguf(&t, f, &err);
    } else if (!memcmp(magic, "GGUF", 4)) {
        st = gguf_open(&f, path, &err);
        if (st == LB_OK)
            st = tokenizer_from_gguf(&t, f, &err);
    } else {
        st = tokenizer_from_llama2c(&t, path, llama2c_vocab, &err);
    }
    if (st != LB_OK) {
        fprintf(stderr, "tok_dump: %s\n", err.msg);
        gguf_close(f);
        return 1;
    }

    int rc = 0;
    if (info) {
        printf("kind %s\nn_vocab %d\nbos %d\neos %d\neot %d\nunk %d\nadd_bos %d\n",
               tokenizer_kind(t) == LB_TOK_SPM ? "spm" : "bpe", tokenizer_n_vocab(t), tokenizer_bos(t),
               tokenizer_eos(t), tokenizer_eot(t), tokenizer_unk(t), tokenizer_add_bos(t));
    } else if (decode && first_id < argc) {
        int n = argc - first_id;
        int32_t *ids = malloc(sizeof *ids * (size_t)n);
        for (int i = 0; ids && i < n; i++)
            ids[i] = (int32_t)strtol(argv[first_id + i], NULL, 10);
        if (ids)
            print_text(t, ids, n);
        free(ids);
    } else {
        size_t size;
        char *in = read_all(stdin, &size);
        if (!in) {
            rc = 1;
        } else if (decode) {
            // Lines of ids; each sequence's text then a NUL.
            int32_t *ids = malloc(sizeof *ids * (size / 2 + 1));
            char *line = in, *end = in + size;
            while (ids && line < end) {
                char *nl = memchr(line, '\n', (size_t)(end - line));
                if (!nl)
                    nl = end;
                int n = 0;
                for (char *p = line; p < nl;) {
                    char *q;
                    long v = strtol(p, &q, 10);
                    if (q == p || q > nl)
                        break;
                    ids[n++] = (int32_t)v;
                    p = q;
                }
                print_text(t, ids, n);
                putchar('\0');
                line = nl + 1;
            }
            free(ids);
        } else if (nul) {
            for (size_t start = 0; start < size;) {
                char *z = memchr(in + start, '\0', size - start);
                size_t len = z ? (size_t)(z - (in + start)) : size - start;
                rc |= print_ids(t, in + start, len, bos, special);
                start += len + 1;
            }
        } else {
            rc = print_ids(t, in, size, bos, special);
        }
        free(in);
    }
    tokenizer_free(t);
    gguf_close(f);
    return rc;
}
