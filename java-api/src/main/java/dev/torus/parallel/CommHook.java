package dev.torus.parallel;

import dev.torus.comm.Compression;
import java.util.Locale;

/**
 * How {@link DataParallel} reduces a gradient bucket across ranks. Every hook
 * averages (the sum divided by the world size) and leaves bit-identical results on
 * every rank.
 *
 * <ul>
 *   <li>{@link #none()}: exact fp32. On CPU the bucket is exchanged as reduce-scatter
 *       plus all-gather with the chunks summed in rank order, so the result is
 *       deterministic and equals a single process that sums the per-rank gradients
 *       in rank order, bit for bit, at any world size. On CUDA it is the backend's
 *       all-reduce (NCCL).</li>
 *   <li>{@link #backendAllReduce()}: fp32 through the backend's own all-reduce (Gloo's
 *       ring or halving-doubling, NCCL). The summation order is the algorithm's, so
 *       results match the single-process reference only to rounding for more than
 *       two ranks.</li>
 *   <li>{@link #fp16()}, {@link #bf16()}: 2 bytes per element on the wire.</li>
 *   <li>{@link #int8Blockwise(int)}: 1 byte per element plus one fp32 scale per block,
 *       with error feedback (the quantization error is added back next step).</li>
 * </ul>
 * Compressed hooks run on CPU buckets only for now.
 */
public final class CommHook {
    private final String name;
    private final Compression compression; // null: backend all-reduce

    private CommHook(String name, Compression compression) {
        this.name = name;
        this.compression = compression;
    }

    public static CommHook none() {
        return new CommHook("none", Compression.fp32());
    }

    public static CommHook backendAllReduce() {
        return new CommHook("allreduce", null);
    }

    public static CommHook fp16() {
        return new CommHook("fp16", Compression.fp16());
    }

    public static CommHook bf16() {
        return new CommHook("bf16", Compression.bf16());
    }

    /** Blockwise int8 with error feedback; {@code blockSize} in [64, 4096]. */
    public static CommHook int8Blockwise(int blockSize) {
        return new CommHook("int8", Compression.int8Blockwise(blockSize));
    }

    /**
     * Parses {@code none}, {@code allreduce}, {@code fp16}, {@code bf16}, {@code int8}
     * (block 256) or {@code int8:BLOCK}; {@code argName} names the option in errors.
     */
    public static CommHook parse(String argName, String text) {
        if (text == null) {
            throw new IllegalArgumentException(argName + " must be one of none, allreduce, fp16, bf16, int8, int8:BLOCK");
        }
        String t = text.trim().toLowerCase(Locale.ROOT);
        if (t.startsWith("int8:")) {
            try {
                return int8Blockwise(Integer.parseInt(t.substring(5)));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(argName + ": block size in '" + text + "' must be an integer");
            }
        }
        return switch (t) {
            case "none", "fp32" -> none();
            case "allreduce" -> backendAllReduce();
            case "fp16" -> fp16();
            case "bf16" -> bf16();
            case "int8" -> int8Blockwise(256);
            default -> throw new IllegalArgumentException(argName + " must be one of none, allreduce, fp16, bf16, int8, "
                    + "int8:BLOCK, got '" + text + "'");
        };
    }

    /** The wire encoding, or null when the backend's own all-reduce carries fp32. */
    Compression compression() {
        return compression;
    }

    /** True when results are rounded on the wire (fp16, bf16, int8). */
    public boolean isLossy() {
        return compression != null && compression.kind() != Compression.Kind.FP32;
    }

    @Override
    public String toString() {
        return compression == null || compression.kind() == Compression.Kind.FP32 ? name : compression.toString();
    }
}
