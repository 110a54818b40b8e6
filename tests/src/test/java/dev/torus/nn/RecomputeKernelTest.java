package dev.torus.nn;

import static dev.torus.testing.BadArgument.assertMessage;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.tensor.Tensor;
import dev.torus.testing.Data;
import dev.torus.testing.TorusTestBase;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** CPU recompute kernels against the scalar reference, bit for bit, plus gradient checks. */
class RecomputeKernelTest extends TorusTestBase {

    static void assertBits(float[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what + ": length");
        for (int i = 0; i < want.length; i++) {
            if (Float.floatToIntBits(want[i]) != Float.floatToIntBits(got[i])) {
                throw new AssertionError(what + ": element " + i + " is " + got[i] + ", reference " + want[i]);
            }
        }
    }

    float[] data(Random r, int n, float scale) {
        float[] v = Data.uniform(r, n, scale);
        return v;
    }

    @ParameterizedTest(name = "{0} x {1}")
    @CsvSource({"0, 7", "1, 1", "3, 33", "17, 1000", "64, 257", "1000, 3", "97, 130"})
    void biasGeluMatchesReference(int rows, int cols) {
        long seed = Data.freshSeed();
        Random r = new Random(seed);
        float[] x = data(r, rows * cols, 6f);
        if (x.length > 2) {
            x[0] = 40f;   // saturates tanh
            x[1] = -40f;
        }
        float[] b = data(r, cols, 1f);
        float[] dy = data(r, rows * cols, 1f);
        float[] y = new float[x.length];
        float[] dx = new float[x.length];
        float[] db;
        for (int i = 0; i < x.length; i++) {
            float z = x[i] + b[i % cols];
            y[i] = RecomputeReference.gelu(z);
            dx[i] = RecomputeReference.geluGrad(z) * dy[i];
        }
        db = RecomputeReference.columnSums(dx, rows, cols);
        try (Tensor tx = Tensor.fromArray(root, x, rows, cols); Tensor tb = Tensor.fromArray(root, b, cols);
             Tensor tdy = Tensor.fromArray(root, dy, rows, cols);
             Tensor ty = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), rows, cols);
             Tensor tdx = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), rows, cols);
             Tensor tdb = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), cols)) {
            RecomputeKernels.biasGeluForward(tx, tb, ty);
            RecomputeKernels.biasGeluBackward(tx, tb, tdy, tdx, tdb);
            assertBits(y, ty.toFloatArray(), "gelu forward (seed " + seed + ")");
            assertBits(dx, tdx.toFloatArray(), "gelu backward (seed " + seed + ")");
            assertBits(db, tdb.toFloatArray(), "dbias (seed " + seed + ")");
        }
    }

    @Test
    void geluIsCloseToTheTanhFormulaAndItsGradientToAFiniteDifference() {
        for (float z = -8f; z <= 8f; z += 0.01f) {
            double t = Math.tanh(0.7978845608028654 * (z + 0.044715 * z * z * z));
            double exact = 0.5 * z * (1 + t);
            assertEquals(exact, RecomputeReference.gelu(z), 2e-6 * (1 + Math.abs(exact)), "gelu(" + z + ")");
            double h = 1e-3;
            double fd = (gelu64(z + h) - gelu64(z - h)) / (2 * h);
            assertEquals(fd, RecomputeReference.geluGrad(z), 1e-4, "gelu'(" + z + ")");
        }
    }

    static double gelu64(double z) {
        return 0.5 * z * (1 + Math.tanh(0.7978845608028654 * (z + 0.044715 * z * z * z)));
    }

    @Test
    void dropoutMaskIsRegeneratedNotStored() {
        long seed = Data.freshSeed();
        int n = 100_003;
        float p = 0.3f;
        float[] x = data(new Random(seed), n, 1f);
        try (Tensor tx = Tensor.fromArray(root, x, n); Tensor ty = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), n);
             Tensor dy = Tensor.fromArray(root, x, n); Tensor dx = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), n)) {
            RecomputeKernels.dropout(tx, ty, p, seed, 12345);
            RecomputeKernels.dropout(dy, dx, p, seed, 12345); // backward: same (seed, offset)
            float[] y = ty.toFloatArray();
            float[] g = dx.toFloatArray();
            float scale = 1.0f / (1.0f - p);
            int kept = 0;
            for (int i = 0; i < n; i++) {
                boolean keep = RecomputeReference.dropoutKeep(seed, 12345 + i, p);
                float want = keep ? x[i] * scale : 0f;
                assertEquals(Float.floatToIntBits(want), Float.floatToIntBits(y[i]), "element " + i);
                assertEquals(Float.floatToIntBits(want), Float.floatToIntBits(g[i]), "backward element " + i);
                kept += keep ? 1 : 0;
            }
            assertEquals(1 - p, kept / (double) n, 0.01, "keep rate");
            // a different offset gives a different mask
            RecomputeKernels.dropout(tx, ty, p, seed, 12346);
            assertTrue(!java.util.Arrays.equals(y, ty.toFloatArray()));
        }
    }

    @ParameterizedTest(name = "{0} x {1}")
    @CsvSource({"1, 1", "5, 31", "7, 32", "3, 1000", "33, 513", "300, 70"})
    void layerNormMatchesReferenceAndFiniteDifferences(int rows, int cols) {
        long seed = Data.freshSeed();
        Random r = new Random(seed);
        float[] x = data(r, rows * cols, 3f);
        for (int i = 0; i < x.length; i++) {
            x[i] += 5f; // a mean far from zero
        }
        float[] g = data(r, cols, 1f);
        float[] b = data(r, cols, 1f);
        float[] dy = data(r, rows * cols, 1f);
        float eps = 1e-5f;
        float[] y = new float[x.length];
        float[] dx = new float[x.length];
        float[] mean = new float[rows];
        float[] rstd = new float[rows];
        for (int rr = 0; rr < rows; rr++) {
            float[] xr = java.util.Arrays.copyOfRange(x, rr * cols, (rr + 1) * cols);
            float[] yr = new float[cols];
            float[] st = RecomputeReference.layerNormRow(xr, g, b, yr, eps);
            System.arraycopy(yr, 0, y, rr * cols, cols);
            mean[rr] = st[0];
            rstd[rr] = st[1];
            float[] dxr = new float[cols];
            RecomputeReference.layerNormRowBackward(xr, g, java.util.Arrays.copyOfRange(dy, rr * cols, (rr + 1) * cols),
                    dxr, eps);
            System.arraycopy(dxr, 0, dx, rr * cols, cols);
        }
        try (Tensor tx = Tensor.fromArray(root, x, rows, cols); Tensor tg = Tensor.fromArray(root, g, cols);
             Tensor tb = Tensor.fromArray(root, b, cols); Tensor tdy = Tensor.fromArray(root, dy, rows, cols);
             Tensor ty = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), rows, cols);
             Tensor tm = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), rows);
             Tensor ts = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), rows);
             Tensor tdx = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), rows, cols);
             Tensor tdg = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), cols);
             Tensor tdb = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), cols)) {
            RecomputeKernels.layerNormForward(tx, tg, tb, ty, tm, ts, eps);
            RecomputeKernels.layerNormBackward(tx, tg, tdy, tdx, tdg, tdb, eps);
            assertBits(y, ty.toFloatArray(), "layernorm forward (seed " + seed + ")");
            assertBits(mean, tm.toFloatArray(), "mean");
            assertBits(rstd, ts.toFloatArray(), "rstd");
            assertBits(dx, tdx.toFloatArray(), "layernorm backward (seed " + seed + ")");
            float[] gTerms = new float[x.length];
            for (int i = 0; i < x.length; i++) {
                int rr = i / cols;
                gTerms[i] = dy[i] * ((x[i] - mean[rr]) * rstd[rr]);
            }
            assertBits(RecomputeReference.columnSums(gTerms, rows, cols), tdg.toFloatArray(),
                    "dgamma (seed " + seed + ")");
            assertBits(RecomputeReference.columnSums(dy, rows, cols), tdb.toFloatArray(), "dbeta (seed " + seed + ")");
            // dgamma, dbeta and dx against finite differences of a double-precision loss sum(dy * y)
            float[] dg = tdg.toFloatArray();
            float[] db = tdb.toFloatArray();
            double h = 1e-3;
            for (int c = 0; c < Math.min(cols, 5); c++) {
                double[] gd = toDouble(g);
                gd[c] += h;
                double up = loss(x, gd, toDouble(b), dy, rows, cols, eps);
                gd[c] -= 2 * h;
                double down = loss(x, gd, toDouble(b), dy, rows, cols, eps);
                assertEquals((up - down) / (2 * h), dg[c], 1e-2 * (1 + Math.abs(dg[c])), "dgamma[" + c + "]");
                double[] bd = toDouble(b);
                bd[c] += h;
                up = loss(x, toDouble(g), bd, dy, rows, cols, eps);
                bd[c] -= 2 * h;
                down = loss(x, toDouble(g), bd, dy, rows, cols, eps);
                assertEquals((up - down) / (2 * h), db[c], 1e-2 * (1 + Math.abs(db[c])), "dbeta[" + c + "]");
            }
            if (cols > 1) {
                float[] gotDx = tdx.toFloatArray();
                for (int i = 0; i < Math.min(x.length, 5); i++) {
                    float[] xp = x.clone();
                    xp[i] += 1e-2f;
                    double up = loss(xp, toDouble(g), toDouble(b), dy, rows, cols, eps);
                    xp[i] -= 2e-2f;
                    double down = loss(xp, toDouble(g), toDouble(b), dy, rows, cols, eps);
                    double fd = (up - down) / ((double) (x[i] + 1e-2f) - (double) (x[i] - 1e-2f));
                    assertEquals(fd, gotDx[i], 2e-2 * (1 + Math.abs(fd)), "dx[" + i + "]");
                }
            }
        }
    }

    static double[] toDouble(float[] v) {
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            d[i] = v[i];
        }
        return d;
    }

    static double loss(float[] x, double[] g, double[] b, float[] dy, int rows, int cols, double eps) {
        double total = 0;
        for (int r = 0; r < rows; r++) {
            double mu = 0;
            for (int c = 0; c < cols; c++) {
                mu += x[r * cols + c];
            }
            mu /= cols;
            double var = 0;
            for (int c = 0; c < cols; c++) {
                double d = x[r * cols + c] - mu;
                var += d * d;
            }
            var /= cols;
            double rs = 1 / Math.sqrt(var + eps);
            for (int c = 0; c < cols; c++) {
                total += dy[r * cols + c] * ((x[r * cols + c] - mu) * rs * g[c] + b[c]);
            }
        }
        return total;
    }

    /** The scratch for dgamma/dbeta comes from dx's allocator: accounted, limited, and returned. */
    @Test
    void layerNormBackwardScratchIsAccountedAndLimited() {
        int rows = 40;
        int cols = 9;
        long tensors = 4L * (3 * rows * cols + 3 * cols);
        long scratch = 8L * rows;
        Random r = new Random(Data.freshSeed());
        float[] x = data(r, rows * cols, 2f);
        float[] g = data(r, cols, 1f);
        for (long limit : new long[] {tensors + scratch - 1, tensors + scratch}) {
            try (dev.torus.memory.Allocator a = root.newChildAllocator("ln", limit);
                 Tensor tx = Tensor.fromArray(a, x, rows, cols); Tensor tg = Tensor.fromArray(a, g, cols);
                 Tensor tdy = Tensor.fromArray(a, x, rows, cols);
                 Tensor tdx = Tensor.zeros(a, DType.FLOAT32, Device.cpu(), rows, cols);
                 Tensor tdg = Tensor.zeros(a, DType.FLOAT32, Device.cpu(), cols);
                 Tensor tdb = Tensor.zeros(a, DType.FLOAT32, Device.cpu(), cols)) {
                assertEquals(tensors, a.allocatedBytes(), "tensor bytes");
                a.resetPeak();
                if (limit < tensors + scratch) {
                    assertThrows(dev.torus.OutOfMemoryException.class,
                            () -> RecomputeKernels.layerNormBackward(tx, tg, tdy, tdx, tdg, tdb, 1e-5f));
                } else {
                    RecomputeKernels.layerNormBackward(tx, tg, tdy, tdx, tdg, tdb, 1e-5f);
                    assertEquals(tensors + scratch, a.peakBytes(), "peak with the scratch");
                    // without parameter gradients no scratch is needed, even at the limit
                    RecomputeKernels.layerNormBackward(tx, tg, tdy, tdx, null, null, 1e-5f);
                }
                assertEquals(tensors, a.allocatedBytes(), "scratch returned");
            }
        }
    }

    @Test
    void badInputsNameTheArgument() {
        try (Tensor x = Tensor.fromArray(root, new float[6], 2, 3); Tensor b3 = Tensor.fromArray(root, new float[3], 3);
             Tensor b2 = Tensor.fromArray(root, new float[2], 2); Tensor y = Tensor.zeros(root, DType.FLOAT32,
                     Device.cpu(), 2, 3); Tensor y6 = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), 6);
             Tensor i = Tensor.fromArray(root, new int[6], 2, 3)) {
            assertMessage("bias must have 3 elements", () -> RecomputeKernels.biasGeluForward(x, b2, y));
            assertMessage("y must have shape [2, 3]", () -> RecomputeKernels.biasGeluForward(x, b3, y6));
            assertMessage("x must be FLOAT32", () -> RecomputeKernels.biasGeluForward(i, b3, y));
            assertMessage("x must not be null", () -> RecomputeKernels.dropout(null, y, 0.1f, 1, 0));
            assertMessage("p must be in [0, 1)", () -> RecomputeKernels.dropout(x, y, 1f, 1, 0));
            assertMessage("p must be in [0, 1)", () -> RecomputeKernels.dropout(x, y, Float.NaN, 1, 0));
            assertMessage("offset must be >= 0", () -> RecomputeKernels.dropout(x, y, 0.5f, 1, -1));
            assertMessage("eps must be a positive finite number",
                    () -> RecomputeKernels.layerNormForward(x, b3, b3, y, null, null, 0f));
            assertMessage("gamma must have 3 elements",
                    () -> RecomputeKernels.layerNormBackward(x, b2, y, y, null, null, 1e-5f));
            assertMessage("mean must have 2 elements",
                    () -> RecomputeKernels.layerNormForward(x, b3, b3, y, b3, null, 1e-5f));
        }
    }
}
