package dev.torus.comm;

/**
 * The communicator was aborted (by {@link Communicator#abort}, by a peer's failure,
 * or by an earlier failed operation) and cannot complete this operation. Rebuild
 * with {@link Communicator#shrink} or a new generation.
 */
public class CommAbortedException extends CommException {
    private static final long serialVersionUID = 1L;

    public CommAbortedException(String message) {
        super(message);
    }
}
