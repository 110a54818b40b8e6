package dev.torus.recompute;

import dev.torus.tensor.Tensor;
import dev.torus.memory.Allocator;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Runs a sequence of {@link Segment}s forward and backward, keeping only the
 * segment inputs its {@link CheckpointPolicy} chooses (stored as its
 * {@link CheckpointStorage} says) and recomputing the rest during backward, from
 * the nearest kept input before them. The forward pass itself always runs on
 * exact FLOAT32 values; compressed checkpoints only change what backward
 * recomputes from.
 *
 * <p>Recomputation is exact: every segment gets the same random key when it is
 * recomputed, so with FLOAT32 checkpoints the gradients are bit-identical to a run
 * that keeps everything.
 *
 * <p>Memory is allocated from three child allocators of the one passed in, so peaks
 * are reported separately: {@code checkpoints} (kept inputs), {@code activations}
 * (every other forward output, recomputed inputs, decoded checkpoints) and
 * {@code workspace} (gradients and scratch during backward). The first two share a
 * parent, {@code forward}, whose peak is {@link #peakActivationBytes()}.
 *
 * <p>Ownership: the engine owns its checkpoints and intermediates. {@link #forward}
 * returns the output, which the caller owns and must close before closing the
 * engine (it is accounted in the engine's allocator); the input is copied, so the
 * caller may close it at once. {@link #backward} returns the gradient of the input
 * (caller owns it); the caller's {@code gradOutput} is only read. {@link #close()}
 * frees anything left (for example after a forward without a backward). Not
 * thread-safe.
 */
public final class CheckpointedSequential implements AutoCloseable {
    private static final int RNG_SHIFT = 40;
    private static final CheckpointStorage EXACT = CheckpointStorage.fp32();

    private final List<Segment> segments;
    private final CheckpointPolicy policy;
    private final CheckpointStorage storage;
    private final long seed;
    private final Allocator root;
    private final Allocator forwardMem;
    private final Allocator checkpoints;
    private final Allocator activations;
    private final Allocator workspace;
    private final CheckpointStorage.Stored[] kept;
    private boolean[] keep;
    private long[] planShape;
    private PlanSizes planSizes;
    private long step = -1;
    private boolean forwardDone;
    private boolean closed;
    private long checkpointBytes;
    private long[] outputShape;
    private final List<BackwardListener> listeners = new ArrayList<>();

    /** FLOAT32 checkpoints. */
    public CheckpointedSequential(List<? extends Segment> segments, CheckpointPolicy policy, Allocator allocator, long seed) {
        this(segments, policy, CheckpointStorage.fp32(), allocator, seed);
    }

    /**
     * @param segments  the model, in order (the engine does not own or close them)
     * @param allocator parent of the engine's allocators; must outlive the engine
     * @param seed      seed of the counter-based randomness the segments draw
     */
    public CheckpointedSequential(List<? extends Segment> segments, CheckpointPolicy policy, CheckpointStorage storage,
                                  Allocator allocator, long seed) {
        if (segments == null || segments.isEmpty()) {
            throw new IllegalArgumentException("segments must be a non-empty list");
        }
        for (int i = 0; i < segments.size(); i++) {
            if (segments.get(i) == null) {
                throw new IllegalArgumentException("segments[" + i + "] must not be null");
            }
        }
        if (policy == null) {
            throw new IllegalArgumentException("policy must not be null");
        }
        if (storage == null) {
            throw new IllegalArgumentException("storage must not be null");
        }
        if (allocator == null) {
            throw new IllegalArgumentException("allocator must not be null");
        }
        this.segments = List.copyOf(segments);
        this.policy = policy;
        this.storage = storage;
        this.seed = seed;
        this.root = allocator.newChildAllocator("checkpointed-sequential", Long.MAX_VALUE);
        this.forwardMem = root.newChildAllocator("forward", Long.MAX_VALUE);
        this.checkpoints = forwardMem.newChildAllocator("checkpoints", Long.MAX_VALUE);
        this.activations = forwardMem.newChildAllocator("activations", Long.MAX_VALUE);
        this.workspace = root.newChildAllocator("workspace", Long.MAX_VALUE);
        this.kept = new CheckpointStorage.Stored[this.segments.size()];
        if (!policy.needsSizes()) {
            this.keep = policy.plan(this.segments, null);
            this.keep[0] = true;
        }
    }

    /**
     * Registers {@code listener} for every later {@link #backward}: it hears each
     * segment finish, in backward order, then the end of the pass.
     */
    public void addBackwardListener(BackwardListener listener) {
        if (listener == null) {
            throw new IllegalArgumentException("listener must not be null");
        }
        listeners.add(listener);
    }

    /** Removes a listener added by {@link #addBackwardListener}; no effect if it is absent. */
    public void removeBackwardListener(BackwardListener listener) {
        listeners.remove(listener);
    }

    public CheckpointPolicy policy() {
        return policy;
    }

    public CheckpointStorage storage() {
        return storage;
    }

    /**
     * Indices of the segments whose inputs are kept. For the budget policy this is
     * known after the first forward (the plan depends on the input shape).
     */
    public int[] checkpointIndices() {
        if (keep == null) {
            throw new IllegalStateException("the " + policy + " policy plans at the first forward(); call it first");
        }
        return java.util.stream.IntStream.range(0, keep.length).filter(i -> keep[i]).toArray();
    }

    /**
     * The peak bytes of checkpoints plus activations the current plan is expected
     * to reach for the last input shape (the model in docs/RECOMPUTE.md), or -1
     * before the first forward.
     */
    public long plannedPeakBytes() {
        return planSizes == null ? -1 : planSizes.peak(keep);
    }

    private SegmentContext ctx(int i, Allocator a, boolean recomputing) {
        return new SegmentContext(a, seed, ((step * segments.size() + i) << RNG_SHIFT), i, recomputing);
    }

    /** Runs every segment; keeps the chosen inputs. The caller owns the returned output. */
    public Tensor forward(Tensor input) {
        ensureOpen();
        if (input == null) {
            throw new IllegalArgumentException("input must not be null");
        }
        input.ensureOpen();
        if (input.dtype() != dev.torus.DType.FLOAT32) {
            throw new IllegalArgumentException("input must be FLOAT32, got " + input.dtype());
        }
        if (forwardDone) {
            releaseCheckpoints(); // a forward without backward (evaluation): drop its checkpoints
            forwardDone = false;
        }
        planFor(input.shape());
        step++;
        int n = segments.size();
        checkpointBytes = 0;
        Tensor cur = null;
        boolean curKept = false;
        try {
            kept[0] = storage.encode(input, checkpoints);
            checkpointBytes += kept[0].byteSize();
            if (storage.isExact()) {
                cur = kept[0].plain;
                curKept = true;
            } else {
                cur = EXACT.encode(input, activations).plain;   // forward itself stays exact
            }
            for (int i = 0; i < n; i++) {
                boolean outKept = i + 1 < n && keep[i + 1];
                Allocator outAlloc = outKept && storage.isExact() ? checkpoints : activations;
                Tensor out = call(i, cur, outAlloc, false);
                if (!curKept) {
                    cur.close();
                }
                cur = out;
                curKept = false;
                if (outKept) {
                    if (storage.isExact()) {
                        kept[i + 1] = storage.adopt(out);
                        curKept = true;
                    } else {
                        kept[i + 1] = storage.encode(out, checkpoints);
                    }
                    checkpointBytes += kept[i + 1].byteSize();
                }
            }
        } catch (RuntimeException e) {
            if (cur != null && !curKept) {
                cur.close();
            }
            releaseCheckpoints();
            throw e;
        }
        forwardDone = true;
        outputShape = cur.shape();
        if (curKept) {
            throw new IllegalStateException("internal: the output cannot be a checkpoint");
        }
        return cur;
    }

    private void planFor(long[] shape) {
        if (planShape != null && Arrays.equals(planShape, shape)) {
            return;
        }
        int n = segments.size();
        long[] act = new long[n + 1];
        long[] stored = new long[n];
        double[] cost = new double[n];
        long[] s = shape.clone();
        for (int i = 0; i <= n; i++) {
            long numel = numel(s);
            act[i] = numel * 4;
            if (i < n) {
                stored[i] = storage.storedBytes(numel);
                long[] next = segments.get(i).outputShape(s);
                if (next == null) {
                    throw new IllegalStateException("segment " + i + " returned a null outputShape");
                }
                s = next;
            }
        }
        for (int i = 0; i < n; i++) {
            // GEMM-like segments cost about 8x an element-wise one per output byte (docs/RECOMPUTE.md)
            cost[i] = act[i + 1] * (segments.get(i).cheapToRecompute() ? 1.0 : 8.0);
        }
        PlanSizes sizes = new PlanSizes(act, stored, cost, storage.isExact());
        if (policy.needsSizes()) {
            boolean[] k = policy.plan(segments, sizes);
            k[0] = true;
            keep = k;
        }
        planSizes = sizes;
        planShape = shape.clone();
    }

    private static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    private Tensor call(int i, Tensor in, Allocator a, boolean recomputing) {
        Tensor out = segments.get(i).forward(in, ctx(i, a, recomputing));
        if (out == null) {
            throw new IllegalStateException("segment " + i + " returned null from forward");
        }
        if (policy.needsSizes()) {
            long[] predicted = segments.get(i).outputShape(in.shape());
            if (!Arrays.equals(predicted, out.shape())) {
                out.close();
                throw new IllegalStateException("segment " + i + " (" + segments.get(i) + ") returned shape "
                        + Arrays.toString(out.shape()) + " but its outputShape() says " + Arrays.toString(predicted)
                        + "; the budget policy plans with outputShape(), so the segment must override it");
            }
        }
        return out;
    }

    /**
     * Back-propagates {@code gradOutput} (the gradient of the last forward's output)
     * and returns the gradient of that forward's input. Allowed once per forward.
     */
    public Tensor backward(Tensor gradOutput) {
        ensureOpen();
        if (step < 0) {
            throw new IllegalStateException("backward() called before forward()");
        }
        if (!forwardDone) {
            throw new IllegalStateException("backward() already ran for the last forward(); call forward() again first");
        }
        if (gradOutput == null) {
            throw new IllegalArgumentException("gradOutput must not be null");
        }
        gradOutput.ensureOpen();
        if (!Arrays.equals(gradOutput.shape(), outputShape)) {
            throw new IllegalArgumentException("gradOutput must have the output's shape " + Arrays.toString(outputShape)
                    + ", got " + Arrays.toString(gradOutput.shape()));
        }
        Tensor g = gradOutput;
        boolean gOwned = false;
        try {
            int i = segments.size() - 1;
            while (i >= 0) {
                int a = i;
                while (!keep[a]) {
                    a--;
                }
                // recompute the inputs of segments a+1..i from the checkpoint at a
                List<Tensor> inputs = new ArrayList<>();
                Tensor start = storage.decode(kept[a], activations);
                boolean startOwned = start != kept[a].plain;
                inputs.add(start);
                try {
                    for (int j = a; j < i; j++) {
                        inputs.add(call(j, inputs.get(inputs.size() - 1), activations, true));
                    }
                    for (int j = i; j >= a; j--) {
                        Tensor dx = segments.get(j).backward(inputs.get(j - a), g, ctx(j, workspace, false));
                        if (dx == null) {
                            throw new IllegalStateException("segment " + j + " returned null from backward");
                        }
                        if (gOwned) {
                            g.close();
                        }
                        g = dx;
                        gOwned = true;
                        for (BackwardListener l : listeners) {
                            l.segmentDone(j);
                        }
                    }
                } finally {
                    for (int k = startOwned ? 0 : 1; k < inputs.size(); k++) {
                        inputs.get(k).close();
                    }
                }
                kept[a].close();     // this checkpoint is done with
                kept[a] = null;
                i = a - 1;
            }
            Tensor result = g;
            gOwned = false;
            return result;
        } finally {
            if (gOwned) {
                g.close();
            }
            releaseCheckpoints();
            forwardDone = false;
            for (BackwardListener l : listeners) {
                l.backwardDone();
            }
        }
    }

    private void releaseCheckpoints() {
        for (int i = 0; i < kept.length; i++) {
            if (kept[i] != null) {
                kept[i].close();
                kept[i] = null;
            }
        }
    }

    /** Bytes of the checkpoints kept by the last forward. */
    public long checkpointBytes() {
        return checkpointBytes;
    }

    /** Peak bytes of checkpoints plus activations (everything forward allocates) since the last reset. */
    public long peakActivationBytes() {
        return forwardMem.peakBytes();
    }

    /** Peak bytes of the checkpoints alone since the last reset. */
    public long peakCheckpointBytes() {
        return checkpoints.peakBytes();
    }

    /** Peak bytes of gradients and scratch produced during backward since the last reset. */
    public long peakWorkspaceBytes() {
        return workspace.peakBytes();
    }

    /** Starts a new peak measurement. */
    public void resetPeaks() {
        forwardMem.resetPeak();
        checkpoints.resetPeak();
        activations.resetPeak();
        workspace.resetPeak();
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("CheckpointedSequential is closed");
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        releaseCheckpoints();
        closed = true;
        activations.close();
        checkpoints.close();
        forwardMem.close();
        workspace.close();
        root.close();
    }
}
