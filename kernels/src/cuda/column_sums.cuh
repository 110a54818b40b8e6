// The canonical column sum on CUDA (the CPU twin is column_sums in cpu/rows.hpp):
// for each column, 32 interleaved partials over the rows (partial j adds rows
// r = j mod 32 in increasing r, from 0.0f), then the butterfly 16..1.
//
// A block of 32 x 32 threads takes 32 adjacent columns; thread (tx, ty) owns
// partial ty of column tx, so each warp reads 32 adjacent floats of a row
// (coalesced), and the butterfly runs in shared memory. This replaces one thread
// per column adding every row, which left all but cols threads idle.
#pragma once

#include <cuda_runtime.h>

#include "../recompute_math.hpp"
#include "cuda_util.hpp"

namespace torus { namespace cuda {

constexpr int kColumnTile = 32;

// Value: __device__ void operator()(int64_t r, int64_t c, float* t) writes the K terms of (r, c).
// Write: __device__ void operator()(int64_t c, const float* s) receives the K sums of column c.
template <int K, class Value, class Write>
__global__ void column_sums_kernel(int64_t rows, int64_t cols, Value value, Write write) {
    __shared__ float part[K][kLanes][kColumnTile + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t c = (int64_t)blockIdx.x * kColumnTile + tx;
    float p[K];
#pragma unroll
    for (int k = 0; k < K; k++) p[k] = 0.0f;
    if (c < cols) {
        float t[K];
        for (int64_t r = ty; r < rows; r += kLanes) {
            value(r, c, t);
#pragma unroll
            for (int k = 0; k < K; k++) p[k] += t[k];
        }
    }
#pragma unroll
    for (int k = 0; k < K; k++) part[k][ty][tx] = p[k];
    __syncthreads();
    for (int off = kLanes / 2; off >= 1; off /= 2) {
        if (ty < off) {
#pragma unroll
            for (int k = 0; k < K; k++) part[k][ty][tx] = part[k][ty][tx] + part[k][ty + off][tx];
        }
        __syncthreads();
    }
    if (ty == 0 && c < cols) {
        float s[K];
#pragma unroll
        for (int k = 0; k < K; k++) s[k] = part[k][0][tx];
        write(c, s);
    }
}

template <int K, class Value, class Write>
int launch_column_sums(void* s, const char* name, int64_t rows, int64_t cols, Value value, Write write) {
    if (cols == 0) return TORUS_OK;
    dim3 block(kColumnTile, kLanes);
    int64_t grid = (cols + kColumnTile - 1) / kColumnTile;
    column_sums_kernel<K><<<(unsigned)grid, block, 0, (cudaStream_t)s>>>(rows, cols, value, write);
    return check_launch(name);
}

} }
