package dev.torus.elastic;

import dev.torus.TorusException;

/**
 * Elastic state that does not fit: a snapshot of another model (names, shapes, sizes),
 * a malformed one, or ranks that hold different state after a sync.
 */
public class StateMismatchException extends TorusException {
    private static final long serialVersionUID = 1L;

    private final java.util.List<Integer> ranks;

    public StateMismatchException(String message) {
        this(message, java.util.List.of());
    }

    public StateMismatchException(String message, java.util.List<Integer> ranks) {
        super(message);
        this.ranks = java.util.List.copyOf(ranks);
    }

    /** After a sync: the ranks whose state differs from the root's (empty otherwise). */
    public java.util.List<Integer> ranks() {
        return ranks;
    }
}
