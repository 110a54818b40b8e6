package dev.torus.memory;

import dev.torus.internal.NativeAccess;

import dev.torus.Device;

/**
 * A contiguous block of native memory with one owner. Closing it returns the
 * memory to its {@link Allocator}; every method then throws
 * {@link IllegalStateException}. The garbage collector never frees it.
 * Not thread-safe for concurrent close.
 */
public abstract sealed class MemoryBuffer implements AutoCloseable permits HostBuffer, DeviceBuffer {
    private final Allocator allocator;
    private final long byteSize;
    private final long address;
    private final String label;
    private volatile boolean closed;
    private int pins;
    private String pinnedBy;
    final Throwable allocationSite;
    /** The buffer this one is a slice of, or null when this buffer owns its memory. */
    private final MemoryBuffer parent;

    MemoryBuffer(Allocator allocator, long address, long byteSize, String label, Throwable allocationSite) {
        this.allocator = allocator;
        this.address = address;
        this.byteSize = byteSize;
        this.label = label;
        this.allocationSite = allocationSite;
        this.parent = null;
    }

    /** A slice of {@code parent}: [offset, offset + bytes), already range-checked and pinned. */
    MemoryBuffer(MemoryBuffer parent, long offset, long bytes) {
        this.allocator = parent.allocator;
        this.address = parent.address + offset;
        this.byteSize = bytes;
        this.label = parent.label + "[" + offset + "+" + bytes + "]";
        this.allocationSite = null;
        this.parent = parent;
    }

    /**
     * A buffer that aliases [offset, offset + bytes) of this one without copying
     * (for example a parameter's gradient inside a communication bucket). The caller
     * owns the slice and closes it; closing it frees nothing. This buffer cannot be
     * closed while the slice is open: the slice holds a {@link #pin} on it.
     */
    public MemoryBuffer slice(long offset, long bytes) {
        checkRange("slice", offset, bytes);
        pin("slice [" + offset + ", " + offset + " + " + bytes + ")");
        try {
            return newSlice(offset, bytes);
        } catch (RuntimeException e) {
            unpin();
            throw e;
        }
    }

    abstract MemoryBuffer newSlice(long offset, long bytes);

    /** True when this buffer aliases part of another and frees nothing itself. */
    public boolean isSlice() {
        return parent != null;
    }

    /** The device the memory lives on. */
    public abstract Device device();

    /**
     * The native address, for Torus's own packages (see {@link NativeAccess}). Valid until
     * {@link #close()}; 0 only for empty device buffers.
     */
    public long address(NativeAccess token) {
        NativeAccess.check(token, "MemoryBuffer.address");
        return address();
    }

    long address() {
        ensureOpen();
        return address;
    }

    /** Size in bytes. */
    public long byteSize() {
        return byteSize;
    }

    /** The allocator that accounts for this buffer. */
    public Allocator allocator() {
        return allocator;
    }

    public boolean isClosed() {
        return closed;
    }

    /** Throws {@link IllegalStateException} when closed. */
    public void ensureOpen() {
        if (closed) {
            throw new IllegalStateException(this + " is closed");
        }
    }

    /** Checks that [offset, offset + bytes) lies inside this buffer. */
    public void checkRange(String name, long offset, long bytes) {
        ensureOpen();
        if (offset < 0 || bytes < 0 || offset > byteSize - bytes) {
            throw new IndexOutOfBoundsException(name + ": range [" + offset + ", " + offset + " + " + bytes
                    + ") is outside the " + byteSize + "-byte " + this);
        }
    }

    /**
     * Marks the buffer as in use by an asynchronous operation (a pending collective,
     * for example); {@link #close()} refuses to free it until every pin is released.
     * Returns the buffer's address.
     */
    public synchronized long pin(String user) {
        ensureOpen();
        pins++;
        pinnedBy = user;
        return address;
    }

    /** Releases one {@link #pin}. */
    public synchronized void unpin() {
        if (pins <= 0) {
            throw new IllegalStateException(this + " is not pinned");
        }
        pins--;
    }

    /**
     * Frees the memory. Throws {@link IllegalStateException} if an asynchronous
     * operation still uses the buffer (see {@link #pin}); wait for it, then close.
     * If the native free fails, the exception propagates and the allocator keeps
     * counting the bytes (and reports the buffer when closed): memory that was not
     * returned is never shown as released.
     */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            if (pins > 0) {
                throw new IllegalStateException("cannot close " + this + ": still in use by " + pinnedBy
                        + "; wait for that operation to complete first");
            }
            closed = true;
        }
        if (parent != null) {
            parent.unpin();
            return;
        }
        try {
            free(address);
        } catch (RuntimeException e) {
            // not freed: the bytes stay accounted, and the buffer stays open so close() can be retried
            synchronized (this) {
                closed = false;
            }
            throw e;
        }
        allocator.release(this);
    }

    abstract void free(long address);

    @Override
    public String toString() {
        return getClass().getSimpleName() + "[" + label + ", " + byteSize + " B on " + device() + "]";
    }
}
