package dev.torus.cli.demo;

import dev.torus.Device;
import dev.torus.cli.bench.RecomputeBench;
import dev.torus.parallel.CommHook;
import dev.torus.recompute.CheckpointPolicy;
import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine.Option;

/** The demo's training settings, shared by the driver and its workers (which get them as arguments). */
public final class DemoOptions {
    @Option(names = "--device", defaultValue = "cpu", description = "cpu (Gloo) or cuda (NCCL, one worker per GPU by "
            + "default) (default ${DEFAULT-VALUE}).")
    String device;

    @Option(names = "--epochs", defaultValue = "4", description = "Epochs (default ${DEFAULT-VALUE}).")
    int epochs;

    @Option(names = "--batch", defaultValue = "256", description = "Global batch, split evenly over the workers "
            + "(default ${DEFAULT-VALUE}).")
    int batch;

    @Option(names = "--width", defaultValue = "128", description = "Hidden width (default ${DEFAULT-VALUE}).")
    int width;

    @Option(names = "--blocks", defaultValue = "6", description = "Hidden blocks (default ${DEFAULT-VALUE}).")
    int blocks;

    @Option(names = "--lr", defaultValue = "0.002", description = "AdamW learning rate (default ${DEFAULT-VALUE}).")
    float lr;

    @Option(names = "--hook", defaultValue = "int8", description = "Gradient hook: none, allreduce, fp16, bf16, int8, "
            + "int8:BLOCK (default ${DEFAULT-VALUE}).")
    String hook;

    @Option(names = "--policy", defaultValue = "sqrt(n)", description = "Checkpointing: none, every-K, sqrt(n), "
            + "selective (default ${DEFAULT-VALUE}).")
    String policy;

    @Option(names = "--seed", defaultValue = "7", description = "Data, initialisation and shuffling seed "
            + "(default ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--train-rows", defaultValue = "16384", description = "Training samples (default ${DEFAULT-VALUE}).")
    int trainRows;

    @Option(names = "--test-rows", defaultValue = "4096", description = "Held-out samples (default ${DEFAULT-VALUE}).")
    int testRows;

    /** Checks sizes, rates, the hook and the checkpoint policy, as one CPU worker would. */
    public void check() {
        config(1, Device.cpu());
    }

    /** The --batch value. */
    public int batchSize() {
        return batch;
    }

    /** The --hook value as given. */
    public String hookName() {
        return hook.trim();
    }

    /** Steps of an elastic run: each epoch ends with a short step when the batch does not divide the data. */
    public long elasticSteps() {
        return ElasticDemoModel.totalSteps(trainRows, batch, epochs);
    }

    /** True for {@code --device cuda}. */
    public boolean isCuda() {
        return device().isCuda();
    }

    Device device() {
        return switch (device.trim().toLowerCase()) {
            case "cpu" -> Device.cpu();
            case "cuda" -> Device.cuda(0);
            default -> throw new IllegalArgumentException("--device must be cpu or cuda, got '" + device + "'");
        };
    }

    CheckpointPolicy checkpointPolicy() {
        if (policy.startsWith("budget")) {
            throw new IllegalArgumentException("--policy: the demo takes none, every-K, sqrt(n) or selective, got '"
                    + policy + "'");
        }
        return RecomputeBench.policy(policy, 0);
    }

    /** The trainer's configuration for {@code workers} data-parallel ranks, on {@code device}. */
    DemoTrainer.Config config(int workers, Device dev) {
        for (String[] p : new String[][] {{"--epochs", "" + epochs}, {"--batch", "" + batch}, {"--width", "" + width},
                {"--blocks", "" + blocks}, {"--train-rows", "" + trainRows}, {"--test-rows", "" + testRows}}) {
            if (Long.parseLong(p[1]) < 1) {
                throw new IllegalArgumentException(p[0] + " must be positive, got " + p[1]);
            }
        }
        if (!(lr > 0) || !Float.isFinite(lr)) {
            throw new IllegalArgumentException("--lr must be a positive number, got " + lr);
        }
        CommHook h = CommHook.parse("--hook", hook);
        if (h.isLossy() && !dev.isCpu()) {
            throw new IllegalArgumentException("--hook " + hook + " needs --device cpu: compressed reduction of CUDA "
                    + "buckets is not built yet; use --hook none or --hook allreduce with --device cuda");
        }
        DemoTrainer.Config cfg = new DemoTrainer.Config(width, blocks, batch, epochs, lr, seed, trainRows, testRows,
                workers, CommHook.parse("--hook", hook), checkpointPolicy(), dev);
        if (cfg.stepsPerEpoch() < 1) {
            throw new IllegalArgumentException("--train-rows (" + trainRows + ") must give each worker at least one local "
                    + "batch of " + cfg.localBatch());
        }
        return cfg;
    }

    /** These options as arguments for a worker. */
    List<String> toArgs() {
        return new ArrayList<>(List.of("--device", device, "--epochs", "" + epochs, "--batch", "" + batch, "--width",
                "" + width, "--blocks", "" + blocks, "--lr", "" + lr, "--hook", hook, "--policy", policy, "--seed",
                "" + seed, "--train-rows", "" + trainRows, "--test-rows", "" + testRows));
    }
}
