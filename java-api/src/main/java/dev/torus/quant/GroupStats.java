package dev.torus.quant;

import dev.torus.tensor.Tensor;

/**
 * Per-group statistics over the finite values of a tensor: absmax, min and max,
 * each a FLOAT32 tensor with one entry per group (a group with no finite value
 * reports 0). Owns the three tensors; close it when done.
 */
public final class GroupStats implements AutoCloseable {
    private final Tensor absMax;
    private final Tensor min;
    private final Tensor max;

    GroupStats(Tensor absMax, Tensor min, Tensor max) {
        this.absMax = absMax;
        this.min = min;
        this.max = max;
    }

    public Tensor absMax() {
        return absMax;
    }

    public Tensor min() {
        return min;
    }

    public Tensor max() {
        return max;
    }

    @Override
    public void close() {
        absMax.close();
        min.close();
        max.close();
    }
}
