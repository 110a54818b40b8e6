// CPU weight-only int8 GEMM: y[m][n] = scale[n] * sum_k x[m][k] * q[n][k] (+ bias[n]),
// x fp32 [M,K], q int8 [N,K] (nn.Linear's [out, in]), y fp32 [M,N].
//
// Compiled once per instruction set. The 16 lanes of one dot product are one
// zmm, two ymm or four xmm, lane j holding partial j of the canonical order
// (../int8_gemm.hpp), so no ISA reorders anything.
//
// Blocking: the weights are the big operand (for the serving case, M <= 64,
// reading them is the cost), so a tile of MR rows of x shares every weight
// vector: 16 int8 weights are loaded and widened to fp32 once, in registers,
// and multiplied into the MR rows' accumulators. The weights never exist as
// fp32 in memory. A task owns blocks of NB channels; for each block it walks
// its row tiles, and for each tile the K axis in steps that keep the tile's
// rows of x in L1, the NB x MR accumulators staying on the stack between steps.
// Each y[m][n] is computed by one task in the canonical order, so the result
// does not depend on the thread count.
#include "int8_gemm_cpu.hpp"

#include <algorithm>
#include <immintrin.h>

#include "thread_pool.hpp"
#include "../int8_gemm.hpp"

#ifndef TORUS_CPU_NS
#error "TORUS_CPU_NS must name the ISA namespace (compiled once per instruction set)"
#endif

namespace torus { namespace TORUS_CPU_NS { namespace cpu_gemm {

namespace {

// The 16 lanes of one dot product in registers: lane j of Lanes is partial j of
// the canonical order. One zmm, two ymm or four xmm.
#if defined(__AVX512F__)
struct Lanes {
    __m512 v;
};
inline Lanes zero() { return {_mm512_setzero_ps()}; }
inline Lanes load_x(const float* p) { return {_mm512_loadu_ps(p)}; }
// 16 int8 weights widened to fp32 (exact). The zero-masking forms: GCC 12 warns
// that the plain ones read an uninitialized register.
inline Lanes load_w(const int8_t* p) {
    return {_mm512_maskz_cvtepi32_ps(0xffff, _mm512_maskz_cvtepi8_epi32(0xffff, _mm_loadu_si128((const __m128i*)p)))};
}
inline Lanes mul_add(Lanes acc, Lanes x, Lanes w) { return {_mm512_add_ps(acc.v, _mm512_mul_ps(x.v, w.v))}; }
inline void store(float* p, Lanes a) { _mm512_storeu_ps(p, a.v); }
constexpr int MR = 8, NC = 2;   // a register tile of 8 rows x 2 channels: 16 accumulators of the 32 zmm
#elif defined(__AVX2__)
struct Lanes {
    __m256 lo, hi;
};
inline Lanes zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
inline Lanes load_x(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
inline Lanes load_w(const int8_t* p) {
    return {_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)p))),
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)(p + 8))))};
}
inline Lanes mul_add(Lanes acc, Lanes x, Lanes w) {
    return {_mm256_add_ps(acc.lo, _mm256_mul_ps(x.lo, w.lo)), _mm256_add_ps(acc.hi, _mm256_mul_ps(x.hi, w.hi))};
}
inline void store(float* p, Lanes a) {
    _mm256_storeu_ps(p, a.lo);
    _mm256_storeu_ps(p + 8, a.hi);
}
constexpr int MR = 4, NC = 1;   // 4 rows x 1 channel: 8 of the 16 ymm hold accumulators
#else
struct Lanes {
    __m128 v[4];
};
inline Lanes zero() { return {{_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()}}; }
inline Lanes load_x(const float* p) {
    return {{_mm_loadu_ps(p), _mm_loadu_ps(p + 4), _mm_loadu_ps(p + 8), _mm_loadu_ps(p + 12)}};
}
// SSE2 has no sign extension: each byte is doubled into a wider lane, then
// shifted down arithmetically.
inline Lanes load_w(const int8_t* p) {
    const __m128i b = _mm_loadu_si128((const __m128i*)p);
    const __m128i w0 = _mm_unpacklo_epi8(b, b), w1 = _mm_unpackhi_epi8(b, b);
    return {{_mm_cvtepi32_ps(_mm_srai_epi32(_mm_unpacklo_epi16(w0, w0), 24)),
             _mm_cvtepi32_ps(_mm_srai_epi32(_mm_unpackhi_epi16(w0, w0), 24)),
             _mm_cvtepi32_ps(_mm_srai_epi32(_mm_unpacklo_epi16(w1, w1), 24)),
             _mm_cvtepi32_ps(_mm_srai_epi32(_mm_unpackhi_epi16(w1, w1), 24))}};
}
inline Lanes mul_add(Lanes acc, Lanes x, Lanes w) {
    Lanes r;
    for (int i = 0; i < 4; i++) r.v[i] = _mm_add_ps(acc.v[i], _mm_mul_ps(x.v[i], w.v[i]));
    return r;
}
inline void store(float* p, Lanes a) {
    for (int i = 0; i < 4; i++) _mm_storeu_ps(p + 4 * i, a.v[i]);
}
constexpr int MR = 2, NC = 1;   // 2 rows x 1 channel: 8 of the 16 xmm hold accumulators
#endif

constexpr int NB = 16;                          // channels per block (accumulators on the stack)
constexpr int64_t X_TILE_BYTES = 16 << 10;      // rows of x kept in L1 per K step
constexpr int64_t MIN_TASK_MACS = int64_t(1) << 20;

// Adds the products of rows [0, R) of x and channels [0, C) of the weights over
// [0, kc) to the partials acc[c][r][0..16); k = 0 is a multiple of 16, so element
// k goes to lane k % 16. Each widened weight vector serves R rows, each loaded
// vector of x serves C channels.
template <int R, int C>
inline void dot_step(const float* x, int64_t ldx, const int8_t* w, int64_t ldw, int64_t kc, bool first,
                     float (*acc)[MR][kGemmLanes]) {
    int64_t k = 0;
    if (first && kc < kGemmLanes) {   // only the tail loop below: it adds in memory
        for (int c = 0; c < C; c++)
            for (int r = 0; r < R; r++)
                for (int j = 0; j < kGemmLanes; j++) acc[c][r][j] = 0.0f;
    }
    if (kc >= kGemmLanes) {
        Lanes a[C][R];
        for (int c = 0; c < C; c++)
            for (int r = 0; r < R; r++) a[c][r] = first ? zero() : load_x(acc[c][r]);
        for (; k + kGemmLanes <= kc; k += kGemmLanes) {
            Lanes wv[C];
            for (int c = 0; c < C; c++) wv[c] = load_w(w + c * ldw + k);
            for (int r = 0; r < R; r++) {
                const Lanes xv = load_x(x + r * ldx + k);
                for (int c = 0; c < C; c++) a[c][r] = mul_add(a[c][r], xv, wv[c]);
            }
        }
        for (int c = 0; c < C; c++)
            for (int r = 0; r < R; r++) store(acc[c][r], a[c][r]);
    }
    for (; k < kc; k++) {   // the tail of K: lanes 0, 1, ... once more
        const int j = (int)(k % kGemmLanes);
        for (int c = 0; c < C; c++) {
            const float wk = (float)w[c * ldw + k];
            for (int r = 0; r < R; r++) acc[c][r][j] = acc[c][r][j] + x[r * ldx + k] * wk;
        }
    }
}

// dot_step for a runtime row count in [1, R].
template <int R, int C>
inline void dot_rows(int rows, const float* x, int64_t ldx, const int8_t* w, int64_t ldw, int64_t kc, bool first,
                     float (*acc)[MR][kGemmLanes]) {
    if constexpr (R > 1) {
        if (rows < R) {
            dot_rows<R - 1, C>(rows, x, ldx, w, ldw, kc, first, acc);
            return;
        }
    }
    dot_step<R, C>(x, ldx, w, ldw, kc, first, acc);
}

// The butterfly, the scale and the bias: the last steps of the canonical order,
// in SSE (every x86-64 ISA has it): each add below is lane-wise p[j] + p[j + off].
inline float finish(const float* p, float scale, const float* bias, int64_t n) {
    const __m128 a0 = _mm_add_ps(_mm_loadu_ps(p), _mm_loadu_ps(p + 8));        // off 8, lanes 0..3
    const __m128 a1 = _mm_add_ps(_mm_loadu_ps(p + 4), _mm_loadu_ps(p + 12));   // off 8, lanes 4..7
    const __m128 b = _mm_add_ps(a0, a1);                                        // off 4
    const __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));                        // off 2
    const float s = _mm_cvtss_f32(_mm_add_ss(c, _mm_shuffle_ps(c, c, 1))) * scale;   // off 1
    return bias != nullptr ? s + bias[n] : s;
}

// Rows [m0, m0 + rows) x channels [n0, n0 + nc) of y, rows <= MR, nc <= NB.
__attribute__((noinline)) void tile(const float* x, const int8_t* q, const float* scale, const float* bias, float* y,
                                    int64_t n_total, int64_t k_total, int64_t m0, int rows, int64_t n0, int nc) {
    alignas(64) float acc[NB][MR][kGemmLanes];
    if (k_total == 0) {
        for (int c = 0; c < nc; c++)
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < kGemmLanes; j++) acc[c][r][j] = 0.0f;
    }
    const int64_t kstep = std::max<int64_t>(256, X_TILE_BYTES / (4 * rows) / kGemmLanes * kGemmLanes);
    const float* xt = x + m0 * k_total;
    for (int64_t k0 = 0; k0 < k_total; k0 += kstep) {
        const int64_t kc = std::min(kstep, k_total - k0);
        int c = 0;
        for (; c + NC <= nc; c += NC)
            dot_rows<MR, NC>(rows, xt + k0, k_total, q + (n0 + c) * k_total + k0, k_total, kc, k0 == 0, acc + c);
        for (; c < nc; c++)
            dot_rows<MR, 1>(rows, xt + k0, k_total, q + (n0 + c) * k_total + k0, k_total, kc, k0 == 0, acc + c);
    }
    for (int r = 0; r < rows; r++) {
        float* yr = y + (m0 + r) * n_total + n0;
        for (int c = 0; c < nc; c++) yr[c] = finish(acc[c][r], scale[n0 + c], bias, n0 + c);
    }
}

}  // namespace

void int8_gemm(const float* x, const int8_t* q, const float* scale, const float* bias, float* y, int64_t m, int64_t n,
               int64_t k) {
    if (m <= 0 || n <= 0) return;
    const int64_t blocks = (n + NB - 1) / NB;
    const int64_t tiles = (m + MR - 1) / MR;
    ThreadPool& pool = ThreadPool::instance();
    // Split the channels first (each task then reads only its share of the weights),
    // the rows only when there are too few channel blocks to go round.
    const int64_t unit = (int64_t)NB * MR * std::max<int64_t>(k, 1);
    const int64_t want = pool.split(blocks * tiles, std::max<int64_t>(1, MIN_TASK_MACS / unit));
    const int64_t tn = std::min(blocks, want);
    const int64_t tm = std::min(tiles, std::max<int64_t>(1, want / tn));
    pool.run(tn * tm, [&](int64_t t) {
        const int64_t a = t % tn, b = t / tn;
        const int64_t b0 = blocks * a / tn, b1 = blocks * (a + 1) / tn;
        const int64_t t0 = tiles * b / tm, t1 = tiles * (b + 1) / tm;
        for (int64_t blk = b0; blk < b1; blk++) {
            const int64_t n0 = blk * NB;
            const int nc = (int)std::min<int64_t>(NB, n - n0);
            for (int64_t tl = t0; tl < t1; tl++) {
                const int64_t m0 = tl * MR;
                tile(x, q, scale, bias, y, n, k, m0, (int)std::min<int64_t>(MR, m - m0), n0, nc);
            }
        }
    });
}

} } }
