package dev.torus.parallel.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.Device;
import dev.torus.comm.Backend;
import dev.torus.comm.Communicator;
import dev.torus.memory.Allocator;
import dev.torus.nn.BiasGelu;
import dev.torus.nn.Layer;
import dev.torus.nn.Linear;
import dev.torus.nn.Mlp;
import dev.torus.nn.Parameter;
import dev.torus.nn.SoftmaxCrossEntropy;
import dev.torus.parallel.tensor.ParallelMlpBlock;
import dev.torus.parallel.tensor.TensorParallel;
import dev.torus.recompute.CheckpointPolicy;
import dev.torus.tensor.Tensor;
import dev.torus.testing.CommHarness;
import dev.torus.testing.GpuTest;
import dev.torus.zookeeper.EmbeddedZooKeeper;
import dev.torus.zookeeper.ZooKeeperStore;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Pipeline stages and the tensor-parallel block on a CUDA device over NCCL. A one-GPU host can hold
 * only a world of one NCCL rank (NCCL refuses two ranks on one device), so this checks the device paths
 * (stash, recompute, receive buffers, the all-reduce of CUDA tensors) at p = 1 and tp = 1; sends between
 * stages over NCCL need two GPUs and are not covered here.
 */
class PipelineGpuTest extends GpuTest {
    private static final int IN = 16;
    private static final int ROWS = 8;
    private static EmbeddedZooKeeper zk;
    private static ZooKeeperStore store;

    @BeforeAll
    static void start() {
        zk = EmbeddedZooKeeper.startWithoutAuth();
        store = ZooKeeperStore.connect(zk.connectString(), "pipeline-gpu", Duration.ofSeconds(10));
    }

    @AfterAll
    static void stop() {
        store.close();
        zk.close();
    }

    private Communicator nccl(String run) {
        return Communicator.builder().rank(0).size(1).store(store).runId(CommHarness.uniqueRunId(run))
                .backend(Backend.NCCL).timeout(Duration.ofSeconds(30)).build();
    }

    private static float[] inputs(int mb) {
        SplittableRandom r = new SplittableRandom(40 + mb);
        float[] x = new float[ROWS * IN];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextGaussian();
        }
        return x;
    }

    /** Every parameter gradient after one step of m micro-batches, on {@code device}, with {@code policy}. */
    private List<float[]> step(Device device, CheckpointPolicy policy, PipelineSchedule schedule) {
        try (Communicator c = nccl("pp-gpu"); Allocator a = Allocator.root("pp-gpu");
             Mlp mlp = new Mlp(IN, 32, 3, 4, 0f, device, a, 3)) {
            PipelineStage st = new PipelineStage(c, mlp.layers(), 0, schedule, a, 7).device(device).checkpoint(policy)
                    .fixedShapes(true);
            int[] labels = {0, 1, 2, 3, 0, 1, 2, 3};
            List<Tensor> xs = new ArrayList<>();
            try (Tensor y = moved(Tensor.fromArray(a, labels, ROWS), device)) {
                st.step(3, mb -> {
                    Tensor x = moved(Tensor.fromArray(a, inputs(mb), ROWS, IN), device);
                    xs.add(x);
                    return x;
                }, (out, mb) -> {
                    try (SoftmaxCrossEntropy.Result r = SoftmaxCrossEntropy.lossAndGrad(out, y, a)) {
                        return new PipelineStage.Loss.Result(r.loss(), r.gradLogits().to(device));
                    }
                });
            } finally {
                xs.forEach(Tensor::close);
            }
            List<float[]> grads = new ArrayList<>();
            for (Parameter p : mlp.parameters()) {
                grads.add(p.grad().toFloatArray());
            }
            return grads;
        }
    }

    @Test
    void aCudaStageRunsEverySchedulePolicyAndMatchesTheCpu() {
        List<float[]> cpu = step(Device.cpu(), CheckpointPolicy.none(), PipelineSchedule.ONE_F_ONE_B);
        for (PipelineSchedule schedule : List.of(PipelineSchedule.GPIPE, PipelineSchedule.ONE_F_ONE_B,
                PipelineSchedule.ZB_H1)) {
            List<float[]> plain = step(Device.cuda(0), CheckpointPolicy.none(), schedule);
            List<float[]> recomputed = step(Device.cuda(0), CheckpointPolicy.everyK(2), schedule);
            for (int i = 0; i < plain.size(); i++) {
                assertArrayEquals(plain.get(i), recomputed.get(i), schedule + ": recompute changed gradient " + i);
                for (int j = 0; j < plain.get(i).length; j++) {
                    float want = cpu.get(i)[j];
                    assertEquals(want, plain.get(i)[j], 1e-3f * Math.max(1f, Math.abs(want)),
                            schedule + ": gradient " + i + "[" + j + "] against the CPU");
                }
            }
        }
    }

    @Test
    void theTensorParallelBlockAllReducesCudaTensorsThroughNccl() {
        try (Communicator c = nccl("tp-gpu"); Allocator a = Allocator.root("tp-gpu");
             TensorParallel tp = new TensorParallel(c, a);
             Linear first = new Linear(IN, 64, false, Device.cuda(0), a, 5);
             BiasGelu gelu = new BiasGelu(64, Device.cuda(0), a);
             Linear second = new Linear(64, IN, true, Device.cuda(0), a, 6);
             ParallelMlpBlock block = new ParallelMlpBlock(first, gelu, second, tp, Device.cuda(0), a, 9);
             Tensor x = moved(Tensor.fromArray(a, inputs(0), ROWS, IN), Device.cuda(0))) {
            List<Layer> plain = List.of(first, gelu, second);
            Tensor want = x;
            Tensor got = x;
            for (int i = 0; i < 3; i++) {
                Tensor w = plain.get(i).forward(want, PipelineStage.context(a, 1, 0, i));
                Tensor g = block.layers().get(i).forward(got, PipelineStage.context(a, 1, 0, i));
                if (want != x) {
                    want.close();
                    got.close();
                }
                want = w;
                got = g;
            }
            try (Tensor w = want; Tensor g = got) {
                assertTrue(g.device().isCuda());
                assertArrayEquals(w.toFloatArray(), g.toFloatArray(), "tp = 1 is the block itself");
            }
            assertEquals(1, tp.forwardAllReduces());
        }
    }
}
