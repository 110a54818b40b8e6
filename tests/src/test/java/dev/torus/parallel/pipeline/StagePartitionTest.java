package dev.torus.parallel.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.Device;
import dev.torus.memory.Allocator;
import dev.torus.nn.Dropout;
import dev.torus.nn.Layer;
import dev.torus.nn.Linear;
import dev.torus.nn.Mlp;
import dev.torus.nn.Parameter;
import dev.torus.recompute.Segment;
import dev.torus.recompute.SegmentContext;
import dev.torus.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * {@link StagePartition#balanced}: the smallest largest stage (against every partition of small random
 * cases), the documented tie-breaks, {@link StagePartition#byCount} for equal costs, and every bad input;
 * {@link SegmentProfile} of a real {@link Mlp}.
 */
class StagePartitionTest {
    private static List<Integer> indices(int n) {
        return IntStream.range(0, n).boxed().toList();
    }

    private static int[] sizes(List<? extends List<?>> parts) {
        return parts.stream().mapToInt(List::size).toArray();
    }

    private static double maxStage(int[] sizes, double[] c) {
        double max = 0;
        int at = 0;
        for (int size : sizes) {
            double s = 0;
            for (int i = at; i < at + size; i++) {
                s += c[i];
            }
            max = Math.max(max, s);
            at += size;
        }
        return max;
    }

    private static long squares(int[] sizes, double[] c) {
        long q = 0;
        int at = 0;
        for (int size : sizes) {
            long s = 0;
            for (int i = at; i < at + size; i++) {
                s += (long) c[i];
            }
            q += s * s;
            at += size;
        }
        return q;
    }

    /** Every composition of n into k positive sizes. */
    private static List<int[]> compositions(int n, int k) {
        List<int[]> out = new ArrayList<>();
        compose(n, k, new int[k], 0, out);
        return out;
    }

    private static void compose(int left, int k, int[] cur, int at, List<int[]> out) {
        if (at == k - 1) {
            cur[at] = left;
            out.add(cur.clone());
            return;
        }
        for (int s = 1; s <= left - (k - 1 - at); s++) {
            cur[at] = s;
            compose(left - s, k, cur, at + 1, out);
        }
    }

    @Test
    void knownOptimalSplits() {
        assertEquals(List.of(List.of(0, 1, 2, 3), List.of(4)),
                StagePartition.balanced(indices(5), 2, new double[] {1, 1, 1, 1, 8}));
        assertEquals(List.of(List.of(0), List.of(1, 2, 3, 4, 5)),
                StagePartition.balanced(indices(6), 2, new double[] {5, 1, 1, 1, 1, 1}));
        // 1..9 into 3: 1+..+5 = 15, 6+7 = 13, 8+9 = 17 is the only split with no stage over 17
        assertEquals(List.of(List.of(0, 1, 2, 3, 4), List.of(5, 6), List.of(7, 8)),
                StagePartition.balanced(indices(9), 3, new double[] {1, 2, 3, 4, 5, 6, 7, 8, 9}));
        // one stage per segment, and one stage for all
        assertEquals(List.of(List.of(0), List.of(1), List.of(2)), StagePartition.balanced(indices(3), 3,
                new double[] {3, 0, 7}));
        assertEquals(List.of(indices(4)), StagePartition.balanced(indices(4), 1, new double[] {3, 0, 7, 1}));
        // the segments are the caller's objects, in order
        assertEquals(List.of(List.of("a", "b"), List.of("c")),
                StagePartition.balanced(List.of("a", "b", "c"), 2, new double[] {1, 1, 2}));
    }

    /**
     * Small random integer costs against every partition: the largest stage is the smallest there is, and among
     * the partitions with that maximum the sum of squared stage costs is the smallest there is.
     */
    @Test
    void optimalAgainstEveryPartition() {
        SplittableRandom r = new SplittableRandom(42);
        for (int trial = 0; trial < 300; trial++) {
            int n = 1 + r.nextInt(9);
            int k = 1 + r.nextInt(n);
            double[] c = new double[n];
            for (int i = 0; i < n; i++) {
                c[i] = r.nextInt(trial % 3 == 0 ? 3 : 20); // zeros and ties often
            }
            int[] got = sizes(StagePartition.balanced(indices(n), k, c));
            assertEquals(k, got.length);
            assertEquals(n, IntStream.of(got).sum());
            assertTrue(IntStream.of(got).allMatch(s -> s >= 1));
            double bestMax = Double.POSITIVE_INFINITY;
            for (int[] p : compositions(n, k)) {
                bestMax = Math.min(bestMax, maxStage(p, c));
            }
            long bestSq = Long.MAX_VALUE;
            for (int[] p : compositions(n, k)) {
                if (maxStage(p, c) == bestMax) {
                    bestSq = Math.min(bestSq, squares(p, c));
                }
            }
            String what = "costs " + java.util.Arrays.toString(c) + " into " + k + ": " + java.util.Arrays.toString(got);
            assertEquals(bestMax, maxStage(got, c), what);
            assertEquals(bestSq, squares(got, c), what);
        }
    }

    @Test
    void equalCostsGiveByCount() {
        for (double cost : new double[] {0, 0.1, 1, 2.5e7}) {
            for (int n = 1; n <= 13; n++) {
                double[] c = new double[n];
                java.util.Arrays.fill(c, cost);
                for (int k = 1; k <= n; k++) {
                    assertEquals(StagePartition.byCount(indices(n), k), StagePartition.balanced(indices(n), k, c),
                            "cost " + cost + ", n = " + n + ", k = " + k);
                }
            }
        }
    }

    @Test
    void firstIndicesOfAnyPartition() {
        List<List<Integer>> parts = StagePartition.balanced(indices(9), 3, new double[] {1, 2, 3, 4, 5, 6, 7, 8, 9});
        int[] first = StagePartition.firstIndices(parts);
        for (int s = 0; s < parts.size(); s++) {
            assertEquals((int) parts.get(s).get(0), first[s], "stage " + s);
        }
        for (int n = 1; n <= 9; n++) {
            for (int k = 1; k <= n; k++) {
                assertArrayEquals(StagePartition.firstIndices(n, k), StagePartition.firstIndices(
                        StagePartition.byCount(indices(n), k)), "n = " + n + ", k = " + k);
            }
        }
    }

    private static void refused(String expected, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call::execute);
        assertTrue(e.getMessage().contains(expected), "expected \"" + expected + "\" in: " + e.getMessage());
    }

    /** {@code Executable} that may throw only unchecked exceptions. */
    @FunctionalInterface
    private interface Executable {
        void execute();
    }

    @Test
    void badInputsAreRefusedNamingTheArgument() {
        double[] three = {1, 1, 1};
        refused("segments must be a non-empty list", () -> StagePartition.balanced(null, 1, three));
        refused("segments must be a non-empty list", () -> StagePartition.balanced(List.of(), 1, new double[0]));
        refused("stages must be in [1, 3]", () -> StagePartition.balanced(indices(3), 0, three));
        refused("stages must be in [1, 3]", () -> StagePartition.balanced(indices(3), 4, three));
        refused("cost must not be null", () -> StagePartition.balanced(indices(3), 2, null));
        refused("cost must have one entry per segment (3), got 2", () -> StagePartition.balanced(indices(3), 2,
                new double[] {1, 1}));
        refused("cost[1] must be finite and >= 0, got -1.0", () -> StagePartition.balanced(indices(3), 2,
                new double[] {1, -1, 1}));
        refused("cost[2] must be finite and >= 0, got NaN", () -> StagePartition.balanced(indices(3), 2,
                new double[] {1, 1, Double.NaN}));
        refused("cost[0] must be finite and >= 0, got Infinity", () -> StagePartition.balanced(indices(3), 2,
                new double[] {Double.POSITIVE_INFINITY, 1, 1}));
        refused("parts must be a non-empty list", () -> StagePartition.firstIndices(null));
        refused("parts must be a non-empty list", () -> StagePartition.firstIndices(List.of()));
        refused("parts[1] must be a non-empty list, got an empty list", () -> StagePartition.firstIndices(
                List.of(List.of(1), List.of())));
        refused("stages must be in [1, 2]", () -> StagePartition.firstIndices(2, 3));
        refused("segments must be >= 1", () -> StagePartition.firstIndices(0, 1));
        refused("memoryWeight must be in [0, 1], got -0.1", () -> SegmentProfile.of(new long[] {1}, new long[] {1})
                .cost(-0.1));
        refused("memoryWeight must be in [0, 1], got 1.5", () -> SegmentProfile.of(new long[] {1}, new long[] {1})
                .cost(1.5));
        refused("memoryWeight must be in [0, 1], got NaN", () -> SegmentProfile.of(new long[] {1}, new long[] {1})
                .cost(Double.NaN));
        refused("parameterBytes must have one entry per segment (2), got 1", () -> SegmentProfile.of(new long[] {1, 2},
                new long[] {1}));
        refused("nanos[1] must be >= 0", () -> SegmentProfile.of(new long[] {1, -2}, new long[] {1, 1}));
        refused("nanos must be a non-empty array", () -> SegmentProfile.of(new long[0], new long[0]));
        try (Allocator a = Allocator.root("bad-profile"); Tensor x = Tensor.fromArray(a, new float[] {1}, 1, 1)) {
            Linear l = new Linear(1, 1, false, Device.cpu(), a, 1);
            try (l) {
                refused("segments must be a non-empty list", () -> SegmentProfile.measure(List.of(), x, a));
                refused("sample must not be null", () -> SegmentProfile.measure(List.of(l), null, a));
                refused("allocator must not be null", () -> SegmentProfile.measure(List.of(l), x, null));
                refused("runs must be in [1, 1000], got 0", () -> SegmentProfile.measure(List.of(l), x, a, 0));
                List<Segment> withNull = new ArrayList<>();
                withNull.add(l);
                withNull.add(null);
                refused("segments[1] must not be null", () -> SegmentProfile.measure(withNull, x, a));
            }
        }
    }

    @Test
    void costIsSharesOfTheTotals() {
        long[] nanos = {100, 300, 600};
        long[] bytes = {0, 1024, 3072};
        SegmentProfile p = SegmentProfile.of(nanos, bytes);
        for (double w : new double[] {0, 0.25, 1}) {
            double[] c = p.cost(w);
            for (int i = 0; i < 3; i++) {
                assertEquals((1 - w) * nanos[i] / 1000.0 + w * bytes[i] / 4096.0, c[i], 1e-15, "w = " + w + ", " + i);
            }
        }
        // totals of 0: that term is 0 for every segment, and the partition falls back to equal counts
        SegmentProfile none = SegmentProfile.of(new long[] {5, 5, 10, 20}, new long[] {0, 0, 0, 0});
        assertArrayEquals(new double[] {0, 0, 0, 0}, none.cost(1));
        assertEquals(StagePartition.byCount(indices(4), 2), StagePartition.balanced(indices(4), 2, none.cost(1)));
        assertArrayEquals(new double[] {0.125, 0.125, 0.25, 0.5}, none.cost(0));
    }

    @Test
    void profileOfARealMlp() {
        int in = 16;
        int width = 32;
        int classes = 4;
        int rows = 8;
        try (Allocator a = Allocator.root("profile"); Mlp mlp = new Mlp(in, width, 3, classes, 0.1f, Device.cpu(), a, 7)) {
            float[] xs = new float[rows * in];
            SplittableRandom r = new SplittableRandom(1);
            for (int i = 0; i < xs.length; i++) {
                xs[i] = (float) r.nextGaussian();
            }
            List<float[]> gradsBefore = new ArrayList<>();
            for (Parameter p : mlp.parameters()) {
                gradsBefore.add(p.grad().toFloatArray());
            }
            long openBefore;
            long bytesBefore;
            SegmentProfile profile;
            try (Tensor x = Tensor.fromArray(a, xs, rows, in)) {
                openBefore = a.openBufferCount();
                bytesBefore = a.allocatedBytes();
                profile = SegmentProfile.measure(mlp.layers(), x, a, 3);
                assertEquals(openBefore, a.openBufferCount(), "buffers left open by measure");
                assertEquals(bytesBefore, a.allocatedBytes(), "bytes left allocated by measure");
                assertArrayEquals(xs, x.toFloatArray(), "the sample is not modified");
            }
            List<Layer> layers = mlp.layers();
            assertEquals(layers.size(), profile.size());
            long[] nanos = profile.nanos();
            long[] bytes = profile.parameterBytes();
            for (int i = 0; i < layers.size(); i++) {
                assertTrue(nanos[i] > 0, "layer " + i + " (" + layers.get(i) + "): " + nanos[i] + " ns");
                if (layers.get(i) instanceof Linear l) {
                    long[] w = l.weight().value().shape();
                    long expected = w[0] * w[1] * Float.BYTES + (l.bias() == null ? 0 : w[0] * Float.BYTES);
                    assertEquals(expected, bytes[i], "layer " + i + " (" + l + ")");
                }
                if (layers.get(i) instanceof Dropout) {
                    assertEquals(0, bytes[i], "layer " + i + " (dropout has no parameters)");
                }
            }
            // the first Linear is in x width without bias, the last width x classes with one
            assertEquals((long) in * width * Float.BYTES, bytes[0]);
            assertEquals((long) width * classes * Float.BYTES + classes * Float.BYTES, bytes[layers.size() - 1]);
            List<Parameter> ps = mlp.parameters();
            for (int k = 0; k < ps.size(); k++) {
                assertArrayEquals(gradsBefore.get(k), ps.get(k).grad().toFloatArray(), "gradient of " + ps.get(k)
                        + " put back");
            }
            double[] cost = profile.cost(0.5);
            double sum = 0;
            for (double c : cost) {
                assertTrue(c >= 0 && c <= 1, "cost " + c);
                sum += c;
            }
            assertEquals(1.0, sum, 1e-9, "the shares add up to 1");
            List<List<Layer>> stages = StagePartition.balanced(layers, 3, cost);
            assertEquals(3, stages.size());
            assertEquals(layers, stages.stream().flatMap(List::stream).toList());
        }
    }

    /** A segment that is not a Layer: 0 parameter bytes, and it is timed like any other. */
    @Test
    void aPlainSegmentHasNoParameterBytes() {
        Segment copy = new Segment() {
            @Override
            public Tensor forward(Tensor input, SegmentContext ctx) {
                Tensor y = Tensor.empty(ctx.allocator(), input.dtype(), input.device(), input.shape());
                y.copyFrom(input);
                return y;
            }

            @Override
            public Tensor backward(Tensor input, Tensor gradOutput, SegmentContext ctx) {
                Tensor d = Tensor.empty(ctx.allocator(), gradOutput.dtype(), gradOutput.device(), gradOutput.shape());
                d.copyFrom(gradOutput);
                return d;
            }
        };
        try (Allocator a = Allocator.root("plain"); Tensor x = Tensor.fromArray(a, new float[] {1, 2, 3, 4}, 2, 2)) {
            SegmentProfile p = SegmentProfile.measure(List.of(copy, copy), x, a);
            assertArrayEquals(new long[] {0, 0}, p.parameterBytes());
            assertTrue(p.nanos()[0] > 0 && p.nanos()[1] > 0, p.toString());
            assertEquals(1, a.openBufferCount(), "only the sample is left");
        }
    }
}
