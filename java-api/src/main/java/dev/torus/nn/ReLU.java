package dev.torus.nn;

import dev.torus.DType;
import dev.torus.NativeLibrary;
import dev.torus.Tensor;
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
        Tensor y = Tensor.empty(ctx.allocator(), DType.FLOAT32, x.device(), x.shape());
        try {
            NativeLibrary.check(TorusNative.torus_relu_forward(Ops.device(x), 0L, x.dataAddress(), y.dataAddress(),
                    x.numel()), "ReLU forward");
        } catch (RuntimeException e) {
            y.close();
            throw e;
        }
        return y;
    }

    @Override
    public Tensor backward(Tensor x, Tensor dy, SegmentContext ctx) {
        Checks.float32("input", x);
        Checks.sameShape("ReLU", "gradOutput", dy, x);
        Tensor dx = Tensor.empty(ctx.allocator(), DType.FLOAT32, x.device(), x.shape());
        try {
            NativeLibrary.check(TorusNative.torus_relu_backward(Ops.device(x), 0L, x.dataAddress(), dy.dataAddress(),
                    dx.dataAddress(), x.numel()), "ReLU backward");
        } catch (RuntimeException e) {
            dx.close();
            throw e;
        }
        return dx;
    }

    @Override
    public String toString() {
        return "ReLU";
    }
}
