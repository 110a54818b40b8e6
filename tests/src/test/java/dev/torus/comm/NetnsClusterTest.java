package dev.torus.comm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.torus.testing.CommHarness;
import dev.torus.testing.WorkerProcesses;
import dev.torus.zookeeper.EmbeddedZooKeeper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Two test hosts made by {@code tools/netns-cluster.sh} (network namespaces on a bridge; ZooKeeper in this
 * namespace on the bridge address): every collective and dtype across the two hosts, checked against
 * references, and one data-parallel step with the exact hook, bitwise the gradients one process computes
 * for both hosts' rows; on an unshaped link and on one shaped to 1 Gbit/s. Skips, with the reason, where namespaces
 * cannot be made (not root, no iproute2, a sandbox). Removes every namespace and link it made.
 */
@Tag("multiprocess")
class NetnsClusterTest {
    private static final Path SCRIPT = Path.of("..", "tools", "netns-cluster.sh").toAbsolutePath().normalize();
    private static final String PREFIX = "tt" + ProcessHandle.current().pid() % 10000; // interface names: 15 chars

    private static String run(String... args) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder(List.of(args)).redirectErrorStream(true);
        pb.environment().put("TORUS_NETNS_PREFIX", PREFIX);
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(60, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            return "timed out";
        }
        return p.exitValue() == 0 ? null : out.isBlank() ? "exit " + p.exitValue() : out.trim();
    }

    /** Every collective and dtype, then one data-parallel step, across two hosts. */
    private void allOpsAcrossHosts(String rate) throws Exception {
        assumeTrue(Files.isExecutable(SCRIPT), "no " + SCRIPT);
        String problem = rate == null ? run(SCRIPT.toString(), "up", "2") : run(SCRIPT.toString(), "up", "2", rate);
        try {
            assumeTrue(problem == null, "network namespaces are not available here: " + problem);
            try (EmbeddedZooKeeper zk = EmbeddedZooKeeper.start(new EmbeddedZooKeeper.Options().authSchemes()
                    .bindAddress("10.201.0.254"))) {
                long seed = System.nanoTime();
                try (WorkerProcesses w = new WorkerProcesses(2, 2,
                        r -> List.of("ip", "netns", "exec", PREFIX + "-" + r),
                        r -> Map.of("TORUS_GLOO_HOSTNAME", "10.201.0." + (r + 1)), zk.connectString(),
                        CommHarness.uniqueRunId("netns"), 30_000, "allops", Long.toString(seed))) {
                    for (int r = 0; r < 2; r++) {
                        String line = w.awaitLine(r, l -> l.startsWith("RESULT allops"), 180_000);
                        assertEquals(0, w.awaitExit(r, 30_000), "host " + r + ": " + line + " " + w.lines(r) + " "
                                + w.stderrTail(r));
                        assertTrue(line.endsWith("errors=0"), line + " (seed " + seed + ")");
                    }
                }
                try (WorkerProcesses w = new WorkerProcesses(2, 2,
                        r -> List.of("ip", "netns", "exec", PREFIX + "-" + r),
                        r -> Map.of("TORUS_GLOO_HOSTNAME", "10.201.0." + (r + 1)), zk.connectString(),
                        CommHarness.uniqueRunId("netns-dp"), 30_000, "dpstep")) {
                    for (int r = 0; r < 2; r++) {
                        String line = w.awaitLine(r, l -> l.startsWith("RESULT dpstep"), 180_000);
                        assertEquals(0, w.awaitExit(r, 30_000), "host " + r + ": " + line + " " + w.lines(r) + " "
                                + w.stderrTail(r));
                        assertTrue(line.endsWith("wrong=0"), line);
                    }
                }
            }
        } finally {
            run(SCRIPT.toString(), "down");
        }
    }

    /**
     * Two ranks on each of two hosts: shared memory inside each host, Gloo between them
     * ({@code shm+gloo}), every op and dtype exact; the ranks are interleaved (0 and 2 on host 0)
     * so that a host's leader is not rank 0's neighbour.
     */
    @Test
    void twoRanksOnEachOfTwoHostsUseSharedMemoryInsideAndGlooBetween() throws Exception {
        assumeTrue(Files.isExecutable(SCRIPT), "no " + SCRIPT);
        String problem = run(SCRIPT.toString(), "up", "2");
        try {
            assumeTrue(problem == null, "network namespaces are not available here: " + problem);
            try (EmbeddedZooKeeper zk = EmbeddedZooKeeper.start(new EmbeddedZooKeeper.Options().authSchemes()
                    .bindAddress("10.201.0.254"))) {
                long seed = System.nanoTime();
                try (WorkerProcesses w = new WorkerProcesses(4, 4,
                        r -> List.of("ip", "netns", "exec", PREFIX + "-" + r % 2),
                        r -> Map.of("TORUS_GLOO_HOSTNAME", "10.201.0." + (r % 2 + 1)), zk.connectString(),
                        CommHarness.uniqueRunId("netns-hier"), 30_000, "allops", Long.toString(seed))) {
                    for (int r = 0; r < 4; r++) {
                        String line = w.awaitLine(r, l -> l.startsWith("RESULT allops"), 180_000);
                        assertEquals(0, w.awaitExit(r, 30_000), "rank " + r + ": " + line + " " + w.lines(r) + " "
                                + w.stderrTail(r));
                        assertTrue(line.contains("transport=shm+gloo "), line);
                        assertTrue(line.endsWith("errors=0"), line + " (seed " + seed + ")");
                    }
                }
            }
        } finally {
            run(SCRIPT.toString(), "down");
        }
    }

    @Test
    void everyCollectiveAcrossTwoHosts() throws Exception {
        allOpsAcrossHosts(null);
    }

    @Test
    void everyCollectiveAcrossTwoHostsOnAOneGigabitLink() throws Exception {
        allOpsAcrossHosts("1gbit");
    }
}
