package dev.torus.parallel;

import dev.torus.comm.Communicator;

/**
 * A hybrid layout of a world of dp × pp × tp ranks: the data-parallel, pipeline and tensor-parallel
 * groups of this rank, each a communicator split from the world.
 *
 * <p>Rank order, as in Megatron: tp varies fastest, then dp, then pp. The world rank of the rank at
 * (pp stage s, dp replica d, tp rank t) is {@code s·(dp·tp) + d·tp + t}. So a tensor-parallel group is
 * tp consecutive ranks (on one host, where its frequent all-reduces are cheapest); a data-parallel
 * group takes every tp-th rank within a stage; a pipeline group takes every (dp·tp)-th rank.
 *
 * <p>Building it is collective over the world (three splits, in the order tp, dp, pp). The mesh owns
 * the three group communicators and closes them; it borrows the world.
 */
public final class DeviceMesh implements AutoCloseable {
    private final int dp;
    private final int pp;
    private final int tp;
    private final int dpRank;
    private final int ppRank;
    private final int tpRank;
    private final Communicator tpGroup;
    private final Communicator dpGroup;
    private final Communicator ppGroup;

    /**
     * @throws IllegalArgumentException if a degree is below 1 or dp × pp × tp is not the world size
     */
    public DeviceMesh(Communicator world, int dp, int pp, int tp) {
        if (world == null) {
            throw new IllegalArgumentException("world must not be null");
        }
        if (dp < 1 || pp < 1 || tp < 1) {
            throw new IllegalArgumentException("dp, pp and tp must be >= 1, got dp=" + dp + " pp=" + pp + " tp=" + tp);
        }
        if ((long) dp * pp * tp != world.size()) {
            throw new IllegalArgumentException("the mesh dp=" + dp + " x pp=" + pp + " x tp=" + tp + " = "
                    + (long) dp * pp * tp + " must equal the world size " + world.size());
        }
        this.dp = dp;
        this.pp = pp;
        this.tp = tp;
        int r = world.rank();
        this.tpRank = r % tp;
        this.dpRank = (r / tp) % dp;
        this.ppRank = r / (tp * dp);
        Communicator t = null;
        Communicator d = null;
        try {
            // color: the coordinates the group shares; key: the coordinate that orders it
            t = world.split(ppRank * dp + dpRank, tpRank);
            d = world.split(ppRank * tp + tpRank, dpRank);
            this.ppGroup = world.split(dpRank * tp + tpRank, ppRank);
        } catch (RuntimeException e) {
            if (t != null) {
                t.close();
            }
            if (d != null) {
                d.close();
            }
            throw e;
        }
        this.tpGroup = t;
        this.dpGroup = d;
    }

    /** The world rank at (pp stage, dp replica, tp rank), in the mesh's order. */
    public static int worldRank(int ppRank, int dpRank, int tpRank, int dp, int tp) {
        return ppRank * dp * tp + dpRank * tp + tpRank;
    }

    public int dp() {
        return dp;
    }

    public int pp() {
        return pp;
    }

    public int tp() {
        return tp;
    }

    public int dpRank() {
        return dpRank;
    }

    public int ppRank() {
        return ppRank;
    }

    public int tpRank() {
        return tpRank;
    }

    /** The ranks that share this rank's layer weights (same pp stage and dp replica). */
    public Communicator tpGroup() {
        return tpGroup;
    }

    /** The replicas of this rank's shard (same pp stage and tp rank): where gradients are averaged. */
    public Communicator dpGroup() {
        return dpGroup;
    }

    /** The stages of this rank's pipeline (same dp replica and tp rank), in stage order. */
    public Communicator ppGroup() {
        return ppGroup;
    }

    @Override
    public void close() {
        try {
            tpGroup.close();
        } finally {
            try {
                dpGroup.close();
            } finally {
                ppGroup.close();
            }
        }
    }

    @Override
    public String toString() {
        return "DeviceMesh(dp=" + dp + ", pp=" + pp + ", tp=" + tp + "; this rank: pp " + ppRank + ", dp " + dpRank
                + ", tp " + tpRank + ")";
    }
}
