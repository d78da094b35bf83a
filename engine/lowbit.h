/*
 * lowbit.h — the engine's contract. src/ and ui/ include only this file.
 *
 * A worked example: load a model, generate a few tokens greedily, free.
 *
 *     lb_error err = {0};
 *     lb_model *model;
 *     if (lb_model_open(&model, "model.gguf", NULL, &err) != LB_OK) {
 *         fprintf(stderr, "%s\n", err.msg);
 *         return 1;
 *     }
 *     lb_context *ctx;
 *     lb_context_new(&ctx, model, NULL, &err);
 *     int32_t ids[512];
 *     int n = lb_tokenize(model, "Once upon a time", -1, true, false, ids, 512);
 *     float *logits = malloc(sizeof(float) * lb_model_hparams(model)->n_vocab);
 *     lb_decode(ctx, ids, n, logits, &err);          // prefill: logits of the last token
 *     for (int i = 0; i < 16; i++) {
 *         int32_t next = lb_argmax(logits, lb_model_hparams(model)->n_vocab);
 *         char piece[64];
 *         lb_token_decode(model, ids[n - 1], next, piece, sizeof piece);
 *         fputs(piece, stdout);
 *         ids[n++] = next;
 *         lb_decode(ctx, &next, 1, logits, &err);   // one token at a time
 *     }
 *     free(logits);
 *     lb_context_free(ctx);
 *     lb_model_free(model);
 *
 * Conventions
 * - Every call that can fail returns an lb_status and, when `err` is not NULL,
 *   writes one line into err->msg naming the file, the field, what was found and
 *   what was expected. On failure, out-parameters are left NULL and the objects
 *   passed in are unchanged unless the comment says otherwise.
 * - Every _open/_new has a _free that accepts NULL.
 * - The engine never prints, never exits and holds no global mutable state: two
 *   models (target and draft) and any number of contexts can live in one process.
 *   A model may be shared by several contexts; one context must be used by one
 *   thread at a time.
 */
#ifndef LOWBIT_H
#define LOWBIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ----------------------------------------------------------------------------
// Errors

typedef enum lb_status {
    LB_OK = 0,
    LB_ERR_IO,          // a file could not be opened, read, mapped or written
    LB_ERR_FORMAT,      // the bytes do not follow the format (truncated, bad magic, overflow)
    LB_ERR_UNSUPPORTED, // valid but not handled (unknown architecture, tensor type)
    LB_ERR_MISSING,     // a required key or tensor is absent
    LB_ERR_ARG,         // a caller passed a bad argument
    LB_ERR_NOMEM,       // an allocation failed
    LB_ERR_CANCELLED,   // a progress callback asked to stop
} lb_status;

typedef struct lb_error {
    lb_status status;
    char msg[512];
} lb_error;

const char *lb_status_name(lb_status status);

// ----------------------------------------------------------------------------
// Tensor types. Values are ggml's type ids, so they are the ids stored in GGUF
// files. A retired id keeps its slot. Each type is described once in the
// engine's traits table (engine/types.c).

typedef enum lb_type {
    LB_TYPE_F32 = 0,
    LB_TYPE_F16 = 1,
    LB_TYPE_Q4_0 = 2,
    LB_TYPE_Q4_1 = 3,
    LB_TYPE_Q5_0 = 6,
    LB_TYPE_Q5_1 = 7,
    LB_TYPE_Q8_0 = 8,
    LB_TYPE_Q8_1 = 9,   // activation type for Q4_1/Q5_1 dot products
    LB_TYPE_Q2_K = 10,
    LB_TYPE_Q3_K = 11,
    LB_TYPE_Q4_K = 12,
    LB_TYPE_Q5_K = 13,
    LB_TYPE_Q6_K = 14,
    LB_TYPE_Q8_K = 15,  // activation type for k-quant dot products
    LB_TYPE_BF16 = 30,
    LB_TYPE_COUNT = 40, // size of the traits table; ids without a row are unknown
} lb_type;

// Name ("Q4_K"), or NULL for an id with no row in the table.
const char *lb_type_name(lb_type type);
// The type whose name matches, case-insensitively; -1 when none does.
int lb_type_from_name(const char *name);
// Elements per block and bytes per block; 0 for an unknown type.
int lb_type_block_size(lb_type type);
size_t lb_type_block_bytes(lb_type type);
// Bytes of a row of n elements (n a multiple of the block size), 0 otherwise.
size_t lb_type_row_bytes(lb_type type, int64_t n);
// Convert n elements (a multiple of the block size) to float / from float.
// from_float returns LB_ERR_UNSUPPORTED for types that have no quantizer.
lb_status lb_type_to_float(lb_type type, const void *src, float *dst, int64_t n);
lb_status lb_type_from_float(lb_type type, const float *src, void *dst, int64_t n);

// Forced dispatch of the CPU kernels: "scalar", "avx2" or "auto". The choice
// is normally made once from cpuid and the LOWBIT_CPU environment variable;
// returns false when the ISA is unknown or this CPU cannot run it.
bool lb_cpu_select(const char *isa);
const char *lb_cpu_name(void); // the ISA in use

// ----------------------------------------------------------------------------
// Model: weights, tokenizer and hyperparameters. Read-only once open.

typedef struct lb_model lb_model;

typedef struct lb_model_params {
    const char *tokenizer_path; // for formats that carry none (llama2.c .bin); NULL: look beside the model
} lb_model_params;

typedef enum lb_rope_style {
    LB_ROPE_NORMAL = 0, // rotate adjacent pairs (x0,x1),(x2,x3)... — llama
    LB_ROPE_NEOX = 2,   // rotate (x_i, x_{i+d/2}) — qwen2
} lb_rope_style;

typedef struct lb_hparams {
    char arch[32];        // "llama", "qwen2"
    char format[16];      // "gguf" or "llama2.c"
    int32_t n_vocab;
    int32_t n_embd;       // model dimension
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;    // < n_head: grouped-query attention
    int32_t head_dim;     // n_embd / n_head
    int32_t n_ff;         // FFN hidden size
    int32_t n_ctx_train;  // context length the model was trained for
    int32_t n_rot;        // rotary dimensions per head
    float rms_eps;
    float rope_base;      // theta
    float rope_scale;     // linear scaling factor (positions are divided by it); 1: none
    lb_rope_style rope_style;
    bool tied_output;     // output head shares token embeddings
    bool has_qkv_bias;
    int32_t bos_id, eos_id, eot_id; // -1 when absent
    bool add_bos;
} lb_hparams;

lb_status lb_model_open(lb_model **out, const char *path, const lb_model_params *params, lb_error *err);
void lb_model_free(lb_model *model);

const lb_hparams *lb_model_hparams(const lb_model *model);
const char *lb_model_path(const lb_model *model);

// Tensors, for `info` and the quantizer.
typedef struct lb_tensor_info {
    const char *name;
    lb_type type;
    int n_dims;
    int64_t ne[4];      // ne[0] is the row length (GGUF order)
    size_t nbytes;
} lb_tensor_info;
int lb_model_n_tensors(const lb_model *model);
bool lb_model_tensor(const lb_model *model, int i, lb_tensor_info *info);
size_t lb_model_weight_bytes(const lb_model *model);   // bytes of all tensors as loaded
int64_t lb_model_n_params(const lb_model *model);

// Metadata as key / printable value (arrays are summarised), for `info`.
// Both strings are NUL-terminated and cut to fit their buffers.
int lb_model_n_meta(const lb_model *model);
bool lb_model_meta(const lb_model *model, int i, char *key, size_t key_cap, char *value, size_t cap);

// Replace the weight matrices by a copy quantized to `type` from the source
// weights (the file as opened), for live profile switching. Contexts keep
// their history; the caller recomputes their KV cache if it wants the new
// weights to shape it. `progress` is called after each tensor with a fraction
// in [0,1]; returning false cancels, leaving the model unchanged.
// Not thread-safe against lb_decode on contexts of this model.
typedef bool (*lb_progress_fn)(float fraction, void *user);
lb_status lb_model_requantize(lb_model *model, lb_type type, lb_progress_fn progress, void *user,
                              lb_error *err);
lb_type lb_model_weight_type(const lb_model *model); // most common matrix type

// ----------------------------------------------------------------------------
// Tokenizer

// Encode `len` bytes of `text` (-1: NUL-terminated). With parse_special, special
// tokens written in the text ("<|im_start|>", "</s>") become their ids; without,
// they are plain text. Returns the number of ids, or -(number needed) when cap
// is too small; ids is then untouched past cap.
int lb_tokenize(const lb_model *model, const char *text, int len, bool add_bos, bool parse_special,
                int32_t *ids, int cap);
// The text a token stands for when it follows `prev` (-1 at the start): byte
// tokens become their byte, "▁" a space, the space after BOS is dropped.
// Writes a NUL-terminated string; returns its length, or -(length needed).
int lb_token_decode(const lb_model *model, int32_t prev, int32_t token, char *buf, int cap);
// The token's piece as stored in the vocabulary.
const char *lb_token_piece(const lb_model *model, int32_t token);
bool lb_token_is_eog(const lb_model *model, int32_t token); // end of generation (EOS, EOT)
bool lb_token_is_control(const lb_model *model, int32_t token);
const char *lb_tokenizer_kind(const lb_model *model); // "spm" or "bpe"

// ----------------------------------------------------------------------------
// Context: KV cache and positions. Several contexts may share one model.

typedef struct lb_context lb_context;

typedef struct lb_context_params {
    int32_t n_ctx;      // 0: the model's trained length, capped at 4096
    int32_t n_threads;  // 0: the machine's cores
    lb_type kv_type;    // LB_TYPE_F32 or LB_TYPE_F16
} lb_context_params;

lb_context_params lb_context_default_params(void);
lb_status lb_context_new(lb_context **out, lb_model *model, const lb_context_params *params, lb_error *err);
void lb_context_free(lb_context *ctx);

// Evaluate a batch of tokens at explicit positions. Positions must continue the
// cache: pos[0] == lb_context_n_past(ctx), then consecutive. Prompt processing
// and verification of drafted tokens are the same call.
// `want` (may be NULL: only the last position) marks the positions whose
// logits are wanted; they are written to `logits` one row of n_vocab floats
// each, in order. On failure the cache is as it was.
lb_status lb_forward(lb_context *ctx, const int32_t *tokens, const int32_t *pos, int n,
                     const bool *want, float *logits, lb_error *err);
// Convenience: tokens at positions n_past.., logits of the last one.
lb_status lb_decode(lb_context *ctx, const int32_t *tokens, int n, float *logits, lb_error *err);

int32_t lb_context_n_past(const lb_context *ctx);
int32_t lb_context_n_ctx(const lb_context *ctx);
// Forget every position >= n_keep (rollback after rejected drafts, or a
// conversation branch). n_keep > n_past is an error.
lb_status lb_kv_cache_truncate(lb_context *ctx, int32_t n_keep, lb_error *err);
size_t lb_kv_cache_bytes_allocated(const lb_context *ctx);
size_t lb_kv_cache_bytes_used(const lb_context *ctx);
const lb_model *lb_context_model(const lb_context *ctx);

// ----------------------------------------------------------------------------
// Sampler: llama.cpp semantics for top-k, top-p, min-p and repetition penalty;
// OpenAI semantics for presence and frequency penalties.

typedef struct lb_sampler lb_sampler;

typedef struct lb_sampler_params {
    float temp;              // <= 0: greedy
    int32_t top_k;           // <= 0: off
    float top_p;             // >= 1: off
    float min_p;             // <= 0: off
    float repeat_penalty;    // 1: off
    int32_t repeat_last_n;   // window for repeat/presence/frequency penalties; -1: whole history
    float presence_penalty;  // 0: off
    float frequency_penalty; // 0: off
    uint64_t seed;
} lb_sampler_params;

lb_sampler_params lb_sampler_default_params(void);
lb_status lb_sampler_new(lb_sampler **out, const lb_sampler_params *params, int32_t n_vocab, lb_error *err);
void lb_sampler_free(lb_sampler *s);
// Record a token in the history the penalties look at (prompt and output).
void lb_sampler_accept(lb_sampler *s, int32_t token);
void lb_sampler_reset(lb_sampler *s); // clear history, re-seed
// The distribution the sampler draws from after penalties, temperature and
// the truncations: probs[n_vocab], zero outside the kept set. With temp <= 0
// it is one-hot on the argmax. `logits` is not modified.
void lb_sampler_probs(lb_sampler *s, const float *logits, float *probs);
// Draw one token from lb_sampler_probs (does not call accept).
int32_t lb_sampler_sample(lb_sampler *s, const float *logits);
// A uniform draw in [0,1) from the sampler's generator (for speculative decoding).
double lb_sampler_uniform(lb_sampler *s);

int32_t lb_argmax(const float *x, int32_t n);

// ----------------------------------------------------------------------------
// Process statistics, for `run --json`, `bench` and the chat panel.

size_t lb_rss_bytes(void);       // resident set size now
size_t lb_peak_rss_bytes(void);  // high-water mark
double lb_time_s(void);          // monotonic seconds

#ifdef __cplusplus
}
#endif
#endif // LOWBIT_H
