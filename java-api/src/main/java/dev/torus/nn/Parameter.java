package dev.torus.nn;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.tensor.Tensor;
import dev.torus.memory.Allocator;

/**
 * A trainable FLOAT32 tensor and its gradient, same shape and device. Layers
 * accumulate into {@link #grad()} during backward; optimizers read it and update
 * {@link #value()} in place; {@link #zeroGrad()} starts the next accumulation.
 *
 * <p>Ownership: the parameter owns both tensors and frees them in {@link #close()};
 * the layer that created it closes it. {@link #replaceGrad} hands in a different
 * gradient tensor (for example a view into a communication bucket); the parameter
 * then owns that one and closes the old one.
 */
public final class Parameter implements AutoCloseable {
    private final String name;
    private final Tensor value;
    private Tensor grad;

    Parameter(String name, Tensor value) {
        this.name = name;
        this.value = value;
        Tensor g = null;
        try {
            g = Tensor.zeros(value.allocator(), DType.FLOAT32, value.device(), value.shape());
        } finally {
            if (g == null) {
                value.close();
            }
        }
        this.grad = g;
    }

    /** Creates a parameter with values from {@code init} (host array, copied to {@code device}). */
    static Parameter of(String name, Allocator allocator, Device device, float[] init, long... shape) {
        Tensor host = Tensor.fromArray(allocator, init, shape);
        if (device.isCpu()) {
            return new Parameter(name, host);
        }
        try (host) {
            return new Parameter(name, host.to(device));
        }
    }

    public String name() {
        return name;
    }

    /** The values (owned by this parameter). */
    public Tensor value() {
        return value;
    }

    /** The accumulated gradient (owned by this parameter). */
    public Tensor grad() {
        return grad;
    }

    /** Number of elements. */
    public long numel() {
        return value.numel();
    }

    /** Sets the gradient to zero. */
    public void zeroGrad() {
        grad.zero();
    }

    /**
     * Uses {@code newGrad} as the gradient from now on; it must be FLOAT32 with the
     * value's shape and device. The old gradient is closed; this parameter owns the new one.
     */
    public void replaceGrad(Tensor newGrad) {
        if (newGrad == null) {
            throw new IllegalArgumentException("newGrad must not be null");
        }
        newGrad.ensureOpen();
        if (newGrad.dtype() != DType.FLOAT32 || !java.util.Arrays.equals(newGrad.shape(), value.shape())
                || !newGrad.device().equals(value.device())) {
            throw new IllegalArgumentException("newGrad must be FLOAT32 " + java.util.Arrays.toString(value.shape())
                    + " on " + value.device() + ", got " + newGrad);
        }
        Tensor old = grad;
        grad = newGrad;
        old.close();
    }

    @Override
    public void close() {
        value.close();
        grad.close();
    }

    @Override
    public String toString() {
        return "Parameter[" + name + ", " + java.util.Arrays.toString(value.shape()) + ", " + value.device() + "]";
    }
}
