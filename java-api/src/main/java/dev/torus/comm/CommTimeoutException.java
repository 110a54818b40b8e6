package dev.torus.comm;

/** An operation did not complete within its timeout (a peer is slow, gone, or skipped the collective). */
public class CommTimeoutException extends CommException {
    private static final long serialVersionUID = 1L;

    public CommTimeoutException(String message) {
        super(message);
    }
}
