package dev.torus.elastic;

import dev.torus.TorusException;

/**
 * An elastic job lost members and fell below its minimum world size, and no replacement joined
 * within the join timeout: the job cannot go on, and every surviving member fails with this.
 */
public class JobBelowMinimumException extends TorusException {
    public JobBelowMinimumException(String message) {
        super(message);
    }
}
