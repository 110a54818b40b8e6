// CUDA weight-only int8 GEMM, the twin of cpu/int8_gemm_cpu.cpp: the same
// canonical order (../int8_gemm.hpp), so CPU and GPU give the same bits.
//
// A block of 256 threads is 16 groups of kGemmLanes = 16 threads (half warps).
// Group g computes channel n = 16 * blockIdx.x + g for MT rows of x; thread j of
// the group is partial j: it adds the products of k = j, j + 16, ... in
// increasing k, one IEEE multiply and one IEEE add each (__fmul_rn/__fadd_rn:
// never contracted to an FMA), for each of the MT rows. So each int8 weight is
// read once per row tile and widened in a register, never stored as fp32. The
// rows of x go through shared memory in K chunks; both groups of a warp read the
// same x element (a broadcast), and the 16 lanes of a group consecutive ones.
// The butterfly is __shfl_xor_sync with offsets 8, 4, 2, 1 inside each half
// warp: for j < off, lane j adds lane j + off, as the canonical order says.
//
// This is a GEMV-style kernel for serving batches (M up to a few dozen); large
// M re-reads the weights once per row tile (from L2) and uses no tensor cores.
#include <cuda_runtime.h>
#include <stdint.h>

#include "../common.hpp"
#include "../cuda_kernels.hpp"
#include "../int8_gemm.hpp"
#include "cuda_util.hpp"

namespace torus { namespace cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kGroups = kThreads / kGemmLanes;   // channels per block
constexpr int kChunk = 256;                      // K per shared-memory chunk, a multiple of kGemmLanes
constexpr int64_t kMaxGridY = 65535;

template <int MT>
__global__ void __launch_bounds__(kThreads) int8_gemm_kernel(const float* __restrict__ x, const int8_t* __restrict__ q,
                                                             const float* __restrict__ scale,
                                                             const float* __restrict__ bias, float* __restrict__ y,
                                                             int64_t m, int64_t n, int64_t k) {
    __shared__ float xs[MT][kChunk];
    const int lane = threadIdx.x % kGemmLanes;
    const int64_t ch = (int64_t)blockIdx.x * kGroups + threadIdx.x / kGemmLanes;
    const bool active = ch < n;
    const int8_t* qc = q + (active ? ch : 0) * k;
    for (int64_t m0 = (int64_t)blockIdx.y * MT; m0 < m; m0 += (int64_t)gridDim.y * MT) {
        const int rows = (int)(m - m0 < MT ? m - m0 : MT);
        float acc[MT];
#pragma unroll
        for (int r = 0; r < MT; r++) acc[r] = 0.0f;
        for (int64_t k0 = 0; k0 < k; k0 += kChunk) {
            const int kc = (int)(k - k0 < kChunk ? k - k0 : kChunk);
            __syncthreads();   // the previous chunk has been read by every group
            for (int i = threadIdx.x; i < MT * kChunk; i += kThreads) {
                const int r = i / kChunk, c = i % kChunk;
                xs[r][c] = (r < rows && c < kc) ? x[(m0 + r) * k + k0 + c] : 0.0f;
            }
            __syncthreads();
            if (active) {
#pragma unroll 4
                for (int c = lane; c < kc; c += kGemmLanes) {
                    const float w = (float)__ldg(qc + k0 + c);   // exact
#pragma unroll
                    for (int r = 0; r < MT; r++) acc[r] = __fadd_rn(acc[r], __fmul_rn(xs[r][c], w));
                }
            }
        }
        // every lane of the warp takes part in the shuffles, active or not
#pragma unroll
        for (int r = 0; r < MT; r++) {
#pragma unroll
            for (int off = kGemmLanes / 2; off >= 1; off /= 2)
                acc[r] = __fadd_rn(acc[r], __shfl_xor_sync(0xffffffffu, acc[r], off));
        }
        if (active && lane == 0) {
            const float s = scale[ch];
#pragma unroll
            for (int r = 0; r < MT; r++) {   // unrolled: acc stays in registers
                if (r < rows) {
                    const float v = __fmul_rn(acc[r], s);
                    y[(m0 + r) * n + ch] = bias != nullptr ? __fadd_rn(v, bias[ch]) : v;
                }
            }
        }
    }
}

template <int MT>
int launch(void* s, const float* x, const int8_t* q, const float* scale, const float* bias, float* y, int64_t m,
           int64_t n, int64_t k) {
    const int64_t tiles = (m + MT - 1) / MT;
    const dim3 grid((unsigned)((n + kGroups - 1) / kGroups), (unsigned)(tiles < kMaxGridY ? tiles : kMaxGridY));
    int8_gemm_kernel<MT><<<grid, kThreads, 0, (cudaStream_t)s>>>(x, q, scale, bias, y, m, n, k);
    return check_launch("int8_gemm");
}

}  // namespace

int int8_gemm(int device, void* s, const float* x, const int8_t* q, const float* scale, const float* bias, float* y,
              int64_t m, int64_t n, int64_t k) {
    TORUS_CUDA_CHECK(use_device(device));
    if (m == 0 || n == 0) return TORUS_OK;
    if ((n + kGroups - 1) / kGroups > 0x7fffffffLL)
        return fail(TORUS_ERR_INVALID_ARGUMENT, "int8_gemm: n must be < 2^35 on CUDA, got " + std::to_string(n));
    // the row tile: the weights are read once per tile, the shared x tile grows with it
    if (m == 1) return launch<1>(s, x, q, scale, bias, y, m, n, k);
    if (m == 2) return launch<2>(s, x, q, scale, bias, y, m, n, k);
    if (m <= 4) return launch<4>(s, x, q, scale, bias, y, m, n, k);
    return launch<8>(s, x, q, scale, bias, y, m, n, k);
}

} }
