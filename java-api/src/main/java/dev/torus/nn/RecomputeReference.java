package dev.torus.nn;

import dev.torus.quant.ScalarReference;

/**
 * Scalar Java versions of the recompute kernels, written independently of the
 * native code but with the same float operations in the same order, so tests can
 * demand bit equality. Java float arithmetic is IEEE with no fused multiply-add,
 * which is what the kernels are built for.
 */
public final class RecomputeReference {
    private RecomputeReference() {}

    static final float GELU_C = 0.7978845608028654f;
    static final float GELU_A = 0.044715f;
    static final int LANES = 32;

    public static float exp(float x) {
        x = x < -87.0f ? -87.0f : x;
        x = x > 88.0f ? 88.0f : x;
        float kf = (float) Math.rint(x * 1.44269504088896341f);
        float r = x - kf * 0.693145751953125f;
        r = r - kf * 1.428606765330187045e-06f;
        float p = 1.0f / 5040.0f;
        p = p * r + 1.0f / 720.0f;
        p = p * r + 1.0f / 120.0f;
        p = p * r + 1.0f / 24.0f;
        p = p * r + 1.0f / 6.0f;
        p = p * r + 0.5f;
        p = p * r + 1.0f;
        p = p * r + 1.0f;
        int k = (int) kf;
        int k1 = k / 2;
        int k2 = k - k1;
        float s1 = Float.intBitsToFloat((k1 + 127) << 23);
        float s2 = Float.intBitsToFloat((k2 + 127) << 23);
        return p * s1 * s2;
    }

    public static float tanh(float u) {
        float a = u < 0.0f ? -u : u;
        float t = a > 9.0f ? 1.0f : 1.0f - 2.0f / (exp(2.0f * a) + 1.0f);
        return u < 0.0f ? -t : t;
    }

    public static float gelu(float z) {
        float t = tanh(GELU_C * z * (1.0f + GELU_A * z * z));
        return 0.5f * z * (1.0f + t);
    }

    public static float geluGrad(float z) {
        float t = tanh(GELU_C * z * (1.0f + GELU_A * z * z));
        float dt = (1.0f - t * t) * (GELU_C * (1.0f + 3.0f * GELU_A * z * z));
        return 0.5f * (1.0f + t) + 0.5f * z * dt;
    }

    public static boolean dropoutKeep(long seed, long index, float p) {
        return ScalarReference.uniform(seed, index) >= p;
    }

    /** The canonical row sum: 32 interleaved partials, then the butterfly 16, 8, 4, 2, 1. */
    public static float rowSum(float[] v) {
        float[] p = new float[LANES];
        for (int i = 0; i < v.length; i++) {
            p[i % LANES] += v[i];
        }
        for (int off = LANES / 2; off >= 1; off /= 2) {
            for (int j = 0; j < off; j++) {
                p[j] = p[j] + p[j + off];
            }
        }
        return p[0];
    }

    /**
     * The canonical column sums of a row-major {@code [rows, cols]} matrix (dbias, dgamma,
     * dbeta, {@code column_sum}): each column summed in the row sum's order, that is 32
     * interleaved partials over the rows, then the butterfly 16, 8, 4, 2, 1.
     */
    public static float[] columnSums(float[] v, int rows, int cols) {
        float[] out = new float[cols];
        float[] col = new float[rows];
        for (int c = 0; c < cols; c++) {
            for (int r = 0; r < rows; r++) {
                col[r] = v[r * cols + c];
            }
            out[c] = rowSum(col);
        }
        return out;
    }

    /** LayerNorm of one row: returns {mean, rstd} and writes y. */
    public static float[] layerNormRow(float[] x, float[] gamma, float[] beta, float[] y, float eps) {
        float n = x.length;
        float mu = rowSum(x) / n;
        float[] sq = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            float d = x[i] - mu;
            sq[i] = d * d;
        }
        float var = rowSum(sq) / n;
        float rs = 1.0f / (float) Math.sqrt(var + eps);
        for (int c = 0; c < x.length; c++) {
            y[c] = (x[c] - mu) * rs * gamma[c] + beta[c];
        }
        return new float[] {mu, rs};
    }

    /** LayerNorm backward of one row (dx only). */
    public static void layerNormRowBackward(float[] x, float[] gamma, float[] dy, float[] dx, float eps) {
        float n = x.length;
        float[] tmp = new float[x.length];
        float[] stats = layerNormRow(x, gamma, new float[x.length], tmp, eps);
        float mu = stats[0];
        float rs = stats[1];
        float[] g = new float[x.length];
        float[] gx = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            g[i] = gamma[i] * dy[i];
            gx[i] = gamma[i] * dy[i] * ((x[i] - mu) * rs);
        }
        float a = rowSum(g) / n;
        float b = rowSum(gx) / n;
        for (int c = 0; c < x.length; c++) {
            float xhat = (x[c] - mu) * rs;
            dx[c] = rs * (gamma[c] * dy[c] - a - xhat * b);
        }
    }
}
