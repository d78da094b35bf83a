/*
 * test_chat.c — the conversation engine on the real stories260K model,
 * through lowbit.h only: a second turn evaluates only its new tokens, a full
 * context leaves out the oldest turns but never the system prompt, and ten
 * profile switches leave the memory where ten before them did, and a draft
 * model leaves greedy replies unchanged. Skipped without the model.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "lowbit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char model_path[1024];

static int setup(void **state) {
    const char *dir = getenv("SHARED_MODELS");
    snprintf(model_path, sizeof model_path, "%s/stories260K.gguf", dir ? dir : "../shared/models");
    return 0;
}

static lb_model *open_model(void) {
    if (access(model_path, R_OK) != 0) return NULL;
    lb_model *m;
    lb_error err = {0};
    assert_int_equal(lb_model_open(&m, model_path, NULL, &err), LB_OK);
    return m;
}

// Generate a whole reply; returns it (malloc'd).
static char *reply(lb_chat *c, lb_chat_template t, const lb_chat_message *msgs, int n, int *dropped) {
    lb_error err = {0};
    lb_sampler_params sp = lb_sampler_default_params();
    sp.temp = 0;
    assert_int_equal(lb_chat_begin(c, t, msgs, n, &sp, dropped, &err), LB_OK);
    size_t len = 0;
    char *out = calloc(1, 1);
    bool done = false;
    while (!done) {
        char piece[256];
        assert_int_equal(lb_chat_step(c, piece, sizeof piece, &done, &err), LB_OK);
        size_t k = strlen(piece);
        out = realloc(out, len + k + 1);
        memcpy(out + len, piece, k + 1);
        len += k;
    }
    lb_chat_end(c);
    return out;
}

static void test_second_turn_prefills_only_new_tokens(void **state) {
    lb_model *m = open_model();
    if (!m) skip();
    lb_chat_params p = lb_chat_default_params();
    p.n_predict = 20;
    p.kld_every = 0;
    lb_chat *c;
    lb_error err = {0};
    assert_int_equal(lb_chat_new(&c, m, &p, &err), LB_OK);
    lb_chat_message msgs[3] = {{"user", "Once upon a time"}, {"assistant", ""}, {"user", " The dog ran"}};
    char *r1 = reply(c, LB_CHAT_RAW, msgs, 1, NULL);
    lb_stats st;
    lb_chat_stats(c, &st);
    const int first_prefill = st.prefill_tokens, used1 = st.n_ctx_used;
    assert_true(first_prefill >= 4);
    msgs[1].content = r1;
    char *r2 = reply(c, LB_CHAT_RAW, msgs, 3, NULL);
    lb_chat_stats(c, &st);
    // The new turn's text is " The dog ran" plus, at most, the reply's last
    // token (generated but not yet evaluated when the reply ended).
    int32_t ids[64];
    int n_new = lb_tokenize(m, " The dog ran", -1, false, false, ids, 64);
    printf("turn 1: %d prompt tokens, %d in the cache; turn 2 evaluated %d (text alone: %d)\n", first_prefill, used1,
           st.prefill_tokens, n_new);
    assert_true(st.prefill_tokens <= n_new + 2);
    assert_true(st.prefill_tokens < used1);
    free(r1);
    free(r2);
    lb_chat_free(c);
    lb_model_free(m);
}

static void test_full_context_drops_oldest_keeps_system(void **state) {
    lb_model *m = open_model();
    if (!m) skip();
    lb_chat_params p = lb_chat_default_params();
    p.n_ctx = 96;
    p.n_predict = 16;
    p.kld_every = 0;
    lb_chat *c;
    lb_error err = {0};
    assert_int_equal(lb_chat_new(&c, m, &p, &err), LB_OK);
    lb_chat_message msgs[41] = {{"system", "Lily and Tom"}};
    int n = 1, total_dropped = 0;
    char *replies[20] = {0};
    for (int turn = 0; turn < 8; turn++) {
        msgs[n++] = (lb_chat_message){"user", " One day, they went to the park."};
        int dropped;
        replies[turn] = reply(c, LB_CHAT_RAW, msgs, n, &dropped);
        msgs[n++] = (lb_chat_message){"assistant", replies[turn]};
        if (dropped) {
            // The caller leaves the dropped messages out from now on; the system prompt stays.
            memmove(msgs + 1, msgs + 1 + dropped, (size_t)(n - 1 - dropped) * sizeof *msgs);
            n -= dropped;
            total_dropped += dropped;
            lb_stats st;
            lb_chat_stats(c, &st);
            assert_non_null(strstr(st.event, "left out"));
        }
        assert_string_equal(msgs[0].role, "system");
    }
    assert_true(total_dropped >= 2);
    for (int i = 0; i < 8; i++) free(replies[i]);
    lb_chat_free(c);
    lb_model_free(m);
}

static void wait_switch(lb_chat *c) {
    for (int i = 0; i < 3000 && lb_chat_switching(c); i++) usleep(10000);
    assert_false(lb_chat_switching(c));
}

static void test_ten_switches_do_not_leak(void **state) {
    lb_model *m = open_model();
    if (!m) skip();
    lb_chat_params p = lb_chat_default_params();
    p.n_predict = 8;
    p.kld_every = 2;
    lb_chat *c;
    lb_error err = {0};
    assert_int_equal(lb_chat_new(&c, m, &p, &err), LB_OK);
    lb_chat_message msgs[1] = {{"user", "Once upon a time"}};
    // Warm up: one switch and one reply, so every buffer exists once.
    assert_int_equal(lb_chat_switch(c, "q8_0", &err), LB_OK);
    wait_switch(c);
    lb_stats st;
    for (int i = 0; i < 200; i++) { // until the background KL thread has opened its reference model
        free(reply(c, LB_CHAT_RAW, msgs, 1, NULL));
        lb_chat_stats(c, &st);
        if (st.kld_samples > 0) break;
        usleep(10000);
    }
    assert_true(st.kld_samples > 0);
    // One round of the ten switches first, so that every buffer size has been
    // allocated once (glibc keeps some freed memory; that is not a leak), then
    // ten more: RSS must come back to where the first round ended.
    static const char *names[] = {"q4_0", "f16", "q5_0", "q8_0", "q4_1", "f32", "q5_1", "q4_0", "f16", "q8_0"};
    size_t rss0 = 0;
    for (int i = 0; i < 20; i++) {
        if (i == 10) rss0 = lb_rss_bytes();
        assert_int_equal(lb_chat_switch(c, names[i % 10], &err), LB_OK);
        wait_switch(c);
        free(reply(c, LB_CHAT_RAW, msgs, 1, NULL));
        lb_chat_stats(c, &st);
        printf("  %-5s RSS %.2f MiB\n", names[i % 10], lb_rss_bytes() / 1048576.0);
        assert_string_equal(st.profile, names[i % 10]);
    }
    const size_t rss1 = lb_rss_bytes();
    printf("RSS after ten switches %.2f MiB, after ten more %.2f MiB\n", rss0 / 1048576.0, rss1 / 1048576.0);
    assert_true((double)rss1 <= 1.05 * (double)rss0);
    assert_int_equal(lb_chat_switch(c, "q9_9", &err), LB_ERR_ARG);
    lb_chat_free(c);
    lb_model_free(m);
}

// The live KL divergence runs beside generation, sharing no lock with it.
// Greedy replies are the same token for token with it sampling every 8 tokens
// and with it off, and its figures are those computed offline on the same
// tokens: the q4_0 weights and the source model, each in its own context,
// compared after the prompt and 8, 16, ... reply tokens. The chats decode on
// one thread, which leaves the KL thread a core to run beside them. A sample posted while
// one runs is skipped, so which points were measured depends on timing: the
// live means must be the means over some set of them (within the rounding of
// how the reference split its batches), and a forward pass raced by another
// thread would give numbers that match none.
enum { LIVE_N = 97, LIVE_EVERY = 8, LIVE_POINTS = (LIVE_N - 1) / LIVE_EVERY };

static void test_live_kl_beside_generation(void **state) {
    lb_model *m_on = open_model();
    if (!m_on) skip();
    lb_model *m_off = open_model(), *m_src = open_model(), *m_q = open_model();
    lb_error err = {0};
    lb_chat_params p = lb_chat_default_params();
    p.n_predict = LIVE_N;
    p.n_threads = 1;
    p.ignore_eos = true;
    lb_chat *on, *off;
    p.kld_every = LIVE_EVERY;
    assert_int_equal(lb_chat_new(&on, m_on, &p, &err), LB_OK);
    p.kld_every = 0;
    assert_int_equal(lb_chat_new(&off, m_off, &p, &err), LB_OK);
    assert_int_equal(lb_chat_switch(on, "q4_0", &err), LB_OK);
    assert_int_equal(lb_chat_switch(off, "q4_0", &err), LB_OK);
    wait_switch(on);
    wait_switch(off);
    lb_chat_message msgs[1] = {{"user", "Once upon a time"}};
    char *r_on = reply(on, LB_CHAT_RAW, msgs, 1, NULL);
    char *r_off = reply(off, LB_CHAT_RAW, msgs, 1, NULL);
    assert_string_equal(r_on, r_off);

    // Until the first sample is in (the thread runs at the lowest priority),
    // then lb_chat_measure as a barrier: it waits for a sample in progress.
    lb_stats st;
    for (int i = 0; i < 3000; i++) {
        lb_chat_stats(on, &st);
        if (st.kld_samples > 0) break;
        usleep(10000);
    }
    assert_true(st.kld_samples > 0);
    lb_reply_stats rs;
    assert_int_equal(lb_chat_measure(on, LB_CHAT_RAW, msgs, 1, " The", &rs, &err), LB_OK);
    lb_chat_stats(on, &st);

    // Offline: the chat's decoding replayed on a q4_0 copy, the reference
    // evaluating each sample point's tokens afresh.
    lb_profile *prof;
    assert_int_equal(lb_profile_find(&prof, "q4_0", &err), LB_OK);
    assert_int_equal(lb_model_requantize_profile(m_q, prof, NULL, NULL, &err), LB_OK);
    lb_profile_free(prof);
    const lb_hparams *hp = lb_model_hparams(m_q);
    const int nv = hp->n_vocab;
    lb_context *cq, *cr;
    lb_context_params cp = lb_context_default_params();
    assert_int_equal(lb_context_new(&cq, m_q, &cp, &err), LB_OK);
    cp.n_threads = 1;
    assert_int_equal(lb_context_new(&cr, m_src, &cp, &err), LB_OK);
    int32_t ids[256];
    int n = lb_tokenize(m_q, msgs[0].content, -1, hp->add_bos && hp->bos_id >= 0, true, ids, 200);
    assert_true(n > 0 && n + LIVE_N < 256);
    float *la = malloc((size_t)nv * sizeof *la), *lr = malloc((size_t)nv * sizeof *lr);
    assert_int_equal(lb_decode(cq, ids, n, la, &err), LB_OK);
    double kl[LIVE_POINTS], top1[LIVE_POINTS];
    int points = 0;
    char text[4096] = "";
    int32_t prev = n ? ids[n - 1] : -1;
    for (int k = 1; k <= LIVE_N; k++) {
        const int32_t tok = lb_argmax(la, nv);
        char piece[256];
        int len = lb_token_decode(m_q, prev, tok, piece, sizeof piece);
        piece[len > 0 ? len : 0] = 0;
        strncat(text, piece, sizeof text - strlen(text) - 1);
        prev = tok;
        if (k == LIVE_N) break;
        ids[n++] = tok;
        assert_int_equal(lb_decode(cq, &tok, 1, la, &err), LB_OK);
        if (k % LIVE_EVERY) continue;
        assert_int_equal(lb_kv_cache_truncate(cr, 0, &err), LB_OK);
        assert_int_equal(lb_decode(cr, ids, n, lr, &err), LB_OK);
        float *a = malloc((size_t)nv * sizeof *a);
        lb_log_softmax(la, nv, a);
        lb_log_softmax(lr, nv, lr);
        kl[points] = lb_kl_divergence(lr, a, nv);
        top1[points++] = lb_argmax(lr, nv) == lb_argmax(a, nv);
        free(a);
    }
    assert_int_equal(points, LIVE_POINTS);
    assert_string_equal(text, r_on); // the replay is the chat's own decoding

    int match = -1;
    for (int mask = 1; mask < 1 << LIVE_POINTS && match < 0; mask++) {
        if (__builtin_popcount((unsigned)mask) != st.kld_samples) continue;
        double sk = 0, st1 = 0;
        for (int j = 0; j < LIVE_POINTS; j++)
            if (mask >> j & 1) sk += kl[j], st1 += top1[j];
        sk /= st.kld_samples, st1 /= st.kld_samples;
        if (fabs(sk - st.kld) <= 1e-3 * sk + 1e-6 && fabs(st1 - st.top1) < 1e-9) match = mask;
    }
    printf("live KL %.6f top-1 %.3f over %d samples; offline at", st.kld, st.top1, st.kld_samples);
    for (int j = 0; j < LIVE_POINTS; j++) printf(" %d:%.6f%s", (j + 1) * LIVE_EVERY, kl[j], match >> j & 1 ? "*" : "");
    printf("\n");
    assert_true(st.kld > 0);
    assert_true(match > 0);

    free(la);
    free(lr);
    free(r_on);
    free(r_off);
    lb_context_free(cq);
    lb_context_free(cr);
    lb_chat_free(on);
    lb_chat_free(off);
    lb_model_free(m_on);
    lb_model_free(m_off);
    lb_model_free(m_src);
    lb_model_free(m_q);
}

// Two greedy turns with a self-draft (the model's own file re-quantized to
// q8_0) give the same replies, token for token, as without one.
static void test_draft_greedy_identical(void **state) {
    lb_model *m = open_model();
    if (!m) skip();
    lb_chat_params p = lb_chat_default_params();
    p.n_predict = 40;
    p.kld_every = 0;
    char *r[2][2];
    lb_stats st;
    for (int with = 0; with < 2; with++) {
        lb_chat *c;
        lb_error err = {0};
        assert_int_equal(lb_chat_new(&c, m, &p, &err), LB_OK);
        if (with) {
            assert_int_equal(lb_chat_set_draft(c, NULL, NULL, "q8_0", &err), LB_OK);
            lb_chat_stats(c, &st);
            assert_true(st.spec_accept >= 0);
            assert_non_null(strstr(st.draft, "q8_0"));
        }
        lb_chat_message msgs[3] = {{"user", "Once upon a time"}, {"assistant", ""}, {"user", " The dog ran"}};
        r[with][0] = reply(c, LB_CHAT_RAW, msgs, 1, NULL);
        msgs[1].content = r[with][0];
        r[with][1] = reply(c, LB_CHAT_RAW, msgs, 3, NULL);
        lb_chat_stats(c, &st);
        if (with) {
            printf("draft: %lld drafted, %lld accepted (%.1f%%), %.2f accepted per step\n",
                   (long long)st.spec_drafted, (long long)st.spec_accepted, 100.0 * st.spec_accept,
                   st.spec_mean_accepted);
            assert_true(st.spec_drafted > 0);
            assert_true(st.spec_accept > 0);
            // Off again: plain decoding, same replies.
            assert_int_equal(lb_chat_set_draft(c, NULL, NULL, NULL, &err), LB_OK);
            lb_chat_stats(c, &st);
            assert_true(st.spec_accept < 0);
            char *again = reply(c, LB_CHAT_RAW, msgs, 3, NULL);
            assert_string_equal(again, r[0][1]);
            free(again);
        } else {
            assert_true(st.spec_accept < 0);
        }
        lb_chat_free(c);
    }
    printf("turn 1: '%s'\nturn 2: '%s'\n", r[0][0], r[0][1]);
    assert_true(strlen(r[0][0]) > 0);
    assert_string_equal(r[1][0], r[0][0]);
    assert_string_equal(r[1][1], r[0][1]);
    for (int i = 0; i < 2; i++) free(r[i][0]), free(r[i][1]);
    lb_error err = {0};
    lb_chat *c;
    assert_int_equal(lb_chat_new(&c, m, &p, &err), LB_OK);
    assert_int_equal(lb_chat_set_draft(c, NULL, NULL, "q9_9", &err), LB_ERR_ARG);
    lb_chat_free(c);
    lb_model_free(m);
}

// Two branches of one conversation (message 3 edited) share the prompt up to
// the edit. Switching between them keeps the shared tokens in the cache and
// evaluates only the divergent tail; the reply after switching back is the
// one a fresh chat gives.
static void test_branch_switch_prefills_only_the_tail(void **state) {
    lb_model *m = open_model();
    if (!m) skip();
    lb_chat_params p = lb_chat_default_params();
    p.n_predict = 24;
    p.kld_every = 0;
    lb_chat *c;
    lb_error err = {0};
    assert_int_equal(lb_chat_new(&c, m, &p, &err), LB_OK);
    lb_session *s = lb_session_new("tree");
    assert_non_null(s);
    assert_true(lb_session_add(s, "user", "Once upon a time"));
    char *r1 = reply(c, LB_CHAT_RAW, s->msgs, s->n_msgs, NULL);
    assert_true(lb_session_add(s, "assistant", r1));
    assert_true(lb_session_add(s, "user", " The dog ran to the park."));
    char *ra = reply(c, LB_CHAT_RAW, s->msgs, s->n_msgs, NULL);
    lb_stats st;
    lb_chat_stats(c, &st);
    const int a_prefill = st.prefill_tokens, a_reused = st.reused_tokens;
    const int a_prompt = a_reused + a_prefill; // the cache right after begin
    assert_true(lb_session_add(s, "assistant", ra));
    const int node_a = s->path[2];

    // /edit 3: a sibling of message 3; its prompt shares messages 1 and 2.
    assert_true(lb_session_branch(s, 2, " The cat slept all day.") >= 0);
    assert_int_equal(s->n_msgs, 3);
    char *rb = reply(c, LB_CHAT_RAW, s->msgs, s->n_msgs, NULL);
    lb_chat_stats(c, &st);
    const int b_prefill = st.prefill_tokens, b_reused = st.reused_tokens;
    int32_t ids[256];
    const int n_tail = lb_tokenize(m, " The cat slept all day.", -1, false, false, ids, 256);
    printf("branch A: %d reused + %d prefilled; branch B: %d reused + %d prefilled (its message alone: %d tokens)\n",
           a_reused, a_prefill, b_reused, b_prefill, n_tail);
    // Everything before message 3 is shared: exactly what branch A kept
    // from its first turn. Only message 3 (and at most the token of message
    // 2 that merges with it) is evaluated.
    assert_int_equal(b_reused, a_reused);
    assert_true(b_reused > 0);
    assert_true(b_prefill >= n_tail && b_prefill <= n_tail + 2);
    assert_true(b_prefill < b_reused + b_prefill);
    assert_true(lb_session_add(s, "assistant", rb));

    // Back to branch A: again only the tail is evaluated, and the reply is
    // the one branch A got the first time (greedy, same prompt).
    assert_true(lb_session_show(s, node_a));
    assert_int_equal(s->n_msgs, 4);
    lb_session_remove(s, 3, 1); // answer message 3 again
    char *ra2 = reply(c, LB_CHAT_RAW, s->msgs, s->n_msgs, NULL);
    lb_chat_stats(c, &st);
    assert_int_equal(st.reused_tokens, a_reused);
    assert_int_equal(st.prefill_tokens, a_prefill);
    assert_int_equal(st.reused_tokens + st.prefill_tokens, a_prompt);
    assert_string_equal(ra2, ra);
    free(r1);
    free(ra);
    free(rb);
    free(ra2);
    lb_session_free(s);
    lb_chat_free(c);
    lb_model_free(m);
}

struct progress_log {
    lb_chat *chat;
    float seen[256];
    float shown[256]; // what lb_chat_stats, the panel's source, said at the same moment
    bool switching[256];
    int n;
};

static bool log_progress(float fraction, void *user) {
    struct progress_log *l = user;
    if (l->n < 256) {
        lb_stats st = {0};
        if (l->chat) lb_chat_stats(l->chat, &st);
        l->seen[l->n] = fraction;
        l->shown[l->n] = st.switch_progress;
        l->switching[l->n++] = st.switching;
    }
    return true;
}

// A switch reports its progress tensor by tensor, rising to 1, and the
// stats the panel draws from say the same fraction at each step.
static void test_switch_progress_sequence(void **state) {
    lb_model *m = open_model();
    if (!m) skip();
    struct progress_log log = {0};
    lb_chat_params p = lb_chat_default_params();
    p.kld_every = 0;
    p.on_switch_progress = log_progress;
    p.on_switch_user = &log;
    lb_chat *c;
    lb_error err = {0};
    assert_int_equal(lb_chat_new(&c, m, &p, &err), LB_OK);
    log.chat = c;
    assert_int_equal(lb_chat_switch(c, "q4_0", &err), LB_OK);
    wait_switch(c);
    const lb_hparams *hp = lb_model_hparams(m);
    const int n_matrices = 7 * hp->n_layer + 1 + !hp->tied_output;
    printf("%d progress calls for %d matrices: %.3f %.3f ... %.3f\n", log.n, n_matrices, log.seen[0], log.seen[1],
           log.seen[log.n - 1]);
    assert_int_equal(log.n, n_matrices);
    for (int i = 0; i < log.n; i++) {
        assert_true(log.seen[i] > 0 && log.seen[i] <= 1);
        if (i) assert_true(log.seen[i] > log.seen[i - 1]);
        assert_true(log.shown[i] == log.seen[i]);
        assert_true(log.switching[i]);
    }
    assert_true(log.seen[log.n - 1] == 1.0f);
    lb_stats st;
    lb_chat_stats(c, &st);
    assert_false(st.switching);
    assert_string_equal(st.profile, "q4_0");
    lb_chat_free(c);
    lb_model_free(m);
}

static char *reply_seeded(lb_chat *c, const lb_chat_message *msgs, int n, float temp, uint64_t seed) {
    lb_error err = {0};
    lb_sampler_params sp = lb_sampler_default_params();
    sp.temp = temp;
    sp.seed = seed;
    assert_int_equal(lb_chat_begin(c, LB_CHAT_RAW, msgs, n, &sp, NULL, &err), LB_OK);
    size_t len = 0;
    char *out = calloc(1, 1);
    bool done = false;
    while (!done) {
        char piece[256];
        assert_int_equal(lb_chat_step(c, piece, sizeof piece, &done, &err), LB_OK);
        size_t k = strlen(piece);
        out = realloc(out, len + k + 1);
        memcpy(out + len, piece, k + 1);
        len += k;
    }
    lb_chat_end(c);
    return out;
}

// /compare under the engine: a footer for every reply; a compare chat on a
// copy re-quantized to the source's own type replays the reply exactly (same
// seed, same sampling); one at q4_0 writes its own, whose KL divergence
// against the source is measured at every token and is not zero, while the
// source's own is 0. The same answer measured by the parent switched to q4_0
// gives the same figures: two paths to one number.
static void test_footer_measure_compare(void **state) {
    lb_model *m = open_model();
    if (!m) skip();
    lb_chat_params p = lb_chat_default_params();
    p.n_predict = 32;
    p.kld_every = 4;
    lb_chat *c;
    lb_error err = {0};
    assert_int_equal(lb_chat_new(&c, m, &p, &err), LB_OK);
    lb_chat_message msgs[1] = {{"user", "Once upon a time"}};
    const uint64_t seed = 1234567;
    char *a = reply_seeded(c, msgs, 1, 0.8f, seed);
    lb_reply_stats ra;
    lb_chat_reply_stats(c, &ra);
    printf("A (%s, %.2f bpw): %d tokens, TTFT %.2f ms, %.1f tok/s: '%s'\n", ra.profile, ra.bpw, ra.n_tokens,
           1e3 * ra.ttft_s, ra.decode_tps, a);
    assert_string_equal(ra.profile, "f32");
    assert_true(ra.bpw == 32.0);
    assert_true(ra.n_tokens > 0 && ra.n_tokens <= 32);
    assert_true(ra.ttft_s > 0 && ra.decode_tps > 0);
    assert_true(ra.spec_accept < 0);
    assert_true(ra.seed == seed);
    assert_true(ra.kld < 0);
    assert_int_equal(lb_chat_measure(c, LB_CHAT_RAW, msgs, 1, a, &ra, &err), LB_OK);
    assert_true(ra.kld == 0 && ra.top1 == 1); // the source against itself
    assert_true(ra.n_measured > 0);

    lb_chat *same;
    assert_int_equal(lb_chat_new_compare(&same, c, "f32", NULL, NULL, &err), LB_OK);
    char *a2 = reply_seeded(same, msgs, 1, 0.8f, seed);
    assert_string_equal(a2, a);
    lb_chat_free(same);

    lb_chat *q4;
    struct progress_log log = {0};
    assert_int_equal(lb_chat_new_compare(&q4, c, "q4_0", log_progress, &log, &err), LB_OK);
    const lb_hparams *hp = lb_model_hparams(m);
    assert_int_equal(log.n, 7 * hp->n_layer + 1 + !hp->tied_output); // the copy reported every matrix
    assert_true(log.seen[log.n - 1] == 1.0f);
    char *b = reply_seeded(q4, msgs, 1, 0.8f, seed);
    lb_reply_stats rb;
    lb_chat_reply_stats(q4, &rb);
    assert_int_equal(lb_chat_measure(q4, LB_CHAT_RAW, msgs, 1, b, &rb, &err), LB_OK);
    printf("B (%s, %.2f bpw): %d tokens, TTFT %.2f ms, %.1f tok/s, KL %.5f, top-1 %.3f over %d: '%s'\n",
           rb.profile, rb.bpw, rb.n_tokens, 1e3 * rb.ttft_s, rb.decode_tps, rb.kld, rb.top1, rb.n_measured, b);
    assert_string_equal(rb.profile, "q4_0");
    assert_true(rb.bpw < ra.bpw);
    assert_true(rb.seed == seed);
    assert_true(rb.n_tokens > 0 && rb.ttft_s > 0 && rb.decode_tps > 0);
    assert_true(rb.kld > 0 && rb.kld < 5);
    assert_true(rb.top1 > 0 && rb.top1 <= 1);
    assert_true(rb.n_measured > 0);
    // Measuring A under q4_0 through the compare chat, and through the parent switched to q4_0.
    lb_reply_stats via_copy = ra, via_parent = ra;
    assert_int_equal(lb_chat_measure(q4, LB_CHAT_RAW, msgs, 1, a, &via_copy, &err), LB_OK);
    // The compare chat holds the parent's reference while it lives.
    assert_int_equal(lb_chat_measure(c, LB_CHAT_RAW, msgs, 1, a, &via_parent, &err), LB_ERR_ARG);
    lb_chat_free(q4);
    assert_int_equal(lb_chat_switch(c, "q4_0", &err), LB_OK);
    wait_switch(c);
    lb_stats st;
    lb_chat_stats(c, &st);
    assert_true(st.bpw == rb.bpw); // the copy has the weights a switch gives
    assert_int_equal(lb_chat_measure(c, LB_CHAT_RAW, msgs, 1, a, &via_parent, &err), LB_OK);
    printf("A under q4_0: KL %.6f / %.6f, top-1 %.3f / %.3f over %d / %d\n", via_copy.kld, via_parent.kld,
           via_copy.top1, via_parent.top1, via_copy.n_measured, via_parent.n_measured);
    assert_true(via_copy.kld > 0);
    assert_int_equal(via_copy.n_measured, via_parent.n_measured);
    assert_true(fabs(via_copy.kld - via_parent.kld) < 1e-4 * (1 + via_copy.kld));
    assert_true(via_copy.top1 == via_parent.top1);
    // The parent's cache now holds the measured turn: the next one reuses it.
    lb_chat_message next[3] = {{"user", "Once upon a time"}, {"assistant", a}, {"user", " Then"}};
    free(reply_seeded(c, next, 3, 0, 1));
    lb_chat_stats(c, &st);
    assert_true(st.reused_tokens >= via_parent.n_measured);
    free(a);
    free(a2);
    free(b);
    lb_chat_free(c);
    lb_model_free(m);
}

// lb_chat_measure with a draft set: the same figures as without one, and
// the speculative state is left holding the measured turn, so that the next
// greedy turn is token for token the one plain decoding gives.
static void test_measure_with_draft(void **state) {
    lb_model *m[2];
    lb_chat *c[2];
    char *next[2];
    lb_reply_stats r[2];
    lb_error err = {0};
    lb_chat_params p = lb_chat_default_params();
    p.n_predict = 24;
    p.kld_every = 0;
    const char *answer = ", there was a little girl named Lily. She liked to play.";
    for (int with = 0; with < 2; with++) {
        if (!(m[with] = open_model())) skip();
        assert_int_equal(lb_chat_new(&c[with], m[with], &p, &err), LB_OK);
        assert_int_equal(lb_chat_switch(c[with], "q4_0", &err), LB_OK);
        wait_switch(c[with]);
        if (with) assert_int_equal(lb_chat_set_draft(c[with], NULL, NULL, "q8_0", &err), LB_OK);
        lb_chat_message msgs[3] = {{"user", "Once upon a time"}, {"assistant", answer}, {"user", " The dog"}};
        free(reply(c[with], LB_CHAT_RAW, msgs, 1, NULL)); // something else in the cache first
        r[with] = (lb_reply_stats){0};
        assert_int_equal(lb_chat_measure(c[with], LB_CHAT_RAW, msgs, 1, answer, &r[with], &err), LB_OK);
        next[with] = reply(c[with], LB_CHAT_RAW, msgs, 3, NULL);
        lb_stats st;
        lb_chat_stats(c[with], &st);
        assert_true(st.reused_tokens > 0); // the measured turn was kept
    }
    printf("KL %.6f / %.6f over %d / %d; next turn '%s'\n", r[0].kld, r[1].kld, r[0].n_measured, r[1].n_measured,
           next[0]);
    assert_true(r[0].kld > 0);
    assert_int_equal(r[0].n_measured, r[1].n_measured);
    assert_true(fabs(r[0].kld - r[1].kld) < 1e-4 * (1 + r[0].kld));
    assert_string_equal(next[1], next[0]);
    for (int i = 0; i < 2; i++) {
        free(next[i]);
        lb_chat_free(c[i]);
        lb_model_free(m[i]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_draft_greedy_identical),
        cmocka_unit_test(test_second_turn_prefills_only_new_tokens),
        cmocka_unit_test(test_full_context_drops_oldest_keeps_system),
        cmocka_unit_test(test_ten_switches_do_not_leak),
        cmocka_unit_test(test_live_kl_beside_generation),
        cmocka_unit_test(test_branch_switch_prefills_only_the_tail),
        cmocka_unit_test(test_switch_progress_sequence),
        cmocka_unit_test(test_footer_measure_compare),
        cmocka_unit_test(test_measure_with_draft),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
