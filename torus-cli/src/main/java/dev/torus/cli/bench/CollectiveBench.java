package dev.torus.cli.bench;

import dev.torus.zookeeper.EmbeddedZooKeeper;
import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * nccl-tests-style sweep of one collective over N local worker processes, with the
 * native Gloo baseline run on the same sizes in the same invocation. Columns: size,
 * count, type, redop, time, algbw, busbw, #wrong, native busbw and the ratio.
 *
 * <p>busbw follows nccl-tests: all-reduce algbw x 2(n-1)/n; all-gather and
 * reduce-scatter algbw x (n-1)/n; broadcast and send/recv algbw x 1. algbw is the
 * buffer size (the full gathered/scattered buffer for all-gather/reduce-scatter)
 * divided by the time.
 */
public final class CollectiveBench {
    private static final Pattern NUM = Pattern.compile("\"(\\w+)\":(\"[^\"]*\"|[-0-9.eE]+)");

    private final String op;
    private final int nproc;
    private final long minBytes;
    private final long maxBytes;
    private final double minTime;
    private final String compression;
    private final Path baseline;
    private final String algo;
    private final String backend;
    private final PrintStream out;
    private final String transport;
    private TestHosts hosts = TestHosts.LOCAL;

    /** Runs the ranks (and the native loop's) on these hosts instead of this one. */
    public CollectiveBench on(TestHosts h) {
        this.hosts = h;
        return this;
    }

    /**
     * {@code transport}: auto, shm or gloo (TORUS_TRANSPORT of the workers), or {@code both}:
     * Torus over Gloo's TCP transport, then over shared memory, in the same invocation; the
     * row then carries the shared-memory figures as {@code shm_time_us}, {@code shm_busbw} and
     * {@code shm_x} (shared-memory busbw / Gloo busbw).
     */
    public CollectiveBench(String op, int nproc, long minBytes, long maxBytes, double minTime, String compression,
                           Path baseline, String algo, String backend, String transport, PrintStream out) {
        this.transport = transport;
        this.op = op;
        this.nproc = nproc;
        this.minBytes = minBytes;
        this.maxBytes = maxBytes;
        this.minTime = minTime;
        this.compression = compression;
        this.baseline = baseline;
        this.algo = algo;
        this.backend = backend;
        this.out = out;
    }

    double busFactor() {
        int n = nproc;
        return switch (op) {
            case "allreduce" -> 2.0 * (n - 1) / n;
            case "allgather", "reducescatter" -> (double) (n - 1) / n;
            default -> 1.0;
        };
    }

    public List<BenchRow> run(BenchReport report) throws Exception {
        List<Map<String, String>> shmRows = null;
        if (transport.equals("both")) {
            shmRows = new ArrayList<>();
            for (Map<String, String> m : launchTorus("shm")) {
                if ("row".equals(m.get("kind"))) {
                    shmRows.add(m);
                }
            }
        }
        List<Map<String, String>> all = launchTorus(transport.equals("both") ? "gloo" : transport);
        List<Map<String, String>> torus = new ArrayList<>();
        List<Map<String, String>> setup = new ArrayList<>();
        for (Map<String, String> m : all) {
            ("row".equals(m.get("kind")) ? torus : setup).add(m);
        }
        return report(report, torus, setup, shmRows);
    }

    private List<Map<String, String>> launchTorus(String transportName) throws Exception {
        try (EmbeddedZooKeeper zk = hosts.local() ? EmbeddedZooKeeper.start()
                : EmbeddedZooKeeper.start(new EmbeddedZooKeeper.Options().bindAddress(hosts.zooKeeperAddress()))) {
            dev.torus.rendezvous.JobSecret secret = dev.torus.rendezvous.JobSecret.generate();
            List<String> cmd = javaCommand(CollectiveBenchWorker.class.getName(), op, Long.toString(minBytes),
                    Long.toString(maxBytes), Double.toString(minTime), compression);
            Map<String, String> env = new LinkedHashMap<>();
            env.put("TORUS_RDZV_ENDPOINT", zk.connectString());
            env.put(dev.torus.rendezvous.JobSecret.ENV, secret.toHex()); // the environment only, never the command line
            env.put("TORUS_RUN_ID", "bench-" + op + "-" + ProcessHandle.current().pid() + "-" + System.nanoTime());
            env.put("TORUS_GLOO_ALGORITHM", algo);
            env.put("TORUS_BACKEND", backend);
            env.put("TORUS_BENCH_SHRINK", "1");
            env.put("TORUS_TRANSPORT", transportName);
            return launch(cmd, env, true);
        }
    }

    private List<BenchRow> report(BenchReport report, List<Map<String, String>> torus, List<Map<String, String>> setup,
                                  List<Map<String, String>> shmRows) throws Exception {
        Map<Long, Double> nativeTime = new LinkedHashMap<>();
        if (baseline != null && compression.equals("none")) {
            Path dir = Files.createTempDirectory("torus-gloo-bench-");
            try {
                List<List<String>> cmds = new ArrayList<>();
                for (int r = 0; r < nproc; r++) {
                    cmds.add(hosts.command(r, List.of(baseline.toAbsolutePath().toString(), op, Integer.toString(r),
                            Integer.toString(nproc), dir.toString(), Long.toString(minBytes), Long.toString(maxBytes),
                            Double.toString(minTime), algo, hosts.address(r))));
                }
                for (Map<String, String> m : launchEach(cmds, Map.of())) {
                    nativeTime.put(Long.parseLong(m.get("bytes")), Double.parseDouble(m.get("time_us")));
                }
            } finally {
                try (var walk = Files.walk(dir)) {
                    walk.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
                }
            }
        }
        List<BenchRow> rows = new ArrayList<>();
        for (Map<String, String> m : setup) {
            m.forEach((k, v) -> {
                if (!k.equals("kind")) {
                    out.printf("# %s with %d processes: %s = %.1f ms%n", op, nproc, k, Double.parseDouble(v));
                }
            });
        }
        for (Map<String, String> m : torus) {
            long bytes = Long.parseLong(m.get("bytes"));
            double us = Double.parseDouble(m.get("time_us"));
            double algbw = bytes / us / 1e3;
            double busbw = algbw * busFactor();
            BenchRow row = new BenchRow()
                    .put("op", op).put("nproc", nproc).put("size", bytes).put("count", Long.parseLong(m.get("count")))
                    .put("type", "float").put("redop", op.equals("allreduce") || op.equals("reducescatter") ? "sum" : "none")
                    .put("compression", compression)
                    .put("time_us", us).put("algbw", algbw).put("busbw", busbw)
                    .put("wrong", Long.parseLong(m.get("wrong")))
                    .put("wire_bytes", Long.parseLong(m.get("wire_bytes_per_op")));
            if (m.containsKey("plain_time_us")) {
                double pt = Double.parseDouble(m.get("plain_time_us"));
                long pw = Long.parseLong(m.get("plain_wire_bytes_per_op"));
                row.put("plain_time_us", pt).put("speedup", pt / us)
                        .put("wire_ratio", pw == 0 ? 0.0 : Long.parseLong(m.get("wire_bytes_per_op")) / (double) pw);
            }
            if (shmRows != null) {
                Map<String, String> sm = shmRows.stream().filter(x -> Long.parseLong(x.get("bytes")) == bytes).findFirst()
                        .orElseThrow(() -> new IllegalStateException("no shared-memory row for " + bytes + " bytes"));
                double sus = Double.parseDouble(sm.get("time_us"));
                double sbus = bytes / sus / 1e3 * busFactor();
                row.put("wrong", Long.parseLong(m.get("wrong")) + Long.parseLong(sm.get("wrong")))
                        .put("shm_time_us", sus).put("shm_busbw", sbus).put("shm_x", us / sus);
            }
            Double nt = nativeTime.get(bytes);
            if (nt != null) {
                double nbus = bytes / nt / 1e3 * busFactor();
                row.put("native_busbw", nbus).put("ratio", busbw / nbus);
            } else {
                row.put("native_busbw", "-").put("ratio", "-");
            }
            for (Map.Entry<String, String> e : setup.stream().flatMap(s -> s.entrySet().stream()).toList()) {
                if (!e.getKey().equals("kind")) {
                    row.put(e.getKey(), Double.parseDouble(e.getValue()));
                }
            }
            report.add(row);
            rows.add(row);
        }
        return rows;
    }

    static List<String> javaCommand(String mainClass, String... args) {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> cmd = new ArrayList<>(List.of(java, "-Xmx1g", "-XX:+UseSerialGC",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", System.getProperty("java.class.path"), mainClass));
        cmd.addAll(List.of(args));
        return cmd;
    }

    private List<Map<String, String>> launch(List<String> cmd, Map<String, String> env, boolean torusEnv)
            throws IOException, InterruptedException {
        List<List<String>> cmds = new ArrayList<>();
        List<Map<String, String>> envs = new ArrayList<>();
        for (int r = 0; r < nproc; r++) {
            cmds.add(hosts.command(r, cmd));
            Map<String, String> e = new LinkedHashMap<>(env);
            if (!hosts.local()) {
                e.put("TORUS_GLOO_HOSTNAME", hosts.address(r));
            }
            e.put("RANK", Integer.toString(r));
            e.put("WORLD_SIZE", Integer.toString(nproc));
            e.put("LOCAL_RANK", Integer.toString(r));
            e.put("TORUS_COMM_TIMEOUT_MS", "120000");
            envs.add(e);
        }
        return run(cmds, envs);
    }

    private List<Map<String, String>> launchEach(List<List<String>> cmds, Map<String, String> env)
            throws IOException, InterruptedException {
        List<Map<String, String>> envs = new ArrayList<>();
        for (int r = 0; r < cmds.size(); r++) {
            envs.add(env);
        }
        return run(cmds, envs);
    }

    /** Starts every process, returns rank 0's JSON lines; fails if any process fails. Kills all on the way out. */
    private List<Map<String, String>> run(List<List<String>> cmds, List<Map<String, String>> envs)
            throws IOException, InterruptedException {
        List<Process> procs = new ArrayList<>();
        List<Map<String, String>> rows = new ArrayList<>();
        List<Path> errs = new ArrayList<>();
        try {
            for (int r = 0; r < cmds.size(); r++) {
                ProcessBuilder pb = new ProcessBuilder(cmds.get(r));
                pb.environment().putAll(envs.get(r));
                Path err = Files.createTempFile("torus-bench-" + r + "-", ".err");
                errs.add(err);
                pb.redirectError(err.toFile());
                if (r != 0) {
                    pb.redirectOutput(new File("/dev/null"));
                }
                procs.add(pb.start());
            }
            try (BufferedReader br = new BufferedReader(new InputStreamReader(procs.get(0).getInputStream(),
                    StandardCharsets.UTF_8))) {
                String line;
                while ((line = br.readLine()) != null) {
                    if (line.startsWith("{")) {
                        Map<String, String> m = new LinkedHashMap<>();
                        Matcher mm = NUM.matcher(line);
                        while (mm.find()) {
                            m.put(mm.group(1), mm.group(2).replace("\"", ""));
                        }
                        rows.add(m);
                    }
                }
            }
            for (int r = 0; r < procs.size(); r++) {
                if (!procs.get(r).waitFor(30, TimeUnit.MINUTES) || procs.get(r).exitValue() != 0) {
                    List<String> tail = Files.readAllLines(errs.get(r));
                    throw new IllegalStateException("benchmark process " + r + " (" + cmds.get(r).get(0)
                            + ") failed with exit code " + (procs.get(r).isAlive() ? "timeout" : procs.get(r).exitValue())
                            + ":\n" + String.join("\n", tail.subList(Math.max(0, tail.size() - 20), tail.size())));
                }
            }
            return rows;
        } finally {
            for (Process p : procs) {
                p.destroyForcibly();
            }
            for (Path p : errs) {
                Files.deleteIfExists(p);
            }
        }
    }
}
