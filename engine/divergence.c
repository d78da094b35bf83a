/*
 * divergence.c — comparing next-token distributions: log-softmax and the KL
 * divergence between two log-probability rows. perplexity (--kld-base) and the
 * chat's live quantization error both measure KL(source ‖ quantized) with it.
 */
#include "internal.h"

#include <math.h>

void lb_log_softmax(const float *logits, int n, float *logp) {
    float mx = logits[0];
    for (int i = 1; i < n; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0; // double accumulation, as llama.cpp's perplexity
    for (int i = 0; i < n; i++) sum += exp((double)logits[i] - mx);
    const double lse = mx + log(sum);
    // Reads of logits[i] are done by now, so logp may be logits (in place).
    for (int i = 0; i < n; i++) logp[i] = (float)(logits[i] - lse);
}

double lb_kl_divergence(const float *base_logp, const float *logp, int n) {
    double kl = 0;
    for (int i = 0; i < n; i++) kl += exp((double)base_logp[i]) * ((double)base_logp[i] - logp[i]);
    return kl;
}
