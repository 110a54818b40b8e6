package dev.torus.parallel.pipeline;

import dev.torus.DType;
import dev.torus.comm.Communicator;
import dev.torus.comm.Work;
import dev.torus.memory.Allocator;
import dev.torus.nn.Layer;
import dev.torus.recompute.CheckpointPolicy;
import dev.torus.recompute.Segment;
import dev.torus.recompute.SegmentContext;
import dev.torus.tensor.Tensor;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.IntFunction;

/**
 * One stage of a pipeline-parallel model, in its own process: rank s of {@code comm} (of size p)
 * runs its contiguous run of segments for every micro-batch of a step, in the order a
 * {@link PipelineSchedule} gives, and exchanges activations (forward) and their gradients
 * (backward) with its neighbours through the communicator's send and recv.
 *
 * <p>Exactness: each segment runs with the same inputs and random keys ({@link #context}) as in one
 * process, and every stage runs its backward passes in micro-batch order, so each parameter's
 * gradient accumulates exactly as in one process that runs the micro-batches one after the other:
 * bitwise equal.
 *
 * <p>An activation travels after a small header (its shape), so that the receiver allocates the right
 * buffer; with {@link #fixedShapes} the header goes only in the first step. A gradient needs none: its
 * receiver knows the shape of the activation it answers, and its sender refuses a gradient of another shape,
 * naming both stages and shapes. Sends are asynchronous and awaited at the end of the step; a stage posts
 * every send before it waits on a receive, so crossed pairs (a forward going down while a gradient
 * comes up) cannot deadlock. Any failure aborts the communicator, so the other stages fail within
 * the op timeout instead of waiting.
 *
 * <p>The stage borrows the communicator, the segments and the allocator; it frees every tensor it
 * allocates (stashed activations, received buffers) by the end of {@link #step}. Not thread-safe.
 */
public final class PipelineStage {
    /** What the last stage does with its output: the loss and its gradient (which the stage then owns and frees). */
    public interface Loss {
        Result apply(Tensor output, int microBatch);

        record Result(float loss, Tensor gradient) {}
    }

    /**
     * Receives one slice of a stage's timeline: {@code name} is F3, B3, W3 (a pass of micro-batch 3; F3c1
     * on chunk 1 of an interleaved stage), recv-F3 or recv-B3 (waiting for its input or gradient), or send-F3
     * or send-B3 (posting the output or the input gradient: the send itself runs in the background, and its
     * slice lies inside the pass's); times are {@link System#nanoTime()} (one clock for
     * every process of a host on Linux).
     */
    public interface Trace {
        void slice(String name, long startNanos, long endNanos);
    }

    /**
     * A step's outcome on this stage: the micro-batch losses (last stage only), the most micro-batches
     * stashed at once (per chunk), and the most bytes of activations held between passes: the kept segment
     * inputs, the outputs sent on and held until their gradient returns, and under ZB-H1 the inputs and
     * gradients awaiting their W pass (not a pass's transient tensors, nor the at most {@value #RECEIVES_AHEAD}
     * receive buffers posted ahead).
     */
    public record StepResult(float[] losses, int peakStashedMicroBatches, long peakStashedBytes) {}

    private static final int MAX_RANK = 6;

    private final Communicator comm;
    private final List<List<Segment>> chunks;
    private final int[] firstSegments;
    private final PipelineSchedule schedule;
    private final Allocator allocator;
    private final long seed;
    private Trace trace;
    private long stashedBytes;
    private CheckpointPolicy checkpoint = CheckpointPolicy.none();
    private boolean fixedShapes;
    private List<PipelineSchedule.Action> actions;
    private int actionsFor = -1;
    private dev.torus.Device device = dev.torus.Device.cpu();
    private final Map<Long, long[]> knownShapes = new HashMap<>();
    private List<boolean[]> kept;

    /**
     * A stage of a schedule with one model chunk per rank (GPipe, 1F1B, ZB-H1).
     *
     * @param segments this stage's segments (in order)
     * @param firstSegment the index of the first of them in the whole model (it keys their randomness)
     */
    public PipelineStage(Communicator comm, List<? extends Segment> segments, int firstSegment, PipelineSchedule schedule,
                         Allocator allocator, long seed) {
        this(comm, List.of(checkSegments(comm, segments)), new int[] {firstSegment}, schedule, allocator, seed);
    }

    /**
     * A stage with {@code schedule.chunks()} model chunks: chunk c of rank s is virtual stage c·p + s of the
     * model's p·v ({@link StagePartition#byCount} of the segments into p·v parts, part c·p + s).
     *
     * @param chunks this rank's chunks, each a non-empty list of segments in order
     * @param firstSegments for each chunk, the index of its first segment in the whole model
     */
    public PipelineStage(Communicator comm, List<? extends List<? extends Segment>> chunks, int[] firstSegments,
                         PipelineSchedule schedule, Allocator allocator, long seed) {
        if (comm == null) {
            throw new IllegalArgumentException("comm must not be null");
        }
        if (schedule == null) {
            throw new IllegalArgumentException("schedule must not be null");
        }
        if (allocator == null) {
            throw new IllegalArgumentException("allocator must not be null");
        }
        if (chunks == null || chunks.size() != schedule.chunks()) {
            throw new IllegalArgumentException("the " + schedule + " schedule needs " + schedule.chunks()
                    + " model chunks per stage, got " + (chunks == null ? "null" : chunks.size()));
        }
        if (firstSegments == null || firstSegments.length != chunks.size()) {
            throw new IllegalArgumentException("firstSegments must give one index per chunk (" + chunks.size() + ")");
        }
        if (schedule.isInterleaved() && comm.size() < 2) {
            throw new IllegalArgumentException("an interleaved schedule needs at least 2 stages, the communicator has "
                    + comm.size());
        }
        List<List<Segment>> copy = new ArrayList<>();
        for (int c = 0; c < chunks.size(); c++) {
            copy.add(List.copyOf(checkSegments(comm, chunks.get(c))));
            if (firstSegments[c] < 0) {
                throw new IllegalArgumentException("firstSegments[" + c + "] must be >= 0, got " + firstSegments[c]);
            }
        }
        this.comm = comm;
        this.chunks = List.copyOf(copy);
        this.firstSegments = firstSegments.clone();
        this.schedule = schedule;
        this.allocator = allocator;
        this.seed = seed;
        this.kept = plan(CheckpointPolicy.none());
    }

    /**
     * Checkpointing inside the stage, for every schedule: each chunk keeps only the segment inputs that
     * {@code policy} keeps ({@link CheckpointPolicy#keptInputs}; none, every-k, sqrt(n) or selective) and its
     * backward recomputes the others from the nearest kept one, with the same random keys, so gradients
     * stay bitwise those of no checkpointing.
     */
    public PipelineStage checkpoint(CheckpointPolicy policy) {
        if (policy == null) {
            throw new IllegalArgumentException("policy must not be null (CheckpointPolicy.none() keeps everything)");
        }
        this.kept = plan(policy);
        this.checkpoint = policy;
        return this;
    }

    /**
     * Promises that every step sends activations of the shapes of the first step (per micro-batch and stage
     * boundary), as Megatron and PyTorch's pipelining assume: after the first step an activation goes without
     * its shape header, one message instead of two. A stage that breaks the promise fails with a clear error
     * naming both shapes (and its neighbours with it, through the abort). Both neighbours must agree: set it
     * on every stage or on none. Off by default.
     */
    public PipelineStage fixedShapes(boolean fixed) {
        this.fixedShapes = fixed;
        if (!fixed) {
            knownShapes.clear();
        }
        return this;
    }

    /**
     * Where received activations and gradients are allocated: the device the stage's segments compute on
     * (the CPU by default). With a CUDA device the communicator must be one that moves CUDA tensors (NCCL).
     */
    public PipelineStage device(dev.torus.Device device) {
        if (device == null) {
            throw new IllegalArgumentException("device must not be null");
        }
        this.device = device;
        return this;
    }

    /** The checkpoint policy (none by default). */
    public CheckpointPolicy checkpointPolicy() {
        return checkpoint;
    }

    private List<boolean[]> plan(CheckpointPolicy policy) {
        List<boolean[]> out = new ArrayList<>();
        for (List<Segment> chunk : chunks) {
            out.add(policy.keptInputs(chunk));
        }
        return out;
    }

    private static List<? extends Segment> checkSegments(Communicator comm, List<? extends Segment> segments) {
        if (segments == null || segments.isEmpty()) {
            throw new IllegalArgumentException("segments of stage " + (comm == null ? "?" : comm.rank())
                    + " must be a non-empty list");
        }
        return segments;
    }

    /** Records this stage's timeline into {@code trace} (null: none) from the next step on. */
    public PipelineStage trace(Trace trace) {
        this.trace = trace;
        return this;
    }

    private void slice(String name, long t0) {
        if (trace != null) {
            trace.slice(name, t0, System.nanoTime());
        }
    }

    /**
     * The context segment {@code segmentIndex} (of the whole model) runs in for micro-batch {@code microBatch}:
     * the random key is the step's seed mixed with the micro-batch (SplitMix64), and each segment's counter
     * range starts 2^40 after the previous one's, so no two segments or micro-batches share random numbers
     * (a counter-based layer draws element i at offset + i).
     */
    public static SegmentContext context(Allocator allocator, long seed, int microBatch, int segmentIndex) {
        if (microBatch < 0 || segmentIndex < 0 || segmentIndex >= 1 << 23) {
            throw new IllegalArgumentException("microBatch must be >= 0 and segmentIndex in [0, 2^23), got " + microBatch
                    + " and " + segmentIndex);
        }
        return SegmentContext.of(allocator, mix(seed + 0x9E3779B97F4A7C15L * (microBatch + 1L)),
                (long) segmentIndex << 40);
    }

    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /**
     * Runs one step of {@code microBatches} micro-batches. Stage 0 takes micro-batch i from
     * {@code input.apply(i)} (the caller owns those tensors); the last stage hands each output to
     * {@code loss}. Parameter gradients accumulate into the segments' parameters; zero them before.
     */
    public StepResult step(int microBatches, IntFunction<Tensor> input, Loss loss) {
        int s = comm.rank();
        int p = comm.size();
        int v = chunks.size();
        int virtualStages = p * v;
        if (microBatches < 1) {
            throw new IllegalArgumentException("microBatches must be >= 1, got " + microBatches);
        }
        if ((long) microBatches * virtualStages * 4 > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("microBatches × virtual stages must stay below 2^29, got "
                    + microBatches + " × " + virtualStages);
        }
        if (s == 0 && input == null) {
            throw new IllegalArgumentException("stage 0 needs the micro-batch inputs");
        }
        if (s == p - 1 && loss == null) {
            throw new IllegalArgumentException("the last stage (" + s + ") needs a loss");
        }
        // keyed by micro-batch × v + chunk
        Map<Integer, List<Tensor>> stash = new HashMap<>();
        // ZB-H1: per micro-batch, {layer, its input, its output gradient, segment index, owned} awaiting the W pass
        Map<Integer, List<Object[]>> awaitingWeights = new HashMap<>();
        Map<Integer, Tensor> lossGradients = new HashMap<>();      // the last virtual stage
        Map<Integer, long[]> receivedShapes = new HashMap<>();     // the activations received, for their gradients
        Map<Integer, Object[]> activationSends = new HashMap<>();  // {Work, the activation}: freed when its gradient is back
        Deque<Object[]> pendingSends = new ArrayDeque<>();          // {Work, Tensor to free after it}
        float[] losses = new float[s == p - 1 ? microBatches : 0];
        ReceivesAhead ahead = null;
        int peak = 0;
        long peakBytes = 0;
        stashedBytes = 0;
        try {
            if (actionsFor != microBatches) { // the interleaved order is found by a simulated run: once per m
                actions = schedule.actions(s, p, microBatches);
                actionsFor = microBatches;
            }
            ahead = new ReceivesAhead(actions, p, v, activationSends);
            ahead.post(0);
            int index = 0;
            for (PipelineSchedule.Action a : actions) {
                int mb = a.microBatch();
                int c = a.chunk();
                int key = mb * v + c;
                int virt = c * p + s;
                List<Segment> segments = chunks.get(c);
                int firstSegment = firstSegments[c];
                boolean first = virt == 0;
                boolean last = virt == virtualStages - 1;
                if (a.forward()) {
                    long r0 = System.nanoTime();
                    Tensor x = first ? input.apply(mb) : ahead.take((virt - 1) % p, mb, virt - 1, true, null);
                    if (!first) {
                        receivedShapes.put(key, x.shape());
                    }
                    if (!first) {
                        slice("recv-" + a, r0);
                    }
                    long f0 = System.nanoTime();
                    boolean[] keep = kept.get(c);
                    List<Tensor> inputs = new ArrayList<>(segments.size());
                    stash.put(key, inputs);
                    Tensor cur = x;
                    for (int i = 0; i < segments.size(); i++) {
                        inputs.add(cur);
                        Tensor next;
                        try {
                            next = segments.get(i).forward(cur, context(allocator, seed, mb, firstSegment + i));
                        } catch (IllegalArgumentException | IllegalStateException e) {
                            if (i > 0 || first) {
                                throw e;
                            }
                            throw new IllegalStateException("pipeline stage " + s + " cannot take the activation of shape "
                                    + Arrays.toString(x.shape()) + " that stage " + (virt - 1) % p + " sent for micro-batch "
                                    + mb + ": " + e.getMessage(), e);
                        }
                        if (!keep[i]) { // recomputed in backward (never the chunk's input: keep[0] holds)
                            inputs.set(i, null);
                            cur.close();
                        } else {
                            stashedBytes += cur.byteSize();
                        }
                        cur = next;
                    }
                    if (last) {
                        Loss.Result r;
                        try {
                            r = loss.apply(cur, mb);
                        } finally {
                            cur.close();
                        }
                        if (r == null || r.gradient() == null) {
                            throw new IllegalStateException("the loss of pipeline stage " + s + " returned no gradient for "
                                    + "micro-batch " + mb);
                        }
                        losses[mb] = r.loss();
                        lossGradients.put(key, r.gradient());
                    } else {
                        long s0 = System.nanoTime();
                        try {
                            activationSends.put(key, send(cur, (virt + 1) % p, mb, virt, true, pendingSends));
                        } catch (RuntimeException e) {
                            cur.close(); // not handed to the transport
                            throw e;
                        }
                        stashedBytes += cur.byteSize(); // held until its gradient comes back
                        slice("send-" + a, s0);
                    }
                    slice(a.toString(), f0);
                } else if (a.kind() == PipelineSchedule.Kind.B) {
                    Tensor g;
                    if (last) {
                        g = lossGradients.remove(key);
                    } else {
                        // the activation's send is complete (its gradient needed it): free it, keep its shape
                        Object[] sent = activationSends.get(key);
                        ((Work) sent[0]).await(); // on failure it stays in activationSends, freed by the cleanup
                        activationSends.remove(key);
                        Tensor activation = (Tensor) sent[1];
                        long[] shape = activation.shape();
                        stashedBytes -= activation.byteSize();
                        activation.close();
                        long r0 = System.nanoTime();
                        g = ahead.take((virt + 1) % p, mb, virt, false, shape);
                        slice("recv-" + a, r0);
                    }
                    long b0 = System.nanoTime();
                    List<Tensor> inputs = stash.get(key); // left in the stash until done, so a failure frees it
                    for (Tensor in : inputs) {
                        stashedBytes -= in == null ? 0 : in.byteSize();
                    }
                    List<Object[]> later = new ArrayList<>();
                    try {
                        for (int i = segments.size() - 1; i >= 0; i--) {
                            if (inputs.get(i) == null) {
                                recompute(segments, firstSegment, mb, inputs, i);
                            }
                            Tensor in = inputs.get(i);
                            Segment seg = segments.get(i);
                            SegmentContext ctx = context(allocator, seed, mb, firstSegment + i);
                            boolean own = i > 0 || !first; // the first virtual stage's input is the caller's
                            Tensor gin;
                            if (schedule.splitsWeightGradients() && seg instanceof Layer l && l.splitsBackward()) {
                                gin = l.backwardInput(in, g, ctx);
                                later.add(new Object[] {l, in, g, i, own}); // both stay for the W pass
                                stashedBytes += in.byteSize() + g.byteSize();
                            } else {
                                gin = seg.backward(in, g, ctx);
                                g.close();
                                if (own) {
                                    in.close();
                                }
                            }
                            g = gin;
                        }
                    } catch (RuntimeException e) {
                        // the inputs are still in the stash (freed by the cleanup); the gradients are not
                        closeQuietly(g);
                        later.forEach(w -> closeQuietly((Tensor) w[2]));
                        throw e;
                    }
                    stash.remove(key);
                    if (!later.isEmpty()) {
                        awaitingWeights.put(key, later);
                    }
                    if (!first) {
                        long[] answered = receivedShapes.remove(key);
                        if (!Arrays.equals(answered, g.shape())) {
                            long[] bad = g.shape();
                            g.close();
                            throw new IllegalStateException("pipeline stage " + s + " computed an input gradient of shape "
                                    + Arrays.toString(bad) + " for micro-batch " + mb + ", but stage " + (virt - 1) % p
                                    + " sent it an activation of shape " + Arrays.toString(answered));
                        }
                        long s0 = System.nanoTime();
                        try {
                            pendingSends.add(send(g, (virt - 1) % p, mb, virt - 1, false, pendingSends));
                        } catch (RuntimeException e) {
                            g.close(); // not handed to the transport
                            throw e;
                        }
                        slice("send-" + a, s0);
                    } else {
                        g.close();
                    }
                    slice(a.toString(), b0);
                } else {
                    long w0 = System.nanoTime();
                    List<Object[]> later = awaitingWeights.remove(key);
                    if (later != null) {
                        for (Object[] e : later) {
                            Tensor in = (Tensor) e[1];
                            Tensor g = (Tensor) e[2];
                            ((Layer) e[0]).backwardWeights(in, g, context(allocator, seed, mb, firstSegment + (int) e[3]));
                            stashedBytes -= in.byteSize() + g.byteSize();
                            g.close();
                            if ((boolean) e[4]) {
                                in.close();
                            }
                        }
                    }
                    slice(a.toString(), w0);
                }
                ahead.post(++index);
                // a micro-batch leaves the stash at its B and enters awaitingWeights then: the two are disjoint
                peak = Math.max(peak, stash.size() + awaitingWeights.size());
                peakBytes = Math.max(peakBytes, stashedBytes);
            }
            while (!pendingSends.isEmpty()) {
                Object[] ps = pendingSends.poll();
                ((Work) ps[0]).await();
                closeQuietly((Tensor) ps[1]);
            }
            return new StepResult(losses, peak, peakBytes);
        } catch (RuntimeException e) {
            comm.abort("pipeline stage " + s + " failed: " + e.getMessage());
            // after the abort the pending sends and receives end at once; their buffers can be freed only then
            for (Object[] ps : pendingSends) {
                settle(ps);
            }
            if (ahead != null) {
                ahead.settleAll();
            }
            for (Object[] as : activationSends.values()) {
                settle(as);
            }
            stash.forEach((key, inputs) -> {
                boolean callers = s == 0 && key % v == 0; // the first virtual stage's input is the caller's
                for (int i = callers ? 1 : 0; i < inputs.size(); i++) {
                    closeQuietly(inputs.get(i)); // null where it was not kept
                }
            });
            lossGradients.values().forEach(PipelineStage::closeQuietly);
            awaitingWeights.values().forEach(list -> list.forEach(w -> {
                closeQuietly((Tensor) w[2]);
                if ((boolean) w[4]) {
                    closeQuietly((Tensor) w[1]);
                }
            }));
            throw e;
        }
    }

    /**
     * Refills {@code inputs[top]} and the other dropped inputs below it down to the nearest kept one,
     * by running the segments forward again from that one with the same random keys (the same bits).
     */
    private void recompute(List<Segment> segments, int firstSegment, int mb, List<Tensor> inputs, int top) {
        int from = top;
        while (inputs.get(from) == null) {
            from--; // input 0 is always kept
        }
        Tensor cur = inputs.get(from);
        for (int i = from; i < top; i++) {
            cur = segments.get(i).forward(cur, context(allocator, seed, mb, firstSegment + i));
            inputs.set(i + 1, cur);
        }
    }

    /** The most receives a stage posts before it needs them. */
    static final int RECEIVES_AHEAD = 2;
    /**
     * How many passes ahead a receive may be posted. The op timeout counts from the posting, so a receive
     * posted ahead waits at most this many passes longer than one made when needed.
     */
    static final int PASSES_AHEAD = 2;

    /**
     * Posts a stage's receives before it needs them (for the next {@value #PASSES_AHEAD} passes), so that a
     * neighbour's send completes as soon as it is made and the data is there when the pass starts: the latency
     * leaves the critical path. Receives are posted strictly in the order the stage consumes them (the communicator runs one peer's receives one
     * after another, and the schedules send to each peer in that same order), at most
     * {@value #RECEIVES_AHEAD} ahead, and only where the buffer's shape is known: a gradient's once its
     * activation has gone out, an activation's once its shape is fixed ({@link #fixedShapes}). A receive
     * that needs a header is made when it is needed, and nothing after it is posted before it.
     */
    private final class ReceivesAhead {
        private record Planned(int peer, int mb, int boundary, boolean forward, int key, int action) {}

        private final List<Planned> plan = new ArrayList<>();
        private final Map<Integer, Object[]> activationSends;
        private final Deque<Object[]> posted = new ArrayDeque<>(); // {Work, Tensor}, in plan order
        private int nextPost;   // the first plan entry not posted
        private int nextTake;   // the first plan entry not taken

        ReceivesAhead(List<PipelineSchedule.Action> actions, int p, int v, Map<Integer, Object[]> activationSends) {
            this.activationSends = activationSends;
            int last = p * v - 1;
            for (int i = 0; i < actions.size(); i++) {
                PipelineSchedule.Action a = actions.get(i);
                int virt = a.chunk() * p + comm.rank();
                int key = a.microBatch() * v + a.chunk();
                if (a.kind() == PipelineSchedule.Kind.F && virt > 0) {
                    plan.add(new Planned((virt - 1) % p, a.microBatch(), virt - 1, true, key, i));
                } else if (a.kind() == PipelineSchedule.Kind.B && virt < last) {
                    plan.add(new Planned((virt + 1) % p, a.microBatch(), virt, false, key, i));
                }
            }
        }

        /** Posts what can be posted before action {@code next} runs: receives of the next {@value #PASSES_AHEAD} passes. */
        void post(int next) {
            while (nextPost < plan.size() && nextPost - nextTake < RECEIVES_AHEAD) {
                Planned r = plan.get(nextPost);
                if (r.action() >= next + PASSES_AHEAD) {
                    return;
                }
                long[] shape;
                if (r.forward()) {
                    shape = fixedShapes ? knownShapes.get(shapeKey(r.boundary(), r.mb())) : null;
                } else {
                    Object[] sent = activationSends.get(r.key());
                    shape = sent == null ? null : ((Tensor) sent[1]).shape();
                }
                if (shape == null) {
                    return; // needs a header, or its activation has not gone out yet
                }
                Tensor t = Tensor.empty(allocator, DType.FLOAT32, device, shape);
                try {
                    posted.add(new Object[] {comm.recv(t, r.peer(), tag(r.mb(), r.boundary(), r.forward(), false)), t});
                } catch (RuntimeException e) {
                    t.close();
                    throw e;
                }
                nextPost++;
            }
        }

        /** The next receive of the plan, which must be this one: waited for if posted, else made now. */
        Tensor take(int peer, int mb, int boundary, boolean forward, long[] gradientShape) {
            Planned want = plan.get(nextTake);
            if (want.peer() != peer || want.mb() != mb || want.boundary() != boundary || want.forward() != forward) {
                throw new IllegalStateException("internal error: pipeline stage " + comm.rank() + " receives out of "
                        + "plan order");
            }
            nextTake++;
            if (nextTake > nextPost) { // not posted: receive it now (with its header if it has one)
                nextPost = nextTake;
                return receive(peer, mb, boundary, forward, gradientShape);
            }
            Object[] r = posted.poll();
            Tensor t = (Tensor) r[1];
            try {
                ((Work) r[0]).await();
            } catch (RuntimeException e) {
                t.close();
                throw e;
            }
            if (gradientShape != null && !Arrays.equals(gradientShape, t.shape())) {
                t.close();
                throw new IllegalStateException("internal error: a gradient buffer of the wrong shape was posted");
            }
            return t;
        }

        /** After a failure (the communicator aborted): waits out every posted receive and frees its buffer. */
        void settleAll() {
            for (Object[] r : posted) {
                settle(r);
            }
            posted.clear();
        }
    }

    /** The tag of a transfer across boundary b (between virtual stages b and b+1) for micro-batch mb. */
    private int tag(int mb, int boundary, boolean forward, boolean header) {
        return 4 * (mb * comm.size() * chunks.size() + boundary) + (forward ? 0 : 2) + (header ? 0 : 1);
    }

    /**
     * Sends {@code t} to {@code peer}; returns {Work, t} for the data, whose caller frees {@code t} once the
     * work is done. An activation goes after a shape header (queued in {@code pending}, freed at the end of the
     * step) unless the shape is already known to both sides ({@link #fixedShapes}); a gradient never needs
     * one (its receiver knows the shape of the activation it answers).
     */
    private Object[] send(Tensor t, int peer, int mb, int boundary, boolean forward, Deque<Object[]> pending) {
        if (t.dtype() != DType.FLOAT32) {
            throw new IllegalStateException("pipeline stage " + comm.rank() + " can only send FLOAT32 tensors, got "
                    + t.dtype());
        }
        long[] shape = t.shape();
        if (shape.length > MAX_RANK) {
            throw new IllegalStateException("pipeline stage " + comm.rank() + ": tensors of rank > " + MAX_RANK
                    + " are not supported, got " + Arrays.toString(shape));
        }
        if (forward) {
            long key = shapeKey(boundary, mb);
            long[] known = fixedShapes ? knownShapes.get(key) : null;
            if (known == null) {
                int[] header = new int[MAX_RANK + 1];
                header[0] = shape.length;
                for (int i = 0; i < shape.length; i++) {
                    header[1 + i] = Math.toIntExact(shape[i]);
                }
                Tensor h = Tensor.fromArray(allocator, header, header.length);
                if (!device.isCpu()) {
                    try (Tensor host = h) {
                        h = host.to(device);
                    }
                }
                pending.add(new Object[] {comm.send(h, peer, tag(mb, boundary, true, true)), h});
                if (fixedShapes) {
                    knownShapes.put(key, shape);
                }
            } else if (!Arrays.equals(known, shape)) {
                throw new IllegalStateException("pipeline stage " + comm.rank() + " produced an activation of shape "
                        + Arrays.toString(shape) + " for micro-batch " + mb + ", but with fixed shapes it must keep "
                        + "the first step's " + Arrays.toString(known) + " (turn fixedShapes off for shapes that vary)");
            }
        }
        return new Object[] {comm.send(t, peer, tag(mb, boundary, forward, false)), t};
    }

    private static long shapeKey(int boundary, int mb) {
        return ((long) boundary << 32) | mb;
    }

    /**
     * Receives an activation (after its shape header, unless the shape is known from an earlier step with
     * {@link #fixedShapes}) or a gradient of {@code gradientShape}, the shape of the activation it answers,
     * from {@code peer}.
     */
    private Tensor receive(int peer, int mb, int boundary, boolean forward, long[] gradientShape) {
        long[] shape = gradientShape;
        if (forward) {
            long key = shapeKey(boundary, mb);
            shape = fixedShapes ? knownShapes.get(key) : null;
            if (shape == null) {
                shape = receiveHeader(peer, mb, boundary);
                if (fixedShapes) {
                    knownShapes.put(key, shape);
                }
            }
        }
        Tensor t = Tensor.empty(allocator, DType.FLOAT32, device, shape);
        try {
            comm.recv(t, peer, tag(mb, boundary, forward, false)).await();
        } catch (RuntimeException e) {
            t.close();
            throw e;
        }
        return t;
    }

    private long[] receiveHeader(int peer, int mb, int boundary) {
        int[] header;
        try (Tensor h = Tensor.zeros(allocator, DType.INT32, device, MAX_RANK + 1)) {
            comm.recv(h, peer, tag(mb, boundary, true, true)).await();
            header = h.toIntArray();
        }
        int rank = header[0];
        if (rank < 0 || rank > MAX_RANK) {
            throw new IllegalStateException("pipeline stage " + comm.rank() + " got a malformed header from stage " + peer
                    + " for micro-batch " + mb + ": rank " + rank);
        }
        long[] shape = new long[rank];
        for (int i = 0; i < rank; i++) {
            if (header[1 + i] < 0) {
                throw new IllegalStateException("pipeline stage " + comm.rank() + " got a malformed header from stage "
                        + peer + " for micro-batch " + mb + ": size " + header[1 + i]);
            }
            shape[i] = header[1 + i];
        }
        return shape;
    }

    private static void closeQuietly(Tensor t) {
        try {
            if (t != null && !t.isClosed()) {
                t.close();
            }
        } catch (RuntimeException e) {
            // cleaning up after a failure: the failure is what the caller must see
        }
    }

    /** Waits out a failed step's pending send (aborted, it ends at once), then frees its buffer. */
    private static void settle(Object[] pending) {
        try {
            ((Work) pending[0]).await();
        } catch (RuntimeException e) {
            // it failed with the step
        }
        closeQuietly((Tensor) pending[1]);
    }
}
