package dev.torus.comm;

import static dev.torus.internal.NativeAccess.TOKEN;

import dev.torus.DType;
import dev.torus.NativeStatus;
import dev.torus.tensor.Tensor;
import dev.torus.TorusException;
import dev.torus.jni.GlooNative;
import dev.torus.memory.Allocator;
import dev.torus.memory.HostBuffer;
import dev.torus.memory.Stream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

/**
 * Gloo backend: CPU tensors over Gloo's TCP transport. Owns its native context and
 * a small scratch buffer for debug fingerprints, both freed by {@link #close()}.
 */
final class GlooCommunicator extends BaseCommunicator {
    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(GlooCommunicator.class);
    /**
     * AUTO: bcube below this many bytes, ring at and above. Halving-doubling is never
     * picked automatically: it stalled for 50-80 ms at some sizes in our measurements
     * (docs/COLLECTIVES.md).
     */
    static final long AUTO_RING_THRESHOLD = 2L * 1024 * 1024;

    private final NativeHandle handle;
    private final Allocator scratchAllocator;
    private final HostBuffer fingerprintScratch;
    private final SharedMemorySetup.Layout layout;

    /** Takes ownership of {@code handle} and of the fingerprint buffer (made before any base state exists). */
    private GlooCommunicator(CommSpec spec, NativeHandle handle, HostBuffer fingerprintScratch,
                             SharedMemorySetup.Layout layout) {
        super(spec);
        this.handle = handle;
        this.layout = layout;
        this.scratchAllocator = Allocator.defaultAllocator();
        this.fingerprintScratch = fingerprintScratch;
    }

    static void loadNative() {
        try {
            GlooNative.load();
        } catch (UnsatisfiedLinkError e) {
            throw new TorusException("the Gloo backend cannot load: " + e.getMessage()
                    + ". It needs libgloo.so.0 (Debian/Ubuntu: 'apt-get install libgloo0'; the GPU-host bundle ships it"
                    + " in its lib/ folder).", e);
        }
    }

    /** Aborts connections that outlive their communicator's initTimeout. */
    static final ScheduledExecutorService INIT_TIMER = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "torus-gloo-init-timer");
        t.setDaemon(true);
        return t;
    });

    /**
     * Forms one generation: rendezvous through the store, then Gloo's pairwise connect.
     * The whole of it runs against one deadline, {@code spec.initTimeout()} from the call:
     * every store wait gets what is left of it, and a connect still running at the
     * deadline is aborted.
     */
    static GlooCommunicator create(CommSpec spec) {
        return create(spec, System.nanoTime() + spec.initTimeout().toNanos());
    }

    /** {@link #create(CommSpec)} against a deadline that the caller started earlier (store connection included). */
    static GlooCommunicator create(CommSpec spec, long deadline) {
        loadNative();
        Rendezvous.claimGeneration(spec, deadline);
        Rendezvous.agreeOnMembers(spec, deadline);
        long[] out = new long[1];
        check(GlooNative.torus_gloo_create(spec.rank(), spec.size(), spec.hostname(),
                Rendezvous.remaining(deadline).toMillis(), out),
                "create the Gloo context for " + spec);
        NativeHandle handle = new NativeHandle(out[0], spec.toString());
        ScheduledFuture<?> timer = null;
        try {
            long h = out[0];
            long[] ab = new long[1];
            check(GlooNative.torus_gloo_address_bytes(h, ab), "address size");
            int per = (int) ab[0];
            // the record: every pair's address, a random nonce that the handshake after connect
            // checks, the digest of this rank's host id (which ranks share memory), and this rank's
            // transport settings, which every rank must share
            int at = per * spec.size();
            int record = at + RECORD_TAIL;
            byte[] mine = new byte[record];
            check(GlooNative.torus_gloo_local_addresses(h, mine, at), "local addresses");
            long nonce = NONCES.nextLong();
            long slotBytes = SharedMemorySetup.slotBytes();
            ByteBuffer.wrap(mine, at, 8).order(ByteOrder.BIG_ENDIAN).putLong(nonce);
            System.arraycopy(HostIdentity.digest(), 0, mine, at + 8, 32);
            mine[at + 40] = (byte) spec.transport().ordinal();
            ByteBuffer.wrap(mine, at + 41, 8).order(ByteOrder.BIG_ENDIAN).putLong(slotBytes);
            byte[][] all = Rendezvous.exchange(spec, "gloo-addr", mine, deadline);
            byte[] remote = new byte[per * spec.size()];
            long[] nonces = new long[spec.size()];
            byte[][] hostIds = new byte[spec.size()][];
            for (int r = 0; r < spec.size(); r++) {
                if (all[r].length != record) {
                    throw new CommException("malformed Gloo address record of rank " + r + " for " + spec + ": "
                            + all[r].length + " bytes, expected " + record);
                }
                nonces[r] = ByteBuffer.wrap(all[r], per * spec.size(), 8).order(ByteOrder.BIG_ENDIAN).getLong();
                hostIds[r] = Arrays.copyOfRange(all[r], at + 8, at + 40);
                int theirTransport = all[r][at + 40];
                long theirSlot = ByteBuffer.wrap(all[r], at + 41, 8).order(ByteOrder.BIG_ENDIAN).getLong();
                if (theirTransport != spec.transport().ordinal() || theirSlot != slotBytes) {
                    String t = theirTransport >= 0 && theirTransport < Transport.values().length
                            ? Transport.values()[theirTransport].name().toLowerCase() : "code " + theirTransport;
                    throw new CommException("rank " + r + " of " + spec + " runs with TORUS_TRANSPORT=" + t
                            + " and TORUS_SHM_SLOT_BYTES=" + theirSlot + ", this rank (" + spec.rank() + ") with "
                            + spec.transport().name().toLowerCase() + " and " + slotBytes
                            + ": every rank of a communicator must use the same transport settings");
                }
                if (r != spec.rank()) {
                    System.arraycopy(all[r], spec.rank() * per, remote, r * per, per);
                }
            }
            String late = "connecting did not finish within initTimeout (" + spec.initTimeout().toMillis() + " ms)";
            timer = INIT_TIMER.schedule(() -> handle.abort(a -> GlooNative.torus_gloo_abort(a, late)),
                    Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
            int status = handle.use("connect", a -> GlooNative.torus_gloo_connect(a, remote, remote.length));
            // cancel() fails when the abort has already started: the deadline has passed either way
            if (!timer.cancel(false) || handle.isAborted()) {
                throw new CommTimeoutException("rank " + spec.rank() + " of " + spec + ": " + late);
            }
            try {
                check(status, "connect rank " + spec.rank() + " of " + spec);
            } catch (CommException e) {
                throw new CommAbortedException(e.getMessage() + " (if run id '" + spec.runId() + "' was used before, "
                        + "a peer's address record may be a stale one from that run: use a fresh TORUS_RUN_ID)");
            }
            handshake(spec, handle, nonces, deadline);
            // a second claimant of some rank that arrived while we connected fails everyone
            BoundedCalls.within(() -> {
                Rendezvous.checkNoDuplicates(spec, "gloo-addr");
                return null;
            }, deadline, "checking for duplicate rank claims in " + spec, "initTimeout (" + spec.initTimeout().toMillis()
                    + " ms)");
            Rendezvous.checkCurrent(spec, deadline);
            SharedMemorySetup.Layout layout = SharedMemorySetup.attach(spec, handle, hostIds, nonces, deadline);
            HostBuffer fps = spec.debugChecks() || spec.algorithm() == GlooAlgorithm.HALVING_DOUBLING
                    ? Allocator.defaultAllocator().allocateHost(32L * (spec.size() + 1)) : null;
            try {
                GlooCommunicator c = new GlooCommunicator(spec, handle, fps, layout);
                int counted = c.countedConnections();
                if (counted != spec.size() - 1) {
                    LOG.warn("rank {}: found {} of {} Gloo connections for byte counting (kernel without "
                            + "TCP_INFO byte counters?); bytesSent() will undercount", spec.rank(), counted,
                            spec.size() - 1);
                }
                return c;
            } catch (RuntimeException e) {
                if (fps != null) {
                    fps.close();
                }
                throw e;
            }
        } catch (RuntimeException e) {
            if (timer != null) {
                timer.cancel(false);
            }
            handle.destroy(GlooNative::torus_gloo_destroy, spec.initTimeout().toMillis() + 1_000);
            throw e;
        }
    }

    /** Bytes of an address record after the addresses: nonce, host id digest, transport, slot bytes. */
    static final int RECORD_TAIL = 8 + 32 + 1 + 8;

    private static final java.security.SecureRandom NONCES = new java.security.SecureRandom();

    /**
     * Gloo's connect proves only that something accepted a TCP connection. Every rank
     * all-gathers (rank, nonce) over the new connections and checks each peer's against the
     * nonce that peer published with its addresses: a connection that leads to a stale
     * record's port, a foreign listener or a frozen process fails here, within the init
     * deadline, instead of at the first operation.
     */
    private static void handshake(CommSpec spec, NativeHandle handle, long[] nonces, long deadline) {
        int n = spec.size();
        if (n == 1) {
            return;
        }
        try (HostBuffer buf = Allocator.defaultAllocator().allocateHost(16L * (n + 1))) {
            ByteBuffer view = buf.view(0, 16L * (n + 1)).order(ByteOrder.nativeOrder());
            view.putLong(16 * n, spec.rank()).putLong(16 * n + 8, nonces[spec.rank()]);
            long timeoutMs = Math.max(1, (deadline - System.nanoTime()) / 1_000_000L);
            int status = handle.use("handshake", a -> GlooNative.torus_gloo_allgather(a, buf.address(TOKEN) + 16L * n,
                    buf.address(TOKEN), 2, DType.INT64.code(), timeoutMs, (int) Fingerprint.exchangeTag(0)));
            if (status == GlooNative.ERR_TIMEOUT) {
                throw new CommTimeoutException("rank " + spec.rank() + " of " + spec + ": the init handshake over the new "
                        + "connections did not finish within initTimeout (" + spec.initTimeout().toMillis()
                        + " ms): a peer is frozen, or an address record led to something that is not that peer");
            }
            check(status, "init handshake of rank " + spec.rank() + " of " + spec);
            for (int r = 0; r < n; r++) {
                long rank = view.getLong(16 * r);
                long nonce = view.getLong(16 * r + 8);
                if (rank != r || nonce != nonces[r]) {
                    throw new CommException("rank " + spec.rank() + " of " + spec + ": the connection to rank " + r
                            + " does not lead to the process that published rank " + r + "'s address record (a stale "
                            + "record of a reused run id, or a foreign listener)");
                }
            }
        }
    }

    /**
     * A call on the shared-memory transport: a mismatch found by comparing the local ranks'
     * op descriptions is a {@link CollectiveMismatchException} on every local rank.
     */
    private void callShm(java.util.function.LongToIntFunction nativeCall, String what) {
        int status = handle.use(what, nativeCall::applyAsInt);
        if (status == GlooNative.ERR_MISMATCH) {
            throw new TransportMismatchException(GlooNative.torus_gloo_last_error());
        }
        check(status, what);
    }

    /** {@code shm} (every rank on this host), {@code shm+gloo} (hierarchical) or {@code gloo}. */
    @Override
    public String transportInUse() {
        return layout == null ? "gloo" : layout.inUse();
    }

    /** Runs a native call with the handle held and maps its status. */
    private void call(java.util.function.LongToIntFunction nativeCall, String what) {
        check(handle.use(what, nativeCall::applyAsInt), what);
    }

    /**
     * Throws the exception for a Gloo shim status: its codes share the kernels' numbering,
     * so the type comes from {@link CommStatus}; the message names the call.
     */
    static void check(int status, String what) {
        if (status == GlooNative.OK) {
            return;
        }
        String detail = GlooNative.torus_gloo_last_error();
        NativeStatus category = NativeStatus.of(status);
        String message = switch (category) {
            case TIMEOUT -> "timed out: " + detail;
            case PEER_FAILURE -> "peer failure: " + detail;
            case ABORTED -> detail;
            case INVALID_ARGUMENT -> what + ": " + detail;
            default -> what + " failed (status " + status + "): " + detail;
        };
        throw CommStatus.exception(category, message);
    }

    @Override
    public Backend backend() {
        return Backend.GLOO;
    }

    @Override
    void checkTensor(String arg, Tensor t) {
        if (!t.device().isCpu()) {
            throw new IllegalArgumentException(arg + " must be a CPU tensor for the gloo backend, got one on "
                    + t.device() + " (use the nccl backend for CUDA tensors)");
        }
    }

    /** Gloo runs on the CPU: a stream in the options is refused. */
    @Override
    Stream producerStream(OpOptions o) {
        if (o != null && o.stream() != null) {
            throw new IllegalArgumentException("options.stream must not be set for the gloo backend (CPU collectives "
                    + "do not run on a CUDA stream)");
        }
        return null;
    }

    private int algorithmFor(long bytes) {
        return switch (spec.algorithm()) {
            case RING -> GlooNative.ALGO_RING;
            case BCUBE -> GlooNative.ALGO_BCUBE;
            case HALVING_DOUBLING -> GlooNative.ALGO_HALVING_DOUBLING;
            case AUTO -> bytes < AUTO_RING_THRESHOLD ? GlooNative.ALGO_BCUBE : GlooNative.ALGO_RING;
        };
    }

    @Override
    void nativeAllReduce(long in, long out, long count, DType dt, ReduceOp op, Stream producer, long timeoutMs,
                         long tag) {
        int algo = algorithmFor(count * dt.byteSize());
        if (layout.shm()) {
            callShm(h -> GlooNative.torus_gloo_shm_allreduce(h, in, out, count, dt.code(), op.code, algo, timeoutMs,
                    (int) tag), "allReduce");
            return;
        }
        call(h -> GlooNative.torus_gloo_allreduce(h, in, out, count, dt.code(), op.code, algo, timeoutMs, (int) tag),
                "allReduce");
    }

    @Override
    void nativeBroadcast(long in, long out, long count, DType dt, int root, Stream producer, long timeoutMs,
                         long tag) {
        if (layout.shm()) {
            int rootHost = layout.hierarchical() ? layout.hostOf()[root] : 0;
            int rootLocal = layout.localOf()[root];
            callShm(h -> GlooNative.torus_gloo_shm_broadcast(h, in, out, count, dt.code(), rootHost, rootLocal, timeoutMs,
                    (int) tag), "broadcast");
            return;
        }
        call(h -> GlooNative.torus_gloo_broadcast(h, in, out, count, dt.code(), root, timeoutMs, (int) tag),
                "broadcast");
    }

    @Override
    void nativeReduce(long in, long out, long count, DType dt, ReduceOp op, int root, Stream producer,
                      long timeoutMs, long tag) {
        call(h -> GlooNative.torus_gloo_reduce(h, in, out, count, dt.code(), op.code, root, timeoutMs, (int) tag),
                "reduce");
    }

    @Override
    void nativeAllGather(long in, long out, long count, DType dt, Stream producer, long timeoutMs, long tag) {
        if (layout.shm() && !layout.hierarchical()) {
            callShm(h -> GlooNative.torus_gloo_shm_allgather(h, in, out, count, dt.code(), timeoutMs, (int) tag),
                    "allGather");
            return;
        }
        call(h -> GlooNative.torus_gloo_allgather(h, in, out, count, dt.code(), timeoutMs, (int) tag), "allGather");
    }

    @Override
    void nativeReduceScatter(long in, long out, long count, DType dt, ReduceOp op, Stream producer, long timeoutMs,
                             long tag) {
        call(h -> GlooNative.torus_gloo_reduce_scatter(h, in, out, count, dt.code(), op.code, timeoutMs, (int) tag),
                "reduceScatter");
    }

    @Override
    void nativeAllToAll(long in, long out, long count, DType dt, Stream producer, long timeoutMs, long tag) {
        call(h -> GlooNative.torus_gloo_alltoall(h, in, out, count, dt.code(), timeoutMs, (int) tag), "allToAll");
    }

    /** Gloo's all-to-all reads its input while it writes: the input is a host copy. */
    @Override
    void nativeAllToAllInPlace(Tensor buffer, long count, DType dt, Stream producer, long timeoutMs, long tag) {
        try (HostBuffer copy = scratchAllocator.allocateHost(Math.max(1, buffer.byteSize()))) {
            ByteBuffer src = dev.torus.jni.MemoryView.of(buffer.dataAddress(TOKEN), buffer.byteSize());
            ByteBuffer dst = copy.view(0, buffer.byteSize());
            dst.put(src);
            nativeAllToAll(copy.address(TOKEN), buffer.dataAddress(TOKEN), count, dt, producer, timeoutMs, tag);
        }
    }

    @Override
    void nativeBarrier(Stream producer, long timeoutMs, long tag) {
        if (layout.shm() && !layout.hierarchical()) {
            callShm(h -> GlooNative.torus_gloo_shm_barrier(h, timeoutMs, (int) tag), "barrier");
            return;
        }
        call(h -> GlooNative.torus_gloo_barrier(h, timeoutMs, (int) tag), "barrier");
    }

    private static final long P2P_SLOT = 0x70L << 56;

    /**
     * The Gloo slot of a point-to-point message: prefix, 24 bits of a hash of (dtype,
     * count), and the user's tag. A send and a recv that disagree on size or dtype never
     * match, so a longer message cannot overrun the receiver: the recv times out instead.
     */
    private static long slot(int tag, DType dtype, long count) {
        if (tag < 0) {
            throw new IllegalArgumentException("tag must be >= 0, got " + tag);
        }
        long shape = new Fingerprint(OpType.SEND, -1, dtype, count, -1).hash32() & 0xff_ffffL;
        return P2P_SLOT | (shape << 32) | tag;
    }

    /** Each peer and direction has its own lane; an empty message is not sent at all. */
    @Override
    Work submitPointToPoint(OpType type, Tensor tensor, int peer, int tag, Stream producer, OpOptions options) {
        long slot = slot(tag, tensor.dtype(), tensor.numel());
        long bytes = tensor.byteSize();
        return submitP2P(type, peer, tensor.dtype(), tensor.numel(), List.of(tensor), options,
                p2pWireBytes(type, tensor), (t, seq) -> {
                    if (bytes == 0) {
                        return;
                    }
                    if (type == OpType.SEND) {
                        call(h -> GlooNative.torus_gloo_send(h, tensor.dataAddress(TOKEN), bytes, peer, slot, t), "send");
                        return;
                    }
                    try {
                        call(h -> GlooNative.torus_gloo_recv(h, tensor.dataAddress(TOKEN), bytes, peer, slot, t), "recv");
                    } catch (CommTimeoutException e) {
                        throw new CommTimeoutException(e.getMessage() + " (no send of " + tensor.numel() + " x "
                                + tensor.dtype() + " with tag " + tag + " arrived from rank " + peer
                                + "; a send of another size or dtype does not match)");
                    }
                });
    }

    @Override
    long[][] exchangeFingerprints(long[] mine, long tag, long timeoutMs) {
        int n = size();
        ByteBuffer view = fingerprintScratch.view(0, 32L * (n + 1)).order(ByteOrder.nativeOrder());
        Fingerprint.pack(view, n, mine);
        call(h -> GlooNative.torus_gloo_allgather(h, fingerprintScratch.address(TOKEN) + 32L * n,
                fingerprintScratch.address(TOKEN), 4, DType.INT64.code(), timeoutMs, (int) tag), "fingerprint check");
        return Fingerprint.unpack(view, n);
    }

    private long lastMeasuredBytes;

    /**
     * Bytes this rank has handed to its Gloo connections since they were set up, as the
     * kernel counts them per socket (TCP_INFO: transmitted less retransmitted, plus still
     * queued): the data plus Gloo's own control messages, not a formula. After close, the
     * last value read. On the shared-memory transport ({@link #transportInUse()} {@code shm} or
     * {@code shm+gloo}) it is the payload formula instead: what a ring over sockets would send.
     */
    @Override
    public long bytesSent() {
        if (layout.shm()) {
            // shared memory has no socket to count: the payload formula of every op, as if a TCP ring carried it
            return super.bytesSent();
        }
        return readByteCounters()[0];
    }

    /** Connections whose byte counters {@link #bytesSent()} reads; size() - 1 when all were found. */
    int countedConnections() {
        return (int) readByteCounters()[1];
    }

    /** {bytes sent, connections counted}; the last bytes figure once the handle is gone. */
    private synchronized long[] readByteCounters() {
        long[] bytes = new long[1];
        long[] sockets = new long[1];
        try {
            call(h -> GlooNative.torus_gloo_bytes_sent(h, bytes, sockets), "bytesSent");
        } catch (CommAbortedException destroyed) {
            return new long[] {lastMeasuredBytes, 0};
        }
        lastMeasuredBytes = bytes[0];
        return new long[] {bytes[0], sockets[0]};
    }

    /**
     * Halving-doubling runs Gloo's older algorithm on bound buffers, whose slots do not
     * carry the tag: a mismatch cannot be fenced there, so it is checked before the op.
     */
    @Override
    boolean needsFingerprintExchange(Fingerprint fp) {
        // on one host's shared memory the all-reduce compares the ranks' op descriptions at every step itself
        return spec.algorithm() == GlooAlgorithm.HALVING_DOUBLING && fp.type() == OpType.ALL_REDUCE
                && !(layout.shm() && !layout.hierarchical());
    }

    @Override
    void nativeAbort(String reason) {
        handle.abort(h -> GlooNative.torus_gloo_abort(h, reason));
    }

    @Override
    boolean nativeDestroy(long waitMs) {
        boolean freed = handle.destroy(GlooNative::torus_gloo_destroy, waitMs);
        if (freed && fingerprintScratch != null) {
            fingerprintScratch.close();
        }
        return freed;
    }

    @Override
    Communicator rebuild(CommSpec next) {
        return GlooCommunicator.create(next);
    }
}
