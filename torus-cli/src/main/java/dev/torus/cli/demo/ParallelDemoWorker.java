package dev.torus.cli.demo;

import dev.torus.NativeLibrary;
import dev.torus.comm.Communicator;
import dev.torus.memory.Allocator;
import dev.torus.nn.AdamW;
import dev.torus.nn.Layer;
import dev.torus.nn.Parameter;
import dev.torus.parallel.CommHook;
import dev.torus.parallel.DataParallel;
import dev.torus.parallel.DeviceMesh;
import dev.torus.parallel.pipeline.PipelineSchedule;
import dev.torus.parallel.pipeline.PipelineStage;
import dev.torus.parallel.pipeline.StagePartition;
import dev.torus.parallel.tensor.TensorParallel;
import dev.torus.tensor.Tensor;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * One worker of {@code ./torus demo --parallel}, started by the launcher: its place in the dp × pp × tp
 * mesh comes from its world rank ({@link DeviceMesh}, tp fastest). It holds its pipeline stage's chunks of
 * the model with the MLP blocks cut for its tp rank, trains them through a {@link PipelineStage} (the
 * pp group), reduces gradients over its dp group with {@link DataParallel} and the exact hook, and steps
 * AdamW. It prints its losses, timings and the last step's timeline as {@code @}-lines for the driver, and
 * (on dp rank 0) writes its parameters for the comparison with one process.
 */
public final class ParallelDemoWorker implements Callable<Integer> {
    static final String LOSS = "@loss";
    static final String STAGE = "@stage";
    static final String SLICE = "@slice";
    static final String MESH = "@mesh";

    @Mixin
    DemoOptions options = new DemoOptions();

    @Option(names = "--layout", required = true)
    String layout;

    @Option(names = "--pipeline-schedule", required = true)
    String scheduleText;

    @Option(names = "--micro-batches", required = true)
    int microBatches;

    @Option(names = "--out", required = true)
    Path out;

    public static void main(String[] args) {
        System.exit(new CommandLine(new ParallelDemoWorker()).execute(args));
    }

    /** The parameter file of the worker at (pp, tp) of dp replica 0. */
    static Path paramsFile(Path dir, int pp, int tp) {
        return dir.resolve("params-pp" + pp + "-tp" + tp + ".bin");
    }

    @Override
    public Integer call() throws Exception {
        NativeLibrary.setCpuThreads(1); // as the reference process: the same kernels, the same bits
        ParallelLayout lay = ParallelLayout.parse(layout);
        PipelineSchedule schedule = PipelineSchedule.parse("--schedule", scheduleText);
        DemoData train = DemoData.generate(options.seed, options.trainRows, 0);
        int batch = options.batch;
        int replicaRows = batch / lay.dp();
        int mbRows = replicaRows / microBatches;
        int steps = options.epochs * (options.trainRows / batch);
        try (Communicator world = Communicator.fromEnv();
             Allocator a = Allocator.root("parallel-demo-" + world.rank());
             DeviceMesh mesh = new DeviceMesh(world, lay.dp(), lay.pp(), lay.tp());
             TensorParallel tp = new TensorParallel(mesh.tpGroup(), a)) {
            // the members of each group as the group itself reports them: a sum of one-hot world ranks
            System.out.println(MESH + " " + world.rank() + " " + mesh.dpRank() + " " + mesh.ppRank() + " "
                    + mesh.tpRank() + " " + members(mesh.dpGroup(), world, a) + " " + members(mesh.ppGroup(), world, a)
                    + " " + members(mesh.tpGroup(), world, a));
            List<Layer> layers = ParallelDemoModel.build(options.width, options.blocks, options.seed, tp, a);
            try {
                int v = schedule.chunks();
                int virtual = lay.pp() * v;
                List<List<Layer>> parts = StagePartition.byCount(layers, virtual);
                int[] firsts = StagePartition.firstIndices(layers.size(), virtual);
                List<List<Layer>> chunks = new ArrayList<>();
                int[] myFirsts = new int[v];
                List<Parameter> params = new ArrayList<>();
                for (int c = 0; c < v; c++) {
                    chunks.add(parts.get(c * lay.pp() + mesh.ppRank()));
                    myFirsts[c] = firsts[c * lay.pp() + mesh.ppRank()];
                    for (Layer l : chunks.get(c)) {
                        params.addAll(l.parameters());
                    }
                }
                PipelineStage stage = new PipelineStage(mesh.ppGroup(), chunks, myFirsts, schedule, a, options.seed)
                        .checkpoint(options.checkpointPolicy()).fixedShapes(true); // every micro-batch has mbRows rows
                try (DataParallel dp = DataParallel.builder(mesh.dpGroup(), params).hook(CommHook.none()).allocator(a)
                        .build();
                     AdamW opt = new AdamW(params, options.lr, a)) {
                    train(lay, mesh, stage, dp, opt, train, steps, batch, replicaRows, mbRows, a);
                    dp.checkConsistency(); // every dp replica holds the same bits
                }
                if (mesh.dpRank() == 0) {
                    writeParams(paramsFile(out, mesh.ppRank(), mesh.tpRank()), chunks, myFirsts, lay);
                }
            } finally {
                layers.forEach(Layer::close);
            }
        }
        return 0;
    }

    /** The world ranks in {@code group}, comma-separated, as an all-reduce over the group finds them. */
    private static String members(Communicator group, Communicator world, Allocator a) {
        float[] oneHot = new float[world.size()];
        oneHot[world.rank()] = 1;
        try (Tensor t = Tensor.fromArray(a, oneHot, oneHot.length)) {
            group.allReduce(t, dev.torus.comm.ReduceOp.SUM).await();
            float[] sum = t.toFloatArray();
            StringBuilder sb = new StringBuilder();
            for (int r = 0; r < sum.length; r++) {
                if (sum[r] != 0) {
                    sb.append(sb.length() == 0 ? "" : ",").append(r).append(sum[r] == 1 ? "" : "x" + sum[r]);
                }
            }
            return sb.toString();
        }
    }

    private void train(ParallelLayout lay, DeviceMesh mesh, PipelineStage stage, DataParallel dp, AdamW opt,
                       DemoData train, int steps, int batch, int replicaRows, int mbRows, Allocator a) {
        boolean lastStage = mesh.ppRank() == lay.pp() - 1;
        List<Object[]> slices = new ArrayList<>(); // raw: no string building inside the step
        long[] busy = {0};
        boolean[] record = {false};
        stage.trace((name, t0, t1) -> {
            if (!name.startsWith("recv") && !name.startsWith("send")) {
                busy[0] += t1 - t0;
            }
            if (record[0]) {
                slices.add(new Object[] {name, t0, t1});
            }
        });
        int stepsPerEpoch = options.trainRows / batch;
        double busyMs = 0;
        double wallMs = 0;
        int peak = 0;
        long peakBytes = 0;
        float[] x = new float[mbRows * DemoData.FEATURES];
        int[][] labels = new int[microBatches][mbRows];
        int[] order = null;
        for (int step = 0; step < steps; step++) {
            int epoch = step / stepsPerEpoch;
            if (step % stepsPerEpoch == 0) {
                order = ParallelDemoModel.order(options.seed, options.trainRows, epoch);
            }
            int base = (step % stepsPerEpoch) * batch + mesh.dpRank() * replicaRows;
            List<Tensor> inputs = new ArrayList<>();
            for (int mb = 0; mb < microBatches; mb++) {
                train.gather(order, base + mb * mbRows, mbRows, x, labels[mb], 0);
                inputs.add(Tensor.fromArray(a, x, mbRows, DemoData.FEATURES));
            }
            record[0] = step == steps - 1;
            busy[0] = 0;
            dp.zeroGrad();
            long t0 = System.nanoTime();
            PipelineStage.StepResult r;
            try {
                r = stage.step(microBatches, inputs::get, lastStage ? (logits, mb) -> {
                    Tensor[] g = new Tensor[1];
                    float loss = ParallelDemoModel.lossGradient(logits, labels[mb], microBatches, a, g);
                    return new PipelineStage.Loss.Result(loss, g[0]);
                } : null);
            } finally {
                inputs.forEach(Tensor::close);
            }
            long t1 = System.nanoTime();
            dp.awaitGradients();
            opt.step();
            if (step > 0 || steps == 1) { // the first step warms the JIT
                busyMs += busy[0] / 1e6;
                wallMs += (t1 - t0) / 1e6;
            }
            peak = Math.max(peak, r.peakStashedMicroBatches());
            peakBytes = Math.max(peakBytes, r.peakStashedBytes());
            if (lastStage && mesh.tpRank() == 0) {
                double sum = 0;
                for (float l : r.losses()) {
                    sum += l;
                }
                System.out.println(String.format(Locale.ROOT, "%s %d %d %.9g", LOSS, step, mesh.dpRank(),
                        sum / microBatches));
            }
        }
        for (Object[] s : slices) {
            System.out.println(SLICE + " " + mesh.ppRank() + " " + mesh.dpRank() + " " + mesh.tpRank() + " " + s[0] + " "
                    + s[1] + " " + s[2]);
        }
        int timed = Math.max(1, steps - 1);
        System.out.println(String.format(Locale.ROOT, "%s %d %d %d %.3f %.3f %d %d", STAGE, mesh.ppRank(), mesh.dpRank(),
                mesh.tpRank(), busyMs / timed, wallMs / timed, peak, peakBytes));
        System.out.flush();
    }

    /** Per parameter: segment, index, shard kind, then the values. */
    private static void writeParams(Path file, List<List<Layer>> chunks, int[] firsts, ParallelLayout lay)
            throws IOException {
        Files.createDirectories(file.getParent());
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        try (DataOutputStream o = new DataOutputStream(new java.io.BufferedOutputStream(Files.newOutputStream(tmp)))) {
            for (int c = 0; c < chunks.size(); c++) {
                for (int i = 0; i < chunks.get(c).size(); i++) {
                    List<Parameter> ps = chunks.get(c).get(i).parameters();
                    for (int k = 0; k < ps.size(); k++) {
                        float[] values = ps.get(k).value().toFloatArray();
                        o.writeInt(firsts[c] + i);
                        o.writeInt(k);
                        o.writeInt(values.length);
                        for (float f : values) {
                            o.writeFloat(f);
                        }
                    }
                }
            }
            o.writeInt(-1);
        }
        Files.move(tmp, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    }
}
