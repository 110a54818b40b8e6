package dev.torus.elastic;

import static dev.torus.testing.BadArgument.assertMessage;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.Device;
import dev.torus.memory.Allocator;
import dev.torus.nn.AdamW;
import dev.torus.nn.Mlp;
import dev.torus.nn.Parameter;
import dev.torus.zookeeper.EmbeddedZooKeeper;
import dev.torus.zookeeper.ZooKeeperStore;
import dev.torus.tensor.Tensor;
import dev.torus.testing.CommHarness;
import dev.torus.testing.TorusTestBase;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Commit, restore, transfer and check of elastic state, on a real model and optimizer. */
class ElasticStateTest extends TorusTestBase {

    /** A model, its optimizer, a sampler and their state. */
    private static final class Job implements AutoCloseable {
        final Mlp mlp;
        final AdamW opt;
        final ElasticSampler sampler = new ElasticSampler(1000, 5, true);
        final ElasticState state;

        Job(Allocator alloc, int width, long seed) {
            mlp = new Mlp(8, width, 2, 4, 0f, Device.cpu(), alloc, seed);
            opt = new AdamW(mlp.parameters(), 1e-2f, alloc);
            state = new ElasticState(mlp.parameters(), opt, sampler);
        }

        /** One optimizer step with gradients drawn from (seed, step): deterministic, no data needed. */
        void step(long seed) {
            SplittableRandom rng = new SplittableRandom(seed * 31 + state.step());
            for (Parameter p : mlp.parameters()) {
                float[] g = new float[(int) p.numel()];
                for (int i = 0; i < g.length; i++) {
                    g[i] = (float) rng.nextGaussian();
                }
                try (Tensor t = Tensor.fromArray(g, p.value().shape())) {
                    p.grad().copyFrom(t);
                }
            }
            opt.step();
            sampler.advance(64);
            state.setStep(state.step() + 1);
        }

        byte[] bytes() {
            List<Byte> all = new ArrayList<>();
            for (Parameter p : mlp.parameters()) {
                for (byte b : p.value().toByteArray()) {
                    all.add(b);
                }
            }
            for (Tensor t : opt.stateTensors()) {
                for (byte b : t.toByteArray()) {
                    all.add(b);
                }
            }
            byte[] out = new byte[all.size()];
            for (int i = 0; i < out.length; i++) {
                out[i] = all.get(i);
            }
            return out;
        }

        @Override
        public void close() {
            opt.close();
            mlp.close();
        }
    }

    @Test
    void restoreRollsEverythingBackAndTrainingContinuesBitwiseAsIfNothingHappened() {
        try (Job a = new Job(root, 16, 1); Job b = new Job(root, 16, 1)) {
            for (int i = 0; i < 3; i++) {
                a.step(9);
                b.step(9);
            }
            a.state.putLong("rng", 1234);
            a.state.putDouble("lr-scale", 0.75);
            a.state.commit();
            byte[] atCommit = a.bytes();
            long epoch = a.sampler.epoch();
            int consumed = a.sampler.consumed();
            a.opt.setLearningRate(5e-3f);
            a.state.putLong("rng", 99);
            for (int i = 0; i < 4; i++) {
                a.step(77); // steps that a failure will undo
            }
            assertEquals(4, a.state.restore());
            assertArrayEquals(atCommit, a.bytes(), "parameters and moments");
            assertEquals(3, a.opt.steps());
            assertEquals(1e-2f, a.opt.learningRate());
            assertEquals(3, a.state.step());
            assertEquals(epoch, a.sampler.epoch());
            assertEquals(consumed, a.sampler.consumed());
            assertEquals(1234, a.state.getLong("rng"));
            assertEquals(0.75, a.state.getDouble("lr-scale"));
            for (int i = 0; i < 5; i++) {
                a.step(9);
                b.step(9);
            }
            assertArrayEquals(b.bytes(), a.bytes(), "training after a rollback is bitwise the training without it");
        }
    }

    @Test
    void aSnapshotOfAnotherModelIsRefusedNamingTheMismatchAndChangesNothing() {
        try (Job a = new Job(root, 16, 1); Job other = new Job(root, 24, 2)) {
            a.step(3);
            a.state.commit();
            other.step(4);
            byte[] before = other.bytes();
            StateMismatchException e = assertThrows(StateMismatchException.class,
                    () -> other.state.load(a.state.committedBytes()));
            assertTrue(e.getMessage().contains("shape") && e.getMessage().contains("param/"), e.getMessage());
            assertArrayEquals(before, other.bytes(), "a refused snapshot leaves the state as it was");
            byte[] snap = a.state.committedBytes();
            assertThrows(StateMismatchException.class, () -> a.state.load(java.util.Arrays.copyOf(snap, snap.length - 1)));
            byte[] garbage = snap.clone();
            garbage[0] ^= 1;
            assertTrue(assertThrows(StateMismatchException.class, () -> a.state.load(garbage)).getMessage()
                    .contains("not an elastic-state snapshot"));
            // a joiner whose sampler draws another order is another job
            try (Job otherSeed = new Job(root, 16, 1)) {
                ElasticState st = new ElasticState(otherSeed.mlp.parameters(), otherSeed.opt,
                        new ElasticSampler(1000, 6, true));
                assertTrue(assertThrows(StateMismatchException.class, () -> st.load(snap)).getMessage()
                        .contains("sampler differs"));
            }
            try (Job fresh = new Job(root, 16, 1)) {
                assertThrows(IllegalStateException.class, fresh.state::restore);
            }
            assertMessage("key", () -> a.state.putLong("", 1));
            assertMessage("no scalar named", () -> a.state.getLong("missing"));
        }
    }

    @Test
    void syncGivesJoinersTheCommittedStateAndEveryRankChecksIt() throws Exception {
        try (EmbeddedZooKeeper zk = EmbeddedZooKeeper.startWithoutAuth();
             ZooKeeperStore store = ZooKeeperStore.connect(zk.connectString(), "elastic", Duration.ofSeconds(10))) {
            List<byte[]> got = CommHarness.run(store, 3, Duration.ofSeconds(30), c -> {
                try (Allocator alloc = Allocator.root("rank" + c.rank()); Job j = new Job(alloc, 16, c.rank() + 1)) {
                    if (c.rank() == 0) {
                        for (int i = 0; i < 5; i++) {
                            j.step(5);
                        }
                        j.state.putLong("rng", 42);
                        j.state.commit();
                    }
                    j.state.sync(c, 0, alloc);
                    assertEquals(5, j.state.step());
                    assertEquals(42, j.state.getLong("rng"));
                    assertEquals(5, j.opt.steps());
                    return j.bytes();
                }
            });
            assertArrayEquals(got.get(0), got.get(1));
            assertArrayEquals(got.get(0), got.get(2));
            // a rank with another model is refused, and nobody waits for it
            List<String> errors = CommHarness.run(store, 3, Duration.ofSeconds(30), c -> {
                try (Allocator alloc = Allocator.root("rank" + c.rank());
                     Job j = new Job(alloc, c.rank() == 2 ? 24 : 16, 1)) {
                    j.state.commit();
                    try {
                        j.state.sync(c, 0, alloc);
                        return "ok";
                    } catch (StateMismatchException e) {
                        assertEquals(List.of(2), e.ranks());
                        return e.getMessage();
                    }
                }
            });
            assertTrue(errors.stream().allMatch(m -> m.contains("2")), errors.toString());
            assertTrue(errors.get(2).contains("shape"), errors.get(2));
        }
    }
}
