/*
 * tokenizer_spm.c — SentencePiece BPE, as sentencepiece's bpe_model.cc and
 * llama.cpp's llm_tokenizer_spm encode:
 *
 *   1. escape: "▁" before the text (add_space_prefix), every ' ' becomes "▁";
 *   2. split into characters (a valid UTF-8 sequence, or one invalid byte);
 *   3. repeatedly merge the adjacent pair whose concatenation is the piece
 *      with the highest score (leftmost on ties), using a priority queue of
 *      candidate pairs, so the cost is O(n log n) in the text length and one
 *      hash lookup per candidate, independent of the vocabulary size;
 *   4. emit each final symbol's id; an "unused" piece is split back into the
 *      two symbols it was merged from; a symbol with no piece (a character
 *      outside the vocabulary) becomes its <0xNN> byte tokens, or <unk> when
 *      the vocabulary has no byte tokens.
 */
#include "tokenizer.h"

#include "unicode.h"

#include <stdlib.h>
#include <string.h>

#define SPM_SPACE "\xE2\x96\x81" // U+2581 "▁", SentencePiece's visible space
#define SPM_SPACE_LEN 3

// A symbol is a span of the escaped text; merged symbols keep the left slot
// and the right one is emptied (len 0). `node` records how it was built.
struct spm_sym {
    uint32_t off, len;
    int32_t prev, next; // neighbours in the list, -1 at the ends
    int32_t node;
};

// Merge history, for splitting "unused" pieces back: leaves are the initial
// characters, an inner node joins two nodes.
struct spm_node {
    uint32_t off, len;
    int32_t a, b; // children, -1 for a leaf
};

// A candidate merge of symbols left and right. It is stale when either side
// has changed length since it was queued (symbols only grow).

// Pieces a merge may produce. Control, unknown and byte pieces are never
// built from text (SentencePiece keeps them out of its piece table), and
// user-defined ones were split out before.
static bool mergeable(uint8_t attr) {
    return attr == LB_TOKATTR_NORMAL || attr == LB_TOKATTR_UNUSED || attr == LB_TOKATTR_UNDEFINED;
}

struct spm_state {
    const struct lb_tokenizer *t;
    const char *esc;
    struct spm_sym *sym;
    struct spm_node *node;
    int32_t n_node;
    struct tok_queue heap;
    bool oom;
};

static void try_pair(struct spm_state *s, int32_t left, int32_t right) {
    if (left < 0 || right < 0)
        return;
    const struct spm_sym *l = &s->sym[left], *r = &s->sym[right];
    int32_t id = tokenizer_find(s->t, s->esc + l->off, l->len + r->len);
    if (id < 0 || !mergeable(s->t->tokens[id].attr))
        return;
    struct tok_pair p = {s->t->tokens[id].score, left, right, l->len + r->len, 0};
    if (!tok_queue_push(&s->heap, p))
        s->oom = true;
}

// Bytes of text that has no piece: <0xNN> tokens, or one <unk>.
static void emit_unknown(const struct lb_tokenizer *t, const char *text, size_t len, struct tok_ids *out) {
    bool have_bytes = false;
    for (size_t i = 0; i < len && !have_bytes; i++)
        have_bytes = t->byte_id[(uint8_t)text[i]] >= 0;
    if (!have_bytes) {
        if (t->unk >= 0)
            tok_ids_push(out, t->unk);
        return;
    }
    for (size_t i = 0; i < len; i++) {
        int32_t id = t->byte_id[(uint8_t)text[i]];
        if (id < 0)
            id = t->unk;
        if (id >= 0)
            tok_ids_push(out, id);
    }
}

// Emit a final symbol, splitting unused pieces back into their halves. An
// explicit stack: a merge tree can be as deep as the text is long.
static void resegment(struct spm_state *s, int32_t root, struct tok_ids *out) {
    int32_t stack_small[64], *stack = stack_small;
    size_t n = 0, cap = 64;
    stack[n++] = root;
    while (n > 0) {
        const struct spm_node *nd = &s->node[stack[--n]];
        const char *text = s->esc + nd->off;
        int32_t id = tokenizer_find(s->t, text, nd->len);
        uint8_t attr = id >= 0 ? s->t->tokens[id].attr : LB_TOKATTR_UNDEFINED;
        if (id >= 0 && attr == LB_TOKATTR_UNUSED && nd->a >= 0) {
            if (n + 2 > cap) {
                size_t ncap = cap * 2;
                int32_t *ns = malloc(ncap * sizeof *ns);
                if (!ns) {
                    s->oom = true;
                    break;
                }
                memcpy(ns, stack, n * sizeof *ns);
                if (stack != stack_small)
                    free(stack);
                stack = ns, cap = ncap;
            }
            stack[n++] = nd->b; // popped after a: left to right
            stack[n++] = nd->a;
        } else if (id >= 0 && mergeable(attr)) {
            tok_ids_push(out, id);
        } else {
            emit_unknown(s->t, text, nd->len, out);
        }
    }
    if (stack != stack_small)
        free(stack);
}

void spm_encode(const struct lb_tokenizer *t, const char *text, size_t len, bool space_prefix, struct tok_ids *out) {
    // 1. Escape.
    size_t n_spaces = 0;
    for (size_t i = 0; i < len; i++)
        n_spaces += text[i] == ' ';
    size_t esc_len = len + n_spaces * (SPM_SPACE_LEN - 1) + (space_prefix ? SPM_SPACE_LEN : 0);
    if (esc_len > UINT32_MAX / 2) { // spans are u32; 2 GiB of text in one call is not a use case
        out->oom = true;
        return;
    }
    struct spm_state s = {.t = t};
    char *esc = malloc(esc_len);
    s.sym = malloc(esc_len * sizeof *s.sym);
    s.node = malloc(2 * esc_len * sizeof *s.node);
    if (!esc || !s.sym || !s.node) {
        out->oom = true;
        goto done;
    }
    s.esc = esc;
    size_t e = 0;
    if (space_prefix)
        memcpy(esc, SPM_SPACE, SPM_SPACE_LEN), e = SPM_SPACE_LEN;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ')
            memcpy(esc + e, SPM_SPACE, SPM_SPACE_LEN), e += SPM_SPACE_LEN;
        else
            esc[e++] = text[i];
    }

    // 2. Characters.
    int32_t n_sym = 0;
    for (size_t off = 0; off < esc_len;) {
        uint32_t cp;
        size_t n = unicode_decode(esc + off, esc_len - off, &cp);
        s.sym[n_sym] = (struct spm_sym){(uint32_t)off, (uint32_t)n, n_sym - 1, n_sym + 1, n_sym};
        s.node[n_sym] = (struct spm_node){(uint32_t)off, (uint32_t)n, -1, -1};
        n_sym++;
        off += n;
    }
    s.sym[n_sym - 1].next = -1;
    s.n_node = n_sym;

    // 3. Merge.
    for (int32_t i = 0; i + 1 < n_sym; i++)
        try_pair(&s, i, i + 1);
    while (s.heap.n > 0 && !s.oom) {
        struct tok_pair p = tok_queue_pop(&s.heap);
        struct spm_sym *l = &s.sym[p.left], *r = &s.sym[p.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != p.a)
            continue; // stale: one side was merged into something else
        s.node[s.n_node] = (struct spm_node){l->off, l->len + r->len, l->node, r->node};
        l->node = s.n_node++;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            s.sym[r->next].prev = p.left;
        try_pair(&s, l->prev, p.left);
        try_pair(&s, p.left, l->next);
    }

    // 4. Emit.
    for (int32_t i = 0; i >= 0 && !s.oom; i = s.sym[i].next)
        resegment(&s, s.sym[i].node, out);
    if (s.oom)
        out->oom = true;
done:
    free(esc);
    free(s.sym);
    free(s.node);
    free(s.heap.v);
}

size_t spm_decode_piece(const struct lb_tokenizer *t, int32_t prev, int32_t id, char *dst) {
    const char *p = tok_text(t, id);
    size_t len = t->tokens[id].len, n = 0;
    for (size_t i = 0; i < len;) {
        if (len - i >= SPM_SPACE_LEN && memcmp(p + i, SPM_SPACE, SPM_SPACE_LEN) == 0) {
            dst[n++] = ' ';
            i += SPM_SPACE_LEN;
        } else {
            dst[n++] = p[i++];
        }
    }
    // The "▁" that add_space_prefix put before the text is not the user's:
    // drop it after BOS, as SentencePiece's decoder and llama2.c do.
    if (prev >= 0 && prev == t->bos && t->add_space_prefix && n > 0 && dst[0] == ' ') {
        memmove(dst, dst + 1, n - 1);
        n--;
    }
    return n;
}
