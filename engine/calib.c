/*
 * calib.c — calibration runs (calib.h).
 */
#include "calib.h"

#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lb_status read_text(const char *path, char **out, long *len, lb_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return lb_fail(err, LB_ERR_IO, "%s: cannot open calibration text: %s", path, strerror(errno));
    char *buf = NULL;
    long cap = 0, n = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = 2 * cap + 65536 + 1;
            char *nb = realloc(buf, (size_t)cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return lb_fail(err, LB_ERR_NOMEM, "%s: out of memory reading calibration text", path);
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, 65536, f);
        n += (long)got;
        if (got < 65536) break;
    }
    const bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return lb_fail(err, LB_ERR_IO, "%s: read error in calibration text", path);
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return LB_OK;
}

lb_status calib_tokens(const struct lb_model *m, const struct lb_calib_params *p, int32_t **out, int *n_chunks,
                       lb_error *err) {
    if (p->n_ctx < 2) return lb_fail(err, LB_ERR_ARG, "calibration context %d: expected at least 2 tokens", p->n_ctx);
    char *text = NULL;
    long len = 0;
    lb_status st = read_text(p->text_path, &text, &len, err);
    if (st) return st;
    // One pass to size, one to fill (lb_tokenize returns -needed when short).
    int need = lb_tokenize(m, text, (int)len, false, false, NULL, 0);
    if (need < 0) need = -need;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(need > 0 ? need : 1));
    if (!ids) {
        free(text);
        return lb_fail(err, LB_ERR_NOMEM, "out of memory tokenizing %s", p->text_path);
    }
    const int n = lb_tokenize(m, text, (int)len, false, false, ids, need);
    free(text);
    const int32_t bos = m->hp.bos_id;
    const int per = p->n_ctx - (bos >= 0);  // BOS takes the first slot of every chunk
    int chunks = n / per;
    if (p->n_samples > 0 && chunks > p->n_samples) chunks = p->n_samples;
    if (chunks < 1) {
        free(ids);
        return lb_fail(err, LB_ERR_ARG, "%s: %d tokens, fewer than one calibration chunk of %d", p->text_path, n,
                       p->n_ctx);
    }
    int32_t *chunk = malloc(sizeof(int32_t) * (size_t)chunks * (size_t)p->n_ctx);
    if (!chunk) {
        free(ids);
        return lb_fail(err, LB_ERR_NOMEM, "out of memory for calibration chunks");
    }
    for (int c = 0; c < chunks; c++) {
        if (bos >= 0) chunk[(size_t)c * p->n_ctx] = bos;
        memcpy(chunk + (size_t)c * p->n_ctx + (bos >= 0), ids + (size_t)c * per, sizeof(int32_t) * (size_t)per);
    }
    free(ids);
    *out = chunk;
    *n_chunks = chunks;
    return LB_OK;
}

lb_status calib_run(struct lb_model *m, const struct lb_calib_params *p, const struct lb_observer *obs,
                    lb_progress_fn progress, void *user, lb_error *err) {
    int32_t *chunks;
    int n_chunks;
    lb_status st = calib_tokens(m, p, &chunks, &n_chunks, err);
    if (st) return st;
    lb_context_params cp = lb_context_default_params();
    cp.n_ctx = p->n_ctx;
    cp.n_threads = p->n_threads;
    cp.kv_type = LB_TYPE_F32;
    lb_context *ctx;
    if ((st = lb_context_new(&ctx, m, &cp, err))) {
        free(chunks);
        return st;
    }
    float *logits = malloc(sizeof(float) * (size_t)m->hp.n_vocab);
    if (!logits) st = lb_fail(err, LB_ERR_NOMEM, "out of memory for calibration logits");
    ctx->observer = obs;
    for (int c = 0; !st && c < n_chunks; c++) {
        if ((st = lb_kv_cache_truncate(ctx, 0, err))) break;
        st = lb_decode(ctx, chunks + (size_t)c * p->n_ctx, p->n_ctx, logits, err);
        if (!st && progress && !progress((float)(c + 1) / (float)n_chunks, user))
            st = lb_fail(err, LB_ERR_CANCELLED, "calibration cancelled");
    }
    free(logits);
    lb_context_free(ctx);
    free(chunks);
    return st;
}
