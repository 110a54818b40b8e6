package dev.torus.nn;

import static dev.torus.internal.NativeAccess.TOKEN;

import dev.torus.DType;
import dev.torus.NativeLibrary;
import dev.torus.tensor.Tensor;
import dev.torus.jni.TorusNative;
import dev.torus.memory.MemoryBuffer;

/**
 * The kernels that make recomputation cheap and exact: fused bias+GELU (backward
 * from the saved pre-activation, never the output), dropout whose mask is
 * regenerated from (seed, offset) instead of stored, and LayerNorm whose backward
 * recomputes the row statistics. fp32, row-major {@code [rows, cols]}; inputs of
 * any rank are treated as rows of their last dimension.
 *
 * <p>The same call runs on the tensors' device; CPU and CUDA results are
 * bit-identical (docs/RECOMPUTE.md). Outputs are written in place into tensors the
 * caller owns; the only allocation is LayerNorm backward's scratch, from dx's allocator.
 */
public final class RecomputeKernels {
    private RecomputeKernels() {}

    /** {@code y = gelu(x + bias)} (tanh form), bias broadcast over rows. */
    public static void biasGeluForward(Tensor x, Tensor bias, Tensor y) {
        Shape s = Shape.of("x", x);
        checkVector("bias", bias, s.cols, x);
        checkLike("y", y, x);
        NativeLibrary.check(TorusNative.torus_bias_gelu_forward(code(x), 0L, x.dataAddress(TOKEN), bias.dataAddress(TOKEN),
                y.dataAddress(TOKEN), s.rows, s.cols), "biasGeluForward");
    }

    /**
     * {@code dx = gelu'(x + bias) * dy}, where {@code x} is the saved pre-activation;
     * {@code dbias} (nullable) receives the column sums of {@code dx}.
     */
    public static void biasGeluBackward(Tensor x, Tensor bias, Tensor dy, Tensor dx, Tensor dbias) {
        Shape s = Shape.of("x", x);
        checkVector("bias", bias, s.cols, x);
        checkLike("dy", dy, x);
        checkLike("dx", dx, x);
        if (dbias != null) {
            checkVector("dbias", dbias, s.cols, x);
        }
        NativeLibrary.check(TorusNative.torus_bias_gelu_backward(code(x), 0L, x.dataAddress(TOKEN), bias.dataAddress(TOKEN),
                dy.dataAddress(TOKEN), dx.dataAddress(TOKEN), dbias == null ? 0L : dbias.dataAddress(TOKEN), s.rows, s.cols),
                "biasGeluBackward");
    }

    /**
     * Inverted dropout: element i is kept when Philox(seed, offset + i) >= p and then
     * scaled by 1/(1-p). Calling it on the upstream gradient with the same
     * (seed, offset) is the backward pass.
     */
    public static void dropout(Tensor x, Tensor y, float p, long seed, long offset) {
        Shape.of("x", x);
        checkLike("y", y, x);
        if (!(p >= 0f && p < 1f)) {
            throw new IllegalArgumentException("p must be in [0, 1), got " + p);
        }
        if (offset < 0) {
            throw new IllegalArgumentException("offset must be >= 0, got " + offset);
        }
        NativeLibrary.check(TorusNative.torus_dropout(code(x), 0L, x.dataAddress(TOKEN), y.dataAddress(TOKEN), x.numel(), p, seed,
                offset), "dropout");
    }

    /** LayerNorm over the last dimension; {@code mean} and {@code rstd} (nullable) get one value per row. */
    public static void layerNormForward(Tensor x, Tensor gamma, Tensor beta, Tensor y, Tensor mean, Tensor rstd,
                                        float eps) {
        Shape s = Shape.of("x", x);
        checkVector("gamma", gamma, s.cols, x);
        checkVector("beta", beta, s.cols, x);
        checkLike("y", y, x);
        if (mean != null) {
            checkVector("mean", mean, s.rows, x);
        }
        if (rstd != null) {
            checkVector("rstd", rstd, s.rows, x);
        }
        checkEps(eps);
        NativeLibrary.check(TorusNative.torus_layernorm_forward(code(x), 0L, x.dataAddress(TOKEN), gamma.dataAddress(TOKEN),
                beta.dataAddress(TOKEN), y.dataAddress(TOKEN), mean == null ? 0L : mean.dataAddress(TOKEN),
                rstd == null ? 0L : rstd.dataAddress(TOKEN), s.rows, s.cols, eps), "layerNormForward");
    }

    /**
     * LayerNorm backward from the saved input; {@code dgamma} and {@code dbeta} are nullable.
     * When either is given, the kernels need {@code 8 * rows} bytes of scratch on x's
     * device for the row statistics. It is drawn for the call from dx's allocator (where
     * the backward pass keeps its outputs), so it is accounted and over a limit it is an
     * {@link dev.torus.OutOfMemoryException}; it is freed, with the status checked,
     * before this returns (on CUDA, stream-ordered after the kernels).
     */
    public static void layerNormBackward(Tensor x, Tensor gamma, Tensor dy, Tensor dx, Tensor dgamma, Tensor dbeta,
                                         float eps) {
        Shape s = Shape.of("x", x);
        checkVector("gamma", gamma, s.cols, x);
        checkLike("dy", dy, x);
        checkLike("dx", dx, x);
        if (dgamma != null) {
            checkVector("dgamma", dgamma, s.cols, x);
        }
        if (dbeta != null) {
            checkVector("dbeta", dbeta, s.cols, x);
        }
        checkEps(eps);
        int device = code(x);
        boolean params = dgamma != null || dbeta != null;
        try (MemoryBuffer scratch = params && s.rows > 0 ? dx.allocator().allocate(x.device(), 8L * s.rows) : null) {
            NativeLibrary.check(TorusNative.torus_layernorm_backward(device, 0L, x.dataAddress(TOKEN), gamma.dataAddress(TOKEN),
                    dy.dataAddress(TOKEN), dx.dataAddress(TOKEN), dgamma == null ? 0L : dgamma.dataAddress(TOKEN),
                    dbeta == null ? 0L : dbeta.dataAddress(TOKEN), scratch == null ? 0L : scratch.address(TOKEN), s.rows,
                    s.cols, eps), "layerNormBackward");
        }
    }

    private static int code(Tensor x) {
        x.device().ensureUsable();
        return x.device().nativeCode();
    }

    private static void checkEps(float eps) {
        if (!(eps > 0f) || Float.isInfinite(eps)) {
            throw new IllegalArgumentException("eps must be a positive finite number, got " + eps);
        }
    }

    private record Shape(long rows, long cols) {
        static Shape of(String name, Tensor x) {
            if (x == null) {
                throw new IllegalArgumentException(name + " must not be null");
            }
            x.ensureOpen();
            if (x.dtype() != DType.FLOAT32) {
                throw new IllegalArgumentException(name + " must be FLOAT32, got " + x.dtype());
            }
            if (x.rank() == 0) {
                throw new IllegalArgumentException(name + " must have at least one dimension");
            }
            long cols = x.dim(x.rank() - 1);
            return new Shape(cols == 0 ? 0 : x.numel() / cols, cols);
        }
    }

    private static void checkLike(String name, Tensor t, Tensor x) {
        if (t == null) {
            throw new IllegalArgumentException(name + " must not be null");
        }
        t.ensureOpen();
        if (t.dtype() != DType.FLOAT32) {
            throw new IllegalArgumentException(name + " must be FLOAT32, got " + t.dtype());
        }
        if (!java.util.Arrays.equals(t.shape(), x.shape())) {
            throw new IllegalArgumentException(name + " must have shape " + java.util.Arrays.toString(x.shape())
                    + ", got " + java.util.Arrays.toString(t.shape()));
        }
        if (!t.device().equals(x.device())) {
            throw new IllegalArgumentException(name + " must be on " + x.device() + ", got " + t.device());
        }
    }

    private static void checkVector(String name, Tensor t, long n, Tensor x) {
        if (t == null) {
            throw new IllegalArgumentException(name + " must not be null");
        }
        t.ensureOpen();
        if (t.dtype() != DType.FLOAT32) {
            throw new IllegalArgumentException(name + " must be FLOAT32, got " + t.dtype());
        }
        if (t.numel() != n) {
            throw new IllegalArgumentException(name + " must have " + n + " elements, got " + t.numel());
        }
        if (!t.device().equals(x.device())) {
            throw new IllegalArgumentException(name + " must be on " + x.device() + ", got " + t.device());
        }
    }
}
