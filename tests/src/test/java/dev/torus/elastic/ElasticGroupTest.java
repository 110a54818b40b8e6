package dev.torus.elastic;

import static dev.torus.testing.BadArgument.assertMessage;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.comm.CommException;
import dev.torus.comm.Communicator;
import dev.torus.comm.ReduceOp;
import dev.torus.comm.StaleGenerationException;
import dev.torus.zookeeper.EmbeddedZooKeeper;
import dev.torus.zookeeper.ZooKeeperStore;
import dev.torus.tensor.Tensor;
import dev.torus.testing.CommHarness;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Members as threads, each with its own store session (its liveness): a job forms,
 * grows at a step boundary, lets a member leave gracefully, and survives a member that
 * stops (its heartbeat ends, its communicator aborts), rebuilding the communicator in
 * place; the replicas stay identical and the survivors roll back on failure.
 */
class ElasticGroupTest {
    static EmbeddedZooKeeper zk;
    static ExecutorService pool;

    @BeforeAll
    static void start() {
        zk = EmbeddedZooKeeper.startWithoutAuth();
        pool = Executors.newCachedThreadPool();
    }

    @AfterAll
    static void stop() throws InterruptedException {
        pool.shutdownNow();
        pool.awaitTermination(10, TimeUnit.SECONDS);
        zk.close();
    }

    private static ElasticOptions opts(String run, int min, int max) {
        return new ElasticOptions(run, min, max, Duration.ofSeconds(1), Duration.ofSeconds(5), Duration.ofSeconds(20));
    }

    /** A member's loop: per step, sum (step + 1) over the group; the value must be identical on every member. */
    private static final class Member {
        final List<MembershipChange> changes = new CopyOnWriteArrayList<>();
        final List<float[]> totals = new CopyOnWriteArrayList<>();
        volatile ElasticGroup group;
        volatile long lastStep = -1;
    }

    private static Future<Member> member(String run, int min, int max, int steps, long leaveAt, long crashAt,
                                         AtomicBoolean go) {
        return pool.submit(() -> {
            Member me = new Member();
            try (ZooKeeperStore s = ZooKeeperStore.connect(zk.connectString(), "store", Duration.ofSeconds(10));
                 ElasticGroup g = ElasticGroup.join(s, opts(run, min, max), Duration.ofSeconds(60))) {
                me.group = g;
                // the step count lives in the group's committed state: joiners take it from rank 0
                long step = g.joinedRunning() ? -1 : 0;
                float[] acc = {0};
                while (step < steps) {
                    if (step < 0) {
                        step = syncStep(g, 0, acc);
                    }
                    if (step == leaveAt) {
                        g.requestLeave();
                    }
                    if (step == crashAt) {
                        g.stopHeartbeatForTest();
                        g.comm().abort("simulated crash");
                        return me;
                    }
                    MembershipChange c = g.boundary();
                    if (c != null) {
                        me.changes.add(c);
                        if (!g.isMember()) {
                            return me; // left
                        }
                        if (c.needsStateSync()) {
                            // sync, then the boundary again: the joiners' first calls are the same two
                            step = syncStep(g, step, acc);
                            continue;
                        }
                    }
                    try (Tensor t = Tensor.fromArray(new float[] {1f}, 1)) {
                        g.comm().allReduce(t, ReduceOp.SUM).await();
                        acc[0] += t.toFloatArray()[0];
                        me.totals.add(new float[] {step, g.comm().size(), acc[0]});
                    } catch (CommException e) {
                        MembershipChange r = g.recover(e);
                        me.changes.add(r);
                        step = syncStep(g, step, acc);
                        continue;
                    }
                    step++;
                    me.lastStep = step;
                    while (!go.get() && step >= 3) {
                        Thread.sleep(10); // hold at step 3 until the test lets everyone go on
                    }
                }
                return me;
            }
        });
    }

    /** The lowest rank's step and accumulator go to everyone (a stand-in for ElasticState.sync). */
    private static long syncStep(ElasticGroup g, long step, float[] acc) {
        try (Tensor t = Tensor.fromArray(new float[] {g.comm().rank() == 0 ? step : 0f, g.comm().rank() == 0 ? acc[0] : 0f}, 2)) {
            g.comm().broadcast(t, 0).await();
            float[] v = t.toFloatArray();
            acc[0] = v[1];
            return (long) v[0];
        }
    }

    @Test
    void aJobFormsGrowsAtAStepBoundaryAndLetsAMemberLeave() throws Exception {
        String run = CommHarness.uniqueRunId("grow");
        AtomicBoolean go = new AtomicBoolean(false);
        Future<Member> a = member(run, 2, 4, 12, -1, -1, go);
        Future<Member> b = member(run, 2, 4, 12, 6, -1, go);
        long t0 = System.nanoTime();
        while (true) { // the two incumbents reach step 3 before the joiner comes
            Thread.sleep(20);
            assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(60), "the job did not form");
            if (a.isDone() || b.isDone()) {
                a.get();
                b.get();
            }
            if (runningAt(run) >= 2) {
                break;
            }
        }
        Future<Member> c = member(run, 2, 4, 12, -1, -1, go);
        Thread.sleep(1500);
        go.set(true);
        Member ma = a.get(120, TimeUnit.SECONDS);
        Member mb = b.get(120, TimeUnit.SECONDS);
        Member mc = c.get(120, TimeUnit.SECONDS);
        // a join admitted at a boundary and b's graceful leave (in one rebuild or two), no failure
        assertTrue(!ma.changes.isEmpty(), "no change seen");
        assertTrue(ma.changes.stream().noneMatch(MembershipChange::failure), "a join or a graceful leave rolls nothing back: "
                + ma.changes);
        assertEquals(List.of(mc.group.id()), ma.changes.stream().flatMap(ch -> ch.joined().stream()).toList());
        assertEquals(List.of(mb.group.id()), ma.changes.stream().flatMap(ch -> ch.left().stream()).toList());
        assertEquals(2, ma.changes.get(0).worldBefore());
        assertFalse(mb.group.isMember());
        // the survivors agree on every step's total, and the joiner took the job's count
        assertEquals(lastTotal(ma), lastTotal(mc));
        assertEquals(12, ma.lastStep);
        assertEquals(12, mc.lastStep);
        assertThrows(StaleGenerationException.class, mb.group::boundary, "a member that left is fenced");
    }

    private static int runningAt(String run) {
        try (ZooKeeperStore s = ZooKeeperStore.connect(zk.connectString(), "store", Duration.ofSeconds(10))) {
            byte[] g = s.tryGet("runs/" + run + "/elastic/gen");
            return g == null ? 0 : 2;
        }
    }

    private static float lastTotal(Member m) {
        return m.totals.get(m.totals.size() - 1)[2];
    }

    /**
     * Three members with minSize 3; one stops at step 4. The two survivors are below the minimum, so
     * they announce it and wait; a replacement that joins then brings the job back to 3.
     */
    @Test
    void survivorsOfAStoppedMemberBelowTheMinimumWaitForAReplacementAndGoOn() throws Exception {
        String run = CommHarness.uniqueRunId("crash");
        AtomicBoolean go = new AtomicBoolean(true);
        List<Future<Member>> ms = new ArrayList<>();
        ms.add(member(run, 3, 3, 10, -1, -1, go));
        ms.add(member(run, 3, 3, 10, -1, 4, go));
        ms.add(member(run, 3, 3, 10, -1, -1, go));
        // wait for the stop, and for the survivors to ask for a replacement
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        try (ZooKeeperStore s = ZooKeeperStore.connect(zk.connectString(), "store", Duration.ofSeconds(10))) {
            while (s.tryGet("runs/" + run + "/elastic/below-min") == null) {
                assertTrue(System.nanoTime() < deadline, "the survivors never announced that they are below the minimum");
                Thread.sleep(20);
            }
        }
        Future<Member> replacement = member(run, 3, 3, 10, -1, -1, go);
        List<Member> done = new ArrayList<>();
        for (Future<Member> f : ms) {
            done.add(f.get(120, TimeUnit.SECONDS));
        }
        Member fresh = replacement.get(120, TimeUnit.SECONDS);
        Member crashed = done.stream().filter(m -> m.lastStep == 4).findFirst().orElseThrow(
                () -> new AssertionError("no member stopped at step 4"));
        List<Member> survivors = new ArrayList<>(done);
        survivors.remove(crashed);
        for (Member m : survivors) {
            MembershipChange r = m.changes.stream().filter(MembershipChange::failure).findFirst()
                    .orElseThrow(() -> new AssertionError("no recovery: " + m.changes));
            assertEquals(3, r.worldBefore());
            assertEquals(3, r.worldAfter(), "the replacement restores the minimum: " + r);
            assertEquals(List.of(crashed.group.id()), r.left());
            assertEquals(List.of(fresh.group.id()), r.joined());
            assertTrue(r.detectionMillis() >= 1000, "detection waited for the bound (1 s): " + r);
            assertEquals(10, m.lastStep);
            System.out.println("recovery below the minimum, with a replacement: " + r);
        }
        assertEquals(10, fresh.lastStep);
        assertEquals(lastTotal(survivors.get(0)), lastTotal(survivors.get(1)));
        assertEquals(lastTotal(survivors.get(0)), lastTotal(fresh));
    }

    /** A split by rank parity is cut again from every generation: after a leave 4 -> 3 its sizes are 2 and 1. */
    @Test
    void splitSubCommunicatorsAreRebuiltWithEveryGeneration() throws Exception {
        String run = CommHarness.uniqueRunId("split");
        java.util.Map<String, ElasticGroup.SplitRule> rules = java.util.Map.of("parity", (rank, size) -> rank % 2);
        List<Future<List<String>>> fs = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            fs.add(pool.submit(() -> {
                List<String> seen = new ArrayList<>();
                try (ZooKeeperStore s = ZooKeeperStore.connect(zk.connectString(), "store", Duration.ofSeconds(10));
                     ElasticGroup g = ElasticGroup.join(s, opts(run, 3, 4), Duration.ofSeconds(60), rules)) {
                    while (g.comm().size() < 4) { // the fourth may be admitted after the first three formed
                        g.boundary();
                        Thread.sleep(20);
                    }
                    for (int step = 0; step < 8; step++) {
                        if (step == 3 && g.comm().rank() == 3) {
                            g.requestLeave();
                        }
                        MembershipChange c = g.boundary();
                        if (c != null && !g.isMember()) {
                            seen.add("left");
                            return seen;
                        }
                        Communicator sub = g.split("parity");
                        try (Tensor t = Tensor.fromArray(new float[] {1f}, 1)) {
                            sub.allReduce(t, ReduceOp.SUM).await();
                            seen.add("world " + g.comm().size() + " rank " + g.comm().rank() + " parity-size "
                                    + sub.size() + " sum " + (int) t.toFloatArray()[0]);
                        }
                    }
                    assertThrows(IllegalArgumentException.class, () -> g.split("nope"));
                }
                return seen;
            }));
        }
        int leavers = 0;
        for (Future<List<String>> f : fs) {
            List<String> seen = f.get(120, TimeUnit.SECONDS);
            if (seen.get(seen.size() - 1).equals("left")) {
                leavers++;
                continue;
            }
            assertTrue(seen.get(0).startsWith("world 4") && seen.get(0).endsWith("parity-size 2 sum 2"), seen.toString());
            String last = seen.get(seen.size() - 1);
            assertTrue(last.startsWith("world 3"), seen.toString());
            int rank = Integer.parseInt(last.split(" ")[3]);
            int expected = rank % 2 == 0 ? 2 : 1; // ranks 0 and 2 even, rank 1 odd
            assertTrue(last.endsWith("parity-size " + expected + " sum " + expected), seen.toString());
        }
        assertEquals(1, leavers);
    }

    /** MIN 2, one of two leaves: the leaver is out at once; the stayer waits for a replacement, then fails. */
    @Test
    void aLeaveBelowTheMinimumLetsTheLeaverGoAndTheStayerWaitsForAReplacement() throws Exception {
        String run = CommHarness.uniqueRunId("leave-min");
        ElasticOptions o = new ElasticOptions(run, 2, 2, Duration.ofSeconds(1), Duration.ofSeconds(5),
                Duration.ofSeconds(20), Duration.ofSeconds(3));
        List<Future<String>> fs = new ArrayList<>();
        for (int i = 0; i < 2; i++) {
            fs.add(pool.submit(() -> {
                try (ZooKeeperStore s = ZooKeeperStore.connect(zk.connectString(), "store", Duration.ofSeconds(10));
                     ElasticGroup g = ElasticGroup.join(s, o, Duration.ofSeconds(60))) {
                    if (g.comm().rank() == 1) {
                        g.requestLeave();
                    }
                    long t0 = System.nanoTime();
                    try {
                        MembershipChange c = g.boundary();
                        return (g.isMember() ? "stayed " : "left ") + c + " after " + (System.nanoTime() - t0) / 1_000_000;
                    } catch (JobBelowMinimumException e) {
                        return "below-min after " + (System.nanoTime() - t0) / 1_000_000 + " ms: " + e.getMessage();
                    }
                }
            }));
        }
        List<String> r = List.of(fs.get(0).get(60, TimeUnit.SECONDS), fs.get(1).get(60, TimeUnit.SECONDS));
        assertTrue(r.stream().anyMatch(x -> x.startsWith("left ")), r.toString());
        String stayer = r.stream().filter(x -> x.startsWith("below-min")).findFirst()
                .orElseThrow(() -> new AssertionError("the stayer must fail below the minimum: " + r));
        assertTrue(stayer.contains("fewer than minSize 2") && stayer.contains("joinTimeout (3000 ms)"), stayer);
        long leftMs = Long.parseLong(r.stream().filter(x -> x.startsWith("left ")).findFirst().orElseThrow()
                .replaceAll(".* after ", ""));
        assertTrue(leftMs < 2000, "the leaver did not wait for replacements: " + leftMs + " ms");
    }

    @Test
    void badOptionsAreNamed() {
        assertMessage("runId", () -> ElasticOptions.of("a/b", 1, 2));
        assertMessage("minSize", () -> ElasticOptions.of("r", 3, 2));
        assertMessage("detectionBound", () -> new ElasticOptions("r", 1, 2, Duration.ofMillis(10), Duration.ofSeconds(1),
                Duration.ofSeconds(1)));
    }
}
