/*
 * profile.c — quantization profiles: YAML files (read with libyaml's document
 * loader) that say which type each tensor is quantized to, and where a
 * profile named on the command line is looked for. The schema is
 * man/lowbit-profile.5; every message names file:line:column of the node at
 * fault, lines and columns counted from 1 as editors do.
 */
#include "profile.h"

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
// FP4), whose only llama.cpp rule is the output head's.

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
};
const int lb_n_methods = (int)(sizeof lb_methods / sizeof lb_methods[0]);

bool lb_type_is_weight(lb_type t) {
    const struct lb_type_traits *tr = lb_traits(t);
    return tr && tr->from_float_ref && tr->vec_dot && t != LB_TYPE_Q8_1 && t != LB_TYPE_Q8_K;
}

static const char *const profile_keys = "name, description, method, pure, overrides, fallback, kv_cache";

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
                       "q5_1, q2_k, q3_k, q4_k, q5_k, q6_k, nf4, fp4)", key, s);
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

static bool valid_name(const char *s) {
    if (!*s) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.') return false;
    return true;
}

static lb_status read_profile(struct reader *r, const yaml_node_t *root) {
    static const char *const keys[] = {"name", "description", "method", "pure", "overrides", "fallback",
                                       "kv_cache", NULL};
    struct lb_profile *p = r->p;
    if (root->type != YAML_MAPPING_NODE)
        return fail_at(r, root, LB_ERR_FORMAT, "the profile is %s (expected a mapping with keys %s)",
                       node_kind(root), profile_keys);
    lb_status st = check_keys(r, root, keys, profile_keys);
    if (st) return st;
    const yaml_node_t *pure_node = NULL, *fallback_node = NULL;
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
        } else if (!strcmp(key, "pure")) {
            st = get_bool(r, key, v, &p->pure);
            pure_node = v;
        } else if (!strcmp(key, "overrides")) {
            st = read_overrides(r, v);
        } else if (!strcmp(key, "fallback")) {
            st = get_type(r, key, v, &p->fallback);
            fallback_node = v;
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

    // Combinations that cannot mean anything.
    if (p->pure && p->method->mix)
        return fail_at(r, pure_node, LB_ERR_FORMAT,
                       "pure: true contradicts method '%s', a mix of types (expected a single-type method such as "
                       "'%.4s')", p->method->name, p->method->name);
    if (fallback_node) {
        int bs = lb_type_block_size(p->fallback);
        if (bs > 32)
            return fail_at(r, fallback_node, LB_ERR_FORMAT,
                           "fallback %s has blocks of %d: it would not fit rows that the method's blocks do not "
                           "fit (expected a type with blocks of 32 or less)", lb_type_name(p->fallback), bs);
        bool blocked = lb_type_block_size(p->method->type) > 1;
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
lb_type lb_profile_kv_type(const lb_profile *p) { return p->kv_type; }
int lb_profile_file_type(const lb_profile *p) { return (int)p->method->ftype; }

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
