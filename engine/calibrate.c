/*
 * calibrate.c — running the calibrated methods for lb_quantize_file
 * (calibrate.h).
 */
#include "calibrate.h"

#include "imatrix.h"
#include "internal.h"
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct calibration {
    struct imatrix im;
    bool importance;           // quantize.c weighs errors by im
    char *imatrix_file;        // the file im came from ("" when collected here)
    struct cal_output *out;    // one per input tensor a method wrote itself
    char **out_names;          // input tensor name of each
    int n_out, cap_out;
};

static bool needs_text(const struct lb_profile *p, const lb_quantize_params *qp) {
    const enum lb_method_kind k = p->kind;
    return k == LB_METHOD_AWQ || k == LB_METHOD_RTN || k == LB_METHOD_LLM_INT8 || (p->importance && !qp->imatrix) ||
           qp->imatrix_out;
}

bool calibration_needed(const struct lb_profile *p, const lb_quantize_params *qp) {
    return needs_text(p, qp) || qp->imatrix;
}

void calibration_free(struct calibration *c) {
    if (!c) return;
    imatrix_free(&c->im);
    free(c->imatrix_file);
    for (int i = 0; i < c->n_out; i++) {
        for (int k = 0; k < c->out[i].n; k++) {
            free(c->out[i].t[k].name);
            free(c->out[i].t[k].data);
        }
        free(c->out_names[i]);
    }
    free(c->out);
    free(c->out_names);
    free(c);
}

const struct cal_output *calibration_output(const struct calibration *c, const char *name) {
    if (!c) return NULL;
    for (int i = 0; i < c->n_out; i++)
        if (!strcmp(c->out_names[i], name)) return &c->out[i];
    return NULL;
}

bool calibration_importance(const struct calibration *c, const char *name, int64_t cols, float *qw, lb_status *st,
                            lb_error *err) {
    *st = LB_OK;
    if (!c || !c->importance) return false;
    const struct imatrix_entry *e = imatrix_find(&c->im, name);
    if (!e) return false;
    if (e->cols != cols) {
        *st = lb_fail(err, LB_ERR_FORMAT, "%s: importance of '%s' has %lld columns but the tensor has %lld (an "
                      "imatrix made for another model?)", c->imatrix_file[0] ? c->imatrix_file : "calibration", name,
                      (long long)e->cols, (long long)cols);
        return false;
    }
    imatrix_entry_weights(e, qw);
    return true;
}

lb_status calibration_write_kv(const struct calibration *c, struct gguf_writer *w, lb_error *err) {
    if (!c || !c->importance) return LB_OK;
    // What llama-quantize records when given an imatrix.
    lb_status st;
    const char *file = c->imatrix_file[0] ? c->imatrix_file : (c->im.dataset ? c->im.dataset : "");
    if ((st = gguf_writer_set_str(w, "quantize.imatrix.file", file, err))) return st;
    if (c->im.dataset && (st = gguf_writer_set_str(w, "quantize.imatrix.dataset", c->im.dataset, err))) return st;
    struct gguf_value n = {.type = GGUF_INT32, .i64 = c->im.n};
    if ((st = gguf_writer_set(w, "quantize.imatrix.entries_count", &n, err))) return st;
    if (c->im.chunk_count > 0) {
        n.i64 = c->im.chunk_count;
        if ((st = gguf_writer_set(w, "quantize.imatrix.chunks_count", &n, err))) return st;
    }
    return LB_OK;
}

lb_status calibration_run(struct calibration **out, const char *in_path, const struct gguf_file *f,
                          const struct lb_profile *p, const struct lb_quant_model *qm, const lb_quantize_params *qp,
                          struct lb_threadpool *pool, lb_error *err) {
    (void)f;
    (void)qm;
    (void)pool;
    *out = NULL;
    if (!calibration_needed(p, qp)) return LB_OK;
    if (needs_text(p, qp) && !qp->calib_text)
        return lb_fail(err, LB_ERR_ARG, "profile %s needs calibration text (--calib FILE)%s", p->name,
                       p->importance ? " or an importance matrix (--imatrix FILE)" : "");
    struct calibration *c = calloc(1, sizeof *c);
    if (!c || !(c->imatrix_file = strdup(qp->imatrix ? qp->imatrix : "")))
        return free(c), lb_fail(err, LB_ERR_NOMEM, "calibration: out of memory");
    c->importance = p->importance || qp->imatrix;
    lb_status st = LB_OK;
    lb_model *m = NULL;
    if (qp->imatrix && (st = imatrix_load(qp->imatrix, &c->im, err))) goto done;
    if (needs_text(p, qp)) {
        if ((st = lb_model_open(&m, in_path, NULL, err))) goto done;
        const struct lb_calib_params cp = {
            .text_path = qp->calib_text, .n_samples = qp->calib_samples,
            .n_ctx = qp->calib_ctx > 0 ? qp->calib_ctx : 512, .n_threads = qp->n_threads,
        };
        if (!qp->imatrix && (st = imatrix_collect(m, &cp, NULL, NULL, &c->im, err))) goto done;
        if (qp->imatrix_out && (st = imatrix_save(&c->im, qp->imatrix_out, err))) goto done;
    }
done:
    lb_model_free(m);
    if (st) {
        calibration_free(c);
        return st;
    }
    *out = c;
    return LB_OK;
}
