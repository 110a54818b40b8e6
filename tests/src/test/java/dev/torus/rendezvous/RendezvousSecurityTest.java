package dev.torus.rendezvous;

import dev.torus.zookeeper.EmbeddedZooKeeper;

import dev.torus.zookeeper.ZooKeeperStore;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The embedded ZooKeeper with authentication on, against a rogue client that uses no
 * Torus code: a plain ZooKeeper client, with no credential or with one of its own.
 */
class RendezvousSecurityTest {
    static EmbeddedZooKeeper zk;
    static final JobSecret JOB = JobSecret.generate();
    static ZooKeeperStore job;

    @BeforeAll
    static void start() {
        zk = EmbeddedZooKeeper.start();
        job = ZooKeeperStore.builder(zk.connectString()).jobSecret(JOB).build();
        job.set("runs/victim/world/generation", "0".getBytes(StandardCharsets.US_ASCII));
        job.set("runs/victim/world/gen-0/members", "0,1".getBytes(StandardCharsets.US_ASCII));
    }

    @AfterAll
    static void stop() {
        job.close();
        zk.close();
    }

    private static ZooKeeper rawClient(String digest) throws Exception {
        CountDownLatch connected = new CountDownLatch(1);
        ZooKeeper z = new ZooKeeper(zk.connectString(), 5_000, e -> {
            if (e.getState() == org.apache.zookeeper.Watcher.Event.KeeperState.SyncConnected) {
                connected.countDown();
            }
        });
        assertTrue(connected.await(10, TimeUnit.SECONDS), "raw client did not connect");
        if (digest != null) {
            z.addAuthInfo("digest", digest.getBytes(StandardCharsets.US_ASCII));
        }
        return z;
    }

    @Test
    void theEmbeddedServerRefusesAClientWithoutCredentials() throws Exception {
        assertEquals(List.of("digest"), zk.authSchemes());
        ZooKeeper rogue = rawClient(null);
        try {
            // the server answers the first request with AUTH_FAILED and drops the session
            Exception e = assertThrows(KeeperException.class,
                    () -> rogue.getData("/torus/store/runs/victim/world/generation", false, null));
            assertTrue(e instanceof KeeperException.SessionClosedRequireAuthException
                    || e instanceof KeeperException.AuthFailedException || e instanceof KeeperException.ConnectionLossException
                    || e instanceof KeeperException.SessionExpiredException, e.toString());
        } finally {
            rogue.close();
        }
        try (ZooKeeperStore anon = ZooKeeperStore.connect(zk.connectString(), "store", Duration.ofSeconds(10))) {
            StoreAuthException e = assertThrows(StoreAuthException.class,
                    () -> anon.tryGet("runs/victim/world/generation"));
            assertTrue(e.getMessage().contains("requires authentication") && e.getMessage().contains(JobSecret.ENV),
                    e.getMessage());
        }
    }

    @Test
    void aRogueWithACredentialOfItsOwnCanNeitherReadNorWriteNorListTheRun() throws Exception {
        ZooKeeper rogue = rawClient("mallory:guess");
        try {
            String gen = "/torus/store/runs/victim/world/generation";
            assertThrows(KeeperException.NoAuthException.class, () -> rogue.getData(gen, false, null));
            assertThrows(KeeperException.NoAuthException.class, () -> rogue.setData(gen, "9".getBytes(), -1));
            assertThrows(KeeperException.NoAuthException.class, () -> rogue.delete(gen, -1));
            assertThrows(KeeperException.NoAuthException.class, () -> rogue.create(
                    "/torus/store/runs/victim/world/gen-0/members2", new byte[1], ZooDefs.Ids.OPEN_ACL_UNSAFE,
                    CreateMode.PERSISTENT));
            // no listing of run ids, nor of anything above them
            assertThrows(KeeperException.NoAuthException.class, () -> rogue.getChildren("/torus/store/runs", false));
            assertThrows(KeeperException.NoAuthException.class, () -> rogue.getChildren("/torus/store", false));
            assertThrows(KeeperException.NoAuthException.class, () -> rogue.getChildren("/torus", false));
            assertThrows(KeeperException.NoAuthException.class,
                    () -> rogue.getChildren("/torus/store/runs/victim", false));
            // a pre-written generation or member list of a run it does not own is impossible too
            assertThrows(KeeperException.NoAuthException.class, () -> rogue.create(
                    "/torus/store/runs/victim/world/gen-1", new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE,
                    CreateMode.PERSISTENT));
        } finally {
            rogue.close();
        }
        assertArrayEquals("0".getBytes(), job.tryGet("runs/victim/world/generation"), "the job's value is untouched");
        assertEquals(List.of("gen-0", "generation"), job.list("runs/victim/world"));
    }

    @Test
    void aWrongSecretGetsAClearErrorAndChangesNothing() {
        JobSecret other = JobSecret.generate();
        try (ZooKeeperStore wrong = ZooKeeperStore.builder(zk.connectString()).jobSecret(other).build()) {
            StoreAuthException read = assertThrows(StoreAuthException.class,
                    () -> wrong.tryGet("runs/victim/world/generation"));
            assertTrue(read.getMessage().contains("job secret (" + other.fingerprint() + ")")
                    && read.getMessage().contains("runs/victim/world/generation"), read.getMessage());
            assertThrows(StoreAuthException.class, () -> wrong.set("runs/victim/world/generation", "5".getBytes()));
            assertThrows(StoreAuthException.class, () -> wrong.compareSet("runs/victim/world/gen-0/members", null,
                    "1,0".getBytes()));
            assertThrows(StoreAuthException.class, () -> wrong.delete("runs/victim"));
            assertThrows(StoreAuthException.class, () -> wrong.list("runs"));
            // its own run is its own: another job's credential shares the server, not the keys
            wrong.set("runs/mine/x", new byte[] {1});
            assertArrayEquals(new byte[] {1}, wrong.tryGet("runs/mine/x"));
            assertThrows(StoreAuthException.class, () -> job.tryGet("runs/mine/x"));
        }
        assertArrayEquals("0".getBytes(), job.tryGet("runs/victim/world/generation"));
    }

    /**
     * Any client may create a child of the shared runs node: a rogue that creates a run id
     * first, open to all, and plants keys below it must not steer the job that later uses
     * that run id (a forged generation, a forged failure marker).
     */
    @Test
    void aRunIdSquattedByAnotherCredentialIsRefusedNotUsed() throws Exception {
        ZooKeeper rogue = rawClient("mallory:guess");
        try {
            rogue.create("/torus/store/runs/squatted", new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            rogue.create("/torus/store/runs/squatted/world", new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE,
                    CreateMode.PERSISTENT);
            rogue.create("/torus/store/runs/squatted/world/generation", "99".getBytes(), ZooDefs.Ids.OPEN_ACL_UNSAFE,
                    CreateMode.PERSISTENT);
        } finally {
            rogue.close();
        }
        try (ZooKeeperStore s = ZooKeeperStore.builder(zk.connectString()).jobSecret(JOB).build()) {
            StoreAuthException read = assertThrows(StoreAuthException.class,
                    () -> s.tryGet("runs/squatted/world/generation"));
            assertTrue(read.getMessage().contains("taken by someone else") && read.getMessage().contains("runs/squatted"),
                    read.getMessage());
            assertThrows(StoreAuthException.class, () -> s.set("runs/squatted/world/gen-0/members", "0,1".getBytes()));
            assertThrows(StoreAuthException.class, () -> s.list("runs/squatted/world"));
            // the job's own runs are unaffected
            s.set("runs/clean/world/generation", "0".getBytes());
            assertArrayEquals("0".getBytes(), s.tryGet("runs/clean/world/generation"));
        }
    }

    @Test
    void theSecretIsNeverPrintedAndBadSecretsAreRefusedByName() {
        JobSecret s = JobSecret.generate();
        assertFalse(s.toString().contains(s.toHex()));
        assertEquals(s, JobSecret.fromHex("x", s.toHex()));
        String typo = s.toHex().substring(0, 63) + "g";
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> JobSecret.fromHex("environment variable TORUS_JOB_SECRET", typo));
        assertTrue(e.getMessage().contains("TORUS_JOB_SECRET") && !e.getMessage().contains(typo.substring(0, 20)),
                e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> JobSecret.fromHex("s", "abcd"));
        assertThrows(IllegalArgumentException.class, () -> JobSecret.fromHex("s", null));
        // length prefixes: moving a byte between parts changes the proof
        assertFalse(java.util.Arrays.equals(s.mac("ab".getBytes(), "c".getBytes()), s.mac("a".getBytes(), "bc".getBytes())));
        assertTrue(s.verify(s.mac("a".getBytes()), "a".getBytes()));
        assertFalse(JobSecret.generate().verify(s.mac("a".getBytes()), "a".getBytes()));
        assertThrows(IllegalArgumentException.class, () -> ZooKeeperStore.builder(zk.connectString()).jobSecret(null));
        assertThrows(IllegalArgumentException.class, () -> ZooKeeperStore.builder(" "));
        assertThrows(IllegalArgumentException.class,
                () -> ZooKeeperStore.builder(zk.connectString()).authorization("", new byte[1]));
        assertThrows(IllegalArgumentException.class, () -> EmbeddedZooKeeper.start(new EmbeddedZooKeeper.Options()
                .authSchemes("Digest!")));
    }
}
