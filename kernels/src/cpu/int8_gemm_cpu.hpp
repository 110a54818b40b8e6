// CPU weight-only int8 GEMM (int8 weights x fp32 activations); the order of
// summation is the one of ../int8_gemm.hpp.
#pragma once

#include <stdint.h>

#define TORUS_DECLARE_CPU_GEMM(NS) \
    namespace torus { namespace NS { namespace cpu_gemm { \
    void int8_gemm(const float* x, const int8_t* q, const float* scale, const float* bias, float* y, int64_t m, \
                   int64_t n, int64_t k); \
    } } }

TORUS_DECLARE_CPU_GEMM(cpu_base)
TORUS_DECLARE_CPU_GEMM(cpu_avx2)
TORUS_DECLARE_CPU_GEMM(cpu_avx512)
