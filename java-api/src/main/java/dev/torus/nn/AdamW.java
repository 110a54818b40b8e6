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
 * Adam with decoupled weight decay, with the update rule of {@code torch.optim.AdamW}
 * (amsgrad off): {@code p *= 1 - lr wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)}. The bias corrections
 * are computed in double precision on the host each step.
 *
 * <p>Owns two zero-initialised moment tensors per parameter, allocated from the
 * allocator given, on the parameter's device.
 */
public final class AdamW implements Optimizer {
    private final List<Parameter> params;
    private final List<Tensor> m = new ArrayList<>();
    private final List<Tensor> v = new ArrayList<>();
    private final float beta1;
    private final float beta2;
    private final float eps;
    private final float weightDecay;
    private float lr;
    private long steps;
    private boolean closed;

    public AdamW(List<Parameter> params, float lr, float beta1, float beta2, float eps, float weightDecay,
                 Allocator allocator) {
        this.params = OptimizerChecks.params(params);
        OptimizerChecks.lr(lr);
        if (!(beta1 >= 0f && beta1 < 1f)) {
            throw new IllegalArgumentException("beta1 must be in [0, 1), got " + beta1);
        }
        if (!(beta2 >= 0f && beta2 < 1f)) {
            throw new IllegalArgumentException("beta2 must be in [0, 1), got " + beta2);
        }
        if (!(eps > 0f) || Float.isInfinite(eps)) {
            throw new IllegalArgumentException("eps must be a positive finite number, got " + eps);
        }
        OptimizerChecks.weightDecay(weightDecay);
        Checks.notNull("allocator", allocator);
        this.lr = lr;
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.weightDecay = weightDecay;
        try {
            for (Parameter p : this.params) {
                m.add(Tensor.zeros(allocator, DType.FLOAT32, p.value().device(), p.value().shape()));
                v.add(Tensor.zeros(allocator, DType.FLOAT32, p.value().device(), p.value().shape()));
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /** torch's defaults: betas (0.9, 0.999), eps 1e-8, weight decay 0.01. */
    public AdamW(List<Parameter> params, float lr, Allocator allocator) {
        this(params, lr, 0.9f, 0.999f, 1e-8f, 0.01f, allocator);
    }

    @Override
    public float learningRate() {
        return lr;
    }

    @Override
    public List<Tensor> stateTensors() {
        List<Tensor> out = new ArrayList<>();
        for (int i = 0; i < m.size(); i++) {
            out.add(m.get(i));
            out.add(v.get(i));
        }
        return List.copyOf(out);
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
            throw new IllegalStateException("AdamW is closed");
        }
        long t = steps + 1;
        float bc1 = (float) (1.0 - Math.pow(beta1, t));
        float bc2 = (float) (1.0 - Math.pow(beta2, t));
        for (int i = 0; i < params.size(); i++) {
            Parameter p = params.get(i);
            NativeLibrary.check(TorusNative.torus_adamw_step(Ops.device(p.value()), 0L, p.value().dataAddress(TOKEN),
                    p.grad().dataAddress(TOKEN), m.get(i).dataAddress(TOKEN), v.get(i).dataAddress(TOKEN), p.numel(), lr, beta1,
                    beta2, eps, weightDecay, bc1, bc2), "AdamW step (" + p.name() + ")");
        }
        steps = t;
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
        for (Tensor x : m) {
            x.close();
        }
        for (Tensor x : v) {
            x.close();
        }
    }
}
