package dev.torus.memory;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;

import org.junit.jupiter.api.Test;

import dev.torus.OutOfMemoryException;
import dev.torus.testing.TorusTestBase;

class AllocatorTest extends TorusTestBase {

    @Test
    void hostBuffersAre64ByteAlignedAndWritable() {
        for (long size : new long[] {0, 1, 63, 64, 65, 1 << 20}) {
            try (HostBuffer b = root.allocateHost(size)) {
                assertEquals(0, b.address() % 64, "alignment of a " + size + "-byte buffer");
                assertEquals(size, b.byteSize());
                if (size > 0) {
                    ByteBuffer v = b.view(0, size);
                    v.put((int) size - 1, (byte) 42);
                    assertEquals(42, b.view(size - 1, 1).get(0));
                }
            }
        }
    }

    @Test
    void childLimitsAndPeakAreTrackedUpTheTree() {
        try (Allocator child = root.newChildAllocator("child", 1000)) {
            HostBuffer a = child.allocateHost(600);
            OutOfMemoryException e = assertThrows(OutOfMemoryException.class, () -> child.allocateHost(401));
            assertTrue(e.getMessage().contains("child") && e.getMessage().contains("limit"), e.getMessage());
            HostBuffer b = child.allocateHost(400);
            assertEquals(1000, child.allocatedBytes());
            assertEquals(1000, root.allocatedBytes());
            a.close();
            b.close();
            assertEquals(0, root.allocatedBytes());
            assertEquals(1000, root.peakBytes());
            assertEquals(1000, child.peakBytes());
            child.resetPeak();
            assertEquals(0, child.peakBytes());
        }
        try (Allocator small = Allocator.root("small", 100)) {
            assertThrows(OutOfMemoryException.class, () -> small.allocateHost(101));
            assertEquals(0, small.allocatedBytes(), "a failed allocation reserves nothing");
        }
    }

    @Test
    void closingWithOpenBuffersNamesThem() {
        Allocator child = root.newChildAllocator("leaky", Long.MAX_VALUE);
        HostBuffer b = child.allocateHost(123);
        IllegalStateException e = assertThrows(IllegalStateException.class, child::close);
        assertTrue(e.getMessage().contains("leaky") && e.getMessage().contains("123 B"), e.getMessage());
        IllegalStateException parent = assertThrows(IllegalStateException.class, root::close);
        assertTrue(parent.getMessage().contains("open child"), parent.getMessage());
        b.close();
        child.close();
    }

    @Test
    void impossibleHostAllocationsThrowInsteadOfCrashing() {
        dev.torus.OutOfMemoryException e = assertThrows(dev.torus.OutOfMemoryException.class,
                () -> root.allocateHost(1L << 60));
        assertTrue(e.getMessage().contains("allocateHost"), e.getMessage());
        assertEquals(0, root.allocatedBytes());
        assertThrows(IllegalArgumentException.class,
                () -> dev.torus.tensor.Tensor.empty(root, dev.torus.DType.FLOAT64, dev.torus.Device.cpu(), 1L << 61, 2));
    }

    @Test
    void useAfterCloseThrows() {
        HostBuffer b = root.allocateHost(16);
        b.close();
        b.close(); // idempotent
        assertTrue(b.isClosed());
        assertThrows(IllegalStateException.class, b::address);
        assertThrows(IllegalStateException.class, () -> b.view(0, 1));
        Allocator child = root.newChildAllocator("closed", 10);
        child.close();
        assertThrows(IllegalStateException.class, () -> child.allocateHost(1));
        assertThrows(IllegalArgumentException.class, () -> root.allocateHost(-1));
        assertThrows(IllegalArgumentException.class, () -> root.newChildAllocator("", 1));
        assertThrows(IllegalArgumentException.class, () -> root.newChildAllocator("x", -1));
    }

    @Test
    void viewsAndCopiesAreBoundsChecked() {
        try (HostBuffer a = root.allocateHost(100); HostBuffer b = root.allocateHost(50)) {
            assertThrows(IndexOutOfBoundsException.class, () -> a.view(90, 11));
            assertThrows(IndexOutOfBoundsException.class, () -> a.view(-1, 1));
            Stream cpu = Stream.defaultStream(dev.torus.Device.cpu());
            assertThrows(IndexOutOfBoundsException.class, () -> cpu.copy(a, 0, b, 0, 51));
            a.view(0, 100).put(7, (byte) 9);
            cpu.copy(a, 0, b, 10, 40);
            assertEquals(9, b.view(17, 1).get(0));
        }
    }

    @Test
    void allocationsFromManyThreadsBalance() throws Exception {
        Thread[] threads = new Thread[4];
        for (int t = 0; t < threads.length; t++) {
            threads[t] = new Thread(() -> {
                for (int i = 0; i < 500; i++) {
                    root.allocateHost(32 + i).close();
                }
            });
            threads[t].start();
        }
        for (Thread t : threads) {
            t.join(30_000);
        }
        assertEquals(0, root.allocatedBytes());
    }

    /** A failed close() leaves the allocator closing: nothing new is allocated until a close() succeeds. */
    @Test
    void anAllocatorWhoseCloseFailedRefusesNewBuffersUntilItCloses() {
        Allocator a = root.newChildAllocator("failing", Long.MAX_VALUE);
        HostBuffer held = a.allocateHost(128);
        IllegalStateException leak = assertThrows(IllegalStateException.class, a::close);
        assertTrue(leak.getMessage().contains("128 bytes outstanding") && leak.getMessage().contains("refuses new buffers"),
                leak.getMessage());
        IllegalStateException refused = assertThrows(IllegalStateException.class, () -> a.allocateHost(8));
        assertTrue(refused.getMessage().contains("is closing"), refused.getMessage());
        assertThrows(IllegalStateException.class, () -> a.newChildAllocator("late", 10));
        assertEquals(128, a.allocatedBytes());
        held.close();
        a.close();
        assertTrue(a.isClosed());
        assertTrue(assertThrows(IllegalStateException.class, () -> a.allocateHost(8)).getMessage().contains("is closed"));
    }

    /**
     * close() racing an allocation: the bytes reserved before the buffer is registered count
     * as open, so no buffer can be handed out by an allocator that has passed its leak check.
     */
    @Test
    void closeRacingAnAllocationNeverLetsABufferEscapeTheLeakCheck() throws Exception {
        java.util.concurrent.atomic.AtomicInteger escaped = new java.util.concurrent.atomic.AtomicInteger();
        for (int round = 0; round < 200; round++) {
            Allocator a = root.newChildAllocator("race-" + round, Long.MAX_VALUE);
            Thread user = new Thread(() -> {
                while (true) {
                    HostBuffer b;
                    try {
                        b = a.allocateHost(64);
                    } catch (IllegalStateException closedOrClosing) {
                        return;
                    }
                    if (a.isClosed()) {
                        escaped.incrementAndGet(); // open buffer in an allocator that passed its leak check
                    }
                    b.close();
                }
            });
            user.start();
            long deadline = System.nanoTime() + 2_000_000_000L;
            boolean closed = false;
            while (!closed && System.nanoTime() < deadline) {
                try {
                    a.close();
                    closed = true;
                } catch (IllegalStateException busy) {
                    // a buffer was open: the allocator is now closing and refuses new ones
                    Thread.onSpinWait();
                }
            }
            user.join(10_000);
            if (!closed) {
                a.close(); // the user thread has stopped, so this must succeed
            }
        }
        assertEquals(0, escaped.get());
        assertEquals(0, root.allocatedBytes());
    }
}
