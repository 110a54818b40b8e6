package dev.torus.cli.demo;

import dev.torus.Device;
import dev.torus.tensor.Tensor;
import dev.torus.comm.Communicator;
import dev.torus.comm.ReduceOp;
import dev.torus.memory.Allocator;
import dev.torus.nn.AdamW;
import dev.torus.nn.Mlp;
import dev.torus.nn.SoftmaxCrossEntropy;
import dev.torus.parallel.CommHook;
import dev.torus.parallel.DataParallel;
import dev.torus.parallel.DistributedSampler;
import dev.torus.recompute.CheckpointPolicy;
import dev.torus.recompute.CheckpointedSequential;

/**
 * Trains the demo classifier, either as one rank of a data-parallel job or as the
 * single-process reference. Both see the same samples in the same steps: the global
 * batch of step s is the concatenation, in rank order, of every rank's s-th local
 * batch from a {@link DistributedSampler} over {@code shards} ranks.
 */
public final class DemoTrainer {
    /** What to train; {@code shards} is the data-parallel world size the batches are cut for. */
    public record Config(int width, int blocks, int globalBatch, int epochs, float lr, long seed, int trainRows,
                         int testRows, int shards, CommHook hook, CheckpointPolicy policy, Device device) {
        public Config {
            if (globalBatch % shards != 0) {
                throw new IllegalArgumentException("--batch (" + globalBatch + ") must be a multiple of the number of "
                        + "workers (" + shards + ")");
            }
        }

        int localBatch() {
            return globalBatch / shards;
        }

        int stepsPerEpoch() {
            return (trainRows + shards - 1) / shards / localBatch();
        }
    }

    /** Figures of one run (for a data-parallel run: as seen by rank 0, losses averaged over ranks). */
    public record Result(float[] stepLoss, float trainLoss, float testLoss, float testAccuracy, double samplesPerSecond,
                         double trainSeconds, long bytesSent, long fp32Bytes, long peakMemoryBytes,
                         long peakActivationBytes, long peakCheckpointBytes, double overlap) {}

    /** Called after every step on the reporting process. */
    public interface Progress {
        void step(int step, int total, float loss, double samplesPerSecond);
    }

    private DemoTrainer() {}

    /** Trains; {@code comm} null means the single-process reference over the combined batches. */
    public static Result train(Config cfg, Communicator comm, Progress progress) {
        return train(cfg, comm, progress, null);
    }

    /** As above; a non-null {@code modelOut} receives the trained parameters (safetensors, torus-mlp). */
    public static Result train(Config cfg, Communicator comm, Progress progress, java.nio.file.Path modelOut) {
        DemoData train = DemoData.generate(cfg.seed(), cfg.trainRows(), 0);
        DemoData test = DemoData.generate(cfg.seed(), cfg.testRows(), 1);
        int rank = comm == null ? 0 : comm.rank();
        int[] myShards = comm == null ? range(cfg.shards()) : new int[] {rank};
        int rows = cfg.localBatch() * myShards.length;
        int total = cfg.stepsPerEpoch() * cfg.epochs();
        float[] stepLoss = new float[total];
        try (Allocator root = Allocator.root("demo-rank" + rank);
             Mlp mlp = new Mlp(DemoData.FEATURES, cfg.width(), cfg.blocks(), DemoData.CLASSES, 0f, cfg.device(), root,
                     cfg.seed());
             CheckpointedSequential net = new CheckpointedSequential(mlp.layers(), cfg.policy(), root, cfg.seed());
             AdamW opt = new AdamW(mlp.parameters(), cfg.lr(), root);
             DataParallel dp = comm == null ? null : DataParallel.builder(comm, mlp.parameters()).hook(cfg.hook())
                     .consistencyCheckEvery(50).build()) {
            if (dp != null) {
                dp.attach(net, mlp.layers());
            }
            DistributedSampler[] samplers = new DistributedSampler[myShards.length];
            for (int k = 0; k < myShards.length; k++) {
                samplers[k] = new DistributedSampler(cfg.trainRows(), myShards[k], cfg.shards(), cfg.seed());
            }
            float[] xb = new float[rows * DemoData.FEATURES];
            int[] yb = new int[rows];
            long t0 = System.nanoTime();
            int step = 0;
            for (int epoch = 0; epoch < cfg.epochs(); epoch++) {
                int[][] order = new int[myShards.length][];
                for (int k = 0; k < myShards.length; k++) {
                    samplers[k].setEpoch(epoch);
                    order[k] = samplers[k].indices();
                }
                for (int s = 0; s < cfg.stepsPerEpoch(); s++, step++) {
                    for (int k = 0; k < myShards.length; k++) {
                        train.gather(order[k], s * cfg.localBatch(), cfg.localBatch(), xb, yb, k * cfg.localBatch());
                    }
                    if (dp != null) {
                        dp.zeroGrad();
                    } else {
                        opt.zeroGrad();
                    }
                    float loss;
                    try (Tensor xh = Tensor.fromArray(root, xb, rows, DemoData.FEATURES);
                         Tensor yh = Tensor.fromArray(root, yb, rows);
                         Tensor x = onDevice(xh, cfg.device());
                         Tensor y = onDevice(yh, cfg.device());
                         Tensor out = net.forward(x != null ? x : xh);
                         SoftmaxCrossEntropy.Result l = SoftmaxCrossEntropy.lossAndGrad(out, y != null ? y : yh, root);
                         Tensor dx = net.backward(l.gradLogits())) {
                        loss = l.loss();
                    }
                    if (dp != null) {
                        dp.awaitGradients();
                        loss = averageOverRanks(comm, root, cfg.device(), loss);
                    }
                    opt.step();
                    stepLoss[step] = loss;
                    if (progress != null) {
                        double secs = (System.nanoTime() - t0) / 1e9;
                        progress.step(step + 1, total, loss, (step + 1) * (double) cfg.globalBatch() / secs);
                    }
                }
            }
            double trainSeconds = (System.nanoTime() - t0) / 1e9;
            long peakMemory = root.peakBytes();           // training only: evaluation below uses bigger chunks
            long peakActivations = net.peakActivationBytes();
            long peakCheckpoints = net.peakCheckpointBytes();
            DataParallel.Stats st = dp == null ? null : dp.stats();
            long bytes = st == null ? 0 : st.wireBytes();
            long fp32 = st == null ? 0 : st.payloadBytes() * 2 * (comm.size() - 1) / comm.size();
            if (modelOut != null) {
                dev.torus.serve.MlpModelFile.save(mlp, modelOut, java.util.Map.of("source", "torus demo",
                        "seed", Long.toString(cfg.seed()), "epochs", Integer.toString(cfg.epochs())));
            }
            float[] trainEval = evaluate(net, root, cfg.device(), train);
            float[] testEval = evaluate(net, root, cfg.device(), test);
            return new Result(stepLoss, trainEval[0], testEval[0], testEval[1], total * (double) cfg.globalBatch()
                    / trainSeconds, trainSeconds, bytes, fp32, peakMemory, peakActivations, peakCheckpoints, st == null ? 0 : st.overlapFraction());
        }
    }

    private static int[] range(int n) {
        int[] r = new int[n];
        for (int i = 0; i < n; i++) {
            r[i] = i;
        }
        return r;
    }

    private static Tensor onDevice(Tensor host, Device device) {
        return device.isCpu() ? null : host.to(device);
    }

    private static float averageOverRanks(Communicator comm, Allocator root, Device device, float loss) {
        try (Tensor h = Tensor.fromArray(root, new float[] {loss}, 1);
             Tensor d = onDevice(h, device)) {
            Tensor t = d != null ? d : h;
            comm.allReduce(t, ReduceOp.AVG).await();
            return t.toFloatArray()[0];
        }
    }

    /** {mean loss, accuracy} over {@code data}, in chunks of 1024 rows. */
    static float[] evaluate(CheckpointedSequential net, Allocator root, Device device, DemoData data) {
        double lossSum = 0;
        long correct = 0;
        for (int from = 0; from < data.rows; from += 1024) {
            int n = Math.min(1024, data.rows - from);
            float[] xs = new float[n * DemoData.FEATURES];
            System.arraycopy(data.x, from * DemoData.FEATURES, xs, 0, xs.length);
            int[] ys = new int[n];
            System.arraycopy(data.y, from, ys, 0, n);
            try (Tensor xh = Tensor.fromArray(root, xs, n, DemoData.FEATURES);
                 Tensor yh = Tensor.fromArray(root, ys, n);
                 Tensor x = onDevice(xh, device);
                 Tensor y = onDevice(yh, device);
                 Tensor out = net.forward(x != null ? x : xh)) {
                lossSum += (double) SoftmaxCrossEntropy.loss(out, y != null ? y : yh) * n;
                float[] logits = out.toFloatArray();
                for (int i = 0; i < n; i++) {
                    int best = 0;
                    for (int c = 1; c < DemoData.CLASSES; c++) {
                        if (logits[i * DemoData.CLASSES + c] > logits[i * DemoData.CLASSES + best]) {
                            best = c;
                        }
                    }
                    correct += best == ys[i] ? 1 : 0;
                }
            }
        }
        return new float[] {(float) (lossSum / data.rows), (float) correct / data.rows};
    }
}
