package dev.torus.parallel.tensor;

import dev.torus.Device;
import dev.torus.memory.Allocator;
import dev.torus.nn.Linear;
import dev.torus.recompute.SegmentContext;
import dev.torus.tensor.Tensor;

/**
 * A linear layer whose input features are split over a tensor-parallel group (Megatron's row
 * parallelism): rank r holds columns [r·in/t, (r+1)·in/t) of the weight [out, in] and takes that
 * slice of the input (what a {@link ColumnParallelLinear} before it produces). Forward sums the
 * partial outputs over the group (Megatron's "g": one all-reduce); the bias is added once, by rank
 * 0 before the sum, and only rank 0 holds it. Backward needs no communication: the output gradient
 * is the same on every rank. Owns its shard's parameters.
 */
public final class RowParallelLinear extends ShardedLinear {
    /**
     * This rank's shard of {@code full} (which stays the caller's), in {@code allocator}.
     *
     * @throws IllegalArgumentException if the group's size does not divide the input features
     */
    public RowParallelLinear(Linear full, TensorParallel tp, Device device, Allocator allocator, long seed) {
        super(tp, shardOf(full, tp, device, allocator, seed), "row");
    }

    private static Linear shardOf(Linear full, TensorParallel tp, Device device, Allocator allocator, long seed) {
        checkArgs(full, tp, device, allocator);
        long[] w = full.weight().value().shape();
        int out = (int) w[0];
        int in = (int) w[1];
        int part = tp.shard("the input features", in);
        boolean bias = full.bias() != null && tp.rank() == 0;
        Linear shard = new Linear(part, out, bias, device, allocator, seed);
        return loaded(shard, () -> TensorParallel.load(shard, TensorParallel.columns(full.weight().value().toFloatArray(),
                out, in, tp.rank() * part, part), bias ? full.bias().value().toFloatArray() : null, allocator));
    }

    @Override
    public Tensor forward(Tensor input, SegmentContext ctx) {
        Tensor y = shard.forward(input, ctx);
        try {
            tp.allReduce(key, y, true);
        } catch (RuntimeException e) {
            y.close();
            throw e;
        }
        return y;
    }

    @Override
    public Tensor backward(Tensor input, Tensor gradOutput, SegmentContext ctx) {
        return shard.backward(input, gradOutput, ctx);
    }

    /** The input gradient (no communication), leaving the weight gradient to {@link #backwardWeights}. */
    @Override
    public Tensor backwardInput(Tensor input, Tensor gradOutput, SegmentContext ctx) {
        return shard.backwardInput(input, gradOutput, ctx);
    }
}
