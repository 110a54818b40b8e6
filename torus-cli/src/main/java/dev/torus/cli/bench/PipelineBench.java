package dev.torus.cli.bench;

import dev.torus.cli.launch.LaunchSpec;
import dev.torus.cli.launch.Launcher;
import dev.torus.parallel.pipeline.PipelineSchedule;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * {@code torus-bench pipeline}: the idle fraction (bubble) of each schedule, measured with one JVM per
 * stage and emulated compute (each forward and backward parks for a calibrated time, so 4 stages on
 * 2 cores measure the schedule, not CPU contention), next to the theory (p−1)/(m+p−1); and the most
 * micro-batches of activations stage 0 held, next to what the schedule promises (m for GPipe,
 * min(m, p) for 1F1B).
 */
public final class PipelineBench {
    private final PrintStream out;
    private final int stages;
    private final double forwardMs;
    private final double backwardMs;
    private final double weightMs;
    private final int steps;

    public PipelineBench(PrintStream out, int stages, double forwardMs, double backwardMs, double weightMs, int steps) {
        if (stages < 2) {
            throw new IllegalArgumentException("--stages must be >= 2, got " + stages);
        }
        if (!(forwardMs > 0) || !(backwardMs > 0) || !(weightMs > 0)) {
            throw new IllegalArgumentException("--forward-ms, --backward-ms and --weight-ms must be positive, got "
                    + forwardMs + ", " + backwardMs + " and " + weightMs);
        }
        if (steps < 1) {
            throw new IllegalArgumentException("--steps must be >= 1, got " + steps);
        }
        this.out = out;
        this.stages = stages;
        this.forwardMs = forwardMs;
        this.backwardMs = backwardMs;
        this.weightMs = weightMs;
        this.steps = steps;
    }

    /** Chrome trace events of the last configuration launched (one row per stage). */
    private final List<String> traceEvents = new ArrayList<>();

    /** Runs one configuration: {stage -> {busy ms, step ms, peak}}. */
    Map<Integer, double[]> launch(PipelineSchedule schedule, int m) throws IOException, InterruptedException {
        List<String> cmd = Launcher.javaCommand(List.of("-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"),
                PipelineBenchWorker.class.getName(), List.of(schedule.label(), "" + m, "" + forwardMs, "" + backwardMs,
                        "" + weightMs, "" + steps, mlp == null ? "emulated" : mlp[0] + ":" + mlp[1] + ":" + mlp[2]));
        Map<Integer, double[]> result = new TreeMap<>();
        List<String> errors = new ArrayList<>();
        Path errorDir = java.nio.file.Files.createTempDirectory("torus-bench-pipeline-errors");
        LaunchSpec spec = new LaunchSpec(stages, 1, 1, null, null, 0, cmd, Map.of(), errorDir, Duration.ofSeconds(60),
                Duration.ZERO);
        Launcher l = new Launcher(spec, (rank, stderr, line) -> {
            if (!stderr && line.startsWith(PipelineBenchWorker.SLICE + " ")) {
                String[] f = line.split(" ");
                synchronized (traceEvents) {
                    traceEvents.add(f[1] + " " + f[2] + " " + f[3] + " " + f[4]);
                }
            } else if (!stderr && line.startsWith(PipelineBenchWorker.RESULT)) {
                String[] f = line.split(" ");
                synchronized (result) {
                    result.put(Integer.parseInt(f[1]), new double[] {Double.parseDouble(f[2]), Double.parseDouble(f[3]),
                            Double.parseDouble(f[4])});
                }
            } else if (stderr) {
                synchronized (errors) {
                    errors.add("[" + rank + "] " + line);
                }
            }
        }, new PrintStream(java.io.OutputStream.nullOutputStream()));
        int code = l.run();
        if (code != 0 || result.size() != stages) {
            // the first exception line says what went wrong; the lines after it are its consequences
            String first = errors.stream().filter(e -> e.contains("Exception") || e.contains("Error")).findFirst()
                    .orElse(errors.isEmpty() ? "no output" : errors.get(errors.size() - 1));
            throw new IllegalStateException("pipeline benchmark stages failed (exit " + code + "): " + first
                    + " (error files in " + errorDir + ")");
        }
        try (java.util.stream.Stream<Path> files = java.nio.file.Files.walk(errorDir)) {
            files.sorted(java.util.Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
        }
        return result;
    }

    private double theoryOf(PipelineSchedule sch, int m) {
        return sch.theoreticalBubble(stages, m);
    }

    /** Writes the slices collected so far as a Chrome trace: one process per configuration, one row per stage. */
    private void writeTrace(Path file, Map<String, List<String>> byConfig) throws IOException {
        List<dev.torus.cli.ChromeTrace.Group> groups = new ArrayList<>();
        for (Map.Entry<String, List<String>> c : byConfig.entrySet()) {
            List<dev.torus.cli.ChromeTrace.Slice> slices = new ArrayList<>();
            for (String e : c.getValue()) {
                String[] f = e.split(" ");
                slices.add(new dev.torus.cli.ChromeTrace.Slice(Integer.parseInt(f[0]), f[1], Long.parseLong(f[2]),
                        Long.parseLong(f[3])));
            }
            groups.add(new dev.torus.cli.ChromeTrace.Group(c.getKey(), Map.of(), slices));
        }
        dev.torus.cli.ChromeTrace.write(file, groups);
    }

    private int[] mlp; // {width, blocks, rows}, or null for emulated compute

    /** Real compute: the MLP of {@code width, blocks, rows} (null: emulated, the default). */
    public PipelineBench compute(int[] mlp) {
        this.mlp = mlp == null ? null : mlp.clone();
        return this;
    }

    /** Parses --mlp WIDTH:BLOCKS:ROWS. */
    public static int[] parseMlp(String text) {
        String[] f = text.split(":");
        if (f.length != 3) {
            throw new IllegalArgumentException("--mlp must be WIDTH:BLOCKS:ROWS, got '" + text + "'");
        }
        int[] v = new int[3];
        for (int i = 0; i < 3; i++) {
            try {
                v[i] = Integer.parseInt(f[i].trim());
            } catch (NumberFormatException e) {
                v[i] = -1;
            }
            if (v[i] < 1 || v[i] > 1 << 16) {
                throw new IllegalArgumentException("--mlp must be WIDTH:BLOCKS:ROWS of integers in [1, 65536], got '"
                        + text + "'");
            }
        }
        return v;
    }

    public List<BenchRow> run(List<Integer> microBatches, Path json) throws IOException, InterruptedException {
        return run(PipelineSchedule.representatives(), microBatches, json, null);
    }

    /** As above, for {@code schedules}; {@code trace} (may be null) gets a Chrome trace of each configuration's last step. */
    public List<BenchRow> run(List<PipelineSchedule> schedules, List<Integer> microBatches, Path json, Path trace)
            throws IOException, InterruptedException {
        int most = 1;
        for (PipelineSchedule sch : schedules) {
            most = Math.max(most, sch.chunks());
        }
        if (mlp != null && 3L * mlp[1] + 1 < (long) stages * most) {
            throw new IllegalArgumentException("--mlp: " + mlp[1] + " blocks give " + (3 * mlp[1] + 1) + " layers, too few "
                    + "for " + stages + " stages" + (most > 1 ? " of " + most + " virtual stages each" : ""));
        }
        Map<String, List<String>> traces = new java.util.LinkedHashMap<>();
        String[] cols = {"schedule", "p", "m", "step_ms", "ideal_ms", "bubble", "theory", "ratio", "paper",
            "peak_stage0", "promised"};
        int[] widths = {14, 3, 4, 9, 9, 8, 8, 7, 7, 12, 9};
        try (BenchReport report = new BenchReport(out, json, cols, widths)) {
            String compute = mlp != null ? String.format(java.util.Locale.ROOT, "real compute: the MLP of width %d, %d "
                    + "blocks, %d rows per micro-batch, its layers split by count (the stages share the cores)", mlp[0],
                    mlp[1], mlp[2]) : String.format(java.util.Locale.ROOT, "emulated compute F=%.0f ms, B=%.0f ms, "
                    + "W=%.0f ms (parked, not computed; B+W in one pass but for zb-h1; an interleaved chunk parks 1/v "
                    + "of them)", forwardMs, backwardMs, weightMs);
            report.header(String.format(java.util.Locale.ROOT, "# pipeline: %d stage JVMs, %s, %d timed steps; "
                    + "bubble = mean over stages of the share of the "
                    + "pipeline's step (the slowest stage's) not spent computing, theory (p-1)/(m+p-1), interleaved:v (p-1)/(vm+p-1), zb-h1 as built "
                    + "2(p-1)/(3m+2(p-1)) (paper column: the paper's W placement, (p-1)/(3m+p-1)) for F=B=W; ideal_ms with real compute: the busiest stage's compute / (1 - theory)", stages, compute,
                    steps));
            for (PipelineSchedule sch : schedules) {
                for (int m : microBatches) {
                    traceEvents.clear();
                    Map<Integer, double[]> r = launch(sch, m);
                    traces.put(sch.label() + " m=" + m, new ArrayList<>(traceEvents));
                    // the pipeline's step ends when its last stage-step does (stage 0's last backward);
                    // a stage idles for whatever part of that it does not compute
                    double step = 0;
                    for (double[] v : r.values()) {
                        step = Math.max(step, v[1]);
                    }
                    double idle = 0;
                    for (double[] v : r.values()) {
                        idle += 1 - v[0] / step;
                    }
                    idle /= r.size();
                    double theory = sch.theoreticalBubble(stages, m);
                    int promised = sch.activationsHeld(0, stages, m);
                    double pass = forwardMs + backwardMs + weightMs;
                    double busiest = 0;
                    for (double[] v : r.values()) {
                        busiest = Math.max(busiest, v[0]);
                    }
                    // real compute: the step a perfect pipeline of the busiest stage would take
                    double ideal = mlp != null ? busiest / (1 - theoryOf(sch, m))
                            : sch == PipelineSchedule.ZB_H1 // as built: W after its B, (p-1)(F+B) of cool-down
                            ? m * pass + (stages - 1) * (forwardMs + backwardMs)
                            : (m * sch.chunks() + stages - 1) * pass / sch.chunks();
                    report.add(new BenchRow().put("schedule", sch.label())
                            .put("p", stages).put("m", m).put("step_ms", step)
                            .put("ideal_ms", ideal)
                            .put("bubble", idle).put("theory", theory).put("ratio", idle / theory)
                            .put("paper", sch.paperBubble(stages, m))
                            .put("peak_stage0", (int) r.get(0)[2]).put("promised", promised));
                    if ((int) r.get(0)[2] != promised) {
                        throw new IllegalStateException(sch + " m=" + m + ": stage 0 held " + (int) r.get(0)[2]
                                + " micro-batches, the schedule promises " + promised);
                    }
                }
            }
            if (trace != null) {
                writeTrace(trace, traces);
                out.println("# wrote the timeline of each configuration's last step to " + trace
                        + " (open it in Perfetto or chrome://tracing)");
            }
            return report.rows();
        }
    }
}
