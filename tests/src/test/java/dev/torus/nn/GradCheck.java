package dev.torus.nn;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.tensor.Tensor;
import dev.torus.memory.HostBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.function.DoubleSupplier;

/** Central finite differences against analytic gradients, for CPU tensors. */
final class GradCheck {
    private GradCheck() {}

    static final float H = 1e-2f;

    static FloatBuffer floats(Tensor t) {
        return ((HostBuffer) t.buffer()).view(0, t.byteSize()).order(ByteOrder.nativeOrder()).asFloatBuffer();
    }

    /**
     * For every element of {@code x}, compares (L(x + h) - L(x - h)) / 2h with
     * {@code analytic}; {@code loss} must recompute L from the current values of x.
     */
    static void check(String what, Tensor x, float[] analytic, DoubleSupplier loss) {
        FloatBuffer f = floats(x);
        double worst = 0;
        for (int i = 0; i < analytic.length; i++) {
            float orig = f.get(i);
            f.put(i, orig + H);
            double lp = loss.getAsDouble();
            f.put(i, orig - H);
            double lm = loss.getAsDouble();
            f.put(i, orig);
            double fd = (lp - lm) / (2.0 * H);
            double err = Math.abs(fd - analytic[i]) / Math.max(1.0, Math.abs(analytic[i]));
            worst = Math.max(worst, err);
            assertTrue(err < 2e-2, what + "[" + i + "]: finite difference " + fd + ", analytic " + analytic[i]);
        }
        assertTrue(analytic.length > 0, what + ": nothing checked");
    }

    /** L = sum(y * r) in double. */
    static double dot(Tensor y, float[] r) {
        float[] v = y.toFloatArray();
        double s = 0;
        for (int i = 0; i < v.length; i++) {
            s += (double) v[i] * r[i];
        }
        return s;
    }
}
