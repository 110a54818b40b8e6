package dev.torus.elastic;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.comm.CommException;
import dev.torus.comm.ReduceOp;
import dev.torus.zookeeper.EmbeddedZooKeeper;
import dev.torus.zookeeper.ZooKeeperStore;
import dev.torus.tensor.Tensor;
import dev.torus.testing.CommHarness;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * An old generation's sockets, threads and native memory are released: one member
 * stays while another joins and leaves again and again, every change a rebuild of the
 * communicator in place; threads, file descriptors and RSS are read after the warm-up
 * cycles and at the end.
 */
class ElasticLeakTest {

    private static long fds() throws Exception {
        try (var s = Files.list(Path.of("/proc/self/fd"))) {
            return s.count();
        }
    }

    private static long rssKib() throws Exception {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        }
        return -1;
    }

    private static void cycles(int warm, int total) throws Exception {
        ElasticOptions opts = new ElasticOptions(CommHarness.uniqueRunId("leak"), 1, 2, Duration.ofMillis(600),
                Duration.ofSeconds(10), Duration.ofSeconds(20));
        ExecutorService pool = Executors.newCachedThreadPool();
        AtomicBoolean stop = new AtomicBoolean();
        try (EmbeddedZooKeeper zk = EmbeddedZooKeeper.startWithoutAuth();
             ZooKeeperStore stayS = ZooKeeperStore.connect(zk.connectString(), "store", Duration.ofSeconds(10));
             ElasticGroup stay = ElasticGroup.join(stayS, opts, Duration.ofSeconds(30))) {
            Future<Integer> stayer = pool.submit(() -> {
                int changes = 0;
                while (!stop.get()) {
                    if (stay.boundary() != null) {
                        changes++;
                        continue;
                    }
                    step(stay);
                }
                return changes;
            });
            long[] warmFigures = null;
            try (ZooKeeperStore goS = ZooKeeperStore.connect(zk.connectString(), "store", Duration.ofSeconds(10))) {
                for (int c = 1; c <= total; c++) {
                    try (ElasticGroup go = ElasticGroup.join(goS, opts, Duration.ofSeconds(30))) {
                        for (int i = 0; i < 3; i++) {
                            if (go.boundary() == null) {
                                step(go);
                            }
                        }
                        go.requestLeave();
                        while (go.isMember()) {
                            if (go.boundary() == null) {
                                step(go);
                            }
                        }
                    }
                    if (c == warm) {
                        System.gc();
                        Thread.sleep(500);
                        warmFigures = new long[] {ManagementFactory.getThreadMXBean().getThreadCount(), fds(), rssKib()};
                    }
                }
            }
            stop.set(true);
            int changes = stayer.get(60, TimeUnit.SECONDS);
            System.gc();
            Thread.sleep(500);
            long[] end = {ManagementFactory.getThreadMXBean().getThreadCount(), fds(), rssKib()};
            System.out.printf("elastic leak check: %d join/leave cycles (%d rebuilds of the staying member); after %d: "
                    + "%d threads, %d fds, RSS %d MiB; after %d: %d threads, %d fds, RSS %d MiB%n", total, changes, warm,
                    warmFigures[0], warmFigures[1], warmFigures[2] / 1024, total, end[0], end[1], end[2] / 1024);
            assertTrue(changes >= 2 * (total - 1), "the staying member saw " + changes + " rebuilds");
            assertTrue(end[0] - warmFigures[0] <= 3, "threads grew from " + warmFigures[0] + " to " + end[0]);
            assertTrue(end[1] - warmFigures[1] <= 3, "file descriptors grew from " + warmFigures[1] + " to " + end[1]);
            assertTrue(end[2] - warmFigures[2] <= 96 * 1024, "RSS grew by " + (end[2] - warmFigures[2]) / 1024 + " MiB");
        } finally {
            stop.set(true);
            pool.shutdownNow();
            pool.awaitTermination(10, TimeUnit.SECONDS);
        }
    }

    private static void step(ElasticGroup g) {
        try (Tensor t = Tensor.fromArray(new float[] {1f}, 1)) {
            g.comm().allReduce(t, ReduceOp.SUM).await();
        } catch (CommException e) {
            throw new AssertionError("no failure expected in a join/leave cycle", e);
        }
    }

    @Test
    void tenJoinLeaveCyclesReleaseWhatTheyTake() throws Exception {
        cycles(4, 10);
    }

    @Tag("slow")
    @Test
    void fiftyJoinLeaveCyclesReleaseWhatTheyTake() throws Exception {
        cycles(10, 50);
    }
}
