/*
 * imatrix.c — collecting importance matrices and reading/writing them in
 * llama.cpp's formats (imatrix.h).
 *
 * The collector sums in double (llama-imatrix sums in float): with tens of
 * thousands of tokens a float sum loses digits, and the file stores f32
 * anyway. Importance values for the quantizers are always taken through the
 * f32 value a file would hold, so quantizing straight after collection and
 * quantizing from the saved file give the same bytes.
 */
#include "imatrix.h"

#include "gguf.h"
#include "internal.h"
#include "model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void imatrix_free(struct imatrix *im) {
    for (int i = 0; i < im->n; i++) {
        free(im->e[i].name);
        free(im->e[i].sum2);
        free(im->e[i].absmax);
    }
    free(im->e);
    free(im->dataset);
    memset(im, 0, sizeof *im);
}

const struct imatrix_entry *imatrix_find(const struct imatrix *im, const char *name) {
    for (int i = 0; i < im->n; i++)
        if (!strcmp(im->e[i].name, name)) return &im->e[i];
    return NULL;
}

void imatrix_entry_weights(const struct imatrix_entry *e, float *qw) {
    const float count = (float)e->count;
    for (int64_t j = 0; j < e->cols; j++) qw[j] = count > 0 ? (float)e->sum2[j] / count : 1.0f;
}

// A new zeroed entry (absmax too when `with_absmax`); NULL when out of memory.
static struct imatrix_entry *add_entry(struct imatrix *im, const char *name, int64_t cols, bool with_absmax) {
    if (im->n == im->cap) {
        int cap = im->cap ? 2 * im->cap : 64;
        struct imatrix_entry *grown = realloc(im->e, (size_t)cap * sizeof *grown);
        if (!grown) return NULL;
        im->e = grown;
        im->cap = cap;
    }
    struct imatrix_entry *e = &im->e[im->n];
    *e = (struct imatrix_entry){.name = strdup(name), .cols = cols, .sum2 = calloc((size_t)cols, sizeof(double))};
    if (with_absmax) e->absmax = calloc((size_t)cols, sizeof(float));
    if (!e->name || !e->sum2 || (with_absmax && !e->absmax)) {
        free(e->name);
        free(e->sum2);
        free(e->absmax);
        return NULL;
    }
    im->n++;
    return e;
}

// ----------------------------------------------------------------------------
// Collection

struct collector {
    struct imatrix *im;
    int n_layer;
    bool nomem;        // an allocation in the observer failed (it cannot return an error)
};

static void observe(void *user, int layer, const struct lb_weight *w, const float *x, int n) {
    struct collector *c = user;
    if (c->nomem || layer >= c->n_layer || !w->name || strncmp(w->name, "blk.", 4) != 0) return;
    struct imatrix_entry *e = (struct imatrix_entry *)imatrix_find(c->im, w->name);
    if (!e && !(e = add_entry(c->im, w->name, w->cols, true))) {
        c->nomem = true;
        return;
    }
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * w->cols;
        for (int64_t j = 0; j < w->cols; j++) {
            e->sum2[j] += (double)xt[j] * xt[j];
            if (fabsf(xt[j]) > e->absmax[j]) e->absmax[j] = fabsf(xt[j]);
        }
    }
    e->count += n;
}

lb_status imatrix_collect(struct lb_model *m, const struct lb_calib_params *p, lb_progress_fn progress, void *user,
                          struct imatrix *im, lb_error *err) {
    memset(im, 0, sizeof *im);
    struct collector c = {.im = im, .n_layer = m->hp.n_layer};
    const struct lb_observer obs = {.input = observe, .user = &c};
    lb_status st = calib_run(m, p, &obs, progress, user, err);
    if (!st && c.nomem) st = lb_fail(err, LB_ERR_NOMEM, "imatrix: out of memory for activation statistics");
    if (!st && !(im->dataset = strdup(p->text_path)))
        st = lb_fail(err, LB_ERR_NOMEM, "imatrix: out of memory");
    if (st) {
        imatrix_free(im);
        return st;
    }
    // Every chunk shows each matrix n_ctx tokens.
    im->chunk_count = im->n > 0 ? (int)(im->e[0].count / p->n_ctx) : 0;
    im->chunk_size = p->n_ctx;
    return LB_OK;
}

// ----------------------------------------------------------------------------
// GGUF files

static int by_name(const void *a, const void *b) {
    return strcmp((*(const struct imatrix_entry *const *)a)->name, (*(const struct imatrix_entry *const *)b)->name);
}

lb_status imatrix_save(const struct imatrix *im, const char *path, lb_error *err) {
    struct gguf_writer *w = gguf_writer_new();
    const struct imatrix_entry **order = malloc(((size_t)im->n + 1) * sizeof *order);
    float **bufs = calloc((size_t)im->n + 1, sizeof *bufs);
    lb_status st = LB_OK;
    if (!w || !order || !bufs) {
        st = lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    const char *dataset = im->dataset ? im->dataset : "";
    struct gguf_value item = {.type = GGUF_STRING, .str = {.len = strlen(dataset), .data = dataset}};
    struct gguf_value datasets = {.type = GGUF_ARRAY, .arr = {.type = GGUF_STRING, .n = 1, .items = &item}};
    if ((st = gguf_writer_set_str(w, "general.type", "imatrix", err)) ||
        (st = gguf_writer_set(w, "imatrix.datasets", &datasets, err)) ||
        (st = gguf_writer_set_u32(w, "imatrix.chunk_count", (uint32_t)im->chunk_count, err)) ||
        (st = gguf_writer_set_u32(w, "imatrix.chunk_size", (uint32_t)im->chunk_size, err)))
        goto done;
    // llama-imatrix writes the entries sorted by name.
    for (int i = 0; i < im->n; i++) order[i] = &im->e[i];
    qsort(order, (size_t)im->n, sizeof *order, by_name);
    for (int i = 0; i < im->n; i++) {
        const struct imatrix_entry *e = order[i];
        if (!(bufs[i] = malloc(((size_t)e->cols + 1) * sizeof(float)))) {
            st = lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        for (int64_t j = 0; j < e->cols; j++) bufs[i][j] = (float)e->sum2[j];
        bufs[i][e->cols] = (float)e->count;
        char name[256];
        const int64_t ne_sums[2] = {e->cols, 1}, ne_counts[2] = {1, 1};
        snprintf(name, sizeof name, "%s.in_sum2", e->name);
        if ((st = gguf_writer_add_tensor(w, name, LB_TYPE_F32, 2, ne_sums, bufs[i], (size_t)e->cols * sizeof(float),
                                         err)))
            goto done;
        snprintf(name, sizeof name, "%s.counts", e->name);
        if ((st = gguf_writer_add_tensor(w, name, LB_TYPE_F32, 2, ne_counts, bufs[i] + e->cols, sizeof(float), err)))
            goto done;
    }
    st = gguf_writer_write(w, path, err);
done:
    if (bufs)
        for (int i = 0; i < im->n; i++) free(bufs[i]);
    free(bufs);
    free(order);
    gguf_writer_free(w);
    return st;
}

// The name before `suffix` when `s` ends in it, into out; false otherwise.
static bool strip_suffix(const char *s, const char *suffix, char *out, size_t cap) {
    size_t n = strlen(s), k = strlen(suffix);
    if (n <= k || strcmp(s + n - k, suffix) != 0 || n - k >= cap) return false;
    memcpy(out, s, n - k);
    out[n - k] = 0;
    return true;
}

static lb_status load_gguf(const char *path, struct imatrix *im, lb_error *err) {
    struct gguf_file *f;
    lb_status st = gguf_open(&f, path, err);
    if (st) return st;
    char name[256], other[300];
    for (uint64_t i = 0; i < f->n_tensors && !st; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        if (!strip_suffix(t->name, ".in_sum2", name, sizeof name)) continue;
        snprintf(other, sizeof other, "%s.counts", name);
        const struct gguf_tensor *c = gguf_find_tensor(f, other);
        if (!c) {
            st = lb_fail(err, LB_ERR_FORMAT, "%s: tensor '%s' has no '%s' beside it", path, t->name, other);
        } else if (t->type != LB_TYPE_F32 || c->type != LB_TYPE_F32) {
            st = lb_fail(err, LB_ERR_FORMAT, "%s: tensors '%s' and '%s' are %s and %s (expected F32)", path, t->name,
                         other, lb_type_name(t->type), lb_type_name(c->type));
        } else if (t->ne[1] != 1 || t->ne[2] != 1 || t->ne[3] != 1 || c->ne[0] != 1 || c->ne[1] != 1) {
            st = lb_fail(err, LB_ERR_UNSUPPORTED, "%s: tensor '%s' holds %lld matrices (expected 1: lowbit has no "
                         "mixture-of-experts models)", path, t->name, (long long)t->ne[1]);
        } else {
            struct imatrix_entry *e = add_entry(im, name, t->ne[0], false);
            if (!e) {
                st = lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            const float *sums = t->data;
            for (int64_t j = 0; j < e->cols; j++) e->sum2[j] = sums[j];
            e->count = lroundf(*(const float *)c->data);
        }
    }
    if (!st && im->n == 0) st = lb_fail(err, LB_ERR_FORMAT, "%s: no NAME.in_sum2 tensors (expected an imatrix file)", path);
    int64_t v;
    if (!st && gguf_find(f, "imatrix.chunk_count") && gguf_get_i64(f, "imatrix.chunk_count", &v, NULL) == LB_OK)
        im->chunk_count = (int)v;
    if (!st && gguf_find(f, "imatrix.chunk_size") && gguf_get_i64(f, "imatrix.chunk_size", &v, NULL) == LB_OK)
        im->chunk_size = (int)v;
    const struct gguf_value *ds;
    if (!st && gguf_find(f, "imatrix.datasets") && gguf_get_arr(f, "imatrix.datasets", GGUF_STRING, &ds, NULL) == LB_OK &&
        ds->arr.n > 0)
        im->dataset = strndup(ds->arr.items[0].str.data, ds->arr.items[0].str.len);
    gguf_close(f);
    return st;
}

// ----------------------------------------------------------------------------
// Legacy .dat files: i32 n_entries, then per entry i32 name length, name,
// i32 ncall, i32 nval, f32 values[nval] (mean x² × ncall); optionally i32
// chunk count, i32 length and the dataset name.

static bool read_i32(FILE *fp, int32_t *v) { return fread(v, sizeof *v, 1, fp) == 1; }

static lb_status load_legacy(const char *path, struct imatrix *im, lb_error *err) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return lb_fail(err, LB_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    lb_status st = LB_OK;
    int32_t n_entries;
    if (!read_i32(fp, &n_entries) || n_entries < 1 || n_entries > 1000000)
        st = lb_fail(err, LB_ERR_FORMAT, "%s: entry count unreadable or not in 1..1000000 (expected an imatrix file)",
                     path);
    for (int32_t i = 0; !st && i < n_entries; i++) {
        int32_t len, ncall, nval;
        char name[512];
        if (!read_i32(fp, &len) || len < 1 || len >= (int32_t)sizeof name || fread(name, 1, (size_t)len, fp) != (size_t)len ||
            !read_i32(fp, &ncall) || !read_i32(fp, &nval) || nval < 1 || nval > (1 << 24)) {
            st = lb_fail(err, LB_ERR_FORMAT, "%s: entry %d truncated or malformed (expected name, ncall, nval, values)",
                         path, i);
            break;
        }
        name[len] = 0;
        struct imatrix_entry *e = add_entry(im, name, nval, false);
        float *vals = malloc((size_t)nval * sizeof *vals);
        if (!e || !vals) {
            free(vals);
            st = lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        if (fread(vals, sizeof *vals, (size_t)nval, fp) != (size_t)nval)
            st = lb_fail(err, LB_ERR_FORMAT, "%s: entry '%s': %d values truncated", path, name, nval);
        for (int32_t j = 0; !st && j < nval; j++) e->sum2[j] = vals[j];
        e->count = ncall > 0 ? ncall : 1; // llama.cpp divides by ncall, or takes the values as they are
        free(vals);
    }
    int32_t chunks, dlen;
    if (!st && read_i32(fp, &chunks)) {
        im->chunk_count = chunks;
        char ds[1024];
        if (read_i32(fp, &dlen) && dlen > 0 && dlen < (int32_t)sizeof ds && fread(ds, 1, (size_t)dlen, fp) == (size_t)dlen) {
            ds[dlen] = 0;
            im->dataset = strdup(ds);
        }
    }
    fclose(fp);
    return st;
}

lb_status imatrix_load(const char *path, struct imatrix *im, lb_error *err) {
    memset(im, 0, sizeof *im);
    FILE *fp = fopen(path, "rb");
    if (!fp) return lb_fail(err, LB_ERR_IO, "%s: cannot open imatrix: %s", path, strerror(errno));
    char magic[4] = {0};
    const bool gguf = fread(magic, 1, 4, fp) == 4 && !memcmp(magic, "GGUF", 4);
    fclose(fp);
    lb_status st = gguf ? load_gguf(path, im, err) : load_legacy(path, im, err);
    if (st) imatrix_free(im);
    return st;
}
