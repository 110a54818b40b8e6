package dev.torus.nn;

import dev.torus.tensor.Tensor;
import dev.torus.recompute.SegmentContext;

/**
 * Inverted dropout with a counter-based mask: element i is kept when
 * Philox(seed, offset + i) >= p, where seed and offset come from the
 * {@link SegmentContext} (so a recompute draws the same mask). Backward applies
 * the same mask to the gradient, regenerated rather than stored. While disabled
 * ({@link #setEnabled}, for evaluation) it is the identity. Cheap to recompute.
 */
public final class Dropout implements Layer {
    private final float p;
    private boolean enabled = true;

    public Dropout(float p) {
        if (!(p >= 0f && p < 1f)) {
            throw new IllegalArgumentException("p must be in [0, 1), got " + p);
        }
        this.p = p;
    }

    public float p() {
        return p;
    }

    /** Turns dropout on (training, the default) or off (evaluation: identity). */
    public void setEnabled(boolean enabled) {
        this.enabled = enabled;
    }

    @Override
    public boolean cheapToRecompute() {
        return true;
    }

    @Override
    public Tensor forward(Tensor x, SegmentContext ctx) {
        return apply("input", x, ctx);
    }

    @Override
    public Tensor backward(Tensor x, Tensor dy, SegmentContext ctx) {
        Checks.float32("input", x);
        Checks.sameShape("Dropout", "gradOutput", dy, x);
        return apply("gradOutput", dy, ctx);
    }

    private Tensor apply(String name, Tensor x, SegmentContext ctx) {
        Checks.float32(name, x);
        return Ops.filled(ctx.allocator(), x.device(), x.shape(),
                y -> RecomputeKernels.dropout(x, y, enabled ? p : 0f, ctx.seed(), ctx.rngOffset()));
    }

    @Override
    public String toString() {
        return "Dropout(" + p + ")";
    }
}
