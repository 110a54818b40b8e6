// The C ABI: argument checks, then dispatch to the CPU kernels (best ISA the
// machine supports) or to the CUDA kernels.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common.hpp"
#include "cpu/cpu_kernels.hpp"
#include "cpu/thread_pool.hpp"
#include "cuda_kernels.hpp"
#include "cpu/recompute_cpu.hpp"
#include "cpu/train_cpu.hpp"
#include "cpu/int8_gemm_cpu.hpp"

using namespace torus;

namespace {

enum class Isa { base, avx2, avx512 };

Isa detect_isa() {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        return Isa::avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        return Isa::avx2;
#endif
    return Isa::base;
}

Isa isa() {
    static const Isa chosen = [] {
        const char* forced = std::getenv("TORUS_CPU_ISA");  // diagnostic override: base | avx2 | avx512
        Isa best = detect_isa();
        if (forced && std::strcmp(forced, "base") == 0) return Isa::base;
        if (forced && std::strcmp(forced, "avx2") == 0 && best != Isa::base) return Isa::avx2;
        return best;
    }();
    return chosen;
}

#define TORUS_CPU_CALL(fn, ...)                                          \
    do {                                                                 \
        switch (isa()) {                                                 \
            case Isa::avx512: torus::cpu_avx512::fn(__VA_ARGS__); break; \
            case Isa::avx2: torus::cpu_avx2::fn(__VA_ARGS__); break;     \
            default: torus::cpu_base::fn(__VA_ARGS__); break;            \
        }                                                                \
    } while (0)

int check_float(const char* op, const char* name, int dtype) {
    if (!is_float_dtype(dtype))
        return fail(TORUS_ERR_INVALID_ARGUMENT, std::string(op) + ": " + name +
                    " must be FLOAT32, FLOAT16 or BFLOAT16 (0, 1, 2), got " + std::to_string(dtype));
    return TORUS_OK;
}

int check_q(const char* op, const char* name, int dtype) {
    if (!is_q_dtype(dtype))
        return fail(TORUS_ERR_INVALID_ARGUMENT, std::string(op) + ": " + name + " must be INT8 or UINT8 (4, 5), got " +
                    std::to_string(dtype));
    return TORUS_OK;
}

#define TORUS_CHECK(expr)                 \
    do {                                  \
        int _st = (expr);                 \
        if (_st != TORUS_OK) return _st;  \
    } while (0)

}  // namespace

extern "C" {

const char* torus_isa_name(void) {
    switch (isa()) {
        case Isa::avx512: return "avx512";
        case Isa::avx2: return "avx2";
        default: return "base";
    }
}

int torus_cuda_compiled(void) { return cuda::compiled() ? 1 : 0; }

int torus_cuda_device_count(int* count) {
    return guarded("cuda_device_count", [&] {
        TORUS_CHECK(check_pointer("cuda_device_count", "count", count, 1));
        return cuda::device_count(count);
    });
}

int torus_cuda_device_name(int device, char* buf, int len) {
    return guarded("cuda_device_name", [&] {
        TORUS_CHECK(check_pointer("cuda_device_name", "buf", buf, len));
        return cuda::device_name(device, buf, len);
    });
}

int torus_cpu_threads(void) { return ThreadPool::instance().threads(); }

int torus_set_cpu_threads(int threads) {
    return guarded("set_cpu_threads", [&] {
        if (threads < 1 || threads > 4096)
            return fail(TORUS_ERR_INVALID_ARGUMENT, "set_cpu_threads: threads must be in [1, 4096], got " + std::to_string(threads));
        ThreadPool::instance().set_threads(threads);
        return (int)TORUS_OK;
    });
}

int torus_host_alloc(int64_t bytes, int pinned, void** out) {
    return guarded("host_alloc", [&] {
        TORUS_CHECK(check_pointer("host_alloc", "out", out, 1));
        *out = nullptr;
        if (bytes < 0) return fail(TORUS_ERR_INVALID_ARGUMENT, "host_alloc: bytes must be >= 0, got " + std::to_string(bytes));
        if (pinned) return cuda::host_alloc_pinned(bytes, out);
        size_t rounded = (size_t)((bytes + 63) / 64 * 64);
        if (rounded == 0) rounded = 64;
        void* p = std::aligned_alloc(64, rounded);
        if (!p) return fail(TORUS_ERR_OUT_OF_MEMORY, "host_alloc: cannot allocate " + std::to_string(bytes) + " bytes");
        *out = p;
        return (int)TORUS_OK;
    });
}

int torus_host_free(void* ptr, int pinned) {
    return guarded("host_free", [&] {
        if (!ptr) return (int)TORUS_OK;
        if (pinned) return cuda::host_free_pinned(ptr);
        std::free(ptr);
        return (int)TORUS_OK;
    });
}

int torus_host_copy(void* dst, const void* src, int64_t bytes) {
    return guarded("host_copy", [&] {
        if (bytes < 0) return fail(TORUS_ERR_INVALID_ARGUMENT, "host_copy: bytes must be >= 0");
        TORUS_CHECK(check_pointer("host_copy", "dst", dst, bytes));
        TORUS_CHECK(check_pointer("host_copy", "src", src, bytes));
        ThreadPool& pool = ThreadPool::instance();
        const int64_t tasks = pool.split(bytes, 1 << 18);
        pool.run(tasks, [&](int64_t t) {
            int64_t s = bytes * t / tasks / 64 * 64, e = t + 1 == tasks ? bytes : bytes * (t + 1) / tasks / 64 * 64;
            std::memcpy((char*)dst + s, (const char*)src + s, (size_t)(e - s));
        });
        return (int)TORUS_OK;
    });
}

extern "C++" {
namespace {
volatile uint64_t stream_sink;

// Runs body(lo, hi) over [0, n) in contiguous ranges on the kernel pool; ranges are
// multiples of 16 elements so that vector loops stay aligned with each other.
template <class F>
void f32_ranges(int64_t n, F&& body) {
    ThreadPool& pool = ThreadPool::instance();
    const int64_t tasks = pool.split(n, 1 << 16);
    pool.run(tasks, [&](int64_t t) {
        int64_t lo = n * t / tasks / 16 * 16, hi = t + 1 == tasks ? n : n * (t + 1) / tasks / 16 * 16;
        if (hi > lo) body(lo, hi);
    });
}

int f32_binary(const char* op, float* dst, const float* a, const float* b, int64_t n, bool add) {
    return guarded(op, [&] {
        if (n < 0) return fail(TORUS_ERR_INVALID_ARGUMENT, std::string(op) + ": n must be >= 0");
        if (n == 0) return (int)TORUS_OK;
        TORUS_CHECK(check_pointer(op, "dst", dst, n * 4));
        TORUS_CHECK(check_pointer(op, "a", a, n * 4));
        TORUS_CHECK(check_pointer(op, "b", b, n * 4));
        f32_ranges(n, [&](int64_t lo, int64_t hi) {
            if (add) {
                for (int64_t i = lo; i < hi; i++) dst[i] = a[i] + b[i];
            } else {
                for (int64_t i = lo; i < hi; i++) dst[i] = a[i] - b[i];
            }
        });
        return (int)TORUS_OK;
    });
}
}  // namespace
}  // extern "C++"

int torus_f32_add(float* dst, const float* a, const float* b, int64_t n) {
    return f32_binary("f32_add", dst, a, b, n, true);
}

int torus_f32_sub(float* dst, const float* a, const float* b, int64_t n) {
    return f32_binary("f32_sub", dst, a, b, n, false);
}

int torus_f32_add_on(int device, void* stream, float* dst, const float* a, const float* b, int64_t n) {
    if (device < 0) return torus_f32_add(dst, a, b, n);
    return guarded("f32_add", [&] {
        if (n < 0) return fail(TORUS_ERR_INVALID_ARGUMENT, "f32_add: n must be >= 0");
        TORUS_CHECK(check_pointer("f32_add", "dst", dst, n * 4));
        TORUS_CHECK(check_pointer("f32_add", "a", a, n * 4));
        TORUS_CHECK(check_pointer("f32_add", "b", b, n * 4));
        return cuda::f32_add(device, stream, dst, a, b, n);
    });
}

int torus_f32_sub_on(int device, void* stream, float* dst, const float* a, const float* b, int64_t n) {
    if (device < 0) return torus_f32_sub(dst, a, b, n);
    return guarded("f32_sub", [&] {
        if (n < 0) return fail(TORUS_ERR_INVALID_ARGUMENT, "f32_sub: n must be >= 0");
        TORUS_CHECK(check_pointer("f32_sub", "dst", dst, n * 4));
        TORUS_CHECK(check_pointer("f32_sub", "a", a, n * 4));
        TORUS_CHECK(check_pointer("f32_sub", "b", b, n * 4));
        return cuda::f32_sub(device, stream, dst, a, b, n);
    });
}

int torus_f32_sum_chunks_on(int device, void* stream, float* dst, const float* src, int ranks, int64_t chunk,
                            int divisor) {
    if (device < 0) return torus_f32_sum_chunks(dst, src, ranks, chunk, divisor);
    return guarded("f32_sum_chunks", [&] {
        if (ranks < 1) return fail(TORUS_ERR_INVALID_ARGUMENT, "f32_sum_chunks: ranks must be >= 1");
        if (chunk < 0) return fail(TORUS_ERR_INVALID_ARGUMENT, "f32_sum_chunks: chunk must be >= 0");
        if (divisor < 1) return fail(TORUS_ERR_INVALID_ARGUMENT, "f32_sum_chunks: divisor must be >= 1");
        if (chunk > INT64_MAX / 4 / ranks) return fail(TORUS_ERR_INVALID_ARGUMENT, "f32_sum_chunks: ranks * chunk overflows");
        TORUS_CHECK(check_pointer("f32_sum_chunks", "dst", dst, chunk * 4));
        TORUS_CHECK(check_pointer("f32_sum_chunks", "src", src, chunk * ranks * 4));
        return cuda::f32_sum_chunks(device, stream, dst, src, ranks, chunk, divisor);
    });
}

int torus_host_stream(void* dst, int64_t dst_bytes, const void* src, int64_t src_bytes) {
    return guarded("host_stream", [&] {
        if (dst_bytes < 0 || src_bytes < 0) return fail(TORUS_ERR_INVALID_ARGUMENT, "host_stream: byte counts must be >= 0");
        if (src_bytes < 8) return (int)TORUS_OK;
        TORUS_CHECK(check_pointer("host_stream", "src", src, src_bytes));
        if (dst_bytes > 0) TORUS_CHECK(check_pointer("host_stream", "dst", dst, dst_bytes));
        const uint64_t* in = (const uint64_t*)src;
        uint64_t* out = (uint64_t*)dst;
        const int64_t wi = src_bytes / 8, wo = dst_bytes / 8;
        // tiles of about 4 KiB of input, each with its proportional share of the output: fold the tile's
        // input words (a vectorized XOR reduction), then fill its output words (a vectorized store)
        const int64_t tiles = std::max<int64_t>(1, wi / 512);
        std::vector<uint64_t> folded((size_t)std::max<int64_t>(1, ThreadPool::instance().split(tiles, 16)), 0);
        ThreadPool& pool = ThreadPool::instance();
        const int64_t tasks = (int64_t)folded.size();
        pool.run(tasks, [&](int64_t task) {
            int64_t t0 = tiles * task / tasks, t1 = tiles * (task + 1) / tasks;
            uint64_t keep = 0;
            for (int64_t t = t0; t < t1; t++) {
                int64_t i0 = (int64_t)((__int128)wi * t / tiles), i1 = (int64_t)((__int128)wi * (t + 1) / tiles);
                uint64_t x0 = 0, x1 = 0, x2 = 0, x3 = 0;
                int64_t i = i0;
                for (; i + 4 <= i1; i += 4) { x0 ^= in[i]; x1 ^= in[i + 1]; x2 ^= in[i + 2]; x3 ^= in[i + 3]; }
                for (; i < i1; i++) x0 ^= in[i];
                const uint64_t x = x0 ^ x1 ^ x2 ^ x3;
                int64_t o0 = (int64_t)((__int128)wo * t / tiles), o1 = (int64_t)((__int128)wo * (t + 1) / tiles);
                for (int64_t o = o0; o < o1; o++) out[o] = x;
                keep ^= x;
            }
            folded[(size_t)task] = keep;
        });
        if (wo == 0) {
            uint64_t x = 0;
            for (uint64_t f : folded) x ^= f;
            stream_sink = x;  // read-only: the fold must be observable, or the loads could go
        }
        return (int)TORUS_OK;
    });
}

int torus_f32_sum_chunks(float* dst, const float* src, int ranks, int64_t chunk, int divisor) {
    return guarded("f32_sum_chunks", [&] {
        if (ranks < 1) return fail(TORUS_ERR_INVALID_ARGUMENT, "f32_sum_chunks: ranks must be >= 1");
        if (chunk < 0) return fail(TORUS_ERR_INVALID_ARGUMENT, "f32_sum_chunks: chunk must be >= 0");
        if (divisor < 1) return fail(TORUS_ERR_INVALID_ARGUMENT, "f32_sum_chunks: divisor must be >= 1");
        if (chunk == 0) return (int)TORUS_OK;
        TORUS_CHECK(check_pointer("f32_sum_chunks", "dst", dst, chunk * 4));
        TORUS_CHECK(check_pointer("f32_sum_chunks", "src", src, chunk * ranks * 4));
        const float k = (float)divisor;
        f32_ranges(chunk, [&](int64_t lo, int64_t hi) {
            // in cache-sized windows: each element adds rank 0, 1, ... in order, as the scalar loop does
            for (int64_t w = lo; w < hi; w += 4096) {
                int64_t e = std::min(hi, w + 4096);
                for (int64_t i = w; i < e; i++) dst[i] = src[i];
                for (int r = 1; r < ranks; r++) {
                    const float* s = src + (int64_t)r * chunk;
                    for (int64_t i = w; i < e; i++) dst[i] = dst[i] + s[i];
                }
                if (divisor != 1) {
                    for (int64_t i = w; i < e; i++) dst[i] = dst[i] / k;
                }
            }
        });
        return (int)TORUS_OK;
    });
}

int torus_host_zero(void* dst, int64_t bytes) {
    return guarded("host_zero", [&] {
        if (bytes < 0) return fail(TORUS_ERR_INVALID_ARGUMENT, "host_zero: bytes must be >= 0");
        TORUS_CHECK(check_pointer("host_zero", "dst", dst, bytes));
        ThreadPool& pool = ThreadPool::instance();
        const int64_t tasks = pool.split(bytes, 1 << 18);
        pool.run(tasks, [&](int64_t t) {
            int64_t s = bytes * t / tasks / 64 * 64, e = t + 1 == tasks ? bytes : bytes * (t + 1) / tasks / 64 * 64;
            std::memset((char*)dst + s, 0, (size_t)(e - s));
        });
        return (int)TORUS_OK;
    });
}

int torus_stream_create(int device, void** out) {
    return guarded("stream_create", [&] {
        TORUS_CHECK(check_pointer("stream_create", "out", out, 1));
        return cuda::stream_create(device, out);
    });
}
int torus_stream_destroy(int device, void* s) { return guarded("stream_destroy", [&] { return cuda::stream_destroy(device, s); }); }
int torus_stream_synchronize(int device, void* s) {
    return guarded("stream_synchronize", [&] { return device < 0 ? (int)TORUS_OK : cuda::stream_synchronize(device, s); });
}
int torus_stream_wait_event(int device, void* s, void* e) {
    return guarded("stream_wait_event", [&] { return cuda::stream_wait_event(device, s, e); });
}

int torus_stream_wait_stream(int device, void* waiter, void* waitee) {
    return guarded("stream_wait_stream", [&] {
        if (waiter == waitee) return (int)TORUS_OK;
        return cuda::stream_wait_stream(device, waiter, waitee);
    });
}
int torus_event_create(int device, int timing, void** out) {
    return guarded("event_create", [&] {
        TORUS_CHECK(check_pointer("event_create", "out", out, 1));
        return cuda::event_create(device, timing, out);
    });
}
int torus_event_destroy(int device, void* e) { return guarded("event_destroy", [&] { return cuda::event_destroy(device, e); }); }
int torus_event_record(int device, void* e, void* s) { return guarded("event_record", [&] { return cuda::event_record(device, e, s); }); }
int torus_event_synchronize(int device, void* e) { return guarded("event_synchronize", [&] { return cuda::event_synchronize(device, e); }); }
int torus_event_query(int device, void* e, int* done) {
    return guarded("event_query", [&] {
        TORUS_CHECK(check_pointer("event_query", "done", done, 1));
        return cuda::event_query(device, e, done);
    });
}
int torus_event_elapsed_ms(int device, void* a, void* b, float* ms) {
    return guarded("event_elapsed_ms", [&] {
        TORUS_CHECK(check_pointer("event_elapsed_ms", "ms", ms, 1));
        return cuda::event_elapsed_ms(device, a, b, ms);
    });
}
int torus_device_alloc(int device, int64_t bytes, void* s, void** out) {
    return guarded("device_alloc", [&] {
        TORUS_CHECK(check_pointer("device_alloc", "out", out, 1));
        *out = nullptr;
        if (bytes < 0) return fail(TORUS_ERR_INVALID_ARGUMENT, "device_alloc: bytes must be >= 0, got " + std::to_string(bytes));
        return cuda::device_alloc(device, bytes, s, out);
    });
}
int torus_device_free(int device, void* p, void* s) {
    return guarded("device_free", [&] { return p ? cuda::device_free(device, p, s) : (int)TORUS_OK; });
}
int torus_memcpy_async(int device, void* dst, const void* src, int64_t bytes, void* s) {
    return guarded("memcpy_async", [&] {
        if (bytes < 0) return fail(TORUS_ERR_INVALID_ARGUMENT, "memcpy_async: bytes must be >= 0");
        if (bytes == 0) return (int)TORUS_OK;
        TORUS_CHECK(check_pointer("memcpy_async", "dst", dst, bytes));
        TORUS_CHECK(check_pointer("memcpy_async", "src", src, bytes));
        if (device < 0) return torus_host_copy(dst, src, bytes);
        return cuda::memcpy_async(device, dst, src, bytes, s);
    });
}
int torus_memset_async(int device, void* dst, int value, int64_t bytes, void* s) {
    return guarded("memset_async", [&] {
        if (bytes < 0) return fail(TORUS_ERR_INVALID_ARGUMENT, "memset_async: bytes must be >= 0");
        if (bytes == 0) return (int)TORUS_OK;
        TORUS_CHECK(check_pointer("memset_async", "dst", dst, bytes));
        if (device < 0) {
            std::memset(dst, value, (size_t)bytes);
            return (int)TORUS_OK;
        }
        return cuda::memset_async(device, dst, value, bytes, s);
    });
}

int torus_stats(int device, void* stream, int in_dtype, const void* x, int64_t n, int64_t outer, int64_t channels,
                int64_t inner, int64_t block, float* absmax, float* mn, float* mx) {
    return guarded("stats", [&] {
        Grouping g{n, outer, channels, inner, block};
        TORUS_CHECK(check_float("stats", "in_dtype", in_dtype));
        TORUS_CHECK(check_grouping("stats", g));
        TORUS_CHECK(check_pointer("stats", "x", x, n));
        if (device < 0) {
            TORUS_CPU_CALL(stats, in_dtype, x, g, absmax, mn, mx);
            return (int)TORUS_OK;
        }
        return cuda::stats(device, stream, in_dtype, x, g, absmax, mn, mx);
    });
}

int torus_quantize_symmetric(int device, void* stream, int in_dtype, const void* x, int64_t n, int64_t outer,
                             int64_t channels, int64_t inner, int64_t block, int8_t* q, float* scales, int stochastic,
                             uint64_t seed) {
    return guarded("quantize_symmetric", [&] {
        Grouping g{n, outer, channels, inner, block};
        TORUS_CHECK(check_float("quantize_symmetric", "in_dtype", in_dtype));
        TORUS_CHECK(check_grouping("quantize_symmetric", g));
        TORUS_CHECK(check_pointer("quantize_symmetric", "x", x, n));
        TORUS_CHECK(check_pointer("quantize_symmetric", "q", q, n));
        TORUS_CHECK(check_pointer("quantize_symmetric", "scales", scales, g.groups()));
        if (device < 0) {
            TORUS_CPU_CALL(quantize_symmetric, in_dtype, x, g, q, scales, stochastic != 0, seed);
            return (int)TORUS_OK;
        }
        return cuda::quantize_symmetric(device, stream, in_dtype, x, g, q, scales, stochastic != 0, seed);
    });
}

int torus_quantize_affine(int device, void* stream, int in_dtype, const void* x, int64_t n, int64_t outer,
                          int64_t channels, int64_t inner, int64_t block, const float* scales,
                          const int32_t* zero_points, int qmin, int qmax, int out_dtype, void* q, int stochastic,
                          uint64_t seed) {
    return guarded("quantize_affine", [&] {
        Grouping g{n, outer, channels, inner, block};
        TORUS_CHECK(check_float("quantize_affine", "in_dtype", in_dtype));
        TORUS_CHECK(check_q("quantize_affine", "out_dtype", out_dtype));
        TORUS_CHECK(check_grouping("quantize_affine", g));
        TORUS_CHECK(check_pointer("quantize_affine", "x", x, n));
        TORUS_CHECK(check_pointer("quantize_affine", "q", q, n));
        TORUS_CHECK(check_pointer("quantize_affine", "scales", scales, g.groups()));
        int lo = out_dtype == TORUS_UINT8 ? 0 : -128, hi = out_dtype == TORUS_UINT8 ? 255 : 127;
        if (qmin < lo || qmax > hi || qmin > qmax)
            return fail(TORUS_ERR_INVALID_ARGUMENT, "quantize_affine: need " + std::to_string(lo) + " <= qmin <= qmax <= " +
                        std::to_string(hi) + ", got qmin=" + std::to_string(qmin) + " qmax=" + std::to_string(qmax));
        if (device < 0) {
            TORUS_CPU_CALL(quantize_affine, in_dtype, x, g, scales, zero_points, qmin, qmax, out_dtype, q,
                           stochastic != 0, seed);
            return (int)TORUS_OK;
        }
        return cuda::quantize_affine(device, stream, in_dtype, x, g, scales, zero_points, qmin, qmax, out_dtype, q,
                                     stochastic != 0, seed);
    });
}

int torus_dequantize(int device, void* stream, int q_dtype, const void* q, int64_t n, int64_t outer, int64_t channels,
                     int64_t inner, int64_t block, const float* scales, const int32_t* zero_points, int out_dtype,
                     void* y) {
    return guarded("dequantize", [&] {
        Grouping g{n, outer, channels, inner, block};
        TORUS_CHECK(check_q("dequantize", "q_dtype", q_dtype));
        TORUS_CHECK(check_float("dequantize", "out_dtype", out_dtype));
        TORUS_CHECK(check_grouping("dequantize", g));
        TORUS_CHECK(check_pointer("dequantize", "q", q, n));
        TORUS_CHECK(check_pointer("dequantize", "y", y, n));
        TORUS_CHECK(check_pointer("dequantize", "scales", scales, g.groups()));
        if (device < 0) {
            TORUS_CPU_CALL(dequantize, q_dtype, q, g, scales, zero_points, out_dtype, y);
            return (int)TORUS_OK;
        }
        return cuda::dequantize(device, stream, q_dtype, q, g, scales, zero_points, out_dtype, y);
    });
}

int torus_cast(int device, void* stream, int in_dtype, const void* x, int out_dtype, void* y, int64_t n) {
    return guarded("cast", [&] {
        TORUS_CHECK(check_float("cast", "in_dtype", in_dtype));
        TORUS_CHECK(check_float("cast", "out_dtype", out_dtype));
        if (n < 0) return fail(TORUS_ERR_INVALID_ARGUMENT, "cast: n must be >= 0, got " + std::to_string(n));
        TORUS_CHECK(check_pointer("cast", "x", x, n));
        TORUS_CHECK(check_pointer("cast", "y", y, n));
        if (device < 0) {
            TORUS_CPU_CALL(cast, in_dtype, x, out_dtype, y, n);
            return (int)TORUS_OK;
        }
        return cuda::cast(device, stream, in_dtype, x, out_dtype, y, n);
    });
}

namespace {

int check_shape(const char* op, int64_t rows, int64_t cols) {
    if (rows < 0 || cols < 0)
        return fail(TORUS_ERR_INVALID_ARGUMENT, std::string(op) + ": rows and cols must be >= 0, got " +
                    std::to_string(rows) + " x " + std::to_string(cols));
    if (cols > 0 && rows > INT64_MAX / cols)
        return fail(TORUS_ERR_INVALID_ARGUMENT, std::string(op) + ": rows x cols overflows");
    return TORUS_OK;
}

int check_eps(const char* op, float eps) {
    if (!(eps > 0.0f) || eps != eps || eps > 1e30f)
        return fail(TORUS_ERR_INVALID_ARGUMENT, std::string(op) + ": eps must be a positive finite number");
    return TORUS_OK;
}

}  // namespace

int torus_bias_gelu_forward(int device, void* stream, const float* x, const float* bias, float* y, int64_t rows,
                            int64_t cols) {
    return guarded("bias_gelu_forward", [&] {
        TORUS_CHECK(check_shape("bias_gelu_forward", rows, cols));
        TORUS_CHECK(check_pointer("bias_gelu_forward", "x", x, rows * cols));
        TORUS_CHECK(check_pointer("bias_gelu_forward", "bias", bias, rows > 0 ? cols : 0));
        TORUS_CHECK(check_pointer("bias_gelu_forward", "y", y, rows * cols));
        if (device < 0) {
            TORUS_CPU_CALL(cpu_recompute::bias_gelu_forward, x, bias, y, rows, cols);
            return (int)TORUS_OK;
        }
        return cuda::bias_gelu_forward(device, stream, x, bias, y, rows, cols);
    });
}

int torus_bias_gelu_backward(int device, void* stream, const float* x, const float* bias, const float* dy, float* dx,
                             float* dbias, int64_t rows, int64_t cols) {
    return guarded("bias_gelu_backward", [&] {
        TORUS_CHECK(check_shape("bias_gelu_backward", rows, cols));
        TORUS_CHECK(check_pointer("bias_gelu_backward", "x", x, rows * cols));
        TORUS_CHECK(check_pointer("bias_gelu_backward", "bias", bias, rows > 0 ? cols : 0));
        TORUS_CHECK(check_pointer("bias_gelu_backward", "dy", dy, rows * cols));
        TORUS_CHECK(check_pointer("bias_gelu_backward", "dx", dx, rows * cols));
        if (device < 0) {
            TORUS_CPU_CALL(cpu_recompute::bias_gelu_backward, x, bias, dy, dx, dbias, rows, cols);
            return (int)TORUS_OK;
        }
        return cuda::bias_gelu_backward(device, stream, x, bias, dy, dx, dbias, rows, cols);
    });
}

int torus_dropout(int device, void* stream, const float* x, float* y, int64_t n, float p, uint64_t seed,
                  uint64_t offset) {
    return guarded("dropout", [&] {
        if (n < 0) return fail(TORUS_ERR_INVALID_ARGUMENT, "dropout: n must be >= 0, got " + std::to_string(n));
        if (!(p >= 0.0f && p < 1.0f))
            return fail(TORUS_ERR_INVALID_ARGUMENT, "dropout: p must be in [0, 1), got " + std::to_string(p));
        TORUS_CHECK(check_pointer("dropout", "x", x, n));
        TORUS_CHECK(check_pointer("dropout", "y", y, n));
        if (device < 0) {
            TORUS_CPU_CALL(cpu_recompute::dropout, x, y, n, p, seed, offset);
            return (int)TORUS_OK;
        }
        return cuda::dropout(device, stream, x, y, n, p, seed, offset);
    });
}

int torus_layernorm_forward(int device, void* stream, const float* x, const float* gamma, const float* beta, float* y,
                            float* mean, float* rstd, int64_t rows, int64_t cols, float eps) {
    return guarded("layernorm_forward", [&] {
        TORUS_CHECK(check_shape("layernorm_forward", rows, cols));
        TORUS_CHECK(check_eps("layernorm_forward", eps));
        if (rows > 0 && cols == 0) return fail(TORUS_ERR_INVALID_ARGUMENT, "layernorm_forward: cols must be > 0");
        TORUS_CHECK(check_pointer("layernorm_forward", "x", x, rows * cols));
        TORUS_CHECK(check_pointer("layernorm_forward", "gamma", gamma, rows > 0 ? cols : 0));
        TORUS_CHECK(check_pointer("layernorm_forward", "beta", beta, rows > 0 ? cols : 0));
        TORUS_CHECK(check_pointer("layernorm_forward", "y", y, rows * cols));
        if (device < 0) {
            TORUS_CPU_CALL(cpu_recompute::layernorm_forward, x, gamma, beta, y, mean, rstd, rows, cols, eps);
            return (int)TORUS_OK;
        }
        return cuda::layernorm_forward(device, stream, x, gamma, beta, y, mean, rstd, rows, cols, eps);
    });
}

int torus_layernorm_backward(int device, void* stream, const float* x, const float* gamma, const float* dy, float* dx,
                             float* dgamma, float* dbeta, float* scratch, int64_t rows, int64_t cols, float eps) {
    return guarded("layernorm_backward", [&] {
        TORUS_CHECK(check_shape("layernorm_backward", rows, cols));
        TORUS_CHECK(check_eps("layernorm_backward", eps));
        if (rows > 0 && cols == 0) return fail(TORUS_ERR_INVALID_ARGUMENT, "layernorm_backward: cols must be > 0");
        TORUS_CHECK(check_pointer("layernorm_backward", "x", x, rows * cols));
        TORUS_CHECK(check_pointer("layernorm_backward", "gamma", gamma, rows > 0 ? cols : 0));
        TORUS_CHECK(check_pointer("layernorm_backward", "dy", dy, rows * cols));
        TORUS_CHECK(check_pointer("layernorm_backward", "dx", dx, rows * cols));
        if (dgamma != nullptr || dbeta != nullptr)
            TORUS_CHECK(check_pointer("layernorm_backward", "scratch", scratch, 2 * rows));
        if (device < 0) {
            TORUS_CPU_CALL(cpu_recompute::layernorm_backward, x, gamma, dy, dx, dgamma, dbeta, scratch, rows, cols,
                           eps);
            return (int)TORUS_OK;
        }
        return cuda::layernorm_backward(device, stream, x, gamma, dy, dx, dgamma, dbeta, scratch, rows, cols, eps);
    });
}

namespace {

int check_count(const char* op, int64_t n) {
    if (n < 0) return fail(TORUS_ERR_INVALID_ARGUMENT, std::string(op) + ": n must be >= 0, got " + std::to_string(n));
    return TORUS_OK;
}

int check_finite(const char* op, const char* name, float v) {
    if (v != v || v > 3.4e38f || v < -3.4e38f)
        return fail(TORUS_ERR_INVALID_ARGUMENT, std::string(op) + ": " + name + " must be finite");
    return TORUS_OK;
}

}  // namespace

int torus_relu_forward(int device, void* stream, const float* x, float* y, int64_t n) {
    return guarded("relu_forward", [&] {
        TORUS_CHECK(check_count("relu_forward", n));
        TORUS_CHECK(check_pointer("relu_forward", "x", x, n));
        TORUS_CHECK(check_pointer("relu_forward", "y", y, n));
        if (device < 0) {
            TORUS_CPU_CALL(cpu_train::relu_forward, x, y, n);
            return (int)TORUS_OK;
        }
        return cuda::relu_forward(device, stream, x, y, n);
    });
}

int torus_relu_backward(int device, void* stream, const float* x, const float* dy, float* dx, int64_t n) {
    return guarded("relu_backward", [&] {
        TORUS_CHECK(check_count("relu_backward", n));
        TORUS_CHECK(check_pointer("relu_backward", "x", x, n));
        TORUS_CHECK(check_pointer("relu_backward", "dy", dy, n));
        TORUS_CHECK(check_pointer("relu_backward", "dx", dx, n));
        if (device < 0) {
            TORUS_CPU_CALL(cpu_train::relu_backward, x, dy, dx, n);
            return (int)TORUS_OK;
        }
        return cuda::relu_backward(device, stream, x, dy, dx, n);
    });
}

int torus_bias_add(int device, void* stream, float* y, const float* bias, int64_t rows, int64_t cols) {
    return guarded("bias_add", [&] {
        TORUS_CHECK(check_shape("bias_add", rows, cols));
        TORUS_CHECK(check_pointer("bias_add", "y", y, rows * cols));
        TORUS_CHECK(check_pointer("bias_add", "bias", bias, rows > 0 ? cols : 0));
        if (device < 0) {
            TORUS_CPU_CALL(cpu_train::bias_add, y, bias, rows, cols);
            return (int)TORUS_OK;
        }
        return cuda::bias_add(device, stream, y, bias, rows, cols);
    });
}

int torus_column_sum(int device, void* stream, const float* v, float* out, int64_t rows, int64_t cols,
                     int accumulate) {
    return guarded("column_sum", [&] {
        TORUS_CHECK(check_shape("column_sum", rows, cols));
        TORUS_CHECK(check_pointer("column_sum", "v", v, rows * cols));
        TORUS_CHECK(check_pointer("column_sum", "out", out, cols));
        if (device < 0) {
            TORUS_CPU_CALL(cpu_train::column_sum, v, out, rows, cols, accumulate != 0);
            return (int)TORUS_OK;
        }
        return cuda::column_sum(device, stream, v, out, rows, cols, accumulate != 0);
    });
}

int torus_axpy(int device, void* stream, float alpha, const float* x, float* y, int64_t n) {
    return guarded("axpy", [&] {
        TORUS_CHECK(check_count("axpy", n));
        TORUS_CHECK(check_finite("axpy", "alpha", alpha));
        TORUS_CHECK(check_pointer("axpy", "x", x, n));
        TORUS_CHECK(check_pointer("axpy", "y", y, n));
        if (device < 0) {
            TORUS_CPU_CALL(cpu_train::axpy, alpha, x, y, n);
            return (int)TORUS_OK;
        }
        return cuda::axpy(device, stream, alpha, x, y, n);
    });
}

int torus_softmax_xent(int device, void* stream, const float* x, const int32_t* labels, float* loss, float* dx,
                       int64_t rows, int64_t cols, float grad_scale) {
    return guarded("softmax_xent", [&] {
        TORUS_CHECK(check_shape("softmax_xent", rows, cols));
        if (rows > 0 && cols == 0) return fail(TORUS_ERR_INVALID_ARGUMENT, "softmax_xent: cols must be >= 1");
        TORUS_CHECK(check_finite("softmax_xent", "grad_scale", grad_scale));
        TORUS_CHECK(check_pointer("softmax_xent", "x", x, rows * cols));
        TORUS_CHECK(check_pointer("softmax_xent", "labels", labels, rows));
        TORUS_CHECK(check_pointer("softmax_xent", "loss", loss, rows));
        if (device < 0) {
            TORUS_CPU_CALL(cpu_train::softmax_xent, x, labels, loss, dx, rows, cols, grad_scale);
            return (int)TORUS_OK;
        }
        return cuda::softmax_xent(device, stream, x, labels, loss, dx, rows, cols, grad_scale);
    });
}

int torus_sgd_step(int device, void* stream, float* param, const float* grad, float* buf, int64_t n, float lr,
                   float momentum, float weight_decay, int nesterov, int first) {
    return guarded("sgd_step", [&] {
        TORUS_CHECK(check_count("sgd_step", n));
        TORUS_CHECK(check_finite("sgd_step", "lr", lr));
        TORUS_CHECK(check_finite("sgd_step", "momentum", momentum));
        TORUS_CHECK(check_finite("sgd_step", "weight_decay", weight_decay));
        TORUS_CHECK(check_pointer("sgd_step", "param", param, n));
        TORUS_CHECK(check_pointer("sgd_step", "grad", grad, n));
        if (momentum != 0.0f) TORUS_CHECK(check_pointer("sgd_step", "buf", buf, n));
        if (device < 0) {
            TORUS_CPU_CALL(cpu_train::sgd_step, param, grad, buf, n, lr, momentum, weight_decay, nesterov != 0, first != 0);
            return (int)TORUS_OK;
        }
        return cuda::sgd_step(device, stream, param, grad, buf, n, lr, momentum, weight_decay, nesterov != 0,
                              first != 0);
    });
}

int torus_adamw_step(int device, void* stream, float* param, const float* grad, float* m, float* v, int64_t n,
                     float lr, float beta1, float beta2, float eps, float weight_decay, float bc1, float bc2) {
    return guarded("adamw_step", [&] {
        TORUS_CHECK(check_count("adamw_step", n));
        TORUS_CHECK(check_finite("adamw_step", "lr", lr));
        TORUS_CHECK(check_eps("adamw_step", eps));
        if (!(bc1 > 0.0f && bc1 <= 1.0f) || !(bc2 > 0.0f && bc2 <= 1.0f))
            return fail(TORUS_ERR_INVALID_ARGUMENT, "adamw_step: bias corrections must be in (0, 1]");
        TORUS_CHECK(check_pointer("adamw_step", "param", param, n));
        TORUS_CHECK(check_pointer("adamw_step", "grad", grad, n));
        TORUS_CHECK(check_pointer("adamw_step", "m", m, n));
        TORUS_CHECK(check_pointer("adamw_step", "v", v, n));
        if (device < 0) {
            TORUS_CPU_CALL(cpu_train::adamw_step, param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, bc1, bc2);
            return (int)TORUS_OK;
        }
        return cuda::adamw_step(device, stream, param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, bc1, bc2);
    });
}

int torus_int8_gemm(int device, void* stream, const float* x, const int8_t* q, const float* scale, const float* bias,
                    float* y, int64_t m, int64_t n, int64_t k) {
    return guarded("int8_gemm", [&] {
        if (m < 0 || n < 0 || k < 0)
            return fail(TORUS_ERR_INVALID_ARGUMENT, "int8_gemm: m, n and k must be >= 0, got " + std::to_string(m) +
                        ", " + std::to_string(n) + ", " + std::to_string(k));
        TORUS_CHECK(check_shape("int8_gemm (x)", m, k));
        TORUS_CHECK(check_shape("int8_gemm (q)", n, k));
        TORUS_CHECK(check_shape("int8_gemm (y)", m, n));
        if (m == 0 || n == 0) return (int)TORUS_OK;
        TORUS_CHECK(check_pointer("int8_gemm", "x", x, m * k));
        TORUS_CHECK(check_pointer("int8_gemm", "q", q, n * k));
        TORUS_CHECK(check_pointer("int8_gemm", "scale", scale, n));
        TORUS_CHECK(check_pointer("int8_gemm", "y", y, m * n));
        if (device < 0) {
            TORUS_CPU_CALL(cpu_gemm::int8_gemm, x, q, scale, bias, y, m, n, k);
            return (int)TORUS_OK;
        }
        return cuda::int8_gemm(device, stream, x, q, scale, bias, y, m, n, k);
    });
}

}  // extern "C"
