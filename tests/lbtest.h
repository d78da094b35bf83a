/*
 * lbtest.h — what the C tests that load real models share: where the models
 * are (../shared/models or $SHARED_MODELS), a temp directory, skipping when
 * the models are absent, and opening a model or a context or failing.
 * Include after <cmocka.h> and "lowbit.h". One test program per process, so
 * the paths are plain statics set by lbtest_init.
 */
#ifndef LBTEST_H
#define LBTEST_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char lbtest_shared[1024];
static char lbtest_tmpdir[256];

// Set the shared-models dir and make a temp dir named after the test; false on failure.
static inline bool lbtest_init(const char *test_name) {
    const char *env = getenv("SHARED_MODELS");
    snprintf(lbtest_shared, sizeof lbtest_shared, "%s", env ? env : "../shared/models");
    snprintf(lbtest_tmpdir, sizeof lbtest_tmpdir, "/tmp/lowbit-%s-XXXXXX", test_name);
    return mkdtemp(lbtest_tmpdir) != NULL;
}

// Remove the temp dir and what the tests left in it.
static inline void lbtest_cleanup(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", lbtest_tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", lbtest_tmpdir);
}

// Paths of a shared model and of a file in the temp dir; each call returns
// one of four rotating buffers, so a few can be used in one expression.
static inline const char *model_path(const char *name) {
    static char buf[4][1280];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", lbtest_shared, name);
    return p;
}

static inline const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", lbtest_tmpdir, name);
    return p;
}

static inline bool have_shared(void) { return access(model_path("stories260K.gguf"), R_OK) == 0; }

#define REQUIRE_SHARED()                                                            \
    do {                                                                            \
        if (!have_shared()) {                                                       \
            print_message("skipped: %s has no stories260K.gguf\n", lbtest_shared); \
            skip();                                                                 \
        }                                                                           \
    } while (0)

// Open a model (tokenizer: for llama2.c checkpoints) or fail the test with the engine's message.
static inline lb_model *open_model(const char *path, const char *tokenizer) {
    lb_error err = {0};
    lb_model *m = NULL;
    lb_model_params p = {.tokenizer_path = tokenizer};
    if (lb_model_open(&m, path, &p, &err) != LB_OK) fail_msg("%s", err.msg);
    return m;
}

// A context of n_ctx positions, or fail the test.
static inline lb_context *open_context(lb_model *m, int n_ctx, lb_type kv_type, int threads) {
    lb_error err = {0};
    lb_context *c = NULL;
    lb_context_params p = {.n_ctx = n_ctx, .n_threads = threads, .kv_type = kv_type};
    if (lb_context_new(&c, m, &p, &err) != LB_OK) fail_msg("%s", err.msg);
    return c;
}

#endif
