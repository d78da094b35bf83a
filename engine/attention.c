/*
 * attention.c — causal grouped-query attention over the KV cache, tiled, with
 * an online softmax (as flash attention does it on GPUs).
 *
 * Work is split into tasks of (KV head, a run of its query heads, a run of
 * tokens): up to ATT_Q query rows that all read the same keys and values.
 * A task walks the cache in blocks of ATT_KB positions: each block of keys
 * and values is converted to f32 once (whatever the cache's element type,
 * kv.h) and used by every query row of the task, so a KV head's cache is
 * read once per task instead of once per query head and token. Each query
 * row keeps a running maximum m, sum l and output o; for every block:
 *     s_j = q·k_j / √d,  m' = max(m, s_j),  o = o·e^(m-m') + Σ_j e^(s_j-m') v_j,
 *     l = l·e^(m-m') + Σ_j e^(s_j-m'),
 * and at the end out = o / l. Memory is O(block), not O(context), so long
 * contexts cost only their arithmetic.
 *
 * Blocks are aligned to absolute positions and every row's arithmetic
 * depends only on its own query and the blocks up to its position, so a
 * token's output is bit-identical whatever batch it is evaluated in.
 *
 * The two inner kernels (scores, accumulate) come from the kernel table;
 * scalar references below.
 */
#include "attention.h"

#include "internal.h"
#include "kv.h"
#include "threadpool.h"
#include "types.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// --- scalar reference kernels ------------------------------------------------------

void lb_attn_scores_ref(int d, int nq, const float *q, int nk, const float *k, float *s, int lds) {
    for (int i = 0; i < nq; i++)
        for (int j = 0; j < nk; j++) {
            float sum = 0.0f;
            for (int x = 0; x < d; x++) sum += q[(size_t)i * d + x] * k[(size_t)j * d + x];
            s[(size_t)i * lds + j] = sum;
        }
}

void lb_attn_accum_ref(int d, int nk, const float *p, const float *v, float alpha, float *o) {
    for (int x = 0; x < d; x++) {
        float acc = o[x] * alpha;
        for (int j = 0; j < nk; j++) acc += p[j] * v[(size_t)j * d + x];
        o[x] = acc;
    }
}

// --- scratch ---------------------------------------------------------------------------

// Floats of one thread's scratch: q and o (ATT_Q × d), s (ATT_Q × ATT_KB),
// k and v (ATT_KB × d), m and l (ATT_Q).
static size_t scratch_floats(int head_dim) {
    return 2 * (size_t)ATT_Q * head_dim + (size_t)ATT_Q * ATT_KB + 2 * (size_t)ATT_KB * head_dim + 2 * ATT_Q;
}

float *attention_scratch_new(int head_dim, int n_threads) {
    return malloc(scratch_floats(head_dim) * (size_t)n_threads * sizeof(float));
}

// --- one task ---------------------------------------------------------------------------

struct attn_task {
    struct lb_context *c;
    int layer;
    int32_t pos;               // position of the chunk's first token
    int n;                     // tokens in the chunk
    int heads_per_task, head_runs, tokens_per_task, token_runs;
    lb_attn_scores_fn scores;
    lb_attn_accum_fn accum;
};

static void attn_task_run(void *arg, int64_t index) {
    const struct attn_task *a = arg;
    struct lb_context *c = a->c;
    const lb_hparams *hp = &c->model->hp;
    const int d = hp->head_dim, dq = hp->n_head * d, group = hp->n_head / hp->n_head_kv;
    // Late token runs have the most keys: hand them out first.
    const int per_run = hp->n_head_kv * a->head_runs;
    const int run = a->token_runs - 1 - (int)(index / per_run);
    const int kvh = (int)(index % per_run) / a->head_runs, hr = (int)(index % per_run) % a->head_runs;
    const int h0 = kvh * group + hr * a->heads_per_task;
    const int nh = (hr + 1) * a->heads_per_task <= group ? a->heads_per_task : group - hr * a->heads_per_task;
    const int t0 = run * a->tokens_per_task;
    const int nt = t0 + a->tokens_per_task <= a->n ? a->tokens_per_task : a->n - t0;
    const int nq = nh * nt; // row i: token t0 + i / nh, head h0 + i % nh

    float *q = c->att_scratch + scratch_floats(d) * (size_t)threadpool_thread_index();
    float *o = q + (size_t)ATT_Q * d, *s = o + (size_t)ATT_Q * d, *kb = s + (size_t)ATT_Q * ATT_KB;
    float *vb = kb + (size_t)ATT_KB * d, *m = vb + (size_t)ATT_KB * d, *l = m + ATT_Q;
    for (int i = 0; i < nq; i++) {
        memcpy(q + (size_t)i * d, c->q + (size_t)(t0 + i / nh) * dq + (size_t)(h0 + i % nh) * d, (size_t)d * sizeof(float));
        m[i] = -INFINITY;
        l[i] = 0.0f;
    }
    memset(o, 0, (size_t)nq * d * sizeof(float));
    const float scale = 1.0f / sqrtf((float)d);
    const int32_t last = a->pos + t0 + nt - 1; // the last position any row of the task sees

    for (int32_t p0 = 0; p0 <= last; p0 += ATT_KB) {
        const int nk = last + 1 - p0 < ATT_KB ? last + 1 - p0 : ATT_KB;
        for (int j = 0; j < nk; j++) {
            kv_load_head(c->kv_type, kv_key_row(c, a->layer, p0 + j), kvh, d, kb + (size_t)j * d);
            kv_load_head(c->kv_type, kv_value_row(c, a->layer, p0 + j), kvh, d, vb + (size_t)j * d);
        }
        a->scores(d, nq, q, nk, kb, s, ATT_KB);
        for (int i = 0; i < nq; i++) {
            const int32_t qpos = a->pos + t0 + i / nh;
            const int jn = qpos - p0 + 1 < nk ? qpos - p0 + 1 : nk; // causal: keys up to qpos
            if (jn <= 0) continue;
            float *si = s + (size_t)i * ATT_KB;
            float mx = m[i];
            for (int j = 0; j < jn; j++) {
                si[j] *= scale;
                if (si[j] > mx) mx = si[j];
            }
            const float alpha = expf(m[i] - mx); // 0 on the first block (m = -inf)
            float sum = 0.0f;
            for (int j = 0; j < jn; j++) {
                si[j] = expf(si[j] - mx);
                sum += si[j];
            }
            a->accum(d, jn, si, vb, alpha, o + (size_t)i * d);
            l[i] = l[i] * alpha + sum;
            m[i] = mx;
        }
    }
    for (int i = 0; i < nq; i++) {
        float *out = c->att + (size_t)(t0 + i / nh) * dq + (size_t)(h0 + i % nh) * d;
        const float inv = 1.0f / l[i];
        for (int x = 0; x < d; x++) out[x] = o[(size_t)i * d + x] * inv;
    }
}

void attention(struct lb_context *c, int layer, int32_t pos, int n) {
    const lb_hparams *hp = &c->model->hp;
    const int group = hp->n_head / hp->n_head_kv;
    struct attn_task a = {.c = c, .layer = layer, .pos = pos, .n = n};
    a.heads_per_task = group < ATT_Q ? group : ATT_Q;
    a.head_runs = (group + a.heads_per_task - 1) / a.heads_per_task;
    a.tokens_per_task = ATT_Q / a.heads_per_task;
    a.token_runs = (n + a.tokens_per_task - 1) / a.tokens_per_task;
    // SIMD kernels work in 8-float vectors: other head sizes take the references.
    const struct lb_kernels *k = lb_kernels();
    const bool simd = hp->head_dim % 8 == 0;
    a.scores = simd && k->attn_scores ? k->attn_scores : lb_attn_scores_ref;
    a.accum = simd && k->attn_accum ? k->attn_accum : lb_attn_accum_ref;
    threadpool_run(c->pool, attn_task_run, &a, (int64_t)hp->n_head_kv * a.head_runs * a.token_runs);
}
