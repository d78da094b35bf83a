/*
 * llama2c.c — karpathy/llama2.c checkpoints (the legacy "version 0" export).
 *
 * Layout: a header of 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 * vocab_size, seq_len), then float32 tensors in this order, each matrix stored
 * (out, in) row-major like GGUF's [in, out]:
 *   token_embedding (vocab, dim), rms_att (layer, dim), wq (layer, dim, dim),
 *   wk (layer, kv_dim, dim), wv (layer, kv_dim, dim), wo (layer, dim, dim),
 *   rms_ffn (layer, dim), w1 (layer, hidden, dim), w2 (layer, dim, hidden),
 *   w3 (layer, hidden, dim), rms_final (dim), freq_cis_real and _imag
 *   (seq_len, head_size/2 each; unused: RoPE is recomputed), then wcls
 *   (vocab, dim) only when vocab_size is negative (separate classifier).
 * The tokenizer is a separate tokenizer.bin.
 */
#include "model.h"

#include "internal.h"
#include "tokenizer.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct cursor {
    const float *p;   // next tensor
};

static const float *take(struct cursor *c, int64_t n) {
    const float *p = c->p;
    c->p += n;
    return p;
}

static void set_weight(struct lb_weight *w, const char *name, const float *data, int64_t rows, int64_t cols) {
    w->name = name;
    w->type = LB_TYPE_F32;
    w->rows = rows;
    w->cols = cols;
    w->data = data;
}

// Record a tensor for `info` with its GGUF name and shape [cols, rows].
static lb_status add_info(struct lb_model *m, const char *name, int64_t cols, int64_t rows, const char **stored) {
    lb_tensor_info *t = &m->tensors[m->n_tensors++];
    t->name = strdup(name);
    if (!t->name) return LB_ERR_NOMEM;
    t->type = LB_TYPE_F32;
    t->n_dims = rows > 1 ? 2 : 1;
    t->ne[0] = cols;
    t->ne[1] = rows;
    t->ne[2] = t->ne[3] = 1;
    t->nbytes = (size_t)(cols * rows) * sizeof(float);
    if (stored) *stored = t->name;
    return LB_OK;
}

// The default tokenizer: tokenizer.bin in the model's directory.
static char *default_tokenizer_path(const char *model_path) {
    const char *slash = strrchr(model_path, '/');
    size_t dir = slash ? (size_t)(slash - model_path + 1) : 0;
    char *p = malloc(dir + sizeof "tokenizer.bin");
    if (!p) return NULL;
    memcpy(p, model_path, dir);
    strcpy(p + dir, "tokenizer.bin");
    return p;
}

lb_status model_load_llama2c(struct lb_model *m, const char *path, const char *tokenizer_path, lb_error *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return lb_fail(err, LB_ERR_IO, "%s: cannot open: %m", path);
    struct stat sb;
    if (fstat(fd, &sb) != 0 || sb.st_size < 28) {
        close(fd);
        return lb_fail(err, LB_ERR_FORMAT, "%s: %lld bytes is too short for a llama2.c header (28 bytes)", path,
                       (long long)sb.st_size);
    }
    m->map_size = (size_t)sb.st_size;
    m->map = mmap(NULL, m->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m->map == MAP_FAILED) {
        m->map = NULL;
        return lb_fail(err, LB_ERR_IO, "%s: mmap failed: %m", path);
    }

    int32_t h[7];
    memcpy(h, m->map, sizeof h);
    const int32_t dim = h[0], hidden = h[1], n_layers = h[2], n_heads = h[3], n_kv_heads = h[4], seq_len = h[6];
    const bool shared = h[5] > 0;
    const int64_t vocab = h[5] > 0 ? h[5] : -(int64_t)h[5];
    if (dim <= 0 || hidden <= 0 || n_layers <= 0 || n_heads <= 0 || n_kv_heads <= 0 || vocab <= 0 ||
        seq_len <= 0 || dim % n_heads != 0 || n_heads % n_kv_heads != 0 || (dim / n_heads) % 2 != 0 ||
        dim / n_heads > LB_MAX_HEAD_DIM ||
        vocab > INT32_MAX)
        return lb_fail(err, LB_ERR_FORMAT,
                       "%s: header (dim %d, hidden %d, layers %d, heads %d, kv_heads %d, vocab %d, seq_len %d) is "
                       "not a llama2.c checkpoint (expected positive sizes, dim divisible by heads)",
                       path, dim, hidden, n_layers, n_heads, n_kv_heads, h[5], seq_len);
    const int64_t head = dim / n_heads, kv_dim = head * n_kv_heads, L = n_layers;
    const int64_t floats = vocab * dim + L * dim * 2 + L * dim * dim * 2 + L * kv_dim * dim * 2 +
                           L * hidden * dim * 3 + dim + (int64_t)seq_len * head + (shared ? 0 : vocab * dim);
    const int64_t expect = 28 + floats * 4;
    if ((int64_t)m->map_size != expect)
        return lb_fail(err, LB_ERR_FORMAT, "%s: %zu bytes, expected %lld for the header's shapes (%s classifier)",
                       path, m->map_size, (long long)expect, shared ? "shared" : "separate");

    lb_hparams *hp = &m->hp;
    strcpy(hp->arch, "llama");
    strcpy(hp->format, "llama2.c");
    hp->n_vocab = (int32_t)vocab;
    hp->n_embd = dim;
    hp->n_layer = n_layers;
    hp->n_head = n_heads;
    hp->n_head_kv = n_kv_heads;
    hp->head_dim = (int32_t)head;
    hp->n_ff = hidden;
    hp->n_ctx_train = seq_len;
    hp->n_rot = (int32_t)head;
    hp->rms_eps = 1e-5f;      // llama2.c's rmsnorm
    hp->rope_base = 10000.0f;
    hp->rope_scale = 1.0f;
    hp->rope_style = LB_ROPE_NORMAL;
    hp->tied_output = shared;

    m->layers = calloc((size_t)L, sizeof *m->layers);
    m->tensors = calloc((size_t)(3 + 9 * L), sizeof *m->tensors);
    if (!m->layers || !m->tensors) return lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", path);

    struct cursor c = {(const float *)((const char *)m->map + 28)};
    const float *emb = take(&c, vocab * dim);
    const float *rms_att = take(&c, L * dim);
    const float *wq = take(&c, L * dim * dim);
    const float *wk = take(&c, L * kv_dim * dim);
    const float *wv = take(&c, L * kv_dim * dim);
    const float *wo = take(&c, L * dim * dim);
    const float *rms_ffn = take(&c, L * dim);
    const float *w1 = take(&c, L * hidden * dim);
    const float *w2 = take(&c, L * dim * hidden);
    const float *w3 = take(&c, L * hidden * dim);
    const float *rms_final = take(&c, dim);
    take(&c, (int64_t)seq_len * head); // freq_cis_real and freq_cis_imag
    const float *wcls = shared ? emb : take(&c, vocab * dim);

    // Norm vectors are used as f32 in place: the mapping is already f32.
    const char *name;
    if (add_info(m, "token_embd.weight", dim, vocab, &name)) goto nomem;
    set_weight(&m->tok_embd, name, emb, vocab, dim);
    for (int64_t l = 0; l < L; l++) {
        struct lb_layer *ly = &m->layers[l];
        char buf[64];
#define INFO(s, cols, rows) (snprintf(buf, sizeof buf, "blk.%lld." s, (long long)l), add_info(m, buf, cols, rows, &name))
        if (INFO("attn_norm.weight", dim, 1)) goto nomem;
        ly->attn_norm = (float *)(rms_att + l * dim);
        if (INFO("attn_q.weight", dim, dim)) goto nomem;
        set_weight(&ly->wq, name, wq + l * dim * dim, dim, dim);
        if (INFO("attn_k.weight", dim, kv_dim)) goto nomem;
        set_weight(&ly->wk, name, wk + l * kv_dim * dim, kv_dim, dim);
        if (INFO("attn_v.weight", dim, kv_dim)) goto nomem;
        set_weight(&ly->wv, name, wv + l * kv_dim * dim, kv_dim, dim);
        if (INFO("attn_output.weight", dim, dim)) goto nomem;
        set_weight(&ly->wo, name, wo + l * dim * dim, dim, dim);
        if (INFO("ffn_norm.weight", dim, 1)) goto nomem;
        ly->ffn_norm = (float *)(rms_ffn + l * dim);
        if (INFO("ffn_gate.weight", dim, hidden)) goto nomem;
        set_weight(&ly->w_gate, name, w1 + l * hidden * dim, hidden, dim);
        if (INFO("ffn_down.weight", hidden, dim)) goto nomem;
        set_weight(&ly->w_down, name, w2 + l * dim * hidden, dim, hidden);
        if (INFO("ffn_up.weight", dim, hidden)) goto nomem;
        set_weight(&ly->w_up, name, w3 + l * hidden * dim, hidden, dim);
#undef INFO
    }
    if (add_info(m, "output_norm.weight", dim, 1, NULL)) goto nomem;
    m->output_norm = (float *)rms_final;
    if (shared) {
        m->output = m->tok_embd;
    } else {
        if (add_info(m, "output.weight", dim, vocab, &name)) goto nomem;
        set_weight(&m->output, name, wcls, vocab, dim);
    }

    char *tok_path = tokenizer_path ? strdup(tokenizer_path) : default_tokenizer_path(path);
    if (!tok_path) goto nomem;
    lb_status st = tokenizer_from_llama2c(&m->tok, tok_path, (int32_t)vocab, err);
    if (st != LB_OK && !tokenizer_path && st == LB_ERR_IO)
        st = lb_fail(err, LB_ERR_IO, "%s: llama2.c checkpoints carry no tokenizer and %s was not found "
                     "(pass --tokenizer FILE)", path, tok_path);
    free(tok_path);
    return st;
nomem:
    return lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", path);
}
