package dev.torus.comm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.Tensor;
import dev.torus.rendezvous.EmbeddedZooKeeper;
import dev.torus.rendezvous.ZooKeeperStore;
import dev.torus.testing.CommHarness;
import dev.torus.testing.CommReference;
import dev.torus.testing.Data;
import dev.torus.testing.TorusTestBase;
import dev.torus.testing.TypedData;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

/** Every op and dtype on the Gloo backend, one thread per rank, against scalar references. */
class CollectivesTest extends TorusTestBase {
    static EmbeddedZooKeeper zk;
    static ZooKeeperStore store;
    static final Duration TIMEOUT = Duration.ofSeconds(20);
    static final int N = 37;

    @BeforeAll
    static void startStore() {
        zk = EmbeddedZooKeeper.start();
        store = ZooKeeperStore.connect(zk.connectString(), "collectives", Duration.ofSeconds(10));
    }

    @AfterAll
    static void stopStore() {
        store.close();
        zk.close();
    }

    Tensor make(DType dt, double[] v) {
        return Tensor.fromBytes(root, dt, TypedData.toBytes(dt, v), v.length);
    }

    static double[] read(Tensor t) {
        return TypedData.fromBytes(t.dtype(), t.toByteArray());
    }

    static double[][] inputs(long seed, int world, DType dt, ReduceOp op, int n) {
        double[][] in = new double[world][];
        for (int r = 0; r < world; r++) {
            in[r] = CommReference.input(seed, r, dt, op, n);
        }
        return in;
    }

    static double[] concat(double[][] parts) {
        int n = 0;
        for (double[] p : parts) {
            n += p.length;
        }
        double[] out = new double[n];
        int o = 0;
        for (double[] p : parts) {
            System.arraycopy(p, 0, out, o, p.length);
            o += p.length;
        }
        return out;
    }

    static double[] block(double[] v, int b, int n) {
        double[] out = new double[n];
        System.arraycopy(v, b * n, out, 0, n);
        return out;
    }

    /** Runs every op on every dtype and reports all mismatches at once. */
    @ParameterizedTest(name = "world {0}")
    @ValueSource(ints = {1, 2, 3, 4})
    void everyOpAndDtype(int world) throws Exception {
        long seed = Data.freshSeed();
        List<List<String>> errors = CommHarness.run(store, world, TIMEOUT, c -> {
            List<String> err = new ArrayList<>();
            int me = c.rank();
            for (DType dt : DType.values()) {
                for (ReduceOp op : ReduceOp.values()) {
                    double[][] in = inputs(seed, world, dt, op, N);
                    double[] want = CommReference.reduce(dt, op, in);
                    try (Tensor t = make(dt, in[me]); Tensor o = Tensor.zeros(root, dt, Device.cpu(), N)) {
                        c.allReduce(t, op).await();
                        expect(err, "allReduce in-place " + dt + " " + op, want, read(t));
                        try (Tensor src = make(dt, in[me])) {
                            c.allReduce(src, o, op, OpOptions.defaults()).await();
                            expect(err, "allReduce out-of-place " + dt + " " + op, want, read(o));
                            expect(err, "allReduce out-of-place leaves input " + dt, in[me], read(src));
                        }
                    }
                }
                double[][] in = inputs(seed, world, dt, ReduceOp.SUM, N);
                int bcastRoot = world - 1;
                try (Tensor t = make(dt, in[me]); Tensor o = Tensor.zeros(root, dt, Device.cpu(), N)) {
                    c.broadcast(t, bcastRoot).await();
                    expect(err, "broadcast in-place " + dt, in[bcastRoot], read(t));
                    try (Tensor src = make(dt, in[me])) {
                        c.broadcast(src, o, 0, OpOptions.defaults()).await();
                        expect(err, "broadcast out-of-place " + dt, in[0], read(o));
                    }
                }
                for (ReduceOp op : new ReduceOp[] {ReduceOp.SUM, ReduceOp.MAX, ReduceOp.AVG}) {
                    double[][] rin = inputs(seed, world, dt, op, N);
                    double[] want = CommReference.reduce(dt, op, rin);
                    int rroot = world / 2;
                    try (Tensor t = make(dt, rin[me]); Tensor src = make(dt, rin[me]);
                         Tensor o = Tensor.zeros(root, dt, Device.cpu(), N)) {
                        c.reduce(t, op, rroot).await();
                        c.reduce(src, o, op, rroot, OpOptions.defaults()).await();
                        if (me == rroot) {
                            expect(err, "reduce in-place " + dt + " " + op, want, read(t));
                            expect(err, "reduce out-of-place " + dt + " " + op, want, read(o));
                        }
                    }
                }
                try (Tensor t = make(dt, in[me]); Tensor o = Tensor.zeros(root, dt, Device.cpu(), (long) N * world)) {
                    c.allGather(t, o).await();
                    expect(err, "allGather " + dt, concat(in), read(o));
                }
                double[] buf = new double[N * world];
                System.arraycopy(in[me], 0, buf, me * N, N);
                try (Tensor t = make(dt, buf)) {
                    c.allGatherInPlace(t, OpOptions.defaults()).await();
                    expect(err, "allGather in-place " + dt, concat(in), read(t));
                }
                for (ReduceOp op : new ReduceOp[] {ReduceOp.SUM, ReduceOp.MIN, ReduceOp.AVG}) {
                    double[][] big = inputs(seed + 1, world, dt, op, N * world);
                    double[] full = CommReference.reduce(dt, op, big);
                    try (Tensor t = make(dt, big[me]); Tensor o = Tensor.zeros(root, dt, Device.cpu(), N)) {
                        c.reduceScatter(t, o, op).await();
                        expect(err, "reduceScatter " + dt + " " + op, block(full, me, N), read(o));
                    }
                    try (Tensor t = make(dt, big[me])) {
                        c.reduceScatterInPlace(t, op, OpOptions.defaults()).await();
                        expect(err, "reduceScatter in-place " + dt + " " + op, block(full, me, N),
                                block(read(t), me, N));
                    }
                }
                double[][] a2a = inputs(seed + 2, world, dt, ReduceOp.SUM, N * world);
                double[][] wantParts = new double[world][];
                for (int src = 0; src < world; src++) {
                    wantParts[src] = block(a2a[src], me, N);
                }
                try (Tensor t = make(dt, a2a[me]); Tensor o = Tensor.zeros(root, dt, Device.cpu(), (long) N * world)) {
                    c.allToAll(t, o).await();
                    expect(err, "allToAll " + dt, concat(wantParts), read(o));
                }
                try (Tensor t = make(dt, a2a[me])) {
                    c.allToAllInPlace(t, OpOptions.defaults()).await();
                    expect(err, "allToAll in-place " + dt, concat(wantParts), read(t));
                }
                if (world > 1) {
                    int next = (me + 1) % world;
                    int prev = (me + world - 1) % world;
                    try (Tensor s = make(dt, in[me]); Tensor r = Tensor.zeros(root, dt, Device.cpu(), N)) {
                        Work ws = c.send(s, next, 7);
                        Work wr = c.recv(r, prev, 7);
                        ws.await();
                        wr.await();
                        expect(err, "send/recv ring " + dt, in[prev], read(r));
                    }
                }
                c.barrier().await();
            }
            return err;
        });
        List<String> all = new ArrayList<>();
        errors.forEach(all::addAll);
        assertTrue(all.isEmpty(), "mismatches (" + all.size() + "):\n" + String.join("\n", all));
    }

    static void expect(List<String> err, String what, double[] want, double[] got) {
        if (want.length != got.length) {
            err.add(what + ": length " + got.length + ", expected " + want.length);
            return;
        }
        for (int i = 0; i < want.length; i++) {
            if (Double.compare(want[i], got[i]) != 0) {
                err.add(what + ": element " + i + " is " + got[i] + ", expected " + want[i]);
                return;
            }
        }
    }

    /** Real-valued fp32 data through each algorithm, at sizes that cross Gloo's segment sizes. */
    @ParameterizedTest(name = "{0}")
    @EnumSource(GlooAlgorithm.class)
    void randomFloatsEveryAlgorithm(GlooAlgorithm algo) throws Exception {
        long seed = Data.freshSeed();
        int world = 4;
        for (int n : new int[] {1, 1000, 262_147}) {
            float[][] in = new float[world][];
            for (int r = 0; r < world; r++) {
                in[r] = Data.uniform(new Random(seed + r), n, 10f);
            }
            double[] want = new double[n];
            for (int i = 0; i < n; i++) {
                for (int r = 0; r < world; r++) {
                    want[i] += in[r][i];
                }
            }
            List<float[]> outs = CommHarness.run(store, world, TIMEOUT, b -> b.glooAlgorithm(algo), c -> {
                try (Tensor t = Tensor.fromArray(root, in[c.rank()], n)) {
                    c.allReduce(t, ReduceOp.SUM).await();
                    return t.toFloatArray();
                }
            });
            for (int r = 0; r < world; r++) {
                assertArrayEquals(outs.get(0), outs.get(r), "every rank must hold identical bits (rank " + r + ")");
                for (int i = 0; i < n; i++) {
                    assertEquals(want[i], outs.get(r)[i], 1e-4 * (1 + Math.abs(want[i])),
                            "element " + i + " of n=" + n + " rank " + r);
                }
            }
        }
    }

    @Test
    void emptyTensorsComplete() throws Exception {
        CommHarness.run(store, 2, TIMEOUT, c -> {
            try (Tensor t = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), 0);
                 Tensor o = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), 0)) {
                c.allReduce(t, ReduceOp.SUM).await();
                c.allGather(t, o).await();
                c.broadcast(t, 1).await();
            }
            return null;
        });
    }

    @Test
    void workReportsSeqTypeAndCompletion() throws Exception {
        CommHarness.run(store, 2, TIMEOUT, c -> {
            try (Tensor t = Tensor.fromArray(root, new float[] {1}, 1)) {
                Work a = c.allReduce(t, ReduceOp.SUM);
                Work b = c.barrier();
                a.toFuture().get(10, java.util.concurrent.TimeUnit.SECONDS);
                b.await(Duration.ofSeconds(10));
                assertEquals(1, a.seq());
                assertEquals(2, b.seq());
                assertEquals(OpType.ALL_REDUCE, a.opType());
                assertEquals(OpType.BARRIER, b.opType());
                assertTrue(a.isCompleted() && b.isCompleted());
                assertEquals(2f, t.toFloatArray()[0]);
            }
            return null;
        });
    }
}
