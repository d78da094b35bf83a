/*
 * fuzz_gguf.c — a mutation fuzzer for the GGUF reader, run by `make check`
 * under ASan+UBSan like any other test.
 *
 * Seeds: a small file made with gguf_writer (every value type, nested arrays,
 * seven tensors, three of them of lowbit's row-header types) and, when present, $SHARED_MODELS/stories260K.gguf. Each
 * iteration copies a seed into a buffer of exactly the input's size (so ASan
 * sees any read past the end), applies one to four mutations (bit flips,
 * interesting bytes, huge u32/u64 values, truncation, chunk duplication and
 * deletion, splicing two seeds) and feeds it to gguf_parse. An accepted input
 * has every value formatted and every tensor's bytes read; a refused one must
 * carry a one-line message naming the file. Now and then an accepted input is
 * written again with gguf_writer and must read back the same.
 *
 * stories260K is 1.1 MB, and copying it for every input would dominate the
 * time, so it is used for one input in 16, mutated in its 14 KB header; the
 * other inputs come from the small seed and from stories260K's header alone.
 *
 *   tests/fuzz_gguf                  100000 inputs; FUZZ_ITERS and FUZZ_SEED override,
 *                                    FUZZ_VERBOSE=1 prints each refusal
 *
 * The same file is a libFuzzer target when built with -DLB_LIBFUZZER:
 *   clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -DLB_LIBFUZZER -D_GNU_SOURCE -Iengine \
 *     tests/fuzz_gguf.c engine/error.c engine/gguf.c engine/types.c engine/quants_legacy.c \
 *     engine/quants_k.c engine/kernels.c engine/libkernels_avx2.a -lm -o fuzz_gguf_lf
 *   ./fuzz_gguf_lf -max_total_time=60 -max_len=20000 corpus/
 * (clang 14 rejects __builtin_cpu_supports("f16c") in engine/kernels.c; there,
 * compile kernels.c with gcc and link its object instead.)
 */
#include "gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

// ----------------------------------------------------------------------------
// One input

static const char *const FUZZ_NAME = "fuzz.gguf";

#ifndef LB_LIBFUZZER
static int contract_failures;
#endif
static bool verbose; // FUZZ_VERBOSE=1: print every refusal message

static void contract(bool ok, const char *what, const char *msg) {
    if (ok) return;
    fprintf(stderr, "fuzz_gguf: %s: %s\n", what, msg);
#ifdef LB_LIBFUZZER
    abort();
#else
    contract_failures++;
#endif
}

// Touches everything an accepted file offers; the sum keeps the reads alive.
static uint64_t walk(const struct gguf_file *f) {
    char buf[256];
    uint64_t sum = 0;
    lb_error err = {0};
    for (uint64_t i = 0; i < f->n_kv; i++) {
        gguf_value_format(&f->kv[i].value, buf, sizeof buf);
        contract(strlen(buf) < sizeof buf, "format overran", buf);
        sum += strlen(buf);
    }
    uint64_t u;
    double d;
    struct gguf_str s;
    const struct gguf_value *arr;
    sum += gguf_get_u64(f, "llama.block_count", &u, &err) == LB_OK ? u : 0;
    sum += gguf_get_f64(f, "llama.attention.layer_norm_rms_epsilon", &d, &err) == LB_OK;
    sum += gguf_get_str(f, "general.architecture", &s, &err) == LB_OK ? s.len : 0;
    sum += gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_STRING, &arr, &err) == LB_OK ? arr->arr.n : 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        const uint8_t *p = t->data;
        for (size_t j = 0; j < t->nbytes; j++) sum += p[j];
        contract(gguf_find_tensor(f, t->name) == t, "tensor not found by its name", t->name);
    }
    return sum;
}

// Parses one input; true when it was accepted.
static bool fuzz_one(const uint8_t *data, size_t size, uint64_t *sink) {
    lb_error err = {0};
    struct gguf_file *f = NULL;
    lb_status st = gguf_parse(&f, FUZZ_NAME, data, size, &err);
    if (st != LB_OK) {
        contract(f == NULL, "failed parse left a result", err.msg);
        contract(st == LB_ERR_FORMAT || st == LB_ERR_UNSUPPORTED || st == LB_ERR_NOMEM, "unexpected status",
                 err.msg);
        contract(strncmp(err.msg, FUZZ_NAME, strlen(FUZZ_NAME)) == 0, "message does not name the file", err.msg);
        contract(strchr(err.msg, '\n') == NULL, "message is not one line", err.msg);
        if (verbose) fprintf(stderr, "%s\n", err.msg);
        return false;
    }
    *sink += walk(f);
    gguf_close(f);
    return true;
}

#ifdef LB_LIBFUZZER

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static uint64_t sink;
    fuzz_one(data, size, &sink);
    return 0;
}

#else

// ----------------------------------------------------------------------------
// Round trip of an accepted input through the writer

static bool values_equal(const struct gguf_value *a, const struct gguf_value *b) {
    if (a->type != b->type) return false;
    switch (a->type) {
    case GGUF_FLOAT32: case GGUF_FLOAT64:
        return memcmp(&a->f64, &b->f64, sizeof a->f64) == 0 || (a->f64 != a->f64 && b->f64 != b->f64);
    case GGUF_STRING:
        return a->str.len == b->str.len && memcmp(a->str.data, b->str.data, a->str.len) == 0;
    case GGUF_ARRAY:
        if (a->arr.type != b->arr.type || a->arr.n != b->arr.n) return false;
        for (uint64_t i = 0; i < a->arr.n; i++)
            if (!values_equal(&a->arr.items[i], &b->arr.items[i])) return false;
        return true;
    default:
        return a->u64 == b->u64;
    }
}

// Writes `f` again with gguf_writer and checks the copy reads back the same.
static void round_trip(const struct gguf_file *f, const char *path) {
    lb_error err = {0};
    struct gguf_writer *w = gguf_writer_new();
    lb_status st = w ? gguf_writer_copy_kv(w, f, &err) : LB_ERR_NOMEM;
    for (uint64_t i = 0; i < f->n_tensors && !st; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        st = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes, &err);
    }
    if (!st) st = gguf_writer_write(w, path, &err);
    gguf_writer_free(w);
    contract(st == LB_OK, "accepted file could not be written again", err.msg);
    if (st) return;
    struct gguf_file *g;
    if (gguf_open(&g, path, &err) != LB_OK) {
        contract(false, "file written again does not read", err.msg);
        return;
    }
    bool same = g->n_kv == f->n_kv && g->n_tensors == f->n_tensors && g->alignment == f->alignment;
    for (uint64_t i = 0; same && i < f->n_kv; i++)
        same = f->kv[i].key.len == g->kv[i].key.len &&
               memcmp(f->kv[i].key.data, g->kv[i].key.data, f->kv[i].key.len) == 0 &&
               values_equal(&f->kv[i].value, &g->kv[i].value);
    for (uint64_t i = 0; same && i < f->n_tensors; i++) {
        const struct gguf_tensor *a = &f->tensors[i], *b = &g->tensors[i];
        same = strcmp(a->name, b->name) == 0 && a->type == b->type && a->n_dims == b->n_dims &&
               memcmp(a->ne, b->ne, sizeof a->ne) == 0 && a->nbytes == b->nbytes &&
               memcmp(a->data, b->data, a->nbytes) == 0;
    }
    contract(same, "file written again reads differently", f->path);
    gguf_close(g);
}

// ----------------------------------------------------------------------------
// Seeds

struct seed {
    uint8_t *data;
    size_t size;
    size_t hot;   // mutations land in [0, hot) most of the time: the header
    bool valid;   // parses as it is
};

// A small file with every value type, nested arrays and four tensors.
static bool make_seed(struct seed *s, const char *path) {
    static const struct gguf_value in1[] = { { .type = GGUF_INT32, .i64 = -1 }, { .type = GGUF_INT32, .i64 = 2 } };
    static const struct gguf_value in2[] = { { .type = GGUF_STRING, .str = { 3, "abc" } } };
    static const struct gguf_value nested[] = {
        { .type = GGUF_ARRAY, .arr = { GGUF_INT32, 2, (struct gguf_value *)in1 } },
        { .type = GGUF_ARRAY, .arr = { GGUF_STRING, 1, (struct gguf_value *)in2 } },
    };
    static const struct gguf_value toks[] = {
        { .type = GGUF_STRING, .str = { 5, "<unk>" } }, { .type = GGUF_STRING, .str = { 3, "<s>" } },
        { .type = GGUF_STRING, .str = { 4, "</s>" } },
    };
    static const struct gguf_value scores[] = { { .type = GGUF_FLOAT32, .f64 = 0.5 }, { .type = GGUF_FLOAT32, .f64 = -1 } };
    const struct { const char *key; struct gguf_value v; } kvs[] = {
        { "general.architecture", { .type = GGUF_STRING, .str = { 5, "llama" } } },
        { "t.u8", { .type = GGUF_UINT8, .u64 = 7 } },      { "t.i8", { .type = GGUF_INT8, .i64 = -7 } },
        { "t.u16", { .type = GGUF_UINT16, .u64 = 700 } },  { "t.i16", { .type = GGUF_INT16, .i64 = -700 } },
        { "llama.block_count", { .type = GGUF_UINT32, .u64 = 2 } }, { "t.i32", { .type = GGUF_INT32, .i64 = -70000 } },
        { "llama.attention.layer_norm_rms_epsilon", { .type = GGUF_FLOAT32, .f64 = 1e-5 } },
        { "t.bool", { .type = GGUF_BOOL, .u64 = 1 } },     { "t.u64", { .type = GGUF_UINT64, .u64 = 1ull << 40 } },
        { "t.i64", { .type = GGUF_INT64, .i64 = -(1ll << 40) } }, { "t.f64", { .type = GGUF_FLOAT64, .f64 = 0.25 } },
        { "tokenizer.ggml.tokens", { .type = GGUF_ARRAY, .arr = { GGUF_STRING, 3, (struct gguf_value *)toks } } },
        { "tokenizer.ggml.scores", { .type = GGUF_ARRAY, .arr = { GGUF_FLOAT32, 2, (struct gguf_value *)scores } } },
        { "t.nested", { .type = GGUF_ARRAY, .arr = { GGUF_ARRAY, 2, (struct gguf_value *)nested } } },
    };
    static uint8_t data[34 * 2];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 13);
    lb_error err = {0};
    struct gguf_writer *w = gguf_writer_new();
    lb_status st = w ? LB_OK : LB_ERR_NOMEM;
    for (size_t i = 0; i < sizeof kvs / sizeof kvs[0] && !st; i++) st = gguf_writer_set(w, kvs[i].key, &kvs[i].v, &err);
    if (!st) st = gguf_writer_add_tensor(w, "token_embd.weight", LB_TYPE_F32, 2, (int64_t[]){ 4, 2 }, data, 32, &err);
    if (!st) st = gguf_writer_add_tensor(w, "output_norm.weight", LB_TYPE_F16, 1, (int64_t[]){ 4 }, data, 8, &err);
    if (!st) st = gguf_writer_add_tensor(w, "blk.0.attn_q.weight", LB_TYPE_Q8_0, 2, (int64_t[]){ 32, 2 }, data, 68, &err);
    if (!st) st = gguf_writer_add_tensor(w, "blk.0.ffn_up.weight", LB_TYPE_Q4_0, 1, (int64_t[]){ 32 }, data, 18, &err);
    // lowbit's types with a row header (row bytes = header + blocks): per-channel
    // int4 with a zero point (8 + 16 bytes a row), FP8 (4 + 1 per element), NF4_DQ (8 + 33).
    if (!st) st = gguf_writer_add_tensor(w, "blk.0.ffn_gate.weight", LB_TYPE_INT4Z_C, 2, (int64_t[]){ 32, 2 }, data, 48, &err);
    if (!st) st = gguf_writer_add_tensor(w, "blk.0.attn_k.weight", LB_TYPE_FP8_E4M3, 2, (int64_t[]){ 5, 3 }, data, 27, &err);
    if (!st) st = gguf_writer_add_tensor(w, "blk.0.attn_v.weight", LB_TYPE_NF4_DQ, 1, (int64_t[]){ 64 }, data, 41, &err);
    if (!st) st = gguf_writer_write(w, path, &err);
    gguf_writer_free(w);
    if (st) {
        fprintf(stderr, "fuzz_gguf: cannot make the seed: %s\n", err.msg);
        return false;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) return false;
    fseek(fp, 0, SEEK_END);
    s->size = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    s->data = malloc(s->size);
    bool ok = s->data && fread(s->data, 1, s->size, fp) == s->size;
    fclose(fp);
    unlink(path);
    s->hot = s->size;
    s->valid = true;
    return ok;
}

static bool load_seed(struct seed *s, const char *path) {
    struct gguf_file *f;
    lb_error err = {0};
    if (gguf_open(&f, path, &err) != LB_OK) return false;
    s->size = f->size;
    s->hot = (size_t)f->data_offset;
    s->data = malloc(s->size);
    s->valid = true;
    if (s->data) memcpy(s->data, f->map, s->size);
    gguf_close(f);
    return s->data != NULL;
}

// ----------------------------------------------------------------------------
// Mutations

static uint64_t rng_state;

static uint64_t rnd(void) { // xorshift64*
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static size_t below(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

// A position to mutate: in the hot region seven times in eight.
static size_t pick(size_t size, size_t hot) {
    return below((rnd() & 7) && hot < size ? hot : size);
}

static const uint64_t interesting[] = {
    0, 1, 2, 3, 4, 5, 8, 9, 12, 13, 31, 32, 33, 64, 255, 256, 0x7f, 0x80, 0x7fff, 0xffff, 0x10000,
    0x7fffffff, 0x80000000u, 0xffffffffu, 0x100000000ull, 1ull << 40, 1ull << 62,
    0x7fffffffffffffffull, 0x8000000000000000ull, 0xfffffffffffffff0ull, 0xffffffffffffffffull,
};

// Applies one mutation to buf[0..*size) (capacity `cap`); `other` is for splicing.
static void mutate(uint8_t *buf, size_t *size, size_t cap, size_t hot, const struct seed *other) {
    size_t n = *size;
    if (n == 0) return;
    switch (rnd() % 9) {
    case 0: { // flip a bit
        buf[pick(n, hot)] ^= (uint8_t)(1u << (rnd() & 7));
        break;
    }
    case 1: { // an interesting byte
        static const uint8_t bytes[] = { 0, 0xff, 0x7f, 0x80, 1, 0x20 };
        buf[pick(n, hot)] = bytes[below(sizeof bytes)];
        break;
    }
    case 2: case 3: { // an interesting u32 or u64, little-endian
        size_t w = (rnd() & 1) ? 8 : 4, at = pick(n, hot);
        uint64_t v = interesting[below(sizeof interesting / sizeof interesting[0])];
        if (rnd() & 1) v += (uint64_t)(int64_t)((int)below(5) - 2);
        for (size_t i = 0; i < w && at + i < n; i++) buf[at + i] = (uint8_t)(v >> (8 * i));
        break;
    }
    case 4: { // truncate
        *size = pick(n, hot);
        break;
    }
    case 5: { // duplicate a chunk
        size_t len = 1 + below(64), from = pick(n, hot), to = pick(n, hot);
        if (from + len > n) len = n - from;
        if (n + len > cap) break;
        memmove(buf + to + len, buf + to, n - to);
        memmove(buf + to, buf + (from >= to ? from + len : from), len);
        *size = n + len;
        break;
    }
    case 6: { // delete a chunk
        size_t len = 1 + below(64), at = pick(n, hot);
        if (at + len > n) len = n - at;
        memmove(buf + at, buf + at + len, n - at - len);
        *size = n - len;
        break;
    }
    case 7: { // splice: our prefix, the other seed's bytes from some point
        size_t at = pick(n, hot), from = below(other->hot);
        size_t len = other->size - from;
        if (at + len > cap) len = cap - at;
        memcpy(buf + at, other->data + from, len);
        *size = at + len;
        break;
    }
    case 8: { // overwrite a run with one byte
        size_t len = 1 + below(16), at = pick(n, hot);
        if (at + len > n) len = n - at;
        memset(buf + at, (int)(rnd() & 0xff), len);
        break;
    }
    }
}

// ----------------------------------------------------------------------------

int main(void) {
    const char *iters_env = getenv("FUZZ_ITERS"), *seed_env = getenv("FUZZ_SEED");
    long iters = iters_env ? atol(iters_env) : 100000;
    verbose = getenv("FUZZ_VERBOSE") && atoi(getenv("FUZZ_VERBOSE")) > 0;
    rng_state = seed_env ? strtoull(seed_env, NULL, 0) | 1 : 0x9e3779b97f4a7c15ull;

    const char *tmp = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/fuzz_gguf.%d.gguf", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    struct seed seeds[3];
    int n_seeds = 0;
    if (!make_seed(&seeds[n_seeds++], path)) {
        printf("0 passed, 1 failed\n");
        return 1;
    }
    // stories260K whole, and its header alone (no tensor data: most inputs
    // are refused at the first tensor, but the keys are all read).
    const char *models = getenv("SHARED_MODELS");
    char model[512];
    snprintf(model, sizeof model, "%s/stories260K.gguf", models ? models : "../shared/models");
    bool have_model = load_seed(&seeds[n_seeds], model);
    if (have_model) {
        seeds[n_seeds + 1] = (struct seed){ .data = seeds[n_seeds].data, .size = seeds[n_seeds].hot,
                                            .hot = seeds[n_seeds].hot };
        n_seeds += 2;
    } else {
        printf("fuzz_gguf: %s not found; fuzzing the small seed only\n", model);
    }

    size_t max_size = 0;
    for (int i = 0; i < n_seeds; i++) max_size = seeds[i].size > max_size ? seeds[i].size : max_size;
    size_t cap = max_size + 4096;
    uint8_t *work = malloc(cap);
    if (!work) return 1;

    uint64_t sink = 0;
    long accepted = 0, rejected = 0, round_trips = 0;
    clock_t t0 = clock();
    for (long it = 0; it < iters; it++) {
        // Seed choice: the whole model one time in 16, its header and the
        // small seed share the rest.
        const struct seed *s = &seeds[0];
        if (it < n_seeds) s = &seeds[it];
        else if (have_model) s = (it % 16 == 15) ? &seeds[1] : (it & 1) ? &seeds[2] : &seeds[0];
        const struct seed *other = &seeds[below((size_t)n_seeds)];
        size_t size = s->size;
        memcpy(work, s->data, size);
        int n_mut = it < n_seeds ? 0 : 1 + (int)below(4); // first inputs: the seeds as they are
        for (int m = 0; m < n_mut; m++) mutate(work, &size, cap, s->hot, other);

        // An exact-size copy, so that a read one byte past the end is caught.
        uint8_t *input = malloc(size ? size : 1);
        if (!input) return 1;
        memcpy(input, work, size);
        bool ok = fuzz_one(input, size, &sink);
        if (it < n_seeds) contract(ok == s->valid, ok ? "the header-only seed was accepted" : "a seed was refused", "");
        if (ok) {
            accepted++;
            if (n_mut > 0 && round_trips < 100 && accepted % 64 == 1) {
                struct gguf_file *f;
                lb_error err = {0};
                if (gguf_parse(&f, FUZZ_NAME, input, size, &err) == LB_OK) {
                    round_trip(f, path);
                    gguf_close(f);
                    round_trips++;
                }
            }
        } else {
            rejected++;
        }
        free(input);
    }
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    unlink(path);
    printf("fuzz_gguf: %ld inputs (%ld accepted, %ld refused, %ld written again) in %.1f s CPU, checksum %llu\n",
           iters, accepted, rejected, round_trips, secs, (unsigned long long)(sink & 0xffff));
    free(work);
    free(seeds[0].data);
    if (have_model) free(seeds[1].data);
    int failed = contract_failures > 0;
    printf("%d passed, %d failed\n", 1 - failed, failed);
    return failed;
}

#endif
