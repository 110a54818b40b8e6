package dev.torus.testing;

import java.util.Random;

/** Random test inputs: freshly seeded, mixed magnitudes and signs, never all zeros. */
public final class Data {
    private Data() {}

    /** A new seed per call; print it on failure to reproduce. */
    public static long freshSeed() {
        return System.nanoTime() ^ Thread.currentThread().getId() * 0x9E3779B97F4A7C15L;
    }

    /** Gaussian values scaled by 10^k for k in [-3, 3], with element 0 forced non-zero. */
    public static float[] mixed(Random r, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (r.nextGaussian() * Math.pow(10, r.nextInt(7) - 3));
        }
        if (n > 0 && x[0] == 0) {
            x[0] = 1.0f;
        }
        return x;
    }

    /** Uniform values in (-scale, scale). */
    public static float[] uniform(Random r, int n, float scale) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (r.nextFloat() * 2 - 1) * scale;
        }
        if (n > 0 && x[0] == 0) {
            x[0] = scale / 2;
        }
        return x;
    }

    /** Arbitrary float bit patterns, including NaNs, infinities and denormals. */
    public static float[] bitPatterns(Random r, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = Float.intBitsToFloat(r.nextInt());
        }
        return x;
    }
}
