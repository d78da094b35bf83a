/*
 * chat.c — a conversation over one context: prompt reuse across turns, replies
 * token by token, live profile switching and the statistics the panel shows.
 *
 * The KV cache mirrors a text. `text` is the rendered conversation whose
 * tokens the cache holds and tok_end[i] is where token i's text ends in it.
 * A new turn renders the whole conversation again, keeps the cached tokens
 * whose text is a prefix of the new rendering and evaluates only the rest.
 * Prompt chunks record one end for all their tokens (a tokenizer may merge
 * across any boundary inside them), so reuse is chunk-granular there and
 * token-granular inside replies.
 *
 * Threads: the caller's generating thread (begin/step/end), the caller's UI
 * thread (stats), a re-quantization thread per switch and one KL-divergence
 * thread. `lock` serialises everything that reads or writes the weights
 * pointers or the chat's context: its forward passes and the commit of new
 * weights. The reference model of the KL divergence shares nothing mutable
 * with them (see kld_measure) and runs beside them without `lock`.
 * `st_lock` guards the statistics snapshot only.
 *
 * Speculative decoding (lb_chat_set_draft). While a draft is set, an
 * lb_speculative over `ctx` and the draft's context owns both caches: every
 * evaluation and every rollback goes through it. Its history always starts
 * with tok[0..n_tok) (it may run ahead by tokens generated past the end of a
 * reply), so a new turn truncates it to the kept prefix and feeds the rest; a
 * step's tokens are handed out one lb_chat_step at a time from spec_buf. The
 * chat's tok[] keeps exactly what plain decoding would hold, so the next
 * turn's prompt, and with it greedy output, is the same with or without a draft.
 *
 * Answers (the last section): each reply's footer figures, lb_chat_measure
 * (an answer teacher-forced through these weights and the source-precision
 * reference of the live KL divergence, compared at every token) and /compare
 * chats, which run on a re-quantized copy of the model file and borrow their
 * parent's reference for as long as they live.
 */
#include "internal.h"
#include "model.h"
#include "repack.h"
#include "types.h"

#include <math.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/resource.h>
#include <sys/syscall.h>
#endif

struct kld_job {
    int32_t *tokens;   // the cache's tokens when the sample was taken
    int n;
    float *logits;     // (n_vocab) the active model's logits after them
    uint32_t weights_gen;
};

// The KL thread's nice value (Linux: per thread). Generation uses every core;
// at 19 the scheduler gives the thread about 1.5 % of a core that generation
// wants (CFS weight 15 against 1024) and all of an idle one, so samples are
// measured mostly between replies, catching up on the new tokens in one batch.
enum { KLD_NICE = 19 };
// Tokens per forward pass of the reference's catch-up: the most a switch back
// to the source waits for (ref_drop).
enum { KLD_PIECE = 8 };

struct lb_chat {
    lb_model *model;
    lb_chat_params p;
    lb_context *ctx;
    lb_sampler *smp;
    int32_t n_vocab;
    float *logits;              // (n_vocab) next-token logits after the cached tokens
    bool have_logits;

    int32_t *tok;               // (cap_tok) tokens in the KV cache
    size_t *tok_end;            // (cap_tok) end of each token's text in `text`
    int n_tok, cap_tok;
    char *text;                 // what the cached tokens spell
    size_t text_len, text_cap;

    // The reply being generated.
    const char *stop;           // template's end-of-turn text, or NULL
    char *reply;                // every piece generated so far
    size_t reply_len, reply_cap, emitted;
    int32_t prev;               // last token, for lb_token_decode
    int reply_tokens;
    bool done;
    double decode_s;
    int n_decoded;
    // The reply's footer (lb_chat_reply_stats).
    double t_begin, ttft;       // ttft < 0 until the first lb_chat_step
    uint64_t seed;
    char reply_profile[32];
    double reply_bpw;
    int64_t spec_drafted0, spec_accepted0; // the draft's counters when the reply began

    pthread_mutex_t lock;       // forward passes and weight swaps
    pthread_mutex_t st_lock;    // `st` and the fields marked below
    lb_stats st;
    double kld_sum, top1_sum;   // (st_lock) since the weights last changed
    uint32_t weights_gen;       // (st_lock) bumped at each switch

    // Re-quantization.
    pthread_t rq_thread;
    bool rq_started;            // a thread to join
    bool rq_holds_lock;         // the progress callback took `lock` for the commit
    lb_profile *rq_profile;
    lb_type rq_type;
    double rq_t0;

    // KL divergence against the source precision.
    pthread_t kld_thread;
    bool kld_started;
    pthread_mutex_t kld_mu;
    pthread_cond_t kld_cv;
    bool kld_quit, kld_busy;
    bool ref_close;             // (kld_mu) the weights are the source's again: free the reference
    struct kld_job job;         // (kld_mu) pending when job.tokens != NULL
    lb_model *ref_model;        // opened lazily from the model's file: the source weights
    lb_context *ref_ctx;
    float *ref_logits;
    int32_t *ref_tok;           // what ref_ctx's cache holds
    int ref_n, ref_cap;

    // Speculative decoding; spec is NULL without a draft. Changed only by
    // lb_chat_set_draft (not while generating); the rest under `lock`.
    lb_model *draft_model;
    lb_context *draft_ctx;
    lb_speculative *spec;
    int32_t spec_buf[LB_SPECULATIVE_MAX_DRAFT + 1];
    int spec_i, spec_n;         // spec_buf[spec_i..spec_n): generated, not yet handed out
    char draft_name[64];

    // A /compare chat (lb_chat_new_compare) owns its model copy and measures
    // against its parent's reference model, which it holds (ref_acquire) for
    // as long as it lives: the parent's KL thread stays idle meanwhile, so the
    // reference has one user at a time.
    bool owns_model;
    lb_chat *ref_owner;
    bool lent;                  // (a parent) a compare chat holds the reference
};

lb_chat_params lb_chat_default_params(void) {
    return (lb_chat_params){.n_ctx = 0, .n_threads = 0, .kv_type = LB_TYPE_F16, .n_predict = 512, .kld_every = 16};
}

// --- statistics -------------------------------------------------------------------

static double matrices_bpw(const lb_model *m) {
    // Bits per weight of the matrices (embeddings, output and layers), as in use.
    double bits = 0, n = 0;
    const struct lb_weight *ws[2] = {&m->tok_embd, m->hp.tied_output ? NULL : &m->output};
    for (int i = 0; i < 2; i++)
        if (ws[i]) {
            bits += 8.0 * (double)ws[i]->rows * (double)lb_type_row_bytes(ws[i]->type, ws[i]->cols);
            n += (double)ws[i]->rows * (double)ws[i]->cols;
        }
    for (int l = 0; l < m->hp.n_layer; l++) {
        const struct lb_layer *L = &m->layers[l];
        const struct lb_weight *lw[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int k = 0; k < 7; k++) {
            bits += 8.0 * (double)lw[k]->rows * (double)lb_type_row_bytes(lw[k]->type, lw[k]->cols);
            n += (double)lw[k]->rows * (double)lw[k]->cols;
        }
    }
    return n > 0 ? bits / n : 0;
}

static void set_event(lb_chat *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_event(lb_chat *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&c->st_lock);
    vsnprintf(c->st.event, sizeof c->st.event, fmt, ap);
    c->st.event_seq++;
    pthread_mutex_unlock(&c->st_lock);
    va_end(ap);
}

static void fill_side(lb_chat *c, lb_stats_side *s) {
    // Called with st_lock held.
    snprintf(s->profile, sizeof s->profile, "%s", c->st.profile);
    s->bpw = c->st.bpw;
    s->weight_bytes = c->st.weight_bytes;
    s->rss_bytes = lb_rss_bytes();
    s->weight_error = c->st.weight_error;
}

void lb_chat_stats(lb_chat *c, lb_stats *out) {
    pthread_mutex_lock(&c->st_lock);
    *out = c->st;
    pthread_mutex_unlock(&c->st_lock);
    out->rss_bytes = lb_rss_bytes();
    out->peak_rss_bytes = lb_peak_rss_bytes();
    // Context figures are read without `lock`: a torn read shows one stale number.
    out->n_ctx = lb_context_n_ctx(c->ctx);
    out->n_ctx_used = lb_context_n_past(c->ctx);
    out->kv_bytes_used = lb_kv_cache_bytes_used(c->ctx);
    out->kv_bytes_allocated = lb_kv_cache_bytes_allocated(c->ctx);
}

// --- the KL-divergence thread ---------------------------------------------------
// Every kld_every generated tokens the generating thread posts the cache's
// tokens and its logits. This thread brings a context of the source-precision
// model up to the same tokens (only the new ones are evaluated) and compares
// the two next-token distributions at temperature 1. A sample posted while one
// is running is skipped, so the cost never backs up into generation.
//
// The reference's forward passes run beside the chat's, on another core or in
// the chat's idle time, at a low priority (KLD_NICE). Nothing mutable is
// shared: the reference is a second lb_model (its own mapping of the file and
// its own packed weights, which a switch of the chat's model never touches)
// with its own context, whose KV cache, activations, matmul scratch and
// 1-thread pool (no workers: every task runs on this thread) are its own. The
// one library both may enter is OpenBLAS (F32 and BF16 weights, batches of 16
// tokens or more, matmul_float.c), always single-threaded
// (openblas_set_num_threads(1)), the mode in which matmul_float.c already
// calls it from every pool thread at once: each call runs on its caller with
// a buffer of its own from OpenBLAS's thread-safe buffer pool. (The threaded
// BLAS calls of GPTQ and AWQ never run in a chat: profiles that need them are
// refused by lb_model_requantize_profile.)

// Open the reference: the model file again (its weights as the file has
// them, the source precision) and a context as long as the chat's. Called by
// whoever holds the reference (the KL thread, or lb_chat_measure with the
// thread kept idle).
static lb_status ref_open(lb_chat *c, lb_error *err) {
    if (c->ref_model) return LB_OK;
    lb_context_params cp = lb_context_default_params();
    cp.n_ctx = lb_context_n_ctx(c->ctx);
    cp.n_threads = 1; // background work: leave the cores to generation
    lb_status st = lb_model_open(&c->ref_model, lb_model_path(c->model), NULL, err);
    if (st == LB_OK) st = lb_context_new(&c->ref_ctx, c->ref_model, &cp, err);
    if (st != LB_OK) {
        lb_model_free(c->ref_model);
        c->ref_model = NULL;
        return st;
    }
    c->ref_logits = malloc((size_t)c->n_vocab * sizeof *c->ref_logits);
    return LB_OK;
}

static bool ref_close_wanted(lb_chat *c) {
    pthread_mutex_lock(&c->kld_mu);
    const bool wanted = c->ref_close;
    pthread_mutex_unlock(&c->kld_mu);
    return wanted;
}

static void kld_measure(lb_chat *c, struct kld_job *job) {
    lb_error err = {0};
    const double t0 = lb_time_s();
    if (!c->ref_model && ref_open(c, &err) != LB_OK) {
        set_event(c, "live KL divergence off: %s", err.msg);
        c->p.kld_every = 0;
        return;
    }
    if (!c->ref_logits) return; // out of memory: skip this sample
    if (job->n > c->ref_cap) {
        int32_t *t = realloc(c->ref_tok, (size_t)job->n * sizeof *t);
        if (!t) return;
        c->ref_tok = t;
        c->ref_cap = job->n;
    }
    int keep = 0;
    while (keep < c->ref_n && keep < job->n && c->ref_tok[keep] == job->tokens[keep]) keep++;
    if (keep == job->n && keep > 0) keep--; // re-evaluate one token to get its logits
    // In pieces, so that a switch back to the source (ref_drop) waits for one
    // piece at most, not for a whole catch-up at this thread's low priority.
    bool ok = lb_kv_cache_truncate(c->ref_ctx, keep, &err) == LB_OK;
    for (int i = keep; ok && i < job->n; i += KLD_PIECE) {
        if (ref_close_wanted(c)) ok = false;
        const int n = job->n - i < KLD_PIECE ? job->n - i : KLD_PIECE;
        if (ok) ok = lb_decode(c->ref_ctx, job->tokens + i, n, c->ref_logits, &err) == LB_OK;
    }
    if (!ok) {
        c->ref_n = 0;
        lb_kv_cache_truncate(c->ref_ctx, 0, NULL);
        return;
    }
    memcpy(c->ref_tok, job->tokens, (size_t)job->n * sizeof *job->tokens);
    c->ref_n = job->n;

    // Both rows become log-probabilities in place (argmax is unchanged by it):
    // no buffer is allocated per sample.
    lb_log_softmax(c->ref_logits, c->n_vocab, c->ref_logits);
    lb_log_softmax(job->logits, c->n_vocab, job->logits);
    const double kl = lb_kl_divergence(c->ref_logits, job->logits, c->n_vocab);
    const bool agree = lb_argmax(c->ref_logits, c->n_vocab) == lb_argmax(job->logits, c->n_vocab);

    pthread_mutex_lock(&c->st_lock);
    if (job->weights_gen == c->weights_gen) { // else the weights changed meanwhile
        c->kld_sum += kl;
        c->top1_sum += agree;
        c->st.kld_samples++;
        c->st.kld = c->kld_sum / c->st.kld_samples;
        c->st.top1 = c->top1_sum / c->st.kld_samples;
    }
    c->st.kld_cost_ms = 1e3 * (lb_time_s() - t0);
    pthread_mutex_unlock(&c->st_lock);
}

// Free the reference (the caller holds it: the KL thread, or kld_busy taken).
static void ref_close(lb_chat *c) {
    lb_context_free(c->ref_ctx);
    lb_model_free(c->ref_model);
    free(c->ref_logits);
    free(c->ref_tok);
    c->ref_ctx = NULL;
    c->ref_model = NULL;
    c->ref_logits = NULL;
    c->ref_tok = NULL;
    c->ref_n = c->ref_cap = 0;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

static void *kld_main(void *arg) {
    lb_chat *c = arg;
#ifdef __linux__
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), KLD_NICE); // this thread only; failure is harmless
#endif
    pthread_mutex_lock(&c->kld_mu);
    for (;;) {
        // A close waits while a measurement (ref_acquire) holds the reference.
        while (!c->kld_quit && !c->job.tokens && !(c->ref_close && !c->kld_busy))
            pthread_cond_wait(&c->kld_cv, &c->kld_mu);
        if (c->kld_quit) break;
        if (c->ref_close && !c->kld_busy) {
            c->ref_close = false;
            c->kld_busy = true;
            pthread_mutex_unlock(&c->kld_mu);
            ref_close(c);
            pthread_mutex_lock(&c->kld_mu);
            c->kld_busy = false;
            continue;
        }
        struct kld_job job = c->job;
        c->job = (struct kld_job){0};
        c->kld_busy = true;
        pthread_mutex_unlock(&c->kld_mu);
        kld_measure(c, &job);
        free(job.tokens);
        free(job.logits);
        pthread_mutex_lock(&c->kld_mu);
        c->kld_busy = false;
    }
    pthread_mutex_unlock(&c->kld_mu);
    return NULL;
}

// The weights are the source's again (a switch back to the file's types):
// nothing is measured there, so the reference only holds memory. Free it
// before the switch ends: now if no sample runs, else the KL thread stops its
// sample at the next piece and frees it, and this (switching) thread waits
// for that, so that the memory a switch reports is the memory after it. It is
// opened again by the next sample after a switch away. Not while a compare
// chat holds it.
static void ref_drop(lb_chat *c) {
    pthread_mutex_lock(&c->kld_mu);
    if (c->lent) {
        pthread_mutex_unlock(&c->kld_mu);
        return;
    }
    free(c->job.tokens); // a sample of the old weights: it would not count
    free(c->job.logits);
    c->job = (struct kld_job){0};
    if (c->kld_busy) {
        c->ref_close = true;
        pthread_cond_signal(&c->kld_cv);
        while (c->kld_busy || c->ref_close) { // the KL thread clears both once it has freed it
            pthread_mutex_unlock(&c->kld_mu);
            usleep(1000);
            pthread_mutex_lock(&c->kld_mu);
        }
        pthread_mutex_unlock(&c->kld_mu);
        return;
    }
    c->kld_busy = true;
    pthread_mutex_unlock(&c->kld_mu);
    ref_close(c);
    pthread_mutex_lock(&c->kld_mu);
    c->kld_busy = false;
    pthread_mutex_unlock(&c->kld_mu);
}

// Post a sample unless one is queued or running. Called from the generating thread.
static void kld_post(lb_chat *c) {
    if (!c->kld_started || c->n_tok == 0) return;
    pthread_mutex_lock(&c->st_lock);
    const bool at_source = c->st.weight_error == 0;
    const uint32_t gen = c->weights_gen;
    pthread_mutex_unlock(&c->st_lock);
    if (at_source) return; // the source against itself: nothing to measure
    pthread_mutex_lock(&c->kld_mu);
    if (!c->job.tokens && !c->kld_busy) {
        int32_t *t = malloc((size_t)c->n_tok * sizeof *t);
        float *l = malloc((size_t)c->n_vocab * sizeof *l);
        if (t && l) {
            memcpy(t, c->tok, (size_t)c->n_tok * sizeof *t);
            memcpy(l, c->logits, (size_t)c->n_vocab * sizeof *l);
            c->job = (struct kld_job){t, c->n_tok, l, gen};
            pthread_cond_signal(&c->kld_cv);
        } else {
            free(t);
            free(l);
        }
    }
    pthread_mutex_unlock(&c->kld_mu);
}

// --- lifecycle --------------------------------------------------------------------

static void ref_release(lb_chat *r);

static bool reserve_tokens(lb_chat *c, int n) {
    if (n <= c->cap_tok) return true;
    int cap = c->cap_tok ? c->cap_tok : 256;
    while (cap < n) cap *= 2;
    int32_t *t = realloc(c->tok, (size_t)cap * sizeof *t);
    if (!t) return false;
    c->tok = t;
    size_t *e = realloc(c->tok_end, (size_t)cap * sizeof *e);
    if (!e) return false;
    c->tok_end = e;
    c->cap_tok = cap;
    return true;
}

static bool reserve_text(char **buf, size_t *cap, size_t n) {
    if (n <= *cap) return true;
    size_t c2 = *cap ? *cap : 1024;
    while (c2 < n) c2 *= 2;
    char *p = realloc(*buf, c2);
    if (!p) return false;
    *buf = p;
    *cap = c2;
    return true;
}

static const char *type_label(lb_type t) { return lb_type_name(t) ? lb_type_name(t) : "?"; }

lb_status lb_chat_new(lb_chat **out, lb_model *model, const lb_chat_params *params, lb_error *err) {
    *out = NULL;
    lb_chat *c = calloc(1, sizeof *c);
    if (!c) return lb_fail(err, LB_ERR_NOMEM, "chat: out of memory");
    c->model = model;
    c->p = params ? *params : lb_chat_default_params();
    if (c->p.n_predict <= 0) c->p.n_predict = 512;
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->st_lock, NULL);
    pthread_mutex_init(&c->kld_mu, NULL);
    pthread_cond_init(&c->kld_cv, NULL);
    const lb_hparams *hp = lb_model_hparams(model);
    c->n_vocab = hp->n_vocab;
    lb_context_params cp = lb_context_default_params();
    cp.n_ctx = c->p.n_ctx;
    cp.n_threads = c->p.n_threads;
    cp.kv_type = c->p.kv_type; // lb_context_new checks it
    lb_status st = lb_context_new(&c->ctx, model, &cp, err);
    if (st != LB_OK) {
        lb_chat_free(c);
        return st;
    }
    c->logits = malloc((size_t)c->n_vocab * sizeof *c->logits);
    if (!c->logits || !reserve_tokens(c, 256) || !reserve_text(&c->text, &c->text_cap, 1024)) {
        lb_chat_free(c);
        return lb_fail(err, LB_ERR_NOMEM, "chat: out of memory");
    }
    c->text[0] = 0;
    snprintf(c->st.profile, sizeof c->st.profile, "%s", type_label(lb_model_weight_type(model)));
    for (char *s = c->st.profile; *s; s++) *s = (char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s);
    c->st.bpw = matrices_bpw(model);
    c->st.weight_bytes = lb_model_weight_bytes(model);
    c->st.weight_error = 0;
    c->st.kld = c->st.top1 = -1;
    c->st.kld_every = c->p.kld_every;
    c->st.spec_accept = -1;
    if (c->p.kld_every > 0) c->kld_started = pthread_create(&c->kld_thread, NULL, kld_main, c) == 0;
    *out = c;
    return LB_OK;
}

void lb_chat_free(lb_chat *c) {
    if (!c) return;
    if (c->rq_started) pthread_join(c->rq_thread, NULL);
    if (c->ref_owner) { // a compare chat gives its parent's reference back
        c->ref_owner->lent = false;
        ref_release(c->ref_owner);
    }
    if (c->kld_started) {
        pthread_mutex_lock(&c->kld_mu);
        c->kld_quit = true;
        pthread_cond_signal(&c->kld_cv);
        pthread_mutex_unlock(&c->kld_mu);
        pthread_join(c->kld_thread, NULL);
    }
    free(c->job.tokens);
    free(c->job.logits);
    lb_context_free(c->ref_ctx);
    lb_model_free(c->ref_model);
    free(c->ref_logits);
    free(c->ref_tok);
    lb_profile_free(c->rq_profile);
    lb_sampler_free(c->smp);
    lb_speculative_free(c->spec);
    lb_context_free(c->draft_ctx);
    lb_model_free(c->draft_model);
    lb_context_free(c->ctx);
    if (c->owns_model) lb_model_free(c->model);
    free(c->logits);
    free(c->tok);
    free(c->tok_end);
    free(c->text);
    free(c->reply);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->st_lock);
    pthread_mutex_destroy(&c->kld_mu);
    pthread_cond_destroy(&c->kld_cv);
    const bool owned = c->owns_model;
    free(c);
#ifdef __GLIBC__
    if (owned) malloc_trim(0); // a compare copy's weights: give them back now (see rq_main)
#endif
}

void lb_chat_reset(lb_chat *c) {
    pthread_mutex_lock(&c->lock);
    if (c->spec) lb_speculative_truncate(c->spec, 0, NULL); // cannot fail: 0 <= n_past
    else lb_kv_cache_truncate(c->ctx, 0, NULL);
    c->spec_i = c->spec_n = 0;
    c->n_tok = 0;
    c->text_len = 0;
    c->text[0] = 0;
    c->have_logits = false;
    pthread_mutex_unlock(&c->lock);
}

// --- a turn -------------------------------------------------------------------------

static char *render(lb_chat_template t, const lb_chat_message *msgs, int n, const char *bos, const char *eos,
                    size_t *len) {
    size_t need = lb_chat_render(t, msgs, n, true, bos, eos, NULL, 0);
    char *s = malloc(need + 1);
    if (s) *len = lb_chat_render(t, msgs, n, true, bos, eos, s, need + 1);
    return s;
}

lb_status lb_chat_begin(lb_chat *c, lb_chat_template t, const lb_chat_message *msgs, int n,
                        const lb_sampler_params *sampling, int *n_dropped, lb_error *err) {
    const double t_begin = lb_time_s();
    const lb_hparams *hp = lb_model_hparams(c->model);
    const char *bos = hp->bos_id >= 0 ? lb_token_piece(c->model, hp->bos_id) : "";
    const char *eos = hp->eos_id >= 0 ? lb_token_piece(c->model, hp->eos_id) : "";
    const int n_ctx = lb_context_n_ctx(c->ctx);
    // Room kept for the reply: n_predict, at most a quarter of the context.
    const int reserve = c->p.n_predict < n_ctx / 4 ? c->p.n_predict : n_ctx / 4;
    if (n_dropped) *n_dropped = 0;
    if (n < 1) return lb_fail(err, LB_ERR_ARG, "chat: no message to answer");

    lb_chat_message *view = malloc((size_t)n * sizeof *view);
    if (!view) return lb_fail(err, LB_ERR_NOMEM, "chat: out of memory");
    memcpy(view, msgs, (size_t)n * sizeof *view);
    const int first = (n > 0 && !strcmp(msgs[0].role, "system")) ? 1 : 0;
    int nv = n, dropped = 0;

    lb_status st = LB_OK;
    char *full = NULL;
    int32_t *ids = NULL;
    int n_ids = 0, keep = 0;
    size_t full_len = 0, off = 0;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        free(full);
        full = render(t, view, nv, bos, eos, &full_len);
        if (!full) {
            st = lb_fail(err, LB_ERR_NOMEM, "chat: out of memory");
            goto done;
        }
        // The longest cached prefix whose text the new prompt starts with.
        size_t common = 0;
        while (common < c->text_len && common < full_len && c->text[common] == full[common]) common++;
        keep = c->n_tok;
        while (keep > 0 && c->tok_end[keep - 1] > common) keep--;
        if (keep > 0 && c->tok_end[keep - 1] == full_len) {
            // Nothing new (a retry): evaluate the last chunk again for its logits.
            const size_t end = c->tok_end[keep - 1];
            while (keep > 0 && c->tok_end[keep - 1] == end) keep--;
        }
        off = keep ? c->tok_end[keep - 1] : 0;
        const bool add_bos = keep == 0 && hp->add_bos && hp->bos_id >= 0 && !(*bos && !strncmp(full, bos, strlen(bos)));
        int need = lb_tokenize(c->model, full + off, (int)(full_len - off), add_bos, true, NULL, 0);
        if (need < 0) need = -need;
        free(ids);
        ids = malloc((size_t)(need + 1) * sizeof *ids);
        if (!ids) {
            st = lb_fail(err, LB_ERR_NOMEM, "chat: out of memory");
            goto done;
        }
        n_ids = lb_tokenize(c->model, full + off, (int)(full_len - off), add_bos, true, ids, need + 1);
        if (n_ids < 0) n_ids = 0;
        if (keep + n_ids + reserve <= n_ctx) break;
        // Too long: leave out the oldest user/assistant pair after the system prompt.
        if (nv - first <= 1) {
            st = lb_fail(err, LB_ERR_ARG, "chat: the message needs %d tokens but the context holds %d (%d kept for the reply)",
                         n_ids, n_ctx, reserve);
            goto done;
        }
        const int cut = nv - first >= 3 ? 2 : 1;
        memmove(view + first, view + first + cut, (size_t)(nv - first - cut) * sizeof *view);
        nv -= cut;
        dropped += cut;
    }
    if (!reserve_tokens(c, keep + n_ids + c->p.n_predict + 1) || !reserve_text(&c->text, &c->text_cap, full_len + 1)) {
        st = lb_fail(err, LB_ERR_NOMEM, "chat: out of memory");
        goto done;
    }
    // Evaluate the new tokens after the kept prefix.
    double t0 = lb_time_s();
    if (c->spec) {
        // Its history starts with tok[0..n_tok) and keep <= n_tok.
        c->spec_i = c->spec_n = 0;
        if ((st = lb_speculative_truncate(c->spec, keep, err)) != LB_OK) goto done;
    } else if ((st = lb_kv_cache_truncate(c->ctx, keep, err)) != LB_OK) {
        goto done;
    }
    c->n_tok = keep;
    c->text_len = off;
    c->have_logits = false;
    if (n_ids > 0 && (st = c->spec ? lb_speculative_feed(c->spec, ids, n_ids, err)
                                   : lb_decode(c->ctx, ids, n_ids, c->logits, err)) != LB_OK)
        goto done;
    const double prefill_s = lb_time_s() - t0;
    for (int i = 0; i < n_ids; i++) {
        c->tok[c->n_tok] = ids[i];
        c->tok_end[c->n_tok++] = full_len;
    }
    memcpy(c->text, full, full_len + 1);
    c->text_len = full_len;
    c->have_logits = c->n_tok > 0;

    // The sampler sees the whole cached conversation for its penalties.
    lb_sampler_free(c->smp);
    c->smp = NULL;
    if ((st = lb_sampler_new(&c->smp, sampling, c->n_vocab, err)) != LB_OK) goto done;
    for (int i = 0; i < c->n_tok; i++) lb_sampler_accept(c->smp, c->tok[i]);
    if (c->spec && (st = lb_speculative_set_sampling(c->spec, sampling, err)) != LB_OK) goto done;

    c->stop = lb_chat_template_stop(t);
    c->reply_len = c->emitted = 0;
    c->prev = c->n_tok ? c->tok[c->n_tok - 1] : -1;
    c->reply_tokens = 0;
    c->done = !c->have_logits;
    c->decode_s = 0;
    c->n_decoded = 0;
    c->t_begin = t_begin;
    c->ttft = -1;
    c->seed = sampling ? sampling->seed : lb_sampler_default_params().seed;
    if (c->spec) {
        const lb_speculative_stats ss = lb_speculative_get_stats(c->spec);
        c->spec_drafted0 = ss.n_drafted;
        c->spec_accepted0 = ss.n_accepted;
    }
    pthread_mutex_lock(&c->st_lock);
    snprintf(c->reply_profile, sizeof c->reply_profile, "%s", c->st.profile);
    c->reply_bpw = c->st.bpw;
    c->st.reused_tokens = keep;
    c->st.generating = true;
    c->st.reply_tokens = 0;
    c->st.prefill_tps = prefill_s > 0 && n_ids > 0 ? n_ids / prefill_s : 0;
    c->st.prefill_tokens = n_ids;
    c->st.decode_tps = 0;
    pthread_mutex_unlock(&c->st_lock);
    if (dropped) set_event(c, "context full: left out the %d oldest messages", dropped);
    if (n_dropped) *n_dropped = dropped;
done:
    pthread_mutex_unlock(&c->lock);
    free(view);
    free(full);
    free(ids);
    return st;
}

// How much of the reply can be shown: all of it but a tail that may still
// grow into the stop text. Cuts the reply at the stop text when it is there.
static size_t safe_length(lb_chat *c, bool *stopped) {
    *stopped = false;
    if (!c->stop) return c->reply_len;
    c->reply[c->reply_len] = 0;
    const char *hit = strstr(c->reply, c->stop);
    if (hit) {
        *stopped = true;
        c->reply_len = (size_t)(hit - c->reply);
        return c->reply_len;
    }
    size_t sl = strlen(c->stop);
    for (size_t k = sl - 1; k > 0; k--)
        if (k <= c->reply_len && !memcmp(c->reply + c->reply_len - k, c->stop, k)) return c->reply_len - k;
    return c->reply_len;
}

static void emit(lb_chat *c, size_t upto, char *piece, size_t cap) {
    size_t n = upto > c->emitted ? upto - c->emitted : 0;
    if (cap == 0) return;
    if (n > cap - 1) n = cap - 1; // the caller's buffer bounds one call; the rest follows later
    memcpy(piece, c->reply + c->emitted, n);
    piece[n] = 0;
    c->emitted += n;
}

// Publish the speculative statistics. Called with `lock` held (or by the only thread).
static void spec_publish(lb_chat *c) {
    const lb_speculative_stats s = c->spec ? lb_speculative_get_stats(c->spec) : (lb_speculative_stats){0};
    pthread_mutex_lock(&c->st_lock);
    c->st.spec_accept = !c->spec ? -1 : s.n_drafted ? (double)s.n_accepted / (double)s.n_drafted : 0;
    c->st.spec_mean_accepted = s.n_steps ? (double)s.n_accepted / (double)s.n_steps : 0;
    c->st.spec_drafted = s.n_drafted;
    c->st.spec_accepted = s.n_accepted;
    c->st.spec_steps = s.n_steps;
    c->st.spec_k = s.draft_k;
    snprintf(c->st.draft, sizeof c->st.draft, "%s", c->spec ? c->draft_name : "");
    pthread_mutex_unlock(&c->st_lock);
}

// The next token of the reply with a draft: the rest of the last speculative
// step, else a new step. Called with `lock` held; the speculative history
// equals tok[0..n_tok) whenever the buffer is empty.
static lb_status spec_next(lb_chat *c, int32_t *tok, lb_error *err) {
    if (c->spec_i == c->spec_n) {
        // Never more than plain decoding could still generate: the reply's
        // remaining tokens and the context's free positions.
        int cap = c->p.n_predict - c->reply_tokens;
        const int room = lb_context_n_ctx(c->ctx) - c->n_tok;
        if (cap > room) cap = room;
        if (cap > LB_SPECULATIVE_MAX_DRAFT + 1) cap = LB_SPECULATIVE_MAX_DRAFT + 1;
        if (cap < 1) cap = 1;
        const double t0 = lb_time_s();
        c->spec_i = c->spec_n = 0;
        lb_status st = lb_speculative_step(c->spec, c->spec_buf, cap, &c->spec_n, err);
        c->decode_s += lb_time_s() - t0;
        if (st != LB_OK) return st;
        spec_publish(c);
    }
    *tok = c->spec_buf[c->spec_i++];
    return LB_OK;
}

lb_status lb_chat_step(lb_chat *c, char *piece, size_t cap, bool *done, lb_error *err) {
    if (cap) piece[0] = 0;
    if (c->done) {
        // Flush what was held back, then report the end.
        emit(c, c->reply_len, piece, cap);
        *done = c->emitted >= c->reply_len;
        return LB_OK;
    }
    *done = false;
    pthread_mutex_lock(&c->lock);
    int32_t tok = -1;
    lb_status st = c->spec ? spec_next(c, &tok, err) : LB_OK;
    if (!c->spec) tok = lb_sampler_sample(c->smp, c->logits);
    if (st != LB_OK || (!c->p.ignore_eos && lb_token_is_eog(c->model, tok))) {
        c->done = true;
    } else {
        if (!c->spec) lb_sampler_accept(c->smp, tok);
        char buf[256];
        int n = lb_token_decode(c->model, c->prev, tok, buf, sizeof buf);
        if (n < 0) n = 0;
        if (!reserve_text(&c->reply, &c->reply_cap, c->reply_len + (size_t)n + 1) ||
            !reserve_text(&c->text, &c->text_cap, c->text_len + (size_t)n + 1)) {
            pthread_mutex_unlock(&c->lock);
            return lb_fail(err, LB_ERR_NOMEM, "chat: out of memory");
        }
        memcpy(c->reply + c->reply_len, buf, (size_t)n);
        c->reply_len += (size_t)n;
        c->prev = tok;
        c->reply_tokens++;
        const bool full = c->n_tok + 1 >= lb_context_n_ctx(c->ctx);
        if (c->reply_tokens >= c->p.n_predict || full) {
            c->done = true;
            if (full) set_event(c, "context full: the reply was cut; the next turn leaves out old messages");
        } else {
            // With a draft the token is already in the speculative history
            // (spec_next counted the time).
            const double t0 = lb_time_s();
            if (!c->spec) st = lb_decode(c->ctx, &tok, 1, c->logits, err);
            if (!c->spec) c->decode_s += lb_time_s() - t0;
            if (st == LB_OK) {
                c->n_decoded++;
                c->tok[c->n_tok] = tok;
                memcpy(c->text + c->text_len, buf, (size_t)n);
                c->text_len += (size_t)n;
                c->text[c->text_len] = 0;
                c->tok_end[c->n_tok++] = c->text_len;
            } else {
                c->done = true;
            }
        }
    }
    pthread_mutex_unlock(&c->lock);
    bool stopped;
    size_t upto = safe_length(c, &stopped);
    if (stopped) c->done = true;
    if (c->done) upto = c->reply_len;
    emit(c, upto, piece, cap);
    *done = c->done && c->emitted >= c->reply_len;
    if (c->ttft < 0) c->ttft = lb_time_s() - c->t_begin;

    pthread_mutex_lock(&c->st_lock);
    c->st.reply_tokens = c->reply_tokens;
    c->st.decode_tps = c->decode_s > 0 ? c->n_decoded / c->decode_s : 0;
    pthread_mutex_unlock(&c->st_lock);
    // The live KL divergence needs the logits after the cache, which plain decoding alone keeps.
    if (st == LB_OK && !c->done && !c->spec && c->p.kld_every > 0 && c->reply_tokens % c->p.kld_every == 0)
        kld_post(c);
    return st;
}

void lb_chat_end(lb_chat *c) {
    c->done = true;
    pthread_mutex_lock(&c->st_lock);
    c->st.generating = false;
    if (c->n_decoded > 0 && c->decode_s > 0) {
        if (c->st.n_history == LB_STATS_HISTORY) {
            memmove(c->st.decode_history, c->st.decode_history + 1, (LB_STATS_HISTORY - 1) * sizeof(float));
            c->st.n_history--;
        }
        c->st.decode_history[c->st.n_history++] = (float)c->st.decode_tps;
        if (c->st.have_switch && c->st.after.decode_tps == 0) c->st.after.decode_tps = c->st.decode_tps;
    }
    pthread_mutex_unlock(&c->st_lock);
}

// --- live profile switching --------------------------------------------------------

// Mean over matrices of ‖W − Ŵ‖ / ‖W‖, W the source, Ŵ the weights in use.
static double weight_error(const lb_model *m) {
    const struct lb_weight *src[2 + 7 * 256], *cur[2 + 7 * 256];
    int n = 0;
    src[n] = &m->src_tok_embd, cur[n++] = &m->tok_embd;
    if (!m->hp.tied_output) src[n] = &m->src_output, cur[n++] = &m->output;
    for (int l = 0; l < m->hp.n_layer && n + 7 <= (int)(sizeof src / sizeof src[0]); l++) {
        const struct lb_layer *S = &m->src_layers[l], *C = &m->layers[l];
        const struct lb_weight *sw[] = {&S->wq, &S->wk, &S->wv, &S->wo, &S->w_gate, &S->w_up, &S->w_down};
        const struct lb_weight *cw[] = {&C->wq, &C->wk, &C->wv, &C->wo, &C->w_gate, &C->w_up, &C->w_down};
        for (int k = 0; k < 7; k++) src[n] = sw[k], cur[n++] = cw[k];
    }
    double sum = 0;
    int count = 0;
    float *a = NULL, *b = NULL;
    int64_t cap = 0;
    for (int i = 0; i < n; i++) {
        const struct lb_weight *s = src[i], *w = cur[i];
        count++;
        if (s->type == w->type) continue; // copied unchanged: no error
        if (s->cols > cap) {
            free(a);
            free(b);
            cap = s->cols;
            a = malloc((size_t)cap * sizeof *a);
            b = malloc((size_t)cap * sizeof *b);
            if (!a || !b) break;
        }
        double num = 0, den = 0;
        for (int64_t r = 0; r < s->rows; r++) {
            weight_row_to_float(s, r, a);
            weight_row_to_float(w, r, b); // live weights may be packed (repack.h)
            for (int64_t j = 0; j < s->cols; j++) {
                const double d = (double)a[j] - (double)b[j];
                num += d * d;
                den += (double)a[j] * (double)a[j];
            }
        }
        sum += den > 0 ? sqrt(num / den) : 0;
    }
    free(a);
    free(b);
    return count ? sum / count : 0;
}

static bool rq_progress(float fraction, void *user) {
    lb_chat *c = user;
    pthread_mutex_lock(&c->st_lock);
    c->st.switch_progress = fraction;
    pthread_mutex_unlock(&c->st_lock);
    // Before taking the lock below: a slow observer must not stall replies.
    if (c->p.on_switch_progress) c->p.on_switch_progress(fraction, c->p.on_switch_user);
    // lb_model_requantize commits the new weights right after its last progress
    // call. Take the forward lock here so that no forward pass runs during the
    // commit; rq_main releases it after recomputing the cache.
    if (fraction >= 1.0f && !c->rq_holds_lock) {
        pthread_mutex_lock(&c->lock);
        c->rq_holds_lock = true;
    }
    return true;
}

static void *rq_main(void *arg) {
    lb_chat *c = arg;
    lb_error err = {0};
    lb_status st = c->rq_profile ? lb_model_requantize_profile(c->model, c->rq_profile, rq_progress, c, &err)
                                 : lb_model_requantize(c->model, c->rq_type, rq_progress, c, &err);
    double recompute_s = 0;
    if (c->rq_holds_lock) {
        if (st == LB_OK && c->n_tok > 0) {
            // The cache was computed with the old weights: recompute it for the
            // conversation so far, and the next-token logits with it.
            // With a draft, the speculative state is rebuilt from the same tokens
            // (tokens it generated ahead with the old weights are dropped).
            const double t0 = lb_time_s();
            bool ok;
            if (c->spec) {
                c->spec_i = c->spec_n = 0;
                lb_speculative_truncate(c->spec, 0, NULL);
                ok = lb_speculative_feed(c->spec, c->tok, c->n_tok, &err) == LB_OK;
            } else {
                lb_kv_cache_truncate(c->ctx, 0, NULL);
                ok = lb_decode(c->ctx, c->tok, c->n_tok, c->logits, &err) == LB_OK;
            }
            if (!ok) {
                c->n_tok = 0;
                c->text_len = 0;
                c->text[0] = 0;
                c->have_logits = false;
                if (c->spec) lb_speculative_truncate(c->spec, 0, NULL);
                else lb_kv_cache_truncate(c->ctx, 0, NULL);
            }
            recompute_s = lb_time_s() - t0;
        }
        c->rq_holds_lock = false;
        pthread_mutex_unlock(&c->lock);
    }
    // The event is written before `switching` clears: whoever waits for the
    // switch to end then finds its outcome.
    if (st != LB_OK) {
        set_event(c, "switch to %s failed: %s", c->st.switch_to, err.msg);
        pthread_mutex_lock(&c->st_lock);
        c->st.switching = false;
        pthread_mutex_unlock(&c->st_lock);
        return NULL;
    }
    const double error = weight_error(c->model);
    if (error == 0) ref_drop(c);
#ifdef __GLIBC__
    // The old weights' buffer was just freed. glibc keeps freed memory for
    // reuse (in this thread's arena, too); give it back so that RSS shows the
    // weights in use and switching back and forth does not ratchet it up.
    malloc_trim(0);
#endif
    pthread_mutex_lock(&c->st_lock);
    snprintf(c->st.profile, sizeof c->st.profile, "%s", c->st.switch_to);
    c->st.bpw = matrices_bpw(c->model);
    c->st.weight_bytes = lb_model_weight_bytes(c->model);
    c->st.weight_error = error;
    c->weights_gen++;
    c->kld_sum = c->top1_sum = 0;
    c->st.kld_samples = 0;
    c->st.kld = c->st.top1 = -1;
    fill_side(c, &c->st.after);
    c->st.after.decode_tps = 0;
    c->st.have_switch = true;
    snprintf(c->st.event, sizeof c->st.event, "switched to %s in %.1f s (cache recomputed in %.2f s)",
             c->st.switch_to, lb_time_s() - c->rq_t0, recompute_s);
    c->st.event_seq++;
    c->st.switching = false;
    pthread_mutex_unlock(&c->st_lock);
    return NULL;
}

bool lb_chat_switching(lb_chat *c) {
    pthread_mutex_lock(&c->st_lock);
    bool s = c->st.switching;
    pthread_mutex_unlock(&c->st_lock);
    return s;
}

lb_status lb_chat_switch(lb_chat *c, const char *name, lb_error *err) {
    if (lb_chat_switching(c)) return lb_fail(err, LB_ERR_ARG, "switch: a switch to %s is still running", c->st.switch_to);
    if (c->rq_started) {
        pthread_join(c->rq_thread, NULL);
        c->rq_started = false;
    }
    lb_profile_free(c->rq_profile);
    c->rq_profile = NULL;
    lb_error perr = {0};
    if (lb_profile_find(&c->rq_profile, name, &perr) != LB_OK) {
        int t = lb_type_from_name(name);
        if (t < 0 || t == LB_TYPE_Q8_1 || t == LB_TYPE_Q8_K)
            return lb_fail(err, LB_ERR_ARG, "switch: '%s' is neither a profile nor a weight type (%s)", name, perr.msg);
        c->rq_type = (lb_type)t;
    }
    pthread_mutex_lock(&c->st_lock);
    fill_side(c, &c->st.before);
    c->st.before.decode_tps = c->st.n_history ? c->st.decode_history[c->st.n_history - 1] : 0;
    snprintf(c->st.switch_to, sizeof c->st.switch_to, "%s", name);
    c->st.switching = true;
    c->st.switch_progress = 0;
    pthread_mutex_unlock(&c->st_lock);
    c->rq_t0 = lb_time_s();
    if (pthread_create(&c->rq_thread, NULL, rq_main, c) != 0) {
        pthread_mutex_lock(&c->st_lock);
        c->st.switching = false;
        pthread_mutex_unlock(&c->st_lock);
        return lb_fail(err, LB_ERR_NOMEM, "switch: cannot start a thread");
    }
    c->rq_started = true;
    return LB_OK;
}

// --- speculative decoding -------------------------------------------------------------

// After the draft changed: evaluate the cached conversation again in the new
// state (the same tokens, so the next turn's prompt is what it would have
// been), or forget it when that fails. Called with `lock` held.
static void restore_cache(lb_chat *c, bool had_spec) {
    c->spec_i = c->spec_n = 0;
    bool ok = true;
    if (c->spec) {
        ok = lb_speculative_feed(c->spec, c->tok, c->n_tok, NULL) == LB_OK;
    } else if (had_spec) {
        // The old speculative state left a prefix of tok[] in the cache, all
        // but the last token at most: evaluate the rest for the logits.
        int32_t keep = lb_context_n_past(c->ctx);
        if (keep > c->n_tok - 1) keep = c->n_tok > 0 ? c->n_tok - 1 : 0;
        lb_kv_cache_truncate(c->ctx, keep, NULL);
        if (c->n_tok > keep) ok = lb_decode(c->ctx, c->tok + keep, c->n_tok - keep, c->logits, NULL) == LB_OK;
    }
    if (!ok) {
        if (c->spec) lb_speculative_truncate(c->spec, 0, NULL);
        else lb_kv_cache_truncate(c->ctx, 0, NULL);
        c->n_tok = 0;
        c->text_len = 0;
        c->text[0] = 0;
        c->have_logits = false;
    }
}

// Open a second model: `path` (NULL: the chat's model file) re-quantized to
// `profile` when given, reporting to `progress`. `what` opens error messages.
static lb_status open_requantized(lb_chat *c, const char *what, const char *path, const char *tokenizer,
                                  const char *profile, lb_progress_fn progress, void *user, lb_model **out,
                                  lb_error *err) {
    lb_model_params mp = {.tokenizer_path = path ? NULL : tokenizer};
    lb_status st = lb_model_open(out, path ? path : lb_model_path(c->model), &mp, err);
    if (st != LB_OK || !profile) return st;
    lb_profile *prof = NULL;
    lb_error perr = {0};
    if (lb_profile_find(&prof, profile, &perr) == LB_OK) {
        st = lb_model_requantize_profile(*out, prof, progress, user, err);
        lb_profile_free(prof);
    } else {
        const int t = lb_type_from_name(profile);
        st = t < 0 || t == LB_TYPE_Q8_1 || t == LB_TYPE_Q8_K
                 ? lb_fail(err, LB_ERR_ARG, "%s: '%s' is neither a profile nor a weight type (%s)", what, profile,
                           perr.msg)
                 : lb_model_requantize(*out, (lb_type)t, progress, user, err);
    }
    if (st != LB_OK) {
        lb_model_free(*out);
        *out = NULL;
    }
    return st;
}

lb_status lb_chat_set_draft(lb_chat *c, const char *path, const char *tokenizer, const char *profile,
                            lb_error *err) {
    lb_model *dm = NULL;
    lb_context *dctx = NULL;
    lb_speculative *spec = NULL;
    if (path || profile) {
        lb_status st = open_requantized(c, "draft", path, tokenizer, profile, NULL, NULL, &dm, err);
        if (st != LB_OK) return st;
        lb_context_params cp = lb_context_default_params();
        cp.n_ctx = lb_context_n_ctx(c->ctx);
        cp.n_threads = c->p.n_threads;
        cp.kv_type = c->p.kv_type;
        if ((st = lb_context_new(&dctx, dm, &cp, err)) != LB_OK) {
            lb_model_free(dm);
            return st;
        }
    }
    pthread_mutex_lock(&c->lock);
    if (dctx) {
        // Empties the chat's cache on success; it belongs to the new state from here on.
        lb_status st = lb_speculative_new(&spec, c->ctx, dctx, NULL, NULL, err);
        if (st != LB_OK) {
            pthread_mutex_unlock(&c->lock);
            lb_context_free(dctx);
            lb_model_free(dm);
            return st;
        }
    }
    lb_speculative *old_spec = c->spec;
    lb_context *old_ctx = c->draft_ctx;
    lb_model *old_model = c->draft_model;
    c->spec = spec;
    c->draft_ctx = dctx;
    c->draft_model = dm;
    restore_cache(c, old_spec != NULL);
    if (dm) {
        const char *file = lb_model_path(dm), *slash = strrchr(file, '/');
        snprintf(c->draft_name, sizeof c->draft_name, "%s%s%s", slash ? slash + 1 : file, profile ? " " : "",
                 profile ? profile : "");
    }
    spec_publish(c);
    pthread_mutex_unlock(&c->lock);
    lb_speculative_free(old_spec);
    lb_context_free(old_ctx);
    lb_model_free(old_model);
    if (dm) set_event(c, "draft %s: speculative decoding on", c->draft_name);
    else if (old_spec) set_event(c, "draft off");
    return LB_OK;
}

// --- the picker's list ---------------------------------------------------------------

// The base tensor type of a profile name: "q4_k_m" → Q4_K, "q8_0" → Q8_0.
static int profile_base_type(const char *name) {
    char buf[32];
    snprintf(buf, sizeof buf, "%s", name);
    int t = lb_type_from_name(buf);
    size_t n = strlen(buf);
    if (t < 0 && n > 2 && buf[n - 2] == '_') {
        buf[n - 2] = 0;
        t = lb_type_from_name(buf);
    }
    return t;
}

int lb_chat_profiles(const lb_model *m, lb_profile_choice *out, int cap) {
    static const char *names[] = {"f32", "f16", "bf16", "q8_0", "q6_k", "q5_k_m", "q5_1", "q5_0",
                                  "q4_k_m", "q4_1", "q4_0", "q3_k_m", "q2_k"};
    // Source bits per weight and element count of the matrices.
    double src_bits = 0, n_el = 0;
    const struct lb_weight *ws[2 + 7 * 256];
    int n = 0;
    ws[n++] = &m->src_tok_embd;
    if (!m->hp.tied_output) ws[n++] = &m->src_output;
    for (int l = 0; l < m->hp.n_layer && n + 7 <= (int)(sizeof ws / sizeof ws[0]); l++) {
        const struct lb_layer *S = &m->src_layers[l];
        const struct lb_weight *sw[] = {&S->wq, &S->wk, &S->wv, &S->wo, &S->w_gate, &S->w_up, &S->w_down};
        for (int k = 0; k < 7; k++) ws[n++] = sw[k];
    }
    for (int i = 0; i < n; i++) {
        src_bits += 8.0 * (double)ws[i]->rows * (double)lb_type_row_bytes(ws[i]->type, ws[i]->cols);
        n_el += (double)ws[i]->rows * (double)ws[i]->cols;
    }
    const double src_bpw = n_el > 0 ? src_bits / n_el : 0;
    const size_t other = lb_model_weight_bytes(m) - (size_t)(matrices_bpw(m) * n_el / 8.0 + 0.5);
    int k = 0;
    for (size_t j = 0; j < sizeof names / sizeof names[0] && k < cap; j++) {
        int t = profile_base_type(names[j]);
        if (t < 0 || !lb_type_name((lb_type)t)) continue;
        double bits = 0;
        for (int i = 0; i < n; i++) {
            lb_type ty = ws[i]->cols % lb_type_block_size((lb_type)t) == 0 ? (lb_type)t : ws[i]->type;
            bits += 8.0 * (double)ws[i]->rows * (double)lb_type_row_bytes(ty, ws[i]->cols);
        }
        lb_profile_choice *c = &out[k++];
        snprintf(c->name, sizeof c->name, "%s", names[j]);
        c->bpw = n_el > 0 ? bits / n_el : 0;
        c->weight_bytes = (size_t)(bits / 8.0) + other;
        c->no_gain = c->bpw >= src_bpw - 1e-6;
    }
    return k;
}

// --- answers: footers, measurement against the source, /compare ----------------------

void lb_chat_reply_stats(lb_chat *c, lb_reply_stats *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->profile, sizeof out->profile, "%s", c->reply_profile);
    out->bpw = c->reply_bpw;
    out->n_tokens = c->reply_tokens;
    out->ttft_s = c->ttft > 0 ? c->ttft : 0;
    out->decode_tps = c->decode_s > 0 ? c->n_decoded / c->decode_s : 0;
    out->spec_accept = -1;
    if (c->spec) {
        const lb_speculative_stats ss = lb_speculative_get_stats(c->spec);
        const int64_t drafted = ss.n_drafted - c->spec_drafted0;
        out->spec_accept = drafted > 0 ? (double)(ss.n_accepted - c->spec_accepted0) / (double)drafted : 0;
    }
    out->seed = c->seed;
    out->kld = out->top1 = -1;
}

// True when every matrix in use has its source type: a switch to the type a
// matrix already has copies it, so the weights are then the file's own.
static bool at_source(const lb_model *m) {
    if (m->tok_embd.type != m->src_tok_embd.type) return false;
    if (!m->hp.tied_output && m->output.type != m->src_output.type) return false;
    for (int l = 0; l < m->hp.n_layer; l++) {
        const struct lb_layer *S = &m->src_layers[l], *C = &m->layers[l];
        const struct lb_weight *sw[] = {&S->wq, &S->wk, &S->wv, &S->wo, &S->w_gate, &S->w_up, &S->w_down};
        const struct lb_weight *cw[] = {&C->wq, &C->wk, &C->wv, &C->wo, &C->w_gate, &C->w_up, &C->w_down};
        for (int k = 0; k < 7; k++)
            if (sw[k]->type != cw[k]->type) return false;
    }
    return true;
}

// The reference belongs to the KL thread of `r` between samples. Take it:
// wait until no sample runs, drop a queued one, and keep the thread's posts
// skipped (kld_busy) until ref_release.
static void ref_acquire(lb_chat *r) {
    pthread_mutex_lock(&r->kld_mu);
    while (r->kld_busy) {
        pthread_mutex_unlock(&r->kld_mu);
        usleep(1000);
        pthread_mutex_lock(&r->kld_mu);
    }
    r->kld_busy = true;
    free(r->job.tokens);
    free(r->job.logits);
    r->job = (struct kld_job){0};
    pthread_mutex_unlock(&r->kld_mu);
}

static void ref_release(lb_chat *r) {
    pthread_mutex_lock(&r->kld_mu);
    r->kld_busy = false;
    pthread_cond_signal(&r->kld_cv); // a close may be waiting for it
    pthread_mutex_unlock(&r->kld_mu);
}

// Make the reference context hold ids[0..n), evaluating only what it does
// not already share with them; room is made for `cap` tokens.
static lb_status ref_bring(lb_chat *r, const int32_t *ids, int n, int cap, lb_error *err) {
    if (cap > r->ref_cap) {
        int32_t *t = realloc(r->ref_tok, (size_t)cap * sizeof *t);
        if (!t) return lb_fail(err, LB_ERR_NOMEM, "measure: out of memory");
        r->ref_tok = t;
        r->ref_cap = cap;
    }
    int keep = 0;
    while (keep < r->ref_n && keep < n && r->ref_tok[keep] == ids[keep]) keep++;
    // The caller holds the reference (ref_acquire): no lock (see kld_measure).
    lb_status st = lb_kv_cache_truncate(r->ref_ctx, keep, err);
    if (st == LB_OK && n > keep) st = lb_forward(r->ref_ctx, ids + keep, NULL, n - keep, NULL, NULL, err);
    memcpy(r->ref_tok, ids, (size_t)n * sizeof *ids);
    r->ref_n = st == LB_OK ? n : keep;
    return st;
}

// After a failure half-way: the chat's cache is forgotten rather than trusted.
static void forget_cache(lb_chat *c) {
    if (c->spec) lb_speculative_truncate(c->spec, 0, NULL);
    else lb_kv_cache_truncate(c->ctx, 0, NULL);
    c->spec_i = c->spec_n = 0;
    c->n_tok = 0;
    c->text_len = 0;
    c->text[0] = 0;
    c->have_logits = false;
}

enum { MEASURE_ROWS = 32 }; // positions per forward pass: MEASURE_ROWS × n_vocab floats on each side

lb_status lb_chat_measure(lb_chat *c, lb_chat_template t, const lb_chat_message *msgs, int n, const char *answer,
                          lb_reply_stats *out, lb_error *err) {
    if (n < 1 || !answer) return lb_fail(err, LB_ERR_ARG, "measure: no message or no answer");
    if (lb_chat_switching(c)) return lb_fail(err, LB_ERR_ARG, "measure: a profile switch is running");
    pthread_mutex_lock(&c->st_lock);
    const bool generating = c->st.generating;
    pthread_mutex_unlock(&c->st_lock);
    if (generating) return lb_fail(err, LB_ERR_ARG, "measure: a reply is being generated (lb_chat_end first)");
    if (c->ref_owner && lb_chat_switching(c->ref_owner))
        return lb_fail(err, LB_ERR_ARG, "measure: the reference's chat is switching profile");
    if (c->lent) return lb_fail(err, LB_ERR_ARG, "measure: a compare chat holds the reference; free it first");
    const lb_hparams *hp = lb_model_hparams(c->model);
    const char *bos = hp->bos_id >= 0 ? lb_token_piece(c->model, hp->bos_id) : "";
    const char *eos = hp->eos_id >= 0 ? lb_token_piece(c->model, hp->eos_id) : "";
    const int n_ctx = lb_context_n_ctx(c->ctx);
    const size_t answer_len = strlen(answer);

    lb_chat_message *view = malloc((size_t)n * sizeof *view);
    if (!view) return lb_fail(err, LB_ERR_NOMEM, "measure: out of memory");
    memcpy(view, msgs, (size_t)n * sizeof *view);
    const int first = !strcmp(msgs[0].role, "system") ? 1 : 0;
    int nv = n;
    char *full = NULL;
    int32_t *ids = NULL, *pids = NULL;
    float *la = NULL, *lr = NULL;
    bool *want = NULL;
    size_t full_len = 0;
    int n_ids = 0, n_prompt = 0;
    lb_status st = LB_OK;
    bool holding_ref = false;
    lb_chat *r = c->ref_owner ? c->ref_owner : c;

    // The prompt as lb_chat_begin renders it, then the answer; the oldest
    // pairs after the system prompt left out until both fit.
    for (;;) {
        free(full);
        size_t plen;
        char *prompt = render(t, view, nv, bos, eos, &plen);
        full = prompt ? realloc(prompt, plen + answer_len + 1) : NULL;
        if (!full) {
            free(prompt);
            st = lb_fail(err, LB_ERR_NOMEM, "measure: out of memory");
            goto done;
        }
        memcpy(full + plen, answer, answer_len + 1);
        full_len = plen + answer_len;
        const bool add_bos = hp->add_bos && hp->bos_id >= 0 && !(*bos && !strncmp(full, bos, strlen(bos)));
        int need = lb_tokenize(c->model, full, (int)full_len, add_bos, true, NULL, 0);
        if (need < 0) need = -need;
        int pneed = lb_tokenize(c->model, full, (int)plen, add_bos, true, NULL, 0);
        if (pneed < 0) pneed = -pneed;
        free(ids);
        free(pids);
        ids = malloc((size_t)(need + 1) * sizeof *ids);
        pids = malloc((size_t)(pneed + 1) * sizeof *pids);
        if (!ids || !pids) {
            st = lb_fail(err, LB_ERR_NOMEM, "measure: out of memory");
            goto done;
        }
        n_ids = lb_tokenize(c->model, full, (int)full_len, add_bos, true, ids, need + 1);
        n_prompt = lb_tokenize(c->model, full, (int)plen, add_bos, true, pids, pneed + 1);
        if (n_ids < 0) n_ids = 0;
        if (n_prompt < 0) n_prompt = 0;
        if (n_ids < n_ctx) break;
        if (nv - first <= 1) {
            st = lb_fail(err, LB_ERR_ARG, "measure: the answer and its message need %d tokens but the context holds %d",
                         n_ids, n_ctx);
            goto done;
        }
        const int cut = nv - first >= 3 ? 2 : 1;
        memmove(view + first, view + first + cut, (size_t)(nv - first - cut) * sizeof *view);
        nv -= cut;
    }
    // The answer's tokens start where the two tokenizations part (the
    // prompt's last token may merge into the answer's first); the first
    // token has no distribution before it.
    int b = 0;
    while (b < n_prompt && b < n_ids && pids[b] == ids[b]) b++;
    if (b < 1) b = 1;
    if (b >= n_ids) { // an empty answer: nothing to measure
        out->kld = out->top1 = -1;
        out->n_measured = 0;
        goto done;
    }
    if (at_source(c->model)) {
        // The same weights as the reference, by construction: nothing to run.
        out->kld = 0;
        out->top1 = 1;
        out->n_measured = n_ids - b;
        goto done;
    }

    la = malloc((size_t)MEASURE_ROWS * (size_t)c->n_vocab * sizeof *la);
    lr = malloc((size_t)MEASURE_ROWS * (size_t)c->n_vocab * sizeof *lr);
    want = malloc(MEASURE_ROWS * sizeof *want);
    if (!la || !lr || !want || !reserve_tokens(c, n_ids + 1) || !reserve_text(&c->text, &c->text_cap, full_len + 1)) {
        st = lb_fail(err, LB_ERR_NOMEM, "measure: out of memory");
        goto done;
    }
    if (!c->ref_owner) { // a compare chat holds its parent's reference already
        ref_acquire(r);
        holding_ref = true;
    }
    if (!r->ref_model && (st = ref_open(r, err)) != LB_OK) goto done;
    if (!r->ref_logits) {
        st = lb_fail(err, LB_ERR_NOMEM, "measure: out of memory");
        goto done;
    }
    if ((st = ref_bring(r, ids, b - 1, n_ids, err)) != LB_OK) goto done;

    // The chat's cache up to the token before the answer, keeping what it shares.
    pthread_mutex_lock(&c->lock);
    int keep = 0;
    while (keep < c->n_tok && keep < b - 1 && c->tok[keep] == ids[keep]) keep++;
    int32_t k0 = keep; // where the context's cache stands
    if (c->spec) {
        // The draft state holds the target's cache one token behind its
        // history; forward passes go to the target context directly here and
        // the draft state is fed the same tokens afterwards.
        c->spec_i = c->spec_n = 0;
        st = lb_speculative_truncate(c->spec, keep, err);
        k0 = lb_context_n_past(c->ctx);
    } else {
        st = lb_kv_cache_truncate(c->ctx, keep, err);
    }
    if (st == LB_OK && b - 1 > k0) st = lb_forward(c->ctx, ids + k0, NULL, b - 1 - k0, NULL, NULL, err);
    pthread_mutex_unlock(&c->lock);
    if (st != LB_OK) goto fail;

    // Rows i0..i1 of both: row j is the distribution of ids[i0 + j + 1].
    double kl_sum = 0;
    int agree = 0, rows = 0;
    for (int i0 = b - 1; i0 < n_ids; i0 += MEASURE_ROWS) {
        const int nb = n_ids - i0 < MEASURE_ROWS ? n_ids - i0 : MEASURE_ROWS;
        int nw = 0;
        for (int j = 0; j < nb; j++) nw += want[j] = i0 + j + 1 < n_ids;
        pthread_mutex_lock(&c->lock);
        st = lb_forward(c->ctx, ids + i0, NULL, nb, want, la, err);
        pthread_mutex_unlock(&c->lock);
        if (st != LB_OK) goto fail;
        st = lb_forward(r->ref_ctx, ids + i0, NULL, nb, want, lr, err);
        if (st != LB_OK) {
            r->ref_n = 0;
            lb_kv_cache_truncate(r->ref_ctx, 0, NULL);
            goto fail;
        }
        memcpy(r->ref_tok + i0, ids + i0, (size_t)nb * sizeof *ids);
        r->ref_n = i0 + nb;
        for (int j = 0; j < nw; j++) {
            float *a = la + (size_t)j * (size_t)c->n_vocab, *q = lr + (size_t)j * (size_t)c->n_vocab;
            lb_log_softmax(a, c->n_vocab, a);
            lb_log_softmax(q, c->n_vocab, q);
            kl_sum += lb_kl_divergence(q, a, c->n_vocab);
            agree += lb_argmax(q, c->n_vocab) == lb_argmax(a, c->n_vocab);
            rows++;
        }
    }
    out->kld = rows ? kl_sum / rows : -1;
    out->top1 = rows ? (double)agree / rows : -1;
    out->n_measured = rows;

    // The cache now holds the prompt and the answer: record them, so that the
    // next turn reuses them. Tokens kept from before keep their text ends
    // where the old and new texts agree; the rest end with the whole text.
    pthread_mutex_lock(&c->lock);
    if (c->spec) {
        lb_kv_cache_truncate(c->ctx, k0, NULL);
        st = lb_speculative_feed(c->spec, ids + keep, n_ids - keep, err);
    }
    if (st == LB_OK) {
        size_t common = 0;
        while (common < c->text_len && common < full_len && c->text[common] == full[common]) common++;
        int kt = keep;
        while (kt > 0 && c->tok_end[kt - 1] > common) kt--;
        for (int i = kt; i < n_ids; i++) c->tok_end[i] = full_len;
        memcpy(c->tok, ids, (size_t)n_ids * sizeof *ids);
        c->n_tok = n_ids;
        memcpy(c->text, full, full_len + 1);
        c->text_len = full_len;
        c->have_logits = false;
        c->done = true;
    }
    pthread_mutex_unlock(&c->lock);
    if (st == LB_OK) goto done;
fail:
    pthread_mutex_lock(&c->lock);
    forget_cache(c);
    pthread_mutex_unlock(&c->lock);
done:
    if (holding_ref) ref_release(r);
    free(view);
    free(full);
    free(ids);
    free(pids);
    free(la);
    free(lr);
    free(want);
    return st;
}

lb_status lb_chat_new_compare(lb_chat **out, lb_chat *chat, const char *profile, lb_progress_fn progress, void *user,
                              lb_error *err) {
    *out = NULL;
    if (!profile || !*profile) return lb_fail(err, LB_ERR_ARG, "compare: no profile given");
    if (lb_chat_switching(chat)) return lb_fail(err, LB_ERR_ARG, "compare: a profile switch is still running");
    lb_model *m = NULL;
    lb_status st = open_requantized(chat, "compare", NULL, NULL, profile, progress, user, &m, err);
    if (st != LB_OK) return st;
    lb_chat_params p = chat->p;
    p.n_ctx = lb_context_n_ctx(chat->ctx);
    p.kld_every = 0;
    p.on_switch_progress = NULL;
    lb_chat *c;
    if ((st = lb_chat_new(&c, m, &p, err)) != LB_OK) {
        lb_model_free(m);
        return st;
    }
    c->owns_model = true;
    ref_acquire(chat); // waits for a sample in progress on chat's KL thread
    c->ref_owner = chat;
    chat->lent = true;
    pthread_mutex_lock(&c->st_lock);
    snprintf(c->st.profile, sizeof c->st.profile, "%s", profile);
    c->st.weight_error = at_source(m) ? 0 : -1; // not computed for a copy: lb_chat_measure gives the error that matters
    pthread_mutex_unlock(&c->st_lock);
    *out = c;
    return LB_OK;
}
