package dev.torus.nn;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.OutOfMemoryException;
import dev.torus.tensor.Tensor;
import dev.torus.memory.Allocator;
import dev.torus.testing.Data;
import dev.torus.testing.GpuTest;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** CUDA recompute kernels must give the CPU's bits exactly. */
class GpuRecomputeKernelTest extends GpuTest {
    @Test
    void everyKernelMatchesTheCpuBitForBit() {
        long seed = Data.freshSeed();
        Random r = new Random(seed);
        int rows = 67;
        int cols = 1031;
        float[] x = Data.uniform(r, rows * cols, 6f);
        float[] v = Data.uniform(r, cols, 1f);
        float[] dy = Data.uniform(r, rows * cols, 1f);
        Device gpu = Device.cuda(0);
        float[][] cpu = run(Device.cpu(), x, v, dy, rows, cols, seed);
        float[][] cuda = run(gpu, x, v, dy, rows, cols, seed);
        String[] names = {"gelu y", "gelu dx", "dbias", "dropout", "ln y", "ln mean", "ln rstd", "ln dx", "dgamma",
                "dbeta"};
        for (int k = 0; k < names.length; k++) {
            RecomputeKernelTest.assertBits(cpu[k], cuda[k], names[k] + " (seed " + seed + ")");
        }
    }

    /** The CUDA scratch for dgamma/dbeta is an Allocator buffer: over the limit it is OutOfMemoryException. */
    @Test
    void layerNormBackwardScratchOnTheGpuIsAccountedAndLimited() {
        Device gpu = Device.cuda(0);
        int rows = 40;
        int cols = 9;
        long tensors = 4L * (3 * rows * cols + 3 * cols);
        for (long limit : new long[] {tensors + 8L * rows - 1, tensors + 8L * rows}) {
            try (Allocator a = root.newChildAllocator("ln", limit);
                 Tensor x = Tensor.zeros(a, DType.FLOAT32, gpu, rows, cols);
                 Tensor g = Tensor.zeros(a, DType.FLOAT32, gpu, cols);
                 Tensor dy = Tensor.zeros(a, DType.FLOAT32, gpu, rows, cols);
                 Tensor dx = Tensor.zeros(a, DType.FLOAT32, gpu, rows, cols);
                 Tensor dg = Tensor.zeros(a, DType.FLOAT32, gpu, cols);
                 Tensor db = Tensor.zeros(a, DType.FLOAT32, gpu, cols)) {
                a.resetPeak();
                if (limit < tensors + 8L * rows) {
                    assertThrows(OutOfMemoryException.class,
                            () -> RecomputeKernels.layerNormBackward(x, g, dy, dx, dg, db, 1e-5f));
                } else {
                    RecomputeKernels.layerNormBackward(x, g, dy, dx, dg, db, 1e-5f);
                    assertEquals(tensors + 8L * rows, a.peakBytes());
                }
                assertEquals(tensors, a.allocatedBytes());
            }
        }
    }

    float[][] run(Device d, float[] x, float[] v, float[] dy, int rows, int cols, long seed) {
        try (Tensor tx = moved(Tensor.fromArray(root, x, rows, cols), d);
             Tensor tv = moved(Tensor.fromArray(root, v, cols), d);
             Tensor tdy = moved(Tensor.fromArray(root, dy, rows, cols), d);
             Tensor a = Tensor.zeros(root, DType.FLOAT32, d, rows, cols);
             Tensor b = Tensor.zeros(root, DType.FLOAT32, d, rows, cols);
             Tensor c = Tensor.zeros(root, DType.FLOAT32, d, cols);
             Tensor e = Tensor.zeros(root, DType.FLOAT32, d, rows, cols);
             Tensor f = Tensor.zeros(root, DType.FLOAT32, d, rows, cols);
             Tensor m = Tensor.zeros(root, DType.FLOAT32, d, rows);
             Tensor s = Tensor.zeros(root, DType.FLOAT32, d, rows);
             Tensor g = Tensor.zeros(root, DType.FLOAT32, d, rows, cols);
             Tensor dg = Tensor.zeros(root, DType.FLOAT32, d, cols);
             Tensor db = Tensor.zeros(root, DType.FLOAT32, d, cols)) {
            RecomputeKernels.biasGeluForward(tx, tv, a);
            RecomputeKernels.biasGeluBackward(tx, tv, tdy, b, c);
            RecomputeKernels.dropout(tx, e, 0.1f, seed, 7);
            RecomputeKernels.layerNormForward(tx, tv, tv, f, m, s, 1e-5f);
            RecomputeKernels.layerNormBackward(tx, tv, tdy, g, dg, db, 1e-5f);
            return new float[][] {a.toFloatArray(), b.toFloatArray(), c.toFloatArray(), e.toFloatArray(),
                    f.toFloatArray(), m.toFloatArray(), s.toFloatArray(), g.toFloatArray(), dg.toFloatArray(),
                    db.toFloatArray()};
        }
    }
}
