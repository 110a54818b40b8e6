package dev.torus;

/**
 * An allocation failed: an allocator limit would be exceeded, or the host or
 * device ran out of memory. Nothing was allocated.
 */
public class OutOfMemoryException extends TorusException {
    private static final long serialVersionUID = 1L;

    public OutOfMemoryException(String message) {
        super(message);
    }
}
