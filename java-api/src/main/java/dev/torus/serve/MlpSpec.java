package dev.torus.serve;

/**
 * The architecture a torus-mlp model file describes in its metadata (see
 * {@link MlpModelFile}): the arguments that rebuild the {@link dev.torus.nn.Mlp}, the
 * LayerNorm epsilon, and whether the weights are int8. An immutable value.
 *
 * @param inputs    features in; the first block's weight is {@code [width, inputs]}
 * @param width     features of every block
 * @param blocks    number of blocks
 * @param classes   outputs of the head
 * @param residual  whether the blocks of the model's width are residual
 * @param normEps   the LayerNorm epsilon
 * @param quantized true for an int8 weight-only file (metadata dtype {@code int8-weight-only}),
 *                  false for fp32
 */
public record MlpSpec(int inputs, int width, int blocks, int classes, boolean residual, float normEps,
                      boolean quantized) {
    /** Checks that every count is positive and the epsilon a positive finite number. */
    public MlpSpec {
        positive("inputs", inputs);
        positive("width", width);
        positive("blocks", blocks);
        positive("classes", classes);
        if (!(normEps > 0f) || Float.isInfinite(normEps)) {
            throw new IllegalArgumentException("normEps must be a positive finite number, got " + normEps);
        }
    }

    private static void positive(String name, int value) {
        if (value <= 0) {
            throw new IllegalArgumentException(name + " must be positive, got " + value);
        }
    }
}
