// CPU training kernels (fp32). Same arithmetic, in the same order, as
// cuda/train_cuda.cu; see train_math.hpp and recompute_math.hpp. Column sums use
// the canonical column order of rows.hpp.
#include "train_cpu.hpp"

#include <math.h>

#include "rows.hpp"
#include "../train_math.hpp"

#ifndef TORUS_CPU_NS
#error "TORUS_CPU_NS must name the ISA namespace (compiled once per instruction set)"
#endif

namespace torus { namespace TORUS_CPU_NS { namespace cpu_train {

using TORUS_CPU_NS::cpu_recompute::column_sums;
using TORUS_CPU_NS::cpu_recompute::parallel_for;
using TORUS_CPU_NS::cpu_recompute::parallel_rows;
using TORUS_CPU_NS::cpu_recompute::row_sum;

void relu_forward(const float* x, float* y, int64_t n) {
    parallel_for(n, 1 << 15, [&](int64_t i) { y[i] = relu_fwd(x[i]); });
}

void relu_backward(const float* x, const float* dy, float* dx, int64_t n) {
    parallel_for(n, 1 << 15, [&](int64_t i) { dx[i] = relu_bwd(x[i], dy[i]); });
}

void bias_add(float* y, const float* bias, int64_t rows, int64_t cols) {
    parallel_rows(rows, cols, [&](int64_t r) {
        float* yr = y + r * cols;
        for (int64_t c = 0; c < cols; c++) yr[c] = yr[c] + bias[c];
    });
}

void column_sum(const float* v, float* out, int64_t rows, int64_t cols, bool accumulate) {
    column_sums<1>(rows, cols, [&](int64_t r, int64_t c, float* t) { t[0] = v[r * cols + c]; },
                   [&](int64_t c, const float* s) { out[c] = accumulate ? out[c] + s[0] : s[0]; });
}

void axpy(float alpha, const float* x, float* y, int64_t n) {
    parallel_for(n, 1 << 15, [&](int64_t i) { y[i] = y[i] + alpha * x[i]; });
}

void softmax_xent(const float* x, const int32_t* labels, float* loss, float* dx, int64_t rows, int64_t cols,
                  float grad_scale) {
    parallel_rows(rows, cols, [&](int64_t r) {
        const float* xr = x + r * cols;
        int32_t label = labels[r];
        bool valid = label >= 0 && label < cols;
        float mx = -INFINITY;
        for (int64_t c = 0; c < cols; c++) mx = xr[c] > mx ? xr[c] : mx;
        float s = row_sum(cols, [&](int64_t i) { return exp_portable(xr[i] - mx); });
        loss[r] = valid ? log_portable(s) - (xr[label] - mx) : NAN;
        if (dx != nullptr) {
            float* dr = dx + r * cols;
            for (int64_t c = 0; c < cols; c++) {
                float prob = exp_portable(xr[c] - mx) / s;
                dr[c] = valid ? (prob - (c == label ? 1.0f : 0.0f)) * grad_scale : NAN;
            }
        }
    });
}

void sgd_step(float* p, const float* g, float* buf, int64_t n, float lr, float momentum, float wd, bool nesterov,
              bool first) {
    parallel_for(n, 1 << 14, [&](int64_t i) {
        float dummy = 0.0f;
        p[i] = sgd_update(p[i], g[i], buf ? buf + i : &dummy, lr, momentum, wd, nesterov, first);
    });
}

void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, float lr, float b1, float b2, float eps,
                float wd, float bc1, float bc2) {
    float step_size = lr / bc1;
    float bc2_sqrt = sqrtf(bc2);
    parallel_for(n, 1 << 14, [&](int64_t i) {
        p[i] = adamw_update(p[i], g[i], m + i, v + i, lr, b1, b2, eps, wd, step_size, bc2_sqrt);
    });
}

} } }
