package dev.torus.nn;

import java.util.List;

/**
 * Updates parameters in place from their accumulated gradients. The optimizer
 * owns its state tensors (momentum, moments) and frees them in {@link #close()};
 * it does not own the parameters.
 */
public interface Optimizer extends AutoCloseable {
    /** One update of every parameter from its gradient. */
    void step();

    /** Zeroes every parameter's gradient. */
    default void zeroGrad() {
        for (Parameter p : parameters()) {
            p.zeroGrad();
        }
    }

    /** The parameters this optimizer updates. */
    List<Parameter> parameters();

    /** Steps taken so far. */
    long steps();

    /**
     * The tensors this optimizer keeps between steps, in a fixed order (AdamW: the first
     * and second moments of each parameter, m then v; Sgd: one momentum buffer per
     * parameter, none without momentum). Owned by the optimizer; exposed so that its
     * state can be saved and restored (checkpoints, elastic state).
     */
    List<dev.torus.tensor.Tensor> stateTensors();

    /** The learning rate the next step uses. */
    float learningRate();

    /** Sets the learning rate of the next steps. */
    void setLearningRate(float lr);

    /**
     * Sets the step count, as after restoring saved state: it drives AdamW's bias
     * correction and Sgd's first-step rule.
     */
    void restoreSteps(long steps);

    /** Frees the optimizer state. */
    @Override
    void close();
}
