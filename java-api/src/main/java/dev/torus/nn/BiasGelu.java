package dev.torus.nn;

import dev.torus.Device;
import dev.torus.tensor.Tensor;
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
        return Ops.filled(ctx.allocator(), device, x.shape(), y -> RecomputeKernels.biasGeluForward(x, bias.value(), y));
    }

    @Override
    public Tensor backward(Tensor x, Tensor dy, SegmentContext ctx) {
        long rows = Checks.rows("BiasGelu", "input", x, features, device);
        Checks.sameShape("BiasGelu", "gradOutput", dy, x);
        return Ops.filled(ctx.allocator(), device, x.shape(), dx -> {
            RecomputeKernels.biasGeluBackward(x, bias.value(), dy, dx, null);
            Ops.columnSum(dx, bias.grad(), rows, features, true, "BiasGelu backward (dbias)");
        });
    }

    @Override
    public String toString() {
        return "BiasGelu(" + features + ")";
    }
}
