package dev.torus.rendezvous;

import dev.torus.TorusException;

/** A store operation failed: lost connection, malformed value, or a server error. */
public class StoreException extends TorusException {
    private static final long serialVersionUID = 1L;

    public StoreException(String message) {
        super(message);
    }

    public StoreException(String message, Throwable cause) {
        super(message, cause);
    }
}
