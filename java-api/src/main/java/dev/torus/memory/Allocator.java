package dev.torus.memory;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

import dev.torus.Device;
import dev.torus.NativeLibrary;
import dev.torus.OutOfMemoryException;
import dev.torus.jni.TorusNative;

/**
 * Accounts for native memory in a tree, after Apache Arrow's allocators. Each
 * allocator has a byte limit that also bounds its children, and tracks current
 * and peak bytes (host and device together). Buffers it hands out are owned by
 * the caller, who closes them; closing an allocator that still has open
 * buffers or children throws {@link IllegalStateException} naming them, so
 * closing a root allocator at the end of a test is a leak check.
 *
 * <p>A {@code close()} that fails leaves the allocator <em>closing</em>: it refuses new
 * buffers and children from then on, while the listed buffers can still be closed and
 * {@code close()} called again. Memory reserved by an allocation still in progress counts
 * as open, so a close racing an allocation can never let that buffer escape the check.
 *
 * <p>Thread-safe. With {@code -Dtorus.memory.debug=true} each buffer records the
 * stack of its allocation, and leak reports include it.
 */
public final class Allocator implements AutoCloseable {
    /** System property that turns on allocation-site recording. */
    public static final String PROP_DEBUG = "torus.memory.debug";
    static final boolean DEBUG = Boolean.getBoolean(PROP_DEBUG);

    private static final Allocator DEFAULT = new Allocator(null, "default", Long.MAX_VALUE);

    private final Allocator parent;
    private final Object lock;
    private final String name;
    private final long limit;
    private final Set<MemoryBuffer> open = new LinkedHashSet<>();
    private final Set<Allocator> children = new LinkedHashSet<>();
    private long allocated;
    private long peak;
    private boolean closed;
    /** Set by a close() that failed: no new buffers or children until a close() succeeds. */
    private boolean closing;

    private Allocator(Allocator parent, String name, long limit) {
        this.parent = parent;
        this.lock = parent == null ? new Object() : parent.lock;
        this.name = parent == null ? name : parent.name + "/" + name;
        this.limit = limit;
    }

    /** A new root allocator with no limit. The caller owns it and closes it. */
    public static Allocator root(String name) {
        return root(name, Long.MAX_VALUE);
    }

    /** A new root allocator with a byte limit. The caller owns it and closes it. */
    public static Allocator root(String name, long limitBytes) {
        checkName(name);
        checkLimit(limitBytes);
        return new Allocator(null, name, limitBytes);
    }

    /**
     * The process-wide allocator used by factory methods that take none. It is
     * never closed; {@link #allocatedBytes()} shows what is still open in it.
     */
    public static Allocator defaultAllocator() {
        return DEFAULT;
    }

    /** A child that draws on this allocator, with its own limit. Close it before its parent. */
    public Allocator newChildAllocator(String name, long limitBytes) {
        checkName(name);
        checkLimit(limitBytes);
        synchronized (lock) {
            ensureOpen();
            Allocator child = new Allocator(this, name, limitBytes);
            children.add(child);
            return child;
        }
    }

    /** Pageable host memory, 64-byte aligned, uninitialised. */
    public HostBuffer allocateHost(long bytes) {
        return allocateHost(bytes, false);
    }

    /** Host memory, 64-byte aligned, uninitialised; pinned needs a usable CUDA device. */
    public HostBuffer allocateHost(long bytes, boolean pinned) {
        checkBytes(bytes);
        NativeLibrary.ensureLoaded();
        if (pinned) {
            Device.ensureCudaAvailable();
        }
        reserve(bytes);
        long[] out = new long[1];
        try {
            NativeLibrary.check(TorusNative.torus_host_alloc(bytes, pinned ? 1 : 0, out), "allocateHost(" + bytes + ")");
        } catch (RuntimeException e) {
            unreserve(bytes);
            throw e;
        }
        HostBuffer b = new HostBuffer(this, out[0], bytes, pinned, name, site());
        register(b);
        return b;
    }

    /** Device memory on the device's default stream, uninitialised. */
    public DeviceBuffer allocateDevice(Device device, long bytes) {
        return allocateDevice(device, bytes, Stream.defaultStream(device));
    }

    /** Device memory allocated on (and later freed on) {@code stream}, uninitialised. */
    public DeviceBuffer allocateDevice(Device device, long bytes, Stream stream) {
        checkBytes(bytes);
        if (device == null || !device.isCuda()) {
            throw new IllegalArgumentException("device: expected a CUDA device, got " + device);
        }
        if (!stream.device().equals(device)) {
            throw new IllegalArgumentException("stream: expected a stream on " + device + ", got " + stream);
        }
        device.ensureUsable();
        reserve(bytes);
        long[] out = new long[1];
        try {
            NativeLibrary.check(TorusNative.torus_device_alloc(device.ordinal(), bytes, stream.handle(), out),
                    "allocateDevice(" + device + ", " + bytes + ")");
        } catch (RuntimeException e) {
            unreserve(bytes);
            throw e;
        }
        DeviceBuffer b = new DeviceBuffer(this, device, out[0], bytes, stream, name, site());
        register(b);
        return b;
    }

    /** Host memory for the CPU, device memory (default stream) for a GPU. */
    public MemoryBuffer allocate(Device device, long bytes) {
        return device.isCpu() ? allocateHost(bytes) : allocateDevice(device, bytes);
    }

    public String name() {
        return name;
    }

    /** The byte limit ({@code Long.MAX_VALUE} when unlimited). */
    public long limit() {
        return limit;
    }

    /** Bytes currently allocated through this allocator and its children. */
    public long allocatedBytes() {
        synchronized (lock) {
            return allocated;
        }
    }

    /** The most bytes ever allocated at once through this allocator and its children. */
    public long peakBytes() {
        synchronized (lock) {
            return peak;
        }
    }

    /** Forgets the peak: sets it to the current allocation. */
    public void resetPeak() {
        synchronized (lock) {
            peak = allocated;
        }
    }

    /** Buffers allocated directly here and still open. */
    public int openBufferCount() {
        synchronized (lock) {
            return open.size();
        }
    }

    public boolean isClosed() {
        synchronized (lock) {
            return closed;
        }
    }

    /**
     * Closes this allocator. Throws {@link IllegalStateException} listing every
     * open buffer and child allocator (with allocation stacks in debug mode);
     * the allocator then stays open.
     */
    @Override
    public void close() {
        synchronized (lock) {
            if (closed) {
                return;
            }
            if (!open.isEmpty() || !children.isEmpty() || allocated != 0) {
                closing = true;
                throw new IllegalStateException(leakReport());
            }
            closed = true;
            if (parent != null) {
                parent.children.remove(this);
            }
        }
    }

    private String leakReport() {
        StringBuilder sb = new StringBuilder();
        sb.append("Allocator '").append(name).append("' closed with ").append(allocated).append(" bytes outstanding: ")
                .append(open.size()).append(" open buffer(s), ").append(children.size()).append(" open child allocator(s)");
        List<MemoryBuffer> buffers = new ArrayList<>(open);
        for (MemoryBuffer b : buffers) {
            sb.append("\n  leaked ").append(b);
            if (b.allocationSite != null) {
                for (StackTraceElement e : b.allocationSite.getStackTrace()) {
                    sb.append("\n      at ").append(e);
                }
            }
        }
        for (Allocator c : children) {
            sb.append("\n  open child '").append(c.name).append("' holding ").append(c.allocated).append(" bytes");
        }
        long inFlight = allocated;
        for (MemoryBuffer b : buffers) {
            inFlight -= b.byteSize();
        }
        for (Allocator c : children) {
            inFlight -= c.allocated;
        }
        if (inFlight != 0) {
            sb.append("\n  ").append(inFlight).append(" bytes reserved by an allocation still in progress");
        }
        sb.append("\n  The allocator now refuses new buffers; close the ones above, then close() it again.");
        if (!DEBUG && !buffers.isEmpty()) {
            sb.append("\n  (run with -D").append(PROP_DEBUG).append("=true to record allocation stacks)");
        }
        return sb.toString();
    }

    private void reserve(long bytes) {
        synchronized (lock) {
            ensureOpen();
            for (Allocator a = this; a != null; a = a.parent) {
                if (bytes > a.limit - a.allocated) {
                    throw new OutOfMemoryException("allocator '" + a.name + "' limit exceeded: requested " + bytes
                            + " bytes with " + a.allocated + " of " + a.limit + " in use");
                }
            }
            for (Allocator a = this; a != null; a = a.parent) {
                a.allocated += bytes;
                a.peak = Math.max(a.peak, a.allocated);
            }
        }
    }

    private void unreserve(long bytes) {
        synchronized (lock) {
            for (Allocator a = this; a != null; a = a.parent) {
                a.allocated -= bytes;
            }
        }
    }

    private void register(MemoryBuffer b) {
        synchronized (lock) {
            open.add(b);
        }
    }

    void release(MemoryBuffer b) {
        synchronized (lock) {
            if (open.remove(b)) {
                for (Allocator a = this; a != null; a = a.parent) {
                    a.allocated -= b.byteSize();
                }
            }
        }
    }

    private void ensureOpen() {
        for (Allocator a = this; a != null; a = a.parent) {
            if (a.closed) {
                throw new IllegalStateException("Allocator '" + a.name + "' is closed");
            }
            if (a.closing) {
                throw new IllegalStateException("Allocator '" + a.name + "' is closing: its close() failed with "
                        + "buffers still open, so it allocates nothing more; close them, then close() it again");
            }
        }
    }

    private static Throwable site() {
        return DEBUG ? new Throwable("allocation site") : null;
    }

    private static void checkName(String name) {
        if (name == null || name.isEmpty()) {
            throw new IllegalArgumentException("name must be a non-empty string");
        }
    }

    private static void checkLimit(long limit) {
        if (limit < 0) {
            throw new IllegalArgumentException("limitBytes must be >= 0, got " + limit);
        }
    }

    private static void checkBytes(long bytes) {
        if (bytes < 0) {
            throw new IllegalArgumentException("bytes must be >= 0, got " + bytes);
        }
    }

    @Override
    public String toString() {
        return "Allocator[" + name + ", " + allocatedBytes() + " B allocated, peak " + peakBytes() + " B]";
    }
}
