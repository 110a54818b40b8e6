package dev.torus.cli.bench;

import dev.torus.NativeLibrary;
import dev.torus.tensor.Tensor;
import dev.torus.comm.Communicator;
import dev.torus.memory.Allocator;
import dev.torus.nn.Mlp;
import dev.torus.nn.Sgd;
import dev.torus.nn.SoftmaxCrossEntropy;
import dev.torus.parallel.CommHook;
import dev.torus.parallel.DataParallel;
import dev.torus.recompute.CheckpointPolicy;
import dev.torus.recompute.CheckpointedSequential;
import java.util.Locale;
import java.util.Random;

/**
 * One rank of {@code torus-bench dp}, started by the launcher: trains a block MLP on
 * random data for warm-up plus timed steps and, on rank 0, prints one
 * {@code @dp-result} line. With {@code nodp} it trains alone without a communicator
 * (the single-process baseline).
 * Arguments: width blocks batch steps warmup hook overlap(true|false) bucketBytes nodp(true|false).
 */
public final class DpBenchWorker {
    static final String RESULT = "@dp-result";
    static final int CLASSES = 16;

    public static void main(String[] a) {
        int width = Integer.parseInt(a[0]);
        int blocks = Integer.parseInt(a[1]);
        int batch = Integer.parseInt(a[2]);
        int steps = Integer.parseInt(a[3]);
        int warmup = Integer.parseInt(a[4]);
        CommHook hook = CommHook.parse("--hook", a[5]);
        boolean overlap = Boolean.parseBoolean(a[6]);
        long bucket = Long.parseLong(a[7]);
        boolean noDp = Boolean.parseBoolean(a[8]);
        int localWorld = Integer.parseInt(System.getenv().getOrDefault("LOCAL_WORLD_SIZE", "1"));
        NativeLibrary.setCpuThreads(Math.max(1, Runtime.getRuntime().availableProcessors() / localWorld));
        Communicator comm = noDp ? null : Communicator.fromEnv();
        try (Allocator root = Allocator.root("dp-bench");
             Mlp mlp = new Mlp(width, width, blocks, CLASSES, 0f, dev.torus.Device.cpu(), root, 1);
             CheckpointedSequential net = new CheckpointedSequential(mlp.layers(), CheckpointPolicy.none(), root, 1);
             Sgd opt = new Sgd(mlp.parameters(), 1e-3f, 0.9f, root);
             DataParallel dp = comm == null ? null : DataParallel.builder(comm, mlp.parameters()).hook(hook)
                     .overlap(overlap).bucketCapBytes(bucket).build()) {
            if (dp != null) {
                dp.attach(net, mlp.layers());
            }
            Random r = new Random(comm == null ? 0 : comm.rank());
            float[] x = new float[batch * width];
            int[] y = new int[batch];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) r.nextGaussian();
            }
            for (int i = 0; i < batch; i++) {
                y[i] = r.nextInt(CLASSES);
            }
            long t0 = 0;
            DataParallel.Stats before = null;
            for (int s = 0; s < warmup + steps; s++) {
                if (s == warmup) {
                    t0 = System.nanoTime();
                    before = dp == null ? null : dp.stats();
                }
                opt.zeroGrad();
                try (Tensor xt = Tensor.fromArray(root, x, batch, width);
                     Tensor yt = Tensor.fromArray(root, y, batch);
                     Tensor out = net.forward(xt);
                     SoftmaxCrossEntropy.Result l = SoftmaxCrossEntropy.lossAndGrad(out, yt, root);
                     Tensor dx = net.backward(l.gradLogits())) {
                    if (dp != null) {
                        dp.awaitGradients();
                    }
                }
                opt.step();
            }
            double stepMs = (System.nanoTime() - t0) / 1e6 / steps;
            DataParallel.Stats after = dp == null ? null : dp.stats();
            if (comm == null || comm.rank() == 0) {
                double comm_ms = after == null ? 0 : (after.commSeconds() - before.commSeconds()) * 1e3 / steps;
                double exposed = after == null ? 0 : (after.exposedSeconds() - before.exposedSeconds()) * 1e3 / steps;
                long wire = after == null ? 0 : (after.wireBytes() - before.wireBytes()) / steps;
                long payload = after == null ? 0 : (after.payloadBytes() - before.payloadBytes()) / steps;
                int buckets = dp == null ? 0 : dp.buckets().size();
                System.out.printf(Locale.ROOT, "%s %.4f %.4f %.4f %d %d %d%n", RESULT, stepMs, comm_ms, exposed, wire,
                        payload, buckets);
                System.out.flush();
            }
        } finally {
            if (comm != null) {
                comm.close();
            }
        }
    }
}
