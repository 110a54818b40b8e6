package dev.torus.cli.demo;

import dev.torus.Device;
import dev.torus.elastic.ElasticSampler;
import dev.torus.elastic.ElasticState;
import dev.torus.memory.Allocator;
import dev.torus.nn.AdamW;
import dev.torus.nn.Mlp;
import dev.torus.nn.Parameter;
import dev.torus.nn.SoftmaxCrossEntropy;
import dev.torus.recompute.CheckpointPolicy;
import dev.torus.recompute.CheckpointedSequential;
import dev.torus.tensor.Tensor;
import java.util.Arrays;
import java.util.List;

/**
 * The elastic demo's model, data and step arithmetic, shared by its workers and by the
 * single-process replay, so that both compute every rank's gradient the same way.
 *
 * <p>A step takes the next {@code globalBatch} samples of {@link ElasticSampler}'s epoch order
 * (fewer at the end of an epoch). Rank r of W takes its shard (positions r, r+W, ...), in
 * micro-batches of at most {@code microBatch} rows when the shard is larger (gradient
 * accumulation), and scales each micro-batch's mean-loss gradient by {@code rows * W / n} (n the
 * step's batch). The average over ranks, in rank order, is then the gradient of the mean loss
 * over the step's batch, whatever W is. The loss rides along as one more element.
 *
 * <p>Owns its allocator, model and optimizer; close it.
 */
final class ElasticDemoModel implements AutoCloseable {
    final int globalBatch;
    final int microBatch;
    final int epochs;
    final DemoData train;
    final DemoData test;
    final Allocator root;
    final Mlp mlp;
    final CheckpointedSequential net;
    final AdamW optimizer;
    final ElasticSampler sampler;
    final ElasticState state;
    private final List<Parameter> params;
    private final int numel;

    ElasticDemoModel(int width, int blocks, int globalBatch, int microBatch, int epochs, float lr, long seed,
                     int trainRows, int testRows, CheckpointPolicy policy, String name) {
        if (microBatch < 1) {
            throw new IllegalArgumentException("--micro-batch must be >= 1, got " + microBatch);
        }
        this.globalBatch = globalBatch;
        this.microBatch = microBatch;
        this.epochs = epochs;
        this.train = DemoData.generate(seed, trainRows, 0);
        this.test = DemoData.generate(seed, testRows, 1);
        Allocator a = Allocator.root(name);
        Mlp m = null;
        CheckpointedSequential n = null;
        try {
            m = new Mlp(DemoData.FEATURES, width, blocks, DemoData.CLASSES, 0f, Device.cpu(), a, seed);
            n = new CheckpointedSequential(m.layers(), policy, a, seed);
            this.optimizer = new AdamW(m.parameters(), lr, a);
        } catch (RuntimeException e) {
            if (n != null) {
                n.close();
            }
            if (m != null) {
                m.close();
            }
            a.close();
            throw e;
        }
        this.root = a;
        this.mlp = m;
        this.net = n;
        this.params = m.parameters();
        this.sampler = new ElasticSampler(trainRows, seed, true);
        this.state = new ElasticState(params, optimizer, sampler);
        long total = 0;
        for (Parameter p : params) {
            total += p.numel();
        }
        this.numel = Math.toIntExact(total);
    }

    /** The model of the demo's options (what its workers and its replay both train). */
    static ElasticDemoModel of(DemoOptions o, int microBatch, String name) {
        return new ElasticDemoModel(o.width, o.blocks, o.batch, microBatch, o.epochs, o.lr, o.seed, o.trainRows,
                o.testRows, o.checkpointPolicy(), name);
    }

    /** Steps of the whole run: every epoch ends with a short step when the batch does not divide the data. */
    static long totalSteps(int trainRows, int globalBatch, int epochs) {
        return (long) epochs * ((trainRows + globalBatch - 1) / globalBatch);
    }

    long totalSteps() {
        return totalSteps(train.rows, globalBatch, epochs);
    }

    /**
     * Rank {@code rank} of {@code world}'s part of the next step: its scaled gradient, flattened over the
     * parameters in order, followed by its scaled share of the loss. Leaves the parameters' gradients set.
     */
    float[] localGradient(int rank, int world) {
        return localGradient(rank, world, globalBatch);
    }

    /** As above, for a step of global batch {@code batch} (adaptive batch sizing changes it). */
    float[] localGradient(int rank, int world, int batch) {
        optimizer.zeroGrad();
        int n = sampler.nextBatchSize(batch);
        int[] mine = sampler.shard(batch, rank, world);
        float loss = 0f;
        float[] xb = new float[microBatch * DemoData.FEATURES];
        int[] yb = new int[microBatch];
        for (int from = 0; from < mine.length; from += microBatch) {
            int rows = Math.min(microBatch, mine.length - from);
            train.gather(mine, from, rows, xb, yb, 0);
            float scale = (float) ((double) rows * world / n);
            try (Tensor x = Tensor.fromArray(root, Arrays.copyOf(xb, rows * DemoData.FEATURES), rows, DemoData.FEATURES);
                 Tensor y = Tensor.fromArray(root, Arrays.copyOf(yb, rows), rows);
                 Tensor out = net.forward(x);
                 SoftmaxCrossEntropy.Result l = SoftmaxCrossEntropy.lossAndGrad(out, y, root);
                 Tensor scaled = scaled(l.gradLogits(), scale);
                 Tensor dx = net.backward(scaled)) {
                loss += l.loss() * scale;
            }
        }
        float[] flat = new float[numel + 1];
        int at = 0;
        for (Parameter p : params) {
            float[] g = p.grad().toFloatArray();
            System.arraycopy(g, 0, flat, at, g.length);
            at += g.length;
        }
        flat[numel] = loss;
        return flat;
    }

    private Tensor scaled(Tensor g, float scale) {
        float[] v = g.toFloatArray();
        for (int i = 0; i < v.length; i++) {
            v[i] *= scale;
        }
        return Tensor.fromArray(root, v, g.shape());
    }

    /** Sets the parameters' gradients from {@code flat} (as {@link #localGradient} lays it out) and steps the optimizer; returns the loss element. */
    float applyAndStep(float[] flat) {
        return applyAndStep(flat, globalBatch);
    }

    /** As above, after a step of global batch {@code batch}. */
    float applyAndStep(float[] flat, int batch) {
        int at = 0;
        for (Parameter p : params) {
            int k = (int) p.numel();
            try (Tensor t = Tensor.fromArray(root, Arrays.copyOfRange(flat, at, at + k), p.value().shape())) {
                p.grad().copyFrom(t);
            }
            at += k;
        }
        optimizer.step();
        sampler.advance(batch);
        return flat[numel];
    }

    /**
     * What the exact all-reduce computes from every rank's part: the sum in rank order, divided by the
     * world size (the rank-ordered fp32 path of {@code CompressedAllReduce}, element by element).
     */
    static float[] rankOrderedAverage(float[][] parts) {
        float[] acc = parts[0].clone();
        for (int r = 1; r < parts.length; r++) {
            for (int i = 0; i < acc.length; i++) {
                acc[i] = acc[i] + parts[r][i];
            }
        }
        if (parts.length != 1) {
            float k = parts.length;
            for (int i = 0; i < acc.length; i++) {
                acc[i] = acc[i] / k;
            }
        }
        return acc;
    }

    /** Elements of the flattened gradient (the loss and any statistics follow them). */
    int numel() {
        return numel;
    }

    /** The parameters' values, flattened in order (for the bitwise comparison). */
    float[] parameterValues() {
        float[] flat = new float[numel];
        int at = 0;
        for (Parameter p : params) {
            float[] v = p.value().toFloatArray();
            System.arraycopy(v, 0, flat, at, v.length);
            at += v.length;
        }
        return flat;
    }

    /** {mean loss, accuracy} on the held-out set. */
    float[] evaluate() {
        return DemoTrainer.evaluate(net, root, Device.cpu(), test);
    }

    @Override
    public void close() {
        try {
            optimizer.close();
            net.close();
            mlp.close();
        } finally {
            root.close();
        }
    }
}
