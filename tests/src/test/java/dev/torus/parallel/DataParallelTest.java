package dev.torus.parallel;

import static dev.torus.internal.NativeAccess.TOKEN;

import static dev.torus.testing.BadArgument.assertMessage;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.Device;
import dev.torus.tensor.Tensor;
import dev.torus.comm.Communicator;
import dev.torus.memory.Allocator;
import dev.torus.nn.Mlp;
import dev.torus.nn.Parameter;
import dev.torus.nn.Sgd;
import dev.torus.nn.SoftmaxCrossEntropy;
import dev.torus.recompute.CheckpointPolicy;
import dev.torus.recompute.CheckpointedSequential;
import dev.torus.zookeeper.EmbeddedZooKeeper;
import dev.torus.zookeeper.ZooKeeperStore;
import dev.torus.testing.CommHarness;
import dev.torus.testing.Data;
import dev.torus.testing.TorusTestBase;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * DataParallel against a single process that trains on the combined batch: each
 * step's gradient is the average of the per-shard gradients (the mean loss over
 * the combined batch), summed in rank order. Bitwise for fp32; within stated
 * bounds for the compressing hooks.
 */
class DataParallelTest extends TorusTestBase {
    static final int INPUTS = 24;
    static final int WIDTH = 40;
    static final int BLOCKS = 3;
    static final int CLASSES = 5;
    static final int GLOBAL_BATCH = 16;
    static final int STEPS = 4;
    static final float LR = 0.05f;

    static EmbeddedZooKeeper zk;
    static ZooKeeperStore store;

    @BeforeAll
    static void start() {
        zk = EmbeddedZooKeeper.startWithoutAuth();
        store = ZooKeeperStore.connect(zk.connectString(), "dp", Duration.ofSeconds(10));
    }

    @AfterAll
    static void stop() {
        store.close();
        zk.close();
    }

    record Batch(float[] x, int[] y) {}

    static Batch batch(long seed, int step) {
        Random r = new Random(seed * 31 + step);
        float[] x = new float[GLOBAL_BATCH * INPUTS];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextGaussian();
        }
        int[] y = new int[GLOBAL_BATCH];
        for (int i = 0; i < y.length; i++) {
            y[i] = r.nextInt(CLASSES);
        }
        return new Batch(x, y);
    }

    static Batch shard(Batch b, int rank, int world) {
        int rows = GLOBAL_BATCH / world;
        float[] x = new float[rows * INPUTS];
        System.arraycopy(b.x, rank * rows * INPUTS, x, 0, x.length);
        int[] y = new int[rows];
        System.arraycopy(b.y, rank * rows, y, 0, rows);
        return new Batch(x, y);
    }

    static float lossAndBackward(CheckpointedSequential net, Allocator a, Batch b) {
        try (Tensor x = Tensor.fromArray(a, b.x, b.y.length, INPUTS);
             Tensor y = Tensor.fromArray(a, b.y, b.y.length);
             Tensor out = net.forward(x);
             SoftmaxCrossEntropy.Result l = SoftmaxCrossEntropy.lossAndGrad(out, y, a);
             Tensor dx = net.backward(l.gradLogits())) {
            return l.loss();
        }
    }

    static List<float[]> values(List<Parameter> ps) {
        List<float[]> out = new ArrayList<>();
        for (Parameter p : ps) {
            out.add(p.value().toFloatArray());
        }
        return out;
    }

    static List<float[]> grads(List<Parameter> ps) {
        List<float[]> out = new ArrayList<>();
        for (Parameter p : ps) {
            out.add(p.grad().toFloatArray());
        }
        return out;
    }

    /**
     * The single-process reference: per step, the gradient of each shard of the
     * combined batch (micro-batches per shard accumulate), averaged in rank order,
     * then one SGD step. Returns the parameters after every step.
     */
    List<List<float[]>> reference(long seed, int world, int microBatches) {
        List<List<float[]>> history = new ArrayList<>();
        try (Mlp mlp = new Mlp(INPUTS, WIDTH, BLOCKS, CLASSES, 0f, Device.cpu(), root, seed);
             CheckpointedSequential net = new CheckpointedSequential(mlp.layers(), CheckpointPolicy.none(), root, 1);
             Sgd opt = new Sgd(mlp.parameters(), LR, 0.9f, root)) {
            List<Parameter> ps = mlp.parameters();
            for (int step = 0; step < STEPS; step++) {
                List<float[]> sum = null;
                for (int r = 0; r < world; r++) {
                    opt.zeroGrad();
                    for (int m = 0; m < microBatches; m++) {
                        lossAndBackward(net, root, shard(batch(seed, step * microBatches + m), r, world));
                    }
                    List<float[]> g = grads(ps);
                    if (sum == null) {
                        sum = g;
                    } else {
                        for (int k = 0; k < g.size(); k++) {
                            for (int i = 0; i < g.get(k).length; i++) {
                                sum.get(k)[i] += g.get(k)[i];
                            }
                        }
                    }
                }
                for (int k = 0; k < ps.size(); k++) {
                    float[] avg = sum.get(k);
                    for (int i = 0; i < avg.length; i++) {
                        avg[i] /= world;
                    }
                    try (Tensor t = Tensor.fromArray(root, avg, ps.get(k).value().shape())) {
                        ps.get(k).grad().copyFrom(t);
                    }
                }
                opt.step();
                history.add(values(ps));
            }
        }
        return history;
    }

    record RankResult(List<List<float[]>> history, DataParallel.Stats stats, int buckets, long[] bucketElements) {}

    /** Every rank trains its shard with DataParallel (sqrt(n) checkpointing, overlap through the engine). */
    List<RankResult> dataParallel(long seed, int world, CommHook hook, int microBatches, long bucketCap) throws Exception {
        return CommHarness.run(store, world, Duration.ofSeconds(30), comm -> {
            // ranks other than 0 start from other weights: the broadcast must fix that
            long mySeed = comm.rank() == 0 ? seed : seed + 1000 + comm.rank();
            try (Mlp mlp = new Mlp(INPUTS, WIDTH, BLOCKS, CLASSES, 0f, Device.cpu(), root, mySeed);
                 CheckpointedSequential net = new CheckpointedSequential(mlp.layers(), CheckpointPolicy.sqrtN(), root, 1);
                 Sgd opt = new Sgd(mlp.parameters(), LR, 0.9f, root);
                 DataParallel dp = DataParallel.builder(comm, mlp.parameters()).hook(hook).bucketCapBytes(bucketCap)
                         .consistencyCheckEvery(hook.isLossy() ? 0 : 1).build()) {
                dp.attach(net, mlp.layers());
                List<List<float[]>> history = new ArrayList<>();
                for (int step = 0; step < STEPS; step++) {
                    dp.zeroGrad();
                    for (int m = 0; m < microBatches - 1; m++) {
                        try (DataParallel.NoSync ns = dp.noSync()) {
                            lossAndBackward(net, root, shard(batch(seed, step * microBatches + m), comm.rank(), world));
                            dp.awaitGradients();  // a no-op inside noSync
                        }
                    }
                    lossAndBackward(net, root, shard(batch(seed, step * microBatches + microBatches - 1), comm.rank(),
                            world));
                    dp.awaitGradients();
                    opt.step();
                    history.add(values(mlp.parameters()));
                }
                long[] sizes = dp.buckets().stream().mapToLong(b -> b.stream().mapToLong(Parameter::numel).sum()).toArray();
                return new RankResult(history, dp.stats(), dp.buckets().size(), sizes);
            }
        });
    }

    @ParameterizedTest(name = "world={0}")
    @ValueSource(ints = {1, 2, 4})
    void fp32MatchesSingleProcessOnTheCombinedBatchBitForBit(int world) throws Exception {
        long seed = Data.freshSeed();
        List<List<float[]>> want = reference(seed, world, 1);
        List<RankResult> got = dataParallel(seed, world, CommHook.none(), 1, 4096);
        for (int r = 0; r < world; r++) {
            assertTrue(got.get(r).buckets() > 1, "a 4 KiB cap must give several buckets");
            for (int step = 0; step < STEPS; step++) {
                for (int k = 0; k < want.get(step).size(); k++) {
                    assertArrayEquals(want.get(step).get(k), got.get(r).history().get(step).get(k),
                            "rank " + r + " step " + step + " parameter " + k + " (seed " + seed + ")");
                }
            }
            if (world > 1) {
                assertEquals(STEPS, got.get(r).stats().steps());
                assertTrue(got.get(r).stats().wireBytes() > 0);
            }
        }
    }

    @Test
    void noSyncAccumulatesLocallyAndTheNextStepAveragesTheSum() throws Exception {
        long seed = Data.freshSeed();
        int world = 2;
        List<List<float[]>> want = reference(seed, world, 3);
        List<RankResult> got = dataParallel(seed, world, CommHook.none(), 3, DataParallel.DEFAULT_BUCKET_CAP_BYTES);
        for (int r = 0; r < world; r++) {
            assertEquals(1, got.get(r).buckets());
            assertEquals(STEPS, got.get(r).stats().steps(), "noSync steps must not count as synchronized");
            for (int step = 0; step < STEPS; step++) {
                for (int k = 0; k < want.get(step).size(); k++) {
                    assertArrayEquals(want.get(step).get(k), got.get(r).history().get(step).get(k),
                            "rank " + r + " step " + step + " parameter " + k + " (seed " + seed + ")");
                }
            }
        }
    }

    /** Largest |a - b| over every parameter of the last step, relative to the largest |b|. */
    static double relativeGap(List<float[]> a, List<float[]> b) {
        double gap = 0;
        double scale = 0;
        for (int k = 0; k < a.size(); k++) {
            for (int i = 0; i < a.get(k).length; i++) {
                gap = Math.max(gap, Math.abs(a.get(k)[i] - b.get(k)[i]));
                scale = Math.max(scale, Math.abs(b.get(k)[i]));
            }
        }
        return gap / scale;
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"fp16", "bf16", "int8", "allreduce"})
    void otherHooksStayWithinTheirStatedBound(String name) throws Exception {
        long seed = Data.freshSeed();
        int world = 4;
        CommHook hook = CommHook.parse("hook", name);
        // bounds on the parameters after 4 SGD steps, relative to the largest parameter (docs/PARALLEL.md)
        double bound = switch (name) {
            case "fp16" -> 1e-4;
            case "bf16" -> 1e-3;
            case "int8" -> 3e-3;
            default -> 1e-5;
        };
        List<List<float[]>> want = reference(seed, world, 1);
        List<RankResult> got = dataParallel(seed, world, hook, 1, 4096);
        for (int r = 0; r < world; r++) {
            double gap = relativeGap(got.get(r).history().get(STEPS - 1), want.get(STEPS - 1));
            assertTrue(gap <= bound, name + ": rank " + r + " relative gap " + gap + " > " + bound + " (seed " + seed
                    + ")");
            for (int k = 0; k < want.get(0).size(); k++) {
                assertArrayEquals(got.get(0).history().get(STEPS - 1).get(k), got.get(r).history().get(STEPS - 1).get(k),
                        "every rank must hold the same parameters");
            }
        }
        // payload: the encoding of each bucket, padded to whole blocks per rank, sent 2(W-1) times
        long want8 = 0;
        for (long n : got.get(0).bucketElements()) {
            long align = world * (name.equals("int8") ? 256L : 64L);
            long chunk = (n + align - 1) / align * align / world;
            long encoded = switch (name) {
                case "fp16", "bf16" -> 2 * chunk;
                case "int8" -> chunk + 4 * (chunk / 256);
                default -> 4 * n / world;
            };
            want8 += 2L * (world - 1) * encoded * STEPS;
        }
        // measured on the sockets: the encoded payload, plus Gloo's control messages and the consistency checks
        long measured = got.get(0).stats().wireBytes();
        assertTrue(measured >= want8 && measured <= want8 + want8 / 50 + 64 * 1024,
                name + ": " + measured + " bytes measured on the wire, " + want8 + " of payload");
    }

    @Test
    void gradientsLiveInsideTheBucketsAndComeBackOnClose() throws Exception {
        CommHarness.run(store, 2, Duration.ofSeconds(20), comm -> {
            try (Mlp mlp = new Mlp(INPUTS, WIDTH, BLOCKS, CLASSES, 0f, Device.cpu(), root, 3)) {
                List<Parameter> ps = mlp.parameters();
                for (Parameter p : ps) {
                    try (Tensor t = Tensor.fromArray(root, Data.mixed(new Random(p.numel()), (int) p.numel()),
                            p.value().shape())) {
                        p.grad().copyFrom(t);
                    }
                }
                List<float[]> before = grads(ps);
                try (DataParallel dp = DataParallel.builder(comm, ps).bucketCapBytes(4).build()) {
                    assertEquals(ps.size(), dp.buckets().size(), "a 4-byte cap gives one bucket per parameter");
                    assertTrue(dp.buckets().get(0).get(0) == ps.get(ps.size() - 1), "buckets start from the last parameter");
                    for (int k = 0; k < ps.size(); k++) {
                        assertTrue(ps.get(k).grad().buffer().isSlice(), "gradient " + k + " must be a bucket view");
                        assertArrayEquals(before.get(k), ps.get(k).grad().toFloatArray(), "existing gradients are kept");
                    }
                }
                for (int k = 0; k < ps.size(); k++) {
                    assertFalse(ps.get(k).grad().buffer().isSlice(), "close() must give gradient " + k + " back");
                    assertArrayEquals(before.get(k), ps.get(k).grad().toFloatArray());
                }
            }
            return null;
        });
    }

    @Test
    void oneBucketHoldsEveryGradientContiguouslyInReverseOrder() throws Exception {
        CommHarness.run(store, 1, Duration.ofSeconds(20), comm -> {
            try (Mlp mlp = new Mlp(INPUTS, WIDTH, BLOCKS, CLASSES, 0f, Device.cpu(), root, 3);
                 DataParallel dp = DataParallel.builder(comm, mlp.parameters()).build()) {
                List<Parameter> ps = mlp.parameters();
                assertEquals(1, dp.buckets().size());
                long addr = ps.get(ps.size() - 1).grad().dataAddress(TOKEN);
                for (int k = ps.size() - 1; k >= 0; k--) {
                    assertEquals(addr, ps.get(k).grad().dataAddress(TOKEN), "parameter " + k);
                    addr += ps.get(k).grad().byteSize();
                }
            }
            return null;
        });
    }

    @Test
    void consistencyCheckCatchesInjectedDivergenceOnEveryRank() throws Exception {
        List<String> seen = CommHarness.run(store, 3, Duration.ofSeconds(20), comm -> {
            try (Mlp mlp = new Mlp(INPUTS, WIDTH, BLOCKS, CLASSES, 0f, Device.cpu(), root, 3);
                 DataParallel dp = DataParallel.builder(comm, mlp.parameters()).consistencyCheckEvery(1).build()) {
                dp.checkConsistency(); // replicas agree after the broadcast
                dp.awaitGradients();   // and after a step
                if (comm.rank() == 2) {
                    Parameter p = mlp.parameters().get(1);
                    float[] v = p.value().toFloatArray();
                    v[v.length / 2] = Math.nextUp(v[v.length / 2]);   // one ulp on one element
                    try (Tensor t = Tensor.fromArray(root, v, p.value().shape())) {
                        p.value().copyFrom(t);
                    }
                }
                ReplicaDivergenceException e = assertThrows(ReplicaDivergenceException.class, dp::awaitGradients);
                assertEquals(2, e.divergentRank());
                assertEquals(mlp.parameters().get(1).name(), e.parameter());
                return e.getMessage();
            }
        });
        assertTrue(seen.get(0).contains("rank 2"), seen.get(0));
    }

    @Test
    void badArgumentsAreRejectedWithTheirNames() throws Exception {
        CommHarness.run(store, 1, Duration.ofSeconds(20), comm -> {
            try (Mlp mlp = new Mlp(INPUTS, WIDTH, 1, CLASSES, 0f, Device.cpu(), root, 3);
                 Mlp other = new Mlp(INPUTS, WIDTH, 1, CLASSES, 0f, Device.cpu(), root, 4)) {
                List<Parameter> ps = mlp.parameters();
                assertMessage("comm", () -> DataParallel.builder(null, ps).build());
                assertMessage("parameters", () -> DataParallel.builder(comm, List.of()).build());
                List<Parameter> twice = new ArrayList<>(ps);
                twice.add(ps.get(0));
                assertMessage("appears twice", () -> DataParallel.builder(comm, twice).build());
                assertMessage("bucketCapBytes", () -> DataParallel.builder(comm, ps).bucketCapBytes(0).build());
                assertMessage("consistencyCheckEvery", () -> DataParallel.builder(comm, ps).consistencyCheckEvery(-1).build());
                assertMessage("hook", () -> DataParallel.builder(comm, ps).hook(null).build());
                assertMessage("hook", () -> CommHook.parse("hook", "int4"));
                assertMessage("blockSize", () -> CommHook.parse("hook", "int8:7"));
                try (DataParallel dp = DataParallel.builder(comm, ps).build()) {
                    assertMessage("not managed", () -> dp.gradientReady(other.parameters().get(0)));
                    dp.gradientReady(ps.get(0));
                    assertThrows(IllegalStateException.class, () -> dp.gradientReady(ps.get(0)));
                    assertThrows(IllegalStateException.class, dp::noSync);
                    dp.awaitGradients();
                    dp.noSync().close();
                }
                assertTrue(ps.stream().noneMatch(p -> p.grad().buffer().isSlice()));
            }
            return null;
        });
    }
}
