/*
 * tokenizer.c — vocabulary construction (GGUF, llama2.c tokenizer.bin), the
 * piece → id map, special-token splitting, and the encode/decode entry points
 * that hand plain text to tokenizer_spm.c or tokenizer_bpe.c.
 *
 * Memory: one lb_tokenizer owns a token array, one buffer with every piece
 * (NUL-terminated, so tokenizer_piece can return it) and the hash tables.
 * Nothing points into the GGUF mapping after construction.
 */
#include "tokenizer.h"

#include "gguf.h"
#include "internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// Piece → id hash map (open addressing, linear probing, FNV-1a).

static uint32_t tok_hash(const char *s, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

int32_t tokenizer_find(const struct lb_tokenizer *t, const char *text, size_t len) {
    for (uint32_t i = tok_hash(text, len) & t->map_mask;; i = (i + 1) & t->map_mask) {
        uint32_t slot = t->map[i];
        if (slot == 0)
            return -1;
        const struct tok_token *tok = &t->tokens[slot - 1];
        if (tok->len == len && memcmp(t->text + tok->off, text, len) == 0)
            return (int32_t)(slot - 1);
    }
}

// Build the map once every piece is in place. A piece that appears twice keeps
// its first id. Empty pieces are not entered: no text can name them.
static lb_status build_map(struct lb_tokenizer *t) {
    uint64_t cap = 16; // at most half full, so probes stay short
    while (cap < 2 * (uint64_t)t->n_vocab)
        cap *= 2;
    if (cap > UINT32_MAX)
        return LB_ERR_NOMEM;
    t->map = calloc(cap, sizeof *t->map);
    if (!t->map)
        return LB_ERR_NOMEM;
    t->map_mask = (uint32_t)(cap - 1);
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const struct tok_token *tok = &t->tokens[id];
        if (tok->len == 0 || tokenizer_find(t, t->text + tok->off, tok->len) >= 0)
            continue;
        uint32_t i = tok_hash(t->text + tok->off, tok->len) & t->map_mask;
        while (t->map[i] != 0)
            i = (i + 1) & t->map_mask;
        t->map[i] = (uint32_t)id + 1;
    }
    return LB_OK;
}

void tok_ids_push(struct tok_ids *out, int32_t id) {
    if (out->oom)
        return;
    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 64;
        int32_t *v = realloc(out->v, cap * sizeof *v);
        if (!v) {
            out->oom = true;
            return;
        }
        out->v = v;
        out->cap = cap;
    }
    out->v[out->n++] = id;
}

// ----------------------------------------------------------------------------
// Shared construction steps.

// "<0x41>" → 0x41; -1 for anything else.
static int parse_byte_piece(const char *s, size_t len) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9')
            v = v * 16 + (c - '0');
        else if (c >= 'A' && c <= 'F')
            v = v * 16 + (c - 'A' + 10);
        else if (c >= 'a' && c <= 'f')
            v = v * 16 + (c - 'a' + 10);
        else
            return -1;
    }
    return v;
}

static int cmp_specials(const void *a, const void *b, void *arg) {
    const struct lb_tokenizer *t = arg;
    const struct tok_token *x = &t->tokens[*(const int32_t *)a], *y = &t->tokens[*(const int32_t *)b];
    uint8_t fx = (uint8_t)t->text[x->off], fy = (uint8_t)t->text[y->off];
    if (fx != fy)
        return fx < fy ? -1 : 1;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1; // longest first
    return *(const int32_t *)a < *(const int32_t *)b ? -1 : 1;
}

static bool is_special(const struct tok_token *tok) {
    uint8_t a = tok->attr;
    return tok->len > 0 && (a == LB_TOKATTR_CONTROL || a == LB_TOKATTR_UNKNOWN || a == LB_TOKATTR_USER_DEFINED);
}

// Collect the tokens that text may name (control, unknown, user-defined),
// bucketed by first byte for the splitter.
static lb_status build_specials(struct lb_tokenizer *t) {
    int n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        n += is_special(&t->tokens[id]);
    t->specials = malloc((size_t)(n ? n : 1) * sizeof *t->specials);
    if (!t->specials)
        return LB_ERR_NOMEM;
    n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (is_special(&t->tokens[id]))
            t->specials[n++] = id;
    qsort_r(t->specials, (size_t)n, sizeof *t->specials, cmp_specials, t);
    t->n_specials = n;
    t->n_user_defined = 0;
    for (int k = 0; k < n; k++)
        t->n_user_defined += t->tokens[t->specials[k]].attr == LB_TOKATTR_USER_DEFINED;
    int k = 0;
    for (int b = 0; b <= 256; b++) {
        while (k < n && (uint8_t)t->text[t->tokens[t->specials[k]].off] < b)
            k++;
        t->special_first[b] = (uint32_t)k;
    }
    return LB_OK;
}

// End-of-turn markers of the chat formats we know, most specific first.
static const char *const eot_names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>"};

// EOT (when no key named it) and the end-of-generation set. Only control or
// user-defined tokens count: a normal piece that spells "<|end|>" is text.
static void find_eog(struct lb_tokenizer *t) {
    t->n_eog = 0;
    if (t->eos >= 0)
        t->eog[t->n_eog++] = t->eos;
    for (size_t k = 0; k < sizeof eot_names / sizeof eot_names[0]; k++) {
        int32_t id = tokenizer_find(t, eot_names[k], strlen(eot_names[k]));
        if (id < 0 || (t->tokens[id].attr != LB_TOKATTR_CONTROL && t->tokens[id].attr != LB_TOKATTR_USER_DEFINED))
            continue;
        if (t->eot < 0)
            t->eot = id;
        if (!tokenizer_is_eog(t, id))
            t->eog[t->n_eog++] = id;
    }
    if (t->eot >= 0 && !tokenizer_is_eog(t, t->eot))
        t->eog[t->n_eog++] = t->eot;
}

// The steps common to both sources once tokens and text are filled.
static lb_status finish(struct lb_tokenizer *t, const char *name, lb_error *err) {
    if ((!t->map && build_map(t) != LB_OK) || build_specials(t) != LB_OK)
        return lb_fail(err, LB_ERR_NOMEM, "%s: tokenizer: out of memory for %d tokens", name, t->n_vocab);
    if (t->kind == LB_TOK_SPM) {
        for (int b = 0; b < 256; b++)
            t->byte_id[b] = -1;
        for (int32_t id = 0; id < t->n_vocab; id++) {
            const struct tok_token *tok = &t->tokens[id];
            int b = tok->attr == LB_TOKATTR_BYTE ? parse_byte_piece(t->text + tok->off, tok->len) : -1;
            if (b >= 0 && t->byte_id[b] < 0)
                t->byte_id[b] = id;
        }
    }
    find_eog(t);
    return LB_OK;
}

static struct lb_tokenizer *tok_new(enum lb_tok_kind kind, int32_t n_vocab) {
    struct lb_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->kind = kind;
    t->n_vocab = n_vocab;
    t->tokens = calloc((size_t)n_vocab, sizeof *t->tokens);
    if (!t->tokens) {
        free(t);
        return NULL;
    }
    t->bos = t->eos = t->unk = t->eot = t->pad = -1;
    return t;
}

void tokenizer_free(struct lb_tokenizer *t) {
    if (!t)
        return;
    free(t->tokens);
    free(t->text);
    free(t->map);
    free(t->specials);
    free(t->merges);
    free(t);
}

// ----------------------------------------------------------------------------
// From GGUF metadata.

// An optional token id key: absent or negative leaves *id as it is.
static lb_status get_id(const struct gguf_file *f, const char *name, const char *key, int32_t n_vocab, int32_t *id,
                        lb_error *err) {
    if (!gguf_find(f, key))
        return LB_OK;
    int64_t v;
    lb_status st = gguf_get_i64(f, key, &v, err);
    if (st != LB_OK)
        return st;
    if (v < 0 || v == UINT32_MAX)
        return LB_OK; // converters write -1, signed or as u32 0xFFFFFFFF, for "none"
    if (v >= n_vocab)
        return lb_fail(err, LB_ERR_FORMAT, "%s: %s: %lld out of range (vocabulary has %d tokens)", name, key,
                       (long long)v, n_vocab);
    *id = (int32_t)v;
    return LB_OK;
}

static lb_status get_flag(const struct gguf_file *f, const char *key, bool *out, lb_error *err) {
    return gguf_find(f, key) ? gguf_get_bool(f, key, out, err) : LB_OK;
}

static bool str_is(struct gguf_str s, const char *lit) {
    return s.len == strlen(lit) && memcmp(s.data, lit, s.len) == 0;
}

// Copy the string array into t->tokens / t->text.
static lb_status load_pieces(struct lb_tokenizer *t, const struct gguf_value *arr, const char *name, lb_error *err) {
    uint64_t total = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        const struct gguf_str *s = &arr->arr.items[i].str;
        if (s->len > UINT32_MAX / 2 || !lb_add_ok(total, s->len + 1, &total) || total > UINT32_MAX)
            return lb_fail(err, LB_ERR_FORMAT, "%s: tokenizer.ggml.tokens: pieces total over 4 GiB at token %d",
                           name, i);
    }
    t->text = malloc(total ? total : 1);
    if (!t->text)
        return lb_fail(err, LB_ERR_NOMEM, "%s: tokenizer.ggml.tokens: out of memory for %llu bytes", name,
                       (unsigned long long)total);
    uint32_t off = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        const struct gguf_str *s = &arr->arr.items[i].str;
        memcpy(t->text + off, s->data, s->len);
        t->text[off + s->len] = '\0';
        t->tokens[i].off = off;
        t->tokens[i].len = (uint32_t)s->len;
        t->tokens[i].attr = LB_TOKATTR_NORMAL;
        off += (uint32_t)s->len + 1;
    }
    return LB_OK;
}

lb_status tokenizer_from_gguf(struct lb_tokenizer **out, const struct gguf_file *f, lb_error *err) {
    *out = NULL;
    const char *name = f->path ? f->path : "(gguf)"; // messages name the file as the GGUF reader does
    struct gguf_str model;
    lb_status st = gguf_get_str(f, "tokenizer.ggml.model", &model, err);
    if (st != LB_OK)
        return st;
    enum lb_tok_kind kind;
    if (str_is(model, "llama"))
        kind = LB_TOK_SPM;
    else if (str_is(model, "gpt2"))
        kind = LB_TOK_BPE;
    else
        return lb_fail(err, LB_ERR_UNSUPPORTED,
                       "%s: tokenizer.ggml.model: \"%.*s\" unsupported (expected \"llama\" or \"gpt2\")", name,
                       (int)(model.len > 64 ? 64 : model.len), model.data);

    const struct gguf_value *tokens, *scores = NULL, *types = NULL;
    if ((st = gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_STRING, &tokens, err)) != LB_OK)
        return st;
    uint64_t n = tokens->arr.n;
    if (n == 0 || n > INT32_MAX)
        return lb_fail(err, LB_ERR_FORMAT, "%s: tokenizer.ggml.tokens: %llu entries (expected 1..%d)", name,
                       (unsigned long long)n, INT32_MAX);
    if (gguf_find(f, "tokenizer.ggml.scores")) {
        if ((st = gguf_get_arr(f, "tokenizer.ggml.scores", GGUF_FLOAT32, &scores, err)) != LB_OK)
            return st;
        if (scores->arr.n != n)
            return lb_fail(err, LB_ERR_FORMAT, "%s: tokenizer.ggml.scores: %llu entries, expected %llu (one per token)",
                           name, (unsigned long long)scores->arr.n, (unsigned long long)n);
    }
    if (gguf_find(f, "tokenizer.ggml.token_type")) {
        if ((st = gguf_get_arr(f, "tokenizer.ggml.token_type", GGUF_INT32, &types, err)) != LB_OK)
            return st;
        if (types->arr.n != n)
            return lb_fail(err, LB_ERR_FORMAT,
                           "%s: tokenizer.ggml.token_type: %llu entries, expected %llu (one per token)", name,
                           (unsigned long long)types->arr.n, (unsigned long long)n);
    }

    struct lb_tokenizer *t = tok_new(kind, (int32_t)n);
    if (!t)
        return lb_fail(err, LB_ERR_NOMEM, "%s: tokenizer: out of memory for %llu tokens", name, (unsigned long long)n);
    if ((st = load_pieces(t, tokens, name, err)) != LB_OK)
        goto fail;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        if (scores)
            t->tokens[i].score = (float)scores->arr.items[i].f64;
        if (types) {
            int64_t ty = types->arr.items[i].i64;
            if (ty < LB_TOKATTR_UNDEFINED || ty > LB_TOKATTR_BYTE) {
                st = lb_fail(err, LB_ERR_FORMAT, "%s: tokenizer.ggml.token_type[%d]: %lld unknown (expected 0..6)",
                             name, i, (long long)ty);
                goto fail;
            }
            t->tokens[i].attr = (uint8_t)ty;
        }
    }

    // Defaults as llama.cpp's: SentencePiece vocabularies put <unk> <s> </s> first.
    if (kind == LB_TOK_SPM) {
        t->unk = 0, t->bos = 1, t->eos = 2;
        t->add_bos = true;
        t->add_space_prefix = true;
        if (t->n_vocab < 3)
            t->unk = t->bos = t->eos = -1;
    }
    if ((st = get_id(f, name, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos, err)) != LB_OK ||
        (st = get_id(f, name, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos, err)) != LB_OK ||
        (st = get_id(f, name, "tokenizer.ggml.unknown_token_id", t->n_vocab, &t->unk, err)) != LB_OK ||
        (st = get_id(f, name, "tokenizer.ggml.eot_token_id", t->n_vocab, &t->eot, err)) != LB_OK ||
        (st = get_id(f, name, "tokenizer.ggml.padding_token_id", t->n_vocab, &t->pad, err)) != LB_OK)
        goto fail;

    if (kind == LB_TOK_BPE) {
        // The merges name pieces: the map must exist first.
        if (build_map(t) != LB_OK) {
            st = lb_fail(err, LB_ERR_NOMEM, "%s: tokenizer: out of memory for %d tokens", name, t->n_vocab);
            goto fail;
        }
        if ((st = bpe_init(t, f, name, err)) != LB_OK)
            goto fail;
        t->add_bos = t->pre == TOK_PRE_LLAMA3; // Llama 3 wants <|begin_of_text|>; the key below overrides
    }
    if ((st = get_flag(f, "tokenizer.ggml.add_bos_token", &t->add_bos, err)) != LB_OK ||
        (st = get_flag(f, "tokenizer.ggml.add_eos_token", &t->add_eos, err)) != LB_OK ||
        (st = get_flag(f, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, err)) != LB_OK)
        goto fail;
    if (kind == LB_TOK_BPE)
        t->add_space_prefix = false;

    if ((st = finish(t, name, err)) != LB_OK)
        goto fail;
    *out = t;
    return LB_OK;
fail:
    tokenizer_free(t);
    return st;
}

// ----------------------------------------------------------------------------
// From a llama2.c tokenizer.bin.

lb_status tokenizer_from_llama2c(struct lb_tokenizer **out, const char *path, int32_t n_vocab, lb_error *err) {
    *out = NULL;
    const char *name = path;
    if (n_vocab <= 0)
        return lb_fail(err, LB_ERR_ARG, "%s: vocab_size %d (expected > 0, from the model header)", name, n_vocab);
    // Read it whole: it is small (430 KB for 32000 tokens) and parsing a
    // buffer makes every bound check one comparison.
    char *buf;
    size_t size;
    lb_status st = lb_read_file(path, name, &buf, &size, err);
    if (st != LB_OK)
        return st;

    struct lb_tokenizer *t = tok_new(LB_TOK_SPM, n_vocab);
    // Pieces get shorter or keep their length ("\n<s>\n" → "<s>", ' ' → "▁"
    // grows by 2 per space, accounted for below), plus a NUL each.
    char *text = NULL;
    if (!t) {
        st = lb_fail(err, LB_ERR_NOMEM, "%s: out of memory for %d tokens", name, n_vocab);
        goto done;
    }
    int32_t max_len;
    if (size < 4) {
        st = lb_fail(err, LB_ERR_FORMAT, "%s: max_token_length: file is %zu bytes (expected at least 4)", name, size);
        goto done;
    }
    memcpy(&max_len, buf, 4);
    if (max_len <= 0 || max_len > 1 << 20) {
        st = lb_fail(err, LB_ERR_FORMAT, "%s: max_token_length: %d (expected 1..1048576)", name, max_len);
        goto done;
    }
    // First pass: bounds and text size.
    uint64_t total = 0;
    size_t pos = 4;
    for (int32_t i = 0; i < n_vocab; i++) {
        int32_t len;
        if (size - pos < 8) {
            st = lb_fail(err, LB_ERR_FORMAT, "%s: token %d: truncated at byte %zu (file has %zu; expected %d tokens)",
                         name, i, pos, size, n_vocab);
            goto done;
        }
        memcpy(&len, buf + pos + 4, 4);
        if (len < 0 || len > max_len) {
            st = lb_fail(err, LB_ERR_FORMAT, "%s: token %d: length %d (expected 0..max_token_length %d)", name, i, len,
                         max_len);
            goto done;
        }
        pos += 8;
        if (size - pos < (size_t)len) {
            st = lb_fail(err, LB_ERR_FORMAT, "%s: token %d: %d bytes past the end of the file (%zu bytes)",
                         name, i, len, size);
            goto done;
        }
        total += (uint64_t)len * 3 + 1; // every byte could be a space → 3-byte "▁"
        pos += (size_t)len;
    }
    // The format has no token count: bytes left over mean the file holds a
    // larger vocabulary than the model (e.g. LLaMA-2's tokenizer.bin given to
    // a 512-token model), which would silently decode to the wrong text.
    if (pos != size) {
        st = lb_fail(err, LB_ERR_FORMAT, "%s: %zu bytes left after %d tokens (the model's vocab_size): "
                     "not this model's tokenizer", name, size - pos, n_vocab);
        goto done;
    }
    if (total > UINT32_MAX || !(text = malloc(total))) {
        st = lb_fail(err, LB_ERR_NOMEM, "%s: out of memory for %llu bytes of pieces", name, (unsigned long long)total);
        goto done;
    }
    t->text = text;
    // Second pass: copy, restoring SentencePiece's spelling — tokenizer.py
    // wrote "▁" as ' ' and BOS/EOS as "\n<s>\n", "\n</s>\n".
    pos = 4;
    uint32_t off = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        float score;
        int32_t len;
        memcpy(&score, buf + pos, 4);
        memcpy(&len, buf + pos + 4, 4);
        const char *p = buf + pos + 8;
        pos += 8 + (size_t)len;
        bool bos = i == 1 && len == 5 && memcmp(p, "\n<s>\n", 5) == 0;
        bool eos = i == 2 && len == 6 && memcmp(p, "\n</s>\n", 6) == 0;
        if (bos || eos)
            p++, len -= 2;
        struct tok_token *tok = &t->tokens[i];
        tok->off = off;
        tok->score = score;
        for (int32_t k = 0; k < len; k++) {
            if (p[k] == ' ') {
                memcpy(text + off, "\xE2\x96\x81", 3);
                off += 3;
            } else {
                text[off++] = p[k];
            }
        }
        tok->len = off - tok->off;
        text[off++] = '\0';
        tok->attr = i == 0 ? LB_TOKATTR_UNKNOWN
                  : i <= 2 ? LB_TOKATTR_CONTROL
                  : parse_byte_piece(text + tok->off, tok->len) >= 0 ? LB_TOKATTR_BYTE : LB_TOKATTR_NORMAL;
    }
    t->unk = 0;
    t->bos = n_vocab > 1 ? 1 : -1;
    t->eos = n_vocab > 2 ? 2 : -1;
    t->add_bos = true;
    t->add_space_prefix = true;
    st = finish(t, name, err);
done:
    free(buf);
    if (st != LB_OK) {
        tokenizer_free(t);
        return st;
    }
    *out = t;
    return LB_OK;
}

// ----------------------------------------------------------------------------
// Queries.

enum lb_tok_kind tokenizer_kind(const struct lb_tokenizer *t) { return t->kind; }
int32_t tokenizer_n_vocab(const struct lb_tokenizer *t) { return t->n_vocab; }
int32_t tokenizer_bos(const struct lb_tokenizer *t) { return t->bos; }
int32_t tokenizer_eos(const struct lb_tokenizer *t) { return t->eos; }
int32_t tokenizer_eot(const struct lb_tokenizer *t) { return t->eot; }
int32_t tokenizer_unk(const struct lb_tokenizer *t) { return t->unk; }
bool tokenizer_add_bos(const struct lb_tokenizer *t) { return t->add_bos; }

bool tokenizer_is_eog(const struct lb_tokenizer *t, int32_t id) {
    for (int i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id)
            return true;
    return false;
}

enum lb_tok_attr tokenizer_attr(const struct lb_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n_vocab)
        return LB_TOKATTR_UNDEFINED;
    return (enum lb_tok_attr)t->tokens[id].attr;
}

const char *tokenizer_piece(const struct lb_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n_vocab)
        return NULL;
    return tok_text(t, id);
}

// ----------------------------------------------------------------------------
// Encode: split out special tokens, hand the text between them to the model.

// The longest special token starting at text[0..len), or -1. Control and
// unknown tokens count only when parse_special is set.
static int32_t match_special(const struct lb_tokenizer *t, const char *text, size_t len, bool parse_special) {
    uint8_t b = (uint8_t)text[0];
    for (uint32_t k = t->special_first[b]; k < t->special_first[b + 1]; k++) {
        int32_t id = t->specials[k];
        const struct tok_token *tok = &t->tokens[id];
        if (!parse_special && tok->attr != LB_TOKATTR_USER_DEFINED)
            continue;
        if (tok->len <= len && memcmp(t->text + tok->off, text, tok->len) == 0)
            return id;
    }
    return -1;
}

static void encode_plain(const struct lb_tokenizer *t, const char *text, size_t len, bool after_special,
                         struct tok_ids *out) {
    if (len == 0)
        return;
    if (t->kind == LB_TOK_SPM)
        spm_encode(t, text, len, t->add_space_prefix && after_special, out);
    else
        bpe_encode(t, text, len, out);
}

int tokenizer_encode(const struct lb_tokenizer *t, const char *text, size_t len, bool add_bos, bool parse_special,
                     int32_t *ids, int cap) {
    struct tok_ids out = {0};
    if (add_bos && t->add_bos && t->bos >= 0)
        tok_ids_push(&out, t->bos);
    // As llama.cpp: SentencePiece puts "▁" before the first text and before
    // text that follows a special token.
    bool after_special = true;
    bool scan = parse_special ? t->n_specials > 0 : t->n_user_defined > 0;
    size_t start = 0;
    for (size_t i = 0; i < len;) {
        int32_t id = scan ? match_special(t, text + i, len - i, parse_special) : -1;
        if (id < 0) {
            i++;
            continue;
        }
        if (i > start) {
            encode_plain(t, text + start, i - start, after_special, &out);
            after_special = false;
        }
        tok_ids_push(&out, id);
        after_special = true;
        i += t->tokens[id].len;
        start = i;
    }
    encode_plain(t, text + start, len - start, after_special, &out);
    if (add_bos && t->add_eos && t->eos >= 0)
        tok_ids_push(&out, t->eos);

    int n;
    if (out.oom || out.n > INT_MAX) {
        n = 0;
    } else {
        n = (int)out.n;
        size_t k = out.n < (size_t)(cap > 0 ? cap : 0) ? out.n : (size_t)(cap > 0 ? cap : 0);
        if (k)
            memcpy(ids, out.v, k * sizeof *ids);
        if (out.n > k)
            n = -n;
    }
    free(out.v);
    return n;
}

// ----------------------------------------------------------------------------
// Decode.

int tokenizer_decode(const struct lb_tokenizer *t, int32_t prev, int32_t id, char *buf, int cap) {
    char small[256];
    char *dst = small;
    size_t n = 0;
    if (id >= 0 && id < t->n_vocab) {
        const struct tok_token *tok = &t->tokens[id];
        size_t room = (size_t)tok->len + 8; // decoded text is never longer than the piece (" ⁇ " for "<unk>": 5)
        if (room > sizeof small && !(dst = malloc(room))) {
            if (cap > 0)
                buf[0] = '\0';
            return 0; // out of memory: "" (tokenizer.h)
        }
        switch (tok->attr) {
        case LB_TOKATTR_CONTROL:
            break;
        case LB_TOKATTR_UNKNOWN:
            memcpy(dst, " \xE2\x81\x87 ", 5); // SentencePiece's surface for <unk>: " ⁇ "
            n = 5;
            break;
        case LB_TOKATTR_BYTE: {
            int b = parse_byte_piece(t->text + tok->off, tok->len);
            if (b >= 0)
                dst[n++] = (char)b;
            break;
        }
        case LB_TOKATTR_USER_DEFINED:
            memcpy(dst, t->text + tok->off, tok->len);
            n = tok->len;
            break;
        default:
            n = t->kind == LB_TOK_SPM ? spm_decode_piece(t, prev, id, dst) : bpe_decode_piece(t, id, dst);
            break;
        }
    }
    int ret;
    if (n + 1 > (size_t)(cap > 0 ? cap : 0)) {
        if (cap > 0)
            buf[0] = '\0';
        ret = n + 1 > INT_MAX ? INT_MIN + 1 : -(int)(n + 1);
    } else {
        memcpy(buf, dst, n);
        buf[n] = '\0';
        ret = (int)n;
    }
    if (dst != small)
        free(dst);
    return ret;
}

// ----------------------------------------------------------------------------
// The merge queue shared by tokenizer_spm.c and tokenizer_bpe.c

static bool pair_before(const struct tok_pair *x, const struct tok_pair *y) {
    return x->priority > y->priority || (x->priority == y->priority && x->left < y->left);
}

bool tok_queue_push(struct tok_queue *q, struct tok_pair p) {
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        struct tok_pair *v = realloc(q->v, cap * sizeof *v);
        if (!v)
            return false;
        q->v = v, q->cap = cap;
    }
    size_t i = q->n++;
    while (i > 0 && pair_before(&p, &q->v[(i - 1) / 2])) {
        q->v[i] = q->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    q->v[i] = p;
    return true;
}

struct tok_pair tok_queue_pop(struct tok_queue *q) {
    struct tok_pair top = q->v[0], last = q->v[--q->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->n)
            break;
        if (c + 1 < q->n && pair_before(&q->v[c + 1], &q->v[c]))
            c++;
        if (!pair_before(&q->v[c], &last))
            break;
        q->v[i] = q->v[c];
        i = c;
    }
    if (q->n > 0)
        q->v[i] = last;
    return top;
}
