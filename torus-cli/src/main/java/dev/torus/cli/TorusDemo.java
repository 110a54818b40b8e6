package dev.torus.cli;

import dev.torus.Device;
import dev.torus.cli.demo.DemoRun;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code ./torus demo}: the main job. Trains an MLP classifier on worker processes
 * started by the torusrun launcher (embedded ZooKeeper, Gloo on CPU or NCCL with
 * {@code --device cuda}), with int8-compressed gradients and sqrt(n) checkpointing,
 * then trains the same model in one process on the same global batches and compares.
 */
@Command(name = "torus demo", mixinStandardHelpOptions = true, version = "torus demo 0.1.0",
        description = {"Data-parallel training of an MLP classifier on a generated data set, with live progress, a loss "
                + "plot (PNG), a JSON summary, and a self-check against single-process training.",
                "Exit code 0 when the held-out accuracy reaches --target-accuracy and the final loss matches the "
                        + "single-process run within --loss-tolerance; 1 otherwise."})
public final class TorusDemo implements Callable<Integer> {
    @Mixin
    dev.torus.cli.demo.DemoOptions options = new dev.torus.cli.demo.DemoOptions();

    @Option(names = "--workers", description = "Worker processes (default: 4 on cpu, one per GPU on cuda).")
    Integer workers;

    @Option(names = "--out", defaultValue = "torus-demo", description = "Directory for loss.png and summary.json "
            + "(default ${DEFAULT-VALUE}).")
    Path out;

    @Option(names = "--target-accuracy", defaultValue = "0.9", description = "Held-out accuracy the run must reach "
            + "(default ${DEFAULT-VALUE}).")
    double targetAccuracy;

    @Option(names = "--loss-tolerance", defaultValue = "0.02", description = "Largest allowed |final training loss, "
            + "data-parallel - single process| (default ${DEFAULT-VALUE}).")
    double lossTolerance;

    @Option(names = "--skip-single", description = "Skip the single-process comparison.")
    boolean skipSingle;

    public static void main(String[] args) {
        System.exit(run(args));
    }

    public static int run(String... args) {
        return commandLine().execute(args);
    }

    /**
     * The configured command line: expected failures (a bad value, no GPU, a broken communicator) print one
     * line and exit with 2; anything else is a bug and keeps its stack trace. Callers may redirect its output.
     */
    public static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new TorusDemo());
        cl.setExecutionExceptionHandler(ExpectedFailures.oneLine("torus demo"));
        return cl;
    }

    @Override
    public Integer call() throws Exception {
        boolean cuda = options.isCuda();
        if (cuda) {
            Device.ensureCudaAvailable();
        }
        int n = workers != null ? workers : cuda ? Math.max(1, Device.cudaDeviceCount()) : 4;
        if (n < 1) {
            throw new IllegalArgumentException("--workers must be >= 1, got " + n);
        }
        if (!(targetAccuracy >= 0 && targetAccuracy <= 1)) {
            throw new IllegalArgumentException("--target-accuracy must be in [0, 1], got " + targetAccuracy);
        }
        if (!(lossTolerance >= 0)) {
            throw new IllegalArgumentException("--loss-tolerance must be >= 0, got " + lossTolerance);
        }
        return new DemoRun(options, n, out, targetAccuracy, lossTolerance, skipSingle, System.out, System.err).run();
    }
}
