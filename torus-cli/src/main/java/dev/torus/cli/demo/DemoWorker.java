package dev.torus.cli.demo;

import dev.torus.NativeLibrary;
import dev.torus.comm.Communicator;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Properties;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * One worker of {@code ./torus demo}, started by the launcher with the rank
 * environment. Rank 0 prints {@code @progress} lines for the driver and writes its
 * results to {@code --result}.
 */
@Command(name = "demo-worker")
public final class DemoWorker implements Callable<Integer> {
    static final String PROGRESS = "@progress";

    @Mixin
    DemoOptions options = new DemoOptions();

    @Option(names = "--result", required = true)
    Path result;

    @Option(names = "--model-out")
    Path modelOut;

    public static void main(String[] args) {
        System.exit(new CommandLine(new DemoWorker()).execute(args));
    }

    @Override
    public Integer call() throws IOException {
        int localWorld = Integer.parseInt(System.getenv().getOrDefault("LOCAL_WORLD_SIZE", "1"));
        NativeLibrary.setCpuThreads(Math.max(1, Runtime.getRuntime().availableProcessors() / localWorld));
        try (Communicator comm = Communicator.fromEnv()) {
            DemoTrainer.Config cfg = options.config(comm.size(), options.device().isCpu() ? options.device()
                    : dev.torus.Device.cuda(Integer.parseInt(System.getenv().getOrDefault("LOCAL_RANK", "0"))));
            boolean reporter = comm.rank() == 0;
            transport = comm.transportInUse();
            DemoTrainer.Result r = DemoTrainer.train(cfg, comm, reporter ? (step, total, loss, sps) -> {
                System.out.printf(Locale.ROOT, "%s %d %d %.6f %.1f%n", PROGRESS, step, total, loss, sps);
                System.out.flush();
            } : null, reporter ? modelOut : null);
            if (reporter) {
                write(r, result);
            }
        }
        return 0;
    }

    /** The transport rank 0 used, written beside its result by {@link #write}. */
    static String transport = "gloo";

    /** The transport recorded in a result file (gloo when the file has none). */
    static String readTransport(Path file) throws IOException {
        Properties p = new Properties();
        try (var in = Files.newInputStream(file)) {
            p.load(in);
        }
        return p.getProperty("transport", "gloo");
    }

    static void write(DemoTrainer.Result r, Path file) throws IOException {
        Properties p = new Properties();
        StringBuilder sb = new StringBuilder();
        for (float f : r.stepLoss()) {
            sb.append(sb.length() == 0 ? "" : ",").append(f);
        }
        p.setProperty("stepLoss", sb.toString());
        p.setProperty("trainLoss", Float.toString(r.trainLoss()));
        p.setProperty("testLoss", Float.toString(r.testLoss()));
        p.setProperty("testAccuracy", Float.toString(r.testAccuracy()));
        p.setProperty("samplesPerSecond", Double.toString(r.samplesPerSecond()));
        p.setProperty("trainSeconds", Double.toString(r.trainSeconds()));
        p.setProperty("bytesSent", Long.toString(r.bytesSent()));
        p.setProperty("fp32Bytes", Long.toString(r.fp32Bytes()));
        p.setProperty("peakMemoryBytes", Long.toString(r.peakMemoryBytes()));
        p.setProperty("peakActivationBytes", Long.toString(r.peakActivationBytes()));
        p.setProperty("peakCheckpointBytes", Long.toString(r.peakCheckpointBytes()));
        p.setProperty("overlap", Double.toString(r.overlap()));
        p.setProperty("transport", transport);
        Files.createDirectories(file.toAbsolutePath().getParent());
        try (OutputStream out = Files.newOutputStream(file)) {
            p.store(out, "rank 0 of the data-parallel demo");
        }
    }

    static DemoTrainer.Result read(Path file) throws IOException {
        Properties p = new Properties();
        try (var in = Files.newInputStream(file)) {
            p.load(in);
        }
        String[] parts = p.getProperty("stepLoss").split(",");
        float[] loss = new float[parts.length];
        for (int i = 0; i < parts.length; i++) {
            loss[i] = Float.parseFloat(parts[i]);
        }
        return new DemoTrainer.Result(loss, Float.parseFloat(p.getProperty("trainLoss")),
                Float.parseFloat(p.getProperty("testLoss")), Float.parseFloat(p.getProperty("testAccuracy")),
                Double.parseDouble(p.getProperty("samplesPerSecond")), Double.parseDouble(p.getProperty("trainSeconds")),
                Long.parseLong(p.getProperty("bytesSent")), Long.parseLong(p.getProperty("fp32Bytes")),
                Long.parseLong(p.getProperty("peakMemoryBytes")), Long.parseLong(p.getProperty("peakActivationBytes")),
                Long.parseLong(p.getProperty("peakCheckpointBytes")), Double.parseDouble(p.getProperty("overlap")));
    }
}
