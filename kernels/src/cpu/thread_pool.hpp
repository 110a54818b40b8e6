// A small persistent worker pool for the CPU kernels.
//
// Parallel regions from different threads run at the same time: each caller posts
// its region as a job, works on it itself, and the workers help whichever jobs are
// open, taking them in turn. So the communication lane's quantize does not queue
// behind a backward pass; it always has at least its own thread. A call made from
// inside a region runs inline, so nested use cannot deadlock. Exceptions thrown by
// a task are rethrown to the region's caller.
//
// The default size is the CPUs this process may run on: its affinity mask
// (sched_getaffinity), further capped by the tightest CPU quota of its cgroup and
// the cgroup's ancestors (v2 cpu.max; v1 cpu.cfs_quota_us).
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
    // CPUs available to this process (affinity mask and cgroup quota), at least 1.
    static int available_cpus();
private:
    ThreadPool();
    struct State;
    State* state_;
};

}  // namespace torus
