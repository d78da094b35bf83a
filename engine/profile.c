/*
 * profile.c — quantization profiles: YAML files (read with libyaml's document
 * loader) that say which type each tensor is quantized to, and where a
 * profile named on the command line is looked for. The schema is
 * man/lowbit-profile.5; every message names file:line:column of the node at
 * fault, lines and columns counted from 1 as editors do.
 */
#include "profile.h"

#include "grid.h"
#include "internal.h"
#include "types.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#ifndef LB_PROFILE_DIR
#define LB_PROFILE_DIR "/usr/local/share/lowbit/profiles"
#endif

// ----------------------------------------------------------------------------
// Methods: ggml types (with the rules of llama.cpp's file type of that name,
// or the _S variant for q3_k/q4_k/q5_k, which llama.cpp has no plain file type
// for) and llama.cpp's mixes; then lowbit's own types (bitsandbytes' NF4 and
// FP4, FP8 with per-channel scales), whose only llama.cpp rule is the output
// head's; then rtn, whose type its parameters choose.

const struct lb_method lb_methods[] = {
    {"f32", LB_TYPE_F32, LB_FTYPE_ALL_F32, false},
    {"f16", LB_TYPE_F16, LB_FTYPE_MOSTLY_F16, false},
    {"bf16", LB_TYPE_BF16, LB_FTYPE_MOSTLY_BF16, false},
    {"q8_0", LB_TYPE_Q8_0, LB_FTYPE_MOSTLY_Q8_0, false},
    {"q4_0", LB_TYPE_Q4_0, LB_FTYPE_MOSTLY_Q4_0, false},
    {"q4_1", LB_TYPE_Q4_1, LB_FTYPE_MOSTLY_Q4_1, false},
    {"q5_0", LB_TYPE_Q5_0, LB_FTYPE_MOSTLY_Q5_0, false},
    {"q5_1", LB_TYPE_Q5_1, LB_FTYPE_MOSTLY_Q5_1, false},
    {"q2_k", LB_TYPE_Q2_K, LB_FTYPE_MOSTLY_Q2_K, false},
    {"q3_k", LB_TYPE_Q3_K, LB_FTYPE_MOSTLY_Q3_K_S, false},
    {"q4_k", LB_TYPE_Q4_K, LB_FTYPE_MOSTLY_Q4_K_S, false},
    {"q5_k", LB_TYPE_Q5_K, LB_FTYPE_MOSTLY_Q5_K_S, false},
    {"q6_k", LB_TYPE_Q6_K, LB_FTYPE_MOSTLY_Q6_K, false},
    {"q3_k_s", LB_TYPE_Q3_K, LB_FTYPE_MOSTLY_Q3_K_S, true},
    {"q3_k_m", LB_TYPE_Q3_K, LB_FTYPE_MOSTLY_Q3_K_M, true},
    {"q4_k_s", LB_TYPE_Q4_K, LB_FTYPE_MOSTLY_Q4_K_S, true},
    {"q4_k_m", LB_TYPE_Q4_K, LB_FTYPE_MOSTLY_Q4_K_M, true},
    {"q5_k_s", LB_TYPE_Q5_K, LB_FTYPE_MOSTLY_Q5_K_S, true},
    {"q5_k_m", LB_TYPE_Q5_K, LB_FTYPE_MOSTLY_Q5_K_M, true},
    {"nf4", LB_TYPE_NF4, LB_FTYPE_LOWBIT_NF4, false},
    {"fp4", LB_TYPE_FP4, LB_FTYPE_LOWBIT_FP4, false},
    {"fp8_e4m3", LB_TYPE_FP8_E4M3, (enum lb_ftype)LB_TYPE_FP8_E4M3, false},
    {"fp8_e5m2", LB_TYPE_FP8_E5M2, (enum lb_ftype)LB_TYPE_FP8_E5M2, false},
    // Round to nearest on an integer grid: the type follows from bits,
    // granularity, group_size and symmetric (resolve_rtn).
    {"rtn", LB_TYPE_COUNT, LB_FTYPE_ALL_F32, false},
    // GPTQ onto the grid of the profile's `gptq:` mapping; its type and file
    // type are the grid's (resolve_method).
    {"gptq", LB_TYPE_COUNT, LB_FTYPE_ALL_F32, false},
    // Activation-aware methods (calibrate.h): awq takes its type from its grid
    // (bits, granularity/group_size, symmetric); llm-int8 is its own type.
    {"awq", LB_TYPE_COUNT, LB_FTYPE_ALL_F32, false},
    {"llm-int8", LB_TYPE_LLM_INT8, (enum lb_ftype)LB_TYPE_LLM_INT8, false},
};
const int lb_n_methods = (int)(sizeof lb_methods / sizeof lb_methods[0]);

bool lb_type_is_weight(lb_type t) {
    const struct lb_type_traits *tr = lb_traits(t);
    return tr && tr->from_float_ref && tr->vec_dot && t != LB_TYPE_Q8_1 && t != LB_TYPE_Q8_K;
}

static const char *const profile_keys = "name, description, method, bits, granularity, group_size, symmetric, "
                                        "double_quant, pure, overrides, fallback, kv_cache, gptq, calibration, "
                                        "importance, clip, outlier_threshold";

// ----------------------------------------------------------------------------
// Reading the YAML document

struct reader {
    const char *file;
    yaml_document_t *doc;
    struct lb_profile *p;
    lb_error *err;
};

// Fail with "file:line:col: message" at node n.
static lb_status __attribute__((format(printf, 4, 5)))
fail_at(struct reader *r, const yaml_node_t *n, lb_status st, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return lb_fail(r->err, st, "%s:%zu:%zu: %s", r->file, n->start_mark.line + 1, n->start_mark.column + 1, msg);
}

static const char *node_kind(const yaml_node_t *n) {
    switch (n->type) {
    case YAML_SCALAR_NODE: return "a scalar";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_MAPPING_NODE: return "a mapping";
    default: return "nothing";
    }
}

static const char *scalar(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

// A scalar value (YAML quoting is allowed); fails on lists and mappings.
static lb_status get_string(struct reader *r, const char *key, const yaml_node_t *v, const char **out) {
    if (v->type != YAML_SCALAR_NODE)
        return fail_at(r, v, LB_ERR_FORMAT, "'%s' is %s (expected a string)", key, node_kind(v));
    *out = scalar(v);
    return LB_OK;
}

static lb_status dup_string(struct reader *r, const char *key, const yaml_node_t *v, char **out) {
    const char *s = NULL;
    lb_status st = get_string(r, key, v, &s);
    if (st) return st;
    free(*out);
    if (!(*out = strdup(s))) return fail_at(r, v, LB_ERR_NOMEM, "out of memory");
    return LB_OK;
}

// A weight type by name, case-insensitive ("q6_k", "F16").
static lb_status get_type(struct reader *r, const char *key, const yaml_node_t *v, lb_type *out) {
    const char *s = NULL;
    lb_status st = get_string(r, key, v, &s);
    if (st) return st;
    int t = lb_type_from_name(s);
    if (t < 0 || !lb_type_is_weight((lb_type)t))
        return fail_at(r, v, LB_ERR_FORMAT,
                       "%s '%s' is not a weight type (expected one of f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, "
                       "q5_1, q2_k, q3_k, q4_k, q5_k, q6_k, nf4, fp4, nf4_dq, fp8_e4m3, fp8_e5m2, llm_int8, or an "
                       "integer grid type int<2|3|4|8>[z]_<c|g32|g64|g128>, int8_t, int4_t)", key, s);
    *out = (lb_type)t;
    return LB_OK;
}

static lb_status get_method(struct reader *r, const yaml_node_t *v) {
    const char *s = NULL;
    lb_status st = get_string(r, "method", v, &s);
    if (st) return st;
    for (int i = 0; i < lb_n_methods; i++)
        if (strcasecmp(s, lb_methods[i].name) == 0) {
            r->p->method = &lb_methods[i];
            return LB_OK;
        }
    char list[400] = "";
    size_t n = 0;
    for (int i = 0; i < lb_n_methods && n < sizeof list; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", lb_methods[i].name);
    return fail_at(r, v, LB_ERR_FORMAT, "method '%s' unknown (expected one of %s)", s, list);
}

static lb_status get_bool(struct reader *r, const char *key, const yaml_node_t *v, bool *out) {
    const char *s = NULL;
    lb_status st = get_string(r, key, v, &s);
    if (st) return st;
    if (!strcmp(s, "true")) *out = true;
    else if (!strcmp(s, "false")) *out = false;
    else return fail_at(r, v, LB_ERR_FORMAT, "'%s' is '%s' (expected true or false)", key, s);
    return LB_OK;
}

// An integer in [lo, hi]; `what` describes the range for the message.
static lb_status get_int(struct reader *r, const char *key, const yaml_node_t *v, long lo, long hi, const char *what,
                         int *out) {
    const char *s = NULL;
    lb_status st = get_string(r, key, v, &s);
    if (st) return st;
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (!*s || *end || errno || x < lo || x > hi)
        return fail_at(r, v, LB_ERR_FORMAT, "'%s' is '%s' (expected %s)", key, s, what);
    *out = (int)x;
    return LB_OK;
}

static lb_status get_double(struct reader *r, const char *key, const yaml_node_t *v, double lo, double hi,
                            double *out) {
    const char *s = NULL;
    lb_status st = get_string(r, key, v, &s);
    if (st) return st;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (!*s || *end || errno || !(x >= lo && x <= hi))
        return fail_at(r, v, LB_ERR_FORMAT, "'%s' is '%s' (expected a number from %g to %g)", key, s, lo, hi);
    *out = x;
    return LB_OK;
}

// Iterate a mapping's pairs, rejecting keys that are not scalars and keys
// given twice; `keys` lists the accepted ones for the message.
#define FOR_PAIRS(r, map, k, v)                                                                          \
    for (yaml_node_pair_t *pair_ = (map)->data.mapping.pairs.start; pair_ < (map)->data.mapping.pairs.top; \
         pair_++)                                                                                        \
        if (((k) = yaml_document_get_node((r)->doc, pair_->key)),                                         \
            ((v) = yaml_document_get_node((r)->doc, pair_->value)), 1)

static lb_status check_keys(struct reader *r, const yaml_node_t *map, const char *const *allowed,
                            const char *allowed_list) {
    for (yaml_node_pair_t *a = map->data.mapping.pairs.start; a < map->data.mapping.pairs.top; a++) {
        const yaml_node_t *k = yaml_document_get_node(r->doc, a->key);
        if (k->type != YAML_SCALAR_NODE)
            return fail_at(r, k, LB_ERR_FORMAT, "a key is %s (expected one of %s)", node_kind(k), allowed_list);
        bool known = false;
        for (int i = 0; allowed[i]; i++) known |= !strcmp(scalar(k), allowed[i]);
        if (!known)
            return fail_at(r, k, LB_ERR_FORMAT, "unknown key '%s' (expected one of %s)", scalar(k), allowed_list);
        for (yaml_node_pair_t *b = map->data.mapping.pairs.start; b < a; b++) {
            const yaml_node_t *kb = yaml_document_get_node(r->doc, b->key);
            if (!strcmp(scalar(kb), scalar(k)))
                return fail_at(r, k, LB_ERR_FORMAT, "key '%s' given twice (first at line %zu)", scalar(k),
                               kb->start_mark.line + 1);
        }
    }
    return LB_OK;
}

// The key whose value is node v in the root mapping (for messages).
static const char *scalar_key_of(struct reader *r, const yaml_node_t *v) {
    const yaml_node_t *root = yaml_document_get_root_node(r->doc);
    for (yaml_node_pair_t *pair = root->data.mapping.pairs.start; pair < root->data.mapping.pairs.top; pair++)
        if (yaml_document_get_node(r->doc, pair->value) == v) return scalar(yaml_document_get_node(r->doc, pair->key));
    return "?";
}

// ----------------------------------------------------------------------------
// Method parameters: bits, granularity, group_size, symmetric (method rtn),
// double_quant (method nf4). Each given key is checked against the method,
// so a key the method does not read is an error, never silently ignored.

enum granularity { GRAN_NONE, GRAN_TENSOR, GRAN_CHANNEL, GRAN_GROUP };

struct method_params {
    int bits, group_size;
    enum granularity granularity;
    bool symmetric, double_quant;
    const yaml_node_t *bits_node, *granularity_node, *group_node, *symmetric_node, *double_quant_node;
};

static lb_status get_granularity(struct reader *r, const yaml_node_t *v, enum granularity *out) {
    const char *s = NULL;
    lb_status st = get_string(r, "granularity", v, &s);
    if (st) return st;
    if (!strcmp(s, "tensor")) *out = GRAN_TENSOR;
    else if (!strcmp(s, "channel")) *out = GRAN_CHANNEL;
    else if (!strcmp(s, "group")) *out = GRAN_GROUP;
    else return fail_at(r, v, LB_ERR_FORMAT, "granularity '%s' (expected tensor, channel or group)", s);
    return LB_OK;
}

// The type of method rtn: symmetric (absmax) or zero-point grids of 2, 3, 4
// or 8 bits per tensor, channel or group (grid.h's mapping, so group 32 at
// 4 and 8 bits symmetric is Q4_0 / Q8_0 and 4-bit zero point is Q4_1).
static lb_status resolve_rtn(struct reader *r, const yaml_node_t *root, struct method_params *mp) {
    struct lb_profile *p = r->p;
    if (!mp->bits_node) return fail_at(r, root, LB_ERR_MISSING, "method rtn needs 'bits' (expected 2, 3, 4 or 8)");
    if (mp->bits != 2 && mp->bits != 3 && mp->bits != 4 && mp->bits != 8)
        return fail_at(r, mp->bits_node, LB_ERR_FORMAT, "bits %d (expected 2, 3, 4 or 8)", mp->bits);
    if (!mp->granularity_node)
        return fail_at(r, root, LB_ERR_MISSING, "method rtn needs 'granularity' (expected tensor, channel or group)");
    if (!mp->symmetric_node) mp->symmetric = true;
    if (mp->granularity == GRAN_GROUP) {
        if (!mp->group_node)
            return fail_at(r, mp->granularity_node, LB_ERR_MISSING,
                           "granularity group needs 'group_size' (expected 32, 64 or 128)");
        if (mp->group_size != 32 && mp->group_size != 64 && mp->group_size != 128)
            return fail_at(r, mp->group_node, LB_ERR_FORMAT, "group_size %d (expected 32, 64 or 128)", mp->group_size);
    } else if (mp->group_node) {
        return fail_at(r, mp->group_node, LB_ERR_FORMAT,
                       "group_size with granularity %s (expected group_size only with granularity group)",
                       mp->granularity == GRAN_TENSOR ? "tensor" : "channel");
    }
    if (mp->granularity == GRAN_TENSOR) {
        if (!mp->symmetric || (mp->bits != 8 && mp->bits != 4))
            return fail_at(r, mp->granularity_node, LB_ERR_FORMAT,
                           "granularity tensor with %d-bit %s grids (expected symmetric 8 or 4 bits: INT8_T, INT4_T)",
                           mp->bits, mp->symmetric ? "symmetric" : "zero-point");
        p->type = mp->bits == 8 ? LB_TYPE_INT8_T : LB_TYPE_INT4_T;
    } else {
        struct lb_grid g = {mp->bits, mp->granularity == GRAN_GROUP ? mp->group_size : LB_GRID_PER_CHANNEL,
                            mp->symmetric};
        p->type = lb_grid_type(g);
    }
    // A ggml type keeps llama.cpp's file type of that name; lowbit's own are their ids.
    p->ftype = (enum lb_ftype)p->type;
    for (int i = 0; i < lb_n_methods; i++)
        if (lb_methods[i].type == p->type && !lb_methods[i].mix) {
            p->ftype = lb_methods[i].ftype;
            break;
        }
    return LB_OK;
}

// The file type written for a type: its llama.cpp file type when a plain
// method has it, else lowbit's convention for its own types (the type id).
static enum lb_ftype ftype_of(lb_type t) {
    for (int i = 0; i < lb_n_methods; i++)
        if (lb_methods[i].type == t && !lb_methods[i].mix) return lb_methods[i].ftype;
    return (enum lb_ftype)t;
}

// The grid of method awq: llm-awq's 4 bits in groups of 128 with a zero point
// unless the keys say otherwise. AWQ's scales are per input channel and its
// grid per group or output row (granularity channel); whether a type holds
// the grid is lb_grid_type's answer, checked when a file is written.
static lb_status resolve_awq(struct reader *r, struct method_params *mp) {
    struct lb_profile *p = r->p;
    struct lb_grid g = {.bits = 4, .group = 128, .symmetric = false};
    if (mp->bits_node) {
        if (mp->bits < 2 || mp->bits > 8)
            return fail_at(r, mp->bits_node, LB_ERR_FORMAT, "bits %d (expected 2 to 8)", mp->bits);
        g.bits = mp->bits;
    }
    if (mp->granularity_node && mp->granularity == GRAN_TENSOR)
        return fail_at(r, mp->granularity_node, LB_ERR_FORMAT, "granularity tensor with method awq (expected group "
                       "or channel)");
    if (mp->granularity_node && mp->granularity == GRAN_CHANNEL) {
        if (mp->group_node)
            return fail_at(r, mp->group_node, LB_ERR_FORMAT, "group_size with granularity channel (expected "
                           "group_size only with granularity group)");
        g.group = LB_GRID_PER_CHANNEL;
    } else if (mp->group_node) {
        if (mp->group_size < 1)
            return fail_at(r, mp->group_node, LB_ERR_FORMAT, "group_size %d (expected 1 or more)", mp->group_size);
        g.group = mp->group_size;
    }
    if (mp->symmetric_node) g.symmetric = mp->symmetric;
    p->grid = g;
    p->type = lb_grid_type(g);
    p->ftype = p->type == LB_TYPE_COUNT ? LB_FTYPE_ALL_F32 : ftype_of(p->type);
    return LB_OK;
}

static lb_status resolve_method(struct reader *r, const yaml_node_t *root, struct method_params *mp) {
    struct lb_profile *p = r->p;
    const char *m = p->method->name;
    p->type = p->method->type;
    p->ftype = p->method->ftype;
    if (!strcmp(m, "rtn") || !strcmp(m, "awq")) {
        if (mp->double_quant_node)
            return fail_at(r, mp->double_quant_node, LB_ERR_FORMAT, "double_quant with method %s (expected it "
                           "only with method nf4)", m);
        return !strcmp(m, "rtn") ? resolve_rtn(r, root, mp) : resolve_awq(r, mp);
    }
    // Other methods fix their grid: the only parameters they take are FP8's
    // (per-)channel granularity and NF4's double quantization.
    const bool fp8 = !strncmp(m, "fp8_", 4);
    const yaml_node_t *extra = mp->bits_node ? mp->bits_node : mp->group_node ? mp->group_node
                                                              : mp->symmetric_node;
    if (extra)
        return fail_at(r, extra, LB_ERR_FORMAT, "'%s' with method %s (expected bits, group_size and symmetric only "
                       "with methods rtn and awq)", scalar_key_of(r, extra), m);
    if (mp->granularity_node && !(fp8 && mp->granularity == GRAN_CHANNEL))
        return fail_at(r, mp->granularity_node, LB_ERR_FORMAT, "granularity with method %s (expected it with methods "
                       "rtn and awq, or 'channel' with fp8_e4m3 / fp8_e5m2, whose scales are per channel)", m);
    if (mp->double_quant_node && strcmp(m, "nf4") != 0)
        return fail_at(r, mp->double_quant_node, LB_ERR_FORMAT, "double_quant with method %s (expected it only with "
                       "method nf4)", m);
    if (mp->double_quant) p->type = LB_TYPE_NF4_DQ, p->ftype = (enum lb_ftype)LB_TYPE_NF4_DQ;
    return LB_OK;
}

static lb_status read_override(struct reader *r, const yaml_node_t *item, struct lb_override *o) {
    static const char *const keys[] = {"pattern", "type", NULL};
    if (item->type != YAML_MAPPING_NODE)
        return fail_at(r, item, LB_ERR_FORMAT, "an override is %s (expected a mapping with pattern and type)",
                       node_kind(item));
    lb_status st = check_keys(r, item, keys, "pattern, type");
    if (st) return st;
    bool have_type = false;
    yaml_node_t *k, *v;
    FOR_PAIRS(r, item, k, v) {
        if (!strcmp(scalar(k), "pattern")) {
            if ((st = dup_string(r, "pattern", v, &o->pattern))) return st;
            if (!*o->pattern) return fail_at(r, v, LB_ERR_FORMAT, "pattern is empty (expected a glob such as 'blk.*.ffn_down.weight')");
        } else {
            if ((st = get_type(r, "type", v, &o->type))) return st;
            have_type = true;
        }
    }
    if (!o->pattern) return fail_at(r, item, LB_ERR_FORMAT, "override has no 'pattern' (expected pattern and type)");
    if (!have_type) return fail_at(r, item, LB_ERR_FORMAT, "override has no 'type' (expected pattern and type)");
    return LB_OK;
}

static lb_status read_overrides(struct reader *r, const yaml_node_t *v) {
    if (v->type != YAML_SEQUENCE_NODE)
        return fail_at(r, v, LB_ERR_FORMAT, "'overrides' is %s (expected a list of {pattern, type})", node_kind(v));
    int n = (int)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n == 0) return LB_OK;
    r->p->overrides = calloc((size_t)n, sizeof *r->p->overrides);
    if (!r->p->overrides) return fail_at(r, v, LB_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        const yaml_node_t *item = yaml_document_get_node(r->doc, v->data.sequence.items.start[i]);
        r->p->n_overrides = i + 1; // so lb_profile_free releases what was read
        lb_status st = read_override(r, item, &r->p->overrides[i]);
        if (st) return st;
    }
    return LB_OK;
}

// ----------------------------------------------------------------------------
// method gptq: the grid and the algorithm's settings

#define GPTQ_KEYS "bits, group_size, symmetric, scale, damp_percent, act_order, desc_act, static_groups, " \
                  "block_size, true_sequential"

static lb_status read_gptq(struct reader *r, const yaml_node_t *map) {
    static const char *const keys[] = {"bits", "group_size", "symmetric", "scale", "damp_percent", "act_order",
                                       "desc_act", "static_groups", "block_size", "true_sequential", NULL};
    if (map->type != YAML_MAPPING_NODE)
        return fail_at(r, map, LB_ERR_FORMAT, "'gptq' is %s (expected a mapping with keys %s)", node_kind(map),
                       GPTQ_KEYS);
    lb_status st = check_keys(r, map, keys, GPTQ_KEYS);
    if (st) return st;
    struct lb_gptq_params *g = &r->p->gptq;
    const yaml_node_t *bits = NULL, *group = NULL, *act = NULL, *stat = NULL, *scale = NULL;
    yaml_node_t *k, *v;
    FOR_PAIRS(r, map, k, v) {
        const char *key = scalar(k);
        if (!strcmp(key, "bits")) {
            st = get_int(r, key, v, 2, 8, "an integer from 2 to 8", &g->grid.bits);
            bits = v;
        } else if (!strcmp(key, "group_size")) {
            // "channel" or -1 (AutoGPTQ's spelling): one group per row.
            const char *s = NULL;
            if ((st = get_string(r, key, v, &s))) return st;
            if (!strcmp(s, "channel") || !strcmp(s, "-1")) {
                g->grid.group = LB_GRID_PER_CHANNEL;
            } else {
                st = get_int(r, key, v, 16, 4096, "16, 32, 64, 128, ... 4096, or channel", &g->grid.group);
                if (!st && (g->grid.group & (g->grid.group - 1)))
                    return fail_at(r, v, LB_ERR_FORMAT, "'group_size' is '%s' (expected 16, 32, 64, 128, ... 4096, "
                                   "or channel)", s);
            }
            group = v;
        } else if (!strcmp(key, "symmetric")) {
            st = get_bool(r, key, v, &g->grid.symmetric);
        } else if (!strcmp(key, "scale")) {
            const char *s = NULL;
            if ((st = get_string(r, key, v, &s))) return st;
            if (!strcmp(s, "minmax")) g->scale_rule = GPTQ_SCALE_MINMAX;
            else if (!strcmp(s, "signed_max")) g->scale_rule = GPTQ_SCALE_SIGNED_MAX;
            else return fail_at(r, v, LB_ERR_FORMAT, "'scale' is '%s' (expected minmax or signed_max)", s);
            scale = v;
        } else if (!strcmp(key, "damp_percent")) {
            st = get_double(r, key, v, 0.0, 1.0, &g->damp_percent);
        } else if (!strcmp(key, "act_order") || !strcmp(key, "desc_act")) {
            if (act)
                return fail_at(r, k, LB_ERR_FORMAT, "'%s' repeats '%s' at line %zu (desc_act is another name for "
                               "act_order; expected one of them)", key, !strcmp(key, "act_order") ? "desc_act" :
                               "act_order", act->start_mark.line + 1);
            st = get_bool(r, key, v, &g->act_order);
            act = v;
        } else if (!strcmp(key, "static_groups")) {
            st = get_bool(r, key, v, &g->static_groups);
            stat = v;
        } else if (!strcmp(key, "block_size")) {
            st = get_int(r, key, v, 1, 65536, "an integer from 1 to 65536", &g->block_size);
        } else {  // true_sequential
            st = get_bool(r, key, v, &r->p->true_sequential);
        }
        if (st) return st;
    }
    if (!bits) return fail_at(r, map, LB_ERR_MISSING, "'gptq' has no 'bits' (expected 2 to 8)");
    if (!group) return fail_at(r, map, LB_ERR_MISSING, "'gptq' has no 'group_size' (expected 32, 64, 128, ... or channel)");
    if (scale && g->scale_rule == GPTQ_SCALE_SIGNED_MAX && !g->grid.symmetric)
        return fail_at(r, scale, LB_ERR_FORMAT, "scale: signed_max with symmetric: false (expected symmetric: true; "
                       "asymmetric groups use their min-max range)");
    if (g->static_groups && g->grid.group == LB_GRID_PER_CHANNEL)
        return fail_at(r, stat, LB_ERR_FORMAT, "static_groups: true with group_size channel (expected a group size: "
                       "per channel there is one group per row)");
    if (g->act_order && g->grid.group != LB_GRID_PER_CHANNEL && !g->static_groups)
        return fail_at(r, act, LB_ERR_FORMAT, "act_order: true with group_size %d needs static_groups: true (the "
                       "tensor types store contiguous groups; without static groups a column's group follows the "
                       "activation order)", g->grid.group);
    return LB_OK;
}

static lb_status read_calibration(struct reader *r, const yaml_node_t *map) {
    static const char *const keys[] = {"samples", "ctx", NULL};
    if (map->type != YAML_MAPPING_NODE)
        return fail_at(r, map, LB_ERR_FORMAT, "'calibration' is %s (expected a mapping with keys samples, ctx)",
                       node_kind(map));
    lb_status st = check_keys(r, map, keys, "samples, ctx");
    if (st) return st;
    yaml_node_t *k, *v;
    FOR_PAIRS(r, map, k, v) {
        if (!strcmp(scalar(k), "samples"))
            st = get_int(r, "samples", v, 1, 1000000, "an integer from 1 to 1000000", &r->p->calib_samples);
        else
            st = get_int(r, "ctx", v, 2, 1 << 20, "an integer from 2 to 1048576", &r->p->calib_ctx);
        if (st) return st;
    }
    return LB_OK;
}

static bool valid_name(const char *s) {
    if (!*s) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.') return false;
    return true;
}

static lb_status read_profile(struct reader *r, const yaml_node_t *root) {
    static const char *const keys[] = {"name", "description", "method", "bits", "granularity", "group_size",
                                       "symmetric", "double_quant", "pure", "overrides", "fallback", "kv_cache",
                                       "gptq", "calibration", "importance", "clip", "outlier_threshold", NULL};
    struct lb_profile *p = r->p;
    if (root->type != YAML_MAPPING_NODE)
        return fail_at(r, root, LB_ERR_FORMAT, "the profile is %s (expected a mapping with keys %s)",
                       node_kind(root), profile_keys);
    lb_status st = check_keys(r, root, keys, profile_keys);
    if (st) return st;
    const yaml_node_t *pure_node = NULL, *fallback_node = NULL, *gptq_node = NULL, *importance_node = NULL,
                      *clip_node = NULL, *threshold_node = NULL;
    struct method_params mp = {0};
    yaml_node_t *k, *v;
    FOR_PAIRS(r, root, k, v) {
        const char *key = scalar(k);
        if (!strcmp(key, "name")) {
            if ((st = dup_string(r, key, v, &p->name))) return st;
            if (!valid_name(p->name))
                return fail_at(r, v, LB_ERR_FORMAT, "name '%s' (expected letters, digits, '_', '-' and '.')",
                               p->name);
        } else if (!strcmp(key, "description")) {
            st = dup_string(r, key, v, &p->description);
        } else if (!strcmp(key, "method")) {
            st = get_method(r, v);
        } else if (!strcmp(key, "bits")) {
            st = get_int(r, key, v, 0, 1 << 20, "a whole number", &mp.bits);
            mp.bits_node = v;
        } else if (!strcmp(key, "granularity")) {
            st = get_granularity(r, v, &mp.granularity);
            mp.granularity_node = v;
        } else if (!strcmp(key, "group_size")) {
            st = get_int(r, key, v, 0, 1 << 20, "a whole number", &mp.group_size);
            mp.group_node = v;
        } else if (!strcmp(key, "symmetric")) {
            st = get_bool(r, key, v, &mp.symmetric);
            mp.symmetric_node = v;
        } else if (!strcmp(key, "double_quant")) {
            st = get_bool(r, key, v, &mp.double_quant);
            mp.double_quant_node = v;
        } else if (!strcmp(key, "pure")) {
            st = get_bool(r, key, v, &p->pure);
            pure_node = v;
        } else if (!strcmp(key, "overrides")) {
            st = read_overrides(r, v);
        } else if (!strcmp(key, "fallback")) {
            st = get_type(r, key, v, &p->fallback);
            fallback_node = v;
        } else if (!strcmp(key, "gptq")) {
            st = read_gptq(r, v);
            gptq_node = k;
        } else if (!strcmp(key, "calibration")) {
            st = read_calibration(r, v);
        } else if (!strcmp(key, "importance")) {
            const char *s = NULL;
            if ((st = get_string(r, key, v, &s))) return st;
            if (!strcmp(s, "calibration")) p->importance = true;
            else if (!strcmp(s, "none")) p->importance = false;
            else return fail_at(r, v, LB_ERR_FORMAT, "importance '%s' (expected calibration or none)", s);
            importance_node = v;
        } else if (!strcmp(key, "clip")) {
            st = get_bool(r, key, v, &p->clip);
            clip_node = k;
        } else if (!strcmp(key, "outlier_threshold")) {
            double t = 0;
            st = get_double(r, key, v, 1e-3, 1e30, &t);
            p->outlier_threshold = (float)t;
            threshold_node = k;
        } else { // kv_cache
            const char *s = NULL;
            if ((st = get_string(r, key, v, &s))) return st;
            const int kv = lb_kv_type_from_name(s);
            if (kv < 0) return fail_at(r, v, LB_ERR_FORMAT, "kv_cache '%s' (expected %s)", s, lb_kv_type_names());
            p->kv_type = (lb_type)kv;
        }
        if (st) return st;
    }
    if (!p->name) return fail_at(r, root, LB_ERR_MISSING, "no 'name' (required)");
    if (!p->method) return fail_at(r, root, LB_ERR_MISSING, "no 'method' (required)");
    const enum lb_method_kind kind = p->kind = lb_method_kind_of(p->method);
    if ((st = resolve_method(r, root, &mp))) return st;
    if (kind == LB_METHOD_GPTQ) {
        if (!gptq_node)
            return fail_at(r, root, LB_ERR_MISSING, "method '%s' needs a 'gptq' mapping (expected at least bits and "
                           "group_size)", p->method->name);
        p->type = lb_grid_type(p->gptq.grid);
        p->ftype = ftype_of(p->type);
    } else if (gptq_node) {
        return fail_at(r, gptq_node, LB_ERR_FORMAT, "'gptq' settings with method '%s' (expected method: gptq)",
                       p->method->name);
    }

    // Combinations that cannot mean anything.
    if (importance_node && kind != LB_METHOD_TYPE)
        return fail_at(r, importance_node, LB_ERR_FORMAT,
                       "importance applies to methods that are tensor types (q4_k_m, q4_0 ...), not to '%s' "
                       "(expected no importance key)", p->method->name);
    if (clip_node && kind != LB_METHOD_AWQ)
        return fail_at(r, clip_node, LB_ERR_FORMAT, "clip applies to method awq, not to '%s'", p->method->name);
    if (threshold_node && kind != LB_METHOD_LLM_INT8)
        return fail_at(r, threshold_node, LB_ERR_FORMAT, "outlier_threshold applies to method llm-int8, not to '%s'",
                       p->method->name);
    if (p->pure && p->method->mix)
        return fail_at(r, pure_node, LB_ERR_FORMAT,
                       "pure: true contradicts method '%s', a mix of types (expected a single-type method such as "
                       "'%.4s')", p->method->name, p->method->name);
    if (fallback_node) {
        int bs = lb_type_block_size(p->fallback);
        if (lb_type_row_bytes(p->fallback, 0) > 0 && lb_traits(p->fallback)->from_float_amax)
            return fail_at(r, fallback_node, LB_ERR_FORMAT,
                           "fallback %s is a per-tensor type (expected a type whose rows are quantized on their own)",
                           lb_type_name(p->fallback));
        if (bs > 32)
            return fail_at(r, fallback_node, LB_ERR_FORMAT,
                           "fallback %s has blocks of %d: it would not fit rows that the method's blocks do not "
                           "fit (expected a type with blocks of 32 or less)", lb_type_name(p->fallback), bs);
        bool blocked = lb_type_block_size(p->type) > 1 || p->type == LB_TYPE_COUNT || lb_method_calibrated(p->method);
        for (int i = 0; i < p->n_overrides; i++) blocked |= lb_type_block_size(p->overrides[i].type) > 1;
        if (!blocked)
            return fail_at(r, fallback_node, LB_ERR_FORMAT,
                           "fallback %s is never used: method '%s' and the overrides have no blocks (expected no "
                           "fallback)", lb_type_name(p->fallback), p->method->name);
    }
    return LB_OK;
}

lb_status lb_profile_load(lb_profile **out, const char *path, lb_error *err) {
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return lb_fail(err, LB_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct lb_profile *p = calloc(1, sizeof *p);
    if (!p || !(p->path = strdup(path)) || !(p->description = strdup(""))) {
        fclose(fp);
        lb_profile_free(p);
        return lb_fail(err, LB_ERR_NOMEM, "%s: out of memory", path);
    }
    p->fallback = LB_TYPE_COUNT;
    p->kv_type = LB_TYPE_F16;
    p->gptq = (struct lb_gptq_params){.damp_percent = 0.01, .block_size = 128};
    p->true_sequential = true;
    p->calib_samples = 128;
    p->calib_ctx = 512;
    // AWQ's defaults (llm-awq: clipping search; the grid's are resolve_awq's);
    // bitsandbytes' llm_int8_threshold.
    p->clip = true;
    p->outlier_threshold = 6.0f;

    yaml_parser_t parser;
    yaml_document_t doc;
    lb_status st = LB_OK;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, fp);
    if (!yaml_parser_load(&parser, &doc)) {
        st = lb_fail(err, LB_ERR_FORMAT, "%s:%zu:%zu: %s%s%s", path, parser.problem_mark.line + 1,
                     parser.problem_mark.column + 1, parser.problem ? parser.problem : "YAML error",
                     parser.context ? " " : "", parser.context ? parser.context : "");
    } else {
        const yaml_node_t *root = yaml_document_get_root_node(&doc);
        struct reader r = {.file = path, .doc = &doc, .p = p, .err = err};
        if (!root)
            st = lb_fail(err, LB_ERR_FORMAT, "%s:1:1: the file is empty (expected a mapping with keys %s)", path,
                         profile_keys);
        else
            st = read_profile(&r, root);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    fclose(fp);
    if (st) {
        lb_profile_free(p);
        return st;
    }
    *out = p;
    return LB_OK;
}

void lb_profile_free(lb_profile *p) {
    if (!p) return;
    for (int i = 0; i < p->n_overrides; i++) free(p->overrides[i].pattern);
    free(p->overrides);
    free(p->name);
    free(p->description);
    free(p->path);
    free(p);
}

const char *lb_profile_name(const lb_profile *p) { return p->name; }
const char *lb_profile_description(const lb_profile *p) { return p->description; }
const char *lb_profile_path(const lb_profile *p) { return p->path; }
const char *lb_profile_method(const lb_profile *p) { return p->method->name; }
lb_type lb_profile_type(const lb_profile *p) { return p->type; }
lb_type lb_profile_kv_type(const lb_profile *p) { return p->kv_type; }
int lb_profile_file_type(const lb_profile *p) { return (int)p->ftype; }
bool lb_profile_needs_calibration(const lb_profile *p) { return lb_method_calibrated(p->method) || p->importance; }

// ----------------------------------------------------------------------------
// Lookup by name

// The directories searched, in order: $XDG_CONFIG_HOME (or ~/.config), the
// installed profiles, and the source tree's (so an uninstalled build finds them).
static int profile_dirs(char dirs[][1024], int cap) {
    int n = 0;
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (n < cap && xdg && *xdg) snprintf(dirs[n++], 1024, "%s/lowbit/profiles", xdg);
    else if (n < cap && home && *home) snprintf(dirs[n++], 1024, "%s/.config/lowbit/profiles", home);
    if (n < cap) snprintf(dirs[n++], 1024, "%s", LB_PROFILE_DIR);
#ifdef LB_SOURCE_PROFILE_DIR
    if (n < cap) snprintf(dirs[n++], 1024, "%s", LB_SOURCE_PROFILE_DIR);
#endif
    return n;
}

lb_status lb_profile_find(lb_profile **out, const char *name, lb_error *err) {
    *out = NULL;
    size_t len = strlen(name);
    if (strchr(name, '/') || (len > 5 && !strcmp(name + len - 5, ".yaml"))) return lb_profile_load(out, name, err);
    if (!valid_name(name) || len > 200)
        return lb_fail(err, LB_ERR_ARG, "profile '%s': not a name (expected letters, digits, '_', '-', '.') "
                       "or a path to a .yaml file", name);
    char lower[256];
    for (size_t i = 0; i <= len; i++) lower[i] = (char)tolower((unsigned char)name[i]);

    char dirs[4][1024], path[1024 + 256 + 8], looked[1200] = "";
    int n = profile_dirs(dirs, 4);
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        if ((size_t)snprintf(path, sizeof path, "%s/%s.yaml", dirs[i], lower) >= sizeof path) continue;
        FILE *fp = fopen(path, "rb");
        if (fp) {
            fclose(fp);
            return lb_profile_load(out, path, err);
        }
        if (used < sizeof looked)
            used += (size_t)snprintf(looked + used, sizeof looked - used, "%s%s", i ? ", " : "", dirs[i]);
    }
    return lb_fail(err, LB_ERR_MISSING, "profile '%s' not found (looked for %s.yaml in %s)", name, lower, looked);
}
