package dev.torus.parallel.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.Device;
import dev.torus.memory.Allocator;
import dev.torus.nn.BiasGelu;
import dev.torus.nn.Dropout;
import dev.torus.nn.Layer;
import dev.torus.nn.Linear;
import dev.torus.recompute.SegmentContext;
import dev.torus.tensor.Tensor;
import dev.torus.testing.CommHarness;
import dev.torus.zookeeper.EmbeddedZooKeeper;
import dev.torus.zookeeper.ZooKeeperStore;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Dropout in a tensor-parallel model (threads, Gloo, TP = 2 and 4): the shared stream gives every rank the
 * same mask after the row-parallel all-reduce; the per-rank stream gives each rank its own mask on its hidden
 * slice, the same again on a recompute, not the one-process mask's slices; the block with hidden dropout is
 * bitwise the one-process split with each rank's slice dropped with its own key.
 */
class TensorParallelDropoutTest {
    private static final int IN = 12;
    private static final int HIDDEN = 16;
    private static final int OUT = 8;
    private static final int ROWS = 5;
    private static final long SEED = 1;
    private static final long OFFSET = 3L << 40;
    private static EmbeddedZooKeeper zk;

    @BeforeAll
    static void start() {
        zk = EmbeddedZooKeeper.startWithoutAuth();
    }

    @AfterAll
    static void stop() {
        zk.close();
    }

    private interface Body<T> {
        T run(TensorParallel group, Allocator a);
    }

    private static <T> List<T> onRanks(int tp, Body<T> body) throws Exception {
        try (ZooKeeperStore store = ZooKeeperStore.connect(zk.connectString(), "store", Duration.ofSeconds(10))) {
            return CommHarness.run(store, tp, Duration.ofSeconds(30), comm -> {
                try (Allocator a = Allocator.root("tp-dropout-" + comm.rank());
                     TensorParallel group = new TensorParallel(comm, a)) {
                    return body.run(group, a);
                }
            });
        }
    }

    private static float[] random(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] x = new float[n];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextGaussian();
        }
        return x;
    }

    private static float[] ones(int n) {
        float[] x = new float[n];
        Arrays.fill(x, 1f);
        return x;
    }

    /** The kept elements (non-zero outputs on an input of ones). */
    private static boolean[] mask(float[] y) {
        boolean[] m = new boolean[y.length];
        for (int i = 0; i < y.length; i++) {
            m[i] = y[i] != 0f;
        }
        return m;
    }

    private static void assertSomeKeptSomeDropped(boolean[] m, String what) {
        int kept = 0;
        for (boolean b : m) {
            kept += b ? 1 : 0;
        }
        assertTrue(kept > 0 && kept < m.length, what + ": " + kept + " of " + m.length + " kept");
    }

    private static Linear first(Allocator a) {
        return new Linear(IN, HIDDEN, false, Device.cpu(), a, 5);
    }

    private static BiasGelu gelu(Allocator a) {
        BiasGelu g = new BiasGelu(HIDDEN, Device.cpu(), a);
        try (Tensor b = Tensor.fromArray(a, random(HIDDEN, 9), HIDDEN)) {
            g.bias().value().copyFrom(b);
        }
        return g;
    }

    private static Linear second(Allocator a) {
        return new Linear(HIDDEN, OUT, true, Device.cpu(), a, 7);
    }

    /**
     * The block, then shared dropout on its replicated output, forward and back: {output, input gradient} on
     * every rank.
     */
    private static List<float[]> blockThenSharedDropout(TensorParallel group, Allocator a) {
        try (Linear f = first(a); BiasGelu g = gelu(a); Linear s = second(a);
             ParallelMlpBlock block = new ParallelMlpBlock(f, g, s, group, Device.cpu(), a, 11)) {
            List<Layer> layers = new ArrayList<>(block.layers());
            layers.add(TensorParallelDropout.shared(0.5f));
            List<Tensor> ins = new ArrayList<>();
            Tensor cur = Tensor.fromArray(a, random(ROWS * IN, 3), ROWS, IN);
            for (int i = 0; i < layers.size(); i++) {
                ins.add(cur);
                cur = layers.get(i).forward(cur, SegmentContext.of(a, SEED, (long) i << 40));
            }
            float[] y = cur.toFloatArray();
            cur.close();
            Tensor grad = Tensor.fromArray(a, random(ROWS * OUT, 4), ROWS, OUT);
            for (int i = layers.size() - 1; i >= 0; i--) {
                Tensor gin = layers.get(i).backward(ins.get(i), grad, SegmentContext.of(a, SEED, (long) i << 40));
                grad.close();
                ins.get(i).close();
                grad = gin;
            }
            float[] dx = grad.toFloatArray();
            grad.close();
            // the mask the shared layer draws here, on ones, against plain Dropout with the same context
            SegmentContext ctx = SegmentContext.of(a, SEED, OFFSET);
            try (Tensor o = Tensor.fromArray(a, ones(ROWS * OUT), ROWS, OUT);
                 Tensor m = layers.get(layers.size() - 1).forward(o, ctx);
                 Tensor plain = new Dropout(0.5f).forward(o, ctx)) {
                return List.of(y, dx, m.toFloatArray(), plain.toFloatArray());
            }
        }
    }

    @Test
    void sharedGivesTheSameMaskOnEveryRank() throws Exception {
        for (int tp : new int[] {2, 4}) {
            List<List<float[]>> got = onRanks(tp, TensorParallelDropoutTest::blockThenSharedDropout);
            assertSomeKeptSomeDropped(mask(got.get(0).get(0)), "tp=" + tp + " output");
            assertArrayEquals(got.get(0).get(3), got.get(0).get(2), "tp=" + tp + ": shared is plain Dropout's mask");
            for (int r = 1; r < tp; r++) {
                for (int i = 0; i < 3; i++) {
                    assertArrayEquals(got.get(0).get(i), got.get(r).get(i), "tp=" + tp + " rank " + r + " item " + i
                            + " (0 output, 1 input gradient, 2 mask) against rank 0");
                }
            }
        }
    }

    private record PerRank(float[] first, float[] again, float[] backward, float[] otherSeed, float[] byRule) {
    }

    @Test
    void perRankMasksDifferByRankAreReproducibleAndAreNotTheOneProcessSlices() throws Exception {
        for (int tp : new int[] {2, 4}) {
            int slice = HIDDEN / tp;
            List<PerRank> got = onRanks(tp, (group, a) -> {
                TensorParallelDropout d = TensorParallelDropout.perRank(0.5f, group);
                try (Tensor x = Tensor.fromArray(a, ones(ROWS * slice), ROWS, slice);
                     Tensor y = d.forward(x, SegmentContext.of(a, SEED, OFFSET));
                     Tensor again = d.forward(x, SegmentContext.of(a, SEED, OFFSET));
                     Tensor dx = d.backward(x, x, SegmentContext.of(a, SEED, OFFSET));
                     Tensor other = d.forward(x, SegmentContext.of(a, SEED + 1, OFFSET));
                     Tensor rule = new Dropout(0.5f).forward(x, SegmentContext.of(a,
                             TensorParallelDropout.perRankSeed(SEED, group.rank()), OFFSET))) {
                    return new PerRank(y.toFloatArray(), again.toFloatArray(), dx.toFloatArray(), other.toFloatArray(),
                            rule.toFloatArray());
                }
            });
            float[] whole;
            try (Allocator a = Allocator.root("one-process"); Tensor x = Tensor.fromArray(a, ones(ROWS * HIDDEN), ROWS,
                    HIDDEN); Tensor y = new Dropout(0.5f).forward(x, SegmentContext.of(a, SEED, OFFSET))) {
                whole = y.toFloatArray();
            }
            for (int r = 0; r < tp; r++) {
                PerRank p = got.get(r);
                String at = "tp=" + tp + " rank " + r;
                assertSomeKeptSomeDropped(mask(p.first()), at);
                assertArrayEquals(p.first(), p.again(), at + ": the same context draws the same mask");
                assertArrayEquals(p.first(), p.backward(), at + ": backward applies the forward's mask");
                assertFalse(Arrays.equals(mask(p.first()), mask(p.otherSeed())), at + ": another seed, another mask");
                assertArrayEquals(p.byRule(), p.first(), at + ": keyed by perRankSeed(seed, rank)");
                float[] mine = TensorParallel.columns(whole, ROWS, HIDDEN, r * slice, slice);
                assertFalse(Arrays.equals(mask(mine), mask(p.first())), at + ": not the one-process mask's slice");
                for (int q = 0; q < r; q++) {
                    assertFalse(Arrays.equals(mask(got.get(q).first()), mask(p.first())), at + " against rank " + q
                            + ": each rank its own mask");
                }
            }
        }
    }

    /**
     * The block with hidden dropout: one more layer (per-rank dropout after the GELU), and an output bitwise
     * equal to one process that runs each rank's shard with a plain Dropout keyed by perRankSeed(seed, rank)
     * and adds the partial outputs in rank order.
     */
    @Test
    void blockWithHiddenDropoutIsTheSplitWithPerRankKeys() throws Exception {
        float p = 0.3f;
        for (int tp : new int[] {2, 4}) {
            List<float[]> got = onRanks(tp, (group, a) -> {
                try (Linear f = first(a); BiasGelu g = gelu(a); Linear s = second(a);
                     ParallelMlpBlock block = new ParallelMlpBlock(f, g, s, p, group, Device.cpu(), a, 11)) {
                    List<Layer> layers = block.layers();
                    assertEquals(4, layers.size());
                    assertInstanceOf(TensorParallelDropout.class, layers.get(2));
                    assertEquals(TensorParallelDropout.Mode.PER_RANK, ((TensorParallelDropout) layers.get(2)).mode());
                    Tensor cur = Tensor.fromArray(a, random(ROWS * IN, 3), ROWS, IN);
                    for (int i = 0; i < layers.size(); i++) {
                        Tensor next = layers.get(i).forward(cur, SegmentContext.of(a, SEED, (long) i << 40));
                        cur.close();
                        cur = next;
                    }
                    Tensor out = cur;
                    try (out) {
                        return out.toFloatArray();
                    }
                }
            });
            float[] expected = null;
            float[] noDropout = null;
            try (Allocator a = Allocator.root("split"); Linear f = first(a); BiasGelu g = gelu(a); Linear s = second(a)) {
                for (int r = 0; r < tp; r++) {
                    List<Layer> ls = OneProcessShards.of(f, g, s, tp, r, a);
                    try (Tensor x = Tensor.fromArray(a, random(ROWS * IN, 3), ROWS, IN);
                         Tensor h = ls.get(0).forward(x, SegmentContext.of(a, SEED, 0));
                         Tensor z = ls.get(1).forward(h, SegmentContext.of(a, SEED, 1L << 40));
                         Tensor dz = new Dropout(p).forward(z, SegmentContext.of(a,
                                 TensorParallelDropout.perRankSeed(SEED, r), 2L << 40));
                         Tensor part = ls.get(2).forward(dz, SegmentContext.of(a, SEED, 3L << 40));
                         Tensor plain = ls.get(2).forward(z, SegmentContext.of(a, SEED, 3L << 40))) {
                        expected = add(expected, part.toFloatArray());
                        noDropout = add(noDropout, plain.toFloatArray());
                    } finally {
                        ls.forEach(Layer::close);
                    }
                }
            }
            for (int r = 0; r < tp; r++) {
                assertArrayEquals(expected, got.get(r), "tp=" + tp + " rank " + r);
            }
            assertFalse(Arrays.equals(noDropout, got.get(0)), "tp=" + tp + ": the dropout changes the output");
        }
    }

    private static float[] add(float[] sum, float[] part) {
        if (sum == null) {
            return part;
        }
        float[] c = sum.clone();
        for (int i = 0; i < c.length; i++) {
            c[i] = c[i] + part[i];
        }
        return c;
    }

    /**
     * perRankSeed: distinct keys for every (seed, rank) of a sweep over seeds 0..999 and ranks 0..7, none of
     * them a seed of the sweep (a shared stream's key). Megatron's additive seed + 2718 + rank reuses keys over the
     * same sweep (seed s, rank 1 is seed s + 1, rank 0), so the check can fail.
     */
    @Test
    void perRankKeysDoNotCollideOverASeedSweep() {
        Set<Long> seeds = new HashSet<>();
        for (long s = 0; s < 1000; s++) {
            seeds.add(s);
        }
        Set<Long> keys = new HashSet<>();
        Set<Long> additive = new HashSet<>();
        for (long s = 0; s < 1000; s++) {
            for (int r = 0; r < 8; r++) {
                long k = TensorParallelDropout.perRankSeed(s, r);
                assertTrue(keys.add(k), "seed " + s + " rank " + r + " reuses a key");
                assertFalse(seeds.contains(k), "seed " + s + " rank " + r + " has a shared stream's key");
                additive.add(s + 2718 + r);
            }
        }
        assertEquals(8000, keys.size());
        assertTrue(additive.size() < 8000, "the additive rule reuses keys over the same sweep: " + additive.size());
    }

    @Test
    void badInputsAreRefused() throws Exception {
        for (float bad : new float[] {-0.1f, 1f, 1.5f, Float.NaN}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> TensorParallelDropout.shared(bad));
            assertEquals("p must be in [0, 1), got " + bad, e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> TensorParallelDropout.perRank(bad, null));
            assertEquals("p must be in [0, 1), got " + bad, e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> new ParallelMlpBlock(null, null, null, bad, null, Device.cpu(), null, 0));
            assertEquals("hiddenDropout must be in [0, 1), got " + bad, e.getMessage());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TensorParallelDropout.perRank(0.5f, null));
        assertTrue(e.getMessage().startsWith("tp must not be null"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TensorParallelDropout.perRankSeed(1, -1));
        assertEquals("rank must be >= 0, got -1", e.getMessage());
        try (Allocator a = Allocator.root("bad"); Tensor x = Tensor.fromArray(a, ones(4), 2, 2)) {
            e = assertThrows(IllegalArgumentException.class, () -> TensorParallelDropout.shared(0.5f).forward(x, null));
            assertEquals("ctx must not be null", e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> TensorParallelDropout.shared(0.5f).forward(null,
                    SegmentContext.of(a, 1, 0)));
            assertEquals("input must not be null", e.getMessage());
        }
        // p = 0 is allowed and is the identity, in either mode
        List<float[]> zero = onRanks(2, (group, a) -> {
            try (Tensor x = Tensor.fromArray(a, random(6, 1), 2, 3);
                 Tensor y = TensorParallelDropout.perRank(0f, group).forward(x, SegmentContext.of(a, SEED, 0))) {
                return y.toFloatArray();
            }
        });
        assertArrayEquals(random(6, 1), zero.get(0));
        assertArrayEquals(random(6, 1), zero.get(1));
    }
}
