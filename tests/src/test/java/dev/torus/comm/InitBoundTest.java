package dev.torus.comm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.jni.GlooNative;
import dev.torus.rendezvous.EmbeddedZooKeeper;
import dev.torus.rendezvous.ZooKeeperStore;
import dev.torus.testing.CommHarness;
import dev.torus.testing.TorusTestBase;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Initialization keeps one bound, whatever stage the peers fail in. The case here:
 * peers that publish their Gloo addresses late in the window and then never connect
 * (they froze or died right after the rendezvous). Each stage used to get the whole
 * bound afresh, so the address exchange spent most of it and Gloo's connect then
 * waited the full bound again.
 */
class InitBoundTest extends TorusTestBase {
    static EmbeddedZooKeeper zk;
    static ZooKeeperStore store;

    @BeforeAll
    static void start() {
        zk = EmbeddedZooKeeper.start();
        store = ZooKeeperStore.connect(zk.connectString(), "initbound", Duration.ofSeconds(10));
    }

    @AfterAll
    static void stop() {
        store.close();
        zk.close();
    }

    @Test
    void peersThatPublishThenNeverConnectFailInitWithinItsBoundPlusOneSecond() throws Exception {
        int world = 5;
        long initMs = 1_500;
        String runId = CommHarness.uniqueRunId("silent-peers");
        GlooCommunicator.loadNative();
        ExecutorService pool = Executors.newSingleThreadExecutor();
        List<Long> fakes = new ArrayList<>();
        try {
            long t0 = System.nanoTime();
            Future<Communicator> real = pool.submit(() -> Communicator.builder().rank(0).size(world).store(store)
                    .runId(runId).timeout(Duration.ofSeconds(60)).initTimeout(Duration.ofMillis(initMs)).build());
            // The silent peers listen on 127.0.0.2, which compares above rank 0's 127.0.0.1, so rank 0
            // is the listening side of every pair: the side that waits for a connect that never comes.
            CommSpec any = new CommSpec(new StoreLease(store, false), runId, "world", 0, 0, new int[] {0, 1, 2, 3, 4},
                    Duration.ofSeconds(60), Duration.ofMillis(initMs), false, "127.0.0.2", GlooAlgorithm.AUTO, -1);
            Thread.sleep(initMs * 4 / 5); // they publish late in rank 0's window
            for (int r = 1; r < world; r++) {
                long[] out = new long[1];
                assertEquals(GlooNative.OK, GlooNative.torus_gloo_create(r, world, "127.0.0.2", 60_000, out));
                fakes.add(out[0]);
                long[] ab = new long[1];
                GlooNative.torus_gloo_address_bytes(out[0], ab);
                byte[] mine = new byte[(int) ab[0] * world];
                assertEquals(GlooNative.OK, GlooNative.torus_gloo_local_addresses(out[0], mine, mine.length));
                store.set("runs/" + runId + "/world/gen-0/gloo-addr/" + r, Rendezvous.frame(any, r, mine));
            }
            var e = assertThrows(java.util.concurrent.ExecutionException.class, () -> real.get(30, TimeUnit.SECONDS));
            long ms = (System.nanoTime() - t0) / 1_000_000;
            System.out.println("init with " + (world - 1) + " silent peers failed after " + ms + " ms: "
                    + e.getCause());
            assertTrue(e.getCause() instanceof CommTimeoutException, String.valueOf(e.getCause()));
            assertTrue(e.getCause().getMessage().contains("initTimeout (" + initMs + " ms)"), e.getCause().getMessage());
            assertTrue(ms <= initMs + 1_000, "init failed after " + ms + " ms; the bound is " + (initMs + 1_000) + " ms");
        } finally {
            pool.shutdownNow();
            for (long h : fakes) {
                GlooNative.torus_gloo_destroy(h);
            }
        }
    }
}
