package dev.torus.recompute;

/**
 * Sizes a plan is made for: {@code act[i]} is the FLOAT32 byte size of segment
 * i's input ({@code act[n]} is the output), {@code stored[i]} what the input takes
 * as a checkpoint, and {@code cost[i]} the relative cost of running segment i
 * forward again.
 */
record PlanSizes(long[] act, long[] stored, double[] cost, boolean exact) {
    int n() {
        return cost.length;
    }

    /**
     * Peak bytes of checkpoints plus activations for {@code keep}, as the engine
     * allocates them: during forward, the checkpoints so far, the current input and
     * the output being produced; during backward of the interval that starts at
     * checkpoint a, the checkpoints up to a (later ones are already freed), a's
     * decoded copy when storage is compressed, the recomputed inputs of the
     * interval and the model output (which the caller still holds).
     */
    long peak(boolean[] keep) {
        int n = n();
        long peak = 0;
        long k = 0;
        for (int i = 0; i < n; i++) {
            if (keep[i]) {
                k += stored[i];
            }
            long cur = keep[i] && exact ? 0 : act[i];
            peak = Math.max(peak, k + cur + act[i + 1]);
        }
        long prefix = 0;
        for (int a = 0; a < n; a++) {
            if (!keep[a]) {
                continue;
            }
            prefix += stored[a];
            long inner = exact ? 0 : act[a];
            for (int j = a + 1; j < n && !keep[j]; j++) {
                inner += act[j];
            }
            peak = Math.max(peak, prefix + inner + act[n]);
        }
        return peak;
    }

    /** Relative recompute cost of {@code keep}: every segment whose output is not kept runs twice. */
    double recomputeCost(boolean[] keep) {
        double c = 0;
        for (int j = 0; j + 1 < n(); j++) {
            if (!keep[j + 1]) {
                c += cost[j];
            }
        }
        return c;
    }
}
