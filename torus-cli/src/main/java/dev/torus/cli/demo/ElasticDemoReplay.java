package dev.torus.cli.demo;

import dev.torus.NativeLibrary;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * The elastic demo's reference: one process that replays the run's surviving history. For every
 * step it uses that step's world size W, global batch and learning rate: it computes each of the W ranks' parts exactly as a worker
 * does ({@link ElasticDemoModel#localGradient}), averages them in rank order as the exact all-reduce
 * does, and steps the optimizer. Started as a process of its own with the workers' thread settings,
 * so that its kernels run as theirs did. Reads the history from the run's result, writes its own.
 */
@Command(name = "elastic-demo-replay")
public final class ElasticDemoReplay implements Callable<Integer> {
    @Mixin
    DemoOptions options = new DemoOptions();

    @Option(names = "--history", required = true)
    Path history;

    @Option(names = "--result", required = true)
    Path result;

    @Option(names = "--micro-batch", required = true)
    int microBatch;

    public static void main(String[] args) {
        System.exit(new CommandLine(new ElasticDemoReplay()).execute(args));
    }

    @Override
    public Integer call() throws Exception {
        NativeLibrary.setCpuThreads(1);
        ElasticDemoResult run = ElasticDemoResult.read(history);
        long t0 = System.nanoTime();
        try (ElasticDemoModel model = ElasticDemoModel.of(options, microBatch, "elastic-demo-replay")) {
            float[] loss = new float[run.world().length];
            for (int s = 0; s < loss.length; s++) {
                int w = run.world()[s];
                int batch = run.batch()[s];
                model.optimizer.setLearningRate(run.lr()[s]);
                float[][] parts = new float[w][];
                for (int r = 0; r < w; r++) {
                    parts[r] = model.localGradient(r, w, batch);
                }
                loss[s] = model.applyAndStep(ElasticDemoModel.rankOrderedAverage(parts), batch);
            }
            if (model.sampler.epoch() != options.epochs || model.sampler.consumed() != 0) {
                throw new IllegalArgumentException("--history does not cover the run: after its " + loss.length
                        + " steps the data is at epoch " + model.sampler.epoch() + " position "
                        + model.sampler.consumed() + ", not at the end of epoch " + options.epochs);
            }
            float[] eval = model.evaluate();
            new ElasticDemoResult(run.world(), loss, run.batch(), run.lr(), model.parameterValues(), eval[0], eval[1],
                    (System.nanoTime() - t0) / 1e9, Double.NaN).write(result);
        }
        return 0;
    }
}
