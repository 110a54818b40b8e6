package dev.torus.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

import dev.torus.Device;
import dev.torus.recompute.SegmentContext;
import dev.torus.tensor.Tensor;
import dev.torus.testing.TorusTestBase;

/** {@link Linear#useGemm}: a layer multiplies through the GEMM it is given, and refuses one of another device. */
class LinearGemmTest extends TorusTestBase {

    /** A plain Java row-major GEMM that counts its calls. */
    static final class JavaGemm implements Gemm {
        int calls;

        @Override
        public Device device() {
            return Device.cpu();
        }

        @Override
        public void sgemm(boolean transA, boolean transB, int m, int n, int k, Tensor a, int lda, Tensor b, int ldb,
                          float beta, Tensor c, int ldc) {
            calls++;
            float[] av = a.toFloatArray();
            float[] bv = b.toFloatArray();
            float[] cv = c.toFloatArray();
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double s = 0;
                    for (int p = 0; p < k; p++) {
                        float x = transA ? av[p * lda + i] : av[i * lda + p];
                        float y = transB ? bv[j * ldb + p] : bv[p * ldb + j];
                        s += (double) x * y;
                    }
                    cv[i * ldc + j] = (float) (s + (beta == 0f ? 0 : beta * cv[i * ldc + j]));
                }
            }
            try (Tensor t = Tensor.fromArray(root(c), cv, c.shape())) {
                c.copyFrom(t);
            }
        }

        private static dev.torus.memory.Allocator root(Tensor c) {
            return c.allocator();
        }
    }

    @Test
    void forwardAndBackwardGoThroughTheGivenGemmAndAgreeWithTheBuiltIn() {
        float[] xs = new float[3 * 5];
        for (int i = 0; i < xs.length; i++) {
            xs[i] = (float) Math.sin(i + 1);
        }
        float[] dys = new float[3 * 4];
        for (int i = 0; i < dys.length; i++) {
            dys[i] = (float) Math.cos(i);
        }
        SegmentContext ctx = SegmentContext.of(root, 1, 0);
        try (Linear builtIn = new Linear(5, 4, true, Device.cpu(), root, 7);
             Linear custom = new Linear(5, 4, true, Device.cpu(), root, 7);
             Tensor x = Tensor.fromArray(root, xs, 3, 5);
             Tensor dy = Tensor.fromArray(root, dys, 3, 4)) {
            JavaGemm gemm = new JavaGemm();
            custom.useGemm(gemm);
            assertSame(gemm, custom.gemm());
            try (Tensor y1 = builtIn.forward(x, ctx); Tensor y2 = custom.forward(x, ctx);
                 Tensor dx1 = builtIn.backward(x, dy, ctx); Tensor dx2 = custom.backward(x, dy, ctx)) {
                assertEquals(3, gemm.calls, "forward, dx and dW each multiply once");
                assertArrayEquals(y1.toFloatArray(), y2.toFloatArray(), 1e-5f);
                assertArrayEquals(dx1.toFloatArray(), dx2.toFloatArray(), 1e-5f);
                assertArrayEquals(builtIn.weight().grad().toFloatArray(), custom.weight().grad().toFloatArray(), 1e-5f);
            }
            custom.useGemm(null);
            assertNull(custom.gemm());
            try (Tensor y3 = custom.forward(x, ctx)) {
                assertEquals(3, gemm.calls, "after useGemm(null) the built-in BLAS multiplies");
            }
        }
    }

    @Test
    void aGemmOfAnotherDeviceIsRefusedNamingBoth() {
        Gemm onGpu = new Gemm() {
            @Override
            public Device device() {
                return Device.cuda(0);
            }

            @Override
            public void sgemm(boolean transA, boolean transB, int m, int n, int k, Tensor a, int lda, Tensor b,
                              int ldb, float beta, Tensor c, int ldc) {
                throw new AssertionError("never called");
            }
        };
        try (Linear layer = new Linear(2, 2, false, Device.cpu(), root, 1)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> layer.useGemm(onGpu));
            assertTrue(e.getMessage().startsWith("gemm: expected a GEMM on cpu"), e.getMessage());
            assertTrue(e.getMessage().contains("cuda:0"), e.getMessage());
            assertNull(layer.gemm());
        }
    }
}
