package dev.torus.comm;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.torus.NativeStatus;
import dev.torus.OutOfMemoryException;
import org.junit.jupiter.api.Test;

/**
 * Gloo and NCCL failures go through one category-to-exception mapping: a timeout is a
 * {@link CommTimeoutException} and a lost peer a {@link CommAbortedException} whichever
 * backend reports it, and NCCL's results land in the same categories.
 */
class CommStatusTest {

    @Test
    void communicationCategoriesGetCommExceptionTypes() {
        assertType(CommTimeoutException.class, NativeStatus.TIMEOUT);
        assertType(CommAbortedException.class, NativeStatus.PEER_FAILURE);
        assertType(CommAbortedException.class, NativeStatus.ABORTED);
        assertType(CommException.class, NativeStatus.INTERNAL);
        assertType(IllegalArgumentException.class, NativeStatus.INVALID_ARGUMENT);
        assertType(OutOfMemoryException.class, NativeStatus.OUT_OF_MEMORY);
    }

    @Test
    void ncclRemoteAndSystemErrorsArePeerFailuresAndTheRestInternal() {
        assertEquals(NativeStatus.PEER_FAILURE, NcclHandle.category(NcclDriver.REMOTE_ERROR));
        assertEquals(NativeStatus.PEER_FAILURE, NcclHandle.category(NcclDriver.SYSTEM_ERROR));
        for (int r : new int[] {NcclDriver.UNHANDLED_CUDA_ERROR, NcclDriver.INTERNAL_ERROR, NcclDriver.INVALID_ARGUMENT,
                NcclDriver.INVALID_USAGE}) {
            assertEquals(NativeStatus.INTERNAL, NcclHandle.category(r), "ncclResult " + r);
        }
    }

    private static void assertType(Class<?> type, NativeStatus status) {
        RuntimeException e = CommStatus.exception(status, "what failed: detail");
        assertEquals(type, e.getClass());
        assertEquals("what failed: detail", e.getMessage());
    }
}
