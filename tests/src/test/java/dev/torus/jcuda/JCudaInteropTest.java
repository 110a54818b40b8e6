package dev.torus.jcuda;

import static dev.torus.internal.NativeAccess.TOKEN;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.Test;

import dev.torus.CudaUnavailableException;
import dev.torus.DType;
import dev.torus.Device;
import dev.torus.memory.DeviceBuffer;
import dev.torus.memory.HostBuffer;
import dev.torus.memory.Stream;
import dev.torus.tensor.Tensor;
import dev.torus.testing.TorusTestBase;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.jcublas.cublasHandle;
import jcuda.runtime.cudaStream_t;

/**
 * The JCuda interop module's argument checks and error messages, which need no GPU; the
 * views themselves are exercised on a device by {@link JCudaInteropGpuTest}.
 */
class JCudaInteropTest extends TorusTestBase {
    private static final Device GPU = Device.cuda(0);

    private static void assertMessage(RuntimeException e, String start) {
        assertTrue(e.getMessage().startsWith(start), "expected a message starting with '" + start + "', got: "
                + e.getMessage());
        assertFalse(e.getMessage().contains("\n"), "one line expected, got: " + e.getMessage());
    }

    @Test
    void wrapRefusesBadArgumentsByName() {
        CUdeviceptr p = new CUdeviceptr().withByteOffset(0x7000_0000_0000L);
        assertMessage(assertThrows(IllegalArgumentException.class, () -> JCudaViews.wrap(null, 16, GPU)),
                "devicePointer: expected a JCuda device pointer, got null");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> JCudaViews.wrap(p, -1, GPU)),
                "byteSize: expected >= 0, got -1");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> JCudaViews.wrap(p, 16, Device.cpu())),
                "device: expected a CUDA device, got cpu");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> JCudaViews.wrap(p, 16, null)),
                "device: expected a CUDA device, got null");
        assertMessage(assertThrows(IllegalArgumentException.class,
                () -> JCudaViews.wrap(Pointer.to(new float[4]), 16, GPU)), "devicePointer: expected device memory");
        assertMessage(assertThrows(IllegalArgumentException.class,
                () -> JCudaViews.wrap(new CUdeviceptr(), 16, GPU)), "devicePointer: expected an allocated device pointer");
        assertMessage(assertThrows(IllegalArgumentException.class,
                () -> JCudaViews.wrapTensor(p, null, GPU, 4)), "dtype: expected a DType");
        assertMessage(assertThrows(IllegalArgumentException.class,
                () -> JCudaViews.wrapTensor(p, DType.FLOAT32, GPU, 4, -2)), "shape: dimension 1 must be >= 0");
    }

    @Test
    void wrapWithoutAUsableDeviceSaysWhy() {
        assumeFalse(Device.isCudaAvailable(), "a CUDA device is usable here; JCudaInteropGpuTest covers it");
        CUdeviceptr p = new CUdeviceptr().withByteOffset(0x7000_0000_0000L);
        CudaUnavailableException e = assertThrows(CudaUnavailableException.class, () -> JCudaViews.wrap(p, 16, GPU));
        assertFalse(e.getMessage().isBlank());
    }

    @Test
    void streamWrapRefusesNullsAndTheCpu() {
        assertMessage(assertThrows(IllegalArgumentException.class, () -> JCudaViews.wrap((cudaStream_t) null, GPU)),
                "stream: expected a cudaStream_t, got null");
        assertMessage(assertThrows(IllegalArgumentException.class,
                () -> JCudaViews.wrap((jcuda.driver.CUstream) null, GPU)), "stream: expected a CUstream, got null");
        assertMessage(assertThrows(IllegalArgumentException.class,
                () -> JCudaViews.wrap(new cudaStream_t(), Device.cpu())), "device: expected a CUDA device, got cpu");
    }

    @Test
    void aBorrowedStreamViewIsNeverDestroyed() {
        // handle 0 is the legacy default stream: wrapping it needs no device, and close() must not touch it
        Stream s = JCudaViews.wrap(new cudaStream_t(), GPU);
        assertEquals(GPU, s.device());
        assertFalse(s.isBorrowed(), "handle 0 is the default stream itself");
        s.close();
        s.close();
        // any other handle is a borrowed view; with no buffers on it, closing it touches no CUDA at all
        Stream view = Stream.borrow(TOKEN, GPU, 0x1234);
        assertTrue(view.isBorrowed());
        assertTrue(view.toString().contains("borrowed"), view.toString());
        view.close();
        assertThrows(IllegalStateException.class, view::synchronize, "a closed view refuses work");
    }

    @Test
    void pointerRefusesHostTensorsAndClosedOnes() {
        try (Tensor cpu = Tensor.fromArray(root, new float[] {1, 2}, 2)) {
            assertMessage(assertThrows(IllegalArgumentException.class, () -> JCudaViews.pointer(cpu)),
                    "buffer: expected memory on a CUDA device, got HostBuffer");
        }
        Tensor closed = Tensor.fromArray(root, new float[] {1}, 1);
        closed.close();
        assertThrows(IllegalStateException.class, () -> JCudaViews.pointer(closed));
        assertMessage(assertThrows(IllegalArgumentException.class, () -> JCudaViews.pointer((Tensor) null)),
                "tensor: expected a tensor on a CUDA device, got null");
    }

    @Test
    void jcublasGemmRefusesBadArgumentsAndExplainsAMissingCublasInOneLine() {
        assertMessage(assertThrows(IllegalArgumentException.class, () -> new JCublasGemm(null, GPU)),
                "handle: expected a cublasHandle");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> new JCublasGemm(new cublasHandle(),
                Device.cpu())), "device: expected a CUDA device, got cpu");
        String cause = JCudaLibraries.cublasUnavailableCause();
        assumeTrue(cause != null, "JCublas loads here; JCudaInteropGpuTest covers the GEMM");
        for (int attempt = 0; attempt < 2; attempt++) { // the second attempt reports the same cause, not NoClassDefFoundError
            CudaUnavailableException e = assertThrows(CudaUnavailableException.class,
                    () -> new JCublasGemm(new cublasHandle(), GPU));
            assertMessage(e, "JCublasGemm(cuda:0): JCublas");
            assertEquals("JCublasGemm(cuda:0): " + cause, e.getMessage());
        }
        if (cause.contains("was not found")) {
            assertTrue(cause.contains("libcublas.so.12") || cause.contains("libcuda"), cause);
        }
    }

    @Test
    void explainTurnsALongLoadFailureIntoOneLineNamingTheLibrary() {
        UnsatisfiedLinkError e = new UnsatisfiedLinkError("Error while loading native library \"JCublas2-12.6.0\"\n"
                + "Stack trace from the attempt to load the library as a resource:\n"
                + "java.lang.UnsatisfiedLinkError: /tmp/libJCublas2-12.6.0-linux-x86_64.so: libcublas.so.12: "
                + "cannot open shared object file: No such file or directory\n\tat x.y");
        String line = JCudaLibraries.explain("JCublas 12.6", "cuBLAS 12 (libcublas.so.12)", e);
        assertEquals("JCublas 12.6 cannot load: libcublas.so.12 was not found (it needs cuBLAS 12 (libcublas.so.12); "
                + "install it and put its directory on LD_LIBRARY_PATH)", line);
        String other = JCudaLibraries.explain("JCuda 12.6", "the CUDA driver", new UnsatisfiedLinkError("\n  weird\nmore"));
        assertEquals("JCuda 12.6 cannot load (UnsatisfiedLinkError: weird; it needs the CUDA driver)", other);
    }

    @Test
    void borrowNeedsTheTokenAndACudaDevice() {
        Stream s = Stream.defaultStream(GPU);
        assertThrows(IllegalArgumentException.class, () -> DeviceBuffer.borrow(null, GPU, 0x1000, 16, s, "x"));
        assertMessage(assertThrows(IllegalArgumentException.class,
                () -> DeviceBuffer.borrow(TOKEN, Device.cpu(), 0x1000, 16, s, "x")), "device: expected a CUDA device");
        assertMessage(assertThrows(IllegalArgumentException.class,
                () -> DeviceBuffer.borrow(TOKEN, GPU, 0, 16, s, "x")), "address: expected a non-null device address");
        assertMessage(assertThrows(IllegalArgumentException.class,
                () -> DeviceBuffer.borrow(TOKEN, GPU, 0x1000, -4, s, "x")), "byteSize: expected >= 0");
        assertThrows(IllegalArgumentException.class, () -> Stream.borrow(null, GPU, 0));
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Stream.borrow(TOKEN, Device.cpu(), 0)),
                "device: expected a CUDA device");
    }

    @Test
    void tensorWrapChecksTheSizeAndTakesOwnershipOfTheBuffer() {
        HostBuffer b = root.allocateHost(16);
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Tensor.wrap(b, DType.FLOAT32, 5)),
                "shape: [5] of FLOAT32 needs 20 bytes, but buffer holds 16");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Tensor.wrap(b, null, 4)),
                "dtype");
        try (dev.torus.memory.MemoryBuffer odd = b.slice(2, 12)) {
            assertMessage(assertThrows(IllegalArgumentException.class, () -> Tensor.wrap(odd, DType.FLOAT32, 3)),
                    "buffer: FLOAT32 elements must be aligned to 4 bytes");
        }
        try (Tensor t = Tensor.wrap(b, DType.FLOAT32, 2, 2)) {
            t.zero();
            assertArrayEquals(new float[4], t.toFloatArray());
        }
        assertTrue(b.isClosed(), "closing the tensor closes the buffer it wraps");
    }
}
