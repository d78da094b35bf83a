/*
 * sampler.c — turning one row of logits into a token.
 *
 * The transforms run in the order of llama.cpp's default common_sampler chain
 * (common/common.h: penalties; dry; top_k; typ_p; top_p; min_p; xtc; temperature,
 * then dist), restricted to the ones lowbit has:
 *
 *   penalties -> top-k -> top-p -> min-p -> temperature + softmax -> draw
 *
 * with the semantics of src/llama-sampling.cpp:
 * - repetition penalty: a token seen in the window has logit/penalty when its
 *   logit is > 0 and logit*penalty otherwise; then, OpenAI-style,
 *   logit -= count*frequency + (count > 0)*presence.
 * - top-p works on the softmax of the candidates left by top-k (temperature not
 *   yet applied) and keeps the smallest prefix, best first, whose cumulative
 *   probability reaches p; at least one token. (The sum is kept in double where
 *   llama.cpp uses float; only the rounding at the cut differs.)
 * - min-p keeps the candidates whose logit is >= max_logit + log(min_p), that is
 *   p >= min_p * p_max on the softmax of the candidates at that point.
 * - temperature divides the surviving logits; the draw is from their softmax.
 *   temp <= 0 is greedy: one-hot on the first argmax after penalties (the
 *   truncations always keep the argmax, so they cannot change it).
 *
 * Ties are broken by the lower token id wherever an order matters (top-k,
 * top-p), so a given input always gives the same kept set. NaN logits count as
 * -inf; +inf logits share the whole mass.
 *
 * Where the time goes: one O(V) pass to copy and penalise the logits, then
 * O(V log k) for top-k (a bounded heap, no full sort), expected O(V) for top-p
 * on an untruncated row (a probability-weighted quickselect), O(V) for min-p
 * and the softmax; expf over the row is the largest single cost.
 * Everything lives in buffers allocated by lb_sampler_new; nothing is
 * allocated per token.
 */
#include "internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// Random numbers: xoshiro256** seeded through splitmix64, one per sampler.

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl64(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static uint64_t xoshiro_next(uint64_t s[4]) {
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

static void rng_seed(uint64_t s[4], uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) s[i] = splitmix64(&x);
}

// ----------------------------------------------------------------------------
// The sampler

typedef struct cand {
    float logit;
    float p;
    int32_t id;
} cand;

struct lb_sampler {
    lb_sampler_params params;
    int32_t n_vocab;
    uint64_t rng[4];

    // Penalty history. count[t] is how often token t occurs in the window (the
    // last repeat_last_n accepted tokens, or all of them when it is -1).
    int32_t *count;  // [n_vocab]
    int32_t *ring;   // [repeat_last_n] when > 0: the window, oldest at ring_head
    int32_t ring_len;
    int32_t ring_head;

    // Scratch for one call: the candidates, of which the first n_cand are kept.
    cand *cand;      // [n_vocab]
};

lb_sampler_params lb_sampler_default_params(void) {
    // llama.cpp's common_params_sampling defaults, except the seed: llama.cpp
    // draws a random one, the engine keeps no hidden entropy source.
    return (lb_sampler_params){
        .temp = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .repeat_last_n = 64,
        .presence_penalty = 0.0f,
        .frequency_penalty = 0.0f,
        .seed = 0x5eed,
    };
}

static lb_status check_finite(lb_error *err, const char *field, float v) {
    if (isfinite(v)) return LB_OK;
    return lb_fail(err, LB_ERR_ARG, "sampler: params.%s: found %g, expected a finite number", field,
                   (double)v);
}

static lb_status check_params(const lb_sampler_params *p, int32_t n_vocab, lb_error *err) {
    lb_status st;
    if (n_vocab <= 0)
        return lb_fail(err, LB_ERR_ARG, "sampler: n_vocab: found %d, expected > 0", (int)n_vocab);
    if ((st = check_finite(err, "temp", p->temp)) != LB_OK) return st;
    if ((st = check_finite(err, "top_p", p->top_p)) != LB_OK) return st;
    if ((st = check_finite(err, "min_p", p->min_p)) != LB_OK) return st;
    if ((st = check_finite(err, "repeat_penalty", p->repeat_penalty)) != LB_OK) return st;
    if ((st = check_finite(err, "presence_penalty", p->presence_penalty)) != LB_OK) return st;
    if ((st = check_finite(err, "frequency_penalty", p->frequency_penalty)) != LB_OK) return st;
    if (p->top_p < 0.0f)
        return lb_fail(err, LB_ERR_ARG, "sampler: params.top_p: found %g, expected >= 0 (>= 1: off)",
                       (double)p->top_p);
    if (p->min_p > 1.0f)
        return lb_fail(err, LB_ERR_ARG, "sampler: params.min_p: found %g, expected <= 1 (<= 0: off)",
                       (double)p->min_p);
    if (p->repeat_penalty <= 0.0f)
        return lb_fail(err, LB_ERR_ARG, "sampler: params.repeat_penalty: found %g, expected > 0 (1: off)",
                       (double)p->repeat_penalty);
    if (p->repeat_last_n < -1)
        return lb_fail(err, LB_ERR_ARG,
                       "sampler: params.repeat_last_n: found %d, expected >= -1 (-1: whole history)",
                       (int)p->repeat_last_n);
    return LB_OK;
}

lb_status lb_sampler_new(lb_sampler **out, const lb_sampler_params *params, int32_t n_vocab, lb_error *err) {
    if (out) *out = NULL;
    if (!out) return lb_fail(err, LB_ERR_ARG, "sampler: out: found NULL, expected a pointer");
    lb_sampler_params p = params ? *params : lb_sampler_default_params();
    lb_status st = check_params(&p, n_vocab, err);
    if (st != LB_OK) return st;

    lb_sampler *s = calloc(1, sizeof *s);
    if (!s) return lb_fail(err, LB_ERR_NOMEM, "sampler: out of memory");
    s->params = p;
    s->n_vocab = n_vocab;
    s->count = calloc((size_t)n_vocab, sizeof *s->count);
    s->cand = calloc((size_t)n_vocab, sizeof *s->cand);
    if (p.repeat_last_n > 0) s->ring = calloc((size_t)p.repeat_last_n, sizeof *s->ring);
    if (!s->count || !s->cand || (p.repeat_last_n > 0 && !s->ring)) {
        lb_sampler_free(s);
        return lb_fail(err, LB_ERR_NOMEM,
                       "sampler: out of memory for n_vocab %d candidates and a repeat_last_n %d window",
                       (int)n_vocab, (int)p.repeat_last_n);
    }
    rng_seed(s->rng, p.seed);
    *out = s;
    return LB_OK;
}

void lb_sampler_free(lb_sampler *s) {
    if (!s) return;
    free(s->count);
    free(s->ring);
    free(s->cand);
    free(s);
}

void lb_sampler_accept(lb_sampler *s, int32_t token) {
    if (LB_NEVER(!s)) return;
    int32_t window = s->params.repeat_last_n;
    if (window == 0 || token < 0 || token >= s->n_vocab) return; // nothing to remember / not a token
    if (window > 0) {
        if (s->ring_len == window) {
            // Full: the oldest token leaves the window, the new one takes its slot.
            s->count[s->ring[s->ring_head]]--;
            s->ring[s->ring_head] = token;
            s->ring_head = (s->ring_head + 1) % window;
        } else {
            s->ring[(s->ring_head + s->ring_len) % window] = token;
            s->ring_len++;
        }
    }
    s->count[token]++;
}

void lb_sampler_reset(lb_sampler *s) {
    if (LB_NEVER(!s)) return;
    memset(s->count, 0, sizeof *s->count * (size_t)s->n_vocab);
    s->ring_len = 0;
    s->ring_head = 0;
    rng_seed(s->rng, s->params.seed);
}

void lb_sampler_set_history(lb_sampler *s, const int32_t *tokens, int n) {
    if (LB_NEVER(!s || (n > 0 && !tokens))) return;
    memset(s->count, 0, sizeof *s->count * (size_t)s->n_vocab);
    s->ring_len = 0;
    s->ring_head = 0;
    // Only the last repeat_last_n tokens can be in the window (all of them when -1).
    const int32_t window = s->params.repeat_last_n;
    const int first = window >= 0 && n > window ? n - window : 0;
    for (int i = first; i < n; i++) lb_sampler_accept(s, tokens[i]);
}

double lb_sampler_uniform(lb_sampler *s) {
    if (LB_NEVER(!s)) return 0.0;
    // The top 53 bits as a double in [0,1).
    return (double)(xoshiro_next(s->rng) >> 11) * 0x1.0p-53;
}

int32_t lb_argmax(const float *x, int32_t n) {
    int32_t best = -1;
    for (int32_t i = 0; i < n; i++) {
        if (isnan(x[i])) continue;
        if (best < 0 || x[i] > x[best]) best = i;
    }
    return best < 0 ? 0 : best;
}

// ----------------------------------------------------------------------------
// The transforms, each on s->cand[0..n) and returning the new n.

// a ranks before b: higher logit, then lower id. A strict total order, so the
// kept set never depends on the selection algorithm.
static inline bool cand_before(const cand *a, const cand *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

// Heap whose root is the worst element (the one every other ranks before).
static void heap_sift_down(cand *h, int32_t n, int32_t i) {
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && cand_before(&h[w], &h[l])) w = l;
        if (r < n && cand_before(&h[w], &h[r])) w = r;
        if (w == i) return;
        cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

// Move the m best of c[0..n) to c[0..m), best first. The others stay in
// c[m..n) in some order. O(n log m): each element is compared with the worst
// of the current m and mostly rejected at once.
static void select_top(cand *c, int32_t n, int32_t m) {
    if (m > n) m = n;
    for (int32_t i = m / 2 - 1; i >= 0; i--) heap_sift_down(c, m, i);
    for (int32_t i = m; i < n; i++) {
        if (cand_before(&c[i], &c[0])) {
            cand t = c[0];
            c[0] = c[i];
            c[i] = t;
            heap_sift_down(c, m, 0);
        }
    }
    // Heap sort: the worst goes to the end each time, so c[0..m) ends best first.
    for (int32_t end = m - 1; end > 0; end--) {
        cand t = c[0];
        c[0] = c[end];
        c[end] = t;
        heap_sift_down(c, end, 0);
    }
}

// Fill the candidates with every token's logit after the penalties. NaN
// becomes -inf, +inf becomes FLT_MAX so that differences stay defined.
static void fill_penalised(lb_sampler *s, const float *logits) {
    const lb_sampler_params *p = &s->params;
    bool penalise = p->repeat_last_n != 0 &&
                    (p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f);
    for (int32_t i = 0; i < s->n_vocab; i++) {
        float l = logits[i];
        if (isnan(l)) l = -INFINITY;
        int32_t c = s->count[i];
        if (penalise && c > 0) {
            l = l > 0.0f ? l / p->repeat_penalty : l * p->repeat_penalty;
            l -= (float)c * p->frequency_penalty + p->presence_penalty;
        }
        if (l > FLT_MAX) l = FLT_MAX;
        s->cand[i] = (cand){.logit = l, .p = 0.0f, .id = i};
    }
}

static float max_logit(const cand *c, int32_t n) {
    float m = -INFINITY;
    for (int32_t i = 0; i < n; i++)
        if (c[i].logit > m) m = c[i].logit;
    return m;
}

// Softmax of logit/temp into .p; returns the sum before normalising. The max
// is subtracted before dividing, so FLT_MAX logits stay finite.
static double softmax(cand *c, int32_t n, float temp) {
    float mx = max_logit(c, n);
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        float e = expf((c[i].logit - mx) / temp);
        c[i].p = e;
        sum += e;
    }
    for (int32_t i = 0; i < n; i++) c[i].p = (float)(c[i].p / sum);
    return sum;
}

static int32_t apply_top_k(cand *c, int32_t n, int32_t k, bool *sorted) {
    if (k <= 0 || k >= n) return n;
    select_top(c, n, k);
    *sorted = true;
    return k;
}

// Split c[lo..hi) (at least 3 elements) around a median-of-three pivot: the
// elements ranked before it go first. Returns the pivot's index; *before gets
// the probability of the elements before it.
static int32_t partition(cand *c, int32_t lo, int32_t hi, double *before) {
    int32_t mid = lo + (hi - lo) / 2, last = hi - 1;
    // Order c[lo], c[mid], c[last] and use the middle one, parked at `last`.
    if (cand_before(&c[mid], &c[lo])) { cand t = c[mid]; c[mid] = c[lo]; c[lo] = t; }
    if (cand_before(&c[last], &c[lo])) { cand t = c[last]; c[last] = c[lo]; c[lo] = t; }
    if (cand_before(&c[mid], &c[last])) { cand t = c[mid]; c[mid] = c[last]; c[last] = t; }
    const cand pivot = c[last];
    int32_t store = lo;
    double sum = 0.0;
    for (int32_t i = lo; i < last; i++) {
        if (cand_before(&c[i], &pivot)) {
            sum += c[i].p;
            cand t = c[i]; c[i] = c[store]; c[store] = t;
            store++;
        }
    }
    c[last] = c[store];
    c[store] = pivot;
    *before = sum;
    return store;
}

// Smallest best-first prefix whose probability reaches p, moved to the front.
// On sorted candidates a scan; otherwise a selection weighted by probability
// (quickselect that recurses into the side holding the cut), expected O(n):
// a flat 150k-token row can need tens of thousands of tokens, and sorting them
// all would dominate the call. The kept set is left unsorted.
static int32_t apply_top_p(cand *c, int32_t n, float top_p, bool sorted) {
    if (top_p >= 1.0f) return n;
    softmax(c, n, 1.0f);
    // A double sum: llama.cpp's float one drifts by ~1e-5 over thousands of
    // candidates, which moves the cut on flat rows.
    double acc = 0.0; // probability of c[0..lo), all of which are kept
    int32_t lo = 0, hi = n;
    if (!sorted) {
        // Invariant: the cut lies in c[lo..hi], and acc < top_p.
        for (int depth = 0; hi - lo > 16 && depth < 64; depth++) {
            double before;
            int32_t piv = partition(c, lo, hi, &before);
            if (acc + before >= top_p) {
                hi = piv;
            } else if (acc + before + c[piv].p >= top_p) {
                return piv + 1;
            } else {
                acc += before + c[piv].p;
                lo = piv + 1;
            }
        }
        // A small region (or a pathological one after 64 rounds): rank it.
        select_top(c + lo, hi - lo, hi - lo);
    }
    for (int32_t i = lo; i < hi; i++) {
        acc += c[i].p;
        if (acc >= top_p) return i + 1;
    }
    // Not reached: either the whole row (rounding kept the sum below p), or a
    // region whose sum, added in another order, fell a rounding short.
    return hi > 0 ? hi : 1;
}

// Keep logit >= max + log(min_p), i.e. p >= min_p * p_max; the order is kept.
static int32_t apply_min_p(cand *c, int32_t n, float min_p) {
    if (min_p <= 0.0f) return n;
    float cut = max_logit(c, n) + logf(min_p);
    int32_t kept = 0;
    for (int32_t i = 0; i < n; i++)
        if (c[i].logit >= cut) c[kept++] = c[i];
    return kept > 0 ? kept : 1; // cannot happen (the max passes), but never return none
}

// Run the chain on `logits`; the kept candidates, with their final
// probabilities in .p, are s->cand[0..return).
static int32_t run_chain(lb_sampler *s, const float *logits) {
    const lb_sampler_params *p = &s->params;
    fill_penalised(s, logits);
    cand *c = s->cand;
    int32_t n = s->n_vocab;

    // Greedy, and the degenerate row where nothing is finite: one-hot on the
    // first argmax (token 0 when every logit is -inf).
    float mx = max_logit(c, n);
    if (p->temp <= 0.0f || mx == -INFINITY) {
        int32_t best = 0;
        for (int32_t i = 1; i < n; i++)
            if (c[i].logit > c[best].logit) best = i;
        c[0] = c[best];
        c[0].p = 1.0f;
        return 1;
    }

    bool sorted = false;
    n = apply_top_k(c, n, p->top_k, &sorted);
    n = apply_top_p(c, n, p->top_p, sorted); // leaves them unsorted
    n = apply_min_p(c, n, p->min_p);
    softmax(c, n, p->temp);
    return n;
}

void lb_sampler_probs(lb_sampler *s, const float *logits, float *probs) {
    if (LB_NEVER(!s || !logits || !probs)) return;
    int32_t n = run_chain(s, logits);
    memset(probs, 0, sizeof *probs * (size_t)s->n_vocab);
    for (int32_t i = 0; i < n; i++) probs[s->cand[i].id] = s->cand[i].p;
}

int32_t lb_sampler_sample(lb_sampler *s, const float *logits) {
    if (LB_NEVER(!s || !logits)) return 0;
    int32_t n = run_chain(s, logits);
    const cand *c = s->cand;
    if (n == 1) return c[0].id; // greedy or one survivor: no draw, the generator is not advanced

    // Inverse CDF over exactly the floats lb_sampler_probs writes. The target
    // is scaled by their actual sum so rounding cannot push it past the end;
    // the strict > means a zero-probability token is never picked.
    double total = 0.0;
    for (int32_t i = 0; i < n; i++) total += c[i].p;
    double target = lb_sampler_uniform(s) * total;
    double cum = 0.0;
    int32_t last = c[0].id;
    for (int32_t i = 0; i < n; i++) {
        if (c[i].p <= 0.0f) continue;
        cum += c[i].p;
        last = c[i].id;
        if (cum > target) return c[i].id;
    }
    return last;
}
