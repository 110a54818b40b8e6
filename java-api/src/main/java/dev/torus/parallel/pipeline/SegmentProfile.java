package dev.torus.parallel.pipeline;

import dev.torus.DType;
import dev.torus.memory.Allocator;
import dev.torus.memory.Stream;
import dev.torus.nn.Layer;
import dev.torus.nn.Parameter;
import dev.torus.recompute.Segment;
import dev.torus.recompute.SegmentContext;
import dev.torus.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * What each segment of a model costs, for {@link StagePartition#balanced}: its measured forward + backward
 * time and its parameter bytes.
 *
 * <p>{@link #measure} runs the segments in order on a sample input, as a pipeline would run them: segment i
 * gets segment i−1's output. For each segment it times one forward and one backward (with an output gradient
 * of ones) together, a warm-up run first and then {@code runs} timed runs, and keeps the median (the middle
 * one; the lower middle for an even count), which a JIT compilation or a GC pause in one run does not move.
 * On a CUDA device it waits for the device's default stream before stopping the clock. A segment's
 * parameter bytes are the sum of {@link Parameter#value()}'s byte sizes for a {@link Layer}, and 0 for any
 * other {@link Segment} (it cannot say what it holds).
 *
 * <p>{@link #cost(double)} mixes the two as shares of their totals, {@code (1 − w)·time/totalTime +
 * w·bytes/totalBytes}: time balances the pipeline's step (the slowest stage sets it), bytes balance the
 * stages' memory for weights, gradients and optimizer state (all proportional to the parameter bytes).
 * Shares rather than raw values, so that w is a plain weight between seconds and bytes. A total of 0 (no
 * parameters at all) gives that term 0 for every segment.
 *
 * <p>Ownership: everything {@link #measure} allocates (outputs, gradients, the copies of the parameters'
 * gradients) comes from the allocator passed in and is freed before it returns. The segments' backward passes
 * accumulate into their parameters' gradients; for {@link Layer}s the gradients are put back as they were
 * (for other segments, whatever they accumulate stays). The sample stays the caller's. A profile holds no
 * tensors.
 */
public final class SegmentProfile {
    private final long[] nanos;
    private final long[] bytes;

    private SegmentProfile(long[] nanos, long[] bytes) {
        this.nanos = nanos;
        this.bytes = bytes;
    }

    /**
     * A profile from known figures (for example measured elsewhere, or a model of the hardware).
     *
     * @param nanos          forward + backward time of each segment, {@code >= 0}
     * @param parameterBytes parameter bytes of each segment, {@code >= 0}, as many as {@code nanos}
     * @throws IllegalArgumentException if either is null, empty, of different lengths, or has a negative entry
     */
    public static SegmentProfile of(long[] nanos, long[] parameterBytes) {
        if (nanos == null || nanos.length == 0) {
            throw new IllegalArgumentException("nanos must be a non-empty array");
        }
        if (parameterBytes == null || parameterBytes.length != nanos.length) {
            throw new IllegalArgumentException("parameterBytes must have one entry per segment (" + nanos.length
                    + "), got " + (parameterBytes == null ? "null" : parameterBytes.length + ""));
        }
        for (int i = 0; i < nanos.length; i++) {
            if (nanos[i] < 0) {
                throw new IllegalArgumentException("nanos[" + i + "] must be >= 0, got " + nanos[i]);
            }
            if (parameterBytes[i] < 0) {
                throw new IllegalArgumentException("parameterBytes[" + i + "] must be >= 0, got " + parameterBytes[i]);
            }
        }
        return new SegmentProfile(nanos.clone(), parameterBytes.clone());
    }

    /** {@link #measure(List, Tensor, Allocator, int)} with 5 timed runs. */
    public static SegmentProfile measure(List<? extends Segment> segments, Tensor sample, Allocator allocator) {
        return measure(segments, sample, allocator, 5);
    }

    /**
     * Measures each segment (see the class comment), with random keys {@code SegmentContext.of(allocator, 0,
     * i · 2^40)} for segment i.
     *
     * @param sample the first segment's input, FLOAT32 (the caller's; not modified or closed)
     * @param runs   timed runs per segment, in [1, 1000], after one warm-up run
     * @throws IllegalArgumentException if {@code segments} is null, empty or holds a null, {@code sample} is null,
     *                                  closed or not FLOAT32, {@code allocator} is null, or {@code runs} is out of
     *                                  range
     */
    public static SegmentProfile measure(List<? extends Segment> segments, Tensor sample, Allocator allocator,
                                         int runs) {
        if (segments == null || segments.isEmpty()) {
            throw new IllegalArgumentException("segments must be a non-empty list");
        }
        for (int i = 0; i < segments.size(); i++) {
            if (segments.get(i) == null) {
                throw new IllegalArgumentException("segments[" + i + "] must not be null");
            }
        }
        if (sample == null) {
            throw new IllegalArgumentException("sample must not be null");
        }
        if (sample.isClosed()) {
            throw new IllegalArgumentException("sample must be open, got a closed tensor");
        }
        if (sample.dtype() != DType.FLOAT32) {
            throw new IllegalArgumentException("sample must be FLOAT32, got " + sample.dtype());
        }
        if (allocator == null) {
            throw new IllegalArgumentException("allocator must not be null");
        }
        if (runs < 1 || runs > 1000) {
            throw new IllegalArgumentException("runs must be in [1, 1000], got " + runs);
        }
        int n = segments.size();
        long[] nanos = new long[n];
        long[] bytes = new long[n];
        List<Tensor> owned = new ArrayList<>(); // the inputs of segments 1..n-1, made here
        List<Tensor> savedGrads = new ArrayList<>();
        List<Parameter> params = new ArrayList<>();
        try {
            for (Segment s : segments) {
                if (s instanceof Layer l) {
                    for (Parameter p : l.parameters()) {
                        Tensor copy = Tensor.empty(allocator, p.grad().dtype(), p.grad().device(), p.grad().shape());
                        try {
                            copy.copyFrom(p.grad());
                        } catch (RuntimeException e) {
                            copy.close();
                            throw e;
                        }
                        savedGrads.add(copy);
                        params.add(p);
                    }
                }
            }
            Tensor x = sample;
            for (int i = 0; i < n; i++) {
                Segment s = segments.get(i);
                SegmentContext ctx = SegmentContext.of(allocator, 0, (long) i << 40);
                long[] t = new long[runs];
                Tensor next = null;
                try (Tensor dy = ones(allocator, x, s.outputShape(x.shape()))) {
                    for (int r = -1; r < runs; r++) {
                        long start = System.nanoTime();
                        Tensor y = s.forward(x, ctx);
                        Tensor dx;
                        try {
                            dx = s.backward(x, dy, ctx);
                        } catch (RuntimeException e) {
                            y.close();
                            throw e;
                        }
                        if (x.device().isCuda()) {
                            Stream.defaultStream(x.device()).synchronize();
                        }
                        long took = System.nanoTime() - start;
                        dx.close();
                        if (r >= 0) {
                            t[r] = took;
                        }
                        if (r == runs - 1 && i < n - 1) {
                            next = y;
                        } else {
                            y.close();
                        }
                    }
                }
                Arrays.sort(t);
                nanos[i] = t[(runs - 1) / 2];
                if (s instanceof Layer l) {
                    for (Parameter p : l.parameters()) {
                        bytes[i] += p.value().byteSize();
                    }
                }
                if (next != null) {
                    owned.add(next);
                    x = next;
                }
            }
        } finally {
            try {
                for (int k = 0; k < savedGrads.size(); k++) {
                    params.get(k).grad().copyFrom(savedGrads.get(k));
                }
                if (sample.device().isCuda()) {
                    Stream.defaultStream(sample.device()).synchronize();
                }
            } finally {
                owned.forEach(Tensor::close);
                savedGrads.forEach(Tensor::close);
            }
        }
        return new SegmentProfile(nanos, bytes);
    }

    /** A FLOAT32 tensor of ones of {@code shape}, on {@code like}'s device. */
    private static Tensor ones(Allocator allocator, Tensor like, long[] shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        float[] v = new float[Math.toIntExact(n)];
        Arrays.fill(v, 1f);
        Tensor host = Tensor.fromArray(allocator, v, shape);
        if (like.device().isCpu()) {
            return host;
        }
        try (host) {
            return host.to(like.device());
        }
    }

    /** Number of segments. */
    public int size() {
        return nanos.length;
    }

    /** Forward + backward time of each segment in nanoseconds (the median of the timed runs); a copy. */
    public long[] nanos() {
        return nanos.clone();
    }

    /** Parameter bytes of each segment (0 for a segment that is not a {@link Layer}); a copy. */
    public long[] parameterBytes() {
        return bytes.clone();
    }

    /**
     * Each segment's cost, {@code (1 − memoryWeight)·time/totalTime + memoryWeight·bytes/totalBytes}, a term
     * being 0 when its total is 0; for {@link StagePartition#balanced}. 0 balances time only, 1 parameter
     * bytes only.
     *
     * @throws IllegalArgumentException if {@code memoryWeight} is not in [0, 1] (NaN included)
     */
    public double[] cost(double memoryWeight) {
        if (!(memoryWeight >= 0 && memoryWeight <= 1)) {
            throw new IllegalArgumentException("memoryWeight must be in [0, 1], got " + memoryWeight);
        }
        double totalTime = 0;
        double totalBytes = 0;
        for (int i = 0; i < nanos.length; i++) {
            totalTime += nanos[i];
            totalBytes += bytes[i];
        }
        double[] c = new double[nanos.length];
        for (int i = 0; i < c.length; i++) {
            double time = totalTime == 0 ? 0 : nanos[i] / totalTime;
            double mem = totalBytes == 0 ? 0 : bytes[i] / totalBytes;
            c[i] = (1 - memoryWeight) * time + memoryWeight * mem;
        }
        return c;
    }

    @Override
    public String toString() {
        return "SegmentProfile(nanos " + Arrays.toString(nanos) + ", parameterBytes " + Arrays.toString(bytes) + ")";
    }
}
