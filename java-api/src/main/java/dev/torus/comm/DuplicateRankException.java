package dev.torus.comm;

/**
 * Two processes claimed the same rank of one communicator generation. The first claim
 * stands; the second claimant fails, and so does every rank that learns of it before
 * the generation is formed. Never resolved by overwriting.
 */
public class DuplicateRankException extends CommException {
    private static final long serialVersionUID = 1L;
    private final int rank;

    public DuplicateRankException(int rank, String message) {
        super(message);
        this.rank = rank;
    }

    /** The rank claimed twice (the lowest, when several were). */
    public int rank() {
        return rank;
    }
}
