package dev.torus.cli.demo;

import java.util.Locale;

/**
 * The {@code --parallel dp=D,pp=P,tp=T} layout of {@code ./torus demo}: D data-parallel replicas of a
 * P-stage pipeline whose MLP blocks are split over T tensor-parallel ranks, D·P·T worker processes.
 */
public record ParallelLayout(int dp, int pp, int tp) {
    /** The most worker processes the demo starts (small heaps, 2 cores). */
    public static final int MAX_WORLD = 16;

    public ParallelLayout {
        if (dp < 1 || pp < 1 || tp < 1) {
            throw new IllegalArgumentException("--parallel degrees must be >= 1, got dp=" + dp + ", pp=" + pp + ", tp="
                    + tp);
        }
        if ((long) dp * pp * tp > MAX_WORLD) {
            throw new IllegalArgumentException("--parallel dp×pp×tp must be at most " + MAX_WORLD + " worker processes, got "
                    + dp + "×" + pp + "×" + tp + " = " + ((long) dp * pp * tp));
        }
    }

    public int world() {
        return dp * pp * tp;
    }

    /** Parses {@code dp=D,pp=P,tp=T}; each key at most once, missing ones are 1. */
    public static ParallelLayout parse(String text) {
        if (text == null || text.isBlank()) {
            throw new IllegalArgumentException("--parallel must be dp=D,pp=P,tp=T, got nothing");
        }
        int[] v = {0, 0, 0};
        for (String part : text.split(",", -1)) {
            if (part.isBlank()) {
                throw new IllegalArgumentException("--parallel has an empty item in '" + text + "'");
            }
            String[] kv = part.trim().split("=", 2);
            int i = switch (kv[0].trim().toLowerCase(Locale.ROOT)) {
                case "dp" -> 0;
                case "pp" -> 1;
                case "tp" -> 2;
                default -> throw new IllegalArgumentException("--parallel takes dp=, pp= and tp=, got '" + part.trim()
                        + "' in '" + text + "'");
            };
            if (kv.length != 2) {
                throw new IllegalArgumentException("--parallel: '" + part.trim() + "' needs a value, as in " + kv[0]
                        + "=2");
            }
            if (v[i] != 0) {
                throw new IllegalArgumentException("--parallel gives " + kv[0].trim() + " twice in '" + text + "'");
            }
            try {
                v[i] = Integer.parseInt(kv[1].trim());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--parallel: " + kv[0].trim() + " must be a positive integer, got '"
                        + kv[1].trim() + "'");
            }
            if (v[i] < 1) {
                throw new IllegalArgumentException("--parallel: " + kv[0].trim() + " must be >= 1, got " + v[i]);
            }
        }
        return new ParallelLayout(Math.max(1, v[0]), Math.max(1, v[1]), Math.max(1, v[2]));
    }

    @Override
    public String toString() {
        return "dp=" + dp + ",pp=" + pp + ",tp=" + tp;
    }
}
