package dev.torus.cli.demo;

import dev.torus.Device;
import dev.torus.memory.Allocator;
import dev.torus.nn.BiasGelu;
import dev.torus.nn.Layer;
import dev.torus.nn.Linear;
import dev.torus.nn.Parameter;
import dev.torus.recompute.SegmentContext;
import dev.torus.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;

/**
 * The one-process reference's version of a tensor-parallel MLP block: each of the three layers holds the T
 * shards the T ranks hold, runs them one after the other in one thread and adds partial results in rank
 * order, as the rank-ordered all-reduce does. So it computes bit for bit what the T ranks compute together
 * (a plain unsplit GEMM sums in another order). Activations between the layers are whole ([rows, hidden]);
 * each shard works on its slice of the columns.
 */
final class OneProcessSplit {
    private OneProcessSplit() {}

    /** A layer made of per-rank shards; {@link #shard} is rank t's, with the parameters rank t holds. */
    abstract static class SplitLayer implements Layer {
        final List<Layer> shards;

        SplitLayer(List<Layer> shards) {
            this.shards = shards;
        }

        Layer shard(int t) {
            return shards.get(t);
        }

        /** Each shard's result, in rank order; {@link #concat} or {@link #sumInRankOrder} frees them. */
        List<Tensor> each(java.util.function.IntFunction<Tensor> pass) {
            List<Tensor> out = new ArrayList<>(shards.size());
            try {
                for (int t = 0; t < shards.size(); t++) {
                    out.add(pass.apply(t));
                }
                return out;
            } catch (RuntimeException e) {
                closeAll(out);
                throw e;
            }
        }

        @Override
        public List<Parameter> parameters() {
            List<Parameter> ps = new ArrayList<>();
            shards.forEach(s -> ps.addAll(s.parameters()));
            return ps;
        }

        @Override
        public void close() {
            shards.forEach(Layer::close);
        }
    }

    /** The three layers of block {@code full[i..i+2]} (Linear no bias, BiasGelu, Linear) cut into {@code t} shards. */
    static List<Layer> block(Layer first, Layer gelu, Layer second, int t, Allocator a, long seed) {
        Linear l1 = (Linear) first;
        Linear l2 = (Linear) second;
        int hidden = (int) l1.weight().value().shape()[0];
        int width = (int) l1.weight().value().shape()[1];
        int part = hidden / t;
        float[] w1 = l1.weight().value().toFloatArray();
        float[] b = ((BiasGelu) gelu).bias().value().toFloatArray();
        float[] w2 = l2.weight().value().toFloatArray();
        float[] b2 = l2.bias().value().toFloatArray();
        List<Layer> cols = new ArrayList<>();
        List<Layer> gelus = new ArrayList<>();
        List<Layer> rows = new ArrayList<>();
        for (int r = 0; r < t; r++) {
            Linear c = new Linear(width, part, false, Device.cpu(), a, seed);
            load(c.weight(), java.util.Arrays.copyOfRange(w1, r * part * width, (r + 1) * part * width), a);
            cols.add(c);
            BiasGelu g = new BiasGelu(part, Device.cpu(), a);
            load(g.bias(), java.util.Arrays.copyOfRange(b, r * part, (r + 1) * part), a);
            gelus.add(g);
            Linear w = new Linear(part, width, r == 0, Device.cpu(), a, seed);
            load(w.weight(), sliceColumns(w2, width, hidden, r * part, part), a);
            if (r == 0) {
                load(w.bias(), b2, a);
            }
            rows.add(w);
        }
        return List.of(new Column(cols, part), new Gelu(gelus, part), new Row(rows, part));
    }

    private static void load(Parameter p, float[] values, Allocator a) {
        try (Tensor t = Tensor.fromArray(a, values, p.value().shape())) {
            p.value().copyFrom(t);
        }
    }

    /** Columns [from, from + count) of a row-major [rows, cols] matrix. */
    static float[] sliceColumns(float[] m, int rows, int cols, int from, int count) {
        float[] out = new float[rows * count];
        for (int r = 0; r < rows; r++) {
            System.arraycopy(m, r * cols + from, out, r * count, count);
        }
        return out;
    }

    private static Tensor columns(Tensor x, int from, int count, Allocator a) {
        int rows = (int) x.shape()[0];
        int cols = (int) x.shape()[1];
        return Tensor.fromArray(a, sliceColumns(x.toFloatArray(), rows, cols, from, count), rows, count);
    }

    /** Puts the [rows, part] pieces side by side into a [rows, part·n] tensor, and frees the pieces. */
    private static Tensor concat(List<Tensor> parts, int part, Allocator a) {
        try {
            return concatKeep(parts, part, a);
        } finally {
            closeAll(parts);
        }
    }

    private static Tensor concatKeep(List<Tensor> parts, int part, Allocator a) {
        int rows = (int) parts.get(0).shape()[0];
        int cols = part * parts.size();
        float[] out = new float[rows * cols];
        for (int t = 0; t < parts.size(); t++) {
            float[] p = parts.get(t).toFloatArray();
            for (int r = 0; r < rows; r++) {
                System.arraycopy(p, r * part, out, r * cols + t * part, part);
            }
        }
        return Tensor.fromArray(a, out, rows, cols);
    }

    /** Adds the parts in rank order: ((p0 + p1) + p2) + ..., as the rank-ordered all-reduce does; frees them. */
    private static Tensor sumInRankOrder(List<Tensor> parts, Allocator a) {
        try {
            return sumKeep(parts, a);
        } finally {
            closeAll(parts);
        }
    }

    private static Tensor sumKeep(List<Tensor> parts, Allocator a) {
        float[] acc = parts.get(0).toFloatArray();
        for (int t = 1; t < parts.size(); t++) {
            float[] p = parts.get(t).toFloatArray();
            for (int i = 0; i < acc.length; i++) {
                acc[i] += p[i];
            }
        }
        return Tensor.fromArray(a, acc, parts.get(0).shape());
    }

    private static void closeAll(List<Tensor> ts) {
        ts.forEach(Tensor::close);
    }

    /** Column-parallel: every shard sees the whole input; outputs side by side; input gradients summed. */
    static final class Column extends SplitLayer {
        private final int part;

        Column(List<Layer> shards, int part) {
            super(shards);
            this.part = part;
        }

        @Override
        public Tensor forward(Tensor input, SegmentContext ctx) {
            return concat(each(t -> shards.get(t).forward(input, ctx)), part, ctx.allocator());
        }

        @Override
        public Tensor backward(Tensor input, Tensor gradOutput, SegmentContext ctx) {
            return sumInRankOrder(each(t -> {
                try (Tensor g = columns(gradOutput, t * part, part, ctx.allocator())) {
                    return shards.get(t).backward(input, g, ctx);
                }
            }), ctx.allocator());
        }
    }

    /** Elementwise per shard: each shard on its slice of the columns. */
    static final class Gelu extends SplitLayer {
        private final int part;

        Gelu(List<Layer> shards, int part) {
            super(shards);
            this.part = part;
        }

        @Override
        public Tensor forward(Tensor input, SegmentContext ctx) {
            return concat(each(t -> {
                try (Tensor x = columns(input, t * part, part, ctx.allocator())) {
                    return shards.get(t).forward(x, ctx);
                }
            }), part, ctx.allocator());
        }

        @Override
        public Tensor backward(Tensor input, Tensor gradOutput, SegmentContext ctx) {
            return concat(each(t -> {
                try (Tensor x = columns(input, t * part, part, ctx.allocator());
                     Tensor g = columns(gradOutput, t * part, part, ctx.allocator())) {
                    return shards.get(t).backward(x, g, ctx);
                }
            }), part, ctx.allocator());
        }
    }

    /** Row-parallel: each shard on its slice of the input columns; outputs summed in rank order (bias on shard 0). */
    static final class Row extends SplitLayer {
        private final int part;

        Row(List<Layer> shards, int part) {
            super(shards);
            this.part = part;
        }

        @Override
        public Tensor forward(Tensor input, SegmentContext ctx) {
            return sumInRankOrder(each(t -> {
                try (Tensor x = columns(input, t * part, part, ctx.allocator())) {
                    return shards.get(t).forward(x, ctx);
                }
            }), ctx.allocator());
        }

        @Override
        public Tensor backward(Tensor input, Tensor gradOutput, SegmentContext ctx) {
            return concat(each(t -> {
                try (Tensor x = columns(input, t * part, part, ctx.allocator())) {
                    return shards.get(t).backward(x, gradOutput, ctx);
                }
            }), part, ctx.allocator());
        }
    }
}
