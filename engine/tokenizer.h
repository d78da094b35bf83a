/*
 * tokenizer.h — SentencePiece BPE and byte-level BPE tokenizers (private).
 *
 * Built from GGUF metadata (tokenizer.ggml.*) or from a llama2.c tokenizer.bin.
 * The public wrappers in lowbit.h (lb_tokenize, lb_token_decode ...) call these.
 */
#ifndef LB_TOKENIZER_H
#define LB_TOKENIZER_H

#include "lowbit.h"

struct gguf_file;

enum lb_tok_kind { LB_TOK_SPM, LB_TOK_BPE };

// GGUF tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum lb_tok_attr {
    LB_TOKATTR_UNDEFINED = 0,
    LB_TOKATTR_NORMAL = 1,
    LB_TOKATTR_UNKNOWN = 2,
    LB_TOKATTR_CONTROL = 3,
    LB_TOKATTR_USER_DEFINED = 4,
    LB_TOKATTR_UNUSED = 5,
    LB_TOKATTR_BYTE = 6,
};

struct lb_tokenizer;

lb_status tokenizer_from_gguf(struct lb_tokenizer **out, const struct gguf_file *f, lb_error *err);
// llama2.c tokenizer.bin: i32 max_token_length, then n_vocab × {f32 score, i32 len, bytes}.
// n_vocab comes from the model header. BOS=1, EOS=2, UNK=0 as in llama2.c.
lb_status tokenizer_from_llama2c(struct lb_tokenizer **out, const char *path, int32_t n_vocab, lb_error *err);
void tokenizer_free(struct lb_tokenizer *t);

enum lb_tok_kind tokenizer_kind(const struct lb_tokenizer *t);
int32_t tokenizer_n_vocab(const struct lb_tokenizer *t);
int32_t tokenizer_bos(const struct lb_tokenizer *t);   // -1 when none
int32_t tokenizer_eos(const struct lb_tokenizer *t);
int32_t tokenizer_eot(const struct lb_tokenizer *t);   // <|eot_id|>, <|im_end|>, <end_of_turn> ...; -1 when none
bool tokenizer_add_bos(const struct lb_tokenizer *t);  // tokenizer.ggml.add_bos_token, default per kind
bool tokenizer_is_eog(const struct lb_tokenizer *t, int32_t id);
enum lb_tok_attr tokenizer_attr(const struct lb_tokenizer *t, int32_t id);
const char *tokenizer_piece(const struct lb_tokenizer *t, int32_t id); // as in the vocab, NUL-terminated

// Same contract as lb_tokenize / lb_token_decode in lowbit.h.
//
// encode: add_bos is llama.cpp's add_special: BOS first when the vocabulary
// wants one (tokenizer_add_bos(): tokenizer.ggml.add_bos_token, by default on
// for SentencePiece and Llama 3, off for other BPE vocabularies such as
// Qwen2), EOS last when tokenizer.ggml.add_eos_token is set.
// User-defined tokens written in the text are always matched; control tokens
// only with parse_special (leftmost, then longest). Returns the number of ids,
// or -(number needed) when cap is too small (ids[0..cap) then hold the first
// ones); 0 also when an allocation fails.
//
// decode: writes the token's text after `prev` (-1: none) and a NUL; returns
// the text's length, or -(length + 1), the cap needed, when it does not fit
// (buf is then "" when cap > 0). Byte tokens give their byte (possibly part of
// a UTF-8 character), SentencePiece's "▁" a space (the first one dropped right
// after BOS), byte-level BPE characters their bytes, <unk> " ⁇ ", user-defined
// tokens their text; control tokens and ids out of range give "".
//
// A tokenizer is read-only once built: any number of threads may encode and
// decode with it at once.
int tokenizer_encode(const struct lb_tokenizer *t, const char *text, size_t len, bool add_bos,
                     bool parse_special, int32_t *ids, int cap);
int tokenizer_decode(const struct lb_tokenizer *t, int32_t prev, int32_t id, char *buf, int cap);

int32_t tokenizer_unk(const struct lb_tokenizer *t);   // -1 when none
// The id whose piece is exactly text[0..len), or -1. O(1) (hash map).
int32_t tokenizer_find(const struct lb_tokenizer *t, const char *text, size_t len);

// ----------------------------------------------------------------------------
// Internals shared by tokenizer.c, tokenizer_spm.c and tokenizer_bpe.c only.

enum tok_bpe_pre {
    TOK_PRE_GPT2,   // 's|'t|...| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ (gpt2, smollm, default)
    TOK_PRE_LLAMA3, // (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|...
    TOK_PRE_QWEN2,  // as LLAMA3 with single digits: \p{N}
};

struct tok_token {
    uint32_t off, len;     // piece bytes: lb_tokenizer.text[off .. off+len), NUL after
    float score;           // SPM merge priority (higher merges first); 0 for BPE
    uint8_t attr;          // enum lb_tok_attr
};

// BPE merge table entry: the pair (left id, right id) → rank and result id.
struct tok_merge {
    uint64_t key;          // (uint64_t)left << 32 | right; 0 marks an empty slot (key+1 stored)
    int32_t rank;          // line number in tokenizer.ggml.merges: lower merges first
    int32_t result;        // id of left's piece followed by right's
};

// A candidate merge of two adjacent symbols, for both tokenizers' merge
// loops: the highest priority merges first, then the leftmost. SentencePiece
// uses the merged piece's score; byte-level BPE uses -rank (ranks are below
// 2^24, so exact in a float). `a` and `b` are the caller's: SPM keeps the
// merged length to spot stale entries, BPE the two token ids.
struct tok_pair {
    float priority;
    int32_t left, right;   // symbol indices
    uint32_t a, b;
};

// A binary max-heap of tok_pair; zero-initialise, free(q->v) when done.
struct tok_queue {
    struct tok_pair *v;
    size_t n, cap;
};
bool tok_queue_push(struct tok_queue *q, struct tok_pair p); // false on out of memory
struct tok_pair tok_queue_pop(struct tok_queue *q);          // q->n > 0

struct lb_tokenizer {
    enum lb_tok_kind kind;
    int32_t n_vocab;
    struct tok_token *tokens;   // n_vocab
    char *text;                 // every piece, each NUL-terminated
    uint32_t *map;              // piece → id + 1 (0: empty slot); open addressing, map_mask + 1 slots
    uint32_t map_mask;

    int32_t bos, eos, unk, eot, pad; // -1 when none
    int32_t eog[8];             // end-of-generation ids: eos, eot and the known end markers
    int n_eog;
    bool add_bos, add_eos;
    bool add_space_prefix;      // SPM: "▁" before the text and after each special token

    // Tokens that text can name directly (control, unknown, user-defined),
    // sorted by first byte, then longest first; special_first[b] ..
    // special_first[b + 1] is the range for first byte b.
    int32_t *specials;
    int n_specials;
    int n_user_defined;         // how many of them are user-defined (matched even without parse_special)
    uint32_t special_first[257];

    // SPM: the <0xNN> token of each byte. BPE: the token of the byte's
    // GPT-2 character. -1 where the vocabulary has none.
    int32_t byte_id[256];

    // BPE only.
    enum tok_bpe_pre pre;
    bool ignore_merges;         // Llama 3: a word that is a token is not split
    struct tok_merge *merges;   // open addressing, merge_mask + 1 slots
    uint32_t merge_mask;
};

// A growing array of ids; `oom` is set (and later pushes dropped) when
// realloc fails, so callers check once at the end.
struct tok_ids {
    int32_t *v;
    size_t n, cap;
    bool oom;
};
void tok_ids_push(struct tok_ids *out, int32_t id);

static inline const char *tok_text(const struct lb_tokenizer *t, int32_t id) {
    return t->text + t->tokens[id].off;
}

// Encode one fragment of plain text (no special tokens in it) and append the ids.
void spm_encode(const struct lb_tokenizer *t, const char *text, size_t len, bool space_prefix,
                struct tok_ids *out);
void bpe_encode(const struct lb_tokenizer *t, const char *text, size_t len, struct tok_ids *out);

// Write the text of a normal token into dst (room for the piece's length + 1);
// returns the byte count.
size_t spm_decode_piece(const struct lb_tokenizer *t, int32_t prev, int32_t id, char *dst);
size_t bpe_decode_piece(const struct lb_tokenizer *t, int32_t id, char *dst);

// BPE setup from GGUF: byte table and merges. `name` is the file for messages.
lb_status bpe_init(struct lb_tokenizer *t, const struct gguf_file *f, const char *name, lb_error *err);

#endif
