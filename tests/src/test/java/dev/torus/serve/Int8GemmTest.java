package dev.torus.serve;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.NativeLibrary;
import dev.torus.quant.QuantSpec;
import dev.torus.quant.QuantizedTensor;
import dev.torus.quant.Quantizer;
import dev.torus.tensor.Tensor;
import dev.torus.testing.BadArgument;
import dev.torus.testing.Data;
import dev.torus.testing.TorusTestBase;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * The weight-only int8 GEMM on the CPU: bit for bit the scalar reference written in the kernel's order, over
 * shapes with M = 1, K = 1, odd K and N that are not multiples of the vector width or the kernel's tiles, with
 * and without bias; the same bits at any thread count; close to the fp32 linear layer it replaces; and every bad
 * argument refused by name before the native call.
 */
class Int8GemmTest extends TorusTestBase {
    /** {M, N, K}: M = 1 (serving), K = 1, K and N around the 16-lane vector and the 8-row, 16-channel tiles. */
    static final int[][] SHAPES = {
        {1, 1, 1}, {1, 7, 1}, {3, 5, 1}, {1, 16, 16}, {1, 33, 129}, {2, 17, 15}, {3, 5, 7}, {5, 100, 37},
        {8, 31, 1000}, {9, 16, 17}, {13, 48, 4099}, {1, 300, 2049}, {64, 65, 513}, {17, 3, 300}, {130, 19, 33},
    };

    /** x, q, scale and bias for one shape, and y on the CPU; closes all. */
    float[] run(float[] x, byte[] q, float[] scale, float[] bias, int m, int n, int k) {
        try (Tensor tx = Tensor.fromArray(root, x, m, k); Tensor tq = Tensor.fromBytes(root, DType.INT8, q, n, k);
             Tensor ts = Tensor.fromArray(root, scale, n);
             Tensor tb = bias == null ? null : Tensor.fromArray(root, bias, n);
             Tensor y = Int8Gemm.multiply(tx, tq, ts, tb, root)) {
            assertArrayEquals(new long[] {m, n}, y.shape());
            assertEquals(DType.FLOAT32, y.dtype());
            return y.toFloatArray();
        }
    }

    static void assertBits(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what);
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToIntBits(expected[i]) != Float.floatToIntBits(actual[i])) {
                throw new AssertionError(what + ": element " + i + " is " + actual[i] + " (0x"
                        + Integer.toHexString(Float.floatToRawIntBits(actual[i])) + "), the reference order gives "
                        + expected[i] + " (0x" + Integer.toHexString(Float.floatToRawIntBits(expected[i])) + ")");
            }
        }
    }

    @Test
    void matchesTheScalarReferenceBitForBit() {
        long seed = Data.freshSeed();
        Random r = new Random(seed);
        for (int[] s : SHAPES) {
            int m = s[0];
            int n = s[1];
            int k = s[2];
            float[] x = Data.mixed(r, m * k);
            byte[] q = Int8GemmReference.weights(r, n * k);
            float[] scale = Int8GemmReference.scales(r, n);
            float[] bias = Data.uniform(r, n, 1f);
            for (float[] b : new float[][] {null, bias}) {
                String what = "M=" + m + " N=" + n + " K=" + k + (b == null ? " no bias" : " bias") + " (seed " + seed + ")";
                float[] y = run(x, q, scale, b, m, n, k);
                assertBits(Int8GemmReference.multiply(x, q, scale, b, m, n, k), y, what);
                // and the reference order is a sum: it agrees with the exact value to fp32 rounding
                double[] exact = Int8GemmReference.exact(x, q, scale, b, m, n, k);
                for (int i = 0; i < y.length; i++) {
                    // each lane adds about k/16 terms, the butterfly 4 more, then the scale and the bias
                    double tol = (k / 16 + 8) * 0x1p-24 * magnitude(x, q, scale, b, i / n, i % n, k);
                    assertTrue(Math.abs(y[i] - exact[i]) <= tol, what + ": element " + i + " is " + y[i]
                            + ", exact " + exact[i]);
                }
            }
        }
    }

    /** scale * sum |x q| + |bias|: what the rounding errors of this sum are relative to. */
    static double magnitude(float[] x, byte[] q, float[] scale, float[] bias, int i, int c, int k) {
        double s = 0;
        for (int j = 0; j < k; j++) {
            s += Math.abs((double) x[i * k + j] * q[c * k + j]);
        }
        return s * scale[c] + (bias == null ? 0 : Math.abs(bias[c]));
    }

    @Test
    void resultDoesNotDependOnTheThreadCount() {
        long seed = Data.freshSeed();
        Random r = new Random(seed);
        int m = 37;
        int n = 301;
        int k = 515;
        float[] x = Data.mixed(r, m * k);
        byte[] q = Int8GemmReference.weights(r, n * k);
        float[] scale = Int8GemmReference.scales(r, n);
        float[] bias = Data.uniform(r, n, 1f);
        float[] expected = Int8GemmReference.multiply(x, q, scale, bias, m, n, k);
        int saved = NativeLibrary.cpuThreads();
        try {
            for (int threads : new int[] {1, 2, 3, 8}) {
                NativeLibrary.setCpuThreads(threads);
                assertBits(expected, run(x, q, scale, bias, m, n, k), threads + " threads (seed " + seed + ")");
                assertBits(java.util.Arrays.copyOf(expected, n), run(java.util.Arrays.copyOf(x, k), q, scale, bias, 1, n, k),
                        "M=1, " + threads + " threads (seed " + seed + ")");
            }
        } finally {
            NativeLibrary.setCpuThreads(saved);
        }
    }

    @Test
    void emptyDimensionsGiveEmptyOrBiasOnlyOutputs() {
        float[] bias = {1.5f, -2f, 0f};
        float[] scale = {0.5f, 2f, 1f};
        // K = 0: every sum is +0, so y is 0 * scale + bias
        float[] y = run(new float[0], new byte[0], scale, bias, 2, 3, 0);
        assertArrayEquals(new float[] {1.5f, -2f, 0f, 1.5f, -2f, 0f}, y);
        assertArrayEquals(new float[] {0f, 0f, 0f}, run(new float[0], new byte[0], scale, null, 1, 3, 0));
        assertEquals(0, run(new float[0], new byte[12], scale, bias, 0, 3, 4).length);
        assertEquals(0, run(new float[8], new byte[0], new float[0], null, 2, 0, 4).length);
    }

    @Test
    void nonFiniteInputsFollowTheReference() {
        long seed = Data.freshSeed();
        Random r = new Random(seed);
        int m = 5;
        int n = 20;
        int k = 70;
        float[] x = Data.mixed(r, m * k);
        x[3] = Float.NaN;
        x[k + 17] = Float.POSITIVE_INFINITY;
        x[2 * k + 40] = Float.NEGATIVE_INFINITY;
        x[3 * k + 1] = Float.MAX_VALUE;
        x[4 * k + 2] = Float.MIN_VALUE;
        byte[] q = Int8GemmReference.weights(r, n * k);
        q[5] = 0;   // Inf * 0 = NaN in the channel that meets it
        float[] scale = Int8GemmReference.scales(r, n);
        assertBits(Int8GemmReference.multiply(x, q, scale, null, m, n, k), run(x, q, scale, null, m, n, k),
                "non-finite x (seed " + seed + ")");
    }

    @Test
    void quantizedLinearLayerIsCloseToTheFloatOne() {
        long seed = Data.freshSeed();
        Random r = new Random(seed);
        int m = 4;
        int in = 300;
        int out = 75;
        float[] w = Data.uniform(r, out * in, 0.2f);
        float[] x = Data.uniform(r, m * in, 1f);
        float[] b = Data.uniform(r, out, 0.1f);
        try (Tensor tw = Tensor.fromArray(root, w, out, in);
             QuantizedTensor qw = Quantizer.quantize(tw, QuantSpec.int8Symmetric().perChannel(0));
             Tensor tx = Tensor.fromArray(root, x, m, in); Tensor tb = Tensor.fromArray(root, b, out);
             Tensor y = Int8Gemm.multiply(tx, qw.values(), qw.scales(), tb, root)) {
            float[] got = y.toFloatArray();
            byte[] q = qw.values().toByteArray();
            float[] scale = qw.scales().toFloatArray();
            assertBits(Int8GemmReference.multiply(x, q, scale, b, m, out, in), got, "seed " + seed);
            for (int i = 0; i < m; i++) {
                for (int o = 0; o < out; o++) {
                    double exact = b[o];
                    double bound = 1e-4;
                    for (int j = 0; j < in; j++) {
                        exact += (double) x[i * in + j] * w[o * in + j];
                        bound += Math.abs(x[i * in + j]) * scale[o] / 2;   // half a quantization step per weight
                    }
                    assertTrue(Math.abs(got[i * out + o] - exact) <= bound, "y[" + i + "][" + o + "] = "
                            + got[i * out + o] + ", fp32 linear " + exact + ", allowed error " + bound + " (seed " + seed + ")");
                }
            }
        }
    }

    @Test
    void writesIntoAGivenOutput() {
        Random r = new Random(Data.freshSeed());
        float[] x = Data.mixed(r, 3 * 40);
        byte[] q = Int8GemmReference.weights(r, 21 * 40);
        float[] scale = Int8GemmReference.scales(r, 21);
        try (Tensor tx = Tensor.fromArray(root, x, 3, 40); Tensor tq = Tensor.fromBytes(root, DType.INT8, q, 21, 40);
             Tensor ts = Tensor.fromArray(root, scale, 21); Tensor y = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), 3, 21)) {
            Int8Gemm.multiply(tx, tq, ts, null, y);
            assertBits(Int8GemmReference.multiply(x, q, scale, null, 3, 21, 40), y.toFloatArray(), "into y");
        }
    }

    // ---- bad arguments -------------------------------------------------------------------

    @Test
    void badArgumentsAreRefusedByName() {
        try (Tensor x = Tensor.fromArray(root, new float[12], 3, 4);
             Tensor q = Tensor.fromBytes(root, DType.INT8, new byte[20], 5, 4);
             Tensor scale = Tensor.fromArray(root, new float[5], 5);
             Tensor bias = Tensor.fromArray(root, new float[5], 5);
             Tensor y = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), 3, 5);
             Tensor x8 = Tensor.fromBytes(root, DType.INT8, new byte[12], 3, 4);
             Tensor x1 = Tensor.fromArray(root, new float[12], 12);
             Tensor x3 = Tensor.fromArray(root, new float[12], 1, 3, 4);
             Tensor qf = Tensor.fromArray(root, new float[20], 5, 4);
             Tensor q1 = Tensor.fromBytes(root, DType.INT8, new byte[20], 20);
             Tensor qk = Tensor.fromBytes(root, DType.INT8, new byte[25], 5, 5);
             Tensor s4 = Tensor.fromArray(root, new float[4], 4);
             Tensor s2d = Tensor.fromArray(root, new float[5], 1, 5);
             Tensor s8 = Tensor.fromBytes(root, DType.INT8, new byte[5], 5);
             Tensor b6 = Tensor.fromArray(root, new float[6], 6);
             Tensor bi = Tensor.fromArray(root, new int[5], 5);
             Tensor yShape = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), 5, 3);
             Tensor y16 = Tensor.zeros(root, DType.FLOAT16, Device.cpu(), 3, 5);
             Tensor square = Tensor.fromArray(root, new float[16], 4, 4);
             Tensor q44 = Tensor.fromBytes(root, DType.INT8, new byte[16], 4, 4);
             Tensor s44 = Tensor.fromArray(root, new float[4], 4)) {
            refused("x", () -> Int8Gemm.multiply(null, q, scale, bias, y));
            refused("q", () -> Int8Gemm.multiply(x, null, scale, bias, y));
            refused("scale", () -> Int8Gemm.multiply(x, q, null, bias, y));
            refused("y", () -> Int8Gemm.multiply(x, q, scale, bias, (Tensor) null));
            refused("out", () -> Int8Gemm.multiply(x, q, scale, bias, (dev.torus.memory.Allocator) null));

            refused("x must be a FLOAT32 matrix [M, K], got INT8", () -> Int8Gemm.multiply(x8, q, scale, bias, y));
            refused("x must be a FLOAT32 matrix [M, K], got FLOAT32 [12]", () -> Int8Gemm.multiply(x1, q, scale, bias, y));
            refused("x must be a FLOAT32 matrix [M, K], got FLOAT32 [1, 3, 4]",
                    () -> Int8Gemm.multiply(x3, q, scale, bias, y));
            refused("q must be an INT8 matrix [N, K]", () -> Int8Gemm.multiply(x, qf, scale, bias, y));
            refused("q must be an INT8 matrix [N, K]", () -> Int8Gemm.multiply(x, q1, scale, bias, y));
            refused("q must have K = 4 columns", () -> Int8Gemm.multiply(x, qk, scale, bias, y));
            refused("scale must be FLOAT32 [N] = [5]", () -> Int8Gemm.multiply(x, q, s4, bias, y));
            refused("scale must be FLOAT32 [N] = [5]", () -> Int8Gemm.multiply(x, q, s2d, bias, y));
            refused("scale must be FLOAT32 [N] = [5]", () -> Int8Gemm.multiply(x, q, s8, bias, y));
            refused("bias must be FLOAT32 [N] = [5]", () -> Int8Gemm.multiply(x, q, scale, b6, y));
            refused("bias must be FLOAT32 [N] = [5]", () -> Int8Gemm.multiply(x, q, scale, bi, y));
            refused("y must be FLOAT32 [M, N] = [3, 5]", () -> Int8Gemm.multiply(x, q, scale, bias, yShape));
            refused("y must be FLOAT32 [M, N] = [3, 5]", () -> Int8Gemm.multiply(x, q, scale, bias, y16));
            refused("bias must be FLOAT32 [N] = [5]", () -> Int8Gemm.multiply(x, q, scale, b6, root));

            // an output that is an input, or a view overlapping one
            refused("y must not overlap x", () -> Int8Gemm.multiply(square, q44, s44, null, square));
        }
    }

    @Test
    void outputsOverlappingAnInputAreRefused() {
        Random r = new Random(Data.freshSeed());
        byte[] qb = Int8GemmReference.weights(r, 16);
        float[] sb = Int8GemmReference.scales(r, 4);
        try (Tensor big = Tensor.fromArray(root, Data.mixed(r, 40), 40);
             Tensor q = Tensor.fromBytes(root, DType.INT8, qb, 4, 4); Tensor scale = Tensor.fromArray(root, sb, 4);
             Tensor x = big.view(0, 4, 4); Tensor yOverX = big.view(12, 4, 4); Tensor yClear = big.view(16, 4, 4);
             Tensor biasInside = big.view(36, 4); Tensor yOverBias = big.view(24, 4, 4)) {
            refused("y must not overlap x", () -> Int8Gemm.multiply(x, q, scale, null, yOverX));
            refused("y must not overlap bias", () -> Int8Gemm.multiply(x, q, scale, biasInside, yOverBias));
            // views of one buffer that do not meet are fine
            float[] xs = x.toFloatArray();
            Int8Gemm.multiply(x, q, scale, null, yClear);
            assertBits(Int8GemmReference.multiply(xs, qb, sb, null, 4, 4, 4), yClear.toFloatArray(), "disjoint views");
        }
    }

    static void refused(String part, Executable call) {
        BadArgument.assertMessage(part, call);
    }

    @Test
    void closedTensorsAreRefusedByName() {
        String[] names = {"x", "q", "scale", "bias", "y"};
        for (int closed = 0; closed < names.length; closed++) {
            Tensor x = Tensor.fromArray(root, new float[12], 3, 4);
            Tensor q = Tensor.fromBytes(root, DType.INT8, new byte[20], 5, 4);
            Tensor scale = Tensor.fromArray(root, new float[5], 5);
            Tensor bias = Tensor.fromArray(root, new float[5], 5);
            Tensor y = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), 3, 5);
            Tensor[] all = {x, q, scale, bias, y};
            all[closed].close();
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> Int8Gemm.multiply(x, q, scale, bias, y));
            assertTrue(e.getMessage().startsWith(names[closed] + " must be an open tensor"), e.getMessage());
            if (closed < 4) {
                e = assertThrows(IllegalStateException.class, () -> Int8Gemm.multiply(x, q, scale, bias, root));
                assertTrue(e.getMessage().startsWith(names[closed] + " must be an open tensor"), e.getMessage());
            }
            for (Tensor t : all) {
                t.close();
            }
        }
    }
}
