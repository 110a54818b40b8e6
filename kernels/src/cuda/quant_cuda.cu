// CUDA quantization kernels: 16-byte vector loads, grid-stride loops, and the
// same scalar numerics as the CPU (numerics.hpp), so results are bit-identical.
// Compiled with --fmad=false and without fast-math; see CMakeLists.txt.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "../common.hpp"
#include "../cuda_kernels.hpp"
#include "../numerics.hpp"
#include "cuda_util.hpp"

namespace torus { namespace cuda {

namespace {

constexpr int THREADS = 256;

// Maps an element index to its scale group (see torus.h).
struct GroupOf {
    int mode;            // 0 tensor, 1 block, 2 channel
    int shift;           // log2(block)
    int64_t inner, channels;
    __device__ __forceinline__ int64_t operator()(int64_t i) const {
        if (mode == 0) return 0;
        if (mode == 1) return i >> shift;
        return (i / inner) % channels;
    }
};

GroupOf group_of(const Grouping& g) {
    GroupOf r{};
    if (g.block > 0) {
        r.mode = 1;
        while ((int64_t(1) << r.shift) < g.block) ++r.shift;
    } else {
        r.mode = g.channels == 1 ? 0 : 2;
        r.inner = g.inner;
        r.channels = g.channels;
    }
    return r;
}

template <typename T, int N>
struct alignas(sizeof(T) * N < 16 ? sizeof(T) * N : 16) Pack {
    T v[N];
};

bool aligned(const void* p, size_t a) { return (reinterpret_cast<uintptr_t>(p) % a) == 0; }

int grid_for(int device, int64_t work_items) {
    int64_t blocks = (work_items + THREADS - 1) / THREADS;
    int64_t cap = (int64_t)sm_count(device) * 8;
    return (int)std::max<int64_t>(1, std::min(blocks, cap));
}

// ---- elementwise (quantize-apply, dequantize, cast) ---------------------------
template <typename In, typename Out, typename Op>
__global__ void elementwise_kernel(const In* __restrict__ x, Out* __restrict__ y, int64_t n, Op op, bool vec) {
    constexpr int V = 16 / sizeof(In);
    using InPack = Pack<In, V>;
    using OutPack = Pack<Out, V>;
    const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const int64_t nvec = vec ? n / V : 0;
    for (int64_t v = tid; v < nvec; v += stride) {
        InPack a = reinterpret_cast<const InPack*>(x)[v];
        OutPack b;
#pragma unroll
        for (int k = 0; k < V; ++k) b.v[k] = op(a.v[k], v * V + k);
        reinterpret_cast<OutPack*>(y)[v] = b;
    }
    for (int64_t i = nvec * V + tid; i < n; i += stride) y[i] = op(x[i], i);
}

template <typename In, typename Q>
struct QuantizeOp {
    const float* scales;
    const int32_t* zps;
    GroupOf group;
    float lo, hi;
    bool sr;
    uint64_t seed;
    __device__ __forceinline__ Q operator()(In x, int64_t i) const {
        int64_t g = group(i);
        float inv = inverse_scale(scales[g]);
        float zp = zps ? (float)zps[g] : 0.0f;
        float v = io<In>::load(x);
        int32_t r = sr ? quantize_value_stochastic(v, inv, zp, lo, hi, philox_uniform(seed, (uint64_t)i))
                       : quantize_value(v, inv, zp, lo, hi);
        return (Q)r;
    }
};

template <typename Q, typename Out>
struct DequantizeOp {
    const float* scales;
    const int32_t* zps;
    GroupOf group;
    __device__ __forceinline__ Out operator()(Q q, int64_t i) const {
        int64_t g = group(i);
        return io<Out>::store(dequantize_value((int32_t)q, zps ? zps[g] : 0, scales[g]));
    }
};

template <typename In, typename Out>
struct CastOp {
    __device__ __forceinline__ Out operator()(In x, int64_t) const { return io<Out>::store(io<In>::load(x)); }
};

template <typename In, typename Out, typename Op>
int launch_elementwise(int device, void* s, const char* op_name, const In* x, Out* y, int64_t n, Op op) {
    if (n == 0) return TORUS_OK;
    constexpr int V = 16 / sizeof(In);
    bool vec = aligned(x, 16) && aligned(y, sizeof(Out) * V < 16 ? sizeof(Out) * V : 16);
    int grid = grid_for(device, vec ? (n + V - 1) / V : n);
    elementwise_kernel<In, Out, Op><<<grid, THREADS, 0, (cudaStream_t)s>>>(x, y, n, op, vec);
    return check_launch(op_name);
}

// ---- statistics ------------------------------------------------------------------
__device__ __forceinline__ uint32_t warp_max_u32(uint32_t v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ int32_t warp_max_i32(int32_t v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ int32_t warp_min_i32(int32_t v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

struct Acc {
    uint32_t amax;
    int32_t kmin, kmax;
    __device__ __forceinline__ void reset() { amax = 0; kmin = KEY_EMPTY_MIN; kmax = KEY_EMPTY_MAX; }
    __device__ __forceinline__ void add(float v) {
        amax = max(amax, finite_abs_bits(v));
        if (is_finite_bits(v)) {
            int32_t k = float_key(v);
            kmin = min(kmin, k);
            kmax = max(kmax, k);
        }
    }
};

// Stats buffers hold integer keys while accumulating: absmax as the bits of a
// non-negative float (ordered like the value), min/max as float_key().
__global__ void stats_init_kernel(int64_t groups, uint32_t* amax, int32_t* kmin, int32_t* kmax) {
    for (int64_t g = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; g < groups; g += (int64_t)gridDim.x * blockDim.x) {
        if (amax) amax[g] = 0;
        if (kmin) kmin[g] = KEY_EMPTY_MIN;
        if (kmax) kmax[g] = KEY_EMPTY_MAX;
    }
}

__device__ __forceinline__ void flush(const Acc& a, int64_t g, uint32_t* amax, int32_t* kmin, int32_t* kmax) {
    if (amax && a.amax != 0) atomicMax(&amax[g], a.amax);
    if (kmin && a.kmin != KEY_EMPTY_MIN) atomicMin(&kmin[g], a.kmin);
    if (kmax && a.kmax != KEY_EMPTY_MAX) atomicMax(&kmax[g], a.kmax);
}

// Tensor and channel modes: each thread folds runs of equal group and flushes
// with an atomic on a change of group; per-tensor reduces in the warp first.
template <typename In>
__global__ void stats_kernel(const In* __restrict__ x, int64_t n, GroupOf group, bool vec, uint32_t* amax,
                             int32_t* kmin, int32_t* kmax) {
    constexpr int V = 16 / sizeof(In);
    using InPack = Pack<In, V>;
    const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    Acc a;
    a.reset();
    int64_t cur = -1;
    auto take = [&](float v, int64_t i) {
        int64_t g = group(i);
        if (g != cur) {
            if (cur >= 0) flush(a, cur, amax, kmin, kmax);
            a.reset();
            cur = g;
        }
        a.add(v);
    };
    const int64_t nvec = vec ? n / V : 0;
    for (int64_t v = tid; v < nvec; v += stride) {
        InPack p = reinterpret_cast<const InPack*>(x)[v];
#pragma unroll
        for (int k = 0; k < V; ++k) take(io<In>::load(p.v[k]), v * V + k);
    }
    for (int64_t i = nvec * V + tid; i < n; i += stride) take(io<In>::load(x[i]), i);
    if (group.mode == 0) {
        // All lanes share group 0: reduce in the warp, one atomic per warp.
        uint32_t m = warp_max_u32(a.amax);
        int32_t lo = warp_min_i32(a.kmin), hi = warp_max_i32(a.kmax);
        if ((threadIdx.x & 31) == 0) {
            Acc w;
            w.amax = m; w.kmin = lo; w.kmax = hi;
            flush(w, 0, amax, kmin, kmax);
        }
    } else if (cur >= 0) {
        flush(a, cur, amax, kmin, kmax);
    }
}

// Channel mode with short runs (inner < kShortRun, e.g. per-channel on the last
// axis): the tensor is a [outer, channels * inner] matrix whose column c belongs
// to group c / inner. A block of 32 x 8 threads takes 32 adjacent columns (so a
// warp reads adjacent elements of one row) and a slice of the rows; the 8 row
// lanes meet in shared memory and one thread per column flushes. That is one
// atomic per column per block instead of one per element. Max and min are exact
// and order-free, so the result is the CPU's bit for bit.
constexpr int64_t kShortRun = 32;
constexpr int kColTile = 32, kRowLanes = 8;

template <typename In>
__global__ void stats_columns_kernel(const In* __restrict__ x, int64_t rows, int64_t cols, int64_t inner,
                                     int64_t rows_per_block, uint32_t* amax, int32_t* kmin, int32_t* kmax) {
    __shared__ Acc part[kRowLanes][kColTile];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t c = (int64_t)blockIdx.x * kColTile + tx;
    const int64_t r0 = (int64_t)blockIdx.y * rows_per_block;
    const int64_t r1 = min(rows, r0 + rows_per_block);
    Acc a;
    a.reset();
    if (c < cols)
        for (int64_t r = r0 + ty; r < r1; r += kRowLanes) a.add(io<In>::load(x[r * cols + c]));
    part[ty][tx] = a;
    __syncthreads();
    if (ty == 0 && c < cols) {
        for (int k = 1; k < kRowLanes; k++) {
            const Acc& o = part[k][tx];
            a.amax = max(a.amax, o.amax);
            a.kmin = min(a.kmin, o.kmin);
            a.kmax = max(a.kmax, o.kmax);
        }
        flush(a, c / inner, amax, kmin, kmax);
    }
}

// Converts accumulated keys into floats (empty group -> 0), and for the
// symmetric path turns absmax into the scale in place.
__global__ void stats_finish_kernel(int64_t groups, float* amax, float* mn, float* mx, bool to_scale) {
    for (int64_t g = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; g < groups; g += (int64_t)gridDim.x * blockDim.x) {
        if (amax && to_scale) amax[g] = symmetric_scale(amax[g]);
        if (mn) {
            int32_t k = __float_as_int(mn[g]);
            mn[g] = k == KEY_EMPTY_MIN ? 0.0f : key_to_float(k);
        }
        if (mx) {
            int32_t k = __float_as_int(mx[g]);
            mx[g] = k == KEY_EMPTY_MAX ? 0.0f : key_to_float(k);
        }
    }
}

// Blockwise: one warp per block. The second pass re-reads the block, which
// the first pass has just brought into L1/L2.
//
// The 16-byte path loads V = 16 / sizeof(In) elements at x + b * block + j, so it
// is only taken when a full block is a whole number of packs: block % V == 0 keeps
// every pack inside its block and 16-byte aligned (x itself is). The C ABI accepts
// any power-of-two block, so blocks of 1..V-1 elements take the scalar path.
template <typename In>
bool block_vec_ok(int64_t block, const void* x, const void* q) {
    constexpr int V = 16 / sizeof(In);
    return block % V == 0 && aligned(x, 16) && (q == nullptr || aligned(q, 16));
}

template <typename In>
__device__ __forceinline__ void block_fold(const In* __restrict__ x, int64_t len, bool full_vec, Acc& a) {
    constexpr int V = 16 / sizeof(In);
    using InPack = Pack<In, V>;
    const int lane = threadIdx.x & 31;
    if (full_vec) {
        for (int64_t j = (int64_t)lane * V; j < len; j += 32 * V) {
            InPack p = *reinterpret_cast<const InPack*>(x + j);
#pragma unroll
            for (int k = 0; k < V; ++k) a.add(io<In>::load(p.v[k]));
        }
    } else {
        for (int64_t j = lane; j < len; j += 32) a.add(io<In>::load(x[j]));
    }
}

template <typename In>
__global__ void block_stats_kernel(const In* __restrict__ x, int64_t n, int64_t block, int64_t nblocks, bool vec,
                                   float* amax, float* mn, float* mx) {
    const int lane = threadIdx.x & 31;
    const int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int64_t nwarps = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t b = warp; b < nblocks; b += nwarps) {
        int64_t s = b * block, len = min(n - s, block);
        Acc a;
        a.reset();
        block_fold(x + s, len, vec && len == block, a);
        uint32_t m = warp_max_u32(a.amax);
        int32_t lo = warp_min_i32(a.kmin), hi = warp_max_i32(a.kmax);
        if (lane == 0) {
            if (amax) amax[b] = __uint_as_float(m);
            if (mn) mn[b] = lo == KEY_EMPTY_MIN ? 0.0f : key_to_float(lo);
            if (mx) mx[b] = hi == KEY_EMPTY_MAX ? 0.0f : key_to_float(hi);
        }
    }
}

template <typename In>
__global__ void block_quantize_kernel(const In* __restrict__ x, int8_t* __restrict__ q, float* __restrict__ scales,
                                      int64_t n, int64_t block, int64_t nblocks, bool vec, bool sr, uint64_t seed) {
    constexpr int V = 16 / sizeof(In);
    using InPack = Pack<In, V>;
    using QPack = Pack<int8_t, V>;
    const int lane = threadIdx.x & 31;
    const int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int64_t nwarps = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t b = warp; b < nblocks; b += nwarps) {
        const int64_t s = b * block, len = min(n - s, block);
        const bool full_vec = vec && len == block;
        Acc a;
        a.reset();
        block_fold(x + s, len, full_vec, a);
        const float scale = symmetric_scale(__uint_as_float(warp_max_u32(a.amax)));
        const float inv = inverse_scale(scale);
        if (lane == 0) scales[b] = scale;
        auto quant = [&](float v, int64_t i) -> int8_t {
            return (int8_t)(sr ? quantize_value_stochastic(v, inv, 0.0f, -127.0f, 127.0f, philox_uniform(seed, (uint64_t)i))
                               : quantize_value(v, inv, 0.0f, -127.0f, 127.0f));
        };
        if (full_vec) {
            for (int64_t j = (int64_t)lane * V; j < len; j += 32 * V) {
                InPack p = *reinterpret_cast<const InPack*>(x + s + j);
                QPack o;
#pragma unroll
                for (int k = 0; k < V; ++k) o.v[k] = quant(io<In>::load(p.v[k]), s + j + k);
                *reinterpret_cast<QPack*>(q + s + j) = o;
            }
        } else {
            for (int64_t j = lane; j < len; j += 32) q[s + j] = quant(io<In>::load(x[s + j]), s + j);
        }
    }
}

template <typename F>
int with_float_type(int dtype, F&& f) {
    switch (dtype) {
        case TORUS_FLOAT32: return f((float*)nullptr);
        case TORUS_FLOAT16: return f((half_bits*)nullptr);
        default: return f((bf16_bits*)nullptr);
    }
}

template <typename In>
int stats_typed(int device, void* s, const In* x, const Grouping& g, float* amax, float* mn, float* mx,
                bool to_scale) {
    const int64_t groups = g.groups();
    if (groups == 0) return TORUS_OK;
    cudaStream_t st = (cudaStream_t)s;
    constexpr int V = 16 / sizeof(In);
    if (g.block > 0) {
        int64_t nblocks = groups;
        int grid = grid_for(device, nblocks * 32);
        block_stats_kernel<In><<<grid, THREADS, 0, st>>>(x, g.n, g.block, nblocks,
                                                         block_vec_ok<In>(g.block, x, nullptr), amax, mn, mx);
        TORUS_CUDA_CHECK(check_launch("block_stats"));
        if (to_scale) {
            stats_finish_kernel<<<grid_for(device, groups), THREADS, 0, st>>>(groups, amax, nullptr, nullptr, true);
            TORUS_CUDA_CHECK(check_launch("stats_finish"));
        }
        return TORUS_OK;
    }
    stats_init_kernel<<<grid_for(device, groups), THREADS, 0, st>>>(groups, (uint32_t*)amax, (int32_t*)mn, (int32_t*)mx);
    TORUS_CUDA_CHECK(check_launch("stats_init"));
    if (g.n > 0 && g.channels > 1 && g.inner < kShortRun) {
        const int64_t cols = g.channels * g.inner, rows = g.outer;
        const int64_t gx = (cols + kColTile - 1) / kColTile;
        // enough blocks to fill the device, each with at least a few rows per lane
        int64_t gy = std::max<int64_t>(1, (int64_t)sm_count(device) * 8 / gx);
        gy = std::min<int64_t>({gy, (rows + 4 * kRowLanes - 1) / (4 * kRowLanes), 65535});
        gy = std::max<int64_t>(gy, 1);
        const int64_t per = (rows + gy - 1) / gy;
        gy = (rows + per - 1) / per;
        stats_columns_kernel<In><<<dim3((unsigned)gx, (unsigned)gy), dim3(kColTile, kRowLanes), 0, st>>>(
            x, rows, cols, g.inner, per, (uint32_t*)amax, (int32_t*)mn, (int32_t*)mx);
        TORUS_CUDA_CHECK(check_launch("stats (short channel runs)"));
    } else if (g.n > 0) {
        bool vec = aligned(x, 16);
        int grid = grid_for(device, vec ? (g.n + V - 1) / V : g.n);
        stats_kernel<In><<<grid, THREADS, 0, st>>>(x, g.n, group_of(g), vec, (uint32_t*)amax, (int32_t*)mn, (int32_t*)mx);
        TORUS_CUDA_CHECK(check_launch("stats"));
    }
    stats_finish_kernel<<<grid_for(device, groups), THREADS, 0, st>>>(groups, amax, mn, mx, to_scale);
    return check_launch("stats_finish");
}

}  // namespace

int stats(int device, void* s, int in_dtype, const void* x, const Grouping& g, float* absmax, float* mn, float* mx) {
    TORUS_CUDA_CHECK(use_device(device));
    return with_float_type(in_dtype, [&](auto* tag) {
        using In = std::remove_pointer_t<decltype(tag)>;
        return stats_typed(device, s, (const In*)x, g, absmax, mn, mx, false);
    });
}

int quantize_symmetric(int device, void* s, int in_dtype, const void* x, const Grouping& g, int8_t* q, float* scales,
                       bool sr, uint64_t seed) {
    TORUS_CUDA_CHECK(use_device(device));
    return with_float_type(in_dtype, [&](auto* tag) -> int {
        using In = std::remove_pointer_t<decltype(tag)>;
        const In* xi = (const In*)x;
        if (g.n == 0 && g.block > 0) return TORUS_OK;
        if (g.block > 0) {
            int64_t nblocks = g.groups();
            int grid = grid_for(device, nblocks * 32);
            block_quantize_kernel<In><<<grid, THREADS, 0, (cudaStream_t)s>>>(xi, q, scales, g.n, g.block, nblocks,
                                                                             block_vec_ok<In>(g.block, x, q), sr, seed);
            return check_launch("block_quantize");
        }
        TORUS_CUDA_CHECK(stats_typed(device, s, xi, g, scales, nullptr, nullptr, true));
        QuantizeOp<In, int8_t> op{scales, nullptr, group_of(g), -127.0f, 127.0f, sr, seed};
        return launch_elementwise(device, s, "quantize_symmetric", xi, q, g.n, op);
    });
}

int quantize_affine(int device, void* s, int in_dtype, const void* x, const Grouping& g, const float* scales,
                    const int32_t* zps, int qmin, int qmax, int out_dtype, void* q, bool sr, uint64_t seed) {
    TORUS_CUDA_CHECK(use_device(device));
    return with_float_type(in_dtype, [&](auto* tag) -> int {
        using In = std::remove_pointer_t<decltype(tag)>;
        if (out_dtype == TORUS_UINT8) {
            QuantizeOp<In, uint8_t> op{scales, zps, group_of(g), (float)qmin, (float)qmax, sr, seed};
            return launch_elementwise(device, s, "quantize_affine", (const In*)x, (uint8_t*)q, g.n, op);
        }
        QuantizeOp<In, int8_t> op{scales, zps, group_of(g), (float)qmin, (float)qmax, sr, seed};
        return launch_elementwise(device, s, "quantize_affine", (const In*)x, (int8_t*)q, g.n, op);
    });
}

int dequantize(int device, void* s, int q_dtype, const void* q, const Grouping& g, const float* scales,
               const int32_t* zps, int out_dtype, void* y) {
    TORUS_CUDA_CHECK(use_device(device));
    return with_float_type(out_dtype, [&](auto* tag) -> int {
        using Out = std::remove_pointer_t<decltype(tag)>;
        if (q_dtype == TORUS_UINT8) {
            DequantizeOp<uint8_t, Out> op{scales, zps, group_of(g)};
            return launch_elementwise(device, s, "dequantize", (const uint8_t*)q, (Out*)y, g.n, op);
        }
        DequantizeOp<int8_t, Out> op{scales, zps, group_of(g)};
        return launch_elementwise(device, s, "dequantize", (const int8_t*)q, (Out*)y, g.n, op);
    });
}

int cast(int device, void* s, int in_dtype, const void* x, int out_dtype, void* y, int64_t n) {
    TORUS_CUDA_CHECK(use_device(device));
    return with_float_type(in_dtype, [&](auto* itag) -> int {
        using In = std::remove_pointer_t<decltype(itag)>;
        return with_float_type(out_dtype, [&](auto* otag) -> int {
            using Out = std::remove_pointer_t<decltype(otag)>;
            return launch_elementwise(device, s, "cast", (const In*)x, (Out*)y, n, CastOp<In, Out>{});
        });
    });
}

} }
