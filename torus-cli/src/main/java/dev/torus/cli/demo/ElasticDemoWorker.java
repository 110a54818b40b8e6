package dev.torus.cli.demo;

import dev.torus.NativeLibrary;
import dev.torus.comm.Communicator;
import dev.torus.comm.Compression;
import dev.torus.comm.CompressedAllReduce;
import dev.torus.comm.ReduceOp;
import dev.torus.elastic.AdaptiveBatchSize;
import dev.torus.elastic.ElasticLoop;
import dev.torus.elastic.ElasticOptions;
import dev.torus.elastic.GradientNoiseScale;
import dev.torus.elastic.StepTimeModel;
import dev.torus.rendezvous.JobSecret;
import dev.torus.rendezvous.Store;
import dev.torus.rendezvous.Stores;
import dev.torus.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicBoolean;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * One worker process of {@code ./torus demo --elastic}. It joins the job through {@link ElasticLoop}
 * (admitted at a step boundary, state taken from the others), trains with the exact rank-ordered
 * fp32 all-reduce, and records each step's world size and loss in the committed state, so that the
 * history that reaches the end is the one the final parameters came from (rolled-back steps drop
 * out with the rollback). SIGTERM is a graceful leave. After every completed step it prints
 * {@code @estep STEP WORLD RANK GENERATION LOSS}; the member that is rank 0 at the end writes the
 * final parameters and the history to {@code --result}.
 */
@Command(name = "elastic-demo-worker")
public final class ElasticDemoWorker implements Callable<Integer> {
    static final String STEP_LINE = "@estep";
    static final String FINAL_LINE = "@efinal";

    @Mixin
    DemoOptions options = new DemoOptions();

    @Option(names = "--result", required = true)
    Path result;

    @Option(names = "--events", required = true)
    Path events;

    @Option(names = "--micro-batch", required = true)
    int microBatch;

    @Option(names = "--commit-every", required = true)
    int commitEvery;

    @Option(names = "--step-pause-ms", defaultValue = "0")
    int stepPauseMs;

    @Option(names = "--adaptive-min", defaultValue = "0")
    int adaptiveMin;

    @Option(names = "--adaptive-max", defaultValue = "0")
    int adaptiveMax;

    @Option(names = "--min", required = true)
    int min;

    @Option(names = "--max", required = true)
    int max;

    public static void main(String[] args) {
        System.exit(new CommandLine(new ElasticDemoWorker()).execute(args));
    }

    @Override
    public Integer call() throws Exception {
        // one thread per worker everywhere: the replay must compute every rank's gradient bit for bit alike
        NativeLibrary.setCpuThreads(1);
        AtomicBoolean term = new AtomicBoolean();
        sun.misc.Signal.handle(new sun.misc.Signal("TERM"), sig -> term.set(true));
        Map<String, String> env = System.getenv();
        ElasticOptions opts = new ElasticOptions(env.get("TORUS_RUN_ID"), min, max, Duration.ofSeconds(1),
                Duration.ofSeconds(30), Duration.ofSeconds(60));
        try (Store store = Stores.open(env.get("TORUS_RDZV_ENDPOINT"), "store", Duration.ofSeconds(15),
                     JobSecret.fromEnvironment(env));
             ElasticDemoModel model = ElasticDemoModel.of(options, microBatch, "elastic-demo-worker")) {
            long t0 = System.nanoTime();
            Files.createDirectories(events);
            Path eventFile = events.resolve("worker-" + ProcessHandle.current().pid() + ".jsonl");
            CompressedAllReduce[] reducer = {null};
            Communicator[] reducerComm = {null};
            AdaptiveBatchSize policy = adaptiveMax == 0 ? null
                    : new AdaptiveBatchSize(options.batch, options.lr, adaptiveMin, adaptiveMax, 0.05);
            GradientNoiseScale noise = new GradientNoiseScale(0.95);
            StepTimeModel times = new StepTimeModel(0.98);
            // the batch and the estimators are training state: committed, rolled back, sent to joiners
            model.state.putLong("batch", options.batch);
            long[] lastGeneration = {-1};
            double[] previous = {0, 0}; // rank 0's last step: {seconds, per-rank batch}
            try (ElasticLoop loop = ElasticLoop.join(store, opts, model.state, model.root, commitEvery, eventFile);
                 AutoCloseable closeReducer = () -> {
                     if (reducer[0] != null) {
                         reducer[0].close();
                     }
                 }) {
                // the run is a number of epochs: with an adaptive batch the number of steps is not known ahead
                while (model.sampler.epoch() < options.epochs && loop.next(Long.MAX_VALUE)) {
                    if (term.get() && !loop.group().leaveRequested()) {
                        loop.leave(); // finish this step, leave at the next boundary
                    }
                    long step = model.state.step();
                    float[] loss = {Float.NaN};
                    int[] used = {0};
                    loop.step(comm -> {
                        long s0 = System.nanoTime();
                        if (reducerComm[0] != comm) {
                            if (reducer[0] != null) {
                                reducer[0].close();
                            }
                            reducer[0] = new CompressedAllReduce(comm, Compression.fp32(), model.root);
                            reducerComm[0] = comm;
                        }
                        boolean fresh = loop.group().generation() != lastGeneration[0];
                        lastGeneration[0] = loop.group().generation();
                        int batch = (int) model.state.getLong("batch");
                        used[0] = batch;
                        float lr = model.optimizer.learningRate();
                        if (policy != null) {
                            restore(model, noise, times);
                        }
                        int n = model.numel();
                        float[] part = model.localGradient(comm.rank(), comm.size(), batch);
                        // two statistics ride along: the squared norm of this rank's gradient, and rank 0's
                        // previous step time (0 after a change, whose steps include the rebuild)
                        float[] flat = java.util.Arrays.copyOf(part, n + 3);
                        double localSq = 0;
                        for (int i = 0; i < n; i++) {
                            localSq += (double) part[i] * part[i];
                        }
                        flat[n + 1] = (float) localSq;
                        flat[n + 2] = comm.rank() == 0 && !fresh ? (float) previous[0] : 0f;
                        float[] avg;
                        try (Tensor t = Tensor.fromArray(model.root, flat, flat.length)) {
                            reducer[0].allReduce("grads", t, ReduceOp.AVG).await();
                            avg = t.toFloatArray();
                        }
                        loss[0] = model.applyAndStep(java.util.Arrays.copyOf(avg, n + 1), batch);
                        model.state.putLong("world@" + step, comm.size());
                        model.state.putDouble("loss@" + step, loss[0]);
                        model.state.putLong("batch@" + step, batch);
                        model.state.putDouble("lr@" + step, lr);
                        if (policy != null) {
                            adapt(model, policy, noise, times, comm.size(), batch, avg, n, previous[1], step);
                        }
                        previous[0] = (System.nanoTime() - s0) / 1e9;
                        previous[1] = (double) batch / comm.size();
                    });
                    if (model.state.step() > step) {
                        // one write per line: a worker killed mid-line must not leave half a line behind
                        System.out.print(String.format(Locale.ROOT, "%s %d %d %d %d %.6f %d%n", STEP_LINE,
                                model.state.step(), loop.comm().size(), loop.comm().rank(), loop.group().generation(),
                                loss[0], used[0]));
                        System.out.flush();
                        if (stepPauseMs > 0) {
                            Thread.sleep(stepPauseMs);
                        }
                    }
                }
                if (!loop.group().isMember()) {
                    return 0;
                }
                // every member that finished states its final parameters: the driver checks that they agree
                System.out.println(FINAL_LINE + " " + model.state.step() + " " + parameterHash(model));
                if (loop.comm().rank() != 0) {
                    return 0;
                }
                writeResult(model, model.state.step(), (System.nanoTime() - t0) / 1e9,
                        loop.stepSeconds() > 0 ? loop.commitSeconds() / loop.stepSeconds() : Double.NaN);
            }
        }
        return 0;
    }

    private void writeResult(ElasticDemoModel model, long total, double seconds, double commitFraction)
            throws IOException {
        int[] world = new int[(int) total];
        float[] loss = new float[(int) total];
        int[] batch = new int[(int) total];
        float[] lr = new float[(int) total];
        for (int s = 0; s < total; s++) {
            world[s] = (int) model.state.getLong("world@" + s);
            loss[s] = (float) model.state.getDouble("loss@" + s);
            batch[s] = (int) model.state.getLong("batch@" + s);
            lr[s] = (float) model.state.getDouble("lr@" + s);
        }
        float[] eval = model.evaluate();
        ElasticDemoResult r = new ElasticDemoResult(world, loss, batch, lr, model.parameterValues(), eval[0], eval[1],
                seconds, commitFraction);
        r.write(result);
    }

    /** Every ADAPT_EVERY steps the batch may change, by goodput (the same figures on every member). */
    static final int ADAPT_EVERY = 10;

    private static void restore(ElasticDemoModel model, GradientNoiseScale noise, StepTimeModel times) {
        if (model.state.hasScalar("gns.0")) {
            noise.restore(new double[] {model.state.getDouble("gns.0"), model.state.getDouble("gns.1"),
                    model.state.getDouble("gns.2")});
            double[] t = new double[7];
            for (int i = 0; i < t.length; i++) {
                t[i] = model.state.getDouble("stm." + i);
            }
            times.restore(t);
        }
    }

    private static void adapt(ElasticDemoModel model, AdaptiveBatchSize policy, GradientNoiseScale noise,
                              StepTimeModel times, int world, int batch, float[] avg, int n, double previousPerRank,
                              long step) {
        double globalSq = 0;
        for (int i = 0; i < n; i++) {
            globalSq += (double) avg[i] * avg[i];
        }
        int perRank = batch / world;
        if (world > 1 && perRank >= 1 && perRank < batch) {
            noise.update(avg[n + 1], globalSq, perRank, batch);
        }
        double previousSeconds = (double) avg[n + 2] * world; // only rank 0 sent it
        if (previousSeconds > 0 && previousPerRank > 0) {
            times.observe(previousPerRank, previousSeconds);
        }
        if ((step + 1) % ADAPT_EVERY == 0) {
            AdaptiveBatchSize.Decision d = policy.decide(batch, world, noise, times);
            model.state.putLong("batch", d.batch());
            model.optimizer.setLearningRate((float) d.learningRate());
        }
        double[] g = noise.state();
        for (int i = 0; i < g.length; i++) {
            model.state.putDouble("gns." + i, g[i]);
        }
        double[] t = times.state();
        for (int i = 0; i < t.length; i++) {
            model.state.putDouble("stm." + i, t[i]);
        }
    }

    static String parameterHash(ElasticDemoModel model) {
        try {
            java.security.MessageDigest md = java.security.MessageDigest.getInstance("SHA-256");
            for (float v : model.parameterValues()) {
                int b = Float.floatToRawIntBits(v);
                md.update(new byte[] {(byte) b, (byte) (b >> 8), (byte) (b >> 16), (byte) (b >> 24)});
            }
            return java.util.HexFormat.of().formatHex(md.digest(), 0, 16);
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
