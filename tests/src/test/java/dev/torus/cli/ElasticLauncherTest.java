package dev.torus.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.rendezvous.JobSecret;
import dev.torus.testing.LaunchedElasticWorker;
import dev.torus.zookeeper.EmbeddedZooKeeper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code torusrun --elastic} with real launcher and worker processes on an authenticated ZooKeeper:
 * a second launcher joins the running job and leaves it on SIGTERM; a job that falls below its
 * minimum gets a replacement from the launcher of the failed worker; a job that gets none fails
 * after the join timeout with an error file; a launcher without the job's secret cannot join.
 */
@Tag("multiprocess")
class ElasticLauncherTest {
    private static final Pattern STARTED = Pattern.compile("started elastic worker local (\\d+) pid (\\d+)");
    private static EmbeddedZooKeeper zk;

    @TempDir
    Path dir;

    @BeforeAll
    static void startZooKeeper() {
        zk = EmbeddedZooKeeper.start();
    }

    @AfterAll
    static void stopZooKeeper() {
        zk.close();
    }

    private Path secretFile(String name, JobSecret secret) throws IOException {
        Path f = dir.resolve(name);
        Files.writeString(f, secret.toHex());
        Files.setPosixFilePermissions(f, PosixFilePermissions.fromString("rw-------"));
        return f;
    }

    private LauncherTest.Run launch(Path secret, String run, String nodes, int nproc, int steps, String... more)
            throws IOException {
        List<String> args = new ArrayList<>(List.of("--elastic", "--nnodes", nodes, "--nproc-per-node", "" + nproc,
                "--rdzv-endpoint", zk.connectString(), "--run-id", run, "--secret-file", secret.toString(),
                "--error-dir", dir.resolve("errors").toString()));
        args.addAll(List.of(more));
        args.add(LaunchedElasticWorker.class.getName());
        return new LauncherTest.Run(Map.of("ELASTIC_STEPS", "" + steps, "ELASTIC_SLEEP_MS", "40"), List.of(),
                args.toArray(String[]::new));
    }

    private static boolean saw(List<String> lines, String text) {
        return lines.stream().anyMatch(l -> l.contains(text));
    }

    private static long workerPid(LauncherTest.Run r, int local) {
        for (String l : r.err) {
            Matcher m = STARTED.matcher(l);
            if (m.find() && Integer.parseInt(m.group(1)) == local) {
                return Long.parseLong(m.group(2));
            }
        }
        throw new AssertionError("no worker " + local + " started; err " + r.err);
    }

    @Test
    void aSecondLauncherJoinsTheRunningJobAndLeavesOnSigterm() throws Exception {
        Path secret = secretFile("secret", JobSecret.generate());
        String run = "el-join-" + ProcessHandle.current().pid();
        try (LauncherTest.Run a = launch(secret, run, "1:2", 1, 400)) {
            a.awaitLines(60, out -> saw(out, "STEP 5 WORLD 1"));
            try (LauncherTest.Run b = launch(secret, run, "1:2", 1, 400)) {
                a.awaitLines(60, out -> saw(out, "WORLD 2"));
                b.awaitLines(30, out -> saw(out, "WORLD 2"));
                long t0 = System.nanoTime();
                // SIGTERM through the handle: Process.destroy() would also close our ends of its pipes
                b.process.toHandle().destroy(); // a graceful leave of its worker
                int bCode = b.awaitExit(40);
                double leaveSeconds = (System.nanoTime() - t0) / 1e9;
                assertTrue(saw(b.out, "LEFT"), "b's worker must leave, not die: exit " + bCode + " out " + b.out + " err " + b.err);
                assertTrue(saw(b.err, "exited with code 0 (left)"), "err " + b.err);
                int beforeLeave = a.out.size();
                a.awaitLines(30, out -> out.subList(beforeLeave, out.size()).stream().anyMatch(l -> l.contains("WORLD 1")));
                System.out.printf("elastic launcher: second node joined, left on SIGTERM in %.2f s%n", leaveSeconds);
            }
            assertEquals(0, a.awaitExit(120), "err " + a.err);
            assertTrue(saw(a.out, "DONE 400"), "out " + a.out);
            assertTrue(!saw(a.err, "error file"), "a graceful leave writes no error file: " + a.err);
        }
    }

    @Test
    void aJobBelowItsMinimumGetsAReplacementFromTheFailedWorkersLauncher() throws Exception {
        Path secret = secretFile("secret", JobSecret.generate());
        String run = "el-min-" + ProcessHandle.current().pid();
        Path events = dir.resolve("events.jsonl");
        try (LauncherTest.Run a = launch(secret, run, "1", 2, 300, "--join-timeout", "60", "--events", events.toString())) {
            a.awaitLines(60, out -> saw(out, "STEP 5 WORLD 2"));
            long victim = workerPid(a, 1);
            ProcessHandle.of(victim).ifPresent(ProcessHandle::destroyForcibly);
            a.awaitLines(90, out -> saw(out, "DONE 300"));
            assertEquals(0, a.awaitExit(60), "err " + a.err);
            assertTrue(saw(a.err, "starting a replacement for local 1"), "err " + a.err);
            assertTrue(saw(a.err, "error file"), "the killed worker gets an error file: " + a.err);
            List<String> ev = Files.readAllLines(events);
            for (String kind : List.of("started", "failed", "replacement", "exited")) {
                assertTrue(ev.stream().anyMatch(l -> l.contains("\"kind\":\"" + kind + "\"") && l.contains(run)),
                        "the launcher's event log has a '" + kind + "' line: " + ev);
            }
            assertTrue(ev.stream().anyMatch(l -> l.contains("\"kind\":\"failed\"") && l.contains("\"exit_code\":137")),
                    ev.toString());
        }
    }

    @Test
    void aJobThatGetsNoReplacementFailsAfterTheJoinTimeout() throws Exception {
        Path secret = secretFile("secret", JobSecret.generate());
        String run = "el-timeout-" + ProcessHandle.current().pid();
        try (LauncherTest.Run a = launch(secret, run, "2", 1, 2000, "--join-timeout", "3");
             LauncherTest.Run b = launch(secret, run, "2", 1, 2000, "--join-timeout", "3")) {
            a.awaitLines(60, out -> saw(out, "WORLD 2"));
            b.process.destroyForcibly(); // its worker follows within the launcher watch's bound
            long t0 = System.nanoTime();
            int code = a.awaitExit(60);
            double seconds = (System.nanoTime() - t0) / 1e9;
            assertNotEquals(0, code, "err " + a.err);
            assertTrue(saw(a.err, "fewer than minSize 2") && saw(a.err, "joinTimeout (3000 ms)"), "err " + a.err);
            List<Path> errors;
            try (Stream<Path> s = Files.list(dir.resolve("errors"))) {
                errors = s.toList();
            }
            assertTrue(errors.stream().anyMatch(p -> p.getFileName().toString().contains(run)), errors.toString());
            System.out.printf("elastic launcher: below its minimum with no replacement, failed after %.1f s%n", seconds);
            assertTrue(seconds < 30, "took " + seconds + " s");
        }
    }

    @Test
    void aLauncherWithoutTheJobsSecretCannotJoin() throws Exception {
        Path secret = secretFile("secret", JobSecret.generate());
        Path other = secretFile("other", JobSecret.generate());
        String run = "el-secret-" + ProcessHandle.current().pid();
        try (LauncherTest.Run a = launch(secret, run, "1:2", 1, 300)) {
            a.awaitLines(60, out -> saw(out, "STEP 3 WORLD 1"));
            try (LauncherTest.Run rogue = launch(other, run, "1:2", 1, 300)) {
                int code = rogue.awaitExit(60);
                assertNotEquals(0, code, "out " + rogue.out + " err " + rogue.err);
                List<String> all = new ArrayList<>(rogue.out);
                all.addAll(rogue.err);
                assertTrue(all.stream().anyMatch(l -> l.contains("StoreAuthException") || l.contains("refused")
                        || l.contains("another credential")), "the refusal names the cause: " + all);
            }
            assertEquals(0, a.awaitExit(120), "err " + a.err);
            assertTrue(a.out.stream().noneMatch(l -> l.contains("WORLD 2")), "the rogue must never be admitted: " + a.out);
        }
    }

    /** One worker per node, MIN 2: the node whose worker is killed must stay to replace it when the job asks. */
    @Test
    void aNodeWhoseOnlyWorkerDiedReplacesItWhenTheJobFallsBelowItsMinimum() throws Exception {
        Path secret = secretFile("secret", JobSecret.generate());
        String run = "el-node-" + ProcessHandle.current().pid();
        try (LauncherTest.Run a = launch(secret, run, "2", 1, 300, "--join-timeout", "60");
             LauncherTest.Run b = launch(secret, run, "2", 1, 300, "--join-timeout", "60")) {
            a.awaitLines(60, out -> saw(out, "STEP 5 WORLD 2"));
            ProcessHandle.of(workerPid(b, 0)).ifPresent(ProcessHandle::destroyForcibly);
            assertEquals(0, a.awaitExit(120), "err " + a.err);
            assertEquals(0, b.awaitExit(60), "b replaced its worker, which finished: err " + b.err);
            assertTrue(saw(b.err, "starting a replacement for local 0"), "err " + b.err);
            assertTrue(saw(b.out, "DONE 300"), "out " + b.out);
        }
    }

    @Test
    void workersDieWithTheirLauncher() throws Exception {
        Path secret = secretFile("secret", JobSecret.generate());
        String run = "el-orphan-" + ProcessHandle.current().pid();
        try (LauncherTest.Run a = launch(secret, run, "1", 2, 5000)) {
            a.awaitLines(60, out -> saw(out, "STEP 3 WORLD 2"));
            List<ProcessHandle> ws = List.of(ProcessHandle.of(workerPid(a, 0)).orElseThrow(),
                    ProcessHandle.of(workerPid(a, 1)).orElseThrow());
            a.process.toHandle().destroyForcibly();
            long t0 = System.nanoTime();
            for (ProcessHandle w : ws) {
                w.onExit().get(20, java.util.concurrent.TimeUnit.SECONDS);
            }
            double s = (System.nanoTime() - t0) / 1e9;
            System.out.printf("elastic launcher: workers gone %.2f s after the launcher's SIGKILL%n", s);
            assertTrue(s <= 5, "workers outlived their launcher by " + s + " s");
        }
    }
}
