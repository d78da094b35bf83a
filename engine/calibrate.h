/*
 * calibrate.h — the quantization methods that look at activations, as
 * lb_quantize_file sees them.
 *
 * Before any tensor is written, calibration_run runs the calibration text
 * through the model (calib.h) once and does what the profile asks:
 *   - importance: collects (or reads with --imatrix) an importance matrix;
 *     quantize.c then quantizes each matrix with the importance-weighted
 *     quantizer of its type (imatrix.h);
 *   - awq: scales, clips and rounds every layer matrix itself (awq.h)
 *     and hands back the finished tensors, folded norms included;
 *   - llm-int8: finds each matrix's outlier input columns and writes the
 *     int8 rows plus the outlier tensors beside them (llm_int8.h).
 * quantize.c writes what this module produced for a tensor instead of
 * quantizing it, and quantizes everything else as usual.
 */
#ifndef LB_CALIBRATE_H
#define LB_CALIBRATE_H

#include "gguf.h"
#include "profile.h"

struct lb_threadpool;
struct gguf_writer;

// One tensor a calibrated method wrote.
struct cal_tensor {
    char *name;
    lb_type type;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    void *data;        // owned
    size_t nbytes;
};

enum { CAL_MAX_OUTPUTS = 3 };

// What replaces one input tensor in the output file: the tensor itself
// (same name, maybe a new type or new values), then any companions.
struct cal_output {
    struct cal_tensor t[CAL_MAX_OUTPUTS];
    int n;
    double rel_error;  // ‖W − Ŵ‖/‖W‖ against the input tensor, in its own basis (AWQ's scales undone)
};

struct calibration;

// Whether profile p (with these parameters) needs calibration_run.
bool calibration_needed(const struct lb_profile *p, const lb_quantize_params *qp);

// Calibrate for profile p on input file f (opened again as a model from
// in_path for the forward passes). *out is NULL when nothing is needed.
// Errors name what is missing ("profile awq-4bit-g32 needs calibration text
// (--calib FILE)") or what failed.
lb_status calibration_run(struct calibration **out, const char *in_path, const struct gguf_file *f,
                          const struct lb_profile *p, const struct lb_quant_model *qm, const lb_quantize_params *qp,
                          struct lb_threadpool *pool, lb_error *err);

// The finished output for input tensor `name`, or NULL: quantize it as usual.
const struct cal_output *calibration_output(const struct calibration *c, const char *name);

// The importance of each of the `cols` columns of matrix `name` into qw:
// true when there is one. LB_ERR_FORMAT in *st when the importance matrix
// has another width for it (an imatrix made for another model).
bool calibration_importance(const struct calibration *c, const char *name, int64_t cols, float *qw, lb_status *st,
                            lb_error *err);

// Keys describing the calibration for the output file: llama-quantize's
// quantize.imatrix.{file,dataset,entries_count,chunks_count} when an
// importance matrix was used (file only when there is one).
lb_status calibration_write_kv(const struct calibration *c, struct gguf_writer *w, lb_error *err);

void calibration_free(struct calibration *c);

#endif
