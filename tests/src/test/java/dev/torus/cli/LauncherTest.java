package dev.torus.cli;

import static dev.torus.testing.BadArgument.assertMessage;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.cli.launch.LaunchSpec;
import dev.torus.cli.launch.LauncherLink;
import dev.torus.zookeeper.EmbeddedZooKeeper;
import dev.torus.rendezvous.JobSecret;
import dev.torus.zookeeper.ZooKeeperStore;
import dev.torus.testing.LauncherProbe;
import dev.torus.testing.StandaloneZooKeeper;
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
            this(Map.of(), List.of(), args);
        }

        /** With extra environment variables and JVM options for the launcher itself. */
        Run(Map<String, String> env, List<String> launcherJvmArgs, String... args) throws IOException {
            List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"));
            cmd.addAll(launcherJvmArgs);
            cmd.addAll(List.of("-cp", WorkerProcesses.classpath(),
                    TorusRun.class.getName(), "--jvm-arg=-Xmx256m", "--jvm-arg=-XX:+UseSerialGC",
                    "--jvm-arg=-XX:TieredStopAtLevel=1"));
            cmd.addAll(List.of(args));
            ProcessBuilder pb = new ProcessBuilder(cmd);
            pb.environment().remove(JobSecret.ENV);
            pb.environment().putAll(env);
            process = pb.start();
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
    void twoNodesMeetThroughAnExternalZooKeeperWithAuthenticationOn(@TempDir Path dir) throws Exception {
        JobSecret secret = JobSecret.generate();
        Path secretFile = dir.resolve("secret");
        Files.writeString(secretFile, secret.toHex() + "\n");
        Files.setPosixFilePermissions(secretFile, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
        assertMessage("chmod 600", () -> TorusRun.readSecretFile(secretFile));
        Files.setPosixFilePermissions(secretFile, java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"));
        // a real ZooKeeper server process with authentication enforced, as docs/COLLECTIVES.md sets one up
        try (StandaloneZooKeeper zk = StandaloneZooKeeper.start(List.of("enforce.auth.enabled=true",
                "enforce.auth.schemes=digest"));
             // one agent takes the secret from its environment, the other from a file
             Run a = new Run(Map.of(JobSecret.ENV, secret.toHex()), List.of(), "--nnodes", "2:2", "--nproc-per-node", "1",
                     "--rdzv-endpoint", zk.connectString(), "--run-id", "twonodes", LauncherProbe.class.getName(), "env");
             Run b = new Run(Map.of(), List.of(), "--nnodes", "2:2", "--nproc-per-node", "1", "--secret-file",
                     secretFile.toString(), "--rdzv-endpoint", zk.connectString(), "--run-id", "twonodes",
                     LauncherProbe.class.getName(), "env")) {
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
            // the last agent to finish removed the run's keys from the ensemble
            try (ZooKeeperStore s = ZooKeeperStore.builder(zk.connectString()).jobSecret(secret).build()) {
                assertTrue(s.tryGet("runs/twonodes/world/generation") == null, "run keys left behind");
            }
            List<String> logs = new ArrayList<>(a.err);
            logs.addAll(b.err);
            assertTrue(logs.stream().anyMatch(l -> l.contains("removed the keys of run twonodes")), logs.toString());
            assertTrue(logs.stream().noneMatch(l -> l.contains(secret.toHex())), "the secret was logged");
        }
    }

    @Test
    void aMultiNodeJobWithoutASecretIsRefusedByName() throws Exception {
        try (Run run = new Run("--nnodes", "1:2", "--rdzv-endpoint", "127.0.0.1:1", "--run-id", "nosecret",
                LauncherProbe.class.getName(), "env")) {
            assertTrue(run.awaitExit(60) != 0);
            assertTrue(run.err.stream().anyMatch(l -> l.contains(JobSecret.ENV) && l.contains("--secret-file")),
                    run.err.toString());
        }
        try (Run run = new Run(Map.of(JobSecret.ENV, "12345"), List.of(), "--nnodes", "1:2", "--rdzv-endpoint",
                "127.0.0.1:1", "--run-id", "badsecret", LauncherProbe.class.getName(), "env")) {
            assertTrue(run.awaitExit(60) != 0);
            assertTrue(run.err.stream().anyMatch(l -> l.contains(JobSecret.ENV) && l.contains("64 hex digits")),
                    run.err.toString());
        }
    }

    @Test
    void theSecretReachesWorkersThroughTheirEnvironmentOnly() throws Exception {
        JobSecret secret = JobSecret.generate();
        try (Run run = new Run(Map.of(JobSecret.ENV, secret.toHex()), List.of(), "--nproc-per-node", "1",
                LauncherProbe.class.getName(), "sleep")) {
            run.awaitLines(60, out -> out.stream().anyMatch(l -> l.contains("READY")));
            long pid = run.workerPids().get(0);
            String cmdline = Files.readString(Path.of("/proc/" + pid + "/cmdline")).replace('\0', ' ');
            String environ = Files.readString(Path.of("/proc/" + pid + "/environ")).replace('\0', '\n');
            assertTrue(environ.contains(JobSecret.ENV + "=" + secret.toHex()), "the worker got the job's secret");
            assertTrue(environ.contains(LauncherLink.PID_ENV + "=" + run.process.pid()), environ);
            assertFalse(cmdline.contains(secret.toHex()), "the secret is on the worker's command line: " + cmdline);
            String launcherCmd = Files.readString(Path.of("/proc/" + run.process.pid() + "/cmdline"));
            assertFalse(launcherCmd.contains(secret.toHex()));
        }
    }

    /** The launcher is SIGKILLed: it cannot stop anyone, so its workers must notice and leave within 5 s. */
    @Test
    void killingTheLauncherWithSigkillLeavesNoWorkerAfterFiveSeconds() throws Exception {
        try (Run run = new Run("--nproc-per-node", "2", LauncherProbe.class.getName(), "sleep")) {
            run.awaitLines(60, out -> out.stream().filter(l -> l.contains("READY")).count() == 2);
            Map<Integer, Long> pids = run.workerPids();
            assertEquals(2, pids.size());
            Process kill = new ProcessBuilder("kill", "-KILL", Long.toString(run.process.pid())).start();
            assertTrue(kill.waitFor(10, TimeUnit.SECONDS));
            long t0 = System.nanoTime();
            assertTrue(run.process.waitFor(10, TimeUnit.SECONDS));
            try {
                for (Map.Entry<Integer, Long> e : pids.entrySet()) {
                    while (ProcessHandle.of(e.getValue()).map(ProcessHandle::isAlive).orElse(false)) {
                        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(5), "worker rank " + e.getKey()
                                + " (pid " + e.getValue() + ") outlived its SIGKILLed launcher by 5 s");
                        Thread.sleep(50);
                    }
                }
                System.out.printf("workers gone %.2f s after the launcher's SIGKILL%n", (System.nanoTime() - t0) / 1e9);
            } finally {
                pids.values().forEach(p -> ProcessHandle.of(p).ifPresent(ProcessHandle::destroyForcibly));
            }
            // the dead launcher's embedded server could not delete its data; the next server start does
            String prefix = "torus-zk-" + run.process.pid() + "-";
            Path tmp = Path.of(System.getProperty("java.io.tmpdir"));
            try (var listing = Files.list(tmp)) {
                assertTrue(listing.anyMatch(p -> p.getFileName().toString().startsWith(prefix)),
                        "expected the killed launcher's ZooKeeper data directory");
            }
            EmbeddedZooKeeper.startWithoutAuth().close();
            try (var listing = Files.list(tmp)) {
                assertTrue(listing.noneMatch(p -> p.getFileName().toString().startsWith(prefix)),
                        "a dead server's data directory was left behind");
            }
        }
    }

    /** A worker stopped by SIGSTOP never exits; the launcher must still notice it, end the job and say why. */
    @Test
    void aStoppedWorkerIsFoundStuckAndTheJobEnds(@TempDir Path dir) throws Exception {
        try (Run run = new Run("--nproc-per-node", "2", "--stuck-timeout", "2", "--error-dir", dir.toString(), "--run-id",
                "stuck", LauncherProbe.class.getName(), "sleep")) {
            run.awaitLines(60, out -> out.stream().filter(l -> l.contains("READY")).count() == 2);
            Map<Integer, Long> pids = run.workerPids();
            Process stop = new ProcessBuilder("kill", "-STOP", Long.toString(pids.get(1))).start();
            assertTrue(stop.waitFor(10, TimeUnit.SECONDS));
            long t0 = System.nanoTime();
            int code = run.awaitExit(60);
            double s = (System.nanoTime() - t0) / 1e9;
            System.out.printf("a SIGSTOPped worker ended the job after %.1f s (stuck timeout 2 s), exit code %d%n", s, code);
            assertTrue(code != 0);
            assertTrue(run.err.stream().anyMatch(l -> l.contains("rank 1") && l.contains("is stuck")
                    && l.contains("stopped by a signal")), run.err.toString());
            String json = Files.readString(dir.resolve("error-stuck-attempt0-rank1.json"));
            assertTrue(json.contains("\"stuck\":\"stopped by a signal"), json);
            assertAllGone(pids);
        }
    }

    /** Error files in the shared temp directory: private per-user folder, and no write through a planted link. */
    @Test
    void errorFilesGoToAPrivateFolderAndNeverThroughALink(@TempDir Path tmp) throws Exception {
        String user = System.getProperty("user.name").replaceAll("[^A-Za-z0-9._-]", "_");
        Path victim = tmp.resolve("victim.txt");
        Files.writeString(victim, "precious");
        // 1. a link planted where the per-user folder goes: refused, with the reason
        Path planted = tmp.resolve("torusrun-" + user);
        Files.createSymbolicLink(planted, tmp);
        try (Run run = new Run(Map.of(), List.of("-Djava.io.tmpdir=" + tmp), "--nproc-per-node", "1", "--run-id", "linkdir",
                LauncherProbe.class.getName(), "crash", "0", "5")) {
            // refused, said why, and the job still ran and reported: another user cannot block it
            assertEquals(5, run.awaitExit(60), run.err.toString());
            assertTrue(run.err.stream().anyMatch(l -> l.contains("symbolic link") && l.contains("instead")),
                    run.err.toString());
        }
        try (var listing = Files.list(tmp)) {
            assertTrue(listing.noneMatch(f -> f.getFileName().toString().startsWith("error-")),
                    "an error file went through the planted link");
        }
        Files.delete(planted);
        // 2. a real private folder, with a link planted at the error file's name
        try (Run run = new Run(Map.of(), List.of("-Djava.io.tmpdir=" + tmp), "--nproc-per-node", "1", "--run-id", "first",
                LauncherProbe.class.getName(), "env")) {
            assertEquals(0, run.awaitExit(60), run.err.toString());
        }
        Path folder = tmp.resolve("torusrun-" + user);
        assertEquals("rwx------", java.nio.file.attribute.PosixFilePermissions.toString(Files.getPosixFilePermissions(folder)));
        Files.createSymbolicLink(folder.resolve("error-trap-attempt0-rank0.json"), victim);
        try (Run run = new Run(Map.of(), List.of("-Djava.io.tmpdir=" + tmp), "--nproc-per-node", "1", "--run-id", "trap",
                LauncherProbe.class.getName(), "crash", "0", "5")) {
            assertEquals(5, run.awaitExit(60), run.err.toString());
        }
        assertEquals("precious", Files.readString(victim), "the error file was written through the planted link");
        String json = Files.readString(folder.resolve("error-trap-attempt0-rank0-2.json"));
        assertTrue(json.contains("\"exit_code\":5"), json);
    }

    /** A stopped worker cannot watch its launcher; a running sibling ends it when the launcher is SIGKILLed. */
    @Test
    void aStoppedWorkerDoesNotOutliveItsSigkilledLauncher() throws Exception {
        try (Run run = new Run("--nproc-per-node", "2", "--stuck-timeout", "0", LauncherProbe.class.getName(), "sleep")) {
            run.awaitLines(60, out -> out.stream().filter(l -> l.contains("READY")).count() == 2);
            Map<Integer, Long> pids = run.workerPids();
            assertTrue(new ProcessBuilder("kill", "-STOP", Long.toString(pids.get(1))).start().waitFor(10, TimeUnit.SECONDS));
            Thread.sleep(300);
            assertTrue(new ProcessBuilder("kill", "-KILL", Long.toString(run.process.pid())).start()
                    .waitFor(10, TimeUnit.SECONDS));
            long t0 = System.nanoTime();
            try {
                for (Map.Entry<Integer, Long> e : pids.entrySet()) {
                    while (ProcessHandle.of(e.getValue()).map(ProcessHandle::isAlive).orElse(false)) {
                        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(5), "worker rank " + e.getKey()
                                + " outlived its SIGKILLed launcher by 5 s");
                        Thread.sleep(50);
                    }
                }
            } finally {
                pids.values().forEach(p -> ProcessHandle.of(p).ifPresent(ProcessHandle::destroyForcibly));
            }
        }
    }

    /**
     * One-node jobs on an external ensemble: a second launcher with the same secret and run
     * id is refused while the first lives, and a ZooKeeper outage does not stop a healthy job.
     */
    @Test
    void aRunIdInUseIsRefusedAndAStoreOutageDoesNotStopTheJob(@TempDir Path dir) throws Exception {
        JobSecret secret = JobSecret.generate();
        Map<String, String> env = Map.of(JobSecret.ENV, secret.toHex());
        StandaloneZooKeeper zk = StandaloneZooKeeper.start(List.of("enforce.auth.enabled=true",
                "enforce.auth.schemes=digest"));
        try (Run first = new Run(env, List.of(), "--nproc-per-node", "2", "--rdzv-endpoint", zk.connectString(),
                "--run-id", "busy", "--error-dir", dir.toString(), LauncherProbe.class.getName(), "sleep-then-exit", "8000")) {
            first.awaitLines(60, out -> out.stream().filter(l -> l.contains("READY")).count() == 2);
            try (Run late = new Run(env, List.of(), "--nproc-per-node", "1", "--rdzv-endpoint", zk.connectString(),
                    "--run-id", "busy", LauncherProbe.class.getName(), "env")) {
                assertEquals(2, late.awaitExit(60));
                assertTrue(late.err.stream().anyMatch(l -> l.contains("in use by another live launcher")), late.err.toString());
            }
            zk.close(); // ZooKeeper goes away while the workers run; they need it no more
            long t0 = System.nanoTime();
            assertEquals(0, first.awaitExit(90), "a store outage stopped a healthy job: " + first.err);
            System.out.printf("the job ended normally %.1f s after ZooKeeper stopped%n", (System.nanoTime() - t0) / 1e9);
            assertTrue(first.out.stream().filter(l -> l.contains("DONE")).count() == 2, first.out.toString());
        } finally {
            zk.close();
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
        assertEquals(2, TorusRun.run("--stuck-timeout", "0.4", "x.Main"));
        assertMessage("at least 2 seconds", () -> new dev.torus.cli.launch.Launcher(spec(1, 1, 1, null, null),
                (r, e, l) -> { }, System.err).stuckTimeout(Duration.ofMillis(400)));
        assertMessage("does not exist", () -> TorusRun.readSecretFile(Path.of("/nonexistent/secret")));
        assertMessage("regular file", () -> TorusRun.readSecretFile(Path.of("/dev/zero")));
        assertMessage("no host resolves", () -> ZooKeeperStore.builder("zk1.invalid:2181,zk2.invalid:2181").build());
        assertMessage("cannot be read", () -> TorusRun.workerCommand("/nonexistent.jar", List.of(), false, List.of()));
    }

    static LaunchSpec spec(int nproc, int min, int max, String endpoint, String runId) {
        return new LaunchSpec(nproc, min, max, endpoint, runId, 0, List.of("x"), Map.of(), Path.of("."),
                Duration.ofSeconds(1), Duration.ZERO);
    }
}
