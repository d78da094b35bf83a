/*
 * model.c — opening a model: GGUF metadata to hyperparameters, tensors to
 * weight matrices, plus the model-level public calls (info, tokenizer
 * wrappers, live re-quantization).
 */
#include "model.h"

#include "gguf.h"
#include "hf.h"
#include "internal.h"
#include "llm_int8.h"
#include "profile.h"
#include "repack.h"
#include "tokenizer.h"
#include "types.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

// ----------------------------------------------------------------------------
// Small helpers

float *model_alloc_f32(struct lb_model *m, size_t n) {
    // Norm and bias vectors are few and small; each gets its own block, chained
    // through the first word so lb_model_free can release them all.
    float **block = malloc(sizeof(float *) + n * sizeof(float));
    if (!block) return NULL;
    block[0] = m->norm_buf;
    m->norm_buf = (float *)block;
    return (float *)(block + 1);
}

static void free_f32_pool(struct lb_model *m) {
    float *p = m->norm_buf;
    while (p) {
        float *next = ((float **)p)[0];
        free(p);
        p = next;
    }
    m->norm_buf = NULL;
}

// The re-quantized weights live in an anonymous mapping, not the heap: its
// pages cost memory once written and go back whole when it is freed. From
// the heap, freeing one buffer of weights raised glibc's mmap threshold to
// its size, the next switch's buffer then came from an arena that kept its
// pages, and RSS after a few switches stood well above a fresh start's.
static char *requant_buf_new(size_t n) {
    void *p = mmap(NULL, n ? n : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void requant_buf_free(void *p, size_t n) {
    if (p) munmap(p, n ? n : 1);
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

// ----------------------------------------------------------------------------
// GGUF: hyperparameters

struct gguf_loader {
    struct lb_model *m;
    const struct gguf_file *f;
    const char *file; // base name, for messages
    char key[160];
};

static const char *arch_key(struct gguf_loader *L, const char *suffix) {
    snprintf(L->key, sizeof L->key, "%s.%s", L->m->hp.arch, suffix);
    return L->key;
}

// An integer hyperparameter in [lo, hi]; `dflt` < 0 means required.
static lb_status get_int(struct gguf_loader *L, const char *suffix, int64_t dflt, int64_t lo, int64_t hi,
                         int32_t *out, lb_error *err) {
    const char *key = arch_key(L, suffix);
    int64_t v;
    if (!gguf_find(L->f, key)) {
        if (dflt < 0) return lb_fail(err, LB_ERR_MISSING, "%s: key '%s' missing (required for %s models)",
                                     L->file, key, L->m->hp.arch);
        *out = (int32_t)dflt;
        return LB_OK;
    }
    lb_status st = gguf_get_i64(L->f, key, &v, err);
    if (st != LB_OK) return st;
    if (v < lo || v > hi)
        return lb_fail(err, LB_ERR_FORMAT, "%s: key '%s' is %lld (expected %lld..%lld)", L->file, key,
                       (long long)v, (long long)lo, (long long)hi);
    *out = (int32_t)v;
    return LB_OK;
}

static lb_status get_float(struct gguf_loader *L, const char *suffix, double dflt, double lo, double hi,
                           float *out, lb_error *err) {
    const char *key = arch_key(L, suffix);
    double v = dflt;
    if (gguf_find(L->f, key)) {
        lb_status st = gguf_get_f64(L->f, key, &v, err);
        if (st != LB_OK) return st;
    }
    if (!(v >= lo && v <= hi))
        return lb_fail(err, LB_ERR_FORMAT, "%s: key '%s' is %g (expected %g..%g)", L->file, key, v, lo, hi);
    *out = (float)v;
    return LB_OK;
}

static lb_status read_hparams(struct gguf_loader *L, lb_error *err) {
    lb_hparams *hp = &L->m->hp;
    struct gguf_str arch;
    lb_status st = gguf_get_str(L->f, "general.architecture", &arch, err);
    if (st != LB_OK) return st;
    if (arch.len >= sizeof hp->arch) arch.len = sizeof hp->arch - 1;
    memcpy(hp->arch, arch.data, arch.len);
    hp->arch[arch.len] = 0;
    if (strcmp(hp->arch, "llama") == 0) {
        hp->rope_style = LB_ROPE_NORMAL;
    } else if (strcmp(hp->arch, "qwen2") == 0) {
        hp->rope_style = LB_ROPE_NEOX;
        hp->has_qkv_bias = true;
    } else {
        return lb_fail(err, LB_ERR_UNSUPPORTED,
                       "%s: general.architecture is '%s' (expected 'llama' or 'qwen2')", L->file, hp->arch);
    }
    strcpy(hp->format, "gguf");

    if ((st = get_int(L, "embedding_length", -1, 1, 1 << 20, &hp->n_embd, err)) ||
        (st = get_int(L, "block_count", -1, 1, 4096, &hp->n_layer, err)) ||
        (st = get_int(L, "feed_forward_length", -1, 1, 1 << 22, &hp->n_ff, err)) ||
        (st = get_int(L, "attention.head_count", -1, 1, 1 << 14, &hp->n_head, err)) ||
        (st = get_int(L, "attention.head_count_kv", hp->n_head, 1, hp->n_head, &hp->n_head_kv, err)) ||
        (st = get_int(L, "context_length", 2048, 1, 1 << 24, &hp->n_ctx_train, err)))
        return st;
    if (hp->n_embd % hp->n_head != 0)
        return lb_fail(err, LB_ERR_FORMAT, "%s: %s.embedding_length %d is not a multiple of head_count %d",
                       L->file, hp->arch, hp->n_embd, hp->n_head);
    if (hp->n_head % hp->n_head_kv != 0)
        return lb_fail(err, LB_ERR_FORMAT, "%s: %s.attention.head_count %d is not a multiple of head_count_kv %d",
                       L->file, hp->arch, hp->n_head, hp->n_head_kv);
    hp->head_dim = hp->n_embd / hp->n_head;
    if (hp->head_dim > LB_MAX_HEAD_DIM)
        return lb_fail(err, LB_ERR_UNSUPPORTED, "%s: head dimension %d (embedding/heads) exceeds %d", L->file,
                       hp->head_dim, LB_MAX_HEAD_DIM);
    int32_t key_len;
    if ((st = get_int(L, "attention.key_length", hp->head_dim, 1, 1 << 16, &key_len, err))) return st;
    if (key_len != hp->head_dim)
        return lb_fail(err, LB_ERR_UNSUPPORTED, "%s: %s.attention.key_length %d differs from embedding/heads %d",
                       L->file, hp->arch, key_len, hp->head_dim);
    if ((st = get_int(L, "rope.dimension_count", hp->head_dim, 2, hp->head_dim, &hp->n_rot, err))) return st;
    if (hp->n_rot % 2)
        return lb_fail(err, LB_ERR_FORMAT, "%s: %s.rope.dimension_count %d is odd (expected even)", L->file,
                       hp->arch, hp->n_rot);
    if ((st = get_float(L, "attention.layer_norm_rms_epsilon", 1e-5, 0, 1, &hp->rms_eps, err)) ||
        (st = get_float(L, "rope.freq_base", 10000.0, 1e-3, 1e12, &hp->rope_base, err)))
        return st;

    // RoPE scaling: linear divides positions by the factor; others unsupported.
    hp->rope_scale = 1.0f;
    const char *type_key = arch_key(L, "rope.scaling.type");
    if (gguf_find(L->f, type_key)) {
        struct gguf_str type;
        if ((st = gguf_get_str(L->f, type_key, &type, err))) return st;
        bool linear = type.len == 6 && memcmp(type.data, "linear", 6) == 0;
        bool none = type.len == 4 && memcmp(type.data, "none", 4) == 0;
        if (!linear && !none)
            return lb_fail(err, LB_ERR_UNSUPPORTED, "%s: %s is '%.*s' (expected 'linear' or 'none')", L->file,
                           type_key, (int)type.len, type.data);
        if (linear && (st = get_float(L, "rope.scaling.factor", 1.0, 1e-3, 1e6, &hp->rope_scale, err)))
            return st;
    } else if (gguf_find(L->f, arch_key(L, "rope.scale_linear"))) {
        if ((st = get_float(L, "rope.scale_linear", 1.0, 1e-3, 1e6, &hp->rope_scale, err))) return st;
    }
    return LB_OK;
}

// ----------------------------------------------------------------------------
// GGUF: tensors

// A 2D weight named `name` of shape (rows, cols); required unless optional.
static lb_status get_weight(struct gguf_loader *L, const char *name, int64_t rows, int64_t cols, bool optional,
                            struct lb_weight *w, lb_error *err) {
    const struct gguf_tensor *t = gguf_find_tensor(L->f, name);
    memset(w, 0, sizeof *w);
    if (!t) {
        if (optional) return LB_OK;
        return lb_fail(err, LB_ERR_MISSING, "%s: tensor '%s' missing", L->file, name);
    }
    if (t->n_dims != 2 || t->ne[0] != cols || t->ne[1] != rows)
        return lb_fail(err, LB_ERR_FORMAT, "%s: tensor '%s' has shape [%lld, %lld] (expected [%lld, %lld])",
                       L->file, name, (long long)t->ne[0], (long long)(t->n_dims > 1 ? t->ne[1] : 1),
                       (long long)cols, (long long)rows);
    const struct lb_type_traits *tr = lb_traits(t->type);
    if (!tr || !tr->to_float || !tr->vec_dot)
        return lb_fail(err, LB_ERR_UNSUPPORTED, "%s: tensor '%s' has type %d with no kernels", L->file, name,
                       (int)t->type);
    w->name = t->name;
    w->type = t->type;
    w->rows = rows;
    w->cols = cols;
    w->data = t->data;
    return llm_int8_attach(L->m, L->f, w, err); // its outlier tensors, when it is LLM_INT8
}

// A 1D tensor of n elements converted to f32; NULL in *out when optional and absent.
static lb_status get_vector(struct gguf_loader *L, const char *name, int64_t n, bool optional, float **out,
                            lb_error *err) {
    const struct gguf_tensor *t = gguf_find_tensor(L->f, name);
    *out = NULL;
    if (!t) {
        if (optional) return LB_OK;
        return lb_fail(err, LB_ERR_MISSING, "%s: tensor '%s' missing", L->file, name);
    }
    if (t->n_dims != 1 || t->ne[0] != n)
        return lb_fail(err, LB_ERR_FORMAT, "%s: tensor '%s' has %u dims, ne[0]=%lld (expected a vector of %lld)",
                       L->file, name, t->n_dims, (long long)t->ne[0], (long long)n);
    float *v = model_alloc_f32(L->m, (size_t)n);
    if (!v) return lb_fail(err, LB_ERR_NOMEM, "%s: tensor '%s': out of memory", L->file, name);
    lb_status st = lb_type_to_float(t->type, t->data, v, n);
    if (st != LB_OK)
        return lb_fail(err, st, "%s: tensor '%s': type %d cannot be converted to f32", L->file, name, (int)t->type);
    *out = v;
    return LB_OK;
}

static lb_status read_tensors(struct gguf_loader *L, lb_error *err) {
    struct lb_model *m = L->m;
    const lb_hparams *hp = &m->hp;
    const int64_t d = hp->n_embd, dq = (int64_t)hp->n_head * hp->head_dim,
                  dkv = (int64_t)hp->n_head_kv * hp->head_dim, ff = hp->n_ff;
    lb_status st;

    const struct gguf_tensor *emb = gguf_find_tensor(L->f, "token_embd.weight");
    if (!emb) return lb_fail(err, LB_ERR_MISSING, "%s: tensor 'token_embd.weight' missing", L->file);
    m->hp.n_vocab = emb->n_dims == 2 ? (int32_t)emb->ne[1] : 0;
    if (m->hp.n_vocab <= 0 || emb->ne[1] > INT32_MAX)
        return lb_fail(err, LB_ERR_FORMAT, "%s: tensor 'token_embd.weight' is not a [n_embd, n_vocab] matrix",
                       L->file);
    if ((st = get_weight(L, "token_embd.weight", hp->n_vocab, d, false, &m->tok_embd, err)) ||
        (st = get_vector(L, "output_norm.weight", d, false, &m->output_norm, err)) ||
        (st = get_weight(L, "output.weight", hp->n_vocab, d, true, &m->output, err)))
        return st;
    if (!m->output.data) {
        m->output = m->tok_embd;
        m->hp.tied_output = true;
    }

    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return lb_fail(err, LB_ERR_NOMEM, "%s: out of memory for %d layers", L->file, hp->n_layer);
    for (int i = 0; i < hp->n_layer; i++) {
        struct lb_layer *l = &m->layers[i];
        char name[96];
#define NAME(s) (snprintf(name, sizeof name, "blk.%d." s, i), name)
        if ((st = get_vector(L, NAME("attn_norm.weight"), d, false, &l->attn_norm, err)) ||
            (st = get_weight(L, NAME("attn_q.weight"), dq, d, false, &l->wq, err)) ||
            (st = get_weight(L, NAME("attn_k.weight"), dkv, d, false, &l->wk, err)) ||
            (st = get_weight(L, NAME("attn_v.weight"), dkv, d, false, &l->wv, err)) ||
            (st = get_weight(L, NAME("attn_output.weight"), d, dq, false, &l->wo, err)) ||
            (st = get_vector(L, NAME("attn_q.bias"), dq, !hp->has_qkv_bias, &l->bq, err)) ||
            (st = get_vector(L, NAME("attn_k.bias"), dkv, !hp->has_qkv_bias, &l->bk, err)) ||
            (st = get_vector(L, NAME("attn_v.bias"), dkv, !hp->has_qkv_bias, &l->bv, err)) ||
            (st = get_vector(L, NAME("ffn_norm.weight"), d, false, &l->ffn_norm, err)) ||
            (st = get_weight(L, NAME("ffn_gate.weight"), ff, d, false, &l->w_gate, err)) ||
            (st = get_weight(L, NAME("ffn_up.weight"), ff, d, false, &l->w_up, err)) ||
            (st = get_weight(L, NAME("ffn_down.weight"), d, ff, false, &l->w_down, err)))
            return st;
#undef NAME
    }

    m->n_tensors = (int)L->f->n_tensors;
    m->tensors = calloc(L->f->n_tensors ? L->f->n_tensors : 1, sizeof *m->tensors);
    if (!m->tensors) return lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", L->file);
    for (uint64_t i = 0; i < L->f->n_tensors; i++) {
        const struct gguf_tensor *t = &L->f->tensors[i];
        lb_tensor_info *ti = &m->tensors[i];
        ti->name = t->name;
        ti->type = t->type;
        ti->n_dims = (int)t->n_dims;
        for (int k = 0; k < 4; k++) ti->ne[k] = k < (int)t->n_dims ? t->ne[k] : 1;
        ti->nbytes = t->nbytes;
    }
    return LB_OK;
}

lb_status model_load_gguf(struct lb_model *m, const char *path, lb_error *err) {
    // A directory is a Hugging Face model, read as the GGUF file it converts to (hf.c).
    bool hf = hf_is_dir(path);
    lb_status st = hf ? hf_open(&m->gguf, path, err) : gguf_open(&m->gguf, path, err);
    if (st != LB_OK) return st;
    struct gguf_loader L = {.m = m, .f = m->gguf, .file = base_name(m->gguf->path)};
    if ((st = read_hparams(&L, err)) || (st = read_tensors(&L, err))) return st;
    if ((st = tokenizer_from_gguf(&m->tok, m->gguf, err))) return st;
    if (hf) strcpy(m->hp.format, "hf");
    return LB_OK;
}

// ----------------------------------------------------------------------------
// Checks common to every format

lb_status model_check_shapes(const struct lb_model *m, lb_error *err) {
    const lb_hparams *hp = &m->hp;
    const char *file = base_name(m->path);
    if (tokenizer_n_vocab(m->tok) != hp->n_vocab)
        return lb_fail(err, LB_ERR_FORMAT, "%s: tokenizer has %d tokens but token_embd has %d rows", file,
                       tokenizer_n_vocab(m->tok), hp->n_vocab);
    return LB_OK;
}

// ----------------------------------------------------------------------------
// Public: open, free, accessors

static bool is_gguf(const char *path) {
    FILE *fp = fopen(path, "rb");
    char magic[4] = {0};
    if (!fp) return false;
    size_t got = fread(magic, 1, 4, fp);
    fclose(fp);
    return got == 4 && memcmp(magic, "GGUF", 4) == 0;
}

lb_status lb_model_open(lb_model **out, const char *path, const lb_model_params *params, lb_error *err) {
    *out = NULL;
    if (!path) return lb_fail(err, LB_ERR_ARG, "lb_model_open: no model path given");
    FILE *probe = fopen(path, "rb");
    if (!probe) return lb_fail(err, LB_ERR_IO, "%s: cannot open: %m", path);
    fclose(probe);

    struct lb_model *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        return lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", path);
    }
    m->hp.bos_id = m->hp.eos_id = m->hp.eot_id = -1;
    lb_status st = is_gguf(path) || hf_is_dir(path) ? model_load_gguf(m, path, err)
                                 : model_load_llama2c(m, path, params ? params->tokenizer_path : NULL, err);
    if (st == LB_OK) st = model_check_shapes(m, err);
    if (st != LB_OK) {
        lb_model_free(m);
        return st;
    }
    m->hp.bos_id = tokenizer_bos(m->tok);
    m->hp.eos_id = tokenizer_eos(m->tok);
    m->hp.eot_id = tokenizer_eot(m->tok);
    m->hp.add_bos = tokenizer_add_bos(m->tok);

    // Remember the weights as opened: re-quantization always starts from them.
    m->src_tok_embd = m->tok_embd;
    m->src_output = m->output;
    m->src_layers = malloc((size_t)m->hp.n_layer * sizeof *m->src_layers);
    if (!m->src_layers) {
        lb_model_free(m);
        return lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(m->src_layers, m->layers, (size_t)m->hp.n_layer * sizeof *m->layers);
    *out = m;
    return LB_OK;
}

void lb_model_free(lb_model *m) {
    if (!m) return;
    tokenizer_free(m->tok);
    gguf_close(m->gguf);
    if (m->map) munmap(m->map, m->map_size);
    free_f32_pool(m);
    free(m->layers);
    free(m->src_layers);
    // llama2.c models own their tensor names (GGUF ones point into the file).
    if (!m->gguf && m->tensors)
        for (int i = 0; i < m->n_tensors; i++) free((char *)m->tensors[i].name);
    free(m->tensors);
    requant_buf_free(m->requant_buf, m->requant_bytes);
    model_pack_free(m);
    free(m->path);
    free(m);
}

const lb_hparams *lb_model_hparams(const lb_model *m) { return &m->hp; }
const char *lb_model_path(const lb_model *m) { return m->path; }
int lb_model_n_tensors(const lb_model *m) { return m->n_tensors; }

bool lb_model_tensor(const lb_model *m, int i, lb_tensor_info *info) {
    if (i < 0 || i >= m->n_tensors) return false;
    *info = m->tensors[i];
    return true;
}

int64_t lb_model_n_params(const lb_model *m) {
    int64_t n = 0;
    for (int i = 0; i < m->n_tensors; i++)
        n += m->tensors[i].ne[0] * m->tensors[i].ne[1] * m->tensors[i].ne[2] * m->tensors[i].ne[3];
    return n;
}

static size_t weight_bytes(const struct lb_weight *w) {
    return w->data ? (size_t)w->rows * lb_type_row_bytes(w->type, w->cols) : 0;
}

static const struct lb_weight *layer_weight(const struct lb_layer *l, int k) {
    const struct lb_weight *all[] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->w_gate, &l->w_up, &l->w_down};
    return all[k];
}
#define LAYER_WEIGHTS 7

size_t lb_model_weight_bytes(const lb_model *m) {
    // Matrices as currently loaded (after any re-quantization) plus vectors.
    size_t n = weight_bytes(&m->tok_embd) + (m->hp.tied_output ? 0 : weight_bytes(&m->output));
    for (int i = 0; i < m->hp.n_layer; i++)
        for (int k = 0; k < LAYER_WEIGHTS; k++) n += weight_bytes(layer_weight(&m->layers[i], k));
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].n_dims == 1) n += m->tensors[i].nbytes;
    return n;
}

size_t lb_model_bytes_per_token(const lb_model *m) {
    size_t n = weight_bytes(&m->output) + lb_type_row_bytes(m->tok_embd.type, m->tok_embd.cols);
    for (int i = 0; i < m->hp.n_layer; i++)
        for (int k = 0; k < LAYER_WEIGHTS; k++) n += weight_bytes(layer_weight(&m->layers[i], k));
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].n_dims == 1) n += m->tensors[i].nbytes;
    return n;
}

lb_type lb_model_weight_type(const lb_model *m) {
    // The type holding the most parameters of layer matrices.
    int64_t params[LB_TYPE_COUNT] = {0};
    for (int i = 0; i < m->hp.n_layer; i++)
        for (int k = 0; k < LAYER_WEIGHTS; k++) {
            const struct lb_weight *w = layer_weight(&m->layers[i], k);
            params[w->type] += w->rows * w->cols;
        }
    int best = 0;
    for (int t = 1; t < LB_TYPE_COUNT; t++)
        if (params[t] > params[best]) best = t;
    return (lb_type)best;
}

int lb_model_n_meta(const lb_model *m) { return m->gguf ? (int)m->gguf->n_kv : 0; }

bool lb_model_meta(const lb_model *m, int i, char *key, size_t key_cap, char *value, size_t cap) {
    if (!m->gguf || i < 0 || (uint64_t)i >= m->gguf->n_kv || key_cap == 0) return false;
    const struct gguf_kv *kv = &m->gguf->kv[i];
    size_t n = kv->key.len < key_cap - 1 ? kv->key.len : key_cap - 1; // keys are not NUL-terminated in the file
    memcpy(key, kv->key.data, n);
    key[n] = 0;
    gguf_value_format(&kv->value, value, cap);
    return true;
}

// ----------------------------------------------------------------------------
// Tokenizer wrappers

int lb_tokenize(const lb_model *m, const char *text, int len, bool add_bos, bool parse_special, int32_t *ids,
                int cap) {
    size_t n = len < 0 ? strlen(text) : (size_t)len;
    return tokenizer_encode(m->tok, text, n, add_bos, parse_special, ids, cap);
}

int lb_token_decode(const lb_model *m, int32_t prev, int32_t token, char *buf, int cap) {
    return tokenizer_decode(m->tok, prev, token, buf, cap);
}

const char *lb_token_piece(const lb_model *m, int32_t token) { return tokenizer_piece(m->tok, token); }
bool lb_token_is_eog(const lb_model *m, int32_t token) { return tokenizer_is_eog(m->tok, token); }
bool lb_token_is_control(const lb_model *m, int32_t token) {
    return tokenizer_attr(m->tok, token) == LB_TOKATTR_CONTROL;
}
const char *lb_tokenizer_kind(const lb_model *m) { return tokenizer_kind(m->tok) == LB_TOK_SPM ? "spm" : "bpe"; }

// ----------------------------------------------------------------------------
// Live re-quantization

// Matrices to re-quantize, in a fixed order: embeddings, output, then layers.
static int requant_targets(struct lb_model *m, const struct lb_weight **src, struct lb_weight **dst) {
    int n = 0;
    src[n] = &m->src_tok_embd, dst[n++] = &m->tok_embd;
    if (!m->hp.tied_output) src[n] = &m->src_output, dst[n++] = &m->output;
    for (int i = 0; i < m->hp.n_layer; i++)
        for (int k = 0; k < LAYER_WEIGHTS; k++) {
            src[n] = layer_weight(&m->src_layers[i], k);
            dst[n++] = (struct lb_weight *)layer_weight(&m->layers[i], k);
        }
    return n;
}

// A matrix that keeps its source type and would not be packed is used where
// it lies (the file's mapping) rather than copied: switching back to the
// file's own types then holds the weights once, as a fresh start does.
static bool shares_source(const struct lb_weight *next, const struct lb_weight *src) {
    return next->type == src->type && !(repack_enabled() && repack_eligible(src->type, src->rows, src->cols));
}

// Re-quantize every matrix to `type`, or, when `profile` is given, to the
// type the profile gives it (as lb_quantize_file would).
static lb_status requantize(lb_model *m, lb_type type, const struct lb_profile *profile, lb_progress_fn progress,
                            void *user, lb_error *err) {
    const struct lb_type_traits *tr = lb_traits(type);
    // Q8_1 and Q8_K only exist as activation formats: no weight kernels take them.
    if (!profile && (!tr || !tr->from_float_ref || !tr->vec_dot || type == LB_TYPE_Q8_1 || type == LB_TYPE_Q8_K))
        return lb_fail(err, LB_ERR_UNSUPPORTED, "requantize: type %s cannot hold weights",
                       tr ? tr->name : "(unknown)");
    const struct lb_quant_model qm = {
        .n_layer = m->hp.n_layer,
        .n_gqa = m->hp.n_head / m->hp.n_head_kv,
        .tied = m->hp.tied_output,
        .is_70b = !strcmp(m->hp.arch, "llama") && m->hp.n_layer == 80,
    };
    int cap = 2 + LAYER_WEIGHTS * m->hp.n_layer;
    const struct lb_weight **src = malloc((size_t)cap * sizeof *src);
    struct lb_weight **dst = malloc((size_t)cap * sizeof *dst);
    struct lb_weight *next = malloc((size_t)cap * sizeof *next);
    lb_status st = LB_OK;
    char *buf = NULL;
    float *row = NULL;
    if (!src || !dst || !next) {
        st = lb_fail(err, LB_ERR_NOMEM, "requantize: out of memory");
        goto done;
    }
    int n = requant_targets(m, src, dst);

    // Size the new buffer: a tensor whose rows do not fit the block size keeps its source type.
    size_t total = 0;
    int64_t max_cols = 0;
    for (int i = 0; i < n; i++) {
        next[i] = *src[i];
        if (profile) {
            enum lb_quant_rule rule;
            next[i].type = lb_quant_tensor_type(profile, &qm, src[i]->name ? src[i]->name : "", 2, src[i]->cols,
                                                src[i]->type, &rule);
            if ((st = lb_quant_check_row(next[i].type, "requantize", src[i]->name ? src[i]->name : "", src[i]->cols,
                                         err)))
                goto done;
        } else if (src[i]->cols % tr->block_size == 0) {
            next[i].type = type;
            if ((st = lb_quant_check_row(type, "requantize", src[i]->name ? src[i]->name : "", src[i]->cols, err)))
                goto done;
        }
        // LLM.int8's outlier columns are folded back into the rows below when
        // the type changes; the new tensor has none of its own.
        if (next[i].type != src[i]->type) next[i].n_outliers = 0, next[i].outlier_cols = NULL, next[i].outlier_w = NULL;
        if (shares_source(&next[i], src[i])) continue; // used in place: no bytes in the new buffer
        total += (size_t)next[i].rows * lb_type_row_bytes(next[i].type, next[i].cols);
        if (src[i]->cols > max_cols) max_cols = src[i]->cols;
    }
    buf = requant_buf_new(total);
    row = malloc((size_t)max_cols * sizeof *row);
    if (!buf || !row) {
        st = lb_fail(err, LB_ERR_NOMEM, "requantize: out of memory for %zu bytes", total);
        goto done;
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t src_row = lb_type_row_bytes(src[i]->type, src[i]->cols);
        size_t dst_row = lb_type_row_bytes(next[i].type, next[i].cols);
        if (shares_source(&next[i], src[i])) {
            if (progress && !progress((float)(i + 1) / (float)n, user)) {
                st = lb_fail(err, LB_ERR_CANCELLED, "requantize: cancelled after %d of %d tensors", i + 1, n);
                goto done;
            }
            continue; // next[i] is *src[i]: the file's bytes
        }
        // Per-tensor types (INT8_T, INT4_T) quantize every row against the
        // tensor's max |w|: a first pass finds it.
        const lb_from_float_amax_fn per_tensor = lb_traits(next[i].type)->from_float_amax;
        float amax = 0.0f;
        for (int64_t r = 0; per_tensor && next[i].type != src[i]->type && r < src[i]->rows; r++) {
            lb_type_to_float(src[i]->type, (const char *)src[i]->data + (size_t)r * src_row, row, src[i]->cols);
            if (src[i]->n_outliers) llm_int8_add_outliers(src[i], r, row);
            for (int64_t c = 0; c < src[i]->cols; c++) amax = fmaxf(amax, fabsf(row[c]));
        }
        for (int64_t r = 0; r < src[i]->rows; r++) {
            const char *s = (const char *)src[i]->data + (size_t)r * src_row;
            char *d = buf + off + (size_t)r * dst_row;
            if (next[i].type == src[i]->type) {
                memcpy(d, s, dst_row);
                continue;
            }
            lb_type_to_float(src[i]->type, s, row, src[i]->cols);
            if (src[i]->n_outliers) llm_int8_add_outliers(src[i], r, row);
            if (per_tensor) per_tensor(row, d, next[i].cols, amax);
            else lb_type_from_float(next[i].type, row, d, next[i].cols);
        }
        next[i].data = buf + off;
        off += (size_t)next[i].rows * dst_row;
        if (progress && !progress((float)(i + 1) / (float)n, user)) {
            st = lb_fail(err, LB_ERR_CANCELLED, "requantize: cancelled after %d of %d tensors", i + 1, n);
            goto done;
        }
    }
    // Into the kernels' layout, in place (target 0, the embeddings, stays in rows).
    for (int i = 1; i < n; i++)
        if (repack_enabled() && !shares_source(&next[i], src[i]) && !weight_pack_inplace(&next[i])) {
            st = lb_fail(err, LB_ERR_NOMEM, "requantize: out of memory");
            goto done;
        }
    // Commit: point the live weights at the new buffer, then drop the old ones.
    for (int i = 0; i < n; i++) *dst[i] = next[i];
    if (m->hp.tied_output) m->output = m->tok_embd;
    model_pack_free(m);
    requant_buf_free(m->requant_buf, m->requant_bytes);
    m->requant_buf = buf;
    m->requant_bytes = total;
    buf = NULL;
    // Reading the sources faulted the file's pages in; every matrix now has a
    // copy in requant_buf, so they would only count twice in RSS (switching
    // to the source type held 2x the weights against a fresh start's 1x).
    for (int i = 0; i < n; i++)
        if (!shares_source(&next[i], src[i]))
            model_drop_file_pages(m, src[i]->data, (size_t)src[i]->rows * lb_type_row_bytes(src[i]->type, src[i]->cols));
done:
    requant_buf_free(buf, total);
    free(row);
    free(src);
    free(dst);
    free(next);
    return st;
}

lb_status lb_model_requantize(lb_model *m, lb_type type, lb_progress_fn progress, void *user, lb_error *err) {
    return requantize(m, type, NULL, progress, user, err);
}

lb_status lb_model_requantize_profile(lb_model *m, const lb_profile *profile, lb_progress_fn progress, void *user,
                                      lb_error *err) {
    if (!profile) return lb_fail(err, LB_ERR_ARG, "requantize: no profile given");
    // Methods that need calibration activations write files only (lowbit quantize --calib).
    if (lb_profile_needs_calibration(profile))
        return lb_fail(err, LB_ERR_UNSUPPORTED, "profile '%s' (method %s%s) needs calibration text, which loading "
                       "cannot run: write a file with lowbit quantize --calib TEXTFILE and load that", profile->name,
                       profile->method->name, profile->importance ? ", importance: calibration" : "");
    return requantize(m, LB_TYPE_COUNT, profile, progress, user, err);
}
