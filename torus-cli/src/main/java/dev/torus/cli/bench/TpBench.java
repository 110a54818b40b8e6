package dev.torus.cli.bench;

import dev.torus.Device;
import dev.torus.comm.Communicator;
import dev.torus.comm.CompressedAllReduce;
import dev.torus.comm.Compression;
import dev.torus.comm.ReduceOp;
import dev.torus.memory.Allocator;
import dev.torus.nn.BiasGelu;
import dev.torus.nn.Layer;
import dev.torus.nn.Linear;
import dev.torus.nn.Parameter;
import dev.torus.parallel.tensor.ParallelMlpBlock;
import dev.torus.parallel.tensor.TensorParallel;
import dev.torus.recompute.SegmentContext;
import dev.torus.tensor.Tensor;
import dev.torus.zookeeper.EmbeddedZooKeeper;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/**
 * {@code torus-bench tp}: Megatron's MLP block (in → hidden → out) on t ranks of one JVM (threads, Gloo),
 * tensor-parallel against data-parallel on the same ranks: step time (forward and backward of one batch),
 * all-reduces per step, and the floats each rank all-reduces. TP splits the weights and sums activations
 * (two all-reduces of rows × features); DP splits the rows and sums the whole block's weight gradients
 * (one all-reduce). The ranks share this machine's cores: the figures compare the two layouts here, not a
 * cluster.
 */
public final class TpBench {
    private final PrintStream out;
    private final int in;
    private final int hidden;
    private final int rows;
    private final int steps;

    public TpBench(PrintStream out, int in, int hidden, int rows, int steps) {
        if (in < 1 || hidden < 1 || rows < 1 || steps < 1) {
            throw new IllegalArgumentException("--in, --hidden, --rows and --steps must be >= 1, got " + in + ", " + hidden
                    + ", " + rows + " and " + steps);
        }
        this.out = out;
        this.in = in;
        this.hidden = hidden;
        this.rows = rows;
        this.steps = steps;
    }

    /** {mean step ms, all-reduces per step, floats all-reduced per step} on rank 0. */
    private double[] run(int t, boolean tensorParallel) throws Exception {
        if (tensorParallel && hidden % t != 0) {
            throw new IllegalArgumentException("--hidden (" + hidden + ") must be divisible by the degree " + t);
        }
        if (!tensorParallel && rows % t != 0) {
            throw new IllegalArgumentException("--rows (" + rows + ") must be divisible by the degree " + t);
        }
        String run = "tp-bench-" + ProcessHandle.current().pid() + "-" + System.nanoTime();
        ExecutorService pool = Executors.newFixedThreadPool(t);
        try (EmbeddedZooKeeper zk = EmbeddedZooKeeper.startWithoutAuth()) {
            List<Future<double[]>> fs = new ArrayList<>();
            for (int r = 0; r < t; r++) {
                int rank = r;
                fs.add(pool.submit(() -> {
                    try (Communicator comm = Communicator.builder().rank(rank).size(t).endpoint(zk.connectString())
                            .runId(run).build();
                         Allocator a = Allocator.root("tp-bench-" + rank)) {
                        return tensorParallel ? tp(comm, a) : dp(comm, a);
                    }
                }));
            }
            double[] r0 = null;
            for (Future<double[]> f : fs) {
                double[] v = f.get(10, TimeUnit.MINUTES);
                r0 = r0 == null ? v : r0;
            }
            return r0;
        } finally {
            pool.shutdownNow();
        }
    }

    private double[] tp(Communicator comm, Allocator a) {
        try (Linear first = new Linear(in, hidden, false, Device.cpu(), a, 1);
             BiasGelu gelu = new BiasGelu(hidden, Device.cpu(), a);
             Linear second = new Linear(hidden, in, true, Device.cpu(), a, 2);
             TensorParallel group = new TensorParallel(comm, a);
             ParallelMlpBlock block = new ParallelMlpBlock(first, gelu, second, group, Device.cpu(), a, 3)) {
            double ms = time(comm, block.layers(), rows, a);
            long reduces = group.forwardAllReduces() + group.backwardAllReduces();
            return new double[] {ms, (double) reduces / (steps + 1), 2.0 * rows * in};
        }
    }

    private double[] dp(Communicator comm, Allocator a) {
        try (Linear first = new Linear(in, hidden, false, Device.cpu(), a, 1);
             BiasGelu gelu = new BiasGelu(hidden, Device.cpu(), a);
             Linear second = new Linear(hidden, in, true, Device.cpu(), a, 2);
             CompressedAllReduce reducer = new CompressedAllReduce(comm, Compression.fp32(), a)) {
            List<Layer> layers = List.of(first, gelu, second);
            int n = 0;
            for (Layer l : layers) {
                for (Parameter p : l.parameters()) {
                    n += (int) p.numel();
                }
            }
            int floats = n;
            double ms = time(comm, layers, rows / comm.size(), a, () -> {
                int i = 0;
                for (Layer l : layers) {
                    for (Parameter p : l.parameters()) {
                        reducer.allReduce("g" + i++, p.grad(), ReduceOp.AVG).await();
                    }
                }
            });
            int count = 0;
            for (Layer l : layers) {
                count += l.parameters().size();
            }
            return new double[] {ms, count, floats};
        }
    }

    private double time(Communicator comm, List<Layer> layers, int r, Allocator a) {
        return time(comm, layers, r, a, () -> { });
    }

    /** Mean ms of forward + backward (+ {@code after}) over the timed steps, after one untimed step. */
    private double time(Communicator comm, List<Layer> layers, int r, Allocator a, Runnable after) {
        SegmentContext ctx = SegmentContext.of(a, 1, 0);
        float[] x = new float[r * in];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) Math.sin(i * 0.01);
        }
        long total = 0;
        for (int s = -1; s < steps; s++) {
            comm.barrier().await();
            long t0 = System.nanoTime();
            List<Tensor> ins = new ArrayList<>();
            Tensor cur = Tensor.fromArray(a, x, r, in);
            for (Layer l : layers) {
                ins.add(cur);
                cur = l.forward(cur, ctx);
            }
            Tensor g = Tensor.fromArray(a, cur.toFloatArray(), cur.shape());
            cur.close();
            for (int i = layers.size() - 1; i >= 0; i--) {
                Tensor gin = layers.get(i).backward(ins.get(i), g, ctx);
                g.close();
                ins.get(i).close();
                g = gin;
            }
            g.close();
            after.run();
            if (s >= 0) {
                total += System.nanoTime() - t0;
            }
        }
        return total / 1e6 / steps;
    }

    public List<BenchRow> run(List<Integer> degrees, Path json) throws Exception {
        String[] cols = {"ranks", "layout", "step_ms", "vs_dp", "allreduces", "floats_reduced"};
        int[] widths = {6, 8, 9, 7, 11, 15};
        try (BenchReport report = new BenchReport(out, json, cols, widths)) {
            report.header(String.format(java.util.Locale.ROOT, "# tp: MLP block %d -> %d -> %d, %d rows per step, %d timed "
                    + "steps; ranks are threads of one JVM sharing %d cores; vs_dp = data-parallel step time / this",
                    in, hidden, in, rows, steps, Runtime.getRuntime().availableProcessors()));
            for (int t : degrees) {
                double[] dp = run(t, false);
                double[] tp = run(t, true);
                report.add(new BenchRow().put("ranks", t).put("layout", "dp").put("step_ms", dp[0]).put("vs_dp", 1.0)
                        .put("allreduces", dp[1]).put("floats_reduced", dp[2]));
                report.add(new BenchRow().put("ranks", t).put("layout", "tp").put("step_ms", tp[0])
                        .put("vs_dp", dp[0] / tp[0]).put("allreduces", tp[1]).put("floats_reduced", tp[2]));
            }
            return report.rows();
        }
    }
}
