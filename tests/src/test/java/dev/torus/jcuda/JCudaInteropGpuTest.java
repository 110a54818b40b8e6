package dev.torus.jcuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.Test;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.memory.DeviceBuffer;
import dev.torus.memory.Stream;
import dev.torus.nn.Linear;
import dev.torus.recompute.SegmentContext;
import dev.torus.tensor.Tensor;
import dev.torus.testing.GpuTest;
import jcuda.Pointer;
import jcuda.Sizeof;
import jcuda.jcublas.JCublas2;
import jcuda.jcublas.cublasHandle;
import jcuda.runtime.JCuda;
import jcuda.runtime.cudaMemcpyKind;
import jcuda.runtime.cudaStream_t;

/** JCuda memory, streams and a JCublas handle used by Torus on a real device, and Torus memory read by JCuda. */
class JCudaInteropGpuTest extends GpuTest {
    private static final Device GPU = Device.cuda(0);

    private static void ok(int rc, String what) {
        assertEquals(0, rc, what + ": " + jcuda.runtime.cudaError.stringFor(rc));
    }

    @Test
    void jcudaMemoryWrapsWithoutCopyAndTheViewNeverFreesIt() {
        assertEquals(null, JCudaLibraries.runtimeUnavailableCause());
        Pointer d = new Pointer();
        ok(JCuda.cudaMalloc(d, 8L * Sizeof.FLOAT), "cudaMalloc");
        try {
            float[] host = {1, 2, 3, 4, 5, 6, 7, 8};
            ok(JCuda.cudaMemcpy(d, Pointer.to(host), 8L * Sizeof.FLOAT, cudaMemcpyKind.cudaMemcpyHostToDevice), "h2d");
            try (Tensor t = JCudaViews.wrapTensor(d, DType.FLOAT32, GPU, 2, 4)) {
                assertTrue(((DeviceBuffer) t.buffer()).isBorrowed());
                assertArrayEquals(host, t.toFloatArray(), "Torus reads what JCuda wrote, in place");
                try (Tensor ones = moved(Tensor.fromArray(root, new float[] {9, 9, 9, 9, 9, 9, 9, 9}, 2, 4), GPU)) {
                    t.copyFrom(ones);
                }
                Stream.defaultStream(GPU).synchronize();
            }
            // the view is closed: the memory must still be JCuda's, holding what Torus wrote
            float[] back = new float[8];
            ok(JCuda.cudaMemcpy(Pointer.to(back), d, 8L * Sizeof.FLOAT, cudaMemcpyKind.cudaMemcpyDeviceToHost), "d2h");
            assertArrayEquals(new float[] {9, 9, 9, 9, 9, 9, 9, 9}, back);
            assertThrows(IllegalArgumentException.class, () -> JCudaViews.wrap(d, 9L * Sizeof.FLOAT, GPU),
                    "a range past the allocation's end is refused");
            IllegalArgumentException host2 = assertThrows(IllegalArgumentException.class,
                    () -> JCudaViews.wrap(new jcuda.driver.CUdeviceptr().withByteOffset(0x10), 4, GPU));
            assertTrue(host2.getMessage().startsWith("devicePointer:"), host2.getMessage());
        } finally {
            ok(JCuda.cudaFree(d), "cudaFree after the view closed (no double free)");
        }
    }

    @Test
    void aTorusTensorIsAJCudaPointer() {
        try (Tensor t = moved(Tensor.fromArray(root, new float[] {3, 1, 4, 1, 5}, 5), GPU)) {
            Stream.defaultStream(GPU).synchronize();
            float[] back = new float[5];
            ok(JCuda.cudaMemcpy(Pointer.to(back), JCudaViews.pointer(t), 5L * Sizeof.FLOAT,
                    cudaMemcpyKind.cudaMemcpyDeviceToHost), "d2h");
            assertArrayEquals(new float[] {3, 1, 4, 1, 5}, back);
        }
    }

    @Test
    void aJCudaStreamOrdersTorusCopies() {
        cudaStream_t s = new cudaStream_t();
        ok(JCuda.cudaStreamCreate(s), "cudaStreamCreate");
        try {
            Stream view = JCudaViews.wrap(s, GPU);
            try (Tensor src = moved(Tensor.fromArray(root, new float[] {1, 2, 3}, 3), GPU);
                 Tensor dst = Tensor.zeros(root, DType.FLOAT32, GPU, 3)) {
                Stream.defaultStream(GPU).synchronize();
                view.copy(src.buffer(), 0, dst.buffer(), 0, 12);
                view.synchronize();
                assertArrayEquals(new float[] {1, 2, 3}, dst.toFloatArray());
            }
            view.close();
            ok(JCuda.cudaStreamSynchronize(s), "the stream still exists after the view closed");
        } finally {
            ok(JCuda.cudaStreamDestroy(s), "cudaStreamDestroy");
        }
    }

    @Test
    void aJCublasHandleRunsALinearLayer() {
        String cause = JCudaLibraries.cublasUnavailableCause();
        if (cause != null) {
            // a missing cuBLAS 12 (JCublas 12.6 links libcublas.so.12) is a library this host lacks, not a missing
            // GPU: it skips even under requireGpu, saying so; any other load failure fails there
            if (Boolean.getBoolean(PROP_REQUIRE_GPU) && !cause.contains("libcublas")) {
                fail(cause);
            }
            System.out.println("JCublas test skipped: " + cause);
            assumeTrue(false, cause);
        }
        cublasHandle h = new cublasHandle();
        assertEquals(0, JCublas2.cublasCreate(h));
        try (Linear builtIn = new Linear(64, 32, true, GPU, root, 3);
             Linear viaJCublas = new Linear(64, 32, true, GPU, root, 3)) {
            viaJCublas.useGemm(new JCublasGemm(h, GPU));
            float[] xs = new float[16 * 64];
            for (int i = 0; i < xs.length; i++) {
                xs[i] = (float) Math.sin(0.1 * i);
            }
            SegmentContext ctx = SegmentContext.of(root, 1, 0);
            float[] dys = new float[16 * 32];
            for (int i = 0; i < dys.length; i++) {
                dys[i] = (float) Math.cos(0.07 * i);
            }
            try (Tensor x = moved(Tensor.fromArray(root, xs, 16, 64), GPU);
                 Tensor dy = moved(Tensor.fromArray(root, dys, 16, 32), GPU);
                 Tensor y1 = builtIn.forward(x, ctx); Tensor y2 = viaJCublas.forward(x, ctx);
                 Tensor dx1 = builtIn.backward(x, dy, ctx); Tensor dx2 = viaJCublas.backward(x, dy, ctx)) {
                close("forward (N, T)", y1.toFloatArray(), y2.toFloatArray());
                close("dx (N, N)", dx1.toFloatArray(), dx2.toFloatArray());
                close("dW (T, N, beta 1)", builtIn.weight().grad().toFloatArray(),
                        viaJCublas.weight().grad().toFloatArray());
            }
            cudaStream_t other = new cudaStream_t();
            ok(JCuda.cudaStreamCreate(other), "cudaStreamCreate");
            try {
                JCublas2.cublasSetStream(h, other);
                try (Tensor x = Tensor.zeros(root, DType.FLOAT32, GPU, 1, 64)) {
                    IllegalStateException e = assertThrows(IllegalStateException.class,
                            () -> viaJCublas.forward(x, ctx).close());
                    assertFalse(e.getMessage().isBlank());
                }
            } finally {
                JCublas2.cublasSetStream(h, null);
                JCuda.cudaStreamDestroy(other);
            }
        } finally {
            JCublas2.cublasDestroy(h);
        }
    }

    private static void close(String what, float[] a, float[] b) {
        assertEquals(a.length, b.length, what);
        for (int i = 0; i < a.length; i++) {
            assertEquals(a[i], b[i], 1e-4f * (1 + Math.abs(a[i])), what + ": element " + i);
        }
    }
}
