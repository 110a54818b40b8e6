// Error plumbing and argument checks shared by every entry point.
#pragma once

#include <stdint.h>
#include <string>
#include <exception>
#include <new>

#include "torus/torus.h"

namespace torus {

// Sets the thread-local last error and returns the status, so call sites read
// `return fail(TORUS_ERR_INVALID_ARGUMENT, "...")`.
int fail(int status, const std::string& message);

// Runs body() and turns any C++ exception into a status: nothing crosses JNI.
template <typename F>
int guarded(const char* op, F&& body) noexcept {
    try {
        return body();
    } catch (const std::bad_alloc&) {
        return fail(TORUS_ERR_OUT_OF_MEMORY, std::string(op) + ": host allocation failed");
    } catch (const std::exception& e) {
        return fail(TORUS_ERR_INTERNAL, std::string(op) + ": " + e.what());
    } catch (...) {
        return fail(TORUS_ERR_INTERNAL, std::string(op) + ": unknown native error");
    }
}

inline int dtype_size(int dtype) {
    switch (dtype) {
        case TORUS_FLOAT32: case TORUS_INT32: return 4;
        case TORUS_FLOAT16: case TORUS_BFLOAT16: return 2;
        case TORUS_FLOAT64: case TORUS_INT64: return 8;
        case TORUS_INT8: case TORUS_UINT8: return 1;
        default: return 0;
    }
}

inline bool is_float_dtype(int d) { return d == TORUS_FLOAT32 || d == TORUS_FLOAT16 || d == TORUS_BFLOAT16; }
inline bool is_q_dtype(int d) { return d == TORUS_INT8 || d == TORUS_UINT8; }

// The grouping of scales over a tensor (see torus.h).
struct Grouping {
    int64_t n, outer, channels, inner, block;
    int64_t groups() const {
        if (block > 0) return n == 0 ? 0 : (n + block - 1) / block;
        return channels;
    }
};

// Validates the grouping; returns TORUS_OK or sets the error.
int check_grouping(const char* op, const Grouping& g);
int check_pointer(const char* op, const char* name, const void* p, int64_t n);

}  // namespace torus
