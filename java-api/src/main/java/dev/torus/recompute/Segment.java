package dev.torus.recompute;

import dev.torus.tensor.Tensor;

/**
 * One step of a sequential model with an explicit forward and backward, as
 * {@link CheckpointedSequential} runs it. A framework checkpoints its own layers by
 * implementing this.
 *
 * <p>Contract: {@code forward} must be a pure function of its input, its parameters
 * and the random key in the context ({@link SegmentContext#seed()},
 * {@link SegmentContext#rngOffset()}), because the engine may call it again during
 * backward and expects the same bits. Tensors returned by {@code forward} and
 * {@code backward} must be allocated from {@link SegmentContext#allocator()}; the
 * engine owns and closes them. The input and the gradient passed in belong to the
 * engine too: do not close or keep them. {@code backward} accumulates parameter
 * gradients into tensors the segment owns.
 */
public interface Segment {
    /** The output for {@code input}. */
    Tensor forward(Tensor input, SegmentContext ctx);

    /** The gradient with respect to {@code input}, given the gradient of the output. */
    Tensor backward(Tensor input, Tensor gradOutput, SegmentContext ctx);

    /**
     * True for elementwise segments that are cheap to recompute (activations,
     * dropout, normalization); the selective policy recomputes these and keeps the
     * outputs of everything else (GEMMs).
     */
    default boolean cheapToRecompute() {
        return false;
    }

    /**
     * The shape {@code forward} returns for an input of {@code inputShape}; the
     * default is the same shape. The memory-budget policy plans with these shapes
     * before running anything, and the engine checks them against the real
     * outputs under that policy, so a segment that changes the shape must
     * override this.
     */
    default long[] outputShape(long[] inputShape) {
        return inputShape.clone();
    }
}
