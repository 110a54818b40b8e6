// Per-element and per-row math of the training kernels, shared by the CPU and
// CUDA builds so that both compute the same bits (IEEE + - * / sqrt only, no
// contraction). Include after recompute_math.hpp.
#pragma once

#include "recompute_math.hpp"

namespace torus {

TORUS_HD float relu_fwd(float x) { return x > 0.0f ? x : (x == x ? 0.0f : x); }

TORUS_HD float relu_bwd(float x, float dy) { return x > 0.0f ? dy : 0.0f; }

// One SGD element update (torch.optim.SGD with dampening 0); returns the new p.
TORUS_HD float sgd_update(float p, float g, float* buf, float lr, float momentum, float wd, bool nesterov,
                          bool first) {
    if (wd != 0.0f) g = g + wd * p;
    if (momentum != 0.0f) {
        float b = first ? g : momentum * *buf + g;
        *buf = b;
        g = nesterov ? g + momentum * b : b;
    }
    return p - lr * g;
}

// One AdamW element update (torch.optim.AdamW, amsgrad off); returns the new p.
TORUS_HD float adamw_update(float p, float g, float* m, float* v, float lr, float b1, float b2, float eps, float wd,
                            float step_size, float bc2_sqrt) {
    p = p * (1.0f - lr * wd);
    float mm = b1 * *m + (1.0f - b1) * g;
    float vv = b2 * *v + (1.0f - b2) * g * g;
    *m = mm;
    *v = vv;
    float denom = sqrtf(vv) / bc2_sqrt + eps;
    return p - step_size * (mm / denom);
}

}  // namespace torus
