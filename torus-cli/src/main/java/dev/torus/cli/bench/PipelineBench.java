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
    private final int steps;

    public PipelineBench(PrintStream out, int stages, double forwardMs, double backwardMs, int steps) {
        if (stages < 2) {
            throw new IllegalArgumentException("--stages must be >= 2, got " + stages);
        }
        if (!(forwardMs > 0) || !(backwardMs > 0)) {
            throw new IllegalArgumentException("--forward-ms and --backward-ms must be positive, got " + forwardMs + " and "
                    + backwardMs);
        }
        if (steps < 1) {
            throw new IllegalArgumentException("--steps must be >= 1, got " + steps);
        }
        this.out = out;
        this.stages = stages;
        this.forwardMs = forwardMs;
        this.backwardMs = backwardMs;
        this.steps = steps;
    }

    /** {stage -> {busy ms, step ms, peak}} of one configuration. */
    Map<Integer, double[]> launch(PipelineSchedule schedule, int m) throws IOException, InterruptedException {
        List<String> cmd = Launcher.javaCommand(List.of("-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"),
                PipelineBenchWorker.class.getName(), List.of(schedule == PipelineSchedule.GPIPE ? "gpipe" : "1f1b",
                        "" + m, "" + forwardMs, "" + backwardMs, "" + steps));
        Map<Integer, double[]> result = new TreeMap<>();
        List<String> errors = new ArrayList<>();
        LaunchSpec spec = new LaunchSpec(stages, 1, 1, null, null, 0, cmd, Map.of(), Path.of(
                System.getProperty("java.io.tmpdir"), "torus-bench-pipeline-errors"), Duration.ofSeconds(60),
                Duration.ZERO);
        Launcher l = new Launcher(spec, (rank, stderr, line) -> {
            if (!stderr && line.startsWith(PipelineBenchWorker.RESULT)) {
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
            throw new IllegalStateException("pipeline benchmark stages failed (exit " + code + "): "
                    + String.join("\n", errors.subList(Math.max(0, errors.size() - 10), errors.size())));
        }
        return result;
    }

    public List<BenchRow> run(List<Integer> microBatches, Path json) throws IOException, InterruptedException {
        String[] cols = {"schedule", "p", "m", "step_ms", "ideal_ms", "bubble", "theory", "ratio", "peak_stage0",
                "promised"};
        int[] widths = {9, 3, 4, 9, 9, 8, 8, 7, 12, 9};
        try (BenchReport report = new BenchReport(out, json, cols, widths)) {
            report.header(String.format(java.util.Locale.ROOT, "# pipeline: %d stage JVMs, emulated compute F=%.0f ms, "
                    + "B=%.0f ms (parked, not computed), %d timed steps; bubble = mean over stages of the share of the "
                    + "pipeline's step (the slowest stage's) not spent computing, theory (p-1)/(m+p-1)", stages, forwardMs, backwardMs, steps));
            for (PipelineSchedule sch : PipelineSchedule.values()) {
                for (int m : microBatches) {
                    Map<Integer, double[]> r = launch(sch, m);
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
                    int promised = sch == PipelineSchedule.GPIPE ? m : Math.min(m, stages);
                    report.add(new BenchRow().put("schedule", sch == PipelineSchedule.GPIPE ? "gpipe" : "1f1b")
                            .put("p", stages).put("m", m).put("step_ms", step)
                            .put("ideal_ms", (m + stages - 1) * (forwardMs + backwardMs))
                            .put("bubble", idle).put("theory", theory).put("ratio", idle / theory)
                            .put("peak_stage0", (int) r.get(0)[2]).put("promised", promised));
                    if ((int) r.get(0)[2] != promised) {
                        throw new IllegalStateException(sch + " m=" + m + ": stage 0 held " + (int) r.get(0)[2]
                                + " micro-batches, the schedule promises " + promised);
                    }
                }
            }
            return report.rows();
        }
    }
}
