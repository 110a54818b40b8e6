package dev.torus.parallel.tensor;

import dev.torus.Device;
import dev.torus.memory.Allocator;
import dev.torus.nn.BiasGelu;
import dev.torus.nn.Layer;
import dev.torus.nn.Linear;
import dev.torus.tensor.Tensor;
import java.util.List;

/**
 * Megatron's tensor-parallel MLP block, from a one-process block Linear(in → hidden, no bias), bias + GELU,
 * Linear(hidden → out): the first linear split by columns, the bias + GELU on this rank's slice of the
 * hidden features, the second split by rows. One all-reduce in forward (after the second linear) and
 * one in backward (the input gradient of the first): {@link TensorParallel#forwardAllReduces()} and
 * {@link TensorParallel#backwardAllReduces()} count them. Its layers are ordinary {@link Layer}s, to
 * run in order (or in a checkpointed sequence); the block owns them.
 *
 * <p>With a hidden dropout probability above 0, a {@link TensorParallelDropout#perRank} follows the GELU, on
 * this rank's slice of the hidden features (inside the tensor-parallel region, so each rank draws its own
 * mask). Dropout after the block, on its replicated output, is the caller's: {@link TensorParallelDropout#shared}.
 */
public final class ParallelMlpBlock implements AutoCloseable {
    private final List<Layer> layers;

    /** The block without dropout: column-parallel linear, bias + GELU, row-parallel linear. */
    public ParallelMlpBlock(Linear first, BiasGelu gelu, Linear second, TensorParallel tp, Device device,
                            Allocator allocator, long seed) {
        this(first, gelu, second, 0f, tp, device, allocator, seed);
    }

    /**
     * The block with dropout of probability {@code hiddenDropout} on the hidden slice (none when 0).
     *
     * @throws IllegalArgumentException if {@code hiddenDropout} is not in [0, 1), a layer or {@code tp} is null,
     *                                  {@code first} has a bias, or the degree does not divide the features
     */
    public ParallelMlpBlock(Linear first, BiasGelu gelu, Linear second, float hiddenDropout, TensorParallel tp,
                            Device device, Allocator allocator, long seed) {
        if (!(hiddenDropout >= 0f && hiddenDropout < 1f)) {
            throw new IllegalArgumentException("hiddenDropout must be in [0, 1), got " + hiddenDropout);
        }
        for (Object[] a : new Object[][] {{"first", first}, {"gelu", gelu}, {"second", second}, {"tp", tp}}) {
            if (a[1] == null) {
                throw new IllegalArgumentException(a[0] + " must not be null");
            }
        }
        if (first.bias() != null) {
            throw new IllegalArgumentException("first must have no bias: the block's bias is the GELU's");
        }
        long hiddenFeatures = first.weight().value().shape()[0];
        if (gelu.bias().value().numel() != hiddenFeatures) {
            throw new IllegalArgumentException("gelu has " + gelu.bias().value().numel() + " features, but first gives "
                    + hiddenFeatures);
        }
        if (second.weight().value().shape()[1] != hiddenFeatures) {
            throw new IllegalArgumentException("second takes " + second.weight().value().shape()[1] + " input features, "
                    + "but first gives " + hiddenFeatures);
        }
        ColumnParallelLinear column = new ColumnParallelLinear(first, tp, device, allocator, seed);
        BiasGelu part = null;
        RowParallelLinear row = null;
        try {
            int hidden = (int) first.weight().value().shape()[0];
            int slice = tp.shard("the hidden features", hidden);
            part = new BiasGelu(slice, device, allocator);
            try (Tensor b = Tensor.fromArray(allocator, TensorParallel.rows(gelu.bias().value().toFloatArray(), 1,
                    tp.rank() * slice, slice), slice)) {
                part.bias().value().copyFrom(b);
            }
            row = new RowParallelLinear(second, tp, device, allocator, seed);
        } catch (RuntimeException e) {
            column.close();
            if (part != null) {
                part.close();
            }
            throw e;
        }
        this.layers = hiddenDropout > 0f
                ? List.of(column, part, TensorParallelDropout.perRank(hiddenDropout, tp), row)
                : List.of(column, part, row);
    }

    /**
     * Column-parallel linear, bias + GELU on this rank's slice, the per-rank dropout (only with a hidden
     * dropout above 0), row-parallel linear.
     */
    public List<Layer> layers() {
        return layers;
    }

    @Override
    public void close() {
        layers.forEach(Layer::close);
    }
}
