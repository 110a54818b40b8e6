package dev.torus.parallel.tensor;

import dev.torus.nn.Layer;
import dev.torus.nn.Linear;
import dev.torus.nn.Parameter;
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
