package dev.torus.comm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.jni.GlooNative;
import dev.torus.zookeeper.EmbeddedZooKeeper;
import dev.torus.zookeeper.ZooKeeperStore;
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
        zk = EmbeddedZooKeeper.startWithoutAuth();
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
        long initMs = 3_000;
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
                    Duration.ofSeconds(60), Duration.ofMillis(initMs), false, "127.0.0.2", GlooAlgorithm.AUTO, -1, null, Transport.AUTO);
            // they publish half-way through rank 0's window: a connect that then got the whole bound
            // again (the old behaviour) would end 1.5 s past it
            Thread.sleep(initMs / 2);
            for (int r = 1; r < world; r++) {
                long[] out = new long[1];
                assertEquals(GlooNative.OK, GlooNative.torus_gloo_create(r, world, "127.0.0.2", 60_000, out));
                fakes.add(out[0]);
                long[] ab = new long[1];
                GlooNative.torus_gloo_address_bytes(out[0], ab);
                // addresses, then the handshake nonce, the host id digest and the transport settings
                byte[] mine = new byte[(int) ab[0] * world + GlooCommunicator.RECORD_TAIL];
                assertEquals(GlooNative.OK, GlooNative.torus_gloo_local_addresses(out[0], mine,
                        mine.length - GlooCommunicator.RECORD_TAIL));
                // the real rank's settings (auto, 2 MiB slots), so that the record is accepted
                mine[mine.length - 9] = (byte) Transport.AUTO.ordinal();
                java.nio.ByteBuffer.wrap(mine, mine.length - 8, 8).putLong(SharedMemorySetup.DEFAULT_SLOT_BYTES);
                store.set("runs/" + runId + "/world/gen-0/gloo-addr/" + r, Rendezvous.frame(any, "gloo-addr", r, mine));
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

    /**
     * A peer's address record that leads to something else (here a plain TCP listener that
     * accepts and stays silent, as a stale record's port reused by another program would):
     * Gloo's connect succeeds, so init used to report success and the first op failed at its
     * timeout. The handshake after connect fails init instead, within its bound.
     */
    @Test
    void anAddressRecordThatLeadsToAForeignListenerFailsInit() throws Exception {
        long initMs = 3_000;
        String runId = CommHarness.uniqueRunId("foreign");
        GlooCommunicator.loadNative();
        java.net.ServerSocket foreign = null;
        for (int port = 20_000; port < 20_200 && foreign == null; port++) {
            try {
                // a port below the ephemeral range, so rank 0 is the connecting side of the pair
                foreign = new java.net.ServerSocket(port, 8, java.net.InetAddress.getByName("127.0.0.1"));
            } catch (java.io.IOException busy) {
                // try the next one
            }
        }
        org.junit.jupiter.api.Assumptions.assumeTrue(foreign != null, "no free port in 20000-20199");
        java.net.ServerSocket listener = foreign;
        List<java.net.Socket> accepted = new java.util.concurrent.CopyOnWriteArrayList<>();
        Thread acceptor = new Thread(() -> {
            try {
                while (true) {
                    accepted.add(listener.accept()); // and never answer
                }
            } catch (java.io.IOException closed) {
                // test over
            }
        });
        acceptor.setDaemon(true);
        acceptor.start();
        ExecutorService pool = Executors.newSingleThreadExecutor();
        try {
            long[] out = new long[1];
            assertEquals(GlooNative.OK, GlooNative.torus_gloo_create(0, 2, "127.0.0.1", 1000, out));
            long[] ab = new long[1];
            GlooNative.torus_gloo_address_bytes(out[0], ab);
            GlooNative.torus_gloo_destroy(out[0]);
            int per = (int) ab[0];
            // rank 1's record: its pair for rank 0 "listens" on the foreign port (sockaddr_in, then Gloo's seq)
            // addresses, then the nonce, host id digest and transport settings
            java.nio.ByteBuffer rec = java.nio.ByteBuffer.allocate(per * 2 + GlooCommunicator.RECORD_TAIL);
            rec.order(java.nio.ByteOrder.LITTLE_ENDIAN).putShort(0, (short) 2); // AF_INET
            rec.order(java.nio.ByteOrder.BIG_ENDIAN).putShort(2, (short) listener.getLocalPort());
            rec.put(4, (byte) 127).put(7, (byte) 1);
            rec.putLong(per * 2 + 41, SharedMemorySetup.DEFAULT_SLOT_BYTES); // the real rank's settings (auto, 2 MiB)
            CommSpec any = new CommSpec(new StoreLease(store, false), runId, "world", 0, 1, new int[] {0, 1},
                    Duration.ofSeconds(60), Duration.ofMillis(initMs), false, "127.0.0.1", GlooAlgorithm.AUTO, -1, null, Transport.AUTO);
            store.set("runs/" + runId + "/world/gen-0/gloo-addr/1", Rendezvous.frame(any, "gloo-addr", 1, rec.array()));
            long t0 = System.nanoTime();
            Future<Communicator> real = pool.submit(() -> Communicator.builder().rank(0).size(2).store(store)
                    .runId(runId).timeout(Duration.ofSeconds(60)).initTimeout(Duration.ofMillis(initMs)).build());
            var e = assertThrows(java.util.concurrent.ExecutionException.class, () -> real.get(30, TimeUnit.SECONDS));
            long ms = (System.nanoTime() - t0) / 1_000_000;
            System.out.println("init against a foreign listener failed after " + ms + " ms: " + e.getCause());
            assertTrue(e.getCause() instanceof CommTimeoutException, String.valueOf(e.getCause()));
            // usually the handshake is what fails; on a loaded machine the deadline can already pass in connect
            String m = e.getCause().getMessage();
            assertTrue(m.contains("init handshake") || m.contains("connecting did not finish"), m);
            assertTrue(ms <= initMs + 1_000, "init failed after " + ms + " ms");
        } finally {
            pool.shutdownNow();
            listener.close();
            for (java.net.Socket sock : accepted) {
                sock.close();
            }
        }
    }

    /**
     * A ZooKeeper endpoint that accepts connections and never answers (a frozen server): the
     * store connection is part of the init bound. It took 10.5 s for a 2 s bound before,
     * because closing the half-open client waited for its session timeout.
     */
    @Test
    void aSilentZooKeeperEndpointFailsInitWithinItsBoundPlusOneSecond() throws Exception {
        try (java.net.ServerSocket silent = new java.net.ServerSocket(0, 8, java.net.InetAddress.getByName("127.0.0.1"))) {
            Thread acceptor = new Thread(() -> {
                List<java.net.Socket> held = new java.util.ArrayList<>();
                try {
                    while (true) {
                        held.add(silent.accept());
                    }
                } catch (java.io.IOException closed) {
                    for (java.net.Socket sock : held) {
                        try {
                            sock.close();
                        } catch (java.io.IOException ignored) {
                            // closing
                        }
                    }
                }
            });
            acceptor.setDaemon(true);
            acceptor.start();
            long initMs = 2_000;
            long t0 = System.nanoTime();
            RuntimeException e = assertThrows(RuntimeException.class, () -> Communicator.builder().rank(0).size(2)
                    .endpoint("127.0.0.1:" + silent.getLocalPort()).runId(CommHarness.uniqueRunId("silent-zk"))
                    .initTimeout(Duration.ofMillis(initMs)).build());
            long ms = (System.nanoTime() - t0) / 1_000_000;
            System.out.println("init against a silent ZooKeeper failed after " + ms + " ms: " + e);
            assertTrue(e.getMessage().contains("could not connect to ZooKeeper"), e.getMessage());
            assertTrue(ms <= initMs + 1_000, "init failed after " + ms + " ms");
        }
    }
}
