package dev.torus.testing;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/**
 * Real worker JVMs on loopback, one per rank, each running {@link CommWorker}.
 * Output lines are collected per rank; every wait is bounded; {@link #close()}
 * kills whatever is still running, so no test leaves orphans.
 */
public final class WorkerProcesses implements AutoCloseable {
    private final List<Process> processes = new ArrayList<>();
    private final List<List<String>> lines = new ArrayList<>();
    private final List<Path> stderr = new ArrayList<>();

    public WorkerProcesses(int world, String endpoint, String runId, long timeoutMs, String... args)
            throws IOException {
        this(world, world, Map.of(), endpoint, runId, timeoutMs, args);
    }

    /**
     * Starts only ranks {@code 0 .. started-1} of a world of {@code world} (the others never
     * come), each with {@code extraEnv} added to its environment.
     */
    public WorkerProcesses(int world, int started, Map<String, String> extraEnv, String endpoint, String runId,
                           long timeoutMs, String... args) throws IOException {
        this(world, started, r -> List.of(), r -> extraEnv, endpoint, runId, timeoutMs, args);
    }

    /**
     * As above, with a per-rank command prefix (for example {@code ip netns exec HOST}, to start rank r on a
     * test host) and per-rank extra environment.
     */
    public WorkerProcesses(int world, int started, java.util.function.IntFunction<List<String>> prefix,
                           java.util.function.IntFunction<Map<String, String>> extraEnv, String endpoint, String runId,
                           long timeoutMs, String... args) throws IOException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        for (int r = 0; r < started; r++) {
            List<String> cmd = new ArrayList<>(prefix.apply(r));
            cmd.addAll(List.of(java, "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                    "-cp", classpath(), CommWorker.class.getName()));
            cmd.addAll(List.of(args));
            ProcessBuilder pb = new ProcessBuilder(cmd);
            Map<String, String> env = pb.environment();
            env.put("RANK", Integer.toString(r));
            env.put("WORLD_SIZE", Integer.toString(world));
            env.put("TORUS_RDZV_ENDPOINT", endpoint);
            env.put("TORUS_RUN_ID", runId);
            env.put("TORUS_COMM_TIMEOUT_MS", Long.toString(timeoutMs));
            env.putAll(extraEnv.apply(r));
            Path err = Files.createTempFile("torus-worker-" + r + "-", ".err");
            pb.redirectError(err.toFile());
            Process p = pb.start();
            List<String> out = new CopyOnWriteArrayList<>();
            Thread reader = new Thread(() -> {
                try (BufferedReader br = new BufferedReader(new InputStreamReader(p.getInputStream(),
                        StandardCharsets.UTF_8))) {
                    String line;
                    while ((line = br.readLine()) != null) {
                        out.add(line);
                    }
                } catch (IOException ignored) {
                    // process gone
                }
            }, "worker-" + r + "-stdout");
            reader.setDaemon(true);
            reader.start();
            processes.add(p);
            lines.add(out);
            stderr.add(err);
        }
    }

    /**
     * The test classpath. A launcher that loads tests through its own class loader (the JUnit
     * console in the GPU-host bundle) passes it as {@code -Dtorus.worker.classpath}.
     */
    public static String classpath() {
        return System.getProperty("torus.worker.classpath", System.getProperty("java.class.path"));
    }

    public Process process(int rank) {
        return processes.get(rank);
    }

    public List<String> lines(int rank) {
        return lines.get(rank);
    }

    /** The first output line of {@code rank} matching {@code p}, waiting at most {@code timeoutMs}. */
    public String awaitLine(int rank, Predicate<String> p, long timeoutMs) throws InterruptedException {
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (System.currentTimeMillis() < deadline) {
            for (String l : lines.get(rank)) {
                if (p.test(l)) {
                    return l;
                }
            }
            if (!processes.get(rank).isAlive() && System.currentTimeMillis() > deadline - timeoutMs + 200) {
                for (String l : lines.get(rank)) {
                    if (p.test(l)) {
                        return l;
                    }
                }
                throw new AssertionError("rank " + rank + " exited (" + processes.get(rank).exitValue()
                        + ") without the expected line; output " + lines.get(rank) + "\nstderr tail:\n" + stderrTail(rank));
            }
            Thread.sleep(20);
        }
        throw new AssertionError("rank " + rank + " printed no matching line within " + timeoutMs + " ms; output "
                + lines.get(rank) + "\nstderr tail:\n" + stderrTail(rank));
    }

    /** Waits for {@code rank} to exit and returns its exit code. */
    public int awaitExit(int rank, long timeoutMs) throws InterruptedException {
        Process p = processes.get(rank);
        if (!p.waitFor(timeoutMs, TimeUnit.MILLISECONDS)) {
            throw new AssertionError("rank " + rank + " did not exit within " + timeoutMs + " ms; output "
                    + lines.get(rank) + "\nstderr tail:\n" + stderrTail(rank));
        }
        return p.exitValue();
    }

    public String stderrTail(int rank) {
        try {
            List<String> all = Files.readAllLines(stderr.get(rank));
            return String.join("\n", all.subList(Math.max(0, all.size() - 15), all.size()));
        } catch (IOException e) {
            return "(unreadable: " + e + ")";
        }
    }

    @Override
    public void close() throws InterruptedException {
        for (Process p : processes) {
            p.destroyForcibly();
        }
        for (Process p : processes) {
            p.waitFor(10, TimeUnit.SECONDS);
        }
        for (Path p : stderr) {
            try {
                Files.deleteIfExists(p);
            } catch (IOException ignored) {
                // temp file
            }
        }
    }
}
