package dev.torus.testing;

import dev.torus.Device;
import dev.torus.comm.Communicator;
import dev.torus.memory.Allocator;
import dev.torus.nn.Layer;
import dev.torus.nn.Mlp;
import dev.torus.nn.SoftmaxCrossEntropy;
import dev.torus.parallel.pipeline.PipelineSchedule;
import dev.torus.parallel.pipeline.PipelineStage;
import dev.torus.parallel.pipeline.StagePartition;
import dev.torus.tensor.Tensor;
import java.util.List;

/**
 * One stage of a pipeline, as a process of its own (rank and world from the environment): trains a
 * small MLP with 1F1B for PIPELINE_STEPS steps of 4 micro-batches, sleeping PIPELINE_SLEEP_MS after
 * each, and prints {@code STEP <n>}; a failure prints {@code FAILED <exception>} and exits 1.
 */
public final class PipelineWorker {
    public static void main(String[] args) throws Exception {
        int steps = Integer.parseInt(System.getenv("PIPELINE_STEPS"));
        long sleep = Long.parseLong(System.getenv().getOrDefault("PIPELINE_SLEEP_MS", "50"));
        try (Communicator comm = Communicator.fromEnv();
             Allocator a = Allocator.root("pipeline-" + comm.rank());
             Mlp mlp = new Mlp(8, 16, 3, 4, 0f, Device.cpu(), a, 5)) {
            List<Layer> mine = StagePartition.byCount(mlp.layers(), comm.size()).get(comm.rank());
            int first = StagePartition.firstIndices(mlp.layers().size(), comm.size())[comm.rank()];
            PipelineStage stage = new PipelineStage(comm, mine, first, PipelineSchedule.ONE_F_ONE_B, a, 5);
            try (Tensor x = Tensor.fromArray(a, new float[4 * 8], 4, 8); Tensor y = Tensor.fromArray(a, new int[4], 4)) {
                for (int s = 1; s <= steps; s++) {
                    stage.step(4, mb -> x, (out, mb) -> {
                        try (SoftmaxCrossEntropy.Result l = SoftmaxCrossEntropy.lossAndGrad(out, y, a)) {
                            return new PipelineStage.Loss.Result(l.loss(), Tensor.fromArray(a,
                                    l.gradLogits().toFloatArray(), l.gradLogits().shape()));
                        }
                    });
                    System.out.println("STEP " + s);
                    Thread.sleep(sleep);
                }
            } catch (RuntimeException e) {
                System.out.println("FAILED " + e);
                System.out.flush();
                System.exit(1);
            }
        }
        System.out.println("DONE");
    }
}
