package dev.torus.jni;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.torus.CudaException;
import dev.torus.CudaUnavailableException;
import dev.torus.NativeStatus;
import dev.torus.OutOfMemoryException;
import dev.torus.TorusException;
import org.junit.jupiter.api.Test;

/**
 * The kernel ABI and the Gloo shim share one status numbering, and one mapping turns a
 * status into the exception a caller sees: a code that meant one thing to the kernels and
 * another to Gloo would surface as the wrong exception type.
 */
class NativeStatusTest {

    @Test
    void kernelAndGlooCodesNameTheSameCategories() {
        assertEquals(NativeStatus.OK, NativeStatus.of(TorusNative.OK));
        assertEquals(NativeStatus.INVALID_ARGUMENT, NativeStatus.of(TorusNative.ERR_INVALID_ARGUMENT));
        assertEquals(NativeStatus.OUT_OF_MEMORY, NativeStatus.of(TorusNative.ERR_OUT_OF_MEMORY));
        assertEquals(NativeStatus.CUDA, NativeStatus.of(TorusNative.ERR_CUDA));
        assertEquals(NativeStatus.CUDA_UNAVAILABLE, NativeStatus.of(TorusNative.ERR_CUDA_UNAVAILABLE));
        assertEquals(NativeStatus.INTERNAL, NativeStatus.of(TorusNative.ERR_INTERNAL));
        assertEquals(NativeStatus.OK, NativeStatus.of(GlooNative.OK));
        assertEquals(NativeStatus.INVALID_ARGUMENT, NativeStatus.of(GlooNative.ERR_INVALID_ARGUMENT));
        assertEquals(NativeStatus.OUT_OF_MEMORY, NativeStatus.of(GlooNative.ERR_OUT_OF_MEMORY));
        assertEquals(NativeStatus.INTERNAL, NativeStatus.of(GlooNative.ERR_INTERNAL));
        assertEquals(NativeStatus.TIMEOUT, NativeStatus.of(GlooNative.ERR_TIMEOUT));
        assertEquals(NativeStatus.PEER_FAILURE, NativeStatus.of(GlooNative.ERR_IO));
        assertEquals(NativeStatus.ABORTED, NativeStatus.of(GlooNative.ERR_ABORTED));
    }

    @Test
    void unknownCodesAreInternal() {
        assertEquals(NativeStatus.INTERNAL, NativeStatus.of(-1));
        assertEquals(NativeStatus.INTERNAL, NativeStatus.of(99));
    }

    @Test
    void eachCategoryHasItsExceptionTypeAndKeepsTheMessage() {
        assertExactly(IllegalArgumentException.class, NativeStatus.INVALID_ARGUMENT);
        assertExactly(OutOfMemoryException.class, NativeStatus.OUT_OF_MEMORY);
        assertExactly(CudaException.class, NativeStatus.CUDA);
        assertExactly(CudaUnavailableException.class, NativeStatus.CUDA_UNAVAILABLE);
        assertExactly(TorusException.class, NativeStatus.INTERNAL);
        // communication categories get their comm types in the comm layer; outside it they stay TorusExceptions
        assertExactly(TorusException.class, NativeStatus.TIMEOUT);
        assertExactly(TorusException.class, NativeStatus.PEER_FAILURE);
        assertExactly(TorusException.class, NativeStatus.ABORTED);
        assertThrows(IllegalStateException.class, () -> NativeStatus.OK.exception("op"));
    }

    private static void assertExactly(Class<?> type, NativeStatus status) {
        RuntimeException e = status.exception("op failed: detail");
        assertInstanceOf(type, e);
        assertEquals(type, e.getClass());
        assertEquals("op failed: detail", e.getMessage());
    }
}
