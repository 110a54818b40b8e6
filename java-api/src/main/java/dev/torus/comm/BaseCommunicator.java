package dev.torus.comm;

import dev.torus.DType;
import dev.torus.Tensor;
import dev.torus.rendezvous.Store;
import java.nio.charset.StandardCharsets;
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
 * point-to-point lanes per peer and direction, sequence numbers, timeouts enforced
 * by a watchdog, failure diagnosis through the store, debug fingerprints, abort,
 * shrink and split. Backends supply the native calls.
 */
abstract class BaseCommunicator implements Communicator {
    private static final Logger LOG = LoggerFactory.getLogger(BaseCommunicator.class);
    static final Duration DIAGNOSIS_GRACE = Duration.ofMillis(500);
    /** Open communicators; the watchdog scans their running operations every {@link #WATCHDOG_PERIOD_MS}. */
    private static final Set<BaseCommunicator> LIVE = ConcurrentHashMap.newKeySet();
    static final long WATCHDOG_PERIOD_MS = 100;

    static {
        Thread dog = new Thread(BaseCommunicator::watchdogLoop, "torus-comm-watchdog");
        dog.setDaemon(true);
        dog.start();
    }

    /**
     * Aborts a communicator whose operation has outlived its timeout by 500 ms (the
     * native call should have failed by itself). Scanning, rather than scheduling a
     * timer per operation, keeps the per-operation cost to two map updates.
     */
    private static void watchdogLoop() {
        while (true) {
            try {
                Thread.sleep(WATCHDOG_PERIOD_MS);
                long now = System.nanoTime();
                for (BaseCommunicator c : LIVE) {
                    for (Running r : c.running) {
                        if (now - r.deadlineNanos > 0) {
                            c.breakWith(r.desc + " exceeded its timeout of " + r.timeoutMs + " ms");
                        }
                    }
                }
            } catch (InterruptedException e) {
                return;
            } catch (RuntimeException e) {
                LOG.warn("comm watchdog: {}", e.toString());
            }
        }
    }

    /** An operation executing on a lane, with the instant after which the watchdog aborts. */
    private record Running(String desc, long timeoutMs, long deadlineNanos) {}

    private final Set<Running> running = ConcurrentHashMap.newKeySet();

    final CommSpec spec;
    private final Lane collectiveLane;
    private final Map<String, Lane> p2pLanes = new ConcurrentHashMap<>();
    private final AtomicLong collectiveSeq = new AtomicLong();
    private final AtomicLong p2pSeq = new AtomicLong();
    private final Set<WorkImpl> pending = ConcurrentHashMap.newKeySet();
    private final AtomicLong bytesSent = new AtomicLong();
    private volatile String brokenReason;
    private volatile boolean closed;
    private int splitCount;

    BaseCommunicator(CommSpec spec) {
        this.spec = spec;
        spec.lease().retain();
        String name = "torus-" + backend().name().toLowerCase() + "-" + spec.name() + "-g" + spec.generation() + "-r"
                + spec.rank();
        this.collectiveLane = new Lane(name);
        LIVE.add(this);
    }

    // ------------------------------------------------------------------ backend hooks

    /** Validates that {@code t} can be used by this backend (device, dtype). */
    abstract void checkTensor(String arg, Tensor t);

    /** Wakes every native operation in flight with an error; must be callable from any thread. */
    abstract void nativeAbort(String reason);

    /** Frees native resources; called once, after every lane has stopped. */
    abstract void nativeDestroy();

    /** Creates the next generation (shrink) or a child (split) with the same backend. */
    abstract Communicator rebuild(CommSpec next);

    /** All-to-all on raw host or device addresses, run inside a lane task (composite operations). */
    abstract void rawAllToAll(long in, long out, long countPerRank, DType dt, long timeoutMs, long tag);

    /** All-gather on raw addresses, run inside a lane task (composite operations). */
    abstract void rawAllGather(long in, long out, long countPerRank, DType dt, long timeoutMs, long tag);

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
                + ", comm '" + spec.name() + "', " + backend().name().toLowerCase();
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

    // ------------------------------------------------------------------ submission

    /** Fingerprint of a collective: op code, dtype, count, root. */
    record Fingerprint(OpType type, int reduce, DType dtype, long count, int root) {
        long[] toLongs(long seq) {
            long head = ((long) type.ordinal() << 32) | ((long) (reduce + 1) << 24) | ((long) (dtype == null ? 255
                    : dtype.ordinal()) << 16) | (root + 1);
            return new long[] {head, count, seq, 0};
        }

        String describe() {
            String r = reduce >= 0 ? "(" + ReduceOp.values()[reduce] + ")" : "";
            String d = dtype == null ? "" : " of " + count + " x " + dtype;
            String rt = root >= 0 ? " root " + root : "";
            return type.label() + r + d + rt;
        }
    }

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
        Lane ex = p2pLanes.computeIfAbsent(lane, l -> new Lane("torus-" + spec.name() + "-r" + spec.rank() + "-" + l));
        Fingerprint fp = new Fingerprint(type, -1, dtype, count, -1);
        String desc = type.label() + (type == OpType.SEND ? " to rank " : " from rank ") + peer + " of " + count + " x "
                + dtype + " (p2p " + where(seq) + ")";
        return launch(ex, seq, fp, desc, tensors, timeout, wireBytes, op, false);
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
        Running dog = null;
        CommException failure = null;
        try {
            if (w.isCompleted()) {
                return; // failed by abort while queued
            }
            String broken = brokenReason;
            if (broken != null) {
                failure = new CommAbortedException(desc + " cannot run: " + broken);
                return;
            }
            dog = new Running(desc, timeoutMs, System.nanoTime() + (timeoutMs + 500) * 1_000_000L);
            running.add(dog);
            if (collective && spec.debugChecks()) {
                checkFingerprints(fp, seq, timeoutMs);
            }
            op.run(timeoutMs, seq);
            bytesSent.addAndGet(wireBytes);
        } catch (CollectiveMismatchException e) {
            breakWith("collective mismatch at seq " + seq);
            failure = e;
        } catch (CommException e) {
            boolean userAbort = brokenReason != null && brokenReason.startsWith("aborted by user");
            String diag = (collective && !userAbort) ? diagnose(seq, fp) : "";
            String msg = desc + " failed: " + e.getMessage() + diag;
            breakWith(msg);
            failure = e instanceof CommTimeoutException ? new CommTimeoutException(msg)
                    : e instanceof CommAbortedException ? new CommAbortedException(msg) : new CommException(msg, e);
        } catch (RuntimeException e) {
            breakWith(desc + " failed: " + e);
            failure = new CommException(desc + " failed: " + e, e);
        } finally {
            if (dog != null) {
                running.remove(dog);
            }
            // release the tensors before anyone waiting on the Work can wake and close them
            pinned.forEach(t -> t.buffer().unpin());
            pending.remove(w);
            if (failure != null) {
                w.fail(failure);
            } else {
                w.complete();
            }
        }
    }

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
        String r = "aborted by user: " + (reason == null ? "no reason given" : reason);
        breakWith(r);
        for (WorkImpl w : pending) {
            w.fail(new CommAbortedException(w.description() + " " + r));
        }
    }

    // ------------------------------------------------------------------ diagnosis and debug checks

    /**
     * After a failed collective, every surviving rank posts what it was running at this
     * seq, then reads the others' posts for a short grace period. Ranks that post nothing
     * are dead or not in a collective; ranks that post a different op skipped or reordered one.
     */
    private String diagnose(long seq, Fingerprint fp) {
        try {
            Store ns = spec.generationNamespace();
            String dir = "diag/" + seq;
            ns.set(dir + "/" + spec.rank(), fp.describe().getBytes(StandardCharsets.UTF_8));
            long deadline = System.nanoTime() + DIAGNOSIS_GRACE.toNanos();
            List<String> seen = ns.list(dir);
            while (seen.size() < spec.size() && System.nanoTime() < deadline) {
                Thread.sleep(20);
                seen = ns.list(dir);
            }
            List<Integer> silent = new ArrayList<>();
            Map<Integer, String> different = new TreeMap<>();
            for (int r = 0; r < spec.size(); r++) {
                if (!seen.contains(Integer.toString(r))) {
                    silent.add(r);
                    continue;
                }
                byte[] v = ns.tryGet(dir + "/" + r);
                String other = v == null ? "?" : new String(v, StandardCharsets.UTF_8);
                if (!other.equals(fp.describe())) {
                    different.put(r, other);
                }
            }
            StringBuilder sb = new StringBuilder();
            if (!silent.isEmpty()) {
                sb.append(" [missing rank(s) ").append(silent).append(": no failure report within ")
                        .append(DIAGNOSIS_GRACE.toMillis()).append(" ms (dead, or not in a collective)]");
            }
            different.forEach((r, other) -> sb.append(" [rank ").append(r).append(" was in ").append(other)
                    .append(" at this seq]"));
            return sb.toString();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return "";
        } catch (RuntimeException e) {
            return " [diagnosis unavailable: " + e.getMessage() + "]";
        }
    }

    private void checkFingerprints(Fingerprint fp, long seq, long timeoutMs) {
        long[] mine = fp.toLongs(seq);
        long[][] all = exchangeFingerprints(mine, seq | 0x4000_0000L, timeoutMs);
        Map<String, List<Integer>> groups = new TreeMap<>();
        Map<String, String> names = new TreeMap<>();
        for (int r = 0; r < all.length; r++) {
            String k = Arrays.toString(all[r]);
            groups.computeIfAbsent(k, x -> new ArrayList<>()).add(r);
            names.put(k, describeFingerprint(all[r]));
        }
        if (groups.size() == 1) {
            return;
        }
        String majority = null;
        for (var e : groups.entrySet()) {
            if (majority == null || e.getValue().size() > groups.get(majority).size()) {
                majority = e.getKey();
            }
        }
        StringBuilder sb = new StringBuilder("collective mismatch at seq " + seq + " (" + where(seq) + "): "
                + groups.get(majority) + " called " + names.get(majority));
        for (var e : groups.entrySet()) {
            if (!e.getKey().equals(majority)) {
                sb.append("; culprit rank(s) ").append(e.getValue()).append(" called ").append(names.get(e.getKey()));
            }
        }
        throw new CollectiveMismatchException(sb.toString());
    }

    /** Writes this rank's fingerprint after the size() slots of a 32-byte-per-rank exchange buffer. */
    static void packFingerprint(java.nio.ByteBuffer buf, int n, long[] mine) {
        for (int i = 0; i < 4; i++) {
            buf.putLong(32 * n + 8 * i, mine[i]);
        }
    }

    /** Reads every rank's fingerprint from the first size() slots of the exchange buffer. */
    static long[][] unpackFingerprints(java.nio.ByteBuffer buf, int n) {
        long[][] all = new long[n][4];
        for (int r = 0; r < n; r++) {
            for (int i = 0; i < 4; i++) {
                all[r][i] = buf.getLong(32 * r + 8 * i);
            }
        }
        return all;
    }

    private static String describeFingerprint(long[] f) {
        int type = (int) (f[0] >>> 32);
        int reduce = (int) ((f[0] >>> 24) & 0xff) - 1;
        int dt = (int) ((f[0] >>> 16) & 0xff);
        int root = (int) (f[0] & 0xffff) - 1;
        String name = type >= 0 && type < OpType.values().length ? OpType.values()[type].label() : "op#" + type;
        String r = reduce >= 0 && reduce < ReduceOp.values().length ? "(" + ReduceOp.values()[reduce] + ")" : "";
        String d = dt < DType.values().length ? " of " + f[1] + " x " + DType.values()[dt] : "";
        return name + r + d + (root >= 0 ? " root " + root : "") + " at seq " + f[2];
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
        String r = "aborted by user: " + why;
        breakWith(r);
        for (WorkImpl w : pending) {
            w.fail(new CommAbortedException(w.description() + " " + r));
        }
    }

    @Override
    public Communicator split(int color, int key) {
        ensureOpen();
        int k;
        synchronized (this) {
            k = ++splitCount;
        }
        Store ns = spec.generationNamespace().withPrefix("split-" + k);
        ns.set(Integer.toString(spec.rank()), (color + "," + key).getBytes(StandardCharsets.US_ASCII));
        List<String> keys = new ArrayList<>();
        for (int r = 0; r < spec.size(); r++) {
            keys.add(Integer.toString(r));
        }
        ns.wait(keys, spec.initTimeout());
        if (color < 0) {
            return null;
        }
        List<int[]> same = new ArrayList<>(); // {key, oldRank}
        for (int r = 0; r < spec.size(); r++) {
            byte[] v = ns.get(Integer.toString(r), spec.initTimeout());
            String[] parts = new String(v, StandardCharsets.US_ASCII).split(",");
            if (parts.length != 2) {
                throw new CommException("malformed split record of rank " + r + " at split " + k + " of " + spec.name());
            }
            int c;
            int kk;
            try {
                c = Integer.parseInt(parts[0]);
                kk = Integer.parseInt(parts[1]);
            } catch (NumberFormatException e) {
                throw new CommException("malformed split record of rank " + r + " at split " + k + " of " + spec.name());
            }
            if (c == color) {
                same.add(new int[] {kk, r});
            }
        }
        same.sort((a, b) -> a[0] != b[0] ? Integer.compare(a[0], b[0]) : Integer.compare(a[1], b[1]));
        int[] ids = new int[same.size()];
        int newRank = -1;
        for (int i = 0; i < ids.length; i++) {
            ids[i] = spec.members()[same.get(i)[1]];
            if (same.get(i)[1] == spec.rank()) {
                newRank = i;
            }
        }
        return rebuild(spec.child(spec.name() + "/split-" + k + "/color-" + color, newRank, ids));
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
        if (stopped) {
            nativeDestroy();
        } else {
            LOG.warn("rank {}: native operations of {} did not stop; leaking its native state rather than freeing "
                    + "memory still in use", spec.rank(), spec.name());
        }
        LIVE.remove(this);
        spec.lease().release();
    }

    @Override
    public String toString() {
        return backend().name().toLowerCase() + " " + spec + (isAborted() ? " (aborted: " + brokenReason + ")" : "");
    }
}
