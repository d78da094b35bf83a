/*
 * context.c — a context is what one conversation needs on top of a shared
 * model: the KV cache, the position counter, activation buffers and a thread
 * pool. Everything is allocated here, once; a forward pass allocates nothing
 * (matmul scratch grows to its high-water mark on first use).
 */
#include "model.h"

#include "attention.h"
#include "internal.h"
#include "kv.h"
#include "repack.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum { DEFAULT_CTX_CAP = 4096, DEFAULT_BATCH = 256 };

lb_context_params lb_context_default_params(void) {
    return (lb_context_params){.n_ctx = 0, .n_threads = 0, .kv_type = LB_TYPE_F16};
}

static int machine_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static float *alloc_floats(size_t n) { return malloc((n ? n : 1) * sizeof(float)); }

lb_status lb_context_new(lb_context **out, lb_model *model, const lb_context_params *params, lb_error *err) {
    *out = NULL;
    lb_context_params p = params ? *params : lb_context_default_params();
    const lb_hparams *hp = &model->hp;
    if (p.n_ctx < 0 || p.n_threads < 0)
        return lb_fail(err, LB_ERR_ARG, "context: n_ctx %d and n_threads %d must not be negative", p.n_ctx,
                       p.n_threads);
    const char *kv_expected = kv_type_check(p.kv_type, (int64_t)hp->n_head_kv * hp->head_dim);
    if (kv_expected)
        return lb_fail(err, LB_ERR_UNSUPPORTED, "context: KV cache type %s (expected %s)",
                       lb_type_name(p.kv_type) ? lb_type_name(p.kv_type) : "unknown", kv_expected);
    if (p.n_ctx == 0) p.n_ctx = hp->n_ctx_train < DEFAULT_CTX_CAP ? hp->n_ctx_train : DEFAULT_CTX_CAP;
    if (p.n_threads == 0) p.n_threads = machine_cores();

    // The model's matrices go into the kernels' layout on first use (repack.h).
    lb_status st = model_pack_weights(model, err);
    if (st != LB_OK) return st;
    struct lb_context *c = calloc(1, sizeof *c);
    if (!c) return lb_fail(err, LB_ERR_NOMEM, "context: out of memory");
    c->model = model;
    c->n_ctx = p.n_ctx;
    c->kv_type = p.kv_type;
    c->n_batch = p.n_ctx < DEFAULT_BATCH ? p.n_ctx : DEFAULT_BATCH;

    const size_t nb = (size_t)c->n_batch, d = (size_t)hp->n_embd;
    const size_t dq = (size_t)hp->n_head * hp->head_dim, dkv = (size_t)hp->n_head_kv * hp->head_dim;
    c->kv_row_bytes = kv_row_bytes(p.kv_type, (int64_t)dkv);
    const size_t kv_bytes = 2 * (size_t)hp->n_layer * (size_t)c->n_ctx * c->kv_row_bytes;
    // An anonymous mapping rather than calloc: zero pages that cost memory
    // only once written, and returned whole on free. A calloc'd cache below
    // glibc's mmap threshold comes from the heap, where it is zeroed (every
    // page touched) and, once freed, raises the threshold for the next one.
    c->kv = mmap(NULL, kv_bytes ? kv_bytes : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (c->kv == MAP_FAILED) c->kv = NULL;
    c->kv_bytes = kv_bytes ? kv_bytes : 1;
    c->pool = threadpool_new(p.n_threads);
    c->x = alloc_floats(nb * d);
    c->xb = alloc_floats(nb * d > nb * dq ? nb * d : nb * dq);
    c->q = alloc_floats(nb * dq);
    c->k = alloc_floats(nb * dkv);
    c->v = alloc_floats(nb * dkv);
    c->att = alloc_floats(nb * dq);
    c->hb = alloc_floats(nb * (size_t)hp->n_ff);
    c->hb2 = alloc_floats(nb * (size_t)hp->n_ff);
    c->att_scratch = attention_scratch_new(hp->head_dim, p.n_threads);
    c->inv_freq = alloc_floats((size_t)hp->n_rot / 2);
    c->rope_cos = alloc_floats(nb * (size_t)hp->n_rot / 2);
    c->rope_sin = alloc_floats(nb * (size_t)hp->n_rot / 2);
    if (!c->kv || !c->pool || !c->x || !c->xb || !c->q || !c->k || !c->v || !c->att || !c->hb || !c->hb2 ||
        !c->att_scratch || !c->inv_freq || !c->rope_cos || !c->rope_sin) {
        lb_context_free(c);
        return lb_fail(err, LB_ERR_NOMEM, "context: out of memory for a %d-token KV cache (%zu bytes)", p.n_ctx,
                       kv_bytes);
    }
    for (int i = 0; i < hp->n_rot / 2; i++)
        c->inv_freq[i] = (float)pow(hp->rope_base, -2.0 * i / hp->n_rot);
    *out = c;
    return LB_OK;
}

void lb_context_free(lb_context *c) {
    if (!c) return;
    threadpool_free(c->pool);
    matmul_scratch_free(&c->mm);
    if (c->kv) munmap(c->kv, c->kv_bytes);
    free(c->x);
    free(c->xb);
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->att);
    free(c->hb);
    free(c->hb2);
    free(c->att_scratch);
    free(c->inv_freq);
    free(c->rope_cos);
    free(c->rope_sin);
    free(c);
}

int32_t lb_context_n_past(const lb_context *c) { return c->n_past; }
int32_t lb_context_n_ctx(const lb_context *c) { return c->n_ctx; }
const lb_model *lb_context_model(const lb_context *c) { return c->model; }

size_t lb_kv_cache_bytes_allocated(const lb_context *c) {
    return 2 * (size_t)c->model->hp.n_layer * (size_t)c->n_ctx * c->kv_row_bytes;
}

size_t lb_kv_cache_bytes_used(const lb_context *c) {
    return 2 * (size_t)c->model->hp.n_layer * (size_t)c->n_past * c->kv_row_bytes;
}

lb_status lb_kv_cache_truncate(lb_context *c, int32_t n_keep, lb_error *err) {
    if (n_keep < 0 || n_keep > c->n_past)
        return lb_fail(err, LB_ERR_ARG, "kv cache: cannot keep %d positions (cache holds %d)", n_keep, c->n_past);
    // Rows past n_keep are simply overwritten by the next forward pass.
    c->n_past = n_keep;
    return LB_OK;
}

// --- the public forward call ---------------------------------------------------

lb_status lb_forward(lb_context *c, const int32_t *tokens, const int32_t *pos, int n, const bool *want,
                     float *logits, lb_error *err) {
    const lb_hparams *hp = &c->model->hp;
    if (n <= 0) return lb_fail(err, LB_ERR_ARG, "forward: batch of %d tokens (expected at least 1)", n);
    if (n > c->n_ctx - c->n_past)
        return lb_fail(err, LB_ERR_ARG, "forward: %d tokens do not fit: %d of %d positions used", n, c->n_past,
                       c->n_ctx);
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
            return lb_fail(err, LB_ERR_ARG, "forward: token %d at index %d is outside the vocabulary (0..%d)",
                           tokens[i], i, hp->n_vocab - 1);
        if (pos && pos[i] != c->n_past + i)
            return lb_fail(err, LB_ERR_ARG, "forward: position %d at index %d (expected %d: positions continue "
                           "the cache)", pos[i], i, c->n_past + i);
    }

    const int32_t start = c->n_past;
    size_t out_row = 0; // logits rows written so far
    int rows[DEFAULT_BATCH]; // wanted rows of the current chunk (n_batch <= DEFAULT_BATCH)
    for (int i0 = 0; i0 < n; i0 += c->n_batch) {
        const int nb = n - i0 < c->n_batch ? n - i0 : c->n_batch;
        lb_status st = forward_chunk(c, tokens + i0, c->n_past, nb, err);
        if (st != LB_OK) {
            c->n_past = start; // the cache is as it was: rows past start are ignored
            return st;
        }
        c->n_past += nb;
        int n_rows = 0;
        for (int t = 0; t < nb; t++) {
            const int i = i0 + t;
            if (want ? want[i] : i == n - 1) rows[n_rows++] = t;
        }
        if (n_rows && logits) {
            st = forward_logits(c, rows, n_rows, logits + out_row * (size_t)hp->n_vocab, err);
            if (st != LB_OK) {
                c->n_past = start;
                return st;
            }
            out_row += (size_t)n_rows;
        }
    }
    return LB_OK;
}

lb_status lb_decode(lb_context *c, const int32_t *tokens, int n, float *logits, lb_error *err) {
    return lb_forward(c, tokens, NULL, n, NULL, logits, err);
}
