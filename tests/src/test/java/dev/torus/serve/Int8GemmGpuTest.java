package dev.torus.serve;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.tensor.Tensor;
import dev.torus.testing.BadArgument;
import dev.torus.testing.Data;
import dev.torus.testing.GpuTest;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The CUDA int8 GEMM against the CPU one: the same order of summation on both sides, so the same bits, over the
 * shapes of {@link Int8GemmTest} plus row counts around the kernel's row tiles (1, 2, 4, 8) and K around its
 * shared-memory chunk (256); and tensors on two devices refused by name.
 */
class Int8GemmGpuTest extends GpuTest {
    static final Device GPU = Device.cuda(0);

    static final int[][] MORE_SHAPES = {
        {2, 40, 255}, {3, 40, 256}, {4, 17, 257}, {5, 9, 513}, {7, 33, 100}, {8, 16, 16}, {9, 70, 300},
        {16, 130, 64}, {33, 5, 1030}, {1, 4100, 64},
    };

    float[] run(Device d, float[] x, byte[] q, float[] scale, float[] bias, int m, int n, int k) {
        try (Tensor tx = moved(Tensor.fromArray(root, x, m, k), d);
             Tensor tq = moved(Tensor.fromBytes(root, DType.INT8, q, n, k), d);
             Tensor ts = moved(Tensor.fromArray(root, scale, n), d);
             Tensor tb = bias == null ? null : moved(Tensor.fromArray(root, bias, n), d);
             Tensor y = Int8Gemm.multiply(tx, tq, ts, tb, root)) {
            return y.toFloatArray();
        }
    }

    @Test
    void cudaMatchesTheCpuBitForBit() {
        long seed = Data.freshSeed();
        Random r = new Random(seed);
        for (int[][] shapes : new int[][][] {Int8GemmTest.SHAPES, MORE_SHAPES}) {
            for (int[] s : shapes) {
                int m = s[0];
                int n = s[1];
                int k = s[2];
                float[] x = Data.mixed(r, m * k);
                byte[] q = Int8GemmReference.weights(r, n * k);
                float[] scale = Int8GemmReference.scales(r, n);
                float[] bias = Data.uniform(r, n, 1f);
                for (float[] b : new float[][] {null, bias}) {
                    String what = "M=" + m + " N=" + n + " K=" + k + (b == null ? " no bias" : " bias") + " (seed "
                            + seed + ")";
                    float[] cpu = run(Device.cpu(), x, q, scale, b, m, n, k);
                    Int8GemmTest.assertBits(cpu, run(GPU, x, q, scale, b, m, n, k), what + ": cuda against cpu");
                    Int8GemmTest.assertBits(Int8GemmReference.multiply(x, q, scale, b, m, n, k), cpu, what);
                }
            }
        }
    }

    @Test
    void tensorsOnAnotherDeviceAreRefusedByName() {
        try (Tensor x = moved(Tensor.fromArray(root, new float[12], 3, 4), GPU);
             Tensor q = moved(Tensor.fromBytes(root, DType.INT8, new byte[20], 5, 4), GPU);
             Tensor scale = moved(Tensor.fromArray(root, new float[5], 5), GPU);
             Tensor bias = moved(Tensor.fromArray(root, new float[5], 5), GPU);
             Tensor y = Tensor.zeros(root, DType.FLOAT32, GPU, 3, 5);
             Tensor qHost = Tensor.fromBytes(root, DType.INT8, new byte[20], 5, 4);
             Tensor scaleHost = Tensor.fromArray(root, new float[5], 5);
             Tensor biasHost = Tensor.fromArray(root, new float[5], 5);
             Tensor yHost = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), 3, 5)) {
            BadArgument.assertMessage("q must be on cuda:0", () -> Int8Gemm.multiply(x, qHost, scale, bias, y));
            BadArgument.assertMessage("scale must be on cuda:0", () -> Int8Gemm.multiply(x, q, scaleHost, bias, y));
            BadArgument.assertMessage("bias must be on cuda:0", () -> Int8Gemm.multiply(x, q, scale, biasHost, y));
            BadArgument.assertMessage("y must be on cuda:0", () -> Int8Gemm.multiply(x, q, scale, bias, yHost));
        }
    }
}
