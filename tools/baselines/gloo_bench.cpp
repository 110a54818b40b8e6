// Native Gloo baseline for torus-bench: the same collectives, sizes and timing
// rules as the Java benchmark, called straight from C++, so that the ratio of the
// two measures what Torus adds (JNI, the Java lane, Work bookkeeping).
//
// usage: gloo_bench OP RANK SIZE STORE_DIR MIN_BYTES MAX_BYTES MIN_TIME_S ALGO
//   OP   allreduce | allgather | reducescatter | broadcast | sendrecv
//   ALGO auto | ring | bcube | hd   (auto: bcube below 2 MiB, ring from 2 MiB, the
//                                    rule Torus uses)
// Rendezvous goes through a Gloo FileStore in STORE_DIR. Rank 0 prints one JSON
// object per size on stdout: {"op","bytes","count","time_us"}; time_us is the
// slowest rank's mean time per operation, best of three trials. All-reduce and
// broadcast are out of place, as in the Java benchmark.
#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/allreduce_halving_doubling.h>
#include <gloo/alltoall.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

void sum_f32(void* c, const void* a, const void* b, size_t n) {
    auto* o = static_cast<float*>(c);
    auto* x = static_cast<const float*>(a);
    auto* y = static_cast<const float*>(b);
    for (size_t i = 0; i < n; i++) o[i] = x[i] + y[i];
}

void sum2_f32(float* x, const float* y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

double max_over_ranks(const std::shared_ptr<gloo::Context>& ctx, double v) {
    gloo::AllreduceOptions o(ctx);
    o.setOutput<double>(&v, 1);
    o.setReduceFunction([](void* c, const void* a, const void* b, size_t n) {
        auto* out = static_cast<double*>(c);
        auto* x = static_cast<const double*>(a);
        auto* y = static_cast<const double*>(b);
        for (size_t i = 0; i < n; i++) out[i] = x[i] > y[i] ? x[i] : y[i];
    });
    o.setTag(0x7fff0001);
    gloo::allreduce(o);
    return v;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 9 && argc != 10) {
        std::fprintf(stderr, "usage: %s OP RANK SIZE STORE_DIR MIN_BYTES MAX_BYTES MIN_TIME_S ALGO [HOSTNAME]\n", argv[0]);
        return 2;
    }
    std::string op = argv[1];
    int rank = std::atoi(argv[2]);
    int size = std::atoi(argv[3]);
    std::string dir = argv[4];
    long long minBytes = std::atoll(argv[5]);
    long long maxBytes = std::atoll(argv[6]);
    double minTime = std::atof(argv[7]);
    std::string algo = argv[8];

    gloo::transport::tcp::attr attr;
    attr.hostname = argc == 10 ? argv[9] : "127.0.0.1";  // the address to listen on (a test host's, across hosts)
    auto dev = gloo::transport::tcp::CreateDevice(attr);
    gloo::rendezvous::FileStore fileStore(dir);
    gloo::rendezvous::PrefixStore store(op, fileStore);
    auto ctx = std::make_shared<gloo::rendezvous::Context>(rank, size);
    ctx->setTimeout(std::chrono::seconds(60));
    ctx->connectFullMesh(store, dev);

    const int n = size;
    for (long long bytes = minBytes; bytes <= maxBytes; bytes *= 2) {
        size_t count = (size_t)(bytes / 4);
        if (op == "allgather" || op == "reducescatter") count = count / n * n;
        if (count == 0) count = n;
        size_t per = (op == "allgather" || op == "reducescatter") ? count / n : count;
        std::vector<float> in(count, 1.0f), out(count, 0.0f), scratch(count, 0.0f);
        uint32_t tag = 1;
        auto once = [&]() {
            tag++;
            if (op == "allreduce") {
                bool small = (long long)count * 4 < 2LL * 1024 * 1024;
                if (algo == "hd") {
                    gloo::ReductionFunction<float> rf(gloo::CUSTOM, &sum2_f32);
                    gloo::AllreduceHalvingDoubling<float> a(ctx, std::vector<float*>{in.data()}, (int)count, &rf);
                    a.run();
                } else {
                    gloo::AllreduceOptions o(ctx);
                    o.setInput<float>(in.data(), count);
                    o.setOutput<float>(out.data(), count);
                    o.setReduceFunction(&sum_f32);
                    bool bcube = algo == "bcube" || (algo == "auto" && small);
                    o.setAlgorithm(bcube ? gloo::AllreduceOptions::Algorithm::BCUBE
                                         : gloo::AllreduceOptions::Algorithm::RING);
                    o.setTag(tag);
                    gloo::allreduce(o);
                }
            } else if (op == "allgather") {
                gloo::AllgatherOptions o(ctx);
                o.setInput<float>(in.data(), per);
                o.setOutput<float>(out.data(), count);
                o.setTag(tag);
                gloo::allgather(o);
            } else if (op == "reducescatter") {
                gloo::AlltoallOptions o(ctx);
                o.setInput<float>(in.data(), count);
                o.setOutput<float>(scratch.data(), count);
                o.setTag(tag);
                gloo::alltoall(o);
                std::memcpy(out.data(), scratch.data(), per * 4);
                for (int r = 1; r < n; r++) sum_f32(out.data(), out.data(), scratch.data() + (size_t)r * per, per);
            } else if (op == "broadcast") {
                gloo::BroadcastOptions o(ctx);
                if (rank == 0) o.setInput<float>(in.data(), count);
                o.setOutput<float>(out.data(), count);
                o.setRoot(0);
                o.setTag(tag);
                gloo::broadcast(o);
            } else if (op == "sendrecv") {
                auto sb = ctx->createUnboundBuffer(in.data(), count * 4);
                auto rb = ctx->createUnboundBuffer(out.data(), count * 4);
                rb->recv((rank + n - 1) % n, 0x7000 + tag);
                sb->send((rank + 1) % n, 0x7000 + tag);
                sb->waitSend();
                rb->waitRecv();
            }
        };
        for (int i = 0; i < 3; i++) once();
        gloo::BarrierOptions b(ctx);
        b.setTag(0x7fff0002);
        // calibrate on rank 0's clock so every rank runs the same number of iterations
        auto t0 = Clock::now();
        once();
        double one = std::chrono::duration<double>(Clock::now() - t0).count();
        double agreed = max_over_ranks(ctx, one);
        long iters = std::max(5L, (long)(minTime / std::max(agreed, 1e-7)));
        // best of three trials, each timed on the slowest rank
        double slowest = 1e300;
        for (int trial = 0; trial < 3; trial++) {
            gloo::barrier(b);
            t0 = Clock::now();
            for (long i = 0; i < iters; i++) once();
            double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
            slowest = std::min(slowest, max_over_ranks(ctx, elapsed));
        }
        if (rank == 0) {
            std::printf("{\"op\":\"%s\",\"bytes\":%zu,\"count\":%zu,\"time_us\":%.3f}\n", op.c_str(), count * 4, count,
                        slowest / iters * 1e6);
            std::fflush(stdout);
        }
    }
    return 0;
}
