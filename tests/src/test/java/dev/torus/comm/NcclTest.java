package dev.torus.comm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.tensor.Tensor;
import dev.torus.zookeeper.EmbeddedZooKeeper;
import dev.torus.zookeeper.ZooKeeperStore;
import dev.torus.testing.CommHarness;
import dev.torus.testing.GpuTest;
import dev.torus.testing.TypedData;
import java.time.Duration;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** NCCL backend at world size 1 on one GPU, plus init -> abort -> re-init cycles. */
class NcclTest extends GpuTest {
    static EmbeddedZooKeeper zk;
    static ZooKeeperStore store;

    @BeforeAll
    static void start() {
        zk = EmbeddedZooKeeper.startWithoutAuth();
        store = ZooKeeperStore.connect(zk.connectString(), "nccl", Duration.ofSeconds(10));
    }

    @AfterAll
    static void stop() {
        store.close();
        zk.close();
    }

    Communicator world1(String run) {
        return Communicator.builder().rank(0).size(1).store(store).runId(CommHarness.uniqueRunId(run))
                .backend(Backend.NCCL).timeout(Duration.ofSeconds(30)).build();
    }

    Tensor onGpu(DType dt, double[] v) {
        try (Tensor host = Tensor.fromBytes(root, dt, TypedData.toBytes(dt, v), v.length)) {
            return host.to(Device.cuda(0));
        }
    }

    @Test
    void everyOpAndDtypeAtWorldSizeOne() {
        double[] v = {1, -2, 3, 4, -5, 6, 7, 8};
        try (Communicator c = world1("ops")) {
            assertEquals(Backend.NCCL, c.backend());
            for (DType dt : DType.values()) {
                if (dt == DType.UINT8) {
                    v = new double[] {1, 2, 3, 4, 5, 6, 7, 8};
                }
                for (ReduceOp op : ReduceOp.values()) {
                    try (Tensor t = onGpu(dt, v); Tensor o = Tensor.zeros(root, dt, Device.cuda(0), v.length)) {
                        c.allReduce(t, o, op, OpOptions.defaults()).await();
                        assertArrayEquals(v, TypedData.fromBytes(dt, o.toByteArray()), 0.0, dt + " " + op);
                    }
                }
                try (Tensor t = onGpu(dt, v); Tensor o = Tensor.zeros(root, dt, Device.cuda(0), v.length)) {
                    // every op writes into a zeroed output, so each result is its own
                    c.broadcast(t, o, 0, OpOptions.defaults()).await();
                    assertValues(v, o, dt + " broadcast");
                    o.zero();
                    c.reduce(t, o, ReduceOp.SUM, 0, OpOptions.defaults()).await();
                    assertValues(v, o, dt + " reduce to out");
                    c.reduce(t, ReduceOp.SUM, 0).await();
                    assertValues(v, t, dt + " reduce in place");
                    o.zero();
                    c.allGather(t, o).await();
                    assertValues(v, o, dt + " allGather");
                    o.zero();
                    c.reduceScatter(t, o, ReduceOp.SUM).await();
                    assertValues(v, o, dt + " reduceScatter");
                    o.zero();
                    c.allToAll(t, o).await();
                    assertValues(v, o, dt + " allToAll");
                    c.allGatherInPlace(t, OpOptions.defaults()).await();
                    assertValues(v, t, dt + " allGatherInPlace");
                    c.reduceScatterInPlace(t, ReduceOp.SUM, OpOptions.defaults()).await();
                    assertValues(v, t, dt + " reduceScatterInPlace");
                    c.allToAllInPlace(t, OpOptions.defaults()).await();
                    assertValues(v, t, dt + " allToAllInPlace");
                    c.barrier().await();
                    assertValues(v, t, dt + " input after every op");
                }
            }
        }
    }

    static void assertValues(double[] want, Tensor t, String what) {
        assertArrayEquals(want, TypedData.fromBytes(t.dtype(), t.toByteArray()), 0.0, what);
    }

    @Test
    void cpuTensorsAreRejectedByNccl() {
        try (Communicator c = world1("cpu"); Tensor t = Tensor.fromArray(root, new float[] {1}, 1)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> c.allReduce(t, ReduceOp.SUM));
            assertTrue(e.getMessage().contains("cuda:0"), e.getMessage());
        }
    }

    /** init -> abort -> re-init, timed; the times are printed for docs/BENCHMARKS.md. */
    @Test
    void initAbortReinitCycles() {
        for (int i = 0; i < 5; i++) {
            long t0 = System.nanoTime();
            Communicator c = world1("cycle");
            long init = System.nanoTime() - t0;
            try (Tensor t = onGpu(DType.FLOAT32, new double[] {1, 2})) {
                c.allReduce(t, ReduceOp.SUM).await();
                long a0 = System.nanoTime();
                c.abort("cycle " + i);
                long abort = System.nanoTime() - a0;
                assertTrue(c.isAborted());
                assertThrows(CommAbortedException.class, () -> c.allReduce(t, ReduceOp.SUM).await());
                System.out.printf("nccl cycle %d: init %.1f ms, abort %.1f ms%n", i, init / 1e6, abort / 1e6);
            } finally {
                c.close();
            }
        }
    }
}
