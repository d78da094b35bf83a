/*
 * imatrix.h — importance matrices (llama.cpp's imatrix): for every weight
 * matrix, Σx² of each input column over calibration tokens, and the
 * quantizers that weigh their error by it.
 *
 * The statistic tells which input columns matter: an error in column j of a
 * weight row reaches the output multiplied by x_j, so its expected cost is
 * proportional to mean(x_j²). llama.cpp collects it with llama-imatrix and
 * passes it to the k-quant and legacy quantizers (quantize_row_*_impl);
 * lowbit collects it with a calibration observer (calib.h), reads and writes
 * llama.cpp's imatrix files, and quantizes with the same searches
 * (quants_imatrix.c), so both programs make the same bytes from one file.
 *
 * The same pass also records max |x| per column, which LLM.int8 uses to find
 * its outlier features (llm_int8.h).
 */
#ifndef LB_IMATRIX_H
#define LB_IMATRIX_H

#include "calib.h"
#include "lowbit.h"

// Quantize one row of n weights (a multiple of the type's block size) with
// importance qw[n] (mean x² per column, all > 0 in practice).
typedef void (*lb_quantize_imatrix_fn)(const float *src, void *dst, int64_t n, const float *qw);

// The importance-weighted quantizer of type t (llama.cpp's *_impl path), or
// NULL where llama.cpp ignores the importance (Q8_0, floats, lowbit's types):
// those use the reference quantizer.
lb_quantize_imatrix_fn lb_imatrix_quantizer(lb_type t);

struct imatrix_entry {
    char *name;        // the weight tensor's name, "blk.0.attn_q.weight"
    int64_t cols;      // input columns (the weight's row length)
    double *sum2;      // (cols) Σx² over `count` tokens
    float *absmax;     // (cols) max |x|; NULL when read from a file (files do not store it)
    int64_t count;     // tokens seen
};

struct imatrix {
    struct imatrix_entry *e;
    int n, cap;
    int chunk_count;   // calibration chunks behind the sums
    int chunk_size;    // tokens per chunk
    char *dataset;     // calibration text path ("" when unknown)
};

// Run calibration text through the model and collect the statistics of the
// input of every layer matrix (names starting "blk.", as llama-imatrix does
// by default: the output head is left out). On failure *im is empty.
lb_status imatrix_collect(struct lb_model *m, const struct lb_calib_params *p, lb_progress_fn progress, void *user,
                          struct imatrix *im, lb_error *err);

// llama.cpp's imatrix files: GGUF (general.type "imatrix", tensors
// NAME.in_sum2 [cols, 1] and NAME.counts [1, 1], keys imatrix.datasets,
// imatrix.chunk_count, imatrix.chunk_size; what llama-imatrix writes by
// default) or the legacy .dat format. Save writes GGUF atomically.
lb_status imatrix_load(const char *path, struct imatrix *im, lb_error *err);
lb_status imatrix_save(const struct imatrix *im, const char *path, lb_error *err);

const struct imatrix_entry *imatrix_find(const struct imatrix *im, const char *name);

// The importance of each column: sum2 / count, computed as llama-quantize
// computes it from a file (the f32 sum over the f32 count), into qw[e->cols].
// A matrix without an entry is quantized by the reference quantizer, as in
// llama.cpp; one whose entry has another width is an error there and here.
void imatrix_entry_weights(const struct imatrix_entry *e, float *qw);

void imatrix_free(struct imatrix *im); // leaves it empty; accepts an empty one

#endif
