package dev.torus.recompute;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.tensor.Tensor;
import dev.torus.nn.Mlp;
import dev.torus.nn.Parameter;
import dev.torus.nn.Sgd;
import dev.torus.nn.SoftmaxCrossEntropy;
import dev.torus.testing.TorusTestBase;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The 32-block MLP of dev.torus.nn (real GEMMs, bias+GELU, dropout) under every
 * policy: gradients bit-identical to no checkpointing, peak memory as promised,
 * compressed checkpoints, the budget planner and its errors.
 */
class MlpCheckpointTest extends TorusTestBase {
    static final int BLOCKS = 32;
    static final int ROWS = 32;
    static final int WIDTH = 128;
    static final int CLASSES = 10;
    static final long A_ONE = (long) ROWS * WIDTH * 4;     // one activation
    static final long A = 4 * A_ONE;                       // one block under "none": 4 layer inputs

    record Run(float firstLoss, float loss, float[] dx, List<float[]> grads, long peak, long checkpoints, long planned) {}

    float[] input(long seed) {
        Random r = new Random(seed);
        float[] x = new float[ROWS * WIDTH];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextGaussian();
        }
        return x;
    }

    int[] labels(long seed) {
        Random r = new Random(seed);
        int[] l = new int[ROWS];
        for (int i = 0; i < ROWS; i++) {
            l[i] = r.nextInt(CLASSES);
        }
        return l;
    }

    /** Two training steps (forward, loss, backward, SGD); returns the second step's figures. */
    Run train(CheckpointPolicy policy, CheckpointStorage storage) {
        try (Mlp mlp = new Mlp(WIDTH, WIDTH, BLOCKS, CLASSES, 0.1f, Device.cpu(), root, 5);
             CheckpointedSequential net = new CheckpointedSequential(mlp.layers(), policy, storage, root, 42);
             Sgd opt = new Sgd(mlp.parameters(), 0.01f, 0.9f, root)) {
            Run run = null;
            float firstLoss = Float.NaN;
            for (int step = 0; step < 2; step++) {   // the second step uses other dropout keys and updated weights
                opt.zeroGrad();
                net.resetPeaks();
                float loss;
                float[] dxv;
                try (Tensor x = Tensor.fromArray(root, input(step), ROWS, WIDTH);
                     Tensor y = Tensor.fromArray(root, labels(step), ROWS);
                     Tensor out = net.forward(x);
                     SoftmaxCrossEntropy.Result l = SoftmaxCrossEntropy.lossAndGrad(out, y, root);
                     Tensor dx = net.backward(l.gradLogits())) {
                    loss = l.loss();
                    dxv = dx.toFloatArray();
                }
                List<float[]> grads = new ArrayList<>();
                for (Parameter p : mlp.parameters()) {
                    grads.add(p.grad().toFloatArray());
                }
                if (step == 0) {
                    firstLoss = loss;
                }
                run = new Run(firstLoss, loss, dxv, grads, net.peakActivationBytes(), net.checkpointBytes(), net.plannedPeakBytes());
                opt.step();
            }
            return run;
        }
    }

    static void assertSameGradients(Run ref, Run got, String what) {
        assertEquals(ref.loss, got.loss, 0f, what + ": loss");
        assertArrayEquals(ref.dx, got.dx, what + ": input gradient");
        assertEquals(ref.grads.size(), got.grads.size());
        for (int i = 0; i < ref.grads.size(); i++) {
            assertArrayEquals(ref.grads.get(i), got.grads.get(i), what + ": parameter gradient " + i);
        }
    }

    @Test
    void everyPolicyGivesBitIdenticalGradientsAndTheMemoryItPromises() {
        Run none = train(CheckpointPolicy.none(), CheckpointStorage.fp32());
        Run every4 = train(CheckpointPolicy.everyK(4), CheckpointStorage.fp32());
        Run sqrt = train(CheckpointPolicy.sqrtN(), CheckpointStorage.fp32());
        Run sel = train(CheckpointPolicy.selective(), CheckpointStorage.fp32());
        Run budget = train(CheckpointPolicy.budget(none.peak / 3), CheckpointStorage.fp32());
        assertSameGradients(none, every4, "every-4");
        assertSameGradients(none, sqrt, "sqrt(n)");
        assertSameGradients(none, sel, "selective");
        assertSameGradients(none, budget, "budget");

        double n = BLOCKS;
        System.out.printf("32-block MLP peak activations in A = %d B: none %.2f, every-4 %.2f, sqrt(n) %.2f, "
                        + "selective %.2f, budget(none/3) %.2f%n", A, none.peak / (double) A, every4.peak / (double) A,
                sqrt.peak / (double) A, sel.peak / (double) A, budget.peak / (double) A);
        // none keeps every layer input: n blocks of A, plus the head (Linear input, logits)
        assertTrue(none.peak >= n * A && none.peak <= (n + 1) * A, "none: " + none.peak / (double) A + " A");
        assertTrue(sqrt.peak <= 2 * Math.sqrt(n) * A, "sqrt(n): " + sqrt.peak / (double) A + " A");
        assertTrue(none.peak >= 3 * sqrt.peak, "sqrt(n) saves >= 3x");
        assertTrue(sel.peak <= 0.6 * none.peak, "selective saves >= 40%: " + sel.peak / (double) none.peak);
        assertTrue(budget.peak <= none.peak / 3, "budget respected: " + budget.peak + " > " + none.peak / 3);
        // the planner's model is exact for these layers (no scratch in forward)
        assertEquals(none.planned, none.peak, "planned peak (none)");
        assertEquals(sqrt.planned, sqrt.peak, "planned peak (sqrt)");
        assertEquals(budget.planned, budget.peak, "planned peak (budget)");
    }

    @Test
    void budgetPlansKeepEverythingWhenItFitsAndRecomputeLeastOtherwise() {
        try (Mlp mlp = new Mlp(WIDTH, WIDTH, 8, CLASSES, 0.1f, Device.cpu(), root, 5);
             CheckpointedSequential all = new CheckpointedSequential(mlp.layers(), CheckpointPolicy.none(), root, 1);
             Tensor x = Tensor.fromArray(root, input(1), ROWS, WIDTH)) {
            try (Tensor out = all.forward(x)) {
                long nonePeak = all.plannedPeakBytes();
                try (CheckpointedSequential big = new CheckpointedSequential(mlp.layers(),
                        CheckpointPolicy.budget(nonePeak), root, 1); Tensor o2 = big.forward(x)) {
                    assertEquals(mlp.layers().size(), big.checkpointIndices().length, "a budget that fits keeps all");
                }
                // every budget between the minimum and none: fits, and never costs more than a looser one
                double last = Double.POSITIVE_INFINITY;
                for (double f : new double[] {0.3, 0.4, 0.6, 0.8}) {
                    long b = (long) (nonePeak * f);
                    try (CheckpointedSequential net = new CheckpointedSequential(mlp.layers(),
                            CheckpointPolicy.budget(b), root, 1); Tensor o3 = net.forward(x)) {
                        assertTrue(net.plannedPeakBytes() <= b, "planned " + net.plannedPeakBytes() + " <= " + b);
                        assertTrue(net.peakActivationBytes() <= b, "measured " + net.peakActivationBytes() + " <= " + b);
                        int kept = net.checkpointIndices().length;
                        double cost = mlp.layers().size() - kept;
                        assertTrue(cost <= last || kept >= 1, "cost falls as the budget grows");
                        last = Math.min(last, cost);
                    }
                }
            }
        }
    }

    @Test
    void aBudgetTooSmallToRunIsRejectedWithTheSmallestThatWorks() {
        try (Mlp mlp = new Mlp(WIDTH, WIDTH, 4, CLASSES, 0f, Device.cpu(), root, 5);
             CheckpointedSequential net = new CheckpointedSequential(mlp.layers(), CheckpointPolicy.budget(1000), root, 1);
             Tensor x = Tensor.fromArray(root, input(1), ROWS, WIDTH)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> net.forward(x));
            assertTrue(e.getMessage().contains("memory budget of 1000 bytes is too small"), e.getMessage());
            long min = Long.parseLong(e.getMessage().replaceAll(".*needs about (\\d+) bytes.*", "$1"));
            assertTrue(min > 1000, "minimum " + min);
            // the budget it names works
            try (CheckpointedSequential ok = new CheckpointedSequential(mlp.layers(), CheckpointPolicy.budget(min), root,
                    1); Tensor out = ok.forward(x)) {
                assertTrue(ok.peakActivationBytes() <= min);
            }
            assertEquals(0, root.allocatedBytes() - mlpBytes(mlp) - x.byteSize(),
                    "a rejected forward leaves nothing allocated");
        }
        assertThrows(IllegalArgumentException.class, () -> CheckpointPolicy.budget(0));
    }

    static long mlpBytes(Mlp mlp) {
        long b = 0;
        for (Parameter p : mlp.parameters()) {
            b += p.value().byteSize() + p.grad().byteSize();
        }
        return b;
    }

    @Test
    void compressedCheckpointsShrinkStorageAndStayClose() {
        Run fp32 = train(CheckpointPolicy.sqrtN(), CheckpointStorage.fp32());
        Run fp16 = train(CheckpointPolicy.sqrtN(), CheckpointStorage.fp16());
        Run bf16 = train(CheckpointPolicy.sqrtN(), CheckpointStorage.bf16());
        Run int8 = train(CheckpointPolicy.sqrtN(), CheckpointStorage.int8Blockwise(256));
        double r16 = fp16.checkpoints / (double) fp32.checkpoints;
        double r8 = int8.checkpoints / (double) fp32.checkpoints;
        assertEquals(0.5, r16, 1e-9, "fp16 checkpoint bytes");
        assertEquals(0.5, bf16.checkpoints / (double) fp32.checkpoints, 1e-9, "bf16 checkpoint bytes");
        assertTrue(r8 > 0.24 && r8 < 0.27, "int8 checkpoints are about 1/4 of fp32: " + r8);
        // the forward stays exact, so the loss is unchanged; gradients move by the storage rounding
        assertEquals(fp32.firstLoss, int8.firstLoss, 0f, "forward is exact with compressed checkpoints");
        double e16 = relError(fp32, fp16);
        double eb16 = relError(fp32, bf16);
        double e8 = relError(fp32, int8);
        System.out.printf("relative gradient error vs fp32 checkpoints (sqrt(n), 32 blocks): fp16 %.2e, bf16 %.2e, "
                + "int8/256 %.2e%n", e16, eb16, e8);
        // bounds for this 32-block network (errors grow through depth; docs/RECOMPUTE.md), and the expected order
        assertTrue(e16 > 0 && e16 < 5e-3, "fp16 error " + e16);
        assertTrue(eb16 > e16 && eb16 < 5e-2, "bf16 error " + eb16);
        assertTrue(e8 > eb16 && e8 < 0.15, "int8 error " + e8);
    }

    /** ||g - g_ref|| / ||g_ref|| over all parameter gradients. */
    static double relError(Run ref, Run got) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < ref.grads.size(); i++) {
            float[] a = ref.grads.get(i);
            float[] b = got.grads.get(i);
            for (int j = 0; j < a.length; j++) {
                num += (a[j] - b[j]) * (double) (a[j] - b[j]);
                den += a[j] * (double) a[j];
            }
        }
        return Math.sqrt(num / den);
    }

    /** Trains a block MLP with AdamW on a learnable task; returns the loss of every step. */
    float[] trainTask(CheckpointPolicy policy, int blocks, float lr, int steps) {
        try (Mlp mlp = new Mlp(16, 64, blocks, 4, 0.05f, Device.cpu(), root, 11);
             CheckpointedSequential net = new CheckpointedSequential(mlp.layers(), policy, root, 3);
             dev.torus.nn.AdamW opt = new dev.torus.nn.AdamW(mlp.parameters(), lr, root)) {
            Random r = new Random(9);
            float[] losses = new float[steps];
            for (int step = 0; step < steps; step++) {
                // the label is the index of the largest of the first 4 inputs
                float[] x = new float[64 * 16];
                int[] y = new int[64];
                for (int i = 0; i < 64; i++) {
                    int best = 0;
                    for (int j = 0; j < 16; j++) {
                        x[i * 16 + j] = (float) r.nextGaussian();
                        if (j < 4 && x[i * 16 + j] > x[i * 16 + best]) {
                            best = j;
                        }
                    }
                    y[i] = best;
                }
                opt.zeroGrad();
                try (Tensor xt = Tensor.fromArray(root, x, 64, 16); Tensor yt = Tensor.fromArray(root, y, 64);
                     Tensor out = net.forward(xt);
                     SoftmaxCrossEntropy.Result l = SoftmaxCrossEntropy.lossAndGrad(out, yt, root);
                     Tensor dx = net.backward(l.gradLogits())) {
                    losses[step] = l.loss();
                }
                opt.step();
            }
            return losses;
        }
    }

    @Test
    void trainingThe32BlockMlpIsBitIdenticalUnderEveryPolicy() {
        int steps = 20;
        float[] none = trainTask(CheckpointPolicy.none(), 32, 1e-3f, steps);
        assertArrayEquals(none, trainTask(CheckpointPolicy.sqrtN(), 32, 1e-3f, steps), "sqrt(n) vs none");
        assertArrayEquals(none, trainTask(CheckpointPolicy.selective(), 32, 1e-3f, steps), "selective vs none");
        assertArrayEquals(none, trainTask(CheckpointPolicy.everyK(3), 32, 1e-3f, steps), "every-3 vs none");
    }

    @Test
    void aCheckpointedMlpLearns() {
        int steps = 100;
        float[] losses = trainTask(CheckpointPolicy.sqrtN(), 8, 3e-3f, steps);
        float first = 0;
        float last = 0;
        for (int i = 0; i < 10; i++) {
            first += losses[i] / 10;
            last += losses[steps - 10 + i] / 10;
        }
        System.out.printf("8-block MLP, sqrt(n), AdamW, %d steps: loss %.3f -> %.3f%n", steps, first, last);
        assertTrue(last < 0.6 * first, "loss fell from " + first + " to " + last);
    }

    @Test
    void misuseIsRejected() {
        try (Mlp mlp = new Mlp(WIDTH, WIDTH, 2, CLASSES, 0.1f, Device.cpu(), root, 5);
             CheckpointedSequential net = new CheckpointedSequential(mlp.layers(), CheckpointPolicy.sqrtN(), root, 1);
             Tensor x = Tensor.fromArray(root, input(1), ROWS, WIDTH);
             Tensor bad = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), ROWS, WIDTH + 1);
             Tensor g = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), ROWS, CLASSES)) {
            IllegalStateException before = assertThrows(IllegalStateException.class, () -> net.backward(g));
            assertTrue(before.getMessage().contains("before forward"), before.getMessage());
            IllegalArgumentException shape = assertThrows(IllegalArgumentException.class, () -> net.forward(bad));
            assertTrue(shape.getMessage().contains("input must have last dimension " + WIDTH), shape.getMessage());
            try (Tensor out = net.forward(x); Tensor dx = net.backward(g)) {
                IllegalStateException twice = assertThrows(IllegalStateException.class, () -> net.backward(g));
                assertTrue(twice.getMessage().contains("already ran"), twice.getMessage());
            }
        }
        assertThrows(IllegalArgumentException.class, () -> CheckpointStorage.int8Blockwise(32));
    }
}
