package dev.torus.comm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.tensor.Tensor;
import dev.torus.zookeeper.EmbeddedZooKeeper;
import dev.torus.zookeeper.ZooKeeperStore;
import dev.torus.testing.CommHarness;
import dev.torus.testing.CommReference;
import dev.torus.testing.Data;
import dev.torus.testing.TorusTestBase;
import dev.torus.testing.OpsCheck;
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
        zk = EmbeddedZooKeeper.startWithoutAuth();
        store = ZooKeeperStore.connect(zk.connectString(), "collectives", Duration.ofSeconds(10));
    }

    @AfterAll
    static void stopStore() {
        store.close();
        zk.close();
    }






    /** Runs every op on every dtype and reports all mismatches at once. */
    @ParameterizedTest(name = "world {0}")
    @ValueSource(ints = {1, 2, 3, 4})
    void everyOpAndDtype(int world) throws Exception {
        long seed = Data.freshSeed();
        List<List<String>> errors = CommHarness.run(store, world, TIMEOUT, c -> {
            return OpsCheck.run(c, root, seed, N);
        });
        List<String> all = new ArrayList<>();
        errors.forEach(all::addAll);
        assertTrue(all.isEmpty(), "mismatches (" + all.size() + "):\n" + String.join("\n", all));
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

    /** Operations progress without being awaited, and awaiting a later one first keeps issue order. */
    @Test
    void workProgressesUnawaitedAndInIssueOrder() throws Exception {
        CommHarness.run(store, 2, TIMEOUT, c -> {
            try (Tensor a = Tensor.fromArray(root, new float[] {1}, 1);
                 Tensor b = Tensor.fromArray(root, new float[] {10}, 1)) {
                Work w1 = c.allReduce(a, ReduceOp.SUM);
                Work w2 = c.allReduce(a, ReduceOp.SUM);   // runs after w1: 1+1 = 2, then 2+2 = 4
                Work w3 = c.allReduce(b, ReduceOp.SUM);
                w3.await();                                 // awaited first; cannot jump the queue
                assertTrue(w1.isCompleted() && w2.isCompleted(), "earlier operations finish first");
                assertEquals(4f, a.toFloatArray()[0]);
                assertEquals(20f, b.toFloatArray()[0]);
                Work unawaited = c.allReduce(b, ReduceOp.SUM);
                long deadline = System.nanoTime() + 10_000_000_000L;
                while (!unawaited.isCompleted() && System.nanoTime() < deadline) {
                    Thread.sleep(5);
                }
                assertTrue(unawaited.isCompleted(), "an operation nobody awaits still completes");
                assertEquals(40f, b.toFloatArray()[0]);
            }
            return null;
        });
    }
}
