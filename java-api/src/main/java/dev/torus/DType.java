package dev.torus;

/**
 * Element types. The numeric code is shared with the native kernels.
 * Sizes are in bytes per element.
 */
public enum DType {
    FLOAT32(0, 4),
    FLOAT16(1, 2),
    BFLOAT16(2, 2),
    FLOAT64(3, 8),
    INT8(4, 1),
    UINT8(5, 1),
    INT32(6, 4),
    INT64(7, 8);

    private final int code;
    private final int byteSize;

    DType(int code, int byteSize) {
        this.code = code;
        this.byteSize = byteSize;
    }

    /** The code used by the native ABI ({@code torus_dtype}). */
    public int code() {
        return code;
    }

    /** Bytes per element. */
    public int byteSize() {
        return byteSize;
    }

    /** True for FLOAT32, FLOAT16 and BFLOAT16: the types the quantization kernels read and write. */
    public boolean isKernelFloat() {
        return this == FLOAT32 || this == FLOAT16 || this == BFLOAT16;
    }

    /** True for INT8 and UINT8: the quantized value types. */
    public boolean isQuantized() {
        return this == INT8 || this == UINT8;
    }
}
