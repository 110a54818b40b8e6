package dev.torus.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.Device;
import dev.torus.recompute.CheckpointPolicy;
import dev.torus.recompute.CheckpointedSequential;
import dev.torus.tensor.Tensor;
import dev.torus.testing.TorusTestBase;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * {@code Mlp} with residual blocks: gradients bitwise equal under every checkpoint policy (dropout inside
 * the blocks), and a 32-block stack that learns where the plain one does not.
 */
class ResidualMlpTest extends TorusTestBase {
    private static final int IN = 16;
    private static final int WIDTH = 32;
    private static final int CLASSES = 4;
    private static final int ROWS = 64;

    private static float[] inputs(long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] x = new float[ROWS * IN];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextGaussian();
        }
        return x;
    }

    /** A learnable task: the class is the index of the largest of the first CLASSES features. */
    private static int[] labels(float[] x) {
        int[] y = new int[ROWS];
        for (int r = 0; r < ROWS; r++) {
            int best = 0;
            for (int c = 1; c < CLASSES; c++) {
                if (x[r * IN + c] > x[r * IN + best]) {
                    best = c;
                }
            }
            y[r] = best;
        }
        return y;
    }

    private List<float[]> gradients(CheckpointPolicy policy) {
        try (Mlp mlp = new Mlp(IN, WIDTH, 6, CLASSES, 0.1f, true, Device.cpu(), root, 3);
             CheckpointedSequential net = new CheckpointedSequential(mlp.layers(), policy, root, 11)) {
            float[] xs = inputs(5);
            try (Tensor x = Tensor.fromArray(root, xs, ROWS, IN); Tensor y = Tensor.fromArray(root, labels(xs), ROWS);
                 Tensor out = net.forward(x);
                 SoftmaxCrossEntropy.Result l = SoftmaxCrossEntropy.lossAndGrad(out, y, root);
                 Tensor dx = net.backward(l.gradLogits())) {
                List<float[]> g = new ArrayList<>();
                g.add(dx.toFloatArray());
                for (Parameter p : mlp.parameters()) {
                    g.add(p.grad().toFloatArray());
                }
                return g;
            }
        }
    }

    @Test
    void gradientsAreBitwiseEqualUnderEveryPolicy() {
        List<float[]> none = gradients(CheckpointPolicy.none());
        for (CheckpointPolicy p : List.of(CheckpointPolicy.everyK(2), CheckpointPolicy.sqrtN(),
                CheckpointPolicy.selective())) {
            List<float[]> got = gradients(p);
            assertEquals(none.size(), got.size());
            for (int i = 0; i < none.size(); i++) {
                assertArrayEquals(none.get(i), got.get(i), p + ": gradient " + i);
            }
        }
        try (Mlp mlp = new Mlp(IN, WIDTH, 6, CLASSES, 0f, true, Device.cpu(), root, 3)) {
            // the first block maps IN to WIDTH and stays plain (3 layers); five residual blocks; the classifier
            assertEquals(3 + 5 + 1, mlp.layers().size());
            assertTrue(mlp.layers().get(3) instanceof Residual);
        }
    }

    /** Mean loss over the last 10 of {@code steps} AdamW steps on one batch, and the first step's loss. */
    private float[] train(boolean residual, int blocks, int steps) {
        float[] xs = inputs(9);
        try (Mlp mlp = new Mlp(IN, WIDTH, blocks, CLASSES, 0f, residual, Device.cpu(), root, 7);
             AdamW opt = new AdamW(mlp.parameters(), 3e-3f, root);
             CheckpointedSequential net = new CheckpointedSequential(mlp.layers(), CheckpointPolicy.none(), root, 1);
             Tensor x = Tensor.fromArray(root, xs, ROWS, IN); Tensor y = Tensor.fromArray(root, labels(xs), ROWS)) {
            float first = 0;
            float tail = 0;
            for (int s = 0; s < steps; s++) {
                mlp.parameters().forEach(p -> p.grad().zero());
                try (Tensor out = net.forward(x); SoftmaxCrossEntropy.Result l = SoftmaxCrossEntropy.lossAndGrad(out, y,
                        root); Tensor dx = net.backward(l.gradLogits())) {
                    if (s == 0) {
                        first = l.loss();
                    }
                    if (s >= steps - 10) {
                        tail += l.loss() / 10;
                    }
                }
                opt.step();
            }
            return new float[] {first, tail};
        }
    }

    @Test
    void aThirtyTwoBlockStackLearnsWithResidualBlocks() {
        float[] plain = train(false, 32, 60);
        float[] res = train(true, 32, 60);
        System.out.printf("32 blocks, 60 AdamW steps: plain %.4f -> %.4f, residual %.4f -> %.4f%n", plain[0], plain[1],
                res[0], res[1]);
        assertTrue(res[1] < 0.5f * res[0], "residual: " + res[0] + " -> " + res[1]);
        assertTrue(res[1] < 0.5f * plain[1], "residual " + res[1] + " against plain " + plain[1]);
    }

    @Test
    void badInnerLayersAreRefused() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new Residual(List.of()));
        assertTrue(e.getMessage().contains("inner"), e.getMessage());
        try (Linear wider = new Linear(8, 16, false, Device.cpu(), root, 1); Residual r = new Residual(List.of(wider));
             Tensor x = Tensor.fromArray(root, new float[16], 2, 8)) {
            e = assertThrows(IllegalArgumentException.class, () -> r.forward(x,
                    dev.torus.recompute.SegmentContext.of(root, 1, 0)));
            assertTrue(e.getMessage().contains("keep the shape"), e.getMessage());
        }
    }
}
