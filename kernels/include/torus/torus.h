/*
 * Torus kernels: the C ABI.
 *
 * Every entry point returns a torus_status. On failure the detail is kept in a
 * thread-local string that torus_last_error() returns; it stays valid until the
 * next failing call on the same thread. No C++ exception ever leaves these
 * functions.
 *
 * Devices: device < 0 is the host (CPU); device >= 0 is a CUDA ordinal.
 * Streams are opaque cudaStream_t handles; NULL is the legacy default stream.
 * Sizes are in elements unless the name says bytes.
 *
 * Grouping of scales/statistics. A tensor of n elements is viewed either as
 *   - blocks:   block > 0, group g covers elements [g*block, min(n,(g+1)*block));
 *   - channels: block == 0, the shape is [outer, channels, inner] (row-major)
 *               and element i belongs to group (i / inner) % channels.
 * Per-tensor is channels == 1, outer == 1, inner == n.
 */
#ifndef TORUS_TORUS_H
#define TORUS_TORUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum torus_status {
    TORUS_OK = 0,
    TORUS_ERR_INVALID_ARGUMENT = 1,
    TORUS_ERR_OUT_OF_MEMORY = 2,
    TORUS_ERR_CUDA = 3,
    TORUS_ERR_CUDA_UNAVAILABLE = 4,
    TORUS_ERR_INTERNAL = 5
} torus_status;

/* Numbering shared with dev.torus.DType. */
typedef enum torus_dtype {
    TORUS_FLOAT32 = 0,
    TORUS_FLOAT16 = 1,
    TORUS_BFLOAT16 = 2,
    TORUS_FLOAT64 = 3,
    TORUS_INT8 = 4,
    TORUS_UINT8 = 5,
    TORUS_INT32 = 6,
    TORUS_INT64 = 7
} torus_dtype;

const char* torus_last_error(void);

/* ---- runtime ---------------------------------------------------------- */
/* 1 when this library was compiled with the CUDA kernels, else 0. */
int torus_cuda_compiled(void);
/* Number of usable CUDA devices; fails with the driver's reason when none. */
int torus_cuda_device_count(int* count);
int torus_cuda_device_name(int device, char* buf, int buf_len);
int torus_cpu_threads(void);
int torus_set_cpu_threads(int threads);
/* The CPU instruction set the kernels dispatch to: "avx512", "avx2" or "base". */
const char* torus_isa_name(void);

/* ---- host memory ------------------------------------------------------- */
/* 64-byte aligned; pinned memory is page-locked through CUDA (needs a GPU). */
int torus_host_alloc(int64_t bytes, int pinned, void** out);
int torus_host_free(void* ptr, int pinned);
/* Multi-threaded copy and zero-fill of host memory. */
int torus_host_copy(void* dst, const void* src, int64_t bytes);
int torus_host_zero(void* dst, int64_t bytes);

/* ---- fp32 element-wise loops of the gradient hooks (host memory) -------- */
/* dst[i] = a[i] + b[i], and a[i] - b[i]; dst may alias a or b. IEEE fp32, no
 * contraction: bitwise the scalar loop. */
int torus_f32_add(float* dst, const float* a, const float* b, int64_t n);
int torus_f32_sub(float* dst, const float* a, const float* b, int64_t n);
/* The streaming ceiling of a kernel that reads src_bytes and writes dst_bytes:
 * reads every 8-byte word of src once and writes every word of dst once (XOR
 * folds, no floating point). With dst_bytes 0 it only reads. Host memory. */
int torus_host_stream(void* dst, int64_t dst_bytes, const void* src, int64_t src_bytes);
/* dst[i] = (src[i] + src[chunk + i] + ... + src[(ranks-1)*chunk + i]) / divisor,
 * added in rank order from src[i]; no division when divisor is 1. dst must not
 * overlap src. Bitwise the scalar loop at any thread count. */
int torus_f32_sum_chunks(float* dst, const float* src, int ranks, int64_t chunk, int divisor);
/* The same three on a device (device < 0: the host versions above; otherwise CUDA
 * twins queued on `stream`, bitwise equal to the host results: the same adds in the
 * same order and one correctly rounded division, no FMA). */
int torus_f32_add_on(int device, void* stream, float* dst, const float* a, const float* b, int64_t n);
int torus_f32_sub_on(int device, void* stream, float* dst, const float* a, const float* b, int64_t n);
int torus_f32_sum_chunks_on(int device, void* stream, float* dst, const float* src, int ranks, int64_t chunk,
                            int divisor);

/* ---- device memory, streams, events ----------------------------------- */
int torus_stream_create(int device, void** out);
int torus_stream_destroy(int device, void* stream);
int torus_stream_synchronize(int device, void* stream);
int torus_stream_wait_event(int device, void* stream, void* event);
/* Makes later work on `waiter` wait for the work queued so far on `waitee` (an
 * event recorded on waitee, waited on by waiter, then released). No-op when they
 * are the same stream. Used to free a buffer only after every stream that read it. */
int torus_stream_wait_stream(int device, void* waiter, void* waitee);
int torus_event_create(int device, int timing, void** out);
int torus_event_destroy(int device, void* event);
int torus_event_record(int device, void* event, void* stream);
int torus_event_synchronize(int device, void* event);
/* *done = 1 when the event has completed, else 0. */
int torus_event_query(int device, void* event, int* done);
int torus_event_elapsed_ms(int device, void* start, void* end, float* ms);
/* Stream-ordered allocation (cudaMallocAsync / cudaFreeAsync). */
int torus_device_alloc(int device, int64_t bytes, void* stream, void** out);
int torus_device_free(int device, void* ptr, void* stream);
/* Asynchronous copy between any two of host (pageable or pinned) and device. */
int torus_memcpy_async(int device, void* dst, const void* src, int64_t bytes, void* stream);
int torus_memset_async(int device, void* dst, int value, int64_t bytes, void* stream);

/* ---- kernels ----------------------------------------------------------- */
/*
 * Statistics over the finite values of each group. Any output may be NULL.
 * A group with no finite value reports 0. Outputs are float arrays with one
 * entry per group, in memory of the same device as x.
 */
int torus_stats(int device, void* stream, int in_dtype, const void* x, int64_t n,
                int64_t outer, int64_t channels, int64_t inner, int64_t block,
                float* absmax, float* min, float* max);

/*
 * Symmetric int8: scale[g] = absmax_g / 127, q = clamp(rne(x * (1/scale)), -127, 127).
 * Writes q (n int8) and scales (one float per group).
 * stochastic != 0 replaces round-to-nearest-even by floor(v + u), u = Philox(seed, i).
 */
int torus_quantize_symmetric(int device, void* stream, int in_dtype, const void* x, int64_t n,
                             int64_t outer, int64_t channels, int64_t inner, int64_t block,
                             int8_t* q, float* scales, int stochastic, uint64_t seed);

/*
 * Affine with given parameters: q = clamp(rne(x * (1/scale[g])) + zp[g], qmin, qmax).
 * zero_points may be NULL (all zero). out_dtype is TORUS_INT8 or TORUS_UINT8.
 */
int torus_quantize_affine(int device, void* stream, int in_dtype, const void* x, int64_t n,
                          int64_t outer, int64_t channels, int64_t inner, int64_t block,
                          const float* scales, const int32_t* zero_points, int qmin, int qmax,
                          int out_dtype, void* q, int stochastic, uint64_t seed);

/* y = (q - zp[g]) * scale[g], rounded once to out_dtype. zero_points may be NULL. */
int torus_dequantize(int device, void* stream, int q_dtype, const void* q, int64_t n,
                     int64_t outer, int64_t channels, int64_t inner, int64_t block,
                     const float* scales, const int32_t* zero_points,
                     int out_dtype, void* y);

/* Round-to-nearest-even conversion among float32, float16 and bfloat16. */
int torus_cast(int device, void* stream, int in_dtype, const void* x, int out_dtype, void* y, int64_t n);

/* ---- recompute kernels (fp32, row-major [rows, cols]) ---------------------------
 * CPU and CUDA give bit-identical results: shared math with only +, -, *, /, sqrt,
 * FMA contraction off, and one canonical reduction order (see
 * kernels/src/recompute_math.hpp and docs/RECOMPUTE.md).
 *
 * bias_gelu_forward:  y = gelu(x + bias[col]), tanh form.
 * bias_gelu_backward: dx = gelu'(x + bias[col]) * dy, recomputed from the
 *                     pre-activation x; dbias (optional) = column sums of dx.
 * dropout:            y = keep(i) ? x * 1/(1-p) : 0 with keep(i) = Philox(seed,
 *                     offset + i) >= p; the backward pass calls it on dy with the
 *                     same (seed, offset), so the mask is never stored.
 * layernorm_forward:  y = (x - mean) * rstd * gamma + beta, rstd = 1/sqrt(var + eps)
 *                     (biased variance); mean and rstd (optional) per row.
 * layernorm_backward: dx, and optionally dgamma and dbeta, recomputing the row
 *                     statistics from x. With dgamma or dbeta, scratch is 2 * rows
 *                     floats of the caller's memory on x's device (row mean and
 *                     rstd); the kernels allocate nothing. Otherwise it may be NULL.
 * Column sums (dbias, dgamma, dbeta) use the canonical column order: per column,
 * 32 interleaved partials over rows (partial j adds rows r = j mod 32 in
 * increasing r), then the butterfly 16, 8, 4, 2, 1 (the row sum turned on its side). */
int torus_bias_gelu_forward(int device, void* stream, const float* x, const float* bias, float* y, int64_t rows,
                            int64_t cols);
int torus_bias_gelu_backward(int device, void* stream, const float* x, const float* bias, const float* dy, float* dx,
                             float* dbias, int64_t rows, int64_t cols);
int torus_dropout(int device, void* stream, const float* x, float* y, int64_t n, float p, uint64_t seed,
                  uint64_t offset);
int torus_layernorm_forward(int device, void* stream, const float* x, const float* gamma, const float* beta, float* y,
                            float* mean, float* rstd, int64_t rows, int64_t cols, float eps);
int torus_layernorm_backward(int device, void* stream, const float* x, const float* gamma, const float* dy, float* dx,
                             float* dgamma, float* dbeta, float* scratch, int64_t rows, int64_t cols, float eps);

/* Training kernels (fp32) for the dev.torus.nn layers and optimizers. CPU and
 * CUDA use the same arithmetic (see docs/RECOMPUTE.md); element-wise ones are
 * bit-identical, row reductions follow the canonical order above.
 *
 * relu_forward:     y = x > 0 ? x : 0 (NaN propagates).
 * relu_backward:    dx = x > 0 ? dy : 0.
 * bias_add:         y[r, c] += bias[c], in place.
 * column_sum:       out[c] (+)= sum over r of v[r, c], in the canonical column order;
 *                   accumulate = 0 overwrites, 1 adds.
 * axpy:             y += alpha * x.
 * softmax_xent:     per row r, loss[r] = logsumexp(x[r]) - x[r, label[r]]; when dx
 *                   is not null, dx[r] = (softmax(x[r]) - onehot(label[r])) * grad_scale.
 *                   A label outside [0, cols) gives loss NaN and a NaN gradient row.
 * sgd_step:         torch.optim.SGD (dampening 0): g = grad + wd * p; with momentum,
 *                   buf = first ? g : momentum * buf + g and g = nesterov ? g + momentum * buf : buf;
 *                   p -= lr * g. buf may be null when momentum is 0.
 * adamw_step:       torch.optim.AdamW: p *= 1 - lr * wd; m = b1 m + (1 - b1) g;
 *                   v = b2 v + (1 - b2) g^2; p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),
 *                   where bc1 = 1 - b1^t and bc2 = 1 - b2^t (the caller computes them). */
int torus_relu_forward(int device, void* stream, const float* x, float* y, int64_t n);
int torus_relu_backward(int device, void* stream, const float* x, const float* dy, float* dx, int64_t n);
int torus_bias_add(int device, void* stream, float* y, const float* bias, int64_t rows, int64_t cols);
int torus_column_sum(int device, void* stream, const float* v, float* out, int64_t rows, int64_t cols, int accumulate);
int torus_axpy(int device, void* stream, float alpha, const float* x, float* y, int64_t n);
int torus_softmax_xent(int device, void* stream, const float* x, const int32_t* labels, float* loss, float* dx,
                       int64_t rows, int64_t cols, float grad_scale);
int torus_sgd_step(int device, void* stream, float* param, const float* grad, float* buf, int64_t n, float lr,
                   float momentum, float weight_decay, int nesterov, int first);
int torus_adamw_step(int device, void* stream, float* param, const float* grad, float* m, float* v, int64_t n,
                     float lr, float beta1, float beta2, float eps, float weight_decay, float bc1, float bc2);

/* ---- weight-only int8 GEMM (serving) ----------------------------------------
 * y[m][n] = scale[n] * sum_k x[m][k] * (float)q[n][k]  (+ bias[n] when bias is not NULL)
 * x: fp32 [M, K], q: int8 [N, K] (nn.Linear's weight layout [out, in], per-output-channel
 * symmetric as torus_quantize_symmetric makes it with channels = N), scale: fp32 [N],
 * bias: fp32 [N] or NULL, y: fp32 [M, N]; all row-major, contiguous and on one device.
 * y must not overlap the inputs. The weights stay int8: each is widened inside the kernel.
 * Order of summation (the same on every ISA, at any thread count and on the GPU, so the
 * results are bit-identical): 16 partials per output, partial j adds
 * fl(x[m][k] * (float)q[n][k]) for k = j mod 16 in increasing k, from +0.0f; then
 * p[j] = p[j] + p[j + off] for off = 8, 4, 2, 1 (j < off); y = p[0] * scale[n], then
 * + bias[n]. Every step is one IEEE fp32 multiply or add; nothing is fused. */
int torus_int8_gemm(int device, void* stream, const float* x, const int8_t* q, const float* scale, const float* bias,
                    float* y, int64_t m, int64_t n, int64_t k);

#ifdef __cplusplus
}
#endif

#endif /* TORUS_TORUS_H */
