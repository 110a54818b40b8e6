// CUDA kernel and runtime entry points. Implemented in cuda/*.cu when the
// library is built with nvcc, and by cuda_disabled.cpp otherwise. Each returns
// a torus_status and sets the last error on failure.
#pragma once

#include <stdint.h>
#include "common.hpp"

namespace torus { namespace cuda {

bool compiled();
int device_count(int* count);
int device_name(int device, char* buf, int len);
int host_alloc_pinned(int64_t bytes, void** out);
int host_free_pinned(void* p);
int stream_create(int device, void** out);
int stream_destroy(int device, void* s);
int stream_synchronize(int device, void* s);
int stream_wait_event(int device, void* s, void* e);
int stream_wait_stream(int device, void* waiter, void* waitee);
int event_create(int device, int timing, void** out);
int event_destroy(int device, void* e);
int event_record(int device, void* e, void* s);
int event_synchronize(int device, void* e);
int event_query(int device, void* e, int* done);
int event_elapsed_ms(int device, void* a, void* b, float* ms);
int device_alloc(int device, int64_t bytes, void* s, void** out);
int device_free(int device, void* p, void* s);
int memcpy_async(int device, void* dst, const void* src, int64_t bytes, void* s);
int memset_async(int device, void* dst, int value, int64_t bytes, void* s);

int stats(int device, void* s, int in_dtype, const void* x, const Grouping& g, float* absmax, float* mn, float* mx);
int quantize_symmetric(int device, void* s, int in_dtype, const void* x, const Grouping& g, int8_t* q,
                       float* scales, bool sr, uint64_t seed);
int quantize_affine(int device, void* s, int in_dtype, const void* x, const Grouping& g, const float* scales,
                    const int32_t* zps, int qmin, int qmax, int out_dtype, void* q, bool sr, uint64_t seed);
int dequantize(int device, void* s, int q_dtype, const void* q, const Grouping& g, const float* scales,
               const int32_t* zps, int out_dtype, void* y);
int cast(int device, void* s, int in_dtype, const void* x, int out_dtype, void* y, int64_t n);

int bias_gelu_forward(int device, void* s, const float* x, const float* bias, float* y, int64_t rows, int64_t cols);
int bias_gelu_backward(int device, void* s, const float* x, const float* bias, const float* dy, float* dx,
                       float* dbias, int64_t rows, int64_t cols);
int dropout(int device, void* s, const float* x, float* y, int64_t n, float p, uint64_t seed, uint64_t offset);
int layernorm_forward(int device, void* s, const float* x, const float* gamma, const float* beta, float* y,
                      float* mean, float* rstd, int64_t rows, int64_t cols, float eps);
int layernorm_backward(int device, void* s, const float* x, const float* gamma, const float* dy, float* dx,
                       float* dgamma, float* dbeta, float* scratch, int64_t rows, int64_t cols, float eps);

int f32_add(int device, void* s, float* d, const float* a, const float* b, int64_t n);
int f32_sub(int device, void* s, float* d, const float* a, const float* b, int64_t n);
int f32_sum_chunks(int device, void* s, float* d, const float* src, int ranks, int64_t chunk, int divisor);
int relu_forward(int device, void* s, const float* x, float* y, int64_t n);
int relu_backward(int device, void* s, const float* x, const float* dy, float* dx, int64_t n);
int bias_add(int device, void* s, float* y, const float* bias, int64_t rows, int64_t cols);
int column_sum(int device, void* s, const float* v, float* out, int64_t rows, int64_t cols, bool accumulate);
int axpy(int device, void* s, float alpha, const float* x, float* y, int64_t n);
int softmax_xent(int device, void* s, const float* x, const int32_t* labels, float* loss, float* dx, int64_t rows,
                 int64_t cols, float grad_scale);
int sgd_step(int device, void* s, float* p, const float* g, float* buf, int64_t n, float lr, float momentum, float wd,
             bool nesterov, bool first);
int adamw_step(int device, void* s, float* p, const float* g, float* m, float* v, int64_t n, float lr, float b1,
               float b2, float eps, float wd, float bc1, float bc2);

int int8_gemm(int device, void* s, const float* x, const int8_t* q, const float* scale, const float* bias, float* y,
              int64_t m, int64_t n, int64_t k);

} }
