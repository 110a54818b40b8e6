package dev.torus.comm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import dev.torus.Tensor;
import dev.torus.rendezvous.EmbeddedZooKeeper;
import dev.torus.rendezvous.ZooKeeperStore;
import dev.torus.testing.CommHarness;
import java.time.Duration;
import org.junit.jupiter.api.Test;

class GlooSmokeTest {
    @Test
    void fourRanksAllReduce() throws Exception {
        try (EmbeddedZooKeeper zk = EmbeddedZooKeeper.start();
             ZooKeeperStore store = ZooKeeperStore.connect(zk.connectString(), "t", Duration.ofSeconds(10))) {
            CommHarness.run(store, 4, Duration.ofSeconds(10), c -> {
                try (Tensor t = Tensor.fromArray(new float[] {c.rank(), 1, 2}, 3)) {
                    c.allReduce(t, ReduceOp.SUM).await();
                    assertArrayEquals(new float[] {6, 4, 8}, t.toFloatArray());
                }
                return null;
            });
        }
    }
}
