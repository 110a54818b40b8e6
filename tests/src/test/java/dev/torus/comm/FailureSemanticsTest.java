package dev.torus.comm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.tensor.Tensor;
import dev.torus.zookeeper.EmbeddedZooKeeper;
import dev.torus.zookeeper.ZooKeeperStore;
import dev.torus.testing.CommHarness;
import dev.torus.testing.TorusTestBase;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** No hangs: timeouts, abort, stale generations, malformed rendezvous records, debug fingerprints. */
class FailureSemanticsTest extends TorusTestBase {
    static EmbeddedZooKeeper zk;
    static ZooKeeperStore store;

    @BeforeAll
    static void start() {
        zk = EmbeddedZooKeeper.startWithoutAuth();
        store = ZooKeeperStore.connect(zk.connectString(), "failures", Duration.ofSeconds(10));
    }

    @AfterAll
    static void stop() {
        store.close();
        zk.close();
    }

    /** Rank 1 skips the second all-reduce; ranks 0 and 2 time out within timeout + 1 s, naming rank 1. */
    @Test
    void skippedCollectiveTimesOutWithClearMessage() throws Exception {
        long timeoutMs = 1_500;
        List<String> outcome = CommHarness.run(store, 3, Duration.ofMillis(timeoutMs), c -> {
            try (Tensor t = Tensor.fromArray(root, new float[] {1, 2, 3}, 3)) {
                c.allReduce(t, ReduceOp.SUM).await();
                if (c.rank() == 1) {
                    Thread.sleep(timeoutMs + 1_500); // stay alive but skip the collective
                    return "skipped";
                }
                long t0 = System.nanoTime();
                CommTimeoutException e = assertThrows(CommTimeoutException.class,
                        () -> c.allReduce(t, ReduceOp.SUM).await());
                long ms = (System.nanoTime() - t0) / 1_000_000;
                assertTrue(ms <= timeoutMs + 1_000, "failed after " + ms + " ms; bound " + (timeoutMs + 1000));
                String m = e.getMessage();
                assertTrue(m.contains("allReduce(SUM) of 3 x FLOAT32") && m.contains("seq 2")
                        && m.contains("generation 0") && m.contains("missing rank(s) [1]"), m);
                // rank 1 lives (a thread of this process): the report must not call it dead
                assertTrue(m.contains("rank 1 is alive (pid " + ProcessHandle.current().pid() + ")"), m);
                // the communicator is now broken: later ops fail at once
                CommAbortedException later = assertThrows(CommAbortedException.class, () -> c.barrier().await());
                assertTrue(later.getMessage().contains("cannot run"), later.getMessage());
                assertTrue(c.isAborted());
                return m;
            }
        });
        assertEquals("skipped", outcome.get(1));
    }

    /** abort() from another thread unblocks a pending collective long before its timeout. */
    @Test
    void abortUnblocksPendingWork() throws Exception {
        CommHarness.run(store, 2, Duration.ofSeconds(30), c -> {
            if (c.rank() == 1) {
                Thread.sleep(1_500);
                return null;
            }
            try (Tensor t = Tensor.fromArray(root, new float[] {1}, 1)) {
                Work w = c.allReduce(t, ReduceOp.SUM);
                Thread.sleep(200);
                assertTrue(!w.isCompleted());
                long t0 = System.nanoTime();
                c.abort("test says stop");
                CommAbortedException e = assertThrows(CommAbortedException.class, () -> w.await(Duration.ofSeconds(5)));
                long ms = (System.nanoTime() - t0) / 1_000_000;
                assertTrue(ms < 2_000, "abort took " + ms + " ms to unblock");
                assertTrue(e.getMessage().contains("test says stop") && e.getMessage().contains("seq 1"), e.getMessage());
                // the tensor is released once the native call has returned
                w.toFuture().handle((v, x) -> null).get(5, TimeUnit.SECONDS);
                long deadline = System.currentTimeMillis() + 5_000;
                while (true) {
                    try {
                        t.close();
                        break;
                    } catch (IllegalStateException stillPinned) {
                        assertTrue(System.currentTimeMillis() < deadline, "tensor stayed pinned after abort");
                        Thread.sleep(10);
                    }
                }
            }
            return null;
        });
    }

    /** After a shrink the run is at generation 1: generation 0 cannot be joined again, nor gen 1 by an outsider. */
    @Test
    void staleGenerationIsRejected() throws Exception {
        String runId = CommHarness.uniqueRunId("stale");
        ExecutorService pool = Executors.newFixedThreadPool(3);
        try {
            CountDownLatch built = new CountDownLatch(3);
            List<Future<Integer>> fs = new java.util.ArrayList<>();
            for (int r = 0; r < 3; r++) {
                int rank = r;
                fs.add(pool.submit(() -> {
                    try (Communicator c = Communicator.builder().rank(rank).size(3).store(store).runId(runId)
                            .timeout(Duration.ofSeconds(10)).build()) {
                        built.countDown();
                        built.await();
                        if (rank == 2) {
                            return -1; // leaves
                        }
                        try (Communicator s = c.shrink(2); Tensor t = Tensor.fromArray(root, new float[] {rank}, 1)) {
                            assertTrue(c.isAborted(), "the parent is aborted by shrink");
                            assertEquals(1, s.generation());
                            s.allReduce(t, ReduceOp.SUM).await();
                            assertArrayEquals(new float[] {1}, t.toFloatArray());
                            return s.size();
                        }
                    }
                }));
            }
            assertEquals(2, fs.get(0).get(60, TimeUnit.SECONDS));
            assertEquals(2, fs.get(1).get(60, TimeUnit.SECONDS));
            fs.get(2).get(60, TimeUnit.SECONDS);
        } finally {
            pool.shutdownNow();
        }
        StaleGenerationException old = assertThrows(StaleGenerationException.class, () -> Communicator.builder()
                .rank(2).size(3).store(store).runId(runId).timeout(Duration.ofSeconds(2)).build());
        assertTrue(old.getMessage().contains("generation 0") && old.getMessage().contains("at generation 1"),
                old.getMessage());
        StaleGenerationException outsider = assertThrows(StaleGenerationException.class, () -> Communicator.builder()
                .rank(2).size(3).store(store).runId(runId).generation(1).timeout(Duration.ofSeconds(2)).build());
        assertTrue(outsider.getMessage().contains("expected members [0, 1, 2]")
                && outsider.getMessage().contains("0,1"), outsider.getMessage());
    }

    @Test
    void malformedRendezvousRecordsFailCleanly() {
        String runId = CommHarness.uniqueRunId("malformed");
        // a peer's address record that is not a Torus frame
        store.set("runs/" + runId + "/world/gen-0/gloo-addr/1", "garbage".getBytes(StandardCharsets.US_ASCII));
        CommException e = assertThrows(CommException.class, () -> Communicator.builder().rank(0).size(2).store(store)
                .runId(runId).timeout(Duration.ofSeconds(5)).build());
        assertTrue(e.getMessage().contains("malformed record at key 'runs/" + runId + "/world/gen-0/gloo-addr/1'"),
                e.getMessage());
        // a generation counter that is not a number
        String run2 = CommHarness.uniqueRunId("malformed");
        store.set("runs/" + run2 + "/world/generation", new byte[] {(byte) 0xff, 0, 1});
        CommException g = assertThrows(CommException.class, () -> Communicator.builder().rank(0).size(1).store(store)
                .runId(run2).build());
        assertTrue(g.getMessage().contains("expected an ASCII decimal number"), g.getMessage());
    }

    @Test
    void debugModeNamesTheRankThatCalledADifferentCollective() throws Exception {
        List<String> messages = CommHarness.run(store, 3, Duration.ofSeconds(10), b -> b.debugChecks(true), c -> {
            int n = c.rank() == 2 ? 17 : 16;
            try (Tensor same = Tensor.fromArray(root, new float[16], 16);
                 Tensor t = Tensor.fromArray(root, new float[n], n)) {
                c.allReduce(same, ReduceOp.SUM).await(); // identical on every rank: passes the check
                CollectiveMismatchException e = assertThrows(CollectiveMismatchException.class,
                        () -> c.allReduce(t, ReduceOp.SUM).await());
                return e.getMessage();
            }
        });
        for (String m : messages) {
            assertTrue(m.contains("culprit rank(s) [2] called allReduce(SUM) of 17 x FLOAT32"), m);
            assertTrue(m.contains("[0, 1] called allReduce(SUM) of 16 x FLOAT32 at seq 2"), m);
        }
    }

    @Test
    void splitFormsSubCommunicatorsByColor() throws Exception {
        List<float[]> got = CommHarness.run(store, 4, Duration.ofSeconds(10), c -> {
            try (Communicator sub = c.split(c.rank() % 2, -c.rank());
                 Tensor t = Tensor.fromArray(root, new float[] {c.rank()}, 1)) {
                assertEquals(2, sub.size());
                sub.allReduce(t, ReduceOp.SUM).await();
                return new float[] {t.toFloatArray()[0], sub.rank()};
            }
        });
        assertEquals(2f, got.get(0)[0]); // ranks 0 + 2
        assertEquals(4f, got.get(1)[0]); // ranks 1 + 3
        assertEquals(1f, got.get(0)[1]); // key = -rank: rank 2 comes first
        assertEquals(0f, got.get(2)[1]);
        List<Object> none = CommHarness.run(store, 2, Duration.ofSeconds(10), c -> {
            Communicator sub = c.split(c.rank() == 0 ? -1 : 5, 0);
            if (c.rank() == 0) {
                assertNull(sub);
            } else {
                assertEquals(1, sub.size());
                sub.close();
            }
            return null;
        });
        assertEquals(2, none.size());
    }

    /**
     * A collective that waits 1.5 s for a slow (but correct) peer is probed for a mismatch:
     * the probe must find none, the op must succeed, and the reports it posted are removed.
     */
    @Test
    void aSlowButCorrectCollectiveIsProbedWithoutAFalseMismatchAndLeavesNoReport() throws Exception {
        String[] run = new String[1];
        List<float[]> got = CommHarness.run(store, 2, Duration.ofSeconds(10), c -> {
            run[0] = ((BaseCommunicator) c).spec.runId();
            try (Tensor t = Tensor.fromArray(root, new float[] {c.rank() + 1f}, 1)) {
                if (c.rank() == 1) {
                    Thread.sleep(1_500); // rank 0 waits past the 1 s probe delay
                }
                c.allReduce(t, ReduceOp.SUM).await();
                return t.toFloatArray();
            }
        });
        assertEquals(3f, got.get(0)[0]);
        assertEquals(3f, got.get(1)[0]);
        String dir = "runs/" + run[0] + "/world/gen-0/diag/1";
        long deadline = System.currentTimeMillis() + 5_000;
        while (!store.list(dir).isEmpty() && System.currentTimeMillis() < deadline) {
            Thread.sleep(50);
        }
        assertTrue(store.list(dir).isEmpty(), "probe reports left in the store: " + store.list(dir));
    }
}
