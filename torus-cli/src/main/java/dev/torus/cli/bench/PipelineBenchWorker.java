package dev.torus.cli.bench;

import dev.torus.comm.Communicator;
import dev.torus.memory.Allocator;
import dev.torus.parallel.pipeline.PipelineSchedule;
import dev.torus.parallel.pipeline.PipelineStage;
import dev.torus.recompute.SegmentContext;
import dev.torus.tensor.Tensor;
import java.util.List;
import java.util.Locale;

/**
 * One stage of {@code torus-bench pipeline}, as its own JVM: a segment whose forward and backward
 * only park for calibrated times (emulated compute), run through the chosen schedule for a few
 * steps. It prints {@code @pipe STAGE BUSY_MS STEP_MS PEAK}: the time it spent in F and B, the
 * step's wall time and the most micro-batches it held, averaged over the timed steps.
 * Arguments: schedule, micro-batches, forward ms, input-gradient ms, weight-gradient ms, timed steps, and
 * {@code emulated} or {@code WIDTH:BLOCKS:ROWS} (real compute: the MLP's layers split over the stages; busy
 * time is then the stage's F, B and W passes as its trace measures them).
 */
public final class PipelineBenchWorker {
    static final String RESULT = "@pipe";
    static final String SLICE = "@slice";
    private static final int CLASSES = 8;

    private PipelineBenchWorker() {}

    /**
     * Parks for a fixed time and passes its input through; counts the time it spent. Its backward splits
     * into an input-gradient part (B) and a weight-gradient part (W), as a linear layer's does.
     */
    static final class EmulatedSegment implements dev.torus.nn.Layer {
        private final long forwardNanos;
        private final long backwardNanos;
        private final long weightNanos;
        long busyNanos;

        EmulatedSegment(double forwardMs, double backwardMs, double weightMs) {
            this.forwardNanos = (long) (forwardMs * 1e6);
            this.backwardNanos = (long) (backwardMs * 1e6);
            this.weightNanos = (long) (weightMs * 1e6);
        }

        @Override
        public boolean splitsBackward() {
            return true;
        }

        @Override
        public Tensor backwardInput(Tensor input, Tensor gradOutput, SegmentContext ctx) {
            park(backwardNanos);
            return Tensor.fromArray(ctx.allocator(), gradOutput.toFloatArray(), gradOutput.shape());
        }

        @Override
        public void backwardWeights(Tensor input, Tensor gradOutput, SegmentContext ctx) {
            park(weightNanos);
        }

        @Override
        public Tensor forward(Tensor input, SegmentContext ctx) {
            park(forwardNanos);
            return Tensor.fromArray(ctx.allocator(), input.toFloatArray(), input.shape());
        }

        @Override
        public Tensor backward(Tensor input, Tensor gradOutput, SegmentContext ctx) {
            park(backwardNanos + weightNanos);
            return Tensor.fromArray(ctx.allocator(), gradOutput.toFloatArray(), gradOutput.shape());
        }

        private void park(long nanos) {
            long t0 = System.nanoTime();
            long end = t0 + nanos;
            for (long left = nanos; left > 0; left = end - System.nanoTime()) {
                java.util.concurrent.locks.LockSupport.parkNanos(left);
            }
            busyNanos += System.nanoTime() - t0;
        }
    }

    public static void main(String[] args) throws Exception {
        PipelineSchedule schedule = PipelineSchedule.parse("schedule", args[0]);
        int m = Integer.parseInt(args[1]);
        double f = Double.parseDouble(args[2]);
        double b = Double.parseDouble(args[3]);
        double w = Double.parseDouble(args[4]);
        int steps = Integer.parseInt(args[5]);
        String mode = args.length > 6 ? args[6] : "emulated";
        try (Communicator comm = Communicator.fromEnv(); Allocator a = Allocator.root("pipeline-bench")) {
            // an interleaved rank holds v chunks, each 1/v of the stage's work
            int v = schedule.chunks();
            List<EmulatedSegment> segs = new java.util.ArrayList<>();
            List<List<? extends dev.torus.recompute.Segment>> chunks = new java.util.ArrayList<>();
            int[] firsts = new int[v];
            dev.torus.nn.Mlp mlp = null;
            int rows = 1;
            int width = 8;
            if (mode.equals("emulated")) {
                for (int c = 0; c < v; c++) {
                    EmulatedSegment seg = new EmulatedSegment(f / v, b / v, w / v);
                    segs.add(seg);
                    chunks.add(List.of(seg));
                    firsts[c] = c * comm.size() + comm.rank();
                }
            } else { // real compute: the MLP's layers split by count over the p·v virtual stages
                String[] dims = mode.split(":");
                width = Integer.parseInt(dims[0]);
                rows = Integer.parseInt(dims[2]);
                mlp = new dev.torus.nn.Mlp(width, width, Integer.parseInt(dims[1]), CLASSES, 0f,
                        dev.torus.Device.cpu(), a, 11);
                int virtual = comm.size() * v;
                List<List<dev.torus.nn.Layer>> parts;
                try {
                    parts = dev.torus.parallel.pipeline.StagePartition.byCount(mlp.layers(), virtual);
                } catch (RuntimeException e) {
                    mlp.close(); // the allocator must not close with the model's buffers open
                    throw e;
                }
                int[] all = dev.torus.parallel.pipeline.StagePartition.firstIndices(mlp.layers().size(), virtual);
                for (int c = 0; c < v; c++) {
                    chunks.add(parts.get(c * comm.size() + comm.rank()));
                    firsts[c] = all[c * comm.size() + comm.rank()];
                }
            }
            PipelineStage stage = new PipelineStage(comm, chunks, firsts, schedule, a, 1).fixedShapes(true);
            long[] computeNanos = {0};
            // raw records: building strings inside the timed step would bootstrap string concatenation there
            List<Object[]> slices = new java.util.ArrayList<>();
            boolean[] record = {false};
            stage.trace((name, t0, t1) -> {
                if (!name.startsWith("recv") && !name.startsWith("send")) {
                    computeNanos[0] += t1 - t0;
                }
                if (record[0]) {
                    slices.add(new Object[] {name, t0, t1});
                }
            });
            float[] data = new float[rows * width];
            java.util.SplittableRandom rnd = new java.util.SplittableRandom(5);
            for (int i = 0; i < data.length; i++) {
                data[i] = (float) rnd.nextGaussian();
            }
            int[] labels = new int[rows];
            for (int i = 0; i < rows; i++) {
                labels[i] = i % CLASSES;
            }
            boolean real = mlp != null;
            try (Tensor x = Tensor.fromArray(a, data, rows, width); Tensor y = Tensor.fromArray(a, labels, rows);
                 AutoCloseable model = mlp == null ? () -> { } : mlp) {
                double busy = 0;
                double wall = 0;
                int peak = 0;
                PipelineStage.Loss loss = real ? (out, mb) -> {
                    try (dev.torus.nn.SoftmaxCrossEntropy.Result l = dev.torus.nn.SoftmaxCrossEntropy.lossAndGrad(out, y,
                            a)) {
                        return new PipelineStage.Loss.Result(l.loss(), Tensor.fromArray(a, l.gradLogits().toFloatArray(),
                                l.gradLogits().shape()));
                    }
                } : (out, mb) -> new PipelineStage.Loss.Result(0f, Tensor.fromArray(a, out.toFloatArray(), out.shape()));
                for (int s = -1; s < steps; s++) { // one untimed step first
                    segs.forEach(seg -> seg.busyNanos = 0);
                    computeNanos[0] = 0;
                    record[0] = s == steps - 1; // the timeline of the last step
                    comm.barrier().await();
                    long t0 = System.nanoTime();
                    PipelineStage.StepResult r = stage.step(m, mb -> x, loss);
                    long t1 = System.nanoTime();
                    if (s >= 0) {
                        busy += real ? computeNanos[0] / 1e6 : segs.stream().mapToLong(seg -> seg.busyNanos).sum() / 1e6;
                        wall += (t1 - t0) / 1e6;
                        peak = Math.max(peak, r.peakStashedMicroBatches());
                    }
                }
                for (Object[] sl : slices) {
                    System.out.println(SLICE + " " + comm.rank() + " " + sl[0] + " " + sl[1] + " " + sl[2]);
                }
                System.out.println(String.format(Locale.ROOT, "%s %d %.3f %.3f %d", RESULT, comm.rank(), busy / steps,
                        wall / steps, peak));
                System.out.flush();
            }
        }
    }
}
