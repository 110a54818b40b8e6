package dev.torus.cli.bench;

import dev.torus.Device;
import dev.torus.tensor.Tensor;
import dev.torus.memory.Allocator;
import dev.torus.nn.Mlp;
import dev.torus.nn.Parameter;
import dev.torus.nn.Sgd;
import dev.torus.nn.SoftmaxCrossEntropy;
import dev.torus.recompute.CheckpointPolicy;
import dev.torus.recompute.CheckpointStorage;
import dev.torus.recompute.CheckpointedSequential;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * Training-step time and peak activation memory of the block MLP under each
 * checkpoint policy and storage, as ratios to the no-checkpoint run measured in
 * the same process. Every configuration first runs one step from the same weights
 * and batch, and its gradients are compared with the no-checkpoint run: FLOAT32
 * configurations must match bit for bit (counted in {@code #wrong}); compressed
 * ones report their relative gradient error. Timed steps then interleave the
 * configurations round by round; each reports its best round's mean step time.
 */
public final class RecomputeBench {
    /** One configuration: a policy (the budget policy is sized from the none peak) and a storage. */
    public record Config(String policy, CheckpointStorage storage) {}

    private final PrintStream out;
    private final int blocks;
    private final int width;
    private final int batch;
    private final int classes;
    private final float dropout;
    private final int steps;
    private final int rounds;
    private boolean residual;

    /** Residual blocks (x + block(x)) instead of plain ones. */
    public RecomputeBench residual(boolean residual) {
        this.residual = residual;
        return this;
    }

    public RecomputeBench(PrintStream out, int blocks, int width, int batch, float dropout, int steps, int rounds) {
        this.out = out;
        this.blocks = blocks;
        this.width = width;
        this.batch = batch;
        this.classes = 16;
        this.dropout = dropout;
        this.steps = steps;
        this.rounds = rounds;
    }

    public static List<Config> defaultConfigs() {
        return List.of(new Config("none", CheckpointStorage.fp32()), new Config("every-2", CheckpointStorage.fp32()),
                new Config("sqrt(n)", CheckpointStorage.fp32()), new Config("selective", CheckpointStorage.fp32()),
                new Config("budget(50%)", CheckpointStorage.fp32()), new Config("sqrt(n)", CheckpointStorage.fp16()),
                new Config("sqrt(n)", CheckpointStorage.bf16()), new Config("sqrt(n)", CheckpointStorage.int8Blockwise(256)));
    }

    /** The policy named on the command line; {@code budget(P%)} is P% of {@code nonePeak}. */
    public static CheckpointPolicy policy(String name, long nonePeak) {
        return switch (name) {
            case "none" -> CheckpointPolicy.none();
            case "sqrt(n)" -> CheckpointPolicy.sqrtN();
            case "selective" -> CheckpointPolicy.selective();
            default -> {
                if (name.startsWith("every-")) {
                    yield CheckpointPolicy.everyK(Integer.parseInt(name.substring(6)));
                }
                if (name.startsWith("budget(") && name.endsWith("%)")) {
                    double f = Double.parseDouble(name.substring(7, name.length() - 2)) / 100.0;
                    yield CheckpointPolicy.budget(Math.max(1, (long) (nonePeak * f)));
                }
                throw new IllegalArgumentException("--policy: expected none, every-K, sqrt(n), selective or budget(P%), got '"
                        + name + "'");
            }
        };
    }

    /** Runs every configuration on {@code device}; returns the rows (also printed and written as JSON). */
    public List<BenchRow> run(Device device, List<Config> configs, Path json) throws IOException {
        String[] cols = {"device", "policy", "storage", "step_ms", "time_ratio", "peak_act_MiB", "memory_ratio",
                "ckpt_MiB", "recomputed", "grad_err", "#wrong"};
        int[] widths = {8, 13, 14, 10, 11, 13, 13, 10, 11, 10, 7};
        List<BenchRow> rows = new ArrayList<>();
        try (Allocator root = Allocator.root("recompute-bench");
             Mlp mlp = new Mlp(width, width, blocks, classes, dropout, residual, device, root, 1);
             Sgd opt = new Sgd(mlp.parameters(), 1e-3f, 0.9f, root);
             BenchReport report = new BenchReport(out, json, cols, widths)) {
            report.header(String.format("# recompute: %d-block %sMLP (%d layers), width %d, batch %d, dropout %.2f, %s; "
                            + "step = forward + softmax-CE + backward + SGD; ratios against 'none' in this run",
                    blocks, residual ? "residual " : "", mlp.layers().size(), width, batch, dropout, device));
            Random r = new Random(7);
            float[] x = new float[batch * width];
            int[] y = new int[batch];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) r.nextGaussian();
            }
            for (int i = 0; i < batch; i++) {
                y[i] = r.nextInt(classes);
            }
            try (Tensor hx = Tensor.fromArray(root, x, batch, width); Tensor tx = hx.to(device);
                 Tensor hy = Tensor.fromArray(root, y, batch); Tensor ty = hy.to(device)) {
                // reference gradients and peak: the none policy, one step without an update
                List<CheckpointedSequential> nets = new ArrayList<>();
                try {
                    float[] ref;
                    long nonePeak;
                    try (CheckpointedSequential none = new CheckpointedSequential(mlp.layers(), CheckpointPolicy.none(),
                            CheckpointStorage.fp32(), root, 3)) {
                        ref = gradients(none, mlp, tx, ty, root);
                        nonePeak = none.peakActivationBytes();
                    }
                    long[] peaks = new long[configs.size()];
                    long[] ckpt = new long[configs.size()];
                    double[] err = new double[configs.size()];
                    int[] wrong = new int[configs.size()];
                    for (int c = 0; c < configs.size(); c++) {
                        Config cfg = configs.get(c);
                        CheckpointedSequential net = new CheckpointedSequential(mlp.layers(),
                                policy(cfg.policy(), nonePeak), cfg.storage(), root, 3);
                        nets.add(net);
                        float[] g = gradients(net, mlp, tx, ty, root);
                        peaks[c] = net.peakActivationBytes();
                        ckpt[c] = net.checkpointBytes();
                        err[c] = relError(ref, g);
                        wrong[c] = cfg.storage().isExact() ? countDifferent(ref, g) : 0;
                    }
                    // timed rounds, configurations interleaved
                    double[] best = new double[configs.size()];
                    java.util.Arrays.fill(best, Double.POSITIVE_INFINITY);
                    for (int round = 0; round < rounds; round++) {
                        for (int c = 0; c < configs.size(); c++) {
                            step(nets.get(c), mlp, opt, tx, ty, root);   // warm-up
                            long t0 = System.nanoTime();
                            for (int s = 0; s < steps; s++) {
                                step(nets.get(c), mlp, opt, tx, ty, root);
                            }
                            best[c] = Math.min(best[c], (System.nanoTime() - t0) / 1e6 / steps);
                        }
                    }
                    int noneIdx = -1;
                    for (int c = 0; c < configs.size(); c++) {
                        if (configs.get(c).policy().equals("none") && configs.get(c).storage().isExact()) {
                            noneIdx = c;
                        }
                    }
                    double baseTime = noneIdx >= 0 ? best[noneIdx] : Double.NaN;
                    long basePeak = noneIdx >= 0 ? peaks[noneIdx] : nonePeak;
                    for (int c = 0; c < configs.size(); c++) {
                        Config cfg = configs.get(c);
                        int kept = nets.get(c).checkpointIndices().length;
                        BenchRow row = new BenchRow().put("device", device.toString()).put("policy", cfg.policy())
                                .put("storage", cfg.storage().toString()).put("step_ms", best[c])
                                .put("time_ratio", best[c] / baseTime)
                                .put("peak_activation_bytes", peaks[c])
                                .put("peak_act_MiB", peaks[c] / 1048576.0)
                                .put("memory_ratio", peaks[c] / (double) basePeak)
                                .put("checkpoint_bytes", ckpt[c]).put("ckpt_MiB", ckpt[c] / 1048576.0)
                                .put("recomputed", mlp.layers().size() - kept)
                                .put("grad_err", err[c]).put("#wrong", wrong[c])
                                .put("blocks", blocks).put("width", width).put("batch", batch);
                        report.add(row);
                        rows.add(row);
                    }
                } finally {
                    for (CheckpointedSequential n : nets) {
                        n.close();
                    }
                }
            }
        }
        return rows;
    }

    /** One step without an update; returns all parameter gradients, flattened. */
    private float[] gradients(CheckpointedSequential net, Mlp mlp, Tensor x, Tensor y, Allocator a) {
        for (Parameter p : mlp.parameters()) {
            p.zeroGrad();
        }
        net.resetPeaks();
        try (Tensor out = net.forward(x); SoftmaxCrossEntropy.Result l = SoftmaxCrossEntropy.lossAndGrad(out, y, a);
             Tensor dx = net.backward(l.gradLogits())) {
            List<float[]> parts = new ArrayList<>();
            int n = 0;
            for (Parameter p : mlp.parameters()) {
                float[] g = p.grad().toFloatArray();
                parts.add(g);
                n += g.length;
            }
            float[] all = new float[n];
            int off = 0;
            for (float[] g : parts) {
                System.arraycopy(g, 0, all, off, g.length);
                off += g.length;
            }
            return all;
        }
    }

    private static void step(CheckpointedSequential net, Mlp mlp, Sgd opt, Tensor x, Tensor y, Allocator a) {
        opt.zeroGrad();
        try (Tensor out = net.forward(x); SoftmaxCrossEntropy.Result l = SoftmaxCrossEntropy.lossAndGrad(out, y, a);
             Tensor dx = net.backward(l.gradLogits())) {
            if (!Float.isFinite(l.loss())) {
                throw new IllegalStateException("loss is not finite: " + l.loss());
            }
        }
        opt.step();
    }

    static double relError(float[] ref, float[] got) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < ref.length; i++) {
            double d = ref[i] - (double) got[i];
            num += d * d;
            den += ref[i] * (double) ref[i];
        }
        return den == 0 ? 0 : Math.sqrt(num / den);
    }

    static int countDifferent(float[] a, float[] b) {
        int n = 0;
        for (int i = 0; i < a.length; i++) {
            if (Float.floatToRawIntBits(a[i]) != Float.floatToRawIntBits(b[i])) {
                n++;
            }
        }
        return n;
    }
}
