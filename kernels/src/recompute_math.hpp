// Math shared by the CPU and CUDA recompute kernels. Everything here uses only
// IEEE +, -, *, / and sqrt (correctly rounded on both sides, with FMA contraction
// off), so the two builds produce the same bits. Include after numerics.hpp.
#pragma once

#include "numerics.hpp"

namespace torus {

// exp(x) for x in [-87, 88]: x = k ln2 + r with |r| <= ln2/2 (Cody-Waite split of
// ln2), a degree-7 Taylor polynomial for e^r, then 2^k through the exponent bits.
// Relative error about 2e-7. Inputs are clamped to [-87, 88].
TORUS_HD float exp_portable(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float kf = rintf(x * 1.44269504088896341f);
    float r = x - kf * 0.693145751953125f;      // ln2 high part (exact product for |k| < 2^12)
    r = r - kf * 1.428606765330187045e-06f;     // ln2 low part
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int k = (int)kf;
    // 2^k in two steps so that k down to -126 - 1 stays normal
    int k1 = k / 2;
    int k2 = k - k1;
    float s1 = u2f((uint32_t)(k1 + 127) << 23);
    float s2 = u2f((uint32_t)(k2 + 127) << 23);
    return p * s1 * s2;
}

// tanh(u) = sign(u) (1 - 2 / (e^{2|u|} + 1)); exactly +-1 beyond |u| = 9.
TORUS_HD float tanh_portable(float u) {
    float a = u < 0.0f ? -u : u;
    float t = a > 9.0f ? 1.0f : 1.0f - 2.0f / (exp_portable(2.0f * a) + 1.0f);
    return u < 0.0f ? -t : t;
}

// GELU, tanh form (as in Megatron's fused bias-GELU):
//   gelu(z) = 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))
constexpr float kGeluC = 0.7978845608028654f;   // sqrt(2/pi)
constexpr float kGeluA = 0.044715f;

TORUS_HD float gelu_forward(float z) {
    float t = tanh_portable(kGeluC * z * (1.0f + kGeluA * z * z));
    return 0.5f * z * (1.0f + t);
}

// d gelu / dz, from z alone (the output is never needed).
TORUS_HD float gelu_grad(float z) {
    float t = tanh_portable(kGeluC * z * (1.0f + kGeluA * z * z));
    float dt = (1.0f - t * t) * (kGeluC * (1.0f + 3.0f * kGeluA * z * z));
    return 0.5f * (1.0f + t) + 0.5f * z * dt;
}

// log(x) for finite x > 0: x = 2^e m with m in [sqrt(1/2), sqrt(2)), then
// log m = 2 atanh(f), f = (m - 1) / (m + 1), |f| <= 0.172, by its odd series to
// f^13 (truncation below 1e-11). Relative error about 2e-7. x <= 0 gives -inf,
// which is what softmax cross-entropy needs for a zero probability.
TORUS_HD float log_portable(float x) {
    if (!(x > 0.0f)) return x == 0.0f ? -INFINITY : NAN;
    uint32_t u = f2u(x);
    int e = (int)((u >> 23) & 0xff);
    if (e == 0) {                       // subnormal: scale into the normal range
        x = x * 8388608.0f;             // 2^23
        u = f2u(x);
        e = (int)((u >> 23) & 0xff) - 23;
    }
    e -= 127;
    float m = u2f((u & 0x007fffffu) | 0x3f800000u);   // [1, 2)
    if (m > 1.41421356f) {
        m = m * 0.5f;
        e += 1;
    }
    float f = (m - 1.0f) / (m + 1.0f);
    float f2 = f * f;
    float p = 1.0f / 13.0f;
    p = p * f2 + 1.0f / 11.0f;
    p = p * f2 + 1.0f / 9.0f;
    p = p * f2 + 1.0f / 7.0f;
    p = p * f2 + 1.0f / 5.0f;
    p = p * f2 + 1.0f / 3.0f;
    p = p * f2 + 1.0f;
    float ef = (float)e;
    return (2.0f * f * p + ef * 1.428606765330187045e-06f) + ef * 0.693145751953125f;
}

// Dropout keep test for element i: Philox uniform >= p (p in [0, 1)).
TORUS_HD bool dropout_keep(uint64_t seed, uint64_t index, float p) {
    return philox_uniform(seed, index) >= p;
}

// Row reductions use 32 interleaved partial sums (lane j takes the elements
// i = j mod 32, in increasing i) combined by the butterfly 16, 8, 4, 2, 1. A CUDA
// warp computes exactly this with one lane per partial and xor-shuffles; the CPU
// runs the same order with 32 accumulators.
constexpr int kLanes = 32;

}  // namespace torus
