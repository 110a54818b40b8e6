package dev.torus.cli.demo;

import dev.torus.NativeLibrary;
import dev.torus.memory.Allocator;
import dev.torus.nn.AdamW;
import dev.torus.nn.Layer;
import dev.torus.nn.Parameter;
import dev.torus.parallel.pipeline.PipelineStage;
import dev.torus.tensor.Tensor;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * The one-process reference of {@code ./torus demo --parallel}, as a process of its own with the workers'
 * thread settings. It trains the unsplit model on the same global batches: for each dp replica it
 * accumulates that replica's micro-batches in order, then averages the replicas in rank order as the exact
 * all-reduce does, and steps AdamW. With tp > 1 its MLP blocks are {@link OneProcessSplit} blocks: the same
 * GEMMs split the same way, run one after the other, partial sums added in rank order, so the comparison
 * can be bit for bit. Then it reads the parameters the workers wrote, compares each with the reference's
 * (the same shard), loads them into a second copy of the model and measures both copies' held-out
 * accuracy. It prints its findings as two {@code @reference} lines.
 */
public final class ParallelDemoReference implements Callable<Integer> {
    /** {@code @reference BITWISE MAX_REL_DIFF PARAMS ACCURACY REFERENCE_ACCURACY}. */
    static final String RESULT = "@reference";
    /** {@code @reference-losses L0,L1,...}: the loss of every step. */
    static final String LOSSES = "@reference-losses";
    /** {@code @reference-unsplit L}: the first step's loss of the plain (unsplit) model. */
    static final String UNSPLIT = "@reference-unsplit";

    @Mixin
    DemoOptions options = new DemoOptions();

    @Option(names = "--layout", required = true)
    String layout;

    @Option(names = "--micro-batches", required = true)
    int microBatches;

    @Option(names = "--out", required = true)
    Path out;

    public static void main(String[] args) {
        System.exit(new CommandLine(new ParallelDemoReference()).execute(args));
    }

    @Override
    public Integer call() throws Exception {
        NativeLibrary.setCpuThreads(1);
        ParallelLayout lay = ParallelLayout.parse(layout);
        DemoData train = DemoData.generate(options.seed, options.trainRows, 0);
        DemoData test = DemoData.generate(options.seed, options.testRows, 1);
        int batch = options.batch;
        int replicaRows = batch / lay.dp();
        int mbRows = replicaRows / microBatches;
        int stepsPerEpoch = options.trainRows / batch;
        int steps = options.epochs * stepsPerEpoch;
        StringBuilder losses = new StringBuilder();
        try (Allocator a = Allocator.root("parallel-reference")) {
            System.out.println(UNSPLIT + " " + String.format(Locale.ROOT, "%.9g", firstLossUnsplit(lay, train, a)));
            List<Layer> layers = model(lay.tp(), a);
            List<Layer> assembled = model(lay.tp(), a);
            try {
                List<Parameter> params = new ArrayList<>();
                layers.forEach(l -> params.addAll(l.parameters()));
                try (AdamW opt = new AdamW(params, options.lr, a)) {
                    float[] x = new float[mbRows * DemoData.FEATURES];
                    int[] y = new int[mbRows];
                    int[] order = null;
                    for (int step = 0; step < steps; step++) {
                        if (step % stepsPerEpoch == 0) {
                            order = ParallelDemoModel.order(options.seed, options.trainRows, step / stepsPerEpoch);
                        }
                        float[][] sum = null;
                        double loss = 0;
                        for (int d = 0; d < lay.dp(); d++) {
                            params.forEach(p -> p.grad().zero());
                            double replicaLoss = 0;
                            for (int mb = 0; mb < microBatches; mb++) {
                                int from = (step % stepsPerEpoch) * batch + d * replicaRows + mb * mbRows;
                                train.gather(order, from, mbRows, x, y, 0);
                                replicaLoss += microBatch(layers, x, y, mb, a);
                            }
                            loss += replicaLoss / microBatches;
                            if (sum == null) {
                                sum = new float[params.size()][];
                                for (int i = 0; i < params.size(); i++) {
                                    sum[i] = params.get(i).grad().toFloatArray();
                                }
                            } else {
                                for (int i = 0; i < params.size(); i++) {
                                    float[] g = params.get(i).grad().toFloatArray();
                                    for (int j = 0; j < g.length; j++) {
                                        sum[i][j] += g[j];
                                    }
                                }
                            }
                        }
                        for (int i = 0; i < params.size(); i++) {
                            if (lay.dp() > 1) {
                                float k = lay.dp();
                                for (int j = 0; j < sum[i].length; j++) {
                                    sum[i][j] /= k;
                                }
                            }
                            try (Tensor g = Tensor.fromArray(a, sum[i], params.get(i).grad().shape())) {
                                params.get(i).grad().copyFrom(g);
                            }
                        }
                        opt.step();
                        losses.append(step == 0 ? "" : ",").append(String.format(Locale.ROOT, "%.9g", loss / lay.dp()));
                    }
                }
                double[] diff = compare(layers, assembled, lay, a);
                double accRef = accuracy(layers, test, a);
                double accPar = accuracy(assembled, test, a);
                System.out.println(String.format(Locale.ROOT, "%s %b %.6g %d %.6f %.6f", RESULT, diff[2] == 0, diff[0],
                        (long) diff[1], accPar, accRef));
                System.out.println(LOSSES + " " + losses);
            } finally {
                layers.forEach(Layer::close);
                assembled.forEach(Layer::close);
            }
        }
        return 0;
    }

    /**
     * The first step's loss of the one-process model without any split (plain GEMMs), on the same micro-batches:
     * the check that the parallel run computes the model's loss, not only the split reference's.
     */
    private double firstLossUnsplit(ParallelLayout lay, DemoData train, Allocator a) {
        int replicaRows = options.batch / lay.dp();
        int mbRows = replicaRows / microBatches;
        int[] order = ParallelDemoModel.order(options.seed, options.trainRows, 0);
        float[] x = new float[mbRows * DemoData.FEATURES];
        int[] y = new int[mbRows];
        List<Layer> plain = ParallelDemoModel.full(options.width, options.blocks, options.seed, a);
        try {
            double loss = 0;
            for (int d = 0; d < lay.dp(); d++) {
                double replica = 0;
                for (int mb = 0; mb < microBatches; mb++) {
                    train.gather(order, d * replicaRows + mb * mbRows, mbRows, x, y, 0);
                    Tensor cur = Tensor.fromArray(a, x, mbRows, DemoData.FEATURES);
                    for (int i = 0; i < plain.size(); i++) {
                        Tensor next = plain.get(i).forward(cur, PipelineStage.context(a, options.seed, mb, i));
                        cur.close();
                        cur = next;
                    }
                    Tensor[] g = new Tensor[1];
                    replica += ParallelDemoModel.lossGradient(cur, y, microBatches, a, g);
                    g[0].close();
                    cur.close();
                }
                loss += replica / microBatches;
            }
            return loss / lay.dp();
        } finally {
            plain.forEach(Layer::close);
        }
    }

    /** One micro-batch forward and backward; gradients accumulate; returns its loss. */
    private float microBatch(List<Layer> layers, float[] x, int[] y, int mb, Allocator a) {
        List<Tensor> ins = new ArrayList<>();
        Tensor cur = Tensor.fromArray(a, x, y.length, DemoData.FEATURES);
        try {
            for (int i = 0; i < layers.size(); i++) {
                ins.add(cur);
                cur = layers.get(i).forward(cur, PipelineStage.context(a, options.seed, mb, i));
            }
            Tensor[] g = new Tensor[1];
            float loss = ParallelDemoModel.lossGradient(cur, y, microBatches, a, g);
            cur.close();
            cur = null;
            Tensor grad = g[0];
            for (int i = layers.size() - 1; i >= 0; i--) {
                Tensor gin = layers.get(i).backward(ins.get(i), grad, PipelineStage.context(a, options.seed, mb, i));
                grad.close();
                ins.get(i).close();
                ins.set(i, null);
                grad = gin;
            }
            grad.close();
            return loss;
        } finally {
            if (cur != null) {
                cur.close();
            }
            for (Tensor t : ins) {
                if (t != null && !t.isClosed()) {
                    t.close();
                }
            }
        }
    }

    /** The one-process model; with tp > 1 its blocks are {@link OneProcessSplit} blocks of tp shards. */
    private List<Layer> model(int tp, Allocator a) {
        List<Layer> full = ParallelDemoModel.full(options.width, options.blocks, options.seed, a);
        if (tp == 1) {
            return full;
        }
        List<Layer> out = new ArrayList<>(full);
        for (int b = 0; b < options.blocks; b++) {
            int i = 1 + 3 * b;
            List<Layer> split = OneProcessSplit.block(full.get(i), full.get(i + 1), full.get(i + 2), tp, a, options.seed + b);
            for (int k = 0; k < 3; k++) {
                full.get(i + k).close();
                out.set(i + k, split.get(k));
            }
        }
        return out;
    }

    /** Parameter {@code k} of segment {@code seg} as tp rank {@code t} holds it. */
    private static Parameter held(List<Layer> model, int seg, int k, int t) {
        Layer l = model.get(seg);
        return (l instanceof OneProcessSplit.SplitLayer split ? split.shard(t) : l).parameters().get(k);
    }

    /**
     * Compares every worker parameter with the reference's (the same shard of it) and copies it into
     * {@code assembled}; returns {max over parameters of max|a−b| / max|b| (the smallest positive double
     * where only the bits differ), parameters compared}.
     */
    private double[] compare(List<Layer> layers, List<Layer> assembled, ParallelLayout lay, Allocator a)
            throws IOException {
        double worst = 0;
        long count = 0;
        long differingBits = 0;
        java.util.Set<String> seen = new java.util.HashSet<>();
        for (int s = 0; s < lay.pp(); s++) {
            for (int t = 0; t < lay.tp(); t++) {
                Path f = ParallelDemoWorker.paramsFile(out, s, t);
                try (DataInputStream in = new DataInputStream(new java.io.BufferedInputStream(Files.newInputStream(f)))) {
                    for (int seg = in.readInt(); seg >= 0; seg = in.readInt()) {
                        int k = in.readInt();
                        int n = in.readInt();
                        float[] mine = new float[n];
                        for (int i = 0; i < n; i++) {
                            mine[i] = in.readFloat();
                        }
                        Parameter ref = held(layers, seg, k, t);
                        float[] want = ref.value().toFloatArray();
                        if (want.length != n) {
                            throw new IllegalStateException(f + ": parameter " + k + " of segment " + seg + " has " + n
                                    + " values, the reference's " + want.length);
                        }
                        double maxDiff = 0;
                        double maxRef = 0;
                        for (int i = 0; i < n; i++) {
                            maxDiff = Math.max(maxDiff, Math.abs((double) mine[i] - want[i]));
                            maxRef = Math.max(maxRef, Math.abs(want[i]));
                            if (Float.floatToRawIntBits(mine[i]) != Float.floatToRawIntBits(want[i])) {
                                differingBits++; // counted apart: -0 against 0, or NaN payloads, differ by 0
                            }
                        }
                        worst = Math.max(worst, maxRef == 0 ? maxDiff : maxDiff / maxRef);
                        count++;
                        Parameter target = held(assembled, seg, k, t);
                        try (Tensor w = Tensor.fromArray(a, mine, target.value().shape())) {
                            target.value().copyFrom(w);
                        }
                        if (!seen.add(seg + "/" + k + "/" + t)) {
                            throw new IllegalStateException(f + " holds parameter " + k + " of segment " + seg + " twice");
                        }
                    }
                } catch (EOFException e) {
                    throw new IllegalStateException(f + " is truncated", e);
                }
            }
        }
        // every tp rank holds every replicated parameter and its own shards
        int expected = 0;
        for (int t = 0; t < lay.tp(); t++) {
            for (Layer l : layers) {
                expected += (l instanceof OneProcessSplit.SplitLayer split ? split.shard(t) : l).parameters().size();
            }
        }
        if (seen.size() != expected) {
            throw new IllegalStateException("the workers wrote " + seen.size() + " of the " + expected
                    + " parameters the tp ranks hold");
        }
        return new double[] {worst, count, differingBits};
    }

    /** Held-out accuracy of a whole model. */
    private static double accuracy(List<Layer> layers, DemoData test, Allocator a) {
        int correct = 0;
        int rowsPer = 512;
        for (int from = 0; from < test.rows; from += rowsPer) {
            int n = Math.min(rowsPer, test.rows - from);
            float[] x = new float[n * DemoData.FEATURES];
            System.arraycopy(test.x, from * DemoData.FEATURES, x, 0, x.length);
            Tensor cur = Tensor.fromArray(a, x, n, DemoData.FEATURES);
            for (int i = 0; i < layers.size(); i++) {
                Tensor next = layers.get(i).forward(cur, PipelineStage.context(a, 0, 0, i));
                cur.close();
                cur = next;
            }
            float[] logits = cur.toFloatArray();
            cur.close();
            for (int r = 0; r < n; r++) {
                int best = 0;
                for (int c = 1; c < DemoData.CLASSES; c++) {
                    if (logits[r * DemoData.CLASSES + c] > logits[r * DemoData.CLASSES + best]) {
                        best = c;
                    }
                }
                correct += best == test.y[from + r] ? 1 : 0;
            }
        }
        return (double) correct / test.rows;
    }
}
