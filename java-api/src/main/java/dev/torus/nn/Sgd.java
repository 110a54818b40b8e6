package dev.torus.nn;

import static dev.torus.internal.NativeAccess.TOKEN;

import dev.torus.DType;
import dev.torus.NativeLibrary;
import dev.torus.tensor.Tensor;
import dev.torus.jni.TorusNative;
import dev.torus.memory.Allocator;
import java.util.ArrayList;
import java.util.List;

/**
 * Stochastic gradient descent with optional momentum, Nesterov momentum and L2
 * weight decay, with the update rule of {@code torch.optim.SGD} (dampening 0):
 * {@code g = grad + wd p; buf = momentum buf + g (buf = g on the first step);
 * g = nesterov ? g + momentum buf : buf; p -= lr g}.
 *
 * <p>Owns one momentum buffer per parameter (none when momentum is 0), allocated
 * from the allocator given, on the parameter's device.
 */
public final class Sgd implements Optimizer {
    private final List<Parameter> params;
    private final List<Tensor> buffers = new ArrayList<>();
    private final float momentum;
    private final float weightDecay;
    private final boolean nesterov;
    private float lr;
    private long steps;
    private boolean closed;

    public Sgd(List<Parameter> params, float lr, float momentum, float weightDecay, boolean nesterov,
               Allocator allocator) {
        this.params = OptimizerChecks.params(params);
        OptimizerChecks.lr(lr);
        if (!(momentum >= 0f && momentum < 1f)) {
            throw new IllegalArgumentException("momentum must be in [0, 1), got " + momentum);
        }
        OptimizerChecks.weightDecay(weightDecay);
        if (nesterov && momentum == 0f) {
            throw new IllegalArgumentException("nesterov needs momentum > 0");
        }
        Checks.notNull("allocator", allocator);
        this.lr = lr;
        this.momentum = momentum;
        this.weightDecay = weightDecay;
        this.nesterov = nesterov;
        if (momentum != 0f) {
            try {
                for (Parameter p : this.params) {
                    buffers.add(Tensor.empty(allocator, DType.FLOAT32, p.value().device(), p.value().shape()));
                }
            } catch (RuntimeException e) {
                close();
                throw e;
            }
        }
    }

    /** Plain SGD with momentum (no weight decay, no Nesterov). */
    public Sgd(List<Parameter> params, float lr, float momentum, Allocator allocator) {
        this(params, lr, momentum, 0f, false, allocator);
    }

    @Override
    public float learningRate() {
        return lr;
    }

    @Override
    public List<Tensor> stateTensors() {
        return List.copyOf(buffers);
    }

    @Override
    public void restoreSteps(long steps) {
        if (steps < 0) {
            throw new IllegalArgumentException("steps must be >= 0, got " + steps);
        }
        this.steps = steps;
    }

    @Override
    public void setLearningRate(float lr) {
        OptimizerChecks.lr(lr);
        this.lr = lr;
    }

    @Override
    public void step() {
        if (closed) {
            throw new IllegalStateException("Sgd is closed");
        }
        for (int i = 0; i < params.size(); i++) {
            Parameter p = params.get(i);
            Tensor buf = momentum != 0f ? buffers.get(i) : null;
            NativeLibrary.check(TorusNative.torus_sgd_step(Ops.device(p.value()), 0L, p.value().dataAddress(TOKEN),
                    p.grad().dataAddress(TOKEN), buf == null ? 0L : buf.dataAddress(TOKEN), p.numel(), lr, momentum,
                    weightDecay, nesterov ? 1 : 0, steps == 0 ? 1 : 0), "Sgd step (" + p.name() + ")");
        }
        steps++;
    }

    @Override
    public List<Parameter> parameters() {
        return params;
    }

    @Override
    public long steps() {
        return steps;
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (Tensor t : buffers) {
            t.close();
        }
    }
}
