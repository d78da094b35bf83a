/*
 * sequential.h — quantizing a model's layers in order, each calibrated on the
 * inputs that the already-quantized layers before it produce (GPTQ's
 * sequential scheme), and measuring every matrix's output error on them.
 *
 * How the inputs are made: the hidden states of every calibration token at
 * the current layer's input are cached (n_samples × n_ctx × n_embd floats).
 * For layer L, the layer alone is run over the cache with an observer that
 * accumulates H = 2/n_samples · Σ x·xᵀ for each of its four distinct inputs
 * (q/k/v share one, gate/up another); its matrices are quantized; then the
 * layer, now quantized, is run once more to turn the cache into layer L+1's
 * inputs. So the model is never re-run from the embeddings: the cost is two
 * passes of each layer over the calibration tokens, i.e. two forward passes
 * in all; with true_sequential, which re-collects the inputs after each
 * group q/k/v → o → gate/up → down (as the reference's --true-sequential),
 * three passes of each half of the layer (sequential.c, quantize_layer).
 * Then GPTQ itself (rows · cols² per matrix) and the error measurement
 * (about as much again).
 *
 * Quantized matrices take part in later passes as their exact dequantized
 * values, in f32 (the reference's fake quantization), so activations are not
 * quantized on the way; a quantized token_embd is used as the file has it.
 */
#ifndef LB_SEQUENTIAL_H
#define LB_SEQUENTIAL_H

#include "calib.h"
#include "gptq.h"
#include "model.h"

// One matrix of the model and what to make of it.
struct seq_tensor {
    const char *name;  // GGUF name: token_embd.weight, blk.N.attn_q.weight, ...
    lb_type type;      // the type to write
    bool gptq;         // GPTQ onto the grid (type must be lb_grid_type of it); else the type's reference quantizer
    struct lb_grid grid; // when gptq: the grid (bits 0: seq_params.gptq's); a row fallback's is a smaller group
    // Filled by seq_quantize for token_embd and the layers' matrices (others
    // stay NULL): rows × row_bytes(type, cols) bytes, the caller's to free.
    void *data;
    double rel_error;       // ‖W − Ŵ‖ / ‖W‖
    double out_error;       // ‖(W − Ŵ)·X‖ / ‖W·X‖ on this matrix's calibration inputs; < 0: none (token_embd)
    double out_error_rtn;   // the same for the type's reference quantizer, when gptq; else < 0
};

// The four inputs of a layer's matrices.
enum seq_input { SEQ_ATTN_IN, SEQ_ATTN_OUT, SEQ_FFN_IN, SEQ_FFN_DOWN_IN, SEQ_N_INPUTS };

struct seq_params {
    const struct lb_gptq_params *gptq;  // the grid and settings for tensors marked gptq (may be NULL if none is)
    bool true_sequential;
    struct lb_calib_params calib;       // text, samples, tokens per sample, threads
    lb_progress_fn progress;            // after each layer, with the fraction of layers done; false cancels
    void *user;
    // Tests: sees each Hessian (n × n, full) before it is used.
    void (*hessian_hook)(void *user, int layer, enum seq_input input, const double *h, int64_t n);
    void *hook_user;
};

// Quantize token_embd and every layer matrix of m named in t[0..n) (each of
// them must be there). m's weights are as opened when this returns, and the
// results are in t[i].data; *n_samples gets the calibration chunks used. On
// failure every t[i].data is NULL again.
lb_status seq_quantize(struct lb_model *m, struct seq_tensor *t, int n, const struct seq_params *p, int *n_samples,
                       lb_error *err);

#endif
