package dev.torus.nn;

import dev.torus.recompute.Segment;
import java.util.List;

/**
 * A layer with an explicit forward and backward (no autograd): a
 * {@link Segment}, so {@link dev.torus.recompute.CheckpointedSequential} can run
 * and checkpoint a list of layers, plus the parameters it owns.
 *
 * <p>Forward reads only its input, its parameters and the random key in the
 * context, and keeps nothing between forward and backward; backward gets the
 * input back and accumulates parameter gradients into {@link Parameter#grad()}.
 * The layer owns its parameters and frees them in {@link #close()}.
 */
public interface Layer extends Segment, AutoCloseable {
    /** The trainable parameters, in a fixed order (empty for parameter-free layers). */
    default List<Parameter> parameters() {
        return List.of();
    }

    /** Frees the parameters. */
    @Override
    default void close() {
        for (Parameter p : parameters()) {
            p.close();
        }
    }
}
