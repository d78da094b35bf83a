/*
 * hf.c — a Hugging Face model directory as a GGUF file in memory (hf.h).
 *
 * What convert_hf_to_gguf.py does, done at load time and checked:
 *   config.json           → general.architecture and the {arch}.* hyperparameters
 *   tokenizer.json        → tokenizer.ggml.* (SentencePiece-converted BPE with byte
 *                           fallback → "llama"; byte-level BPE → "gpt2" with the
 *                           pre-tokenizer recognised from its split regex)
 *   tokenizer_config.json → BOS/EOS/UNK/PAD ids, add_bos/add_eos, chat template
 *   *.safetensors         → tensors renamed to GGUF's names, LLaMA's q/k rows permuted
 *
 * Two places where lowbit does what Hugging Face does rather than what the
 * converter does, because the converter needs `transformers` there:
 *   - SentencePiece-style vocabularies without tokenizer.model: the converter
 *     (LlamaHfVocab) gives every piece the score -1000, which makes llama.cpp
 *     merge left to right; here each piece's score is minus the rank of the
 *     first merge that builds it, so merging by score is merging by rank,
 *     which is what `tokenizers` does.
 *   - The pre-tokenizer of byte-level vocabularies is recognised from the
 *     regex in tokenizer.json, not from a hash of the tokenization of a test
 *     string.
 *
 * Sections: building the file, config.json, tokenizer.json, tensors, open.
 */
#include "hf.h"

#include "internal.h"
#include "json.h"
#include "safetensors.h"
#include "types.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// ----------------------------------------------------------------------------
// Building the file

// What the virtual file owns beyond its kv and tensor arrays.
struct hf_owner {
    struct st_file **shards;
    int n_shards;
    void **blocks;        // strings, permuted tensors: freed one by one
    size_t n_blocks, cap_blocks;
};

static void owner_free(void *p) {
    struct hf_owner *o = p;
    if (!o) return;
    for (int i = 0; i < o->n_shards; i++) st_close(o->shards[i]);
    free(o->shards);
    for (size_t i = 0; i < o->n_blocks; i++) free(o->blocks[i]);
    free(o->blocks);
    free(o);
}

// The model being read: the directory, its config and the file being built.
struct hf {
    struct gguf_file *f;
    struct hf_owner *own;
    lb_error *err;
    char *dir;            // without a trailing '/'
    char path[4096];      // scratch: dir + "/" + a file name
    size_t cap_kv, cap_tensors;

    char arch[16];        // "llama" or "qwen2"
    bool permute_qk;      // llama: HF halves → GGUF pairs
    int64_t n_embd, n_ff, n_layer, n_head, n_head_kv, head_dim, n_vocab, n_ctx;
    bool tied;
    const struct json_value *config;
    int64_t bos_cfg, eos_cfg, pad_cfg; // config.json's *_token_id, -1 when absent
};

static const char *file_path(struct hf *h, const char *name) {
    snprintf(h->path, sizeof h->path, "%s/%s", h->dir, name);
    return h->path;
}

static lb_status oom(struct hf *h) { return lb_fail(h->err, LB_ERR_NOMEM, "%s: out of memory", h->dir); }

// Hand a malloc'd block to the file; frees it and returns NULL on failure.
static void *keep(struct hf *h, void *p) {
    if (!p) return NULL;
    struct hf_owner *o = h->own;
    if (o->n_blocks == o->cap_blocks) {
        size_t cap = o->cap_blocks ? o->cap_blocks * 2 : 64;
        void **b = realloc(o->blocks, cap * sizeof *b);
        if (!b) {
            free(p);
            return NULL;
        }
        o->blocks = b;
        o->cap_blocks = cap;
    }
    o->blocks[o->n_blocks++] = p;
    return p;
}

static const char *keep_str(struct hf *h, const char *s, size_t len) {
    char *c = keep(h, malloc(len + 1));
    if (c) {
        memcpy(c, s, len);
        c[len] = 0;
    }
    return c;
}

// A new key with an unset value; NULL when out of memory.
static struct gguf_value *add_kv(struct hf *h, const char *key) {
    struct gguf_file *f = h->f;
    if (f->n_kv == h->cap_kv) {
        size_t cap = h->cap_kv ? h->cap_kv * 2 : 32;
        struct gguf_kv *kv = realloc(f->kv, cap * sizeof *kv);
        if (!kv) return NULL;
        f->kv = kv;
        h->cap_kv = cap;
    }
    const char *k = keep_str(h, key, strlen(key));
    if (!k) return NULL;
    struct gguf_kv *kv = &f->kv[f->n_kv++];
    memset(kv, 0, sizeof *kv);
    kv->key = (struct gguf_str){strlen(key), k};
    kv->value.type = GGUF_UINT8; // until set: a plain value gguf_close need not free
    return &kv->value;
}

static lb_status set_u32(struct hf *h, const char *key, uint32_t v) {
    struct gguf_value *x = add_kv(h, key);
    if (!x) return oom(h);
    x->type = GGUF_UINT32;
    x->u64 = v;
    return LB_OK;
}

static lb_status set_f32(struct hf *h, const char *key, double v) {
    struct gguf_value *x = add_kv(h, key);
    if (!x) return oom(h);
    x->type = GGUF_FLOAT32;
    x->f64 = (float)v;
    return LB_OK;
}

static lb_status set_bool(struct hf *h, const char *key, bool v) {
    struct gguf_value *x = add_kv(h, key);
    if (!x) return oom(h);
    x->type = GGUF_BOOL;
    x->u64 = v;
    return LB_OK;
}

static lb_status set_str(struct hf *h, const char *key, const char *s, size_t len) {
    struct gguf_value *x = add_kv(h, key);
    const char *c = x ? keep_str(h, s, len) : NULL;
    if (!c) return oom(h);
    x->type = GGUF_STRING;
    x->str = (struct gguf_str){len, c};
    return LB_OK;
}

// An array of n items of `type`, zeroed, for the caller to fill.
static struct gguf_value *set_arr(struct hf *h, const char *key, enum gguf_vtype type, size_t n) {
    struct gguf_value *x = add_kv(h, key);
    struct gguf_value *items = x ? calloc(n ? n : 1, sizeof *items) : NULL;
    if (!items) return NULL;
    x->type = GGUF_ARRAY;
    x->arr.type = type;
    x->arr.n = n;
    x->arr.items = items;
    for (size_t i = 0; i < n; i++) items[i].type = type;
    return items;
}

static lb_status set_arch(struct hf *h, const char *suffix, const char *kind, double v) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", h->arch, suffix);
    return kind[0] == 'u' ? set_u32(h, key, (uint32_t)v) : set_f32(h, key, v);
}

// ----------------------------------------------------------------------------
// config.json

// A field, or NULL when absent or null (transformers writes "head_dim": null).
static const struct json_value *field(const struct json_value *obj, const char *key) {
    const struct json_value *v = json_get(obj, key);
    return v && v->type != JSON_NULL ? v : NULL;
}

#define REQUIRED INT64_MIN

// An integer field in [lo, hi]; `dflt` when absent, or an error when REQUIRED.
static lb_status cfg_int(struct hf *h, const char *key, int64_t dflt, int64_t lo, int64_t hi, int64_t *out) {
    const struct json_value *v = field(h->config, key);
    if (!v) {
        if (dflt == REQUIRED)
            return lb_fail(h->err, LB_ERR_MISSING, "%s: field '%s' missing (required for %s models)",
                           file_path(h, "config.json"), key, h->arch);
        *out = dflt;
        return LB_OK;
    }
    if (v->type != JSON_NUMBER || !v->is_int || v->num.i < lo || v->num.i > hi)
        return lb_fail(h->err, LB_ERR_FORMAT, "%s: field '%s' at byte %zu is not an integer in %lld..%lld",
                       file_path(h, "config.json"), key, v->offset, (long long)lo, (long long)hi);
    *out = v->num.i;
    return LB_OK;
}

static lb_status cfg_float(struct hf *h, const struct json_value *obj, const char *key, double dflt, double lo,
                           double hi, double *out) {
    const struct json_value *v = field(obj, key);
    if (!v) {
        *out = dflt;
        return LB_OK;
    }
    if (v->type != JSON_NUMBER || !(v->num.f >= lo && v->num.f <= hi))
        return lb_fail(h->err, LB_ERR_FORMAT, "%s: field '%s' at byte %zu is not a number in %g..%g",
                       file_path(h, "config.json"), key, v->offset, lo, hi);
    *out = v->num.f;
    return LB_OK;
}

// The architectures we read: config.json's model_type (or the class in
// "architectures") → the GGUF architecture and whether q/k are permuted.
static const struct {
    const char *model_type, *class_name, *arch;
    bool permute;
} known_archs[] = {
    {"llama", "LlamaForCausalLM", "llama", true},
    {"mistral", "MistralForCausalLM", "llama", true},
    {"qwen2", "Qwen2ForCausalLM", "qwen2", false},
};

static lb_status read_config(struct hf *h) {
    const char *file = file_path(h, "config.json");
    const struct json_value *c = h->config;
    if (c->type != JSON_OBJECT)
        return lb_fail(h->err, LB_ERR_FORMAT, "%s: top level is a %s (expected an object)", file,
                       json_type_name(c->type));
    const struct json_value *mt = field(c, "model_type"), *classes = field(c, "architectures");
    const char *cls = classes && classes->type == JSON_ARRAY && classes->arr.n > 0 &&
                              classes->arr.items[0].type == JSON_STRING
                          ? classes->arr.items[0].str.s
                          : NULL;
    if (mt && mt->type != JSON_STRING)
        return lb_fail(h->err, LB_ERR_FORMAT, "%s: field 'model_type' is a %s (expected a string)", file,
                       json_type_name(mt->type));
    size_t k = 0, n_known = sizeof known_archs / sizeof known_archs[0];
    if (mt)
        while (k < n_known && strcmp(mt->str.s, known_archs[k].model_type)) k++;
    else if (cls)
        while (k < n_known && strcmp(cls, known_archs[k].class_name)) k++;
    else
        return lb_fail(h->err, LB_ERR_MISSING, "%s: fields 'model_type' and 'architectures' missing (expected "
                       "model_type llama, mistral or qwen2)", file);
    if (k == n_known)
        return lb_fail(h->err, LB_ERR_UNSUPPORTED, "%s: %s '%.64s' unsupported (expected llama, mistral or qwen2)",
                       file, mt ? "model_type" : "architectures[0]", mt ? mt->str.s : cls);
    strcpy(h->arch, known_archs[k].arch);
    h->permute_qk = known_archs[k].permute;

    lb_status st;
    if ((st = cfg_int(h, "hidden_size", REQUIRED, 1, 1 << 20, &h->n_embd)) ||
        (st = cfg_int(h, "intermediate_size", REQUIRED, 1, 1 << 22, &h->n_ff)) ||
        (st = cfg_int(h, "num_hidden_layers", REQUIRED, 1, 4096, &h->n_layer)) ||
        (st = cfg_int(h, "num_attention_heads", REQUIRED, 1, 1 << 14, &h->n_head)) ||
        (st = cfg_int(h, "num_key_value_heads", h->n_head, 1, h->n_head, &h->n_head_kv)) ||
        (st = cfg_int(h, "vocab_size", REQUIRED, 1, INT32_MAX, &h->n_vocab)) ||
        (st = cfg_int(h, "max_position_embeddings", 2048, 1, 1 << 24, &h->n_ctx)))
        return st;
    if (h->n_embd % h->n_head)
        return lb_fail(h->err, LB_ERR_FORMAT, "%s: hidden_size %lld is not a multiple of num_attention_heads %lld",
                       file, (long long)h->n_embd, (long long)h->n_head);
    if (h->n_head % h->n_head_kv)
        return lb_fail(h->err, LB_ERR_FORMAT,
                       "%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld", file,
                       (long long)h->n_head, (long long)h->n_head_kv);
    h->head_dim = h->n_embd / h->n_head;
    int64_t head_dim;
    if ((st = cfg_int(h, "head_dim", h->head_dim, 1, 1 << 16, &head_dim))) return st;
    if (head_dim != h->head_dim)
        return lb_fail(h->err, LB_ERR_UNSUPPORTED,
                       "%s: head_dim %lld differs from hidden_size/num_attention_heads %lld (not supported)", file,
                       (long long)head_dim, (long long)h->head_dim);
    if (h->head_dim % 2)
        return lb_fail(h->err, LB_ERR_FORMAT, "%s: head dimension %lld is odd (rotary embeddings need it even)", file,
                       (long long)h->head_dim);

    // Mistral's sliding window: the engine attends to the whole context, which
    // is the same model as long as the context stays inside the window.
    const struct json_value *sw = field(c, "sliding_window"), *use_sw = field(c, "use_sliding_window");
    bool windowed = sw && !(use_sw && use_sw->type == JSON_FALSE) && strcmp(known_archs[k].model_type, "qwen2");
    if (windowed) {
        int64_t w;
        if ((st = cfg_int(h, "sliding_window", 0, 1, INT32_MAX, &w))) return st;
        if (w < h->n_ctx) h->n_ctx = w;
    }

    const struct json_value *tie = field(c, "tie_word_embeddings");
    if (tie && tie->type != JSON_TRUE && tie->type != JSON_FALSE)
        return lb_fail(h->err, LB_ERR_FORMAT, "%s: field 'tie_word_embeddings' is a %s (expected true or false)", file,
                       json_type_name(tie->type));
    h->tied = tie && tie->type == JSON_TRUE;

    // transformers' defaults for these three classes: eps 1e-6, theta 10000.
    double eps, theta;
    if ((st = cfg_float(h, c, "rms_norm_eps", 1e-6, 0, 1, &eps))) return st;
    // Newer transformers put rope_theta and the scaling in "rope_parameters".
    const struct json_value *rp = field(c, "rope_parameters");
    const struct json_value *rope_obj = rp && rp->type == JSON_OBJECT ? rp : c;
    if ((st = cfg_float(h, rope_obj, "rope_theta", 10000.0, 1e-3, 1e12, &theta))) return st;
    const struct json_value *scaling = rp && rp->type == JSON_OBJECT ? rp : field(c, "rope_scaling");
    double factor = 1.0;
    bool linear = false;
    if (scaling) {
        if (scaling->type != JSON_OBJECT)
            return lb_fail(h->err, LB_ERR_FORMAT, "%s: field 'rope_scaling' is a %s (expected an object or null)",
                           file, json_type_name(scaling->type));
        const struct json_value *type = field(scaling, "rope_type");
        if (!type) type = field(scaling, "type");
        const char *t = type && type->type == JSON_STRING ? type->str.s : "default";
        if (!strcmp(t, "linear")) {
            linear = true;
            if ((st = cfg_float(h, scaling, "factor", 1.0, 1e-3, 1e6, &factor))) return st;
        } else if (strcmp(t, "default")) {
            return lb_fail(h->err, LB_ERR_UNSUPPORTED,
                           "%s: rope scaling type '%.32s' unsupported (expected linear or none)", file, t);
        }
    }

    h->bos_cfg = h->eos_cfg = h->pad_cfg = -1;
    const struct json_value *id;
    if ((id = field(c, "bos_token_id")) && id->is_int && id->num.i >= 0) h->bos_cfg = id->num.i;
    if ((id = field(c, "eos_token_id")) && id->is_int && id->num.i >= 0) h->eos_cfg = id->num.i;
    if ((id = field(c, "pad_token_id")) && id->is_int && id->num.i >= 0) h->pad_cfg = id->num.i;

    // The keys convert_hf_to_gguf.py writes for these architectures.
    const char *name = strrchr(h->dir, '/');
    name = name ? name + 1 : h->dir;
    if ((st = set_str(h, "general.architecture", h->arch, strlen(h->arch))) ||
        (st = set_str(h, "general.name", name, strlen(name))) ||
        (st = set_arch(h, "block_count", "u", (double)h->n_layer)) ||
        (st = set_arch(h, "context_length", "u", (double)h->n_ctx)) ||
        (st = set_arch(h, "embedding_length", "u", (double)h->n_embd)) ||
        (st = set_arch(h, "feed_forward_length", "u", (double)h->n_ff)) ||
        (st = set_arch(h, "attention.head_count", "u", (double)h->n_head)) ||
        (st = set_arch(h, "attention.head_count_kv", "u", (double)h->n_head_kv)) ||
        (st = set_arch(h, "rope.freq_base", "f", theta)) ||
        (st = set_arch(h, "attention.layer_norm_rms_epsilon", "f", eps)))
        return st;
    if (h->permute_qk && ((st = set_arch(h, "vocab_size", "u", (double)h->n_vocab)) ||
                          (st = set_arch(h, "rope.dimension_count", "u", (double)h->head_dim))))
        return st;
    if (linear) {
        char key[64];
        snprintf(key, sizeof key, "%s.rope.scaling.type", h->arch);
        if ((st = set_str(h, key, "linear", 6)) || (st = set_arch(h, "rope.scaling.factor", "f", factor))) return st;
    }
    return LB_OK;
}

// ----------------------------------------------------------------------------
// tokenizer.json (and tokenizer_config.json)

// GGUF token types (llama.cpp's llama_token_type).
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6 };

// Piece → id, open addressing over the token array (FNV-1a).
struct piece_map {
    int32_t *slot;    // id + 1, 0 empty
    size_t mask;
    const struct gguf_value *tokens;
};

static uint64_t fnv(const char *s, size_t n) {
    uint64_t x = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) x = (x ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return x;
}

static int32_t map_find(const struct piece_map *m, const char *s, size_t n) {
    for (size_t i = fnv(s, n) & m->mask;; i = (i + 1) & m->mask) {
        int32_t id = m->slot[i] - 1;
        if (id < 0) return -1;
        const struct gguf_str *t = &m->tokens[id].str;
        if (t->len == n && !memcmp(t->data, s, n)) return id;
    }
}

static bool map_build(struct piece_map *m, const struct gguf_value *tokens, size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    if (!(m->slot = calloc(cap, sizeof *m->slot))) return false;
    m->mask = cap - 1;
    m->tokens = tokens;
    for (size_t id = 0; id < n; id++) {
        const struct gguf_str *t = &tokens[id].str;
        if (map_find(m, t->data, t->len) >= 0) continue; // a repeated piece keeps its first id
        size_t i = fnv(t->data, t->len) & m->mask;
        while (m->slot[i]) i = (i + 1) & m->mask;
        m->slot[i] = (int32_t)id + 1;
    }
    return true;
}

// A token given in tokenizer_config.json as "<s>" or {"content": "<s>", ...}: its text, or NULL.
static const char *special_content(const struct json_value *tc, const char *key) {
    const struct json_value *v = field(tc, key);
    if (v && v->type == JSON_OBJECT) v = field(v, "content");
    return v && v->type == JSON_STRING ? v->str.s : NULL;
}

static bool is_str(const struct json_value *v, const char *s) {
    return v && v->type == JSON_STRING && !strcmp(v->str.s, s);
}

// The "type" of a tokenizer.json component, for messages.
static const char *type_of(const struct json_value *v) {
    const struct json_value *t = field(v, "type");
    return !v ? "null" : t && t->type == JSON_STRING ? t->str.s : "(no type)";
}

// Split regexes of the byte-level pre-tokenizers the engine implements (tokenizer_bpe.c).
static const struct {
    const char *pre, *regex;
    bool ignore_merges;
} known_splits[] = {
    {"llama-bpe", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
                  "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", true},
    {"qwen2", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
              "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", false},
    {"gpt2", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", false},
};

static bool byte_level_ok(const struct json_value *p, bool use_regex) {
    const struct json_value *aps = field(p, "add_prefix_space"), *ur = field(p, "use_regex");
    return is_str(field(p, "type"), "ByteLevel") && !(aps && aps->type == JSON_TRUE) &&
           (ur ? ur->type == (use_regex ? JSON_TRUE : JSON_FALSE) : use_regex);
}

// tokenizer.ggml.pre for a byte-level vocabulary, from its pre_tokenizer; NULL when unknown.
static const char *byte_level_pre(const struct json_value *pre, bool *ignore_merges) {
    *ignore_merges = false;
    if (pre && byte_level_ok(pre, true)) return "gpt2";
    const struct json_value *seq = pre && is_str(field(pre, "type"), "Sequence") ? field(pre, "pretokenizers") : NULL;
    if (!seq || seq->type != JSON_ARRAY || seq->arr.n != 2 || !byte_level_ok(&seq->arr.items[1], false)) return NULL;
    const struct json_value *split = &seq->arr.items[0], *pattern = field(split, "pattern");
    const struct json_value *invert = field(split, "invert");
    if (!is_str(field(split, "type"), "Split") || !is_str(field(split, "behavior"), "Isolated") ||
        (invert && invert->type != JSON_FALSE))
        return NULL;
    const struct json_value *regex = field(pattern, "Regex");
    for (size_t k = 0; regex && regex->type == JSON_STRING && k < sizeof known_splits / sizeof known_splits[0]; k++)
        if (!strcmp(regex->str.s, known_splits[k].regex)) {
            *ignore_merges = known_splits[k].ignore_merges;
            return known_splits[k].pre;
        }
    return NULL;
}

// SentencePiece-style vocabularies spell spaces "▁" and prefix one: either a
// normalizer [Prepend "▁"], Replace " " → "▁" (transformers' legacy export)
// or a Metaspace pre-tokenizer. Sets *prefix; false for any other setup.
static bool metaspace_setup(const struct json_value *norm, const struct json_value *pre, bool *prefix) {
    static const char space[] = "\xE2\x96\x81";
    if (!pre && norm) {
        const struct json_value *list = is_str(field(norm, "type"), "Sequence") ? field(norm, "normalizers") : NULL;
        size_t n = list && list->type == JSON_ARRAY ? list->arr.n : 0, i = 0;
        *prefix = false;
        if (n == 2 && is_str(field(&list->arr.items[0], "type"), "Prepend") &&
            is_str(field(&list->arr.items[0], "prepend"), space))
            *prefix = true, i = 1;
        if (n != i + 1) return false;
        const struct json_value *rep = &list->arr.items[i];
        return is_str(field(rep, "type"), "Replace") && is_str(field(field(rep, "pattern"), "String"), " ") &&
               is_str(field(rep, "content"), space);
    }
    if (pre && !norm && is_str(field(pre, "type"), "Metaspace") && is_str(field(pre, "replacement"), space)) {
        const struct json_value *scheme = field(pre, "prepend_scheme"), *aps = field(pre, "add_prefix_space"),
                                *split = field(pre, "split");
        // Without "split": false (older files) Metaspace also cuts the text at
        // every space, and merges would not cross words.
        if (!split || split->type != JSON_FALSE) return false;
        // "first" differs from "always" only after a special token written in the text.
        *prefix = scheme ? !is_str(scheme, "never") : !(aps && aps->type == JSON_FALSE);
        return true;
    }
    return false;
}

// A merge, as "left right" or ["left", "right"]: the two parts in a and b.
static bool merge_parts(const struct json_value *m, const char **a, size_t *la, const char **b, size_t *lb) {
    if (m->type == JSON_STRING) {
        const char *sp = m->str.len > 1 ? memchr(m->str.s + 1, ' ', m->str.len - 1) : NULL;
        if (!sp) return false;
        *a = m->str.s, *la = (size_t)(sp - m->str.s);
        *b = sp + 1, *lb = m->str.len - *la - 1;
        return true;
    }
    if (m->type != JSON_ARRAY || m->arr.n != 2 || m->arr.items[0].type != JSON_STRING ||
        m->arr.items[1].type != JSON_STRING)
        return false;
    *a = m->arr.items[0].str.s, *la = m->arr.items[0].str.len;
    *b = m->arr.items[1].str.s, *lb = m->arr.items[1].str.len;
    return true;
}

static lb_status read_tokenizer(struct hf *h, const struct json_value *tj, const struct json_value *tc) {
    char file[4200];
    snprintf(file, sizeof file, "%s", file_path(h, "tokenizer.json"));
    if (tj->type != JSON_OBJECT)
        return lb_fail(h->err, LB_ERR_FORMAT, "%s: top level is a %s (expected an object)", file,
                       json_type_name(tj->type));
    const struct json_value *model = field(tj, "model");
    const struct json_value *vocab = field(model, "vocab"), *merges = field(model, "merges");
    if (!model || !is_str(field(model, "type"), "BPE"))
        return lb_fail(h->err, LB_ERR_UNSUPPORTED, "%s: model.type is \"%.32s\" (expected \"BPE\")", file,
                       type_of(model));
    if (!vocab || vocab->type != JSON_OBJECT)
        return lb_fail(h->err, LB_ERR_FORMAT, "%s: model.vocab missing or not an object", file);
    if (!merges || merges->type != JSON_ARRAY)
        return lb_fail(h->err, LB_ERR_FORMAT, "%s: model.merges missing or not an array", file);
    const struct json_value *added = field(tj, "added_tokens");
    if (added && added->type != JSON_ARRAY)
        return lb_fail(h->err, LB_ERR_FORMAT, "%s: added_tokens is a %s (expected an array)", file,
                       json_type_name(added->type));
    const struct json_value *bf = field(model, "byte_fallback"), *im = field(model, "ignore_merges");
    const bool spm = bf && bf->type == JSON_TRUE, ignore_merges = im && im->type == JSON_TRUE;

    // Which tokenizer and pre-tokenizer.
    const struct json_value *norm = field(tj, "normalizer"), *pre = field(tj, "pre_tokenizer");
    bool prefix = false, pre_ignore = false;
    const char *pre_name = "default";
    if (spm) {
        if (!metaspace_setup(norm, pre, &prefix))
            return lb_fail(h->err, LB_ERR_UNSUPPORTED,
                           "%s: normalizer/pre_tokenizer of a byte-fallback BPE are not Prepend+Replace \"▁\" or "
                           "Metaspace (not supported)", file);
        if (ignore_merges)
            return lb_fail(h->err, LB_ERR_UNSUPPORTED, "%s: model.ignore_merges with byte_fallback (not supported)",
                           file);
    } else {
        // NFC changes no text already in NFC form; like llama.cpp, it is not applied.
        if (norm && !is_str(field(norm, "type"), "NFC"))
            return lb_fail(h->err, LB_ERR_UNSUPPORTED, "%s: normalizer '%.32s' unsupported for byte-level BPE "
                           "(expected none or NFC)", file, type_of(norm));
        if (!(pre_name = byte_level_pre(pre, &pre_ignore)))
            return lb_fail(h->err, LB_ERR_UNSUPPORTED,
                           "%s: pre_tokenizer is not ByteLevel or Split with the GPT-2, Llama 3 or Qwen2 regex "
                           "(not supported)", file);
        if (pre_ignore != ignore_merges)
            return lb_fail(h->err, LB_ERR_UNSUPPORTED, "%s: model.ignore_merges is %s with the %s pre-tokenizer "
                           "(expected %s)", file, ignore_merges ? "true" : "false", pre_name,
                           pre_ignore ? "true" : "false");
    }

    // The vocabulary: model.vocab, then added_tokens, padded to config.json's vocab_size.
    int64_t n = 0;
    for (size_t i = 0; i < vocab->obj.n; i++) {
        const struct json_value *id = &vocab->obj.items[i].value;
        if (id->type != JSON_NUMBER || !id->is_int || id->num.i < 0 || id->num.i >= INT32_MAX)
            return lb_fail(h->err, LB_ERR_FORMAT, "%s: model.vocab: '%.64s' at byte %zu has no valid id", file,
                           vocab->obj.items[i].key, id->offset);
        if (id->num.i + 1 > n) n = id->num.i + 1;
    }
    size_t n_added = added ? added->arr.n : 0;
    for (size_t i = 0; i < n_added; i++) {
        const struct json_value *a = &added->arr.items[i], *id = field(a, "id"), *content = field(a, "content");
        if (!id || id->type != JSON_NUMBER || !id->is_int || id->num.i < 0 || id->num.i >= INT32_MAX || !content ||
            content->type != JSON_STRING)
            return lb_fail(h->err, LB_ERR_FORMAT, "%s: added_tokens[%zu] at byte %zu lacks an integer id or a "
                           "string content", file, i, a->offset);
        if (id->num.i + 1 > n) n = id->num.i + 1;
    }
    if (n > h->n_vocab)
        return lb_fail(h->err, LB_ERR_FORMAT, "%s: token ids go up to %lld but %s has vocab_size %lld", file,
                       (long long)n - 1, file_path(h, "config.json"), (long long)h->n_vocab);
    n = h->n_vocab;
    struct gguf_value *tokens = set_arr(h, "tokenizer.ggml.tokens", GGUF_STRING, (size_t)n);
    struct gguf_value *types = tokens ? set_arr(h, "tokenizer.ggml.token_type", GGUF_INT32, (size_t)n) : NULL;
    if (!types) return oom(h);
    for (size_t i = 0; i < vocab->obj.n; i++) {
        const struct json_member *m = &vocab->obj.items[i];
        struct gguf_value *t = &tokens[m->value.num.i];
        if (t->str.data)
            return lb_fail(h->err, LB_ERR_FORMAT, "%s: model.vocab: id %lld is given to two pieces", file,
                           (long long)m->value.num.i);
        t->str = (struct gguf_str){m->key_len, m->key};
        types[m->value.num.i].i64 = TT_NORMAL;
    }
    const char *unk = field(model, "unk_token") && field(model, "unk_token")->type == JSON_STRING
                          ? field(model, "unk_token")->str.s : NULL;
    for (size_t i = 0; i < n_added; i++) {
        const struct json_value *a = &added->arr.items[i];
        const struct json_value *content = field(a, "content"), *special = field(a, "special");
        struct gguf_value *t = &tokens[field(a, "id")->num.i];
        if (t->str.data && (t->str.len != content->str.len || memcmp(t->str.data, content->str.s, t->str.len)))
            return lb_fail(h->err, LB_ERR_FORMAT, "%s: added_tokens[%zu]: id %lld is \"%.32s\" here but \"%.32s\" in "
                           "model.vocab", file, i, (long long)field(a, "id")->num.i, content->str.s, t->str.data);
        t->str = (struct gguf_str){content->str.len, content->str.s};
        bool looks_special = content->str.len >= 4 && !memcmp(content->str.s, "<|", 2) &&
                             !memcmp(content->str.s + content->str.len - 2, "|>", 2);
        types[field(a, "id")->num.i].i64 = (special && special->type == JSON_TRUE) || looks_special
                                               ? (unk && !strcmp(unk, content->str.s) ? TT_UNKNOWN : TT_CONTROL)
                                               : TT_USER_DEFINED;
    }
    // Ids nothing names (a vocab_size rounded up for the hardware), as the converter: "[PADn]", unused.
    for (int64_t i = 0; i < n; i++) {
        if (tokens[i].str.data) continue;
        char pad[32];
        int len = snprintf(pad, sizeof pad, "[PAD%lld]", (long long)i);
        const char *s = keep_str(h, pad, (size_t)len);
        if (!s) return oom(h);
        tokens[i].str = (struct gguf_str){(uint64_t)len, s};
        types[i].i64 = TT_UNUSED;
    }
    // The strings point into the parsed JSON; copy them into the file.
    for (int64_t i = 0; i < n; i++) {
        if (types[i].i64 == TT_UNUSED) continue;
        const char *s = keep_str(h, tokens[i].str.data, tokens[i].str.len);
        if (!s) return oom(h);
        tokens[i].str.data = s;
    }
    struct piece_map map = {0};
    if (!map_build(&map, tokens, (size_t)n)) return oom(h);

    lb_status st = LB_OK;
    if (spm) {
        // <0xNN> pieces are the byte fallback; the unknown piece is <unk>.
        for (int64_t i = 0; i < n; i++) {
            const struct gguf_str *s = &tokens[i].str;
            if (types[i].i64 == TT_NORMAL && s->len == 6 && !memcmp(s->data, "<0x", 3) && s->data[5] == '>')
                types[i].i64 = TT_BYTE;
        }
        int32_t unk_id = unk ? map_find(&map, unk, strlen(unk)) : -1;
        if (unk_id >= 0) types[unk_id].i64 = TT_UNKNOWN;
        // Scores: minus the rank of the first merge that builds the piece;
        // pieces no merge builds come after every merge.
        struct gguf_value *scores = set_arr(h, "tokenizer.ggml.scores", GGUF_FLOAT32, (size_t)n);
        char *joined = scores ? malloc(1) : NULL;
        size_t joined_cap = 1;
        bool *set = joined ? calloc((size_t)n, 1) : NULL;
        if (!set) {
            free(joined);
            free(map.slot);
            return oom(h);
        }
        for (size_t r = 0; r < merges->arr.n && !st; r++) {
            const char *a, *b;
            size_t la, lb;
            if (!merge_parts(&merges->arr.items[r], &a, &la, &b, &lb)) {
                st = lb_fail(h->err, LB_ERR_FORMAT, "%s: model.merges[%zu] at byte %zu is not \"a b\" or [\"a\", \"b\"]",
                             file, r, merges->arr.items[r].offset);
                break;
            }
            if (la + lb > joined_cap) {
                char *nj = realloc(joined, joined_cap = 2 * (la + lb));
                if (!nj) {
                    st = oom(h);
                    break;
                }
                joined = nj;
            }
            memcpy(joined, a, la);
            memcpy(joined + la, b, lb);
            int32_t id = map_find(&map, joined, la + lb);
            if (id >= 0 && !set[id]) {
                scores[id].f64 = -(double)r;
                set[id] = true;
            }
        }
        for (int64_t i = 0; i < n; i++)
            if (!set[i]) scores[i].f64 = -(double)merges->arr.n - 1;
        free(set);
        free(joined);
        if (!st && !(st = set_str(h, "tokenizer.ggml.model", "llama", 5)) &&
            !(st = set_str(h, "tokenizer.ggml.pre", "default", 7)))
            st = set_bool(h, "tokenizer.ggml.add_space_prefix", prefix);
    } else {
        // Merges as "left right" strings; a space inside a part (the pair
        // form allows one) is written U+0120, as the converter does.
        struct gguf_value *ms = set_arr(h, "tokenizer.ggml.merges", GGUF_STRING, merges->arr.n);
        if (!ms) st = oom(h);
        for (size_t r = 0; r < merges->arr.n && !st; r++) {
            const char *a, *b;
            size_t la, lb;
            if (!merge_parts(&merges->arr.items[r], &a, &la, &b, &lb)) {
                st = lb_fail(h->err, LB_ERR_FORMAT, "%s: model.merges[%zu] at byte %zu is not \"a b\" or [\"a\", \"b\"]",
                             file, r, merges->arr.items[r].offset);
                break;
            }
            char *s = keep(h, malloc(2 * (la + lb) + 2));
            if (!s) {
                st = oom(h);
                break;
            }
            size_t k = 0;
            for (size_t i = 0; i < la + lb + 1; i++) {
                char c = i < la ? a[i] : i == la ? 0 : b[i - la - 1];
                if (i == la) s[k++] = ' ';
                else if (c == ' ') s[k++] = '\xC4', s[k++] = '\xA0';
                else s[k++] = c;
            }
            s[k] = 0;
            ms[r].str = (struct gguf_str){k, s};
        }
        if (!st && !(st = set_str(h, "tokenizer.ggml.model", "gpt2", 4)))
            st = set_str(h, "tokenizer.ggml.pre", pre_name, strlen(pre_name));
    }

    // Special tokens: tokenizer_config.json names them by text (found among
    // added_tokens), config.json by id — the converter's SpecialVocab order.
    static const char *const kinds[] = {"bos", "eos", "unk", "pad"};
    static const char *const keys[] = {"bos_token_id", "eos_token_id", "unknown_token_id", "padding_token_id"};
    const int64_t from_config[] = {h->bos_cfg, h->eos_cfg, -1, h->pad_cfg};
    for (int k = 0; k < 4 && !st; k++) {
        char key[64];
        snprintf(key, sizeof key, "%s_token", kinds[k]);
        const char *text = tc ? special_content(tc, key) : NULL;
        int64_t id = -1;
        for (size_t i = 0; text && i < n_added && id < 0; i++)
            if (is_str(field(&added->arr.items[i], "content"), text)) id = field(&added->arr.items[i], "id")->num.i;
        if (id < 0 && k == 2 && unk) id = map_find(&map, unk, strlen(unk));
        if (id < 0) id = from_config[k];
        if (id < 0 || id >= n) continue;
        snprintf(key, sizeof key, "tokenizer.ggml.%s", keys[k]);
        st = set_u32(h, key, (uint32_t)id);
    }
    free(map.slot);
    if (st) return st;

    // Whether to add BOS/EOS: tokenizer_config.json's flags, else the
    // post-processor's template (a special token first / last).
    static const char *const flags[] = {"bos", "eos"};
    const struct json_value *post = field(tj, "post_processor"), *tmpl = NULL;
    if (is_str(field(post, "type"), "TemplateProcessing")) tmpl = post;
    const struct json_value *procs = is_str(field(post, "type"), "Sequence") ? field(post, "processors") : NULL;
    for (size_t i = 0; procs && procs->type == JSON_ARRAY && i < procs->arr.n; i++)
        if (is_str(field(&procs->arr.items[i], "type"), "TemplateProcessing")) tmpl = &procs->arr.items[i];
    const struct json_value *single = field(tmpl, "single");
    for (int k = 0; k < 2 && !st; k++) {
        char key[64];
        snprintf(key, sizeof key, "add_%s_token", flags[k]);
        const struct json_value *flag = tc ? field(tc, key) : NULL;
        snprintf(key, sizeof key, "tokenizer.ggml.add_%s_token", flags[k]);
        if (flag && (flag->type == JSON_TRUE || flag->type == JSON_FALSE)) {
            st = set_bool(h, key, flag->type == JSON_TRUE);
        } else if (single && single->type == JSON_ARRAY && single->arr.n > 0) {
            const struct json_value *end = &single->arr.items[k == 0 ? 0 : single->arr.n - 1];
            st = set_bool(h, key, field(end, "SpecialToken") != NULL);
        }
    }
    if (st) return st;

    // Chat template: tokenizer_config.json's (a string, or a list of named
    // ones of which "default" is used), else chat_template.jinja.
    const struct json_value *ct = tc ? field(tc, "chat_template") : NULL;
    if (ct && ct->type == JSON_ARRAY)
        for (size_t i = 0; i < ct->arr.n; i++)
            if (is_str(field(&ct->arr.items[i], "name"), "default")) ct = field(&ct->arr.items[i], "template");
    if (ct && ct->type == JSON_STRING) return set_str(h, "tokenizer.chat_template", ct->str.s, ct->str.len);
    FILE *fp = fopen(file_path(h, "chat_template.jinja"), "rb");
    if (fp) {
        char *buf = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&buf, &len);
        char chunk[4096];
        size_t got;
        while (mem && (got = fread(chunk, 1, sizeof chunk, fp)) > 0) fwrite(chunk, 1, got, mem);
        fclose(fp);
        if (!mem || fclose(mem) != 0 || !buf) return oom(h);
        st = set_str(h, "tokenizer.chat_template", buf, len);
        free(buf);
    }
    return st;
}

// ----------------------------------------------------------------------------
// Tensors

// The sizes a tensor's dimensions are given in.
enum dim { D_EMBD, D_Q, D_KV, D_FF, D_VOCAB, D_NONE };

// Per-layer tensors: the name after "model.layers.N.", the GGUF name after
// "blk.N.", rows and columns (D_NONE columns: a vector), which are optional,
// and which get the q/k permutation.
static const struct {
    const char *hf, *gguf;
    enum dim rows, cols;
    bool qkv_bias, permute;
} layer_tensors[] = {
    {"input_layernorm.weight", "attn_norm.weight", D_EMBD, D_NONE, false, false},
    {"self_attn.q_proj.weight", "attn_q.weight", D_Q, D_EMBD, false, true},
    {"self_attn.k_proj.weight", "attn_k.weight", D_KV, D_EMBD, false, true},
    {"self_attn.v_proj.weight", "attn_v.weight", D_KV, D_EMBD, false, false},
    {"self_attn.o_proj.weight", "attn_output.weight", D_EMBD, D_Q, false, false},
    {"self_attn.q_proj.bias", "attn_q.bias", D_Q, D_NONE, true, true},
    {"self_attn.k_proj.bias", "attn_k.bias", D_KV, D_NONE, true, true},
    {"self_attn.v_proj.bias", "attn_v.bias", D_KV, D_NONE, true, false},
    {"post_attention_layernorm.weight", "ffn_norm.weight", D_EMBD, D_NONE, false, false},
    {"mlp.gate_proj.weight", "ffn_gate.weight", D_FF, D_EMBD, false, false},
    {"mlp.up_proj.weight", "ffn_up.weight", D_FF, D_EMBD, false, false},
    {"mlp.down_proj.weight", "ffn_down.weight", D_EMBD, D_FF, false, false},
};
#define N_LAYER_TENSORS (sizeof layer_tensors / sizeof layer_tensors[0])

static const struct {
    const char *hf, *gguf;
    enum dim rows, cols;
} global_tensors[] = {
    {"model.embed_tokens.weight", "token_embd.weight", D_VOCAB, D_EMBD},
    {"model.norm.weight", "output_norm.weight", D_EMBD, D_NONE},
    {"lm_head.weight", "output.weight", D_VOCAB, D_EMBD},
};

static int64_t dim_size(const struct hf *h, enum dim d) {
    switch (d) {
    case D_EMBD: return h->n_embd;
    case D_Q: return h->n_head * h->head_dim;
    case D_KV: return h->n_head_kv * h->head_dim;
    case D_FF: return h->n_ff;
    case D_VOCAB: return h->n_vocab;
    default: return 1;
    }
}

// Where each safetensors tensor goes: its shard file name and its slot.
struct found {
    const struct st_tensor *t;
    const char *shard;
};

// The slot of an HF tensor name: global k (0..2), or 3 + layer * N_LAYER_TENSORS + k.
// -1: not a weight of these models; -2: a buffer the converter also skips.
static int64_t slot_of(const struct hf *h, const char *name) {
    for (size_t k = 0; k < sizeof global_tensors / sizeof global_tensors[0]; k++)
        if (!strcmp(name, global_tensors[k].hf)) return (int64_t)k;
    const char *p = "model.layers.";
    if (strncmp(name, p, strlen(p))) return -1;
    // The layer number: digits without a leading zero, below num_hidden_layers.
    const char *d = name + strlen(p), *end = d;
    int64_t layer = 0;
    while (*end >= '0' && *end <= '9' && layer < h->n_layer) layer = layer * 10 + (*end++ - '0');
    if (end == d || *end != '.' || layer >= h->n_layer || (*d == '0' && end - d > 1)) return -1;
    if (!strcmp(end + 1, "self_attn.rotary_emb.inv_freq")) return -2;
    for (size_t k = 0; k < N_LAYER_TENSORS; k++)
        if (!strcmp(end + 1, layer_tensors[k].hf)) return 3 + layer * (int64_t)N_LAYER_TENSORS + (int64_t)k;
    return -1;
}

// Rows of a q or k projection, HF order → GGUF order, as the converter's
// permute(): each head's rows (2, head_dim/2) become (head_dim/2, 2), so that
// row i of the first half and row i of the second half, which HF rotates
// together, are adjacent. Vectors (biases) are rows of one element.
static void *permute_rows(const struct hf *h, const struct st_tensor *t, int64_t rows, size_t row_bytes) {
    char *dst = malloc(t->nbytes ? t->nbytes : 1);
    if (!dst) return NULL;
    const int64_t hd = h->head_dim, half = hd / 2;
    for (int64_t r = 0; r < rows; r++) {
        int64_t head = r / hd, i = (r % hd) / 2, j = r % 2; // GGUF row r = head·hd + 2i + j
        int64_t src = head * hd + j * half + i;
        memcpy(dst + (size_t)r * row_bytes, (const char *)t->data + (size_t)src * row_bytes, row_bytes);
    }
    return dst;
}

static lb_status add_tensor(struct hf *h, const struct found *fd, const char *hf_name, const char *gguf_name,
                            enum dim rows_d, enum dim cols_d, bool permute) {
    const struct st_tensor *t = fd->t;
    const int64_t rows = dim_size(h, rows_d), cols = dim_size(h, cols_d);
    const int want_dims = cols_d == D_NONE ? 1 : 2;
    int lbt = st_dtype_lb_type(t->dtype);
    if (lbt < 0)
        return lb_fail(h->err, LB_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s unsupported (expected F32, F16 or BF16)",
                       file_path(h, fd->shard), hf_name, st_dtype_name(t->dtype));
    if (t->n_dims != want_dims || t->shape[0] != rows || (want_dims == 2 && t->shape[1] != cols)) {
        char got[64] = "", want[64];
        size_t o = 0;
        for (int d = 0; d < t->n_dims && o < sizeof got; d++)
            o += (size_t)snprintf(got + o, sizeof got - o, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        if (want_dims == 2) snprintf(want, sizeof want, "%lld, %lld", (long long)rows, (long long)cols);
        else snprintf(want, sizeof want, "%lld", (long long)rows);
        return lb_fail(h->err, LB_ERR_FORMAT, "%s: tensor '%s' has shape [%s] (expected [%s] from config.json)",
                       file_path(h, fd->shard), hf_name, got, want);
    }
    struct gguf_file *f = h->f;
    if (f->n_tensors == h->cap_tensors) {
        size_t cap = h->cap_tensors ? h->cap_tensors * 2 : 64;
        struct gguf_tensor *ts = realloc(f->tensors, cap * sizeof *ts);
        if (!ts) return oom(h);
        f->tensors = ts;
        h->cap_tensors = cap;
    }
    struct gguf_tensor *g = &f->tensors[f->n_tensors];
    memset(g, 0, sizeof *g);
    if (!(g->name = strdup(gguf_name))) return oom(h);
    f->n_tensors++;
    g->type = (lb_type)lbt;
    g->n_dims = (uint32_t)want_dims;
    g->ne[0] = want_dims == 2 ? cols : rows;
    g->ne[1] = want_dims == 2 ? rows : 1;
    g->ne[2] = g->ne[3] = 1;
    g->nbytes = t->nbytes;
    g->data = t->data;
    if (permute && h->permute_qk) {
        size_t row_bytes = t->nbytes / (size_t)rows;
        if (!(g->data = keep(h, permute_rows(h, t, rows, row_bytes)))) return oom(h);
    }
    // Vectors (norms, biases) become F32, as the converter writes them:
    // llama.cpp's CPU backend multiplies by no other type of norm.
    if (want_dims == 1 && g->type != LB_TYPE_F32) {
        float *v = keep(h, malloc((size_t)rows * sizeof *v));
        if (!v) return oom(h);
        lb_type_to_float(g->type, g->data, v, rows);
        g->data = v;
        g->type = LB_TYPE_F32;
        g->nbytes = (size_t)rows * sizeof *v;
    }
    return LB_OK;
}

// Open the weights (one file or the shards of an index) and add every
// tensor in GGUF order: embeddings, layers, output norm, output.
static lb_status read_tensors(struct hf *h) {
    lb_status st = LB_OK;
    struct json_doc *index = NULL;
    const int64_t n_slots = 3 + h->n_layer * (int64_t)N_LAYER_TENSORS;
    struct found *slots = calloc((size_t)n_slots, sizeof *slots);
    if (!slots) return oom(h);
    char index_file[4200] = "";
    // The shard file names to open: "model.safetensors", or the index's.
    const char **names = NULL;
    int n_names = 0;
    struct stat sb;
    if (stat(file_path(h, "model.safetensors"), &sb) == 0) {
        static const char *const single[] = {"model.safetensors"};
        names = malloc(sizeof *names);
        if (!names) {
            st = oom(h);
            goto done;
        }
        names[0] = single[0];
        n_names = 1;
    } else {
        snprintf(index_file, sizeof index_file, "%s", file_path(h, "model.safetensors.index.json"));
        if (stat(index_file, &sb) != 0) {
            st = lb_fail(h->err, LB_ERR_MISSING, "%s: no model.safetensors or model.safetensors.index.json "
                         "(expected safetensors weights)", h->dir);
            goto done;
        }
        if ((st = json_parse_file(&index, index_file, NULL, h->err))) goto done;
        const struct json_value *map = field(&index->root, "weight_map");
        if (!map || map->type != JSON_OBJECT) {
            st = lb_fail(h->err, LB_ERR_FORMAT, "%s: weight_map missing or not an object", index_file);
            goto done;
        }
        names = malloc((map->obj.n ? map->obj.n : 1) * sizeof *names);
        if (!names) {
            st = oom(h);
            goto done;
        }
        for (size_t i = 0; i < map->obj.n; i++) {
            const struct json_member *m = &map->obj.items[i];
            if (m->value.type != JSON_STRING || !m->value.str.len || strchr(m->value.str.s, '/') ||
                !strcmp(m->value.str.s, "..") || !strcmp(m->value.str.s, ".") ||
                m->value.str.len != strlen(m->value.str.s)) {
                st = lb_fail(h->err, LB_ERR_FORMAT, "%s: weight_map: '%.96s' names no file in the directory "
                             "(expected a file name such as model-00001-of-00002.safetensors)", index_file, m->key);
                goto done;
            }
            int k = 0;
            while (k < n_names && strcmp(names[k], m->value.str.s)) k++;
            if (k == n_names) names[n_names++] = m->value.str.s;
        }
    }
    h->own->shards = calloc((size_t)(n_names ? n_names : 1), sizeof *h->own->shards);
    if (!h->own->shards) {
        st = oom(h);
        goto done;
    }
    for (int k = 0; k < n_names; k++) {
        struct st_file *sf;
        char *path = strdup(file_path(h, names[k]));
        if (!path) {
            st = oom(h);
            goto done;
        }
        st = st_open(&sf, path, path, h->err);
        free(path);
        if (st) goto done;
        h->own->shards[h->own->n_shards++] = sf;
        for (int i = 0; i < sf->n_tensors; i++) {
            const struct st_tensor *t = &sf->tensors[i];
            int64_t s = slot_of(h, t->name);
            if (s == -2) continue;
            if (s < 0) {
                st = lb_fail(h->err, LB_ERR_UNSUPPORTED,
                             "%s: tensor '%.96s' is not a %s weight lowbit reads (expected model.embed_tokens.weight, "
                             "model.norm.weight, lm_head.weight or model.layers.N.{input_layernorm, self_attn.{q,k,v,o}"
                             "_proj, post_attention_layernorm, mlp.{gate,up,down}_proj}, N < %lld)",
                             file_path(h, names[k]), t->name, h->arch, (long long)h->n_layer);
                goto done;
            }
            if (slots[s].t) {
                st = lb_fail(h->err, LB_ERR_FORMAT, "%s: tensor '%.96s' is also in %s", file_path(h, names[k]),
                             t->name, slots[s].shard);
                goto done;
            }
            if (index) {
                const struct json_value *where = json_get(json_get(&index->root, "weight_map"), t->name);
                if (!where || strcmp(where->str.s, names[k])) {
                    st = lb_fail(h->err, LB_ERR_FORMAT, "%s: tensor '%.96s' is in %s but the index says %s",
                                 index_file, t->name, names[k], where ? where->str.s : "nothing");
                    goto done;
                }
            }
            slots[s] = (struct found){t, names[k]};
        }
    }
    // Every tensor the index names must have been found in its shard.
    if (index) {
        const struct json_value *map = json_get(&index->root, "weight_map");
        for (size_t i = 0; i < map->obj.n; i++) {
            int64_t s = slot_of(h, map->obj.items[i].key);
            if (s >= 0 && !slots[s].t) {
                st = lb_fail(h->err, LB_ERR_MISSING, "%s: tensor '%.96s' is not in %s, where %s says it is",
                             file_path(h, map->obj.items[i].value.str.s), map->obj.items[i].key,
                             map->obj.items[i].value.str.s, index_file);
                goto done;
            }
        }
    }

    const char *where = index ? index_file : file_path(h, "model.safetensors");
    char where_buf[4200];
    snprintf(where_buf, sizeof where_buf, "%s", where);
    if (!slots[0].t) {
        st = lb_fail(h->err, LB_ERR_MISSING, "%s: tensor 'model.embed_tokens.weight' missing", where_buf);
        goto done;
    }
    if ((st = add_tensor(h, &slots[0], global_tensors[0].hf, global_tensors[0].gguf, D_VOCAB, D_EMBD, false)))
        goto done;
    const bool qkv_bias = !strcmp(h->arch, "qwen2");
    for (int64_t l = 0; l < h->n_layer; l++) {
        for (size_t k = 0; k < N_LAYER_TENSORS; k++) {
            const struct found *fd = &slots[3 + l * (int64_t)N_LAYER_TENSORS + (int64_t)k];
            char hf_name[128], gguf_name[96];
            snprintf(hf_name, sizeof hf_name, "model.layers.%lld.%s", (long long)l, layer_tensors[k].hf);
            snprintf(gguf_name, sizeof gguf_name, "blk.%lld.%s", (long long)l, layer_tensors[k].gguf);
            if (!fd->t) {
                if (layer_tensors[k].qkv_bias && !qkv_bias) continue; // llama: biases only with attention_bias
                st = lb_fail(h->err, LB_ERR_MISSING, "%s: tensor '%s' missing", where_buf, hf_name);
                goto done;
            }
            if ((st = add_tensor(h, fd, hf_name, gguf_name, layer_tensors[k].rows, layer_tensors[k].cols,
                                 layer_tensors[k].permute)))
                goto done;
        }
    }
    if (!slots[1].t) {
        st = lb_fail(h->err, LB_ERR_MISSING, "%s: tensor 'model.norm.weight' missing", where_buf);
        goto done;
    }
    if ((st = add_tensor(h, &slots[1], global_tensors[1].hf, global_tensors[1].gguf, D_EMBD, D_NONE, false)))
        goto done;
    // A tied head is the embedding matrix, whatever lm_head.weight holds (as transformers ties them).
    if (!h->tied) {
        if (!slots[2].t) {
            st = lb_fail(h->err, LB_ERR_MISSING, "%s: tensor 'lm_head.weight' missing and %s has tie_word_embeddings "
                         "false", where_buf, file_path(h, "config.json"));
            goto done;
        }
        st = add_tensor(h, &slots[2], global_tensors[2].hf, global_tensors[2].gguf, D_VOCAB, D_EMBD, false);
    }
    if (!st) {
        // general.file_type as the converter sets it: the type of most weights.
        int64_t count[3] = {0};
        for (uint64_t i = 0; i < h->f->n_tensors; i++) {
            const struct gguf_tensor *g = &h->f->tensors[i];
            int c = g->type == LB_TYPE_F32 ? 0 : g->type == LB_TYPE_F16 ? 1 : 2;
            if (g->n_dims == 2) count[c] += g->ne[0] * g->ne[1];
        }
        uint32_t ftype = count[0] >= count[1] && count[0] >= count[2] ? 0 : count[1] >= count[2] ? 1 : 32;
        st = set_u32(h, "general.file_type", ftype);
    }
done:
    free(names);
    free(slots);
    json_free(index);
    return st;
}

// ----------------------------------------------------------------------------
// Open

bool hf_is_dir(const char *path) {
    struct stat sb;
    return path && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

lb_status hf_open(struct gguf_file **out, const char *dir, lb_error *err) {
    *out = NULL;
    struct hf h = {.err = err};
    struct json_doc *config = NULL, *tok = NULL, *tok_config = NULL;
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    h.dir = strndup(dir, n);
    h.own = calloc(1, sizeof *h.own);
    if (!h.dir || !h.own || !(h.f = gguf_new_virtual(h.dir, owner_free, h.own))) {
        free(h.dir);
        free(h.own);
        return lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", dir);
    }
    lb_status st;
    if ((st = json_parse_file(&config, file_path(&h, "config.json"), NULL, err))) goto done;
    h.config = &config->root;
    if ((st = read_config(&h))) goto done;
    if ((st = json_parse_file(&tok, file_path(&h, "tokenizer.json"), NULL, err))) goto done;
    struct stat sb;
    if (stat(file_path(&h, "tokenizer_config.json"), &sb) == 0 &&
        (st = json_parse_file(&tok_config, file_path(&h, "tokenizer_config.json"), NULL, err)))
        goto done;
    if ((st = read_tokenizer(&h, &tok->root, tok_config ? &tok_config->root : NULL))) goto done;
    if ((st = read_tensors(&h))) goto done;
done:
    json_free(config);
    json_free(tok);
    json_free(tok_config);
    free(h.dir);
    if (st) {
        gguf_close(h.f); // frees the owner too
        return st;
    }
    *out = h.f;
    return LB_OK;
}
