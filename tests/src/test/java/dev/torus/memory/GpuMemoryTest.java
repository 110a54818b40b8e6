package dev.torus.memory;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

import dev.torus.DType;
import dev.torus.Device;
import dev.torus.tensor.Tensor;
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

    /** Fills a pinned host buffer with a pattern keyed by {@code salt} and returns it. */
    HostBuffer pattern(int n, int salt) {
        HostBuffer h = root.allocateHost(n, true);
        java.nio.ByteBuffer v = h.view(0, n);
        for (int i = 0; i < n; i++) {
            v.put(i, (byte) (i * 31 + salt));
        }
        return h;
    }

    static void assertPattern(HostBuffer h, int n, int salt, String what) {
        byte[] got = new byte[n];
        h.view(0, n).get(got);
        for (int i = 0; i < n; i++) {
            if (got[i] != (byte) (i * 31 + salt)) {
                throw new AssertionError(what + ": byte " + i + " is " + got[i] + ", expected "
                        + (byte) (i * 31 + salt));
            }
        }
    }

    /** Stream b reads what stream a wrote only because it waits on a's event: the bytes prove the order. */
    @Test
    void eventsOrderWorkAcrossStreamsAndTimeIt() {
        int n = 1 << 24;
        try (Stream a = Stream.create(gpu); Stream b = Stream.create(gpu); Event start = Event.create(gpu, true);
             Event end = Event.create(gpu, true); HostBuffer src = pattern(n, 7);
             HostBuffer dst = root.allocateHost(n, true);
             DeviceBuffer buf = root.allocateDevice(gpu, n, a); DeviceBuffer buf2 = root.allocateDevice(gpu, n, a)) {
            start.record(a);
            a.copy(src, 0, buf, 0, n);
            a.copy(buf, 0, buf2, 0, n);
            end.record(a);
            b.waitFor(end);
            b.copy(buf2, 0, dst, 0, n);
            b.synchronize();
            assertTrue(end.isCompleted());
            assertPattern(dst, n, 7, "host <- b <- a");
            float ms = start.elapsedMillis(end);
            assertTrue(ms > 0 && Float.isFinite(ms), "elapsed " + ms + " ms for two 16 MiB copies");
            assertEquals(java.util.List.of(b), buf2.recordedStreams(), "b's copy recorded b on buf2");
        }
    }

    /**
     * A buffer allocated on a and read by a long copy on b is closed, and a new buffer of the
     * same size is allocated on a and overwritten at once. Without record-stream semantics the
     * pool may hand the same memory back while b still reads it.
     */
    @Test
    void memoryReadOnAnotherStreamIsNotReusedBeforeTheReadEnds() {
        int n = 1 << 26;
        try (Stream a = Stream.create(gpu); Stream b = Stream.create(gpu); HostBuffer src = pattern(n, 3);
             HostBuffer other = pattern(n, 101); HostBuffer dst = root.allocateHost(n, true)) {
            for (int round = 0; round < 3; round++) {
                DeviceBuffer read = root.allocateDevice(gpu, n, a);
                a.copy(src, 0, read, 0, n);
                a.synchronize();
                b.copy(read, 0, dst, 0, n);
                read.close();
                try (DeviceBuffer next = root.allocateDevice(gpu, n, a)) {
                    a.copy(other, 0, next, 0, n);
                    b.synchronize();
                    a.synchronize();
                }
                assertPattern(dst, n, 3, "round " + round);
            }
        }
    }

    @Test
    void aStreamWithOpenBuffersRefusesToCloseAndKeepsTheAccounting() {
        Stream s = Stream.create(gpu);
        DeviceBuffer b = root.allocateDevice(gpu, 4096, s);
        IllegalStateException e = assertThrows(IllegalStateException.class, s::close);
        assertTrue(e.getMessage().contains(b.toString()), e.getMessage());
        assertEquals(4096, root.allocatedBytes());
        s.synchronize();   // still open
        b.close();
        s.close();
        assertEquals(0, root.allocatedBytes());
    }

    @Test
    void closingARecordedStreamHandsItsWorkToTheAllocationStream() {
        int n = 1 << 20;
        try (Stream a = Stream.create(gpu); HostBuffer src = pattern(n, 5);
             HostBuffer dst = root.allocateHost(n, true);
             DeviceBuffer buf = root.allocateDevice(gpu, n, a)) {
            a.copy(src, 0, buf, 0, n);
            a.synchronize();
            try (Stream b = Stream.create(gpu)) {
                b.copy(buf, 0, dst, 0, n);
                assertEquals(1, buf.recordedStreams().size());
            }
            assertTrue(buf.recordedStreams().isEmpty(), "b's close handed over its dependency");
            a.synchronize();
            assertPattern(dst, n, 5, "copy on the closed stream");
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
