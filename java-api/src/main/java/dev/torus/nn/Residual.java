package dev.torus.nn;

import dev.torus.recompute.SegmentContext;
import dev.torus.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;

/**
 * A residual block: {@code y = x + f(x)}, where f runs the inner layers in order. One segment to the
 * checkpointing engines and the pipeline, so the skip never crosses a segment boundary.
 *
 * <p>Backward recomputes f's inner activations from {@code x} (the segment contract allows no state kept
 * between forward and backward), so a residual block always costs one extra forward of its inner layers,
 * whatever the checkpoint policy; in exchange it holds only its input between passes. Inner layer i runs
 * with the block's random key and its counters offset by i·2^36, on a forward and on the recompute alike,
 * so gradients are the same bits under every policy. The skip adds with {@code x + f(x)} in fp32, and the
 * input gradient is {@code g + f'(x)ᵀg}.
 *
 * <p>Owns its inner layers: {@link #close()} closes them.
 */
public final class Residual implements Layer {
    private static final int INNER_SHIFT = 36;
    private final List<Layer> inner;

    /** @param inner the layers of f, in order; each must keep the shape (the skip adds x to f(x)) */
    public Residual(List<? extends Layer> inner) {
        if (inner == null || inner.isEmpty()) {
            throw new IllegalArgumentException("inner must be a non-empty list of layers");
        }
        for (int i = 0; i < inner.size(); i++) {
            if (inner.get(i) == null) {
                throw new IllegalArgumentException("inner layer " + i + " must not be null");
            }
        }
        this.inner = List.copyOf(inner);
    }

    /** The inner layers (owned by this block). */
    public List<Layer> inner() {
        return inner;
    }

    private static SegmentContext innerContext(SegmentContext ctx, int i) {
        return SegmentContext.of(ctx.allocator(), ctx.seed(), ctx.rngOffset() + ((long) i << INNER_SHIFT));
    }

    @Override
    public Tensor forward(Tensor x, SegmentContext ctx) {
        Tensor h = x;
        try {
            for (int i = 0; i < inner.size(); i++) {
                Tensor next = inner.get(i).forward(h, innerContext(ctx, i));
                if (h != x) {
                    h.close();
                }
                h = next;
            }
            if (h == x) {
                throw new IllegalStateException("an inner layer of a residual block returned its input");
            }
            checkShape(x, h);
            Ops.axpy(1f, x, h, "residual add");
            return h;
        } catch (RuntimeException e) {
            if (h != x && !h.isClosed()) {
                h.close();
            }
            throw e;
        }
    }

    @Override
    public Tensor backward(Tensor x, Tensor gradOutput, SegmentContext ctx) {
        // recompute the inner inputs from x, then the inner backward
        List<Tensor> inputs = new ArrayList<>(inner.size());
        Tensor g = null;
        try {
            Tensor h = x;
            for (int i = 0; i < inner.size(); i++) {
                inputs.add(h);
                if (i + 1 < inner.size()) {
                    h = inner.get(i).forward(h, innerContext(ctx, i));
                }
            }
            g = gradOutput;
            for (int i = inner.size() - 1; i >= 0; i--) {
                Tensor gin = inner.get(i).backward(inputs.get(i), g, innerContext(ctx, i));
                if (g != gradOutput) {
                    g.close();
                }
                g = gin;
            }
            checkShape(gradOutput, g);
            Ops.axpy(1f, gradOutput, g, "residual backward");
            Tensor out = g;
            g = null;
            return out;
        } finally {
            for (int i = 1; i < inputs.size(); i++) {
                inputs.get(i).close();
            }
            if (g != null && g != gradOutput && !g.isClosed()) {
                g.close();
            }
        }
    }

    private static void checkShape(Tensor want, Tensor got) {
        if (!java.util.Arrays.equals(want.shape(), got.shape())) {
            throw new IllegalArgumentException("a residual block's inner layers must keep the shape: input "
                    + java.util.Arrays.toString(want.shape()) + ", inner output " + java.util.Arrays.toString(got.shape()));
        }
    }

    @Override
    public List<Parameter> parameters() {
        List<Parameter> ps = new ArrayList<>();
        inner.forEach(l -> ps.addAll(l.parameters()));
        return ps;
    }

    /** Switches dropout among the inner layers on or off. */
    public void setTraining(boolean training) {
        for (Layer l : inner) {
            if (l instanceof Dropout d) {
                d.setEnabled(training);
            }
        }
    }

    @Override
    public void close() {
        inner.forEach(Layer::close);
    }

    @Override
    public String toString() {
        return "Residual(" + inner + ")";
    }
}
