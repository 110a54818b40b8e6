package dev.torus.recompute;

/**
 * Told by {@link CheckpointedSequential#backward} as each segment's backward
 * finishes, so that its parameter gradients are final for this step and can be
 * communicated while earlier segments are still computing (data-parallel overlap).
 * Called on the thread that runs backward; implementations must be quick and must
 * not touch the engine.
 */
public interface BackwardListener {
    /** Segment {@code index} (in forward order) has accumulated its gradients for this backward. */
    void segmentDone(int index);

    /** The whole backward has finished (also after a failure, so listeners can reset). */
    default void backwardDone() {}
}
