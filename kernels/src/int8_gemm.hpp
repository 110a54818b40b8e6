// The weight-only int8 GEMM's summation order, shared by the CPU kernel
// (cpu/int8_gemm_cpu.cpp) and its CUDA twin (cuda/int8_gemm_cuda.cu):
//
//   y[m][n] = (S(m, n) * scale[n]) (+ bias[n])
//
// where S(m, n) is the canonical lane sum of the products
// t_k = fl(x[m][k] * (float)q[n][k]): kGemmLanes partials, partial j adds the
// t_k with k = j mod kGemmLanes in increasing k, starting from +0.0f; then the
// butterfly p[j] = p[j] + p[j + off] for off = kGemmLanes/2, ..., 2, 1 (j < off)
// and S = p[0]. Every operation is one IEEE fp32 multiply or add, with no FMA
// contraction, so every ISA, thread count and the GPU give the same bits.
#pragma once

namespace torus {

// 16 lanes: one AVX-512 vector, two AVX2 vectors, half a warp.
constexpr int kGemmLanes = 16;

}  // namespace torus
