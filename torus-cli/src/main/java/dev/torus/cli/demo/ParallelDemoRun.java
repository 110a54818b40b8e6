package dev.torus.cli.demo;

import dev.torus.cli.ChromeTrace;
import dev.torus.cli.Json;
import dev.torus.cli.launch.LaunchSpec;
import dev.torus.cli.launch.Launcher;
import dev.torus.cli.launch.LauncherLink;
import dev.torus.parallel.pipeline.PipelineSchedule;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

/**
 * The driver of {@code ./torus demo --parallel dp=D,pp=P,tp=T}: launches D·P·T workers through the
 * {@link Launcher} (embedded ZooKeeper), shows progress, then runs the one-process reference
 * ({@link ParallelDemoReference}) and decides. Writes {@code summary.json} (with a {@code parallel}
 * object), {@code trace.json} (the last step as a Chrome trace, one row per rank), {@code timeline.png}
 * (the same, drawn) and {@code loss.png}. Exit status 0 only if the comparison and the accuracy pass.
 */
public final class ParallelDemoRun {
    /** The relative difference allowed between the first step's loss and the reference's. */
    static final double FIRST_LOSS_TOLERANCE = 1e-6;
    private static final long REFERENCE_LIMIT_SECONDS = 900;
    /** The most steps a run takes (the losses of every step are kept). */
    static final long MAX_STEPS = 1_000_000;
    /** The op timeout of the workers: a stage that stops answering fails the others within it. */
    static final long OP_TIMEOUT_MS = 60_000;

    private final DemoOptions options;
    private final ParallelLayout layout;
    private final PipelineSchedule schedule;
    private final int microBatches;
    private final Path outDir;
    private final double targetAccuracy;
    private final boolean skipReference;
    private final PrintStream out;
    private final PrintStream err;

    public ParallelDemoRun(DemoOptions options, ParallelLayout layout, PipelineSchedule schedule, int microBatches,
                           Path outDir, double targetAccuracy, boolean skipReference, PrintStream out, PrintStream err) {
        this.options = options;
        this.layout = layout;
        this.schedule = schedule;
        this.microBatches = microBatches;
        this.outDir = outDir;
        this.targetAccuracy = targetAccuracy;
        this.skipReference = skipReference;
        this.out = out;
        this.err = err;
    }

    /**
     * Checks what the workers would refuse late: the batch must split into dp replicas of m micro-batches,
     * the schedule's virtual stages must not outnumber the segments, the width must split over tp.
     */
    public static void check(DemoOptions options, ParallelLayout layout, PipelineSchedule schedule, int microBatches) {
        options.check();
        if (microBatches < 1) {
            throw new IllegalArgumentException("--micro-batches must be >= 1, got " + microBatches);
        }
        if (options.batch % ((long) layout.dp() * microBatches) != 0) {
            throw new IllegalArgumentException("--batch " + options.batch + " must split evenly into dp=" + layout.dp()
                    + " replicas of --micro-batches " + microBatches + " (a multiple of "
                    + (long) layout.dp() * microBatches + ")");
        }
        long steps = (long) options.epochs * (options.trainRows / options.batch);
        if (steps > MAX_STEPS) {
            throw new IllegalArgumentException("--epochs " + options.epochs + " gives " + steps + " steps; the demo runs at "
                    + "most " + MAX_STEPS);
        }
        if (options.trainRows < options.batch) {
            throw new IllegalArgumentException("--train-rows " + options.trainRows + " must hold at least one --batch of "
                    + options.batch);
        }
        int segments = ParallelDemoModel.segments(options.blocks);
        long virtual = (long) layout.pp() * schedule.chunks();
        if (virtual > segments) {
            throw new IllegalArgumentException("pp=" + layout.pp() + (schedule.chunks() > 1 ? " × " + schedule.chunks()
                    + " virtual stages" : "") + " needs at least " + virtual + " segments, the model has " + segments
                    + " (2 + 3 per block: raise --blocks)");
        }
        if (schedule.isInterleaved() && layout.pp() < 2) {
            throw new IllegalArgumentException("--schedule " + schedule + " needs pp >= 2");
        }
        if ((ParallelDemoModel.HIDDEN_FACTOR * options.width) % layout.tp() != 0 || options.width % layout.tp() != 0) {
            throw new IllegalArgumentException("--width " + options.width + " (hidden " + ParallelDemoModel.HIDDEN_FACTOR
                    * options.width + ") must be divisible by tp=" + layout.tp());
        }
        if (options.isCuda()) {
            throw new IllegalArgumentException("--parallel runs on --device cpu for now (pipeline and tensor "
                    + "parallelism over NCCL have not run on a GPU yet)");
        }
    }

    /**
     * Checks that every rank sits where the mesh order puts it (tp fastest, then dp, then pp) and that each of
     * its groups holds exactly the ranks that share its other two coordinates; returns null or what is wrong.
     */
    String checkMesh(Map<Integer, int[]> coords, Map<Integer, String[]> groups) {
        if (coords.size() != layout.world()) {
            return "only " + coords.size() + " of " + layout.world() + " ranks reported their place in the mesh";
        }
        for (Map.Entry<Integer, int[]> e : coords.entrySet()) {
            int r = e.getKey();
            int d = e.getValue()[0];
            int s = e.getValue()[1];
            int t = e.getValue()[2];
            if (dev.torus.parallel.DeviceMesh.worldRank(s, d, t, layout.dp(), layout.tp()) != r) {
                return "rank " + r + " reports dp " + d + ", pp " + s + ", tp " + t + ", which is rank "
                        + dev.torus.parallel.DeviceMesh.worldRank(s, d, t, layout.dp(), layout.tp());
            }
            StringBuilder dp = new StringBuilder();
            StringBuilder pp = new StringBuilder();
            StringBuilder tp = new StringBuilder();
            for (int i = 0; i < layout.dp(); i++) {
                dp.append(i == 0 ? "" : ",").append(dev.torus.parallel.DeviceMesh.worldRank(s, i, t, layout.dp(),
                        layout.tp()));
            }
            for (int i = 0; i < layout.pp(); i++) {
                pp.append(i == 0 ? "" : ",").append(dev.torus.parallel.DeviceMesh.worldRank(i, d, t, layout.dp(),
                        layout.tp()));
            }
            for (int i = 0; i < layout.tp(); i++) {
                tp.append(i == 0 ? "" : ",").append(dev.torus.parallel.DeviceMesh.worldRank(s, d, i, layout.dp(),
                        layout.tp()));
            }
            String[] got = groups.get(r);
            String[] want = {dp.toString(), pp.toString(), tp.toString()};
            String[] names = {"dp", "pp", "tp"};
            for (int g = 0; g < 3; g++) {
                if (!want[g].equals(got[g])) {
                    return "rank " + r + "'s " + names[g] + " group holds ranks " + got[g] + ", expected " + want[g];
                }
            }
        }
        return null;
    }

    public int run() throws IOException, InterruptedException {
        int steps = Math.toIntExact((long) options.epochs * (options.trainRows / options.batch));
        out.printf(Locale.ROOT, "Torus parallel demo: %s = %d worker processes; MLP of %d Megatron blocks (width %d, "
                        + "hidden %d); %d steps of global batch %d, %d micro-batches per replica%n", layout,
                layout.world(), options.blocks, options.width, ParallelDemoModel.HIDDEN_FACTOR * options.width, steps,
                options.batch, microBatches);
        out.printf(Locale.ROOT, "  schedule %s, checkpointing %s inside each stage, exact fp32 all-reduce over dp, "
                + "AdamW lr %s%n", schedule, options.policy, options.lr);
        try {
            Files.createDirectories(outDir);
        } catch (IOException e) {
            throw new IllegalArgumentException("--out " + outDir + " cannot be created: " + e);
        }
        for (int s = 0; s < layout.pp(); s++) {
            for (int t = 0; t < layout.tp(); t++) {
                Files.deleteIfExists(ParallelDemoWorker.paramsFile(outDir, s, t));
            }
        }
        List<String> args = options.toArgs();
        args.addAll(List.of("--layout", layout.toString(), "--pipeline-schedule", schedule.label(), "--micro-batches",
                "" + microBatches, "--out", outDir.toString()));
        List<String> cmd = Launcher.javaCommand(List.of("-Xmx160m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"),
                ParallelDemoWorker.class.getName(), args);
        Map<String, String> env = new LinkedHashMap<>();
        env.put("OPENBLAS_NUM_THREADS", "1");
        env.put("TORUS_BACKEND", "gloo");
        env.put("TORUS_COMM_TIMEOUT_MS", Long.toString(OP_TIMEOUT_MS));
        LaunchSpec spec = new LaunchSpec(layout.world(), 1, 1, null, "parallel-demo-" + ProcessHandle.current().pid(), 0,
                cmd, env, outDir.resolve("errors"), Duration.ofSeconds(60), Duration.ZERO);
        Map<Integer, double[]> stepLoss = new TreeMap<>();            // step -> loss of each dp replica
        Map<String, double[]> stages = new TreeMap<>();               // "pp dp tp" -> busy, wall, peak, bytes
        Map<Integer, int[]> coords = new TreeMap<>();                 // world rank -> dp, pp, tp
        Map<Integer, String[]> groups = new TreeMap<>();              // world rank -> dp, pp, tp group members
        List<ChromeTrace.Slice> slices = new ArrayList<>();
        List<String> errors = new ArrayList<>();
        boolean tty = System.console() != null;
        ProgressBar bar = new ProgressBar(out, String.format(Locale.ROOT, "%-9s", layout.world() + " workers"), tty);
        long start = System.nanoTime();
        Launcher launcher = new Launcher(spec, (rank, stderr, line) -> {
            String[] f = line.split(" ");
            synchronized (stepLoss) {
                if (stderr) {
                    errors.add("[" + rank + "] " + line);
                    if (errors.size() > 40) {
                        errors.remove(0);
                    }
                } else if (f[0].equals(ParallelDemoWorker.LOSS)) {
                    int step = Integer.parseInt(f[1]);
                    double[] l = stepLoss.computeIfAbsent(step, k -> new double[layout.dp()]);
                    l[Integer.parseInt(f[2])] = Double.parseDouble(f[3]);
                    if (Integer.parseInt(f[2]) == 0) {
                        double seconds = (System.nanoTime() - start) / 1e9;
                        bar.update(step + 1, steps, (float) l[0], (step + 1.0) * options.batch / seconds);
                    }
                } else if (f[0].equals(ParallelDemoWorker.STAGE)) {
                    stages.put(f[1] + " " + f[2] + " " + f[3], new double[] {Double.parseDouble(f[4]),
                            Double.parseDouble(f[5]), Double.parseDouble(f[6]), Double.parseDouble(f[7])});
                } else if (f[0].equals(ParallelDemoWorker.MESH)) {
                    coords.put(Integer.parseInt(f[1]), new int[] {Integer.parseInt(f[2]), Integer.parseInt(f[3]),
                            Integer.parseInt(f[4])});
                    groups.put(Integer.parseInt(f[1]), new String[] {f[5], f[6], f[7]});
                } else if (f[0].equals(ParallelDemoWorker.SLICE)) {
                    int row = dev.torus.parallel.DeviceMesh.worldRank(Integer.parseInt(f[1]), Integer.parseInt(f[2]),
                            Integer.parseInt(f[3]), layout.dp(), layout.tp());
                    slices.add(new ChromeTrace.Slice(row, f[4], Long.parseLong(f[5]), Long.parseLong(f[6])));
                }
            }
        }, Launcher.failuresOnly(err));
        int code = launcher.runStoppingOnExit("parallel-demo-shutdown");
        double trainSeconds = (System.nanoTime() - start) / 1e9;
        if (code != 0 || stepLoss.size() != steps) {
            err.println("torus demo --parallel: " + (code == 130 ? "interrupted" : "a worker failed (exit code " + code
                    + "; the launcher's lines above name the rank and the cause)") + "; error files in "
                    + outDir.resolve("errors"));
            errors.subList(Math.max(0, errors.size() - 12), errors.size()).forEach(err::println);
            return code != 0 ? code : 1;
        }
        double[] losses = new double[steps];
        for (int s = 0; s < steps; s++) {
            double sum = 0;
            for (double l : stepLoss.get(s)) {
                sum += l;
            }
            losses[s] = sum / layout.dp();
        }

        // the bubble: each rank's share of the pipeline's step (the slowest rank's) not spent computing
        double wall = 0;
        for (double[] v : stages.values()) {
            wall = Math.max(wall, v[1]);
        }
        double idle = 0;
        for (double[] v : stages.values()) {
            idle += 1 - v[0] / wall;
        }
        idle /= Math.max(1, stages.size());

        String[] ref = null;
        double[] refLosses = null;
        double unsplitLoss = Double.NaN;
        if (!skipReference) {
            out.println("training the same model in one process on the same batches (each replica's micro-batches "
                    + "accumulated in order, replicas averaged in rank order) ...");
            List<String> rargs = options.toArgs();
            rargs.addAll(List.of("--layout", layout.toString(), "--micro-batches", "" + microBatches, "--out",
                    outDir.toString()));
            ProcessBuilder pb = new ProcessBuilder(Launcher.javaCommand(List.of("-Xmx512m", "-XX:+UseSerialGC"),
                    ParallelDemoReference.class.getName(), rargs)).redirectErrorStream(true);
            pb.environment().put("OPENBLAS_NUM_THREADS", "1");
            pb.environment().put(LauncherLink.PID_ENV, Long.toString(ProcessHandle.current().pid()));
            Process p = pb.start();
            List<String> log = java.util.Collections.synchronizedList(new ArrayList<>());
            String[][] found = new String[3][]; // result, losses, unsplit
            Thread reader = new Thread(() -> {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(),
                        StandardCharsets.UTF_8))) {
                    for (String line = r.readLine(); line != null; line = r.readLine()) {
                        String[] f = line.split(" ");
                        synchronized (found) {
                            if (f[0].equals(ParallelDemoReference.RESULT)) {
                                found[0] = f;
                            } else if (f[0].equals(ParallelDemoReference.LOSSES)) {
                                found[1] = f;
                            } else if (f[0].equals(ParallelDemoReference.UNSPLIT)) {
                                found[2] = f;
                            } else {
                                log.add(line);
                            }
                        }
                    }
                } catch (IOException e) {
                    log.add("reading the reference's output: " + e);
                }
            }, "parallel-demo-reference-output");
            reader.setDaemon(true);
            reader.start();
            boolean ended = p.waitFor(REFERENCE_LIMIT_SECONDS, TimeUnit.SECONDS);
            if (!ended) {
                p.destroyForcibly();
            }
            reader.join(10_000);
            synchronized (found) {
                ref = found[0];
                if (found[1] != null) {
                    String[] v = found[1][1].split(",");
                    refLosses = new double[v.length];
                    for (int i = 0; i < v.length; i++) {
                        refLosses[i] = Double.parseDouble(v[i]);
                    }
                }
                unsplitLoss = found[2] == null ? Double.NaN : Double.parseDouble(found[2][1]);
            }
            if (!ended || p.exitValue() != 0 || ref == null || refLosses == null || refLosses.length != steps
                    || Double.isNaN(unsplitLoss)) {
                err.println("torus demo --parallel: the one-process reference " + (ended ? "failed (exit code "
                        + p.exitValue() + ")" : "did not finish within " + REFERENCE_LIMIT_SECONDS + " s") + ":");
                synchronized (log) {
                    log.subList(Math.max(0, log.size() - 12), log.size()).forEach(err::println);
                }
                return 1;
            }
        }

        Map<String, Object> par = new LinkedHashMap<>();
        par.put("dp", layout.dp());
        par.put("pp", layout.pp());
        par.put("tp", layout.tp());
        par.put("schedule", schedule.label());
        par.put("micro_batches", microBatches);
        par.put("bubble_measured", idle);
        par.put("bubble_theory", schedule.theoreticalBubble(layout.pp(), microBatches));
        Map<String, Object> peaks = new LinkedHashMap<>();
        Map<String, Object> peakMb = new LinkedHashMap<>();
        for (int s = 0; s < layout.pp(); s++) {
            double[] v = stages.get(s + " 0 0");
            if (v != null) {
                peaks.put("stage_" + s, (long) v[3]);
                peakMb.put("stage_" + s, (int) v[2]);
            }
        }
        par.put("peak_activation_bytes", peaks);
        par.put("peak_stashed_micro_batches", peakMb);
        par.put("step_ms", wall);
        List<Object> mesh = new ArrayList<>();
        coords.forEach((r, c) -> mesh.add(Map.of("rank", r, "dp", c[0], "pp", c[1], "tp", c[2])));
        par.put("ranks", mesh);

        String meshError = checkMesh(coords, groups);
        par.put("mesh_verified", meshError == null);
        if (meshError != null) {
            err.println("torus demo --parallel: " + meshError);
        }
        boolean pass = meshError == null;
        String verdict;
        double accuracy = Double.NaN;
        if (ref != null) {
            boolean bitwise = Boolean.parseBoolean(ref[1]);
            double maxRel = Double.parseDouble(ref[2]);
            accuracy = Double.parseDouble(ref[4]);
            double firstLossDiff = Math.abs(losses[0] - refLosses[0]) / Math.max(1e-30, Math.abs(refLosses[0]));
            double worstLossDiff = 0;
            for (int s = 0; s < steps; s++) {
                worstLossDiff = Math.max(worstLossDiff, Math.abs(losses[s] - refLosses[s])
                        / Math.max(1e-30, Math.abs(refLosses[s])));
            }
            // the reference runs every sum in the workers' order (tp splits included): bit for bit
            boolean equal = bitwise;
            par.put("reference_equal", equal);
            par.put("bitwise_equal", bitwise);
            par.put("max_rel_diff", maxRel);
            par.put("first_step_loss_rel_diff", firstLossDiff);
            double unsplitDiff = Math.abs(losses[0] - unsplitLoss) / Math.max(1e-30, Math.abs(unsplitLoss));
            par.put("first_step_loss_rel_diff_unsplit", unsplitDiff);
            par.put("max_step_loss_rel_diff", worstLossDiff);
            par.put("parameters_compared", Long.parseLong(ref[3]));
            par.put("accuracy", accuracy);
            par.put("reference_accuracy", Double.parseDouble(ref[5]));
            pass = pass && equal && firstLossDiff <= FIRST_LOSS_TOLERANCE && unsplitDiff <= FIRST_LOSS_TOLERANCE
                    && accuracy >= targetAccuracy;
            verdict = String.format(Locale.ROOT, "parameters after %d steps %s one process (max relative difference "
                            + "%.3g%s), first-step loss within %.2g of the unsplit model's, held-out accuracy %.4f "
                            + "(target %.2f): %s", steps, bitwise ? "bitwise equal to" : "DIFFER from", maxRel,
                    layout.tp() == 1 ? "" : "; its blocks split the same GEMMs the same way", unsplitDiff, accuracy,
                    targetAccuracy, pass ? "PASS" : "FAIL");
        } else {
            verdict = "one-process comparison skipped";
        }

        Map<Integer, String> rowNames = new TreeMap<>();
        coords.forEach((r, c) -> rowNames.put(r, "rank " + r + " (dp " + c[0] + ", pp " + c[1] + ", tp " + c[2] + ")"));
        Path trace = outDir.resolve("trace.json");
        ChromeTrace.write(trace, List.of(new ChromeTrace.Group("torus demo --parallel " + layout + " " + schedule
                + " m=" + microBatches + ", last step", rowNames, slices)));
        Path timeline = outDir.resolve("timeline.png");
        Path lossPng = outDir.resolve("loss.png");
        String plotError = null;
        try {
            TimelinePlot.write(timeline, "Last step: " + layout + ", " + schedule + ", " + microBatches
                    + " micro-batches per replica", rowNames, slices);
            float[] mine = new float[steps];
            for (int i = 0; i < steps; i++) {
                mine[i] = (float) losses[i];
            }
            if (refLosses != null) {
                float[] theirs = new float[steps];
                for (int i = 0; i < steps; i++) {
                    theirs[i] = (float) refLosses[i];
                }
                LossPlot.write(lossPng, "Torus parallel demo: training loss", new String[] {layout.toString(),
                        "1 process"}, new float[][] {mine, theirs});
            } else {
                LossPlot.write(lossPng, "Torus parallel demo: training loss", new String[] {layout.toString()},
                        new float[][] {mine});
            }
        } catch (IOException | RuntimeException | Error e) { // AWT reports a missing font stack as an Error
            plotError = e.toString();
            err.println("torus demo --parallel: could not draw the PNGs: " + e + " (a headless JDK needs fontconfig and "
                    + "a font, e.g. apt-get install fontconfig fonts-dejavu-core)");
        }

        Map<String, Object> s = new LinkedHashMap<>();
        s.put("date", Instant.now().toString());
        s.put("workers", layout.world());
        s.put("device", "cpu");
        s.put("checkpointing", options.policy);
        s.put("global_batch", options.batch);
        s.put("epochs", options.epochs);
        s.put("steps", steps);
        s.put("train_seconds", trainSeconds);
        s.put("model", Map.of("blocks", options.blocks, "width", options.width, "hidden",
                ParallelDemoModel.HIDDEN_FACTOR * options.width, "inputs", DemoData.FEATURES, "classes",
                DemoData.CLASSES, "segments", ParallelDemoModel.segments(options.blocks)));
        s.put("final_loss", losses[steps - 1]);
        s.put("parallel", par);
        s.put("target_accuracy", targetAccuracy);
        if (plotError != null) {
            s.put("plot_error", plotError);
        }
        pass = pass && plotError == null;
        s.put("passed", pass);
        Path json = outDir.resolve("summary.json");
        Files.writeString(json, Json.write(s) + "\n");
        out.printf(Locale.ROOT, "bubble %.3f measured against %.3f in theory (step %.1f ms, the slowest rank's)%n", idle,
                schedule.theoreticalBubble(layout.pp(), microBatches), wall);
        out.println(verdict);
        out.println("wrote " + json + ", " + trace + (plotError == null ? ", " + timeline + " and " + lossPng : ""));
        return pass ? 0 : 1;
    }
}
