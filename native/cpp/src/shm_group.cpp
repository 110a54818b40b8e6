// Shared-memory collectives: see shm_group.hpp.
#include "shm_group.hpp"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

namespace torus {

namespace {

constexpr uint64_t MAGIC = 0x546f727573536d31ULL;  // "TorusSm1"
constexpr uint32_t VERSION = 2;  // 2: per-rank departure marks
constexpr size_t HEADER_BYTES = 64 * 1024;
constexpr int KIND_ALLREDUCE = 1, KIND_BROADCAST = 2, KIND_ALLGATHER = 3, KIND_BARRIER = 4, KIND_REDUCE = 5;
constexpr uint32_t POISON_FAILURE = 1, POISON_MISMATCH = 2, POISON_TIMEOUT = 3;

const char* dtype_name(int d) {
    static const char* names[] = {"FLOAT32", "FLOAT16", "BFLOAT16", "FLOAT64", "INT8", "UINT8", "INT32", "INT64"};
    return d >= 0 && d < 8 ? names[d] : "?";
}

const char* op_name(int o) {
    static const char* names[] = {"SUM", "PROD", "MIN", "MAX", "AVG"};
    return o >= 0 && o < 5 ? names[o] : "?";
}

const char* kind_name(int k) {
    switch (k) {
        case KIND_ALLREDUCE: return "allReduce";
        case KIND_BROADCAST: return "broadcast";
        case KIND_ALLGATHER: return "allGather";
        case KIND_BARRIER: return "barrier";
        case KIND_REDUCE: return "reduce";
        default: return "nothing";
    }
}

long futex(std::atomic<uint32_t>* word, int op, uint32_t val, const timespec* ts) {
    return syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), op, val, ts, nullptr, 0);
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

int pidfd_open_compat(int pid) {
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

}  // namespace

// One op step's description, published by every local rank for the others to compare.
struct ShmGroup::Desc {
    uint64_t tag = 0;
    int64_t count = 0;
    int32_t kind = 0, dtype = 0, op = 0, root = 0;
    bool operator==(const Desc& o) const {
        return tag == o.tag && count == o.count && kind == o.kind && dtype == o.dtype && op == o.op && root == o.root;
    }
};

struct alignas(64) Member {
    std::atomic<int32_t> pid;
    std::atomic<uint32_t> at_barrier;  // the number of the last barrier this rank entered
    std::atomic<uint32_t> departed;    // 1 once this rank closed its group (after barrier at_barrier)
    alignas(64) char desc[2][64];      // one Desc per bank
};

struct ShmGroup::Header {
    uint64_t magic;
    uint32_t version;
    int32_t local_size;
    int64_t slot_bytes;
    int64_t total_bytes;
    alignas(64) std::atomic<uint32_t> arrived;
    alignas(64) std::atomic<uint32_t> poisoned;
    std::atomic<uint32_t> departures;  // how many ranks closed their group (a waiter then checks who)
    std::atomic<uint32_t> reason_owner;
    char reason[500];
    Member members[ShmGroup::MAX_LOCAL];
};

static_assert(sizeof(ShmGroup::Desc) <= 64, "a Desc fits one line");
static_assert(std::atomic<uint32_t>::is_always_lock_free, "futex words must be lock-free");

int ShmGroup::open(const std::string& name, bool create, int local_rank, const std::vector<int>& global_ranks,
                   int64_t slot_bytes, std::unique_ptr<ShmGroup>* out, std::string* err) {
    int n = (int)global_ranks.size();
    if (n < 2 || n > MAX_LOCAL) {
        *err = "shared-memory group: local size must be in [2, " + std::to_string(MAX_LOCAL) + "], got " + std::to_string(n);
        return INVALID;
    }
    if (local_rank < 0 || local_rank >= n) {
        *err = "shared-memory group: local rank " + std::to_string(local_rank) + " out of [0, " + std::to_string(n) + ")";
        return INVALID;
    }
    if (slot_bytes < 4096 || slot_bytes % 4096 != 0) {
        *err = "shared-memory group: slot bytes must be a positive multiple of 4096, got " + std::to_string(slot_bytes);
        return INVALID;
    }
    if (name.size() < 2 || name[0] != '/' || name.find('/', 1) != std::string::npos || name.size() > 200) {
        *err = "shared-memory group: bad segment name '" + name + "'";
        return INVALID;
    }
    size_t total = HEADER_BYTES + 2 * (size_t)n * (size_t)slot_bytes;
    int fd = create ? shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600) : shm_open(name.c_str(), O_RDWR, 0);
    if (fd < 0) {
        *err = std::string("cannot ") + (create ? "create" : "open") + " shared-memory segment " + name + ": " +
               std::strerror(errno);
        return PEER;
    }
    auto fail_fd = [&](const std::string& what, int code) {
        *err = "shared-memory segment " + name + ": " + what;
        close(fd);
        if (create) shm_unlink(name.c_str());
        return code;
    };
    if (create) {
        if (ftruncate(fd, (off_t)total) != 0) return fail_fd(std::string("ftruncate: ") + std::strerror(errno), NOMEM);
        // Reserve every page now: a tmpfs too small for it (a container's 64 MiB /dev/shm) is an
        // error here, instead of a SIGBUS on first touch in the middle of a collective.
        int rc = posix_fallocate(fd, 0, (off_t)total);
        if (rc != 0) {
            return fail_fd("cannot reserve " + std::to_string(total >> 20) + " MiB (" + std::strerror(rc) +
                               "; /dev/shm may be too small: set TORUS_TRANSPORT=gloo, or lower TORUS_SHM_SLOT_BYTES)",
                           NOMEM);
        }
    } else {
        struct stat st;
        if (fstat(fd, &st) != 0) return fail_fd(std::string("fstat: ") + std::strerror(errno), PEER);
        if ((size_t)st.st_size != total) {
            return fail_fd("size " + std::to_string(st.st_size) + " bytes, expected " + std::to_string(total), PEER);
        }
    }
    void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        *err = "shared-memory segment " + name + ": mmap: " + std::strerror(errno);
        if (create) shm_unlink(name.c_str());
        return NOMEM;
    }
    std::unique_ptr<ShmGroup> g(new ShmGroup());
    g->name_ = name;
    g->creator_ = create;
    g->me_ = local_rank;
    g->n_ = n;
    g->global_ = global_ranks;
    g->slot_bytes_ = slot_bytes;
    g->map_bytes_ = total;
    g->h_ = static_cast<Header*>(p);
    g->data_ = static_cast<char*>(p) + HEADER_BYTES;
    g->pidfds_.assign(n, -1);
    g->pids_.assign(n, 0);
    unsigned hw = std::thread::hardware_concurrency();
    // spinning only pays when every local rank has a core of its own
    g->spin_ = (hw == 0 || (unsigned)n > hw) ? 64 : 4000;
    Header* h = g->h_;
    if (create) {
        // the pages are zero: the atomics start at 0
        h->version = VERSION;
        h->local_size = n;
        h->slot_bytes = slot_bytes;
        h->total_bytes = (int64_t)total;
        std::atomic_thread_fence(std::memory_order_release);
        __atomic_store_n(&h->magic, MAGIC, __ATOMIC_RELEASE);
    } else {
        if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != MAGIC || h->version != VERSION || h->local_size != n ||
            h->slot_bytes != slot_bytes || h->total_bytes != (int64_t)total) {
            *err = "shared-memory segment " + name + " has another layout than this rank expects (local size " +
                   std::to_string(h->local_size) + ", slot bytes " + std::to_string(h->slot_bytes) + ")";
            return PEER;  // the destructor unmaps; not the creator, so nothing is unlinked
        }
    }
    h->members[local_rank].pid.store((int32_t)getpid(), std::memory_order_release);
    *out = std::move(g);
    return OK;
}

ShmGroup::~ShmGroup() {
    if (h_ != nullptr && ready_) {
        // A close without abort: this rank enters no barrier after the last one it entered (and,
        // having returned from its last op, completed). A peer waiting at a later barrier would
        // wait for it until its timeout, so mark the departure and wake the waiters; one still
        // finishing this rank's last barrier is not affected (see departed_peer()).
        h_->members[me_].departed.store(1, std::memory_order_release);
        h_->departures.fetch_add(1, std::memory_order_acq_rel);
        futex(&h_->arrived, FUTEX_WAKE, INT32_MAX, nullptr);
    }
    for (int fd : pidfds_) {
        if (fd >= 0) close(fd);
    }
    if (h_ != nullptr) munmap(h_, map_bytes_);
    if (creator_ && !unlinked_) shm_unlink(name_.c_str());
}

int ShmGroup::ready(std::string* err) {
    for (int i = 0; i < n_; i++) {
        int pid = h_->members[i].pid.load(std::memory_order_acquire);
        if (pid <= 0) {
            *err = "shared-memory segment " + name_ + ": " + who(i) + " has not attached";
            return PEER;
        }
        pids_[i] = pid;
        if (i != me_) {
            pidfds_[i] = pidfd_open_compat(pid);
            if (pidfds_[i] < 0 && errno == ESRCH) {
                *err = "shared-memory segment " + name_ + ": " + who(i) + " attached with a pid this process cannot "
                       "see (another pid namespace; TORUS_HOST_ID joined hosts that do not share one)";
                return PEER;
            }
        }
    }
    ready_ = true;
    return OK;
}

int ShmGroup::unlink(std::string* err) {
    if (!creator_ || unlinked_) return OK;
    unlinked_ = true;
    if (shm_unlink(name_.c_str()) != 0 && errno != ENOENT) {
        *err = "shm_unlink " + name_ + ": " + std::strerror(errno);
        return INTERNAL;
    }
    return OK;
}

std::string ShmGroup::describe(int local, const Desc& d) const {
    std::string s = "rank " + std::to_string(global_[local]) + " called " + kind_name(d.kind);
    if (d.kind == KIND_ALLREDUCE || d.kind == KIND_REDUCE) s += std::string("(") + op_name(d.op) + ")";
    if (d.kind != KIND_BARRIER) s += std::string(" of ") + std::to_string(d.count) + " x " + dtype_name(d.dtype);
    if (d.kind == KIND_BROADCAST || d.kind == KIND_REDUCE) s += " from local rank " + std::to_string(d.root);
    s += " (local rank " + std::to_string(local);
    if (!pids_.empty() && pids_[local] != 0) s += ", pid " + std::to_string(pids_[local]);
    return s + ")";
}

std::string ShmGroup::who(int local) const {
    return "rank " + std::to_string(global_[local]) + " (local rank " + std::to_string(local) +
           (pids_.empty() || pids_[local] == 0 ? "" : ", pid " + std::to_string(pids_[local])) + ")";
}

char* ShmGroup::slot(int bank, int local) const {
    return data_ + ((size_t)bank * (size_t)n_ + (size_t)local) * (size_t)slot_bytes_;
}

void ShmGroup::poison(const std::string& reason) {
    poison_with(POISON_FAILURE, reason);
}

void ShmGroup::poison_with(uint32_t kind, const std::string& reason) {
    uint32_t expected = 0;
    if (h_->reason_owner.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
        std::string r = who(me_) + ": " + reason;
        size_t k = std::min(r.size(), sizeof(h_->reason) - 1);
        std::memcpy(h_->reason, r.data(), k);
        h_->reason[k] = 0;
        h_->poisoned.store(kind, std::memory_order_release);
    }
    // wake every waiter of the barrier counter: they check the poison word
    futex(&h_->arrived, FUTEX_WAKE, INT32_MAX, nullptr);
}

int ShmGroup::poisoned_status(std::string* err) const {
    uint32_t kind = h_->poisoned.load(std::memory_order_acquire);
    *err = std::string(h_->reason);
    return kind == POISON_MISMATCH ? MISMATCH : kind == POISON_TIMEOUT ? TIMEOUT : PEER;
}

int ShmGroup::dead_peer() const {
    for (int i = 0; i < n_; i++) {
        if (i == me_) continue;
        if (pidfds_[i] >= 0) {
            pollfd pfd{pidfds_[i], POLLIN, 0};
            if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLIN | POLLHUP))) return i;
        } else if (pids_[i] > 0 && kill(pids_[i], 0) != 0 && errno == ESRCH) {
            return i;
        }
    }
    return -1;
}

int ShmGroup::departed_peer(uint32_t number) const {
    if (h_->departures.load(std::memory_order_acquire) == 0) return -1;
    for (int i = 0; i < n_; i++) {
        if (i == me_ || h_->members[i].departed.load(std::memory_order_acquire) == 0) continue;
        // it left after entering barrier at_barrier: it never reaches a later one
        if ((int32_t)(h_->members[i].at_barrier.load(std::memory_order_acquire) - number) < 0) return i;
    }
    return -1;
}

int ShmGroup::wait_barrier(int64_t timeout_ms, std::string* err) {
    if (h_->poisoned.load(std::memory_order_acquire) != 0) return poisoned_status(err);
    uint32_t number = ++barriers_;
    uint32_t target = number * (uint32_t)n_;  // wraps with the counter
    h_->members[me_].at_barrier.store(number, std::memory_order_relaxed);
    uint32_t now_at = h_->arrived.fetch_add(1, std::memory_order_acq_rel) + 1;
    if (now_at == target) {
        futex(&h_->arrived, FUTEX_WAKE, INT32_MAX, nullptr);
        return OK;
    }
    using clock = std::chrono::steady_clock;
    auto start = clock::now();
    auto deadline = start + std::chrono::milliseconds(timeout_ms);
    auto next_check = start + std::chrono::milliseconds(20);
    int spins = spin_;
    while (true) {
        uint32_t cur = h_->arrived.load(std::memory_order_acquire);
        if ((int32_t)(cur - target) >= 0) return OK;
        if (h_->poisoned.load(std::memory_order_acquire) != 0) return poisoned_status(err);
        int gone = departed_peer(number);
        if (gone >= 0) {
            std::string why = who(gone) + " closed its communicator (without abort) before this shared-memory "
                              "collective; it will never arrive";
            poison(why);
            *err = why;
            return PEER;
        }
        if (spins > 0) {
            spins--;
            cpu_relax();
            continue;
        }
        auto now = clock::now();
        if (now >= next_check) {
            int dead = dead_peer();
            if (dead >= 0) {
                std::string why = who(dead) + " exited during a shared-memory collective";
                poison(why);
                *err = why;
                return PEER;
            }
            next_check = now + std::chrono::milliseconds(20);
        }
        if (now >= deadline) {
            std::string late;
            for (int i = 0; i < n_; i++) {
                if ((int32_t)(h_->members[i].at_barrier.load(std::memory_order_relaxed) - number) < 0) {
                    late += (late.empty() ? "" : ", ") + who(i);
                }
            }
            std::string why = "no progress within " + std::to_string(timeout_ms) +
                              " ms on the shared-memory transport; not arrived: " + (late.empty() ? "?" : late);
            poison_with(POISON_TIMEOUT, why);
            *err = why;
            return TIMEOUT;
        }
        auto left = std::min(deadline, next_check) - now;
        long ns = (long)std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
        if (ns < 1000) ns = 1000;
        timespec ts{ns / 1000000000L, ns % 1000000000L};
        futex(&h_->arrived, FUTEX_WAIT, cur, &ts);
    }
}

int ShmGroup::step(const Desc& mine, int64_t timeout_ms, std::string* err) {
    int bank = (int)(steps_ & 1);
    std::memcpy(h_->members[me_].desc[bank], &mine, sizeof(Desc));
    if (int s = wait_barrier(timeout_ms, err)) return s;
    for (int i = 0; i < n_; i++) {
        Desc d;
        std::memcpy(&d, h_->members[i].desc[bank], sizeof(Desc));
        if (!(d == mine)) {
            std::string why = "on the shared-memory transport, " + describe(i, d) + ", " + describe(me_, mine);
            if (d.kind == mine.kind && d.count == mine.count && d.dtype == mine.dtype && d.op == mine.op &&
                d.root == mine.root) {
                char tags[64];
                std::snprintf(tags, sizeof tags, " (op tags %#llx and %#llx)", (unsigned long long)d.tag,
                              (unsigned long long)mine.tag);
                why += std::string(": the same op at another sequence number") + tags;
            }
            poison_with(POISON_MISMATCH, why);
            *err = why;
            return MISMATCH;
        }
    }
    return OK;
}

int ShmGroup::allreduce(const void* in, void* out, size_t count, int dtype, size_t es, int op, Reduce3 f,
                        uint64_t tag, int64_t timeout_ms, std::string* err) {
    return reduce_impl(in, out, count, dtype, es, op, f, -1, tag, timeout_ms, err);
}

int ShmGroup::reduce(const void* in, void* out, size_t count, int dtype, size_t es, int op, Reduce3 f,
                     int root_local, uint64_t tag, int64_t timeout_ms, std::string* err) {
    return reduce_impl(in, out, count, dtype, es, op, f, root_local, tag, timeout_ms, err);
}

int ShmGroup::reduce_impl(const void* in, void* out, size_t count, int dtype, size_t es, int op, Reduce3 f,
                          int root, uint64_t tag, int64_t timeout_ms, std::string* err) {
    const char* src = static_cast<const char*>(in);
    char* dst = static_cast<char*>(out);
    size_t per_step = (size_t)slot_bytes_ / es;
    Desc mine;
    mine.tag = tag;
    mine.count = (int64_t)count;
    mine.kind = root < 0 ? KIND_ALLREDUCE : KIND_REDUCE;
    mine.dtype = dtype;
    mine.op = op;
    mine.root = root;
    // A non-root of a reduce may not write its output: it reduces its slices in the slot.
    bool in_slot = root >= 0 && me_ != root;
    for (size_t off = 0; off < count; off += per_step) {
        size_t len = std::min(per_step, count - off);
        int bank = (int)(steps_ & 1);
        std::memcpy(slot(bank, me_), src + off * es, len * es);
        if (int s = step(mine, timeout_ms, err)) return s;
        steps_++;
        // slices of 16-element multiples: rank i reduces slice i over every slot, in rank order
        size_t slice = ((len + n_ - 1) / n_ + 15) / 16 * 16;
        size_t lo = std::min(len, slice * (size_t)me_), hi = std::min(len, lo + slice);
        if (hi > lo) {
            if (in_slot && me_ >= 2) {
                // rank order: (s0 + s1) + ... must read this rank's own slot before it is overwritten
                for (size_t b = lo; b < hi; b += 1024) {
                    size_t e = std::min(hi, b + 1024);
                    alignas(64) char tmp[1024 * 8];
                    f(tmp, slot(bank, 0) + b * es, slot(bank, 1) + b * es, e - b);
                    for (int k = 2; k < n_; k++) f(tmp, tmp, slot(bank, k) + b * es, e - b);
                    std::memcpy(slot(bank, me_) + b * es, tmp, (e - b) * es);
                }
            } else {
                char* acc = in_slot ? slot(bank, me_) + lo * es : dst + (off + lo) * es;
                f(acc, slot(bank, 0) + lo * es, slot(bank, 1) + lo * es, hi - lo);
                for (int k = 2; k < n_; k++) f(acc, acc, slot(bank, k) + lo * es, hi - lo);
                if (!in_slot) std::memcpy(slot(bank, me_) + lo * es, acc, (hi - lo) * es);
            }
        }
        if (int s = wait_barrier(timeout_ms, err)) return s;
        if (root >= 0 && me_ != root) continue;
        for (int k = 0; k < n_; k++) {
            if (k == me_) continue;
            size_t klo = std::min(len, slice * (size_t)k), khi = std::min(len, klo + slice);
            if (khi > klo) std::memcpy(dst + (off + klo) * es, slot(bank, k) + klo * es, (khi - klo) * es);
        }
    }
    return OK;
}

int ShmGroup::broadcast(const void* in, void* out, size_t count, int dtype, size_t es, int root_local, uint64_t tag,
                        int64_t timeout_ms, std::string* err) {
    const char* src = static_cast<const char*>(in);
    char* dst = static_cast<char*>(out);
    size_t per_step = (size_t)slot_bytes_ / es;
    Desc mine;
    mine.tag = tag;
    mine.count = (int64_t)count;
    mine.kind = KIND_BROADCAST;
    mine.dtype = dtype;
    mine.root = root_local;
    for (size_t off = 0; off < count; off += per_step) {
        size_t len = std::min(per_step, count - off);
        int bank = (int)(steps_ & 1);
        if (me_ == root_local) std::memcpy(slot(bank, me_), src + off * es, len * es);
        if (int s = step(mine, timeout_ms, err)) return s;
        steps_++;
        if (me_ == root_local) {
            if (src != dst) std::memcpy(dst + off * es, src + off * es, len * es);
        } else {
            std::memcpy(dst + off * es, slot(bank, root_local), len * es);
        }
    }
    return OK;
}

int ShmGroup::allgather(const void* in, void* out, size_t count, int dtype, size_t es, uint64_t tag,
                        int64_t timeout_ms, std::string* err) {
    const char* src = static_cast<const char*>(in);
    char* dst = static_cast<char*>(out);
    size_t per_step = (size_t)slot_bytes_ / es;
    Desc mine;
    mine.tag = tag;
    mine.count = (int64_t)count;
    mine.kind = KIND_ALLGATHER;
    mine.dtype = dtype;
    for (size_t off = 0; off < count; off += per_step) {
        size_t len = std::min(per_step, count - off);
        int bank = (int)(steps_ & 1);
        std::memcpy(slot(bank, me_), src + off * es, len * es);
        if (int s = step(mine, timeout_ms, err)) return s;
        steps_++;
        for (int k = 0; k < n_; k++) {
            char* to = dst + ((size_t)k * count + off) * es;
            // this rank's block too comes from its slot: `in` may lie inside `out`, where an earlier block's
            // copy could already have overwritten it
            const char* from = slot(bank, k);
            if (from != to) std::memcpy(to, from, len * es);
        }
    }
    return OK;
}

int ShmGroup::barrier(uint64_t tag, int64_t timeout_ms, std::string* err) {
    Desc mine;
    mine.tag = tag;
    mine.kind = KIND_BARRIER;
    int s = step(mine, timeout_ms, err);
    if (s == OK) steps_++;
    return s;
}

int ShmGroup::unlink_stale(const std::string& prefix, int64_t below_generation) {
    DIR* d = opendir("/dev/shm");
    if (d == nullptr) return 0;
    std::string base = prefix.substr(1);  // names in /dev/shm have no leading '/'
    int removed = 0;
    while (struct dirent* e = readdir(d)) {
        std::string entry = e->d_name;
        if (entry.compare(0, base.size(), base) != 0) continue;
        char* end = nullptr;
        long long g = std::strtoll(entry.c_str() + base.size(), &end, 10);
        if (end == entry.c_str() + base.size() || *end != '-' || g >= below_generation) continue;
        if (shm_unlink(("/" + entry).c_str()) == 0) removed++;
    }
    closedir(d);
    return removed;
}

}  // namespace torus
