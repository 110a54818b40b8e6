package dev.torus.quant;

import static dev.torus.internal.NativeAccess.TOKEN;

import java.util.ArrayList;
import java.util.List;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.NativeLibrary;
import dev.torus.tensor.Tensor;
import dev.torus.jni.TorusNative;
import dev.torus.memory.Allocator;

/**
 * Quantize, dequantize and cast tensors on the CPU or a CUDA device. Every
 * argument is checked here, before any native call; a bad one raises
 * {@link IllegalArgumentException} naming it and the expected value, and a
 * closed tensor raises {@link IllegalStateException}. Results live on the
 * input's device and come from the input's allocator; the caller owns them.
 * CUDA work is queued on the device's default stream. Stateless and thread-safe.
 *
 * <p>Semantics (rounding, non-finite values, CPU/GPU bit-identity) are written
 * down in docs/QUANTIZATION.md.
 */
public final class Quantizer {
    private Quantizer() {}

    /** Quantizes {@code x} (FLOAT32, FLOAT16 or BFLOAT16) according to {@code spec}. */
    public static QuantizedTensor quantize(Tensor x, QuantSpec spec) {
        checkInput(x, "x");
        if (spec == null) {
            throw new IllegalArgumentException("spec must not be null");
        }
        Groups g = Groups.of(x, spec.granularity(), spec.axis(), spec.blockSize());
        if (spec.scheme() == QuantSpec.Scheme.AFFINE && spec.scalesInternal().length != g.count) {
            throw new IllegalArgumentException("spec: expected " + g.count + " scales for " + spec.granularity()
                    + (spec.granularity() == QuantSpec.Granularity.PER_CHANNEL ? " on axis " + spec.axis()
                    + " of shape " + java.util.Arrays.toString(x.shape()) : "") + ", got " + spec.scalesInternal().length);
        }
        Allocator alloc = x.allocator();
        Device dev = x.device();
        List<Tensor> made = new ArrayList<>(3);
        try {
            Tensor values = track(made, Tensor.empty(alloc, spec.dtype(), dev, x.shape()));
            Tensor scales;
            Tensor zeroPoints = null;
            if (spec.scheme() == QuantSpec.Scheme.SYMMETRIC) {
                scales = track(made, Tensor.empty(alloc, DType.FLOAT32, dev, g.count));
            } else {
                scales = track(made, onDevice(Tensor.fromArray(alloc, spec.scalesInternal(), g.count), dev));
                zeroPoints = track(made, onDevice(Tensor.fromArray(alloc, spec.zeroPointsInternal(), g.count), dev));
            }
            QuantizedTensor q = new QuantizedTensor(values, scales, zeroPoints, spec);
            quantizeInto(x, q);
            return q;
        } catch (RuntimeException e) {
            closeAll(made);
            throw e;
        }
    }

    /**
     * Quantizes {@code x} into an existing result (no allocation; for hot loops).
     * {@code out} must have been made for the same shape, device and spec, by
     * {@link #quantize}, {@link QuantizedTensor#allocate} or {@link QuantizedTensor#of}. Symmetric specs overwrite
     * its scales; affine specs use the scales and zero points it holds.
     */
    public static void quantizeInto(Tensor x, QuantizedTensor out) {
        checkInput(x, "x");
        if (out == null) {
            throw new IllegalArgumentException("out must not be null");
        }
        out.ensureOpen();
        QuantSpec spec = out.spec();
        Tensor values = out.values();
        checkSameLayout(x, "x", values, "out.values");
        Groups g = Groups.of(x, spec.granularity(), spec.axis(), spec.blockSize());
        if (g.count == 0) {
            return;
        }
        Device dev = x.device();
        int sr = spec.isStochastic() ? 1 : 0;
        if (spec.scheme() == QuantSpec.Scheme.SYMMETRIC) {
            NativeLibrary.check(TorusNative.torus_quantize_symmetric(dev.nativeCode(), 0L, x.dtype().code(),
                    x.dataAddress(TOKEN), g.n, g.outer, g.channels, g.inner, g.block, values.dataAddress(TOKEN),
                    out.scales().dataAddress(TOKEN), sr, spec.seed()), "quantize(" + spec + ")");
        } else {
            NativeLibrary.check(TorusNative.torus_quantize_affine(dev.nativeCode(), 0L, x.dtype().code(),
                    x.dataAddress(TOKEN), g.n, g.outer, g.channels, g.inner, g.block, out.scales().dataAddress(TOKEN),
                    out.zeroPoints().dataAddress(TOKEN), spec.qmin(), spec.qmax(), spec.dtype().code(),
                    values.dataAddress(TOKEN), sr, spec.seed()), "quantize(" + spec + ")");
        }
    }

    /** Dequantizes to {@code out} (FLOAT32, FLOAT16 or BFLOAT16): y = (q - zp) * scale, rounded once. */
    public static Tensor dequantize(QuantizedTensor q, DType out) {
        if (q == null) {
            throw new IllegalArgumentException("q must not be null");
        }
        q.ensureOpen();
        checkFloatType(out, "out");
        Tensor values = q.values();
        Tensor y = Tensor.empty(values.allocator(), out, values.device(), values.shape());
        try {
            dequantizeInto(q, y);
            return y;
        } catch (RuntimeException e) {
            y.close();
            throw e;
        }
    }

    /**
     * Dequantizes into an existing tensor {@code y} (no allocation): y must be open,
     * FLOAT32/FLOAT16/BFLOAT16, on q's device and of q's shape.
     */
    public static void dequantizeInto(QuantizedTensor q, Tensor y) {
        if (q == null) {
            throw new IllegalArgumentException("q must not be null");
        }
        q.ensureOpen();
        if (y == null) {
            throw new IllegalArgumentException("y must not be null");
        }
        y.ensureOpen();
        checkFloatType(y.dtype(), "y.dtype");
        Tensor values = q.values();
        checkSameLayout(values, "q.values", y, "y");
        QuantSpec spec = q.spec();
        Groups g = Groups.of(values, spec.granularity(), spec.axis(), spec.blockSize());
        if (g.count == 0) {
            return;
        }
        Tensor zp = q.zeroPoints();
        NativeLibrary.check(TorusNative.torus_dequantize(values.device().nativeCode(), 0L, values.dtype().code(),
                values.dataAddress(TOKEN), g.n, g.outer, g.channels, g.inner, g.block, q.scales().dataAddress(TOKEN),
                zp == null ? 0L : zp.dataAddress(TOKEN), y.dtype().code(), y.dataAddress(TOKEN)),
                "dequantize(" + spec + " -> " + y.dtype() + ")");
    }

    /** Converts among FLOAT32, FLOAT16 and BFLOAT16 with round-to-nearest-even; NaN and Inf are kept. */
    public static Tensor cast(Tensor x, DType to) {
        checkInput(x, "x");
        checkFloatType(to, "to");
        Tensor y = Tensor.empty(x.allocator(), to, x.device(), x.shape());
        try {
            castInto(x, y);
            return y;
        } catch (RuntimeException e) {
            y.close();
            throw e;
        }
    }

    /** Casts into an existing tensor {@code y} of the same shape and device (no allocation). */
    public static void castInto(Tensor x, Tensor y) {
        checkInput(x, "x");
        checkInput(y, "y");
        checkSameLayout(x, "x", y, "y");
        if (x.numel() > 0) {
            NativeLibrary.check(TorusNative.torus_cast(x.device().nativeCode(), 0L, x.dtype().code(),
                    x.dataAddress(TOKEN), y.dtype().code(), y.dataAddress(TOKEN), x.numel()),
                    "cast(" + x.dtype() + " -> " + y.dtype() + ")");
        }
    }

    static void checkSameLayout(Tensor a, String aName, Tensor b, String bName) {
        if (!a.device().equals(b.device())) {
            throw new IllegalArgumentException(bName + ": expected a tensor on " + a.device() + " (the device of "
                    + aName + "), got " + b.device());
        }
        if (!java.util.Arrays.equals(a.shape(), b.shape())) {
            throw new IllegalArgumentException(bName + ": expected shape " + java.util.Arrays.toString(a.shape())
                    + " (the shape of " + aName + "), got " + java.util.Arrays.toString(b.shape()));
        }
    }

    /** Largest |x| over the finite values of {@code x}; 0 when there is none. */
    public static float absMax(Tensor x) {
        return perTensorStats(x, true)[0];
    }

    /** {min, max} over the finite values of {@code x}; {0, 0} when there is none. */
    public static float[] minMax(Tensor x) {
        return perTensorStats(x, false);
    }

    /** {absmax} or {min, max} of the whole tensor; the kernel computes only what is asked. */
    private static float[] perTensorStats(Tensor x, boolean abs) {
        checkInput(x, "x");
        try (Tensor out = Tensor.empty(x.allocator(), DType.FLOAT32, x.device(), abs ? 1 : 2)) {
            long base = out.dataAddress(TOKEN);
            NativeLibrary.check(TorusNative.torus_stats(x.device().nativeCode(), 0L, x.dtype().code(),
                    x.dataAddress(TOKEN), x.numel(), 1, 1, x.numel(), 0, abs ? base : 0L, abs ? 0L : base,
                    abs ? 0L : base + 4), abs ? "absMax" : "minMax");
            return out.toFloatArray();
        }
    }

    /**
     * Absmax, min and max of each group of {@code x}, grouped as {@code spec}'s
     * granularity says (its scales, if any, are ignored).
     */
    public static GroupStats stats(Tensor x, QuantSpec spec) {
        checkInput(x, "x");
        if (spec == null) {
            throw new IllegalArgumentException("spec must not be null");
        }
        Groups g = Groups.of(x, spec.granularity(), spec.axis(), spec.blockSize());
        List<Tensor> made = new ArrayList<>(3);
        try {
            Tensor a = track(made, Tensor.empty(x.allocator(), DType.FLOAT32, x.device(), g.count));
            Tensor mn = track(made, Tensor.empty(x.allocator(), DType.FLOAT32, x.device(), g.count));
            Tensor mx = track(made, Tensor.empty(x.allocator(), DType.FLOAT32, x.device(), g.count));
            if (g.count > 0) {
                NativeLibrary.check(TorusNative.torus_stats(x.device().nativeCode(), 0L, x.dtype().code(),
                        x.dataAddress(TOKEN), g.n, g.outer, g.channels, g.inner, g.block, a.dataAddress(TOKEN), mn.dataAddress(TOKEN),
                        mx.dataAddress(TOKEN)), "stats(" + spec.granularity() + ")");
            }
            return new GroupStats(a, mn, mx);
        } catch (RuntimeException e) {
            closeAll(made);
            throw e;
        }
    }

    // ---- internals -------------------------------------------------------------------

    /** The [outer, channels, inner] or block view of a tensor for one granularity. */
    static final class Groups {
        final long n;
        final long outer;
        final long channels;
        final long inner;
        final long block;
        final long count;

        private Groups(long n, long outer, long channels, long inner, long block, long count) {
            this.n = n;
            this.outer = outer;
            this.channels = channels;
            this.inner = inner;
            this.block = block;
            this.count = count;
        }

        static Groups of(Tensor x, QuantSpec.Granularity granularity, int axis, int blockSize) {
            long n = x.numel();
            long[] shape = x.shape();
            switch (granularity) {
                case PER_TENSOR:
                    return new Groups(n, 1, 1, n, 0, 1);
                case BLOCKWISE:
                    return new Groups(n, 1, 1, n, blockSize, (n + blockSize - 1) / blockSize);
                case PER_CHANNEL: {
                    if (shape.length == 0) {
                        throw new IllegalArgumentException("axis: per-channel quantization needs a tensor of rank >= 1, got a scalar");
                    }
                    int a = x.normalizeAxis(axis);
                    long outer = 1;
                    long inner = 1;
                    for (int i = 0; i < a; i++) {
                        outer *= shape[i];
                    }
                    for (int i = a + 1; i < shape.length; i++) {
                        inner *= shape[i];
                    }
                    long c = shape[a];
                    if (c == 0) {
                        return new Groups(n, outer, 1, inner, 0, 0);
                    }
                    return new Groups(n, outer, c, inner, 0, c);
                }
                default:
                    throw new IllegalStateException("unhandled granularity " + granularity);
            }
        }
    }

    private static Tensor onDevice(Tensor host, Device dev) {
        if (dev.isCpu()) {
            return host;
        }
        try (Tensor h = host) {
            return h.to(dev);
        }
    }

    private static Tensor track(List<Tensor> made, Tensor t) {
        made.add(t);
        return t;
    }

    private static void closeAll(List<Tensor> made) {
        for (Tensor t : made) {
            try {
                t.close();
            } catch (RuntimeException ignored) {
                // Already failing: keep the original exception.
            }
        }
    }

    private static void checkInput(Tensor x, String name) {
        if (x == null) {
            throw new IllegalArgumentException(name + " must not be null");
        }
        x.ensureOpen();
        if (!x.dtype().isKernelFloat()) {
            throw new IllegalArgumentException(name + ": expected dtype FLOAT32, FLOAT16 or BFLOAT16, got " + x.dtype());
        }
    }

    private static void checkFloatType(DType t, String name) {
        if (t == null || !t.isKernelFloat()) {
            throw new IllegalArgumentException(name + ": expected FLOAT32, FLOAT16 or BFLOAT16, got " + t);
        }
    }
}
