#include "thread_pool.hpp"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace torus {

static thread_local bool inside_region = false;

namespace {

// One parallel region. Lives on its caller's stack; the caller does not return before
// every worker that joined it has left (helpers == 0, under the pool's mutex).
struct Job {
    const std::function<void(int64_t)>* task = nullptr;
    int64_t tasks = 0;
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> finished{0};
    int helpers = 0;              // guarded by State::m
    std::exception_ptr error;     // guarded by State::m

    bool fully_claimed() const { return next.load(std::memory_order_relaxed) >= tasks; }
};

}  // namespace

struct ThreadPool::State {
    std::mutex m;
    std::condition_variable wake, done;
    std::mutex resize_m;                // one resize at a time
    std::vector<std::thread> workers;
    std::atomic<int> wanted{1};
    std::deque<Job*> jobs;              // open jobs with tasks left to claim; guarded by m
    bool stop = false;

    void drain(Job& j) {
        for (;;) {
            int64_t t = j.next.fetch_add(1);
            if (t >= j.tasks) return;
            try {
                (*j.task)(t);
            } catch (...) {
                std::lock_guard<std::mutex> g(m);
                if (!j.error) j.error = std::current_exception();
            }
            j.finished.fetch_add(1);
        }
    }

    void retire(Job* j) {  // m held
        auto it = std::find(jobs.begin(), jobs.end(), j);
        if (it != jobs.end()) jobs.erase(it);
    }

    void worker_loop() {
        inside_region = true;
        std::unique_lock<std::mutex> lk(m);
        for (;;) {
            wake.wait(lk, [&] { return stop || !jobs.empty(); });
            if (stop) return;
            Job* j = jobs.front();
            jobs.pop_front();
            if (j->fully_claimed()) continue;
            jobs.push_back(j);  // round robin: the next free worker starts on another job
            j->helpers++;
            lk.unlock();
            drain(*j);
            lk.lock();
            j->helpers--;
            retire(j);
            done.notify_all();
        }
    }

    void resize(int n) {
        std::lock_guard<std::mutex> r(resize_m);
        {
            std::lock_guard<std::mutex> g(m);
            stop = true;
        }
        wake.notify_all();
        for (auto& w : workers) w.join();  // a worker finishes its current drain first
        workers.clear();
        {
            std::lock_guard<std::mutex> g(m);
            stop = false;
        }
        int k = std::max(1, n);
        wanted.store(k);
        for (int i = 1; i < k; ++i) workers.emplace_back([this] { worker_loop(); });
        wake.notify_all();
    }
};

namespace {

// CPUs allowed by a cgroup v2 cpu.max file ("max <period>" or "<quota> <period>"), or -1.
long long cpu_max_limit(const std::string& file) {
    FILE* f = std::fopen(file.c_str(), "r");
    if (f == nullptr) return -1;
    char quota[32] = {0};
    long long period = 0, out = -1;
    if (std::fscanf(f, "%31s %lld", quota, &period) == 2 && period > 0) {
        char* end = nullptr;
        long long q = std::strtoll(quota, &end, 10);
        if (end != quota && *end == 0 && q > 0) out = std::max<long long>(1, (q + period - 1) / period);
    }
    std::fclose(f);
    return out;
}

long long read_number(const std::string& file) {
    FILE* f = std::fopen(file.c_str(), "r");
    if (f == nullptr) return -1;
    long long v = -1;
    if (std::fscanf(f, "%lld", &v) != 1) v = -1;
    std::fclose(f);
    return v;
}

// The tightest CPU quota on this process's cgroup and its ancestors (v2), or its
// cpu controller's cfs quota (v1); -1 when there is none.
long long cgroup_cpu_limit() {
    FILE* f = std::fopen("/proc/self/cgroup", "r");
    if (f == nullptr) return -1;
    char line[4096];
    long long best = -1;
    auto take = [&](long long v) { if (v > 0 && (best < 0 || v < best)) best = v; };
    while (std::fgets(line, sizeof(line), f) != nullptr) {
        std::string l(line);
        while (!l.empty() && (l.back() == '\n' || l.back() == '\r')) l.pop_back();
        size_t c1 = l.find(':'), c2 = c1 == std::string::npos ? c1 : l.find(':', c1 + 1);
        if (c2 == std::string::npos) continue;
        std::string controllers = l.substr(c1 + 1, c2 - c1 - 1), path = l.substr(c2 + 1);
        if (path.find("..") != std::string::npos) continue;
        if (controllers.empty()) {  // v2: walk from our group up to the root
            std::string p = path;
            for (;;) {
                take(cpu_max_limit("/sys/fs/cgroup" + (p == "/" ? std::string() : p) + "/cpu.max"));
                if (p.empty() || p == "/") break;
                size_t slash = p.rfind('/');
                p = slash == 0 || slash == std::string::npos ? "/" : p.substr(0, slash);
            }
        } else if (("," + controllers + ",").find(",cpu,") != std::string::npos) {  // v1
            for (const char* mount : {"/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu"}) {
                std::string dir = std::string(mount) + (path == "/" ? std::string() : path);
                long long q = read_number(dir + "/cpu.cfs_quota_us"), per = read_number(dir + "/cpu.cfs_period_us");
                if (q > 0 && per > 0) {
                    take(std::max<long long>(1, (q + per - 1) / per));
                    break;
                }
            }
        }
    }
    std::fclose(f);
    return best;
}

}  // namespace

int ThreadPool::available_cpus() {
    int n = 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) n = CPU_COUNT(&set);
    if (n <= 0) {
        unsigned hw = std::thread::hardware_concurrency();
        n = hw == 0 ? 1 : (int)hw;
    }
    long long quota = cgroup_cpu_limit();
    if (quota > 0) n = (int)std::min<long long>(n, quota);
    return std::max(1, n);
}

ThreadPool& ThreadPool::instance() {
    static ThreadPool pool;
    return pool;
}

ThreadPool::ThreadPool() : state_(new State()) {
    state_->resize(available_cpus());
}

int ThreadPool::threads() const { return state_->wanted.load(); }

void ThreadPool::set_threads(int threads) { state_->resize(threads); }

int64_t ThreadPool::split(int64_t n, int64_t grain) const {
    if (n <= 0) return 0;
    int64_t by_grain = (n + grain - 1) / grain;
    return std::min<int64_t>(by_grain, (int64_t)state_->wanted.load() * 4);
}

void ThreadPool::run(int64_t tasks, const std::function<void(int64_t)>& task) {
    if (tasks <= 0) return;
    if (tasks == 1 || inside_region || state_->wanted.load() == 1) {
        for (int64_t t = 0; t < tasks; ++t) task(t);
        return;
    }
    State& s = *state_;
    Job j;
    j.task = &task;
    j.tasks = tasks;
    {
        std::lock_guard<std::mutex> g(s.m);
        s.jobs.push_back(&j);
    }
    s.wake.notify_all();
    inside_region = true;
    s.drain(j);
    inside_region = false;
    std::exception_ptr err;
    {
        std::unique_lock<std::mutex> lk(s.m);
        s.retire(&j);  // no worker can join from here on
        s.done.wait(lk, [&] { return j.helpers == 0 && j.finished.load() == j.tasks; });
        err = j.error;
    }
    if (err) std::rethrow_exception(err);
}

}  // namespace torus
