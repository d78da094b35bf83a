/*
 * profile.h — what a quantization profile says (parsed from YAML by
 * profile.c) and how one tensor's type follows from it (quantize.c, shared
 * with live re-quantization in model.c). The file format is documented in
 * man/lowbit-profile.5.
 */
#ifndef LB_PROFILE_H
#define LB_PROFILE_H

#include <string.h>

#include "gptq.h"
#include "grid.h"
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
    // ... and every other lowbit type id (130 and up) as its own file type.
};

// How a method quantizes: with a type's own quantizer, or by one of the
// methods that look at calibration activations (sequential.h, calibrate.h).
enum lb_method_kind {
    LB_METHOD_TYPE = 0,   // the type's quantizer (rtn: the grid's type; importance-weighted with `importance: calibration`)
    LB_METHOD_GPTQ,       // GPTQ on the `gptq:` grid, layer by layer on calibration inputs (gptq.c, sequential.c)
    LB_METHOD_AWQ,        // activation-aware scales and clipping, then round to nearest on a grid (awq.c)
    LB_METHOD_LLM_INT8,   // vector-wise int8, outlier input columns kept in f16 (llm_int8.c)
};

// One accepted value of `method:`: the type most weight matrices get, and the
// llama.cpp file type whose rules move some tensors to other types.
struct lb_method {
    const char *name;   // as written in a profile, lower case
    lb_type type;
    enum lb_ftype ftype;
    bool mix;           // a llama.cpp mix (q4_k_m...): its rules are the point, so `pure` contradicts it
};
// The methods that are not a type's own quantizer; every other one
// (rtn included, whose type its grid chooses) is LB_METHOD_TYPE.
static inline enum lb_method_kind lb_method_kind_of(const struct lb_method *m) {
    if (!strcmp(m->name, "gptq")) return LB_METHOD_GPTQ;
    if (!strcmp(m->name, "awq")) return LB_METHOD_AWQ;
    if (!strcmp(m->name, "llm-int8")) return LB_METHOD_LLM_INT8;
    return LB_METHOD_TYPE;
}
// A calibrated method (gptq, awq, llm-int8) needs calibration text. (A type
// method with `importance: calibration` needs it too, or an imatrix file:
// lb_profile_needs_calibration.)
static inline bool lb_method_calibrated(const struct lb_method *m) { return lb_method_kind_of(m) != LB_METHOD_TYPE; }
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
    enum lb_method_kind kind;   // how the method quantizes (lb_method_kind_of)
    // What the method resolves to once its parameters are read: the type
    // most weight matrices get and the file type written. rtn: from bits,
    // granularity, group_size, symmetric; nf4: double_quant; gptq and awq:
    // the type holding its grid (lb_grid_type; LB_TYPE_COUNT when none
    // does), whose file type is that type's llama.cpp file type (or
    // lowbit's: the type id).
    lb_type type;
    enum lb_ftype ftype;
    // method gptq: the `gptq:` mapping.
    struct lb_gptq_params gptq;
    bool true_sequential;  // re-collect inputs after each sub-layer group (q/k/v, o, gate/up, down)
    // `calibration:` — defaults for --calib-samples and --calib-ctx.
    int calib_samples;
    int calib_ctx;
    // Activation-aware methods (calibrate.h); each key is refused with methods it does not apply to.
    bool importance;            // `importance: calibration`: importance-weighted quantizers (imatrix.h)
    struct lb_grid grid;        // awq: bits, granularity/group_size, symmetric
    bool clip;                  // awq: search each group's clipping range (default true)
    float outlier_threshold;    // llm-int8: |x| at or above which an input column is an outlier (6.0)
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
    bool has_imatrix;   // quantizing with importance: Q4_0/Q5_0 move early ffn_down to Q4_1/Q5_1
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

// Whether type t can hold rows of ne0 weights beyond its block size: NF4_DQ
// double-quantizes a row's absmax values as one second-level block, which
// bitsandbytes caps at 256 values (rows of at most 256 × 64 weights); wider
// rows are refused with a message naming the tensor (LB_ERR_UNSUPPORTED).
// Defined in quantize.c; both lb_quantize_file and load-time requantization ask.
lb_status lb_quant_check_row(lb_type t, const char *file, const char *name, int64_t ne0, lb_error *err);

// The type tensor `name` of n_dims dimensions, row length ne0, currently of
// type `cur`, gets under profile p (llama.cpp's llama_tensor_get_type, with
// the profile's overrides in place of --tensor-type). Defined in quantize.c.
lb_type lb_quant_tensor_type(const struct lb_profile *p, const struct lb_quant_model *qm, const char *name,
                             int n_dims, int64_t ne0, lb_type cur, enum lb_quant_rule *rule);

#endif
