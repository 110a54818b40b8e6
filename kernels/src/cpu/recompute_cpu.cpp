// CPU recompute kernels (fp32). Same arithmetic, in the same order, as
// cuda/recompute_cuda.cu; see recompute_math.hpp.
#include "recompute_cpu.hpp"

#include <algorithm>
#include <cmath>

#include "rows.hpp"

#ifndef TORUS_CPU_NS
#error "TORUS_CPU_NS must name the ISA namespace (compiled once per instruction set)"
#endif

namespace torus { namespace TORUS_CPU_NS { namespace cpu_recompute {


void bias_gelu_forward(const float* x, const float* bias, float* y, int64_t rows, int64_t cols) {
    parallel_rows(rows, cols, [&](int64_t r) {
        const float* xr = x + r * cols;
        float* yr = y + r * cols;
        for (int64_t c = 0; c < cols; c++) yr[c] = gelu_forward(xr[c] + bias[c]);
    });
}

void bias_gelu_backward(const float* x, const float* bias, const float* dy, float* dx, float* dbias, int64_t rows,
                        int64_t cols) {
    parallel_rows(rows, cols, [&](int64_t r) {
        const float* xr = x + r * cols;
        const float* dyr = dy + r * cols;
        float* dxr = dx + r * cols;
        for (int64_t c = 0; c < cols; c++) dxr[c] = gelu_grad(xr[c] + bias[c]) * dyr[c];
    });
    if (dbias != nullptr) {
        column_sums<1>(rows, cols, [&](int64_t r, int64_t c, float* t) { t[0] = dx[r * cols + c]; },
                       [&](int64_t c, const float* s) { dbias[c] = s[0]; });
    }
}

void dropout(const float* x, float* y, int64_t n, float p, uint64_t seed, uint64_t offset) {
    float scale = 1.0f / (1.0f - p);
    ThreadPool& pool = ThreadPool::instance();
    int64_t tasks = pool.split(n, 1 << 14);
    int64_t per = (n + tasks - 1) / std::max<int64_t>(tasks, 1);
    pool.run(tasks, [&](int64_t t) {
        int64_t lo = t * per, hi = std::min(n, lo + per);
        // the mask is dropout_keep(seed, offset + i); one Philox call gives the four lanes of a counter
        philox_out o{};
        for (int64_t i = lo; i < hi; i++) {
            uint64_t e = offset + (uint64_t)i;
            if (i == lo || (e & 3u) == 0)
                o = philox4x32_10((uint32_t)(e >> 2), (uint32_t)(e >> 34), (uint32_t)seed, (uint32_t)(seed >> 32));
            float u = (float)(o.v[e & 3u] >> 8) * 5.9604644775390625e-8f;
            y[i] = u >= p ? x[i] * scale : 0.0f;
        }
    });
}

void layernorm_forward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd,
                       int64_t rows, int64_t cols, float eps) {
    float n = (float)cols;
    parallel_rows(rows, cols, [&](int64_t r) {
        const float* xr = x + r * cols;
        float mu = row_sum(cols, [&](int64_t i) { return xr[i]; }) / n;
        float var = row_sum(cols, [&](int64_t i) { float d = xr[i] - mu; return d * d; }) / n;
        float rs = 1.0f / sqrtf(var + eps);
        float* yr = y + r * cols;
        for (int64_t c = 0; c < cols; c++) yr[c] = (xr[c] - mu) * rs * gamma[c] + beta[c];
        if (mean) mean[r] = mu;
        if (rstd) rstd[r] = rs;
    });
}

void layernorm_backward(const float* x, const float* gamma, const float* dy, float* dx, float* dgamma, float* dbeta,
                        float* scratch, int64_t rows, int64_t cols, float eps) {
    float n = (float)cols;
    parallel_rows(rows, cols, [&](int64_t r) {
        const float* xr = x + r * cols;
        const float* dyr = dy + r * cols;
        // statistics recomputed exactly as in the forward pass
        float mu = row_sum(cols, [&](int64_t i) { return xr[i]; }) / n;
        float var = row_sum(cols, [&](int64_t i) { float d = xr[i] - mu; return d * d; }) / n;
        float rs = 1.0f / sqrtf(var + eps);
        float a = row_sum(cols, [&](int64_t i) { return gamma[i] * dyr[i]; }) / n;
        float b = row_sum(cols, [&](int64_t i) { return gamma[i] * dyr[i] * ((xr[i] - mu) * rs); }) / n;
        float* dxr = dx + r * cols;
        for (int64_t c = 0; c < cols; c++) {
            float xhat = (xr[c] - mu) * rs;
            dxr[c] = rs * (gamma[c] * dyr[c] - a - xhat * b);
        }
    });
    if (dgamma != nullptr || dbeta != nullptr) {
        // per-row statistics once more (into the caller's scratch), then the canonical column sums
        float* mus = scratch;
        float* rss = scratch + rows;
        parallel_rows(rows, cols, [&](int64_t r) {
            const float* xr = x + r * cols;
            float mu = row_sum(cols, [&](int64_t i) { return xr[i]; }) / n;
            float var = row_sum(cols, [&](int64_t i) { float d = xr[i] - mu; return d * d; }) / n;
            mus[r] = mu;
            rss[r] = 1.0f / sqrtf(var + eps);
        });
        column_sums<2>(rows, cols,
                       [&](int64_t r, int64_t c, float* t) {
                           float d = dy[r * cols + c];
                           t[0] = d * ((x[r * cols + c] - mus[r]) * rss[r]);
                           t[1] = d;
                       },
                       [&](int64_t c, const float* s) {
                           if (dgamma) dgamma[c] = s[0];
                           if (dbeta) dbeta[c] = s[1];
                       });
    }
}

} } }
