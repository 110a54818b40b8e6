package dev.torus.elastic;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.zookeeper.EmbeddedZooKeeper;
import dev.torus.testing.CommHarness;
import dev.torus.testing.ElasticWorker;
import dev.torus.testing.WorkerProcesses;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Real worker processes: two form a job, a third process joins the running job, one
 * incumbent is killed with SIGKILL; the survivors detect it, roll back to their last
 * commit, rebuild in place (same PIDs) and finish with identical state.
 */
@Tag("multiprocess")
class ElasticProcessTest {

    private static final class Worker implements AutoCloseable {
        final Process p;
        final List<String> out = new CopyOnWriteArrayList<>();

        Worker(String endpoint, String run, int steps) throws Exception {
            this(endpoint, run, steps, java.util.Map.of());
        }

        Worker(String endpoint, String run, int steps, java.util.Map<String, String> extra) throws Exception {
            ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", WorkerProcesses.classpath(),
                    (extra.containsKey("ELASTIC_HALT_AT") ? FaultInjectingWorker.class : ElasticWorker.class).getName());
            pb.environment().put("TORUS_RDZV_ENDPOINT", endpoint);
            pb.environment().put("TORUS_RUN_ID", run);
            pb.environment().put("ELASTIC_MIN", "2");
            pb.environment().put("ELASTIC_MAX", "4");
            pb.environment().put("ELASTIC_STEPS", Integer.toString(steps));
            pb.environment().putAll(extra);
            pb.redirectErrorStream(true);
            p = pb.start();
            Thread t = new Thread(() -> {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                    String line;
                    while ((line = r.readLine()) != null) {
                        if (!line.contains(" INFO ") && !line.contains(" WARN ")) {
                            out.add(line);
                        }
                    }
                } catch (Exception ignored) {
                    // process gone
                }
            });
            t.setDaemon(true);
            t.start();
        }

        void await(Predicate<List<String>> cond, String what) throws InterruptedException {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
            while (!cond.test(out)) {
                assertTrue(System.nanoTime() < deadline, "timed out waiting for " + what + "; out " + out);
                Thread.sleep(50);
            }
        }

        int lastStep() {
            int s = -1;
            for (String l : out) {
                if (l.startsWith("STEP ")) {
                    s = Integer.parseInt(l.split(" ")[1]);
                }
            }
            return s;
        }

        /** step -> live parameter hash, for steps at or after {@code from}. */
        java.util.Map<Integer, String> hashes(int from) {
            java.util.Map<Integer, String> m = new java.util.TreeMap<>();
            for (String l : out) {
                if (l.startsWith("STEP ")) {
                    String[] f = l.split(" ");
                    if (Integer.parseInt(f[1]) >= from) {
                        m.put(Integer.parseInt(f[1]), f[5]); // the last line of a step wins (a step redone after a rollback)
                    }
                }
            }
            return m;
        }

        String doneHash() {
            return out.stream().filter(l -> l.startsWith("DONE ")).findFirst().orElse("");
        }

        @Override
        public void close() throws InterruptedException {
            p.destroyForcibly();
            p.waitFor(10, TimeUnit.SECONDS);
        }
    }

    @Test
    void aJoinAndAKillMinus9MidRunEndWithIdenticalSurvivorState() throws Exception {
        String run = CommHarness.uniqueRunId("elastic-proc");
        int steps = 60;
        Path events = java.nio.file.Files.createTempFile("elastic-events", ".jsonl");
        java.util.Map<String, String> env = java.util.Map.of("ELASTIC_EVENTS", events.toString());
        try (EmbeddedZooKeeper zk = EmbeddedZooKeeper.startWithoutAuth();
             Worker a = new Worker(zk.connectString(), run, steps, env);
             Worker b = new Worker(zk.connectString(), run, steps, env)) {
            a.await(o -> a.lastStep() >= 5, "the job to form and train");
            long pidA = a.p.pid();
            try (Worker c = new Worker(zk.connectString(), run, steps, env)) {
                c.await(o -> c.lastStep() >= 0 && o.stream().anyMatch(l -> l.startsWith("STEP ") && l.contains("WORLD 3")),
                        "the joiner to train in a world of 3");
                int joinedAt = c.out.stream().filter(l -> l.startsWith("STEP ")).mapToInt(
                        l -> Integer.parseInt(l.split(" ")[1])).min().orElse(0);
                assertTrue(joinedAt > 5, "the joiner took the job's step count, not 0: first step " + joinedAt);
                int before = a.lastStep();
                b.p.destroyForcibly(); // SIGKILL
                long killed = System.nanoTime();
                a.await(o -> {
                    try {
                        return java.nio.file.Files.readString(events).contains("\"kind\":\"failure\"");
                    } catch (java.io.IOException e) {
                        return false;
                    }
                }, "the survivors to notice the kill");
                a.await(o -> a.lastStep() > before, "training to resume after the kill");
                double resumeSeconds = (System.nanoTime() - killed) / 1e9;
                assertTrue(a.p.waitFor(120, TimeUnit.SECONDS) && c.p.waitFor(120, TimeUnit.SECONDS), "survivors finish");
                assertEquals(0, a.p.exitValue(), a.out.toString());
                assertEquals(0, c.p.exitValue(), c.out.toString());
                assertEquals(pidA, a.p.pid(), "incumbents keep their process");
                assertTrue(!a.doneHash().isEmpty() && a.doneHash().equals(c.doneHash()),
                        "survivors end with the same state: " + a.doneHash() + " vs " + c.doneHash());
                assertSameSteps(joinedAt, a, c);
                List<String> ev = java.nio.file.Files.readAllLines(events);
                System.out.printf("elastic processes: joiner's first step %d; resumed %.2f s after kill -9; events %s%n",
                        joinedAt, resumeSeconds, ev);
                assertTrue(ev.stream().anyMatch(l -> l.contains("\"kind\":\"join\"") && l.contains("\"world_before\":2")
                        && l.contains("\"world_after\":3")), ev.toString());
                assertTrue(ev.stream().anyMatch(l -> l.contains("\"kind\":\"failure\"") && l.contains("\"world_after\":2")
                        && l.contains("\"rolled_back_steps\":")), ev.toString());
                assertTrue(ev.stream().anyMatch(l -> l.contains("\"kind\":\"joined\"") && !l.contains("\"state_bytes\":0,")),
                        "the joiner's event records the state it received: " + ev);
            }
        }
    }

    private static void assertSameEnd(Worker... ws) throws InterruptedException {
        for (Worker w : ws) {
            assertTrue(w.p.waitFor(120, TimeUnit.SECONDS), "worker did not finish: " + w.out);
            assertEquals(0, w.p.exitValue(), w.out.toString());
        }
        for (Worker w : ws) {
            assertTrue(!w.doneHash().isEmpty() && w.doneHash().equals(ws[0].doneHash()),
                    "survivors end with the same state: " + w.doneHash() + " vs " + ws[0].doneHash());
        }
    }

    @Test
    void aJoinerWithAnotherModelIsRefusedNamingTheMismatchAndTheJobGoesOn() throws Exception {
        String run = CommHarness.uniqueRunId("elastic-model");
        try (EmbeddedZooKeeper zk = EmbeddedZooKeeper.startWithoutAuth();
             Worker a = new Worker(zk.connectString(), run, 40);
             Worker b = new Worker(zk.connectString(), run, 40)) {
            a.await(o -> a.lastStep() >= 3, "the job to form");
            try (Worker odd = new Worker(zk.connectString(), run, 40, java.util.Map.of("ELASTIC_WIDTH", "24"))) {
                assertTrue(odd.p.waitFor(90, TimeUnit.SECONDS), "the odd joiner did not exit: " + odd.out);
                Thread.sleep(300);
                assertTrue(odd.p.exitValue() != 0);
                assertTrue(odd.out.stream().anyMatch(l -> l.contains("StateMismatchException") && l.contains("shape")),
                        "the joiner's error names the mismatch: " + odd.out);
            }
            assertSameEnd(a, b);
            assertTrue(a.out.stream().noneMatch(l -> l.contains("WORLD 3")), "the odd joiner never trained with the job");
        }
    }

    @Test
    void aMemberStoppedPastTheBoundIsFencedWhenItContinues() throws Exception {
        String run = CommHarness.uniqueRunId("elastic-stop");
        try (EmbeddedZooKeeper zk = EmbeddedZooKeeper.startWithoutAuth();
             Worker a = new Worker(zk.connectString(), run, 50);
             Worker b = new Worker(zk.connectString(), run, 50);
             Worker c = new Worker(zk.connectString(), run, 50)) {
            a.await(o -> o.stream().anyMatch(l -> l.startsWith("STEP ") && l.contains("WORLD 3")), "a world of 3");
            assertTrue(new ProcessBuilder("kill", "-STOP", Long.toString(c.p.pid())).start().waitFor(10, TimeUnit.SECONDS));
            int before = a.lastStep();
            a.await(o -> a.lastStep() > before + 3, "the others to go on without the stopped member");
            assertTrue(new ProcessBuilder("kill", "-CONT", Long.toString(c.p.pid())).start().waitFor(10, TimeUnit.SECONDS));
            assertTrue(c.p.waitFor(60, TimeUnit.SECONDS), "the fenced member did not exit: " + c.out);
            assertTrue(c.p.exitValue() != 0);
            assertTrue(c.out.stream().anyMatch(l -> l.contains("StaleGenerationException") && l.contains("fenced")),
                    c.out.toString());
            assertSameEnd(a, b);
        }
    }

    @Test
    void twoMembersKilledAtOnceLeaveTwoSurvivorsWithIdenticalState() throws Exception {
        String run = CommHarness.uniqueRunId("elastic-two");
        try (EmbeddedZooKeeper zk = EmbeddedZooKeeper.startWithoutAuth();
             Worker a = new Worker(zk.connectString(), run, 50);
             Worker b = new Worker(zk.connectString(), run, 50);
             Worker c = new Worker(zk.connectString(), run, 50);
             Worker d = new Worker(zk.connectString(), run, 50)) {
            a.await(o -> o.stream().anyMatch(l -> l.startsWith("STEP ") && l.contains("WORLD 4")), "a world of 4");
            c.p.destroyForcibly();
            d.p.destroyForcibly();
            a.await(o -> o.stream().anyMatch(l -> l.startsWith("STEP ") && l.contains("WORLD 2")), "a world of 2");
            assertSameEnd(a, b);
        }
    }

    /** Replicas agree on the live parameters after every step they both ran after {@code from}. */
    private static void assertSameSteps(int from, Worker... ws) {
        java.util.Map<Integer, String> first = ws[0].hashes(from);
        for (Worker w : ws) {
            java.util.Map<Integer, String> other = w.hashes(from);
            int common = 0;
            for (java.util.Map.Entry<Integer, String> e : other.entrySet()) {
                if (first.containsKey(e.getKey())) {
                    common++;
                    assertEquals(first.get(e.getKey()), e.getValue(), "replicas diverged at step " + e.getKey());
                }
            }
            assertTrue(common >= 5, "too few common steps to compare: " + common);
        }
    }

    /** With a commit only every 3 steps, a join must still leave every replica on the same live state. */
    @Test
    void aJoinBetweenCommitsKeepsEveryReplicaOnTheSameState() throws Exception {
        String run = CommHarness.uniqueRunId("elastic-k3");
        java.util.Map<String, String> env = java.util.Map.of("ELASTIC_COMMIT_EVERY", "3");
        try (EmbeddedZooKeeper zk = EmbeddedZooKeeper.startWithoutAuth();
             Worker a = new Worker(zk.connectString(), run, 40, env);
             Worker b = new Worker(zk.connectString(), run, 40, env)) {
            a.await(o -> a.lastStep() >= 4, "the job to form");
            try (Worker c = new Worker(zk.connectString(), run, 40, env)) {
                assertSameEnd(a, b, c);
                int joined = c.hashes(0).keySet().stream().min(Integer::compare).orElse(0);
                assertSameSteps(joined, a, b, c);
            }
        }
    }

    /**
     * ZooKeeper goes away mid-run: with no change the job goes on (collectives do not need
     * the store); a kill -9 while it is away cannot be agreed on, so the survivors fail
     * with a store error within a bound instead of hanging or guessing.
     */
    @Test
    void zooKeeperDownDuringAChangeEndsInABoundedStoreError() throws Exception {
        String run = CommHarness.uniqueRunId("elastic-zk");
        dev.torus.testing.StandaloneZooKeeper zk = dev.torus.testing.StandaloneZooKeeper.start(List.of());
        try (Worker a = new Worker(zk.connectString(), run, 100_000);
             Worker b = new Worker(zk.connectString(), run, 100_000);
             Worker c = new Worker(zk.connectString(), run, 100_000)) {
            a.await(o -> o.stream().anyMatch(l -> l.startsWith("STEP ") && l.contains("WORLD 3")), "a world of 3");
            zk.close();
            int before = a.lastStep();
            a.await(o -> a.lastStep() > before + 10, "training to go on without ZooKeeper while nothing changes");
            c.p.destroyForcibly();
            long t0 = System.nanoTime();
            assertTrue(a.p.waitFor(60, TimeUnit.SECONDS) && b.p.waitFor(60, TimeUnit.SECONDS),
                    "survivors hung with the store away: " + a.out);
            double s = (System.nanoTime() - t0) / 1e9;
            System.out.printf("with ZooKeeper down, the survivors of a kill -9 failed after %.1f s%n", s);
            for (Worker w : List.of(a, b)) {
                assertTrue(w.p.exitValue() != 0);
                assertTrue(w.out.stream().anyMatch(l -> l.contains("StoreException") || l.contains("StoreTimeoutException")),
                        "a store error, not something else: " + w.out.subList(Math.max(0, w.out.size() - 8), w.out.size()));
            }
        } finally {
            zk.close();
        }
    }

    private static List<String> readEvents(Path events) throws java.io.IOException {
        return java.nio.file.Files.readAllLines(events);
    }

    @Test
    void aJoinBeyondMaxIsRefusedAndTheJobGoesOn() throws Exception {
        String run = CommHarness.uniqueRunId("elastic-max");
        java.util.Map<String, String> max2 = java.util.Map.of("ELASTIC_MAX", "2");
        try (EmbeddedZooKeeper zk = EmbeddedZooKeeper.startWithoutAuth();
             Worker a = new Worker(zk.connectString(), run, 60, max2);
             Worker b = new Worker(zk.connectString(), run, 60, max2)) {
            a.await(o -> a.lastStep() >= 3, "the job to form");
            long t0 = System.nanoTime();
            try (Worker extra = new Worker(zk.connectString(), run, 60,
                    java.util.Map.of("ELASTIC_MAX", "2", "ELASTIC_INIT_MS", "4000"))) {
                assertTrue(extra.p.waitFor(60, TimeUnit.SECONDS), "the third joiner did not give up: " + extra.out);
                Thread.sleep(300);
                assertTrue(extra.p.exitValue() != 0, extra.out.toString());
                assertTrue(extra.out.stream().anyMatch(l -> l.contains("was not admitted")
                        && l.contains("at its maxSize; this member's is 2")),
                        "the refusal names the cause: " + extra.out);
                System.out.printf("elastic processes: a join beyond MAX gave up after %.1f s%n", (System.nanoTime() - t0) / 1e9);
            }
            assertSameEnd(a, b);
            assertTrue(a.out.stream().noneMatch(l -> l.contains("WORLD 3")), "the job never grew beyond MAX");
        }
    }

    @Test
    void aLeaveDuringAJoinRollsNothingBackAndTheJobStaysConsistent() throws Exception {
        String run = CommHarness.uniqueRunId("elastic-leavejoin");
        Path events = java.nio.file.Files.createTempFile("elastic-events", ".jsonl");
        java.util.Map<String, String> env = java.util.Map.of("ELASTIC_EVENTS", events.toString());
        try (EmbeddedZooKeeper zk = EmbeddedZooKeeper.startWithoutAuth();
             dev.torus.zookeeper.ZooKeeperStore store = dev.torus.zookeeper.ZooKeeperStore.connect(zk.connectString(),
                     "store", java.time.Duration.ofSeconds(10));
             Worker a = new Worker(zk.connectString(), run, 80, env);
             Worker b = new Worker(zk.connectString(), run, 80, env);
             Worker c = new Worker(zk.connectString(), run, 80, env)) {
            a.await(o -> o.stream().anyMatch(l -> l.startsWith("STEP ") && l.contains("WORLD 3")), "a world of 3");
            try (Worker d = new Worker(zk.connectString(), run, 80, env)) {
                // the moment the joiner registers (before it is admitted), c asks to leave
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
                while (store.list("runs/" + run + "/elastic/members").size() < 4) {
                    assertTrue(System.nanoTime() < deadline, "the joiner never registered");
                    Thread.sleep(5);
                }
                c.p.toHandle().destroy(); // SIGTERM: a graceful leave
                assertTrue(c.p.waitFor(60, TimeUnit.SECONDS), "the leaver did not exit: " + c.out);
                assertEquals(0, c.p.exitValue(), c.out.toString());
                assertTrue(c.out.contains("LEFT"), c.out.toString());
                assertSameEnd(a, b, d);
            }
            List<String> ev = readEvents(events);
            assertTrue(ev.stream().noneMatch(l -> l.contains("\"kind\":\"failure\"")), "no rollback: " + ev);
            assertTrue(ev.stream().anyMatch(l -> l.contains("\"kind\":\"joined\"")), ev.toString());
            assertTrue(ev.stream().anyMatch(l -> l.contains("leave")), ev.toString());
        }
    }

    @Test
    void aMemberThatDiesDuringTheRebuildIsLeftOutAndTheJoinStillHappens() throws Exception {
        String run = CommHarness.uniqueRunId("elastic-rebuild");
        java.util.Map<String, String> fast = java.util.Map.of("ELASTIC_INIT_MS", "5000");
        try (EmbeddedZooKeeper zk = EmbeddedZooKeeper.startWithoutAuth();
             Worker a = new Worker(zk.connectString(), run, 70, fast);
             Worker b = new Worker(zk.connectString(), run, 70, fast)) {
            a.await(o -> a.lastStep() >= 3, "the job to form");
            // c joins (a joiner passes no rebuild), then dies in its first rebuild: the one that admits d,
            // once that generation (with c in it) is agreed and before its communicator forms
            try (Worker c = new Worker(zk.connectString(), run, 70,
                    java.util.Map.of("ELASTIC_INIT_MS", "5000", "ELASTIC_HALT_AT", "rebuild:1"))) {
                a.await(o -> o.stream().anyMatch(l -> l.startsWith("STEP ") && l.contains("WORLD 3")), "a world of 3");
                long t0 = System.nanoTime();
                try (Worker d = new Worker(zk.connectString(), run, 70, fast)) {
                    assertTrue(c.p.waitFor(60, TimeUnit.SECONDS), "c did not reach the rebuild: " + c.out);
                    assertTrue(c.out.contains("HALT at rebuild 1"), c.out.toString());
                    assertSameEnd(a, b, d);
                    assertTrue(d.out.stream().anyMatch(l -> l.startsWith("STEP ") && l.contains("WORLD 3")),
                            "the joiner trains with a and b: " + d.out);
                    System.out.printf("elastic processes: a member died during the rebuild; the job of a, b and the "
                            + "joiner finished %.1f s after the join began%n", (System.nanoTime() - t0) / 1e9);
                }
            }
        }
    }

    @Test
    void aMemberThatDiesDuringTheStateTransferIsLeftOutAndTheOthersAgree() throws Exception {
        String run = CommHarness.uniqueRunId("elastic-transfer");
        try (EmbeddedZooKeeper zk = EmbeddedZooKeeper.startWithoutAuth();
             Worker a = new Worker(zk.connectString(), run, 70);
             // b dies as the committed state starts to flow to the joiner (its second transfer: the first formed the job)
             Worker b = new Worker(zk.connectString(), run, 70, java.util.Map.of("ELASTIC_HALT_AT", "sync:2"))) {
            a.await(o -> a.lastStep() >= 3, "the job to form");
            try (Worker d = new Worker(zk.connectString(), run, 70)) {
                assertTrue(b.p.waitFor(60, TimeUnit.SECONDS), "b did not reach the transfer: " + b.out);
                assertTrue(b.out.contains("HALT at sync 2"), b.out.toString());
                assertSameEnd(a, d);
                assertTrue(d.out.stream().anyMatch(l -> l.startsWith("STEP ") && l.contains("WORLD 2")),
                        "the joiner trains with the survivor: " + d.out);
            }
        }
    }
}
