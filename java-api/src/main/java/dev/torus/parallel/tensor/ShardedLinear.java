package dev.torus.parallel.tensor;

import dev.torus.nn.Layer;
import dev.torus.nn.Linear;
import dev.torus.nn.Parameter;
import dev.torus.recompute.SegmentContext;
import dev.torus.tensor.Tensor;
import java.util.List;

/** What the column- and row-parallel layers share: this rank's shard, a plain {@link Linear} it owns, and its group. */
abstract class ShardedLinear implements Layer {
    final TensorParallel tp;
    final Linear shard;
    final String key;

    ShardedLinear(TensorParallel tp, Linear shard, String kind) {
        this.tp = tp;
        this.shard = shard;
        this.key = tp.newKey(kind);
    }

    @Override
    public List<Parameter> parameters() {
        return shard.parameters();
    }

    /** The shard is a {@link Linear}: its weight gradient can wait for a W pass (ZB-H1). */
    @Override
    public boolean splitsBackward() {
        return shard.splitsBackward();
    }

    @Override
    public void backwardWeights(Tensor input, Tensor gradOutput, SegmentContext ctx) {
        shard.backwardWeights(input, gradOutput, ctx);
    }

    /** Refuses null arguments by name, before any shard is built. */
    static void checkArgs(Linear full, TensorParallel tp, dev.torus.Device device, dev.torus.memory.Allocator allocator) {
        if (full == null) {
            throw new IllegalArgumentException("full must not be null");
        }
        if (tp == null) {
            throw new IllegalArgumentException("tp must not be null");
        }
        if (device == null) {
            throw new IllegalArgumentException("device must not be null");
        }
        if (allocator == null) {
            throw new IllegalArgumentException("allocator must not be null");
        }
    }

    /** Loads {@code shard}, closing it if that fails. */
    static Linear loaded(Linear shard, Runnable load) {
        try {
            load.run();
            return shard;
        } catch (RuntimeException e) {
            shard.close();
            throw e;
        }
    }

    @Override
    public long[] outputShape(long[] inputShape) {
        return shard.outputShape(inputShape);
    }

    @Override
    public void close() {
        shard.close();
    }

    @Override
    public String toString() {
        return getClass().getSimpleName() + "(" + shard + ", rank " + tp.rank() + " of " + tp.size() + ")";
    }
}
