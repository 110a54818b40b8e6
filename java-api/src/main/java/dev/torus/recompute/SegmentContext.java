package dev.torus.recompute;

import dev.torus.memory.Allocator;

/**
 * What a {@link Segment} sees while it runs: the allocator for its outputs and its
 * random key. The key is the same when the engine recomputes the segment, so
 * dropout masks (and any other counter-based randomness) come out bit-identical.
 */
public final class SegmentContext {
    private final Allocator allocator;
    private final long seed;
    private final long rngOffset;
    private final int index;
    private final boolean recomputing;

    SegmentContext(Allocator allocator, long seed, long rngOffset, int index, boolean recomputing) {
        this.allocator = allocator;
        this.seed = seed;
        this.rngOffset = rngOffset;
        this.index = index;
        this.recomputing = recomputing;
    }

    /**
     * A context for running a segment or layer on its own, outside
     * {@link CheckpointedSequential}: outputs come from {@code allocator} (the caller
     * owns them) and randomness is keyed by {@code (seed, rngOffset)}.
     */
    public static SegmentContext of(Allocator allocator, long seed, long rngOffset) {
        if (allocator == null) {
            throw new IllegalArgumentException("allocator must not be null");
        }
        if (rngOffset < 0) {
            throw new IllegalArgumentException("rngOffset must be >= 0, got " + rngOffset);
        }
        return new SegmentContext(allocator, seed, rngOffset, 0, false);
    }

    /**
     * The same context (allocator, offset, index, recomputing) with another seed: for a layer that draws
     * from a stream of its own, such as {@link dev.torus.parallel.tensor.TensorParallelDropout}'s per-rank one.
     */
    public SegmentContext withSeed(long seed) {
        return new SegmentContext(allocator, seed, rngOffset, index, recomputing);
    }

    /** Allocate every returned tensor here (the engine accounts and frees them). */
    public Allocator allocator() {
        return allocator;
    }

    /** Seed of the model's counter-based random generator. */
    public long seed() {
        return seed;
    }

    /**
     * First counter this segment may use in this step: 2^40 counters per segment, so
     * element-indexed randomness (offset + i) never overlaps another segment's.
     */
    public long rngOffset() {
        return rngOffset;
    }

    /** Position of the segment in the sequence. */
    public int index() {
        return index;
    }

    /** True when the engine is re-running the forward pass during backward. */
    public boolean recomputing() {
        return recomputing;
    }
}
