package dev.torus.elastic;

import static dev.torus.testing.BadArgument.assertMessage;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Exact resharding: every sample once per epoch, whatever the world size does between steps. */
class ElasticSamplerTest {

    /** Runs {@code epochs} epochs, changing the world size at random steps; returns each epoch's sample counts. */
    private static List<int[]> run(int size, int batch, int epochs, long scheduleSeed) {
        ElasticSampler s = new ElasticSampler(size, 7, true);
        SplittableRandom rng = new SplittableRandom(scheduleSeed);
        int world = 1 + rng.nextInt(8);
        List<int[]> counts = new ArrayList<>();
        int[] seen = new int[size];
        long epoch = 0;
        while (epoch < epochs) {
            if (rng.nextInt(3) == 0) {
                world = 1 + rng.nextInt(8); // a join, a leave or a failure between steps
            }
            int taken = 0;
            for (int r = 0; r < world; r++) {
                for (int i : s.shard(batch, r, world)) {
                    seen[i]++;
                    taken++;
                }
            }
            assertEquals(s.nextBatchSize(batch), taken, "the ranks' shards make up the global batch");
            s.advance(batch);
            if (s.epoch() != epoch) {
                counts.add(seen);
                seen = new int[size];
                epoch = s.epoch();
            }
        }
        return counts;
    }

    @Test
    void everySampleIsUsedExactlyOncePerEpochAcrossAnyScheduleOfResizes() {
        for (long schedule = 1; schedule <= 20; schedule++) {
            for (int[] epoch : run(1000, 64, 3, schedule)) {
                for (int i = 0; i < epoch.length; i++) {
                    assertEquals(1, epoch[i], "schedule " + schedule + ": sample " + i + " used " + epoch[i] + " times");
                }
            }
        }
        // a batch larger than the world, smaller than the world, not dividing the epoch
        for (int[] epoch : run(37, 5, 4, 99)) {
            assertTrue(Arrays.stream(epoch).allMatch(c -> c == 1), Arrays.toString(epoch));
        }
    }

    @Test
    void theGlobalBatchDoesNotDependOnTheWorldSize() {
        ElasticSampler s = new ElasticSampler(500, 3, true);
        s.advance(40);
        int[] one = s.shard(40, 0, 1);
        int[] merged = new int[40];
        int k = 0;
        for (int r = 0; r < 3; r++) {
            for (int i : s.shard(40, r, 3)) {
                merged[k++] = i;
            }
        }
        Arrays.sort(one);
        Arrays.sort(merged);
        assertArrayEquals(one, merged);
    }

    @Test
    void aSavedPositionResumesTheOrderExactly() {
        ElasticSampler a = new ElasticSampler(300, 11, true);
        for (int i = 0; i < 9; i++) {
            a.advance(32);
        }
        ElasticSampler b = new ElasticSampler(300, 11, true);
        b.setPosition(a.epoch(), a.consumed());
        for (int step = 0; step < 30; step++) {
            assertArrayEquals(a.shard(32, 1, 3), b.shard(32, 1, 3), "step " + step);
            a.advance(32);
            b.advance(32);
        }
        assertEquals(a.epoch(), b.epoch());
        ElasticSampler plain = new ElasticSampler(10, 1, false);
        assertArrayEquals(new int[] {0, 2, 4}, plain.shard(6, 0, 2));
        assertArrayEquals(new int[] {1, 3, 5}, plain.shard(6, 1, 2));
        assertArrayEquals(new int[0], plain.shard(2, 4, 5), "a rank beyond the batch gets nothing");
    }

    @Test
    void badArgumentsAreNamed() {
        assertMessage("datasetSize", () -> new ElasticSampler(0, 1, true));
        ElasticSampler s = new ElasticSampler(10, 1, true);
        assertMessage("globalBatch", () -> s.shard(0, 0, 1));
        assertMessage("worldSize", () -> s.shard(4, 0, 0));
        assertMessage("rank", () -> s.shard(4, 2, 2));
        assertMessage("consumed", () -> s.setPosition(0, 11));
        assertMessage("epoch", () -> s.setPosition(-1, 0));
    }
}
