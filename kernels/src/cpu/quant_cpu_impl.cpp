// CPU quantization kernels. This file is compiled once per instruction set
// (TORUS_CPU_NS names the namespace, the flags pick the ISA) and
// cpu_dispatch.cpp picks the best one the machine supports. The inner loops
// are written so that the compiler vectorizes them: no calls, no early exits,
// selects instead of branches. All arithmetic goes through numerics.hpp, which
// the CUDA kernels share, so every ISA and the GPU give the same bits. The one
// exception is Philox for stochastic rounding: written with AVX2 and AVX-512
// intrinsics (fill_uniform), it gives the bits of numerics.hpp's philox_uniform.
#include <algorithm>
#include <cstring>
#include <vector>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "../common.hpp"
#include "../numerics.hpp"
#include "cpu_kernels.hpp"
#include "thread_pool.hpp"

#ifndef TORUS_CPU_NS
#error "TORUS_CPU_NS must name the ISA namespace"
#endif

namespace torus {
namespace TORUS_CPU_NS {

namespace {

constexpr int64_t GRAIN = 1 << 16;     // elements per task for streaming kernels

// Splits [0, n) into contiguous ranges, one per task, and calls f(begin, end)
// for each on the pool.
template <typename F>
void parallel_ranges(int64_t n, F&& f) {
    ThreadPool& pool = ThreadPool::instance();
    const int64_t tasks = pool.split(n, GRAIN);
    pool.run(tasks, [&](int64_t t) { f(n * t / tasks, n * (t + 1) / tasks); });
}

// ---- streaming stores ---------------------------------------------------------
// Large outputs are written through a 4 KiB L1 tile and copied out with
// non-temporal stores: the destination lines are then never read before being
// overwritten, which doubles the speed of write-heavy kernels (dequantize,
// widening casts) once the output no longer fits in cache. Smaller outputs
// keep ordinary stores so that a consumer finds them in cache.
constexpr int64_t STREAM_MIN_BYTES = int64_t(8) << 20;

inline void stream_tile(void* dst, const void* src, int64_t bytes) {
#if defined(__AVX512F__)
    for (int64_t k = 0; k < bytes; k += 64)
        _mm512_stream_si512((__m512i*)((char*)dst + k), _mm512_load_si512((const void*)((const char*)src + k)));
#elif defined(__AVX2__)
    for (int64_t k = 0; k < bytes; k += 32)
        _mm256_stream_si256((__m256i*)((char*)dst + k), _mm256_load_si256((const __m256i*)((const char*)src + k)));
#elif defined(__x86_64__)
    for (int64_t k = 0; k < bytes; k += 16)
        _mm_stream_si128((__m128i*)((char*)dst + k), _mm_load_si128((const __m128i*)((const char*)src + k)));
#else
    std::memcpy(dst, src, (size_t)bytes);
#endif
}

// Computes y[s, e) with compute(a, b, out), where out points at the slot of
// element a; streams whole aligned tiles when `stream` is set.
template <typename T, typename F>
void write_range(T* y, int64_t s, int64_t e, bool stream, F&& compute) {
    if (!stream) {
        compute(s, e, y + s);
        return;
    }
    constexpr int64_t TILE = 4096 / (int64_t)sizeof(T);
    const uintptr_t addr = (uintptr_t)(y + s);
    int64_t head = addr % sizeof(T) != 0 ? e - s : (int64_t)(((64 - (addr & 63)) & 63) / sizeof(T));
    head = std::min(head, e - s);
    int64_t i = s;
    if (head > 0) compute(i, i + head, y + i);
    i += head;
    alignas(64) T tile[TILE];
    for (; e - i >= TILE; i += TILE) {
        compute(i, i + TILE, tile);
        stream_tile(y + i, tile, TILE * (int64_t)sizeof(T));
    }
    if (i < e) compute(i, e, y + i);
#if defined(__x86_64__)
    _mm_sfence();  // order the streamed lines before the pool reports the task done
#endif
}

// Calls f(start, end, group) for each maximal run of [begin, end) that shares
// one group, so the inner loop sees a constant scale.
template <typename F>
void for_each_run(const Grouping& g, int64_t begin, int64_t end, F&& f) {
    int64_t i = begin;
    while (i < end) {
        int64_t grp, stop;
        if (g.block > 0) {
            grp = i / g.block;
            stop = std::min(end, (grp + 1) * g.block);
        } else {
            int64_t row = i / g.inner;
            grp = row % g.channels;
            stop = std::min(end, (row + 1) * g.inner);
        }
        f(i, stop, grp);
        i = stop;
    }
}

// ---- statistics -------------------------------------------------------------
struct Acc {
    uint32_t amax = 0;
    int32_t kmin = KEY_EMPTY_MIN;
    int32_t kmax = KEY_EMPTY_MAX;
    void merge(const Acc& o) {
        amax = std::max(amax, o.amax);
        kmin = std::min(kmin, o.kmin);
        kmax = std::max(kmax, o.kmax);
    }
};

// The reductions stay out of line: inlined into the std::function task bodies,
// GCC 12 no longer recognises them as vectorizable max/min reductions.
#define TORUS_NOINLINE __attribute__((noinline))

template <typename In>
TORUS_NOINLINE uint32_t absmax_bits(const In* x, int64_t n) {
    // Signed: the bits are < 0x7f800000 anyway, and GCC 12 vectorizes a signed
    // max reduction but not this unsigned one.
    int32_t m = 0;
    for (int64_t i = 0; i < n; ++i) {
        int32_t a = (int32_t)finite_abs_bits(io<In>::load(x[i]));
        m = a > m ? a : m;
    }
    return (uint32_t)m;
}

template <typename In>
TORUS_NOINLINE void minmax_keys(const In* x, int64_t n, int32_t& kmin, int32_t& kmax) {
    int32_t lo = KEY_EMPTY_MIN, hi = KEY_EMPTY_MAX;
    for (int64_t i = 0; i < n; ++i) {
        int32_t b = (int32_t)f2u(io<In>::load(x[i]));
        // Non-finite values get keys that lose both reductions.
        // (masks rather than selects: GCC 12 will not vectorize a select feeding two reductions)
        int32_t fin = -(int32_t)((b & 0x7f800000) != 0x7f800000);
        int32_t k = b ^ ((b >> 31) & 0x7fffffff);
        lo = std::min(lo, (k & fin) | (KEY_EMPTY_MIN & ~fin));
        hi = std::max(hi, (k & fin) | (KEY_EMPTY_MAX & ~fin));
    }
    kmin = std::min(kmin, lo);
    kmax = std::max(kmax, hi);
}

// Both reductions walk the same L2-sized piece before moving on, so asking
// for absmax and min/max costs one pass over memory, not two.
template <typename In>
void accumulate(const In* x, int64_t n, Acc& a, bool want_abs, bool want_minmax) {
    constexpr int64_t PIECE = 1 << 14;
    for (int64_t s = 0; s < n; s += PIECE) {
        int64_t m = std::min(PIECE, n - s);
        if (want_abs) a.amax = std::max(a.amax, absmax_bits(x + s, m));
        if (want_minmax) minmax_keys(x + s, m, a.kmin, a.kmax);
    }
}

void write_acc(const Acc& a, int64_t grp, float* absmax, float* mn, float* mx) {
    if (absmax) absmax[grp] = u2f(a.amax);
    if (mn) mn[grp] = a.kmin == KEY_EMPTY_MIN ? 0.0f : key_to_float(a.kmin);
    if (mx) mx[grp] = a.kmax == KEY_EMPTY_MAX ? 0.0f : key_to_float(a.kmax);
}

template <typename In>
void stats_typed(const In* x, const Grouping& g, float* absmax, float* mn, float* mx) {
    ThreadPool& pool = ThreadPool::instance();
    const bool wa = absmax != nullptr, wm = mn != nullptr || mx != nullptr;
    const int64_t groups = g.groups();
    if (groups == 0) return;
    if (g.block > 0) {
        const int64_t per_task = std::max<int64_t>(1, GRAIN / g.block);
        pool.run((groups + per_task - 1) / per_task, [&](int64_t t) {
            int64_t g0 = t * per_task, g1 = std::min(groups, g0 + per_task);
            for (int64_t b = g0; b < g1; ++b) {
                int64_t s = b * g.block, e = std::min(g.n, s + g.block);
                Acc a;
                accumulate(x + s, e - s, a, wa, wm);
                write_acc(a, b, absmax, mn, mx);
            }
        });
        return;
    }
    if (g.n == 0) {
        for (int64_t c = 0; c < groups; ++c) write_acc(Acc(), c, absmax, mn, mx);
        return;
    }
    const int64_t C = g.channels;
    if (C >= 2 * (int64_t)pool.threads()) {
        // Many channels: each task owns a channel range, no merge needed.
        const int64_t tasks = std::min<int64_t>(C, pool.threads() * 4);
        pool.run(tasks, [&](int64_t t) {
            int64_t c0 = C * t / tasks, c1 = C * (t + 1) / tasks;
            std::vector<Acc> acc(c1 - c0);
            for (int64_t o = 0; o < g.outer; ++o) {
                const In* base = x + (o * C) * g.inner;
                if (g.inner == 1) {
                    for (int64_t c = c0; c < c1; ++c) {
                        float v = io<In>::load(base[c]);
                        Acc one;
                        one.amax = finite_abs_bits(v);
                        if (is_finite_bits(v)) one.kmin = one.kmax = float_key(v);
                        acc[c - c0].merge(one);
                    }
                } else {
                    for (int64_t c = c0; c < c1; ++c) accumulate(base + c * g.inner, g.inner, acc[c - c0], wa, wm);
                }
            }
            for (int64_t c = c0; c < c1; ++c) write_acc(acc[c - c0], c, absmax, mn, mx);
        });
        return;
    }
    // Few channels (per-tensor included): split the elements, merge per channel.
    const int64_t tasks = pool.split(g.n, GRAIN);
    std::vector<Acc> partial((size_t)(tasks * C));
    pool.run(tasks, [&](int64_t t) {
        int64_t s = g.n * t / tasks, e = g.n * (t + 1) / tasks;
        Acc* mine = &partial[(size_t)(t * C)];
        for_each_run(g, s, e, [&](int64_t a, int64_t b, int64_t grp) {
            accumulate(x + a, b - a, mine[grp], wa, wm);
        });
    });
    for (int64_t c = 0; c < C; ++c) {
        Acc a;
        for (int64_t t = 0; t < tasks; ++t) a.merge(partial[(size_t)(t * C + c)]);
        write_acc(a, c, absmax, mn, mx);
    }
}

// ---- quantize -----------------------------------------------------------------
// Uniform numbers for elements [first, first + count), one Philox call per four.
// Whole aligned quads go through the hand-vectorized Philox below (AVX-512, then AVX2), the rest
// through the scalar one; every path gives the bits of philox_uniform.
float uniform_of(const philox_out& o, uint32_t lane) { return (float)(o.v[lane] >> 8) * 5.9604644775390625e-8f; }

#if defined(__AVX2__)
// Lanes' 32x32 -> 64-bit products: the low halves, and the high halves in the same lanes.
inline void mul_hilo(__m256i a, __m256i m, __m256i* hi, __m256i* lo) {
    __m256i even = _mm256_mul_epu32(a, m);                          // lanes 0, 2, 4, 6 as 64-bit products
    __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);    // lanes 1, 3, 5, 7
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
    *lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA); // cheaper than mullo
}

// Philox4x32-10 for 8 counters at a time (quad0 + j ...), the uniforms of their 32 elements stored in
// element order; the same rounds and the same float conversion as philox4x32_10 and uniform_of, so the
// bits match the scalar path. Returns how many quads it did (a multiple of 8).
int64_t philox_quads_avx2(uint64_t quad0, int64_t quads, uint32_t k0, uint32_t k1, float* out) {
    const __m256i m0 = _mm256_set1_epi32((int)0xD2511F53u), m1 = _mm256_set1_epi32((int)0xCD9E8D57u);
    const __m256 scale = _mm256_set1_ps(5.9604644775390625e-8f);
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i sign = _mm256_set1_epi32((int)0x80000000u); // unsigned compare through a signed one
    int64_t j = 0;
    for (; j + 8 <= quads; j += 8) {
        // counters c + 0 .. c + 7 as (low, high) words; a low word that wrapped carries into the high one
        const uint64_t c = quad0 + (uint64_t)j;
        const __m256i base = _mm256_set1_epi32((int)(uint32_t)c);
        __m256i x0 = _mm256_add_epi32(base, iota);
        __m256i wrapped = _mm256_cmpgt_epi32(_mm256_xor_si256(base, sign), _mm256_xor_si256(x0, sign));
        __m256i x1 = _mm256_sub_epi32(_mm256_set1_epi32((int)(uint32_t)(c >> 32)), wrapped);
        __m256i x2 = _mm256_setzero_si256(), x3 = _mm256_setzero_si256();
        uint32_t a = k0, b = k1;
        for (int r = 0; r < 10; ++r) {
            __m256i hi0, lo0, hi1, lo1;
            mul_hilo(x0, m0, &hi0, &lo0);
            mul_hilo(x2, m1, &hi1, &lo1);
            __m256i n0 = _mm256_xor_si256(_mm256_xor_si256(hi1, x1), _mm256_set1_epi32((int)a));
            __m256i n2 = _mm256_xor_si256(_mm256_xor_si256(hi0, x3), _mm256_set1_epi32((int)b));
            x0 = n0; x1 = lo1; x2 = n2; x3 = lo0;
            a += 0x9E3779B9u; b += 0xBB67AE85u;
        }
        // 24 random bits each, exact in float, times 2^-24
        __m256 f0 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(x0, 8)), scale);
        __m256 f1 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(x1, 8)), scale);
        __m256 f2 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(x2, 8)), scale);
        __m256 f3 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(x3, 8)), scale);
        // transpose: counter l's four outputs become elements 4l .. 4l + 3
        __m256 t0 = _mm256_unpacklo_ps(f0, f1), t1 = _mm256_unpackhi_ps(f0, f1);
        __m256 t2 = _mm256_unpacklo_ps(f2, f3), t3 = _mm256_unpackhi_ps(f2, f3);
        __m256 q0 = _mm256_shuffle_ps(t0, t2, 0x44), q1 = _mm256_shuffle_ps(t0, t2, 0xEE);
        __m256 q2 = _mm256_shuffle_ps(t1, t3, 0x44), q3 = _mm256_shuffle_ps(t1, t3, 0xEE);
        float* o = out + 4 * j;
        _mm256_storeu_ps(o + 0, _mm256_permute2f128_ps(q0, q1, 0x20));
        _mm256_storeu_ps(o + 8, _mm256_permute2f128_ps(q2, q3, 0x20));
        _mm256_storeu_ps(o + 16, _mm256_permute2f128_ps(q0, q1, 0x31));
        _mm256_storeu_ps(o + 24, _mm256_permute2f128_ps(q2, q3, 0x31));
    }
    return j;
}
#endif

#if defined(__AVX512F__)
// The same as mul_hilo and philox_quads_avx2, sixteen counters at a time.
inline void mul_hilo16(__m512i a, __m512i m, __m512i* hi, __m512i* lo) {
    __m512i even = _mm512_mul_epu32(a, m);
    __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
    *hi = _mm512_mask_blend_epi32((__mmask16)0xAAAA, _mm512_srli_epi64(even, 32), odd);
    *lo = _mm512_mask_blend_epi32((__mmask16)0xAAAA, even, _mm512_slli_epi64(odd, 32));
}
int64_t philox_quads_avx512(uint64_t quad0, int64_t quads, uint32_t k0, uint32_t k1, float* out) {
    const __m512i m0 = _mm512_set1_epi32((int)0xD2511F53u), m1 = _mm512_set1_epi32((int)0xCD9E8D57u);
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 scale = _mm512_set1_ps(5.9604644775390625e-8f);
    int64_t j = 0;
    for (; j + 16 <= quads; j += 16) {
        uint64_t c = quad0 + (uint64_t)j;
        __m512i base = _mm512_set1_epi32((int)(uint32_t)c);
        __m512i x0 = _mm512_add_epi32(base, iota);
        __m512i x1 = _mm512_set1_epi32((int)(uint32_t)(c >> 32));
        x1 = _mm512_mask_add_epi32(x1, _mm512_cmplt_epu32_mask(x0, base), x1, _mm512_set1_epi32(1));
        __m512i x2 = _mm512_setzero_si512(), x3 = _mm512_setzero_si512();
        uint32_t a = k0, b = k1;
        for (int r = 0; r < 10; ++r) {
            __m512i hi0, lo0, hi1, lo1;
            mul_hilo16(x0, m0, &hi0, &lo0);
            mul_hilo16(x2, m1, &hi1, &lo1);
            __m512i n0 = _mm512_xor_si512(_mm512_xor_si512(hi1, x1), _mm512_set1_epi32((int)a));
            __m512i n2 = _mm512_xor_si512(_mm512_xor_si512(hi0, x3), _mm512_set1_epi32((int)b));
            x0 = n0; x1 = lo1; x2 = n2; x3 = lo0;
            a += 0x9E3779B9u; b += 0xBB67AE85u;
        }
        __m512 f0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(x0, 8)), scale);
        __m512 f1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(x1, 8)), scale);
        __m512 f2 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(x2, 8)), scale);
        __m512 f3 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(x3, 8)), scale);
        // transpose as in the AVX2 path inside each 128-bit lane, then gather lanes so that
        // counter l's outputs land at elements 4l .. 4l + 3
        __m512 t0 = _mm512_unpacklo_ps(f0, f1), t1 = _mm512_unpackhi_ps(f0, f1);
        __m512 t2 = _mm512_unpacklo_ps(f2, f3), t3 = _mm512_unpackhi_ps(f2, f3);
        __m512 q0 = _mm512_shuffle_ps(t0, t2, 0x44), q1 = _mm512_shuffle_ps(t0, t2, 0xEE);
        __m512 q2 = _mm512_shuffle_ps(t1, t3, 0x44), q3 = _mm512_shuffle_ps(t1, t3, 0xEE);
        __m512 r0 = _mm512_shuffle_f32x4(q0, q1, 0x44), r1 = _mm512_shuffle_f32x4(q2, q3, 0x44);
        __m512 r2 = _mm512_shuffle_f32x4(q0, q1, 0xEE), r3 = _mm512_shuffle_f32x4(q2, q3, 0xEE);
        float* o = out + 4 * j;
        _mm512_storeu_ps(o + 0, _mm512_shuffle_f32x4(r0, r1, 0x88));
        _mm512_storeu_ps(o + 16, _mm512_shuffle_f32x4(r0, r1, 0xDD));
        _mm512_storeu_ps(o + 32, _mm512_shuffle_f32x4(r2, r3, 0x88));
        _mm512_storeu_ps(o + 48, _mm512_shuffle_f32x4(r2, r3, 0xDD));
    }
    return j;
}
#endif

void fill_uniform(uint64_t seed, int64_t first, int64_t count, float* u) {
    const uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    int64_t i = 0;
    while (i < count && ((first + i) & 3) != 0) {  // head up to a quad boundary
        uint64_t idx = (uint64_t)(first + i);
        u[i] = uniform_of(philox4x32_10((uint32_t)(idx >> 2), (uint32_t)(idx >> 34), k0, k1), (uint32_t)(idx & 3u));
        ++i;
    }
    const uint64_t quad0 = (uint64_t)(first + i) >> 2;
    const int64_t quads = (count - i) / 4;
    float* out = u + i;
    int64_t j = 0;
#if defined(__AVX512F__)
    j = philox_quads_avx512(quad0, quads, k0, k1, out);
#endif
#if defined(__AVX2__)
    j += philox_quads_avx2(quad0 + (uint64_t)j, quads - j, k0, k1, out + 4 * j);
#endif
    for (; j < quads; ++j) {
        uint64_t c = quad0 + (uint64_t)j;
        philox_out o = philox4x32_10((uint32_t)c, (uint32_t)(c >> 32), k0, k1);
        out[4 * j + 0] = uniform_of(o, 0);
        out[4 * j + 1] = uniform_of(o, 1);
        out[4 * j + 2] = uniform_of(o, 2);
        out[4 * j + 3] = uniform_of(o, 3);
    }
    for (i += quads * 4; i < count; ++i) {
        uint64_t idx = (uint64_t)(first + i);
        u[i] = uniform_of(philox4x32_10((uint32_t)(idx >> 2), (uint32_t)(idx >> 34), k0, k1), (uint32_t)(idx & 3u));
    }
}

template <typename In, typename Q>
TORUS_NOINLINE void quantize_run(const In* x, Q* q, int64_t n, float inv, float zp, float lo, float hi) {
    for (int64_t i = 0; i < n; ++i) q[i] = (Q)quantize_value(io<In>::load(x[i]), inv, zp, lo, hi);
}

template <typename In, typename Q>
void quantize_run_stochastic(const In* x, Q* q, int64_t n, int64_t first, float inv, float zp, float lo, float hi,
                             uint64_t seed) {
    constexpr int64_t TILE = 512;
    float u[TILE];
    for (int64_t s = 0; s < n; s += TILE) {
        int64_t m = std::min(TILE, n - s);
        fill_uniform(seed, first + s, m, u);
        for (int64_t i = 0; i < m; ++i)
            q[s + i] = (Q)quantize_value_stochastic(io<In>::load(x[s + i]), inv, zp, lo, hi, u[i]);
    }
}

template <typename In, typename Q>
void apply_run(const In* x, Q* q, int64_t a, int64_t b, float inv, float zp, float lo, float hi, bool sr,
               uint64_t seed) {
    if (sr) quantize_run_stochastic(x + a, q + a, b - a, a, inv, zp, lo, hi, seed);
    else quantize_run(x + a, q + a, b - a, inv, zp, lo, hi);
}

template <typename In, typename Q>
void quantize_affine_typed(const In* x, Q* q, const Grouping& g, const float* scales, const int32_t* zps,
                           int qmin, int qmax, bool sr, uint64_t seed) {
    const int64_t groups = g.groups();
    std::vector<float> inv((size_t)groups), zpf((size_t)groups);
    for (int64_t i = 0; i < groups; ++i) {
        inv[i] = inverse_scale(scales[i]);
        zpf[i] = zps ? (float)zps[i] : 0.0f;
    }
    const float lo = (float)qmin, hi = (float)qmax;
    parallel_ranges(g.n, [&](int64_t s, int64_t e) {
        if (g.block == 0 && g.inner == 1 && g.channels > 1) {
            // Channel is the last axis: the scale changes every element.
            int64_t c = s % g.channels;
            constexpr int64_t TILE = 512;
            float u[TILE];
            for (int64_t i0 = s; i0 < e; i0 += TILE) {
                int64_t m = std::min(TILE, e - i0);
                if (sr) fill_uniform(seed, i0, m, u);
                for (int64_t i = 0; i < m; ++i) {
                    float v = io<In>::load(x[i0 + i]);
                    q[i0 + i] = (Q)(sr ? quantize_value_stochastic(v, inv[c], zpf[c], lo, hi, u[i])
                                       : quantize_value(v, inv[c], zpf[c], lo, hi));
                    if (++c == g.channels) c = 0;
                }
            }
            return;
        }
        for_each_run(g, s, e, [&](int64_t a, int64_t b, int64_t grp) {
            apply_run(x, q, a, b, inv[grp], zpf[grp], lo, hi, sr, seed);
        });
    });
}

template <typename In>
void quantize_blockwise_typed(const In* x, int8_t* q, const Grouping& g, float* scales, bool sr, uint64_t seed) {
    const int64_t groups = g.groups();
    const int64_t per_task = std::max<int64_t>(1, GRAIN / g.block);
    ThreadPool::instance().run((groups + per_task - 1) / per_task, [&](int64_t t) {
        int64_t g0 = t * per_task, g1 = std::min(groups, g0 + per_task);
        for (int64_t b = g0; b < g1; ++b) {
            int64_t s = b * g.block, e = std::min(g.n, s + g.block);
            float scale = symmetric_scale(u2f(absmax_bits(x + s, e - s)));
            scales[b] = scale;
            apply_run(x, q, s, e, inverse_scale(scale), 0.0f, -127.0f, 127.0f, sr, seed);
        }
    });
}

// ---- dequantize and cast -------------------------------------------------------
template <typename Q, typename Out>
TORUS_NOINLINE void dequantize_run(const Q* q, Out* y, int64_t n, int32_t zp, float scale) {
    for (int64_t i = 0; i < n; ++i) y[i] = io<Out>::store(dequantize_value((int32_t)q[i], zp, scale));
}

template <typename Q, typename Out>
void dequantize_typed(const Q* q, Out* y, const Grouping& g, const float* scales, const int32_t* zps) {
    const bool stream = g.n * (int64_t)sizeof(Out) >= STREAM_MIN_BYTES;
    parallel_ranges(g.n, [&](int64_t s, int64_t e) {
        if (g.block == 0 && g.inner == 1 && g.channels > 1) {
            int64_t c = s % g.channels;
            for (int64_t i = s; i < e; ++i) {
                y[i] = io<Out>::store(dequantize_value((int32_t)q[i], zps ? zps[c] : 0, scales[c]));
                if (++c == g.channels) c = 0;
            }
            return;
        }
        write_range(y, s, e, stream, [&](int64_t a0, int64_t b0, Out* out) {
            for_each_run(g, a0, b0, [&](int64_t a, int64_t b, int64_t grp) {
                dequantize_run(q + a, out + (a - a0), b - a, zps ? zps[grp] : 0, scales[grp]);
            });
        });
    });
}

template <typename In, typename Out>
TORUS_NOINLINE void cast_run(const In* x, Out* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = io<Out>::store(io<In>::load(x[i]));
}

#if defined(__F16C__)
// Hardware narrowing (VCVTPS2PH, round to nearest even) gives the same bits as
// float_to_half, NaNs included: both keep the sign and the top ten payload bits
// and set the quiet bit. The cast tests check this on random bit patterns.
template <>
TORUS_NOINLINE void cast_run<float, half_bits>(const float* x, half_bits* y, int64_t n) {
    int64_t i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i*)(y + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i*)(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; ++i) y[i] = io<half_bits>::store(x[i]);
}
#endif

template <typename In, typename Out>
void cast_typed(const In* x, Out* y, int64_t n) {
    const bool stream = n * (int64_t)sizeof(Out) >= STREAM_MIN_BYTES;
    parallel_ranges(n, [&](int64_t s, int64_t e) {
        write_range(y, s, e, stream, [&](int64_t a, int64_t b, Out* out) { cast_run(x + a, out, b - a); });
    });
}

// ---- dtype dispatch -------------------------------------------------------------
template <typename F>
void with_float_type(int dtype, F&& f) {
    switch (dtype) {
        case TORUS_FLOAT32: f((float*)nullptr); break;
        case TORUS_FLOAT16: f((half_bits*)nullptr); break;
        default: f((bf16_bits*)nullptr); break;
    }
}

}  // namespace

void stats(int in_dtype, const void* x, const Grouping& g, float* absmax, float* mn, float* mx) {
    with_float_type(in_dtype, [&](auto* tag) {
        using In = std::remove_pointer_t<decltype(tag)>;
        stats_typed((const In*)x, g, absmax, mn, mx);
    });
}

void quantize_symmetric(int in_dtype, const void* x, const Grouping& g, int8_t* q, float* scales, bool sr,
                        uint64_t seed) {
    with_float_type(in_dtype, [&](auto* tag) {
        using In = std::remove_pointer_t<decltype(tag)>;
        if (g.block > 0) {
            quantize_blockwise_typed((const In*)x, q, g, scales, sr, seed);
            return;
        }
        stats_typed((const In*)x, g, scales, nullptr, nullptr);
        for (int64_t c = 0; c < g.channels; ++c) scales[c] = symmetric_scale(scales[c]);
        quantize_affine_typed((const In*)x, q, g, scales, nullptr, -127, 127, sr, seed);
    });
}

void quantize_affine(int in_dtype, const void* x, const Grouping& g, const float* scales, const int32_t* zps,
                     int qmin, int qmax, int out_dtype, void* q, bool sr, uint64_t seed) {
    with_float_type(in_dtype, [&](auto* tag) {
        using In = std::remove_pointer_t<decltype(tag)>;
        if (out_dtype == TORUS_UINT8)
            quantize_affine_typed((const In*)x, (uint8_t*)q, g, scales, zps, qmin, qmax, sr, seed);
        else
            quantize_affine_typed((const In*)x, (int8_t*)q, g, scales, zps, qmin, qmax, sr, seed);
    });
}

void dequantize(int q_dtype, const void* q, const Grouping& g, const float* scales, const int32_t* zps,
                int out_dtype, void* y) {
    with_float_type(out_dtype, [&](auto* tag) {
        using Out = std::remove_pointer_t<decltype(tag)>;
        if (q_dtype == TORUS_UINT8) dequantize_typed((const uint8_t*)q, (Out*)y, g, scales, zps);
        else dequantize_typed((const int8_t*)q, (Out*)y, g, scales, zps);
    });
}

void cast(int in_dtype, const void* x, int out_dtype, void* y, int64_t n) {
    with_float_type(in_dtype, [&](auto* itag) {
        using In = std::remove_pointer_t<decltype(itag)>;
        with_float_type(out_dtype, [&](auto* otag) {
            using Out = std::remove_pointer_t<decltype(otag)>;
            cast_typed((const In*)x, (Out*)y, n);
        });
    });
}

}  // namespace TORUS_CPU_NS
}  // namespace torus
