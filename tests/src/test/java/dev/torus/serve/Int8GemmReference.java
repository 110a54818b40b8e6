package dev.torus.serve;

/**
 * The scalar reference of the weight-only int8 GEMM, written in the kernels' order of summation (see
 * {@link Int8Gemm}): 16 partials per output over k mod 16, the butterfly 8, 4, 2, 1, the scale, the bias. Java's
 * float arithmetic is IEEE single precision with no contraction, so the kernels must match it bit for bit.
 */
final class Int8GemmReference {
    private Int8GemmReference() {}

    static final int LANES = 16;

    /** y [m, n] from x [m, k], q [n, k], scale [n] and bias [n] (or null). */
    static float[] multiply(float[] x, byte[] q, float[] scale, float[] bias, int m, int n, int k) {
        float[] y = new float[m * n];
        float[] p = new float[LANES];
        for (int i = 0; i < m; i++) {
            for (int c = 0; c < n; c++) {
                java.util.Arrays.fill(p, 0.0f);
                for (int j = 0; j < k; j++) {
                    p[j % LANES] = p[j % LANES] + x[i * k + j] * (float) q[c * k + j];
                }
                for (int off = LANES / 2; off >= 1; off /= 2) {
                    for (int j = 0; j < off; j++) {
                        p[j] = p[j] + p[j + off];
                    }
                }
                float v = p[0] * scale[c];
                y[i * n + c] = bias == null ? v : v + bias[c];
            }
        }
        return y;
    }

    /** The same sum in double precision, in plain order: the exact value up to double rounding. */
    static double[] exact(float[] x, byte[] q, float[] scale, float[] bias, int m, int n, int k) {
        double[] y = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int c = 0; c < n; c++) {
                double s = 0;
                for (int j = 0; j < k; j++) {
                    s += (double) x[i * k + j] * q[c * k + j];
                }
                y[i * n + c] = s * scale[c] + (bias == null ? 0 : bias[c]);
            }
        }
        return y;
    }

    /** {@code q} bytes in [-127, 127], with -128 now and then (the kernel takes any int8). */
    static byte[] weights(java.util.Random r, int count) {
        byte[] q = new byte[count];
        for (int i = 0; i < count; i++) {
            q[i] = (byte) (r.nextInt(50) == 0 ? -128 : r.nextInt(255) - 127);
        }
        return q;
    }

    /** Positive per-channel scales of mixed magnitude. */
    static float[] scales(java.util.Random r, int n) {
        float[] s = new float[n];
        for (int i = 0; i < n; i++) {
            s[i] = (float) (Math.pow(10, r.nextInt(5) - 4) * (0.5 + r.nextDouble()));
        }
        return s;
    }
}
