package dev.torus.tensor;

import dev.torus.DType;
import dev.torus.Device;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Random;

import org.junit.jupiter.api.Test;

import dev.torus.memory.Allocator;
import dev.torus.testing.Data;
import dev.torus.testing.TorusTestBase;

class TensorTest extends TorusTestBase {

    @Test
    void roundTripsThroughEveryFactory() {
        Random r = new Random(Data.freshSeed());
        float[] f = Data.mixed(r, 1001);
        try (Tensor t = Tensor.fromArray(root, f, 7, 11, 13)) {
            assertArrayEquals(f, t.toFloatArray());
            assertArrayEquals(new long[] {7, 11, 13}, t.shape());
            assertEquals(1001, t.numel());
            assertEquals(4004, t.byteSize());
            assertEquals(13, t.dim(-1));
            try (Tensor c = t.to(Device.cpu())) {
                assertArrayEquals(f, c.toFloatArray());
            }
        }
        int[] i = {1, -2, Integer.MAX_VALUE, Integer.MIN_VALUE};
        try (Tensor t = Tensor.fromArray(root, i, 2, 2)) {
            assertArrayEquals(i, t.toIntArray());
            assertArrayEquals(new float[] {1f, -2f, (float) Integer.MAX_VALUE, (float) Integer.MIN_VALUE}, t.toFloatArray());
        }
        byte[] b = {-128, -1, 0, 127};
        try (Tensor t = Tensor.fromBytes(root, DType.INT8, b, 4); Tensor u = Tensor.fromBytes(root, DType.UINT8, b, 4)) {
            assertArrayEquals(b, t.toByteArray());
            assertArrayEquals(new float[] {-128, -1, 0, 127}, t.toFloatArray());
            assertArrayEquals(new float[] {128, 255, 0, 127}, u.toFloatArray());
        }
        short[] h = {0x3c00, (short) 0xc000, 0x7c00};
        try (Tensor t = Tensor.fromBits(root, DType.FLOAT16, h, 3)) {
            assertArrayEquals(h, t.toShortArray());
            assertArrayEquals(new float[] {1f, -2f, Float.POSITIVE_INFINITY}, t.toFloatArray());
        }
    }

    @Test
    void zerosScalarsAndEmptyTensors() {
        try (Tensor z = Tensor.zeros(root, DType.FLOAT32, Device.cpu(), 3, 5)) {
            assertArrayEquals(new float[15], z.toFloatArray());
        }
        try (Tensor s = Tensor.fromArray(root, new float[] {4f})) {
            assertEquals(0, s.rank());
            assertEquals(1, s.numel());
        }
        try (Tensor e = Tensor.fromArray(root, new float[0], 0, 4)) {
            assertEquals(0, e.numel());
            assertArrayEquals(new float[0], e.toFloatArray());
        }
    }

    @Test
    void defaultAllocatorFactoriesWork() {
        long before = Allocator.defaultAllocator().allocatedBytes();
        try (Tensor t = Tensor.fromArray(new float[] {1f, 2f}, 2); Tensor z = Tensor.zeros(DType.INT8, Device.cpu(), 4)) {
            assertEquals(before + 12, Allocator.defaultAllocator().allocatedBytes());
            assertEquals(Allocator.defaultAllocator(), t.allocator());
        }
        assertEquals(before, Allocator.defaultAllocator().allocatedBytes());
    }

    @Test
    void closedTensorsThrowOnEveryAccess() {
        Tensor t = Tensor.fromArray(root, new float[] {1f}, 1);
        t.close();
        t.close();
        assertThrows(IllegalStateException.class, t::toFloatArray);
        assertThrows(IllegalStateException.class, t::shape);
        assertThrows(IllegalStateException.class, () -> t.dataAddress(dev.torus.internal.NativeAccess.TOKEN));
        assertThrows(IllegalStateException.class, () -> t.to(Device.cpu()));
        try (Tensor f = Tensor.fromArray(root, new float[] {1f}, 1)) {
            assertThrows(IllegalArgumentException.class, f::toIntArray);
            assertThrows(IllegalArgumentException.class, f::toShortArray);
        }
    }
}
