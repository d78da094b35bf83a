/*
 * json.h — a strict JSON reader (RFC 8259) for the files a Hugging Face model
 * directory holds: the safetensors header, config.json, tokenizer.json,
 * tokenizer_config.json, model.safetensors.index.json.
 *
 * Strict means: one value and nothing after it but whitespace; no comments,
 * no trailing commas, no NaN/Infinity, no leading zeros or '+'; strings are
 * valid UTF-8 with no raw control characters, escapes are the eight JSON ones
 * and \uXXXX (a surrogate only as half of a pair); an object never repeats a
 * key; nesting is at most JSON_MAX_DEPTH deep. A refusal is one line naming
 * the file, the byte offset, what was expected and what was found:
 *   "tokenizer.json: byte 1812: expected ',' or '}' after an object member, found '\"'"
 *
 * The document is a tree allocated in one arena that json_free releases.
 * Strings are decoded (escapes resolved) and NUL-terminated; `len` counts
 * their bytes, which may include NULs written as \u0000.
 */
#ifndef LB_JSON_H
#define LB_JSON_H

#include "lowbit.h"

#define JSON_MAX_DEPTH 128

enum json_type { JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json_member;

struct json_value {
    enum json_type type;
    bool is_int;                 // NUMBER written without fraction or exponent and within int64
    size_t offset;               // byte offset of the value in the source, for messages
    union {
        struct { double f; int64_t i; } num;    // i is valid when is_int
        struct { const char *s; size_t len; } str;
        struct { struct json_value *items; size_t n; } arr;
        struct { struct json_member *items; size_t n; } obj; // in file order
    };
};

struct json_member {
    const char *key;             // decoded, NUL-terminated
    size_t key_len;
    struct json_value value;
};

struct json_doc {
    struct json_value root;
    void *arena;                 // owns every value, member and string
};

// Parse buf[0..len) (need not be NUL-terminated). `name` is the file name in
// messages. On failure *out is NULL and nothing is left allocated.
lb_status json_parse(struct json_doc **out, const char *name, const char *buf, size_t len, lb_error *err);
// Read and parse a whole file; messages use `name` (NULL: the path).
lb_status json_parse_file(struct json_doc **out, const char *path, const char *name, lb_error *err);
void json_free(struct json_doc *doc);

// The member `key` of an object, or NULL when v is not an object or has no such key.
const struct json_value *json_get(const struct json_value *v, const char *key);
const char *json_type_name(enum json_type t);   // "object", "string", ...

#endif
