package dev.torus.testing;

import dev.torus.DType;
import dev.torus.comm.ReduceOp;
import java.util.Random;

/**
 * Per-rank test inputs and the scalar reference results of reductions over them.
 * Inputs are small integers, so every dtype holds them exactly and sums do not
 * depend on the order in which a backend adds them.
 */
public final class CommReference {
    private CommReference() {}

    /** Deterministic input of {@code rank} for a run seeded by {@code seed}. */
    public static double[] input(long seed, int rank, DType dt, ReduceOp op, int n) {
        Random r = new Random(seed * 1_000_003L + rank * 7919L + dt.ordinal() * 31L + op.ordinal());
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            if (op == ReduceOp.PROD) {
                int[] choices = dt == DType.UINT8 ? new int[] {1, 2, 1} : new int[] {1, 2, -1};
                v[i] = choices[r.nextInt(3)];
            } else if (dt == DType.UINT8) {
                v[i] = r.nextInt(16);
            } else {
                v[i] = r.nextInt(17) - 8;
            }
        }
        return v;
    }

    /** Reduction of the given rank inputs, stored in {@code dt} the way the backends define it. */
    public static double[] reduce(DType dt, ReduceOp op, double[][] perRank) {
        int n = perRank[0].length;
        int ranks = perRank.length;
        double[] out = new double[n];
        for (int i = 0; i < n; i++) {
            double acc = perRank[0][i];
            for (int r = 1; r < ranks; r++) {
                double x = perRank[r][i];
                acc = switch (op) {
                    case SUM, AVG -> acc + x;
                    case PROD -> acc * x;
                    case MIN -> Math.min(acc, x);
                    case MAX -> Math.max(acc, x);
                };
            }
            if (op == ReduceOp.AVG) {
                acc = average(dt, TypedData.store(dt, acc), ranks);
            }
            out[i] = TypedData.store(dt, acc);
        }
        return out;
    }

    private static double average(DType dt, double sum, int ranks) {
        return switch (dt) {
            case FLOAT64 -> sum / ranks;
            case FLOAT32, FLOAT16, BFLOAT16 -> (float) sum / (float) ranks;
            default -> (double) ((long) sum / ranks);
        };
    }
}
