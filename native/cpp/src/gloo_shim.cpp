// Torus Gloo shim: see include/torus/torus_gloo.h for the contract.
#include "torus/torus_gloo.h"

#include <dirent.h>
#include <dlfcn.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>
#include <netdb.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cctype>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/allreduce_halving_doubling.h>
#include <gloo/alltoall.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/common/error.h>
#include <gloo/context.h>
#include <gloo/reduce.h>
#include <gloo/transport/tcp/address.h>
#include <gloo/transport/tcp/device.h>

#include "numerics.hpp"
#include "shm_group.hpp"

namespace {

thread_local std::string g_last_error;

enum DT { F32 = 0, F16 = 1, BF16 = 2, F64 = 3, I8 = 4, U8 = 5, I32 = 6, I64 = 7 };

int fail(int code, const std::string& msg) {
    g_last_error = msg;
    return code;
}

size_t elem_size(int dt) {
    switch (dt) {
        case F32: case I32: return 4;
        case F16: case BF16: return 2;
        case F64: case I64: return 8;
        case I8: case U8: return 1;
        default: return 0;
    }
}

// ---------------------------------------------------------------- reductions

struct EF32 { using S = float; using C = float; static C ld(S v) { return v; } static S st(C v) { return v; } };
struct EF64 { using S = double; using C = double; static C ld(S v) { return v; } static S st(C v) { return v; } };
struct EF16 { using S = uint16_t; using C = float;
    static C ld(S v) { return torus::half_to_float(v); } static S st(C v) { return torus::float_to_half(v); } };
struct EBF16 { using S = uint16_t; using C = float;
    static C ld(S v) { return torus::bf16_to_float(v); } static S st(C v) { return torus::float_to_bf16(v); } };
// Integers compute in the unsigned type of the same width so that overflow wraps (no UB).
template <class T, class U> struct EInt { using S = T; using C = T;
    static C ld(S v) { return v; } static S st(C v) { return v; }
    static T add(T a, T b) { return (T)(U)((U)a + (U)b); }
    static T mul(T a, T b) { return (T)(U)((U)a * (U)b); } };
using EI8 = EInt<int8_t, uint8_t>;
using EU8 = EInt<uint8_t, uint8_t>;
using EI32 = EInt<int32_t, uint32_t>;
using EI64 = EInt<int64_t, uint64_t>;

template <class E, class = void> struct Arith {
    static typename E::C add(typename E::C a, typename E::C b) { return a + b; }
    static typename E::C mul(typename E::C a, typename E::C b) { return a * b; }
};
template <class E> struct Arith<E, decltype((void)E::add, void())> {
    static typename E::C add(typename E::C a, typename E::C b) { return E::add(a, b); }
    static typename E::C mul(typename E::C a, typename E::C b) { return E::mul(a, b); }
};

// MIN/MAX propagate NaN: if either operand is NaN the result is NaN.
template <class C> inline C op_min(C a, C b) { return (a < b || a != a) ? a : b; }
template <class C> inline C op_max(C a, C b) { return (a > b || a != a) ? a : b; }

template <class E, int OP>
inline typename E::S combine(typename E::S x, typename E::S y) {
    typename E::C a = E::ld(x), b = E::ld(y);
    if (OP == TORUS_GLOO_SUM) return E::st(Arith<E>::add(a, b));
    if (OP == TORUS_GLOO_PROD) return E::st(Arith<E>::mul(a, b));
    if (OP == TORUS_GLOO_MIN) return E::st(op_min(a, b));
    return E::st(op_max(a, b));
}

template <class E, int OP>
void reduce3(void* c, const void* a, const void* b, size_t n) {
    auto* o = static_cast<typename E::S*>(c);
    auto* x = static_cast<const typename E::S*>(a);
    auto* y = static_cast<const typename E::S*>(b);
    for (size_t i = 0; i < n; i++) o[i] = combine<E, OP>(x[i], y[i]);
}

template <class E, int OP>
void reduce2(typename E::S* x, const typename E::S* y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = combine<E, OP>(x[i], y[i]);
}

using Fn3 = void (*)(void*, const void*, const void*, size_t);

template <class E> Fn3 pick3(int op) {
    switch (op) {
        case TORUS_GLOO_SUM: case TORUS_GLOO_AVG: return reduce3<E, TORUS_GLOO_SUM>;
        case TORUS_GLOO_PROD: return reduce3<E, TORUS_GLOO_PROD>;
        case TORUS_GLOO_MIN: return reduce3<E, TORUS_GLOO_MIN>;
        case TORUS_GLOO_MAX: return reduce3<E, TORUS_GLOO_MAX>;
        default: return nullptr;
    }
}

Fn3 reducer(int dt, int op) {
    switch (dt) {
        case F32: return pick3<EF32>(op);
        case F64: return pick3<EF64>(op);
        case F16: return pick3<EF16>(op);
        case BF16: return pick3<EBF16>(op);
        case I8: return pick3<EI8>(op);
        case U8: return pick3<EU8>(op);
        case I32: return pick3<EI32>(op);
        case I64: return pick3<EI64>(op);
        default: return nullptr;
    }
}

template <class E> void divide_by(void* p, size_t n, int k) {
    auto* s = static_cast<typename E::S*>(p);
    for (size_t i = 0; i < n; i++) {
        s[i] = E::st(E::ld(s[i]) / (typename E::C)k);
    }
}

// AVG: floating types divide in their compute type (fp16/bf16 via fp32, rounded to
// nearest even); integer types use C's truncating division.
void divide(void* p, size_t n, int dt, int k) {
    switch (dt) {
        case F32: divide_by<EF32>(p, n, k); break;
        case F64: divide_by<EF64>(p, n, k); break;
        case F16: divide_by<EF16>(p, n, k); break;
        case BF16: divide_by<EBF16>(p, n, k); break;
        case I8: divide_by<EI8>(p, n, k); break;
        case U8: divide_by<EU8>(p, n, k); break;
        case I32: divide_by<EI32>(p, n, k); break;
        case I64: divide_by<EI64>(p, n, k); break;
    }
}

// ---------------------------------------------------------------- communicator

// A gloo::Context whose transport context we build ourselves (two-phase connect).
class ShimContext : public gloo::Context {
  public:
    ShimContext(int rank, int size) : gloo::Context(rank, size) {}
    void adopt(std::shared_ptr<gloo::transport::Device> dev, std::shared_ptr<gloo::transport::Context> tctx) {
        device_ = std::move(dev);
        transportContext_ = std::move(tctx);
    }
};

// Waking the operations that are blocked on a communicator's pairs needs
// gloo::transport::tcp::Context::signalException(const std::string&), which is
// protected, and whose header the Debian package cannot compile (it lacks
// gloo/common/memory.h). The function is exported from libgloo, so it is looked
// up by its Itanium-ABI name and called with the context as `this`. If the lookup
// fails, abort falls back to closing every connection: peers then fail at once,
// and the local operation fails when its own timeout expires.
using SignalFn = void (*)(void* self, const std::string& msg);

SignalFn tcp_signal_exception() {
    static SignalFn fn = reinterpret_cast<SignalFn>(
        dlsym(RTLD_DEFAULT, "_ZN4gloo9transport3tcp7Context15signalExceptionERKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE"));
    return fn;
}

struct Comm {
    int rank = 0;
    int size = 0;
    size_t addr_bytes = 0;
    int64_t init_timeout_ms = 0;
    bool connected = false;
    std::shared_ptr<gloo::transport::Device> dev;
    std::shared_ptr<gloo::transport::Context> tctx;
    std::shared_ptr<ShimContext> ctx;
    std::atomic<bool> aborted{false};
    std::mutex abort_mu;
    std::string abort_reason;
    // The connected sockets of this communicator's pairs, found after connect, whose
    // kernel byte counters (TCP_INFO) give the bytes actually sent.
    struct CountedSocket {
        int fd;
        sockaddr_storage self;
        sockaddr_storage peer;
        uint64_t base;  // bytes sent when connect finished (the handshake)
        uint64_t last;  // last value read, kept once the socket is gone
    };
    std::mutex count_mu;
    std::vector<CountedSocket> sockets;
    // reduce-scatter staging, reused across calls (the collective lane runs one op at a time)
    std::unique_ptr<char[]> scratch;
    size_t scratch_bytes = 0;

    // The shared-memory transport (null when this rank has no local peer), and in a
    // hierarchical layout the leaders' cross-host communicator (owned; only on a leader).
    std::unique_ptr<torus::ShmGroup> shm;
    bool hierarchical = false;
    bool leader = false;
    int host_index = 0;
    Comm* cross = nullptr;

    ~Comm();

    char* staging(size_t bytes) {
        if (bytes > scratch_bytes) {
            scratch.reset(new char[bytes]);  // uninitialized: every byte is written before it is read
            scratch_bytes = bytes;
        }
        return scratch.get();
    }
};

Comm::~Comm() { delete cross; }

// A failed call is classified by what happened, never by the wording of Gloo's message:
// an abort we requested is ABORTED; a call that ran for its whole time bound is TIMEOUT;
// anything earlier is a transport failure (a peer closed or reset its connection).
int classify(Comm* c, const std::string& what, std::chrono::steady_clock::time_point start, int64_t timeout_ms) {
    if (c != nullptr && c->aborted.load()) {
        std::lock_guard<std::mutex> lock(c->abort_mu);
        return fail(TORUS_GLOO_ERR_ABORTED, "aborted: " + c->abort_reason + " (" + what + ")");
    }
    auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    if (timeout_ms > 0 && elapsed.count() + 5 >= timeout_ms) {
        return fail(TORUS_GLOO_ERR_TIMEOUT, "no progress within " + std::to_string(timeout_ms) + " ms: " + what);
    }
    return fail(TORUS_GLOO_ERR_IO, what);
}

// Runs body, turning every C++ exception into a status; timeout_ms is the call's own
// bound (0 when it has none), used only to classify a failure.
template <class F>
int guarded(Comm* c, int64_t timeout_ms, F&& body) {
    auto start = std::chrono::steady_clock::now();
    try {
        return body();
    } catch (const gloo::IoException& e) {
        return classify(c, e.what(), start, timeout_ms);
    } catch (const gloo::EnforceNotMet& e) {
        return classify(c, e.what(), start, timeout_ms);
    } catch (const std::bad_alloc&) {
        return fail(TORUS_GLOO_ERR_OUT_OF_MEMORY, "out of host memory in the Gloo shim");
    } catch (const std::exception& e) {
        return classify(c, e.what(), start, timeout_ms);
    } catch (...) {
        return fail(TORUS_GLOO_ERR_INTERNAL, "unknown C++ exception in the Gloo shim");
    }
}

// ---------------------------------------------------------------- measured bytes

bool same_endpoint(const sockaddr_storage& a, const sockaddr_storage& b) {
    if (a.ss_family != b.ss_family) return false;
    if (a.ss_family == AF_INET) {
        auto* x = reinterpret_cast<const sockaddr_in*>(&a);
        auto* y = reinterpret_cast<const sockaddr_in*>(&b);
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a.ss_family == AF_INET6) {
        auto* x = reinterpret_cast<const sockaddr_in6*>(&a);
        auto* y = reinterpret_cast<const sockaddr_in6*>(&b);
        return x->sin6_port == y->sin6_port && std::memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(in6_addr)) == 0;
    }
    return false;
}

bool endpoints(int fd, sockaddr_storage* self, sockaddr_storage* peer) {
    socklen_t ls = sizeof(*self), lp = sizeof(*peer);
    std::memset(self, 0, sizeof(*self));
    std::memset(peer, 0, sizeof(*peer));
    return getsockname(fd, reinterpret_cast<sockaddr*>(self), &ls) == 0 &&
           getpeername(fd, reinterpret_cast<sockaddr*>(peer), &lp) == 0;
}

bool bytes_sent(int fd, uint64_t* out) {
    struct tcp_info info;
    std::memset(&info, 0, sizeof(info));
    socklen_t len = sizeof(info);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return false;
    if (len < offsetof(struct tcp_info, tcpi_bytes_retrans) + sizeof(info.tcpi_bytes_retrans)) return false;  // old kernel
    // Bytes this end handed to the connection: those transmitted once, plus those still
    // queued in the send buffer. A send completes once its bytes are queued, so counting
    // only transmitted bytes would undercount an op that just finished on a busy machine;
    // retransmissions are link noise, not traffic the communicator caused.
    *out = info.tcpi_bytes_sent - info.tcpi_bytes_retrans + info.tcpi_notsent_bytes;
    return true;
}

// Finds the connected sockets of the pairs: a pair on the connecting side has the peer's
// listening address as its peer; one on the listening side has its own listening
// address as its local end. Scans /proc/self/fd once, right after connect.
void find_sockets(Comm* c, const char* remote) {
    std::vector<sockaddr_storage> own, peers;
    for (int i = 0; i < c->size; i++) {
        if (i == c->rank) continue;
        auto* mine = dynamic_cast<const gloo::transport::tcp::Address*>(&c->tctx->getPair(i)->address());
        if (mine != nullptr) own.push_back(mine->getSockaddr());
        std::vector<char> bytes(remote + (size_t)i * c->addr_bytes, remote + (size_t)(i + 1) * c->addr_bytes);
        peers.push_back(gloo::transport::tcp::Address(bytes).getSockaddr());
    }
    DIR* d = opendir("/proc/self/fd");
    if (d == nullptr) return;
    std::vector<Comm::CountedSocket> found;
    while (struct dirent* e = readdir(d)) {
        char* end = nullptr;
        long fd = std::strtol(e->d_name, &end, 10);
        if (end == e->d_name || *end != 0) continue;
        struct stat st;
        if (fstat((int)fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
        sockaddr_storage self, peer;
        if (!endpoints((int)fd, &self, &peer)) continue;
        bool ours = false;
        for (auto& p : peers) ours |= same_endpoint(peer, p);
        for (auto& o : own) ours |= same_endpoint(self, o);
        uint64_t b = 0;
        if (ours && bytes_sent((int)fd, &b)) found.push_back({(int)fd, self, peer, b, b});
    }
    closedir(d);
    std::lock_guard<std::mutex> g(c->count_mu);
    c->sockets = std::move(found);
}

int ready(Comm* c, const char* op) {
    if (c == nullptr) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, std::string(op) + ": comm is null");
    if (c->aborted.load()) {
        std::lock_guard<std::mutex> lock(c->abort_mu);
        return fail(TORUS_GLOO_ERR_ABORTED, std::string(op) + ": communicator was aborted: " + c->abort_reason);
    }
    if (!c->connected) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, std::string(op) + ": communicator is not connected");
    return TORUS_GLOO_OK;
}

int check_common(Comm* c, const char* op, int64_t count, int dt, int64_t timeout_ms) {
    int s = ready(c, op);
    if (s) return s;
    if (count < 0) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, std::string(op) + ": count must be >= 0");
    if (elem_size(dt) == 0) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, std::string(op) + ": unknown dtype code " + std::to_string(dt));
    if (timeout_ms <= 0) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, std::string(op) + ": timeout_ms must be > 0");
    return TORUS_GLOO_OK;
}

// Some Gloo algorithms (bcube) wait without a timeout of their own and fall back to the
// transport context's default, which would otherwise still be the init timeout. Collectives
// run one at a time on the collective lane, so setting it per op is race-free for them;
// send/recv pass their timeout explicitly and never read it.
void set_op_timeout(Comm* c, int64_t timeout_ms) {
    c->tctx->setTimeout(std::chrono::milliseconds(timeout_ms));
    c->ctx->setTimeout(std::chrono::milliseconds(timeout_ms));
}

template <class F>
void with_elem(int dt, F&& f) {
    switch (dt) {
        case F32: f(EF32{}); break;
        case F64: f(EF64{}); break;
        case F16: f(EF16{}); break;
        case BF16: f(EBF16{}); break;
        case I8: f(EI8{}); break;
        case U8: f(EU8{}); break;
        case I32: f(EI32{}); break;
        case I64: f(EI64{}); break;
    }
}

template <class E>
void run_halving_doubling(Comm* c, void* data, int64_t count, int op) {
    using T = typename E::S;
    typename gloo::ReductionFunction<T>::Function* fn = nullptr;
    switch (op) {
        case TORUS_GLOO_PROD: fn = reduce2<E, TORUS_GLOO_PROD>; break;
        case TORUS_GLOO_MIN: fn = reduce2<E, TORUS_GLOO_MIN>; break;
        case TORUS_GLOO_MAX: fn = reduce2<E, TORUS_GLOO_MAX>; break;
        default: fn = reduce2<E, TORUS_GLOO_SUM>; break;
    }
    gloo::ReductionFunction<T> rf(gloo::CUSTOM, fn);
    gloo::AllreduceHalvingDoubling<T> alg(c->ctx, std::vector<T*>{static_cast<T*>(data)}, (int)count, &rf);
    alg.run();
}

Comm* as_comm(void* p) { return static_cast<Comm*>(p); }

}  // namespace

extern "C" {

const char* torus_gloo_last_error(void) { return g_last_error.c_str(); }

int torus_gloo_create(int rank, int size, const char* hostname, int64_t timeout_ms, void** out) {
    if (out == nullptr) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "create: out is null");
    *out = nullptr;
    if (size < 1) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "create: size must be >= 1, got " + std::to_string(size));
    if (rank < 0 || rank >= size)
        return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "create: rank must be in [0, " + std::to_string(size) + "), got " + std::to_string(rank));
    if (timeout_ms <= 0) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "create: timeout_ms must be > 0");
    if (hostname == nullptr || hostname[0] == 0) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "create: hostname is empty");
    {
        // Gloo resolves the name itself and cannot survive one that does not resolve: check first.
        struct addrinfo hints;
        std::memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        struct addrinfo* res = nullptr;
        int rv = getaddrinfo(hostname, nullptr, &hints, &res);
        if (rv != 0 || res == nullptr) {
            return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, std::string("create: hostname '") + hostname +
                        "' does not resolve (" + gai_strerror(rv) + ")");
        }
        freeaddrinfo(res);
    }
    return guarded(nullptr, timeout_ms, [&]() {
        auto c = std::make_unique<Comm>();
        c->rank = rank;
        c->size = size;
        c->init_timeout_ms = timeout_ms;
        gloo::transport::tcp::attr attr;
        attr.hostname = hostname;
        c->dev = gloo::transport::tcp::CreateDevice(attr);
        c->tctx = c->dev->createContext(rank, size);
        c->tctx->setTimeout(std::chrono::milliseconds(timeout_ms));
        c->ctx = std::make_shared<ShimContext>(rank, size);
        c->ctx->setTimeout(std::chrono::milliseconds(timeout_ms));
        for (int i = 0; i < size; i++) {
            if (i == rank) continue;
            auto& pair = c->tctx->createPair(i);
            size_t n = pair->address().bytes().size();
            if (c->addr_bytes == 0) c->addr_bytes = n;
            if (n != c->addr_bytes) throw std::runtime_error("pair addresses differ in size");
        }
        if (c->addr_bytes == 0) c->addr_bytes = 1;  // world of one: no pairs
        *out = c.release();
        return TORUS_GLOO_OK;
    });
}

int torus_gloo_address_bytes(void* comm, int64_t* out) {
    Comm* c = as_comm(comm);
    if (c == nullptr || out == nullptr) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "address_bytes: null argument");
    *out = (int64_t)c->addr_bytes;
    return TORUS_GLOO_OK;
}

int torus_gloo_local_addresses(void* comm, char* buf, int64_t capacity) {
    Comm* c = as_comm(comm);
    if (c == nullptr || buf == nullptr) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "local_addresses: null argument");
    int64_t need = (int64_t)(c->addr_bytes * c->size);
    if (capacity < need)
        return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "local_addresses: capacity " + std::to_string(capacity) + " < " + std::to_string(need));
    return guarded(c, 0, [&]() {
        std::memset(buf, 0, (size_t)need);
        for (int i = 0; i < c->size; i++) {
            if (i == c->rank) continue;
            auto bytes = c->tctx->getPair(i)->address().bytes();
            // Gloo serialises a whole sockaddr_storage, whose tail past the address is
            // uninitialised memory: publish only the address itself, zeroing the rest.
            if (bytes.size() >= sizeof(sockaddr_storage)) {
                auto* ss = reinterpret_cast<sockaddr_storage*>(bytes.data());
                size_t used = ss->ss_family == AF_INET6 ? sizeof(sockaddr_in6)
                            : ss->ss_family == AF_INET ? offsetof(sockaddr_in, sin_zero) : sizeof(sockaddr_storage);
                std::memset(bytes.data() + used, 0, sizeof(sockaddr_storage) - used);
            }
            std::memcpy(buf + (size_t)i * c->addr_bytes, bytes.data(), bytes.size());
        }
        return TORUS_GLOO_OK;
    });
}

int torus_gloo_connect(void* comm, const char* remote, int64_t bytes) {
    Comm* c = as_comm(comm);
    if (c == nullptr || remote == nullptr) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "connect: null argument");
    if (c->connected) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "connect: already connected");
    int64_t need = (int64_t)(c->addr_bytes * c->size);
    if (bytes != need)
        return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "connect: expected " + std::to_string(need) + " address bytes, got " + std::to_string(bytes));
    return guarded(c, c->init_timeout_ms, [&]() {
        for (int i = 0; i < c->size; i++) {
            if (i == c->rank) continue;
            std::vector<char> addr(remote + (size_t)i * c->addr_bytes, remote + (size_t)(i + 1) * c->addr_bytes);
            c->tctx->getPair(i)->connect(addr);
        }
        c->ctx->adopt(c->dev, c->tctx);
        c->connected = true;
        find_sockets(c, remote);
        return TORUS_GLOO_OK;
    });
}

int torus_gloo_abort(void* comm, const char* reason) {
    Comm* c = as_comm(comm);
    if (c == nullptr) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "abort: comm is null");
    return guarded(nullptr, 0, [&]() {
        {
            std::lock_guard<std::mutex> lock(c->abort_mu);
            if (c->aborted.load()) return TORUS_GLOO_OK;
            c->abort_reason = reason ? reason : "no reason given";
            c->aborted.store(true);
        }
        if (c->shm) c->shm->poison("communicator aborted: " + c->abort_reason);
        if (c->cross != nullptr) torus_gloo_abort(c->cross, reason);
        // Signalled before connect too: a pair still waiting for its peer to connect then
        // gives up at once (this is how an init deadline is enforced).
        // The context was made by a tcp::Device, so its dynamic type is tcp::Context,
        // whose primary base (at offset 0) is transport::Context.
        if (SignalFn fn = tcp_signal_exception()) {
            fn(c->tctx.get(), "communicator aborted: " + c->abort_reason);
        } else if (c->connected) {
            c->ctx->closeConnections();
        }
        return TORUS_GLOO_OK;
    });
}

int torus_gloo_destroy(void* comm) {
    Comm* c = as_comm(comm);
    if (c == nullptr) return TORUS_GLOO_OK;
    return guarded(nullptr, 0, [&]() {
        delete c;
        return TORUS_GLOO_OK;
    });
}

int torus_gloo_allreduce(void* comm, void* in, void* out, int64_t count, int dtype, int op, int algorithm,
                         int64_t timeout_ms, uint32_t tag) {
    Comm* c = as_comm(comm);
    if (int s = check_common(c, "allreduce", count, dtype, timeout_ms)) return s;
    if (op < TORUS_GLOO_SUM || op > TORUS_GLOO_AVG) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "allreduce: unknown op");
    if (count == 0) return TORUS_GLOO_OK;
    if (in == nullptr || out == nullptr) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "allreduce: null buffer");
    return guarded(c, timeout_ms, [&]() {
        set_op_timeout(c, timeout_ms);
        size_t es = elem_size(dtype);
        if (c->size > 1) {
            if (algorithm == TORUS_GLOO_ALGO_HALVING_DOUBLING) {
                if (count > INT32_MAX) throw gloo::EnforceNotMet(__FILE__, __LINE__, "count", "halving-doubling takes at most 2^31-1 elements");
                if (in != out) std::memcpy(out, in, (size_t)count * es);
                with_elem(dtype, [&](auto e) { run_halving_doubling<decltype(e)>(c, out, count, op); });
                // The old-style algorithm can still owe its peers flow-control messages
                // when run() returns; without this barrier a rank that closes right after
                // its last all-reduce cuts off a peer that is still finishing (seen as
                // "Connection closed by peer" on the peer).
                gloo::BarrierOptions b(c->ctx);
                b.setTag(tag | 0x80000000u);  // bit 31: never an op tag (see Fingerprint.wireTag)
                b.setTimeout(std::chrono::milliseconds(timeout_ms));
                gloo::barrier(b);
            } else {
                gloo::AllreduceOptions opts(c->ctx);
                with_elem(dtype, [&](auto e) {
                    using T = typename decltype(e)::S;
                    if (in != out) opts.setInput<T>(static_cast<T*>(in), (size_t)count);
                    opts.setOutput<T>(static_cast<T*>(out), (size_t)count);
                });
                opts.setReduceFunction(reducer(dtype, op));
                opts.setAlgorithm(algorithm == TORUS_GLOO_ALGO_BCUBE ? gloo::AllreduceOptions::Algorithm::BCUBE
                                                                    : gloo::AllreduceOptions::Algorithm::RING);
                opts.setTag(tag);
                opts.setTimeout(std::chrono::milliseconds(timeout_ms));
                gloo::allreduce(opts);
            }
        } else if (in != out) {
            std::memcpy(out, in, (size_t)count * es);
        }
        if (op == TORUS_GLOO_AVG) divide(out, (size_t)count, dtype, c->size);
        return TORUS_GLOO_OK;
    });
}

int torus_gloo_reduce(void* comm, void* in, void* out, int64_t count, int dtype, int op, int root,
                      int64_t timeout_ms, uint32_t tag) {
    Comm* c = as_comm(comm);
    if (int s = check_common(c, "reduce", count, dtype, timeout_ms)) return s;
    if (op < TORUS_GLOO_SUM || op > TORUS_GLOO_AVG) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "reduce: unknown op");
    if (root < 0 || root >= c->size) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "reduce: root out of range");
    if (count == 0) return TORUS_GLOO_OK;
    return guarded(c, timeout_ms, [&]() {
        set_op_timeout(c, timeout_ms);
        size_t es = elem_size(dtype);
        if (c->size > 1) {
            gloo::ReduceOptions opts(c->ctx);
            with_elem(dtype, [&](auto e) {
                using T = typename decltype(e)::S;
                if (in != out) opts.setInput<T>(static_cast<T*>(in), (size_t)count);
                opts.setOutput<T>(static_cast<T*>(out), (size_t)count);
            });
            opts.setReduceFunction(reducer(dtype, op));
            opts.setRoot(root);
            opts.setTag(tag);
            opts.setTimeout(std::chrono::milliseconds(timeout_ms));
            gloo::reduce(opts);
        } else if (in != out) {
            std::memcpy(out, in, (size_t)count * es);
        }
        if (op == TORUS_GLOO_AVG && c->rank == root) divide(out, (size_t)count, dtype, c->size);
        return TORUS_GLOO_OK;
    });
}

int torus_gloo_broadcast(void* comm, void* in, void* out, int64_t count, int dtype, int root,
                         int64_t timeout_ms, uint32_t tag) {
    Comm* c = as_comm(comm);
    if (int s = check_common(c, "broadcast", count, dtype, timeout_ms)) return s;
    if (root < 0 || root >= c->size) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "broadcast: root out of range");
    if (count == 0) return TORUS_GLOO_OK;
    return guarded(c, timeout_ms, [&]() {
        set_op_timeout(c, timeout_ms);
        size_t es = elem_size(dtype);
        if (c->size > 1) {
            gloo::BroadcastOptions opts(c->ctx);
            with_elem(dtype, [&](auto e) {
                using T = typename decltype(e)::S;
                if (c->rank == root && in != out) opts.setInput<T>(static_cast<T*>(in), (size_t)count);
                opts.setOutput<T>(static_cast<T*>(out), (size_t)count);
            });
            opts.setRoot(root);
            opts.setTag(tag);
            opts.setTimeout(std::chrono::milliseconds(timeout_ms));
            gloo::broadcast(opts);
        } else if (in != out) {
            std::memcpy(out, in, (size_t)count * es);
        }
        return TORUS_GLOO_OK;
    });
}

int torus_gloo_allgather(void* comm, void* in, void* out, int64_t count, int dtype, int64_t timeout_ms, uint32_t tag) {
    Comm* c = as_comm(comm);
    if (int s = check_common(c, "allgather", count, dtype, timeout_ms)) return s;
    if (count == 0) return TORUS_GLOO_OK;
    return guarded(c, timeout_ms, [&]() {
        set_op_timeout(c, timeout_ms);
        size_t es = elem_size(dtype);
        char* mine = static_cast<char*>(out) + (size_t)c->rank * (size_t)count * es;
        if (c->size > 1) {
            gloo::AllgatherOptions opts(c->ctx);
            with_elem(dtype, [&](auto e) {
                using T = typename decltype(e)::S;
                if (in != mine) opts.setInput<T>(static_cast<T*>(in), (size_t)count);
                opts.setOutput<T>(static_cast<T*>(out), (size_t)count * c->size);
            });
            opts.setTag(tag);
            opts.setTimeout(std::chrono::milliseconds(timeout_ms));
            gloo::allgather(opts);
        } else if (in != out) {
            std::memcpy(out, in, (size_t)count * es);
        }
        return TORUS_GLOO_OK;
    });
}

int torus_gloo_alltoall(void* comm, void* in, void* out, int64_t count, int dtype, int64_t timeout_ms, uint32_t tag) {
    Comm* c = as_comm(comm);
    if (int s = check_common(c, "alltoall", count, dtype, timeout_ms)) return s;
    if (count == 0) return TORUS_GLOO_OK;
    if (in == out) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "alltoall: in and out must not be the same buffer");
    return guarded(c, timeout_ms, [&]() {
        set_op_timeout(c, timeout_ms);
        size_t es = elem_size(dtype);
        if (c->size > 1) {
            gloo::AlltoallOptions opts(c->ctx);
            with_elem(dtype, [&](auto e) {
                using T = typename decltype(e)::S;
                opts.setInput<T>(static_cast<T*>(in), (size_t)count * c->size);
                opts.setOutput<T>(static_cast<T*>(out), (size_t)count * c->size);
            });
            opts.setTag(tag);
            opts.setTimeout(std::chrono::milliseconds(timeout_ms));
            gloo::alltoall(opts);
        } else {
            std::memcpy(out, in, (size_t)count * es);
        }
        return TORUS_GLOO_OK;
    });
}

int torus_gloo_reduce_scatter(void* comm, void* in, void* out, int64_t count, int dtype, int op,
                              int64_t timeout_ms, uint32_t tag) {
    Comm* c = as_comm(comm);
    if (int s = check_common(c, "reduce_scatter", count, dtype, timeout_ms)) return s;
    if (op < TORUS_GLOO_SUM || op > TORUS_GLOO_AVG) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "reduce_scatter: unknown op");
    if (count == 0) return TORUS_GLOO_OK;
    return guarded(c, timeout_ms, [&]() {
        set_op_timeout(c, timeout_ms);
        size_t es = elem_size(dtype);
        size_t block = (size_t)count * es;
        if (c->size == 1) {
            if (in != out) std::memcpy(out, in, block);
        } else {
            // All-to-all moves block j of every rank to rank j ((n-1)/n of the data per
            // rank, as a ring reduce-scatter would); the n blocks are then reduced in
            // rank order, so every rank's result is identical whatever the arrival order.
            char* gathered = c->staging(block * c->size);
            gloo::AlltoallOptions opts(c->ctx);
            with_elem(dtype, [&](auto e) {
                using T = typename decltype(e)::S;
                opts.setInput<T>(static_cast<T*>(in), (size_t)count * c->size);
                opts.setOutput<T>(reinterpret_cast<T*>(gathered), (size_t)count * c->size);
            });
            opts.setTag(tag);
            opts.setTimeout(std::chrono::milliseconds(timeout_ms));
            gloo::alltoall(opts);
            Fn3 f = reducer(dtype, op);
            std::memcpy(out, gathered, block);
            for (int r = 1; r < c->size; r++) f(out, out, gathered + (size_t)r * block, (size_t)count);
        }
        if (op == TORUS_GLOO_AVG) divide(out, (size_t)count, dtype, c->size);
        return TORUS_GLOO_OK;
    });
}

int torus_gloo_send(void* comm, void* ptr, int64_t bytes, int dst, uint64_t slot, int64_t timeout_ms) {
    Comm* c = as_comm(comm);
    if (int s = check_common(c, "send", bytes, U8, timeout_ms)) return s;
    if (dst < 0 || dst >= c->size || dst == c->rank) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "send: bad destination rank");
    return guarded(c, timeout_ms, [&]() {
        auto buf = c->ctx->createUnboundBuffer(ptr, (size_t)bytes);
        buf->send(dst, slot);
        buf->waitSend(std::chrono::milliseconds(timeout_ms));
        return TORUS_GLOO_OK;
    });
}

int torus_gloo_recv(void* comm, void* ptr, int64_t bytes, int src, uint64_t slot, int64_t timeout_ms) {
    Comm* c = as_comm(comm);
    if (int s = check_common(c, "recv", bytes, U8, timeout_ms)) return s;
    if (src < 0 || src >= c->size || src == c->rank) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "recv: bad source rank");
    return guarded(c, timeout_ms, [&]() {
        auto buf = c->ctx->createUnboundBuffer(ptr, (size_t)bytes);
        buf->recv(src, slot);
        buf->waitRecv(std::chrono::milliseconds(timeout_ms));
        return TORUS_GLOO_OK;
    });
}

int torus_gloo_barrier(void* comm, int64_t timeout_ms, uint32_t tag) {
    Comm* c = as_comm(comm);
    if (int s = check_common(c, "barrier", 0, U8, timeout_ms)) return s;
    if (c->size == 1) return TORUS_GLOO_OK;
    return guarded(c, timeout_ms, [&]() {
        set_op_timeout(c, timeout_ms);
        gloo::BarrierOptions opts(c->ctx);
        opts.setTag(tag);
        opts.setTimeout(std::chrono::milliseconds(timeout_ms));
        gloo::barrier(opts);
        return TORUS_GLOO_OK;
    });
}

int torus_gloo_bytes_sent(void* comm, int64_t* out, int64_t* sockets) {
    Comm* c = as_comm(comm);
    if (c == nullptr || out == nullptr || sockets == nullptr) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "bytes_sent: null argument");
    std::lock_guard<std::mutex> g(c->count_mu);
    uint64_t total = 0;
    for (auto& s : c->sockets) {
        sockaddr_storage self, peer;
        uint64_t b = 0;
        // an fd number can be reused once Gloo closes the pair: read it only while it is still that socket
        if (endpoints(s.fd, &self, &peer) && same_endpoint(self, s.self) && same_endpoint(peer, s.peer) &&
            bytes_sent(s.fd, &b) && b >= s.last) {
            s.last = b;
        }
        total += s.last - s.base;
    }
    *out = (int64_t)total;
    *sockets = (int64_t)c->sockets.size();
    return TORUS_GLOO_OK;
}

int torus_gloo_reduce_local(void* c, const void* a, const void* b, int64_t count, int dtype, int op) {
    if (count < 0) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "reduce_local: count must be >= 0");
    Fn3 f = (op == TORUS_GLOO_AVG) ? nullptr : reducer(dtype, op);
    if (f == nullptr) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "reduce_local: unsupported dtype/op");
    if (count == 0) return TORUS_GLOO_OK;
    f(c, a, b, (size_t)count);
    return TORUS_GLOO_OK;
}

// ---------------------------------------------------------------- shared-memory transport

static int shm_status(int code, const std::string& msg) { return fail(code, msg); }

int torus_gloo_shm_open(void* comm, const char* name, int create, int local_rank, const int32_t* global_ranks,
                        int local_size, int64_t slot_bytes) {
    Comm* c = as_comm(comm);
    if (int s = ready(c, "shm_open")) return s;
    if (name == nullptr || global_ranks == nullptr) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "shm_open: null argument");
    if (c->shm) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "shm_open: this communicator already has a segment");
    if (local_size < 2 || local_size > torus::ShmGroup::MAX_LOCAL) {
        return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "shm_open: local_size must be in [2, 64], got " + std::to_string(local_size));
    }
    return guarded(c, 0, [&]() {
        std::vector<int> ranks(global_ranks, global_ranks + local_size);
        std::string err;
        int s = torus::ShmGroup::open(name, create != 0, local_rank, ranks, slot_bytes, &c->shm, &err);
        return s == 0 ? TORUS_GLOO_OK : shm_status(s, err);
    });
}

int torus_gloo_shm_ready(void* comm) {
    Comm* c = as_comm(comm);
    if (int s = ready(c, "shm_ready")) return s;
    if (!c->shm) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "shm_ready: no segment");
    std::string err;
    int s = c->shm->ready(&err);
    return s == 0 ? TORUS_GLOO_OK : shm_status(s, err);
}

int torus_gloo_shm_unlink(void* comm) {
    Comm* c = as_comm(comm);
    if (c == nullptr || !c->shm) return TORUS_GLOO_OK;
    std::string err;
    int s = c->shm->unlink(&err);
    return s == 0 ? TORUS_GLOO_OK : shm_status(s, err);
}

int torus_gloo_shm_close(void* comm) {
    Comm* c = as_comm(comm);
    if (c == nullptr) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "shm_close: comm is null");
    c->shm.reset();
    c->hierarchical = false;
    delete c->cross;
    c->cross = nullptr;
    return TORUS_GLOO_OK;
}

int torus_gloo_shm_set_layout(void* comm, int hierarchical, int leader, int host_index, void* cross) {
    Comm* c = as_comm(comm);
    if (int s = ready(c, "shm_set_layout")) return s;
    if (cross != nullptr && !leader) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "shm_set_layout: only a leader has a cross-host communicator");
    if (hierarchical && leader && cross == nullptr) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "shm_set_layout: a leader needs its cross-host communicator");
    if (!hierarchical && !c->shm) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "shm_set_layout: no segment");
    c->hierarchical = hierarchical != 0;
    c->leader = leader != 0;
    c->host_index = host_index;
    delete c->cross;
    c->cross = as_comm(cross);
    return TORUS_GLOO_OK;
}

int torus_gloo_shm_unlink_stale(const char* prefix, int64_t below_generation) {
    if (prefix == nullptr || prefix[0] != '/') return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "shm_unlink_stale: bad prefix");
    return torus::ShmGroup::unlink_stale(prefix, below_generation);
}

static int shm_ready_for(Comm* c, const char* op, int64_t count, int dtype, int64_t timeout_ms) {
    if (int s = check_common(c, op, count, dtype, timeout_ms)) return s;
    if (!c->shm && !c->hierarchical) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, std::string(op) + ": no shared-memory transport");
    return TORUS_GLOO_OK;
}

// As classify() does for Gloo: our own abort is ABORTED; a peer's failure that reached this
// rank only once its own bound had run out is TIMEOUT (both ranks were waiting for a third).
static int shm_result(Comm* c, int s, const std::string& err, std::chrono::steady_clock::time_point start,
                      int64_t timeout_ms) {
    if (s == 0) return TORUS_GLOO_OK;
    if (c->aborted.load()) {
        std::lock_guard<std::mutex> lock(c->abort_mu);
        return fail(TORUS_GLOO_ERR_ABORTED, "aborted: " + c->abort_reason);
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
    if (s == TORUS_GLOO_ERR_IO && ms + 5 >= timeout_ms) {
        return fail(TORUS_GLOO_ERR_TIMEOUT, "no progress within " + std::to_string(timeout_ms) + " ms: " + err);
    }
    return fail(s, err);
}

int torus_gloo_shm_allreduce(void* comm, void* in, void* out, int64_t count, int dtype, int op, int algorithm,
                             int64_t timeout_ms, uint32_t tag) {
    Comm* c = as_comm(comm);
    if (int s = shm_ready_for(c, "shm_allreduce", count, dtype, timeout_ms)) return s;
    if (op < TORUS_GLOO_SUM || op > TORUS_GLOO_AVG) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "shm_allreduce: unknown op");
    if (count == 0) return TORUS_GLOO_OK;
    if (in == nullptr || out == nullptr) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "shm_allreduce: null buffer");
    auto start = std::chrono::steady_clock::now();
    return guarded(c, timeout_ms, [&]() {
        size_t es = elem_size(dtype);
        Fn3 f = reducer(dtype, op);
        int base = op == TORUS_GLOO_AVG ? TORUS_GLOO_SUM : op;
        std::string err;
        int s = 0;
        if (!c->hierarchical) {
            s = c->shm->allreduce(in, out, (size_t)count, dtype, es, op, f, tag, timeout_ms, &err);
        } else {
            // reduce inside the host into the leader, all-reduce across the leaders, broadcast inside the host
            if (c->shm) s = c->shm->reduce(in, out, (size_t)count, dtype, es, op, f, 0, tag, timeout_ms, &err);
            else if (in != out) std::memcpy(out, in, (size_t)count * es);
            if (s == 0 && c->leader) {
                int g = torus_gloo_allreduce(c->cross, out, out, count, dtype, base, algorithm, timeout_ms, tag);
                if (g != 0) {
                    std::string why = std::string("cross-host all-reduce: ") + g_last_error;
                    if (c->shm) c->shm->poison(why);
                    return shm_result(c, g, why, start, timeout_ms);
                }
            }
            if (s == 0 && c->shm) s = c->shm->broadcast(out, out, (size_t)count, dtype, es, 0, tag, timeout_ms, &err);
        }
        if (s != 0) return shm_result(c, s, err, start, timeout_ms);
        if (op == TORUS_GLOO_AVG) divide(out, (size_t)count, dtype, c->size);
        return TORUS_GLOO_OK;
    });
}

int torus_gloo_shm_broadcast(void* comm, void* in, void* out, int64_t count, int dtype, int root_host, int root_local,
                             int64_t timeout_ms, uint32_t tag) {
    Comm* c = as_comm(comm);
    if (int s = shm_ready_for(c, "shm_broadcast", count, dtype, timeout_ms)) return s;
    if (count == 0) return TORUS_GLOO_OK;
    if (in == nullptr || out == nullptr) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "shm_broadcast: null buffer");
    auto start = std::chrono::steady_clock::now();
    return guarded(c, timeout_ms, [&]() {
        size_t es = elem_size(dtype);
        std::string err;
        int s = 0;
        if (c->shm && (root_local < 0 || root_local >= c->shm->local_size())) {
            return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "shm_broadcast: root_local " + std::to_string(root_local) +
                        " out of [0, " + std::to_string(c->shm->local_size()) + ")");
        }
        if (c->hierarchical && (root_host < 0 || (c->cross != nullptr && root_host >= c->cross->size))) {
            return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "shm_broadcast: root_host " + std::to_string(root_host) +
                        " out of range");
        }
        bool root_here = !c->hierarchical || root_host == c->host_index;
        if (root_here) {
            if (c->shm) s = c->shm->broadcast(in, out, (size_t)count, dtype, es, root_local, tag, timeout_ms, &err);
            else if (in != out) std::memcpy(out, in, (size_t)count * es);
            if (s != 0) return shm_result(c, s, err, start, timeout_ms);
        }
        if (c->hierarchical && c->leader) {
            int g = torus_gloo_broadcast(c->cross, out, out, count, dtype, root_host, timeout_ms, tag);
            if (g != 0) {
                std::string why = std::string("cross-host broadcast: ") + g_last_error;
                if (c->shm) c->shm->poison(why);
                return shm_result(c, g, why, start, timeout_ms);
            }
        }
        if (!root_here && c->shm) {
            s = c->shm->broadcast(out, out, (size_t)count, dtype, es, 0, tag, timeout_ms, &err);
            if (s != 0) return shm_result(c, s, err, start, timeout_ms);
        }
        return TORUS_GLOO_OK;
    });
}

int torus_gloo_shm_allgather(void* comm, void* in, void* out, int64_t count, int dtype, int64_t timeout_ms, uint32_t tag) {
    Comm* c = as_comm(comm);
    if (int s = shm_ready_for(c, "shm_allgather", count, dtype, timeout_ms)) return s;
    if (c->hierarchical) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "shm_allgather: only when every rank is on one host");
    if (count == 0) return TORUS_GLOO_OK;
    if (in == nullptr || out == nullptr) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "shm_allgather: null buffer");
    auto start = std::chrono::steady_clock::now();
    return guarded(c, timeout_ms, [&]() {
        std::string err;
        int s = c->shm->allgather(in, out, (size_t)count, dtype, elem_size(dtype), tag, timeout_ms, &err);
        return shm_result(c, s, err, start, timeout_ms);
    });
}

int torus_gloo_shm_barrier(void* comm, int64_t timeout_ms, uint32_t tag) {
    Comm* c = as_comm(comm);
    if (int s = shm_ready_for(c, "shm_barrier", 0, U8, timeout_ms)) return s;
    if (c->hierarchical) return fail(TORUS_GLOO_ERR_INVALID_ARGUMENT, "shm_barrier: only when every rank is on one host");
    auto start = std::chrono::steady_clock::now();
    return guarded(c, timeout_ms, [&]() {
        std::string err;
        int s = c->shm->barrier(tag, timeout_ms, &err);
        return shm_result(c, s, err, start, timeout_ms);
    });
}

}  // extern "C"
