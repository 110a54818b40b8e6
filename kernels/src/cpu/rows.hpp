// Row-parallel loops and the canonical row sum shared by the CPU recompute and
// training kernels (the CUDA kernels follow the same order; recompute_math.hpp).
#pragma once

#include <stdint.h>

#include <algorithm>
#include <cstring>

#include "thread_pool.hpp"
#include "../recompute_math.hpp"

#ifndef TORUS_CPU_NS
#error "TORUS_CPU_NS must name the ISA namespace (compiled once per instruction set)"
#endif

namespace torus { namespace TORUS_CPU_NS { namespace cpu_recompute {

// Runs body(r) for every row, split over the pool in contiguous ranges.
template <class F>
void parallel_rows(int64_t rows, int64_t cols, F&& body) {
    ThreadPool& pool = ThreadPool::instance();
    int64_t tasks = pool.split(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)));
    int64_t per = (rows + tasks - 1) / std::max<int64_t>(tasks, 1);
    pool.run(tasks, [&](int64_t t) {
        int64_t lo = t * per, hi = std::min(rows, lo + per);
        for (int64_t r = lo; r < hi; r++) body(r);
    });
}

// Runs body(i) for i in [0, n), split over the pool in contiguous ranges.
template <class F>
void parallel_for(int64_t n, int64_t grain, F&& body) {
    ThreadPool& pool = ThreadPool::instance();
    int64_t tasks = pool.split(n, grain);
    int64_t per = (n + tasks - 1) / std::max<int64_t>(tasks, 1);
    pool.run(tasks, [&](int64_t t) {
        int64_t lo = t * per, hi = std::min(n, lo + per);
        for (int64_t i = lo; i < hi; i++) body(i);
    });
}

// The canonical row sum: 32 interleaved partials, then the butterfly 16..1.
template <class G>
float row_sum(int64_t cols, G&& value) {
    float p[kLanes];
    for (int j = 0; j < kLanes; j++) p[j] = 0.0f;
    for (int64_t i = 0; i < cols; i++) p[i % kLanes] += value(i);
    for (int off = kLanes / 2; off >= 1; off /= 2)
        for (int j = 0; j < off; j++) p[j] = p[j] + p[j + off];
    return p[0];
}

// The canonical column sum, the row sum turned on its side: for each column, 32
// interleaved partials over the rows (partial j adds rows r = j mod 32 in
// increasing r, from 0.0f), then the butterfly 16..1. The CUDA kernels
// (cuda/column_sums.cuh) give each partial a thread. K sums per column share one
// pass: value(r, c, t) writes the K terms of element (r, c) into t[0..K), and
// write(c, s) receives the K sums of column c.
template <int K, class V, class W>
void column_sums(int64_t rows, int64_t cols, V&& value, W&& write) {
    constexpr int64_t kTile = 64;   // columns whose partials stay on the stack: 32 * K * 64 floats
    ThreadPool& pool = ThreadPool::instance();
    int64_t tasks = pool.split(cols, kTile);
    int64_t per = (cols + tasks - 1) / std::max<int64_t>(tasks, 1);
    pool.run(tasks, [&](int64_t t) {
        int64_t lo = t * per, hi = std::min(cols, lo + per);
        float p[kLanes][K][kTile];
        float term[K];
        for (int64_t c0 = lo; c0 < hi; c0 += kTile) {
            int64_t w = std::min(kTile, hi - c0);
            std::memset(p, 0, sizeof(p));
            for (int64_t r = 0; r < rows; r++) {
                float(*pl)[kTile] = p[r % kLanes];
                for (int64_t i = 0; i < w; i++) {
                    value(r, c0 + i, term);
                    for (int k = 0; k < K; k++) pl[k][i] += term[k];
                }
            }
            for (int off = kLanes / 2; off >= 1; off /= 2)
                for (int j = 0; j < off; j++)
                    for (int k = 0; k < K; k++)
                        for (int64_t i = 0; i < w; i++) p[j][k][i] = p[j][k][i] + p[j + off][k][i];
            for (int64_t i = 0; i < w; i++) {
                float sum[K];
                for (int k = 0; k < K; k++) sum[k] = p[0][k][i];
                write(c0 + i, sum);
            }
        }
    });
}

} } }
