package dev.torus.parallel.tensor;

import dev.torus.Device;
import dev.torus.memory.Allocator;
import dev.torus.nn.Linear;
import dev.torus.recompute.SegmentContext;
import dev.torus.tensor.Tensor;

/**
 * A linear layer whose output features are split over a tensor-parallel group (Megatron's column
 * parallelism): rank r holds rows [r·out/t, (r+1)·out/t) of the weight [out, in] and of the bias.
 * The input is the same on every rank; the output is this rank's slice of the features. Forward
 * needs no communication. Backward returns the input gradient summed over the group (Megatron's
 * "f": one all-reduce), so the layer before it sees the gradient of the whole layer. Owns its
 * shard's parameters.
 */
public final class ColumnParallelLinear extends ShardedLinear {
    /**
     * This rank's shard of {@code full} (which stays the caller's), in {@code allocator}.
     *
     * @throws IllegalArgumentException if the group's size does not divide the output features
     */
    public ColumnParallelLinear(Linear full, TensorParallel tp, Device device, Allocator allocator, long seed) {
        super(tp, shardOf(full, tp, device, allocator, seed), "column");
    }

    private static Linear shardOf(Linear full, TensorParallel tp, Device device, Allocator allocator, long seed) {
        checkArgs(full, tp, device, allocator);
        long[] w = full.weight().value().shape();
        int out = (int) w[0];
        int in = (int) w[1];
        int part = tp.shard("the output features", out);
        Linear shard = new Linear(in, part, full.bias() != null, device, allocator, seed);
        return loaded(shard, () -> TensorParallel.load(shard, TensorParallel.rows(full.weight().value().toFloatArray(), in,
                tp.rank() * part, part), full.bias() == null ? null : TensorParallel.rows(full.bias().value().toFloatArray(),
                1, tp.rank() * part, part), allocator));
    }

    @Override
    public Tensor forward(Tensor input, SegmentContext ctx) {
        return shard.forward(input, ctx);
    }

    @Override
    public Tensor backward(Tensor input, Tensor gradOutput, SegmentContext ctx) {
        return reduced(shard.backward(input, gradOutput, ctx));
    }

    /** The input gradient (all-reduced), leaving the weight gradient to {@link #backwardWeights} (zero bubble). */
    @Override
    public Tensor backwardInput(Tensor input, Tensor gradOutput, SegmentContext ctx) {
        return reduced(shard.backwardInput(input, gradOutput, ctx));
    }

    private Tensor reduced(Tensor dx) {
        try {
            tp.allReduce(key, dx, false);
        } catch (RuntimeException e) {
            dx.close();
            throw e;
        }
        return dx;
    }
}
