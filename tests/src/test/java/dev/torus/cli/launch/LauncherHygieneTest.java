package dev.torus.cli.launch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.zookeeper.EmbeddedZooKeeper;
import dev.torus.rendezvous.JobSecret;
import dev.torus.zookeeper.ZooKeeperStore;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The launcher's private files and its stuck-worker check, on real files and a real process. */
class LauncherHygieneTest {

    @Test
    void aFolderOpenToOthersOrALinkIsRefusedAndAFreshOneIsPrivate(@TempDir Path tmp) throws IOException {
        Path fresh = PrivateFiles.ensurePrivate(tmp.resolve("fresh"));
        assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(fresh)));
        Path open = Files.createDirectory(tmp.resolve("open"));
        Files.setPosixFilePermissions(open, PosixFilePermissions.fromString("rwxrwxrwx"));
        IOException e = assertThrows(IOException.class, () -> PrivateFiles.ensurePrivate(open));
        assertTrue(e.getMessage().contains("rwxrwxrwx") && e.getMessage().contains("chmod 700"), e.getMessage());
        Path link = Files.createSymbolicLink(tmp.resolve("link"), fresh);
        e = assertThrows(IOException.class, () -> PrivateFiles.ensurePrivate(link));
        assertTrue(e.getMessage().contains("symbolic link"), e.getMessage());
        Path file = Files.writeString(tmp.resolve("file"), "x");
        assertThrows(IOException.class, () -> PrivateFiles.ensurePrivate(file));
    }

    /** A worker that writes one endless line must not exhaust the launcher's memory or its error file. */
    @Test
    void anEndlessLineIsForwardedInPiecesAndCutInTheTail() throws Exception {
        java.util.concurrent.atomic.AtomicLong chars = new java.util.concurrent.atomic.AtomicLong();
        java.util.concurrent.atomic.AtomicInteger longest = new java.util.concurrent.atomic.AtomicInteger();
        WorkerProcess w = new WorkerProcess(0, 0, List.of("sh", "-c",
                "head -c 1000000 /dev/zero | tr '\\0' a >&2; echo >&2; echo last >&2"), Map.of(), (r, err, line) -> {
                    chars.addAndGet(line.length());
                    longest.accumulateAndGet(line.length(), Math::max);
                });
        assertTrue(w.exitCode() == null || w.exitCode() == 0);
        for (int i = 0; i < 200 && w.isAlive(); i++) {
            Thread.sleep(50);
        }
        w.drainOutput(5_000);
        assertEquals(1_000_004, chars.get(), "every character is forwarded");
        assertEquals(WorkerProcess.MAX_LINE_CHARS, longest.get());
        List<String> tail = w.stderrTail();
        assertEquals("last", tail.get(tail.size() - 1));
        assertTrue(tail.stream().allMatch(l -> l.length() < WorkerProcess.MAX_TAIL_LINE_CHARS + 40), "tail lines are cut");
    }

    @Test
    void heartbeatFoldersOfDeadLaunchersAreSweptAndLiveOnesKept(@TempDir Path tmp) throws IOException {
        Path dead = Files.createDirectory(tmp.resolve("hb-999999999-run-0")); // above any pid_max
        Files.writeString(dead.resolve("rank-0"), "");
        Path live = Files.createDirectory(tmp.resolve("hb-" + ProcessHandle.current().pid() + "-run-0"));
        Path other = Files.createDirectory(tmp.resolve("hb-custom"));
        PrivateFiles.sweepHeartbeatDirs(tmp);
        assertTrue(Files.notExists(dead));
        assertTrue(Files.exists(live) && Files.exists(other));
    }

    @Test
    void aNewFileNeverReplacesAFileOrFollowsALink(@TempDir Path tmp) throws IOException {
        Path victim = Files.writeString(tmp.resolve("victim"), "keep");
        Files.createSymbolicLink(tmp.resolve("report.json"), victim);
        Files.writeString(tmp.resolve("report-2.json"), "older");
        Path f = PrivateFiles.writeNew(tmp, "report", ".json", "new");
        assertEquals(tmp.resolve("report-3.json"), f);
        assertEquals("new", Files.readString(f));
        assertEquals("keep", Files.readString(victim));
        assertEquals("older", Files.readString(tmp.resolve("report-2.json")));
        // a dangling link is not followed either
        Files.createSymbolicLink(tmp.resolve("dangling.json"), tmp.resolve("nowhere"));
        PrivateFiles.writeNew(tmp, "dangling", ".json", "x");
        assertTrue(Files.notExists(tmp.resolve("nowhere")));
    }

    @Test
    void stalenessSweepRemovesOnlyDeadRunsOfItsOwnSecret() throws Exception {
        JobSecret mine = JobSecret.generate();
        JobSecret theirs = JobSecret.generate();
        try (EmbeddedZooKeeper zk = EmbeddedZooKeeper.start();
             ZooKeeperStore a = ZooKeeperStore.builder(zk.connectString()).jobSecret(mine).build();
             ZooKeeperStore live = ZooKeeperStore.builder(zk.connectString()).jobSecret(mine).build();
             ZooKeeperStore b = ZooKeeperStore.builder(zk.connectString()).jobSecret(theirs).build()) {
            // a run whose launcher died after a restart: no live marker, two namespaces
            RunIndex.register(a, mine, "dead", 2, RunIndex.markerName());
            a.set("runs/dead/world/generation", new byte[] {'0'});
            a.set("runs/dead-restart1/world/generation", new byte[] {'1'});
            // a run whose launcher lives (its own session), and one of another secret
            RunIndex.register(live, mine, "alive", 1, RunIndex.markerName());
            live.set("runs/alive/world/generation", new byte[] {'0'});
            RunIndex.register(b, theirs, "other", 1, RunIndex.markerName());
            b.set("runs/other/world/generation", new byte[] {'0'});
            a.close(); // the dead run's launcher session ends: its marker goes
            Thread.sleep(50);
            try (ZooKeeperStore sweeper = ZooKeeperStore.builder(zk.connectString()).jobSecret(mine).build()) {
                java.io.ByteArrayOutputStream log = new java.io.ByteArrayOutputStream();
                List<String> swept = RunIndex.sweep(sweeper, mine, Duration.ofMillis(10), "current",
                        new java.io.PrintStream(log, true));
                assertEquals(List.of("dead"), swept, log.toString());
                assertNull(sweeper.tryGet("runs/dead/world/generation"));
                assertNull(sweeper.tryGet("runs/dead-restart1/world/generation"));
                assertTrue(sweeper.tryGet("runs/alive/world/generation") != null, "a live run was swept");
                // young runs stay, whatever their state
                assertEquals(List.of(), RunIndex.sweep(sweeper, mine, Duration.ofHours(1), "current",
                        new java.io.PrintStream(log, true)));
            }
            assertTrue(b.tryGet("runs/other/world/generation") != null, "another secret's run was touched");
        }
    }

    @Test
    void aStaleHeartbeatMarksARunningWorkerStuckAndAFreshOneDoesNot(@TempDir Path tmp) throws Exception {
        WorkerProcess w = new WorkerProcess(0, 0, List.of("sleep", "30"), Map.of(), (r, err, line) -> { });
        try {
            Path hb = tmp.resolve("rank-0");
            assertNull(w.stuckReason(Duration.ofSeconds(1), hb), "no heartbeat file: not judged by heartbeat");
            Files.writeString(hb, "");
            // a file whose wall-clock age is large (a clock step, or a late first look) is not stale by itself
            Files.setLastModifiedTime(hb, FileTime.fromMillis(System.currentTimeMillis() - 3_600_000));
            assertNull(w.stuckReason(Duration.ofSeconds(1), hb));
            Thread.sleep(1_300); // no change for longer than the bound
            String why = w.stuckReason(Duration.ofSeconds(1), hb);
            assertTrue(why != null && why.contains("no heartbeat for 1 s"), why);
            Files.setLastModifiedTime(hb, FileTime.fromMillis(System.currentTimeMillis()));
            assertNull(w.stuckReason(Duration.ofSeconds(1), hb), "a fresh beat clears it");
        } finally {
            w.kill();
        }
        assertTrue(!w.isAlive());
    }
}
