// CPU kernel entry points, one namespace per instruction set.
#pragma once

#include <stdint.h>
#include "../common.hpp"

#define TORUS_DECLARE_CPU_KERNELS(NS)                                                                  \
    namespace torus { namespace NS {                                                                   \
    void stats(int in_dtype, const void* x, const Grouping& g, float* absmax, float* mn, float* mx);   \
    void quantize_symmetric(int in_dtype, const void* x, const Grouping& g, int8_t* q, float* scales,  \
                            bool sr, uint64_t seed);                                                   \
    void quantize_affine(int in_dtype, const void* x, const Grouping& g, const float* scales,          \
                         const int32_t* zps, int qmin, int qmax, int out_dtype, void* q, bool sr,      \
                         uint64_t seed);                                                               \
    void dequantize(int q_dtype, const void* q, const Grouping& g, const float* scales,                \
                    const int32_t* zps, int out_dtype, void* y);                                       \
    void cast(int in_dtype, const void* x, int out_dtype, void* y, int64_t n);                         \
    } }

TORUS_DECLARE_CPU_KERNELS(cpu_base)
TORUS_DECLARE_CPU_KERNELS(cpu_avx2)
TORUS_DECLARE_CPU_KERNELS(cpu_avx512)
