package dev.torus.comm;

import dev.torus.quant.QuantSpec;

/**
 * How {@link CompressedAllReduce} encodes gradients on the wire.
 *
 * <ul>
 *   <li>{@link #fp32()}: no encoding, 4 bytes per element: the same exchange with exact
 *       values, which makes it a deterministic all-reduce (chunks are summed in rank
 *       order, so the result does not depend on the transport's algorithm);</li>
 *   <li>{@link #fp16()} / {@link #bf16()}: round-to-nearest-even casts, 2 bytes per element;</li>
 *   <li>{@link #int8Blockwise(int)}: symmetric int8 with one fp32 scale per block
 *       (1 + 4/block bytes per element), with error feedback: what quantization drops
 *       is kept per tensor and added back the next time that tensor is reduced.</li>
 * </ul>
 */
public final class Compression {
    public enum Kind { FP32, FP16, BF16, INT8_BLOCKWISE }

    private final Kind kind;
    private final int blockSize;
    private final boolean errorFeedback;

    private Compression(Kind kind, int blockSize, boolean errorFeedback) {
        this.kind = kind;
        this.blockSize = blockSize;
        this.errorFeedback = errorFeedback;
    }

    public static Compression fp32() {
        return new Compression(Kind.FP32, 1, false);
    }

    public static Compression fp16() {
        return new Compression(Kind.FP16, 1, false);
    }

    public static Compression bf16() {
        return new Compression(Kind.BF16, 1, false);
    }

    /** Blockwise int8 with error feedback; {@code blockSize} in [64, 4096] as for {@link QuantSpec}. */
    public static Compression int8Blockwise(int blockSize) {
        if (blockSize < QuantSpec.MIN_BLOCK || blockSize > QuantSpec.MAX_BLOCK) {
            throw new IllegalArgumentException("blockSize must be in [" + QuantSpec.MIN_BLOCK + ", " + QuantSpec.MAX_BLOCK
                    + "], got " + blockSize);
        }
        return new Compression(Kind.INT8_BLOCKWISE, blockSize, true);
    }

    /** The same encoding without error feedback (for measuring what feedback buys). */
    public Compression withoutErrorFeedback() {
        return new Compression(kind, blockSize, false);
    }

    public Kind kind() {
        return kind;
    }

    public int blockSize() {
        return blockSize;
    }

    public boolean errorFeedback() {
        return errorFeedback;
    }

    /** Encoded bytes for {@code elements} elements (values plus scales). */
    public long encodedBytes(long elements) {
        return switch (kind) {
            case INT8_BLOCKWISE -> elements + 4 * (elements / blockSize);
            case FP32 -> 4 * elements;
            default -> 2 * elements;
        };
    }

    @Override
    public String toString() {
        return switch (kind) {
            case FP32 -> "fp32";
            case FP16 -> "fp16";
            case BF16 -> "bf16";
            case INT8_BLOCKWISE -> "int8-block" + blockSize + (errorFeedback ? "+ef" : "");
        };
    }
}
