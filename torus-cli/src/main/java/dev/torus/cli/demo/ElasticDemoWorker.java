package dev.torus.cli.demo;

import dev.torus.NativeLibrary;
import dev.torus.comm.Communicator;
import dev.torus.comm.Compression;
import dev.torus.comm.CompressedAllReduce;
import dev.torus.comm.ReduceOp;
import dev.torus.elastic.ElasticLoop;
import dev.torus.elastic.ElasticOptions;
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

    @Option(names = "--min", required = true)
    int min;

    @Option(names = "--max", required = true)
    int max;

    public static void main(String[] args) {
        System.exit(new CommandLine(new ElasticDemoWorker()).execute(args));
    }

    @Override
    public Integer call() throws IOException, InterruptedException {
        // one thread per worker everywhere: the replay must compute every rank's gradient bit for bit alike
        NativeLibrary.setCpuThreads(1);
        AtomicBoolean term = new AtomicBoolean();
        sun.misc.Signal.handle(new sun.misc.Signal("TERM"), sig -> term.set(true));
        Map<String, String> env = System.getenv();
        ElasticOptions opts = new ElasticOptions(env.get("TORUS_RUN_ID"), min, max, Duration.ofSeconds(1),
                Duration.ofSeconds(30), Duration.ofSeconds(60));
        try (Store store = Stores.open(env.get("TORUS_RDZV_ENDPOINT"), "store", Duration.ofSeconds(15),
                     JobSecret.fromEnvironment(env));
             ElasticDemoModel model = new ElasticDemoModel(options.width, options.blocks, options.batch, microBatch,
                     options.epochs, options.lr, options.seed, options.trainRows, options.testRows,
                     options.checkpointPolicy(), "elastic-demo-worker")) {
            long total = model.totalSteps();
            long t0 = System.nanoTime();
            Files.createDirectories(events);
            Path eventFile = events.resolve("worker-" + ProcessHandle.current().pid() + ".jsonl");
            CompressedAllReduce[] reducer = {null};
            Communicator[] reducerComm = {null};
            try (ElasticLoop loop = ElasticLoop.join(store, opts, model.state, model.root, commitEvery, eventFile)) {
                while (loop.next(total)) {
                    if (term.get() && !loop.group().leaveRequested()) {
                        loop.leave(); // finish this step, leave at the next boundary
                    }
                    long step = model.state.step();
                    float[] loss = {Float.NaN};
                    loop.step(comm -> {
                        if (reducerComm[0] != comm) {
                            if (reducer[0] != null) {
                                reducer[0].close();
                            }
                            reducer[0] = new CompressedAllReduce(comm, Compression.fp32(), model.root);
                            reducerComm[0] = comm;
                        }
                        float[] flat = model.localGradient(comm.rank(), comm.size());
                        try (Tensor t = Tensor.fromArray(model.root, flat, flat.length)) {
                            reducer[0].allReduce("grads", t, ReduceOp.AVG).await();
                            loss[0] = model.applyAndStep(t.toFloatArray());
                        }
                        model.state.putLong("world@" + step, comm.size());
                        model.state.putDouble("loss@" + step, loss[0]);
                    });
                    if (model.state.step() > step) {
                        System.out.printf(Locale.ROOT, "%s %d %d %d %d %.6f%n", STEP_LINE, model.state.step(),
                                loop.comm().size(), loop.comm().rank(), loop.group().generation(), loss[0]);
                        System.out.flush();
                        if (stepPauseMs > 0) {
                            Thread.sleep(stepPauseMs);
                        }
                    }
                }
                if (reducer[0] != null) {
                    reducer[0].close();
                }
                if (!loop.group().isMember()) {
                    return 0;
                }
                // every member that finished states its final parameters: the driver checks that they agree
                System.out.println(FINAL_LINE + " " + model.state.step() + " " + parameterHash(model));
                if (loop.comm().rank() != 0) {
                    return 0;
                }
                writeResult(model, total, (System.nanoTime() - t0) / 1e9,
                        loop.stepSeconds() > 0 ? loop.commitSeconds() / loop.stepSeconds() : Double.NaN);
            }
        }
        return 0;
    }

    private void writeResult(ElasticDemoModel model, long total, double seconds, double commitFraction)
            throws IOException {
        int[] world = new int[(int) total];
        float[] loss = new float[(int) total];
        for (int s = 0; s < total; s++) {
            world[s] = (int) model.state.getLong("world@" + s);
            loss[s] = (float) model.state.getDouble("loss@" + s);
        }
        float[] eval = model.evaluate();
        ElasticDemoResult r = new ElasticDemoResult(world, loss, model.parameterValues(), eval[0], eval[1], seconds,
                commitFraction);
        r.write(result);
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
