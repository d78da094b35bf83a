/*
 * repack.c — the x8 layouts of repack.h: packing and unpacking 8-row groups,
 * the scalar reference kernels on packed groups, and packing a model's
 * matrices at context creation.
 *
 * The scalar kernels are the specification the AVX2 ones (kernels_avx2_x8.c)
 * must match bit for bit: per block and row, the integer dot product exactly,
 * then acc = fmaf(d_w · d_a, (float)isum, acc) (Q4_K: a second fmaf for the
 * mins), blocks in order.
 */
#include "repack.h"

#include "fp16.h"
#include "gguf.h"
#include "internal.h"
#include "quants.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

// Bytes of one packed column (8 rows of one block).
enum { X8_Q4_0 = 8 * sizeof(block_q4_0), X8_Q8_0 = 8 * sizeof(block_q8_0), X8_Q4_K = 8 * sizeof(block_q4_K),
       X8_Q6_K = 8 * sizeof(block_q6_K) };

// Offsets inside a packed Q4_K column.
enum { Q4K_D = 0, Q4K_DMIN = 16, Q4K_SC = 32, Q4K_MN = 96, Q4K_QS = 128 };
_Static_assert(Q4K_QS + 1024 == X8_Q4_K, "q4_K x8 column size");
// Offsets inside a packed Q6_K column.
enum { Q6K_D = 0, Q6K_SC = 16, Q6K_QS = 144 };
_Static_assert(Q6K_QS + 1536 == X8_Q6_K, "q6_K x8 column size");

static inline uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline float rd_fp16(const uint8_t *p) { return lb_fp16_to_f32(rd16(p)); }

// --- layouts ----------------------------------------------------------------------

bool repack_has_x8(lb_type type) {
    return type == LB_TYPE_Q4_0 || type == LB_TYPE_Q8_0 || type == LB_TYPE_Q4_K || type == LB_TYPE_Q6_K;
}

bool repack_enabled(void) {
    static int enabled = -1; // racy but idempotent: every thread computes the same value
    if (enabled < 0) {
        const char *e = getenv("LOWBIT_REPACK");
        enabled = !(e && !strcmp(e, "0"));
    }
    return enabled;
}

bool repack_eligible(lb_type type, int64_t rows, int64_t cols) {
    return repack_has_x8(type) && rows >= LB_X8_ROWS && lb_type_row_bytes(type, cols) > 0;
}

// Row r's block b of 8 plain rows.
#define ROW_BLOCK(T, rows, row_bytes, r, b) ((const T *)((const char *)(rows) + (size_t)(r) * (row_bytes)) + (b))

static void pack_q4_0(int64_t nb, size_t row_bytes, const void *rows, uint8_t *dst) {
    for (int64_t b = 0; b < nb; b++, dst += X8_Q4_0)
        for (int r = 0; r < 8; r++) {
            const block_q4_0 *x = ROW_BLOCK(block_q4_0, rows, row_bytes, r, b);
            memcpy(dst + 2 * r, &x->d, 2);
            for (int k = 0; k < 4; k++) memcpy(dst + 16 + 32 * k + 4 * r, x->qs + 4 * k, 4);
        }
}

static void unpack_q4_0(int64_t nb, const uint8_t *g, int r, void *row) {
    block_q4_0 *x = row;
    for (int64_t b = 0; b < nb; b++, g += X8_Q4_0, x++) {
        memcpy(&x->d, g + 2 * r, 2);
        for (int k = 0; k < 4; k++) memcpy(x->qs + 4 * k, g + 16 + 32 * k + 4 * r, 4);
    }
}

static void pack_q8_0(int64_t nb, size_t row_bytes, const void *rows, uint8_t *dst) {
    for (int64_t b = 0; b < nb; b++, dst += X8_Q8_0)
        for (int r = 0; r < 8; r++) {
            const block_q8_0 *x = ROW_BLOCK(block_q8_0, rows, row_bytes, r, b);
            memcpy(dst + 2 * r, &x->d, 2);
            for (int g = 0; g < 8; g++) memcpy(dst + 16 + 32 * g + 4 * r, x->qs + 4 * g, 4);
        }
}

static void unpack_q8_0(int64_t nb, const uint8_t *g8, int r, void *row) {
    block_q8_0 *x = row;
    for (int64_t b = 0; b < nb; b++, g8 += X8_Q8_0, x++) {
        memcpy(&x->d, g8 + 2 * r, 2);
        for (int g = 0; g < 8; g++) memcpy(x->qs + 4 * g, g8 + 16 + 32 * g + 4 * r, 4);
    }
}

static void pack_q4_K(int64_t nb, size_t row_bytes, const void *rows, uint8_t *dst) {
    for (int64_t b = 0; b < nb; b++, dst += X8_Q4_K)
        for (int r = 0; r < 8; r++) {
            const block_q4_K *x = ROW_BLOCK(block_q4_K, rows, row_bytes, r, b);
            memcpy(dst + Q4K_D + 2 * r, &x->d, 2);
            memcpy(dst + Q4K_DMIN + 2 * r, &x->dmin, 2);
            uint8_t sc[8], mn[8];
            for (int s = 0; s < 8; s++) lb_get_scale_min_k4(s, x->scales, &sc[s], &mn[s]);
            for (int s = 0; s < 8; s++) dst[Q4K_SC + 8 * s + r] = (uint8_t)(sc[s] | (mn[s] >> 4) << 6);
            for (int s = 0; s < 4; s++) dst[Q4K_MN + 8 * s + r] = (uint8_t)((mn[s] & 15) | (mn[s + 4] & 15) << 4);
            for (int c = 0; c < 4; c++)
                for (int g = 0; g < 8; g++) memcpy(dst + Q4K_QS + 256 * c + 32 * g + 4 * r, x->qs + 32 * c + 4 * g, 4);
        }
}

// Scale and min of sub-block s of row r of a packed Q4_K column.
static inline void q4_K_x8_scale_min(const uint8_t *col, int r, int s, int *sc, int *mn) {
    const uint8_t b = col[Q4K_SC + 8 * s + r];
    const uint8_t lo = col[Q4K_MN + 8 * (s & 3) + r];
    *sc = b & 63;
    *mn = (s < 4 ? lo & 15 : lo >> 4) | (b >> 6) << 4;
}

static void unpack_q4_K(int64_t nb, const uint8_t *col, int r, void *row) {
    block_q4_K *x = row;
    for (int64_t b = 0; b < nb; b++, col += X8_Q4_K, x++) {
        memcpy(&x->d, col + Q4K_D + 2 * r, 2);
        memcpy(&x->dmin, col + Q4K_DMIN + 2 * r, 2);
        int sc[8], mn[8];
        for (int s = 0; s < 8; s++) q4_K_x8_scale_min(col, r, s, &sc[s], &mn[s]);
        // The inverse of lb_get_scale_min_k4: all 96 bits are used, so this is exact.
        for (int j = 0; j < 4; j++) {
            x->scales[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
            x->scales[j + 4] = (uint8_t)(mn[j] | (mn[j + 4] >> 4) << 6);
            x->scales[j + 8] = (uint8_t)((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
        }
        for (int c = 0; c < 4; c++)
            for (int g = 0; g < 8; g++) memcpy(x->qs + 32 * c + 4 * g, col + Q4K_QS + 256 * c + 32 * g + 4 * r, 4);
    }
}

static void pack_q6_K(int64_t nb, size_t row_bytes, const void *rows, uint8_t *dst) {
    for (int64_t b = 0; b < nb; b++, dst += X8_Q6_K)
        for (int r = 0; r < 8; r++) {
            const block_q6_K *x = ROW_BLOCK(block_q6_K, rows, row_bytes, r, b);
            memcpy(dst + Q6K_D + 2 * r, &x->d, 2);
            for (int s = 0; s < 16; s++) dst[Q6K_SC + 8 * s + r] = (uint8_t)x->scales[s];
            for (int h = 0; h < 2; h++)
                for (int g = 0; g < 8; g++) {
                    uint8_t *v = dst + Q6K_QS + 96 * (8 * h + g) + 4 * r;
                    memcpy(v, x->ql + 64 * h + 4 * g, 4);
                    memcpy(v + 32, x->ql + 64 * h + 32 + 4 * g, 4);
                    memcpy(v + 64, x->qh + 32 * h + 4 * g, 4);
                }
        }
}

static void unpack_q6_K(int64_t nb, const uint8_t *col, int r, void *row) {
    block_q6_K *x = row;
    for (int64_t b = 0; b < nb; b++, col += X8_Q6_K, x++) {
        memcpy(&x->d, col + Q6K_D + 2 * r, 2);
        for (int s = 0; s < 16; s++) x->scales[s] = (int8_t)col[Q6K_SC + 8 * s + r];
        for (int h = 0; h < 2; h++)
            for (int g = 0; g < 8; g++) {
                const uint8_t *v = col + Q6K_QS + 96 * (8 * h + g) + 4 * r;
                memcpy(x->ql + 64 * h + 4 * g, v, 4);
                memcpy(x->ql + 64 * h + 32 + 4 * g, v + 32, 4);
                memcpy(x->qh + 32 * h + 4 * g, v + 64, 4);
            }
    }
}

void repack_pack_group(lb_type type, int64_t cols, const void *rows, void *dst) {
    const size_t rb = lb_type_row_bytes(type, cols);
    const int64_t nb = cols / lb_type_block_size(type);
    switch (type) {
    case LB_TYPE_Q4_0: pack_q4_0(nb, rb, rows, dst); break;
    case LB_TYPE_Q8_0: pack_q8_0(nb, rb, rows, dst); break;
    case LB_TYPE_Q4_K: pack_q4_K(nb, rb, rows, dst); break;
    case LB_TYPE_Q6_K: pack_q6_K(nb, rb, rows, dst); break;
    default: break; // callers check repack_has_x8
    }
}

void repack_unpack_row(lb_type type, int64_t cols, const void *group, int k, void *row) {
    const int64_t nb = cols / lb_type_block_size(type);
    switch (type) {
    case LB_TYPE_Q4_0: unpack_q4_0(nb, group, k, row); break;
    case LB_TYPE_Q8_0: unpack_q8_0(nb, group, k, row); break;
    case LB_TYPE_Q4_K: unpack_q4_K(nb, group, k, row); break;
    case LB_TYPE_Q6_K: unpack_q6_K(nb, group, k, row); break;
    default: break;
    }
}

void weight_row_to_float(const struct lb_weight *w, int64_t r, float *out) {
    const size_t rb = lb_type_row_bytes(w->type, w->cols);
    const char *base = w->data;
    if (w->layout == LB_LAYOUT_X8 && r < w->rows / 8 * 8) {
        // One row of plain blocks on the stack would not fit for wide rows: unpack in pieces.
        enum { PIECE = 2048 };
        _Alignas(64) char piece[PIECE];
        const int bs = lb_type_block_size(w->type);
        const size_t bb = lb_type_block_bytes(w->type);
        const int64_t per = (int64_t)(PIECE / bb), nb = w->cols / bs;
        const char *group = base + (size_t)(r / 8) * 8 * rb;
        for (int64_t b0 = 0; b0 < nb; b0 += per) {
            const int64_t n = nb - b0 < per ? nb - b0 : per;
            // Columns are 8·bb bytes each, so block b0 of the group starts at 8·bb·b0.
            repack_unpack_row(w->type, n * bs, group + 8 * bb * (size_t)b0, (int)(r % 8), piece);
            lb_type_traits[w->type].to_float(piece, out + b0 * bs, n * bs);
        }
        return;
    }
    lb_type_traits[w->type].to_float(base + (size_t)r * rb, out, w->cols);
}

bool weight_pack_inplace(struct lb_weight *w) {
    if (w->layout != LB_LAYOUT_ROWS || !repack_eligible(w->type, w->rows, w->cols)) return true;
    const size_t rb = lb_type_row_bytes(w->type, w->cols);
    char *tmp = malloc(8 * rb);
    if (!tmp) return false;
    char *data = (char *)w->data;
    for (int64_t g = 0; g < w->rows / 8; g++) {
        memcpy(tmp, data + (size_t)g * 8 * rb, 8 * rb);
        repack_pack_group(w->type, w->cols, tmp, data + (size_t)g * 8 * rb);
    }
    free(tmp);
    w->layout = LB_LAYOUT_X8;
    return true;
}

void repack_q4_0_aux(const void *act_row, int64_t cols, int32_t *aux) {
    const block_q8_0 *a = act_row;
    for (int64_t b = 0; b < cols / QK8_0; b++) {
        int sum = 0;
        for (int j = 0; j < QK8_0; j++) sum += a[b].qs[j];
        aux[b] = 8 * sum;
    }
}

// --- scalar reference kernels -------------------------------------------------------

static inline int32_t rd_i32(const void *p) { int32_t v; memcpy(&v, p, 4); return v; }

void lb_gemm_x8_q4_0_ref(int64_t cols, const void *group, const void *act, size_t act_stride, const int32_t *aux,
                         size_t aux_stride, int n, float *y, size_t ldy) {
    const int64_t nb = cols / QK4_0;
    for (int t = 0; t < n; t++) {
        const block_q8_0 *a = (const block_q8_0 *)((const char *)act + (size_t)t * act_stride);
        const int32_t *off = aux + (size_t)t * aux_stride;
        for (int r = 0; r < 8; r++) {
            float acc = 0.0f;
            const uint8_t *col = group;
            for (int64_t b = 0; b < nb; b++, col += X8_Q4_0) {
                int isum = 0;
                for (int k = 0; k < 4; k++)
                    for (int j = 0; j < 4; j++) {
                        const uint8_t q = col[16 + 32 * k + 4 * r + j];
                        isum += (q & 15) * a[b].qs[4 * k + j] + (q >> 4) * a[b].qs[16 + 4 * k + j];
                    }
                isum -= off[b];
                acc = fmaf(rd_fp16(col + 2 * r) * lb_fp16_to_f32(a[b].d), (float)isum, acc);
            }
            y[(size_t)t * ldy + r] = acc;
        }
    }
}

void lb_gemm_x8_q8_0_ref(int64_t cols, const void *group, const void *act, size_t act_stride, const int32_t *aux,
                         size_t aux_stride, int n, float *y, size_t ldy) {
    const int64_t nb = cols / QK8_0;
    for (int t = 0; t < n; t++) {
        const block_q8_0 *a = (const block_q8_0 *)((const char *)act + (size_t)t * act_stride);
        for (int r = 0; r < 8; r++) {
            float acc = 0.0f;
            const uint8_t *col = group;
            for (int64_t b = 0; b < nb; b++, col += X8_Q8_0) {
                int isum = 0;
                for (int g = 0; g < 8; g++)
                    for (int j = 0; j < 4; j++) isum += (int8_t)col[16 + 32 * g + 4 * r + j] * a[b].qs[4 * g + j];
                acc = fmaf(rd_fp16(col + 2 * r) * lb_fp16_to_f32(a[b].d), (float)isum, acc);
            }
            y[(size_t)t * ldy + r] = acc;
        }
    }
}

void lb_gemm_x8_q4_K_ref(int64_t cols, const void *group, const void *act, size_t act_stride, const int32_t *aux,
                         size_t aux_stride, int n, float *y, size_t ldy) {
    const int64_t nb = cols / QK_K;
    for (int t = 0; t < n; t++) {
        const block_q8_K *a = (const block_q8_K *)((const char *)act + (size_t)t * act_stride);
        for (int r = 0; r < 8; r++) {
            float acc = 0.0f;
            const uint8_t *col = group;
            for (int64_t b = 0; b < nb; b++, col += X8_Q4_K) {
                int isum = 0, msum = 0;
                for (int s = 0; s < 8; s++) {
                    int sc, mn;
                    q4_K_x8_scale_min(col, r, s, &sc, &mn);
                    const int c = s / 2, shift = 4 * (s & 1);
                    int dot = 0;
                    for (int g = 0; g < 8; g++)
                        for (int j = 0; j < 4; j++) {
                            const int q = (col[Q4K_QS + 256 * c + 32 * g + 4 * r + j] >> shift) & 15;
                            dot += q * a[b].qs[32 * s + 4 * g + j];
                        }
                    isum += sc * dot;
                    msum += mn * (a[b].bsums[2 * s] + a[b].bsums[2 * s + 1]);
                }
                acc = fmaf(a[b].d * rd_fp16(col + Q4K_D + 2 * r), (float)isum, acc);
                acc = fmaf(-(a[b].d * rd_fp16(col + Q4K_DMIN + 2 * r)), (float)msum, acc);
            }
            y[(size_t)t * ldy + r] = acc;
        }
    }
}

// Code (0..63) of element e (< 256) of row r in a packed Q6_K column.
static inline int q6_K_x8_code(const uint8_t *col, int r, int e) {
    const int h = e / 128, quarter = (e % 128) / 32, l = e % 32, g = l / 4, j = l % 4;
    const uint8_t *v = col + Q6K_QS + 96 * (8 * h + g) + 4 * r + j;
    const int low = (quarter & 1 ? v[32] : v[0]) >> (quarter >= 2 ? 4 : 0) & 15;
    return low | ((v[64] >> (2 * quarter)) & 3) << 4;
}

void lb_gemm_x8_q6_K_ref(int64_t cols, const void *group, const void *act, size_t act_stride, const int32_t *aux,
                         size_t aux_stride, int n, float *y, size_t ldy) {
    const int64_t nb = cols / QK_K;
    for (int t = 0; t < n; t++) {
        const block_q8_K *a = (const block_q8_K *)((const char *)act + (size_t)t * act_stride);
        for (int r = 0; r < 8; r++) {
            float acc = 0.0f;
            const uint8_t *col = group;
            for (int64_t b = 0; b < nb; b++, col += X8_Q6_K) {
                int isum = 0, offset = 0;
                for (int s = 0; s < 16; s++) {
                    const int sc = (int8_t)col[Q6K_SC + 8 * s + r];
                    int dot = 0;
                    for (int e = 16 * s; e < 16 * s + 16; e++) dot += q6_K_x8_code(col, r, e) * a[b].qs[e];
                    isum += sc * dot;
                    offset += sc * a[b].bsums[s];
                }
                isum -= 32 * offset;
                acc = fmaf(a[b].d * rd_fp16(col + Q6K_D + 2 * r), (float)isum, acc);
            }
            y[(size_t)t * ldy + r] = acc;
        }
    }
    (void)aux, (void)aux_stride;
}

// --- packing a model -------------------------------------------------------------------

static struct lb_weight *layer_matrix(struct lb_layer *l, int k) {
    struct lb_weight *all[] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->w_gate, &l->w_up, &l->w_down};
    return all[k];
}

// The live matrices that would be packed: the output head (unless tied) and
// every layer matrix; at most 1 + 7 · n_layer.
static int pack_candidates(struct lb_model *m, struct lb_weight **out) {
    int n = 0;
    if (!m->hp.tied_output) out[n++] = &m->output;
    for (int i = 0; i < m->hp.n_layer; i++)
        for (int k = 0; k < 7; k++) out[n++] = layer_matrix(&m->layers[i], k);
    return n;
}

// Drop the whole pages inside [p, p + n) from this process's memory. The
// mapping is a private, read-only file mapping: a later read would fault
// the page back in from the file, so this only releases memory.
static void drop_pages(const void *p, size_t n) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)p + page - 1) & ~(page - 1), b = ((uintptr_t)p + n) & ~(page - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

// True when [p, p + n) lies in the model file's mapping (not in requant_buf,
// whose pages must not be dropped: they hold the only copy).
static bool in_file_mapping(const struct lb_model *m, const void *p, size_t n) {
    const char *base = m->gguf ? (const char *)m->gguf->map : m->map;
    const size_t size = m->gguf ? m->gguf->size : m->map_size;
    return base && (const char *)p >= base && (const char *)p + n <= base + size;
}

lb_status model_pack_weights(struct lb_model *m, lb_error *err) {
    if (m->pack_buf || !repack_enabled()) return LB_OK;
    struct lb_weight **w = malloc((size_t)(1 + 7 * m->hp.n_layer) * sizeof *w);
    if (!w) return lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", m->path);
    const int n = pack_candidates(m, w);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        if (w[i]->layout == LB_LAYOUT_ROWS && repack_eligible(w[i]->type, w[i]->rows, w[i]->cols))
            total += (size_t)w[i]->rows * lb_type_row_bytes(w[i]->type, w[i]->cols);
    if (total == 0) {
        free(w);
        return LB_OK;
    }
    // An anonymous mapping rather than malloc: page-aligned, returned to the
    // system whole, and eligible for transparent huge pages (one TLB entry per
    // 2 MiB while decoding streams through it).
    void *buf = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) {
        free(w);
        return lb_fail(err, LB_ERR_NOMEM, "%s: out of memory for %zu bytes of packed weights", m->path, total);
    }
#ifdef MADV_HUGEPAGE
    madvise(buf, total, MADV_HUGEPAGE);
#endif
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        struct lb_weight *x = w[i];
        if (x->layout != LB_LAYOUT_ROWS || !repack_eligible(x->type, x->rows, x->cols)) continue;
        const size_t rb = lb_type_row_bytes(x->type, x->cols), bytes = (size_t)x->rows * rb;
        char *dst = (char *)buf + off;
        const char *src = x->data;
        const int64_t groups = x->rows / 8;
        for (int64_t g = 0; g < groups; g++)
            repack_pack_group(x->type, x->cols, src + (size_t)g * 8 * rb, dst + (size_t)g * 8 * rb);
        memcpy(dst + (size_t)groups * 8 * rb, src + (size_t)groups * 8 * rb, bytes - (size_t)groups * 8 * rb);
        // src_* still point at the file's bytes (re-quantization starts from
        // them); dropping the pages only means they are read again if needed.
        if (in_file_mapping(m, src, bytes)) drop_pages(src, bytes);
        x->data = dst;
        x->layout = LB_LAYOUT_X8;
        off += bytes;
    }
    free(w);
    m->pack_buf = buf;
    m->pack_bytes = total;
    return LB_OK;
}

void model_drop_file_pages(const struct lb_model *m, const void *p, size_t n) {
    if (in_file_mapping(m, p, n)) drop_pages(p, n);
}

void model_pack_free(struct lb_model *m) {
    if (m->pack_buf) munmap(m->pack_buf, m->pack_bytes);
    m->pack_buf = NULL;
    m->pack_bytes = 0;
}
