// Small helpers for the CUDA side: error mapping and device properties.
#pragma once

#include <cuda_runtime.h>
#include <string>

#include "../common.hpp"

namespace torus { namespace cuda {

// Maps a CUDA error to a status and message. "No driver" and "no device" are
// reported as CUDA being unavailable rather than as a kernel failure.
inline int cuda_fail(const char* what, cudaError_t e) {
    int status = (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice || e == cudaErrorInitializationError ||
                  e == cudaErrorStubLibrary || e == cudaErrorCompatNotSupportedOnDevice)
                     ? TORUS_ERR_CUDA_UNAVAILABLE
                     : TORUS_ERR_CUDA;
    std::string hint;
    if (e == cudaErrorInsufficientDriver)
        hint = "; no NVIDIA driver (libcuda.so.1) was found, or it is older than this CUDA " +
               std::to_string(CUDART_VERSION / 1000) + " runtime needs";
    else if (e == cudaErrorNoDevice)
        hint = "; the driver sees no GPU (check CUDA_VISIBLE_DEVICES)";
    return fail(status, std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")" + hint);
}

inline int check(const char* what, cudaError_t e) { return e == cudaSuccess ? (int)TORUS_OK : cuda_fail(what, e); }

inline int check_launch(const char* kernel) {
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return TORUS_OK;
    return cuda_fail((std::string("launch of ") + kernel).c_str(), e);
}

int use_device(int device);
int sm_count(int device);

} }

#define TORUS_CUDA_CHECK(expr)               \
    do {                                     \
        int _st = (expr);                    \
        if (_st != TORUS_OK) return _st;     \
    } while (0)
