package dev.torus.parallel.tensor;

import dev.torus.Device;
import dev.torus.memory.Allocator;
import dev.torus.nn.BiasGelu;
import dev.torus.nn.Layer;
import dev.torus.nn.Linear;
import dev.torus.tensor.Tensor;
import java.util.List;

/** Rank r's shard of a block as plain layers (no communication), cut exactly as the parallel layers cut it. */
final class OneProcessShards {
    private OneProcessShards() {}

    static List<Layer> of(Linear first, BiasGelu gelu, Linear second, int tp, int r, Allocator a) {
        int hidden = (int) first.weight().value().shape()[0];
        int in = (int) first.weight().value().shape()[1];
        int out = (int) second.weight().value().shape()[0];
        int slice = hidden / tp;
        Linear col = new Linear(in, slice, false, Device.cpu(), a, 0);
        TensorParallel.load(col, TensorParallel.rows(first.weight().value().toFloatArray(), in, r * slice, slice), null, a);
        BiasGelu g = new BiasGelu(slice, Device.cpu(), a);
        try (Tensor b = Tensor.fromArray(a, TensorParallel.rows(gelu.bias().value().toFloatArray(), 1, r * slice, slice),
                slice)) {
            g.bias().value().copyFrom(b);
        }
        Linear row = new Linear(slice, out, r == 0, Device.cpu(), a, 0);
        TensorParallel.load(row, TensorParallel.columns(second.weight().value().toFloatArray(), out, hidden, r * slice,
                slice), r == 0 ? second.bias().value().toFloatArray() : null, a);
        return List.of(col, g, row);
    }
}
