package dev.torus.cli;

import dev.torus.Device;
import dev.torus.cli.demo.DemoRun;
import dev.torus.cli.demo.ElasticDemoRun;
import dev.torus.cli.demo.ElasticSchedule;
import dev.torus.cli.demo.ParallelDemoRun;
import dev.torus.cli.demo.ParallelLayout;
import dev.torus.parallel.pipeline.PipelineSchedule;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

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

    @Option(names = "--skip-single", description = "Skip the single-process comparison (with --elastic: the replay).")
    boolean skipSingle;

    @Option(names = "--elastic", description = "Elastic training: workers join, leave (SIGTERM) and are killed "
            + "(SIGKILL) while the job runs, as --schedule says; the result is compared bit for bit with one process "
            + "that replays the surviving history. CPU, exact fp32 gradients.")
    boolean elastic;

    @Option(names = "--schedule", description = "With --elastic: start=N,join@STEP,leave@STEP[:RANK],kill@STEP[:RANK] "
            + "(default " + ElasticSchedule.DEFAULT + "). With --parallel: the pipeline schedule, gpipe, 1f1b, "
            + "interleaved:V or zb-h1 (default 1f1b).")
    String schedule;

    @Option(names = "--parallel", description = "Model parallelism: dp=D,pp=P,tp=T (D data-parallel replicas of a "
            + "P-stage pipeline of T-way tensor-parallel MLP blocks, D*P*T worker processes); checked against one "
            + "process on the same batches.")
    String parallel;

    @Option(names = "--micro-batches", defaultValue = "4", description = "With --parallel: micro-batches per replica "
            + "and step (default ${DEFAULT-VALUE}).")
    int microBatches;

    @Option(names = "--micro-batch", defaultValue = "64", description = "With --elastic: the most rows a worker "
            + "computes at once; a larger shard is accumulated in micro-batches (default ${DEFAULT-VALUE}).")
    int microBatch;

    @Option(names = "--commit-every", defaultValue = "1", description = "With --elastic: steps between commits of the "
            + "elastic state (default ${DEFAULT-VALUE}).")
    int commitEvery;

    @Option(names = "--step-pause-ms", defaultValue = "0", description = "With --elastic: milliseconds each worker "
            + "waits after a step, to slow a small run down so that the schedule's changes happen near their steps "
            + "(a joiner's JVM takes seconds to start) (default ${DEFAULT-VALUE}).")
    int stepPauseMs;

    @Option(names = "--adaptive-batch", description = "With --elastic: MIN:MAX global batch, chosen every "
            + "10 steps by goodput (gradient noise scale and measured step time), changed only for a 5%% gain, with "
            + "AdaScale's learning rate; the replay follows the recorded batches.")
    String adaptiveBatch;

    @Spec
    CommandSpec spec;

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
        cl.setParameterExceptionHandler(ExpectedFailures.oneLineParse("torus demo"));
        return cl;
    }

    @Override
    public Integer call() throws Exception {
        if (!(targetAccuracy >= 0 && targetAccuracy <= 1)) {
            throw new IllegalArgumentException("--target-accuracy must be in [0, 1], got " + targetAccuracy);
        }
        if (elastic && parallel != null) {
            throw new IllegalArgumentException("--elastic and --parallel cannot be combined (elastic model parallelism "
                    + "is not built)");
        }
        CommandLine.ParseResult parsed = spec.commandLine().getParseResult();
        if (!elastic && parallel == null && parsed.hasMatchedOption("--micro-batches")) {
            throw new IllegalArgumentException("--micro-batches needs --parallel");
        }
        if (elastic) {
            if (parsed.hasMatchedOption("--micro-batches")) {
                throw new IllegalArgumentException("--micro-batches needs --parallel (--elastic takes --micro-batch)");
            }
            return elastic();
        }
        if (parallel != null) {
            return parallel(parsed);
        }
        for (String o : new String[] {"--schedule", "--micro-batch", "--commit-every", "--step-pause-ms",
                "--adaptive-batch"}) {
            if (parsed.hasMatchedOption(o)) {
                throw new IllegalArgumentException(o + " needs --elastic" + (o.equals("--schedule") ? " or --parallel"
                        : ""));
            }
        }
        boolean cuda = options.isCuda();
        if (cuda) {
            Device.ensureCudaAvailable();
        }
        int n = workers != null ? workers : cuda ? Math.max(1, Device.cudaDeviceCount()) : 4;
        if (n < 1) {
            throw new IllegalArgumentException("--workers must be >= 1, got " + n);
        }
        if (!(lossTolerance >= 0)) {
            throw new IllegalArgumentException("--loss-tolerance must be >= 0, got " + lossTolerance);
        }
        return new DemoRun(options, n, out, targetAccuracy, lossTolerance, skipSingle, System.out, System.err).run();
    }

    private int parallel(CommandLine.ParseResult parsed) throws Exception {
        for (String o : new String[] {"--micro-batch", "--commit-every", "--step-pause-ms", "--adaptive-batch",
                "--workers", "--loss-tolerance", "--skip-single"}) {
            if (parsed.hasMatchedOption(o)) {
                throw new IllegalArgumentException(o + " does not apply to --parallel" + (o.equals("--workers")
                        ? ": dp*pp*tp sets the worker count" : o.equals("--micro-batch") ? " (it takes --micro-batches)"
                        : o.equals("--skip-single") ? ": the comparison with one process is the demo's check" : ""));
            }
        }
        if (parsed.hasMatchedOption("--hook") && !options.hookName().equals("none")) {
            throw new IllegalArgumentException("--parallel reduces with the exact fp32 all-reduce (the comparison with "
                    + "one process needs it); --hook must be none or left out, got '" + options.hookName() + "'");
        }
        ParallelLayout layout = ParallelLayout.parse(parallel);
        PipelineSchedule sched = schedule == null ? PipelineSchedule.ONE_F_ONE_B
                : PipelineSchedule.parse("--schedule", schedule);
        ParallelDemoRun.check(options, layout, sched, microBatches);
        return new ParallelDemoRun(options, layout, sched, microBatches, out, targetAccuracy, skipSingle, System.out,
                System.err).run();
    }

    private int elastic() throws Exception {
        var parsed = spec.commandLine().getParseResult();
        if (workers != null) {
            throw new IllegalArgumentException("--workers does not apply to --elastic: the schedule's start=N sets the "
                    + "first workers");
        }
        if (parsed.hasMatchedOption("--loss-tolerance")) {
            throw new IllegalArgumentException("--loss-tolerance does not apply to --elastic: it compares bit for bit");
        }
        if (parsed.hasMatchedOption("--hook") && !options.hookName().equals("none")) {
            throw new IllegalArgumentException("--elastic uses the exact fp32 all-reduce (the bitwise comparison needs "
                    + "it); --hook " + options.hookName() + " is not supported with it");
        }
        if (options.isCuda()) {
            throw new IllegalArgumentException("--elastic runs on --device cpu: NCCL grow and shrink are not built yet");
        }
        if (commitEvery < 1) {
            throw new IllegalArgumentException("--commit-every must be >= 1, got " + commitEvery);
        }
        if (stepPauseMs < 0 || stepPauseMs > 10_000) {
            throw new IllegalArgumentException("--step-pause-ms must be in [0, 10000], got " + stepPauseMs);
        }
        options.check();
        if (microBatch < 1 || microBatch > options.batchSize()) {
            throw new IllegalArgumentException("--micro-batch must be in [1, --batch " + options.batchSize() + "], got "
                    + microBatch);
        }
        long total = options.elasticSteps();
        int[] adaptive = null;
        if (adaptiveBatch != null) {
            adaptive = dev.torus.cli.launch.LaunchSpec.parseNodes("--adaptive-batch", adaptiveBatch);
            if (adaptive[0] < 1 || adaptive[1] < adaptive[0] || adaptive[1] > 1 << 20) {
                throw new IllegalArgumentException("--adaptive-batch must be MIN:MAX with 1 <= MIN <= MAX <= "
                        + (1 << 20) + ", got '" + adaptiveBatch + "'");
            }
            if (options.batchSize() < adaptive[0] || options.batchSize() > adaptive[1]) {
                throw new IllegalArgumentException("--batch " + options.batchSize() + " must lie in --adaptive-batch "
                        + adaptiveBatch + " (it is where the batch starts)");
            }
        }
        ElasticSchedule sched = ElasticSchedule.parse(
                schedule == null ? ElasticSchedule.DEFAULT : schedule, total,
                ElasticDemoRun.MAX_WORLD);
        return new ElasticDemoRun(options, sched, microBatch, commitEvery, stepPauseMs, adaptive, out,
                targetAccuracy, skipSingle, System.out, System.err).run();
    }
}
