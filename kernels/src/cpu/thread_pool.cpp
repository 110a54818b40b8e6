#include "thread_pool.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace torus {

static thread_local bool inside_region = false;

struct ThreadPool::State {
    std::mutex region;                  // serialises parallel regions
    std::mutex m;
    std::condition_variable wake, done;
    std::vector<std::thread> workers;
    int wanted = 1;
    uint64_t generation = 0;
    const std::function<void(int64_t)>* task = nullptr;
    int64_t tasks = 0;
    std::atomic<int64_t> next{0};
    int active = 0;
    std::exception_ptr error;
    bool stop = false;

    void drain() {
        for (;;) {
            int64_t t = next.fetch_add(1);
            if (t >= tasks) return;
            try {
                (*task)(t);
            } catch (...) {
                std::lock_guard<std::mutex> g(m);
                if (!error) error = std::current_exception();
            }
        }
    }

    void worker_loop() {
        inside_region = true;
        uint64_t seen = 0;
        std::unique_lock<std::mutex> lk(m);
        for (;;) {
            wake.wait(lk, [&] { return stop || generation != seen; });
            if (stop) return;
            seen = generation;
            lk.unlock();
            drain();
            lk.lock();
            if (--active == 0) done.notify_all();
        }
    }

    void resize(int n) {
        {
            std::lock_guard<std::mutex> g(m);
            stop = true;
        }
        wake.notify_all();
        for (auto& w : workers) w.join();
        workers.clear();
        stop = false;
        wanted = std::max(1, n);
        for (int i = 1; i < wanted; ++i) workers.emplace_back([this] { worker_loop(); });
    }
};

ThreadPool& ThreadPool::instance() {
    static ThreadPool pool;
    return pool;
}

ThreadPool::ThreadPool() : state_(new State()) {
    unsigned hw = std::thread::hardware_concurrency();
    state_->resize(hw == 0 ? 1 : (int)hw);
}

int ThreadPool::threads() const { return state_->wanted; }

void ThreadPool::set_threads(int threads) {
    std::lock_guard<std::mutex> g(state_->region);
    state_->resize(threads);
}

int64_t ThreadPool::split(int64_t n, int64_t grain) const {
    if (n <= 0) return 0;
    int64_t by_grain = (n + grain - 1) / grain;
    return std::min<int64_t>(by_grain, (int64_t)state_->wanted * 4);
}

void ThreadPool::run(int64_t tasks, const std::function<void(int64_t)>& task) {
    if (tasks <= 0) return;
    if (tasks == 1 || inside_region || state_->wanted == 1) {
        for (int64_t t = 0; t < tasks; ++t) task(t);
        return;
    }
    State& s = *state_;
    std::lock_guard<std::mutex> region(s.region);
    {
        std::lock_guard<std::mutex> g(s.m);
        s.task = &task;
        s.tasks = tasks;
        s.next.store(0);
        s.error = nullptr;
        s.active = (int)s.workers.size();
        ++s.generation;
    }
    s.wake.notify_all();
    inside_region = true;
    s.drain();
    inside_region = false;
    std::exception_ptr err;
    {
        std::unique_lock<std::mutex> lk(s.m);
        s.done.wait(lk, [&] { return s.active == 0; });
        err = s.error;
        s.task = nullptr;
    }
    if (err) std::rethrow_exception(err);
}

}  // namespace torus
