// Stand-ins used when the library is built without nvcc: every CUDA entry
// point reports that this build has no CUDA support.
#include "cuda_kernels.hpp"

namespace torus { namespace cuda {

static int no_cuda() {
    return fail(TORUS_ERR_CUDA_UNAVAILABLE,
                "this Torus native library was built without CUDA (nvcc was not found at build time, or -Dtorus.cuda=OFF)");
}

bool compiled() { return false; }
int device_count(int*) { return no_cuda(); }
int device_name(int, char*, int) { return no_cuda(); }
int host_alloc_pinned(int64_t, void**) { return no_cuda(); }
int host_free_pinned(void*) { return no_cuda(); }
int stream_create(int, void**) { return no_cuda(); }
int stream_destroy(int, void*) { return no_cuda(); }
int stream_synchronize(int, void*) { return no_cuda(); }
int stream_wait_event(int, void*, void*) { return no_cuda(); }
int stream_wait_stream(int, void*, void*) { return no_cuda(); }
int event_create(int, int, void**) { return no_cuda(); }
int event_destroy(int, void*) { return no_cuda(); }
int event_record(int, void*, void*) { return no_cuda(); }
int event_synchronize(int, void*) { return no_cuda(); }
int event_query(int, void*, int*) { return no_cuda(); }
int event_elapsed_ms(int, void*, void*, float*) { return no_cuda(); }
int device_alloc(int, int64_t, void*, void**) { return no_cuda(); }
int device_free(int, void*, void*) { return no_cuda(); }
int memcpy_async(int, void*, const void*, int64_t, void*) { return no_cuda(); }
int memset_async(int, void*, int, int64_t, void*) { return no_cuda(); }
int stats(int, void*, int, const void*, const Grouping&, float*, float*, float*) { return no_cuda(); }
int quantize_symmetric(int, void*, int, const void*, const Grouping&, int8_t*, float*, bool, uint64_t) { return no_cuda(); }
int quantize_affine(int, void*, int, const void*, const Grouping&, const float*, const int32_t*, int, int, int, void*,
                    bool, uint64_t) { return no_cuda(); }
int dequantize(int, void*, int, const void*, const Grouping&, const float*, const int32_t*, int, void*) { return no_cuda(); }
int cast(int, void*, int, const void*, int, void*, int64_t) { return no_cuda(); }
int bias_gelu_forward(int, void*, const float*, const float*, float*, int64_t, int64_t) { return no_cuda(); }
int bias_gelu_backward(int, void*, const float*, const float*, const float*, float*, float*, int64_t, int64_t) {
    return no_cuda();
}
int dropout(int, void*, const float*, float*, int64_t, float, uint64_t, uint64_t) { return no_cuda(); }
int layernorm_forward(int, void*, const float*, const float*, const float*, float*, float*, float*, int64_t, int64_t,
                      float) {
    return no_cuda();
}
int layernorm_backward(int, void*, const float*, const float*, const float*, float*, float*, float*, float*, int64_t, int64_t,
                       float) {
    return no_cuda();
}

int f32_add(int, void*, float*, const float*, const float*, int64_t) { return no_cuda(); }
int f32_sub(int, void*, float*, const float*, const float*, int64_t) { return no_cuda(); }
int f32_sum_chunks(int, void*, float*, const float*, int, int64_t, int) { return no_cuda(); }
int relu_forward(int, void*, const float*, float*, int64_t) { return no_cuda(); }
int relu_backward(int, void*, const float*, const float*, float*, int64_t) { return no_cuda(); }
int bias_add(int, void*, float*, const float*, int64_t, int64_t) { return no_cuda(); }
int column_sum(int, void*, const float*, float*, int64_t, int64_t, bool) { return no_cuda(); }
int axpy(int, void*, float, const float*, float*, int64_t) { return no_cuda(); }
int softmax_xent(int, void*, const float*, const int32_t*, float*, float*, int64_t, int64_t, float) { return no_cuda(); }
int sgd_step(int, void*, float*, const float*, float*, int64_t, float, float, float, bool, bool) { return no_cuda(); }
int adamw_step(int, void*, float*, const float*, float*, float*, int64_t, float, float, float, float, float, float,
               float) {
    return no_cuda();
}
int int8_gemm(int, void*, const float*, const int8_t*, const float*, const float*, float*, int64_t, int64_t, int64_t) {
    return no_cuda();
}

} }
