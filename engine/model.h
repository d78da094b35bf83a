/*
 * model.h — the model's private layout: hyperparameters, weight matrices and
 * the tokenizer, as loaded from GGUF (model.c) or a llama2.c checkpoint
 * (llama2c.c). Contexts (context.c, forward.c) read it; nothing writes it
 * after open except lb_model_requantize.
 */
#ifndef LB_MODEL_H
#define LB_MODEL_H

#include "lowbit.h"
#include "threadpool.h"

struct gguf_file;
struct lb_tokenizer;

// Largest head dimension the attention code keeps on the stack (LLaMA: 128).
#define LB_MAX_HEAD_DIM 512

// How a matrix's bytes are ordered in memory (repack.h): as the file has
// them, or 8 rows interleaved block by block for the matrix kernels.
enum lb_layout { LB_LAYOUT_ROWS = 0, LB_LAYOUT_X8 = 1 };

// A weight matrix of `rows` rows of `cols` elements (GGUF ne[0] = cols).
// y = W·x computes one output per row.
struct lb_weight {
    const char *name;
    lb_type type;
    int64_t rows, cols;
    const void *data;   // rows × row_bytes(type, cols), in the mapping, pack_buf or requant_buf
    uint8_t layout;     // enum lb_layout; read rows through weight_row_to_float (repack.h)
    // LLM_INT8 only (llm_int8.h): the input columns kept in f16, and their weights.
    int32_t n_outliers;
    const int32_t *outlier_cols;  // (n_outliers) ascending
    const void *outlier_w;        // (rows, n_outliers) F16
};

struct lb_layer {
    float *attn_norm;            // (n_embd) — 1D tensors are converted to f32 at load
    struct lb_weight wq;         // (n_head·head_dim rows, n_embd cols)
    struct lb_weight wk;         // (n_head_kv·head_dim, n_embd)
    struct lb_weight wv;         // (n_head_kv·head_dim, n_embd)
    struct lb_weight wo;         // (n_embd, n_head·head_dim)
    float *bq, *bk, *bv;         // qwen2 biases, NULL for llama
    float *ffn_norm;             // (n_embd)
    struct lb_weight w_gate;     // (n_ff, n_embd)
    struct lb_weight w_up;       // (n_ff, n_embd)
    struct lb_weight w_down;     // (n_embd, n_ff)
};

struct lb_model {
    char *path;
    lb_hparams hp;
    struct gguf_file *gguf;      // GGUF files: the parsed, mapped file
    void *map; size_t map_size;  // llama2.c files: the mapping
    struct lb_tokenizer *tok;

    struct lb_weight tok_embd;   // (n_vocab, n_embd): row t is token t's embedding
    float *output_norm;          // (n_embd)
    struct lb_weight output;     // (n_vocab, n_embd); tied models point at tok_embd
    struct lb_layer *layers;     // n_layer

    // Every tensor as the file has it (for info), and the 1D f32 copies.
    lb_tensor_info *tensors;
    int n_tensors;
    float *norm_buf;             // owns every f32 vector in layers/output_norm

    // Live re-quantization: the weights as opened, and the buffer that holds
    // the current re-quantized copy (NULL while the file's weights are used).
    struct lb_weight src_tok_embd, src_output;
    struct lb_layer *src_layers;
    void *requant_buf;
    size_t requant_bytes;

    // Live matrices from the file, copied into the x8 layout (repack.c);
    // an anonymous mapping, NULL when nothing is packed.
    void *pack_buf;
    size_t pack_bytes;
};

// Loaders fill a zeroed model (path, hp, tok, weights, tensors) or fail with
// everything they allocated freed by lb_model_free.
// A GGUF file, or a Hugging Face model directory (hf.h) read as one.
lb_status model_load_gguf(struct lb_model *m, const char *path, lb_error *err);
lb_status model_load_llama2c(struct lb_model *m, const char *path, const char *tokenizer_path, lb_error *err);
// Shared checks once weights are set: shapes agree with hparams.
lb_status model_check_shapes(const struct lb_model *m, lb_error *err);
// Allocate n floats for a norm/bias vector from the model's pool.
float *model_alloc_f32(struct lb_model *m, size_t n);

// ----------------------------------------------------------------------------
// matmul.c: y = W·x for a batch. X is (n, cols) f32 row-major, Y is (n, rows).
// Activations are converted once to the weight type's vec_dot_type; rows are
// split across the pool. Float weights with n >= 16 use OpenBLAS sgemm; below
// 16 tokens every token's outputs are bit-identical to computing it alone.
struct lb_matmul_scratch {
    void *act;       // converted activations
    size_t act_cap;
    float *deq;      // per-thread f32 tiles of the float GEMM (matmul_float.c)
    size_t deq_cap;
};
lb_status matmul(struct lb_threadpool *pool, struct lb_matmul_scratch *s, const struct lb_weight *w,
                 const float *x, float *y, int n, lb_error *err);
void matmul_scratch_free(struct lb_matmul_scratch *s);
// Float weights, n >= 16 (matmul_float.c): F16 through the kernel table's
// gemm_f16, F32/BF16 through OpenBLAS on per-thread tiles of rows.
lb_status matmul_float_gemm(struct lb_threadpool *pool, struct lb_matmul_scratch *s, const struct lb_weight *w,
                            const float *x, float *y, int n, lb_error *err);
// The AVX2 gemm_f16 (kernels_avx2_gemm.c); the scalar reference is in quants.h.
void lb_gemm_f16_avx2(int64_t k, int nr, const void *w, size_t ws, int n, const float *x, size_t xs, float *y,
                      size_t ldy);

// ----------------------------------------------------------------------------
// Context (context.c: lifecycle and KV cache; forward.c: the math)

struct lb_context {
    struct lb_model *model;
    int32_t n_ctx;               // KV cache capacity in positions
    int32_t n_past;              // positions held in the cache
    int32_t n_batch;             // tokens per internal forward chunk
    lb_type kv_type;             // element type of the cache (kv.h): F16, F32, Q8_0 or E4M3
    struct lb_threadpool *pool;

    // KV cache: for each layer, n_ctx rows of kv_dim = n_head_kv·head_dim
    // elements, keys and values in separate planes. Row p holds position p.
    void *kv;                    // 2 · n_layer · n_ctx · kv_dim · elsize bytes (an anonymous mapping)
    size_t kv_bytes;             // its length, for munmap
    size_t kv_row_bytes;         // kv_row_bytes(kv_type, kv_dim)

    // Activations for one chunk of n_batch tokens, row-major (token, feature).
    float *x;                    // (n_batch, n_embd) residual stream
    float *xb;                   // (n_batch, n_embd) normed input / attention output projection
    float *q;                    // (n_batch, n_head·head_dim)
    float *k, *v;                // (n_batch, kv_dim)
    float *att;                  // (n_batch, n_head·head_dim) attention output
    float *hb, *hb2;             // (n_batch, n_ff) gate and up projections
    float *att_scratch;          // per-thread blocks of attention.c's tiles
    float *inv_freq;             // (n_rot/2) RoPE frequencies base^(-2i/n_rot)
    float *rope_cos, *rope_sin;  // (n_batch, n_rot/2) for the chunk's positions
    struct lb_matmul_scratch mm;

    // Calibration (calib.c) sets this to watch the inputs of every matrix
    // product; NULL in normal use.
    const struct lb_observer *observer;
};

// Called by the forward pass with the n input rows x (n, w->cols) of each
// matrix product just before it runs. The three attention projections (and
// gate/up) share one input, and are reported once each.
struct lb_observer {
    void (*input)(void *user, int layer, const struct lb_weight *w, const float *x, int n);
    void *user;
};

static inline void *kv_key_row(const struct lb_context *c, int layer, int32_t pos) {
    return (char *)c->kv + ((size_t)(2 * layer) * (size_t)c->n_ctx + (size_t)pos) * c->kv_row_bytes;
}
static inline void *kv_value_row(const struct lb_context *c, int layer, int32_t pos) {
    return (char *)c->kv + ((size_t)(2 * layer + 1) * (size_t)c->n_ctx + (size_t)pos) * c->kv_row_bytes;
}

// Run n ≤ n_batch tokens at positions pos..pos+n-1 through every layer; the
// final hidden states (before output norm) are left in c->x.
lb_status forward_chunk(struct lb_context *c, const int32_t *tokens, int32_t pos, int n, lb_error *err);
// The two halves of layer il alone, on the n hidden states in c->x (in
// place): attention with its residual at positions pos..pos+n-1 (writing
// that layer's KV rows), and the FFN with its residual. Calibration
// (sequential.c) runs one layer, or half of one, at a time on cached hidden
// states instead of the model from the embeddings.
lb_status forward_attention(struct lb_context *c, int il, int32_t pos, int n, lb_error *err);
lb_status forward_ffn(struct lb_context *c, int il, int n, lb_error *err);
// Logits of the given rows of c->x (output norm, then output head).
lb_status forward_logits(struct lb_context *c, const int *rows, int n_rows, float *logits, lb_error *err);

#endif
