package dev.torus.serve;

import dev.torus.nn.Layer;
import dev.torus.recompute.SegmentContext;
import dev.torus.tensor.Tensor;

/**
 * An inference-only linear layer with int8 weights: {@code y = x W^T (+ b)} where {@code W} is stored as
 * int8 {@code [out, in]} with one fp32 scale per output row, run by {@link Int8Gemm} (the weights are
 * dequantized inside the GEMM and stay int8 in memory). Owns its three tensors and frees them in
 * {@link #close()}; {@link #backward} is refused.
 */
public final class Int8Linear implements Layer {
    private final Tensor q;
    private final Tensor scale;
    private final Tensor bias;

    /** Takes ownership of {@code q} (INT8 [out, in]), {@code scale} (FLOAT32 [out]) and {@code bias} (FLOAT32 [out] or null). */
    public Int8Linear(Tensor q, Tensor scale, Tensor bias) {
        if (q == null || scale == null) {
            throw new IllegalArgumentException("q and scale must not be null");
        }
        if (q.rank() != 2 || q.dtype() != dev.torus.DType.INT8) {
            throw new IllegalArgumentException("q must be an INT8 [out, in] tensor, got " + q);
        }
        this.q = q;
        this.scale = scale;
        this.bias = bias;
    }

    public long in() {
        return q.dim(1);
    }

    public long out() {
        return q.dim(0);
    }

    /** Bytes of the int8 weights and their fp32 scales (the bias not included). */
    public long weightBytes() {
        return q.byteSize() + scale.byteSize();
    }

    @Override
    public long[] outputShape(long[] inputShape) {
        return new long[] {inputShape[0], out()};
    }

    @Override
    public Tensor forward(Tensor x, SegmentContext ctx) {
        return Int8Gemm.multiply(x, q, scale, bias, ctx.allocator());
    }

    @Override
    public Tensor backward(Tensor x, Tensor gradOutput, SegmentContext ctx) {
        throw new UnsupportedOperationException("Int8Linear is inference-only: it has no backward");
    }

    @Override
    public void close() {
        q.close();
        scale.close();
        if (bias != null) {
            bias.close();
        }
    }
}
