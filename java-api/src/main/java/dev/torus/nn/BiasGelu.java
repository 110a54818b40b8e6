package dev.torus.nn;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.Tensor;
import dev.torus.memory.Allocator;
import dev.torus.recompute.SegmentContext;
import java.util.List;

/**
 * Fused {@code y = gelu(x + b)} (tanh form) with a bias of {@code [features]},
 * initialised to zero. Backward recomputes GELU' from the saved pre-activation
 * {@code x}; the output is never stored. Cheap to recompute.
 */
public final class BiasGelu implements Layer {
    private final long features;
    private final Device device;
    private final Parameter bias;

    public BiasGelu(long features, Device device, Allocator allocator) {
        Checks.positive("features", features);
        Checks.notNull("device", device);
        Checks.notNull("allocator", allocator);
        this.features = features;
        this.device = device;
        this.bias = Parameter.of("bias", allocator, device, new float[(int) features], features);
    }

    public Parameter bias() {
        return bias;
    }

    @Override
    public List<Parameter> parameters() {
        return List.of(bias);
    }

    @Override
    public boolean cheapToRecompute() {
        return true;
    }

    @Override
    public Tensor forward(Tensor x, SegmentContext ctx) {
        Checks.rows("BiasGelu", "input", x, features, device);
        Tensor y = Tensor.empty(ctx.allocator(), DType.FLOAT32, device, x.shape());
        try {
            RecomputeKernels.biasGeluForward(x, bias.value(), y);
        } catch (RuntimeException e) {
            y.close();
            throw e;
        }
        return y;
    }

    @Override
    public Tensor backward(Tensor x, Tensor dy, SegmentContext ctx) {
        long rows = Checks.rows("BiasGelu", "input", x, features, device);
        Checks.sameShape("BiasGelu", "gradOutput", dy, x);
        Tensor dx = Tensor.empty(ctx.allocator(), DType.FLOAT32, device, x.shape());
        try {
            RecomputeKernels.biasGeluBackward(x, bias.value(), dy, dx, null);
            Ops.columnSum(dx, bias.grad(), rows, features, true, "BiasGelu backward (dbias)");
        } catch (RuntimeException e) {
            dx.close();
            throw e;
        }
        return dx;
    }

    @Override
    public String toString() {
        return "BiasGelu(" + features + ")";
    }
}
