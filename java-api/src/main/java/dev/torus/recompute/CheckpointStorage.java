package dev.torus.recompute;

import dev.torus.DType;
import dev.torus.tensor.Tensor;
import dev.torus.memory.Allocator;
import dev.torus.quant.QuantSpec;
import dev.torus.quant.QuantizedTensor;
import dev.torus.quant.Quantizer;

/**
 * How {@link CheckpointedSequential} stores the segment inputs it keeps:
 * FLOAT32 (exact: recompute is bit-identical), FLOAT16 or BFLOAT16 (round to
 * nearest even), or symmetric int8 with one scale per block (the foundation
 * quantize kernels). Compressed checkpoints are decoded to FLOAT32 before the
 * segments that follow are recomputed, so gradients then differ from the
 * uncheckpointed run by the storage's rounding (docs/RECOMPUTE.md has the
 * measured effect).
 */
public final class CheckpointStorage {
    private enum Kind { FP32, FP16, BF16, INT8 }

    private final Kind kind;
    private final int blockSize;

    private CheckpointStorage(Kind kind, int blockSize) {
        this.kind = kind;
        this.blockSize = blockSize;
    }

    /** Exact FLOAT32 checkpoints (the default). */
    public static CheckpointStorage fp32() {
        return new CheckpointStorage(Kind.FP32, 0);
    }

    public static CheckpointStorage fp16() {
        return new CheckpointStorage(Kind.FP16, 0);
    }

    public static CheckpointStorage bf16() {
        return new CheckpointStorage(Kind.BF16, 0);
    }

    /** Symmetric int8 with one FLOAT32 scale per {@code blockSize} elements (64..4096). */
    public static CheckpointStorage int8Blockwise(int blockSize) {
        if (blockSize < QuantSpec.MIN_BLOCK || blockSize > QuantSpec.MAX_BLOCK) {
            throw new IllegalArgumentException("blockSize must be in [" + QuantSpec.MIN_BLOCK + ", " + QuantSpec.MAX_BLOCK
                    + "], got " + blockSize);
        }
        return new CheckpointStorage(Kind.INT8, blockSize);
    }

    /** True for FLOAT32, where checkpoints are the activations themselves. */
    public boolean isExact() {
        return kind == Kind.FP32;
    }

    /** Bytes one checkpoint of {@code numel} FLOAT32 elements takes. */
    public long storedBytes(long numel) {
        return switch (kind) {
            case FP32 -> numel * 4;
            case FP16, BF16 -> numel * 2;
            case INT8 -> numel + 4 * ((numel + blockSize - 1) / blockSize);
        };
    }

    /** A stored checkpoint: owns its tensors. */
    static final class Stored implements AutoCloseable {
        final Tensor plain;          // FP32 / FP16 / BF16
        final QuantizedTensor quantized;
        final long[] shape;

        Stored(Tensor plain, QuantizedTensor quantized, long[] shape) {
            this.plain = plain;
            this.quantized = quantized;
            this.shape = shape;
        }

        long byteSize() {
            return plain != null ? plain.byteSize() : quantized.values().byteSize() + quantized.scales().byteSize();
        }

        @Override
        public void close() {
            if (plain != null) {
                plain.close();
            } else {
                quantized.close();
            }
        }
    }

    /** Wraps an FP32 tensor that already lives in the checkpoint allocator (FP32 storage only). */
    Stored adopt(Tensor x) {
        return new Stored(x, null, x.shape());
    }

    /** Encodes {@code x} (FLOAT32) into a new checkpoint from {@code a}; {@code x} is only read. */
    Stored encode(Tensor x, Allocator a) {
        switch (kind) {
            case FP32, FP16, BF16 -> {
                DType dt = kind == Kind.FP32 ? DType.FLOAT32 : kind == Kind.FP16 ? DType.FLOAT16 : DType.BFLOAT16;
                Tensor t = Tensor.empty(a, dt, x.device(), x.shape());
                try {
                    Quantizer.castInto(x, t);   // FLOAT32 -> FLOAT32 is a copy
                } catch (RuntimeException e) {
                    t.close();
                    throw e;
                }
                return new Stored(t, null, x.shape());
            }
            default -> {
                QuantSpec spec = QuantSpec.int8Symmetric().blockwise(blockSize);
                QuantizedTensor q = QuantizedTensor.allocate(a, spec, x.device(), x.shape());
                try {
                    Quantizer.quantizeInto(x, q);
                    return new Stored(null, q, x.shape());
                } catch (RuntimeException e) {
                    q.close();
                    throw e;
                }
            }
        }
    }

    /** The FLOAT32 value of a checkpoint: the tensor itself (exact) or a decoded copy from {@code a}. */
    Tensor decode(Stored s, Allocator a) {
        if (kind == Kind.FP32) {
            return s.plain;
        }
        Tensor t = Tensor.empty(a, DType.FLOAT32, s.plain != null ? s.plain.device() : s.quantized.values().device(),
                s.shape);
        try {
            if (s.plain != null) {
                Quantizer.castInto(s.plain, t);
            } else {
                Quantizer.dequantizeInto(s.quantized, t);
            }
        } catch (RuntimeException e) {
            t.close();
            throw e;
        }
        return t;
    }

    @Override
    public String toString() {
        return switch (kind) {
            case FP32 -> "fp32";
            case FP16 -> "fp16";
            case BF16 -> "bf16";
            case INT8 -> "int8/block" + blockSize;
        };
    }
}
