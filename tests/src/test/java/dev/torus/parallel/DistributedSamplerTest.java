package dev.torus.parallel;

import static dev.torus.testing.BadArgument.assertMessage;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

class DistributedSamplerTest {

    static int[] counts(long size, int world, boolean dropLast, long seed, long epoch, int[][] perRank) {
        int[] seen = new int[(int) size];
        for (int r = 0; r < world; r++) {
            DistributedSampler s = new DistributedSampler(size, r, world, true, seed, dropLast);
            s.setEpoch(epoch);
            perRank[r] = s.indices();
            assertEquals(s.samplesPerRank(), perRank[r].length);
            for (int i : perRank[r]) {
                seen[i]++;
            }
        }
        return seen;
    }

    @ParameterizedTest(name = "size={0} world={1}")
    @CsvSource({"1000,4", "12,3", "7,1", "64,8"})
    void everySampleExactlyOncePerEpochWhenTheSizeDivides(long size, int world) {
        for (boolean dropLast : new boolean[] {false, true}) {
            for (long epoch = 0; epoch < 3; epoch++) {
                int[] seen = counts(size, world, dropLast, 11, epoch, new int[world][]);
                for (int i = 0; i < size; i++) {
                    assertEquals(1, seen[i], "sample " + i + " epoch " + epoch + " dropLast " + dropLast);
                }
            }
        }
    }

    @ParameterizedTest(name = "size={0} world={1}")
    @CsvSource({"1001,4", "10,3", "5,4", "3,8"})
    void paddingRepeatsTheFewestSamplesAndMarksThem(long size, int world) {
        int[][] perRank = new int[world][];
        int[] seen = counts(size, world, false, 5, 2, perRank);
        long total = (size + world - 1) / world * world;
        long repeats = 0;
        for (int i = 0; i < size; i++) {
            assertTrue(seen[i] >= 1, "sample " + i + " missing");
            repeats += seen[i] - 1;
        }
        assertEquals(total - size, repeats);
        // the positions flagged as padding are exactly the repeats
        int[] firstPass = new int[(int) size];
        for (int r = 0; r < world; r++) {
            DistributedSampler s = new DistributedSampler(size, r, world, true, 5, false);
            s.setEpoch(2);
            for (int i = 0; i < perRank[r].length; i++) {
                if (!s.isPadding(i)) {
                    firstPass[perRank[r][i]]++;
                }
            }
        }
        for (int i = 0; i < size; i++) {
            assertEquals(1, firstPass[i], "without the padding, sample " + i + " is seen exactly once");
        }
    }

    @ParameterizedTest(name = "size={0} world={1}")
    @CsvSource({"1001,4", "10,3", "9,8"})
    void dropLastDropsFewerThanWorldSamples(long size, int world) {
        int[] seen = counts(size, world, true, 5, 0, new int[world][]);
        long dropped = 0;
        for (int i = 0; i < size; i++) {
            assertTrue(seen[i] <= 1, "sample " + i + " twice");
            dropped += seen[i] == 0 ? 1 : 0;
        }
        assertEquals(size % world, dropped);
    }

    @Test
    void shuffleIsSeededPerEpochAndTheSameOnEveryInstance() {
        DistributedSampler a = new DistributedSampler(500, 1, 4, 42);
        DistributedSampler b = new DistributedSampler(500, 1, 4, 42);
        int[] e0 = a.indices();
        a.setEpoch(1);
        int[] e1 = a.indices();
        assertFalse(Arrays.equals(e0, e1), "a new epoch must reshuffle");
        b.setEpoch(1);
        assertArrayEquals(e1, b.indices(), "same seed and epoch give the same order in any process");
        a.setEpoch(0);
        assertArrayEquals(e0, a.indices(), "going back to an epoch repeats its order");
        assertFalse(Arrays.equals(e0, new DistributedSampler(500, 1, 4, 43).indices()), "the seed matters");
        DistributedSampler plain = new DistributedSampler(10, 1, 3, false, 0, false);
        assertArrayEquals(new int[] {1, 4, 7, 0}, plain.indices(), "unshuffled: strided, padded from the start");
    }

    @Test
    void badArgumentsNameTheArgument() {
        assertMessage("worldSize", () -> new DistributedSampler(10, 0, 0, 1));
        assertMessage("rank", () -> new DistributedSampler(10, 4, 4, 1));
        assertMessage("rank", () -> new DistributedSampler(10, -1, 4, 1));
        assertMessage("datasetSize", () -> new DistributedSampler(-1, 0, 1, 1));
        assertMessage("datasetSize", () -> new DistributedSampler(0, 0, 1, 1));
        assertMessage("datasetSize", () -> new DistributedSampler(3, 0, 4, true, 1, true));
        assertMessage("epoch", () -> new DistributedSampler(10, 0, 1, 1).setEpoch(-1));
        assertMessage("i must be", () -> new DistributedSampler(10, 0, 1, 1).isPadding(10));
    }
}
