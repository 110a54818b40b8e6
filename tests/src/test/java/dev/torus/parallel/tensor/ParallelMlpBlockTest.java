package dev.torus.parallel.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.Device;
import dev.torus.memory.Allocator;
import dev.torus.nn.BiasGelu;
import dev.torus.nn.Layer;
import dev.torus.nn.Linear;
import dev.torus.nn.Parameter;
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
 * Megatron's tensor-parallel MLP block on 2 and 4 ranks (threads, Gloo): exactly one all-reduce in
 * forward and one in backward; output, input gradient and every weight gradient bitwise equal to one
 * process that splits the same GEMMs the same way and adds the parts in rank order, and within 1e-6
 * (relative to the largest value) of the plain one-process block.
 */
class ParallelMlpBlockTest {
    private static final int IN = 12;
    private static final int HIDDEN = 16;
    private static final int OUT = 8;
    private static final int ROWS = 5;
    private static EmbeddedZooKeeper zk;

    @BeforeAll
    static void start() {
        zk = EmbeddedZooKeeper.startWithoutAuth();
    }

    @AfterAll
    static void stop() {
        zk.close();
    }

    /** The one-process block: Linear(IN→HIDDEN, no bias), bias+GELU, Linear(HIDDEN→OUT). */
    private record Full(Linear first, BiasGelu gelu, Linear second) implements AutoCloseable {
        static Full make(Allocator a) {
            Linear first = new Linear(IN, HIDDEN, false, Device.cpu(), a, 5);
            BiasGelu gelu = new BiasGelu(HIDDEN, Device.cpu(), a);
            float[] b = new float[HIDDEN];
            SplittableRandom r = new SplittableRandom(9);
            for (int i = 0; i < HIDDEN; i++) {
                b[i] = (float) (r.nextDouble() - 0.5);
            }
            try (Tensor bt = Tensor.fromArray(a, b, HIDDEN)) {
                gelu.bias().value().copyFrom(bt);
            }
            return new Full(first, gelu, new Linear(HIDDEN, OUT, true, Device.cpu(), a, 7));
        }

        List<Layer> layers() {
            return List.of(first, gelu, second);
        }

        @Override
        public void close() {
            first.close();
            gelu.close();
            second.close();
        }
    }

    private static float[] input() {
        SplittableRandom r = new SplittableRandom(3);
        float[] x = new float[ROWS * IN];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextGaussian();
        }
        return x;
    }

    private static float[] gradOut() {
        SplittableRandom r = new SplittableRandom(4);
        float[] g = new float[ROWS * OUT];
        for (int i = 0; i < g.length; i++) {
            g[i] = (float) r.nextGaussian();
        }
        return g;
    }

    /** {output, input gradient, then each parameter's gradient in layer order}, running {@code layers} forward and back. */
    private static List<float[]> run(List<Layer> layers, Allocator a) {
        SegmentContext ctx = SegmentContext.of(a, 1, 0);
        List<Tensor> ins = new ArrayList<>();
        Tensor cur = Tensor.fromArray(a, input(), ROWS, IN);
        for (Layer l : layers) {
            ins.add(cur);
            cur = l.forward(cur, ctx);
        }
        List<float[]> out = new ArrayList<>();
        out.add(cur.toFloatArray());
        cur.close();
        Tensor g = Tensor.fromArray(a, gradOut(), ROWS, OUT);
        for (int i = layers.size() - 1; i >= 0; i--) {
            Tensor gin = layers.get(i).backward(ins.get(i), g, ctx);
            g.close();
            ins.get(i).close();
            g = gin;
        }
        out.add(g.toFloatArray());
        g.close();
        for (Layer l : layers) {
            for (Parameter p : l.parameters()) {
                out.add(p.grad().toFloatArray());
            }
        }
        return out;
    }

    private static List<List<float[]>> tensorParallel(int tp, long[] counts) throws Exception {
        try (ZooKeeperStore store = ZooKeeperStore.connect(zk.connectString(), "store", Duration.ofSeconds(10))) {
            return CommHarness.run(store, tp, Duration.ofSeconds(30), comm -> {
                try (Allocator a = Allocator.root("tp-" + comm.rank()); Full full = Full.make(a);
                     TensorParallel group = new TensorParallel(comm, a);
                     ParallelMlpBlock block = new ParallelMlpBlock(full.first(), full.gelu(), full.second(), group,
                             Device.cpu(), a, 11)) {
                    List<float[]> r = run(block.layers(), a);
                    if (comm.rank() == 0) {
                        counts[0] = group.forwardAllReduces();
                        counts[1] = group.backwardAllReduces();
                    }
                    return r;
                }
            });
        }
    }

    /**
     * The same split, in one process: each rank's shard computed in turn, the partial outputs (forward) and
     * partial input gradients (backward) added in rank order, as the rank-ordered all-reduce adds them.
     */
    private static List<List<float[]>> splitInOneProcess(int tp) {
        List<List<float[]>> perRank = new ArrayList<>();
        try (Allocator a = Allocator.root("split"); Full full = Full.make(a)) {
            SegmentContext ctx = SegmentContext.of(a, 1, 0);
            List<List<Layer>> shards = new ArrayList<>();
            float[] y = null;
            List<Tensor[]> kept = new ArrayList<>();
            for (int r = 0; r < tp; r++) {
                List<Layer> ls = OneProcessShards.of(full.first(), full.gelu(), full.second(), tp, r, a);
                shards.add(ls);
                Tensor x = Tensor.fromArray(a, input(), ROWS, IN);
                Tensor h = ls.get(0).forward(x, ctx);
                Tensor z = ls.get(1).forward(h, ctx);
                Tensor part = ls.get(2).forward(z, ctx);
                float[] p = part.toFloatArray();
                part.close();
                y = y == null ? p : add(y, p);
                kept.add(new Tensor[] {x, h, z});
            }
            float[] dx = null;
            for (int r = 0; r < tp; r++) {
                List<Layer> ls = shards.get(r);
                Tensor[] k = kept.get(r);
                try (Tensor dy = Tensor.fromArray(a, gradOut(), ROWS, OUT);
                     Tensor dz = ls.get(2).backward(k[2], dy, ctx);
                     Tensor dh = ls.get(1).backward(k[1], dz, ctx);
                     Tensor dxr = ls.get(0).backward(k[0], dh, ctx)) {
                    float[] d = dxr.toFloatArray();
                    dx = dx == null ? d : add(dx, d);
                }
                for (Tensor t : k) {
                    t.close();
                }
            }
            for (int r = 0; r < tp; r++) {
                List<float[]> out = new ArrayList<>();
                out.add(y);
                out.add(dx);
                for (Layer l : shards.get(r)) {
                    for (Parameter p : l.parameters()) {
                        out.add(p.grad().toFloatArray());
                    }
                }
                shards.get(r).forEach(Layer::close);
                perRank.add(out);
            }
        }
        return perRank;
    }

    private static float[] add(float[] a, float[] b) {
        float[] c = a.clone();
        for (int i = 0; i < c.length; i++) {
            c[i] = c[i] + b[i];
        }
        return c;
    }

    @Test
    void oneAllReduceEachWayAndBitwiseTheSameSplitInOneProcess() throws Exception {
        List<float[]> plain;
        try (Allocator a = Allocator.root("plain"); Full full = Full.make(a)) {
            plain = run(full.layers(), a);
        }
        for (int tp : new int[] {2, 4}) {
            long[] counts = new long[2];
            List<List<float[]>> got = tensorParallel(tp, counts);
            assertEquals(1, counts[0], "tp=" + tp + ": all-reduces in forward per block");
            assertEquals(1, counts[1], "tp=" + tp + ": all-reduces in backward per block");
            List<List<float[]>> ref = splitInOneProcess(tp);
            for (int r = 0; r < tp; r++) {
                assertEquals(ref.get(r).size(), got.get(r).size());
                for (int i = 0; i < ref.get(r).size(); i++) {
                    assertArrayEquals(ref.get(r).get(i), got.get(r).get(i), "tp=" + tp + " rank " + r + " item " + i
                            + " (0 output, 1 input gradient, then parameter gradients)");
                }
            }
            // against the unsplit block: the output and the input gradient, to rounding
            for (int i = 0; i < 2; i++) {
                float[] p = plain.get(i);
                float[] t = got.get(0).get(i);
                double max = 0;
                double diff = 0;
                for (int k = 0; k < p.length; k++) {
                    max = Math.max(max, Math.abs(p[k]));
                    diff = Math.max(diff, Math.abs(p[k] - t[k]));
                }
                assertTrue(diff <= 1e-6 * max, "tp=" + tp + (i == 0 ? " output" : " input gradient") + ": relative "
                        + diff / max);
            }
        }
    }

    @Test
    void aDegreeThatDoesNotDivideIsRefused() throws Exception {
        try (ZooKeeperStore store = ZooKeeperStore.connect(zk.connectString(), "store", Duration.ofSeconds(10))) {
            Exception e = assertThrows(Exception.class, () -> CommHarness.run(store, 3, Duration.ofSeconds(20), comm -> {
                try (Allocator a = Allocator.root("bad-" + comm.rank()); Full full = Full.make(a);
                     TensorParallel group = new TensorParallel(comm, a);
                     ParallelMlpBlock block = new ParallelMlpBlock(full.first(), full.gelu(), full.second(), group,
                             Device.cpu(), a, 11)) {
                    return null;
                }
            }));
            assertTrue(e.getMessage().contains("the output features (16) must be divisible by the tensor-parallel "
                    + "degree 3"), e.getMessage());
        }
    }
}
