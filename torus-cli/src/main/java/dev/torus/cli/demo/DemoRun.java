package dev.torus.cli.demo;

import dev.torus.Device;
import dev.torus.cli.Json;
import dev.torus.cli.launch.LaunchSpec;
import dev.torus.cli.launch.Launcher;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The demo driver: launches the workers through {@link Launcher}, shows rank 0's
 * progress, runs the single-process comparison, writes {@code loss.png} and
 * {@code summary.json}, and decides the exit code.
 */
public final class DemoRun {
    private final DemoOptions options;
    private final int workers;
    private final Path outDir;
    private final double targetAccuracy;
    private final double lossTolerance;
    private final boolean skipSingle;
    private final PrintStream out;
    private final PrintStream err;

    public DemoRun(DemoOptions options, int workers, Path outDir, double targetAccuracy, double lossTolerance,
                   boolean skipSingle, PrintStream out, PrintStream err) {
        this.options = options;
        this.workers = workers;
        this.outDir = outDir;
        this.targetAccuracy = targetAccuracy;
        this.lossTolerance = lossTolerance;
        this.skipSingle = skipSingle;
        this.out = out;
        this.err = err;
    }

    public int run() throws IOException, InterruptedException {
        Device device = options.device();
        DemoTrainer.Config cfg = options.config(workers, device); // validates before anything starts
        boolean tty = System.console() != null;
        out.printf(Locale.ROOT, "Torus demo: MLP classifier (%d blocks, width %d, %d classes) on %d generated samples%n",
                cfg.blocks(), cfg.width(), DemoData.CLASSES, cfg.trainRows());
        out.printf(Locale.ROOT, "  %d workers on %s (%s), global batch %d, %d epochs, gradients %s, checkpointing %s%n",
                workers, device.isCpu() ? "cpu" : "cuda", device.isCpu() ? "Gloo" : "NCCL", cfg.globalBatch(),
                cfg.epochs(), cfg.hook(), cfg.policy());
        Files.createDirectories(outDir);
        Path resultFile = outDir.resolve("rank0.properties");
        Files.deleteIfExists(resultFile);

        List<String> workerArgs = options.toArgs();
        Path modelFile = outDir.resolve("model.safetensors");
        Files.deleteIfExists(modelFile);
        workerArgs.addAll(List.of("--result", resultFile.toString(), "--model-out", modelFile.toString()));
        List<String> cmd = Launcher.javaCommand(List.of("-Xmx512m", "-XX:+UseSerialGC"), DemoWorker.class.getName(),
                workerArgs);
        int threads = Math.max(1, Runtime.getRuntime().availableProcessors() / workers);
        Map<String, String> env = new LinkedHashMap<>();
        env.put("OPENBLAS_NUM_THREADS", Integer.toString(threads));
        env.put("TORUS_BACKEND", device.isCpu() ? "gloo" : "nccl");
        LaunchSpec spec = new LaunchSpec(workers, 1, 1, null, "demo-" + ProcessHandle.current().pid(), 0, cmd, env,
                outDir.resolve("errors"), Duration.ofSeconds(60), Duration.ZERO);
        ProgressBar dpBar = new ProgressBar(out, String.format(Locale.ROOT, "%-9s", workers + " workers"), tty);
        Launcher.OutputSink prefixed = Launcher.prefixing(out, err);
        Launcher launcher = new Launcher(spec, (rank, stderr, line) -> {
            if (rank == 0 && !stderr && line.startsWith(DemoWorker.PROGRESS)) {
                String[] f = line.split(" ");
                dpBar.update(Integer.parseInt(f[1]), Integer.parseInt(f[2]), Float.parseFloat(f[3]),
                        Double.parseDouble(f[4]));
            } else {
                prefixed.line(rank, stderr, line);
            }
        }, Launcher.failuresOnly(err));
        int code = launcher.runStoppingOnExit("demo-shutdown");
        if (code != 0) {
            err.println("torus demo: a worker failed (exit code " + code + "); error files in " + outDir.resolve("errors"));
            return code;
        }
        DemoTrainer.Result dp = DemoWorker.read(resultFile);
        String transport = DemoWorker.readTransport(resultFile);
        Files.deleteIfExists(resultFile);

        DemoTrainer.Result single = null;
        if (!skipSingle) {
            ProgressBar oneBar = new ProgressBar(out, String.format(Locale.ROOT, "%-9s", "1 process"), tty);
            single = DemoTrainer.train(options.config(workers, device), null, oneBar::update);
        }
        Int8ModelCheck.Result int8 = Int8ModelCheck.run(modelFile, cfg);
        return report(cfg, dp, single, transport, int8);
    }

    private int report(DemoTrainer.Config cfg, DemoTrainer.Result dp, DemoTrainer.Result single, String transport,
                       Int8ModelCheck.Result int8) throws IOException {
        boolean accuracyOk = dp.testAccuracy() >= targetAccuracy;
        double lossGap = single == null ? Double.NaN : Math.abs(dp.trainLoss() - single.trainLoss());
        boolean matchOk = single == null || lossGap <= lossTolerance;
        out.println();
        out.printf(Locale.ROOT, "%-26s %14s %14s%n", "", workers + " workers", single == null ? "" : "1 process");
        row("final training loss", "%.4f", dp.trainLoss(), single == null ? null : (double) single.trainLoss());
        row("held-out loss", "%.4f", dp.testLoss(), single == null ? null : (double) single.testLoss());
        row("held-out accuracy", "%.4f", dp.testAccuracy(), single == null ? null : (double) single.testAccuracy());
        row("samples/s", "%.0f", dp.samplesPerSecond(), single == null ? null : single.samplesPerSecond());
        row("training time (s)", "%.1f", dp.trainSeconds(), single == null ? null : single.trainSeconds());
        row("peak memory (MiB)", "%.2f", dp.peakMemoryBytes() / 1048576.0,
                single == null ? null : single.peakMemoryBytes() / 1048576.0);
        row("peak activations (MiB)", "%.2f", dp.peakActivationBytes() / 1048576.0,
                single == null ? null : single.peakActivationBytes() / 1048576.0);
        out.printf(Locale.ROOT, "bytes rank 0 sent (%s): %,d (%s); an fp32 ring all-reduce of the "
                        + "same gradients moves %,d: %.3fx%n",
                transport.equals("gloo") ? "measured on its sockets" : "payload formula: the " + transport + " transport has no sockets "
                        + "to count", dp.bytesSent(), cfg.hook(), dp.fp32Bytes(), dp.fp32Bytes() == 0 ? Double.NaN
                        : (double) dp.bytesSent() / dp.fp32Bytes());
        if (single != null) {
            out.printf(Locale.ROOT, "single-process check: |loss difference| = %.4f (tolerance %.4f): %s%n", lossGap,
                    lossTolerance, matchOk ? "PASS" : "FAIL");
        }
        out.printf(Locale.ROOT, "accuracy check: %.4f >= %.2f: %s%n", dp.testAccuracy(), targetAccuracy,
                accuracyOk ? "PASS" : "FAIL");
        out.printf(Locale.ROOT, "model: %s; int8 weights (per channel) take %.3fx the fp32 weight bytes, agree with fp32 "
                        + "on %.4f of the held-out set (int8 accuracy %.4f); serve it with ./torus serve %s%n",
                int8.file(), int8.weightBytesRatio(), int8.agreement(), int8.int8Accuracy(), int8.file());

        Path png = outDir.resolve("loss.png");
        String[] names = single == null ? new String[] {workers + " workers (" + cfg.hook() + ")"}
                : new String[] {workers + " workers (" + cfg.hook() + ")", "1 process (fp32)"};
        float[][] curves = single == null ? new float[][] {dp.stepLoss()}
                : new float[][] {dp.stepLoss(), single.stepLoss()};
        String plotError = null;
        try {
            LossPlot.write(png, "Torus demo: training loss", names, curves);
        } catch (IOException | RuntimeException | Error e) {   // AWT reports a missing font stack as an Error
            plotError = e.toString();
            err.println("torus demo: could not write " + png + ": " + e + " (a headless JDK needs fontconfig and a "
                    + "font, e.g. apt-get install fontconfig fonts-dejavu-core)");
        }

        Map<String, Object> s = new LinkedHashMap<>();
        s.put("date", Instant.now().toString());
        s.put("workers", workers);
        s.put("device", cfg.device().toString());
        s.put("hook", cfg.hook().toString());
        s.put("checkpointing", cfg.policy().toString());
        s.put("global_batch", cfg.globalBatch());
        s.put("epochs", cfg.epochs());
        s.put("steps", dp.stepLoss().length);
        s.put("model", Map.of("blocks", cfg.blocks(), "width", cfg.width(), "inputs", DemoData.FEATURES,
                "classes", DemoData.CLASSES));
        s.put("data_parallel", summary(dp, transport));
        if (single != null) {
            s.put("single_process", summary(single, "none"));
            s.put("loss_difference", lossGap);
            s.put("loss_tolerance", lossTolerance);
        }
        s.put("target_accuracy", targetAccuracy);
        s.put("model_file", int8.file().toString());
        s.put("int8", Map.of("weight_bytes", int8.int8WeightBytes(), "fp32_weight_bytes", int8.fp32WeightBytes(),
                "weight_bytes_ratio", int8.weightBytesRatio(), "agreement_with_fp32", int8.agreement(),
                "fp32_accuracy", int8.fp32Accuracy(), "int8_accuracy", int8.int8Accuracy()));
        if (plotError != null) {
            s.put("plot_error", plotError);
        }
        s.put("passed", accuracyOk && matchOk && plotError == null);
        Path json = outDir.resolve("summary.json");
        Files.writeString(json, Json.write(s) + "\n");
        out.println("wrote " + (plotError == null ? png + " and " : "") + json);
        return accuracyOk && matchOk && plotError == null ? 0 : 1;
    }

    private static Map<String, Object> summary(DemoTrainer.Result r, String transport) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("final_train_loss", r.trainLoss());
        m.put("test_loss", r.testLoss());
        m.put("test_accuracy", r.testAccuracy());
        m.put("samples_per_second", r.samplesPerSecond());
        m.put("train_seconds", r.trainSeconds());
        m.put("gradient_bytes_sent_rank0", r.bytesSent());
        // from the kernel's socket counters on Gloo's TCP transport; the payload formula on shared memory
        m.put("gradient_bytes_measured", transport.equals("gloo"));
        m.put("transport", transport);
        m.put("fp32_allreduce_bytes_rank0", r.fp32Bytes()); // payload formula 2(n-1)/n x gradient bytes, for comparison
        m.put("peak_memory_bytes", r.peakMemoryBytes());
        m.put("peak_activation_bytes", r.peakActivationBytes());
        m.put("peak_checkpoint_bytes", r.peakCheckpointBytes());
        m.put("overlap_fraction", r.overlap());
        m.put("step_loss", r.stepLoss());
        return m;
    }

    private void row(String name, String fmt, double a, Double b) {
        out.printf(Locale.ROOT, "%-26s %14s %14s%n", name, String.format(Locale.ROOT, fmt, a),
                b == null ? "" : String.format(Locale.ROOT, fmt, b));
    }
}
