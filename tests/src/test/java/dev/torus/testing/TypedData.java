package dev.torus.testing;

import dev.torus.DType;
import dev.torus.quant.ScalarReference;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Values of any dtype held as doubles in tests, with exact conversion to and from
 * the dtype's bytes (little-endian, as tensors store them).
 */
public final class TypedData {
    private TypedData() {}

    public static byte[] toBytes(DType dt, double[] v) {
        ByteBuffer b = ByteBuffer.allocate(v.length * dt.byteSize()).order(ByteOrder.LITTLE_ENDIAN);
        for (double x : v) {
            switch (dt) {
                case FLOAT32 -> b.putFloat((float) x);
                case FLOAT64 -> b.putDouble(x);
                case FLOAT16 -> b.putShort(ScalarReference.f32ToF16((float) x));
                case BFLOAT16 -> b.putShort(ScalarReference.f32ToBf16((float) x));
                case INT8, UINT8 -> b.put((byte) (long) x);
                case INT32 -> b.putInt((int) (long) x);
                case INT64 -> b.putLong((long) x);
            }
        }
        return b.array();
    }

    public static double[] fromBytes(DType dt, byte[] bytes) {
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        double[] v = new double[bytes.length / dt.byteSize()];
        for (int i = 0; i < v.length; i++) {
            v[i] = switch (dt) {
                case FLOAT32 -> b.getFloat();
                case FLOAT64 -> b.getDouble();
                case FLOAT16 -> ScalarReference.f16ToF32(b.getShort());
                case BFLOAT16 -> ScalarReference.bf16ToF32(b.getShort());
                case INT8 -> b.get();
                case UINT8 -> b.get() & 0xff;
                case INT32 -> b.getInt();
                case INT64 -> b.getLong();
            };
        }
        return v;
    }

    /** Rounds a double the way storing it in {@code dt} after an fp32 (or fp64) computation would. */
    public static double store(DType dt, double x) {
        return fromBytes(dt, toBytes(dt, new double[] {x}))[0];
    }

    public static boolean isFloat(DType dt) {
        return dt == DType.FLOAT32 || dt == DType.FLOAT64 || dt == DType.FLOAT16 || dt == DType.BFLOAT16;
    }
}
