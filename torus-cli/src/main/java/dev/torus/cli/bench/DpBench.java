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

    Measured launch(int ranks, String hook, boolean overlap, boolean noDp) throws IOException, InterruptedException {
        List<String> cmd = Launcher.javaCommand(List.of("-Xmx1g", "-XX:+UseSerialGC"), DpBenchWorker.class.getName(),
                List.of("" + width, "" + blocks, "" + batch, "" + steps, "3", hook, "" + overlap, "" + bucketBytes,
                        "" + noDp));
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

    /** Runs the single-process baseline, then every (ranks, hook) configuration. */
    public List<BenchRow> run(List<Integer> rankCounts, List<String> hooks, Path json) throws IOException,
            InterruptedException {
        String[] cols = {"ranks", "device", "hook", "overlap", "buckets", "step_ms", "samples_s", "ratio_1proc",
                "wire_MiB", "wire_ratio", "speedup", "comm_ms", "exposed_ms", "hidden"};
        int[] widths = {7, 7, 18, 8, 8, 9, 10, 12, 9, 11, 8, 8, 11, 7};
        try (BenchReport report = new BenchReport(out, json, cols, widths)) {
            report.header(String.format("# dp: %d-block MLP, width %d (%.1f MiB of fp32 gradients), batch %d per rank, "
                            + "%d timed steps; cpu (%s), %d cores; ratios against 1 process alone and against hook 'none'"
                            + " at the same rank count, in this run",
                    blocks, width, gradientMiB(), batch, steps, NativeLibrary.cpuIsa(),
                    Runtime.getRuntime().availableProcessors()));
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
