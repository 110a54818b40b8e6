package dev.torus.cli.demo;

import java.util.SplittableRandom;

/**
 * The demo's data set, generated from a seed so every process builds the same one
 * and nothing is downloaded: {@code classes} classes in {@code features} dimensions,
 * each class a mixture of two Gaussian clusters (so no single linear boundary
 * separates the classes), squashed by tanh. Row-major fp32 features and int labels.
 */
public final class DemoData {
    public static final int FEATURES = 32;
    public static final int CLASSES = 8;
    static final double CENTER_SCALE = 0.4;
    static final double NOISE = 1.0;

    public final float[] x;
    public final int[] y;
    public final int rows;

    private DemoData(float[] x, int[] y) {
        this.x = x;
        this.y = y;
        this.rows = y.length;
    }

    /** {@code rows} samples; {@code split} 0 for training, 1 for the held-out test set (same clusters). */
    public static DemoData generate(long seed, int rows, int split) {
        SplittableRandom centers = new SplittableRandom(seed);
        double[][] mu = new double[2 * CLASSES][FEATURES];
        for (double[] m : mu) {
            for (int j = 0; j < FEATURES; j++) {
                m[j] = CENTER_SCALE * centers.nextGaussian() * 2;
            }
        }
        SplittableRandom r = new SplittableRandom(seed * 31 + 7 + split);
        float[] x = new float[rows * FEATURES];
        int[] y = new int[rows];
        for (int i = 0; i < rows; i++) {
            int c = r.nextInt(CLASSES);
            double[] m = mu[2 * c + r.nextInt(2)];
            for (int j = 0; j < FEATURES; j++) {
                x[i * FEATURES + j] = (float) Math.tanh(0.5 * (m[j] + NOISE * r.nextGaussian()));
            }
            y[i] = c;
        }
        return new DemoData(x, y);
    }

    /** Copies the rows at {@code indices} into {@code xOut} / {@code yOut} starting at row {@code at}. */
    public void gather(int[] indices, int from, int count, float[] xOut, int[] yOut, int at) {
        for (int k = 0; k < count; k++) {
            int i = indices[from + k];
            System.arraycopy(x, i * FEATURES, xOut, (at + k) * FEATURES, FEATURES);
            yOut[at + k] = y[i];
        }
    }
}
