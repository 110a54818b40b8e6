package dev.torus.comm;

/**
 * Debug mode found ranks calling different collectives at the same sequence number
 * (different op, dtype, count or root). Thrown on every rank; the message names the culprits.
 */
public class CollectiveMismatchException extends CommException {
    private static final long serialVersionUID = 1L;

    public CollectiveMismatchException(String message) {
        super(message);
    }
}
