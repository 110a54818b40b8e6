// CUDA runtime services: devices, pinned host memory, streams, events and
// stream-ordered device allocation. cudart is linked statically, so this
// loads on machines without a driver; calls then fail with the reason.
#include <cuda_runtime.h>

#include <cstring>
#include <mutex>

#include "../cuda_kernels.hpp"
#include "cuda_util.hpp"

namespace torus { namespace cuda {

bool compiled() { return true; }

int use_device(int device) {
    int count = 0;
    TORUS_CUDA_CHECK(device_count(&count));
    if (device < 0 || device >= count)
        return fail(TORUS_ERR_INVALID_ARGUMENT,
                    "device " + std::to_string(device) + " does not exist; CUDA devices: " + std::to_string(count));
    return check("cudaSetDevice", cudaSetDevice(device));
}

int sm_count(int device) {
    static std::mutex m;
    static int cache[64] = {0};
    if (device < 0 || device >= 64) return 1;
    std::lock_guard<std::mutex> g(m);
    if (cache[device] == 0) {
        int v = 0;
        if (cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || v <= 0) v = 1;
        cache[device] = v;
    }
    return cache[device];
}

int device_count(int* count) {
    *count = 0;
    cudaError_t e = cudaGetDeviceCount(count);
    if (e != cudaSuccess) {
        *count = 0;
        return cuda_fail("cudaGetDeviceCount", e);
    }
    if (*count == 0) return fail(TORUS_ERR_CUDA_UNAVAILABLE, "cudaGetDeviceCount: no CUDA device is visible");
    return TORUS_OK;
}

int device_name(int device, char* buf, int len) {
    TORUS_CUDA_CHECK(use_device(device));
    cudaDeviceProp p;
    TORUS_CUDA_CHECK(check("cudaGetDeviceProperties", cudaGetDeviceProperties(&p, device)));
    std::strncpy(buf, p.name, (size_t)len);
    if (len > 0) buf[len - 1] = 0;
    return TORUS_OK;
}

int host_alloc_pinned(int64_t bytes, void** out) {
    int count = 0;
    TORUS_CUDA_CHECK(device_count(&count));
    return check("cudaHostAlloc", cudaHostAlloc(out, (size_t)(bytes == 0 ? 64 : bytes), cudaHostAllocPortable));
}

int host_free_pinned(void* p) { return check("cudaFreeHost", cudaFreeHost(p)); }

int stream_create(int device, void** out) {
    TORUS_CUDA_CHECK(use_device(device));
    cudaStream_t s;
    TORUS_CUDA_CHECK(check("cudaStreamCreateWithFlags", cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)));
    *out = s;
    return TORUS_OK;
}

int stream_destroy(int device, void* s) {
    TORUS_CUDA_CHECK(use_device(device));
    return check("cudaStreamDestroy", cudaStreamDestroy((cudaStream_t)s));
}

int stream_synchronize(int device, void* s) {
    TORUS_CUDA_CHECK(use_device(device));
    return check("cudaStreamSynchronize", cudaStreamSynchronize((cudaStream_t)s));
}

int stream_wait_event(int device, void* s, void* e) {
    TORUS_CUDA_CHECK(use_device(device));
    return check("cudaStreamWaitEvent", cudaStreamWaitEvent((cudaStream_t)s, (cudaEvent_t)e, 0));
}

int stream_wait_stream(int device, void* waiter, void* waitee) {
    TORUS_CUDA_CHECK(use_device(device));
    cudaEvent_t e;
    TORUS_CUDA_CHECK(check("cudaEventCreateWithFlags", cudaEventCreateWithFlags(&e, cudaEventDisableTiming)));
    int st = check("cudaEventRecord", cudaEventRecord(e, (cudaStream_t)waitee));
    if (st == TORUS_OK) st = check("cudaStreamWaitEvent", cudaStreamWaitEvent((cudaStream_t)waiter, e, 0));
    // destroying a pending event is allowed: CUDA releases it once it completes, and the wait stays in place
    int destroyed = check("cudaEventDestroy", cudaEventDestroy(e));
    return st != TORUS_OK ? st : destroyed;
}

int event_create(int device, int timing, void** out) {
    TORUS_CUDA_CHECK(use_device(device));
    cudaEvent_t e;
    TORUS_CUDA_CHECK(check("cudaEventCreateWithFlags",
                           cudaEventCreateWithFlags(&e, timing ? cudaEventDefault : cudaEventDisableTiming)));
    *out = e;
    return TORUS_OK;
}

int event_destroy(int device, void* e) {
    TORUS_CUDA_CHECK(use_device(device));
    return check("cudaEventDestroy", cudaEventDestroy((cudaEvent_t)e));
}

int event_record(int device, void* e, void* s) {
    TORUS_CUDA_CHECK(use_device(device));
    return check("cudaEventRecord", cudaEventRecord((cudaEvent_t)e, (cudaStream_t)s));
}

int event_synchronize(int device, void* e) {
    TORUS_CUDA_CHECK(use_device(device));
    return check("cudaEventSynchronize", cudaEventSynchronize((cudaEvent_t)e));
}

int event_query(int device, void* e, int* done) {
    TORUS_CUDA_CHECK(use_device(device));
    cudaError_t r = cudaEventQuery((cudaEvent_t)e);
    if (r == cudaErrorNotReady) {
        *done = 0;
        return TORUS_OK;
    }
    *done = r == cudaSuccess ? 1 : 0;
    return check("cudaEventQuery", r);
}

int event_elapsed_ms(int device, void* a, void* b, float* ms) {
    TORUS_CUDA_CHECK(use_device(device));
    return check("cudaEventElapsedTime", cudaEventElapsedTime(ms, (cudaEvent_t)a, (cudaEvent_t)b));
}

int device_alloc(int device, int64_t bytes, void* s, void** out) {
    TORUS_CUDA_CHECK(use_device(device));
    if (bytes == 0) {
        *out = nullptr;
        return TORUS_OK;
    }
    cudaError_t e = cudaMallocAsync(out, (size_t)bytes, (cudaStream_t)s);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        return fail(TORUS_ERR_OUT_OF_MEMORY, "cudaMallocAsync: out of device memory allocating " + std::to_string(bytes) +
                                                 " bytes on cuda:" + std::to_string(device));
    }
    return check("cudaMallocAsync", e);
}

int device_free(int device, void* p, void* s) {
    TORUS_CUDA_CHECK(use_device(device));
    return check("cudaFreeAsync", cudaFreeAsync(p, (cudaStream_t)s));
}

int memcpy_async(int device, void* dst, const void* src, int64_t bytes, void* s) {
    TORUS_CUDA_CHECK(use_device(device));
    return check("cudaMemcpyAsync", cudaMemcpyAsync(dst, src, (size_t)bytes, cudaMemcpyDefault, (cudaStream_t)s));
}

int memset_async(int device, void* dst, int value, int64_t bytes, void* s) {
    TORUS_CUDA_CHECK(use_device(device));
    return check("cudaMemsetAsync", cudaMemsetAsync(dst, value, (size_t)bytes, (cudaStream_t)s));
}

} }
