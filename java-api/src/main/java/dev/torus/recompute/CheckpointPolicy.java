package dev.torus.recompute;

import java.util.List;

/**
 * Which segment inputs {@link CheckpointedSequential} keeps during forward; the
 * others are recomputed during backward from the nearest kept input before them.
 * The first segment's input is always kept.
 */
public abstract sealed class CheckpointPolicy {
    private CheckpointPolicy() {}

    /** Keep every input: no recomputation, the most memory. */
    public static CheckpointPolicy none() {
        return new EveryK(1, "none");
    }

    /** Keep the input of every k-th segment. */
    public static CheckpointPolicy everyK(int k) {
        if (k < 1) {
            throw new IllegalArgumentException("k must be >= 1, got " + k);
        }
        return new EveryK(k, "every-" + k);
    }

    /** Keep every ceil(sqrt(n))-th input (Chen et al. 2016): O(sqrt n) memory for about one extra forward. */
    public static CheckpointPolicy sqrtN() {
        return new SqrtN();
    }

    /**
     * Keep the inputs of segments that follow an expensive one (outputs of GEMMs) and
     * recompute the cheap elementwise segments (Megatron's selective recomputation).
     */
    public static CheckpointPolicy selective() {
        return new Selective();
    }

    /**
     * Keep the checkpoints that fit {@code bytes} of checkpoints plus activations
     * (see docs/RECOMPUTE.md for what is counted) with the least recompute. Plans
     * from the shapes the segments report ({@link Segment#outputShape}); the first
     * forward fails with a message giving the smallest budget that works if none fits.
     */
    public static CheckpointPolicy budget(long bytes) {
        if (bytes < 1) {
            throw new IllegalArgumentException("budget bytes must be >= 1, got " + bytes);
        }
        return new Budget(bytes);
    }

    /**
     * For each of {@code segments}, whether this policy keeps its input, for engines other than
     * {@link CheckpointedSequential} (pipeline stages). The first input is always kept.
     *
     * @throws IllegalArgumentException for {@link #budget}, whose plan needs the input's shape
     */
    public boolean[] keptInputs(List<? extends Segment> segments) {
        if (segments == null || segments.isEmpty()) {
            throw new IllegalArgumentException("segments must be a non-empty list");
        }
        if (needsSizes()) {
            throw new IllegalArgumentException("the " + this + " policy plans from input shapes inside "
                    + "CheckpointedSequential; use none, every-k, sqrt(n) or selective here");
        }
        boolean[] keep = plan(List.copyOf(segments), null);
        keep[0] = true;
        return keep;
    }

    /** For each segment index, whether its input is kept. */
    abstract boolean[] plan(List<Segment> segments, PlanSizes sizes);

    /** True when the plan depends on the sizes (and so on the input shape). */
    boolean needsSizes() {
        return false;
    }

    static final class EveryK extends CheckpointPolicy {
        private final int k;
        private final String name;

        EveryK(int k, String name) {
            this.k = k;
            this.name = name;
        }

        @Override
        boolean[] plan(List<Segment> segments, PlanSizes sizes) {
            boolean[] keep = new boolean[segments.size()];
            for (int i = 0; i < keep.length; i++) {
                keep[i] = i % k == 0;
            }
            return keep;
        }

        @Override
        public String toString() {
            return name;
        }
    }

    static final class SqrtN extends CheckpointPolicy {
        @Override
        boolean[] plan(List<Segment> segments, PlanSizes sizes) {
            int k = Math.max(1, (int) Math.ceil(Math.sqrt(segments.size())));
            return new EveryK(k, "").plan(segments, sizes);
        }

        @Override
        public String toString() {
            return "sqrt(n)";
        }
    }

    static final class Selective extends CheckpointPolicy {
        @Override
        boolean[] plan(List<Segment> segments, PlanSizes sizes) {
            boolean[] keep = new boolean[segments.size()];
            for (int i = 0; i < keep.length; i++) {
                keep[i] = i == 0 || !segments.get(i - 1).cheapToRecompute();
            }
            return keep;
        }

        @Override
        public String toString() {
            return "selective";
        }
    }

    static final class Budget extends CheckpointPolicy {
        private final long bytes;

        Budget(long bytes) {
            this.bytes = bytes;
        }

        long bytes() {
            return bytes;
        }

        @Override
        boolean needsSizes() {
            return true;
        }

        @Override
        boolean[] plan(List<Segment> segments, PlanSizes sizes) {
            boolean[] keep = BudgetPlanner.plan(sizes, bytes);
            if (keep == null || sizes.peak(keep) > bytes) {
                long min = BudgetPlanner.minimumBudget(sizes);
                throw new IllegalArgumentException("memory budget of " + bytes + " bytes is too small for this model and"
                        + " input: the smallest plan needs about " + min + " bytes of checkpoints and activations"
                        + " (docs/RECOMPUTE.md explains what is counted)");
            }
            return keep;
        }

        @Override
        public String toString() {
            return "budget(" + bytes + " B)";
        }
    }
}
