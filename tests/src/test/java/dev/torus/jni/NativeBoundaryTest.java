package dev.torus.jni;

import static dev.torus.internal.NativeAccess.TOKEN;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * The C ABI rejects bad arguments with a status and a message instead of
 * crashing, even when the Java checks are bypassed.
 */
class NativeBoundaryTest extends dev.torus.testing.TorusTestBase {
    static void rejected(int status, String fragment) {
        assertEquals(TorusNative.ERR_INVALID_ARGUMENT, status);
        String msg = TorusNative.torus_last_error();
        assertTrue(msg.contains(fragment), "'" + msg + "' should mention '" + fragment + "'");
    }

    @Test
    void badArgumentsReturnAStatusAndAMessage() {
        rejected(TorusNative.torus_quantize_symmetric(-1, 0, 0, 0, 10, 1, 1, 10, 100, 0, 0, 0, 0), "power of two");
        rejected(TorusNative.torus_quantize_symmetric(-1, 0, 0, 0, -5, 1, 1, 1, 0, 0, 0, 0, 0), "n must be >= 0");
        rejected(TorusNative.torus_quantize_symmetric(-1, 0, 0, 0, 10, 1, 1, 10, 0, 0, 0, 0, 0), "x is NULL");
        rejected(TorusNative.torus_stats(-1, 0, 0, 8, 12, 2, 3, 3, 0, 0, 0, 0), "outer*channels*inner");
        rejected(TorusNative.torus_cast(-1, 0, 9, 8, 0, 8, 1), "in_dtype");
        rejected(TorusNative.torus_dequantize(-1, 0, 0, 8, 1, 1, 1, 1, 0, 8, 0, 0, 8), "q_dtype");
        rejected(TorusNative.torus_quantize_affine(-1, 0, 0, 8, 1, 1, 1, 1, 0, 8, 0, -1, 255, 5, 8, 0, 0), "qmin");
        rejected(TorusNative.torus_set_cpu_threads(0), "threads");
        rejected(TorusNative.torus_host_alloc(-1, 0, new long[1]), "bytes");
        rejected(TorusNative.torus_int8_gemm(-1, 0, 0, 8, 8, 0, 8, -1, 2, 2), "m, n and k must be >= 0");
        rejected(TorusNative.torus_int8_gemm(-1, 0, 0, 8, 8, 0, 8, 2, 2, 2), "x is NULL");
        rejected(TorusNative.torus_int8_gemm(-1, 0, 8, 8, 0, 0, 8, 2, 2, 2), "scale is NULL");
        rejected(TorusNative.torus_int8_gemm(-1, 0, 8, 8, 8, 0, 8, 1L << 40, 1L << 40, 2), "overflows");
    }

    @Test
    void impossibleAllocationsFailWithOutOfMemory() {
        long[] out = {123};
        assertEquals(TorusNative.ERR_OUT_OF_MEMORY, TorusNative.torus_host_alloc(1L << 60, 0, out));
        assertEquals(0, out[0]);
        assertTrue(TorusNative.torus_last_error().contains("cannot allocate"));
    }

    /** A view must span exactly the bytes asked for: a larger one lets bulk copies run past the buffer. */
    @Test
    void memoryViewSpansExactlyTheRequestedBytes() {
        try (dev.torus.memory.HostBuffer b = root.allocateHost(13)) {
            assertEquals(13, MemoryView.of(b.address(TOKEN), 13).capacity());
            assertEquals(5, b.view(8, 5).capacity());
            assertEquals(0, MemoryView.of(b.address(TOKEN), 0).capacity());
        }
    }
}
