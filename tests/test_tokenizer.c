/*
 * test_tokenizer.c — the tokenizers, by example.
 *
 * Real vocabularies come from $SHARED_MODELS (../shared/models): the 512-token
 * llama vocabulary inside stories260K.gguf, llama2.c's tok512.bin and the
 * LLaMA-2 tokenizer.bin; those tests are skipped when the files are absent.
 * Small GGUF files are also built byte by byte in memory, to show the BPE
 * pre-tokenizers apart and to check that bad files give clear errors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "gguf.h"
#include "tokenizer.h"
#include "unicode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ----------------------------------------------------------------------------
// Helpers.

static char model_path[1024];
static int n_skipped; // tests skipped for want of a shared model file

#define SKIP_UNLESS(path)   \
    do {                    \
        if (!(path)) {      \
            n_skipped++;    \
            skip();         \
        }                   \
    } while (0)

// Path of a file in the shared models directory, or NULL (test skipped) when absent.
static const char *shared(const char *file) {
    const char *dir = getenv("SHARED_MODELS");
    snprintf(model_path, sizeof model_path, "%s/%s", dir ? dir : "../shared/models", file);
    return access(model_path, R_OK) == 0 ? model_path : NULL;
}

struct vocab {
    struct gguf_file *f;
    struct lb_tokenizer *t;
};

static struct vocab open_gguf_vocab(const char *path) {
    struct vocab v = {0};
    lb_error err = {0};
    assert_int_equal(gguf_open(&v.f, path, &err), LB_OK);
    if (tokenizer_from_gguf(&v.t, v.f, &err) != LB_OK)
        fail_msg("%s", err.msg);
    return v;
}

static void close_vocab(struct vocab *v) {
    tokenizer_free(v->t);
    gguf_close(v->f);
}

static struct lb_tokenizer *open_llama2c(const char *path, int32_t n_vocab) {
    struct lb_tokenizer *t = NULL;
    lb_error err = {0};
    if (tokenizer_from_llama2c(&t, path, n_vocab, &err) != LB_OK)
        fail_msg("%s", err.msg);
    return t;
}

// Encode and compare with the expected ids.
static void expect_ids(const struct lb_tokenizer *t, const char *text, bool bos, bool special, const int32_t *want,
                       int n_want) {
    int32_t ids[256];
    int n = tokenizer_encode(t, text, strlen(text), bos, special, ids, 256);
    if (n != n_want || (n > 0 && memcmp(ids, want, sizeof *ids * (size_t)n) != 0)) {
        char got[2048] = "";
        for (int i = 0, k = 0; i < n && i < 256 && k < 2000; i++)
            k += snprintf(got + k, sizeof got - (size_t)k, " %d", ids[i]);
        fail_msg("\"%s\": got %d ids:%s (expected %d)", text, n, got, n_want);
    }
}

// Decode a sequence as a streaming caller does: each id after the previous one.
static char *decode_all(const struct lb_tokenizer *t, const int32_t *ids, int n) {
    size_t cap = 64, len = 0;
    char *out = malloc(cap);
    int32_t prev = -1;
    for (int i = 0; i < n; i++) {
        char piece[256];
        int k = tokenizer_decode(t, prev, ids[i], piece, sizeof piece);
        assert_true(k >= 0);
        while (len + (size_t)k + 1 > cap)
            out = realloc(out, cap *= 2);
        memcpy(out + len, piece, (size_t)k);
        len += (size_t)k;
        prev = ids[i];
    }
    out[len] = '\0';
    return out;
}

static void expect_round_trip(const struct lb_tokenizer *t, const char *text) {
    int32_t ids[1024];
    int n = tokenizer_encode(t, text, strlen(text), true, false, ids, 1024);
    assert_true(n > 0);
    char *back = decode_all(t, ids, n);
    assert_string_equal(back, text);
    free(back);
}

// ----------------------------------------------------------------------------
// SentencePiece on the real vocabularies.

static const char *lily = "Once upon a time, there was a little girl named Lily.";

static void test_stories260k_gguf(void **state) {
    const char *path = shared("stories260K.gguf");
    SKIP_UNLESS(path);
    struct vocab v = open_gguf_vocab(path);
    assert_int_equal(tokenizer_kind(v.t), LB_TOK_SPM);
    assert_int_equal(tokenizer_n_vocab(v.t), 512);
    assert_int_equal(tokenizer_bos(v.t), 1);
    assert_int_equal(tokenizer_eos(v.t), 2);
    assert_true(tokenizer_add_bos(v.t));
    static const int32_t want[] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426};
    expect_ids(v.t, lily, true, false, want, 16);
    expect_ids(v.t, lily, false, false, want + 1, 15);
    expect_round_trip(v.t, lily);
    close_vocab(&v);
}

static void test_llama2_tokenizer_bin(void **state) {
    const char *path = shared("tokenizer.bin");
    SKIP_UNLESS(path);
    struct lb_tokenizer *t = open_llama2c(path, 32000);
    static const int32_t want[] = {1,   15043, 3186, 29991, 9038, 2501, 263,  931,   29892,
                                   727, 471,   263,  2217,  7826, 4257, 365, 2354, 29889};
    expect_ids(t, "Hello world! Once upon a time, there was a little girl named Lily.", true, false, want, 18);
    // The file writes "▁" as a space and BOS as "\n<s>\n"; pieces read back in
    // SentencePiece's spelling.
    assert_string_equal(tokenizer_piece(t, 15043), "\xE2\x96\x81Hello");
    assert_string_equal(tokenizer_piece(t, 1), "<s>");
    assert_int_equal(tokenizer_attr(t, 1), LB_TOKATTR_CONTROL);
    assert_int_equal(tokenizer_attr(t, 0), LB_TOKATTR_UNKNOWN);
    assert_int_equal(tokenizer_attr(t, 3), LB_TOKATTR_BYTE); // <0x00>
    expect_round_trip(t, "  two leading spaces, a\ttab,\nand a newline  ");
    static const int32_t empty_bos[] = {1};
    expect_ids(t, "", true, false, empty_bos, 1);
    expect_ids(t, "", false, false, NULL, 0);
    tokenizer_free(t);
}

// llama2.c's tok512.bin and the vocabulary embedded in stories260K.gguf are
// the same tokenizer in two formats.
static void test_llama2c_matches_gguf(void **state) {
    const char *gpath = shared("stories260K.gguf");
    SKIP_UNLESS(gpath);
    struct vocab v = open_gguf_vocab(gpath);
    const char *bpath = shared("tok512.bin");
    if (!bpath)
        close_vocab(&v);
    SKIP_UNLESS(bpath);
    struct lb_tokenizer *t = open_llama2c(bpath, 512);
    for (int32_t id = 0; id < 512; id++) {
        assert_string_equal(tokenizer_piece(t, id), tokenizer_piece(v.t, id));
        assert_int_equal(tokenizer_attr(t, id), tokenizer_attr(v.t, id));
    }
    int32_t a[64], b[64];
    int na = tokenizer_encode(t, lily, strlen(lily), true, false, a, 64);
    int nb = tokenizer_encode(v.t, lily, strlen(lily), true, false, b, 64);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, sizeof *a * (size_t)na);
    tokenizer_free(t);
    close_vocab(&v);
}

// "<s>" in the text is three characters unless the caller asks for special
// tokens; then it is BOS, and the text after it gets the "▁" prefix again.
static void test_special_tokens(void **state) {
    const char *path = shared("tokenizer.bin");
    SKIP_UNLESS(path);
    struct lb_tokenizer *t = open_llama2c(path, 32000);
    // "▁<" "s" ">" "Hi" "</" "s" ">"
    static const int32_t plain[] = {529, 29879, 29958, 18567, 829, 29879, 29958};
    static const int32_t special[] = {1, 6324, 2};                                 // <s>, "▁Hi", </s>
    expect_ids(t, "<s>Hi</s>", false, false, plain, 7);
    expect_ids(t, "<s>Hi</s>", false, true, special, 3);
    // Control tokens decode to nothing.
    char buf[16];
    assert_int_equal(tokenizer_decode(t, -1, 2, buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    tokenizer_free(t);
}

// Characters outside the vocabulary become their UTF-8 bytes, <0xNN> tokens
// (ids 3..258 in LLaMA-2), and decode back to the same bytes.
static void test_byte_fallback(void **state) {
    const char *path = shared("tokenizer.bin");
    SKIP_UNLESS(path);
    struct lb_tokenizer *t = open_llama2c(path, 32000);
    static const int32_t emoji[] = {1, 29871, 0xF0 + 3, 0x9F + 3, 0x98 + 3, 0x80 + 3}; // "▁", F0 9F 98 80
    expect_ids(t, "\xF0\x9F\x98\x80", true, false, emoji, 6);
    expect_round_trip(t, "emoji \xF0\x9F\x98\x80 and \xE6\x97\xA5\xE6\x9C\xAC");
    // Invalid UTF-8: each bad byte on its own, still exact on the way back.
    static const int32_t bad[] = {1, 29871, 0xFF + 3};
    expect_ids(t, "\xFF", true, false, bad, 3);
    expect_round_trip(t, "ok \x80\xC3( \xED\xA0\x80 end");
    tokenizer_free(t);
}

static void test_encode_cap(void **state) {
    const char *path = shared("tokenizer.bin");
    SKIP_UNLESS(path);
    struct lb_tokenizer *t = open_llama2c(path, 32000);
    int32_t ids[8] = {-7, -7, -7, -7, -7, -7, -7, -7};
    const char *text = "Hello world! Once upon a time";
    assert_int_equal(tokenizer_encode(t, text, strlen(text), true, false, ids, 3), -8); // 8 needed
    assert_int_equal(ids[2], 3186);                                                     // the first 3 are there
    assert_int_equal(ids[3], -7);                                                       // nothing past cap
    assert_int_equal(tokenizer_encode(t, text, strlen(text), true, false, NULL, 0), -8);
    assert_int_equal(tokenizer_encode(t, text, strlen(text), true, false, ids, 8), 8);
    tokenizer_free(t);
}

static void test_decode_contract(void **state) {
    const char *path = shared("tokenizer.bin");
    SKIP_UNLESS(path);
    struct lb_tokenizer *t = open_llama2c(path, 32000);
    char buf[32];
    // "▁Hello" is " Hello" in the middle of a text, "Hello" right after BOS.
    assert_int_equal(tokenizer_decode(t, 263, 15043, buf, sizeof buf), 6);
    assert_string_equal(buf, " Hello");
    assert_int_equal(tokenizer_decode(t, 1, 15043, buf, sizeof buf), 5);
    assert_string_equal(buf, "Hello");
    assert_int_equal(tokenizer_decode(t, -1, 13, buf, sizeof buf), 1); // <0x0A>
    assert_string_equal(buf, "\n");
    // Too small: nothing written but "", and the cap needed (NUL included).
    assert_int_equal(tokenizer_decode(t, 263, 15043, buf, 4), -7);
    assert_string_equal(buf, "");
    assert_int_equal(tokenizer_decode(t, 263, 15043, buf, 7), 6);
    // Out of range: "".
    assert_int_equal(tokenizer_decode(t, -1, 32000, buf, sizeof buf), 0);
    assert_true(tokenizer_is_eog(t, 2));
    assert_false(tokenizer_is_eog(t, 1));
    assert_int_equal(tokenizer_eot(t), -1);
    tokenizer_free(t);
}

// Linear in the text: a megabyte of prose encodes in well under a second.
static void test_long_text(void **state) {
    const char *path = shared("tokenizer.bin");
    SKIP_UNLESS(path);
    struct lb_tokenizer *t = open_llama2c(path, 32000);
    size_t n = 1 << 20;
    char *text = malloc(n + 1);
    const char *words = "The quick brown fox jumps over the lazy dog. ";
    for (size_t i = 0; i < n; i++)
        text[i] = words[i % strlen(words)];
    text[n] = '\0';
    int need = tokenizer_encode(t, text, n, true, false, NULL, 0);
    assert_true(need < -100000);
    int32_t *ids = malloc(sizeof *ids * (size_t)-need);
    assert_int_equal(tokenizer_encode(t, text, n, true, false, ids, -need), -need);
    char *back = decode_all(t, ids, -need);
    assert_string_equal(back, text);
    free(back);
    free(ids);
    free(text);
    tokenizer_free(t);
}

// ----------------------------------------------------------------------------
// GGUF files built in memory.

struct gb {
    uint8_t *p;
    size_t n, cap;
    uint64_t n_kv;
};

static void gb_put(struct gb *b, const void *d, size_t n) {
    while (b->n + n > b->cap)
        b->p = realloc(b->p, b->cap = b->cap ? b->cap * 2 : 4096);
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void gb_u32(struct gb *b, uint32_t v) { gb_put(b, &v, 4); }
static void gb_u64(struct gb *b, uint64_t v) { gb_put(b, &v, 8); }
static void gb_str(struct gb *b, const char *s) {
    gb_u64(b, strlen(s));
    gb_put(b, s, strlen(s));
}
static void kv_str(struct gb *b, const char *key, const char *v) {
    gb_str(b, key), gb_u32(b, GGUF_STRING), gb_str(b, v), b->n_kv++;
}
static void kv_u32(struct gb *b, const char *key, uint32_t v) {
    gb_str(b, key), gb_u32(b, GGUF_UINT32), gb_u32(b, v), b->n_kv++;
}
static void kv_strs(struct gb *b, const char *key, int n, const char *const *v) {
    gb_str(b, key), gb_u32(b, GGUF_ARRAY), gb_u32(b, GGUF_STRING), gb_u64(b, (uint64_t)n), b->n_kv++;
    for (int i = 0; i < n; i++)
        gb_str(b, v[i]);
}
static void kv_f32s(struct gb *b, const char *key, int n, const float *v) {
    gb_str(b, key), gb_u32(b, GGUF_ARRAY), gb_u32(b, GGUF_FLOAT32), gb_u64(b, (uint64_t)n), b->n_kv++;
    gb_put(b, v, sizeof *v * (size_t)n);
}
static void kv_i32s(struct gb *b, const char *key, int n, const int32_t *v) {
    gb_str(b, key), gb_u32(b, GGUF_ARRAY), gb_u32(b, GGUF_INT32), gb_u64(b, (uint64_t)n), b->n_kv++;
    gb_put(b, v, sizeof *v * (size_t)n);
}

// Header + key/values, no tensors. The caller frees *file after gguf_close.
static struct gguf_file *gb_parse(struct gb *b, uint8_t **file) {
    struct gb h = {0};
    gb_put(&h, "GGUF", 4);
    gb_u32(&h, 3);
    gb_u64(&h, 0);
    gb_u64(&h, b->n_kv);
    gb_put(&h, b->p, b->n);
    free(b->p);
    *b = (struct gb){0};
    struct gguf_file *f = NULL;
    lb_error err = {0};
    if (gguf_parse(&f, "m.gguf", h.p, h.n, &err) != LB_OK)
        fail_msg("%s", err.msg);
    *file = h.p;
    return f;
}

// Try to build a tokenizer from b; returns the status and the message.
static lb_status try_vocab(struct gb *b, lb_error *err) {
    uint8_t *file;
    struct gguf_file *f = gb_parse(b, &file);
    struct lb_tokenizer *t = NULL;
    lb_status st = tokenizer_from_gguf(&t, f, err);
    tokenizer_free(t);
    gguf_close(f);
    free(file);
    return st;
}

// A 512-token SentencePiece vocabulary, with `n_scores` scores.
static void spm_vocab(struct gb *b, int n_scores) {
    static char names[512][16];
    static const char *pieces[512];
    static float scores[512];
    for (int i = 0; i < 512; i++) {
        snprintf(names[i], sizeof names[i], "p%d", i);
        pieces[i] = names[i];
        scores[i] = (float)-i;
    }
    kv_str(b, "tokenizer.ggml.model", "llama");
    kv_strs(b, "tokenizer.ggml.tokens", 512, pieces);
    kv_f32s(b, "tokenizer.ggml.scores", n_scores, scores);
}

static void test_bad_files(void **state) {
    lb_error err;
    struct gb b = {0};

    spm_vocab(&b, 511);
    assert_int_equal(try_vocab(&b, &err), LB_ERR_FORMAT);
    assert_string_equal(err.msg, "m.gguf: tokenizer.ggml.scores: 511 entries, expected 512 (one per token)");

    kv_str(&b, "general.architecture", "llama");
    assert_int_equal(try_vocab(&b, &err), LB_ERR_MISSING);
    assert_non_null(strstr(err.msg, "tokenizer.ggml.model"));

    kv_str(&b, "tokenizer.ggml.model", "bert");
    assert_int_equal(try_vocab(&b, &err), LB_ERR_UNSUPPORTED);
    assert_string_equal(err.msg, "m.gguf: tokenizer.ggml.model: \"bert\" unsupported (expected \"llama\" or \"gpt2\")");

    spm_vocab(&b, 512);
    kv_u32(&b, "tokenizer.ggml.bos_token_id", 600);
    assert_int_equal(try_vocab(&b, &err), LB_ERR_FORMAT);
    assert_string_equal(err.msg, "m.gguf: tokenizer.ggml.bos_token_id: 600 out of range (vocabulary has 512 tokens)");

    spm_vocab(&b, 512);
    int32_t types[512];
    for (int i = 0; i < 512; i++)
        types[i] = i == 7 ? 9 : LB_TOKATTR_NORMAL;
    kv_i32s(&b, "tokenizer.ggml.token_type", 512, types);
    assert_int_equal(try_vocab(&b, &err), LB_ERR_FORMAT);
    assert_string_equal(err.msg, "m.gguf: tokenizer.ggml.token_type[7]: 9 unknown (expected 0..6)");

    static const char *const two[] = {"a", "b"};
    kv_str(&b, "tokenizer.ggml.model", "gpt2");
    kv_strs(&b, "tokenizer.ggml.tokens", 2, two);
    assert_int_equal(try_vocab(&b, &err), LB_ERR_MISSING); // byte-level BPE needs its merges
    assert_non_null(strstr(err.msg, "tokenizer.ggml.merges"));

    static const char *const bad_merge[] = {"ab"};
    kv_str(&b, "tokenizer.ggml.model", "gpt2");
    kv_strs(&b, "tokenizer.ggml.tokens", 2, two);
    kv_strs(&b, "tokenizer.ggml.merges", 1, bad_merge);
    assert_int_equal(try_vocab(&b, &err), LB_ERR_FORMAT);
    assert_string_equal(err.msg, "m.gguf: tokenizer.ggml.merges[0]: \"ab\" has no space (expected \"left right\")");

    kv_str(&b, "tokenizer.ggml.model", "gpt2");
    kv_str(&b, "tokenizer.ggml.pre", "mystery");
    kv_strs(&b, "tokenizer.ggml.tokens", 2, two);
    assert_int_equal(try_vocab(&b, &err), LB_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "tokenizer.ggml.pre: \"mystery\" unsupported"));

    // llama2.c files: missing, truncated, wrong vocabulary size.
    struct lb_tokenizer *t = NULL;
    assert_int_equal(tokenizer_from_llama2c(&t, "/nonexistent/tokenizer.bin", 32000, &err), LB_ERR_IO);
    assert_null(t);
    const char *path = shared("tok512.bin");
    if (path) {
        assert_int_equal(tokenizer_from_llama2c(&t, path, 513, &err), LB_ERR_FORMAT);
        assert_non_null(strstr(err.msg, "token 512: truncated"));
        assert_int_equal(tokenizer_from_llama2c(&t, path, 0, &err), LB_ERR_ARG);
        char tmp[] = "/tmp/tok_truncXXXXXX";
        int fd = mkstemp(tmp);
        assert_true(fd >= 0);
        FILE *in = fopen(path, "rb");
        char buf[1000];
        size_t got = fread(buf, 1, sizeof buf, in);
        fclose(in);
        assert_int_equal(write(fd, buf, got), (ssize_t)got);
        close(fd);
        assert_int_equal(tokenizer_from_llama2c(&t, tmp, 512, &err), LB_ERR_FORMAT);
        assert_null(t);
        unlink(tmp);
    }
}

// A toy byte-level BPE vocabulary: the 256 byte characters, a few merges, and
// <|endoftext|>. The three pre-tokenizers cut "1234" differently, so the
// merges give three different answers:
//   gpt2:  one word "1234"; "3 4" has the best rank → 12 34
//   llama3: words "123" "4" → 123 4
//   qwen2: one word per digit → 1 2 3 4
static struct vocab bpe_vocab(const char *pre, uint8_t **file) {
    static char chars[256][4];
    const char *tokens[256 + 16];
    int n = 0;
    for (int b = 0; b < 256; b++) {
        // GPT-2's bytes_to_unicode(): printable Latin-1 as itself, the 68 others from U+0100.
        uint32_t cp = b <= 0x20                ? 0x100u + (uint32_t)b
                    : (b >= 0x7F && b <= 0xA0) ? 0x121u + (uint32_t)(b - 0x7F)
                    : b == 0xAD                ? 0x143u
                                               : (uint32_t)b;
        chars[b][unicode_encode(cp, chars[b])] = '\0';
        tokens[n++] = chars[b]; // id == byte
    }
    static const char *const extra[] = {"34", "12", "123", "he", "ll", "hell", "hello", "\xC4\xA0w", "or",
                                        "\xC4\xA0wor", "\xC4\xA0world", "<|endoftext|>"};
    static const char *const merges[] = {"3 4", "1 2", "12 3", "h e", "l l", "he ll", "hell o", "\xC4\xA0 w",
                                         "o r", "\xC4\xA0w or", "\xC4\xA0wor ld"}; // "ld" is no token: never fires
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
        tokens[n++] = extra[i];
    int32_t types[256 + 16];
    for (int i = 0; i < n; i++)
        types[i] = i == n - 1 ? LB_TOKATTR_CONTROL : LB_TOKATTR_NORMAL;
    struct gb b = {0};
    kv_str(&b, "tokenizer.ggml.model", "gpt2");
    kv_str(&b, "tokenizer.ggml.pre", pre);
    kv_strs(&b, "tokenizer.ggml.tokens", n, tokens);
    kv_i32s(&b, "tokenizer.ggml.token_type", n, types);
    kv_strs(&b, "tokenizer.ggml.merges", (int)(sizeof merges / sizeof merges[0]), merges);
    kv_u32(&b, "tokenizer.ggml.eos_token_id", (uint32_t)n - 1);
    struct vocab v = {gb_parse(&b, file), NULL};
    lb_error err = {0};
    if (tokenizer_from_gguf(&v.t, v.f, &err) != LB_OK)
        fail_msg("%s", err.msg);
    return v;
}

enum { T34 = 256, T12, T123, THE, TLL, THELL, THELLO, TGW, TOR, TGWOR, TGWORLD, TEOT };

static void test_bpe_pre_tokenizers(void **state) {
    uint8_t *file;
    struct vocab v = bpe_vocab("gpt2", &file);
    assert_int_equal(tokenizer_kind(v.t), LB_TOK_BPE);
    assert_false(tokenizer_add_bos(v.t));
    assert_int_equal(tokenizer_eot(v.t), TEOT); // found by name
    assert_true(tokenizer_is_eog(v.t, TEOT));
    const int32_t gpt2[] = {T12, T34};
    expect_ids(v.t, "1234", false, false, gpt2, 2);
    // "hello world": "hell o" then " w" "or" "l" "d" (there is no "ld").
    const int32_t hello[] = {THELLO, TGWOR, 'l', 'd'};
    expect_ids(v.t, "hello world", false, false, hello, 4);
    const int32_t eot[] = {'a', TEOT, 'b'};
    expect_ids(v.t, "a<|endoftext|>b", false, true, eot, 3);
    expect_round_trip(v.t, "hello world 1234\n\t\xF0\x9F\x98\x80 \xFF end");
    close_vocab(&v);
    free(file);

    v = bpe_vocab("llama-bpe", &file);
    assert_true(tokenizer_add_bos(v.t)); // Llama 3 starts with <|begin_of_text|> (this toy has no BOS id)
    const int32_t llama3[] = {T123, '4'};
    expect_ids(v.t, "1234", false, false, llama3, 2);
    close_vocab(&v);
    free(file);

    v = bpe_vocab("qwen2", &file);
    assert_false(tokenizer_add_bos(v.t));
    const int32_t qwen2[] = {'1', '2', '3', '4'};
    expect_ids(v.t, "1234", false, false, qwen2, 4);
    close_vocab(&v);
    free(file);
}

// ----------------------------------------------------------------------------
// Unicode helpers.

static void test_unicode(void **state) {
    uint32_t cp;
    assert_int_equal(unicode_decode("\xC3\xA9", 2, &cp), 2);
    assert_int_equal(cp, 0xE9);
    assert_int_equal(unicode_decode("\xF0\x9F\x98\x80", 4, &cp), 4);
    assert_int_equal(cp, 0x1F600);
    // Truncated, overlong, surrogate, lone continuation: one byte each.
    assert_int_equal(unicode_decode("\xE2\x82", 2, &cp), 1);
    assert_int_equal(cp, UNICODE_BAD_BYTE + 0xE2);
    assert_int_equal(unicode_decode("\xC0\xAF", 2, &cp), 1);
    assert_int_equal(unicode_decode("\xED\xA0\x80", 3, &cp), 1);
    assert_int_equal(unicode_decode("\x80", 1, &cp), 1);
    assert_int_equal(unicode_class_of(UNICODE_BAD_BYTE + 0x80), UNICODE_OTHER);

    assert_int_equal(unicode_class_of('a'), UNICODE_LETTER);
    assert_int_equal(unicode_class_of(0x65E5), UNICODE_LETTER); // 日
    assert_int_equal(unicode_class_of(0x0663), UNICODE_NUMBER); // Arabic-Indic three
    assert_int_equal(unicode_class_of(0x00BD), UNICODE_NUMBER); // ½
    assert_int_equal(unicode_class_of(0x3000), UNICODE_SPACE);  // ideographic space
    assert_int_equal(unicode_class_of(0x00A0), UNICODE_SPACE);
    assert_int_equal(unicode_class_of(0x200B), UNICODE_OTHER);  // zero width space is not White_Space
    assert_int_equal(unicode_class_of(0x1F600), UNICODE_OTHER);
    assert_int_equal(unicode_tolower('Q'), 'q');
    assert_int_equal(unicode_tolower(0x0100), 0x0101); // Ā → ā
    assert_int_equal(unicode_tolower(0x0416), 0x0436); // Ж → ж
    assert_int_equal(unicode_tolower(0x0101), 0x0101);
    assert_int_equal(unicode_tolower(0x212A), 'k'); // Kelvin sign
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories260k_gguf),
        cmocka_unit_test(test_llama2_tokenizer_bin),
        cmocka_unit_test(test_llama2c_matches_gguf),
        cmocka_unit_test(test_special_tokens),
        cmocka_unit_test(test_byte_fallback),
        cmocka_unit_test(test_encode_cap),
        cmocka_unit_test(test_decode_contract),
        cmocka_unit_test(test_long_text),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_bpe_pre_tokenizers),
        cmocka_unit_test(test_unicode),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    int n = (int)(sizeof tests / sizeof tests[0]);
    fflush(stderr);
    if (n_skipped)
        printf("%d skipped (no shared models: set SHARED_MODELS)\n", n_skipped);
    printf("%d passed, %d failed\n", n - failed - n_skipped, failed);
    return failed ? 1 : 0;
}
