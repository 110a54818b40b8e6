package dev.torus.recompute;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.tensor.Tensor;
import dev.torus.testing.Data;
import dev.torus.testing.TorusTestBase;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class CheckpointedSequentialTest extends TorusTestBase {
    static final int BLOCKS = 32;
    static final int ROWS = 16;
    static final int COLS = 256;

    /** 32 blocks of [Scale, LayerNorm, BiasGelu, Dropout]: 128 segments. */
    List<Segment> model(long seed) {
        Random r = new Random(seed);
        List<Segment> s = new ArrayList<>();
        for (int b = 0; b < BLOCKS; b++) {
            s.add(new Blocks.Scale(root, r, COLS));
            s.add(new Blocks.LayerNorm(root, r, COLS));
            s.add(new Blocks.BiasGelu(root, r, COLS));
            s.add(new Blocks.Dropout(0.1f));
        }
        return s;
    }

    record Run(float[] out, float[] dx, List<float[]> grads, long peak, long checkpoints) {}

    Run train(CheckpointPolicy policy, long seed, float[] x, float[] dy) {
        List<Segment> segs = model(seed);
        try (CheckpointedSequential net = new CheckpointedSequential(segs, policy, root, 42);
             Tensor in = Tensor.fromArray(root, x, ROWS, COLS); Tensor g = Tensor.fromArray(root, dy, ROWS, COLS)) {
            Run run = null;
            for (int step = 0; step < 2; step++) { // two steps: the second uses different dropout keys
                net.resetPeaks();
                try (Tensor out = net.forward(in); Tensor dx = net.backward(g)) {
                    List<float[]> grads = new ArrayList<>();
                    for (Segment s : segs) {
                        if (s instanceof Blocks.Param p) {
                            grads.addAll(p.grads());
                        }
                    }
                    run = new Run(out.toFloatArray(), dx.toFloatArray(), grads, net.peakActivationBytes(),
                            net.checkpointBytes());
                }
            }
            return run;
        } finally {
            for (Segment s : segs) {
                if (s instanceof Blocks.Param p) {
                    p.close();
                }
            }
        }
    }

    @Test
    void everyPolicyGivesBitIdenticalGradientsAndTheExpectedMemory() {
        long seed = Data.freshSeed();
        Random r = new Random(seed);
        float[] x = Data.uniform(r, ROWS * COLS, 2f);
        float[] dy = Data.uniform(r, ROWS * COLS, 1f);
        Run none = train(CheckpointPolicy.none(), seed, x, dy);
        long a = (long) ROWS * COLS * 4; // one activation
        int n = BLOCKS * 4;
        for (CheckpointPolicy p : new CheckpointPolicy[] {CheckpointPolicy.everyK(3), CheckpointPolicy.sqrtN(),
                CheckpointPolicy.selective()}) {
            Run run = train(p, seed, x, dy);
            assertArrayEquals(none.out, run.out, p + ": output (seed " + seed + ")");
            assertArrayEquals(none.dx, run.dx, p + ": input gradient");
            assertEquals(none.grads.size(), run.grads.size());
            for (int i = 0; i < none.grads.size(); i++) {
                assertArrayEquals(none.grads.get(i), run.grads.get(i), p + ": parameter gradient " + i);
            }
        }
        // none keeps all n inputs: peak is about n activations
        assertTrue(none.peak >= n * a && none.peak <= (n + 3) * a, "none peak " + none.peak / a + " activations");
        Run sqrt = train(CheckpointPolicy.sqrtN(), seed, x, dy);
        double s = Math.sqrt(n);
        assertTrue(sqrt.peak <= 2 * s * a + 3 * a, "sqrt(n) peak " + sqrt.peak / a + " activations, n = " + n);
        assertEquals((long) Math.ceil(n / Math.ceil(s)) * a, sqrt.checkpoints, "sqrt(n) keeps ceil(n/k) inputs");
        Run sel = train(CheckpointPolicy.selective(), seed, x, dy);
        assertEquals((BLOCKS + 1) * a, sel.checkpoints, "selective keeps the input and each Scale output");
        System.out.printf("peak activations (in A = %d B): none %.1f, sqrt(n) %.1f, selective %.1f, n = %d%n", a,
                none.peak / (double) a, sqrt.peak / (double) a, sel.peak / (double) a, n);
    }

    @Test
    void misuseIsReportedClearly() {
        List<Segment> segs = List.of(new Blocks.Dropout(0.5f));
        try (CheckpointedSequential net = new CheckpointedSequential(segs, CheckpointPolicy.sqrtN(), root, 1);
             Tensor x = Tensor.fromArray(root, new float[] {1, 2, 3, 4}, 2, 2);
             Tensor wrong = Tensor.fromArray(root, new float[] {1, 2}, 2)) {
            IllegalStateException before = assertThrows(IllegalStateException.class, () -> net.backward(x));
            assertTrue(before.getMessage().contains("before forward"), before.getMessage());
            try (Tensor out = net.forward(x)) {
                IllegalArgumentException shape = assertThrows(IllegalArgumentException.class, () -> net.backward(wrong));
                assertTrue(shape.getMessage().contains("gradOutput must have the output's shape [2, 2]"),
                        shape.getMessage());
                net.backward(out).close();
                IllegalStateException twice = assertThrows(IllegalStateException.class, () -> net.backward(out));
                assertTrue(twice.getMessage().contains("already ran"), twice.getMessage());
            }
        }
        assertThrows(IllegalArgumentException.class, () -> new CheckpointedSequential(List.of(), CheckpointPolicy.none(),
                root, 1));
        assertThrows(IllegalArgumentException.class, () -> CheckpointPolicy.everyK(0));
        assertThrows(IllegalArgumentException.class, () -> new CheckpointedSequential(segs, null, root, 1));
    }

    @Test
    void forwardWithoutBackwardFreesItsCheckpoints() {
        List<Segment> segs = List.of(new Blocks.Dropout(0.5f), new Blocks.Dropout(0.5f));
        try (CheckpointedSequential net = new CheckpointedSequential(segs, CheckpointPolicy.none(), root, 1);
             Tensor x = Tensor.fromArray(root, new float[] {1, 2, 3, 4}, 4)) {
            net.forward(x).close();
            net.forward(x).close(); // evaluation twice: the first forward's checkpoints are dropped
        } // closing the engine finds nothing left open
    }
}
