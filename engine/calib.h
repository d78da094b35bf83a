/*
 * calib.h — running a model over calibration text while an observer watches
 * the inputs of its matrix products. GPTQ (Hessians XXᵀ), AWQ (mean |x| per
 * input channel), importance matrices (Σx² per channel) and LLM.int8's
 * outlier features are all statistics of those inputs; each method supplies
 * its own observer (model.h: struct lb_observer).
 */
#ifndef LB_CALIB_H
#define LB_CALIB_H

#include "model.h"

struct lb_calib_params {
    const char *text_path;  // UTF-8 text
    int n_samples;          // chunks to run; 0: as many as the text holds
    int n_ctx;              // tokens per chunk, BOS included (llama.cpp imatrix: 512)
    int n_threads;          // 0: the machine's cores
};

// Tokenize the text, cut it into consecutive chunks of n_ctx tokens (each
// starting with BOS, as llama.cpp's imatrix does) and run each through the
// model in a fresh KV cache with `obs` watching. Fails with LB_ERR_ARG when
// the text is shorter than one chunk. `progress` (may be NULL) gets the
// fraction of chunks done.
lb_status calib_run(struct lb_model *m, const struct lb_calib_params *p, const struct lb_observer *obs,
                    lb_progress_fn progress, void *user, lb_error *err);

// Read and tokenize a text into a chunk list: *out (caller frees) holds
// *n_chunks · n_ctx ids.
lb_status calib_tokens(const struct lb_model *m, const struct lb_calib_params *p, int32_t **out, int *n_chunks,
                       lb_error *err);

#endif
