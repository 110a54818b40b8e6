package dev.torus.elastic;

import dev.torus.DType;
import dev.torus.comm.Communicator;
import dev.torus.memory.Allocator;
import dev.torus.nn.Optimizer;
import dev.torus.nn.Parameter;
import dev.torus.tensor.Tensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The state an elastic job carries through membership changes, in the spirit of
 * Horovod's {@code state.commit()/restore()}: the parameters, the optimizer's state
 * tensors, step count and learning rate, the {@link ElasticSampler} position, the job's
 * step counter, and named user scalars (RNG keys, schedule state, anything else).
 *
 * <p>{@link #commit()} takes an in-memory host snapshot; {@link #restore()} puts the
 * live objects back to it (every survivor does this after a failure, so the job resumes
 * from the same step everywhere). {@link #sync} sends the committed snapshot from one
 * rank to all (how a joiner receives it), and every rank compares the snapshot's
 * SHA-256 with everyone else's before anyone trains on: a joiner whose model has other
 * parameters (names, shapes) is refused with an error that names the first mismatch.
 *
 * <p>The snapshot is framed binary, checked field by field; nothing is deserialized
 * into objects. It borrows the parameters, optimizer and sampler; it owns only host
 * arrays. Not thread-safe: call it from the training thread.
 */
public final class ElasticState {
    private static final int MAGIC = 0x54524553; // "TRES"
    private static final int VERSION = 2;
    /** Largest snapshot {@link #load} accepts: 2 GiB is the array limit of one transfer. */
    static final long MAX_SNAPSHOT_BYTES = Integer.MAX_VALUE - 64;

    private final List<Parameter> params;
    private final Optimizer optimizer;
    private final ElasticSampler sampler;
    private final List<String> tensorNames = new ArrayList<>();
    private final List<Tensor> tensors = new ArrayList<>();
    private final TreeMap<String, Long> scalars = new TreeMap<>();
    private long step;
    private byte[] committed;
    private byte[] spare;
    private long committedStep = -1;

    /** State over {@code params}, {@code optimizer} (may be null) and {@code sampler} (may be null). */
    public ElasticState(List<Parameter> params, Optimizer optimizer, ElasticSampler sampler) {
        if (params == null || params.isEmpty()) {
            throw new IllegalArgumentException("params must name at least one parameter");
        }
        this.params = List.copyOf(params);
        this.optimizer = optimizer;
        this.sampler = sampler;
        for (Parameter p : this.params) {
            tensorNames.add("param/" + p.name());
            tensors.add(p.value());
        }
        if (optimizer != null) {
            List<Tensor> st = optimizer.stateTensors();
            for (int i = 0; i < st.size(); i++) {
                tensorNames.add("optimizer/" + i);
                tensors.add(st.get(i));
            }
        }
        for (String n : tensorNames) {
            if (n.getBytes(StandardCharsets.UTF_8).length > 1024) {
                throw new IllegalArgumentException("parameter name longer than 1024 bytes: " + n.substring(0, 40) + "...");
            }
        }
    }

    /** The job's step counter: steps completed and committed or not. */
    public long step() {
        return step;
    }

    public void setStep(long step) {
        if (step < 0) {
            throw new IllegalArgumentException("step must be >= 0, got " + step);
        }
        this.step = step;
    }

    /** A named user scalar (an RNG key, a counter); part of every commit. */
    public void putLong(String key, long value) {
        scalars.put(checkKey(key), value);
    }

    public long getLong(String key) {
        Long v = scalars.get(checkKey(key));
        if (v == null) {
            throw new IllegalArgumentException("no scalar named '" + key + "'; known: " + scalars.keySet());
        }
        return v;
    }

    /** Whether a user scalar of that name exists (in the live state). */
    public boolean hasScalar(String key) {
        return scalars.containsKey(checkKey(key));
    }

    /** A named user scalar stored as its IEEE bits (exact). */
    public void putDouble(String key, double value) {
        putLong(key, Double.doubleToRawLongBits(value));
    }

    public double getDouble(String key) {
        return Double.longBitsToDouble(getLong(key));
    }

    private static String checkKey(String key) {
        if (key == null || key.isEmpty() || key.length() > 200) {
            throw new IllegalArgumentException("key must be 1-200 characters, got " + (key == null ? "null" : "'" + key + "'"));
        }
        return key;
    }

    /** Takes an in-memory snapshot of everything this state covers. */
    public void commit() {
        // encode into the array the commit before last used (nobody else holds it: committedBytes
        // hands out copies), so that a commit every step does not allocate and zero a new snapshot
        byte[] next = encode(spare);
        spare = committed;
        committed = next;
        committedStep = step;
    }

    public boolean hasCommit() {
        return committed != null;
    }

    /** The step of the last commit; -1 before the first. */
    public long committedStep() {
        return committedStep;
    }

    /** Puts every live object back to the last commit; returns the steps rolled back. */
    public long restore() {
        if (committed == null) {
            throw new IllegalStateException("restore() before any commit(): nothing to roll back to");
        }
        long rolledBack = step - committedStep;
        apply(committed);
        return rolledBack;
    }

    /** The last commit, framed, for another process ({@link #load}); a copy. */
    public byte[] committedBytes() {
        if (committed == null) {
            throw new IllegalStateException("no commit yet");
        }
        return committed.clone();
    }

    /** SHA-256 of the last commit, hex. */
    public String committedHash() {
        if (committed == null) {
            throw new IllegalStateException("no commit yet");
        }
        return HexFormat.of().formatHex(sha256(committed));
    }

    /** Takes {@code snapshot} (from {@link #committedBytes}) as the last commit and restores it. */
    public void load(byte[] snapshot) {
        apply(snapshot);
        committed = snapshot.clone();
        committedStep = step;
    }

    /**
     * Sends the committed snapshot of rank {@code root} to every rank of {@code comm},
     * restores it everywhere, and checks on every rank that all ranks now hold the same
     * snapshot (SHA-256, all-gathered). A rank whose model does not match the root's fails
     * before anyone trains on. Every rank must call it; {@code root} must have committed.
     */
    public void sync(Communicator comm, int root, Allocator allocator) {
        if (comm == null || allocator == null) {
            throw new IllegalArgumentException("comm and allocator must not be null");
        }
        if (root < 0 || root >= comm.size()) {
            throw new IllegalArgumentException("root must be in [0, " + comm.size() + "), got " + root);
        }
        boolean isRoot = comm.rank() == root;
        if (isRoot && committed == null) {
            throw new IllegalStateException("sync: the root has no commit to send");
        }
        // the size first, then the bytes
        long[] len = {isRoot ? committed.length : 0};
        try (Tensor n = Tensor.fromBytes(allocator, DType.INT64, longBytes(len[0]), 1)) {
            comm.broadcast(n, root).await();
            len[0] = ByteBuffer.wrap(n.toByteArray()).order(ByteOrder.LITTLE_ENDIAN).getLong();
        }
        if (len[0] < 16 || len[0] > MAX_SNAPSHOT_BYTES) {
            throw new IllegalStateException("sync: the root announced a snapshot of " + len[0] + " bytes");
        }
        byte[] snapshot;
        try (Tensor buf = isRoot ? Tensor.fromBytes(allocator, DType.UINT8, committed, committed.length)
                : Tensor.zeros(allocator, DType.UINT8, dev.torus.Device.cpu(), len[0])) {
            comm.broadcast(buf, root).await();
            snapshot = buf.toByteArray();
        }
        StateMismatchException own = null;
        if (!isRoot) {
            try {
                load(snapshot);
            } catch (RuntimeException e) {
                // still take part in the check below, so that no rank waits for this one
                own = e instanceof StateMismatchException sm ? sm : new StateMismatchException(e.toString());
            }
        }
        byte[] mine = own == null ? sha256(committed) : new byte[32];
        byte[] rootHash;
        List<Integer> differ = new ArrayList<>();
        try (Tensor h = Tensor.fromBytes(allocator, DType.UINT8, mine, mine.length);
             Tensor all = Tensor.zeros(allocator, DType.UINT8, dev.torus.Device.cpu(), (long) mine.length * comm.size())) {
            comm.allGather(h, all).await();
            byte[] hashes = all.toByteArray();
            rootHash = Arrays.copyOfRange(hashes, root * mine.length, (root + 1) * mine.length);
            for (int r = 0; r < comm.size(); r++) {
                if (!MessageDigest.isEqual(Arrays.copyOfRange(hashes, r * mine.length, (r + 1) * mine.length), rootHash)) {
                    differ.add(r);
                }
            }
        }
        if (own != null) {
            throw new StateMismatchException("rank " + comm.rank() + " cannot take the state of rank " + root + ": "
                    + own.getMessage(), differ);
        }
        if (!differ.isEmpty()) {
            throw new StateMismatchException("after sync, ranks " + differ + " do not hold the state of rank " + root + " ("
                    + HexFormat.of().formatHex(rootHash, 0, 8) + "...): their model differs", differ);
        }
    }

    private static byte[] longBytes(long v) {
        return ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v).array();
    }

    private static byte[] sha256(byte[] b) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(b);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is not available in this JVM", e);
        }
    }

    // ---------------------------------------------------------------- the snapshot format

    private byte[] encode(byte[] reuse) {
        long size = 4 + 4 + 8 + 8 + 4 + 4 + 8 + 4 + 8 + 4 + 4;
        for (int i = 0; i < tensors.size(); i++) {
            size += 4 + tensorNames.get(i).getBytes(StandardCharsets.UTF_8).length + 4 + 8 * tensors.get(i).rank() + 8
                    + tensors.get(i).byteSize();
        }
        size += 4;
        for (String k : scalars.keySet()) {
            size += 4 + k.getBytes(StandardCharsets.UTF_8).length + 8;
        }
        if (size > MAX_SNAPSHOT_BYTES) {
            throw new IllegalStateException("the elastic state is " + size + " bytes; one snapshot holds at most "
                    + MAX_SNAPSHOT_BYTES);
        }
        byte[] out = reuse != null && reuse.length == size ? reuse : new byte[(int) size];
        ByteBuffer b = ByteBuffer.wrap(out).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(MAGIC).putInt(VERSION).putLong(step);
        b.putLong(sampler == null ? -1 : sampler.epoch()).putInt(sampler == null ? -1 : sampler.consumed());
        // the sampler's identity: another dataset size, seed or shuffle would silently draw other samples
        b.putInt(sampler == null ? -1 : sampler.datasetSize()).putLong(sampler == null ? 0 : sampler.seed())
                .putInt(sampler == null ? 0 : sampler.shuffle() ? 1 : 0);
        b.putLong(optimizer == null ? 0 : optimizer.steps()).putFloat(optimizer == null ? 0f : optimizer.learningRate());
        b.putInt(tensors.size());
        for (int i = 0; i < tensors.size(); i++) {
            byte[] name = tensorNames.get(i).getBytes(StandardCharsets.UTF_8);
            Tensor t = tensors.get(i);
            b.putInt(name.length).put(name).putInt(t.rank());
            for (long d : t.shape()) {
                b.putLong(d);
            }
            long bytes = t.byteSize();
            b.putLong(bytes);
            t.copyBytesTo(out, b.position());
            b.position(b.position() + (int) bytes);
        }
        b.putInt(scalars.size());
        for (Map.Entry<String, Long> e : scalars.entrySet()) {
            byte[] k = e.getKey().getBytes(StandardCharsets.UTF_8);
            b.putInt(k.length).put(k).putLong(e.getValue());
        }
        return out;
    }

    /** Checks {@code snap} against the live objects completely, then writes it into them. */
    private void apply(byte[] snap) {
        if (snap == null) {
            throw new IllegalArgumentException("snapshot must not be null");
        }
        ByteBuffer b = ByteBuffer.wrap(snap).order(ByteOrder.LITTLE_ENDIAN);
        try {
            if (b.getInt() != MAGIC || b.getInt() != VERSION) {
                throw new StateMismatchException("not an elastic-state snapshot of version " + VERSION);
            }
            long stepIn = b.getLong();
            long epochIn = b.getLong();
            int consumedIn = b.getInt();
            int sizeIn = b.getInt();
            long seedIn = b.getLong();
            int shuffleIn = b.getInt();
            long optSteps = b.getLong();
            float lr = b.getFloat();
            int n = b.getInt();
            if (n != tensors.size()) {
                throw new StateMismatchException("the snapshot holds " + n + " tensors, this model and optimizer "
                        + tensors.size() + " (" + tensorNames + ")");
            }
            int[] offsets = new int[n];
            for (int i = 0; i < n; i++) {
                int nameLen = b.getInt();
                if (nameLen < 0 || nameLen > 4096) {
                    throw new StateMismatchException("malformed snapshot: tensor name of " + nameLen + " bytes");
                }
                byte[] name = new byte[nameLen];
                b.get(name);
                String nm = new String(name, StandardCharsets.UTF_8);
                Tensor t = tensors.get(i);
                if (!nm.equals(tensorNames.get(i))) {
                    throw new StateMismatchException("tensor " + i + " is '" + nm + "' in the snapshot but '"
                            + tensorNames.get(i) + "' here");
                }
                int rank = b.getInt();
                if (rank < 0 || rank > 16) {
                    throw new StateMismatchException("malformed snapshot: '" + nm + "' has rank " + rank);
                }
                long[] shape = new long[rank];
                for (int d = 0; d < rank; d++) {
                    shape[d] = b.getLong();
                }
                if (!Arrays.equals(shape, t.shape())) {
                    throw new StateMismatchException("'" + nm + "' has shape " + Arrays.toString(shape)
                            + " in the snapshot but " + Arrays.toString(t.shape()) + " here");
                }
                long len = b.getLong();
                if (len != t.byteSize()) {
                    throw new StateMismatchException("'" + nm + "' holds " + len + " bytes in the snapshot, "
                            + t.byteSize() + " here (" + t.dtype() + ")");
                }
                offsets[i] = b.position();
                b.position(b.position() + (int) len);
            }
            int ns = b.getInt();
            if (ns < 0 || ns > 100_000) {
                throw new StateMismatchException("malformed snapshot: " + ns + " scalars");
            }
            TreeMap<String, Long> sc = new TreeMap<>();
            for (int i = 0; i < ns; i++) {
                int kl = b.getInt();
                if (kl < 1 || kl > 1024) {
                    throw new StateMismatchException("malformed snapshot: scalar name of " + kl + " bytes");
                }
                byte[] k = new byte[kl];
                b.get(k);
                sc.put(new String(k, StandardCharsets.UTF_8), b.getLong());
            }
            if (b.hasRemaining()) {
                throw new StateMismatchException("malformed snapshot: " + b.remaining() + " bytes after the end");
            }
            if ((sampler == null) != (consumedIn < 0)) {
                throw new StateMismatchException("the snapshot " + (consumedIn < 0 ? "has no" : "has a")
                        + " sampler position, this state " + (sampler == null ? "no" : "a") + " sampler");
            }
            if (sampler != null) {
                if (sizeIn != sampler.datasetSize() || seedIn != sampler.seed() || (shuffleIn == 1) != sampler.shuffle()) {
                    throw new StateMismatchException("the sampler differs: the snapshot's has dataset size " + sizeIn
                            + ", seed " + seedIn + ", shuffle " + (shuffleIn == 1) + "; this one " + sampler.datasetSize()
                            + ", " + sampler.seed() + ", " + sampler.shuffle());
                }
                if (epochIn < 0 || consumedIn > sampler.datasetSize()) {
                    throw new StateMismatchException("malformed snapshot: sampler position epoch " + epochIn
                            + ", consumed " + consumedIn);
                }
            }
            if (optimizer != null && (optSteps < 0 || !(lr > 0f) || Float.isInfinite(lr))) {
                throw new StateMismatchException("malformed snapshot: optimizer steps " + optSteps + ", learning rate "
                        + lr);
            }
            // everything checked: now write
            for (int i = 0; i < n; i++) {
                Tensor t = tensors.get(i);
                byte[] d = Arrays.copyOfRange(snap, offsets[i], offsets[i] + (int) t.byteSize());
                try (Tensor src = Tensor.fromBytes(t.allocator(), t.dtype(), d, t.shape())) {
                    t.copyFrom(src);
                }
            }
            if (optimizer != null) {
                optimizer.restoreSteps(optSteps);
                optimizer.setLearningRate(lr);
            }
            if (sampler != null) {
                sampler.setPosition(epochIn, consumedIn);
            }
            scalars.clear();
            scalars.putAll(sc);
            step = stepIn;
        } catch (java.nio.BufferUnderflowException | IndexOutOfBoundsException e) {
            throw new StateMismatchException("malformed snapshot: it ends early (" + snap.length + " bytes)");
        }
    }
}
