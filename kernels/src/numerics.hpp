// Scalar numerics shared verbatim by the CPU and CUDA kernels.
//
// Bit-identity between the two comes from using exactly these functions on
// both sides: conversions are integer bit manipulation, rounding is rint()
// under the default round-to-nearest-even mode, and both compilers are told
// not to contract multiply-add (-ffp-contract=off, --fmad=false) or flush
// denormals.
#pragma once

#include <stdint.h>
#include <math.h>

#if defined(__CUDACC__)
#define TORUS_HD __host__ __device__ __forceinline__
#define TORUS_UNROLL _Pragma("unroll")
#else
#define TORUS_HD inline __attribute__((always_inline))
#define TORUS_UNROLL _Pragma("GCC unroll 10")
#endif

namespace torus {

struct half_bits { uint16_t x; };
struct bf16_bits { uint16_t x; };

TORUS_HD uint32_t f2u(float f) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(f);
#else
    uint32_t u; __builtin_memcpy(&u, &f, 4); return u;
#endif
}
TORUS_HD float u2f(uint32_t u) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float f; __builtin_memcpy(&f, &u, 4); return f;
#endif
}

// ---- float16 ----------------------------------------------------------------
// Written as straight-line selects (no branches) so that the CPU loops
// vectorize; every path is computed and the right one is picked.
TORUS_HD float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t em = h & 0x7fffu;
    uint32_t infnan = 0x7f800000u | ((em & 0x3ffu) << 13);   // keep the payload
    uint32_t normal = (em << 13) + 0x38000000u;               // rebias exponent by 127 - 15
    uint32_t sub = f2u((float)(int32_t)em * 5.9604644775390625e-8f);  // em * 2^-24 is exact
    uint32_t bits = em >= 0x0400u ? normal : sub;
    bits = em >= 0x7c00u ? infnan : bits;
    return u2f(sign | bits);
}

TORUS_HD uint16_t float_to_half(float f) {
    uint32_t b = f2u(f);
    uint32_t sign = (b >> 16) & 0x8000u;
    uint32_t a = b & 0x7fffffffu;
    // NaN: quiet it, keep the top payload bits.
    uint32_t nan_h = 0x7e00u | ((a >> 13) & 0x3ffu);
    // Normal half: rebias, round to nearest even on the 13 dropped bits.
    uint32_t r = a - 0x38000000u;
    uint32_t norm_h = (r + 0x0fffu + ((r >> 13) & 1u)) >> 13;
    // Subnormal half (or zero): shift the full significand right by 126 - e,
    // rounding to nearest even; exponents below 102 give a shift of 25 -> 0.
    uint32_t e = a >> 23;
    uint32_t s = (e >= 102u && e <= 126u) ? 126u - e : 25u;
    uint32_t m = (a & 0x7fffffu) | 0x800000u;
    uint32_t q = m >> s;
    uint32_t rem = m & ((1u << s) - 1u);
    uint32_t halfway = 1u << (s - 1u);
    uint32_t sub_h = q + ((rem > halfway || (rem == halfway && (q & 1u))) ? 1u : 0u);
    uint32_t h = a > 0x7f800000u ? nan_h : (a >= 0x477ff000u ? 0x7c00u : (a >= 0x38800000u ? norm_h : sub_h));
    return (uint16_t)(sign | h);
}

// ---- bfloat16 ---------------------------------------------------------------
TORUS_HD float bf16_to_float(uint16_t h) { return u2f((uint32_t)h << 16); }

TORUS_HD uint16_t float_to_bf16(float f) {
    uint32_t b = f2u(f);
    uint32_t nan_b = (b >> 16) | 0x0040u;
    uint32_t rne = (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
    return (uint16_t)((b & 0x7fffffffu) > 0x7f800000u ? nan_b : rne);
}

// ---- typed load / store -----------------------------------------------------
template <typename T> struct io;
template <> struct io<float> {
    static TORUS_HD float load(float v) { return v; }
    static TORUS_HD float store(float v) { return v; }
};
template <> struct io<half_bits> {
    static TORUS_HD float load(half_bits v) { return half_to_float(v.x); }
    static TORUS_HD half_bits store(float v) { return half_bits{float_to_half(v)}; }
};
template <> struct io<bf16_bits> {
    static TORUS_HD float load(bf16_bits v) { return bf16_to_float(v.x); }
    static TORUS_HD bf16_bits store(float v) { return bf16_bits{float_to_bf16(v)}; }
};

// ---- order-preserving integer keys -------------------------------------------
// |x| of a finite float as bits, or 0 for NaN/Inf. Non-negative float bit
// patterns order like the values, so max() over these is absmax().
TORUS_HD uint32_t finite_abs_bits(float x) {
    uint32_t a = f2u(x) & 0x7fffffffu;
    return a < 0x7f800000u ? a : 0u;
}
// Signed key whose integer order is the float order (for finite values).
TORUS_HD int32_t float_key(float x) {
    int32_t b = (int32_t)f2u(x);
    return b ^ ((b >> 31) & 0x7fffffff);
}
TORUS_HD float key_to_float(int32_t k) { return u2f((uint32_t)(k ^ ((k >> 31) & 0x7fffffff))); }
TORUS_HD bool is_finite_bits(float x) { return (f2u(x) & 0x7f800000u) != 0x7f800000u; }
constexpr int32_t KEY_EMPTY_MIN = 0x7fffffff;          // above every finite key
constexpr int32_t KEY_EMPTY_MAX = (int32_t)0x80000000; // below every finite key

// ---- Philox4x32-10 (Salmon et al., SC'11) ------------------------------------
struct philox_out { uint32_t v[4]; };

TORUS_HD uint32_t mulhi32(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
    return __umulhi(a, b);
#else
    return (uint32_t)(((uint64_t)a * (uint64_t)b) >> 32);
#endif
}

// Counter (c0, c1, 0, 0) under key (k0, k1).
TORUS_HD philox_out philox4x32_10(uint32_t c0, uint32_t c1, uint32_t k0, uint32_t k1) {
    uint32_t x0 = c0, x1 = c1, x2 = 0, x3 = 0;
TORUS_UNROLL
    for (int r = 0; r < 10; ++r) {
        uint32_t hi0 = mulhi32(0xD2511F53u, x0), lo0 = 0xD2511F53u * x0;
        uint32_t hi1 = mulhi32(0xCD9E8D57u, x2), lo1 = 0xCD9E8D57u * x2;
        uint32_t n0 = hi1 ^ x1 ^ k0;
        uint32_t n2 = hi0 ^ x3 ^ k1;
        x0 = n0; x1 = lo1; x2 = n2; x3 = lo0;
        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
    }
    philox_out o; o.v[0] = x0; o.v[1] = x1; o.v[2] = x2; o.v[3] = x3;
    return o;
}

// Uniform in [0, 1) with 24 random bits for element i: one Philox call covers
// four consecutive elements (counter = i / 4, lane = i % 4).
TORUS_HD float philox_uniform(uint64_t seed, uint64_t i) {
    philox_out o = philox4x32_10((uint32_t)(i >> 2), (uint32_t)(i >> 34),
                                 (uint32_t)seed, (uint32_t)(seed >> 32));
    // Select the lane with branches, not o.v[i & 3]: a runtime index would put o in local memory on the GPU.
    uint32_t lo = (i & 1u) ? o.v[1] : o.v[0];
    uint32_t hi = (i & 1u) ? o.v[3] : o.v[2];
    return (float)(((i & 2u) ? hi : lo) >> 8) * 5.9604644775390625e-8f;
}

// ---- quantize / dequantize one value ---------------------------------------
// The written policy for non-finite inputs: NaN -> zero point; +Inf -> qmax;
// -Inf -> qmin (through the clamp). A product x*inv that is NaN (0 * Inf when
// scale is tiny) is also mapped to the zero point.
TORUS_HD int32_t quantize_value(float x, float inv, float zp, float lo, float hi) {
    float v = x * inv;
    float r = rintf(v) + zp;
    r = r < lo ? lo : r;
    r = r > hi ? hi : r;
    r = (v != v) ? zp : r;
    return (int32_t)r;
}

TORUS_HD int32_t quantize_value_stochastic(float x, float inv, float zp, float lo, float hi, float u) {
    float v = x * inv;
    float fl = floorf(v);
    float r = fl + ((u < v - fl) ? 1.0f : 0.0f) + zp;
    r = r < lo ? lo : r;
    r = r > hi ? hi : r;
    r = (v != v) ? zp : r;
    return (int32_t)r;
}

// inv = 1/scale, with scale == 0 (an all-zero group) giving inv = 0, so q = 0.
TORUS_HD float inverse_scale(float scale) { return scale == 0.0f ? 0.0f : 1.0f / scale; }

TORUS_HD float symmetric_scale(float absmax) { return absmax / 127.0f; }

TORUS_HD float dequantize_value(int32_t q, int32_t zp, float scale) { return (float)(q - zp) * scale; }

}  // namespace torus
