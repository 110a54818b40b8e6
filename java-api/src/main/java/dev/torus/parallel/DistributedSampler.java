package dev.torus.parallel;

import java.util.SplittableRandom;

/**
 * Splits the indices {@code 0 .. datasetSize-1} among {@code worldSize} ranks, one
 * shard per rank, with the same number of indices on every rank (so every rank runs
 * the same number of steps and no collective is left unmatched).
 *
 * <p>Each epoch starts from one permutation of all indices, shuffled from
 * ({@code seed}, epoch) when shuffling is on, identical on every rank. Rank r takes
 * positions r, r + W, r + 2W, ... of it. When the size is not a multiple of W:
 * <ul>
 *   <li>padding (the default) repeats the first indices of the permutation until it
 *       is, so every sample is seen at least once and at most
 *       {@code ceil(size / W) * W - size} samples twice; {@link #isPadding} tells which
 *       positions are repeats, so a loss can give them zero weight;</li>
 *   <li>drop-last removes the last {@code size mod W} indices of the permutation.</li>
 * </ul>
 * When the size is a multiple of W, every sample is seen exactly once per epoch
 * across the ranks either way. Immutable apart from the epoch; not thread-safe.
 */
public final class DistributedSampler {
    private final long datasetSize;
    private final int rank;
    private final int worldSize;
    private final boolean shuffle;
    private final long seed;
    private final boolean dropLast;
    private long epoch;

    public DistributedSampler(long datasetSize, int rank, int worldSize, boolean shuffle, long seed, boolean dropLast) {
        if (worldSize < 1) {
            throw new IllegalArgumentException("worldSize must be >= 1, got " + worldSize);
        }
        if (rank < 0 || rank >= worldSize) {
            throw new IllegalArgumentException("rank must be in [0, " + worldSize + "), got " + rank);
        }
        if (datasetSize < 0 || datasetSize > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("datasetSize must be in [0, " + (Integer.MAX_VALUE - 8) + "], got "
                    + datasetSize);
        }
        if (dropLast && datasetSize < worldSize) {
            throw new IllegalArgumentException("datasetSize (" + datasetSize + ") must be at least worldSize ("
                    + worldSize + ") with dropLast, or every rank would get nothing");
        }
        if (!dropLast && datasetSize == 0) {
            throw new IllegalArgumentException("datasetSize must be positive");
        }
        this.datasetSize = datasetSize;
        this.rank = rank;
        this.worldSize = worldSize;
        this.shuffle = shuffle;
        this.seed = seed;
        this.dropLast = dropLast;
    }

    /** Shuffled, padded sampler. */
    public DistributedSampler(long datasetSize, int rank, int worldSize, long seed) {
        this(datasetSize, rank, worldSize, true, seed, false);
    }

    /** Selects the epoch whose permutation {@link #indices()} returns; call it at the start of each epoch. */
    public void setEpoch(long epoch) {
        if (epoch < 0) {
            throw new IllegalArgumentException("epoch must be >= 0, got " + epoch);
        }
        this.epoch = epoch;
    }

    public long epoch() {
        return epoch;
    }

    /** Indices per rank per epoch. */
    public int samplesPerRank() {
        long n = dropLast ? datasetSize / worldSize : (datasetSize + worldSize - 1) / worldSize;
        return (int) n;
    }

    /** Indices across all ranks per epoch (including padding). */
    public long totalSize() {
        return (long) samplesPerRank() * worldSize;
    }

    /** This rank's indices for the current epoch, in the order to visit them. */
    public int[] indices() {
        int[] perm = permutation();
        int per = samplesPerRank();
        int[] mine = new int[per];
        for (int i = 0; i < per; i++) {
            long pos = (long) i * worldSize + rank;
            mine[i] = perm[(int) (pos % datasetSize)];
        }
        return mine;
    }

    /**
     * True when this rank's {@code i}-th index in the current epoch is a repeat added
     * by padding (the sample was already given to some rank this epoch).
     */
    public boolean isPadding(int i) {
        if (i < 0 || i >= samplesPerRank()) {
            throw new IllegalArgumentException("i must be in [0, " + samplesPerRank() + "), got " + i);
        }
        return (long) i * worldSize + rank >= datasetSize;
    }

    /** The whole epoch's permutation (the same on every rank). */
    int[] permutation() {
        return epochPermutation((int) datasetSize, seed, epoch, shuffle);
    }

    /**
     * The order of {@code 0 .. n-1} for one epoch: Fisher-Yates from a generator keyed by
     * ({@code seed}, {@code epoch}) when shuffling, identical on every rank and JVM; the
     * identity otherwise. Shared with the elastic sampler, so both visit samples alike.
     */
    public static int[] epochPermutation(int n, long seed, long epoch, boolean shuffle) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) {
            p[i] = i;
        }
        if (shuffle) {
            SplittableRandom rng = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + epoch);
            for (int i = n - 1; i > 0; i--) {
                int j = rng.nextInt(i + 1);
                int t = p[i];
                p[i] = p[j];
                p[j] = t;
            }
        }
        return p;
    }

    @Override
    public String toString() {
        return "DistributedSampler[size " + datasetSize + ", rank " + rank + "/" + worldSize + ", shuffle " + shuffle
                + ", seed " + seed + ", epoch " + epoch + (dropLast ? ", drop last" : ", padded") + "]";
    }

}
