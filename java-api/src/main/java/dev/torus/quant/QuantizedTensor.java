package dev.torus.quant;

import dev.torus.Device;
import dev.torus.tensor.Tensor;

/**
 * The result of {@link Quantizer#quantize}: the quantized values (INT8 or UINT8,
 * the input's shape), the FLOAT32 scales (one per group) and, for affine specs,
 * the INT32 zero points. Owns the three tensors; {@link #close()} frees them.
 * Not thread-safe.
 */
public final class QuantizedTensor implements AutoCloseable {
    private final Tensor values;
    private final Tensor scales;
    private final Tensor zeroPoints;
    private final QuantSpec spec;

    QuantizedTensor(Tensor values, Tensor scales, Tensor zeroPoints, QuantSpec spec) {
        this.values = values;
        this.scales = scales;
        this.zeroPoints = zeroPoints;
        this.spec = spec;
    }

    /**
     * Assembles a quantized tensor from parts (for example values received over
     * the network), checking that they agree: values INT8/UINT8 as the spec says,
     * scales FLOAT32 with one entry per group, zero points INT32 (affine only),
     * all open and on one device. Ownership of the parts passes to the result.
     */
    public static QuantizedTensor of(Tensor values, Tensor scales, Tensor zeroPoints, QuantSpec spec) {
        if (spec == null) {
            throw new IllegalArgumentException("spec must not be null");
        }
        if (values == null || scales == null) {
            throw new IllegalArgumentException((values == null ? "values" : "scales") + " must not be null");
        }
        values.ensureOpen();
        scales.ensureOpen();
        if (values.dtype() != spec.dtype()) {
            throw new IllegalArgumentException("values: expected dtype " + spec.dtype() + ", got " + values.dtype());
        }
        if (scales.dtype() != dev.torus.DType.FLOAT32) {
            throw new IllegalArgumentException("scales: expected dtype FLOAT32, got " + scales.dtype());
        }
        long groups = Quantizer.Groups.of(values, spec.granularity(), spec.axis(), spec.blockSize()).count;
        if (scales.numel() != groups) {
            throw new IllegalArgumentException("scales: expected " + groups + " elements for " + spec + ", got "
                    + scales.numel());
        }
        if (!scales.device().equals(values.device())) {
            throw new IllegalArgumentException("scales: expected a tensor on " + values.device() + ", got "
                    + scales.device());
        }
        boolean affine = spec.scheme() == QuantSpec.Scheme.AFFINE;
        if (affine != (zeroPoints != null)) {
            throw new IllegalArgumentException("zeroPoints: expected " + (affine ? "an INT32 tensor for an affine spec"
                    : "null for a symmetric spec") + ", got " + zeroPoints);
        }
        if (zeroPoints != null) {
            zeroPoints.ensureOpen();
            if (zeroPoints.dtype() != dev.torus.DType.INT32 || zeroPoints.numel() != groups
                    || !zeroPoints.device().equals(values.device())) {
                throw new IllegalArgumentException("zeroPoints: expected INT32 with " + groups + " elements on "
                        + values.device() + ", got " + zeroPoints);
            }
        }
        checkScales(scales, affine);
        return new QuantizedTensor(values, scales, zeroPoints, spec);
    }

    /**
     * An uninitialised result for {@link Quantizer#quantizeInto} with a symmetric spec, which
     * writes both the values and the scales (for hot loops that quantize into the same
     * buffers). Both tensors come from {@code allocator}; the caller owns the result.
     */
    public static QuantizedTensor allocate(dev.torus.memory.Allocator allocator, QuantSpec spec, Device device,
                                           long... shape) {
        if (spec == null) {
            throw new IllegalArgumentException("spec must not be null");
        }
        if (spec.scheme() != QuantSpec.Scheme.SYMMETRIC) {
            throw new IllegalArgumentException("spec: expected a symmetric spec (an affine result holds the spec's own "
                    + "scales and zero points; assemble it with QuantizedTensor.of), got " + spec);
        }
        Tensor values = Tensor.empty(allocator, spec.dtype(), device, shape);
        try {
            long groups = Quantizer.Groups.of(values, spec.granularity(), spec.axis(), spec.blockSize()).count;
            Tensor scales = Tensor.empty(allocator, dev.torus.DType.FLOAT32, device, groups);
            return new QuantizedTensor(values, scales, null, spec);
        } catch (RuntimeException e) {
            values.close();
            throw e;
        }
    }

    /**
     * The rule {@link QuantSpec} applies to the scales it is given, applied to received ones:
     * finite and positive; a symmetric spec also allows 0, which is what quantizing an
     * all-zero group produces. A CUDA tensor's scales are copied to the host to be checked.
     */
    private static void checkScales(Tensor scales, boolean affine) {
        float[] s = scales.toFloatArray();
        for (int i = 0; i < s.length; i++) {
            float v = s[i];
            boolean ok = Float.isFinite(v) && (affine ? v > 0 : v >= 0) && !(v == 0 && 1 / v < 0);
            if (!ok) {
                throw new IllegalArgumentException("scales[" + i + "]: expected a finite number " + (affine
                        ? "> 0 for an affine spec" : ">= 0 (0 only for an all-zero group)") + ", got " + v);
            }
        }
    }

    /** The quantized values, shaped like the input. Owned by this object. */
    public Tensor values() {
        ensureOpen();
        return values;
    }

    /** One FLOAT32 scale per group: [1] per tensor, [shape[axis]] per channel, [ceil(n / block)] blockwise. */
    public Tensor scales() {
        ensureOpen();
        return scales;
    }

    /** INT32 zero points (one per group) for affine specs; null for symmetric ones. */
    public Tensor zeroPoints() {
        ensureOpen();
        return zeroPoints;
    }

    public QuantSpec spec() {
        return spec;
    }

    public Device device() {
        return values.device();
    }

    public boolean isClosed() {
        return values.isClosed();
    }

    void ensureOpen() {
        if (values.isClosed()) {
            throw new IllegalStateException("QuantizedTensor (" + spec + ") is closed");
        }
    }

    @Override
    public void close() {
        values.close();
        scales.close();
        if (zeroPoints != null) {
            zeroPoints.close();
        }
    }

    @Override
    public String toString() {
        return "QuantizedTensor[" + values + ", " + spec + "]";
    }
}
