/*
 * quantize.c — GGUF in, GGUF out: every weight matrix converted to the type a
 * profile gives it, with the engine's reference quantizers (the traits
 * table's from_float_ref), and every key/value copied.
 *
 * Which type a tensor gets follows llama.cpp's llama_tensor_get_type
 * (src/llama-quant.cpp) for the file types we write: only 2D+ tensors whose
 * name ends in "weight" and is not a norm are quantized; output.weight (and
 * token_embd.weight when the head is tied to it) goes to Q6_K unless the
 * method is Q8_0 or its rows do not fit 256-blocks (then Q8_0); the _M mixes
 * move attn_v, ffn_down and attn_output up as llama.cpp does; a row length
 * that does not fit the chosen type's blocks falls back along llama.cpp's
 * chain (Q2_K, Q3_K → Q4_0; Q4_K → Q5_0; Q5_K → Q5_1; Q6_K → Q8_0; then F16
 * when even 32-blocks do not fit); lowbit's NF4 and FP4 (blocks of 64) fall
 * back to Q5_0 as Q4_K does; lowbit's integer grid types step down to the
 * largest smaller group of the same bits and symmetry that fits the row, then
 * to one scale per row (grid.h), so that GPTQ and AWQ still calibrate them. A file holding NF4/FP4 also gets a
 * lowbit.type.<id> key describing each such type, since no other tool knows
 * those ids. Not carried over: rules for Falcon, MoE
 * (n_expert == 8) and the IQ/TQ file types, which we do not write.
 *
 * Where the time goes: the reference quantizers (k-quants search scales per
 * sub-block). Rows are split into chunks across the thread pool; each chunk
 * also decodes what it wrote, to measure ‖W − Ŵ‖ for the report, which costs
 * about a tenth of the quantization itself.
 */
#include "calibrate.h"
#include "gguf.h"
#include "grid.h"
#include "hf.h"
#include "imatrix.h"
#include "internal.h"
#include "profile.h"
#include "quants.h"
#include "sequential.h"
#include "threadpool.h"
#include "types.h"

#include <fnmatch.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LB_QUANTIZATION_VERSION 2 // ggml's GGML_QNT_VERSION, written as general.quantization_version

// ----------------------------------------------------------------------------
// Type selection

enum category { CAT_TOKEN_EMBD, CAT_OUTPUT, CAT_ATTN_V, CAT_ATTN_OUTPUT, CAT_FFN_DOWN, CAT_OTHER };

// As llama.cpp's tensor_get_category, reduced to the categories whose rules
// we carry (attn_qkv and attn_kv_b count as attn_v there too).
static enum category tensor_category(const char *name) {
    if (!strcmp(name, "output.weight")) return CAT_OUTPUT;
    if (!strcmp(name, "token_embd.weight")) return CAT_TOKEN_EMBD;
    if (strstr(name, "attn_qkv.weight") || strstr(name, "attn_kv_b.weight") || strstr(name, "attn_v.weight"))
        return CAT_ATTN_V;
    if (strstr(name, "attn_output.weight")) return CAT_ATTN_OUTPUT;
    if (strstr(name, "ffn_down")) return CAT_FFN_DOWN;
    return CAT_OTHER;
}

// llama.cpp's tensor_allows_quantization for the architectures we read:
// matrices named *weight, except norms and the MoE router.
static bool allows_quantization(const char *name, int n_dims) {
    size_t n = strlen(name);
    if (n_dims < 2 || n < 6 || strcmp(name + n - 6, "weight") != 0) return false;
    return !strstr(name, "_norm.weight") && !strstr(name, "ffn_gate_inp.weight");
}

static int layer_of(const char *name) {
    int i;
    return sscanf(name, "blk.%d.", &i) == 1 ? i : -1;
}

// The layers llama.cpp gives more bits in the _M mixes: the first and last
// eighth, and every third layer in between.
static bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// llama_tensor_get_type_impl for our file types. `t` is the method's type.
static lb_type mix_type(enum lb_ftype ftype, lb_type t, enum category cat, int layer, const struct lb_quant_model *qm,
                        int64_t ne0) {
    const int n = qm->n_layer;
    if (cat == CAT_OUTPUT || (qm->tied && cat == CAT_TOKEN_EMBD)) {
        if (ne0 % lb_type_block_size(t) != 0) return LB_TYPE_Q8_0;
        return t == LB_TYPE_Q8_0 ? t : LB_TYPE_Q6_K;
    }
    switch (cat) {
    case CAT_ATTN_V:
        if (ftype == LB_FTYPE_MOSTLY_Q2_K) t = qm->n_gqa >= 4 ? LB_TYPE_Q4_K : LB_TYPE_Q3_K;
        else if (ftype == LB_FTYPE_MOSTLY_Q3_K_M) t = layer < 2 ? LB_TYPE_Q5_K : LB_TYPE_Q4_K;
        else if ((ftype == LB_FTYPE_MOSTLY_Q4_K_M || ftype == LB_FTYPE_MOSTLY_Q5_K_M) && use_more_bits(layer, n))
            t = LB_TYPE_Q6_K;
        else if (ftype == LB_FTYPE_MOSTLY_Q4_K_S && layer < 4) t = LB_TYPE_Q5_K;
        // 70B: 8 heads share each attn_v row, so it is 8x smaller than attn_q; more bits cost little.
        if (qm->is_70b && (t == LB_TYPE_Q3_K || t == LB_TYPE_Q4_K)) t = LB_TYPE_Q5_K;
        return t;
    case CAT_FFN_DOWN:
        if (ftype == LB_FTYPE_MOSTLY_Q2_K) t = LB_TYPE_Q3_K;
        else if (ftype == LB_FTYPE_MOSTLY_Q3_K_M) t = layer < n / 16 ? LB_TYPE_Q5_K : LB_TYPE_Q4_K;
        else if ((ftype == LB_FTYPE_MOSTLY_Q4_K_M || ftype == LB_FTYPE_MOSTLY_Q5_K_M) && use_more_bits(layer, n))
            t = LB_TYPE_Q6_K;
        else if (ftype == LB_FTYPE_MOSTLY_Q4_K_S && layer < n / 8) t = LB_TYPE_Q5_K;
        // With an importance matrix llama.cpp guards the first ffn_down layers of Q4_0/Q5_0.
        else if ((ftype == LB_FTYPE_MOSTLY_Q4_0 || ftype == LB_FTYPE_MOSTLY_Q5_0) && qm->has_imatrix && layer < n / 8)
            t = ftype == LB_FTYPE_MOSTLY_Q4_0 ? LB_TYPE_Q4_1 : LB_TYPE_Q5_1;
        return t;
    case CAT_ATTN_OUTPUT:
        if (ftype == LB_FTYPE_MOSTLY_Q2_K) t = LB_TYPE_Q3_K;
        else if (ftype == LB_FTYPE_MOSTLY_Q3_K_M) t = LB_TYPE_Q4_K;
        return t;
    default:
        return t;
    }
}

// NF4_DQ on rows wider than 16384: NF4. Else the profile's fallback when it names one; else, for lowbit's integer grid
// types, the same bits and symmetry in the largest smaller group that fits
// (grid.h, lb_grid_fallback: INT4Z_G128 → INT4Z_G64 → Q4_1 → INT4Z_C), so a
// calibrated method still has a grid to work on; else llama.cpp's
// tensor_type_fallback. F16 when nothing fits.
static lb_type fallback_type(const struct lb_profile *p, lb_type t, int64_t ne0) {
    // One NF4_DQ row header holds one second-level block of at most 256
    // absmax values (quants.h); wider rows keep NF4's codes with fp16 absmax.
    if (t == LB_TYPE_NF4_DQ && ne0 % QK_BNB4 == 0 && ne0 > (int64_t)LB_NF4_DQ_MAX_ABSMAX * QK_BNB4) return LB_TYPE_NF4;
    if (lb_type_block_size(t) <= 0 || ne0 % lb_type_block_size(t) == 0) return t; // (no type: refused by the caller)
    lb_type f = t;
    if (p->fallback != LB_TYPE_COUNT) f = p->fallback;
    else if (lb_grid_fallback(t, ne0) != LB_TYPE_COUNT) return lb_grid_fallback(t, ne0);
    else if (t == LB_TYPE_Q2_K || t == LB_TYPE_Q3_K) f = LB_TYPE_Q4_0;
    else if (t == LB_TYPE_Q4_K || t == LB_TYPE_NF4 || t == LB_TYPE_FP4 || t == LB_TYPE_NF4_DQ) f = LB_TYPE_Q5_0;
    else if (t == LB_TYPE_Q5_K) f = LB_TYPE_Q5_1;
    else if (t == LB_TYPE_Q6_K) f = LB_TYPE_Q8_0;
    return ne0 % lb_type_block_size(f) == 0 ? f : LB_TYPE_F16;
}

lb_type lb_quant_tensor_type(const struct lb_profile *p, const struct lb_quant_model *qm, const char *name,
                             int n_dims, int64_t ne0, lb_type cur, enum lb_quant_rule *rule) {
    *rule = LB_RULE_COPY;
    if (!allows_quantization(name, n_dims)) return cur;
    lb_type t = p->type;
    *rule = LB_RULE_METHOD;
    for (int i = 0; i < p->n_overrides; i++)
        if (fnmatch(p->overrides[i].pattern, name, 0) == 0) {
            t = p->overrides[i].type;
            *rule = LB_RULE_OVERRIDE;
            break;
        }
    // llama.cpp applies its rules only when the method is a quantized type.
    if (*rule == LB_RULE_METHOD && !p->pure && lb_type_block_size(t) > 1) {
        lb_type m = mix_type(p->ftype, t, tensor_category(name), layer_of(name), qm, ne0);
        if (m != t) *rule = LB_RULE_MIX;
        t = m;
    }
    lb_type f = fallback_type(p, t, ne0);
    if (f != t) *rule = LB_RULE_FALLBACK;
    return f;
}

lb_status lb_quant_check_row(lb_type t, const char *file, const char *name, int64_t ne0, lb_error *err) {
    const int64_t max_row = (int64_t)LB_NF4_DQ_MAX_ABSMAX * QK_BNB4;
    if (t != LB_TYPE_NF4_DQ || ne0 <= max_row) return LB_OK;
    return lb_fail(err, LB_ERR_UNSUPPORTED, "%s: tensor '%s' has rows of %lld weights: NF4_DQ double-quantizes a row's "
                   "%lld absmax values as one block, and bitsandbytes' blocks hold at most %d (expected rows of at "
                   "most %lld weights; use profile nf4, or an override for this tensor)", file, name, (long long)ne0,
                   (long long)(ne0 / QK_BNB4), LB_NF4_DQ_MAX_ABSMAX, (long long)max_row);
}

const char *lb_quant_rule_name(enum lb_quant_rule r) {
    static const char *const names[] = {"copy", "method", "mix", "override", "fallback"};
    return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "?";
}

// ----------------------------------------------------------------------------
// Quantizing one tensor across the pool

struct quant_job {
    const char *src;          // rows × src_row bytes
    char *dst;                // rows × dst_row bytes
    lb_type from, to;
    int64_t cols, rows, rows_per_chunk;
    size_t src_row, dst_row;
    double *err2, *norm2;     // per chunk: Σ(w − ŵ)², Σw², summed in chunk order afterwards
    float *amax;              // per chunk: max |w| (first pass, per-tensor types only)
    float tensor_amax;        // max |w| over the tensor, for a per-tensor type's from_float_amax
    const float *importance;  // (cols) per-column importance, or NULL: the reference quantizer
    atomic_bool nomem;
};

// First pass for per-tensor types (INT8_T, INT4_T): max |w| of each chunk.
static void amax_chunk(void *arg, int64_t ci) {
    struct quant_job *j = arg;
    float *w = malloc((size_t)j->cols * sizeof *w);
    if (!w) {
        atomic_store(&j->nomem, true);
        return;
    }
    float m = 0.0f;
    int64_t r1 = (ci + 1) * j->rows_per_chunk < j->rows ? (ci + 1) * j->rows_per_chunk : j->rows;
    for (int64_t r = ci * j->rows_per_chunk; r < r1; r++) {
        lb_type_to_float(j->from, j->src + (size_t)r * j->src_row, w, j->cols);
        for (int64_t c = 0; c < j->cols; c++) m = fmaxf(m, fabsf(w[c]));
    }
    j->amax[ci] = m;
    free(w);
}

static void quant_chunk(void *arg, int64_t ci) {
    struct quant_job *j = arg;
    // Two rows of floats: the source decoded, then the quantized row decoded.
    float *w = malloc(2 * (size_t)j->cols * sizeof *w);
    if (!w) {
        atomic_store(&j->nomem, true);
        return;
    }
    float *back = w + j->cols;
    double e2 = 0, n2 = 0;
    int64_t r1 = (ci + 1) * j->rows_per_chunk < j->rows ? (ci + 1) * j->rows_per_chunk : j->rows;
    for (int64_t r = ci * j->rows_per_chunk; r < r1; r++) {
        char *d = j->dst + (size_t)r * j->dst_row;
        lb_type_to_float(j->from, j->src + (size_t)r * j->src_row, w, j->cols);
        const lb_from_float_amax_fn per_tensor = lb_traits(j->to)->from_float_amax;
        const lb_quantize_imatrix_fn weighted = j->importance ? lb_imatrix_quantizer(j->to) : NULL;
        if (per_tensor) per_tensor(w, d, j->cols, j->tensor_amax);
        else if (weighted) weighted(w, d, j->cols, j->importance);
        else lb_type_from_float(j->to, w, d, j->cols);
        lb_type_to_float(j->to, d, back, j->cols);
        for (int64_t c = 0; c < j->cols; c++) {
            double diff = (double)w[c] - back[c];
            e2 += diff * diff;
            n2 += (double)w[c] * w[c];
        }
    }
    j->err2[ci] = e2;
    j->norm2[ci] = n2;
    free(w);
}

// Quantize `rows` rows into a new buffer (*out, owned by the caller) and
// return the relative error ‖W − Ŵ‖/‖W‖ in *rel. With `importance` (one
// value per column), types that have an importance-weighted quantizer use it.
static lb_status quantize_tensor(struct lb_threadpool *pool, const struct gguf_tensor *t, lb_type to, int64_t rows,
                                 const float *importance, void **out, double *rel, lb_error *err) {
    struct quant_job j = {
        .src = t->data, .from = t->type, .to = to, .cols = t->ne[0], .rows = rows,
        .src_row = lb_type_row_bytes(t->type, t->ne[0]), .dst_row = lb_type_row_bytes(to, t->ne[0]),
        .importance = importance,
    };
    // Chunks of about 64k elements: small enough to balance, large enough that
    // the per-chunk malloc does not show.
    j.rows_per_chunk = 65536 / j.cols > 0 ? 65536 / j.cols : 1;
    int64_t n_chunks = (rows + j.rows_per_chunk - 1) / j.rows_per_chunk;
    j.dst = malloc(rows > 0 && j.dst_row > 0 ? (size_t)rows * j.dst_row : 1);
    j.err2 = calloc((size_t)n_chunks + 1, sizeof *j.err2);
    j.norm2 = calloc((size_t)n_chunks + 1, sizeof *j.norm2);
    atomic_init(&j.nomem, false);
    const bool per_tensor = lb_traits(to)->from_float_amax != NULL;
    if (per_tensor && (j.amax = calloc((size_t)n_chunks + 1, sizeof *j.amax))) {
        threadpool_run(pool, amax_chunk, &j, n_chunks);
        for (int64_t i = 0; i < n_chunks; i++) j.tensor_amax = fmaxf(j.tensor_amax, j.amax[i]);
    }
    const bool amax_ok = !per_tensor || j.amax;
    if (j.dst && j.err2 && j.norm2 && amax_ok && !atomic_load(&j.nomem)) threadpool_run(pool, quant_chunk, &j, n_chunks);
    free(j.amax);
    if (!j.dst || !j.err2 || !j.norm2 || !amax_ok || atomic_load(&j.nomem)) {
        free(j.dst);
        free(j.err2);
        free(j.norm2);
        return lb_fail(err, LB_ERR_NOMEM, "tensor '%s': out of memory for %zu bytes of %s", t->name,
                       (size_t)rows * j.dst_row, lb_type_name(to));
    }
    double e2 = 0, n2 = 0;
    for (int64_t i = 0; i < n_chunks; i++) e2 += j.err2[i], n2 += j.norm2[i];
    *rel = n2 > 0 ? sqrt(e2 / n2) : 0;
    free(j.err2);
    free(j.norm2);
    *out = j.dst;
    return LB_OK;
}

// ----------------------------------------------------------------------------
// The file

static int machine_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

// What llama.cpp's rules need from the metadata; missing keys leave defaults.
static void read_quant_model(const struct gguf_file *f, struct lb_quant_model *qm) {
    *qm = (struct lb_quant_model){.n_gqa = 1, .tied = !gguf_find_tensor(f, "output.weight")};
    struct gguf_str arch;
    char key[96];
    int64_t v;
    if (gguf_get_str(f, "general.architecture", &arch, NULL) != LB_OK || arch.len > 40) return;
#define ARCH_KEY(s) (snprintf(key, sizeof key, "%.*s." s, (int)arch.len, arch.data), key)
    if (gguf_find(f, ARCH_KEY("block_count")) && gguf_get_i64(f, key, &v, NULL) == LB_OK && v > 0 && v < 65536)
        qm->n_layer = (int)v;
    int64_t n_head = 0, n_head_kv = 0;
    if (gguf_find(f, ARCH_KEY("attention.head_count"))) gguf_get_i64(f, key, &n_head, NULL);
    n_head_kv = n_head;
    if (gguf_find(f, ARCH_KEY("attention.head_count_kv"))) gguf_get_i64(f, key, &n_head_kv, NULL);
#undef ARCH_KEY
    if (n_head > 0 && n_head_kv > 0) qm->n_gqa = (int)(n_head / n_head_kv);
    qm->is_70b = arch.len == 5 && !memcmp(arch.data, "llama", 5) && qm->n_layer == 80;
}

// ----------------------------------------------------------------------------
// Calibration (sequential.h): token_embd and the layers' matrices are
// quantized layer by layer on calibration inputs, GPTQ where the profile's
// method is and the rules left a tensor the method's type or its grid
// fallback (at the fallback's group); each gets its output error on those
// inputs.

// The driver reports layers done; the file's other tensors come after.
enum { CALIB_SHARE = 90 };  // percent of the progress bar given to calibration

struct progress_scale {
    lb_progress_fn fn;
    void *user;
};

static bool calib_progress(float fraction, void *user) {
    const struct progress_scale *ps = user;
    return ps->fn(fraction * CALIB_SHARE / 100.0f, ps->user);
}

static void grid_words(struct lb_grid g, char *buf, size_t cap) {
    if (g.group > 0)
        snprintf(buf, cap, "%d-bit, groups of %d, %s", g.bits, g.group, g.symmetric ? "symmetric" : "asymmetric");
    else
        snprintf(buf, cap, "%d-bit, per channel, %s", g.bits, g.symmetric ? "symmetric" : "asymmetric");
}

static lb_status calibrate(const char *in, const struct lb_profile *p, const lb_quantize_params *params,
                           const enum lb_quant_rule *rules, lb_quantize_tensor *rows, void **bufs, int n,
                           int *n_samples, lb_error *err) {
    lb_model *m = NULL;
    lb_status st = lb_model_open(&m, in, NULL, err);
    if (st) return st;
    struct seq_tensor *t = calloc((size_t)n + 1, sizeof *t);
    int *index = calloc((size_t)n + 1, sizeof *index);
    if (!t || !index) {
        st = lb_fail(err, LB_ERR_NOMEM, "calibration: out of memory");
        goto done;
    }
    int nt = 0;
    for (int i = 0; i < n; i++) {
        if (rules[i] == LB_RULE_COPY) continue;
        // GPTQ on the method's grid, or on the smaller group its fallback
        // holds where a row does not fit (lb_grid_row_grid).
        t[nt] = (struct seq_tensor){.name = rows[i].name, .type = rows[i].type_out};
        t[nt].gptq = p->kind == LB_METHOD_GPTQ && !strncmp(rows[i].name, "blk.", 4) &&
                     (rules[i] == LB_RULE_METHOD || rules[i] == LB_RULE_FALLBACK) &&
                     lb_grid_row_grid(p->gptq.grid, rows[i].type_out, rows[i].ne[0], &t[nt].grid);
        index[nt++] = i;
    }
    struct progress_scale ps = {params->progress, params->user};
    const struct seq_params sp = {
        .gptq = &p->gptq, .true_sequential = p->true_sequential,
        .calib = {.text_path = params->calib_path,
                  .n_samples = params->calib_samples > 0 ? params->calib_samples : p->calib_samples,
                  .n_ctx = params->calib_ctx > 0 ? params->calib_ctx : p->calib_ctx,
                  .n_threads = params->n_threads},
        .progress = params->progress ? calib_progress : NULL, .user = &ps,
    };
    if ((st = seq_quantize(m, t, nt, &sp, n_samples, err))) goto done;
    for (int j = 0; j < nt; j++) {
        if (!t[j].data) continue;
        lb_quantize_tensor *r = &rows[index[j]];
        bufs[index[j]] = t[j].data;
        r->rel_error = t[j].rel_error;
        r->out_error = t[j].out_error;
        r->out_error_rtn = t[j].out_error_rtn;
        r->method = t[j].gptq ? "gptq" : NULL;
    }
done:
    free(t);
    free(index);
    lb_model_free(m);
    return st;
}

void lb_quantize_stats_free(lb_quantize_stats *s) {
    if (!s) return;
    for (int i = 0; i < s->n_tensors; i++) free(s->tensors[i].name);
    free(s->tensors);
    memset(s, 0, sizeof *s);
}

lb_status lb_quantize_file(const char *in, const char *out, const lb_quantize_params *params,
                           lb_quantize_stats *stats, lb_error *err) {
    if (stats) memset(stats, 0, sizeof *stats);
    if (!in || !out || !params || !params->profile)
        return lb_fail(err, LB_ERR_ARG, "quantize: input, output and profile are required");
    const struct lb_profile *p = params->profile;
    const double t0 = lb_time_s();
    const char *file = base_name(in);

    if (lb_method_calibrated(p->method) && p->type == LB_TYPE_COUNT) {
        char grid[96];
        grid_words(p->kind == LB_METHOD_GPTQ ? p->gptq.grid : p->grid, grid, sizeof grid);
        return lb_fail(err, LB_ERR_UNSUPPORTED, "profile '%s': no tensor type holds its %s grid (%s)", p->name,
                       p->method->name, grid);
    }
    if (p->kind == LB_METHOD_GPTQ) {
        if (!params->calib_path)
            return lb_fail(err, LB_ERR_ARG, "profile '%s' (method %s) needs calibration text (no calib_path given)",
                           p->name, p->method->name);
        if (params->imatrix)
            return lb_fail(err, LB_ERR_ARG, "profile '%s' (method gptq) weighs errors by its own Hessians (expected "
                           "no imatrix file)", p->name);
    }

    struct gguf_file *f = NULL;
    struct gguf_writer *w = NULL;
    struct lb_threadpool *pool = NULL;
    struct calibration *cal = NULL;
    float *qw = NULL;
    void **bufs = NULL;
    lb_quantize_tensor *rows = NULL;
    enum lb_quant_rule *rules = NULL;
    int n_samples = 0;
    // A Hugging Face directory is read as the GGUF file it converts to.
    lb_status st = hf_is_dir(in) ? hf_open(&f, in, err) : gguf_open(&f, in, err);
    if (st) return st;
    const int n = (int)f->n_tensors;
    bufs = calloc((size_t)n + 1, sizeof *bufs);
    rows = calloc((size_t)n + 1, sizeof *rows);
    rules = calloc((size_t)n + 1, sizeof *rules);
    pool = threadpool_new(params->n_threads > 0 ? params->n_threads : machine_cores());
    w = gguf_writer_new();
    if (!bufs || !rows || !rules || !pool || !w) {
        st = lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", file);
        goto done;
    }
    struct lb_quant_model qm;
    read_quant_model(f, &qm);
    qm.has_imatrix = p->importance || params->imatrix;

    // Plan every tensor first, so that a refused input fails before any work.
    int64_t total_elems = 0, done_elems = 0;
    for (int i = 0; i < n; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        lb_quantize_tensor *r = &rows[i];
        enum lb_quant_rule rule;
        r->name = strdup(t->name);
        if (!r->name) {
            st = lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", file);
            goto done;
        }
        r->type_in = t->type;
        r->type_out = lb_quant_tensor_type(p, &qm, t->name, (int)t->n_dims, t->ne[0], t->type, &rule);
        if ((st = lb_quant_check_row(r->type_out, file, t->name, t->ne[0], err))) goto done;
        rules[i] = rule;
        r->rule = lb_quant_rule_name(rule);
        r->out_error = r->out_error_rtn = -1.0;
        r->fallback = rule == LB_RULE_FALLBACK;
        r->n_dims = (int)t->n_dims;
        r->n_elements = 1;
        for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
            r->ne[d] = t->ne[d];
            r->n_elements *= t->ne[d];
        }
        r->bytes_in = t->nbytes;
        r->bytes_out = (size_t)(r->n_elements / t->ne[0]) * lb_type_row_bytes(r->type_out, t->ne[0]);
        total_elems += r->n_elements;
        bool is_float = t->type == LB_TYPE_F32 || t->type == LB_TYPE_F16 || t->type == LB_TYPE_BF16;
        if (r->type_out != t->type && !is_float && !params->allow_requantize) {
            st = lb_fail(err, LB_ERR_UNSUPPORTED,
                         "%s: tensor '%s' is %s (expected F32, F16 or BF16; requantizing loses accuracy, "
                         "allow it with --allow-requantize)", file, t->name, lb_type_name(t->type));
            goto done;
        }
    }

    // Calibration runs before any tensor is written. The activation-aware
    // methods and importance matrices (calibrate.h) produce their tensors or
    // weights first; then, for GPTQ and for plain types quantized without
    // importance, the sequential driver (sequential.h) quantizes layer by
    // layer and measures each matrix's output error on the same text.
    if ((st = calibration_run(&cal, in, f, p, &qm, params, pool, err))) goto done;
    const bool sequential = params->calib_path &&
                            (p->kind == LB_METHOD_GPTQ || (p->kind == LB_METHOD_TYPE && !qm.has_imatrix));
    if (sequential && (st = calibrate(in, p, params, rules, rows, bufs, n, &n_samples, err))) goto done;
    int64_t max_cols = 1;
    for (int i = 0; i < n; i++) max_cols = f->tensors[i].ne[0] > max_cols ? f->tensors[i].ne[0] : max_cols;
    if (!(qw = malloc((size_t)max_cols * sizeof *qw))) {
        st = lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", file);
        goto done;
    }

    for (int i = 0; i < n; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        lb_quantize_tensor *r = &rows[i];
        const void *data = t->data;
        const struct cal_output *co = calibration_output(cal, t->name);
        if (co) {
            // Written by a calibrated method: the tensor, then its companions.
            r->type_out = co->t[0].type;
            r->rel_error = co->rel_error;
            if (!strcmp(r->rule, "copy")) r->rule = "calibrated"; // a norm with AWQ's scales folded in
            r->bytes_out = 0;
            for (int k = 0; k < co->n; k++) {
                const struct cal_tensor *ct = &co->t[k];
                if ((st = gguf_writer_add_tensor(w, ct->name, ct->type, ct->n_dims, ct->ne, ct->data, ct->nbytes, err)))
                    goto done;
                r->bytes_out += ct->nbytes;
            }
        } else {
            if (bufs[i]) {
                data = bufs[i];  // the sequential driver made it
            } else if (r->type_out != t->type) {
                const bool weighted = calibration_importance(cal, t->name, t->ne[0], qw, &st, err);
                if (st || (st = quantize_tensor(pool, t, r->type_out, r->n_elements / t->ne[0], weighted ? qw : NULL,
                                                &bufs[i], &r->rel_error, err)))
                    goto done;
                data = bufs[i];
            }
            if ((st = gguf_writer_add_tensor(w, t->name, r->type_out, t->n_dims, t->ne, data, r->bytes_out, err)))
                goto done;
        }
        done_elems += r->n_elements;
        float frac = (float)done_elems / (float)(total_elems ? total_elems : 1);
        if (sequential) frac = (CALIB_SHARE + (100 - CALIB_SHARE) * frac) / 100.0f;
        if (params->progress && !params->progress(frac, params->user)) {
            st = lb_fail(err, LB_ERR_CANCELLED, "%s: cancelled after %d of %d tensors; nothing written", file,
                         i + 1, n);
            goto done;
        }
    }

    // Metadata: the input's, then what llama-quantize sets, then a line for
    // each of lowbit's own types the file holds.
    if ((st = gguf_writer_copy_kv(w, f, err)) ||
        (st = gguf_writer_set_u32(w, "general.quantization_version", LB_QUANTIZATION_VERSION, err)) ||
        (st = gguf_writer_set_u32(w, "general.file_type", (uint32_t)p->ftype, err)) ||
        (st = calibration_write_kv(cal, w, err)))
        goto done;
    for (int t = 0; t < LB_TYPE_COUNT; t++) {
        const char *desc = lb_type_description((lb_type)t);
        bool used = false;
        for (int i = 0; i < n && desc && !used; i++) used = rows[i].type_out == (lb_type)t;
        if (!used) continue;
        char key[32];
        snprintf(key, sizeof key, "lowbit.type.%d", t);
        if ((st = gguf_writer_set_str(w, key, desc, err))) goto done;
    }
    if ((st = gguf_writer_write(w, out, err))) goto done;

    if (stats) {
        stats->n_tensors = n;
        stats->tensors = rows;
        rows = NULL;
        for (int i = 0; i < n; i++) {
            stats->n_elements += stats->tensors[i].n_elements;
            stats->bytes_in += stats->tensors[i].bytes_in;
            stats->bytes_out += stats->tensors[i].bytes_out;
            stats->n_fallback += stats->tensors[i].fallback;
        }
        stats->seconds = lb_time_s() - t0;
        if (sequential) {
            stats->calib_samples = n_samples;
            stats->calib_ctx = params->calib_ctx > 0 ? params->calib_ctx : p->calib_ctx;
        }
    }
done:
    if (rows)
        for (int i = 0; i < n; i++) free(rows[i].name);
    free(rows);
    free(rules);
    if (bufs)
        for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    gguf_writer_free(w);
    calibration_free(cal);
    free(qw);
    threadpool_free(pool);
    gguf_close(f);
    return st;
}
