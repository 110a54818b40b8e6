package dev.torus.quant;

import java.util.Arrays;

import dev.torus.DType;

/**
 * How to quantize a tensor: the scheme (symmetric int8 with scales computed from
 * the data, or affine with given scales and zero points), the granularity of the
 * scales (per tensor, per channel along an axis, or per contiguous block), and
 * the rounding (round-half-even, or stochastic with a seed). Immutable and
 * thread-safe. The arithmetic is specified in docs/QUANTIZATION.md.
 *
 * <pre>
 * QuantSpec.int8Symmetric().blockwise(256);
 * QuantSpec.affine(DType.UINT8).perTensor(0.05f, 128).withStochasticRounding(42);
 * </pre>
 */
public final class QuantSpec {
    /** Where scales come from. */
    public enum Scheme {
        /** int8, zero point 0, scale = absmax / 127 of each group, values in [-127, 127]. */
        SYMMETRIC,
        /** Given scale and zero point per group, values in the full range of the dtype. */
        AFFINE
    }

    /** How many scales a tensor gets. */
    public enum Granularity { PER_TENSOR, PER_CHANNEL, BLOCKWISE }

    /** Smallest and largest blockwise block sizes (both powers of two). */
    public static final int MIN_BLOCK = 64;
    public static final int MAX_BLOCK = 4096;

    private final Scheme scheme;
    private final Granularity granularity;
    private final DType dtype;
    private final int axis;
    private final int blockSize;
    private final float[] scales;
    private final int[] zeroPoints;
    private final boolean stochastic;
    private final long seed;

    private QuantSpec(Scheme scheme, Granularity granularity, DType dtype, int axis, int blockSize, float[] scales,
                      int[] zeroPoints, boolean stochastic, long seed) {
        this.scheme = scheme;
        this.granularity = granularity;
        this.dtype = dtype;
        this.axis = axis;
        this.blockSize = blockSize;
        this.scales = scales;
        this.zeroPoints = zeroPoints;
        this.stochastic = stochastic;
        this.seed = seed;
    }

    /** Symmetric int8 with scales computed from the data. */
    public static SymmetricBuilder int8Symmetric() {
        return new SymmetricBuilder();
    }

    /** Affine quantization to INT8 or UINT8 with given parameters (torch.ao semantics). */
    public static AffineBuilder affine(DType dtype) {
        if (dtype != DType.INT8 && dtype != DType.UINT8) {
            throw new IllegalArgumentException("dtype: affine quantization needs INT8 or UINT8, got " + dtype);
        }
        return new AffineBuilder(dtype);
    }

    /** The same spec with stochastic rounding: floor(v + u), u from Philox keyed by (seed, element index). */
    public QuantSpec withStochasticRounding(long seed) {
        return new QuantSpec(scheme, granularity, dtype, axis, blockSize, scales, zeroPoints, true, seed);
    }

    public Scheme scheme() {
        return scheme;
    }

    public Granularity granularity() {
        return granularity;
    }

    /** INT8 or UINT8. */
    public DType dtype() {
        return dtype;
    }

    /** The channel axis for PER_CHANNEL (may be negative: counted from the end); else 0. */
    public int axis() {
        return axis;
    }

    /** Elements per block for BLOCKWISE; else 0. */
    public int blockSize() {
        return blockSize;
    }

    /** A copy of the affine scales, or null for SYMMETRIC. */
    public float[] scales() {
        return scales == null ? null : scales.clone();
    }

    /** A copy of the affine zero points, or null for SYMMETRIC. */
    public int[] zeroPoints() {
        return zeroPoints == null ? null : zeroPoints.clone();
    }

    public boolean isStochastic() {
        return stochastic;
    }

    public long seed() {
        return seed;
    }

    /** Smallest quantized value: -127 for symmetric, -128 or 0 for affine. */
    public int qmin() {
        if (scheme == Scheme.SYMMETRIC) {
            return -127;
        }
        return dtype == DType.UINT8 ? 0 : -128;
    }

    /** Largest quantized value: 127 or 255. */
    public int qmax() {
        return dtype == DType.UINT8 ? 255 : 127;
    }

    float[] scalesInternal() {
        return scales;
    }

    int[] zeroPointsInternal() {
        return zeroPoints;
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder("QuantSpec[").append(scheme).append(' ').append(dtype).append(' ')
                .append(granularity);
        if (granularity == Granularity.PER_CHANNEL) {
            sb.append(" axis=").append(axis);
        }
        if (granularity == Granularity.BLOCKWISE) {
            sb.append(" block=").append(blockSize);
        }
        if (scales != null && scales.length <= 8) {
            sb.append(" scales=").append(Arrays.toString(scales)).append(" zeroPoints=").append(Arrays.toString(zeroPoints));
        }
        if (stochastic) {
            sb.append(" stochastic(seed=").append(seed).append(')');
        }
        return sb.append(']').toString();
    }

    /** Chooses the granularity of a symmetric int8 spec. */
    public static final class SymmetricBuilder {
        private SymmetricBuilder() {}

        /** One scale for the whole tensor. */
        public QuantSpec perTensor() {
            return new QuantSpec(Scheme.SYMMETRIC, Granularity.PER_TENSOR, DType.INT8, 0, 0, null, null, false, 0);
        }

        /** One scale per index along {@code axis}; negative axes count from the end. */
        public QuantSpec perChannel(int axis) {
            return new QuantSpec(Scheme.SYMMETRIC, Granularity.PER_CHANNEL, DType.INT8, axis, 0, null, null, false, 0);
        }

        /** One scale per {@code blockSize} contiguous elements: a power of two in [64, 4096]. */
        public QuantSpec blockwise(int blockSize) {
            if (blockSize < MIN_BLOCK || blockSize > MAX_BLOCK || Integer.bitCount(blockSize) != 1) {
                throw new IllegalArgumentException("blockSize: expected a power of two in [" + MIN_BLOCK + ", " + MAX_BLOCK
                        + "], got " + blockSize);
            }
            return new QuantSpec(Scheme.SYMMETRIC, Granularity.BLOCKWISE, DType.INT8, 0, blockSize, null, null, false, 0);
        }
    }

    /** Supplies the scales and zero points of an affine spec. */
    public static final class AffineBuilder {
        private final DType dtype;

        private AffineBuilder(DType dtype) {
            this.dtype = dtype;
        }

        /** One scale (finite, > 0) and zero point (within the dtype's range) for the whole tensor. */
        public QuantSpec perTensor(float scale, int zeroPoint) {
            checkScale("scale", scale);
            checkZeroPoint("zeroPoint", zeroPoint);
            return new QuantSpec(Scheme.AFFINE, Granularity.PER_TENSOR, dtype, 0, 0, new float[] {scale},
                    new int[] {zeroPoint}, false, 0);
        }

        /** One scale and zero point per index along {@code axis}; the arrays must match shape[axis]. */
        public QuantSpec perChannel(float[] scales, int[] zeroPoints, int axis) {
            if (scales == null) {
                throw new IllegalArgumentException("scales must not be null");
            }
            if (zeroPoints == null) {
                throw new IllegalArgumentException("zeroPoints must not be null");
            }
            if (scales.length != zeroPoints.length) {
                throw new IllegalArgumentException("zeroPoints: expected " + scales.length
                        + " entries (one per scale), got " + zeroPoints.length);
            }
            for (int i = 0; i < scales.length; i++) {
                checkScale("scales[" + i + "]", scales[i]);
                checkZeroPoint("zeroPoints[" + i + "]", zeroPoints[i]);
            }
            return new QuantSpec(Scheme.AFFINE, Granularity.PER_CHANNEL, dtype, axis, 0, scales.clone(),
                    zeroPoints.clone(), false, 0);
        }

        private void checkZeroPoint(String name, int zp) {
            int lo = dtype == DType.UINT8 ? 0 : -128;
            int hi = dtype == DType.UINT8 ? 255 : 127;
            if (zp < lo || zp > hi) {
                throw new IllegalArgumentException(name + ": expected a zero point in [" + lo + ", " + hi + "] for "
                        + dtype + ", got " + zp);
            }
        }

        private static void checkScale(String name, float s) {
            if (!(s > 0) || Float.isInfinite(s)) {
                throw new IllegalArgumentException(name + ": expected a finite scale > 0, got " + s);
            }
        }
    }
}
