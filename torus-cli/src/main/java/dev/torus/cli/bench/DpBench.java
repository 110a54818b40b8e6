package dev.torus.cli.bench;

import dev.torus.NativeLibrary;
import dev.torus.cli.launch.LaunchSpec;
import dev.torus.cli.launch.Launcher;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;

/**
 * {@code torus-bench dp}: data-parallel training throughput. Every configuration
 * runs as real worker processes started by the launcher (embedded ZooKeeper, Gloo)
 * and is compared, in the same run, with one process training alone on the same
 * per-rank batch: samples/s and its ratio, bytes on the wire per step and their
 * ratio to an fp32 ring all-reduce, the speed-up of each hook over the exact fp32
 * reduction, and how much reduction time overlapped backward (against reducing
 * after backward).
 */
public final class DpBench {
    private final PrintStream out;
    private final int width;
    private final int blocks;
    private final int batch;
    private final int steps;
    private final long bucketBytes;

    public DpBench(PrintStream out, int width, int blocks, int batch, int steps, long bucketBytes) {
        this.out = out;
        this.width = width;
        this.blocks = blocks;
        this.batch = batch;
        this.steps = steps;
        this.bucketBytes = bucketBytes;
    }

    record Measured(double stepMs, double commMs, double exposedMs, long wire, long payload, int buckets) {}

    private TestHosts hosts = TestHosts.LOCAL;

    /** Runs the ranks on these test hosts (one rank per host) instead of this one. */
    public DpBench on(TestHosts h) {
        this.hosts = h;
        return this;
    }

    Measured launch(int ranks, String hook, boolean overlap, boolean noDp) throws IOException, InterruptedException {
        List<String> cmd = Launcher.javaCommand(List.of("-Xmx1g", "-XX:+UseSerialGC"), DpBenchWorker.class.getName(),
                List.of("" + width, "" + blocks, "" + batch, "" + steps, "3", hook, "" + overlap, "" + bucketBytes,
                        "" + noDp));
        if (!hosts.local() && !noDp) {
            return launchOnHosts(ranks, cmd);
        }
        int threads = Math.max(1, Runtime.getRuntime().availableProcessors() / ranks);
        AtomicReference<Measured> result = new AtomicReference<>();
        List<String> errors = new ArrayList<>();
        LaunchSpec spec = new LaunchSpec(ranks, 1, 1, null, null, 0, cmd,
                Map.of("OPENBLAS_NUM_THREADS", "" + threads), Path.of(System.getProperty("java.io.tmpdir"),
                "torus-bench-dp-errors"), Duration.ofSeconds(60), Duration.ZERO);
        Launcher l = new Launcher(spec, (rank, stderr, line) -> {
            if (!stderr && line.startsWith(DpBenchWorker.RESULT)) {
                String[] f = line.split(" ");
                result.set(new Measured(Double.parseDouble(f[1]), Double.parseDouble(f[2]), Double.parseDouble(f[3]),
                        Long.parseLong(f[4]), Long.parseLong(f[5]), Integer.parseInt(f[6])));
            } else if (stderr) {
                synchronized (errors) {
                    errors.add("[" + rank + "] " + line);
                }
            }
        }, new PrintStream(java.io.OutputStream.nullOutputStream()));
        int code = l.run();
        if (code != 0 || result.get() == null) {
            throw new IllegalStateException("dp benchmark workers failed (exit " + code + "): "
                    + String.join("\n", errors.subList(Math.max(0, errors.size() - 10), errors.size())));
        }
        return result.get();
    }

    /** One process per test host, started directly (the launcher starts local processes only). */
    private Measured launchOnHosts(int ranks, List<String> cmd) throws IOException, InterruptedException {
        List<Process> procs = new ArrayList<>();
        List<java.nio.file.Path> errs = new ArrayList<>();
        try (dev.torus.zookeeper.EmbeddedZooKeeper zk = dev.torus.zookeeper.EmbeddedZooKeeper.start(
                new dev.torus.zookeeper.EmbeddedZooKeeper.Options().authSchemes().bindAddress(hosts.zooKeeperAddress()))) {
            String runId = "bench-dp-hosts-" + ProcessHandle.current().pid() + "-" + System.nanoTime();
            for (int r = 0; r < ranks; r++) {
                ProcessBuilder pb = new ProcessBuilder(hosts.command(r, cmd));
                Map<String, String> env = pb.environment();
                env.put("RANK", "" + r);
                env.put("WORLD_SIZE", "" + ranks);
                env.put("LOCAL_RANK", "0");
                // the test hosts share this machine's cores: each rank gets its share, as the launcher gives
                // local ranks, so that the hosts do not oversubscribe the cores they pretend to own apart
                env.put("LOCAL_WORLD_SIZE", "" + ranks);
                env.put("OPENBLAS_NUM_THREADS", "" + Math.max(1, Runtime.getRuntime().availableProcessors() / ranks));
                env.put("TORUS_RDZV_ENDPOINT", zk.connectString());
                env.put("TORUS_RUN_ID", runId);
                env.put("TORUS_GLOO_HOSTNAME", hosts.address(r));
                env.put("TORUS_COMM_TIMEOUT_MS", "120000");
                java.nio.file.Path err = java.nio.file.Files.createTempFile("torus-bench-dp-" + r + "-", ".err");
                errs.add(err);
                pb.redirectError(err.toFile());
                if (r != 0) {
                    pb.redirectOutput(new java.io.File("/dev/null"));
                }
                procs.add(pb.start());
            }
            Measured got = null;
            try (java.io.BufferedReader br = new java.io.BufferedReader(new java.io.InputStreamReader(
                    procs.get(0).getInputStream(), java.nio.charset.StandardCharsets.UTF_8))) {
                String line;
                while ((line = br.readLine()) != null) {
                    if (line.startsWith(DpBenchWorker.RESULT)) {
                        String[] f = line.split(" ");
                        got = new Measured(Double.parseDouble(f[1]), Double.parseDouble(f[2]), Double.parseDouble(f[3]),
                                Long.parseLong(f[4]), Long.parseLong(f[5]), Integer.parseInt(f[6]));
                    }
                }
            }
            for (int r = 0; r < ranks; r++) {
                Process p = procs.get(r);
                if (!p.waitFor(10, java.util.concurrent.TimeUnit.MINUTES) || p.exitValue() != 0 || got == null) {
                    List<String> tail = java.nio.file.Files.readAllLines(errs.get(r));
                    throw new IllegalStateException("dp benchmark worker " + r + " on host " + (r % hosts.hosts())
                            + " failed: " + String.join("\n", tail.subList(Math.max(0, tail.size() - 10), tail.size())));
                }
            }
            return got;
        } finally {
            for (Process p : procs) {
                p.destroyForcibly();
            }
            for (java.nio.file.Path p : errs) {
                java.nio.file.Files.deleteIfExists(p);
            }
        }
    }

    /** Runs the single-process baseline, then every (ranks, hook) configuration. */
    public List<BenchRow> run(List<Integer> rankCounts, List<String> hooks, Path json) throws IOException,
            InterruptedException {
        String[] cols = {"ranks", "device", "hook", "overlap", "buckets", "step_ms", "samples_s", "ratio_1proc",
                "wire_MiB", "wire_ratio", "speedup", "comm_ms", "exposed_ms", "hidden"};
        int[] widths = {7, 7, 18, 8, 8, 9, 10, 12, 9, 11, 8, 8, 11, 7};
        try (BenchReport report = new BenchReport(out, json, cols, widths)) {
            report.header(String.format("# dp: %d-block MLP, width %d (%.1f MiB of fp32 gradients), batch %d per rank, "
                            + "%d timed steps; cpu (%s), %d cores; ratios against 1 process alone and against hook 'none'"
                            + " at the same rank count, in this run%s",
                    blocks, width, gradientMiB(), batch, steps, NativeLibrary.cpuIsa(),
                    Runtime.getRuntime().availableProcessors(), hosts.local() ? "" : "; ranks on " + hosts.hosts()
                            + " test hosts (network namespaces)"));
            Measured one = launch(1, "none", true, true);
            double oneSps = batch / (one.stepMs / 1e3);
            report.add(row(1, "(no DP)", true, one, oneSps, oneSps, Double.NaN));
            for (int n : rankCounts) {
                double noneMs = Double.NaN;
                List<String[]> configs = new ArrayList<>();
                for (String h : hooks) {
                    configs.add(new String[] {h, "true"});
                    if (h.equals("none")) {
                        configs.add(new String[] {h, "false"});
                    }
                }
                for (String[] c : configs) {
                    Measured m = launch(n, c[0], Boolean.parseBoolean(c[1]), false);
                    if (c[0].equals("none") && c[1].equals("true")) {
                        noneMs = m.stepMs;
                    }
                    double sps = n * batch / (m.stepMs / 1e3);
                    report.add(row(n, c[0], Boolean.parseBoolean(c[1]), m, sps, oneSps, noneMs / m.stepMs));
                }
            }
            return report.rows();
        }
    }

    /**
     * PyTorch's DistributedDataParallel on the same model, batch and bucket size
     * ({@code tools/baselines/torch_ddp.py}, run by {@code python}) at each rank count, and
     * the ratio of every Torus row's samples/s to it. Returns false when the peer could not
     * run (the reason is printed).
     */
    public boolean peer(String python, List<Integer> rankCounts, List<BenchRow> torus) throws IOException,
            InterruptedException {
        java.util.Map<Integer, Double> torchSps = new java.util.TreeMap<>();
        List<Integer> counts = new ArrayList<>(List.of(1));
        counts.addAll(rankCounts);
        for (int n : counts) {
            if (torchSps.containsKey(n)) {
                continue;
            }
            ProcessBuilder pb = new ProcessBuilder(python, "tools/baselines/torch_ddp.py", "--nproc", "" + n, "--width",
                    "" + width, "--blocks", "" + blocks, "--batch", "" + batch, "--steps", "" + steps, "--bucket-mib",
                    "" + bucketBytes / 1048576.0);
            pb.redirectErrorStream(true);
            java.nio.file.Path log = java.nio.file.Files.createTempFile("torus-bench-ddp-", ".log");
            pb.redirectOutput(log.toFile());
            Process p = pb.start();
            boolean done = p.waitFor(10, java.util.concurrent.TimeUnit.MINUTES);
            if (!done) {
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly();
                p.waitFor(10, java.util.concurrent.TimeUnit.SECONDS);
            }
            String text = java.nio.file.Files.readString(log);
            java.nio.file.Files.deleteIfExists(log);
            if (!done || p.exitValue() != 0) {
                out.println("# peer: PyTorch DDP not run (" + python + " tools/baselines/torch_ddp.py, exit "
                        + (!done ? "timeout after 10 min" : p.exitValue()) + "): " + text.strip().replace('\n', ' '));
                return false;
            }
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("\"samples_s\": ([0-9.eE+-]+)").matcher(text);
            if (!m.find()) {
                out.println("# peer: no samples_s in the output of torch_ddp.py: " + text.strip());
                return false;
            }
            torchSps.put(n, Double.parseDouble(m.group(1)));
            String info = text.lines().filter(l -> l.startsWith("{")).findFirst().orElse("");
            out.println("# peer: PyTorch DDP (gloo), " + n + " process(es): " + info);
        }
        out.println("# Torus / PyTorch samples/s at each rank count (PyTorch DDP over gloo, same model, batch and "
                + "bucket size; goal >= 1.0 at every rank count)");
        out.println(String.format("# %6s %18s %12s %12s %8s %7s", "ranks", "hook", "torus", "pytorch", "ratio", "goal"));
        for (BenchRow r : torus) {
            int n = ((Number) r.get("ranks")).intValue();
            Double t = torchSps.get(n);
            if (t == null || "no".equals(r.get("overlap"))) {
                continue;
            }
            double sps = ((Number) r.get("samples_s")).doubleValue();
            out.println(String.format(java.util.Locale.ROOT, "  %6d %18s %12.1f %12.1f %8.3f %7s", n, r.get("hook"), sps,
                    t, sps / t, sps / t >= 1.0 ? "met" : "missed"));
            r.put("torch_samples_s", t).put("torch_ratio", sps / t);
        }
        return true;
    }

    private double gradientMiB() {
        long params = (long) width * width * blocks + 3L * width * blocks + (long) width * DpBenchWorker.CLASSES
                + DpBenchWorker.CLASSES;
        return params * 4 / 1048576.0;
    }

    private static BenchRow row(int ranks, String hook, boolean overlap, Measured m, double sps, double oneSps,
                                double speedup) {
        long fp32 = ranks <= 1 ? 0 : m.payload * 2 * (ranks - 1) / ranks;
        return new BenchRow().put("ranks", ranks).put("device", "cpu").put("hook", hook)
                .put("overlap", ranks == 1 ? "-" : overlap ? "yes" : "no").put("buckets", m.buckets)
                .put("step_ms", m.stepMs).put("samples_s", sps).put("ratio_1proc", sps / oneSps)
                .put("wire_MiB", m.wire / 1048576.0).put("wire_ratio", fp32 == 0 ? Double.NaN : (double) m.wire / fp32)
                .put("speedup", speedup).put("comm_ms", m.commMs).put("exposed_ms", m.exposedMs)
                .put("hidden", m.commMs <= 0 ? Double.NaN : Math.max(0, 1 - m.exposedMs / m.commMs));
    }
}
