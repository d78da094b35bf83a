/*
 * kernels.c — the scalar kernel table and the choice of ISA.
 *
 * The choice is made once per process, on the first lb_kernels() call:
 * LOWBIT_CPU if set, else cpuid ("auto"). Tests force each ISA in turn with
 * lb_cpu_select. The chosen table is the one piece of process-wide state in
 * the engine: it describes the CPU, not any model or context, so sharing it
 * is harmless.
 *
 * The names (LOWBIT_CPU, lb_cpu_select):
 *   scalar               the reference kernels, any CPU;
 *   avx2                 needs avx2, fma and f16c;
 *   avx512               needs those and avx512f, bw, vl and dq;
 *   avx512vnni           needs those and avx512vnni;
 *   auto                 the first of avx512vnni, avx512, avx2, scalar this CPU runs;
 *   avx512-emulated, avx512vnni-emulated
 *                        the AVX-512 kernels compiled for AVX2 with SIMDe
 *                        (kernels_avx512.c), for tests on CPUs without
 *                        AVX-512: slow, never chosen by auto.
 * A table this CPU cannot run (or this build lacks) is refused, and
 * LOWBIT_CPU then falls back to auto: never an illegal instruction.
 */
#include "config.h"
#include "types.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "llm_int8.h"
#include "quants.h"
#include "attention.h"
#include "model.h"
#include "repack.h"
#include "kernels_avx512.h"
#include "kernels_batch.h"

// The scalar table names the reference functions explicitly (rather than
// leaving NULLs) so that it reads as the list of what every ISA must provide.
const struct lb_kernels lb_kernels_scalar = {
    .isa = "scalar",
    .vec_dot = {
        [LB_TYPE_F32] = lb_vec_dot_f32_f32,
        [LB_TYPE_F16] = lb_vec_dot_f16_f32,
        [LB_TYPE_BF16] = lb_vec_dot_bf16_f32,
        [LB_TYPE_Q4_0] = lb_vec_dot_q4_0_q8_0,
        [LB_TYPE_Q4_1] = lb_vec_dot_q4_1_q8_1,
        [LB_TYPE_Q5_0] = lb_vec_dot_q5_0_q8_0,
        [LB_TYPE_Q5_1] = lb_vec_dot_q5_1_q8_1,
        [LB_TYPE_Q8_0] = lb_vec_dot_q8_0_q8_0,
        [LB_TYPE_Q2_K] = lb_vec_dot_q2_K_q8_K,
        [LB_TYPE_Q3_K] = lb_vec_dot_q3_K_q8_K,
        [LB_TYPE_Q4_K] = lb_vec_dot_q4_K_q8_K,
        [LB_TYPE_Q5_K] = lb_vec_dot_q5_K_q8_K,
        [LB_TYPE_Q6_K] = lb_vec_dot_q6_K_q8_K,
        [LB_TYPE_NF4] = lb_vec_dot_nf4_f32,
        [LB_TYPE_FP4] = lb_vec_dot_fp4_f32,
        LB_INT_SCALAR_VEC_DOTS
        [LB_TYPE_FP8_E4M3] = lb_vec_dot_fp8_e4m3_f32,
        [LB_TYPE_FP8_E5M2] = lb_vec_dot_fp8_e5m2_f32,
        [LB_TYPE_NF4_DQ] = lb_vec_dot_nf4_dq_f32,
        [LB_TYPE_LLM_INT8] = lb_vec_dot_llm_int8,
    },
    .from_float = {
        [LB_TYPE_LLM_INT8] = lb_quantize_row_llm_int8_ref,
        [LB_TYPE_Q8_0] = lb_quantize_row_q8_0_ref,
        [LB_TYPE_Q8_1] = lb_quantize_row_q8_1_ref,
        [LB_TYPE_Q8_K] = lb_quantize_row_q8_K_ref,
    },
    .gemm_x8 = {
        [LB_TYPE_Q4_0] = lb_gemm_x8_q4_0_ref,
        [LB_TYPE_Q8_0] = lb_gemm_x8_q8_0_ref,
        [LB_TYPE_Q4_K] = lb_gemm_x8_q4_K_ref,
        [LB_TYPE_Q6_K] = lb_gemm_x8_q6_K_ref,
    },
    .gemm_f16 = lb_gemm_f16_ref,
    .attn_scores = lb_attn_scores_ref,
    .attn_accum = lb_attn_accum_ref,
    .dot_batch = lb_dot_batch_scalar,
};

#if defined(__x86_64__) || defined(__i386__)
#define LB_HAVE_AVX2_TABLE 1
#endif

static bool cpu_has_avx2(void) {
#ifdef LB_HAVE_AVX2_TABLE
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
    return false;
#endif
}

// AVX-512 (kernels_avx512.h): tables filled on first use, each behind the
// check that this CPU runs it (the fill functions are compiled for AVX-512
// too, so a native one may only be called after that check).
#ifdef LB_HAVE_AVX2_TABLE
static bool cpu_has_avx512(void) {
    return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}
static bool cpu_has_avx512vnni(void) { return cpu_has_avx512() && __builtin_cpu_supports("avx512vnni"); }

static const struct avx512_variant {
    const char *isa;
    void (*fill)(struct lb_kernels *);
    bool (*usable)(void);
} avx512_variants[] = {
#ifdef LB_HAVE_AVX512VNNI
    {"avx512vnni", lb_kernels_fill_avx512vnni, cpu_has_avx512vnni},
#endif
#ifdef LB_HAVE_AVX512
    {"avx512", lb_kernels_fill_avx512, cpu_has_avx512},
#endif
#ifdef LB_HAVE_SIMDE
    {"avx512vnni-emulated", lb_kernels_fill_avx512vnni_emulated, cpu_has_avx2},
    {"avx512-emulated", lb_kernels_fill_avx512_emulated, cpu_has_avx2},
#endif
    {NULL, NULL, NULL},
};
enum { N_AVX512 = sizeof avx512_variants / sizeof avx512_variants[0] - 1 };

// The filled table of variant v; NULL when this CPU cannot run it.
static const struct lb_kernels *avx512_table(const struct avx512_variant *v) {
    static struct lb_kernels tables[N_AVX512 + 1];
    static bool filled[N_AVX512 + 1];
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    if (!v->usable()) return NULL;
    const size_t i = (size_t)(v - avx512_variants);
    pthread_mutex_lock(&lock);
    if (!filled[i]) {
        v->fill(&tables[i]);
        filled[i] = true;
    }
    pthread_mutex_unlock(&lock);
    return &tables[i];
}
#endif

// The table for an ISA name, or NULL when the name is unknown or this CPU
// cannot run it. "auto" is the best this CPU runs.
static const struct lb_kernels *table_for(const char *isa) {
    if (!isa) return NULL;
    if (strcmp(isa, "scalar") == 0) return &lb_kernels_scalar;
#ifdef LB_HAVE_AVX2_TABLE
    if (strcmp(isa, "avx2") == 0) return cpu_has_avx2() ? &lb_kernels_avx2 : NULL;
    for (const struct avx512_variant *v = avx512_variants; v->isa; v++)
        if (strcmp(isa, v->isa) == 0) return avx512_table(v);
    if (strcmp(isa, "auto") == 0) {
        // Native variants come first in the list, most capable first.
        for (const struct avx512_variant *v = avx512_variants; v->isa; v++) {
            if (strstr(v->isa, "emulated")) break;
            const struct lb_kernels *k = avx512_table(v);
            if (k) return k;
        }
        return cpu_has_avx2() ? &lb_kernels_avx2 : &lb_kernels_scalar;
    }
#else
    if (strcmp(isa, "auto") == 0) return &lb_kernels_scalar;
#endif
    return NULL;
}

static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;
static const struct lb_kernels *chosen; // written once by choose(), then only by lb_cpu_select

static void choose(void) {
    // An unusable LOWBIT_CPU (unknown name, or avx2/avx512 on a CPU without
    // it) falls back to auto rather than crashing on an illegal instruction.
    const struct lb_kernels *table = table_for(getenv("LOWBIT_CPU"));
    if (!table) table = table_for("auto");
    __atomic_store_n(&chosen, table, __ATOMIC_RELEASE);
}

const struct lb_kernels *lb_kernels(void) {
    pthread_once(&chosen_once, choose);
    return __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
}

bool lb_cpu_select(const char *isa) {
    const struct lb_kernels *table = table_for(isa);
    if (!table) return false;
    pthread_once(&chosen_once, choose); // so a later first lb_kernels() cannot undo this
    __atomic_store_n(&chosen, table, __ATOMIC_RELEASE);
    return true;
}

const char *lb_cpu_name(void) { return lb_kernels()->isa; }
