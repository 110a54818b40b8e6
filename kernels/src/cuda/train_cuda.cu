// CUDA training kernels (fp32). Same arithmetic and order as cpu/train_cpu.cpp
// (train_math.hpp): element-wise kernels use grid-stride loops, softmax
// cross-entropy uses one warp per row with the canonical 32-partial sum, column
// sums use the canonical column order (column_sums.cuh).
#include <cuda_runtime.h>
#include <math.h>

#include "../common.hpp"
#include "../cuda_kernels.hpp"
#include "../train_math.hpp"
#include "column_sums.cuh"
#include "cuda_util.hpp"

namespace torus { namespace cuda {

namespace {

constexpr int kThreads = 256;

int grid_for(int64_t n) {
    int64_t b = (n + kThreads - 1) / kThreads;
    return (int)(b < 65535 * 32 ? (b < 1 ? 1 : b) : 65535 * 32);
}

#define TORUS_GRID_STRIDE(i, n) \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

__global__ void relu_fwd_kernel(const float* x, float* y, int64_t n) {
    TORUS_GRID_STRIDE(i, n) y[i] = relu_fwd(x[i]);
}

__global__ void relu_bwd_kernel(const float* x, const float* dy, float* dx, int64_t n) {
    TORUS_GRID_STRIDE(i, n) dx[i] = relu_bwd(x[i], dy[i]);
}

__global__ void bias_add_kernel(float* y, const float* bias, int64_t n, int64_t cols) {
    TORUS_GRID_STRIDE(i, n) y[i] = y[i] + bias[i % cols];
}

// The gradient hooks' element-wise loops (api.cpp's f32_binary and f32_sum_chunks), in the
// same order: IEEE adds in rank order, then one division, nothing contracted.
__global__ void f32_add_kernel(float* d, const float* a, const float* b, int64_t n) {
    TORUS_GRID_STRIDE(i, n) d[i] = __fadd_rn(a[i], b[i]);
}

__global__ void f32_sub_kernel(float* d, const float* a, const float* b, int64_t n) {
    TORUS_GRID_STRIDE(i, n) d[i] = __fsub_rn(a[i], b[i]);
}

__global__ void f32_sum_chunks_kernel(float* d, const float* s, int ranks, int64_t chunk, int divisor) {
    TORUS_GRID_STRIDE(i, chunk) {
        float acc = s[i];
        for (int r = 1; r < ranks; r++) acc = __fadd_rn(acc, s[(int64_t)r * chunk + i]);
        d[i] = divisor == 1 ? acc : __fdiv_rn(acc, (float)divisor);
    }
}

struct ColumnOf {
    const float* v;
    int64_t cols;
    __device__ void operator()(int64_t r, int64_t c, float* t) const { t[0] = v[r * cols + c]; }
};

struct StoreSum {
    float* out;
    bool accumulate;
    __device__ void operator()(int64_t c, const float* s) const { out[c] = accumulate ? out[c] + s[0] : s[0]; }
};

__global__ void axpy_kernel(float alpha, const float* x, float* y, int64_t n) {
    TORUS_GRID_STRIDE(i, n) y[i] = y[i] + alpha * x[i];
}

__global__ void softmax_xent_kernel(const float* x, const int32_t* labels, float* loss, float* dx, int64_t rows,
                                    int64_t cols, float grad_scale) {
    int64_t r = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
    if (r >= rows) return;
    int lane = threadIdx.x & 31;
    const float* xr = x + r * cols;
    int32_t label = labels[r];
    bool valid = label >= 0 && label < cols;
    float mx = -INFINITY;
    for (int64_t c = lane; c < cols; c += 32) mx = xr[c] > mx ? xr[c] : mx;
    for (int off = 16; off >= 1; off /= 2) {
        float o = __shfl_xor_sync(0xffffffffu, mx, off);
        mx = o > mx ? o : mx;
    }
    float p = 0.0f;
    for (int64_t c = lane; c < cols; c += kLanes) p += exp_portable(xr[c] - mx);
    for (int off = kLanes / 2; off >= 1; off /= 2) p = p + __shfl_xor_sync(0xffffffffu, p, off);
    float s = p;
    if (lane == 0) loss[r] = valid ? log_portable(s) - (xr[label] - mx) : NAN;
    if (dx != nullptr) {
        float* dr = dx + r * cols;
        for (int64_t c = lane; c < cols; c += 32) {
            float prob = exp_portable(xr[c] - mx) / s;
            dr[c] = valid ? (prob - (c == label ? 1.0f : 0.0f)) * grad_scale : NAN;
        }
    }
}

__global__ void sgd_kernel(float* p, const float* g, float* buf, int64_t n, float lr, float momentum, float wd,
                           bool nesterov, bool first) {
    TORUS_GRID_STRIDE(i, n) {
        float dummy = 0.0f;
        p[i] = sgd_update(p[i], g[i], buf ? buf + i : &dummy, lr, momentum, wd, nesterov, first);
    }
}

__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, int64_t n, float lr, float b1, float b2,
                             float eps, float wd, float step_size, float bc2_sqrt) {
    TORUS_GRID_STRIDE(i, n) p[i] = adamw_update(p[i], g[i], m + i, v + i, lr, b1, b2, eps, wd, step_size, bc2_sqrt);
}

}  // namespace

#define TORUS_LAUNCH(name, n, kernel, ...)                                              \
    do {                                                                               \
        TORUS_CUDA_CHECK(use_device(device));                                          \
        if ((n) == 0) return TORUS_OK;                                                 \
        kernel<<<grid_for(n), kThreads, 0, (cudaStream_t)s>>>(__VA_ARGS__);            \
        return check_launch(name);                                                     \
    } while (0)

int f32_add(int device, void* s, float* d, const float* a, const float* b, int64_t n) {
    TORUS_LAUNCH("f32_add", n, f32_add_kernel, d, a, b, n);
}

int f32_sub(int device, void* s, float* d, const float* a, const float* b, int64_t n) {
    TORUS_LAUNCH("f32_sub", n, f32_sub_kernel, d, a, b, n);
}

int f32_sum_chunks(int device, void* s, float* d, const float* src, int ranks, int64_t chunk, int divisor) {
    TORUS_LAUNCH("f32_sum_chunks", chunk, f32_sum_chunks_kernel, d, src, ranks, chunk, divisor);
}

int relu_forward(int device, void* s, const float* x, float* y, int64_t n) {
    TORUS_LAUNCH("relu_forward", n, relu_fwd_kernel, x, y, n);
}

int relu_backward(int device, void* s, const float* x, const float* dy, float* dx, int64_t n) {
    TORUS_LAUNCH("relu_backward", n, relu_bwd_kernel, x, dy, dx, n);
}

int bias_add(int device, void* s, float* y, const float* bias, int64_t rows, int64_t cols) {
    TORUS_LAUNCH("bias_add", rows * cols, bias_add_kernel, y, bias, rows * cols, cols);
}

int column_sum(int device, void* s, const float* v, float* out, int64_t rows, int64_t cols, bool accumulate) {
    TORUS_CUDA_CHECK(use_device(device));
    return launch_column_sums<1>(s, "column_sum", rows, cols, ColumnOf{v, cols}, StoreSum{out, accumulate});
}

int axpy(int device, void* s, float alpha, const float* x, float* y, int64_t n) {
    TORUS_LAUNCH("axpy", n, axpy_kernel, alpha, x, y, n);
}

int softmax_xent(int device, void* s, const float* x, const int32_t* labels, float* loss, float* dx, int64_t rows,
                 int64_t cols, float grad_scale) {
    TORUS_CUDA_CHECK(use_device(device));
    if (rows == 0) return TORUS_OK;
    int blocks = (int)((rows * 32 + kThreads - 1) / kThreads);
    softmax_xent_kernel<<<blocks, kThreads, 0, (cudaStream_t)s>>>(x, labels, loss, dx, rows, cols, grad_scale);
    return check_launch("softmax_xent");
}

int sgd_step(int device, void* s, float* p, const float* g, float* buf, int64_t n, float lr, float momentum, float wd,
             bool nesterov, bool first) {
    TORUS_LAUNCH("sgd_step", n, sgd_kernel, p, g, buf, n, lr, momentum, wd, nesterov, first);
}

int adamw_step(int device, void* s, float* p, const float* g, float* m, float* v, int64_t n, float lr, float b1,
               float b2, float eps, float wd, float bc1, float bc2) {
    float step_size = lr / bc1;
    float bc2_sqrt = sqrtf(bc2);
    TORUS_LAUNCH("adamw_step", n, adamw_kernel, p, g, m, v, n, lr, b1, b2, eps, wd, step_size, bc2_sqrt);
}

} }
