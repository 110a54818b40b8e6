package dev.torus.parallel;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.tensor.Tensor;
import dev.torus.comm.Communicator;
import dev.torus.comm.CompressedAllReduce;
import dev.torus.comm.OpOptions;
import dev.torus.comm.ReduceOp;
import dev.torus.comm.Work;
import dev.torus.memory.Allocator;
import dev.torus.nn.Layer;
import dev.torus.nn.Parameter;
import dev.torus.recompute.BackwardListener;
import dev.torus.recompute.CheckpointedSequential;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * Data-parallel training over a {@link Communicator}: every rank holds a replica of
 * the same parameters, computes gradients on its own shard of the batch, and
 * {@link #awaitGradients()} leaves every rank with the average of all ranks'
 * gradients, so the optimizer steps stay identical everywhere.
 *
 * <p><b>Buckets.</b> Gradients live inside flat FLOAT32 buckets (default 25 MiB),
 * filled in reverse parameter order because backward produces the last layers'
 * gradients first. Each parameter's {@link Parameter#grad()} is replaced by a view
 * into its bucket, so layers accumulate straight into the buffer that goes on the
 * wire: no copy in, no copy out.
 *
 * <p><b>Overlap.</b> A bucket's reduction starts asynchronously as soon as every
 * gradient in it is final ({@link #gradientReady}, or automatically for a
 * {@link CheckpointedSequential} given to {@link #attach}); buckets always start in
 * the same order on every rank. {@link #awaitGradients()} starts whatever is left
 * and waits. {@link #stats()} reports how much of the communication time backward
 * hid.
 *
 * <p><b>Start.</b> Building a DataParallel is a collective: rank 0's parameter
 * values are broadcast to every rank and then verified with a hash comparison.
 *
 * <p>Ownership: the DataParallel borrows the communicator and the parameters, owns
 * the buckets, and must be closed before them. {@link #close()} gives every
 * parameter its own gradient tensor back (with the current values), so the model
 * stays usable. Not thread-safe: call it from the training thread.
 */
public final class DataParallel implements AutoCloseable {
    /** Default bucket size, as in torch DistributedDataParallel. */
    public static final long DEFAULT_BUCKET_CAP_BYTES = 25L << 20;

    private final Communicator comm;
    private final List<Parameter> params;
    private final CommHook hook;
    private final boolean overlap;
    private final int consistencyEvery;
    private final OpOptions options;
    private final Allocator allocator;
    private final CompressedAllReduce reducer; // null: backend all-reduce
    private final List<Bucket> buckets = new ArrayList<>();
    private final Map<Parameter, Integer> bucketOf = new IdentityHashMap<>();
    private final Map<Parameter, Boolean> ready = new IdentityHashMap<>();
    private int nextLaunch;
    private int noSyncDepth;
    private long steps;
    private long commNanos;
    private long exposedNanos;
    private long payloadBytes;
    /** The communicator's measured bytes when construction finished (after the initial broadcast). */
    private long bytesAtStart;
    private boolean closed;

    private static final class Bucket {
        final int index;
        final String key;   // names the bucket's error-feedback state in the compressor
        final Tensor flat;
        final List<Parameter> members = new ArrayList<>();
        int pending;
        Work work;
        long launchNanos;
        volatile long doneNanos;

        Bucket(int index, Tensor flat) {
            this.index = index;
            this.key = "bucket-" + index;
            this.flat = flat;
        }
    }

    private DataParallel(Builder b) {
        this.comm = b.comm;
        this.params = List.copyOf(b.params);
        this.hook = b.hook;
        this.overlap = b.overlap;
        this.consistencyEvery = b.consistencyEvery;
        this.options = b.timeout == null ? OpOptions.defaults() : OpOptions.defaults().withTimeout(b.timeout);
        Device device = params.get(0).value().device();
        Allocator parent = b.allocator != null ? b.allocator : params.get(0).value().allocator();
        this.allocator = parent.newChildAllocator("data-parallel", Long.MAX_VALUE);
        CompressedAllReduce r = null;
        try {
            boolean exchange = hook.compression() != null && (device.isCpu() || hook.isLossy());
            r = exchange && comm.size() > 1 ? new CompressedAllReduce(comm, hook.compression(), allocator) : null;
            makeBuckets(b.bucketCapBytes, device);
        } catch (RuntimeException e) {
            releaseBuckets();
            if (r != null) {
                r.close();
            }
            allocator.close();
            throw e;
        }
        this.reducer = r;
        try {
            broadcastFromRankZero();
            checkConsistency();
        } catch (RuntimeException e) {
            close();
            throw e;
        }
        this.bytesAtStart = comm.bytesSent();
    }

    /** Starts a builder for {@code parameters} (the model's, in forward order) over {@code comm}. */
    public static Builder builder(Communicator comm, List<Parameter> parameters) {
        return new Builder(comm, parameters);
    }

    /** Configuration; every setting is validated in {@link #build()}. */
    public static final class Builder {
        private final Communicator comm;
        private final List<Parameter> params;
        private long bucketCapBytes = DEFAULT_BUCKET_CAP_BYTES;
        private CommHook hook = CommHook.none();
        private boolean overlap = true;
        private int consistencyEvery;
        private Allocator allocator;
        private java.time.Duration timeout;

        private Builder(Communicator comm, List<Parameter> params) {
            this.comm = comm;
            this.params = params;
        }

        /** Bucket capacity in bytes (a larger parameter gets a bucket of its own). */
        public Builder bucketCapBytes(long bytes) {
            this.bucketCapBytes = bytes;
            return this;
        }

        public Builder hook(CommHook hook) {
            this.hook = hook;
            return this;
        }

        /** False starts every reduction in {@link #awaitGradients()}, after backward (for comparison). */
        public Builder overlap(boolean overlap) {
            this.overlap = overlap;
            return this;
        }

        /** Compares a parameter hash across ranks every {@code steps} synchronized steps; 0 turns it off. */
        public Builder consistencyCheckEvery(int steps) {
            this.consistencyEvery = steps;
            return this;
        }

        /** Parent of the buckets' allocator; default: the first parameter's allocator. */
        public Builder allocator(Allocator allocator) {
            this.allocator = allocator;
            return this;
        }

        /** Timeout of each reduction; default: the communicator's. */
        public Builder timeout(java.time.Duration timeout) {
            this.timeout = timeout;
            return this;
        }

        /** Validates, builds the buckets, and broadcasts rank 0's parameters (a collective). */
        public DataParallel build() {
            if (comm == null) {
                throw new IllegalArgumentException("comm must not be null");
            }
            if (params == null || params.isEmpty()) {
                throw new IllegalArgumentException("parameters must be a non-empty list");
            }
            Map<Parameter, Boolean> seen = new IdentityHashMap<>();
            Device device = null;
            for (int i = 0; i < params.size(); i++) {
                Parameter p = params.get(i);
                if (p == null) {
                    throw new IllegalArgumentException("parameters[" + i + "] must not be null");
                }
                if (seen.put(p, Boolean.TRUE) != null) {
                    throw new IllegalArgumentException("parameters[" + i + "] (" + p.name() + ") appears twice");
                }
                p.value().ensureOpen();
                if (p.value().dtype() != DType.FLOAT32) {
                    throw new IllegalArgumentException("parameters[" + i + "] must be FLOAT32, got " + p.value().dtype());
                }
                if (device == null) {
                    device = p.value().device();
                } else if (!device.equals(p.value().device())) {
                    throw new IllegalArgumentException("parameters must all live on one device: parameters[0] is on "
                            + device + ", parameters[" + i + "] on " + p.value().device());
                }
            }
            if (bucketCapBytes < 4) {
                throw new IllegalArgumentException("bucketCapBytes must be at least 4 (one float), got " + bucketCapBytes);
            }
            if (hook == null) {
                throw new IllegalArgumentException("hook must not be null");
            }
            if (hook.isLossy() && !device.isCpu()) {
                throw new IllegalArgumentException("hook " + hook + " needs CPU parameters: compressed reduction of CUDA "
                        + "buckets is not implemented yet; use CommHook.none() on " + device);
            }
            if (consistencyEvery < 0) {
                throw new IllegalArgumentException("consistencyCheckEvery must be >= 0 (0 = off), got "
                        + consistencyEvery);
            }
            if (timeout != null && (timeout.isNegative() || timeout.isZero())) {
                throw new IllegalArgumentException("timeout must be positive, got " + timeout);
            }
            return new DataParallel(this);
        }
    }

    // ------------------------------------------------------------------ buckets

    private void makeBuckets(long capBytes, Device device) {
        List<List<Parameter>> groups = new ArrayList<>();
        List<Parameter> cur = new ArrayList<>();
        long curBytes = 0;
        for (int i = params.size() - 1; i >= 0; i--) {
            Parameter p = params.get(i);
            long bytes = 4 * p.numel();
            if (!cur.isEmpty() && curBytes + bytes > capBytes) {
                groups.add(cur);
                cur = new ArrayList<>();
                curBytes = 0;
            }
            cur.add(p);
            curBytes += bytes;
        }
        groups.add(cur);
        for (List<Parameter> g : groups) {
            long n = g.stream().mapToLong(Parameter::numel).sum();
            Bucket b = new Bucket(buckets.size(), Tensor.zeros(allocator, DType.FLOAT32, device, n));
            buckets.add(b);
            long off = 0;
            for (Parameter p : g) {
                Tensor view = b.flat.view(off, p.value().shape());
                try {
                    view.copyFrom(p.grad());
                    p.replaceGrad(view);
                } catch (RuntimeException e) {
                    view.close();
                    throw e;
                }
                b.members.add(p);
                bucketOf.put(p, b.index);
                off += p.numel();
            }
            b.pending = b.members.size();
        }
    }

    private void releaseBuckets() {
        for (Bucket b : buckets) {
            for (Parameter p : b.members) {
                Tensor view = p.grad();
                if (p.value().isClosed() || view.isClosed()) {
                    continue;
                }
                Tensor own = Tensor.zeros(p.value().allocator(), DType.FLOAT32, p.value().device(), p.value().shape());
                own.copyFrom(view);
                p.replaceGrad(own);
            }
            b.flat.close();
        }
        buckets.clear();
    }

    // ------------------------------------------------------------------ backward side

    /**
     * Registers with {@code engine} so that each segment's parameters are marked ready
     * as its backward finishes; {@code layers} are the engine's segments, in order.
     * Parameters not owned by this DataParallel are ignored.
     */
    public void attach(CheckpointedSequential engine, List<? extends Layer> layers) {
        ensureOpen();
        if (engine == null) {
            throw new IllegalArgumentException("engine must not be null");
        }
        if (layers == null) {
            throw new IllegalArgumentException("layers must not be null");
        }
        List<List<Parameter>> perSegment = new ArrayList<>();
        for (Layer l : layers) {
            List<Parameter> mine = new ArrayList<>();
            for (Parameter p : l.parameters()) {
                if (bucketOf.containsKey(p)) {
                    mine.add(p);
                }
            }
            perSegment.add(mine);
        }
        engine.addBackwardListener(new BackwardListener() {
            @Override
            public void segmentDone(int index) {
                if (index < perSegment.size()) {
                    for (Parameter p : perSegment.get(index)) {
                        gradientReady(p);
                    }
                }
            }
        });
    }

    /**
     * Says that {@code p}'s gradient is final for this step. When its bucket is
     * complete (and every earlier bucket has started), the bucket's reduction starts.
     * Ignored inside {@link #noSync()}.
     */
    public void gradientReady(Parameter p) {
        ensureOpen();
        Integer bi = p == null ? null : bucketOf.get(p);
        if (bi == null) {
            throw new IllegalArgumentException("parameter " + p + " is not managed by this DataParallel");
        }
        if (noSyncDepth > 0) {
            return;
        }
        if (ready.put(p, Boolean.TRUE) != null) {
            throw new IllegalStateException("gradient of " + p.name() + " was marked ready twice in one step; call "
                    + "awaitGradients() once per backward");
        }
        Bucket b = buckets.get(bi);
        b.pending--;
        if (overlap) {
            launchCompleteBuckets();
        }
    }

    private void launchCompleteBuckets() {
        while (nextLaunch < buckets.size() && buckets.get(nextLaunch).pending == 0) {
            launch(buckets.get(nextLaunch++));
        }
    }

    private void launch(Bucket b) {
        if (comm.size() == 1) {
            return;
        }
        b.launchNanos = System.nanoTime();
        b.doneNanos = 0;
        Work w = reducer != null
                ? reducer.allReduce(b.key, b.flat, ReduceOp.AVG, options)
                : comm.allReduce(b.flat, b.flat, ReduceOp.AVG, options);
        b.work = w;
        w.toFuture().whenComplete((v, e) -> b.doneNanos = System.nanoTime());
        payloadBytes += b.flat.byteSize();
    }

    /**
     * Starts every reduction not yet started and waits for all of them: afterwards
     * every gradient holds the average over ranks. Call it once per backward, before
     * the optimizer step. Inside {@link #noSync()} it returns at once and gradients
     * keep accumulating locally.
     */
    public void awaitGradients() {
        ensureOpen();
        if (noSyncDepth > 0) {
            resetStep();
            return;
        }
        long t0 = System.nanoTime();
        try {
            while (nextLaunch < buckets.size()) {
                launch(buckets.get(nextLaunch++));
            }
            for (Bucket b : buckets) {
                if (b.work != null) {
                    b.work.await();
                }
            }
            long t1 = System.nanoTime();
            exposedNanos += t1 - t0;
            long prevDone = Long.MIN_VALUE;
            for (Bucket b : buckets) {
                if (b.work != null) {
                    long done = b.doneNanos != 0 ? b.doneNanos : t1;
                    commNanos += done - Math.max(b.launchNanos, prevDone);
                    prevDone = done;
                }
            }
            steps++;
        } finally {
            resetStep();
        }
        if (consistencyEvery > 0 && steps % consistencyEvery == 0) {
            checkConsistency();
        }
    }

    private void resetStep() {
        ready.clear();
        nextLaunch = 0;
        for (Bucket b : buckets) {
            b.pending = b.members.size();
            b.work = null;
        }
    }

    /** Handle returned by {@link #noSync()}; closing it ends the local-accumulation window. */
    public interface NoSync extends AutoCloseable {
        @Override
        void close();
    }

    /**
     * Opens a window in which backward passes only accumulate gradients locally
     * (gradient accumulation): {@link #gradientReady} and {@link #awaitGradients()}
     * do nothing until the returned handle is closed. The next synchronized step
     * then averages everything accumulated. Must not be opened mid-step.
     */
    public NoSync noSync() {
        ensureOpen();
        if (!ready.isEmpty() || nextLaunch > 0) {
            throw new IllegalStateException("noSync() must not start in the middle of a step: some gradients were "
                    + "already marked ready; call awaitGradients() first");
        }
        noSyncDepth++;
        return new NoSync() {
            private boolean done;

            @Override
            public void close() {
                if (!done) {
                    done = true;
                    noSyncDepth--;
                }
            }
        };
    }

    /** Zeroes every gradient, one fill per bucket. */
    public void zeroGrad() {
        ensureOpen();
        for (Bucket b : buckets) {
            b.flat.zero();
        }
    }

    // ------------------------------------------------------------------ replicas

    private void broadcastFromRankZero() {
        if (comm.size() == 1) {
            return;
        }
        for (Parameter p : params) {
            comm.broadcast(p.value(), p.value(), 0, options).await();
        }
    }

    /**
     * A collective: every rank hashes each parameter, the hashes are all-gathered, and
     * if any rank differs from rank 0 every rank throws
     * {@link ReplicaDivergenceException} naming the first such rank and parameter.
     */
    public void checkConsistency() {
        ensureOpen();
        int world = comm.size();
        if (world == 1) {
            return;
        }
        int n = params.size();
        ByteBuffer bb = ByteBuffer.allocate(8 * n).order(ByteOrder.LITTLE_ENDIAN);
        for (Parameter p : params) {
            bb.putLong(ParameterHash.of(p.value()));
        }
        Device device = params.get(0).value().device();
        long[] all;
        try (Tensor mineHost = Tensor.fromBytes(allocator, DType.INT64, bb.array(), n);
             Tensor mine = device.isCpu() ? null : mineHost.to(device);
             Tensor gathered = Tensor.zeros(allocator, DType.INT64, device, (long) world * n)) {
            comm.allGather(mine != null ? mine : mineHost, gathered, options).await();
            ByteBuffer out = ByteBuffer.wrap(gathered.toByteArray()).order(ByteOrder.LITTLE_ENDIAN);
            all = new long[world * n];
            for (int i = 0; i < all.length; i++) {
                all[i] = out.getLong(8 * i);
            }
        }
        for (int r = 1; r < world; r++) {
            for (int i = 0; i < n; i++) {
                if (all[r * n + i] != all[i]) {
                    String name = params.get(i).name();
                    throw new ReplicaDivergenceException("data-parallel replicas diverged after " + steps
                            + " synchronized steps: rank " + r + " holds different values than rank 0 for parameter '"
                            + name + "' (hash " + Long.toHexString(all[r * n + i]) + " vs " + Long.toHexString(all[i])
                            + "); look for rank-dependent code or a step that skipped awaitGradients()", r, name);
                }
            }
        }
    }

    // ------------------------------------------------------------------ reporting

    /**
     * Counters since construction: synchronized steps, bucket bytes reduced, bytes
     * this rank sent (measured by the communicator, see {@link Communicator#bytesSent()}:
     * the gradient reductions and the consistency checks, plus anything else the caller
     * ran on the same communicator meanwhile), reduction time, and how much of it the
     * training thread waited for in {@link #awaitGradients()}.
     */
    public record Stats(long steps, long payloadBytes, long wireBytes, double commSeconds, double exposedSeconds) {
        /** The fraction of reduction time hidden behind backward, in [0, 1]. */
        public double overlapFraction() {
            return commSeconds <= 0 ? 0 : Math.max(0, Math.min(1, 1 - exposedSeconds / commSeconds));
        }
    }

    public Stats stats() {
        long wire = comm.bytesSent() - bytesAtStart;
        return new Stats(steps, payloadBytes, wire, commNanos / 1e9, exposedNanos / 1e9);
    }

    public CommHook hook() {
        return hook;
    }

    public Communicator communicator() {
        return comm;
    }

    /** The parameters in each bucket, in bucket order (reverse parameter order). */
    public List<List<Parameter>> buckets() {
        List<List<Parameter>> out = new ArrayList<>();
        for (Bucket b : buckets) {
            out.add(List.copyOf(b.members));
        }
        return out;
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("DataParallel is closed");
        }
    }

    /**
     * Waits for reductions still running (bounded by their timeouts), gives each
     * parameter its own gradient tensor back, and frees the buckets.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        RuntimeException failure = null;
        for (Bucket b : buckets) {
            if (b.work != null) {
                try {
                    b.work.await();
                } catch (RuntimeException e) {
                    failure = failure == null ? e : failure;
                }
            }
        }
        releaseBuckets();
        if (reducer != null) {
            reducer.close();
        }
        allocator.close();
        if (failure != null) {
            throw failure;
        }
    }

    @Override
    public String toString() {
        return "DataParallel[rank " + comm.rank() + "/" + comm.size() + ", " + params.size() + " parameters in "
                + buckets.size() + " buckets, hook " + hook + "]";
    }
}
