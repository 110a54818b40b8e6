package dev.torus.rendezvous;

import dev.torus.zookeeper.EmbeddedZooKeeper;

import dev.torus.zookeeper.ZooKeeperStore;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
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

/** The ZooKeeper store against an embedded server: semantics, concurrency and bad inputs. */
class StoreTest {
    static EmbeddedZooKeeper zk;
    static ZooKeeperStore store;

    @BeforeAll
    static void start() {
        zk = EmbeddedZooKeeper.startWithoutAuth();
        store = ZooKeeperStore.connect(zk.connectString(), "storetest", Duration.ofSeconds(10));
    }

    @AfterAll
    static void stop() {
        store.close();
        zk.close();
    }

    static byte[] b(String s) {
        return s.getBytes(StandardCharsets.US_ASCII);
    }

    @Test
    void setGetOverwriteDelete() {
        store.set("a/x", b("one"));
        assertArrayEquals(b("one"), store.get("a/x", Duration.ofSeconds(1)));
        store.set("a/x", b("two"));
        assertArrayEquals(b("two"), store.tryGet("a/x"));
        store.set("a/empty", new byte[0]);
        assertArrayEquals(new byte[0], store.get("a/empty", Duration.ofSeconds(1)));
        assertEquals(List.of("empty", "x"), store.list("a"));
        assertTrue(store.delete("a"));
        assertNull(store.tryGet("a/x"));
        assertFalse(store.delete("a"));
        assertEquals(List.of(), store.list("a"));
    }

    @Test
    void addIsAtomicAcrossThreads() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<?>> fs = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                fs.add(pool.submit(() -> {
                    for (int i = 0; i < 25; i++) {
                        store.add("counter", 1);
                    }
                }));
            }
            for (Future<?> f : fs) {
                f.get(60, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
        assertEquals(100, store.add("counter", 0));
        assertEquals(90, store.add("counter", -10));
    }

    @Test
    void compareSetSemantics() {
        assertArrayEquals(b("v1"), store.compareSet("cas", null, b("v1")), "absent + expected null creates");
        assertArrayEquals(b("v1"), store.compareSet("cas", null, b("v2")), "present + expected null keeps");
        assertArrayEquals(b("v1"), store.compareSet("cas", b("wrong"), b("v2")), "mismatch returns current");
        assertArrayEquals(b("v2"), store.compareSet("cas", b("v1"), b("v2")), "match swaps");
        assertNull(store.compareSet("cas-absent", b("x"), b("y")), "absent + expected value: nothing stored");
    }

    @Test
    void waitReturnsWhenKeysAppearAndTimesOutNamingMissingKeys() throws Exception {
        Thread writer = new Thread(() -> {
            try {
                Thread.sleep(200);
            } catch (InterruptedException ignored) {
                return;
            }
            store.set("w/one", b("1"));
            store.set("w/two", b("2"));
        });
        writer.start();
        store.wait(List.of("w/one", "w/two"), Duration.ofSeconds(10));
        writer.join();
        long t0 = System.nanoTime();
        StoreTimeoutException e = assertThrows(StoreTimeoutException.class,
                () -> store.wait(List.of("w/one", "w/never"), Duration.ofMillis(300)));
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(ms >= 290 && ms < 3_000, "waited " + ms + " ms");
        assertTrue(e.getMessage().contains("[w/never]"), e.getMessage());
        assertThrows(StoreTimeoutException.class, () -> store.get("w/never", Duration.ofMillis(100)));
    }

    @Test
    void prefixViewsResolveBelowTheirPrefix() {
        Store view = store.withPrefix("runs/r1");
        view.set("k", b("v"));
        assertArrayEquals(b("v"), store.tryGet("runs/r1/k"));
        assertThrows(IllegalArgumentException.class, () -> view.tryGet("../k"));
        view.close(); // a no-op: the parent stays usable
        assertArrayEquals(b("v"), store.tryGet("runs/r1/k"));
    }

    @Test
    void badKeysAreRejectedWithTheArgumentName() {
        for (String bad : new String[] {"", "/abs", "trail/", "a//b", "a/../b", "sp ace", "a/./b"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> store.set(bad, b("v")));
            assertTrue(e.getMessage().startsWith("key"), bad + " -> " + e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> store.set(null, b("v")));
        assertThrows(IllegalArgumentException.class, () -> store.set("ok", null));
        assertThrows(IllegalArgumentException.class, () -> store.wait(List.of("x"), Duration.ZERO));
        assertThrows(IllegalArgumentException.class, () -> store.withPrefix("../escape"));
    }

    @Test
    void oversizedValuesAreRejectedBeforeTheServerSeesThem() {
        byte[] big = new byte[store.maxValueBytes() + 1];
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> store.set("big", big));
        assertTrue(e.getMessage().contains(big.length + " bytes") && e.getMessage().contains("at most"),
                e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> store.compareSet("big", null, big));
        store.set("big", new byte[store.maxValueBytes()]); // the limit itself is fine
        assertEquals(store.maxValueBytes(), store.tryGet("big").length);
    }

    @Test
    void malformedCounterIsReportedNotMisread() {
        store.set("notacounter", new byte[] {(byte) 0xc3, 0x28, 0});
        StoreException e = assertThrows(StoreException.class, () -> store.add("notacounter", 1));
        assertTrue(e.getMessage().contains("does not hold a counter") && e.getMessage().contains("c32800"),
                e.getMessage());
    }

    @Test
    void connectingToNothingFailsWithinTheTimeout() throws Exception {
        int deadPort;
        try (java.net.ServerSocket s = new java.net.ServerSocket(0)) {
            deadPort = s.getLocalPort();
        }
        long t0 = System.nanoTime();
        StoreTimeoutException e = assertThrows(StoreTimeoutException.class,
                () -> ZooKeeperStore.connect("127.0.0.1:" + deadPort, "x", Duration.ofMillis(800)));
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(ms < 5_000, "took " + ms + " ms");
        assertTrue(e.getMessage().contains("127.0.0.1:" + deadPort), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ZooKeeperStore.connect(" ", "x", Duration.ofSeconds(1)));
        assertThrows(IllegalArgumentException.class, () -> ZooKeeperStore.connect("h:1", "bad/..", Duration.ofSeconds(1)));
    }

    @Test
    void closedStoreFailsClearly() {
        ZooKeeperStore s = ZooKeeperStore.connect(zk.connectString(), "closing", Duration.ofSeconds(10));
        s.close();
        assertThrows(IllegalStateException.class, () -> s.set("k", b("v")));
    }
}
