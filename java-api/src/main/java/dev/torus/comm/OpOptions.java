package dev.torus.comm;

import dev.torus.memory.Stream;
import java.time.Duration;

/**
 * Per-operation options. Immutable; {@link #defaults()} uses the communicator's
 * timeout and the device's default stream.
 */
public final class OpOptions {
    private static final OpOptions DEFAULTS = new OpOptions(null, null);

    private final Duration timeout;
    private final Stream stream;

    private OpOptions(Duration timeout, Stream stream) {
        this.timeout = timeout;
        this.stream = stream;
    }

    public static OpOptions defaults() {
        return DEFAULTS;
    }

    /** Fails the operation with {@link CommTimeoutException} if it has not completed after {@code timeout}. */
    public OpOptions withTimeout(Duration timeout) {
        if (timeout == null || timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("timeout must be a positive duration, got " + timeout);
        }
        return new OpOptions(timeout, stream);
    }

    /**
     * The CUDA stream the operation is ordered on (NCCL only; the Gloo backend
     * rejects a stream because CPU collectives do not run on one).
     */
    public OpOptions withStream(Stream stream) {
        if (stream == null) {
            throw new IllegalArgumentException("stream must not be null");
        }
        return new OpOptions(timeout, stream);
    }

    /** The timeout, or {@code null} for the communicator's default. */
    public Duration timeout() {
        return timeout;
    }

    /** The stream, or {@code null} for the default stream. */
    public Stream stream() {
        return stream;
    }
}
