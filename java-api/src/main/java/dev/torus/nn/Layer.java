package dev.torus.nn;

import dev.torus.recompute.Segment;
import dev.torus.recompute.SegmentContext;
import dev.torus.tensor.Tensor;
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

    /**
     * Whether {@link #backwardInput} leaves the weight gradients to {@link #backwardWeights}, so that a
     * zero-bubble pipeline schedule can run them later. {@code false} by default: the backward is one pass.
     */
    default boolean splitsBackward() {
        return false;
    }

    /**
     * The input gradient; for a layer that {@link #splitsBackward()}, without the weight gradients. The
     * default is the whole {@link #backward}.
     */
    default Tensor backwardInput(Tensor input, Tensor gradOutput, SegmentContext ctx) {
        return backward(input, gradOutput, ctx);
    }

    /**
     * Accumulates the weight gradients that {@link #backwardInput} left out (same input and output
     * gradient); nothing by default. {@code backwardInput} then {@code backwardWeights} adds exactly what
     * {@link #backward} adds.
     */
    default void backwardWeights(Tensor input, Tensor gradOutput, SegmentContext ctx) {
    }

    /** Frees the parameters. */
    @Override
    default void close() {
        for (Parameter p : parameters()) {
            p.close();
        }
    }
}
