package dev.torus.cli.demo;

import dev.torus.Device;
import dev.torus.memory.Allocator;
import dev.torus.nn.BiasGelu;
import dev.torus.nn.Layer;
import dev.torus.nn.Linear;
import dev.torus.nn.SoftmaxCrossEntropy;
import dev.torus.parallel.tensor.ParallelMlpBlock;
import dev.torus.parallel.tensor.TensorParallel;
import dev.torus.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The model and data of {@code ./torus demo --parallel}, shared by the workers and the one-process
 * reference so both compute the same thing. The model is a stack of Megatron MLP blocks between an input
 * projection and a classifier: Linear(features → width), then per block Linear(width → 2·width, no bias),
 * bias + GELU, Linear(2·width → width); then Linear(width → classes). The blocks are what tensor
 * parallelism splits (column, slice, row); the first and last layers are replicated on every tp rank.
 * Segment i of the model is layer i of that list, whatever the split.
 */
final class ParallelDemoModel {
    static final int HIDDEN_FACTOR = 2;

    private ParallelDemoModel() {}

    static int segments(int blocks) {
        return 2 + 3 * blocks;
    }

    /** The one-process layers (the caller owns and closes them). */
    static List<Layer> full(int width, int blocks, long seed, Allocator a) {
        Device cpu = Device.cpu();
        List<Layer> ls = new ArrayList<>();
        try {
            ls.add(new Linear(DemoData.FEATURES, width, true, cpu, a, seed * 1_000_003L));
            for (int b = 0; b < blocks; b++) {
                long s = seed * 1_000_003L + 1 + 2L * b;
                ls.add(new Linear(width, (long) HIDDEN_FACTOR * width, false, cpu, a, s));
                ls.add(new BiasGelu(HIDDEN_FACTOR * width, cpu, a));
                ls.add(new Linear((long) HIDDEN_FACTOR * width, width, true, cpu, a, s + 1));
            }
            ls.add(new Linear(width, DemoData.CLASSES, true, cpu, a, seed * 1_000_003L + 1 + 2L * blocks));
        } catch (RuntimeException e) {
            ls.forEach(Layer::close);
            throw e;
        }
        return ls;
    }

    /**
     * This tp rank's layers: the one-process layers with every block cut by {@link ParallelMlpBlock} (the
     * full ones are freed); with {@code tp} null the one-process layers.
     */
    static List<Layer> build(int width, int blocks, long seed, TensorParallel tp, Allocator a) {
        List<Layer> full = full(width, blocks, seed, a);
        if (tp == null || tp.size() == 1) {
            return full;
        }
        List<Layer> out = new ArrayList<>();
        try {
            out.add(full.get(0));
            for (int b = 0; b < blocks; b++) {
                int i = 1 + 3 * b;
                ParallelMlpBlock block = new ParallelMlpBlock((Linear) full.get(i), (BiasGelu) full.get(i + 1),
                        (Linear) full.get(i + 2), tp, Device.cpu(), a, seed + b);
                out.addAll(block.layers());
                for (int k = i; k < i + 3; k++) {
                    full.get(k).close();
                }
            }
            out.add(full.get(full.size() - 1));
        } catch (RuntimeException e) {
            // each layer once: out holds some of full's layers (the replicated ones) and the shards
            java.util.Set<Layer> closed = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
            for (List<Layer> ls : List.of(out, full)) {
                for (Layer l : ls) {
                    if (closed.add(l)) {
                        try {
                            l.close();
                        } catch (RuntimeException ignored) {
                            // a block's layers were closed after it was cut
                        }
                    }
                }
            }
            throw e;
        }
        return out;
    }

    /** The order of the training rows in {@code epoch}: a shuffle keyed by the seed. */
    static int[] order(long seed, int rows, int epoch) {
        int[] idx = new int[rows];
        for (int i = 0; i < rows; i++) {
            idx[i] = i;
        }
        SplittableRandom r = new SplittableRandom(seed * 7919 + epoch);
        for (int i = rows - 1; i > 0; i--) {
            int j = r.nextInt(i + 1);
            int t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
        return idx;
    }

    /**
     * The loss of a micro-batch and its gradient, scaled by 1/m so that m micro-batches accumulate the
     * gradient of the replica's mean loss. The caller owns the gradient.
     */
    static float lossGradient(Tensor logits, int[] labels, int microBatches, Allocator a, Tensor[] gradient) {
        try (Tensor y = Tensor.fromArray(a, labels, labels.length);
             SoftmaxCrossEntropy.Result r = SoftmaxCrossEntropy.lossAndGrad(logits, y, a)) {
            float[] g = r.gradLogits().toFloatArray();
            float scale = 1f / microBatches;
            for (int i = 0; i < g.length; i++) {
                g[i] *= scale;
            }
            gradient[0] = Tensor.fromArray(a, g, r.gradLogits().shape());
            return r.loss();
        }
    }
}
