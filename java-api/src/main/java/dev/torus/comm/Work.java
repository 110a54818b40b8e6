package dev.torus.comm;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;

/**
 * Handle of an asynchronous communicator operation. The tensors passed to the
 * operation are pinned until it completes: closing them earlier throws.
 */
public interface Work {
    /** True once the operation has finished, successfully or not. */
    boolean isCompleted();

    /**
     * Waits up to {@code timeout}. Returns normally on success; throws the operation's
     * {@link CommException} on failure, or {@link CommTimeoutException} if it is still
     * running when {@code timeout} expires (the operation itself keeps its own deadline).
     */
    void await(Duration timeout);

    /** Waits for the operation's own deadline (its timeout plus a margin); never blocks forever. */
    void await();

    /** A future that completes with the operation; it never completes before the operation does. */
    CompletableFuture<Void> toFuture();

    /** The communicator-local sequence number of this operation (1, 2, ...). */
    long seq();

    OpType opType();
}
