package dev.torus.parallel.pipeline;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Splits a model's segments into contiguous pipeline stages: {@link #byCount} (as equal in count as can be) or
 * {@link #balanced} (the slowest stage as fast as can be, given a cost per segment, for example from
 * {@link SegmentProfile#cost}). The lists returned are new and unmodifiable; the segments in them stay the
 * caller's.
 */
public final class StagePartition {
    private StagePartition() {}

    /**
     * {@code stages} contiguous runs of {@code segments}, as equal in count as they can be (the first
     * ones take one more when the count does not divide).
     *
     * @throws IllegalArgumentException if there are more stages than segments
     */
    public static <T> List<List<T>> byCount(List<T> segments, int stages) {
        if (segments == null || segments.isEmpty()) {
            throw new IllegalArgumentException("segments must be a non-empty list");
        }
        if (stages < 1 || stages > segments.size()) {
            throw new IllegalArgumentException("stages must be in [1, " + segments.size() + "] (one segment at least per "
                    + "stage), got " + stages);
        }
        List<List<T>> out = new ArrayList<>();
        int base = segments.size() / stages;
        int extra = segments.size() % stages;
        int at = 0;
        for (int s = 0; s < stages; s++) {
            int n = base + (s < extra ? 1 : 0);
            out.add(List.copyOf(segments.subList(at, at + n)));
            at += n;
        }
        return out;
    }

    /** The index in the whole model of the first segment of each stage of {@link #byCount}. */
    public static int[] firstIndices(int segments, int stages) {
        if (segments < 1) {
            throw new IllegalArgumentException("segments must be >= 1, got " + segments);
        }
        if (stages < 1 || stages > segments) {
            throw new IllegalArgumentException("stages must be in [1, " + segments + "] (one segment at least per "
                    + "stage), got " + stages);
        }
        int[] first = new int[stages];
        int base = segments / stages;
        int extra = segments % stages;
        for (int s = 1; s < stages; s++) {
            first[s] = first[s - 1] + base + (s - 1 < extra ? 1 : 0);
        }
        return first;
    }

    /**
     * The index in the whole model of the first segment of each part of any partition (for example one from
     * {@link #balanced}): 0, then the running sum of the parts' sizes.
     *
     * @throws IllegalArgumentException if {@code parts} is null or empty, or a part is null or empty
     */
    public static <T> int[] firstIndices(List<List<T>> parts) {
        if (parts == null || parts.isEmpty()) {
            throw new IllegalArgumentException("parts must be a non-empty list");
        }
        int[] first = new int[parts.size()];
        int at = 0;
        for (int s = 0; s < parts.size(); s++) {
            List<T> part = parts.get(s);
            if (part == null || part.isEmpty()) {
                throw new IllegalArgumentException("parts[" + s + "] must be a non-empty list, got "
                        + (part == null ? "null" : "an empty list"));
            }
            first[s] = at;
            at += part.size();
        }
        return first;
    }

    /**
     * {@code stages} contiguous non-empty runs of {@code segments} whose largest summed cost is as small as it
     * can be: exact (dynamic programming, O(stages · n²) for n segments), not a heuristic.
     *
     * <p>Many partitions often reach that smallest maximum. Among them this one is chosen, in order: the
     * smallest sum of squared stage costs (the other stages as even as they can be, not just under the
     * maximum); then the smallest sum of squared stage sizes (so zero-cost segments spread evenly); then the
     * latest cuts (the first stage as long as it can be, then the second, ...). With equal costs the result is
     * therefore {@link #byCount}. The squared-cost comparison treats values within a relative 1e-9 as equal,
     * so that rounding in the sums does not decide it; the maximum is compared exactly.
     *
     * <p>The costs are divided by the largest one before use (so no sum or square overflows); a cost of 0 is
     * allowed, and all costs 0 gives {@link #byCount}.
     *
     * @param cost one cost per segment, {@code cost[i]} for {@code segments.get(i)}: finite and {@code >= 0}
     *             (time, bytes, or a mix of them); not modified
     * @throws IllegalArgumentException if {@code segments} is null or empty, {@code stages} is not in
     *                                  [1, n], {@code cost} is null or not of length n, or a cost is negative,
     *                                  NaN or infinite
     */
    public static <T> List<List<T>> balanced(List<T> segments, int stages, double[] cost) {
        int[] sizes = balancedSizes(segments, stages, cost);
        List<List<T>> out = new ArrayList<>();
        int at = 0;
        for (int size : sizes) {
            out.add(List.copyOf(segments.subList(at, at + size)));
            at += size;
        }
        return out;
    }

    private static <T> int[] balancedSizes(List<T> segments, int stages, double[] cost) {
        if (segments == null || segments.isEmpty()) {
            throw new IllegalArgumentException("segments must be a non-empty list");
        }
        int n = segments.size();
        if (stages < 1 || stages > n) {
            throw new IllegalArgumentException("stages must be in [1, " + n + "] (one segment at least per stage), got "
                    + stages);
        }
        if (cost == null) {
            throw new IllegalArgumentException("cost must not be null (one cost per segment, " + n + ")");
        }
        if (cost.length != n) {
            throw new IllegalArgumentException("cost must have one entry per segment (" + n + "), got " + cost.length);
        }
        double max = 0;
        for (int i = 0; i < n; i++) {
            if (!Double.isFinite(cost[i]) || cost[i] < 0) {
                throw new IllegalArgumentException("cost[" + i + "] must be finite and >= 0, got " + cost[i]);
            }
            max = Math.max(max, cost[i]);
        }
        double[] c = new double[n];
        for (int i = 0; i < n; i++) {
            c[i] = max == 0 ? 0 : cost[i] / max;
        }
        // A stage's cost is always summed left to right from its first segment, in both passes, so that the
        // maximum found by the first pass is met exactly by the second.
        // Pass 1: best[j] = the smallest maximum over s stages of the first j segments.
        double inf = Double.POSITIVE_INFINITY;
        double[] best = new double[n + 1];
        Arrays.fill(best, inf);
        double acc = 0;
        for (int j = 1; j <= n; j++) {
            acc += c[j - 1];
            best[j] = acc;
        }
        for (int s = 2; s <= stages; s++) {
            double[] next = new double[n + 1];
            Arrays.fill(next, inf);
            for (int i = s - 1; i < n; i++) {
                if (best[i] == inf) {
                    continue;
                }
                double run = 0;
                for (int j = i + 1; j <= n; j++) {
                    run += c[j - 1];
                    double m = Math.max(best[i], run);
                    if (m < next[j]) {
                        next[j] = m;
                    }
                }
            }
            best = next;
        }
        double bound = best[n];
        // Pass 2, from the right: sq[s][i], count[s][i] = the smallest (sum of squared costs, sum of squared
        // sizes) that splits segments i..n-1 into s stages, none over the bound.
        double[][] sq = new double[stages + 1][n + 1];
        long[][] count = new long[stages + 1][n + 1];
        for (double[] row : sq) {
            Arrays.fill(row, inf);
        }
        sq[0][n] = 0;
        for (int s = 1; s <= stages; s++) {
            for (int i = n - s; i >= 0; i--) {
                double run = 0;
                for (int j = i + 1; j <= n - s + 1; j++) {
                    run += c[j - 1];
                    if (run > bound) {
                        break;
                    }
                    if (sq[s - 1][j] == inf) {
                        continue;
                    }
                    double q = run * run + sq[s - 1][j];
                    long k = (long) (j - i) * (j - i) + count[s - 1][j];
                    if (better(q, k, sq[s][i], count[s][i])) {
                        sq[s][i] = q;
                        count[s][i] = k;
                    }
                }
            }
        }
        // Walk forward from segment 0, each cut the best by (squares, sizes), ties to the latest.
        int[] sizes = new int[stages];
        int i = 0;
        for (int s = stages; s >= 1; s--) {
            double run = 0;
            int pick = -1;
            double pickQ = inf;
            long pickK = Long.MAX_VALUE;
            for (int j = i + 1; j <= n - s + 1; j++) {
                run += c[j - 1];
                if (run > bound) {
                    break;
                }
                if (sq[s - 1][j] == inf) {
                    continue;
                }
                double q = run * run + sq[s - 1][j];
                long k = (long) (j - i) * (j - i) + count[s - 1][j];
                if (pick < 0 || !better(pickQ, pickK, q, k)) { // not worse: the later cut wins a tie
                    pick = j;
                    pickQ = q;
                    pickK = k;
                }
            }
            sizes[stages - s] = pick - i;
            i = pick;
        }
        return sizes;
    }

    /** (q, k) before (q0, k0): q smaller beyond a relative 1e-9, or about equal and k smaller. */
    private static boolean better(double q, long k, double q0, long k0) {
        if (q0 == Double.POSITIVE_INFINITY) {
            return true;
        }
        double tol = 1e-9 * Math.max(Math.abs(q), Math.abs(q0));
        if (q < q0 - tol) {
            return true;
        }
        return q <= q0 + tol && k < k0;
    }
}
