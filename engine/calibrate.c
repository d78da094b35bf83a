/*
 * calibrate.c — running the calibrated methods for lb_quantize_file
 * (calibrate.h).
 */
#include "calibrate.h"

#include "awq.h"
#include "imatrix.h"
#include "internal.h"
#include "llm_int8.h"
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
    return k == LB_METHOD_AWQ || k == LB_METHOD_LLM_INT8 || (p->importance && !qp->imatrix) || qp->imatrix_out;
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

// Add tensor t (taking its data) to the output of input tensor `src`.
static lb_status add_output(struct calibration *c, const char *src, struct cal_tensor t, double rel_error,
                            lb_error *err) {
    struct cal_output *o = (struct cal_output *)calibration_output(c, src);
    if (!o) {
        if (c->n_out == c->cap_out) {
            int cap = c->cap_out ? 2 * c->cap_out : 64;
            struct cal_output *go = realloc(c->out, (size_t)cap * sizeof *go);
            if (go) c->out = go;
            char **gn = go ? realloc(c->out_names, (size_t)cap * sizeof *gn) : NULL;
            if (gn) c->out_names = gn;
            if (!go || !gn) goto nomem;
            c->cap_out = cap;
        }
        if (!(c->out_names[c->n_out] = strdup(src))) goto nomem;
        o = &c->out[c->n_out++];
        memset(o, 0, sizeof *o);
        o->rel_error = rel_error;
    }
    if (LB_NEVER(o->n == CAL_MAX_OUTPUTS)) {
        free(t.data);
        free(t.name);
        return lb_fail(err, LB_ERR_ARG, "calibration: more than %d tensors for '%s'", CAL_MAX_OUTPUTS, src);
    }
    o->t[o->n++] = t;
    return LB_OK;
nomem:
    free(t.data);
    free(t.name);
    return lb_fail(err, LB_ERR_NOMEM, "calibration: out of memory");
}

// --- AWQ: the profile's type for each matrix, and the tensors it writes

struct awq_user {
    struct calibration *c;
    const struct lb_profile *p;
    const struct lb_quant_model *qm;
    const struct gguf_file *f;
};

static lb_type awq_type(void *user, const char *name, int64_t cols) {
    const struct awq_user *u = user;
    const struct gguf_tensor *t = gguf_find_tensor(u->f, name);
    enum lb_quant_rule rule;
    return lb_quant_tensor_type(u->p, u->qm, name, 2, cols, t ? t->type : LB_TYPE_F32, &rule);
}

static lb_status awq_emit(void *user, const char *name, lb_type type, uint32_t n_dims, const int64_t *ne, void *data,
                          size_t nbytes, double rel_error, lb_error *err) {
    struct awq_user *u = user;
    struct cal_tensor t = {.name = strdup(name), .type = type, .n_dims = n_dims, .data = data, .nbytes = nbytes};
    for (uint32_t i = 0; i < GGUF_MAX_DIMS; i++) t.ne[i] = i < n_dims ? ne[i] : 1;
    if (!t.name) {
        free(data);
        return lb_fail(err, LB_ERR_NOMEM, "calibration: out of memory");
    }
    return add_output(u->c, name, t, rel_error, err);
}

// --- LLM.int8: the matrices with outlier columns get the int8 rows and two companions

static lb_status llm_int8_tensor(struct calibration *c, const struct gguf_tensor *t, const struct imatrix_entry *e,
                                 float threshold, lb_error *err) {
    const int64_t rows = t->ne[1], cols = t->ne[0];
    int32_t *oc = malloc((size_t)cols * sizeof *oc);
    if (!oc) return lb_fail(err, LB_ERR_NOMEM, "llm-int8: out of memory");
    const int k = llm_int8_outliers(e->absmax, cols, threshold, oc);
    if (k == 0) { // plain vector-wise int8: the usual quantizer path writes it
        free(oc);
        return LB_OK;
    }
    const size_t rb = lb_type_row_bytes(LB_TYPE_LLM_INT8, cols);
    float *W = malloc((size_t)(rows * cols) * sizeof *W), *fc = malloc((size_t)k * sizeof *fc);
    void *q = malloc(rb * (size_t)rows);
    uint16_t *ow = malloc((size_t)(rows * k) * sizeof *ow);
    struct cal_tensor tq = {.name = strdup(t->name), .type = LB_TYPE_LLM_INT8, .n_dims = 2, .ne = {cols, rows, 1, 1},
                            .data = q, .nbytes = rb * (size_t)rows};
    char name[320];
    snprintf(name, sizeof name, "%s" LLM_INT8_COLS_SUFFIX, t->name);
    struct cal_tensor tc = {.name = strdup(name), .type = LB_TYPE_F32, .n_dims = 1, .ne = {k, 1, 1, 1}, .data = fc,
                            .nbytes = (size_t)k * sizeof *fc};
    snprintf(name, sizeof name, "%s" LLM_INT8_W_SUFFIX, t->name);
    struct cal_tensor tw = {.name = strdup(name), .type = LB_TYPE_F16, .n_dims = 2, .ne = {k, rows, 1, 1}, .data = ow,
                            .nbytes = (size_t)(rows * k) * sizeof *ow};
    lb_status st = LB_OK;
    if (!W || !fc || !q || !ow || !tq.name || !tc.name || !tw.name) {
        free(q), free(fc), free(ow), free(tq.name), free(tc.name), free(tw.name);
        st = lb_fail(err, LB_ERR_NOMEM, "llm-int8: out of memory for '%s'", t->name);
    } else {
        const size_t src_row = lb_type_row_bytes(t->type, cols);
        for (int64_t r = 0; r < rows; r++)
            lb_type_to_float(t->type, (const char *)t->data + (size_t)r * src_row, W + r * cols, cols);
        for (int i = 0; i < k; i++) fc[i] = (float)oc[i];
        const double rel = llm_int8_quantize(W, rows, cols, oc, k, q, ow);
        // add_output takes each tensor it is given, also when it fails.
        if ((st = add_output(c, t->name, tq, rel, err))) {
            free(tc.data), free(tc.name), free(tw.data), free(tw.name);
        } else if ((st = add_output(c, t->name, tc, rel, err))) {
            free(tw.data), free(tw.name);
        } else {
            st = add_output(c, t->name, tw, rel, err);
        }
    }
    free(W);
    free(oc);
    return st;
}

lb_status calibration_write_kv(const struct calibration *c, struct gguf_writer *w, lb_error *err) {
    if (!c || !c->importance) return LB_OK;
    // What llama-quantize records when given an imatrix.
    lb_status st;
    if (c->imatrix_file[0] && (st = gguf_writer_set_str(w, "quantize.imatrix.file", c->imatrix_file, err))) return st;
    if (c->im.dataset && (st = gguf_writer_set_str(w, "quantize.imatrix.dataset", c->im.dataset, err))) return st;
    if ((st = gguf_writer_set_u32(w, "quantize.imatrix.entries_count", (uint32_t)c->im.n, err))) return st;
    if (c->im.chunk_count > 0 &&
        (st = gguf_writer_set_u32(w, "quantize.imatrix.chunks_count", (uint32_t)c->im.chunk_count, err)))
        return st;
    return LB_OK;
}

lb_status calibration_run(struct calibration **out, const char *in_path, const struct gguf_file *f,
                          const struct lb_profile *p, const struct lb_quant_model *qm, const lb_quantize_params *qp,
                          struct lb_threadpool *pool, lb_error *err) {
    *out = NULL;
    // --calib with a profile that needs none is not an error here: the
    // sequential driver (sequential.h) measures output errors on it.
    if (!calibration_needed(p, qp)) return LB_OK;
    if (p->kind == LB_METHOD_LLM_INT8 && qp->imatrix)
        return lb_fail(err, LB_ERR_ARG, "profile %s finds outlier columns by max |x| on calibration text, which "
                       "imatrix files do not hold (expected --calib without --imatrix)", p->name);
    if (needs_text(p, qp) && !qp->calib_path)
        return lb_fail(err, LB_ERR_ARG, "profile %s needs calibration text (--calib FILE)%s", p->name,
                       p->importance ? " or an importance matrix (--imatrix FILE)" : "");
    struct calibration *c = calloc(1, sizeof *c);
    // The imatrix file behind the importance, if any: the one read, or the one written.
    const char *im_file = qp->imatrix ? qp->imatrix : qp->imatrix_out ? qp->imatrix_out : "";
    if (!c || !(c->imatrix_file = strdup(im_file)))
        return free(c), lb_fail(err, LB_ERR_NOMEM, "calibration: out of memory");
    c->importance = p->importance || qp->imatrix;
    lb_status st = LB_OK;
    lb_model *m = NULL;
    if (qp->imatrix && (st = imatrix_load(qp->imatrix, &c->im, err))) goto done;
    if (needs_text(p, qp)) {
        if ((st = lb_model_open(&m, in_path, NULL, err))) goto done;
        const struct lb_calib_params cp = {
            .text_path = qp->calib_path, .n_samples = qp->calib_samples > 0 ? qp->calib_samples : p->calib_samples,
            .n_ctx = qp->calib_ctx > 0 ? qp->calib_ctx : p->calib_ctx, .n_threads = qp->n_threads,
        };
        const bool stats = c->importance || p->kind == LB_METHOD_LLM_INT8 || qp->imatrix_out;
        // The progress callback sees each pass (statistics, then AWQ's layers) go from 0 to 1
        // before the tensors are written.
        if (!qp->imatrix && stats && qp->calib_path &&
            (st = imatrix_collect(m, &cp, qp->progress, qp->user, &c->im, err)))
            goto done;
        if (qp->imatrix_out && (st = imatrix_save(&c->im, qp->imatrix_out, err))) goto done;
        if (p->kind == LB_METHOD_AWQ) {
            const struct awq_params ap = {
                .grid = p->grid, .search = true, .clip = p->clip,
                .calib = cp, .progress = qp->progress, .user = qp->user,
            };
            struct awq_user u = {c, p, qm, f};
            if ((st = awq_quantize(m, &ap, awq_type, awq_emit, &u, pool, NULL, err))) goto done;
        }
        for (uint64_t i = 0; p->kind == LB_METHOD_LLM_INT8 && i < f->n_tensors; i++) {
            const struct gguf_tensor *t = &f->tensors[i];
            enum lb_quant_rule rule;
            const struct imatrix_entry *e = imatrix_find(&c->im, t->name);
            if (t->n_dims != 2 || !e || !e->absmax || e->cols != t->ne[0] ||
                lb_quant_tensor_type(p, qm, t->name, 2, t->ne[0], t->type, &rule) != LB_TYPE_LLM_INT8)
                continue;
            if ((st = llm_int8_tensor(c, t, e, p->outlier_threshold, err))) goto done;
        }
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
