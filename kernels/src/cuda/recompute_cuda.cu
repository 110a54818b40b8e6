// CUDA recompute kernels (fp32). The arithmetic and its order match
// cpu/recompute_cpu.cpp exactly (see recompute_math.hpp): row reductions use one
// warp per row with 32 interleaved partials and an xor-shuffle butterfly; column
// reductions use the same order along the rows (column_sums.cuh). Compiled with
// --fmad=false, so CPU and GPU results are bit-identical.
#include <cuda_runtime.h>

#include "../common.hpp"
#include "../cuda_kernels.hpp"
#include "../recompute_math.hpp"
#include "column_sums.cuh"
#include "cuda_util.hpp"

namespace torus { namespace cuda {

namespace {

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n items (capped; the loops cover the rest).
int blocks_for(int64_t n, int per_block) {
    int64_t b = (n + per_block - 1) / per_block;
    return (int)(b < 65535 * 32 ? (b < 1 ? 1 : b) : 65535 * 32);
}

// Blocks for one warp per row (no cap: each warp owns one row).
int blocks_for_rows(int64_t rows) {
    return (int)((rows * 32 + kThreads - 1) / kThreads);
}

__global__ void bias_gelu_fwd_kernel(const float* x, const float* bias, float* y, int64_t n, int64_t cols) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = gelu_forward(x[i] + bias[i % cols]);
}

__global__ void bias_gelu_bwd_kernel(const float* x, const float* bias, const float* dy, float* dx, int64_t n,
                                     int64_t cols) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dx[i] = gelu_grad(x[i] + bias[i % cols]) * dy[i];
}

__global__ void dropout_kernel(const float* x, float* y, int64_t n, float p, float scale, uint64_t seed,
                               uint64_t offset) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = dropout_keep(seed, offset + (uint64_t)i, p) ? x[i] * scale : 0.0f;
}

// Sum over a row of value(i) in the canonical order; every lane returns the sum.
template <class G>
__device__ float warp_row_sum(int64_t cols, G value) {
    int lane = threadIdx.x & 31;
    float p = 0.0f;
    for (int64_t i = lane; i < cols; i += kLanes) p += value(i);
    for (int off = kLanes / 2; off >= 1; off /= 2) p = p + __shfl_xor_sync(0xffffffffu, p, off);
    return p;
}

__global__ void layernorm_fwd_kernel(const float* x, const float* gamma, const float* beta, float* y, float* mean,
                                     float* rstd, int64_t rows, int64_t cols, float eps) {
    int64_t r = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
    if (r >= rows) return;
    const float* xr = x + r * cols;
    float n = (float)cols;
    float mu = warp_row_sum(cols, [&](int64_t i) { return xr[i]; }) / n;
    float var = warp_row_sum(cols, [&](int64_t i) { float d = xr[i] - mu; return d * d; }) / n;
    float rs = 1.0f / sqrtf(var + eps);
    float* yr = y + r * cols;
    for (int64_t c = threadIdx.x & 31; c < cols; c += 32) yr[c] = (xr[c] - mu) * rs * gamma[c] + beta[c];
    if ((threadIdx.x & 31) == 0) {
        if (mean) mean[r] = mu;
        if (rstd) rstd[r] = rs;
    }
}

__global__ void layernorm_bwd_kernel(const float* x, const float* gamma, const float* dy, float* dx, float* mus,
                                     float* rss, int64_t rows, int64_t cols, float eps) {
    int64_t r = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
    if (r >= rows) return;
    const float* xr = x + r * cols;
    const float* dyr = dy + r * cols;
    float n = (float)cols;
    float mu = warp_row_sum(cols, [&](int64_t i) { return xr[i]; }) / n;
    float var = warp_row_sum(cols, [&](int64_t i) { float d = xr[i] - mu; return d * d; }) / n;
    float rs = 1.0f / sqrtf(var + eps);
    float a = warp_row_sum(cols, [&](int64_t i) { return gamma[i] * dyr[i]; }) / n;
    float b = warp_row_sum(cols, [&](int64_t i) { return gamma[i] * dyr[i] * ((xr[i] - mu) * rs); }) / n;
    float* dxr = dx + r * cols;
    for (int64_t c = threadIdx.x & 31; c < cols; c += 32) {
        float xhat = (xr[c] - mu) * rs;
        dxr[c] = rs * (gamma[c] * dyr[c] - a - xhat * b);
    }
    if ((threadIdx.x & 31) == 0 && mus != nullptr) {
        mus[r] = mu;
        rss[r] = rs;
    }
}

// dgamma and dbeta terms of (r, c), from the row statistics the backward kernel saved.
struct LayerNormParamTerms {
    const float *x, *dy, *mus, *rss;
    int64_t cols;
    __device__ void operator()(int64_t r, int64_t c, float* t) const {
        float d = dy[r * cols + c];
        t[0] = d * ((x[r * cols + c] - mus[r]) * rss[r]);
        t[1] = d;
    }
};

struct StoreParamGrads {
    float *dgamma, *dbeta;
    __device__ void operator()(int64_t c, const float* s) const {
        if (dgamma) dgamma[c] = s[0];
        if (dbeta) dbeta[c] = s[1];
    }
};

}  // namespace

int bias_gelu_forward(int device, void* s, const float* x, const float* bias, float* y, int64_t rows, int64_t cols) {
    TORUS_CUDA_CHECK(use_device(device));
    int64_t n = rows * cols;
    if (n == 0) return TORUS_OK;
    bias_gelu_fwd_kernel<<<blocks_for(n, kThreads), kThreads, 0, (cudaStream_t)s>>>(x, bias, y, n, cols);
    return check_launch("bias_gelu_forward");
}

int bias_gelu_backward(int device, void* s, const float* x, const float* bias, const float* dy, float* dx,
                       float* dbias, int64_t rows, int64_t cols) {
    TORUS_CUDA_CHECK(use_device(device));
    int64_t n = rows * cols;
    if (n == 0) return TORUS_OK;
    bias_gelu_bwd_kernel<<<blocks_for(n, kThreads), kThreads, 0, (cudaStream_t)s>>>(x, bias, dy, dx, n, cols);
    TORUS_CUDA_CHECK(check_launch("bias_gelu_backward"));
    if (dbias != nullptr) return column_sum(device, s, dx, dbias, rows, cols, false);
    return TORUS_OK;
}

int dropout(int device, void* s, const float* x, float* y, int64_t n, float p, uint64_t seed, uint64_t offset) {
    TORUS_CUDA_CHECK(use_device(device));
    if (n == 0) return TORUS_OK;
    float scale = 1.0f / (1.0f - p);
    dropout_kernel<<<blocks_for(n, kThreads), kThreads, 0, (cudaStream_t)s>>>(x, y, n, p, scale, seed, offset);
    return check_launch("dropout");
}

int layernorm_forward(int device, void* s, const float* x, const float* gamma, const float* beta, float* y,
                      float* mean, float* rstd, int64_t rows, int64_t cols, float eps) {
    TORUS_CUDA_CHECK(use_device(device));
    if (rows == 0) return TORUS_OK;
    layernorm_fwd_kernel<<<blocks_for_rows(rows), kThreads, 0, (cudaStream_t)s>>>(x, gamma, beta, y, mean,
                                                                                             rstd, rows, cols, eps);
    return check_launch("layernorm_forward");
}

int layernorm_backward(int device, void* s, const float* x, const float* gamma, const float* dy, float* dx,
                       float* dgamma, float* dbeta, float* scratch, int64_t rows, int64_t cols, float eps) {
    TORUS_CUDA_CHECK(use_device(device));
    if (rows == 0) return TORUS_OK;
    // scratch (2 * rows floats, the caller's allocation) receives each row's mean and rstd for dgamma/dbeta
    bool params = dgamma != nullptr || dbeta != nullptr;
    float* mus = params ? scratch : nullptr;
    float* rss = params ? scratch + rows : nullptr;
    layernorm_bwd_kernel<<<blocks_for_rows(rows), kThreads, 0, (cudaStream_t)s>>>(x, gamma, dy, dx, mus, rss, rows,
                                                                                 cols, eps);
    TORUS_CUDA_CHECK(check_launch("layernorm_backward"));
    if (!params) return TORUS_OK;
    return launch_column_sums<2>(s, "layernorm_backward (dgamma, dbeta)", rows, cols,
                                 LayerNormParamTerms{x, dy, mus, rss, cols}, StoreParamGrads{dgamma, dbeta});
}

} }
