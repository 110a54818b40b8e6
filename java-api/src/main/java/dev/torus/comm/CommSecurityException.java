package dev.torus.comm;

/**
 * A rank's record in the store carries no valid proof of the job secret, or this
 * process and its peers disagree on whether the job has one: the rank was not admitted
 * and the communicator was not formed.
 */
public class CommSecurityException extends CommException {
    private static final long serialVersionUID = 1L;
    private final int rank;

    public CommSecurityException(int rank, String message) {
        super(message);
        this.rank = rank;
    }

    /** The rank whose record was refused. */
    public int rank() {
        return rank;
    }
}
