package dev.torus.elastic;

/**
 * The sample order of an elastic job: exact across any number of membership changes.
 *
 * <p>Each epoch is one permutation of {@code 0 .. datasetSize-1}, shuffled from
 * ({@code seed}, epoch) and identical in every process. The job walks it in global
 * batches: the position ({@link #epoch()}, {@link #consumed()}) says how many entries
 * of this epoch's permutation earlier steps used, whatever the world size was then.
 * A step takes the next {@code globalBatch} entries (fewer at the end of an epoch) and
 * deals them out by rank, rank r taking the entries r, r + W, r + 2W, ... of the batch
 * for the current world size W. So after a resize in the middle of an epoch the rest of
 * the epoch is split among the new members, and in every epoch each sample is used
 * exactly once, across any schedule of changes; the global batch does not depend on W.
 *
 * <p>The position is part of the committed elastic state: restoring it (after a
 * rollback, or in a joiner) resumes the order exactly. Not thread-safe.
 */
public final class ElasticSampler {
    private final int datasetSize;
    private final long seed;
    private final boolean shuffle;
    private long epoch;
    private int consumed;
    private int[] permutation;

    public ElasticSampler(long datasetSize, long seed, boolean shuffle) {
        if (datasetSize < 1 || datasetSize > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("datasetSize must be in [1, " + (Integer.MAX_VALUE - 8) + "], got "
                    + datasetSize);
        }
        this.datasetSize = (int) datasetSize;
        this.seed = seed;
        this.shuffle = shuffle;
    }

    public long epoch() {
        return epoch;
    }

    /** Entries of this epoch's permutation used so far, by every rank of every earlier step. */
    public int consumed() {
        return consumed;
    }

    public int datasetSize() {
        return datasetSize;
    }

    public long seed() {
        return seed;
    }

    public boolean shuffle() {
        return shuffle;
    }

    /** Moves to a saved position (a rollback, or a joiner taking over the committed state). */
    public void setPosition(long epoch, int consumed) {
        if (epoch < 0) {
            throw new IllegalArgumentException("epoch must be >= 0, got " + epoch);
        }
        if (consumed < 0 || consumed > datasetSize) {
            throw new IllegalArgumentException("consumed must be in [0, " + datasetSize + "], got " + consumed);
        }
        if (epoch != this.epoch) {
            permutation = null;
        }
        this.epoch = epoch;
        this.consumed = consumed;
    }

    /** Entries the next step takes for a global batch of {@code globalBatch}: fewer at the end of the epoch. */
    public int nextBatchSize(int globalBatch) {
        if (globalBatch < 1) {
            throw new IllegalArgumentException("globalBatch must be >= 1, got " + globalBatch);
        }
        return Math.min(globalBatch, datasetSize - consumed);
    }

    /**
     * The sample indices of rank {@code rank} of {@code worldSize} in the next step's
     * global batch, without moving the position ({@link #advance} does, once the step is
     * done everywhere). Ranks beyond the batch's size get none.
     */
    public int[] shard(int globalBatch, int rank, int worldSize) {
        if (worldSize < 1) {
            throw new IllegalArgumentException("worldSize must be >= 1, got " + worldSize);
        }
        if (rank < 0 || rank >= worldSize) {
            throw new IllegalArgumentException("rank must be in [0, " + worldSize + "), got " + rank);
        }
        int n = nextBatchSize(globalBatch);
        int mine = n > rank ? (n - rank + worldSize - 1) / worldSize : 0;
        int[] out = new int[mine];
        int[] perm = permutation();
        for (int i = 0; i < mine; i++) {
            out[i] = perm[consumed + rank + i * worldSize];
        }
        return out;
    }

    /** Records that the next step's global batch was used; at the end of an epoch, starts the next one. */
    public void advance(int globalBatch) {
        consumed += nextBatchSize(globalBatch);
        if (consumed == datasetSize) {
            epoch++;
            consumed = 0;
            permutation = null;
        }
    }

    private int[] permutation() {
        if (permutation == null) {
            permutation = dev.torus.parallel.DistributedSampler.epochPermutation(datasetSize, seed, epoch, shuffle);
        }
        return permutation;
    }

    @Override
    public String toString() {
        return "ElasticSampler[size " + datasetSize + ", seed " + seed + ", epoch " + epoch + ", consumed " + consumed
                + "]";
    }
}
