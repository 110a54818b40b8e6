package dev.torus.parallel;

import dev.torus.TorusException;

/**
 * The data-parallel replicas no longer hold the same parameters: a consistency
 * check found a rank whose parameter hash differs from rank 0's. Every rank raises
 * it for the same check, so the job stops everywhere instead of training on.
 */
public final class ReplicaDivergenceException extends TorusException {
    private static final long serialVersionUID = 1L;

    private final int rank;
    private final String parameter;

    public ReplicaDivergenceException(String message, int rank, String parameter) {
        super(message);
        this.rank = rank;
        this.parameter = parameter;
    }

    /** The first rank found to differ from rank 0. */
    public int divergentRank() {
        return rank;
    }

    /** The name of the first parameter that differs. */
    public String parameter() {
        return parameter;
    }
}
