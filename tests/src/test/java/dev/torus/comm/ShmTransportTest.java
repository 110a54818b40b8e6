package dev.torus.comm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.testing.CommHarness;
import dev.torus.testing.Data;
import dev.torus.testing.WorkerProcesses;
import dev.torus.zookeeper.EmbeddedZooKeeper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The shared-memory transport with real worker JVMs: which layout each host assignment
 * gives, every op and dtype on each layout, and its faults (SIGKILL, SIGSTOP, a request
 * that cannot be met). Hosts are told apart by {@code TORUS_HOST_ID} here; the
 * network-namespace test runs the hierarchical layout across real separate stacks.
 */
@Tag("multiprocess")
class ShmTransportTest {
    static EmbeddedZooKeeper zk;

    @BeforeAll
    static void start() {
        zk = EmbeddedZooKeeper.startWithoutAuth();
    }

    @AfterAll
    static void stop() {
        zk.close();
    }

    /** The names of this run's segments still in /dev/shm (there should be none once set up). */
    static List<String> segments(String runId) throws IOException {
        String prefix = SharedMemorySetup.prefix(runId, "world").substring(1);
        try (Stream<Path> s = Files.list(Path.of("/dev/shm"))) {
            return s.map(p -> p.getFileName().toString()).filter(n -> n.startsWith(prefix)).toList();
        }
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({
        // layout name, host of each rank ('-' = no TORUS_HOST_ID), TORUS_TRANSPORT, expected transport,
        // elements per op, slot bytes (0 = default): 3079 elements in 4 KiB slots take several steps per op,
        // with a remainder, so that banks alternate inside an op
        "one host,                 -:-:-:-, auto, shm,      37,   0",
        "one host multi-step,      -:-:-:-, shm,  shm,      3079, 4096",
        "interleaved,              a:b:a:b, auto, shm+gloo, 37,   0",
        "interleaved multi-step,   a:b:a:b, auto, shm+gloo, 3079, 4096",
        "uneven,                   a:a:a:b, auto, shm+gloo, 37,   0",
        "forced tcp,               -:-:-:-, gloo, gloo,     37,   0",
        "one rank a host,          a:b:c:d, auto, gloo,     37,   0",
    })
    void everyOpAndDtypeIsExactOnEveryLayout(String layout, String hosts, String transport, String expected, int n,
                                             long slot) throws Exception {
        long seed = Data.freshSeed();
        String[] host = hosts.split(":");
        String runId = CommHarness.uniqueRunId("shm-layout");
        try (WorkerProcesses w = new WorkerProcesses(4, 4, r -> List.of(), r -> {
            Map<String, String> e = env(host[r], transport);
            if (slot > 0) {
                e.put("TORUS_SHM_SLOT_BYTES", Long.toString(slot));
            }
            return e;
        }, zk.connectString(), runId, 20_000, "allops", Long.toString(seed), Integer.toString(n))) {
            for (int r = 0; r < 4; r++) {
                String line = w.awaitLine(r, l -> l.startsWith("RESULT allops"), 120_000);
                assertEquals(0, w.awaitExit(r, 30_000), "rank " + r + ": " + line + " " + w.lines(r));
                assertTrue(line.contains("transport=" + expected + " "), layout + ": " + line);
                assertTrue(line.endsWith("errors=0"), line + " (seed " + seed + ")");
            }
            assertEquals(List.of(), segments(runId), "no segment name outlives the setup");
        }
    }

    private static Map<String, String> env(String host, String transport) {
        Map<String, String> e = new HashMap<>();
        if (!host.equals("-")) {
            e.put("TORUS_HOST_ID", host);
        }
        e.put("TORUS_TRANSPORT", transport);
        return e;
    }

    @Test
    void sharedMemoryRequestedWithoutASharedHostFailsAtCreationWithTheCause() throws Exception {
        try (WorkerProcesses w = new WorkerProcesses(2, 2, r -> List.of(), r -> env("host" + r, "shm"),
                zk.connectString(), CommHarness.uniqueRunId("shm-none"), 20_000, "init")) {
            for (int r = 0; r < 2; r++) {
                String line = w.awaitLine(r, l -> l.startsWith("RESULT init"), 60_000);
                assertEquals(0, w.awaitExit(r, 20_000), line);
                assertTrue(line.contains("type=CommException") && line.contains("TORUS_TRANSPORT=shm")
                        && line.contains("no two ranks") && line.contains("share a host"), line);
            }
        }
    }

    /** Ranks with different transport settings: creation fails on each, naming both settings. */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"transport, TORUS_TRANSPORT, gloo, auto", "slot size, TORUS_SHM_SLOT_BYTES, 8192, 4096"})
    void ranksWithDifferentTransportSettingsFailCreationNamingThem(String what, String var, String v0, String v1)
            throws Exception {
        try (WorkerProcesses w = new WorkerProcesses(2, 2, r -> List.of(), r -> Map.of(var, r == 0 ? v0 : v1),
                zk.connectString(), CommHarness.uniqueRunId("shm-settings"), 20_000, "init")) {
            for (int r = 0; r < 2; r++) {
                String line = w.awaitLine(r, l -> l.startsWith("RESULT init"), 60_000);
                assertEquals(0, w.awaitExit(r, 20_000), line);
                assertTrue(line.contains("type=CommException") && line.contains("same transport settings")
                        && line.contains(v0) && line.contains(v1), what + ": " + line);
            }
        }
    }

    @Test
    void badSlotSizeIsRefusedWithTheVariable() throws Exception {
        try (WorkerProcesses w = new WorkerProcesses(2, 1, Map.of("TORUS_SHM_SLOT_BYTES", "100"), zk.connectString(),
                CommHarness.uniqueRunId("shm-slot"), 20_000, "init")) {
            String line = w.awaitLine(0, l -> l.startsWith("RESULT init"), 60_000);
            assertEquals(0, w.awaitExit(0, 20_000), line);
            assertTrue(line.contains("type=IllegalArgumentException") && line.contains("TORUS_SHM_SLOT_BYTES")
                    && line.contains("multiple of 4096"), line);
        }
    }

    @Test
    void badTransportNamesAreRefusedWithTheArgument() {
        var e = assertThrows(IllegalArgumentException.class, () -> Transport.parse("TORUS_TRANSPORT", "smh"));
        assertTrue(e.getMessage().contains("TORUS_TRANSPORT") && e.getMessage().contains("auto, shm or gloo")
                && e.getMessage().contains("'smh'"), e.getMessage());
        assertEquals(Transport.SHM, Transport.parse("x", " SHM "));
        var n = assertThrows(IllegalArgumentException.class, () -> Communicator.builder().transport(null));
        assertTrue(n.getMessage().contains("transport"), n.getMessage());
        var env = assertThrows(IllegalArgumentException.class, () -> CommunicatorBuilder.fromEnvironment(Map.of(
                "RANK", "0", "WORLD_SIZE", "1", "TORUS_RDZV_ENDPOINT", "127.0.0.1:1", "TORUS_TRANSPORT", "tcp")));
        assertTrue(env.getMessage().contains("TORUS_TRANSPORT") && env.getMessage().contains("'tcp'"), env.getMessage());
    }

    /**
     * SIGKILL of a rank in the middle of back-to-back 4 MiB all-reduces on shared memory:
     * the survivors see its exit through its pidfd well before the 10 s op timeout, the
     * message names it, and the shrunk generation (shared memory again) is exact. A stale
     * name of an earlier generation is removed by the next one.
     */
    @Test
    void killedPeerIsAnErrorWellBeforeTheTimeoutAndTheShrunkWorldWorks() throws Exception {
        long timeoutMs = 10_000;
        int victim = 1;
        String runId = CommHarness.uniqueRunId("shm-kill");
        try (WorkerProcesses w = new WorkerProcesses(3, 3, r -> List.of(), r -> env("-", "shm"), zk.connectString(),
                runId, timeoutMs, "survive", Integer.toString(victim))) {
            for (int r = 0; r < 3; r++) {
                w.awaitLine(r, l -> l.equals("RESULT iter 3"), 120_000);
            }
            assertEquals(List.of(), segments(runId), "the name is removed once every rank has attached");
            // what a crash between create and unlink would leave behind in generation 0
            Path stale = Path.of("/dev/shm", SharedMemorySetup.prefix(runId, "world").substring(1) + "0-feedface");
            Files.write(stale, new byte[4096]);
            long killedAt = System.currentTimeMillis();
            w.process(victim).destroyForcibly();
            Pattern failed = Pattern.compile("RESULT failed at=(\\d+) lastOk=(\\d+) type=(\\w+) message=(.*)");
            for (int r = 0; r < 3; r++) {
                if (r == victim) {
                    continue;
                }
                String line = w.awaitLine(r, l -> l.startsWith("RESULT failed"), timeoutMs + 20_000);
                Matcher m = failed.matcher(line);
                assertTrue(m.matches(), line);
                long after = Long.parseLong(m.group(1)) - killedAt;
                System.out.println("rank " + r + " failed " + after + " ms after the kill: " + line);
                assertTrue(after < 3_000, "the exit is seen through the pidfd, not the 10 s timeout: " + after + " ms");
                assertEquals("CommAbortedException", m.group(3), line);
                assertTrue(m.group(4).contains("rank " + victim) && m.group(4).contains("exited"), line);
                String shrunk = w.awaitLine(r, l -> l.startsWith("RESULT shrunk"), 60_000);
                assertTrue(shrunk.contains("size=2") && shrunk.contains("generation=1") && shrunk.endsWith("ok=true"),
                        shrunk);
                assertEquals(0, w.awaitExit(r, 30_000), w.lines(r).toString());
            }
            assertTrue(!Files.exists(stale), "generation 1 removed generation 0's stale name");
            assertEquals(List.of(), segments(runId));
        } finally {
            Files.deleteIfExists(Path.of("/dev/shm", SharedMemorySetup.prefix(runId, "world").substring(1)
                    + "0-feedface"));
        }
    }

    /** A SIGSTOPped rank: the others time out within the bound, naming the rank that never arrived. */
    @Test
    void stoppedPeerTimesOutTheOthersNamingIt() throws Exception {
        long timeoutMs = 2_000;
        int victim = 2;
        String runId = CommHarness.uniqueRunId("shm-stop");
        try (WorkerProcesses w = new WorkerProcesses(3, 3, r -> List.of(), r -> env("-", "shm"), zk.connectString(),
                runId, timeoutMs, "survive", Integer.toString(victim))) {
            for (int r = 0; r < 3; r++) {
                w.awaitLine(r, l -> l.equals("RESULT iter 3"), 120_000);
            }
            long pid = w.process(victim).pid();
            new ProcessBuilder("kill", "-STOP", Long.toString(pid)).start().waitFor();
            long stoppedAt = System.currentTimeMillis();
            try {
                Pattern failed = Pattern.compile("RESULT failed at=(\\d+) lastOk=(\\d+) type=(\\w+) message=(.*)");
                for (int r = 0; r < 2; r++) {
                    String line = w.awaitLine(r, l -> l.startsWith("RESULT failed"), timeoutMs + 20_000);
                    Matcher m = failed.matcher(line);
                    assertTrue(m.matches(), line);
                    long after = Long.parseLong(m.group(1)) - stoppedAt;
                    System.out.println("rank " + r + " failed " + after + " ms after SIGSTOP: " + line);
                    assertTrue(after <= timeoutMs + 1_000, "failed " + after + " ms after SIGSTOP; bound "
                            + (timeoutMs + 1_000));
                    assertTrue(m.group(3).equals("CommTimeoutException"), line);
                    assertTrue(m.group(4).contains("not arrived: rank " + victim), line);
                }
            } finally {
                w.process(victim).destroyForcibly();
                new ProcessBuilder("kill", "-CONT", Long.toString(pid)).start().waitFor();
            }
        }
    }

    /**
     * A rank that closes its communicator without abort, and stays alive, while the others enter one more
     * all-reduce: they fail with a peer failure naming it, long before the op timeout, and not the ranks
     * that were only finishing the last barrier it took part in.
     */
    @Test
    void aPeerThatClosesFailsTheNextCollectiveOfTheOthersAtOnce() throws Exception {
        long timeoutMs = 20_000;
        int quitter = 1;
        String runId = CommHarness.uniqueRunId("shm-close");
        try (WorkerProcesses w = new WorkerProcesses(3, 3, r -> List.of(), r -> env("-", "shm"), zk.connectString(),
                runId, timeoutMs, "quitter", Integer.toString(quitter))) {
            w.awaitLine(quitter, l -> l.startsWith("RESULT closed"), 120_000);
            Pattern failed = Pattern.compile("RESULT failed after=(\\d+) type=(\\w+) message=(.*)");
            for (int r : new int[] {0, 2}) {
                String line = w.awaitLine(r, l -> l.startsWith("RESULT "), 60_000);
                Matcher m = failed.matcher(line);
                assertTrue(m.matches(), "rank " + r + ": " + line + " " + w.lines(r));
                long after = Long.parseLong(m.group(1));
                System.out.println("rank " + r + " failed " + after + " ms into the op: " + line);
                assertTrue(after < timeoutMs / 4, "failed after " + after + " ms; the op timeout is " + timeoutMs);
                assertTrue(m.group(3).contains("rank " + quitter) && m.group(3).contains("closed its communicator"),
                        line);
                assertEquals(0, w.awaitExit(r, 30_000), w.lines(r).toString());
            }
        }
    }
}
