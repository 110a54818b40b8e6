package dev.torus.jni;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import org.bytedeco.javacpp.BytePointer;

/**
 * Direct {@link ByteBuffer} views of native host memory, for bulk copies between
 * Java arrays and off-heap buffers. The view does not own the memory; the caller
 * must keep the owning buffer open while the view is in use.
 */
public final class MemoryView {
    private MemoryView() {}

    /** A little-endian view of {@code bytes} bytes at {@code address}; at most 2 GiB - 1. */
    public static ByteBuffer of(long address, long bytes) {
        if (bytes < 0 || bytes > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("bytes must be in [0, 2^31), got " + bytes);
        }
        if (bytes == 0) {
            return ByteBuffer.allocateDirect(0).order(ByteOrder.nativeOrder());
        }
        return new Raw(address, bytes).asByteBuffer().order(ByteOrder.nativeOrder());
    }

    /** One-byte elements, so the view spans exactly {@code bytes} bytes. */
    private static final class Raw extends BytePointer {
        Raw(long address, long bytes) {
            this.address = address;
            this.position = 0;
            this.limit = bytes;
            this.capacity = bytes;
        }
    }
}
