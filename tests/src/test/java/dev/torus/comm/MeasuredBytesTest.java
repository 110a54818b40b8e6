package dev.torus.comm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.tensor.Tensor;
import dev.torus.zookeeper.EmbeddedZooKeeper;
import dev.torus.zookeeper.ZooKeeperStore;
import dev.torus.testing.CommHarness;
import dev.torus.testing.TorusTestBase;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@link Communicator#bytesSent()} on Gloo is measured from the kernel's per-socket
 * counters, not computed: it must find every connection, and the bytes it reports for
 * an operation must cover the payload the algorithm moves, plus only Gloo's small
 * control messages.
 */
class MeasuredBytesTest extends TorusTestBase {
    static EmbeddedZooKeeper zk;
    static ZooKeeperStore store;

    @BeforeAll
    static void start() {
        zk = EmbeddedZooKeeper.startWithoutAuth();
        store = ZooKeeperStore.connect(zk.connectString(), "bytes", Duration.ofSeconds(10));
    }

    @AfterAll
    static void stop() {
        store.close();
        zk.close();
    }

    @Test
    void allReduceAndBroadcastBytesAreMeasuredOnTheSockets() throws Exception {
        for (int world : new int[] {2, 4}) {
            int n = 1 << 20; // 4 MiB of fp32: the ring algorithm
            long bytes = 4L * n;
            // the socket counters are Gloo's TCP transport: shared memory has none
            List<long[]> got = CommHarness.run(store, world, Duration.ofSeconds(30), b -> b.transport(Transport.GLOO), c -> {
                GlooCommunicator g = (GlooCommunicator) c;
                assertEquals(world - 1, g.countedConnections(), "every connection is found");
                try (Tensor t = Tensor.fromArray(root, new float[n], n)) {
                    long before = c.bytesSent();
                    c.allReduce(t, ReduceOp.SUM).await();
                    long allReduce = c.bytesSent() - before;
                    before = c.bytesSent();
                    c.broadcast(t, 0).await();
                    long broadcast = c.bytesSent() - before;
                    return new long[] {allReduce, broadcast};
                }
            });
            long ring = 2 * bytes * (world - 1) / world;
            for (int r = 0; r < world; r++) {
                long ar = got.get(r)[0];
                long bc = got.get(r)[1];
                System.out.printf("world %d rank %d: all-reduce %d bytes measured (ring payload %d, +%.3f%%), "
                        + "broadcast %d%n", world, r, ar, ring, 100.0 * (ar - ring) / ring, bc);
                // Gloo's ring rounds its segments, so 4 ranks send about 1% more than 2(n-1)/n of the buffer
                assertTrue(ar >= ring && ar <= ring + ring / 50 + 4096, "all-reduce rank " + r + ": " + ar + " vs " + ring);
                if (r == 0) {
                    assertTrue(bc >= bytes * (world - 1) / world, "the root sends at least its share: " + bc);
                }
            }
        }
    }
}
