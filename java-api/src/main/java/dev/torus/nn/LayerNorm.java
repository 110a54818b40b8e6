package dev.torus.nn;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.tensor.Tensor;
import dev.torus.memory.Allocator;
import dev.torus.recompute.SegmentContext;
import java.util.List;

/**
 * LayerNorm over the last dimension with gamma (initialised to 1) and beta (0).
 * Backward recomputes the row statistics from the saved input; neither the
 * output nor mean/rstd is kept. Cheap to recompute.
 */
public final class LayerNorm implements Layer {
    private final long features;
    private final float eps;
    private final Device device;
    private final Parameter gamma;
    private final Parameter beta;

    public LayerNorm(long features, float eps, Device device, Allocator allocator) {
        Checks.positive("features", features);
        if (!(eps > 0f) || Float.isInfinite(eps)) {
            throw new IllegalArgumentException("eps must be a positive finite number, got " + eps);
        }
        Checks.notNull("device", device);
        Checks.notNull("allocator", allocator);
        this.features = features;
        this.eps = eps;
        this.device = device;
        float[] ones = new float[(int) features];
        java.util.Arrays.fill(ones, 1f);
        this.gamma = Parameter.of("gamma", allocator, device, ones, features);
        Parameter b = null;
        try {
            b = Parameter.of("beta", allocator, device, new float[(int) features], features);
        } finally {
            if (b == null) {
                gamma.close();
            }
        }
        this.beta = b;
    }

    public Parameter gamma() {
        return gamma;
    }

    public Parameter beta() {
        return beta;
    }

    @Override
    public List<Parameter> parameters() {
        return List.of(gamma, beta);
    }

    @Override
    public boolean cheapToRecompute() {
        return true;
    }

    @Override
    public Tensor forward(Tensor x, SegmentContext ctx) {
        Checks.rows("LayerNorm", "input", x, features, device);
        Tensor y = Tensor.empty(ctx.allocator(), DType.FLOAT32, device, x.shape());
        try {
            RecomputeKernels.layerNormForward(x, gamma.value(), beta.value(), y, null, null, eps);
        } catch (RuntimeException e) {
            y.close();
            throw e;
        }
        return y;
    }

    @Override
    public Tensor backward(Tensor x, Tensor dy, SegmentContext ctx) {
        long rows = Checks.rows("LayerNorm", "input", x, features, device);
        Checks.sameShape("LayerNorm", "gradOutput", dy, x);
        Tensor dx = Tensor.empty(ctx.allocator(), DType.FLOAT32, device, x.shape());
        try (Tensor dg = Tensor.empty(ctx.allocator(), DType.FLOAT32, device, features);
             Tensor db = Tensor.empty(ctx.allocator(), DType.FLOAT32, device, features)) {
            RecomputeKernels.layerNormBackward(x, gamma.value(), dy, dx, dg, db, eps);
            if (rows == 0) {
                return dx;
            }
            Ops.axpy(1f, dg, gamma.grad(), "LayerNorm backward (dgamma)");
            Ops.axpy(1f, db, beta.grad(), "LayerNorm backward (dbeta)");
        } catch (RuntimeException e) {
            dx.close();
            throw e;
        }
        return dx;
    }

    @Override
    public String toString() {
        return "LayerNorm(" + features + ", eps=" + eps + ")";
    }
}
