// A small persistent worker pool for the CPU kernels.
//
// One parallel region runs at a time (callers queue on a mutex); the calling
// thread takes part. A call made from inside a region runs inline, so nested
// use cannot deadlock. Exceptions thrown by a task are rethrown to the caller.
#pragma once

#include <stdint.h>
#include <functional>

namespace torus {

class ThreadPool {
public:
    static ThreadPool& instance();
    int threads() const;
    void set_threads(int threads);
    // Calls task(t) for every t in [0, tasks) and returns when all are done.
    void run(int64_t tasks, const std::function<void(int64_t)>& task);
    // A task count that keeps every thread busy for n items of `grain` each.
    int64_t split(int64_t n, int64_t grain) const;
private:
    ThreadPool();
    struct State;
    State* state_;
};

}  // namespace torus
