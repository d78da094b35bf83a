/*
 * tokenizer_bpe.c — GPT-2 style byte-level BPE (GPT-2, SmolLM, Llama 3, Qwen2),
 * as Hugging Face tokenizers and llama.cpp's llm_tokenizer_bpe encode:
 *
 *   1. pre-tokenize: cut the text into words with the model's split regex,
 *      written out here as hand-made matchers over code points (no regex
 *      engine); every alternative is tried in the regex's order;
 *   2. each word's bytes start as one symbol each (the vocabulary spells byte b
 *      as the character GPT-2's bytes_to_unicode() gives it: printable Latin-1
 *      as itself, the rest as U+0100 + k);
 *   3. merge the adjacent pair with the lowest merge rank (leftmost on ties)
 *      until none applies, with a priority queue: O(n log n) per word;
 *   4. the symbols' ids are the output.
 * Decoding maps each character of a piece back to its byte.
 */
#include "tokenizer.h"

#include "gguf.h"
#include "internal.h"
#include "unicode.h"

#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// GPT-2 byte ↔ character table.

// The code point GPT-2's bytes_to_unicode() assigns to byte b: bytes that are
// printable in Latin-1 ('!'..'~', '¡'..'¬', '®'..'ÿ') keep their value; the 68
// others get U+0100, U+0101, ... in byte order: 0x00..0x20 → U+0100..U+0120,
// 0x7F..0xA0 → U+0121..U+0142, 0xAD → U+0143.
static uint32_t byte_to_cp(uint8_t b) {
    if (b <= 0x20)
        return 0x100u + b;
    if (b >= 0x7F && b <= 0xA0)
        return 0x121u + (b - 0x7Fu);
    if (b == 0xAD)
        return 0x143;
    return b;
}

// Inverse: the byte for cp, or -1 when cp is not one of the 256 characters.
static int cp_to_byte(uint32_t cp) {
    if (cp < 0x100)
        return byte_to_cp((uint8_t)cp) == cp ? (int)cp : -1;
    if (cp <= 0x120)
        return (int)(cp - 0x100);
    if (cp <= 0x142)
        return (int)(cp - 0x121 + 0x7F);
    if (cp == 0x143)
        return 0xAD;
    return -1;
}

// ----------------------------------------------------------------------------
// Merge table: (left id, right id) → rank, result.

static uint32_t merge_hash(uint64_t key) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return (uint32_t)key;
}

static const struct tok_merge *find_merge(const struct lb_tokenizer *t, int32_t left, int32_t right) {
    uint64_t key = ((uint64_t)(uint32_t)left << 32 | (uint32_t)right) + 1;
    for (uint32_t i = merge_hash(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        if (t->merges[i].key == key)
            return &t->merges[i];
        if (t->merges[i].key == 0)
            return NULL;
    }
}

static const char *pre_names =
    "llama-bpe, llama3, llama-v3, falcon3, qwen2, smollm, gpt2 or default";

lb_status bpe_init(struct lb_tokenizer *t, const struct gguf_file *f, const char *name, lb_error *err) {
    // Pre-tokenizer.
    t->pre = TOK_PRE_GPT2;
    if (gguf_find(f, "tokenizer.ggml.pre")) {
        struct gguf_str pre;
        lb_status st = gguf_get_str(f, "tokenizer.ggml.pre", &pre, err);
        if (st != LB_OK)
            return st;
        static const struct { const char *name; enum tok_bpe_pre pre; } known[] = {
            {"llama-bpe", TOK_PRE_LLAMA3}, {"llama3", TOK_PRE_LLAMA3}, {"llama-v3", TOK_PRE_LLAMA3},
            {"falcon3", TOK_PRE_LLAMA3},   {"qwen2", TOK_PRE_QWEN2},   {"smollm", TOK_PRE_GPT2},
            {"gpt2", TOK_PRE_GPT2},        {"default", TOK_PRE_GPT2},
        };
        size_t k = 0, n_known = sizeof known / sizeof known[0];
        while (k < n_known && !(pre.len == strlen(known[k].name) && memcmp(pre.data, known[k].name, pre.len) == 0))
            k++;
        if (k == n_known)
            return lb_fail(err, LB_ERR_UNSUPPORTED, "%s: tokenizer.ggml.pre: \"%.*s\" unsupported (expected %s)", name,
                           (int)(pre.len > 64 ? 64 : pre.len), pre.data, pre_names);
        t->pre = known[k].pre;
    }
    t->ignore_merges = t->pre == TOK_PRE_LLAMA3;

    // The token of each byte's character.
    for (int b = 0; b < 256; b++) {
        char u[4];
        size_t n = unicode_encode(byte_to_cp((uint8_t)b), u);
        t->byte_id[b] = tokenizer_find(t, u, n);
    }

    // Merges: "left right", lowest line first. The map is built before the
    // merges are read, so pieces resolve to ids here.
    const struct gguf_value *merges;
    lb_status st = gguf_get_arr(f, "tokenizer.ggml.merges", GGUF_STRING, &merges, err);
    if (st != LB_OK)
        return st;
    if (merges->arr.n > INT32_MAX / 2)
        return lb_fail(err, LB_ERR_FORMAT, "%s: tokenizer.ggml.merges: %llu entries (expected at most %d)", name,
                       (unsigned long long)merges->arr.n, INT32_MAX / 2);
    uint32_t cap = 16; // at most half full
    while (cap < 2 * merges->arr.n)
        cap *= 2;
    t->merges = calloc(cap, sizeof *t->merges);
    if (!t->merges)
        return lb_fail(err, LB_ERR_NOMEM, "%s: tokenizer.ggml.merges: out of memory for %llu merges", name,
                       (unsigned long long)merges->arr.n);
    t->merge_mask = cap - 1;
    char *joined = NULL;
    size_t joined_cap = 0;
    for (uint64_t r = 0; r < merges->arr.n; r++) {
        const struct gguf_str *m = &merges->arr.items[r].str;
        // Split at the first space after the first byte (as llama.cpp: a
        // left part is never empty).
        const char *sp = m->len > 1 ? memchr(m->data + 1, ' ', m->len - 1) : NULL;
        if (!sp) {
            free(joined);
            return lb_fail(err, LB_ERR_FORMAT,
                           "%s: tokenizer.ggml.merges[%llu]: \"%.*s\" has no space (expected \"left right\")", name,
                           (unsigned long long)r, (int)(m->len > 64 ? 64 : m->len), m->data);
        }
        size_t la = (size_t)(sp - m->data), lb = m->len - la - 1;
        int32_t a = tokenizer_find(t, m->data, la), b = tokenizer_find(t, sp + 1, lb);
        if (la + lb > joined_cap) {
            joined_cap = (la + lb) * 2;
            char *nj = realloc(joined, joined_cap);
            if (!nj) {
                free(joined);
                return lb_fail(err, LB_ERR_NOMEM, "%s: tokenizer.ggml.merges: out of memory", name);
            }
            joined = nj;
        }
        memcpy(joined, m->data, la);
        memcpy(joined + la, sp + 1, lb);
        int32_t ab = tokenizer_find(t, joined, la + lb);
        // A merge whose parts or result are not tokens can never fire (every
        // symbol is a token); skip it, as llama.cpp does.
        if (a < 0 || b < 0 || ab < 0)
            continue;
        uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
        uint32_t i = merge_hash(key) & t->merge_mask;
        while (t->merges[i].key != 0 && t->merges[i].key != key)
            i = (i + 1) & t->merge_mask;
        if (t->merges[i].key == 0) // a repeated pair keeps its first (lowest) rank
            t->merges[i] = (struct tok_merge){key, (int32_t)r, ab};
    }
    free(joined);
    return LB_OK;
}

// ----------------------------------------------------------------------------
// Pre-tokenizers. Each returns the end of the word that starts at pos, over
// the code points cp[0..n) and their classes cls[0..n).

static bool is_crlf(uint32_t c) { return c == '\r' || c == '\n'; }

// Case folding as (?i) does it in Oniguruma (tokenizers) for the letters of
// the contractions: lowercase, and U+017F LATIN SMALL LETTER LONG S folds to
// 's' (CaseFolding.txt). The Kelvin sign folds to 'k', which no contraction has.
static uint32_t fold_case(uint32_t c) {
    return c == 0x17F ? 's' : unicode_tolower(c);
}

// 's|'t|'re|'ve|'m|'ll|'d at pos (case-insensitive with fold); the end, or 0.
static size_t contraction(const uint32_t *cp, size_t n, size_t pos, bool fold) {
    if (cp[pos] != '\'' || pos + 1 >= n)
        return 0;
    uint32_t a = fold ? fold_case(cp[pos + 1]) : cp[pos + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return pos + 2;
    if (pos + 2 >= n)
        return 0;
    uint32_t b = fold ? fold_case(cp[pos + 2]) : cp[pos + 2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        return pos + 3;
    return 0;
}

// \s+(?!\S)|\s+ at pos, cls[pos] being whitespace: the whole run when it ends
// the text, else the run less its last character (which then leads the next
// word), unless that would leave nothing.
static size_t space_run(const uint8_t *cls, size_t n, size_t pos) {
    size_t q = pos;
    while (q < n && cls[q] == UNICODE_SPACE)
        q++;
    if (q - pos > 1 && q < n)
        return q - 1;
    return q;
}

// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
static size_t word_gpt2(const uint32_t *cp, const uint8_t *cls, size_t n, size_t pos) {
    size_t end = contraction(cp, n, pos, false);
    if (end)
        return end;
    // " ?" then a run of one class: letters, numbers, or "other" (not L/N/\s).
    size_t q = pos + (cp[pos] == ' ' && pos + 1 < n && cls[pos + 1] != UNICODE_SPACE);
    if (q < n && cls[q] != UNICODE_SPACE) {
        uint8_t c = cls[q];
        while (q < n && cls[q] == c)
            q++;
        return q;
    }
    return space_run(cls, n, pos);
}

// Llama 3 (max_digits 3) and Qwen2 (max_digits 1):
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
static size_t word_llama3(const uint32_t *cp, const uint8_t *cls, size_t n, size_t pos, size_t max_digits) {
    size_t end = contraction(cp, n, pos, true);
    if (end)
        return end;
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (cls[pos] == UNICODE_LETTER ||
        (!is_crlf(cp[pos]) && cls[pos] != UNICODE_NUMBER && pos + 1 < n && cls[pos + 1] == UNICODE_LETTER)) {
        size_t q = pos + 1;
        while (q < n && cls[q] == UNICODE_LETTER)
            q++;
        return q;
    }
    // \p{N}{1,3}
    if (cls[pos] == UNICODE_NUMBER) {
        size_t q = pos + 1;
        while (q < n && q - pos < max_digits && cls[q] == UNICODE_NUMBER)
            q++;
        return q;
    }
    // " ?[^\s\p{L}\p{N}]+[\r\n]*"
    size_t q = pos + (cp[pos] == ' ');
    if (q < n && cls[q] == UNICODE_OTHER) {
        while (q < n && cls[q] == UNICODE_OTHER)
            q++;
        while (q < n && is_crlf(cp[q]))
            q++;
        return q;
    }
    // \s*[\r\n]+ : whitespace up to and including its last newline.
    size_t last_nl = 0;
    for (q = pos; q < n && cls[q] == UNICODE_SPACE; q++)
        if (is_crlf(cp[q]))
            last_nl = q + 1;
    if (last_nl)
        return last_nl;
    if (cls[pos] == UNICODE_SPACE)
        return space_run(cls, n, pos);
    return pos + 1; // not reached: every class is matched above
}

// ----------------------------------------------------------------------------
// Merging one word.

struct bpe_sym {
    int32_t id;         // -1: a byte the vocabulary cannot spell
    int32_t prev, next; // -1 at the ends
};

// A candidate merge of `left` with its right neighbour; stale unless both
// still carry the ids they had when it was queued (a symbol's id changes on
// every merge: the merged piece is longer).

struct bpe_work {
    struct bpe_sym *sym; // one per byte of the longest word so far
    size_t sym_cap;
    struct tok_queue heap;
    char *spelled;       // a word in GPT-2 characters, for ignore_merges
    size_t spelled_cap;
    bool oom;
};

static bool grow(void **p, size_t *cap, size_t need, size_t item) {
    if (need <= *cap)
        return true;
    size_t ncap = need * 2;
    void *np = realloc(*p, ncap * item);
    if (!np)
        return false;
    *p = np, *cap = ncap;
    return true;
}

static void queue_pair(const struct lb_tokenizer *t, struct bpe_work *w, int32_t left) {
    if (left < 0 || w->sym[left].next < 0)
        return;
    int32_t a = w->sym[left].id, b = w->sym[w->sym[left].next].id;
    if (a < 0 || b < 0)
        return;
    const struct tok_merge *m = find_merge(t, a, b);
    // Lower ranks merge first: priority -rank.
    if (m && !tok_queue_push(&w->heap, (struct tok_pair){-(float)m->rank, left, -1, (uint32_t)a, (uint32_t)b}))
        w->oom = true;
}

static void encode_word(const struct lb_tokenizer *t, const char *word, size_t len, struct bpe_work *w,
                        struct tok_ids *out) {
    if (t->ignore_merges) {
        // Llama 3 (tokenizers' ignore_merges): a word that is itself a token
        // is that token, whatever the merges would make of it.
        if (!grow((void **)&w->spelled, &w->spelled_cap, 2 * len, 1)) {
            w->oom = true;
            return;
        }
        size_t n = 0;
        for (size_t i = 0; i < len; i++)
            n += unicode_encode(byte_to_cp((uint8_t)word[i]), w->spelled + n);
        int32_t id = tokenizer_find(t, w->spelled, n);
        if (id >= 0) {
            tok_ids_push(out, id);
            return;
        }
    }
    if (!grow((void **)&w->sym, &w->sym_cap, len, sizeof *w->sym)) {
        w->oom = true;
        return;
    }
    for (size_t i = 0; i < len; i++)
        w->sym[i] = (struct bpe_sym){t->byte_id[(uint8_t)word[i]], (int32_t)i - 1, i + 1 < len ? (int32_t)i + 1 : -1};
    w->heap.n = 0;
    for (size_t i = 0; i + 1 < len; i++)
        queue_pair(t, w, (int32_t)i);
    while (w->heap.n > 0 && !w->oom) {
        struct tok_pair p = tok_queue_pop(&w->heap);
        struct bpe_sym *l = &w->sym[p.left];
        if (l->id != (int32_t)p.a || l->next < 0 || w->sym[l->next].id != (int32_t)p.b)
            continue; // stale
        struct bpe_sym *r = &w->sym[l->next];
        l->id = find_merge(t, (int32_t)p.a, (int32_t)p.b)->result;
        r->id = -2; // merged away (never a live id)
        l->next = r->next;
        if (r->next >= 0)
            w->sym[r->next].prev = p.left;
        queue_pair(t, w, l->prev);
        queue_pair(t, w, p.left);
    }
    for (int32_t i = 0; i >= 0; i = w->sym[i].next) {
        int32_t id = w->sym[i].id;
        if (id < 0)
            id = t->unk; // a byte with no token: <unk> when there is one, else dropped
        if (id >= 0)
            tok_ids_push(out, id);
    }
}

void bpe_encode(const struct lb_tokenizer *t, const char *text, size_t len, struct tok_ids *out) {
    // Code points, their classes and byte offsets (offs[n] = len).
    uint32_t *cp = malloc(len * sizeof *cp);
    uint8_t *cls = malloc(len);
    size_t *offs = malloc((len + 1) * sizeof *offs);
    struct bpe_work w = {0};
    if (!cp || !cls || !offs) {
        out->oom = true;
        goto done;
    }
    size_t n = 0;
    for (size_t off = 0; off < len; n++) {
        offs[n] = off;
        off += unicode_decode(text + off, len - off, &cp[n]);
        cls[n] = (uint8_t)unicode_class_of(cp[n]);
    }
    offs[n] = len;
    for (size_t pos = 0; pos < n && !w.oom;) {
        size_t end = t->pre == TOK_PRE_GPT2 ? word_gpt2(cp, cls, n, pos)
                   : word_llama3(cp, cls, n, pos, t->pre == TOK_PRE_QWEN2 ? 1 : 3);
        encode_word(t, text + offs[pos], offs[end] - offs[pos], &w, out);
        pos = end;
    }
    if (w.oom)
        out->oom = true;
done:
    free(cp);
    free(cls);
    free(offs);
    free(w.sym);
    free(w.heap.v);
    free(w.spelled);
}

size_t bpe_decode_piece(const struct lb_tokenizer *t, int32_t id, char *dst) {
    const char *p = tok_text(t, id);
    size_t len = t->tokens[id].len, n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t c;
        size_t k = unicode_decode(p + i, len - i, &c);
        int b = cp_to_byte(c);
        if (b >= 0) {
            dst[n++] = (char)b;
        } else { // not a GPT-2 byte character: keep it as written
            memcpy(dst + n, p + i, k);
            n += k;
        }
        i += k;
    }
    return n;
}
