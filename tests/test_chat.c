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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_draft_greedy_identical),
        cmocka_unit_test(test_second_turn_prefills_only_new_tokens),
        cmocka_unit_test(test_full_context_drops_oldest_keeps_system),
        cmocka_unit_test(test_ten_switches_do_not_leak),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
