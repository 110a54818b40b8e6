package dev.torus.memory;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.Tensor;
import dev.torus.testing.GpuTest;

/** Device buffers, streams, events and async copies on CUDA device 0. */
class GpuMemoryTest extends GpuTest {
    final Device gpu = Device.cuda(0);

    @Test
    void asyncCopiesHostToDeviceToDeviceToHostPreserveBytes() {
        int n = (1 << 20) + 3;
        try (Stream s = Stream.create(gpu); HostBuffer src = root.allocateHost(n, true);
             HostBuffer dst = root.allocateHost(n, true); DeviceBuffer a = root.allocateDevice(gpu, n, s);
             DeviceBuffer b = root.allocateDevice(gpu, n, s)) {
            for (int i = 0; i < n; i++) {
                src.view(0, n).put(i, (byte) (i * 31));
            }
            s.copy(src, 0, a, 0, n);
            s.copy(a, 0, b, 0, n);
            s.copy(b, 0, dst, 0, n);
            try (Event e = Event.create(gpu, true)) {
                e.record(s);
                e.synchronize();
                assertTrue(e.isCompleted());
            }
            byte[] got = new byte[n];
            dst.view(0, n).get(got);
            for (int i = 0; i < n; i++) {
                assertEquals((byte) (i * 31), got[i], "byte " + i);
            }
        }
    }

    @Test
    void tensorsMoveBetweenHostAndDevice() {
        float[] x = {1f, -2f, 3.5f, Float.NaN};
        try (Tensor h = Tensor.fromArray(root, x, 2, 2); Tensor d = h.to(gpu); Tensor z = Tensor.zeros(root, DType.FLOAT32, gpu, 3)) {
            assertEquals(gpu, d.device());
            assertArrayEquals(x, d.toFloatArray());
            assertArrayEquals(new float[3], z.toFloatArray());
        }
    }

    @Test
    void eventsTimeWorkAndStreamsWaitOnThem() {
        try (Stream a = Stream.create(gpu); Stream b = Stream.create(gpu); Event start = Event.create(gpu, true);
             Event end = Event.create(gpu, true); DeviceBuffer buf = root.allocateDevice(gpu, 1 << 24, a);
             DeviceBuffer buf2 = root.allocateDevice(gpu, 1 << 24, a)) {
            start.record(a);
            a.copy(buf, 0, buf2, 0, 1 << 24);
            end.record(a);
            b.waitFor(end);
            b.synchronize();
            assertTrue(end.isCompleted());
            assertTrue(start.elapsedMillis(end) >= 0);
        }
    }

    @Test
    void deviceLimitsAndBadDevicesAreReported() {
        try (Allocator small = root.newChildAllocator("gpu-small", 1024)) {
            assertThrows(dev.torus.OutOfMemoryException.class, () -> small.allocateDevice(gpu, 2048));
        }
        assertThrows(IllegalArgumentException.class, () -> root.allocateDevice(Device.cuda(Device.cudaDeviceCount()), 16));
        assertThrows(IllegalArgumentException.class, () -> root.allocateDevice(Device.cpu(), 16));
    }
}
