package dev.torus.comm;

import dev.torus.CudaUnavailableException;
import dev.torus.DType;
import dev.torus.Device;
import dev.torus.Tensor;
import dev.torus.TorusException;
import dev.torus.memory.Allocator;
import dev.torus.memory.DeviceBuffer;
import dev.torus.memory.Event;
import dev.torus.memory.HostBuffer;
import dev.torus.memory.Stream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.cuda.global.nccl;
import org.bytedeco.cuda.nccl.ncclComm;
import org.bytedeco.cuda.nccl.ncclConfig_t;
import org.bytedeco.cuda.nccl.ncclUniqueId;
import org.bytedeco.javacpp.Pointer;

/**
 * NCCL backend: CUDA tensors, through the bytedeco CUDA presets. This class is
 * loaded only after {@link Device#isCudaAvailable()} says a GPU is present, so the
 * presets' native libraries are never touched on a CPU-only machine.
 *
 * <p>Initialization is non-blocking ({@code blocking = 0}) and polled with a
 * deadline; on expiry the half-built communicator is aborted. Each operation is
 * enqueued on the caller's stream (or the device's default stream) and the lane
 * then polls an event and {@code ncclCommGetAsyncError} until completion or the
 * timeout, which aborts the communicator. Owns the {@code ncclComm_t} (destroyed
 * or aborted on close) and a small device scratch buffer.
 *
 * <p>Status: written against NCCL 2.29 but not yet run on a GPU (see docs/COLLECTIVES.md).
 */
final class NcclCommunicator extends BaseCommunicator {
    private final ncclComm comm;
    private final Device device;
    private final Allocator allocator;
    private final DeviceBuffer scratch;
    private final HostBuffer hostScratch;
    private int splits;

    private NcclCommunicator(CommSpec spec, ncclComm comm, Device device) {
        super(spec);
        this.comm = comm;
        this.device = device;
        this.allocator = Allocator.defaultAllocator();
        this.scratch = allocator.allocateDevice(device, 32L * (spec.size() + 1));
        this.hostScratch = allocator.allocateHost(32L * (spec.size() + 1));
    }

    static Communicator create(CommSpec spec) {
        if (!Device.isCudaAvailable()) {
            throw new CudaUnavailableException("the nccl backend needs a CUDA GPU: " + Device.cudaUnavailableCause());
        }
        loadPresets();
        int ordinal = spec.cudaDevice() >= 0 ? spec.cudaDevice() : spec.rank() % Device.cudaDeviceCount();
        Device dev = Device.cuda(ordinal);
        Rendezvous.claimGeneration(spec);
        Rendezvous.agreeOnMembers(spec);
        byte[] id = new byte[128];
        if (spec.rank() == 0) {
            ncclUniqueId uid = new ncclUniqueId();
            check(nccl.ncclGetUniqueId(uid), "ncclGetUniqueId");
            for (int i = 0; i < 128; i++) {
                id[i] = uid.internal(i);
            }
            spec.generationNamespace().set("nccl-id", Rendezvous.frame(spec, 0, id));
        }
        String key = "runs/" + spec.runId() + "/" + spec.name() + "/gen-" + spec.generation() + "/nccl-id";
        byte[] rec = spec.generationNamespace().get("nccl-id", spec.initTimeout());
        id = Rendezvous.unframe(spec, 0, rec, key);
        if (id.length != 128) {
            throw new CommException("malformed NCCL unique id at key '" + key + "': " + id.length + " bytes, expected 128");
        }
        ncclUniqueId uid = new ncclUniqueId();
        for (int i = 0; i < 128; i++) {
            uid.internal(i, id[i]);
        }
        checkCuda(cudart.cudaSetDevice(ordinal), "cudaSetDevice(" + ordinal + ")");
        ncclComm c = new ncclComm();
        int st = nccl.ncclCommInitRankConfig(c, spec.size(), uid, spec.rank(), nonBlockingConfig());
        if (st != nccl.ncclSuccess && st != nccl.ncclInProgress) {
            check(st, "ncclCommInitRankConfig");
        }
        awaitReady(c, spec.initTimeout().toMillis(), "ncclCommInitRankConfig for " + spec);
        Rendezvous.checkCurrent(spec);
        return new NcclCommunicator(spec, c, dev);
    }

    /** Loads the presets, turning a missing NCCL or cudart into an explanation of what to install. */
    static void loadPresets() {
        try {
            org.bytedeco.javacpp.Loader.load(cudart.class);
            org.bytedeco.javacpp.Loader.load(nccl.class);
        } catch (UnsatisfiedLinkError | NoClassDefFoundError e) {
            String msg = String.valueOf(e.getMessage());
            String missing = msg.contains("nccl") ? "libnccl.so.2" : msg.contains("cudart") ? "libcudart.so.13" : msg;
            throw new TorusException("the nccl backend cannot load " + missing + " (" + msg + "). Provide NCCL 2.2x and "
                    + "the CUDA 13 runtime on the library path: e.g. 'pip install nvidia-nccl-cu13 nvidia-cuda-runtime' and "
                    + "add their lib/ folders to LD_LIBRARY_PATH, or install the libnccl2 and cuda-cudart-13 packages.", e);
        }
    }

    static ncclConfig_t nonBlockingConfig() {
        ncclConfig_t cfg = new ncclConfig_t();
        // NCCL_CONFIG_INITIALIZER: every field undefined, then our choice
        int undef = Integer.MIN_VALUE;
        cfg.size(cfg.sizeof()).magic(0xcafebeef).version(nccl.NCCL_VERSION_CODE);
        cfg.blocking(0).cgaClusterSize(undef).minCTAs(undef).maxCTAs(undef).netName(null).splitShare(undef)
                .trafficClass(undef).commName(null).collnetEnable(undef).CTAPolicy(undef).shrinkShare(undef)
                .nvlsCTAs(undef).nChannelsPerNetPeer(undef).nvlinkCentricSched(undef).graphUsageMode(undef)
                .numRmaCtx(undef);
        return cfg;
    }

    static void awaitReady(ncclComm c, long timeoutMs, String what) {
        long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
        int[] state = new int[1];
        while (true) {
            check(nccl.ncclCommGetAsyncError(c, state), "ncclCommGetAsyncError");
            if (state[0] == nccl.ncclSuccess) {
                return;
            }
            if (state[0] != nccl.ncclInProgress) {
                nccl.ncclCommAbort(c);
                check(state[0], what);
            }
            if (System.nanoTime() > deadline) {
                nccl.ncclCommAbort(c);
                throw new CommTimeoutException(what + " did not finish within " + timeoutMs + " ms; aborted");
            }
            Thread.onSpinWait();
        }
    }

    static void check(int status, String what) {
        if (status == nccl.ncclSuccess) {
            return;
        }
        String detail = nccl.ncclGetErrorString(status).getString();
        if (status == nccl.ncclInProgress) {
            throw new CommException(what + " is still in progress: " + detail);
        }
        if (status == nccl.ncclRemoteError || status == nccl.ncclSystemError) {
            throw new CommAbortedException("peer failure in " + what + ": " + detail);
        }
        throw new CommException(what + " failed: " + detail + " (ncclResult " + status + ")");
    }

    static void checkCuda(int status, String what) {
        if (status != 0) {
            throw new dev.torus.CudaException(what + " failed: " + cudart.cudaGetErrorString(status).getString());
        }
    }

    private static final class Raw extends Pointer {
        Raw(long address) {
            this.address = address;
        }
    }

    private static Pointer ptr(long address) {
        return new Raw(address);
    }

    private CUstream_st streamOf(OpOptions o) {
        Stream s = o != null && o.stream() != null ? o.stream() : Stream.defaultStream(device);
        if (!s.device().equals(device)) {
            throw new IllegalArgumentException("options.stream must be on " + device + ", got one on " + s.device());
        }
        return s.handle() == 0 ? null : new CUstream_st(ptr(s.handle()));
    }

    private Stream javaStream(OpOptions o) {
        return o != null && o.stream() != null ? o.stream() : Stream.defaultStream(device);
    }

    static int ncclType(DType dt) {
        return switch (dt) {
            case FLOAT32 -> nccl.ncclFloat32;
            case FLOAT16 -> nccl.ncclFloat16;
            case BFLOAT16 -> nccl.ncclBfloat16;
            case FLOAT64 -> nccl.ncclFloat64;
            case INT8 -> nccl.ncclInt8;
            case UINT8 -> nccl.ncclUint8;
            case INT32 -> nccl.ncclInt32;
            case INT64 -> nccl.ncclInt64;
        };
    }

    static int ncclOp(ReduceOp op) {
        return switch (op) {
            case SUM -> nccl.ncclSum;
            case PROD -> nccl.ncclProd;
            case MIN -> nccl.ncclMin;
            case MAX -> nccl.ncclMax;
            case AVG -> nccl.ncclAvg;
        };
    }

    /** Runs {@code enqueue} on the stream, then waits for the stream work with the op's deadline. */
    private void runOnStream(OpOptions o, long timeoutMs, String what, Runnable enqueue) {
        checkCuda(cudart.cudaSetDevice(device.ordinal()), "cudaSetDevice");
        Stream s = javaStream(o);
        enqueue.run();
        try (Event done = Event.create(device, false)) {
            done.record(s);
            long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
            int[] state = new int[1];
            while (!done.isCompleted()) {
                check(nccl.ncclCommGetAsyncError(comm, state), "ncclCommGetAsyncError");
                if (state[0] != nccl.ncclSuccess && state[0] != nccl.ncclInProgress) {
                    check(state[0], what);
                }
                if (System.nanoTime() > deadline) {
                    throw new CommTimeoutException(what + " did not complete within " + timeoutMs + " ms");
                }
                Thread.onSpinWait();
            }
        }
    }

    @Override
    public Backend backend() {
        return Backend.NCCL;
    }

    @Override
    void checkTensor(String arg, Tensor t) {
        if (!t.device().equals(device)) {
            throw new IllegalArgumentException(arg + " must be a tensor on " + device + " for this nccl communicator, got "
                    + t.device());
        }
    }

    @Override
    public Work allReduce(Tensor in, Tensor out, ReduceOp op, OpOptions options) {
        requireSameLayout(in, out);
        requireOp(op);
        CUstream_st s = streamOf(options);
        long count = in.numel();
        int n = size();
        return submitCollective(new Fingerprint(OpType.ALL_REDUCE, op.ordinal(), in.dtype(), count, -1), List.of(in, out),
                options, n <= 1 ? 0 : 2 * in.byteSize() * (n - 1) / n, (t, tag) -> runOnStream(options, t, "allReduce",
                        () -> check(nccl.ncclAllReduce(ptr(in.dataAddress()), ptr(out.dataAddress()), count,
                                ncclType(in.dtype()), ncclOp(op), comm, s), "ncclAllReduce")));
    }

    @Override
    public Work broadcast(Tensor in, Tensor out, int root, OpOptions options) {
        requireSameLayout(in, out);
        requireRank("root", root);
        CUstream_st s = streamOf(options);
        long count = in.numel();
        return submitCollective(new Fingerprint(OpType.BROADCAST, -1, in.dtype(), count, root), List.of(in, out), options,
                rank() == root ? in.byteSize() : 0, (t, tag) -> runOnStream(options, t, "broadcast",
                        () -> check(nccl.ncclBroadcast(ptr(in.dataAddress()), ptr(out.dataAddress()), count,
                                ncclType(in.dtype()), root, comm, s), "ncclBroadcast")));
    }

    @Override
    public Work reduce(Tensor in, Tensor out, ReduceOp op, int root, OpOptions options) {
        requireSameLayout(in, out);
        requireRank("root", root);
        requireOp(op);
        CUstream_st s = streamOf(options);
        long count = in.numel();
        return submitCollective(new Fingerprint(OpType.REDUCE, op.ordinal(), in.dtype(), count, root), List.of(in, out),
                options, in.byteSize(), (t, tag) -> runOnStream(options, t, "reduce",
                        () -> check(nccl.ncclReduce(ptr(in.dataAddress()), ptr(out.dataAddress()), count,
                                ncclType(in.dtype()), ncclOp(op), root, comm, s), "ncclReduce")));
    }

    @Override
    public Work allGather(Tensor in, Tensor out, OpOptions options) {
        requirePair(in, out);
        requireNumel("out", out, in.numel() * size(), "size() x in.numel()");
        CUstream_st s = streamOf(options);
        long count = in.numel();
        return submitCollective(new Fingerprint(OpType.ALL_GATHER, -1, in.dtype(), count, -1), List.of(in, out), options,
                in.byteSize() * (size() - 1), (t, tag) -> runOnStream(options, t, "allGather",
                        () -> check(nccl.ncclAllGather(ptr(in.dataAddress()), ptr(out.dataAddress()), count,
                                ncclType(in.dtype()), comm, s), "ncclAllGather")));
    }


    @Override
    public Work allGatherInPlace(Tensor buffer, OpOptions options) {
        requireTensor("buffer", buffer);
        long count = blockCount("buffer", buffer);
        CUstream_st s = streamOf(options);
        long block = count * buffer.dtype().byteSize();
        return submitCollective(new Fingerprint(OpType.ALL_GATHER, -1, buffer.dtype(), count, -1), List.of(buffer),
                options, block * (size() - 1), (t, tag) -> runOnStream(options, t, "allGather",
                        () -> check(nccl.ncclAllGather(ptr(buffer.dataAddress() + rank() * block),
                                ptr(buffer.dataAddress()), count, ncclType(buffer.dtype()), comm, s), "ncclAllGather")));
    }

    @Override
    public Work reduceScatter(Tensor in, Tensor out, ReduceOp op, OpOptions options) {
        requirePair(in, out);
        requireNumel("in", in, out.numel() * size(), "size() x out.numel()");
        requireOp(op);
        CUstream_st s = streamOf(options);
        long count = out.numel();
        return submitCollective(new Fingerprint(OpType.REDUCE_SCATTER, op.ordinal(), in.dtype(), count, -1),
                List.of(in, out), options, out.byteSize() * (size() - 1), (t, tag) -> runOnStream(options, t,
                        "reduceScatter", () -> check(nccl.ncclReduceScatter(ptr(in.dataAddress()),
                                ptr(out.dataAddress()), count, ncclType(in.dtype()), ncclOp(op), comm, s),
                                "ncclReduceScatter")));
    }

    @Override
    public Work reduceScatterInPlace(Tensor buffer, ReduceOp op, OpOptions options) {
        requireTensor("buffer", buffer);
        long count = blockCount("buffer", buffer);
        requireOp(op);
        CUstream_st s = streamOf(options);
        long block = count * buffer.dtype().byteSize();
        return submitCollective(new Fingerprint(OpType.REDUCE_SCATTER, op.ordinal(), buffer.dtype(), count, -1),
                List.of(buffer), options, block * (size() - 1), (t, tag) -> runOnStream(options, t, "reduceScatter",
                        () -> check(nccl.ncclReduceScatter(ptr(buffer.dataAddress()),
                                ptr(buffer.dataAddress() + rank() * block), count, ncclType(buffer.dtype()), ncclOp(op),
                                comm, s), "ncclReduceScatter")));
    }

    private void groupedAllToAll(long in, long out, long count, DType dt, CUstream_st s) {
        long block = count * dt.byteSize();
        check(nccl.ncclGroupStart(), "ncclGroupStart");
        try {
            for (int peer = 0; peer < size(); peer++) {
                check(nccl.ncclSend(ptr(in + peer * block), count, ncclType(dt), peer, comm, s), "ncclSend");
                check(nccl.ncclRecv(ptr(out + peer * block), count, ncclType(dt), peer, comm, s), "ncclRecv");
            }
        } finally {
            check(nccl.ncclGroupEnd(), "ncclGroupEnd");
        }
    }

    @Override
    public Work allToAll(Tensor in, Tensor out, OpOptions options) {
        requireSameLayout(in, out);
        if (in.buffer() == out.buffer()) {
            throw new IllegalArgumentException("out must not be in; use allToAllInPlace");
        }
        long count = blockCount("in", in);
        CUstream_st s = streamOf(options);
        return submitCollective(new Fingerprint(OpType.ALL_TO_ALL, -1, in.dtype(), count, -1), List.of(in, out), options,
                count * in.dtype().byteSize() * (size() - 1), (t, tag) -> runOnStream(options, t, "allToAll",
                        () -> groupedAllToAll(in.dataAddress(), out.dataAddress(), count, in.dtype(), s)));
    }

    @Override
    public Work allToAllInPlace(Tensor buffer, OpOptions options) {
        requireTensor("buffer", buffer);
        long count = blockCount("buffer", buffer);
        Stream js = javaStream(options);
        CUstream_st s = streamOf(options);
        return submitCollective(new Fingerprint(OpType.ALL_TO_ALL, -1, buffer.dtype(), count, -1), List.of(buffer),
                options, count * buffer.dtype().byteSize() * (size() - 1), (t, tag) -> {
                    try (DeviceBuffer copy = allocator.allocateDevice(device, Math.max(1, buffer.byteSize()), js)) {
                        js.copy(buffer.buffer(), 0, copy, 0, buffer.byteSize());
                        runOnStream(options, t, "allToAll",
                                () -> groupedAllToAll(copy.address(), buffer.dataAddress(), count, buffer.dtype(), s));
                    }
                });
    }

    @Override
    public Work send(Tensor tensor, int dst, int tag, OpOptions options) {
        requireTensor("tensor", tensor);
        requireRank("dst", dst);
        if (dst == rank()) {
            throw new IllegalArgumentException("dst must differ from this rank (" + rank() + ")");
        }
        if (tag < 0) {
            throw new IllegalArgumentException("tag must be >= 0, got " + tag);
        }
        CUstream_st s = streamOf(options);
        return submitP2P(OpType.SEND, dst, tensor.dtype(), tensor.numel(), List.of(tensor), options, tensor.byteSize(),
                (t, seq) -> runOnStream(options, t, "send", () -> {
                    check(nccl.ncclGroupStart(), "ncclGroupStart");
                    try {
                        check(nccl.ncclSend(ptr(tensor.dataAddress()), tensor.numel(), ncclType(tensor.dtype()), dst,
                                comm, s), "ncclSend");
                    } finally {
                        check(nccl.ncclGroupEnd(), "ncclGroupEnd");
                    }
                }));
    }

    @Override
    public Work recv(Tensor tensor, int src, int tag, OpOptions options) {
        requireTensor("tensor", tensor);
        requireRank("src", src);
        if (src == rank()) {
            throw new IllegalArgumentException("src must differ from this rank (" + rank() + ")");
        }
        if (tag < 0) {
            throw new IllegalArgumentException("tag must be >= 0, got " + tag);
        }
        CUstream_st s = streamOf(options);
        return submitP2P(OpType.RECV, src, tensor.dtype(), tensor.numel(), List.of(tensor), options, 0,
                (t, seq) -> runOnStream(options, t, "recv", () -> {
                    check(nccl.ncclGroupStart(), "ncclGroupStart");
                    try {
                        check(nccl.ncclRecv(ptr(tensor.dataAddress()), tensor.numel(), ncclType(tensor.dtype()), src,
                                comm, s), "ncclRecv");
                    } finally {
                        check(nccl.ncclGroupEnd(), "ncclGroupEnd");
                    }
                }));
    }

    @Override
    public Work barrier(OpOptions options) {
        CUstream_st s = streamOf(options);
        return submitCollective(new Fingerprint(OpType.BARRIER, -1, null, 0, -1), List.of(), options, 0,
                (t, tag) -> runOnStream(options, t, "barrier", () -> check(nccl.ncclAllReduce(ptr(scratch.address()),
                        ptr(scratch.address()), 1, nccl.ncclInt32, nccl.ncclSum, comm, s), "ncclAllReduce(barrier)")));
    }

    @Override
    void rawAllToAll(long in, long out, long countPerRank, DType dt, long timeoutMs, long tag) {
        runOnStream(null, timeoutMs, "allToAll", () -> groupedAllToAll(in, out, countPerRank, dt, streamOf(null)));
    }

    @Override
    void rawAllGather(long in, long out, long countPerRank, DType dt, long timeoutMs, long tag) {
        runOnStream(null, timeoutMs, "allGather", () -> check(nccl.ncclAllGather(ptr(in), ptr(out), countPerRank,
                ncclType(dt), comm, streamOf(null)), "ncclAllGather"));
    }

    @Override
    long[][] exchangeFingerprints(long[] mine, long tag, long timeoutMs) {
        int n = size();
        ByteBuffer h = hostScratch.view(0, 32L * (n + 1)).order(ByteOrder.nativeOrder());
        packFingerprint(h, n, mine);
        Stream s = Stream.defaultStream(device);
        s.copy(hostScratch, 32L * n, scratch, 32L * n, 32);
        rawAllGather(scratch.address() + 32L * n, scratch.address(), 4, DType.INT64, timeoutMs, tag);
        s.copy(scratch, 0, hostScratch, 0, 32L * n);
        s.synchronize();
        return unpackFingerprints(h, n);
    }

    @Override
    void nativeAbort(String reason) {
        nccl.ncclCommAbort(comm);
    }

    @Override
    boolean nativeDestroy(long waitMs) {
        if (!isAborted()) {
            nccl.ncclCommFinalize(comm);
            awaitReadyQuietly();
            nccl.ncclCommDestroy(comm);
        }
        scratch.close();
        hostScratch.close();
        return true;
    }

    private void awaitReadyQuietly() {
        try {
            awaitReady(comm, spec.timeout().toMillis(), "ncclCommFinalize");
        } catch (CommException e) {
            // already aborted by awaitReady
        }
    }

    /** ncclCommShrink with NCCL_SHRINK_ABORT: in-flight work on the parent is revoked, not waited for. */
    @Override
    public Communicator shrink(int... excluded) {
        CommSpec next = survivorSpec(excluded);
        Rendezvous.claimGeneration(next);
        Rendezvous.agreeOnMembers(next);
        checkCuda(cudart.cudaSetDevice(device.ordinal()), "cudaSetDevice");
        ncclComm child = new ncclComm();
        int st = nccl.ncclCommShrink(comm, excluded, excluded.length, child, nonBlockingConfig(), nccl.NCCL_SHRINK_ABORT);
        if (st != nccl.ncclSuccess && st != nccl.ncclInProgress) {
            check(st, "ncclCommShrink");
        }
        awaitReady(child, spec.initTimeout().toMillis(), "ncclCommShrink");
        abortForRebuild("shrunk to exclude ranks " + java.util.Arrays.toString(excluded));
        return new NcclCommunicator(next, child, device);
    }

    @Override
    Communicator rebuild(CommSpec next) {
        // never called: NCCL overrides shrink() and split() with ncclCommShrink and ncclCommSplit
        throw new UnsupportedOperationException("internal: NCCL rebuilds go through shrink() and split()");
    }

    @Override
    public Communicator split(int color, int key) {
        ensureOpen();
        checkCuda(cudart.cudaSetDevice(device.ordinal()), "cudaSetDevice");
        ncclComm child = new ncclComm();
        int c = color < 0 ? nccl.NCCL_SPLIT_NOCOLOR : color;
        int st = nccl.ncclCommSplit(comm, c, key, child, nonBlockingConfig());
        if (st != nccl.ncclSuccess && st != nccl.ncclInProgress) {
            check(st, "ncclCommSplit");
        }
        if (color < 0) {
            awaitReady(comm, spec.initTimeout().toMillis(), "ncclCommSplit (no color)");
            return null;
        }
        awaitReady(child, spec.initTimeout().toMillis(), "ncclCommSplit");
        int[] n = new int[1];
        int[] r = new int[1];
        check(nccl.ncclCommCount(child, n), "ncclCommCount");
        check(nccl.ncclCommUserRank(child, r), "ncclCommUserRank");
        int[] ids = new int[n[0]];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = i; // NCCL does not report the parent ranks; members are numbered within the split
        }
        int k;
        synchronized (this) {
            k = ++splits;
        }
        CommSpec childSpec = spec.child(spec.name() + "/split-" + k + "/color-" + color, r[0], ids);
        return new NcclCommunicator(childSpec, child, device);
    }
}
