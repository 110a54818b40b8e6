package dev.torus.parallel.tensor;

import dev.torus.nn.Dropout;
import dev.torus.nn.Layer;
import dev.torus.recompute.SegmentContext;
import dev.torus.tensor.Tensor;

/**
 * {@link Dropout} placed in a tensor-parallel model, with the random stream Megatron gives it there.
 *
 * <ul>
 *   <li>{@link #perRank}: inside a tensor-parallel region, on this rank's slice of the features (after a
 *       {@link ColumnParallelLinear}, before the {@link RowParallelLinear}). Each rank draws from its own
 *       stream, so the slices get independent masks (Megatron's "model-parallel RNG", seeded there with
 *       seed + 2718 + tp rank). Here the key is {@link #perRankSeed}{@code (ctx.seed(), tp.rank())}.</li>
 *   <li>{@link #shared}: outside a tensor-parallel region, on activations every rank holds whole (after the
 *       row-parallel all-reduce). Every rank draws from the same stream, the context's seed unchanged, so
 *       the masks are the same everywhere and the replicas stay equal.</li>
 * </ul>
 *
 * <p>Either way element i of the tensor is kept when Philox(key, ctx.rngOffset() + i) ≥ p, as in
 * {@link Dropout}, so a recompute with the same context draws the same mask, and backward applies it to the
 * gradient again. The per-rank masks are not the one-process mask's slices: a tensor-parallel model with
 * per-rank dropout is a different random model from the one-process one, as in Megatron (only its
 * distribution is the same).
 *
 * <p>Holds no tensors and no parameters; outputs come from the context's allocator and belong to the caller
 * (the engine). Borrows nothing after construction: only the rank of the group is kept.
 */
public final class TensorParallelDropout implements Layer {
    /** Which stream the mask is drawn from. */
    public enum Mode {
        /** This rank's own stream: inside a tensor-parallel region. */
        PER_RANK,
        /** The stream every rank shares (the context's seed): outside a tensor-parallel region. */
        SHARED
    }

    private final Dropout dropout;
    private final Mode mode;
    private final int rank;

    private TensorParallelDropout(float p, Mode mode, int rank) {
        this.dropout = new Dropout(p);
        this.mode = mode;
        this.rank = rank;
    }

    /**
     * Dropout on this rank's slice of a tensor-parallel region, keyed by {@link #perRankSeed}.
     *
     * @throws IllegalArgumentException if {@code p} is not in [0, 1) or {@code tp} is null
     */
    public static TensorParallelDropout perRank(float p, TensorParallel tp) {
        checkP(p);
        if (tp == null) {
            throw new IllegalArgumentException("tp must not be null (the group whose rank keys the stream)");
        }
        return new TensorParallelDropout(p, Mode.PER_RANK, tp.rank());
    }

    /**
     * Dropout on activations that every rank of the group holds whole; the same mask on every rank.
     *
     * @throws IllegalArgumentException if {@code p} is not in [0, 1)
     */
    public static TensorParallelDropout shared(float p) {
        checkP(p);
        return new TensorParallelDropout(p, Mode.SHARED, -1);
    }

    private static void checkP(float p) {
        if (!(p >= 0f && p < 1f)) {
            throw new IllegalArgumentException("p must be in [0, 1), got " + p);
        }
    }

    /**
     * The key of tensor-parallel rank {@code rank}'s stream for the model seed {@code seed}:
     * {@code mix64(seed + 2718) + rank}, where mix64 is SplitMix64's finalizer (a bijection of the 64-bit
     * values, with avalanche: neighbouring inputs land far apart).
     *
     * <ul>
     *   <li>The ranks of one seed always get distinct keys (the rank is added to one value).</li>
     *   <li>Different seeds do not share keys, except by a 64-bit coincidence: their blocks of t keys start at
     *       scattered points. Megatron's seed + 2718 + rank gives seed s, rank 1 the stream of seed s + 1,
     *       rank 0; a sweep over seeds 0, 1, 2, ... would reuse streams.</li>
     *   <li>A key equals a shared stream's (a seed used as is) only by the same coincidence.</li>
     * </ul>
     *
     * @throws IllegalArgumentException if {@code rank} is negative
     */
    public static long perRankSeed(long seed, int rank) {
        if (rank < 0) {
            throw new IllegalArgumentException("rank must be >= 0, got " + rank);
        }
        long z = seed + 2718;
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        z = z ^ (z >>> 31);
        return z + rank;
    }

    public float p() {
        return dropout.p();
    }

    public Mode mode() {
        return mode;
    }

    /** Turns dropout on (training, the default) or off (evaluation: identity). */
    public void setEnabled(boolean enabled) {
        dropout.setEnabled(enabled);
    }

    /** The context this layer's mask is drawn with: {@code ctx} itself when shared, its per-rank key otherwise. */
    private SegmentContext keyed(SegmentContext ctx) {
        if (ctx == null) {
            throw new IllegalArgumentException("ctx must not be null");
        }
        return mode == Mode.SHARED ? ctx : ctx.withSeed(perRankSeed(ctx.seed(), rank));
    }

    @Override
    public Tensor forward(Tensor input, SegmentContext ctx) {
        return dropout.forward(input, keyed(ctx));
    }

    @Override
    public Tensor backward(Tensor input, Tensor gradOutput, SegmentContext ctx) {
        return dropout.backward(input, gradOutput, keyed(ctx));
    }

    @Override
    public boolean cheapToRecompute() {
        return true;
    }

    @Override
    public String toString() {
        return "TensorParallelDropout(" + dropout.p() + ", " + (mode == Mode.SHARED ? "shared" : "per rank, rank " + rank)
                + ")";
    }
}
