package dev.torus.recompute;

import java.util.Arrays;

/**
 * Chooses checkpoints under a byte budget with the least recompute, by dynamic
 * programming over (last checkpoint, checkpoint bytes so far). Checkpoint bytes
 * are counted in units of budget / 4096, rounded up, so the plan errs on the
 * safe side; every other term of {@link PlanSizes#peak} is exact. The peak of
 * the chosen plan is then checked exactly.
 */
final class BudgetPlanner {
    private static final int UNITS = 4096;

    private BudgetPlanner() {}

    /** The cheapest plan whose peak fits {@code budget}, or null when none does. */
    static boolean[] plan(PlanSizes s, long budget) {
        int n = s.n();
        boolean[] all = new boolean[n];
        Arrays.fill(all, true);
        if (s.peak(all) <= budget) {
            return all;     // no recompute at all
        }
        long unit = Math.max(1, (budget + UNITS - 1) / UNITS);
        int[] su = new int[n];
        for (int i = 0; i < n; i++) {
            long u = (s.stored()[i] + unit - 1) / unit;
            su[i] = (int) Math.min(u, UNITS + 1);
        }
        // best[a][u]: least cost with a checkpoint at a and u units of checkpoints up to a
        double[][] best = new double[n][UNITS + 1];
        int[][] from = new int[n][UNITS + 1];
        for (double[] row : best) {
            Arrays.fill(row, Double.POSITIVE_INFINITY);
        }
        if (su[0] <= UNITS) {
            best[0][su[0]] = 0;
        }
        double bestEnd = Double.POSITIVE_INFINITY;
        int endA = -1;
        int endU = -1;
        long[] act = s.act();
        for (int a = 0; a < n; a++) {
            for (int u = 0; u <= UNITS; u++) {
                double c = best[a][u];
                if (c == Double.POSITIVE_INFINITY) {
                    continue;
                }
                long k = u * unit;
                // extend the interval [a, b): inputs a+1..b-1 are recomputed
                long inner = s.exact() ? 0 : act[a];
                long fwd = k + (s.exact() ? 0 : act[a]) + act[a + 1];   // forward of segment a
                double cost = c;
                for (int b = a + 1; b <= n; b++) {
                    if (fwd > budget) {
                        break;
                    }
                    if (b == n) {
                        if (k + inner + act[n] <= budget && (cost < bestEnd || (cost == bestEnd && u < endU))) {
                            bestEnd = cost;
                            endA = a;
                            endU = u;
                        }
                        break;
                    }
                    // checkpoint at b: the interval [a, b) must fit, and so must the forward of b
                    if (k + inner + act[n] <= budget) {
                        int nu = u + su[b];
                        if (nu <= UNITS && cost < best[b][nu]) {
                            best[b][nu] = cost;
                            from[b][nu] = a * (UNITS + 1) + u;
                        }
                    }
                    // or no checkpoint at b: b joins the interval
                    inner += act[b];
                    cost += s.cost()[b - 1];
                    fwd = Math.max(fwd, k + act[b] + act[b + 1]);
                }
            }
        }
        if (endA < 0) {
            return null;
        }
        boolean[] keep = new boolean[n];
        int a = endA;
        int u = endU;
        while (true) {
            keep[a] = true;
            if (a == 0) {
                break;
            }
            int f = from[a][u];
            a = f / (UNITS + 1);
            u = f % (UNITS + 1);
        }
        return keep;
    }

    /**
     * The smallest peak any plan reaches (for the "budget too small" message):
     * the least budget for which {@link #plan} finds a plan, by bisection.
     */
    static long minimumBudget(PlanSizes s) {
        boolean[] all = new boolean[s.n()];
        Arrays.fill(all, true);
        long hi = Math.max(1, s.peak(all));
        for (long b = hi; ; b *= 2) {   // keeping everything may not be the smallest, but some plan fits 2x
            if (plan(s, b) != null) {
                hi = b;
                break;
            }
        }
        long lo = 0;
        while (hi - lo > Math.max(1, hi / 1000)) {
            long mid = lo + (hi - lo) / 2;
            if (plan(s, mid) != null) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        return hi;
    }
}
