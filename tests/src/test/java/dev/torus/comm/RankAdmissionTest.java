package dev.torus.comm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.zookeeper.EmbeddedZooKeeper;
import dev.torus.rendezvous.JobSecret;
import dev.torus.rendezvous.StoreAuthException;
import dev.torus.zookeeper.ZooKeeperStore;
import dev.torus.tensor.Tensor;
import dev.torus.testing.CommHarness;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Who may take a rank: the rank records carry an HMAC proof of the job secret, a rank is
 * claimed once, and a process without the secret is refused, by the store (ACLs) or by
 * the other ranks (the proof).
 */
class RankAdmissionTest {
    static EmbeddedZooKeeper open;
    static EmbeddedZooKeeper secured;
    static ExecutorService pool;

    @BeforeAll
    static void start() {
        open = EmbeddedZooKeeper.startWithoutAuth();
        secured = EmbeddedZooKeeper.start();
        pool = Executors.newCachedThreadPool();
    }

    @AfterAll
    static void stop() throws InterruptedException {
        pool.shutdownNow();
        pool.awaitTermination(10, TimeUnit.SECONDS);
        secured.close();
        open.close();
    }

    private static Future<Communicator> join(String endpoint, String run, int rank, int size, JobSecret secret, long initMs) {
        return pool.submit(() -> {
            CommunicatorBuilder b = Communicator.builder().rank(rank).size(size).endpoint(endpoint).runId(run)
                    .timeout(Duration.ofSeconds(20)).initTimeout(Duration.ofMillis(initMs));
            if (secret != null) {
                b.jobSecret(secret);
            }
            return b.build();
        });
    }

    private static Throwable failure(Future<Communicator> f) throws Exception {
        try {
            Communicator c = f.get(60, TimeUnit.SECONDS);
            c.close();
            throw new AssertionError("expected this rank to fail");
        } catch (ExecutionException e) {
            return e.getCause();
        }
    }

    private static void awaitKey(ZooKeeperStore s, String key) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (s.tryGet(key) == null) {
            assertTrue(System.nanoTime() < deadline, "key " + key + " did not appear");
            Thread.sleep(20);
        }
    }

    @Test
    void ranksWithTheSecretFormTheWorldAndReduce() throws Exception {
        JobSecret secret = JobSecret.generate();
        String run = CommHarness.uniqueRunId("admitted");
        List<Future<Communicator>> fs = new ArrayList<>();
        for (int r = 0; r < 3; r++) {
            fs.add(join(secured.connectString(), run, r, 3, secret, 20_000));
        }
        List<Communicator> comms = new ArrayList<>();
        for (Future<Communicator> f : fs) {
            comms.add(f.get(60, TimeUnit.SECONDS));
        }
        List<Future<Float>> sums = new ArrayList<>();
        for (Communicator c : comms) {
            sums.add(pool.submit(() -> {
                try (Tensor t = Tensor.fromArray(new float[] {c.rank() + 1}, 1)) {
                    c.allReduce(t, ReduceOp.SUM).await();
                    return t.toFloatArray()[0];
                }
            }));
        }
        for (Future<Float> s : sums) {
            assertEquals(6f, s.get(60, TimeUnit.SECONDS));
        }
        for (Communicator c : comms) {
            c.close();
        }
    }

    @Test
    void aWorkerWithoutTheSecretCannotReachASecuredRun() throws Exception {
        String run = CommHarness.uniqueRunId("nosecret");
        Throwable t = failure(join(secured.connectString(), run, 1, 2, null, 5_000));
        assertTrue(t instanceof StoreAuthException && t.getMessage().contains("requires authentication"), t.toString());
    }

    @Test
    void aWorkerWithAnotherSecretGetsAClearErrorNamingTheSecret() throws Exception {
        JobSecret secret = JobSecret.generate();
        JobSecret other = JobSecret.generate();
        String run = CommHarness.uniqueRunId("wrongsecret");
        Future<Communicator> real = join(secured.connectString(), run, 0, 2, secret, 4_000);
        try (ZooKeeperStore s = ZooKeeperStore.builder(secured.connectString()).jobSecret(secret).build()) {
            awaitKey(s, "runs/" + run + "/world/gen-0/gloo-addr/0");
        }
        long t0 = System.nanoTime();
        Throwable t = failure(join(secured.connectString(), run, 1, 2, other, 4_000));
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(t instanceof StoreAuthException, t.toString());
        assertTrue(t.getMessage().contains(other.fingerprint()) && t.getMessage().contains("job secret"), t.getMessage());
        assertTrue(ms < 4_000, "the wrong secret is refused at once, not at the init bound: " + ms + " ms");
        Throwable waited = failure(real);
        assertTrue(waited instanceof CommTimeoutException || waited instanceof dev.torus.rendezvous.StoreTimeoutException,
                "the real rank 0 waits out its bound: " + waited);
    }

    /**
     * Every ZooKeeper server honours the job's ACLs, so a process without the secret that
     * creates the run first (on a server that does not enforce authentication) has squatted
     * the run id: the job refuses to use it rather than trust anything below it.
     */
    @Test
    void aRunIdTakenFirstByAProcessWithoutTheSecretIsRefused() throws Exception {
        JobSecret secret = JobSecret.generate();
        String run = CommHarness.uniqueRunId("squat");
        Future<Communicator> rogue = join(open.connectString(), run, 1, 2, null, 4_000);
        try (ZooKeeperStore s = ZooKeeperStore.connect(open.connectString(), "store", Duration.ofSeconds(10))) {
            awaitKey(s, "runs/" + run + "/world/gen-0/gloo-addr/1");
        }
        Throwable t = failure(join(open.connectString(), run, 0, 2, secret, 4_000));
        // the rogue made the shared parents too (open to all, so run ids are listable), or only the run node
        assertTrue(t instanceof StoreAuthException && (t.getMessage().contains("taken by someone else")
                || t.getMessage().contains("can be read by anyone")), t.toString());
        failure(rogue);
    }

    /**
     * On a store without ACLs (a {@code Store} of the caller's that has none), a process
     * without the secret can write rank 1's record first; the proof keeps it out, and every
     * rank says so.
     */
    @Test
    void aRogueRecordWithoutProofIsRefusedByEveryRankNamingTheRank() throws Exception {
        JobSecret secret = JobSecret.generate();
        String run = CommHarness.uniqueRunId("rogue");
        try (ZooKeeperStore noAcl = ZooKeeperStore.connect(open.connectString(), "store", Duration.ofSeconds(10))) {
            java.util.function.BiFunction<Integer, JobSecret, Future<Communicator>> rank = (r, js) -> pool.submit(() -> {
                CommunicatorBuilder b = Communicator.builder().rank(r).size(3).store(noAcl).runId(run)
                        .timeout(Duration.ofSeconds(20)).initTimeout(Duration.ofMillis(8_000));
                if (js != null) {
                    b.jobSecret(js);
                }
                return b.build();
            });
            Future<Communicator> rogue = rank.apply(1, null);
            awaitKey(noAcl, "runs/" + run + "/world/gen-0/gloo-addr/1");
            Future<Communicator> r0 = rank.apply(0, secret);
            Future<Communicator> r2 = rank.apply(2, secret);
            for (Future<Communicator> f : List.of(r0, r2)) {
                Throwable t = failure(f);
                assertTrue(t instanceof CommSecurityException, t.toString());
                assertEquals(1, ((CommSecurityException) t).rank());
                assertTrue(t.getMessage().contains("rank 1 was not admitted") && t.getMessage().contains("no proof"),
                        t.getMessage());
            }
            Throwable t = failure(rogue);
            assertTrue(t instanceof CommSecurityException && t.getMessage().contains("has none"), t.toString());
            // the real rank 1, arriving after the rogue, finds its rank taken and says so instead of overwriting it
            Throwable late = failure(rank.apply(1, secret));
            assertTrue(late instanceof DuplicateRankException && late.getMessage().contains("claimed twice"),
                    late.toString());
        }
    }

    @Test
    void aRankClaimedTwiceFailsEveryRankWithAnErrorNamingIt() throws Exception {
        JobSecret secret = JobSecret.generate();
        String run = CommHarness.uniqueRunId("dup");
        Future<Communicator> first = join(secured.connectString(), run, 1, 3, secret, 10_000);
        try (ZooKeeperStore s = ZooKeeperStore.builder(secured.connectString()).jobSecret(secret).build()) {
            awaitKey(s, "runs/" + run + "/world/gen-0/gloo-addr/1");
            Throwable second = failure(join(secured.connectString(), run, 1, 3, secret, 10_000));
            assertTrue(second instanceof DuplicateRankException, second.toString());
            assertEquals(1, ((DuplicateRankException) second).rank());
            awaitKey(s, "runs/" + run + "/world/gen-0/gloo-addr-duplicate/1");
            byte[] before = s.tryGet("runs/" + run + "/world/gen-0/gloo-addr/1");
            Future<Communicator> r0 = join(secured.connectString(), run, 0, 3, secret, 10_000);
            Future<Communicator> r2 = join(secured.connectString(), run, 2, 3, secret, 10_000);
            for (Future<Communicator> f : List.of(first, r0, r2)) {
                Throwable t = failure(f);
                assertTrue(t instanceof DuplicateRankException, t.toString());
                assertEquals(1, ((DuplicateRankException) t).rank());
                assertTrue(t.getMessage().contains("[1]"), t.getMessage());
            }
            assertArrayEquals(before, s.tryGet("runs/" + run + "/world/gen-0/gloo-addr/1"), "never overwritten");
        }
    }

    @Test
    void aRecordIsBoundToItsRunGenerationRankAndKindAndCannotBeAltered() {
        JobSecret secret = JobSecret.generate();
        ZooKeeperStore none = null;
        CommSpec spec = new CommSpec(new StoreLease(none, false), "r", "world", 3, 1, new int[] {0, 1},
                Duration.ofSeconds(1), Duration.ofSeconds(1), false, "127.0.0.1", GlooAlgorithm.AUTO, -1, secret, Transport.AUTO);
        byte[] payload = {1, 2, 3, 4};
        byte[] rec = Rendezvous.frame(spec, "gloo-addr", 1, payload);
        assertArrayEquals(payload, Rendezvous.unframe(spec, "gloo-addr", 1, rec, "k"));
        byte[] flipped = rec.clone();
        flipped[Rendezvous.HEADER] ^= 1; // one payload bit
        assertThrows(CommSecurityException.class, () -> Rendezvous.unframe(spec, "gloo-addr", 1, flipped, "k"));
        assertThrows(CommSecurityException.class, () -> Rendezvous.unframe(spec, "nccl-id", 1, rec, "k"),
                "replayed into another exchange");
        CommSpec otherRun = new CommSpec(spec.lease(), "r2", "world", 3, 1, new int[] {0, 1}, spec.timeout(),
                spec.initTimeout(), false, "127.0.0.1", GlooAlgorithm.AUTO, -1, secret, Transport.AUTO);
        assertThrows(CommSecurityException.class, () -> Rendezvous.unframe(otherRun, "gloo-addr", 1, rec, "k"),
                "replayed into another run");
        CommSpec otherSecret = new CommSpec(spec.lease(), "r", "world", 3, 1, new int[] {0, 1}, spec.timeout(),
                spec.initTimeout(), false, "127.0.0.1", GlooAlgorithm.AUTO, -1, JobSecret.generate(), Transport.AUTO);
        assertThrows(CommSecurityException.class, () -> Rendezvous.unframe(otherSecret, "gloo-addr", 1, rec, "k"));
        byte[] truncated = java.util.Arrays.copyOf(rec, rec.length - 1);
        assertThrows(CommException.class, () -> Rendezvous.unframe(spec, "gloo-addr", 1, truncated, "k"));
    }
}
