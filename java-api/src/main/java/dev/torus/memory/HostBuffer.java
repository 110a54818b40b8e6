package dev.torus.memory;

import java.nio.ByteBuffer;

import dev.torus.Device;
import dev.torus.NativeLibrary;
import dev.torus.jni.MemoryView;
import dev.torus.jni.TorusNative;

/**
 * Off-heap host memory, 64-byte aligned, optionally page-locked ("pinned") for
 * fast asynchronous copies to and from a GPU. Created by
 * {@link Allocator#allocateHost(long, boolean)}; the caller owns it and closes it.
 */
public final class HostBuffer extends MemoryBuffer {
    private final boolean pinned;

    HostBuffer(Allocator allocator, long address, long byteSize, boolean pinned, String label, Throwable site) {
        super(allocator, address, byteSize, label, site);
        this.pinned = pinned;
    }

    private HostBuffer(HostBuffer parent, long offset, long bytes) {
        super(parent, offset, bytes);
        this.pinned = parent.pinned;
    }

    @Override
    HostBuffer newSlice(long offset, long bytes) {
        return new HostBuffer(this, offset, bytes);
    }

    @Override
    public Device device() {
        return Device.cpu();
    }

    public boolean isPinned() {
        return pinned;
    }

    /**
     * A little-endian direct view of [offset, offset + bytes), at most 2 GiB - 1.
     * The view must not be used after this buffer is closed.
     */
    public ByteBuffer view(long offset, long bytes) {
        checkRange("view", offset, bytes);
        return MemoryView.of(address() + offset, bytes);
    }

    @Override
    void free(long address) {
        NativeLibrary.check(TorusNative.torus_host_free(address, pinned ? 1 : 0), "free(" + this + ")");
    }
}
