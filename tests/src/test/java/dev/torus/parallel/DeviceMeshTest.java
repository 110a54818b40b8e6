package dev.torus.parallel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.comm.Communicator;
import dev.torus.comm.ReduceOp;
import dev.torus.tensor.Tensor;
import dev.torus.testing.CommHarness;
import dev.torus.zookeeper.EmbeddedZooKeeper;
import dev.torus.zookeeper.ZooKeeperStore;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * DP × PP × TP = 2 × 2 × 2 over 8 ranks (threads, Gloo): every rank's coordinates and the members of its
 * three groups, checked by all-gathering world ranks inside each group.
 */
class DeviceMeshTest {

    private static int[] members(Communicator group, int worldRank) {
        try (Tensor t = Tensor.fromArray(new float[group.size()], group.size())) {
            float[] mine = new float[group.size()];
            mine[group.rank()] = worldRank;
            try (Tensor m = Tensor.fromArray(mine, group.size())) {
                t.copyFrom(m);
            }
            group.allReduce(t, ReduceOp.SUM).await();
            float[] v = t.toFloatArray();
            int[] out = new int[v.length];
            for (int i = 0; i < v.length; i++) {
                out[i] = (int) v[i];
            }
            return out;
        }
    }

    @Test
    void a2x2x2MeshGivesEveryRankItsCoordinatesAndGroups() throws Exception {
        try (EmbeddedZooKeeper zk = EmbeddedZooKeeper.startWithoutAuth();
             ZooKeeperStore store = ZooKeeperStore.connect(zk.connectString(), "store", Duration.ofSeconds(10))) {
            List<String> got = CommHarness.run(store, 8, Duration.ofSeconds(60), world -> {
                try (DeviceMesh m = new DeviceMesh(world, 2, 2, 2)) {
                    return world.rank() + ":" + m.ppRank() + "," + m.dpRank() + "," + m.tpRank() + " tp"
                            + java.util.Arrays.toString(members(m.tpGroup(), world.rank())) + " dp"
                            + java.util.Arrays.toString(members(m.dpGroup(), world.rank())) + " pp"
                            + java.util.Arrays.toString(members(m.ppGroup(), world.rank()));
                }
            });
            List<String> expected = new ArrayList<>();
            for (int r = 0; r < 8; r++) {
                int t = r % 2;
                int d = (r / 2) % 2;
                int p = r / 4;
                int tp0 = DeviceMesh.worldRank(p, d, 0, 2, 2);
                int dp0 = DeviceMesh.worldRank(p, 0, t, 2, 2);
                int pp0 = DeviceMesh.worldRank(0, d, t, 2, 2);
                expected.add(r + ":" + p + "," + d + "," + t + " tp[" + tp0 + ", " + (tp0 + 1) + "] dp[" + dp0 + ", "
                        + (dp0 + 2) + "] pp[" + pp0 + ", " + (pp0 + 4) + "]");
            }
            assertEquals(expected, got);
        }
    }

    @Test
    void aMeshThatIsNotTheWorldIsRefused() throws Exception {
        try (EmbeddedZooKeeper zk = EmbeddedZooKeeper.startWithoutAuth();
             ZooKeeperStore store = ZooKeeperStore.connect(zk.connectString(), "store", Duration.ofSeconds(10))) {
            Exception e = assertThrows(Exception.class, () -> CommHarness.run(store, 4, Duration.ofSeconds(20),
                    world -> new DeviceMesh(world, 2, 2, 2)));
            assertTrue(e.getMessage().contains("dp=2 x pp=2 x tp=2 = 8 must equal the world size 4"), e.getMessage());
            e = assertThrows(Exception.class, () -> CommHarness.run(store, 1, Duration.ofSeconds(20),
                    world -> new DeviceMesh(world, 0, 1, 1)));
            assertTrue(e.getMessage().contains("must be >= 1"), e.getMessage());
        }
    }
}
