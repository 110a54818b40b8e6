package dev.torus.recompute;

import dev.torus.NativeLibrary;
import dev.torus.Tensor;
import dev.torus.jni.TorusNative;
import dev.torus.memory.Allocator;
import dev.torus.memory.Stream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Runs a sequence of {@link Segment}s forward and backward, keeping only the
 * segment inputs its {@link CheckpointPolicy} chooses and recomputing the rest
 * during backward, from the nearest kept input before them.
 *
 * <p>Recomputation is exact: every segment gets the same random key when it is
 * recomputed, so with fp32 checkpoints the gradients are bit-identical to a run
 * that keeps everything.
 *
 * <p>Ownership: the engine owns its checkpoints and intermediates, allocated from
 * child allocators of the one passed in ({@code activations}, {@code gradients}).
 * {@link #forward} returns the output, which the caller owns and must close before
 * closing the engine (it is accounted in the engine's allocator); the input
 * is copied, so the caller may close it at once. {@link #backward} returns the
 * gradient of the input (caller owns it); the caller's {@code gradOutput} is only
 * read. {@link #close()} frees anything left (for example after a forward without a
 * backward). Not thread-safe.
 *
 * <p>Status: fp32 checkpoint storage only; the memory-budget policy and fp16/bf16/
 * int8 checkpoint storage are not built yet (docs/RECOMPUTE.md).
 */
public final class CheckpointedSequential implements AutoCloseable {
    private static final int RNG_SHIFT = 40;

    private final List<Segment> segments;
    private final CheckpointPolicy policy;
    private final boolean[] keep;
    private final long seed;
    private final Allocator activations;
    private final Allocator gradients;
    private final Tensor[] kept;
    private long step = -1;
    private boolean forwardDone;
    private boolean closed;
    private long checkpointBytes;
    private long[] outputShape;

    public CheckpointedSequential(List<Segment> segments, CheckpointPolicy policy, Allocator allocator, long seed) {
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
        if (allocator == null) {
            throw new IllegalArgumentException("allocator must not be null");
        }
        this.segments = List.copyOf(segments);
        this.policy = policy;
        this.keep = policy.plan(this.segments);
        this.keep[0] = true;
        this.seed = seed;
        this.activations = allocator.newChildAllocator("activations", Long.MAX_VALUE);
        this.gradients = allocator.newChildAllocator("gradients", Long.MAX_VALUE);
        this.kept = new Tensor[this.segments.size()];
    }

    public CheckpointPolicy policy() {
        return policy;
    }

    /** Indices of the segments whose inputs are kept. */
    public int[] checkpointIndices() {
        return java.util.stream.IntStream.range(0, keep.length).filter(i -> keep[i]).toArray();
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
        if (forwardDone) {
            releaseCheckpoints(); // a forward without backward (evaluation): drop its checkpoints
        }
        step++;
        Tensor cur = copy(input, activations);
        checkpointBytes = 0;
        try {
            for (int i = 0; i < segments.size(); i++) {
                if (keep[i]) {
                    kept[i] = cur;
                    checkpointBytes += cur.byteSize();
                }
                Tensor out = call(i, cur, false);
                if (!keep[i]) {
                    cur.close();
                }
                cur = out;
            }
        } catch (RuntimeException e) {
            if (cur != null && !isKept(cur)) {
                cur.close();
            }
            releaseCheckpoints();
            throw e;
        }
        forwardDone = true;
        outputShape = cur.shape();
        return cur;
    }

    private boolean isKept(Tensor t) {
        for (Tensor k : kept) {
            if (k == t) {
                return true;
            }
        }
        return false;
    }

    private Tensor call(int i, Tensor in, boolean recomputing) {
        Tensor out = segments.get(i).forward(in, ctx(i, activations, recomputing));
        if (out == null) {
            throw new IllegalStateException("segment " + i + " returned null from forward");
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
                inputs.add(kept[a]);
                try {
                    for (int j = a; j < i; j++) {
                        inputs.add(call(j, inputs.get(inputs.size() - 1), true));
                    }
                    for (int j = i; j >= a; j--) {
                        Tensor dx = segments.get(j).backward(inputs.get(j - a), g, ctx(j, gradients, false));
                        if (dx == null) {
                            throw new IllegalStateException("segment " + j + " returned null from backward");
                        }
                        if (gOwned) {
                            g.close();
                        }
                        g = dx;
                        gOwned = true;
                    }
                } finally {
                    for (int k = 1; k < inputs.size(); k++) {
                        inputs.get(k).close();
                    }
                }
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

    /** Peak bytes of forward activations (checkpoints plus transient and recomputed ones) since the last reset. */
    public long peakActivationBytes() {
        return activations.peakBytes();
    }

    /** Peak bytes of gradients produced during backward since the last reset. */
    public long peakGradientBytes() {
        return gradients.peakBytes();
    }

    /** Starts a new peak measurement. */
    public void resetPeaks() {
        activations.resetPeak();
        gradients.resetPeak();
    }

    private Tensor copy(Tensor x, Allocator a) {
        Tensor t = Tensor.empty(a, x.dtype(), x.device(), x.shape());
        if (x.byteSize() > 0) {
            if (x.device().isCpu()) {
                NativeLibrary.check(TorusNative.torus_host_copy(t.dataAddress(), x.dataAddress(), x.byteSize()),
                        "copy input");
            } else {
                Stream s = Stream.defaultStream(x.device());
                s.copy(x.buffer(), 0, t.buffer(), 0, x.byteSize());
                s.synchronize();
            }
        }
        return t;
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
        gradients.close();
    }
}
