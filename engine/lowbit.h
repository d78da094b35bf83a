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
// engine's traits table (engine/types.c). Ids from 128 up are lowbit's own
// types, kept far from ggml's range so no other tool mistakes them for one of
// its own.

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
    // lowbit's own types, not ggml types: llama.cpp refuses files that hold them.
    LB_TYPE_NF4 = 128,  // bitsandbytes NF4: blocks of 64, fp16 absmax, NormalFloat code table
    LB_TYPE_FP4 = 129,  // bitsandbytes FP4 (E2M1): blocks of 64, fp16 absmax
    // Integer grids w = d·(q − z) (engine/blocks.h). INTb: symmetric (absmax),
    // z = 2^(b−1); INTbZ: integer zero point. _T one scale per tensor, _C per
    // row (output channel), _Gg per group of g along a row.
    LB_TYPE_INT8_T = 130,
    LB_TYPE_INT8_C = 131,
    LB_TYPE_INT8_G64 = 132,
    LB_TYPE_INT8_G128 = 133,
    LB_TYPE_INT8Z_C = 134,
    LB_TYPE_INT8Z_G32 = 135,
    LB_TYPE_INT8Z_G64 = 136,
    LB_TYPE_INT8Z_G128 = 137,
    LB_TYPE_INT4_T = 138,
    LB_TYPE_INT4_C = 139,
    LB_TYPE_INT4_G64 = 140,
    LB_TYPE_INT4_G128 = 141,
    LB_TYPE_INT4Z_C = 142,
    LB_TYPE_INT4Z_G64 = 143,
    LB_TYPE_INT4Z_G128 = 144,
    LB_TYPE_INT3_C = 145,
    LB_TYPE_INT3_G32 = 146,
    LB_TYPE_INT3_G64 = 147,
    LB_TYPE_INT3_G128 = 148,
    LB_TYPE_INT3Z_C = 149,
    LB_TYPE_INT3Z_G32 = 150,
    LB_TYPE_INT3Z_G64 = 151,
    LB_TYPE_INT3Z_G128 = 152,
    LB_TYPE_INT2_C = 153,
    LB_TYPE_INT2_G32 = 154,
    LB_TYPE_INT2_G64 = 155,
    LB_TYPE_INT2_G128 = 156,
    LB_TYPE_INT2Z_C = 157,
    LB_TYPE_INT2Z_G32 = 158,
    LB_TYPE_INT2Z_G64 = 159,
    LB_TYPE_INT2Z_G128 = 160,
    LB_TYPE_FP8_E4M3 = 161, // per-row float scale, OCP E4M3 (fn) codes
    LB_TYPE_FP8_E5M2 = 162, // per-row float scale, OCP E5M2 codes
    LB_TYPE_NF4_DQ = 163,   // NF4 with double-quantized absmax (bnb_4bit_use_double_quant)
    LB_TYPE_LLM_INT8 = 164, // LLM.int8(): int8 rows with one absmax scale each; outlier columns in f16 beside it
    LB_TYPE_E4M3 = 165, // FP8 E4M3 elements, no scale: a KV cache element type only (no weight kernels)
    LB_TYPE_COUNT = 192, // size of the traits table; ids without a row are unknown
} lb_type;

// Name ("Q4_K"), or NULL for an id with no row in the table.
const char *lb_type_name(lb_type type);
// The type whose name matches, case-insensitively; -1 when none does.
int lb_type_from_name(const char *name);
// For lowbit's own types (ids 128 and up), one line saying what the format is
// (also written to quantized files as lowbit.type.<id>); NULL for ggml types
// and unknown ids.
const char *lb_type_description(lb_type type);
// Elements per block and bytes per block; 0 for an unknown type.
int lb_type_block_size(lb_type type);
size_t lb_type_block_bytes(lb_type type);
// Bytes of a row of n elements (n a multiple of the block size), 0 otherwise.
// Per-channel and per-tensor types start each row with a header holding its
// scale: lb_type_row_bytes(type, 0) is that header's size (0 for ggml types).
size_t lb_type_row_bytes(lb_type type, int64_t n);
// Convert n elements (a multiple of the block size) to float / from float.
// from_float returns LB_ERR_UNSUPPORTED for types that have no quantizer.
lb_status lb_type_to_float(lb_type type, const void *src, float *dst, int64_t n);
// n is one whole row: the row header, where the type has one, is part of it.
lb_status lb_type_from_float(lb_type type, const float *src, void *dst, int64_t n);
// Quantize a tensor of `rows` rows of n floats into rows of lb_type_row_bytes
// each. The same as lb_type_from_float per row, except for per-tensor types
// (INT8_T, INT4_T), whose one scale comes from max |x| over every row; given
// a single row, lb_type_from_float treats it as a tensor of one row.
lb_status lb_type_from_float_rows(lb_type type, const float *src, void *dst, int64_t rows, int64_t n);

// Forced dispatch of the CPU kernels: "scalar", "avx2", "avx512",
// "avx512vnni", "avx512-emulated", "avx512vnni-emulated" (tests) or "auto"
// (kernels.c lists what each needs). The choice
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
    char format[16];      // "gguf", "hf" (a Hugging Face directory) or "llama2.c"
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
// Bytes of weights one decoded token reads: every layer matrix, the output
// head, one embedding row and the norm vectors (the decode bandwidth bound).
size_t lb_model_bytes_per_token(const lb_model *model);
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
// Writes a NUL-terminated string; returns its length, or -(length + 1), the
// buffer size needed, when cap is too small (buf is then "").
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
    lb_type kv_type;    // cache elements: LB_TYPE_F16 (default), F32, Q8_0 or E4M3 (lb_kv_type_from_name)
} lb_context_params;

// A KV cache element type by name, case-insensitive: "f16", "f32", "q8_0",
// "fp8" (or "e4m3"); -1 when the name is none of them. lb_kv_type_names()
// lists them for messages.
int lb_kv_type_from_name(const char *name);
const char *lb_kv_type_names(void);

lb_context_params lb_context_default_params(void);
lb_status lb_context_new(lb_context **out, lb_model *model, const lb_context_params *params, lb_error *err);
void lb_context_free(lb_context *ctx);

// Evaluate a batch of tokens at explicit positions. Positions must continue the
// cache: pos[0] == lb_context_n_past(ctx), then consecutive (pos may be NULL
// for exactly that). Prompt processing and verification of drafted tokens are
// the same call; below 16 tokens a batch gives bit-identical logits to
// evaluating its tokens one at a time.
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
// Replace the penalty history by tokens[0..n), as lb_sampler_reset followed by
// lb_sampler_accept of each would, but keeping the random generator where it
// is (speculative decoding rewinds the history without replaying draws).
void lb_sampler_set_history(lb_sampler *s, const int32_t *tokens, int n);

int32_t lb_argmax(const float *x, int32_t n);

// log_softmax of n logits into logp (may be the same buffer), accumulated in
// double as llama.cpp's perplexity does.
void lb_log_softmax(const float *logits, int n, float *logp);
// KL(base ‖ other) in nats from two rows of log-probabilities.
double lb_kl_divergence(const float *base_logp, const float *logp, int n);

// ----------------------------------------------------------------------------
// Process statistics, for `run --json`, `bench` and the chat panel.

size_t lb_rss_bytes(void);       // resident set size now
size_t lb_peak_rss_bytes(void);  // high-water mark
double lb_time_s(void);          // monotonic seconds
// Memory read bandwidth in bytes/s: n_threads streaming a buffer of `bytes`
// (use well above the last-level cache, e.g. 1 GiB); best of 5. 0 on failure.
double lb_read_bandwidth(int n_threads, size_t bytes);

// ----------------------------------------------------------------------------
// Quantization profiles and the quantizer. A profile (a YAML file, schema in
// lowbit-profile(5)) names a method — a ggml type, or one of llama.cpp's file
// types with its per-tensor rules (q4_k_m...) — plus overrides by tensor-name
// glob, a fallback type for rows that do not fit, and the KV cache type.
//
//     lb_profile *p;
//     lb_quantize_stats st;
//     lb_quantize_params qp = {0};
//     if (lb_profile_find(&p, "q4_k_m", &err) != LB_OK) ...
//     qp.profile = p;
//     if (lb_quantize_file("f32.gguf", "q4_k_m.gguf", &qp, &st, &err) != LB_OK) ...
//     // st.tensors[i]: name, types, bytes, relative error
//     lb_quantize_stats_free(&st);
//     lb_profile_free(p);

typedef struct lb_profile lb_profile;

// Parse a profile file. Errors are LB_ERR_IO, or LB_ERR_FORMAT / LB_ERR_MISSING
// with "FILE:LINE:COL: what (expected ...)" in err->msg.
lb_status lb_profile_load(lb_profile **out, const char *path, lb_error *err);
// By name: NAME.yaml (lower-cased) in $XDG_CONFIG_HOME/lowbit/profiles (else
// ~/.config/lowbit/profiles), then the installed profiles directory, then the
// source tree's profiles/. A name containing '/' or ending in ".yaml" is a path.
lb_status lb_profile_find(lb_profile **out, const char *name_or_path, lb_error *err);
void lb_profile_free(lb_profile *p);
const char *lb_profile_name(const lb_profile *p);
const char *lb_profile_description(const lb_profile *p); // "" when the file has none
const char *lb_profile_path(const lb_profile *p);        // the file it was read from
const char *lb_profile_method(const lb_profile *p);      // "q4_k_m"
lb_type lb_profile_type(const lb_profile *p);          // the type most matrices get, once bits/granularity/... are applied
lb_type lb_profile_kv_type(const lb_profile *p);         // LB_TYPE_F16 (default), F32, Q8_0 or E4M3
int lb_profile_file_type(const lb_profile *p);           // llama.cpp's LLAMA_FTYPE, written as general.file_type
// Whether lb_quantize_file needs calibration (calib_path, or for `importance:
// calibration` an imatrix file): methods gptq, awq, llm-int8, and importance.
bool lb_profile_needs_calibration(const lb_profile *p);

typedef struct lb_quantize_params {
    const lb_profile *profile;  // required
    int32_t n_threads;          // 0: the machine's cores
    bool allow_requantize;      // quantize tensors that are already quantized (decoded first); else an error
    lb_progress_fn progress;    // after each tensor, with the fraction of elements done; false cancels.
                                // Calibration passes report their own 0..1 first (chunks, AWQ's layers).
    void *user;
    // Calibration text (UTF-8), run through the model in chunks of calib_ctx
    // tokens (BOS included). Required by profiles that need activations
    // (lb_profile_needs_calibration: gptq, awq, llm-int8, `importance:
    // calibration` unless `imatrix` is given); with any other profile it only
    // adds the output error on it to the statistics (the file is the same).
    // Samples and context 0: the profile's (calibration: samples, ctx;
    // default 128 x 512 tokens).
    const char *calib_path;
    int32_t calib_samples, calib_ctx;
    const char *imatrix;        // a llama.cpp imatrix file (GGUF or legacy .dat) to quantize with instead
                                // of collecting one; implies importance-weighted quantization
    const char *imatrix_out;    // write the importance matrix collected from calib_path here (llama.cpp's GGUF format)
} lb_quantize_params;

typedef struct lb_quantize_tensor {
    char *name;
    lb_type type_in, type_out;
    const char *rule;           // why type_out: "copy" (not a weight matrix), "method", "mix", "override", "fallback";
                                // "calibrated": a copied tensor a calibrated method changed (AWQ's folded norms)
    bool fallback;              // rows did not fit the blocks of the type the rules chose
    int n_dims;
    int64_t ne[4];              // ne[0] is the row length
    int64_t n_elements;
    size_t bytes_in, bytes_out;
    double rel_error;           // ‖W − Ŵ‖ / ‖W‖ over the tensor, W decoded from the input; 0 when copied
    // With calibration, for the layers' weight matrices: ‖W·X − Ŵ·X‖ / ‖W·X‖
    // on the calibration inputs X of that matrix (as the already-quantized
    // layers before it produce them), and the same for round-to-nearest into
    // the same type, where a calibrated method (GPTQ) made Ŵ. < 0: not measured.
    double out_error, out_error_rtn;
    const char *method;         // "gptq", or NULL: the type's reference quantizer
} lb_quantize_tensor;

typedef struct lb_quantize_stats {
    int n_tensors;
    lb_quantize_tensor *tensors; // n_tensors rows in file order, owned; release with lb_quantize_stats_free
    int64_t n_elements;
    size_t bytes_in, bytes_out;  // tensor data only
    int n_fallback;
    double seconds;
    int calib_samples, calib_ctx; // chunks of calibration text used, tokens each (0: no calibration)
} lb_quantize_stats;

// Quantize GGUF file `in` into `out` (written atomically: a temporary file
// beside it, then rename; `out` may be `in`). Every key/value is copied,
// general.file_type and general.quantization_version are set. On failure
// nothing is written and *stats is zeroed. The whole output is held in memory
// until it is written.
lb_status lb_quantize_file(const char *in, const char *out, const lb_quantize_params *params,
                           lb_quantize_stats *stats, lb_error *err);
void lb_quantize_stats_free(lb_quantize_stats *stats); // accepts a zeroed struct

// As lb_model_requantize, with each matrix's type chosen by the profile (the
// same choice lb_quantize_file makes). The profile may be freed afterwards.
lb_status lb_model_requantize_profile(lb_model *model, const lb_profile *profile, lb_progress_fn progress,
                                      void *user, lb_error *err);

// ----------------------------------------------------------------------------
// Speculative decoding: a cheap draft model proposes up to K tokens, the
// target checks them all in one batched lb_forward, and the tokens that come
// out follow exactly the distribution plain sampling with the target would
// give (Leviathan et al. 2023, Chen et al. 2023). Greedy (temp <= 0) output is
// token-identical to plain greedy decoding.
//
//     lb_speculative *spec;
//     lb_speculative_new(&spec, target_ctx, draft_ctx, &sampling, NULL, &err);
//     lb_speculative_feed(spec, prompt, n_prompt, &err);
//     while (n_gen < n_predict) {
//         int32_t toks[LB_SPECULATIVE_MAX_DRAFT + 1];
//         int n;
//         if (lb_speculative_step(spec, toks, n_predict - n_gen, &n, &err) != LB_OK) break;
//         ... toks[0..n) are the next tokens (at least one) ...
//     }
//     lb_speculative_free(spec);
//
// The draft is any model with the target's vocabulary: a smaller model, or a
// second lb_model opened from the target's file and re-quantized to a low-bit
// type or profile (self-speculation).

typedef struct lb_speculative lb_speculative;

enum { LB_SPECULATIVE_MAX_DRAFT = 64 };

// How drafted tokens are judged. Anything but EXACT breaks the output
// distribution on purpose; those values exist only so that tests can show
// that their distribution check notices a wrong rule.
typedef enum lb_speculative_rule {
    LB_SPECULATIVE_EXACT = 0,            // accept with min(1, p/q), else draw from max(0, p - q)
    LB_SPECULATIVE_TEST_ACCEPT_ALL = 1,  // testing only: every drafted token is accepted
    LB_SPECULATIVE_TEST_RESAMPLE_P = 2,  // testing only: a rejected token is replaced by a draw from p
} lb_speculative_rule;

typedef struct lb_speculative_params {
    int32_t draft_max;   // most tokens drafted per step, 0..LB_SPECULATIVE_MAX_DRAFT (default 8)
    bool adaptive;       // choose K (1..draft_max) each step for the most tokens per second,
                         // from the measured acceptance rate, draft cost and verification
                         // cost; false: always draft_max (default true)
    float draft_min_p;   // stop drafting before a token the draft gives less than this
                         // probability (softmax of its logits at temperature 1); 0: off (default)
    lb_speculative_rule rule; // LB_SPECULATIVE_EXACT except in tests
} lb_speculative_params;

typedef struct lb_speculative_stats {
    int64_t n_steps;     // verification passes of the target
    int64_t n_drafted;   // tokens the draft proposed
    int64_t n_accepted;  // drafted tokens the target accepted
    int64_t n_generated; // tokens produced: the accepted ones plus one from the target per step
    double draft_s;      // seconds in the draft's forward passes
    double target_s;     // seconds in the target's verification passes
    double step_s;       // seconds in lb_speculative_step in all (forwards, sampling, rollback)
    int32_t draft_k;     // the K the next step will draft (adaptive)
} lb_speculative_stats;

lb_speculative_params lb_speculative_default_params(void);

// Pair a target context with a draft context (two contexts, possibly of one
// model). Checks that the models have the same vocabulary: the same size and
// the same piece for every token (LB_ERR_ARG naming the first token that
// differs). `sampling` (NULL: lb_sampler_default_params()) configures the
// target's sampler and an identical one for the draft; the draft's seed is
// derived from sampling->seed so that the two draw independent numbers.
// The contexts stay owned by the caller and must outlive the object; their
// caches are emptied on success and belong to it until it is freed.
lb_status lb_speculative_new(lb_speculative **out, lb_context *target, lb_context *draft,
                             const lb_sampler_params *sampling, const lb_speculative_params *params,
                             lb_error *err);
void lb_speculative_free(lb_speculative *spec);

// Append tokens to the history (the prompt, or the next turn of a chat) and
// evaluate them in both models; the penalties see them too. On failure the
// history and both caches are as they were.
lb_status lb_speculative_feed(lb_speculative *spec, const int32_t *tokens, int n, lb_error *err);
// One round: draft up to K tokens (never more than cap - 1), verify them with
// one target forward, keep the accepted ones and add one token drawn from the
// target. `cap` is how many tokens the caller still wants; out must hold
// min(cap, draft_max + 1). Writes the tokens to out, their count to *n_out,
// and appends them to the history; caches and samplers are rolled back to the
// last accepted token. Nothing is allocated. LB_ERR_ARG when the history is
// empty, cap < 1 or the target's context is full. On failure *n_out is 0 and
// the history is as it was.
lb_status lb_speculative_step(lb_speculative *spec, int32_t *out, int cap, int *n_out, lb_error *err);
// Forget the history from n_keep on (a chat branch, or tokens generated past
// an end-of-generation token). n_keep > lb_speculative_n_past is an error.
lb_status lb_speculative_truncate(lb_speculative *spec, int32_t n_keep, lb_error *err);
int32_t lb_speculative_n_past(const lb_speculative *spec); // tokens in the history
lb_speculative_stats lb_speculative_get_stats(const lb_speculative *spec);
// Sample from now on with new parameters (a chat's next turn), keeping the
// history, the caches and the statistics: new samplers whose penalty history
// is the current one. On failure nothing changed.
lb_status lb_speculative_set_sampling(lb_speculative *spec, const lb_sampler_params *sampling, lb_error *err);

// ----------------------------------------------------------------------------
// Chat: prompt templates, sessions, and a conversation over one context with
// the statistics the chat panel shows (`lowbit chat`, issue 5).
//
//     lb_chat *chat;
//     lb_chat_new(&chat, model, NULL, &err);
//     lb_chat_message msgs[] = {{"system", "Be brief."}, {"user", "Hello"}};
//     int dropped;
//     lb_chat_begin(chat, LB_CHAT_CHATML, msgs, 2, &sampling, &dropped, &err);
//     char piece[256];
//     bool done = false;
//     while (!done && lb_chat_step(chat, piece, sizeof piece, &done, &err) == LB_OK)
//         fputs(piece, stdout);
//     lb_chat_end(chat);
//     // next turn: msgs + {"assistant", reply} + {"user", ...}; only the new
//     // tokens are evaluated, the cached prefix is kept.
//     lb_chat_free(chat);

// --- templates (chat_template.c)

typedef enum lb_chat_template {
    LB_CHAT_RAW = 0,    // texts one after another (base models)
    LB_CHAT_LLAMA2,     // [INST] ... [/INST], <<SYS>>
    LB_CHAT_LLAMA3,     // <|start_header_id|>role<|end_header_id|>
    LB_CHAT_CHATML,     // <|im_start|>role
    LB_CHAT_ZEPHYR,     // <|user|> ... </s> (TinyLlama-chat)
    LB_CHAT_MISTRAL,    // [INST] without <<SYS>>, system prompt in the first turn
    LB_CHAT_GEMMA,      // <start_of_turn>user / model
    LB_CHAT_PHI3,       // <|user|> ... <|end|>
    LB_CHAT_ALPACA,     // ### Instruction: / ### Response:
    LB_CHAT_TEMPLATE_COUNT,
} lb_chat_template;

typedef struct lb_chat_message {
    const char *role;    // "system" (first only), "user" or "assistant"
    const char *content; // UTF-8
} lb_chat_message;

const char *lb_chat_template_name(lb_chat_template t); // "chatml"; NULL out of range
int lb_chat_template_from_name(const char *name);      // case-insensitive; -1 when unknown
// The family of a Jinja chat template, by the substrings that identify it (as
// llama.cpp's llm_chat_detect_template); -1 when none matches.
int lb_chat_template_detect(const char *jinja);
// The family of the model's tokenizer.chat_template; -1 when absent or unknown.
int lb_model_chat_template(const lb_model *model);
// End-of-turn text a model may write as plain text ("<|im_end|>"); NULL: none.
const char *lb_chat_template_stop(lb_chat_template t);
// Write the prompt for msgs exactly as the family's reference Jinja template
// renders it (with add_generation_prompt = add_assistant), bos and eos being
// the tokenizer's BOS/EOS texts. snprintf semantics: returns the full length,
// writes at most cap - 1 bytes and a NUL.
size_t lb_chat_render(lb_chat_template t, const lb_chat_message *msgs, int n, bool add_assistant, const char *bos,
                      const char *eos, char *buf, size_t cap);

// --- sessions (session.c): a conversation and its settings, saved as text
// (format in lowbit(1), FILES). Every string is owned by the session and
// replaced only through the setters; a setter returns false when out of
// memory, leaving the old value.
//
// A conversation is a tree: every message is a node whose parent is the
// message it answers or follows. Editing an earlier message or regenerating
// an answer adds a sibling, so nothing is lost; the branch shown is the path
// from a first message down through each node's `child`. msgs[0..n_msgs) is
// that path, as the chat calls take it (path[i] is the node behind msgs[i]);
// it is rebuilt by every call that changes the tree.

// One answer's figures: its footer in the transcript, and one side of /compare.
typedef struct lb_reply_stats {
    char profile[32];     // the weights that wrote it (profile or type name)
    double bpw;           // their bits per weight
    int32_t n_tokens;     // tokens generated
    double ttft_s;        // lb_chat_begin to the first token: prefill included
    double decode_tps;
    double spec_accept;   // drafted tokens accepted during this reply; < 0: no draft
    uint64_t seed;        // the sampler's seed, so that /compare can replay the turn
    double kld, top1;     // mean KL(source || these weights) in nats and top-1 agreement at
                          // every token of the answer (lb_chat_measure); < 0: not measured
    int32_t n_measured;   // positions behind kld and top1
} lb_reply_stats;

typedef struct lb_session_node {
    char *role;           // "user" or "assistant"
    char *content;
    int32_t parent;       // node index; -1: a first message
    int32_t child;        // the child last shown on this node's branch; -1: none
    int32_t compare;      // the sibling answer it was compared with (/compare); -1: none
    bool has_stats;
    lb_reply_stats stats; // answers: the footer
} lb_session_node;

typedef struct lb_session {
    char *name;
    char *system;            // "" : no system prompt
    char *template_name;     // "" : the model's own
    char *profile;           // "" : the weights as loaded
    char *draft;             // draft model file; "self": the model's own; "" : no draft
    char *draft_profile;     // the draft's profile or type; "" : as loaded
    lb_sampler_params sampling;
    bool seed_random;        // draw a seed per turn instead of sampling.seed
    lb_session_node *nodes;  // n_nodes, in creation order (a parent before its children)
    int n_nodes, cap_nodes;
    int32_t first;           // the first message on the branch shown; -1: none
    lb_chat_message *msgs;   // the branch shown: n_msgs user/assistant messages, alternating
    int32_t *path;           // path[i]: the node of msgs[i]
    int n_msgs, cap_msgs;
} lb_session;

lb_session *lb_session_new(const char *name); // NULL when out of memory
void lb_session_free(lb_session *s);
bool lb_session_set_name(lb_session *s, const char *name);
bool lb_session_set_system(lb_session *s, const char *system);
bool lb_session_set_template(lb_session *s, const char *template_name);
bool lb_session_set_profile(lb_session *s, const char *profile);
bool lb_session_set_draft(lb_session *s, const char *model, const char *profile); // NULL: ""
// A message after the last one shown; it is shown from now on.
bool lb_session_add(lb_session *s, const char *role, const char *content);
bool lb_session_append(lb_session *s, const char *text, size_t n); // to the last message shown
bool lb_session_node_append(lb_session *s, int node, const char *text, size_t n);
// Delete the shown messages [first, first + n) and every branch below them
// except the shown one, which then follows message first - 1. Node indices
// after a deleted node change.
void lb_session_remove(lb_session *s, int first, int n);
void lb_session_clear(lb_session *s);                              // every message
// A node under `parent` (-1: a first message) that is not shown. Returns its
// index, or -1 when out of memory or parent is out of range.
int lb_session_add_node(lb_session *s, int parent, const char *role, const char *content);
// Show the branch through `node`: its ancestors, it, and below it each
// node's `child`. False when node is out of range (nothing changes).
bool lb_session_show(lb_session *s, int node);
// Edit or regenerate shown message i: a new sibling of it with the same role
// holding `content`, shown from now on (the branch ends there). Returns its
// index, or -1 when i is out of range or out of memory.
int lb_session_branch(lb_session *s, int i, const char *content);
// How many siblings `node` has, itself included, and its place among them
// (1-based, in creation order) in *pos (may be NULL). 0 for a bad index.
int lb_session_siblings(const lb_session *s, int node, int *pos);
// The sibling `delta` places after (before, when negative) `node`; -1 when none.
int lb_session_sibling(const lb_session *s, int node, int delta);
void lb_session_set_stats(lb_session *s, int node, const lb_reply_stats *stats);
// Write atomically: PATH.tmp, fsync, rename, fsync of the directory. On
// failure PATH is untouched.
lb_status lb_session_save(const lb_session *s, const char *path, lb_error *err);
// Reads the current format (2, the tree) and the linear format 1. LB_ERR_FORMAT
// naming the line for a damaged or truncated file; *out is NULL then.
lb_status lb_session_load(lb_session **out, const char *path, lb_error *err);

// --- the conversation (chat.c)

typedef struct lb_chat lb_chat;

typedef struct lb_chat_params {
    int32_t n_ctx;       // 0: the model's trained length, capped at 4096
    int32_t n_threads;   // 0: the machine's cores
    lb_type kv_type;     // LB_TYPE_F16 (default), F32, Q8_0 or E4M3, as lb_context_params
    int32_t n_predict;   // most tokens per reply (default 512)
    int32_t kld_every;   // measure the live KL divergence every N generated tokens; 0: off (default 16)
    bool ignore_eos;     // keep writing past end-of-generation tokens, up to n_predict
    // Called on the re-quantization thread after each tensor of a profile
    // switch, once the stats show `fraction` (for tests and tools that watch
    // or pace a switch); NULL: none. Its return value is ignored.
    lb_progress_fn on_switch_progress;
    void *on_switch_user;
} lb_chat_params;

enum { LB_STATS_HISTORY = 32 };

typedef struct lb_stats_side {   // one side of a profile switch
    char profile[32];
    double bpw;
    size_t weight_bytes, rss_bytes;
    double decode_tps;           // 0: no reply yet with these weights
    double weight_error;
} lb_stats_side;

// A snapshot for display: everything the chat panel shows, computed here.
typedef struct lb_stats {
    size_t rss_bytes, peak_rss_bytes;
    size_t weight_bytes;          // weights as now in use
    size_t kv_bytes_used, kv_bytes_allocated;
    int32_t n_ctx_used, n_ctx;
    double prefill_tps, decode_tps; // the last (or current) reply
    int32_t prefill_tokens;       // tokens the last lb_chat_begin evaluated (the rest was reused)
    int32_t reused_tokens;        // cached tokens it kept: the prefix shared with the previous prompt
    float decode_history[LB_STATS_HISTORY]; // decode tok/s of past replies, oldest first
    int n_history;
    char profile[32];             // active profile or type name
    double bpw;                   // bits per weight of the matrices in use
    double weight_error;          // mean over matrices of ‖W−Ŵ‖/‖W‖ against the source, when applied
    double kld, top1;             // live: mean KL(source ‖ active) in nats and top-1 agreement; < 0: no sample yet
    int32_t kld_samples, kld_every;
    double kld_cost_ms;           // time one sample took on the background thread
    double spec_accept;           // speculative acceptance rate; < 0: no draft
    double spec_mean_accepted;    // accepted drafts per target pass
    int64_t spec_drafted, spec_accepted, spec_steps; // since the draft was set
    int32_t spec_k;               // the K the next step drafts
    char draft[64];               // the draft: file name and profile; "" : none
    bool generating;
    int32_t reply_tokens;
    bool switching;               // a re-quantization runs in the background
    float switch_progress;        // 0..1
    char switch_to[32];
    bool have_switch;             // `before` and `after` describe the last switch
    lb_stats_side before, after;
    uint32_t event_seq;           // incremented with each new `event`
    char event[192];              // "switched to q8_0 in 0.4 s", "dropped 2 oldest messages"
} lb_stats;

lb_chat_params lb_chat_default_params(void);
// A context on `model`, which must outlive the chat. The chat may re-quantize
// the model (lb_chat_switch), so nothing else should use it meanwhile.
lb_status lb_chat_new(lb_chat **out, lb_model *model, const lb_chat_params *params, lb_error *err);
void lb_chat_free(lb_chat *chat); // waits for its background threads

// Start a reply to msgs (system first if any, then user/assistant alternating,
// ending with user). The cached tokens shared with the rendered prompt are
// kept and only the rest is evaluated. When the prompt and a reply do not fit
// the context, the oldest user/assistant pairs after the system prompt are
// left out: *n_dropped (may be NULL) says how many messages, counted from the
// first after the system prompt. LB_ERR_ARG when even the last message alone
// does not fit.
lb_status lb_chat_begin(lb_chat *chat, lb_chat_template t, const lb_chat_message *msgs, int n,
                        const lb_sampler_params *sampling, int *n_dropped, lb_error *err);
// Generate the next token of the reply and write the text it adds (may be ""
// while a possible end-of-turn text is held back). *done becomes true at an
// end-of-generation token, the template's end-of-turn text, n_predict tokens
// or a full context. Callable from one thread while another reads stats.
lb_status lb_chat_step(lb_chat *chat, char *piece, size_t cap, bool *done, lb_error *err);
void lb_chat_end(lb_chat *chat);    // the reply is over (finished or stopped); records its speed
// The last reply's footer: the profile and bits per weight it was written
// with, tokens, time to first token, decode speed, draft acceptance, seed.
// kld and top1 are -1 (lb_chat_measure fills them).
void lb_chat_reply_stats(lb_chat *chat, lb_reply_stats *out);
// Measure `answer` as the reply to msgs (ending with user) against the
// source precision: the prompt and the answer's tokens are fed through the
// chat's weights and through the source weights (the live KL divergence's
// reference, opened when first needed), and at every token of the answer the
// two next-token distributions (temperature 1) are compared. Writes the mean
// KL(source || chat) in nats, the top-1 agreement and the count into
// out->kld, out->top1, out->n_measured; the rest of *out is untouched. When
// the chat's weights are the source's, kld is 0 and top1 1 without a pass.
// The chat's cache then holds this prompt and answer. Oldest turns are left
// out as in lb_chat_begin when they do not fit. Not while a reply is
// generated or a switch runs (LB_ERR_ARG).
lb_status lb_chat_measure(lb_chat *chat, lb_chat_template t, const lb_chat_message *msgs, int n, const char *answer,
                          lb_reply_stats *out, lb_error *err);
// For /compare: a chat over a second copy of `chat`'s model file,
// re-quantized to `profile` (a profile or a tensor type name) on the calling
// thread, `progress` (may be NULL) called after each tensor. It has chat's
// parameters without the live KL divergence, no draft, and measures
// (lb_chat_measure) against chat's source-precision reference. Free it with
// lb_chat_free, which frees the copy: one extra copy of the weights lives as
// long as it does. While it exists, `chat` must not generate, switch or
// measure at the same time as it. LB_ERR_ARG while chat switches or for an
// unknown name.
lb_status lb_chat_new_compare(lb_chat **out, lb_chat *chat, const char *profile, lb_progress_fn progress, void *user,
                              lb_error *err);
void lb_chat_reset(lb_chat *chat);  // forget the cached conversation

// Re-quantize the model to a profile (lb_profile_find) or, failing that, a
// tensor type name ("q8_0"), on a background thread; replies keep using the
// old weights until the new ones are ready, then the cache is recomputed with
// them. LB_ERR_ARG when a switch is already running or the name is unknown.
// Progress and the before/after figures are in the stats.
lb_status lb_chat_switch(lb_chat *chat, const char *profile, lb_error *err);
bool lb_chat_switching(lb_chat *chat);
// Speculative decoding for the replies from now on: a draft model opened from
// `path` (NULL: the chat's own model file; `tokenizer` for llama2.c
// checkpoints, else NULL) and, when `profile` is given, re-quantized to that
// profile (lb_profile_find) or tensor type. The draft must have the model's
// vocabulary (LB_ERR_ARG otherwise). path and profile both NULL removes the
// draft. Greedy replies are token-identical with and without a draft. The
// cached conversation is evaluated again here, with the new draft or without
// one; the live KL divergence pauses while a draft is set. Not while a reply
// is generated.
lb_status lb_chat_set_draft(lb_chat *chat, const char *path, const char *tokenizer, const char *profile,
                            lb_error *err);
void lb_chat_stats(lb_chat *chat, lb_stats *out);

// Profiles the picker offers, with estimates for this model. `no_gain` marks
// a precision at or above the source's, which costs memory and gains nothing.
typedef struct lb_profile_choice {
    char name[32];
    double bpw;          // of the matrices after the switch (rows that do not fit keep their type)
    size_t weight_bytes; // estimated
    bool no_gain;
} lb_profile_choice;
int lb_chat_profiles(const lb_model *model, lb_profile_choice *out, int cap);

#ifdef __cplusplus
}
#endif
#endif // LOWBIT_H
