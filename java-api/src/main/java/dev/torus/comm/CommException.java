package dev.torus.comm;

import dev.torus.TorusException;

/** A collective or communicator operation failed. Messages name the op, dtype, count, seq and generation. */
public class CommException extends TorusException {
    private static final long serialVersionUID = 1L;

    public CommException(String message) {
        super(message);
    }

    public CommException(String message, Throwable cause) {
        super(message, cause);
    }
}
