package dev.torus.comm;

import static dev.torus.internal.NativeAccess.TOKEN;

import dev.torus.DType;
import dev.torus.tensor.Tensor;
import dev.torus.memory.Stream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What every backend shares: the single collective lane (one thread, issue order),
 * point-to-point lanes per peer and direction, sequence numbers, the fingerprint
 * folded into every op's transport tag, abort, shrink and split. Timeouts are
 * enforced by the {@link Watchdog}; failures and stalls are explained through the
 * store by {@link FailureDiagnosis}; a split's members come from {@link SplitExchange}.
 *
 * <p>Every public operation is implemented here once, like c10d's {@code collective()}:
 * argument checks, {@link Fingerprint}, wire-byte figure and submission. A backend
 * supplies only its native calls ({@code native*} hooks, run on a lane), its checks of
 * a tensor ({@link #checkTensor}) and of the options ({@link #producerStream}), and
 * how a send or recv is submitted ({@link #submitPointToPoint}).
 */
abstract class BaseCommunicator implements Communicator {
    private static final Logger LOG = LoggerFactory.getLogger(BaseCommunicator.class);
    /** A collective still running after this long (at most half its timeout) probes the store for a mismatch. */
    static final long MISMATCH_PROBE_AFTER_MS = 1_000;

    private final Set<Watchdog.Running> running = ConcurrentHashMap.newKeySet();

    final CommSpec spec;
    /** Package-private so that a backend can run its control calls (e.g. NCCL split) in issue order. */
    final Lane collectiveLane;
    private final Map<String, Lane> p2pLanes = new ConcurrentHashMap<>();
    private final AtomicLong collectiveSeq = new AtomicLong();
    private final AtomicLong p2pSeq = new AtomicLong();
    private final Set<WorkImpl> pending = ConcurrentHashMap.newKeySet();
    private final AtomicLong bytesSent = new AtomicLong();
    private final FailureDiagnosis diagnosis;
    private volatile String brokenReason;
    /** Set when a probe or a diagnosis found that a peer ran a different collective. */
    private volatile String mismatchReason;
    private volatile boolean closed;
    private int splitCount;

    BaseCommunicator(CommSpec spec) {
        this.spec = spec;
        spec.lease().retain();
        String name = "torus-" + backend().name().toLowerCase() + "-" + spec.name() + "-g" + spec.generation() + "-r"
                + spec.rank();
        this.collectiveLane = new Lane(name);
        this.diagnosis = new FailureDiagnosis(spec);
        diagnosis.publishIdentity();
        Watchdog.watch(watched);
    }

    // ------------------------------------------------------------------ backend hooks

    /** Validates that {@code t} can be used by this backend (device, dtype). */
    abstract void checkTensor(String arg, Tensor t);

    /** Wakes every native operation in flight with an error; must be callable from any thread. */
    abstract void nativeAbort(String reason);

    /**
     * Frees native resources unless a native call is still inside them; waits at most
     * {@code waitMs} for such a call to leave. Returns whether they were freed. Called
     * once, from {@link #close()}.
     */
    abstract boolean nativeDestroy(long waitMs);

    /**
     * Creates a communicator with the same backend from scratch: the next generation
     * after a shrink, or (by default, see {@link #joinSplit}) a split's child.
     */
    abstract Communicator rebuild(CommSpec next);

    /**
     * Checks the backend-specific options (a stream where the backend has none, or one on
     * another device) after the common argument checks, and returns the stream the
     * operation is ordered after: the caller's or the device default on NCCL, always
     * {@code null} on Gloo. Runs on the submitting thread.
     */
    abstract Stream producerStream(OpOptions options);

    // The native calls of the collectives. Each runs inside a lane task, after the
    // arguments were checked and the fingerprint agreed, on raw host or device addresses
    // (counts in elements per rank, as the op defines them), and throws CommException
    // subclasses on failure. producer is what producerStream returned, or null for a
    // composite operation's internal call (the backend's default stream).

    abstract void nativeAllReduce(long in, long out, long count, DType dt, ReduceOp op, Stream producer,
                                  long timeoutMs, long tag);

    abstract void nativeBroadcast(long in, long out, long count, DType dt, int root, Stream producer, long timeoutMs,
                                  long tag);

    abstract void nativeReduce(long in, long out, long count, DType dt, ReduceOp op, int root, Stream producer,
                               long timeoutMs, long tag);

    abstract void nativeAllGather(long in, long out, long count, DType dt, Stream producer, long timeoutMs, long tag);

    abstract void nativeReduceScatter(long in, long out, long count, DType dt, ReduceOp op, Stream producer,
                                      long timeoutMs, long tag);

    abstract void nativeAllToAll(long in, long out, long count, DType dt, Stream producer, long timeoutMs, long tag);

    /** All-to-all of {@code buffer} onto itself: the backend supplies the temporary copy of the input. */
    abstract void nativeAllToAllInPlace(Tensor buffer, long count, DType dt, Stream producer, long timeoutMs, long tag);

    abstract void nativeBarrier(Stream producer, long timeoutMs, long tag);

    /**
     * Submits a checked send or recv ({@code tensor} usable here, {@code peer} a valid
     * other rank, {@code producer} from {@link #producerStream}); the backend checks
     * {@code tag}, then runs it through {@link #submitP2P} (Gloo) or defers it into a
     * group (NCCL).
     */
    abstract Work submitPointToPoint(OpType type, Tensor tensor, int peer, int tag, Stream producer,
                                     OpOptions options);

    /** All-gathers {@code mine} (4 longs) for the debug fingerprint check. */
    abstract long[][] exchangeFingerprints(long[] mine, long tag, long timeoutMs);

    /** A native operation; throws {@link CommException} subclasses on failure. */
    interface NativeOp {
        void run(long timeoutMs, long tag);
    }

    // ------------------------------------------------------------------ accessors

    @Override
    public int rank() {
        return spec.rank();
    }

    @Override
    public int size() {
        return spec.size();
    }

    @Override
    public long generation() {
        return spec.generation();
    }

    @Override
    public String name() {
        return spec.name();
    }

    @Override
    public long bytesSent() {
        return bytesSent.get();
    }

    @Override
    public boolean isAborted() {
        return brokenReason != null;
    }

    String where(long seq) {
        return "seq " + seq + ", generation " + spec.generation() + ", rank " + spec.rank() + "/" + spec.size()
                + ", comm '" + spec.name() + "', " + backend().name().toLowerCase()
                + (transportInUse().equals(backend().name().toLowerCase()) ? "" : " over " + transportInUse());
    }

    // ------------------------------------------------------------------ validation helpers

    void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("communicator " + spec.name() + " (rank " + spec.rank() + ") is closed");
        }
    }

    Tensor requireTensor(String arg, Tensor t) {
        if (t == null) {
            throw new IllegalArgumentException(arg + " must not be null");
        }
        if (t.isClosed()) {
            throw new IllegalStateException(arg + " is closed");
        }
        checkTensor(arg, t);
        return t;
    }

    void requireSameDType(String a, Tensor x, String b, Tensor y) {
        if (x.dtype() != y.dtype()) {
            throw new IllegalArgumentException(b + " must have the dtype of " + a + " (" + x.dtype() + "), got " + y.dtype());
        }
        if (!x.device().equals(y.device())) {
            throw new IllegalArgumentException(b + " must be on the device of " + a + " (" + x.device() + "), got "
                    + y.device());
        }
    }

    void requireNumel(String arg, Tensor t, long expected, String why) {
        if (t.numel() != expected) {
            throw new IllegalArgumentException(arg + " must have " + expected + " elements (" + why + "), got "
                    + t.numel());
        }
    }

    /** {@code in} and {@code out} usable by this backend, same dtype, device and element count. */
    void requireSameLayout(Tensor in, Tensor out) {
        requireTensor("in", in);
        requireTensor("out", out);
        requireSameDType("in", in, "out", out);
        requireNumel("out", out, in.numel(), "same as in");
    }

    /** {@code in} and {@code out} usable by this backend, same dtype and device (element counts checked by the caller). */
    void requirePair(Tensor in, Tensor out) {
        requireTensor("in", in);
        requireTensor("out", out);
        requireSameDType("in", in, "out", out);
    }

    static ReduceOp requireOp(ReduceOp op) {
        if (op == null) {
            throw new IllegalArgumentException("op must not be null");
        }
        return op;
    }

    /** Elements per rank of a buffer that holds size() equal blocks. */
    long blockCount(String arg, Tensor t) {
        if (t.numel() % spec.size() != 0) {
            throw new IllegalArgumentException(arg + " must hold size() = " + spec.size()
                    + " equal blocks, but its " + t.numel() + " elements do not divide evenly");
        }
        return t.numel() / spec.size();
    }

    int requireRank(String arg, int r) {
        if (r < 0 || r >= spec.size()) {
            throw new IllegalArgumentException(arg + " must be in [0, " + spec.size() + "), got " + r);
        }
        return r;
    }

    Duration timeoutOf(OpOptions options) {
        if (options == null) {
            throw new IllegalArgumentException("options must not be null (use OpOptions.defaults())");
        }
        return options.timeout() != null ? options.timeout() : spec.timeout();
    }

    // ------------------------------------------------------------------ the operations (c10d's collective())

    // Each public operation is implemented once: argument checks, the backend's option
    // check, the fingerprint and the wire-byte figure, then submission with the
    // backend's native call. The argument checks run in this order on every backend, so
    // a bad call gets the same message from each.

    @Override
    public Work allReduce(Tensor in, Tensor out, ReduceOp op, OpOptions options) {
        requireSameLayout(in, out);
        requireOp(op);
        Stream s = producerStream(options);
        DType dt = in.dtype();
        long count = in.numel();
        int n = size();
        return submitCollective(new Fingerprint(OpType.ALL_REDUCE, op.ordinal(), dt, count, -1), List.of(in, out),
                options, n <= 1 ? 0 : 2 * in.byteSize() * (n - 1) / n,
                (t, tag) -> nativeAllReduce(in.dataAddress(TOKEN), out.dataAddress(TOKEN), count, dt, op, s, t, tag));
    }

    @Override
    public Work broadcast(Tensor in, Tensor out, int root, OpOptions options) {
        requireSameLayout(in, out);
        requireRank("root", root);
        Stream s = producerStream(options);
        DType dt = in.dtype();
        long count = in.numel();
        return submitCollective(new Fingerprint(OpType.BROADCAST, -1, dt, count, root), List.of(in, out), options,
                rank() == root ? in.byteSize() : 0,
                (t, tag) -> nativeBroadcast(in.dataAddress(TOKEN), out.dataAddress(TOKEN), count, dt, root, s, t, tag));
    }

    @Override
    public Work reduce(Tensor in, Tensor out, ReduceOp op, int root, OpOptions options) {
        requireSameLayout(in, out);
        requireRank("root", root);
        requireOp(op);
        Stream s = producerStream(options);
        DType dt = in.dtype();
        long count = in.numel();
        return submitCollective(new Fingerprint(OpType.REDUCE, op.ordinal(), dt, count, root), List.of(in, out),
                options, in.byteSize(),
                (t, tag) -> nativeReduce(in.dataAddress(TOKEN), out.dataAddress(TOKEN), count, dt, op, root, s, t, tag));
    }

    @Override
    public Work allGather(Tensor in, Tensor out, OpOptions options) {
        requirePair(in, out);
        requireNumel("out", out, in.numel() * size(), "size() x in.numel()");
        Stream s = producerStream(options);
        DType dt = in.dtype();
        long count = in.numel();
        return submitCollective(new Fingerprint(OpType.ALL_GATHER, -1, dt, count, -1), List.of(in, out), options,
                in.byteSize() * (size() - 1),
                (t, tag) -> nativeAllGather(in.dataAddress(TOKEN), out.dataAddress(TOKEN), count, dt, s, t, tag));
    }

    @Override
    public Work allGatherInPlace(Tensor buffer, OpOptions options) {
        requireTensor("buffer", buffer);
        long count = blockCount("buffer", buffer);
        Stream s = producerStream(options);
        DType dt = buffer.dtype();
        long block = count * dt.byteSize();
        return submitCollective(new Fingerprint(OpType.ALL_GATHER, -1, dt, count, -1), List.of(buffer), options,
                block * (size() - 1), (t, tag) -> nativeAllGather(buffer.dataAddress(TOKEN) + rank() * block,
                        buffer.dataAddress(TOKEN), count, dt, s, t, tag));
    }

    @Override
    public Work reduceScatter(Tensor in, Tensor out, ReduceOp op, OpOptions options) {
        requirePair(in, out);
        requireNumel("in", in, out.numel() * size(), "size() x out.numel()");
        requireOp(op);
        Stream s = producerStream(options);
        DType dt = in.dtype();
        long count = out.numel();
        return submitCollective(new Fingerprint(OpType.REDUCE_SCATTER, op.ordinal(), dt, count, -1), List.of(in, out),
                options, out.byteSize() * (size() - 1),
                (t, tag) -> nativeReduceScatter(in.dataAddress(TOKEN), out.dataAddress(TOKEN), count, dt, op, s, t, tag));
    }

    @Override
    public Work reduceScatterInPlace(Tensor buffer, ReduceOp op, OpOptions options) {
        requireTensor("buffer", buffer);
        long count = blockCount("buffer", buffer);
        requireOp(op);
        Stream s = producerStream(options);
        DType dt = buffer.dtype();
        long block = count * dt.byteSize();
        return submitCollective(new Fingerprint(OpType.REDUCE_SCATTER, op.ordinal(), dt, count, -1), List.of(buffer),
                options, block * (size() - 1), (t, tag) -> nativeReduceScatter(buffer.dataAddress(TOKEN),
                        buffer.dataAddress(TOKEN) + rank() * block, count, dt, op, s, t, tag));
    }

    @Override
    public Work allToAll(Tensor in, Tensor out, OpOptions options) {
        requireSameLayout(in, out);
        if (in.buffer() == out.buffer()) {
            throw new IllegalArgumentException("out must not be in; use allToAllInPlace");
        }
        long count = blockCount("in", in);
        Stream s = producerStream(options);
        DType dt = in.dtype();
        return submitCollective(new Fingerprint(OpType.ALL_TO_ALL, -1, dt, count, -1), List.of(in, out), options,
                count * dt.byteSize() * (size() - 1),
                (t, tag) -> nativeAllToAll(in.dataAddress(TOKEN), out.dataAddress(TOKEN), count, dt, s, t, tag));
    }

    @Override
    public Work allToAllInPlace(Tensor buffer, OpOptions options) {
        requireTensor("buffer", buffer);
        long count = blockCount("buffer", buffer);
        Stream s = producerStream(options);
        DType dt = buffer.dtype();
        return submitCollective(new Fingerprint(OpType.ALL_TO_ALL, -1, dt, count, -1), List.of(buffer), options,
                count * dt.byteSize() * (size() - 1),
                (t, tag) -> nativeAllToAllInPlace(buffer, count, dt, s, t, tag));
    }

    @Override
    public Work send(Tensor tensor, int dst, int tag, OpOptions options) {
        return pointToPoint(OpType.SEND, "dst", tensor, dst, tag, options);
    }

    @Override
    public Work recv(Tensor tensor, int src, int tag, OpOptions options) {
        return pointToPoint(OpType.RECV, "src", tensor, src, tag, options);
    }

    private Work pointToPoint(OpType type, String peerArg, Tensor tensor, int peer, int tag, OpOptions options) {
        requireTensor("tensor", tensor);
        requireRank(peerArg, peer);
        if (peer == rank()) {
            throw new IllegalArgumentException(peerArg + " must differ from this rank (" + rank() + ")");
        }
        Stream s = producerStream(options);
        return submitPointToPoint(type, tensor, peer, tag, s, options);
    }

    /** The bytes a send or recv puts on the wire: a send its tensor, a recv nothing. */
    static long p2pWireBytes(OpType type, Tensor tensor) {
        return type == OpType.SEND ? tensor.byteSize() : 0;
    }

    @Override
    public Work barrier(OpOptions options) {
        Stream s = producerStream(options);
        return submitCollective(new Fingerprint(OpType.BARRIER, -1, null, 0, -1), List.of(), options, 0,
                (t, tag) -> nativeBarrier(s, t, tag));
    }

    /** All-to-all on raw host or device addresses, run inside a lane task (composite operations). */
    final void rawAllToAll(long in, long out, long countPerRank, DType dt, long timeoutMs, long tag) {
        nativeAllToAll(in, out, countPerRank, dt, null, timeoutMs, tag);
    }

    /** All-gather on raw addresses, run inside a lane task (composite operations). */
    final void rawAllGather(long in, long out, long countPerRank, DType dt, long timeoutMs, long tag) {
        nativeAllGather(in, out, countPerRank, dt, null, timeoutMs, tag);
    }

    // ------------------------------------------------------------------ submission

    Work submitCollective(Fingerprint fp, List<Tensor> tensors, OpOptions options, long wireBytes, NativeOp op) {
        ensureOpen();
        Duration timeout = timeoutOf(options);
        long seq = collectiveSeq.incrementAndGet();
        String desc = fp.describe() + " (" + where(seq) + ")";
        return launch(collectiveLane, seq, fp, desc, tensors, timeout, wireBytes, op, true);
    }

    Work submitP2P(OpType type, int peer, DType dtype, long count, List<Tensor> tensors, OpOptions options,
                   long wireBytes, NativeOp op) {
        ensureOpen();
        Duration timeout = timeoutOf(options);
        long seq = p2pSeq.incrementAndGet();
        String lane = type.label() + "-" + peer;
        Lane ex = p2pLane(lane);
        Fingerprint fp = new Fingerprint(type, -1, dtype, count, -1);
        String desc = type.label() + (type == OpType.SEND ? " to rank " : " from rank ") + peer + " of " + count + " x "
                + dtype + " (p2p " + where(seq) + ")";
        return launch(ex, seq, fp, desc, tensors, timeout, wireBytes, op, false);
    }

    /**
     * The lane that runs point-to-point operations named {@code lane} ("send-3"): one per
     * peer and direction by default; a backend whose library forbids concurrent calls
     * (NCCL) returns its collective lane.
     */
    Lane p2pLane(String lane) {
        return p2pLanes.computeIfAbsent(lane, l -> new Lane("torus-" + spec.name() + "-r" + spec.rank() + "-" + l));
    }

    private Work launch(Lane lane, long seq, Fingerprint fp, String desc, List<Tensor> tensors,
                        Duration timeout, long wireBytes, NativeOp op, boolean collective) {
        WorkImpl w = new WorkImpl(seq, fp.type(), desc, timeout);
        String broken = brokenReason;
        if (broken != null) {
            w.fail(new CommAbortedException(desc + " cannot run: " + broken));
            return w;
        }
        List<Tensor> pinned = new ArrayList<>(tensors.size());
        try {
            for (Tensor t : tensors) {
                t.buffer().pin(desc);
                pinned.add(t);
            }
        } catch (RuntimeException e) {
            pinned.forEach(t -> t.buffer().unpin());
            throw e;
        }
        pending.add(w);
        try {
            Lane.Task task = lane.submit(() -> runOp(w, seq, fp, desc, pinned, timeout, wireBytes, op, collective));
            w.helpWith(lane, task);
        } catch (RejectedExecutionException e) {
            pending.remove(w);
            pinned.forEach(t -> t.buffer().unpin());
            throw new IllegalStateException("communicator " + spec.name() + " is closed", e);
        }
        return w;
    }

    private void runOp(WorkImpl w, long seq, Fingerprint fp, String desc, List<Tensor> pinned, Duration timeout,
                       long wireBytes, NativeOp op, boolean collective) {
        long timeoutMs = Math.max(1, timeout.toMillis());
        Watchdog.Running dog = null;
        CommException failure = null;
        boolean released = false;
        try {
            if (w.isCompleted()) {
                return; // failed by abort while queued
            }
            String broken = brokenReason;
            if (broken != null) {
                failure = new CommAbortedException(desc + " cannot run: " + broken);
                return;
            }
            dog = new Watchdog.Running(desc, seq, collective ? fp : null, timeoutMs,
                    Math.min(MISMATCH_PROBE_AFTER_MS, timeoutMs / 2));
            running.add(dog);
            try {
                if (collective && (spec.debugChecks() || needsFingerprintExchange(fp))) {
                    checkFingerprints(fp, seq, timeoutMs);
                }
                op.run(timeoutMs, fp.wireTag(seq));
            } finally {
                // the native call has returned: the caller may close the tensors as soon as it learns the outcome
                pinned.forEach(t -> t.buffer().unpin());
                released = true;
            }
            bytesSent.addAndGet(wireBytes);
        } catch (CollectiveMismatchException e) {
            breakWith("collective mismatch at seq " + seq);
            failure = e instanceof TransportMismatchException
                    ? new CollectiveMismatchException(desc + " failed: collective mismatch at seq " + seq + " "
                            + e.getMessage())
                    : e;
        } catch (CommException e) {
            failure = explain(e, seq, fp, desc, collective);
        } catch (RuntimeException e) {
            breakWith(desc + " failed: " + e);
            failure = new CommException(desc + " failed: " + e, e);
        } finally {
            if (dog != null) {
                running.remove(dog);
                if (dog.posted && failure == null) {
                    // a slow op that succeeded: its probe report is no longer needed in the store
                    FailureDiagnosis.async(() -> diagnosis.retract(seq));
                }
            }
            if (!released) {
                pinned.forEach(t -> t.buffer().unpin());
            }
            pending.remove(w);
            if (failure != null) {
                w.fail(failure);
            } else {
                w.complete();
            }
        }
    }

    /**
     * Turns a native failure into the exception the caller sees: a mismatch found by a
     * probe or by the failure diagnosis wins; otherwise the transport's classification,
     * with the diagnosis appended.
     */
    private CommException explain(CommException e, long seq, Fingerprint fp, String desc, boolean collective) {
        boolean userAbort = brokenReason != null && brokenReason.startsWith("aborted by user");
        String mismatch = mismatchReason;
        String diag = "";
        if (collective && !userAbort && mismatch == null) {
            FailureDiagnosis.Finding f = diagnosis.afterFailure(seq, fp);
            diag = f.text();
            mismatch = f.mismatch();
        }
        if (mismatch != null) {
            String msg = desc + " failed: " + mismatch;
            breakWith(msg);
            return new CollectiveMismatchException(msg);
        }
        String msg = desc + " failed: " + e.getMessage() + diag;
        breakWith(msg);
        return e instanceof CommTimeoutException ? new CommTimeoutException(msg)
                : e instanceof CommAbortedException ? new CommAbortedException(msg) : new CommException(msg, e);
    }

    /**
     * Whether the backend must exchange fingerprints before running {@code fp} because its
     * transport cannot fence a mismatch by tag (see {@link Fingerprint#wireTag}).
     */
    boolean needsFingerprintExchange(Fingerprint fp) {
        return false;
    }

    /** What the {@link Watchdog} may do to this communicator. */
    private final Watchdog.Watched watched = new Watchdog.Watched() {
        @Override
        public Set<Watchdog.Running> running() {
            return running;
        }

        @Override
        public void overdue(Watchdog.Running r) {
            // a native abort can take a while (NCCL): never on the watchdog's own thread
            if (r.overdueReported.compareAndSet(false, true)) {
                BoundedCalls.async(() -> {
                    if (running.contains(r)) { // it may have finished meanwhile
                        breakWith(r.desc + " exceeded its timeout of " + r.timeoutMs + " ms");
                    }
                });
            }
        }

        @Override
        public void stalled(Watchdog.Running r) {
            FailureDiagnosis.async(() -> {
                try {
                    r.posted = true;
                    String m = diagnosis.probe(r.seq, r.fingerprint);
                    if (m != null && running.contains(r)) {
                        mismatchReason = m;
                        breakWith(r.desc + ": " + m);
                    }
                } finally {
                    r.probeDone();
                }
            });
        }
    };

    /** Marks the communicator broken, wakes native waiters and fails every pending Work. */
    private void breakWith(String reason) {
        boolean first;
        synchronized (this) {
            first = brokenReason == null;
            if (first) {
                brokenReason = reason;
            }
        }
        if (first) {
            LOG.debug("rank {}: communicator {} broken: {}", spec.rank(), spec.name(), reason);
            nativeAbort(reason);
        }
    }

    @Override
    public void abort(String reason) {
        abortWith("aborted by user: " + (reason == null ? "no reason given" : reason));
    }

    /** Breaks the communicator with {@code reason} and fails every pending Work at once. */
    private void abortWith(String reason) {
        breakWith(reason);
        for (WorkImpl w : pending) {
            w.fail(new CommAbortedException(w.description() + " " + reason));
        }
    }

    // ------------------------------------------------------------------ explicit fingerprint exchange

    private void checkFingerprints(Fingerprint fp, long seq, long timeoutMs) {
        long[][] all = exchangeFingerprints(fp.toLongs(seq), Fingerprint.exchangeTag(seq), timeoutMs);
        Fingerprint.requireAgreement(all, seq, where(seq));
    }

    // ------------------------------------------------------------------ rebuild

    @Override
    public Communicator shrink(int... excluded) {
        CommSpec next = survivorSpec(excluded);
        abortForRebuild("shrunk to exclude ranks " + Arrays.toString(excluded));
        return rebuild(next);
    }

    /**
     * Validates a shrink's excluded list (called by every survivor with the same list)
     * and returns the survivors' spec: old order, generation + 1.
     */
    CommSpec survivorSpec(int... excluded) {
        ensureOpen();
        if (excluded == null) {
            throw new IllegalArgumentException("excluded must not be null");
        }
        boolean[] drop = new boolean[spec.size()];
        for (int r : excluded) {
            requireRank("excluded rank", r);
            if (drop[r]) {
                throw new IllegalArgumentException("excluded rank " + r + " is listed twice");
            }
            drop[r] = true;
        }
        if (drop[spec.rank()]) {
            throw new IllegalArgumentException("rank " + spec.rank() + " is in the excluded list "
                    + Arrays.toString(excluded) + "; excluded ranks must not call shrink");
        }
        int[] ids = new int[spec.size() - excluded.length];
        int newRank = -1;
        for (int r = 0, k = 0; r < spec.size(); r++) {
            if (!drop[r]) {
                if (r == spec.rank()) {
                    newRank = k;
                }
                ids[k++] = spec.members()[r];
            }
        }
        return spec.next(spec.generation() + 1, newRank, ids);
    }

    void abortForRebuild(String why) {
        abortWith("aborted by user: " + why);
    }

    @Override
    public Communicator split(int color, int key) {
        ensureOpen();
        int k;
        synchronized (this) {
            k = ++splitCount;
        }
        return joinSplit(SplitExchange.childSpec(spec, k, color, key), color, key);
    }

    /**
     * Builds this rank's child of a split from the spec the store exchange computed, or,
     * when {@code child} is {@code null} (negative color), does what the backend needs
     * of a member that joins no child and returns {@code null}. By default a child is a
     * fresh communicator ({@link #rebuild}).
     */
    Communicator joinSplit(CommSpec child, int color, int key) {
        return child == null ? null : rebuild(child);
    }

    // ------------------------------------------------------------------ close

    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        if (!pending.isEmpty()) {
            abort("communicator closed with " + pending.size() + " operation(s) pending");
        }
        List<Lane> lanes = new ArrayList<>(p2pLanes.values());
        lanes.add(collectiveLane);
        boolean stopped = true;
        for (Lane lane : lanes) {
            lane.shutdown();
        }
        try {
            for (Lane lane : lanes) {
                stopped &= lane.awaitTermination(spec.timeout().toMillis() + 2000, TimeUnit.MILLISECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            stopped = false;
        }
        if (!nativeDestroy(stopped ? 1_000 : 0)) {
            LOG.warn("rank {}: native operations of {} did not stop; leaking its native state rather than freeing "
                    + "memory still in use", spec.rank(), spec.name());
        }
        Watchdog.unwatch(watched);
        spec.lease().release();
    }

    @Override
    public String toString() {
        return backend().name().toLowerCase() + " " + spec + (isAborted() ? " (aborted: " + brokenReason + ")" : "");
    }
}
