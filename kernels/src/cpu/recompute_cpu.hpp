// CPU recompute kernels (fp32, row-major [rows, cols]).
#pragma once

#include <stdint.h>

#define TORUS_DECLARE_CPU_RECOMPUTE(NS) \
    namespace torus { namespace NS { namespace cpu_recompute { \
    void bias_gelu_forward(const float* x, const float* bias, float* y, int64_t rows, int64_t cols); \
    void bias_gelu_backward(const float* x, const float* bias, const float* dy, float* dx, float* dbias, int64_t rows, int64_t cols); \
    void dropout(const float* x, float* y, int64_t n, float p, uint64_t seed, uint64_t offset); \
    void layernorm_forward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd, int64_t rows, int64_t cols, float eps); \
    void layernorm_backward(const float* x, const float* gamma, const float* dy, float* dx, float* dgamma, float* dbeta, float* scratch, int64_t rows, int64_t cols, float eps); \
    } } }

TORUS_DECLARE_CPU_RECOMPUTE(cpu_base)
TORUS_DECLARE_CPU_RECOMPUTE(cpu_avx2)
TORUS_DECLARE_CPU_RECOMPUTE(cpu_avx512)
