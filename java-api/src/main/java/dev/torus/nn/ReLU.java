package dev.torus.nn;

import static dev.torus.internal.NativeAccess.TOKEN;

import dev.torus.NativeLibrary;
import dev.torus.tensor.Tensor;
import dev.torus.jni.TorusNative;
import dev.torus.recompute.SegmentContext;

/** {@code y = max(x, 0)} (NaN propagates); backward passes {@code dy} where {@code x > 0}. No parameters; cheap to recompute. */
public final class ReLU implements Layer {
    @Override
    public boolean cheapToRecompute() {
        return true;
    }

    @Override
    public Tensor forward(Tensor x, SegmentContext ctx) {
        Checks.float32("input", x);
        return Ops.filled(ctx.allocator(), x.device(), x.shape(), y -> NativeLibrary.check(
                TorusNative.torus_relu_forward(Ops.device(x), 0L, x.dataAddress(TOKEN), y.dataAddress(TOKEN), x.numel()),
                "ReLU forward"));
    }

    @Override
    public Tensor backward(Tensor x, Tensor dy, SegmentContext ctx) {
        Checks.float32("input", x);
        Checks.sameShape("ReLU", "gradOutput", dy, x);
        return Ops.filled(ctx.allocator(), x.device(), x.shape(), dx -> NativeLibrary.check(
                TorusNative.torus_relu_backward(Ops.device(x), 0L, x.dataAddress(TOKEN), dy.dataAddress(TOKEN), dx.dataAddress(TOKEN),
                        x.numel()), "ReLU backward"));
    }

    @Override
    public String toString() {
        return "ReLU";
    }
}
