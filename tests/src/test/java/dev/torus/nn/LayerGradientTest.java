package dev.torus.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.tensor.Tensor;
import dev.torus.recompute.SegmentContext;
import dev.torus.testing.TorusTestBase;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Finite-difference gradient checks for every layer, on CPU (GEMMs through OpenBLAS). */
class LayerGradientTest extends TorusTestBase {
    static final long SEED = 20261123L;

    float[] rand(Random r, int n, float lo, float hi) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = lo + (hi - lo) * r.nextFloat();
        }
        return v;
    }

    /** Values with |v| >= 0.1, so a kink at 0 (ReLU) is never within h. */
    float[] awayFromZero(Random r, int n) {
        float[] v = rand(r, n, 0.1f, 1.5f);
        for (int i = 0; i < n; i++) {
            if (r.nextBoolean()) {
                v[i] = -v[i];
            }
        }
        return v;
    }

    SegmentContext ctx() {
        return SegmentContext.of(root, 77, 1000);
    }

    /** Runs forward, then backward with dy = r; checks dx and every parameter gradient by finite differences. */
    void checkLayer(String name, Layer layer, Tensor x, Random rnd) {
        long[] outShape;
        float[] r;
        try (Tensor y = layer.forward(x, ctx())) {
            outShape = y.shape();
            r = rand(rnd, (int) y.numel(), -1f, 1f);
        }
        for (Parameter p : layer.parameters()) {
            p.zeroGrad();
        }
        float[] dxA;
        try (Tensor dy = Tensor.fromArray(root, r, outShape); Tensor dx = layer.backward(x, dy, ctx())) {
            dxA = dx.toFloatArray();
        }
        java.util.function.DoubleSupplier loss = () -> {
            try (Tensor y = layer.forward(x, ctx())) {
                return GradCheck.dot(y, r);
            }
        };
        GradCheck.check(name + " dx", x, dxA, loss);
        for (Parameter p : layer.parameters()) {
            GradCheck.check(name + " d" + p.name(), p.value(), p.grad().toFloatArray(), loss);
        }
    }

    @Test
    void linearGradientsMatchFiniteDifferences() {
        Random r = new Random(SEED);
        try (Linear l = new Linear(7, 5, true, Device.cpu(), root, 3);
             Tensor x = Tensor.fromArray(root, rand(r, 3 * 7, -1, 1), 3, 7)) {
            checkLayer("Linear", l, x, r);
        }
        // rank-3 input: rows are all leading dimensions
        try (Linear l = new Linear(4, 6, false, Device.cpu(), root, 4);
             Tensor x = Tensor.fromArray(root, rand(r, 2 * 3 * 4, -1, 1), 2, 3, 4)) {
            checkLayer("Linear(rank 3)", l, x, r);
        }
    }

    @Test
    void linearMatchesScalarGemm() {
        Random r = new Random(SEED + 1);
        int rows = 5, in = 33, out = 17;
        float[] xv = rand(r, rows * in, -1, 1);
        try (Linear l = new Linear(in, out, true, Device.cpu(), root, 9);
             Tensor x = Tensor.fromArray(root, xv, rows, in); Tensor y = l.forward(x, ctx())) {
            float[] w = l.weight().value().toFloatArray();
            float[] b = l.bias().value().toFloatArray();
            float[] got = y.toFloatArray();
            for (int i = 0; i < rows; i++) {
                for (int o = 0; o < out; o++) {
                    double s = b[o];
                    for (int k = 0; k < in; k++) {
                        s += (double) xv[i * in + k] * w[o * in + k];
                    }
                    assertEquals(s, got[i * out + o], 1e-5 * Math.max(1, Math.abs(s)), "y[" + i + "," + o + "]");
                }
            }
            double bound = 1 / Math.sqrt(in);
            for (float v : w) {
                assertTrue(Math.abs(v) <= bound, "weight init within 1/sqrt(in)");
            }
        }
    }

    @Test
    void biasGeluGradientsMatchFiniteDifferences() {
        Random r = new Random(SEED + 2);
        try (BiasGelu l = new BiasGelu(6, Device.cpu(), root);
             Tensor x = Tensor.fromArray(root, rand(r, 4 * 6, -3, 3), 4, 6)) {
            GradCheck.floats(l.bias().value()).put(rand(r, 6, -0.5f, 0.5f));
            checkLayer("BiasGelu", l, x, r);
        }
    }

    @Test
    void reluGradientsMatchFiniteDifferences() {
        Random r = new Random(SEED + 3);
        try (ReLU l = new ReLU(); Tensor x = Tensor.fromArray(root, awayFromZero(r, 40), 5, 8)) {
            checkLayer("ReLU", l, x, r);
            try (Tensor y = l.forward(x, ctx())) {
                float[] xv = x.toFloatArray();
                float[] yv = y.toFloatArray();
                for (int i = 0; i < xv.length; i++) {
                    assertEquals(Math.max(xv[i], 0f), yv[i], 0f);
                }
            }
        }
        try (ReLU l = new ReLU(); Tensor x = Tensor.fromArray(root, new float[] {Float.NaN, -0f, 2f}, 3);
             Tensor y = l.forward(x, ctx())) {
            float[] v = y.toFloatArray();
            assertTrue(Float.isNaN(v[0]), "NaN propagates");
            assertEquals(0f, v[1]);
            assertEquals(2f, v[2]);
        }
    }

    @Test
    void dropoutGradientsMatchFiniteDifferencesAndMaskIsRegenerated() {
        Random r = new Random(SEED + 4);
        try (Dropout l = new Dropout(0.3f); Tensor x = Tensor.fromArray(root, rand(r, 64, -1, 1), 8, 8)) {
            checkLayer("Dropout", l, x, r);
            try (Tensor y = l.forward(x, ctx())) {
                float[] xv = x.toFloatArray();
                float[] yv = y.toFloatArray();
                int dropped = 0;
                for (int i = 0; i < xv.length; i++) {
                    if (yv[i] == 0f) {
                        dropped++;
                    } else {
                        assertEquals(xv[i] / 0.7f, yv[i], 1e-6f);
                    }
                }
                assertTrue(dropped > 5 && dropped < 35, "about 30% dropped, got " + dropped + " of 64");
            }
            l.setEnabled(false);
            try (Tensor y = l.forward(x, ctx())) {
                assertArrayEquals(x.toFloatArray(), y.toFloatArray(), "disabled dropout is the identity");
            }
        }
    }

    @Test
    void layerNormGradientsMatchFiniteDifferences() {
        Random r = new Random(SEED + 5);
        try (LayerNorm l = new LayerNorm(9, 1e-5f, Device.cpu(), root);
             Tensor x = Tensor.fromArray(root, rand(r, 4 * 9, -2, 2), 4, 9)) {
            GradCheck.floats(l.gamma().value()).put(rand(r, 9, 0.5f, 1.5f));
            GradCheck.floats(l.beta().value()).put(rand(r, 9, -0.5f, 0.5f));
            checkLayer("LayerNorm", l, x, r);
        }
    }

    @Test
    void softmaxCrossEntropyMatchesReferenceAndFiniteDifferences() {
        Random r = new Random(SEED + 6);
        int rows = 6, classes = 11;
        float[] xv = rand(r, rows * classes, -4, 4);
        int[] lab = new int[rows];
        for (int i = 0; i < rows; i++) {
            lab[i] = r.nextInt(classes);
        }
        try (Tensor x = Tensor.fromArray(root, xv, rows, classes); Tensor labels = Tensor.fromArray(root, lab, rows);
             SoftmaxCrossEntropy.Result res = SoftmaxCrossEntropy.lossAndGrad(x, labels, root)) {
            double ref = 0;
            for (int i = 0; i < rows; i++) {
                double m = Double.NEGATIVE_INFINITY;
                for (int c = 0; c < classes; c++) {
                    m = Math.max(m, xv[i * classes + c]);
                }
                double s = 0;
                for (int c = 0; c < classes; c++) {
                    s += Math.exp(xv[i * classes + c] - m);
                }
                ref += Math.log(s) + m - xv[i * classes + lab[i]];
            }
            ref /= rows;
            assertEquals(ref, res.loss(), 1e-5 * Math.abs(ref));
            assertEquals(res.loss(), SoftmaxCrossEntropy.loss(x, labels), 0f, "loss alone is the same");
            GradCheck.check("softmax-CE dlogits", x, res.gradLogits().toFloatArray(),
                    () -> SoftmaxCrossEntropy.loss(x, labels));
        }
    }

    @Test
    void softmaxCrossEntropyIsStableForLargeLogits() {
        try (Tensor x = Tensor.fromArray(root, new float[] {1000f, 0f, -1000f}, 1, 3);
             Tensor labels = Tensor.fromArray(root, new int[] {1}, 1)) {
            assertEquals(1000f, SoftmaxCrossEntropy.loss(x, labels), 1e-3f);
        }
    }

    @Test
    void sgdMatchesTorchUpdateRuleBitForBit() {
        Random r = new Random(SEED + 7);
        int n = 1000;
        float lr = 0.05f, mom = 0.9f, wd = 1e-3f;
        for (boolean nesterov : new boolean[] {false, true}) {
            try (Linear l = new Linear(n, 1, false, Device.cpu(), root, 1);
                 Sgd opt = new Sgd(l.parameters(), lr, mom, wd, nesterov, root)) {
                Parameter p = l.weight();
                float[] pv = p.value().toFloatArray();
                float[] buf = new float[n];
                for (int step = 0; step < 3; step++) {
                    float[] g = rand(r, n, -1, 1);
                    GradCheck.floats(p.grad()).put(g);
                    opt.step();
                    for (int i = 0; i < n; i++) {
                        float gi = g[i] + wd * pv[i];
                        buf[i] = step == 0 ? gi : mom * buf[i] + gi;
                        gi = nesterov ? gi + mom * buf[i] : buf[i];
                        pv[i] = pv[i] - lr * gi;
                    }
                    assertArrayEquals(pv, p.value().toFloatArray(), "SGD step " + step + ", nesterov " + nesterov);
                }
                assertEquals(3, opt.steps());
                opt.zeroGrad();
                assertArrayEquals(new float[n], p.grad().toFloatArray());
            }
        }
    }

    @Test
    void adamWMatchesTorchUpdateRuleBitForBit() {
        Random r = new Random(SEED + 8);
        int n = 777;
        float lr = 1e-2f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f;
        try (Linear l = new Linear(n, 1, false, Device.cpu(), root, 2);
             AdamW opt = new AdamW(l.parameters(), lr, b1, b2, eps, wd, root)) {
            Parameter p = l.weight();
            float[] pv = p.value().toFloatArray();
            float[] m = new float[n];
            float[] v = new float[n];
            for (int t = 1; t <= 4; t++) {
                float[] g = rand(r, n, -1, 1);
                GradCheck.floats(p.grad()).put(g);
                opt.step();
                float bc1 = (float) (1 - Math.pow(b1, t));
                float bc2 = (float) (1 - Math.pow(b2, t));
                float stepSize = lr / bc1;
                float bc2Sqrt = (float) Math.sqrt(bc2);
                for (int i = 0; i < n; i++) {
                    pv[i] = pv[i] * (1f - lr * wd);
                    m[i] = b1 * m[i] + (1f - b1) * g[i];
                    v[i] = b2 * v[i] + (1f - b2) * g[i] * g[i];
                    float denom = (float) Math.sqrt(v[i]) / bc2Sqrt + eps;
                    pv[i] = pv[i] - stepSize * (m[i] / denom);
                }
                assertArrayEquals(pv, p.value().toFloatArray(), "AdamW step " + t);
            }
        }
    }

    @Test
    void badInputsAreRejectedWithTheArgumentNamed() {
        try (Linear l = new Linear(4, 3, true, Device.cpu(), root, 1);
             Tensor wrong = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), 2, 5);
             Tensor ints = Tensor.zeros(root, DType.INT32, Device.cpu(), 2, 4);
             Tensor x = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), 2, 4);
             Tensor dyWrong = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), 2, 4)) {
            assertMessage(() -> l.forward(wrong, ctx()), "input must have last dimension 4");
            assertMessage(() -> l.forward(ints, ctx()), "input must be FLOAT32");
            assertMessage(() -> l.backward(x, dyWrong, ctx()), "gradOutput must have shape [2, 3]");
        }
        assertMessage(() -> new Linear(0, 3, true, Device.cpu(), root, 1), "in must be in [1,");
        assertMessage(() -> new Dropout(1f), "p must be in [0, 1)");
        assertMessage(() -> new LayerNorm(4, 0f, Device.cpu(), root), "eps must be a positive finite number");
        try (Tensor logits = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), 2, 3);
             Tensor badLabel = Tensor.fromArray(root, new int[] {0, 3}, 2);
             Tensor shortLabels = Tensor.fromArray(root, new int[] {0}, 1);
             Tensor floatLabels = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), 2)) {
            assertMessage(() -> SoftmaxCrossEntropy.loss(logits, badLabel), "labels[1] must be in [0, 3), got 3");
            assertMessage(() -> SoftmaxCrossEntropy.loss(logits, shortLabels), "labels must have shape [2]");
            assertMessage(() -> SoftmaxCrossEntropy.loss(logits, floatLabels), "labels must be INT32");
        }
        try (Linear l = new Linear(4, 3, true, Device.cpu(), root, 1)) {
            assertMessage(() -> new Sgd(l.parameters(), -1f, 0.9f, root), "lr must be a finite number >= 0");
            assertMessage(() -> new Sgd(l.parameters(), 0.1f, 1f, root), "momentum must be in [0, 1)");
            assertMessage(() -> new Sgd(l.parameters(), 0.1f, 0f, 0f, true, root), "nesterov needs momentum > 0");
            assertMessage(() -> new AdamW(l.parameters(), 0.1f, 1f, 0.999f, 1e-8f, 0f, root), "beta1 must be in [0, 1)");
            assertMessage(() -> new AdamW(java.util.List.of(), 0.1f, root), "params must be a non-empty list");
            Sgd closed = new Sgd(l.parameters(), 0.1f, 0.5f, root);
            closed.close();
            assertMessage(closed::step, "Sgd is closed");
            try (Tensor other = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), 3)) {
                assertMessage(() -> l.weight().replaceGrad(other), "newGrad must be FLOAT32 [3, 4]");
            }
        }
    }

    static void assertMessage(org.junit.jupiter.api.function.Executable call, String expected) {
        RuntimeException e = assertThrows(RuntimeException.class, call);
        assertTrue(e.getMessage() != null && e.getMessage().contains(expected),
                "expected a message containing '" + expected + "', got: " + e.getMessage());
    }
}
