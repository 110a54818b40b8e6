#include "common.hpp"

namespace torus {

static thread_local std::string last_error;

int fail(int status, const std::string& message) {
    try {
        last_error = message;
    } catch (...) {
        // Out of memory while recording the message: keep the status.
    }
    return status;
}

int check_grouping(const char* op, const Grouping& g) {
    std::string o(op);
    if (g.n < 0) return fail(TORUS_ERR_INVALID_ARGUMENT, o + ": n must be >= 0, got " + std::to_string(g.n));
    if (g.block < 0) return fail(TORUS_ERR_INVALID_ARGUMENT, o + ": block must be >= 0, got " + std::to_string(g.block));
    if (g.block > 0) {
        if ((g.block & (g.block - 1)) != 0)
            return fail(TORUS_ERR_INVALID_ARGUMENT, o + ": block must be a power of two, got " + std::to_string(g.block));
        return TORUS_OK;
    }
    if (g.outer < 0 || g.channels < 1 || g.inner < 0)
        return fail(TORUS_ERR_INVALID_ARGUMENT, o + ": need outer >= 0, channels >= 1, inner >= 0");
    // outer * channels * inner must equal n (guard the products against overflow).
    if (g.n != 0) {
        if (g.inner == 0 || g.outer == 0 || g.channels > g.n / g.inner || g.outer * g.channels * g.inner != g.n)
            return fail(TORUS_ERR_INVALID_ARGUMENT, o + ": outer*channels*inner must equal n=" + std::to_string(g.n));
    }
    return TORUS_OK;
}

int check_pointer(const char* op, const char* name, const void* p, int64_t n) {
    if (n > 0 && p == nullptr)
        return fail(TORUS_ERR_INVALID_ARGUMENT, std::string(op) + ": " + name + " is NULL");
    return TORUS_OK;
}

}  // namespace torus

extern "C" const char* torus_last_error(void) { return torus::last_error.c_str(); }
