package dev.torus.comm;

import dev.torus.NativeStatus;

/**
 * The comm layer's half of the status-to-exception mapping: a communication category
 * becomes a {@link CommException} subclass, and every other category the exception
 * {@link NativeStatus#exception} gives it. Gloo statuses come here as they are (they
 * share the kernel numbering); NCCL results are first mapped to a category by
 * {@link NcclHandle#category}. The message is composed by the caller. Stateless.
 */
final class CommStatus {
    private CommStatus() {}

    /** The exception for a failed comm call of category {@code status}, with {@code message}. */
    static RuntimeException exception(NativeStatus status, String message) {
        return switch (status) {
            case TIMEOUT -> new CommTimeoutException(message);
            case PEER_FAILURE, ABORTED -> new CommAbortedException(message);
            case INTERNAL -> new CommException(message);
            default -> status.exception(message);
        };
    }
}
