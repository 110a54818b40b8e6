package dev.torus.testing;

import dev.torus.tensor.Tensor;
import dev.torus.comm.CommException;
import dev.torus.comm.Communicator;
import dev.torus.comm.ReduceOp;
import dev.torus.memory.Allocator;
import java.time.Duration;
import java.util.Arrays;

/**
 * Worker process for multi-process tests. Joins the world with
 * {@link Communicator#fromEnv()} and runs one scenario, reporting on stdout with
 * lines that start with {@code RESULT}. Exit code 0 means the scenario's own
 * checks passed.
 *
 * <ul>
 *   <li>{@code allops SEED [N]}: every op and dtype on N elements (default 37), checked against references;</li>
 *   <li>{@code survive VICTIM}: all-reduce in a loop until a peer dies, then shrink
 *       without {@code VICTIM} and all-reduce among the survivors;</li>
 *   <li>{@code mismatch KIND}: one good all-reduce, then rank 1 calls a collective that
 *       differs from rank 0's by {@code KIND} (count, longer, dtype, op, root, p2p);
 *       prints the exception each rank got.</li>
 * </ul>
 */
public final class CommWorker {
    private CommWorker() {}

    public static void main(String[] args) throws Exception {
        String scenario = args[0];
        if (scenario.equals("init")) {
            System.exit(initOnly());
        }
        int code;
        try (Allocator alloc = Allocator.root("worker");
             Communicator comm = Communicator.fromEnv()) {
            code = switch (scenario) {
                case "allops" -> allOps(comm, alloc, Long.parseLong(args[1]), args.length > 2 ? Integer.parseInt(args[2]) : 37);
                case "survive" -> survive(comm, alloc, Integer.parseInt(args[1]));
                case "mismatch" -> mismatch(comm, alloc, args[1]);
                case "dpstep" -> dpStep(comm, alloc);
                case "quitter" -> quitter(comm, alloc, Integer.parseInt(args[1]));
                default -> throw new IllegalArgumentException("unknown scenario " + scenario);
            };
        }
        System.out.flush();
        System.exit(code);
    }

    static int allOps(Communicator comm, Allocator alloc, long seed, int n) throws Exception {
        var errors = OpsCheck.run(comm, alloc, seed, n);
        System.out.println("RESULT allops rank=" + comm.rank() + " transport=" + comm.transportInUse() + " errors="
                + errors.size());
        errors.forEach(e -> System.out.println("RESULT error " + e));
        return errors.isEmpty() ? 0 : 1;
    }

    /**
     * One data-parallel step of a small MLP with the exact hook, each rank on its own rows; the averaged
     * gradients must equal, bit for bit, what this process computes for every rank's rows and adds in rank
     * order (divided by the world size), and every replica must hold the same parameters after the step.
     */
    static int dpStep(Communicator comm, Allocator alloc) {
        int world = comm.size();
        int rows = 16;
        int in = 8;
        java.util.function.IntFunction<float[]> xs = r -> {
            java.util.SplittableRandom g = new java.util.SplittableRandom(300 + r);
            float[] x = new float[rows * in];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) g.nextGaussian();
            }
            return x;
        };
        java.util.function.IntFunction<int[]> ys = r -> {
            int[] y = new int[rows];
            for (int i = 0; i < rows; i++) {
                y[i] = (r + 3 * i) % 4;
            }
            return y;
        };
        // the reference: every rank's gradient in this process, summed in rank order, divided by the world
        float[][] expected = null;
        try (dev.torus.nn.Mlp ref = new dev.torus.nn.Mlp(in, 16, 2, 4, 0f, dev.torus.Device.cpu(), alloc, 9)) {
            for (int r = 0; r < world; r++) {
                ref.parameters().forEach(p -> p.grad().zero());
                localStep(ref, alloc, xs.apply(r), ys.apply(r), rows, in);
                if (expected == null) {
                    expected = new float[ref.parameters().size()][];
                    for (int i = 0; i < expected.length; i++) {
                        expected[i] = ref.parameters().get(i).grad().toFloatArray();
                    }
                } else {
                    for (int i = 0; i < expected.length; i++) {
                        float[] g = ref.parameters().get(i).grad().toFloatArray();
                        for (int j = 0; j < g.length; j++) {
                            expected[i][j] += g[j];
                        }
                    }
                }
            }
            for (float[] e : expected) {
                for (int j = 0; j < e.length; j++) {
                    e[j] /= (float) world;
                }
            }
        }
        int wrong = 0;
        try (dev.torus.nn.Mlp mlp = new dev.torus.nn.Mlp(in, 16, 2, 4, 0f, dev.torus.Device.cpu(), alloc, 9);
             dev.torus.parallel.DataParallel dp = dev.torus.parallel.DataParallel.builder(comm, mlp.parameters())
                     .hook(dev.torus.parallel.CommHook.none()).allocator(alloc).build()) {
            dp.zeroGrad();
            localStep(mlp, alloc, xs.apply(comm.rank()), ys.apply(comm.rank()), rows, in);
            dp.awaitGradients();
            for (int i = 0; i < expected.length; i++) {
                if (!java.util.Arrays.equals(expected[i], mlp.parameters().get(i).grad().toFloatArray())) {
                    wrong++;
                }
            }
            dp.checkConsistency();
        }
        System.out.println("RESULT dpstep rank=" + comm.rank() + " wrong=" + wrong);
        return wrong == 0 ? 0 : 1;
    }

    private static void localStep(dev.torus.nn.Mlp mlp, Allocator alloc, float[] x, int[] y, int rows, int in) {
        java.util.List<Tensor> ins = new java.util.ArrayList<>();
        Tensor cur = Tensor.fromArray(alloc, x, rows, in);
        for (int i = 0; i < mlp.layers().size(); i++) {
            ins.add(cur);
            cur = mlp.layers().get(i).forward(cur, dev.torus.recompute.SegmentContext.of(alloc, 1, (long) i << 40));
        }
        Tensor g;
        try (Tensor labels = Tensor.fromArray(alloc, y, rows);
             dev.torus.nn.SoftmaxCrossEntropy.Result l = dev.torus.nn.SoftmaxCrossEntropy.lossAndGrad(cur, labels, alloc)) {
            g = Tensor.fromArray(alloc, l.gradLogits().toFloatArray(), l.gradLogits().shape());
        }
        cur.close();
        for (int i = mlp.layers().size() - 1; i >= 0; i--) {
            Tensor gin = mlp.layers().get(i).backward(ins.get(i), g,
                    dev.torus.recompute.SegmentContext.of(alloc, 1, (long) i << 40));
            g.close();
            ins.get(i).close();
            g = gin;
        }
        g.close();
    }

    /** Joins a world whose other ranks may never come; reports how long the failure took. */
    static int initOnly() {
        long t0 = System.nanoTime();
        try (Communicator comm = Communicator.fromEnv()) {
            System.out.println("RESULT init ok rank=" + comm.rank());
            return 1;
        } catch (RuntimeException e) {
            System.out.println("RESULT init failed after=" + (System.nanoTime() - t0) / 1_000_000 + " type="
                    + e.getClass().getSimpleName() + " message=" + String.valueOf(e.getMessage()).replace('\n', ' '));
            return 0;
        }
    }

    static int mismatch(Communicator comm, Allocator alloc, String kind) {
        boolean odd = comm.rank() == 1;
        long t0 = System.currentTimeMillis();
        try (Tensor warm = Tensor.fromArray(alloc, new float[] {1, 2, 3, 4}, 4)) {
            comm.allReduce(warm, ReduceOp.SUM).await();
            int n = 1000;
            switch (kind) {
                case "count", "longer" -> {
                    // rank 1 sends more than rank 0 expects ("count": 1001 vs 1000; "longer": 4x)
                    int mine = odd ? (kind.equals("count") ? n + 1 : 4 * n) : n;
                    try (Tensor t = Tensor.fromArray(alloc, new float[mine], mine)) {
                        comm.allReduce(t, ReduceOp.SUM).await();
                    }
                }
                case "dtype" -> {
                    try (Tensor t = odd ? Tensor.zeros(alloc, dev.torus.DType.INT32, dev.torus.Device.cpu(), n)
                            : Tensor.fromArray(alloc, new float[n], n)) {
                        comm.allReduce(t, ReduceOp.SUM).await();
                    }
                }
                case "op" -> {
                    try (Tensor t = Tensor.fromArray(alloc, new float[n], n)) {
                        comm.allReduce(t, odd ? ReduceOp.MAX : ReduceOp.SUM).await();
                    }
                }
                case "root" -> {
                    try (Tensor t = Tensor.fromArray(alloc, new float[n], n)) {
                        comm.broadcast(t, odd ? 1 : 0).await();
                    }
                }
                case "p2p" -> {
                    int mine = odd ? n + 1 : n;
                    try (Tensor t = Tensor.fromArray(alloc, new float[mine], mine)) {
                        if (odd) {
                            // the sender waits longer, so the receiver's own timeout (with its hint) comes first
                            comm.send(t, 0, 0, dev.torus.comm.OpOptions.defaults().withTimeout(
                                    java.time.Duration.ofSeconds(30))).await();
                        } else {
                            comm.recv(t, 1, 0).await();
                        }
                    }
                }
                default -> throw new IllegalArgumentException("unknown mismatch kind " + kind);
            }
            System.out.println("RESULT mismatch none after=" + (System.currentTimeMillis() - t0));
            return 1;
        } catch (CommException e) {
            System.out.println("RESULT mismatch type=" + e.getClass().getSimpleName() + " after="
                    + (System.currentTimeMillis() - t0) + " message=" + e.getMessage().replace('\n', ' '));
            return 0;
        }
    }

    static int survive(Communicator comm, Allocator alloc, int victim) {
        int n = 1 << 20;
        float[] ones = new float[n];
        Arrays.fill(ones, 1f);
        long iter = 0;
        long lastOk = System.currentTimeMillis();
        try (Tensor t = Tensor.fromArray(alloc, ones, n)) {
            while (true) {
                comm.allReduce(t, ReduceOp.SUM).await();
                iter++;
                lastOk = System.currentTimeMillis();
                System.out.println("RESULT iter " + iter);
                System.out.flush();
            }
        } catch (CommException e) {
            System.out.println("RESULT failed at=" + System.currentTimeMillis() + " lastOk=" + lastOk + " type="
                    + e.getClass().getSimpleName() + " message=" + e.getMessage().replace('\n', ' '));
        }
        try (Communicator smaller = comm.shrink(victim);
             Tensor t = Tensor.fromArray(alloc, new float[] {smaller.rank() + 1, 2}, 2)) {
            smaller.allReduce(t, ReduceOp.SUM).await(Duration.ofSeconds(30));
            float[] got = t.toFloatArray();
            int m = smaller.size();
            boolean ok = got[0] == m * (m + 1) / 2f && got[1] == 2f * m;
            System.out.println("RESULT shrunk rank=" + smaller.rank() + " size=" + m + " generation="
                    + smaller.generation() + " sum=" + got[0] + " ok=" + ok);
            return ok ? 0 : 3;
        }
    }

    /**
     * Three all-reduces; then {@code quitter} closes its communicator without abort and stays alive (so only
     * the close can tell the others), while the rest start a fourth and report how it ended.
     */
    static int quitter(Communicator comm, Allocator alloc, int quitter) throws InterruptedException {
        try (Tensor t = Tensor.fromArray(alloc, new float[4096], 4096)) {
            for (int i = 0; i < 3; i++) {
                comm.allReduce(t, ReduceOp.SUM).await();
            }
            if (comm.rank() == quitter) {
                comm.close();
                System.out.println("RESULT closed at=" + System.currentTimeMillis());
                System.out.flush();
                Thread.sleep(15_000);
                return 0;
            }
            long t0 = System.currentTimeMillis();
            try {
                comm.allReduce(t, ReduceOp.SUM).await();
                System.out.println("RESULT completed");
                return 1;
            } catch (CommException e) {
                System.out.println("RESULT failed after=" + (System.currentTimeMillis() - t0) + " type="
                        + e.getClass().getSimpleName() + " message=" + e.getMessage().replace('\n', ' '));
                return 0;
            }
        }
    }
}
