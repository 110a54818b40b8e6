package dev.torus.nn;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.tensor.Tensor;
import java.util.Arrays;

/** Argument checks shared by the layers: messages name the argument and what was expected. */
final class Checks {
    private Checks() {}

    static void float32(String name, Tensor t) {
        if (t == null) {
            throw new IllegalArgumentException(name + " must not be null");
        }
        t.ensureOpen();
        if (t.dtype() != DType.FLOAT32) {
            throw new IllegalArgumentException(name + " must be FLOAT32, got " + t.dtype());
        }
    }

    /** {@code t} is FLOAT32, has at least one dimension and its last dimension is {@code features}. */
    static long rows(String layer, String name, Tensor t, long features, Device device) {
        float32(name, t);
        if (t.rank() == 0 || t.dim(t.rank() - 1) != features) {
            throw new IllegalArgumentException(layer + ": " + name + " must have last dimension " + features
                    + ", got shape " + Arrays.toString(t.shape()));
        }
        sameDevice(layer, name, t, device);
        return features == 0 ? 0 : t.numel() / features;
    }

    static void sameDevice(String layer, String name, Tensor t, Device device) {
        if (!t.device().equals(device)) {
            throw new IllegalArgumentException(layer + ": " + name + " must be on " + device + " (the parameters' device), got "
                    + t.device());
        }
    }

    static void sameShape(String layer, String name, Tensor t, Tensor like) {
        float32(name, t);
        if (!Arrays.equals(t.shape(), like.shape())) {
            throw new IllegalArgumentException(layer + ": " + name + " must have shape " + Arrays.toString(like.shape())
                    + ", got " + Arrays.toString(t.shape()));
        }
        if (!t.device().equals(like.device())) {
            throw new IllegalArgumentException(layer + ": " + name + " must be on " + like.device() + ", got " + t.device());
        }
    }

    static int positive(String name, long v) {
        if (v < 1 || v > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(name + " must be in [1, " + Integer.MAX_VALUE + "], got " + v);
        }
        return (int) v;
    }

    static void notNull(String name, Object o) {
        if (o == null) {
            throw new IllegalArgumentException(name + " must not be null");
        }
    }

    static long[] withLast(long[] shape, long last) {
        long[] s = shape.clone();
        s[s.length - 1] = last;
        return s;
    }
}
