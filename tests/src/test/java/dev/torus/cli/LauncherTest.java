package dev.torus.cli;

import static dev.torus.testing.BadArgument.assertMessage;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.cli.launch.LaunchSpec;
import dev.torus.rendezvous.EmbeddedZooKeeper;
import dev.torus.testing.LauncherProbe;
import dev.torus.testing.WorkerProcesses;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** torusrun as a user runs it: a separate launcher process starting separate worker JVMs. */
@Tag("multiprocess")
class LauncherTest {
    static final Pattern STARTED = Pattern.compile("started rank (\\d+) .*pid (\\d+)");

    /** A running torusrun process with its stdout and stderr lines collected. */
    static final class Run implements AutoCloseable {
        final Process process;
        final List<String> out = new CopyOnWriteArrayList<>();
        final List<String> err = new CopyOnWriteArrayList<>();

        Run(String... args) throws IOException {
            List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", WorkerProcesses.classpath(),
                    TorusRun.class.getName(), "--jvm-arg=-Xmx256m", "--jvm-arg=-XX:+UseSerialGC",
                    "--jvm-arg=-XX:TieredStopAtLevel=1"));
            cmd.addAll(List.of(args));
            process = new ProcessBuilder(cmd).start();
            pump(process.getInputStream(), out);
            pump(process.getErrorStream(), err);
        }

        static void pump(java.io.InputStream in, List<String> sink) {
            Thread t = new Thread(() -> {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
                    String line;
                    while ((line = r.readLine()) != null) {
                        sink.add(line);
                    }
                } catch (IOException ignored) {
                    // process gone
                }
            });
            t.setDaemon(true);
            t.start();
        }

        int awaitExit(long seconds) throws InterruptedException {
            assertTrue(process.waitFor(seconds, TimeUnit.SECONDS), "torusrun did not exit within " + seconds + " s; "
                    + "stderr: " + err);
            Thread.sleep(200); // let the pumps catch the last lines
            return process.exitValue();
        }

        /** pid of each started worker, by rank. */
        Map<Integer, Long> workerPids() {
            return err.stream().map(STARTED::matcher).filter(Matcher::find)
                    .collect(Collectors.toMap(m -> Integer.parseInt(m.group(1)), m -> Long.parseLong(m.group(2)),
                            (a, b) -> b));
        }

        void awaitLines(long seconds, java.util.function.Predicate<List<String>> p) throws InterruptedException {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
            while (!p.test(out)) {
                assertTrue(System.nanoTime() < deadline, "expected output did not appear; out " + out + " err " + err);
                assertTrue(process.isAlive() || p.test(out), "torusrun exited early; err " + err);
                Thread.sleep(50);
            }
        }

        @Override
        public void close() throws InterruptedException {
            if (process.isAlive()) {
                process.destroyForcibly();
                process.waitFor(10, TimeUnit.SECONDS);
            }
        }
    }

    static void assertAllGone(Map<Integer, Long> pids) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
        for (Map.Entry<Integer, Long> e : pids.entrySet()) {
            while (ProcessHandle.of(e.getValue()).map(ProcessHandle::isAlive).orElse(false)) {
                assertTrue(System.nanoTime() < deadline, "worker rank " + e.getKey() + " (pid " + e.getValue()
                        + ") outlived the launcher");
                Thread.sleep(50);
            }
        }
    }

    @Test
    void everyWorkerGetsItsEnvironmentAndOutputIsPrefixedWithTheRank() throws Exception {
        try (Run run = new Run("--nproc-per-node", "3", "--run-id", "envcheck", LauncherProbe.class.getName(), "env")) {
            assertEquals(0, run.awaitExit(120), "stderr: " + run.err);
            String endpoint = null;
            for (int r = 0; r < 3; r++) {
                String prefix = "[" + r + "] ";
                String env = run.out.stream().filter(l -> l.startsWith(prefix + "ENV")).findFirst()
                        .orElseThrow(() -> new AssertionError("no ENV line from rank; out " + run.out));
                assertTrue(env.contains(" RANK=" + r + " LOCAL_RANK=" + r + " WORLD_SIZE=3 LOCAL_WORLD_SIZE=3 GROUP_RANK=0 "),
                        env);
                assertTrue(env.contains("TORUS_RUN_ID=envcheck TORUS_RESTART_COUNT=0"), env);
                Matcher m = Pattern.compile("TORUS_RDZV_ENDPOINT=(\\S+)").matcher(env);
                assertTrue(m.find(), env);
                assertTrue(endpoint == null || endpoint.equals(m.group(1)), "one endpoint for all ranks");
                endpoint = m.group(1);
                assertTrue(run.out.contains(prefix + "SUM 6"), "a real all-reduce through the embedded ZooKeeper: "
                        + run.out);
            }
        }
    }

    @Test
    void aCrashingWorkerStopsTheOthersSetsTheExitCodeAndWritesAnErrorFile(@TempDir Path dir) throws Exception {
        try (Run run = new Run("--nproc-per-node", "3", "--error-dir", dir.toString(), "--run-id", "crash",
                LauncherProbe.class.getName(), "crash", "1", "3")) {
            assertEquals(3, run.awaitExit(120), "the launcher exits with the failed worker's code; err " + run.err);
            Path file = dir.resolve("error-crash-attempt0-rank1.json");
            assertTrue(Files.exists(file), "error file; err " + run.err);
            String json = Files.readString(file);
            assertTrue(json.contains("\"rank\":1"), json);
            assertTrue(json.contains("\"exit_code\":3"), json);
            assertTrue(json.contains("\"time\":\"20"), json);
            assertTrue(json.contains("boom from rank 1"), "stderr tail: " + json);
            assertTrue(run.err.stream().anyMatch(l -> l.contains("[1] boom from rank 1")), "prefixed stderr");
            Map<Integer, Long> pids = run.workerPids();
            assertEquals(3, pids.size(), run.err.toString());
            assertAllGone(pids);
        }
    }

    @Test
    void interruptingTheLauncherLeavesNoWorkerBehind() throws Exception {
        try (Run run = new Run("--nproc-per-node", "2", LauncherProbe.class.getName(), "sleep")) {
            run.awaitLines(60, out -> out.stream().filter(l -> l.contains("READY")).count() == 2);
            Map<Integer, Long> pids = run.workerPids();
            assertEquals(2, pids.size());
            // Ctrl-C: SIGINT to the launcher alone (a terminal would signal the workers too)
            Process kill = new ProcessBuilder("kill", "-INT", Long.toString(run.process.pid())).start();
            assertTrue(kill.waitFor(10, TimeUnit.SECONDS));
            run.awaitExit(30);
            assertAllGone(pids);
        }
    }

    @Test
    void aFailedAttemptIsRestartedInAFreshNamespace(@TempDir Path dir) throws Exception {
        try (Run run = new Run("--nproc-per-node", "2", "--max-restarts", "1", "--error-dir", dir.toString(), "--run-id",
                "again", LauncherProbe.class.getName(), "fail-once", "1", "7")) {
            assertEquals(0, run.awaitExit(120), "err " + run.err);
            assertTrue(Files.exists(dir.resolve("error-again-attempt0-rank1.json")));
            assertTrue(run.out.contains("[0] SUM 3") && run.out.contains("[1] SUM 3"), run.out.toString());
            assertTrue(run.out.stream().anyMatch(l -> l.startsWith("[1] ENV") && l.contains("TORUS_RESTART_COUNT=1")));
        }
    }

    @Test
    void twoNodesMeetThroughAnExternalZooKeeper() throws Exception {
        try (EmbeddedZooKeeper zk = EmbeddedZooKeeper.startWithoutAuth();
             Run a = new Run("--nnodes", "2:2", "--nproc-per-node", "1", "--rdzv-endpoint", zk.connectString(),
                     "--run-id", "twonodes", LauncherProbe.class.getName(), "env");
             Run b = new Run("--nnodes", "2:2", "--nproc-per-node", "1", "--rdzv-endpoint", zk.connectString(),
                     "--run-id", "twonodes", LauncherProbe.class.getName(), "env")) {
            assertEquals(0, a.awaitExit(120), "err " + a.err);
            assertEquals(0, b.awaitExit(120), "err " + b.err);
            List<String> all = new ArrayList<>(a.out);
            all.addAll(b.out);
            for (int r = 0; r < 2; r++) {
                int rank = r;
                assertTrue(all.stream().anyMatch(l -> l.startsWith("[" + rank + "] ENV RANK=" + rank + " LOCAL_RANK=0 "
                        + "WORLD_SIZE=2 LOCAL_WORLD_SIZE=1 GROUP_RANK=" + rank)), all.toString());
                assertTrue(all.contains("[" + rank + "] SUM 3"), all.toString());
            }
        }
    }

    @Test
    void badOptionsAreRefusedWithTheirNames() {
        assertEquals(2, TorusRun.run("--nproc-per-node", "0", "x.Main"));
        assertMessage("--nproc-per-node", () -> spec(0, 1, 1, null, null));
        assertMessage("--nnodes", () -> spec(1, 2, 1, null, null));
        assertMessage("--rdzv-endpoint", () -> spec(1, 1, 4, null, "r"));
        assertMessage("--run-id", () -> spec(1, 1, 4, "127.0.0.1:2181", null));
        assertMessage("--run-id", () -> spec(1, 1, 1, null, "a/b"));
        assertMessage("--nnodes", () -> LaunchSpec.parseNodes("--nnodes", "1:x"));
        assertMessage("TARGET", () -> TorusRun.workerCommand("not a class", List.of(), false, List.of()));
        assertFalse(TorusRun.workerCommand("/bin/true", List.of("a"), true, List.of()).contains("-cp"));
    }

    static LaunchSpec spec(int nproc, int min, int max, String endpoint, String runId) {
        return new LaunchSpec(nproc, min, max, endpoint, runId, 0, List.of("x"), Map.of(), Path.of("."),
                Duration.ofSeconds(1), Duration.ZERO);
    }
}
