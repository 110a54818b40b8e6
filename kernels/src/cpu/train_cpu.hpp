// CPU training kernels (fp32): activations, bias and gradient helpers, softmax
// cross-entropy and optimizer steps. Same arithmetic as cuda/train_cuda.cu.
#pragma once

#include <stdint.h>

#define TORUS_DECLARE_CPU_TRAIN(NS) \
    namespace torus { namespace NS { namespace cpu_train { \
    void relu_forward(const float* x, float* y, int64_t n); \
    void relu_backward(const float* x, const float* dy, float* dx, int64_t n); \
    void bias_add(float* y, const float* bias, int64_t rows, int64_t cols); \
    void column_sum(const float* v, float* out, int64_t rows, int64_t cols, bool accumulate); \
    void axpy(float alpha, const float* x, float* y, int64_t n); \
    void softmax_xent(const float* x, const int32_t* labels, float* loss, float* dx, int64_t rows, int64_t cols, float grad_scale); \
    void sgd_step(float* p, const float* g, float* buf, int64_t n, float lr, float momentum, float wd, bool nesterov, bool first); \
    void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, float lr, float b1, float b2, float eps, float wd, float bc1, float bc2); \
    } } }

TORUS_DECLARE_CPU_TRAIN(cpu_base)
TORUS_DECLARE_CPU_TRAIN(cpu_avx2)
TORUS_DECLARE_CPU_TRAIN(cpu_avx512)
