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

    /** Frees the optimizer state. */
    @Override
    void close();
}
