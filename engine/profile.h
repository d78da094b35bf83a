/*
 * profile.h — what a quantization profile says (parsed from YAML by
 * profile.c) and how one tensor's type follows from it (quantize.c, shared
 * with live re-quantization in model.c). The file format is documented in
 * man/lowbit-profile.5.
 */
#ifndef LB_PROFILE_H
#define LB_PROFILE_H

#include "lowbit.h"

// llama.cpp's file types (include/llama.h, enum llama_ftype): the value
// written as general.file_type, and the key to llama.cpp's per-tensor rules.
enum lb_ftype {
    LB_FTYPE_ALL_F32 = 0,
    LB_FTYPE_MOSTLY_F16 = 1,
    LB_FTYPE_MOSTLY_Q4_0 = 2,
    LB_FTYPE_MOSTLY_Q4_1 = 3,
    LB_FTYPE_MOSTLY_Q8_0 = 7,
    LB_FTYPE_MOSTLY_Q5_0 = 8,
    LB_FTYPE_MOSTLY_Q5_1 = 9,
    LB_FTYPE_MOSTLY_Q2_K = 10,
    LB_FTYPE_MOSTLY_Q3_K_S = 11,
    LB_FTYPE_MOSTLY_Q3_K_M = 12,
    LB_FTYPE_MOSTLY_Q4_K_S = 14,
    LB_FTYPE_MOSTLY_Q4_K_M = 15,
    LB_FTYPE_MOSTLY_Q5_K_S = 16,
    LB_FTYPE_MOSTLY_Q5_K_M = 17,
    LB_FTYPE_MOSTLY_Q6_K = 18,
    LB_FTYPE_MOSTLY_BF16 = 32,
    // lowbit's own file types, numbered as their type ids (lowbit.h), far
    // outside llama.cpp's enum: files holding them are lowbit-only anyway.
    LB_FTYPE_LOWBIT_NF4 = 128,
    LB_FTYPE_LOWBIT_FP4 = 129,
};

// One accepted value of `method:`: the type most weight matrices get, and the
// llama.cpp file type whose rules move some tensors to other types.
struct lb_method {
    const char *name;   // as written in a profile, lower case
    lb_type type;
    enum lb_ftype ftype;
    bool mix;           // a llama.cpp mix (q4_k_m...): its rules are the point, so `pure` contradicts it
};
extern const struct lb_method lb_methods[];
extern const int lb_n_methods;

struct lb_override {
    char *pattern;      // fnmatch(3) glob over the whole tensor name
    lb_type type;
};

struct lb_profile {
    char *path;         // the file it was read from
    char *name;
    char *description;  // "" when absent
    const struct lb_method *method;
    bool pure;          // only overrides and the fallback change the method's type
    lb_type fallback;   // LB_TYPE_COUNT: llama.cpp's fallback chain
    lb_type kv_type;    // LB_TYPE_F16, F32, Q8_0 or E4M3 (kv.h)
    struct lb_override *overrides;
    int n_overrides;
};

// Whether a type can hold weights in a file we write (has a quantizer and a
// dot product): F32, F16, BF16, the legacy and the k-quants; not Q8_1/Q8_K.
bool lb_type_is_weight(lb_type t);

// What llama.cpp's rules read about the model besides the tensor itself.
struct lb_quant_model {
    int n_layer;        // {arch}.block_count
    int n_gqa;          // head_count / head_count_kv (1 when unknown)
    bool tied;          // no output.weight: token_embd doubles as the output head
    bool is_70b;        // llama with 80 layers (llama.cpp's LLM_TYPE_70B bump of attn_v)
};

// Why a tensor got its type, for the per-tensor table.
enum lb_quant_rule {
    LB_RULE_COPY,       // not a weight matrix (1D, norms): kept as it is
    LB_RULE_METHOD,     // the method's type
    LB_RULE_MIX,        // moved by llama.cpp's rules for the method's file type
    LB_RULE_OVERRIDE,   // an override's pattern matched
    LB_RULE_FALLBACK,   // rows did not fit the chosen type's blocks
};
const char *lb_quant_rule_name(enum lb_quant_rule r);

// The type tensor `name` of n_dims dimensions, row length ne0, currently of
// type `cur`, gets under profile p (llama.cpp's llama_tensor_get_type, with
// the profile's overrides in place of --tensor-type). Defined in quantize.c.
lb_type lb_quant_tensor_type(const struct lb_profile *p, const struct lb_quant_model *qm, const char *name,
                             int n_dims, int64_t ne0, lb_type cur, enum lb_quant_rule *rule);

#endif
