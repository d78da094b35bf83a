/*
 * attention.h — causal grouped-query attention over a context's KV cache
 * (attention.c): tiled over query rows and cache blocks, online softmax.
 */
#ifndef LB_ATTENTION_H
#define LB_ATTENTION_H

#include "model.h"

enum {
    ATT_Q = 64,  // query rows per task (heads sharing a KV head × tokens)
    ATT_KB = 32, // cache positions per block
};

// c->att (n, n_head·head_dim) = attention of c->q's n tokens at positions
// pos..pos+n-1 over layer `layer`'s cache rows 0..pos+n-1 (already stored).
void attention(struct lb_context *c, int layer, int32_t pos, int n);
// Per-thread scratch for a context: n_threads blocks; NULL when out of memory.
float *attention_scratch_new(int head_dim, int n_threads);

// Scalar references of the kernel table's attn_scores / attn_accum (types.h).
void lb_attn_scores_ref(int d, int nq, const float *q, int nk, const float *k, float *s, int lds);
void lb_attn_accum_ref(int d, int nk, const float *p, const float *v, float alpha, float *o);
// AVX2 versions (kernels_avx2_attn.c).
void lb_attn_scores_avx2(int d, int nq, const float *q, int nk, const float *k, float *s, int lds);
void lb_attn_accum_avx2(int d, int nk, const float *p, const float *v, float alpha, float *o);

#endif
