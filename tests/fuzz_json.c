/*
 * fuzz_json.c — the JSON reader (engine/json.c) and the safetensors reader
 * (engine/safetensors.c) under ASan+UBSan: fixed cases first, then a
 * mutation fuzzer, as tests/fuzz_gguf.c does for GGUF.
 *
 * Fixed cases: documents that must parse (escapes, surrogate pairs, numbers
 * at the int64 edges, deep nesting at the limit) and ones that must be
 * refused with a message naming the file and the byte offset where the
 * error is (trailing commas, comments, NaN, leading zeros, lone surrogates,
 * raw control characters, invalid UTF-8, duplicate keys, nesting past the
 * limit, truncation); safetensors buffers that must be refused (header
 * length past the file, overlapping or gapped tensors, a byte count that
 * does not match the shape, unaligned data, unknown dtype).
 *
 * Fuzzing: each input is a seed (JSON documents shaped like config.json and
 * tokenizer.json, and a safetensors file) in a buffer of exactly its size,
 * with one to four mutations (bit flips, JSON-significant bytes, truncation,
 * chunk duplication and deletion). An accepted JSON document is written out
 * again and must parse to the same tree; an accepted safetensors file has
 * every tensor's bytes read and must tile its data region. A refusal must
 * carry a one-line message naming the file.
 *
 *   tests/fuzz_json       fixed cases and 60000 inputs; FUZZ_ITERS and FUZZ_SEED override
 */
#include "json.h"
#include "safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

static void check(bool ok, const char *what, const char *detail) {
    if (ok) {
        passed++;
        return;
    }
    failed++;
    fprintf(stderr, "FAIL %s: %s\n", what, detail ? detail : "");
}

static bool one_line_naming(const lb_error *err, const char *name) {
    return strncmp(err->msg, name, strlen(name)) == 0 && !strchr(err->msg, '\n');
}

// ----------------------------------------------------------------------------
// JSON: writing a tree back out, and comparing trees

struct buf {
    char *p;
    size_t n, cap;
};

static void put(struct buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void put_str(struct buf *b, const char *s, size_t n) {
    put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') put(b, "\\", 1), put(b, (const char *)&c, 1);
        else if (c < 0x20) put(b, esc, (size_t)snprintf(esc, sizeof esc, "\\u%04x", c));
        else put(b, (const char *)&c, 1);
    }
    put(b, "\"", 1);
}

static void write_json(struct buf *b, const struct json_value *v) {
    char num[64];
    switch (v->type) {
    case JSON_NULL: put(b, "null", 4); break;
    case JSON_TRUE: put(b, "true", 4); break;
    case JSON_FALSE: put(b, "false", 5); break;
    case JSON_NUMBER:
        if (v->is_int) put(b, num, (size_t)snprintf(num, sizeof num, "%lld", (long long)v->num.i));
        else if (isinf(v->num.f)) put(b, v->num.f > 0 ? "1e999" : "-1e999", v->num.f > 0 ? 5 : 6);
        else put(b, num, (size_t)snprintf(num, sizeof num, "%.17g%s", v->num.f,
                                          floor(v->num.f) == v->num.f && fabs(v->num.f) < 1e17 ? ".0" : ""));
        break;
    case JSON_STRING: put_str(b, v->str.s, v->str.len); break;
    case JSON_ARRAY:
        put(b, "[", 1);
        for (size_t i = 0; i < v->arr.n; i++) {
            if (i) put(b, ",", 1);
            write_json(b, &v->arr.items[i]);
        }
        put(b, "]", 1);
        break;
    case JSON_OBJECT:
        put(b, "{", 1);
        for (size_t i = 0; i < v->obj.n; i++) {
            if (i) put(b, ",", 1);
            put_str(b, v->obj.items[i].key, v->obj.items[i].key_len);
            put(b, ":", 1);
            write_json(b, &v->obj.items[i].value);
        }
        put(b, "}", 1);
        break;
    }
}

static bool same_tree(const struct json_value *a, const struct json_value *b) {
    if (a->type != b->type) return false;
    switch (a->type) {
    case JSON_NUMBER:
        if (a->is_int != b->is_int) return false;
        return a->is_int ? a->num.i == b->num.i : (a->num.f == b->num.f || (a->num.f != a->num.f && b->num.f != b->num.f));
    case JSON_STRING: return a->str.len == b->str.len && !memcmp(a->str.s, b->str.s, a->str.len);
    case JSON_ARRAY:
        if (a->arr.n != b->arr.n) return false;
        for (size_t i = 0; i < a->arr.n; i++)
            if (!same_tree(&a->arr.items[i], &b->arr.items[i])) return false;
        return true;
    case JSON_OBJECT:
        if (a->obj.n != b->obj.n) return false;
        for (size_t i = 0; i < a->obj.n; i++)
            if (a->obj.items[i].key_len != b->obj.items[i].key_len ||
                memcmp(a->obj.items[i].key, b->obj.items[i].key, a->obj.items[i].key_len) ||
                !same_tree(&a->obj.items[i].value, &b->obj.items[i].value))
                return false;
        return true;
    default: return true;
    }
}

// Every string NUL-terminated and every offset inside the input.
static bool sane(const struct json_value *v, size_t size) {
    if (v->offset >= size) return false;
    if (v->type == JSON_STRING) return v->str.s[v->str.len] == 0;
    if (v->type == JSON_ARRAY)
        for (size_t i = 0; i < v->arr.n; i++)
            if (!sane(&v->arr.items[i], size)) return false;
    if (v->type == JSON_OBJECT)
        for (size_t i = 0; i < v->obj.n; i++)
            if (v->obj.items[i].key[v->obj.items[i].key_len] || !sane(&v->obj.items[i].value, size)) return false;
    return true;
}

// ----------------------------------------------------------------------------
// Fixed cases

static void json_accepts(const char *text, const char *what) {
    lb_error err = {0};
    struct json_doc *d;
    lb_status st = json_parse(&d, "t.json", text, strlen(text), &err);
    check(st == LB_OK, what, err.msg);
    json_free(st == LB_OK ? d : NULL);
}

// Refused, with "t.json: byte OFFSET: " leading the message.
static void json_refuses(const char *text, size_t len, size_t offset, const char *what) {
    lb_error err = {0};
    struct json_doc *d = NULL;
    lb_status st = json_parse(&d, "t.json", text, len, &err);
    char want[64];
    snprintf(want, sizeof want, "t.json: byte %zu: ", offset);
    char detail[700];
    snprintf(detail, sizeof detail, "status %d, message \"%s\" (wanted it to start \"%s\")", st, err.msg, want);
    check(st == LB_ERR_FORMAT && !d && !strncmp(err.msg, want, strlen(want)) && !strchr(err.msg, '\n'), what,
          detail);
}
#define REFUSE(text, off, what) json_refuses(text, sizeof text - 1, off, what)

static void json_fixed(void) {
    json_accepts("{\"a\": [1, -2.5e3, true, false, null, \"x\"], \"b\": {}}", "plain document");
    json_accepts(" \t\r\n[]\n ", "whitespace around");
    json_accepts("\"\\u00e9\\ud83d\\ude80\\n\\\"\\\\\\/\"", "escapes and a surrogate pair");
    json_accepts("[9223372036854775807, -9223372036854775808, 9223372036854775808, 1e400]", "int64 edges");

    lb_error err = {0};
    struct json_doc *d;
    const char *t = "{\"s\": \"\\u00e9\\ud83d\\ude80\\u0000x\", \"i\": -9223372036854775808, \"big\": 18446744073709551616,"
                    " \"f\": 0.5, \"e\": 1E+2, \"k\": \"\xe2\x96\x81\"}";
    if (json_parse(&d, "t.json", t, strlen(t), &err) == LB_OK) {
        const struct json_value *s = json_get(&d->root, "s"), *i = json_get(&d->root, "i"),
                                *big = json_get(&d->root, "big"), *f = json_get(&d->root, "f"),
                                *e = json_get(&d->root, "e");
        check(s && s->str.len == 8 && !memcmp(s->str.s, "\xc3\xa9\xf0\x9f\x9a\x80\0x", 8), "decoded string", NULL);
        check(i && i->is_int && i->num.i == INT64_MIN, "INT64_MIN exact", NULL);
        check(big && !big->is_int && big->num.f == 18446744073709551616.0, "2^64 as a double", NULL);
        check(f && !f->is_int && f->num.f == 0.5 && e && !e->is_int && e->num.f == 100.0, "fractions, exponents", NULL);
        check(!json_get(&d->root, "missing") && json_get(&d->root, "k"), "json_get", NULL);
        json_free(d);
    } else {
        check(false, "decoding document", err.msg);
    }

    char deep[2 * JSON_MAX_DEPTH + 8];
    memset(deep, '[', JSON_MAX_DEPTH);
    memset(deep + JSON_MAX_DEPTH, ']', JSON_MAX_DEPTH);
    deep[2 * JSON_MAX_DEPTH] = 0;
    json_accepts(deep, "nesting at the limit");
    char deeper[2 * JSON_MAX_DEPTH + 8];
    memset(deeper, '[', JSON_MAX_DEPTH + 1);
    memset(deeper + JSON_MAX_DEPTH + 1, ']', JSON_MAX_DEPTH + 1);
    json_refuses(deeper, 2 * JSON_MAX_DEPTH + 2, JSON_MAX_DEPTH, "nesting past the limit");

    REFUSE("", 0, "empty input");
    REFUSE("{\"a\": 1,}", 8, "trailing comma in an object");
    REFUSE("[1, 2,]", 6, "trailing comma in an array");
    REFUSE("{\"a\" 1}", 5, "missing colon");
    REFUSE("{a: 1}", 1, "unquoted key");
    REFUSE("[1] [2]", 4, "two top-level values");
    REFUSE("// c\n{}", 0, "comment");
    REFUSE("[NaN]", 1, "NaN");
    REFUSE("[Infinity]", 1, "Infinity");
    REFUSE("[01]", 2, "leading zero");
    REFUSE("[+1]", 1, "leading plus");
    REFUSE("[1.]", 3, "no digit after the point");
    REFUSE("[1e]", 3, "no digit in the exponent");
    REFUSE("[-]", 2, "lone minus");
    REFUSE("[tru]", 1, "truncated literal");
    REFUSE("[\"a\\x\"]", 4, "unknown escape");
    REFUSE("[\"\\u12G4\"]", 4, "bad hex in \\u");
    REFUSE("[\"\\ude00\"]", 2, "lone low surrogate");
    REFUSE("[\"\\ud83dx\"]", 8, "high surrogate without a low one");
    REFUSE("[\"a\tb\"]", 3, "raw tab in a string");
    REFUSE("[\"\xc3\"]", 2, "truncated UTF-8");
    REFUSE("[\"\xc0\xaf\"]", 2, "overlong UTF-8");
    REFUSE("[\"\xed\xa0\x80\"]", 2, "UTF-8 surrogate");
    REFUSE("[\"\xf4\x90\x80\x80\"]", 2, "past U+10FFFF");
    REFUSE("\xef\xbb\xbf{}", 0, "byte order mark");
    REFUSE("{\"a\": 1, \"a\": 2}", 14, "duplicate key");
    REFUSE("[\"abc", 5, "unterminated string");
    REFUSE("{\"a\": [1, 2", 11, "truncated document");
    json_refuses("[\"a\0b\"]", 7, 3, "NUL byte in a string");

    // A file: the message names the path.
    lb_error ferr = {0};
    check(json_parse_file(&d, "/nonexistent/config.json", NULL, &ferr) == LB_ERR_IO &&
              one_line_naming(&ferr, "/nonexistent/config.json"),
          "missing file", ferr.msg);
}

// A safetensors buffer: header text padded to 8 bytes, then `data` bytes.
static size_t make_st(uint8_t *out, size_t cap, const char *header, size_t data) {
    size_t n = strlen(header), padded = (n + 7) / 8 * 8;
    if (8 + padded + data > cap) abort();
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(out + 8, header, n);
    memset(out + 8 + n, ' ', padded - n);
    for (size_t i = 0; i < data; i++) out[8 + padded + i] = (uint8_t)(i * 7);
    return 8 + padded + data;
}

static void st_refuses(const char *header, size_t data, size_t trim, const char *needle, const char *what) {
    static uint8_t b[4096];
    size_t n = make_st(b, sizeof b, header, data) - trim;
    uint8_t *exact = malloc(n ? n : 1);
    memcpy(exact, b, n);
    lb_error err = {0};
    struct st_file *f = NULL;
    lb_status st = st_parse(&f, "m.safetensors", exact, n, &err);
    char detail[700];
    snprintf(detail, sizeof detail, "status %d, message \"%s\" (wanted \"%s\")", st, err.msg, needle);
    check(st != LB_OK && !f && one_line_naming(&err, "m.safetensors") && strstr(err.msg, needle), what, detail);
    free(exact);
}

static void st_fixed(void) {
    static uint8_t b[4096];
    const char *good = "{\"__metadata__\":{\"format\":\"pt\"},"
                       "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                       "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},"
                       "\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[32,40]}}";
    size_t n = make_st(b, sizeof b, good, 40);
    lb_error err = {0};
    struct st_file *f;
    if (st_parse(&f, "m.safetensors", b, n, &err) == LB_OK) {
        const struct st_tensor *w = st_find(f, "w"), *s = st_find(f, "s");
        check(f->n_tensors == 3 && f->n_meta == 1 && !strcmp(f->meta_keys[0], "format") &&
                  !strcmp(f->meta_values[0], "pt"),
              "tensors and metadata", NULL);
        check(w && w->dtype == ST_F32 && w->n_dims == 2 && w->shape[0] == 2 && w->shape[1] == 3 &&
                  w->n_elements == 6 && w->nbytes == 24 && w->data == f->data,
              "F32 [2, 3] at offset 0", NULL);
        check(s && s->n_dims == 0 && s->n_elements == 1 && s->nbytes == 8, "scalar", NULL);
        check(st_dtype_lb_type(ST_BF16) == LB_TYPE_BF16 && st_dtype_lb_type(ST_I64) < 0, "dtype to engine type", NULL);
        st_close(f);
    } else {
        check(false, "valid safetensors", err.msg);
    }
    const char *one = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    st_refuses(one, 8, 1, "truncated", "truncated data");
    st_refuses(one, 12, 0, "file has 12", "bytes after the last tensor");
    st_refuses(one, 8, 9, "truncated", "header length past the end");
    st_refuses("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, 0, "expected 12", "shape vs bytes");
    st_refuses("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, 0, "without gaps", "overlap");
    st_refuses("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, 0, "without gaps", "gap");
    st_refuses("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[1,5]}}", 5, 0, "not aligned", "unaligned F32");
    st_refuses("{\"w\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,1]}}", 1, 0, "unknown", "unknown dtype");
    st_refuses("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0, 0, "shape[0]", "negative dim");
    st_refuses("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, 0, "unknown",
               "extra field");
    st_refuses("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},}", 4, 0, "JSON header: byte",
               "bad JSON in the header");
    st_refuses("[]", 0, 0, "'{'", "header not an object");
    st_refuses("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4, 0,
               "overflows", "element count overflow");
    uint8_t big[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
    check(st_parse(&f, "m.safetensors", big, sizeof big, &err) == LB_ERR_FORMAT && strstr(err.msg, "exceeds"),
          "huge header length", err.msg);
    check(st_open(&f, "/nonexistent/model.safetensors", NULL, &err) == LB_ERR_IO &&
              one_line_naming(&err, "/nonexistent/model.safetensors"),
          "missing file", err.msg);
}

// ----------------------------------------------------------------------------
// Fuzzing

static uint64_t rng_state;
static uint64_t rnd(void) { // splitmix64
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static const char *const json_seeds[] = {
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 4096,"
    " \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, \"rope_scaling\": null, \"tie_word_embeddings\": false,"
    " \"eos_token_id\": [128001, 128008], \"torch_dtype\": \"bfloat16\"}",
    "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 0, \"content\": \"<unk>\", \"special\": true}],"
    " \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", \"prepend\": \"\xe2\x96\x81\"}]},"
    " \"model\": {\"type\": \"BPE\", \"vocab\": {\"<0x0A>\": 13, \"\\u0120t\": 5, \"\xc3\xa9\": 6},"
    " \"merges\": [\"\\u0120 t\", [\"a\", \"b c\"]]}, \"s\": \"\\ud83d\\ude80\\\"\\\\\\n\"}",
    "[[[[[]]]], -0.0, 1.5e-300, 123456789012345678901234567890, \"\", {\"\": {}}]",
};

static const char interesting[] = "\"\\{}[],:0-+.eEu \t\nntf\x80\xff\xed\xc3";

static size_t mutate(uint8_t *d, size_t n, size_t cap) {
    int k = 1 + (int)(rnd() % 4);
    while (k--) {
        size_t at = n ? rnd() % n : 0;
        switch (rnd() % 6) {
        case 0: if (n) d[at] ^= (uint8_t)(1u << (rnd() % 8)); break;
        case 1: if (n) d[at] = (uint8_t)interesting[rnd() % (sizeof interesting - 1)]; break;
        case 2: n = at; break; // truncate
        case 3: { // duplicate a chunk
            size_t len = 1 + rnd() % 16;
            if (at + len <= n && n + len <= cap) {
                memmove(d + at + len, d + at, n - at);
                n += len;
            }
            break;
        }
        case 4: { // delete a chunk
            size_t len = 1 + rnd() % 16;
            if (at + len <= n) {
                memmove(d + at, d + at + len, n - at - len);
                n -= len;
            }
            break;
        }
        default: if (n) d[at] = (uint8_t)rnd(); break;
        }
    }
    return n;
}

static void fuzz_json(long iters) {
    uint8_t work[4096];
    long accepted = 0, contract_fail = 0;
    for (long it = 0; it < iters; it++) {
        const char *seed = json_seeds[rnd() % (sizeof json_seeds / sizeof json_seeds[0])];
        size_t n = strlen(seed);
        memcpy(work, seed, n);
        n = mutate(work, n, sizeof work);
        char *exact = malloc(n ? n : 1); // exactly n bytes: ASan sees a read past the end
        memcpy(exact, work, n);
        lb_error err = {0};
        struct json_doc *d = NULL;
        lb_status st = json_parse(&d, "fuzz.json", exact, n, &err);
        if (st == LB_OK) {
            accepted++;
            struct buf b = {0};
            write_json(&b, &d->root);
            struct json_doc *again = NULL;
            lb_status st2 = json_parse(&again, "again.json", b.p, b.n, &err);
            bool ok = st2 == LB_OK && sane(&d->root, n) && same_tree(&d->root, &again->root);
            if (!ok) {
                contract_fail++;
                fprintf(stderr, "FAIL accepted document does not round-trip: %.*s -> %.*s (%s)\n", (int)n, exact,
                        (int)b.n, b.p, err.msg);
            }
            json_free(again);
            free(b.p);
            json_free(d);
        } else if (d || (st != LB_ERR_NOMEM && !one_line_naming(&err, "fuzz.json: byte "))) {
            contract_fail++;
            fprintf(stderr, "FAIL refusal without a one-line message naming file and byte: %s\n", err.msg);
        }
        free(exact);
    }
    char detail[96];
    snprintf(detail, sizeof detail, "%ld inputs, %ld accepted", iters, accepted);
    check(contract_fail == 0 && accepted > 0 && accepted < iters, "JSON fuzz", detail);
    printf("json fuzz: %s\n", detail);
}

static void fuzz_st(long iters) {
    static uint8_t seed[4096], work[4096];
    size_t seed_n = make_st(seed, sizeof seed,
                            "{\"__metadata__\":{\"format\":\"pt\"},"
                            "\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                            "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},"
                            "\"c\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[32,32]},"
                            "\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[32,40]}}",
                            40);
    long accepted = 0, contract_fail = 0;
    uint64_t sink = 0;
    for (long it = 0; it < iters; it++) {
        memcpy(work, seed, seed_n);
        size_t n = mutate(work, seed_n, sizeof work);
        uint8_t *exact = malloc(n ? n : 1);
        memcpy(exact, work, n);
        lb_error err = {0};
        struct st_file *f = NULL;
        lb_status st = st_parse(&f, "fuzz.safetensors", exact, n, &err);
        if (st == LB_OK) {
            accepted++;
            size_t total = 0;
            for (int i = 0; i < f->n_tensors; i++) {
                const struct st_tensor *t = &f->tensors[i];
                for (size_t j = 0; j < t->nbytes; j++) sink += ((const uint8_t *)t->data)[j];
                total += t->nbytes;
                if (st_find(f, t->name) != t) contract_fail++, fprintf(stderr, "FAIL tensor not found by name\n");
            }
            if (total != f->data_size) contract_fail++, fprintf(stderr, "FAIL accepted file does not tile its data\n");
            st_close(f);
        } else if (f || !one_line_naming(&err, "fuzz.safetensors")) {
            contract_fail++;
            fprintf(stderr, "FAIL refusal without a one-line message naming the file: %s\n", err.msg);
        }
        free(exact);
    }
    char detail[96];
    snprintf(detail, sizeof detail, "%ld inputs, %ld accepted", iters, accepted);
    check(contract_fail == 0 && accepted > 0 && accepted < iters, "safetensors fuzz", detail);
    printf("safetensors fuzz: %s (sink %llu)\n", detail, (unsigned long long)(sink & 1));
}

int main(void) {
    const char *s = getenv("FUZZ_SEED"), *it = getenv("FUZZ_ITERS");
    rng_state = s ? strtoull(s, NULL, 10) : 20240601;
    long iters = it ? strtol(it, NULL, 10) : 60000;
    json_fixed();
    st_fixed();
    fuzz_json(iters);
    fuzz_st(iters / 2);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
