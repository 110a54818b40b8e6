package dev.torus.parallel.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.Device;
import dev.torus.memory.Allocator;
import dev.torus.nn.Layer;
import dev.torus.nn.Mlp;
import dev.torus.nn.Parameter;
import dev.torus.nn.SoftmaxCrossEntropy;
import dev.torus.recompute.Segment;
import dev.torus.recompute.SegmentContext;
import dev.torus.tensor.Tensor;
import dev.torus.testing.CommHarness;
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
 * Pipeline stages as threads of one JVM, each with its own Gloo communicator: the parameter gradients
 * of every stage are bitwise equal to one process that runs the same micro-batches one after the other,
 * for GPipe, 1F1B, interleaved (v = 2 and 3) and ZB-H1, 2 and 3 stages, and m = 1, 2 and 5 micro-batches (m < p included); the stashed
 * activations peak at m (GPipe) and min(m, p - s) (1F1B).
 */
class PipelineStageTest {
    private static final int IN = 8;
    private static final int WIDTH = 16;
    private static final int BLOCKS = 3;
    private static final int CLASSES = 4;
    private static final int ROWS = 6;
    private static final long SEED = 17;
    private static EmbeddedZooKeeper zk;

    @BeforeAll
    static void start() {
        zk = EmbeddedZooKeeper.startWithoutAuth();
    }

    @AfterAll
    static void stop() {
        zk.close();
    }

    private static float[] inputs(int mb) {
        SplittableRandom r = new SplittableRandom(100 + mb);
        float[] x = new float[ROWS * IN];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextGaussian();
        }
        return x;
    }

    private static int[] labels(int mb) {
        int[] y = new int[ROWS];
        for (int i = 0; i < ROWS; i++) {
            y[i] = (mb * 7 + i * 3) % CLASSES;
        }
        return y;
    }

    private static Mlp model(Allocator a) {
        return new Mlp(IN, WIDTH, BLOCKS, CLASSES, 0.1f, Device.cpu(), a, SEED); // dropout: the random keys must match
    }

    /** One process: the micro-batches one after the other; every parameter's gradient, in model order. */
    private static List<float[]> reference(int m) {
        try (Allocator a = Allocator.root("reference"); Mlp mlp = model(a)) {
            List<Layer> layers = mlp.layers();
            for (int mb = 0; mb < m; mb++) {
                List<Tensor> ins = new ArrayList<>();
                Tensor cur = Tensor.fromArray(a, inputs(mb), ROWS, IN);
                for (int i = 0; i < layers.size(); i++) {
                    ins.add(cur);
                    cur = layers.get(i).forward(cur, PipelineStage.context(a, SEED, mb, i));
                }
                Tensor g;
                try (Tensor y = Tensor.fromArray(a, labels(mb), ROWS);
                     SoftmaxCrossEntropy.Result r = SoftmaxCrossEntropy.lossAndGrad(cur, y, a)) {
                    g = Tensor.fromArray(a, r.gradLogits().toFloatArray(), r.gradLogits().shape());
                }
                cur.close();
                for (int i = layers.size() - 1; i >= 0; i--) {
                    Tensor gin = layers.get(i).backward(ins.get(i), g, PipelineStage.context(a, SEED, mb, i));
                    g.close();
                    ins.get(i).close();
                    g = gin;
                }
                g.close();
            }
            List<float[]> grads = new ArrayList<>();
            for (Parameter p : mlp.parameters()) {
                grads.add(p.grad().toFloatArray());
            }
            return grads;
        }
    }

    /** A stage's outcome: the most micro-batches it stashed, and its parameters' gradients per virtual stage. */
    private record StageOutcome(int peak, long peakBytes, java.util.Map<Integer, List<float[]>> gradients) {}

    /** The pipeline: each stage's outcome, in stage order. */
    private static List<StageOutcome> pipeline(int stages, int m, PipelineSchedule schedule) throws Exception {
        return pipeline(stages, m, schedule, dev.torus.recompute.CheckpointPolicy.none());
    }

    private static List<StageOutcome> pipeline(int stages, int m, PipelineSchedule schedule,
                                               dev.torus.recompute.CheckpointPolicy policy) throws Exception {
        try (ZooKeeperStore store = ZooKeeperStore.connect(zk.connectString(), "store", Duration.ofSeconds(10))) {
            return CommHarness.run(store, stages, Duration.ofSeconds(30), comm -> {
                try (Allocator a = Allocator.root("stage-" + comm.rank()); Mlp mlp = model(a)) {
                    int v = schedule.chunks();
                    int virtual = stages * v;
                    List<List<Layer>> parts = StagePartition.byCount(mlp.layers(), virtual);
                    int[] firsts = StagePartition.firstIndices(mlp.layers().size(), virtual);
                    List<List<Layer>> mine = new ArrayList<>();
                    int[] myFirsts = new int[v];
                    for (int c = 0; c < v; c++) {
                        mine.add(parts.get(c * stages + comm.rank()));
                        myFirsts[c] = firsts[c * stages + comm.rank()];
                    }
                    PipelineStage stage = new PipelineStage(comm, mine, myFirsts, schedule, a, SEED).checkpoint(policy);
                    List<Tensor> xs = new ArrayList<>();
                    PipelineStage.StepResult r;
                    try {
                        r = stage.step(m, mb -> {
                            Tensor x = Tensor.fromArray(a, inputs(mb), ROWS, IN);
                            xs.add(x);
                            return x;
                        }, (out, mb) -> {
                            try (Tensor y = Tensor.fromArray(a, labels(mb), ROWS);
                                 SoftmaxCrossEntropy.Result l = SoftmaxCrossEntropy.lossAndGrad(out, y, a)) {
                                return new PipelineStage.Loss.Result(l.loss(), Tensor.fromArray(a,
                                        l.gradLogits().toFloatArray(), l.gradLogits().shape()));
                            }
                        });
                    } finally {
                        xs.forEach(Tensor::close);
                    }
                    java.util.Map<Integer, List<float[]>> grads = new java.util.TreeMap<>();
                    for (int c = 0; c < v; c++) {
                        List<float[]> g = new ArrayList<>();
                        for (Layer l : mine.get(c)) {
                            for (Parameter p : l.parameters()) {
                                g.add(p.grad().toFloatArray());
                            }
                        }
                        grads.put(c * stages + comm.rank(), g);
                    }
                    return new StageOutcome(r.peakStashedMicroBatches(), r.peakStashedBytes(), grads);
                }
            });
        }
    }

    @Test
    void everyScheduleGivesBitwiseTheGradientsOfOneProcess() throws Exception {
        List<PipelineSchedule> schedules = new ArrayList<>(PipelineSchedule.representatives());
        schedules.add(PipelineSchedule.interleaved(3));
        for (PipelineSchedule schedule : schedules) {
            for (int stages : new int[] {2, 3}) {
                for (int m : new int[] {1, 2, 5}) {
                    List<float[]> ref = reference(m);
                    List<StageOutcome> got = pipeline(stages, m, schedule);
                    java.util.Map<Integer, List<float[]>> byVirtual = new java.util.TreeMap<>();
                    for (int s = 0; s < stages; s++) {
                        int expected = schedule == PipelineSchedule.GPIPE ? m
                                : schedule == PipelineSchedule.ONE_F_ONE_B ? Math.min(m, stages - s)
                                : schedule.activationsHeld(s, stages, m);
                        assertEquals(expected, got.get(s).peak(), schedule + " p=" + stages + " m=" + m
                                + ": stashed micro-batches on stage " + s);
                        byVirtual.putAll(got.get(s).gradients());
                    }
                    List<float[]> all = new ArrayList<>();
                    byVirtual.values().forEach(all::addAll);
                    assertEquals(ref.size(), all.size());
                    for (int i = 0; i < ref.size(); i++) {
                        assertArrayEquals(ref.get(i), all.get(i), schedule + " p=" + stages + " m=" + m
                                + ": gradient of parameter " + i + " differs from one process");
                    }
                }
            }
        }
    }

    /**
     * Checkpointing inside each stage, under every schedule: the gradients stay bitwise those of one process
     * and each stage holds fewer bytes of activations between passes than without it.
     */
    @Test
    void checkpointingInsideAStageComposesWithEverySchedule() throws Exception {
        int stages = 2;
        int m = 4;
        List<float[]> ref = reference(m);
        for (PipelineSchedule schedule : PipelineSchedule.representatives()) {
            List<StageOutcome> plain = pipeline(stages, m, schedule);
            for (dev.torus.recompute.CheckpointPolicy policy : List.of(dev.torus.recompute.CheckpointPolicy.everyK(3),
                    dev.torus.recompute.CheckpointPolicy.sqrtN())) {
                List<StageOutcome> got = pipeline(stages, m, schedule, policy);
                java.util.Map<Integer, List<float[]>> byVirtual = new java.util.TreeMap<>();
                for (int s = 0; s < stages; s++) {
                    assertTrue(got.get(s).peakBytes() < plain.get(s).peakBytes(), schedule + " " + policy + " stage " + s
                            + ": " + got.get(s).peakBytes() + " bytes held, without checkpointing "
                            + plain.get(s).peakBytes());
                    assertEquals(plain.get(s).peak(), got.get(s).peak(), "the same micro-batches are in flight");
                    byVirtual.putAll(got.get(s).gradients());
                }
                List<float[]> all = new ArrayList<>();
                byVirtual.values().forEach(all::addAll);
                for (int i = 0; i < ref.size(); i++) {
                    assertArrayEquals(ref.get(i), all.get(i), schedule + " " + policy + ": gradient " + i);
                }
            }
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> dev.torus.recompute.CheckpointPolicy.budget(1 << 20).keptInputs(List.of(new dev.torus.nn.Dropout(0.1f))));
        assertTrue(e.getMessage().contains("budget"), e.getMessage());
    }

    /**
     * Every schedule, p ≤ 5, v ≤ 4, m ≤ 13, against a model of the transport in which a send completes only
     * when its receive is posted and sends to one peer leave in order (Gloo's rendezvous and one send lane
     * per peer): no rank waits forever.
     */
    @Test
    void noScheduleDeadlocksForAnyStageOrMicroBatchCount() {
        List<PipelineSchedule> schedules = new ArrayList<>(List.of(PipelineSchedule.GPIPE, PipelineSchedule.ONE_F_ONE_B,
                PipelineSchedule.ZB_H1));
        for (int v = 2; v <= 4; v++) {
            schedules.add(PipelineSchedule.interleaved(v));
        }
        List<String> stuck = new ArrayList<>();
        for (PipelineSchedule sch : schedules) {
            for (int p = sch.isInterleaved() ? 2 : 1; p <= 5; p++) {
                for (int m = 1; m <= 13; m++) {
                    String d = ScheduleSimulator.deadlock(sch, p, m);
                    if (d != null) {
                        stuck.add(d);
                    }
                }
            }
        }
        assertTrue(stuck.isEmpty(), stuck.size() + " deadlocks: " + String.join("\n", stuck.subList(0,
                Math.min(10, stuck.size()))));
    }

    @Test
    void schedulesAreWellFormedForEveryMicroBatchCount() {
        List<PipelineSchedule> schedules = new ArrayList<>(PipelineSchedule.representatives());
        schedules.add(PipelineSchedule.interleaved(3));
        for (PipelineSchedule sch : schedules) {
            int v = sch.chunks();
            for (int p = sch.isInterleaved() ? 2 : 1; p <= 5; p++) {
                for (int m = 1; m <= 9; m++) {
                    for (int s = 0; s < p; s++) {
                        List<PipelineSchedule.Action> acts = sch.actions(s, p, m);
                        assertEquals((sch == PipelineSchedule.ZB_H1 ? 3 : 2) * m * v, acts.size());
                        int[] nextB = new int[v];
                        int[] nextW = new int[v];
                        boolean[][] done = new boolean[v][m];
                        boolean[][] back = new boolean[v][m];
                        for (PipelineSchedule.Action a : acts) {
                            int c = a.chunk();
                            switch (a.kind()) {
                                case F -> {
                                    assertTrue(!done[c][a.microBatch()], sch + ": " + a + " twice");
                                    done[c][a.microBatch()] = true;
                                }
                                case B -> {
                                    assertTrue(done[c][a.microBatch()], sch + ": " + a + " before its F");
                                    assertEquals(nextB[c]++, a.microBatch(), sch + ": backwards in micro-batch order");
                                    back[c][a.microBatch()] = true;
                                }
                                case W -> {
                                    assertTrue(back[c][a.microBatch()], sch + ": " + a + " before its B");
                                    assertEquals(nextW[c]++, a.microBatch(), sch + ": weight passes in micro-batch order");
                                }
                            }
                        }
                    }
                }
            }
        }
        assertEquals("[F0, F1, F2, F3, B0, W0, F4, B1, W1, F5, B2, W2, F6, B3, W3, F7, B4, W4, B5, W5, B6, W6, B7, W7]",
                PipelineSchedule.ZB_H1.actions(0, 4, 8).toString());
        for (int s = 0; s < 4; s++) {
            assertEquals(PipelineSchedule.ONE_F_ONE_B.activationsHeld(s, 4, 8),
                    PipelineSchedule.ZB_H1.activationsHeld(s, 4, 8), "ZB-H1 holds what 1F1B holds, stage " + s);
        }
        assertEquals("[F0, B0, W0, F1, B1, W1]", PipelineSchedule.ZB_H1.actions(3, 4, 2).toString());
        assertEquals("[F0, F1, B0, F2, B1, B2]", PipelineSchedule.ONE_F_ONE_B.actions(2, 4, 3).toString());
        // interleaved, v = 2, p = 2, m = 3: groups {0, 1} then {2}; the last stage warms up with (v-1)p = 2
        // forwards; B1 comes before F2c1 because rank 0 sends the gradient for B1 before the activation for F2c1
        // on their one send lane
        assertEquals("[F0, F1, F0c1, B0c1, F1c1, B1c1, F2, B0, B1, F2c1, B2c1, B2]",
                PipelineSchedule.interleaved(2).actions(1, 2, 3).toString());
        assertEquals(3.0 / 11, PipelineSchedule.GPIPE.theoreticalBubble(4, 8), 1e-12);
        assertEquals(3.0 / 19, PipelineSchedule.interleaved(2).theoreticalBubble(4, 8), 1e-12);
        assertEquals(6.0 / 30, PipelineSchedule.ZB_H1.theoreticalBubble(4, 8), 1e-12); // W after its B, as built
        assertEquals(3.0 / 27, PipelineSchedule.ZB_H1.paperBubble(4, 8), 1e-12);
    }

    @Test
    void badInputsNameTheArgument() throws Exception {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> StagePartition.byCount(List.of(1, 2, 3), 4));
        assertTrue(e.getMessage().contains("stages must be in [1, 3]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> PipelineSchedule.GPIPE.actions(0, 2, 0));
        assertTrue(e.getMessage().contains("microBatches"), e.getMessage());
        assertEquals(PipelineSchedule.ZB_H1, PipelineSchedule.parse("--schedule", "zb-h1"));
        e = assertThrows(IllegalArgumentException.class, () -> PipelineSchedule.parse("--schedule", "zb-h2"));
        assertTrue(e.getMessage().contains("--schedule"), e.getMessage());
        assertEquals(PipelineSchedule.interleaved(3), PipelineSchedule.parse("--schedule", "interleaved:3"));
        assertEquals(PipelineSchedule.ONE_F_ONE_B, PipelineSchedule.parse("--schedule", "interleaved:1"));
        e = assertThrows(IllegalArgumentException.class, () -> PipelineSchedule.parse("--schedule", "interleaved:x"));
        assertTrue(e.getMessage().contains("--schedule") && e.getMessage().contains("integer"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> PipelineSchedule.parse("--schedule", "interleaved:0"));
        assertTrue(e.getMessage().contains("--schedule") && e.getMessage().contains("[1, 64]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> PipelineSchedule.interleaved(2).actions(0, 1, 4));
        assertTrue(e.getMessage().contains("at least 2 stages"), e.getMessage());
        assertEquals(List.of(List.of(1, 2), List.of(3, 4), List.of(5)), StagePartition.byCount(List.of(1, 2, 3, 4, 5), 3));
        assertArrayEquals(new int[] {0, 2, 4}, StagePartition.firstIndices(5, 3));
    }

    private static final Segment COPY = new Segment() {
        @Override
        public Tensor forward(Tensor input, SegmentContext ctx) {
            return Tensor.fromArray(ctx.allocator(), input.toFloatArray(), input.shape());
        }

        @Override
        public Tensor backward(Tensor input, Tensor gradOutput, SegmentContext ctx) {
            return Tensor.fromArray(ctx.allocator(), gradOutput.toFloatArray(), gradOutput.shape());
        }
    };

    /**
     * Fixed shapes: steps after the first send no shape header and give the same losses; an activation of
     * another shape later is refused by its sender, naming both shapes, and the other stage fails too.
     */
    @Test
    void fixedShapesSkipTheHeaderAfterTheFirstStepAndRefuseAChange() throws Exception {
        try (ZooKeeperStore store = ZooKeeperStore.connect(zk.connectString(), "store", Duration.ofSeconds(10))) {
            List<String> got = CommHarness.run(store, 2, Duration.ofSeconds(10), comm -> {
                try (Allocator a = Allocator.root("fixed-" + comm.rank())) {
                    PipelineStage st = new PipelineStage(comm, List.of(COPY), comm.rank(), PipelineSchedule.ONE_F_ONE_B,
                            a, SEED).fixedShapes(true);
                    StringBuilder sb = new StringBuilder();
                    PipelineStage.Loss loss = (out, mb) -> new PipelineStage.Loss.Result(out.toFloatArray()[0] + mb,
                            Tensor.fromArray(a, out.toFloatArray(), out.shape()));
                    for (int rows : new int[] {2, 2, 3}) {
                        float[] v = new float[rows * 2];
                        java.util.Arrays.fill(v, rows);
                        try (Tensor x = Tensor.fromArray(a, v, rows, 2)) {
                            float[] l = st.step(3, mb -> x, loss).losses();
                            sb.append(java.util.Arrays.toString(l)).append(';');
                        } catch (RuntimeException e) {
                            sb.append("error: ").append(e.getMessage());
                        }
                    }
                    return sb.toString();
                }
            });
            assertTrue(got.get(1).startsWith("[2.0, 3.0, 4.0];[2.0, 3.0, 4.0];error"), got.get(1));
            assertTrue(got.get(0).startsWith("[];[];error: pipeline stage 0 produced an activation of shape [3, 2]")
                    && got.get(0).contains("the first step's [2, 2]"), got.get(0));
        }
    }

    /** The stage after gets an activation its first segment cannot take: it names both stages and the shape. */
    @Test
    void anActivationTheNextStageCannotTakeNamesBothStages() throws Exception {
        try (ZooKeeperStore store = ZooKeeperStore.connect(zk.connectString(), "store", Duration.ofSeconds(10))) {
            List<String> errors = CommHarness.run(store, 2, Duration.ofSeconds(10), comm -> {
                try (Allocator a = Allocator.root("act-" + comm.rank());
                     dev.torus.nn.Linear five = new dev.torus.nn.Linear(5, 3, true, Device.cpu(), a, 1)) {
                    Segment mine = comm.rank() == 0 ? COPY : five;
                    PipelineStage st = new PipelineStage(comm, List.of(mine), comm.rank(), PipelineSchedule.GPIPE, a,
                            SEED);
                    try (Tensor x = Tensor.fromArray(a, new float[] {1, 2, 3, 4}, 2, 2)) {
                        st.step(2, mb -> x, (out, mb) -> new PipelineStage.Loss.Result(0f,
                                Tensor.fromArray(a, out.toFloatArray(), out.shape())));
                    }
                    return "no error";
                } catch (RuntimeException e) {
                    return e.getMessage();
                }
            });
            assertTrue(errors.get(1).contains("pipeline stage 1 cannot take the activation of shape [2, 2] that stage 0 "
                    + "sent for micro-batch 0"), errors.get(1));
            assertTrue(!errors.get(0).equals("no error"), "stage 0 must fail too");
        }
    }

    /** A stage whose backward answers with the wrong shape: the stage below names both stages and shapes. */
    @Test
    void aGradientOfTheWrongShapeIsRefusedNamingBothStages() throws Exception {
        Segment wrong = new Segment() {
            @Override
            public Tensor forward(Tensor input, SegmentContext ctx) {
                return Tensor.fromArray(ctx.allocator(), input.toFloatArray(), input.shape());
            }

            @Override
            public Tensor backward(Tensor input, Tensor gradOutput, SegmentContext ctx) {
                return Tensor.zeros(ctx.allocator(), dev.torus.DType.FLOAT32, Device.cpu(), 3, 3);
            }
        };
        try (ZooKeeperStore store = ZooKeeperStore.connect(zk.connectString(), "store", Duration.ofSeconds(10))) {
            long t0 = System.nanoTime();
            List<String> errors = CommHarness.run(store, 2, Duration.ofSeconds(10), comm -> {
                try (Allocator a = Allocator.root("bad-" + comm.rank())) {
                    PipelineStage st = new PipelineStage(comm, List.of(wrong), comm.rank(), PipelineSchedule.ONE_F_ONE_B,
                            a, SEED);
                    try (Tensor x = Tensor.fromArray(a, new float[] {1, 2, 3, 4}, 2, 2)) {
                        st.step(1, mb -> x, (out, mb) -> new PipelineStage.Loss.Result(0f,
                                Tensor.fromArray(a, out.toFloatArray(), out.shape())));
                    }
                    return "no error";
                } catch (RuntimeException e) {
                    return e.getMessage();
                }
            });
            double seconds = (System.nanoTime() - t0) / 1e9;
            // the stage that computed it names both stages and shapes; its neighbour fails through the abort
            assertTrue(errors.get(1).contains("stage 1 computed an input gradient of shape [3, 3]")
                    && errors.get(1).contains("stage 0 sent it an activation of shape [2, 2]"), errors.get(1));
            assertTrue(!errors.get(0).equals("no error"), "stage 0 must fail too");
            assertTrue(seconds < 10, "both stages end before the 10 s op timeout, took " + seconds + " s");
        }
    }
}
