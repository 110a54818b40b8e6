package dev.torus.comm;

import static dev.torus.internal.NativeAccess.TOKEN;

import dev.torus.CudaUnavailableException;
import dev.torus.DType;
import dev.torus.Device;
import dev.torus.tensor.Tensor;
import dev.torus.memory.Allocator;
import dev.torus.memory.DeviceBuffer;
import dev.torus.memory.HostBuffer;
import dev.torus.memory.Stream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * NCCL backend: CUDA tensors, through the bytedeco CUDA presets ({@link NcclLibrary}).
 * This class is loaded only after {@link Device#isCudaAvailable()} says a GPU is present,
 * so the presets' native libraries are never touched on a CPU-only machine.
 *
 * <p>The communicator is non-blocking ({@code blocking = 0}, see docs/DECISIONS.md) and
 * wrapped in an {@link NcclHandle}, which serializes every NCCL call on it and makes
 * abort and destroy safe against a pending poll. Every NCCL call runs on the collective
 * lane, in issue order: collectives, send/recv, split and the finalize at close; only
 * {@code ncclCommAbort} comes from other threads, through the handle's lock. Operations
 * run on the communicator's own stream, ordered after the caller's stream by events
 * ({@link NcclOpRunner}).
 *
 * <p>Send and recv are deferred, like PyTorch's {@code batch_isend_irecv}: every send and
 * recv submitted since the last flush goes to NCCL in one {@code ncclGroupStart/End}
 * when any of their {@link Work}s is first queried or awaited, or when another operation
 * is submitted, so an exchange where both sides send first cannot deadlock. NCCL has no
 * tags; a non-zero tag is refused.
 *
 * <p>Owns the {@code ncclComm_t}, its stream and events, and a small device scratch
 * buffer; all are released by {@link #close()}. Thread-safe like every
 * {@link Communicator}.
 *
 * <p>Status: written against NCCL 2.29; its state logic is tested on CPU with a scripted
 * driver, but it has not yet run on a GPU (see docs/COLLECTIVES.md).
 */
final class NcclCommunicator extends BaseCommunicator {
    private static final Logger LOG = LoggerFactory.getLogger(NcclCommunicator.class);

    private final NcclDriver driver;
    private final NcclHandle handle;
    private final NcclOpRunner runner;
    private final int ordinal;
    private final Device device;
    private final Allocator allocator;
    private final DeviceBuffer scratch;
    private final HostBuffer hostScratch;
    private final NcclP2pQueue p2p = new NcclP2pQueue(new P2pTarget());

    /** Takes ownership of the runner and scratch buffers, made by {@link #assemble} before any base state exists. */
    private NcclCommunicator(CommSpec spec, NcclDriver driver, NcclHandle handle, int ordinal, NcclOpRunner runner,
                             DeviceBuffer scratch, HostBuffer hostScratch) {
        super(spec);
        this.driver = driver;
        this.handle = handle;
        this.ordinal = ordinal;
        this.device = Device.cuda(ordinal);
        this.runner = runner;
        this.allocator = Allocator.defaultAllocator();
        this.scratch = scratch;
        this.hostScratch = hostScratch;
    }

    /**
     * Makes the stream, events and scratch buffers first, so that a failure there leaves no
     * lane thread or watchdog entry behind (the base constructor starts those).
     */
    private static NcclCommunicator assemble(CommSpec spec, NcclDriver driver, NcclHandle h, int ordinal) {
        Allocator a = Allocator.defaultAllocator();
        NcclOpRunner runner = null;
        DeviceBuffer scratch = null;
        HostBuffer hostScratch = null;
        try {
            runner = new NcclOpRunner(driver, h, ordinal);
            scratch = a.allocateDevice(Device.cuda(ordinal), 32L * (spec.size() + 1));
            hostScratch = a.allocateHost(32L * (spec.size() + 1));
            return new NcclCommunicator(spec, driver, h, ordinal, runner, scratch, hostScratch);
        } catch (RuntimeException e) {
            if (hostScratch != null) {
                hostScratch.close();
            }
            if (scratch != null) {
                scratch.close();
            }
            if (runner != null) {
                runner.close();
            }
            throw e;
        }
    }

    static Communicator create(CommSpec spec) {
        return create(spec, System.nanoTime() + spec.initTimeout().toNanos());
    }

    /** {@link #create(CommSpec)} against a deadline that the caller started earlier (store connection included). */
    static Communicator create(CommSpec spec, long deadline) {
        if (!Device.isCudaAvailable()) {
            throw new CudaUnavailableException("the nccl backend needs a CUDA GPU: " + Device.cudaUnavailableCause());
        }
        int ordinal = resolveOrdinal(spec.cudaDevice(), System.getenv("LOCAL_RANK"), spec.rank(), spec.size(),
                Device.cudaDeviceCount());
        return init(spec, NcclLibrary.get(), ordinal, deadline);
    }

    /**
     * The CUDA device of this process: {@code cudaDevice(...)} if set, else
     * {@code LOCAL_RANK} (what torusrun and torchrun set), else the rank when the whole
     * world fits on this node's GPUs. Anything else is refused, naming the source.
     */
    static int resolveOrdinal(int configured, String localRank, int rank, int size, int deviceCount) {
        int ordinal;
        String source;
        if (configured >= 0) {
            ordinal = configured;
            source = "cudaDevice";
        } else if (localRank != null && !localRank.isBlank()) {
            try {
                ordinal = Integer.parseInt(localRank.trim());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("environment variable LOCAL_RANK must be an integer, got '"
                        + localRank + "'");
            }
            if (ordinal < 0) {
                throw new IllegalArgumentException("environment variable LOCAL_RANK must be >= 0, got " + ordinal);
            }
            source = "LOCAL_RANK";
        } else if (size <= deviceCount) {
            ordinal = rank;
            source = "rank (no LOCAL_RANK set, so one node is assumed)";
        } else {
            throw new IllegalArgumentException("LOCAL_RANK must be set (or cudaDevice(...) chosen) for the nccl backend: "
                    + "world size " + size + " exceeds the " + deviceCount + " CUDA device(s) this process sees, so rank "
                    + rank + " does not name a device");
        }
        if (ordinal >= deviceCount) {
            throw new IllegalArgumentException(source + " = " + ordinal + " must name a CUDA device in [0, " + deviceCount
                    + ") (this process sees " + deviceCount + "; check CUDA_VISIBLE_DEVICES)");
        }
        return ordinal;
    }

    /** NCCL matches sends and receives by order, so only tag 0 has a meaning. */
    static int requireTag(int tag) {
        if (tag != 0) {
            throw new IllegalArgumentException("tag must be 0 on the nccl backend (NCCL matches send and recv by their "
                    + "order per peer and has no tags), got " + tag);
        }
        return tag;
    }

    static NcclCommunicator init(CommSpec spec, NcclDriver driver, int ordinal) {
        return init(spec, driver, ordinal, System.nanoTime() + spec.initTimeout().toNanos());
    }

    /**
     * Rendezvous, unique-id exchange through the store, then a polled non-blocking init,
     * all against one deadline.
     */
    static NcclCommunicator init(CommSpec spec, NcclDriver driver, int ordinal, long deadline) {
        Rendezvous.claimGeneration(spec, deadline);
        Rendezvous.agreeOnMembers(spec, deadline);
        // every rank claims its rank with a signed record (NCCL's own exchange is rank 0's id
        // only), so that a duplicate or a process without the secret is refused here
        Rendezvous.exchange(spec, "nccl-rank", FailureDiagnosis.processId().getBytes(
                java.nio.charset.StandardCharsets.US_ASCII), deadline);
        byte[] id = new byte[NcclDriver.UNIQUE_ID_BYTES];
        if (spec.rank() == 0) {
            int st = driver.getUniqueId(id);
            if (st != NcclDriver.SUCCESS) {
                throw NcclHandle.failure(driver, st, "ncclGetUniqueId");
            }
            byte[] framed = Rendezvous.frame(spec, "nccl-id", 0, id);
            byte[] stored = BoundedCalls.within(() -> spec.generationNamespace().compareSet("nccl-id", null, framed),
                    deadline, "publishing the NCCL unique id", "initTimeout (" + spec.initTimeout().toMillis() + " ms)");
            if (!java.util.Arrays.equals(stored, framed)) {
                throw new DuplicateRankException(0, "rank 0 of " + spec + " found an NCCL unique id already published "
                        + "for this generation: another process claimed rank 0; refusing to overwrite it");
            }
        }
        String key = "runs/" + spec.runId() + "/" + spec.name() + "/gen-" + spec.generation() + "/nccl-id";
        byte[] rec = BoundedCalls.within(() -> spec.generationNamespace().get("nccl-id", Rendezvous.remaining(deadline)),
                deadline + 200_000_000L, "waiting for rank 0's NCCL unique id", "initTimeout ("
                        + spec.initTimeout().toMillis() + " ms)");
        id = Rendezvous.unframe(spec, "nccl-id", 0, rec, key);
        if (id.length != NcclDriver.UNIQUE_ID_BYTES) {
            throw new CommException("malformed NCCL unique id at key '" + key + "': " + id.length + " bytes, expected "
                    + NcclDriver.UNIQUE_ID_BYTES);
        }
        byte[] uid = id;
        NcclHandle h = withDevice(driver, ordinal, () -> {
            long[] c = new long[1];
            int st = driver.commInitRank(c, spec.size(), uid, spec.rank());
            return NcclHandle.open(driver, handleName(spec), "ncclCommInitRankConfig for " + spec, st, c[0], deadline);
        });
        try {
            Rendezvous.checkCurrent(spec, deadline);
            return assemble(spec, driver, h, ordinal);
        } catch (RuntimeException e) {
            h.abort();
            throw e;
        }
    }

    private static String handleName(CommSpec spec) {
        return "'" + spec.name() + "' gen " + spec.generation() + " rank " + spec.rank() + "/" + spec.size();
    }

    /** Runs {@code body} with {@code ordinal} current on this thread, then restores the caller's device. */
    private static <T> T withDevice(NcclDriver driver, int ordinal, Supplier<T> body) {
        int[] prev = new int[1];
        boolean restore = driver.getDevice(prev) == NcclDriver.CUDA_SUCCESS && prev[0] != ordinal;
        int st = driver.setDevice(ordinal);
        if (st != NcclDriver.CUDA_SUCCESS) {
            throw new dev.torus.CudaException("cudaSetDevice(" + ordinal + ") failed: " + driver.cudaErrorString(st));
        }
        try {
            return body.get();
        } finally {
            if (restore) {
                driver.setDevice(prev[0]);
            }
        }
    }

    /** The caller's stream, or this device's default stream; it must be on this communicator's device. */
    @Override
    Stream producerStream(OpOptions o) {
        Stream s = o != null && o.stream() != null ? o.stream() : Stream.defaultStream(device);
        if (!s.device().equals(device)) {
            throw new IllegalArgumentException("options.stream must be on " + device + ", got one on " + s.device());
        }
        return s;
    }

    /**
     * Runs {@code calls} after the producer stream's queued work (the device's default
     * stream when {@code null}); see {@link NcclOpRunner#run}.
     */
    private void run(String what, long timeoutMs, Stream producer, NcclOpRunner.Call... calls) {
        Stream p = producer != null ? producer : Stream.defaultStream(device);
        runner.run(what, timeoutMs, new long[] {p.handle(TOKEN)}, calls);
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

    /** Deferred sends and receives go first, so NCCL sees operations in the order they were submitted. */
    @Override
    Work submitCollective(Fingerprint fp, List<Tensor> tensors, OpOptions options, long wireBytes, NativeOp op) {
        p2p.flush();
        return super.submitCollective(fp, tensors, options, wireBytes, op);
    }

    /** NCCL forbids concurrent calls on one communicator: send/recv share the collective lane. */
    @Override
    Lane p2pLane(String lane) {
        return collectiveLane;
    }

    @Override
    void nativeAllReduce(long in, long out, long count, DType dt, ReduceOp op, Stream producer, long timeoutMs,
                         long tag) {
        run("ncclAllReduce", timeoutMs, producer, (c, st) -> driver.allReduce(in, out, count, dt, op, c, st));
    }

    @Override
    void nativeBroadcast(long in, long out, long count, DType dt, int root, Stream producer, long timeoutMs,
                         long tag) {
        run("ncclBroadcast", timeoutMs, producer, (c, st) -> driver.broadcast(in, out, count, dt, root, c, st));
    }

    @Override
    void nativeReduce(long in, long out, long count, DType dt, ReduceOp op, int root, Stream producer,
                      long timeoutMs, long tag) {
        run("ncclReduce", timeoutMs, producer, (c, st) -> driver.reduce(in, out, count, dt, op, root, c, st));
    }

    @Override
    void nativeAllGather(long in, long out, long count, DType dt, Stream producer, long timeoutMs, long tag) {
        run("ncclAllGather", timeoutMs, producer, (c, st) -> driver.allGather(in, out, count, dt, c, st));
    }

    @Override
    void nativeReduceScatter(long in, long out, long count, DType dt, ReduceOp op, Stream producer, long timeoutMs,
                             long tag) {
        run("ncclReduceScatter", timeoutMs, producer, (c, st) -> driver.reduceScatter(in, out, count, dt, op, c, st));
    }

    /** One send and one recv per peer, issued as one NCCL group. */
    @Override
    void nativeAllToAll(long in, long out, long count, DType dt, Stream producer, long timeoutMs, long tag) {
        long block = count * dt.byteSize();
        NcclOpRunner.Call[] calls = new NcclOpRunner.Call[2 * size()];
        for (int peer = 0; peer < size(); peer++) {
            int p = peer;
            calls[2 * p] = (c, st) -> driver.send(in + p * block, count, dt, p, c, st);
            calls[2 * p + 1] = (c, st) -> driver.recv(out + p * block, count, dt, p, c, st);
        }
        run("allToAll", timeoutMs, producer, calls);
    }

    @Override
    void nativeAllToAllInPlace(Tensor buffer, long count, DType dt, Stream producer, long timeoutMs, long tag) {
        // allocated and freed on the producer stream, which waits for the collective before the free (NcclOpRunner)
        try (DeviceBuffer copy = allocator.allocateDevice(device, Math.max(1, buffer.byteSize()), producer)) {
            producer.copy(buffer.buffer(), 0, copy, 0, buffer.byteSize());
            nativeAllToAll(copy.address(TOKEN), buffer.dataAddress(TOKEN), count, dt, producer, timeoutMs, tag);
        }
    }

    @Override
    void nativeBarrier(Stream producer, long timeoutMs, long tag) {
        run("ncclAllReduce(barrier)", timeoutMs, producer, (c, st) -> driver.allReduce(scratch.address(TOKEN),
                scratch.address(TOKEN), 1, DType.INT32, ReduceOp.SUM, c, st));
    }

    // ------------------------------------------------------------------ send / recv

    /** Deferred into the next NCCL group (see the class comment); NCCL has no tags, so only 0 is accepted. */
    @Override
    Work submitPointToPoint(OpType type, Tensor tensor, int peer, int tag, Stream producer, OpOptions options) {
        requireTag(tag);
        Duration timeout = timeoutOf(options);
        ensureOpen();
        String desc = type.label() + (type == OpType.SEND ? " to rank " : " from rank ") + peer + " of "
                + tensor.numel() + " x " + tensor.dtype() + " (nccl, comm '" + name() + "', rank " + rank() + ")";
        tensor.buffer().pin(desc);
        return p2p.defer(type, peer, new P2pArgs(tensor, options, producer), tensor.buffer()::unpin, desc, timeout);
    }

    /** A deferred send's or recv's tensor, options and producer stream. */
    private record P2pArgs(Tensor tensor, OpOptions options, Stream producer) {}

    /** Hands deferred send/recv to the lane; issues a flushed group as one NCCL group. */
    private final class P2pTarget implements NcclP2pQueue.Target {
        @Override
        public Work submit(NcclP2pQueue.Deferred d, NcclP2pQueue.Group group) {
            P2pArgs a = (P2pArgs) d.payload;
            Tensor t = a.tensor();
            return submitP2P(d.type, d.peer, t.dtype(), t.numel(), List.of(t), a.options(),
                    p2pWireBytes(d.type, t), (timeoutMs, seq) -> group.runFor(timeoutMs));
        }

        @Override
        public void issue(List<NcclP2pQueue.Deferred> live, long timeoutMs) {
            long[] producers = live.stream().mapToLong(d -> ((P2pArgs) d.payload).producer().handle(TOKEN)).distinct()
                    .toArray();
            NcclOpRunner.Call[] calls = new NcclOpRunner.Call[live.size()];
            for (int i = 0; i < calls.length; i++) {
                NcclP2pQueue.Deferred d = live.get(i);
                Tensor t = ((P2pArgs) d.payload).tensor();
                long addr = t.dataAddress(TOKEN);
                long count = t.numel();
                DType dt = t.dtype();
                int peer = d.peer;
                calls[i] = d.type == OpType.SEND ? (c, st) -> driver.send(addr, count, dt, peer, c, st)
                        : (c, st) -> driver.recv(addr, count, dt, peer, c, st);
            }
            runner.run("send/recv group of " + calls.length, timeoutMs, producers, calls);
        }
    }

    @Override
    long[][] exchangeFingerprints(long[] mine, long tag, long timeoutMs) {
        int n = size();
        ByteBuffer h = hostScratch.view(0, 32L * (n + 1)).order(ByteOrder.nativeOrder());
        Fingerprint.pack(h, n, mine);
        Stream s = Stream.defaultStream(device);
        s.copy(hostScratch, 32L * n, scratch, 32L * n, 32);
        rawAllGather(scratch.address(TOKEN) + 32L * n, scratch.address(TOKEN), 4, DType.INT64, timeoutMs, tag);
        s.copy(scratch, 0, hostScratch, 0, 32L * n);
        s.synchronize();
        return Fingerprint.unpack(h, n);
    }

    // ------------------------------------------------------------------ abort and close

    @Override
    void nativeAbort(String reason) {
        handle.abort();
    }

    /** A no-op once the communicator has been closed. */
    @Override
    public void abort(String reason) {
        if (handle.state() == NcclHandle.State.DESTROYED || scratch.isClosed()) {
            return;
        }
        super.abort(reason);
        p2p.flush(); // deferred sends and receives fail at once, as aborted
    }

    @Override
    public void close() {
        try {
            p2p.flush(); // pending deferred operations are then aborted by close like any other
        } catch (RuntimeException e) {
            LOG.debug("rank {}: flushing deferred send/recv at close: {}", rank(), e.toString());
        }
        super.close();
    }

    /**
     * Finalizes and frees the communicator once every lane has stopped. When a lane did not
     * stop ({@code waitMs == 0}: a native call may still poll the stream, the events or the
     * scratch buffers), it only aborts, and leaks the rest rather than free it under that call.
     */
    @Override
    boolean nativeDestroy(long waitMs) {
        if (waitMs == 0) {
            handle.abort();
            return false;
        }
        try {
            NcclHandle.State s = runner.onDevice(() -> handle.release(spec.timeout().toMillis()));
            if (s == NcclHandle.State.ABORTED && !isAborted()) {
                LOG.warn("rank {}: ncclCommFinalize of {} did not finish within {} ms; aborted instead", rank(),
                        spec.name(), spec.timeout().toMillis());
            }
            runner.close();
        } finally {
            scratch.close();
            hostScratch.close();
        }
        return true;
    }

    // ------------------------------------------------------------------ shrink and split

    /**
     * A shrink (from {@link BaseCommunicator#shrink}, after the parent is aborted)
     * initializes the survivors afresh through the store in the next generation: after a
     * failure, some survivors' parents are aborted and some not, and
     * {@code ncclCommShrink} needs a live parent on every one of them.
     */
    @Override
    Communicator rebuild(CommSpec next) {
        return init(next, driver, ordinal);
    }

    /**
     * A split calls {@code ncclCommSplit} on the collective lane, every member, a member
     * without a color included, and checks that NCCL placed this rank where the store's
     * exchange says (members ordered by key, then by parent rank).
     */
    @Override
    Communicator joinSplit(CommSpec child, int color, int key) {
        if (child == null) {
            onCollectiveLane("ncclCommSplit", spec.initTimeout(),
                    () -> runner.onDevice(() -> splitHandle(color, key, null)));
            return null;
        }
        NcclHandle h = onCollectiveLane("ncclCommSplit", spec.initTimeout(),
                () -> runner.onDevice(() -> splitHandle(color, key, child)));
        try {
            return assemble(child, driver, h, ordinal);
        } catch (RuntimeException e) {
            h.abort();
            throw e;
        }
    }

    /** {@code ncclCommSplit} on the parent, settled; {@code null} for a rank without a color. */
    private NcclHandle splitHandle(int color, int key, CommSpec next) {
        long deadline = System.nanoTime() + spec.initTimeout().toNanos();
        long[] out = new long[1];
        int st = handle.call("ncclCommSplit", c -> driver.commSplit(c, color, key, out));
        if (next == null) {
            handle.settle(st, "ncclCommSplit (no color)", deadline);
            return null;
        }
        NcclHandle child = NcclHandle.open(driver, handleName(next), "ncclCommSplit(color " + color + ")", st, out[0],
                deadline);
        try {
            handle.awaitSettled("ncclCommSplit", deadline);
            int[] n = new int[1];
            int[] r = new int[1];
            child.issue("ncclCommCount", deadline, c -> driver.commCount(c, n));
            child.issue("ncclCommUserRank", deadline, c -> driver.commUserRank(c, r));
            checkSplitPlacement(n[0], r[0], next.size(), next.rank(), next.toString());
            return child;
        } catch (RuntimeException e) {
            child.abort();
            throw e;
        }
    }

    /** NCCL's child must match the members the store exchange computed, or ranks would be mislabelled. */
    static void checkSplitPlacement(int ncclCount, int ncclRank, int size, int rank, String child) {
        if (ncclCount != size || ncclRank != rank) {
            throw new CommException("ncclCommSplit placed this rank at " + ncclRank + " of " + ncclCount
                    + ", but the members agreed through the store put it at " + rank + " of " + size + " (" + child + ")");
        }
    }

    /** Runs {@code body} on the collective lane after every operation submitted before it. */
    private <T> T onCollectiveLane(String what, Duration timeout, Supplier<T> body) {
        p2p.flush();
        CompletableFuture<T> f = new CompletableFuture<>();
        Lane.Task task;
        try {
            task = collectiveLane.submit(() -> {
                try {
                    f.complete(body.get());
                } catch (RuntimeException | Error e) {
                    f.completeExceptionally(e);
                }
            });
        } catch (RejectedExecutionException e) {
            throw new IllegalStateException("communicator " + spec.name() + " is closed", e);
        }
        collectiveLane.helpRun(task);
        try {
            // the lane may first finish the operations queued before this one, each within its own timeout
            return f.get(timeout.toMillis() + spec.timeout().toMillis() + 2000, TimeUnit.MILLISECONDS);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            throw new CommException(what + " failed: " + e.getCause(), e.getCause());
        } catch (TimeoutException e) {
            throw new CommTimeoutException(what + " did not get to run on the collective lane of " + this);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CommException("interrupted while waiting for " + what + " on " + this);
        }
    }
}
