/*
 * speculative.c — speculative decoding: a draft model proposes K tokens, the
 * target evaluates all of them (plus the token before them) in one batched
 * forward, and a rejection rule keeps the output distribution exactly the
 * target's (Leviathan et al. 2023, "Fast Inference from Transformers via
 * Speculative Decoding"; Chen et al. 2023, "Accelerating Large Language Model
 * Decoding with Speculative Sampling").
 *
 * State between steps. The history h[0..n) holds every token so far (prompt
 * and output). The target's cache holds h[0..n-1): the last token is not yet
 * evaluated, it goes first in the next verification batch, so one forward
 * gives the logits that judge every drafted token. The draft's cache holds a
 * prefix of h (it may lag by a token or two and catches up in one batch).
 *
 * One step:
 *   1. draft: d_1..d_K, each drawn from q_i, the draft's distribution after
 *      the same penalties / temperature / top-k / top-p / min-p as the
 *      target's (a second lb_sampler with identical parameters, whose
 *      penalty history is h followed by d_1..d_{i-1});
 *   2. target: one lb_forward of [h[n-1], d_1..d_K] at positions n-1..n-1+K,
 *      logits at every position: row i gives p_{i+1}, the target's
 *      distribution for the token after d_i;
 *   3. judge in order: d_i is accepted with probability min(1, p_i(d_i) /
 *      q_i(d_i)); the first rejected one is replaced by a draw from the
 *      normalised max(0, p_i - q_i); when all K are accepted a bonus token is
 *      drawn from p_{K+1}. Greedy (temp <= 0): accept while d_i is the
 *      target's own choice, then add the target's choice. Both give exactly
 *      what plain decoding with the target gives (in distribution when
 *      sampling, token for token when greedy).
 *   4. roll both caches back to the last accepted token.
 *
 * Penalties stay exact because p_i is only ever computed when d_1..d_{i-1}
 * were accepted: they are accepted into the target's sampler one by one as
 * they pass, so p_i sees precisely the history plain decoding would. The
 * draft's sampler is scratch: its history is reset to h at the start of each
 * step (lb_sampler_set_history) and follows the drafted tokens.
 *
 * Where the time goes: the draft's K single-token forwards and the target's
 * one (K+1)-token forward. For a memory-bound target a small batch costs
 * little more than one token (matmul's small-batch kernels read each weight
 * once for all K+1 tokens), so every accepted token beyond the first is
 * almost free. Sampling costs O(n_vocab) per drafted token on each side.
 * Every buffer is allocated by lb_speculative_new; a step allocates nothing.
 *
 * Choosing K (params.adaptive). A step with K drafts yields on average
 * E(K) = 1 + a + ... + a^K tokens when each draft passes with probability a,
 * and costs K draft tokens plus one verification of K+1 tokens. A draft that
 * is cheap next to its target wants a large K; a self-draft that costs half
 * a target token wants 2 or 3. So K is the one that maximizes E(K) / cost(K),
 * from three measured quantities: a (the recent acceptance rate), the
 * draft's seconds per token, and the verification time as a line in the
 * batch size (a least-squares fit over past steps). The first two steps use
 * K = draft_max and draft_max / 4 to get two points on that line; while the
 * fit has too little spread in batch size, the HF transformers heuristic
 * moves K instead (+2 after a step whose drafts all passed, -1 after a
 * rejection).
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// The measurements the adaptive K is chosen from (see the top of the file).
struct spec_cost {
    double draft_tok_s;            // draft seconds per drafted token, moving average (0: none yet)
    double w, n, nn, t, nt;        // decayed sums over verifications of 1, tokens, tokens², s, tokens·s
    double yes, no;                // decayed counts of drafts accepted / of rejections
    int64_t steps;                 // steps observed
};

struct lb_speculative {
    lb_context *target, *draft;    // borrowed
    lb_sampler *ts, *ds;           // target's sampler (history = h), draft's (scratch)
    lb_speculative_params params;
    bool greedy;
    int32_t n_vocab;
    int32_t k;                     // the adaptive K for the next step

    int32_t *hist;                 // [hist_cap] h[0..n_hist)
    int32_t n_hist, hist_cap;      // hist_cap = the target's n_ctx + 1

    // Per-step scratch, sized for draft_max.
    int32_t *drafted;              // [draft_max] d_1..d_K
    int32_t *batch, *pos;          // [draft_max + 1] the verification batch and its positions
    bool *want;                    // [draft_max + 1] all true
    float *q;                      // [draft_max][n_vocab] q_i, the draft's distribution for d_i
    float *target_logits;          // [draft_max + 1][n_vocab] rows of the verification forward
    float *draft_logits;           // [n_vocab]
    float *p;                      // [n_vocab] p_i
    float *residual;               // [n_vocab] max(0, p_i - q_i)

    struct spec_cost cost;         // what K is chosen from

    lb_speculative_stats stats;
};

lb_speculative_params lb_speculative_default_params(void) {
    return (lb_speculative_params){.draft_max = 8, .adaptive = true, .draft_min_p = 0.0f,
                                   .rule = LB_SPECULATIVE_EXACT};
}

// --- setup ------------------------------------------------------------------------

// Same size, same piece for every token: ids mean the same text in both.
static lb_status check_vocab(const lb_model *t, const lb_model *d, lb_error *err) {
    const lb_hparams *ht = lb_model_hparams(t), *hd = lb_model_hparams(d);
    if (ht->n_vocab != hd->n_vocab)
        return lb_fail(err, LB_ERR_ARG,
                       "speculative: draft %s: vocabulary of %d tokens (expected the target's %d, from %s)",
                       lb_model_path(d), (int)hd->n_vocab, (int)ht->n_vocab, lb_model_path(t));
    for (int32_t i = 0; i < ht->n_vocab; i++) {
        const char *a = lb_token_piece(t, i), *b = lb_token_piece(d, i);
        if (strcmp(a ? a : "", b ? b : "") != 0)
            return lb_fail(err, LB_ERR_ARG,
                           "speculative: draft %s: token %d is '%.40s' (expected '%.40s' as in the target %s)",
                           lb_model_path(d), (int)i, b ? b : "", a ? a : "", lb_model_path(t));
    }
    return LB_OK;
}

static lb_status check_params(const lb_speculative_params *p, lb_error *err) {
    if (p->draft_max < 0 || p->draft_max > LB_SPECULATIVE_MAX_DRAFT)
        return lb_fail(err, LB_ERR_ARG, "speculative: params.draft_max: found %d, expected 0..%d",
                       (int)p->draft_max, LB_SPECULATIVE_MAX_DRAFT);
    if (!(p->draft_min_p >= 0.0f && p->draft_min_p <= 1.0f))
        return lb_fail(err, LB_ERR_ARG, "speculative: params.draft_min_p: found %g, expected 0..1",
                       (double)p->draft_min_p);
    if (p->rule < LB_SPECULATIVE_EXACT || p->rule > LB_SPECULATIVE_TEST_RESAMPLE_P)
        return lb_fail(err, LB_ERR_ARG, "speculative: params.rule: found %d, expected 0..2", (int)p->rule);
    return LB_OK;
}

// The two samplers of lb_speculative_new, the draft's seed derived from the
// target's (an odd constant keeps distinct seeds distinct: the draft's draws
// must be independent of the acceptance tests').
static lb_status new_samplers(lb_sampler_params sp, int32_t n_vocab, lb_sampler **ts, lb_sampler **ds,
                              lb_error *err) {
    *ts = *ds = NULL;
    lb_status st = lb_sampler_new(ts, &sp, n_vocab, err);
    if (st != LB_OK) return st;
    sp.seed = sp.seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
    if ((st = lb_sampler_new(ds, &sp, n_vocab, err)) != LB_OK) {
        lb_sampler_free(*ts);
        *ts = NULL;
    }
    return st;
}

lb_status lb_speculative_new(lb_speculative **out, lb_context *target, lb_context *draft,
                             const lb_sampler_params *sampling, const lb_speculative_params *params,
                             lb_error *err) {
    if (out) *out = NULL;
    if (!out || !target || !draft)
        return lb_fail(err, LB_ERR_ARG, "speculative: out, target and draft must not be NULL");
    if (target == draft)
        return lb_fail(err, LB_ERR_ARG, "speculative: target and draft are the same context (expected two)");
    const lb_speculative_params p = params ? *params : lb_speculative_default_params();
    lb_status st = check_params(&p, err);
    if (st != LB_OK) return st;
    const lb_model *tm = lb_context_model(target);
    if ((st = check_vocab(tm, lb_context_model(draft), err)) != LB_OK) return st;

    lb_sampler_params sp = sampling ? *sampling : lb_sampler_default_params();
    lb_speculative *s = calloc(1, sizeof *s);
    if (!s) return lb_fail(err, LB_ERR_NOMEM, "speculative: out of memory");
    s->target = target;
    s->draft = draft;
    s->params = p;
    s->greedy = sp.temp <= 0.0f;
    s->n_vocab = lb_model_hparams(tm)->n_vocab;
    s->k = p.draft_max;
    if ((st = new_samplers(sp, s->n_vocab, &s->ts, &s->ds, err)) != LB_OK) goto fail;

    const size_t V = (size_t)s->n_vocab, K = (size_t)p.draft_max;
    s->hist_cap = lb_context_n_ctx(target) + 1;
    s->hist = malloc((size_t)s->hist_cap * sizeof *s->hist);
    s->drafted = malloc((K + 1) * sizeof *s->drafted);
    s->batch = malloc((K + 1) * sizeof *s->batch);
    s->pos = malloc((K + 1) * sizeof *s->pos);
    s->want = malloc((K + 1) * sizeof *s->want);
    s->q = malloc((K + 1) * V * sizeof *s->q);
    s->target_logits = malloc((K + 1) * V * sizeof *s->target_logits);
    s->draft_logits = malloc(V * sizeof *s->draft_logits);
    s->p = malloc(V * sizeof *s->p);
    s->residual = malloc(V * sizeof *s->residual);
    if (!s->hist || !s->drafted || !s->batch || !s->pos || !s->want || !s->q || !s->target_logits ||
        !s->draft_logits || !s->p || !s->residual) {
        st = lb_fail(err, LB_ERR_NOMEM, "speculative: out of memory for %d drafts over %d tokens",
                     (int)p.draft_max, s->n_vocab);
        goto fail;
    }
    for (size_t i = 0; i <= K; i++) s->want[i] = true;
    // Both caches are known to be empty from here on. Cannot fail: 0 <= n_past.
    lb_kv_cache_truncate(target, 0, NULL);
    lb_kv_cache_truncate(draft, 0, NULL);
    s->stats.draft_k = s->k;
    *out = s;
    return LB_OK;
fail:
    lb_speculative_free(s);
    return st;
}

void lb_speculative_free(lb_speculative *s) {
    if (!s) return;
    lb_sampler_free(s->ts);
    lb_sampler_free(s->ds);
    free(s->hist);
    free(s->drafted);
    free(s->batch);
    free(s->pos);
    free(s->want);
    free(s->q);
    free(s->target_logits);
    free(s->draft_logits);
    free(s->p);
    free(s->residual);
    free(s);
}

int32_t lb_speculative_n_past(const lb_speculative *s) { return s->n_hist; }

lb_speculative_stats lb_speculative_get_stats(const lb_speculative *s) { return s->stats; }

lb_status lb_speculative_set_sampling(lb_speculative *s, const lb_sampler_params *sampling, lb_error *err) {
    const lb_sampler_params sp = sampling ? *sampling : lb_sampler_default_params();
    lb_sampler *ts, *ds;
    lb_status st = new_samplers(sp, s->n_vocab, &ts, &ds, err);
    if (st != LB_OK) return st;
    lb_sampler_set_history(ts, s->hist, s->n_hist);
    lb_sampler_free(s->ts);
    lb_sampler_free(s->ds);
    s->ts = ts;
    s->ds = ds;
    s->greedy = sp.temp <= 0.0f;
    return LB_OK;
}

// --- history ------------------------------------------------------------------------

// Evaluate h[n_past..upto) in `ctx`, logits of the last into `logits`.
static lb_status catch_up(lb_speculative *s, lb_context *ctx, int32_t upto, float *logits, lb_error *err) {
    const int32_t from = lb_context_n_past(ctx);
    if (from >= upto) return LB_OK;
    return lb_decode(ctx, s->hist + from, upto - from, logits, err);
}

lb_status lb_speculative_feed(lb_speculative *s, const int32_t *tokens, int n, lb_error *err) {
    if (n < 0 || (n > 0 && !tokens))
        return lb_fail(err, LB_ERR_ARG, "speculative: feed: %d tokens (expected >= 0 and a buffer)", n);
    if (n > s->hist_cap - s->n_hist)
        return lb_fail(err, LB_ERR_ARG, "speculative: feed: %d tokens do not fit: %d of %d positions used", n,
                       (int)s->n_hist, (int)s->hist_cap - 1);
    // The last token is only evaluated by the next step: check them all now.
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= s->n_vocab)
            return lb_fail(err, LB_ERR_ARG, "speculative: feed: token %d at index %d is outside the vocabulary "
                           "(0..%d)", (int)tokens[i], i, (int)s->n_vocab - 1);
    const int32_t n_old = s->n_hist;
    const int32_t t_old = lb_context_n_past(s->target), d_old = lb_context_n_past(s->draft);
    memcpy(s->hist + n_old, tokens, (size_t)n * sizeof *tokens);
    // All but the new last token: it opens the next verification batch.
    const int32_t upto = n_old + n - 1;
    lb_status st = catch_up(s, s->target, upto, s->p, err);
    if (st == LB_OK) st = catch_up(s, s->draft, upto, s->draft_logits, err);
    if (st != LB_OK) {
        // Cannot fail: both are rolled back to what they held.
        lb_kv_cache_truncate(s->target, t_old, NULL);
        lb_kv_cache_truncate(s->draft, d_old, NULL);
        return st;
    }
    s->n_hist += n;
    for (int i = 0; i < n; i++) lb_sampler_accept(s->ts, tokens[i]);
    return LB_OK;
}

lb_status lb_speculative_truncate(lb_speculative *s, int32_t n_keep, lb_error *err) {
    if (n_keep < 0 || n_keep > s->n_hist)
        return lb_fail(err, LB_ERR_ARG, "speculative: truncate: cannot keep %d tokens (the history holds %d)",
                       (int)n_keep, (int)s->n_hist);
    s->n_hist = n_keep;
    const int32_t cached = n_keep > 0 ? n_keep - 1 : 0;
    if (lb_context_n_past(s->target) > cached) lb_kv_cache_truncate(s->target, cached, NULL);
    if (lb_context_n_past(s->draft) > cached) lb_kv_cache_truncate(s->draft, cached, NULL);
    lb_sampler_set_history(s->ts, s->hist, n_keep);
    return LB_OK;
}

// --- drawing ---------------------------------------------------------------------------

// A draw from the weights w[0..n) (not necessarily normalised, total > 0) by
// inverse CDF with the uniform u; a zero weight is never picked.
static int32_t draw(const float *w, int32_t n, double u) {
    double total = 0.0;
    for (int32_t i = 0; i < n; i++) total += w[i];
    const double target = u * total;
    double cum = 0.0;
    int32_t last = -1;
    for (int32_t i = 0; i < n; i++) {
        if (w[i] <= 0.0f) continue;
        cum += w[i];
        last = i;
        if (cum > target) return i;
    }
    return last; // rounding left the target past the end: the last positive weight
}

// The draft's own confidence in `token`: softmax of its logits at temperature
// 1, before any sampler transform (so that greedy drafting has one too).
static float confidence(const float *logits, int32_t n, int32_t token) {
    float mx = -INFINITY;
    for (int32_t i = 0; i < n; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) sum += expf(logits[i] - mx);
    return (float)(expf(logits[token] - mx) / sum);
}

// --- one step ------------------------------------------------------------------------------

// Draft up to k tokens after h[0..n) into s->drafted, with q_i in s->q rows
// (sampling only); *drafted gets how many.
static lb_status draft_tokens(lb_speculative *s, int k, int *drafted, lb_error *err) {
    const int32_t n = s->n_hist, V = s->n_vocab;
    *drafted = 0;
    lb_status st = catch_up(s, s->draft, n, s->draft_logits, err);
    if (st != LB_OK) return st;
    lb_sampler_set_history(s->ds, s->hist, n);
    for (int i = 0; i < k; i++) {
        if (i > 0 && (st = lb_decode(s->draft, &s->drafted[i - 1], 1, s->draft_logits, err)) != LB_OK) return st;
        int32_t d;
        if (s->greedy) {
            d = lb_sampler_sample(s->ds, s->draft_logits);
        } else {
            float *q = s->q + (size_t)i * V;
            lb_sampler_probs(s->ds, s->draft_logits, q);
            d = draw(q, V, lb_sampler_uniform(s->ds));
        }
        if (s->params.draft_min_p > 0.0f && confidence(s->draft_logits, V, d) < s->params.draft_min_p) break;
        s->drafted[i] = d;
        lb_sampler_accept(s->ds, d);
        *drafted = i + 1;
    }
    return LB_OK;
}

// Judge drafted[0..k) against the target's rows; accepted tokens go into the
// target's sampler. Returns the number accepted and the token that follows
// them in *next.
static int judge(lb_speculative *s, int k, int32_t *next) {
    const int32_t V = s->n_vocab;
    for (int i = 0; i < k; i++) {
        const float *logits = s->target_logits + (size_t)i * V;
        const int32_t d = s->drafted[i];
        if (s->greedy) {
            const int32_t t = lb_sampler_sample(s->ts, logits); // argmax after penalties, no draw
            if (t != d && s->params.rule != LB_SPECULATIVE_TEST_ACCEPT_ALL) {
                *next = t;
                return i;
            }
        } else {
            const float *q = s->q + (size_t)i * V;
            lb_sampler_probs(s->ts, logits, s->p);
            // Accept with probability min(1, p/q): u·q < p. q(d) > 0 as d was drawn from q.
            const bool accept = s->params.rule == LB_SPECULATIVE_TEST_ACCEPT_ALL ||
                                lb_sampler_uniform(s->ts) * q[d] < s->p[d];
            if (!accept) {
                double mass = 0.0;
                for (int32_t j = 0; j < V; j++) {
                    const float r = s->p[j] - q[j];
                    s->residual[j] = r > 0.0f ? r : 0.0f;
                    mass += s->residual[j];
                }
                // p(d) < q(d) forces mass > 0 in exact arithmetic; should rounding
                // leave none, p itself is the right fallback (p and q agree).
                const float *from = s->params.rule == LB_SPECULATIVE_TEST_RESAMPLE_P || mass <= 0.0 ? s->p
                                                                                                    : s->residual;
                *next = draw(from, V, lb_sampler_uniform(s->ts));
                return i;
            }
        }
        lb_sampler_accept(s->ts, d);
    }
    // All accepted: the bonus token, from the row after the last draft.
    *next = lb_sampler_sample(s->ts, s->target_logits + (size_t)k * V);
    return k;
}

// --- choosing K ------------------------------------------------------------------------

enum { COST_EXPLORE_STEPS = 2 };
static const double VERIFY_DECAY = 0.98, DRAFT_DECAY = 0.8, ACCEPT_DECAY = 0.9;

// 1 + a + ... + a^k: expected tokens from a step of k drafts.
static double expected_tokens(double a, int k) {
    double e = 1.0, p = 1.0;
    for (int i = 0; i < k; i++) e += (p *= a);
    return e;
}

// Record a step: k drafts asked for, `drafted` made in draft_s seconds,
// `accepted` of them passed, a verification of drafted + 1 tokens took verify_s.
static void cost_observe(lb_speculative *s, int drafted, int accepted, double draft_s, double verify_s) {
    struct spec_cost *c = &s->cost;
    const double n = drafted + 1;
    c->w = VERIFY_DECAY * c->w + 1.0;
    c->n = VERIFY_DECAY * c->n + n;
    c->nn = VERIFY_DECAY * c->nn + n * n;
    c->t = VERIFY_DECAY * c->t + verify_s;
    c->nt = VERIFY_DECAY * c->nt + n * verify_s;
    if (drafted > 0) {
        const double per = draft_s / drafted;
        c->draft_tok_s = c->draft_tok_s > 0 ? DRAFT_DECAY * c->draft_tok_s + (1 - DRAFT_DECAY) * per : per;
    }
    c->yes = ACCEPT_DECAY * c->yes + accepted;
    c->no = ACCEPT_DECAY * c->no + (accepted < drafted ? 1 : 0);
    c->steps++;
}

// The K with the most expected tokens per second, or -1 while the costs are
// not known well enough to say.
static int cost_best_k(const lb_speculative *s) {
    const struct spec_cost *c = &s->cost;
    if (c->w <= 0 || c->draft_tok_s <= 0) return -1;
    const double mean = c->n / c->w, var = c->nn / c->w - mean * mean;
    if (var < 0.5) return -1; // verification sizes too alike to fit a slope
    double slope = (c->nt / c->w - mean * (c->t / c->w)) / var;
    if (slope < 0) slope = 0;
    const double intercept = c->t / c->w - slope * mean;
    const double a = (c->yes + 1.0) / (c->yes + c->no + 2.0); // smoothed: never exactly 0 or 1
    int best = 1;
    double best_rate = 0;
    for (int k = 1; k <= s->params.draft_max; k++) {
        const double cost = intercept + slope * (k + 1) + k * c->draft_tok_s;
        const double rate = cost > 0 ? expected_tokens(a, k) / cost : 0;
        if (rate > best_rate) best_rate = rate, best = k;
    }
    return best;
}

static void adapt_k(lb_speculative *s, int k_used, int drafted, int accepted) {
    if (!s->params.adaptive) return;
    const int kmax = s->params.draft_max;
    if (s->cost.steps < COST_EXPLORE_STEPS) {
        s->k = kmax / 4 > 1 ? kmax / 4 : 1; // a second, smaller batch to measure
        return;
    }
    const int best = cost_best_k(s);
    if (best > 0) {
        s->k = best;
    } else if (drafted > 0 && accepted == drafted && drafted == k_used) {
        s->k = s->k + 2 < kmax ? s->k + 2 : kmax;
    } else if (accepted < drafted) {
        s->k = s->k > 1 ? s->k - 1 : 1;
    }
}

lb_status lb_speculative_step(lb_speculative *s, int32_t *out, int cap, int *n_out, lb_error *err) {
    if (n_out) *n_out = 0;
    if (!out || !n_out || cap < 1)
        return lb_fail(err, LB_ERR_ARG, "speculative: step: cap %d (expected >= 1, with out and n_out)", cap);
    const int32_t n = s->n_hist;
    const int32_t t_ctx = lb_context_n_ctx(s->target), d_ctx = lb_context_n_ctx(s->draft);
    if (n == 0) return lb_fail(err, LB_ERR_ARG, "speculative: step: empty history (feed a prompt first)");
    if (n > t_ctx)
        return lb_fail(err, LB_ERR_ARG, "speculative: step: the target's context is full (%d positions)", (int)t_ctx);
    const double t0 = lb_time_s();

    // K: the adaptive choice, within what the caller wants and what both
    // caches hold (the target evaluates positions n-1..n-1+K, the draft up to n+K-2).
    int k = s->k;
    if (k > cap - 1) k = cap - 1;
    if (k > t_ctx - n) k = t_ctx - n;
    if (k > d_ctx - n + 1) k = d_ctx - n + 1;
    if (k < 0) k = 0;

    const int32_t d_before = lb_context_n_past(s->draft);
    int drafted = 0;
    lb_status st = LB_OK;
    double draft_s = 0;
    if (k > 0) {
        const double td = lb_time_s();
        st = draft_tokens(s, k, &drafted, err);
        draft_s = lb_time_s() - td;
        s->stats.draft_s += draft_s;
        if (st != LB_OK) {
            if (lb_context_n_past(s->draft) > d_before) lb_kv_cache_truncate(s->draft, d_before, NULL);
            return st;
        }
    }

    s->batch[0] = s->hist[n - 1];
    for (int i = 0; i < drafted; i++) s->batch[i + 1] = s->drafted[i];
    for (int i = 0; i <= drafted; i++) s->pos[i] = n - 1 + i;
    const double tt = lb_time_s();
    st = lb_forward(s->target, s->batch, s->pos, drafted + 1, s->want, s->target_logits, err);
    const double verify_s = lb_time_s() - tt;
    s->stats.target_s += verify_s;
    if (st != LB_OK) {
        if (lb_context_n_past(s->draft) > d_before) lb_kv_cache_truncate(s->draft, d_before, NULL);
        return st;
    }

    int32_t next;
    const int accepted = judge(s, drafted, &next);
    lb_sampler_accept(s->ts, next);

    // The history grows by the accepted drafts and the target's token; both
    // caches keep exactly the accepted prefix (the target's new last token is
    // evaluated by the next step). Cannot fail: both only shrink.
    for (int i = 0; i < accepted; i++) out[i] = s->hist[n + i] = s->drafted[i];
    out[accepted] = s->hist[n + accepted] = next;
    s->n_hist = n + accepted + 1;
    lb_kv_cache_truncate(s->target, n + accepted, NULL);
    if (lb_context_n_past(s->draft) > n + accepted) lb_kv_cache_truncate(s->draft, n + accepted, NULL);
    *n_out = accepted + 1;

    if (k > 0) cost_observe(s, drafted, accepted, draft_s, verify_s);
    adapt_k(s, k, drafted, accepted);
    s->stats.n_steps++;
    s->stats.n_drafted += drafted;
    s->stats.n_accepted += accepted;
    s->stats.n_generated += accepted + 1;
    s->stats.draft_k = s->k;
    s->stats.step_s += lb_time_s() - t0;
    return LB_OK;
}
